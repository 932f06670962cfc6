"""Losses shared by the papers, written with `keras.ops` (any backend).

- `CORALLoss`: Eq. 8 of the VoVNetv4 paper (CORAL, Cao et al. 2020).
- `SmoothL1`: Eq. 10 of the DAA paper (Huber with delta 1, "smooth L1").
- `GaussianLabelCrossentropy`: cross-entropy against a Gaussian label
  distribution around the true age (label distribution learning, DLDL), a
  training recipe for any softmax age head.
- `sparse_categorical_crossentropy` / `SparseCategoricalCrossentropy`: Keras' own,
  re-exported so that every paper imports its losses from one place.
"""

import keras
from keras import ops

SparseCategoricalCrossentropy = keras.losses.SparseCategoricalCrossentropy
sparse_categorical_crossentropy = keras.losses.sparse_categorical_crossentropy


def coral_levels(labels, num_classes):
    """Binary "y > k" targets: `(batch,) int -> (batch, K-1)` floats in {0, 1}.

    Example: K = 4, y = 2 -> [1, 1, 0].
    """
    labels = ops.reshape(ops.cast(labels, "int32"), (-1, 1))
    ks = ops.reshape(ops.arange(num_classes - 1, dtype="int32"), (1, -1))
    return ops.cast(labels > ks, "float32")


def coral_loss(labels, logits, importance=None):
    """CORAL loss per example (Eq. 8 of the VoVNetv4 paper).

        L = -sum_k lambda_k [ y_k log s(g_k) + (1 - y_k) log(1 - s(g_k)) ]

    with s the sigmoid, g_k the logits and y_k = 1[y > k] (the binary label
    expansion, Eq. 7); computed from the logits with log-sigmoid for
    stability. The VoVNetv4 paper uses task weights lambda_k but never
    defines them: the default here is 1 for every task.

    Args:
        labels: int ranks `(batch,)` (or `(batch, 1)`) in [0, K-1].
        logits: `(batch, K-1)` from `CORALHead`.
        importance: optional `(K-1,)` task weights lambda_k (default all 1).

    Returns:
        `(batch,)` loss values.
    """
    logits = ops.cast(logits, "float32")
    levels = coral_levels(labels, ops.shape(logits)[-1] + 1)
    term = levels * ops.log_sigmoid(logits) + (1.0 - levels) * (
        ops.log_sigmoid(logits) - logits
    )
    if importance is not None:
        term = term * ops.cast(ops.convert_to_tensor(importance), term.dtype)
    return -ops.sum(term, axis=-1)


@keras.saving.register_keras_serializable(package="agekeras")
class CORALLoss(keras.losses.Loss):
    """Keras loss wrapper of `coral_loss` (integer labels, K-1 logits).

    Like coral-ordinal's `OrdinalCrossEntropy`, `y_true` holds integer ranks
    and `y_pred` the head's K-1 logits.

    Args:
        importance: optional list of K-1 task weights lambda_k (Eq. 8).
        name, reduction: as for any `keras.losses.Loss`.

    Example:

    >>> loss = CORALLoss()
    >>> loss(np.array([0, 3]), np.zeros((2, 3), "float32"))
    """

    def __init__(self, importance=None, name="coral_loss", reduction="sum_over_batch_size"):
        super().__init__(name=name, reduction=reduction)
        self.importance = None if importance is None else [float(v) for v in importance]

    def call(self, y_true, y_pred):
        return coral_loss(y_true, y_pred, self.importance)

    def get_config(self):
        return {"importance": self.importance, "name": self.name, "reduction": self.reduction}


def coral_importance_weights(labels, num_classes):
    """Task weights of Eq. 8 from the label counts (the CORAL paper's Eq. 10).

    lambda_k = sqrt(max(|S_k|, |S \\ S_k|)) / max_j sqrt(max(|S_j|, |S \\ S_j|))
    where S_k are the training examples with y > k. Returns a NumPy array.
    """
    import numpy as np

    labels = np.asarray(labels).reshape(-1)
    counts = np.array([(labels > k).sum() for k in range(num_classes - 1)], dtype="float64")
    m = np.sqrt(np.maximum(counts, len(labels) - counts))
    return (m / m.max()).astype("float32")


