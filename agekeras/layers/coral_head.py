"""CORAL head: K-1 rank-consistent binary tasks with one shared weight vector."""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="agekeras")
class CORALHead(keras.layers.Layer):
    """CORAL ordinal-regression head (Cao, Mirjalili and Raschka, 2020).

    Age label y in {0, ..., K-1} (after subtracting the dataset's minimum
    age) is expanded into K-1 binary labels y^(k) = [y > k] (the binary label
    expansion, Eq. 7 of the VoVNetv4 paper). All K-1 tasks share one weight
    vector w and each has its own bias b_k; the logits are the inputs
    g(x, W) + b_k of the binary classifiers of the paper's Eq. 8:

        logit_k(x) = w^T x + b_k,   P(y > k | x) = sigmoid(logit_k).

    Because the tasks differ only in their bias, P(y > k) is non-increasing
    in k whenever b_0 >= b_1 >= ...; the CORAL paper proves training keeps
    that order (its Theorem 1). The VoVNetv4 paper states no decode rule; we
    use the CORAL paper's: the predicted rank is the number of probabilities
    above 0.5 (`coral_label`).

    Bias initialisation (our choice). With `age_prior` (P(class = k) of the
    training labels, length K, e.g. `agekeras.ages.age_prior`) the biases
    start at the log-odds of the labels, b_k = logit(P(y > k)): an all-zero
    feature then decodes to the training median, and the head does not have
    to move its biases over several units with steps of the size of the
    learning rate (with K = 110 a correct decode needs biases spanning about
    +-6 to +-10). Without it (fallback) the biases start as a ramp decreasing
    linearly from 0.5 to -0.5 (the reference code coral-pytorch also starts
    from a decreasing ramp), rank-consistent from the first step.

    Args:
        num_classes: int, number of ranks K (the head returns K-1 logits).
        kernel_initializer: initializer of the shared weight vector.
        age_prior: optional list of K class probabilities of the training
            labels; the biases start at `coral_prior_bias(age_prior)`.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: features of shape `(batch, d)`.

    Returns:
        Logits of shape `(batch, K-1)`.

    Example:

    >>> head = CORALHead(num_classes=4, age_prior=[0.1, 0.2, 0.4, 0.3])
    >>> logits = head(np.zeros((2, 8), "float32"))
    >>> tuple(logits.shape), [round(float(b), 2) for b in keras.ops.convert_to_numpy(head.bias)]
    ((2, 3), [2.2, 0.85, -0.85])
    >>> keras.ops.convert_to_numpy(coral_label(logits)).tolist()
    [2, 2]

    Reference: "Rank consistent ordinal regression for neural networks with
    application to age estimation" (Cao, Mirjalili, Raschka, 2020),
    https://arxiv.org/abs/1901.07884; "Research on Phased Single Aggregation
    Age Estimation Algorithm Based on VoVNetv4" (Zhang et al., 2023), Eqs. 7-8.
    """

    def __init__(self, num_classes, kernel_initializer="glorot_uniform", age_prior=None, **kwargs):
        super().__init__(**kwargs)
        if int(num_classes) < 2:
            raise ValueError(f"`num_classes` must be >= 2, got {num_classes}.")
        self.num_classes = int(num_classes)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.age_prior = None if age_prior is None else check_prior(age_prior, self.num_classes)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=(input_shape[-1], 1), initializer=self.kernel_initializer
        )
        k = self.num_classes - 1
        if self.age_prior is None:
            start = [(k - 1 - i) / max(k - 1, 1) - 0.5 for i in range(k)]
        else:
            start = coral_prior_bias(self.age_prior).tolist()
        self.bias = self.add_weight(
            name="bias",
            shape=(k,),
            initializer=keras.initializers.Constant(start),
        )

    def call(self, inputs):
        return ops.matmul(inputs, self.kernel) + self.bias

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_classes - 1,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "age_prior": self.age_prior,
            }
        )
        return config


def check_prior(age_prior, num_classes):
    """`age_prior` as a list of `num_classes` floats summing to 1; a clear error otherwise."""
    p = np.asarray(age_prior, dtype="float64").reshape(-1)
    if p.shape != (num_classes,):
        raise ValueError(f"`age_prior` needs one probability per class ({num_classes}); got {p.shape[0]}.")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"`age_prior` must hold non-negative finite numbers with a positive sum; got {p.tolist()}.")
    return (p / p.sum()).tolist()


def coral_prior_bias(age_prior, eps=1e-6):
    """The log-odds b_k = logit(P(y > k)), k = 0..K-2, of a label prior.

    Args:
        age_prior: P(class = k) for k = 0..K-1 (normalised here).
        eps: P(y > k) is clipped to [eps, 1 - eps] (no infinite bias).

    Returns:
        float64 array `(K-1,)`, non-increasing.

    Example:

    >>> [round(float(b), 3) for b in coral_prior_bias([0.25, 0.25, 0.5])]
    [1.099, 0.0]
    """
    p = np.asarray(age_prior, dtype="float64").reshape(-1)
    above = np.clip(1.0 - np.cumsum(p / p.sum())[:-1], eps, 1.0 - eps)
    return np.log(above) - np.log1p(-above)


def coral_probabilities(logits):
    """P(y > k) for k = 0..K-2 from CORAL logits: `sigmoid(logits)`.

    The VoVNetv4 paper's sigma(g(x, W) + b_k) of Eq. 8.
    """
    return ops.sigmoid(logits)


def coral_label(logits):
    """Predicted rank = number of P(y > k) above 0.5, as int32.

    The CORAL paper's rule; the VoVNetv4 paper states no decode rule.
    """
    return ops.sum(ops.cast(ops.sigmoid(logits) > 0.5, "int32"), axis=-1)


@keras.saving.register_keras_serializable(package="agekeras")
class CORALDecode(keras.layers.Layer):
    """Turns CORAL logits into an age: `age_min + coral_label(logits)`.

    Not differentiable (a count); use it for the model's "age" output next to
    the "age_logits" output that carries the CORAL loss.

    Args:
        age_min: the age of rank 0.

    Call arguments:
        inputs: logits `(batch, K-1)`.

    Returns:
        float ages `(batch,)`.
    """

    def __init__(self, age_min=0, **kwargs):
        super().__init__(**kwargs)
        self.age_min = age_min

    def call(self, inputs):
        rank = ops.cast(coral_label(inputs), self.compute_dtype)
        return rank + ops.cast(self.age_min, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])

    def get_config(self):
        config = super().get_config()
        config["age_min"] = self.age_min
        return config
