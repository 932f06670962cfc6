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
        accepts_prior: the builder takes `age_prior` (the training labels'
            prior; its age head starts there, `agekeras.ages.age_prior`).
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
    accepts_prior: bool = False
    loss_weights: dict | None = None
    losses: dict | None = None
    targets: Callable | None = None

    def compile_args(self, model, *, num_classes=None, label_sigma=None, age_l1=0.0):
        """`loss`, `loss_weights` and `metrics` for `model.compile`: this entry's
        declared losses over the output-name conventions, with a run's loss recipe.

        Args:
            model: the built model (dict outputs).
            num_classes: width of its age softmax (needed with `label_sigma`).
            label_sigma: None, or the sigma (years) of a Gaussian label
                distribution replacing the one-hot cross-entropy of every
                `age_probs*` output the entry does not train otherwise.
            age_l1: weight of an L1 loss on the "age" output (0: none).
        """
        from agekeras.models.outputs import compile_args, recipe_losses

        overrides, weights = recipe_losses(model, self.losses, self.loss_weights, num_classes=num_classes,
                                           label_sigma=label_sigma, age_l1=age_l1, name=self.name)
        return compile_args(model, overrides=overrides, loss_weights=weights)


#: The entry of a model built outside the registry (e.g. wired in a notebook
#: cell from `agekeras.layers`): the output-name conventions alone.
CUSTOM = ModelEntry(name="custom", builder=None, description="a model built outside the registry")


def entry_for(name, model=None) -> ModelEntry:
    """The entry a run trains with: the registered entry of `name`, or, for a
    model built outside the registry under another name, `CUSTOM` (its
    `needs_landmarks` is the model's own: an input named "landmarks")."""
    _load_all()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if model is None:
        raise ValueError(f"Unknown model {name!r}. Available models: {', '.join(available())}")
    names = [t.name for t in model.inputs]
    return dataclasses.replace(CUSTOM, name=name, needs_landmarks="landmarks" in names)


def register(name, *, paper="foundation", description="", needs_landmarks=False, accepts_prior=False,
             loss_weights=None, losses=None, targets=None):
    """Decorator adding a builder to the registry under `name`."""

    def wrap(fn):
        old = _REGISTRY.get(name)
        if old is not None and old.builder is not fn and _qualname(old.builder) != _qualname(fn):
            raise ValueError(f"model {name!r} is already registered (by {_qualname(old.builder)})")
        _REGISTRY[name] = ModelEntry(
            name=name,
            builder=fn,
            paper=paper,
            description=description or (inspect.getdoc(fn) or "").split("\n")[0],
            needs_landmarks=needs_landmarks,
            accepts_prior=accepts_prior,
            loss_weights=loss_weights,
            losses=losses,
            targets=targets,
        )
        return fn

    return wrap


def _qualname(fn):
    """Where a builder was defined: a cell run again re-registers the same
    function (a new object of the same module and name), which replaces it."""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


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
