"""`GroupedAgeHead`: GRA_Net's "label division" age head (age-group classifier
+ exact-age regressor inside each group)."""

import keras
import numpy as np
from keras import ops

FEATURE_GRADIENTS = ("both", "group", "none")
DECADES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
"""Default age-group edges: 0-9, 10-19, ..., 80-89, 90+ (10 groups)."""


@keras.saving.register_keras_serializable(package="agekeras")
class GroupedAgeHead(keras.layers.Layer):
    """Age-group classifier + per-group exact-age regressor -> `(group_probs, age)`.

    GRA_Net splits the age label into an age category and an exact age
    ("label division", Fig. 8 of the report; its formula is not in the text).
    Our reading, as one head: the groups are the intervals `[lo_g, hi_g)`
    between consecutive `group_edges`, with

        lo = [a0, e_1, ..., e_{G-1}],  hi = [e_1, ..., e_{G-1}, a1],
        a0 = min(age_min, e_1 - 1),    a1 = max(age_max, e_{G-1} + 1);

    a softmax classifier gives `p_g`, a regressor one position
    `t_g = sigmoid(z_g)` in (0, 1) per group, and

        age = sum_g p_g * (lo_g + t_g * (hi_g - lo_g)),

    the expected age over groups of "group start + regressed offset inside
    the group". Why this reading: the prediction stays inside the age range,
    and the age loss trains both the regressor and (through `p_g`) the
    classifier, which the group cross-entropy also supervises.

    Args:
        group_edges: increasing ages where a new group starts (G - 1 edges
            for G groups); default decades (10 groups).
        age_min: youngest age of the data (bounds the first group).
        age_max: oldest age of the data (bounds the last group).
        feature_gradient: which output's loss may reach the input features:
            "both" (default), "group" (the age output reads the features
            through a stop-gradient: it trains the head only, e.g. an
            age-group model whose age output is a probe) or "none" (both
            outputs read stopped features: a probe on a network trained by
            other heads). The forward values are the same in every case.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: features `(batch, d)`.

    Returns:
        `(group_probs, age)`: group probabilities `(batch, G)` and ages in
        years `(batch,)`.

    Example:

    >>> head = GroupedAgeHead(group_edges=(10, 30), age_min=2, age_max=70)
    >>> probs, age = head(np.zeros((4, 16), "float32"))
    >>> tuple(probs.shape), tuple(age.shape)
    ((4, 3), (4,))
    >>> # all-zero features: p_g = 1/3 and t_g = 1/2, so age = (6 + 20 + 50) / 3
    >>> [round(float(a), 2) for a in keras.ops.convert_to_numpy(age)]
    [25.33, 25.33, 25.33, 25.33]

    Reference: GRA_Net: A Deep Learning Model for Classification of Age and
    Gender From Facial Images (Garain et al., IEEE Access 2021,
    https://ieeexplore.ieee.org/document/9446083).
    """

    def __init__(self, group_edges=DECADES, age_min=0, age_max=100, feature_gradient="both", **kwargs):
        super().__init__(**kwargs)
        if feature_gradient not in FEATURE_GRADIENTS:
            raise ValueError(f"feature_gradient must be one of {FEATURE_GRADIENTS}; got {feature_gradient!r}.")
        self.feature_gradient = feature_gradient
        edges = [float(e) for e in group_edges]
        if not edges or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError(f"group_edges must be a non-empty increasing list; got {group_edges!r}.")
        self.group_edges = edges
        self.age_min = float(age_min)
        self.age_max = float(age_max)
        lo = [min(self.age_min, edges[0] - 1.0)] + edges
        hi = edges + [max(self.age_max, edges[-1] + 1.0)]
        self.lower = np.asarray(lo, "float32")
        self.width = np.asarray(hi, "float32") - self.lower

    @property
    def num_groups(self):
        return len(self.group_edges) + 1

    def build(self, input_shape):
        d, g = input_shape[-1], self.num_groups
        self.cls_kernel = self.add_weight(name="cls_kernel", shape=(d, g), initializer="glorot_uniform")
        self.cls_bias = self.add_weight(name="cls_bias", shape=(g,), initializer="zeros")
        self.reg_kernel = self.add_weight(name="reg_kernel", shape=(d, g), initializer="glorot_uniform")
        self.reg_bias = self.add_weight(name="reg_bias", shape=(g,), initializer="zeros")

    def call(self, inputs):
        stopped = ops.stop_gradient(inputs) if self.feature_gradient != "both" else inputs
        probs = self._group_probs(stopped if self.feature_gradient == "none" else inputs)
        age_probs = probs if self.feature_gradient == "both" else self._group_probs(stopped)
        position = ops.sigmoid(ops.matmul(stopped, self.reg_kernel) + self.reg_bias)
        ages = ops.convert_to_tensor(self.lower, probs.dtype) + position * ops.convert_to_tensor(
            self.width, probs.dtype
        )
        return probs, ops.sum(age_probs * ages, axis=-1)

    def _group_probs(self, x):
        return ops.softmax(ops.matmul(x, self.cls_kernel) + self.cls_bias, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_groups,), tuple(input_shape[:-1])

    def get_config(self):
        config = super().get_config()
        config.update({"group_edges": self.group_edges, "age_min": self.age_min, "age_max": self.age_max,
                       "feature_gradient": self.feature_gradient})
        return config