def smooth_l1(y_true, y_pred, delta=1.0):
    """Smooth L1 per element (Eq. 10 of the DAA paper):
    0.5 d^2 / delta if |d| < delta else |d| - 0.5 delta, with d = y_pred - y_true.
    Averaged over the last axis when it has more than one entry.
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    d = ops.abs(y_pred - ops.reshape(y_true, ops.shape(y_pred)))
    v = ops.where(d < delta, 0.5 * d * d / delta, d - 0.5 * delta)
    return v if len(v.shape) < 2 else ops.mean(v, axis=-1)


@keras.saving.register_keras_serializable(package="agekeras")
class SmoothL1(keras.losses.Loss):
    """Keras loss wrapper of `smooth_l1`.

    Args:
        delta: where the quadratic part turns linear (1.0 = "smooth L1").
    """

    def __init__(self, delta=1.0, name="smooth_l1", reduction="sum_over_batch_size"):
        super().__init__(name=name, reduction=reduction)
        self.delta = float(delta)

    def call(self, y_true, y_pred):
        return smooth_l1(y_true, y_pred, self.delta)

    def get_config(self):
        return {"delta": self.delta, "name": self.name, "reduction": self.reduction}


def gaussian_label_distribution(labels, num_classes, sigma):
    """Gaussian label distributions over `num_classes` age classes.

    q_k = exp(-(k - y)^2 / (2 sigma^2)) / sum_j exp(-(j - y)^2 / (2 sigma^2))

    Args:
        labels: `(batch,)` or `(batch, 1)` class indices y (may be fractional).
        num_classes: K.
        sigma: standard deviation in classes (years for one-year classes), > 0.

    Returns:
        `(batch, K)` float32 rows summing to 1.
    """
    k = ops.arange(num_classes, dtype="float32")
    y = ops.reshape(ops.cast(labels, "float32"), (-1, 1))
    return ops.softmax(-ops.square(k - y) / (2.0 * float(sigma) ** 2), axis=-1)


@keras.saving.register_keras_serializable(package="agekeras")
class GaussianLabelCrossentropy(keras.losses.Loss):
    """Cross-entropy of softmax age probabilities against a Gaussian label distribution.

    Neighbouring ages look alike, so instead of a one-hot target the head is
    trained towards q = N(y, sigma^2) over the classes (normalised), and the
    loss is L = -sum_k q_k log p_k (the KL divergence KL(q || p) up to a
    constant). With a small sigma it is the sparse cross-entropy. It takes the
    same sparse class targets as `SparseCategoricalCrossentropy`, so it
    replaces it on any `age_probs*` output (`TrainConfig.label_sigma`).

    Args:
        num_classes: K, the width of the softmax.
        sigma: standard deviation of the label distribution, in classes.
        name, reduction: as for `keras.losses.Loss`.

    Call arguments:
        y_true: `(batch,)` class indices.
        y_pred: `(batch, K)` probabilities.

    Returns:
        The reduced loss (per face `(batch,)` before reduction).

    Example:
    >>> loss = GaussianLabelCrossentropy(num_classes=5, sigma=1.0)
    >>> float(loss([2], [[0.05, 0.2, 0.5, 0.2, 0.05]])) > 0
    True

    Reference: Deep Label Distribution Learning With Label Ambiguity
    (https://arxiv.org/abs/1611.01731); the L1 loss on the expected age
    beside it (`TrainConfig.age_l1`) follows Learning Expectation of Label
    Distribution for Facial Age and Attractiveness Estimation
    (https://arxiv.org/abs/2007.01771).
    """

    def __init__(self, num_classes, sigma=2.0, name="gaussian_label_ce", reduction="sum_over_batch_size"):
        super().__init__(name=name, reduction=reduction)
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if not float(sigma) > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.num_classes = int(num_classes)
        self.sigma = float(sigma)

    def call(self, y_true, y_pred):
        q = gaussian_label_distribution(y_true, self.num_classes, self.sigma)
        p = ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1.0)
        return -ops.sum(q * ops.log(p), axis=-1)

    def get_config(self):
        return {"num_classes": self.num_classes, "sigma": self.sigma, "name": self.name,
                "reduction": self.reduction}
