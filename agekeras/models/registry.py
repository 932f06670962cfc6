"""The model registry: `agekeras.models.get(name, **kwargs)`, `available()`.

Every registered builder has the signature

    builder(input_shape=(64, 64, 3), num_classes=101, age_min=0, **kwargs) -> keras.Model

and returns a model whose outputs are a dict following the conventions of
`agekeras.models.outputs` (always an "age" output in years, plus the outputs
that carry the training losses). Paper modules register their models with
`@register("name", paper="...")`.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Callable

_REGISTRY: dict[str, "ModelEntry"] = {}


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """What the registry knows of a model.

    Attributes:
        name: registry name, e.g. "resnet18_dex".
        builder: the function building the `keras.Model`.
        paper: short paper tag ("foundation", "vovnetv4", "daa", ...).
        description: one line for `available(verbose=True)` and the CLI.
        needs_landmarks: the model takes `{"image", "landmarks"}` inputs.
        loss_weights: optional output name -> weight for `compile`.
        losses: optional output name -> loss overriding the conventions
            (a loss object, or "smooth_l1" / any `keras.losses.get` name).
            A model whose "age" output is trained directly (regression)
            declares it here: `losses={"age": "smooth_l1"}`.
        targets: optional `fn(labels, **model_kwargs) -> dict` adding targets
            for outputs outside the conventions (e.g. age groups computed
            from the age with the model's own group edges). `labels` is the
            pipeline's label dict of tf tensors; runs inside tf.data.
    """

    name: str
    builder: Callable
    paper: str = "foundation"
    description: str = ""
    needs_landmarks: bool = False
    loss_weights: dict | None = None
    losses: dict | None = None
    targets: Callable | None = None

    def compile_args(self, model):
        """`loss`, `loss_weights` and `metrics` for `model.compile`, from this entry's declared losses."""
        from agekeras.models.outputs import compile_args

        return compile_args(model, overrides=self.losses, loss_weights=self.loss_weights)


def register(name, *, paper="foundation", description="", needs_landmarks=False, loss_weights=None, losses=None,
             targets=None):
    """Decorator adding a builder to the registry under `name`."""

    def wrap(fn):
        if name in _REGISTRY and _REGISTRY[name].builder is not fn:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(
            name=name,
            builder=fn,
            paper=paper,
            description=description or (inspect.getdoc(fn) or "").split("\n")[0],
            needs_landmarks=needs_landmarks,
            loss_weights=loss_weights,
            losses=losses,
            targets=targets,
        )
        return fn

    return wrap


def _load_all():
    # Importing the package registers every model module it lists.
    import agekeras.models  # noqa: F401


def entry(name) -> ModelEntry:
    """The `ModelEntry` of `name`; unknown names list the choices."""
    _load_all()
    if name not in _REGISTRY:
        raise ValueError(f"Unknown model {name!r}. Available models: {', '.join(available())}")
    return _REGISTRY[name]


def get(name, **kwargs):
    """Build the registered model `name` with `kwargs` (see `entry(name).builder`)."""
    return entry(name).builder(**kwargs)


def available(paper=None):
    """Sorted registered names (optionally only those of one `paper`)."""
    _load_all()
    return sorted(n for n, e in _REGISTRY.items() if paper is None or e.paper == paper)
