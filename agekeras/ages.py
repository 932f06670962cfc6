"""Age conventions shared by every part of agekeras (one home for each).

A leaf module (NumPy only; TensorFlow imported lazily where a function runs
inside `tf.data`), so that the datasets, the metrics, the models and the
experiments can all use it without importing each other.

| convention | here |
|---|---|
| Adience's eight age groups, nearest-group mapping | `ADIENCE_GROUPS`, `ADIENCE_GROUP_NAMES`, `nearest_group` |
| age in years -> class index of a classification head | `class_index` |
| the DEX expectation over age classes (NumPy) | `expected_age` |
| gender / race codes -> names | `GENDER_NAMES`, `RACE_NAMES` |
| label prior of the training ages | `age_prior` |
"""

from __future__ import annotations

import numpy as np

#: Adience's eight age groups, as (low, high) inclusive ages.
ADIENCE_GROUPS = ((0, 2), (4, 6), (8, 13), (15, 20), (25, 32), (38, 43), (48, 53), (60, 100))
ADIENCE_GROUP_NAMES = tuple(f"{lo}-{hi}" for lo, hi in ADIENCE_GROUPS)

#: Gender codes of the datasets (-1: unknown).
GENDER_NAMES = {0: "male", 1: "female"}
#: Race codes of UTKFace (-1: unknown).
RACE_NAMES = {0: "white", 1: "black", 2: "asian", 3: "indian", 4: "others"}


def nearest_group(ages, groups=ADIENCE_GROUPS):
    """Index of the nearest group for each age.

    Ages between two groups go to the closer edge, so Adience's gaps (3, 14,
    21-24, ...) are assigned too.

    Args:
        ages: ages in years, any shape.
        groups: (low, high) inclusive ages per group.

    Returns:
        int32 array `(n,)` of group indices.

    Example:
    >>> nearest_group([1, 3, 14, 70]).tolist()
    [0, 0, 2, 7]
    """
    ages = np.asarray(ages, dtype="float64").reshape(-1)
    lows = np.array([g[0] for g in groups], dtype="float64")
    highs = np.array([g[1] for g in groups], dtype="float64")
    dist = np.maximum(lows[None] - ages[:, None], 0) + np.maximum(ages[:, None] - highs[None], 0)
    return np.argmin(dist, axis=1).astype("int32")


def class_index(age, age_min, num_classes):
    """Age in years -> class index of a classification head.

    Rounds to the nearest integer age (halves to even, like `np.round`),
    subtracts `age_min` and clips to [0, num_classes - 1]. Written with
    TensorFlow ops so that it runs inside `tf.data` (whatever the Keras
    backend); NumPy arrays are accepted too.

    Args:
        age: ages, a tensor or array of any shape.
        age_min: the age of class 0.
        num_classes: number of classes.

    Returns:
        int32 tensor of the same shape as `age`.
    """
    import tensorflow as tf

    index = tf.round(tf.cast(age, "float32")) - float(age_min)
    return tf.cast(tf.clip_by_value(index, 0.0, float(num_classes - 1)), "int32")


def expected_age(probs, age_min=0):
    """The DEX expectation `sum_k p_k (age_min + k)` in NumPy.

    Args:
        probs: `(..., K)` probabilities over ages age_min..age_min+K-1.
        age_min: the age of class 0.

    Returns:
        float64 array `(...)` of ages.

    Example:
    >>> float(expected_age([[0.5, 0.0, 0.5]], age_min=10)[0])
    11.0
    """
    probs = np.asarray(probs, dtype="float64")
    return probs @ (age_min + np.arange(probs.shape[-1], dtype="float64"))


def rank_class_probabilities(logits):
    """Class probabilities of an ordinal (CORAL / OR-CNN) head in NumPy.

    The head's K - 1 logits give P(age > k) = sigmoid(logit_k); the class
    probabilities are p_k = P(age > k - 1) - P(age > k) with P(age > -1) = 1
    and P(age > K - 1) = 0, clipped at 0 (independent rank tasks need not be
    monotone) and renormalised.

    Args:
        logits: `(..., K - 1)` rank logits.

    Returns:
        float64 `(..., K)` probabilities.

    Example:
    >>> rank_class_probabilities([[0.0]]).tolist()
    [[0.5, 0.5]]
    """
    above = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype="float64")))
    pad = [(0, 0)] * (above.ndim - 1) + [(1, 0)]
    upper = np.pad(above, pad, constant_values=1.0)  # P(age > k - 1), k = 0..K-1
    lower = np.pad(above, [(0, 0)] * (above.ndim - 1) + [(0, 1)], constant_values=0.0)  # P(age > k)
    p = np.clip(upper - lower, 0.0, None)
    return p / np.maximum(p.sum(-1, keepdims=True), 1e-12)


def age_prior(ages, age_min, num_classes, smoothing=1.0):
    """P(class = k) of training ages, with add-`smoothing` counts.

    The label prior that a head can start from (DEX bias = log prior, CORAL
    bias = log-odds of P(y > k)); see `agekeras.layers.CORALHead`.

    Args:
        ages: training ages in years.
        age_min, num_classes: the head's classes.
        smoothing: pseudo-count added to every class (no class gets p = 0).

    Returns:
        float64 array `(num_classes,)` summing to 1.

    Example:
    >>> age_prior([0, 0, 1], age_min=0, num_classes=2, smoothing=0).tolist()
    [0.6666666666666666, 0.3333333333333333]
    """
    ages = np.asarray(ages, dtype="float64").reshape(-1)
    index = np.clip(np.round(ages) - age_min, 0, num_classes - 1).astype("int64")
    counts = np.bincount(index, minlength=num_classes).astype("float64") + float(smoothing)
    return counts / counts.sum()
