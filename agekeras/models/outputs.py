"""Output-name conventions shared by every model, and what training does with them.

A model returns a dict of outputs. Training (`agekeras.training`) compiles a
loss for each output according to its name, and the input pipeline builds the
matching targets from the dataset's labels:

| output name (prefix) | what it is | target | default loss |
|---|---|---|---|
| `age` | predicted age in years `(batch,)` | age | none (MAE, RMSE, CA(5) metrics); the loss for `regression` heads |
| `age_probs*` | softmax over ages `(batch, K)` | age class `round(age) - age_min` | sparse cross-entropy |
| `age_logits*` | CORAL logits `(batch, K-1)` | age class | `CORALLoss` |
| `group_probs*` | softmax over age groups | group index | sparse cross-entropy |
| `gender_probs*` | softmax over (male, female) | gender (-1 unknown: ignored) | sparse cross-entropy |

Several outputs may share a prefix (`age_probs_sub1`, ... for DHAA's nine
sub-network classifiers): each gets its own loss term.
"""

import keras

from agekeras.ages import class_index
from agekeras.losses import CORALLoss, GaussianLabelCrossentropy, SmoothL1
from agekeras.metrics import AbsoluteError, KnownGenderAccuracy

PREFIXES = ("age_probs", "age_logits", "group_probs", "gender_probs")


def target_key(output_name):
    """The label an output is trained on: "age", "age_class", "group" or "gender"."""
    if output_name == "age":
        return "age"
    if output_name.startswith(("age_probs", "age_logits")):
        return "age_class"
    if output_name.startswith("group_probs"):
        return "group"
    if output_name.startswith("gender_probs"):
        return "gender"
    return None


def default_loss(output_name):
    """The conventional loss of an output, or None for outputs without one
    (the "age" output is trained directly only when a model declares it:
    `ModelEntry.losses`)."""
    if output_name.startswith("age_probs") or output_name.startswith("group_probs"):
        return keras.losses.SparseCategoricalCrossentropy(name=f"{output_name}_ce")
    if output_name.startswith("gender_probs"):
        return keras.losses.SparseCategoricalCrossentropy(ignore_class=-1, name=f"{output_name}_ce")
    if output_name.startswith("age_logits"):
        return CORALLoss(name=f"{output_name}_coral")
    return None


def make_targets(output_names, age_min, num_classes, extra=None):
    """A function mapping the pipeline's label dict to a model's target dict.

    `extra(labels) -> dict` adds model-specific targets (see
    `ModelEntry.targets`); only keys naming an output are kept. It runs inside `tf.data`, so it is written with `tf` ops (tf.data graphs
    are TensorFlow whatever the Keras backend); it also accepts NumPy arrays.
    """
    import tensorflow as tf

    output_names = tuple(output_names)

    def fn(labels):
        age = tf.cast(labels["age"], tf.float32)
        values = {"age": age, "age_class": class_index(age, age_min, num_classes)}
        if "group" in labels:
            values["group"] = tf.cast(labels["group"], tf.int32)
        if "gender" in labels:
            values["gender"] = tf.cast(labels["gender"], tf.int32)
        out = {name: values[target_key(name)] for name in output_names if target_key(name) in values}
        if extra is not None:
            out.update({k: v for k, v in extra(labels).items() if k in output_names})
        return out

    return fn


def _loss(spec, output_name):
    """A loss object from a declared loss: an object, "smooth_l1" or a Keras name."""
    if not isinstance(spec, str):
        return spec
    if spec == "smooth_l1":
        return SmoothL1(name=f"{output_name}_smooth_l1")
    return keras.losses.get(spec)


def recipe_losses(model, losses=None, loss_weights=None, *, num_classes=None, label_sigma=None, age_l1=0.0,
                  name="model"):
    """A model's declared losses and weights with a run's loss recipe added.

    Args:
        model: a model following the conventions.
        losses, loss_weights: the declared output name -> loss / weight
            (`ModelEntry.losses`, `ModelEntry.loss_weights`), or None.
        num_classes: width of the age softmax (with `label_sigma`).
        label_sigma: None, or train every `age_probs*` output without a
            declared loss on a Gaussian label distribution of this sigma
            (`agekeras.losses.GaussianLabelCrossentropy`).
        age_l1: weight of an L1 loss on the "age" output (0: none).
        name: the model's name, for messages.

    Returns:
        `(losses, loss_weights)` for `compile_args`.
    """
    overrides = dict(losses or {})
    weights = dict(loss_weights or {})
    if not label_sigma and not age_l1:
        return overrides or None, weights or None
    names = list(model.output.keys()) if isinstance(model.output, dict) else []
    if label_sigma:
        if not num_classes:
            raise ValueError("label_sigma needs num_classes (the width of the age softmax)")
        probs = [n for n in names if n.startswith("age_probs") and n not in overrides]
        if not probs:
            raise ValueError(f"label_sigma needs a softmax age head (an age_probs output); model {name!r} has {names}")
        for n in probs:
            overrides[n] = GaussianLabelCrossentropy(num_classes, label_sigma, name=f"{n}_gauss")
    if age_l1:
        if "age" in overrides:
            raise ValueError(f"model {name!r} already trains its age output with {overrides['age']!r}")
        overrides["age"] = keras.losses.MeanAbsoluteError(name="age_l1")
        weights["age"] = float(age_l1)
    if weights:  # every loss gets a weight (1 unless given), so Keras sees the whole structure
        weights = {n: float(weights.get(n, 1.0)) for n in names if n in overrides or default_loss(n) is not None}
    return overrides, weights or None


def compile_args(model, *, overrides=None, loss_weights=None):
    """`loss`, `loss_weights` and `metrics` dicts for `model.compile`.

    Args:
        model: a model following the conventions.
        overrides: output name -> loss (object or name, see `ModelEntry.losses`),
            replacing the convention.
        loss_weights: output name -> weight.
    """
    names = list(model.output.keys()) if isinstance(model.output, dict) else None
    if names is None:
        raise ValueError("agekeras models return a dict of outputs; got a non-dict output")
    if "age" not in names:
        raise ValueError(f"model {model.name!r} has no 'age' output (outputs: {names})")
    losses = {}
    for name in names:
        if overrides and name in overrides:
            losses[name] = _loss(overrides[name], name)
            continue
        loss = default_loss(name)
        if loss is not None:
            losses[name] = loss
    if not losses:
        raise ValueError(f"no output of {model.name!r} carries a loss: {names}")
    metrics = {
        "age": [
            AbsoluteError(name="mae"),  # per face, not per batch
            keras.metrics.RootMeanSquaredError(name="rmse"),
        ]
    }
    for name in names:
        if name.startswith("gender_probs"):  # unknown gender (-1) is skipped, not counted wrong
            metrics[name] = [KnownGenderAccuracy(name="acc")]
        if name.startswith("group_probs"):
            metrics[name] = [keras.metrics.SparseCategoricalAccuracy(name="acc")]
    weights = {k: float(v) for k, v in (loss_weights or {}).items() if k in losses}
    return {"loss": losses, "loss_weights": weights or None, "metrics": metrics}
