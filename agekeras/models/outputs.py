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
from agekeras.losses import CORALLoss, SmoothL1
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


def default_loss(output_name, regression_loss="smooth_l1"):
    """The conventional loss of an output, or None for outputs without one."""
    if output_name.startswith("age_probs") or output_name.startswith("group_probs"):
        return keras.losses.SparseCategoricalCrossentropy(name=f"{output_name}_ce")
    if output_name.startswith("gender_probs"):
        return keras.losses.SparseCategoricalCrossentropy(ignore_class=-1, name=f"{output_name}_ce")
    if output_name.startswith("age_logits"):
        return CORALLoss(name=f"{output_name}_coral")
    if output_name == "age" and regression_loss:
        return SmoothL1(name="age_smooth_l1") if regression_loss == "smooth_l1" else keras.losses.get(regression_loss)
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


def compile_args(model, *, head_is_regression=False, overrides=None, loss_weights=None):
    """`loss`, `loss_weights` and `metrics` dicts for `model.compile`.

    Args:
        model: a model following the conventions.
        head_is_regression: put the regression loss on the "age" output.
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
        loss = default_loss(name, regression_loss="smooth_l1" if head_is_regression else None)
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
