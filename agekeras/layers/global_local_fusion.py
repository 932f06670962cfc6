"""GlobalLocalFusion: the weighted average of the global and local age distributions (AL paper, Eq. 5, normalised)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="agekeras")
class GlobalLocalFusion(keras.layers.Layer):
    """Fuses the global and the local age distributions and decodes an age.

    The output module of the AL-ResNets / AL-RoR paper (Eq. 5) combines the
    age distributions predicted from the global feature and from the located
    region with weights 1 and lambda (0.5 in the paper):
    P_final = P_global + lambda P_local. This layer also divides by the sum
    of the weights (our choice) and decodes the DEX expectation:

        P_final = (P_global + lambda P_local) / (1 + lambda)
        age     = sum_k P_final[k] (age_min + k)

    Why the division: the paper calls P_final a weighted average of the two
    predictions, and the DEX expectation needs a distribution (undivided,
    P_final sums to 1 + lambda and the age would be scaled by it); the
    arg-max, and hence the Adience group, is the same either way.

    Args:
        local_weight: lambda, the weight of the local prediction (>= 0).
        age_min: the age of class 0 (class k is age `age_min + k`).
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: a list `[p_global, p_local]`, each `(batch, K)`
            probabilities.

    Returns:
        A tuple `(p_final, age)`: `(batch, K)` and `(batch,)`.

    Example:

    >>> fusion = GlobalLocalFusion(local_weight=0.5, age_min=20)
    >>> p, age = fusion([np.array([[1.0, 0.0]], "float32"), np.array([[0.0, 1.0]], "float32")])
    >>> np.round(np.asarray(p, "float64"), 3).tolist(), np.round(np.asarray(age, "float64"), 3).tolist()
    ([[0.667, 0.333]], [20.333])

    Reference: Fine-Grained Age Estimation in the Wild with Attention LSTM
    Networks (https://arxiv.org/abs/1805.10445).
    """

    def __init__(self, local_weight=0.5, age_min=0, **kwargs):
        super().__init__(**kwargs)
        if float(local_weight) < 0:
            raise ValueError(f"`local_weight` must be >= 0, got {local_weight}.")
        self.local_weight = float(local_weight)
        self.age_min = age_min

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
            raise ValueError("GlobalLocalFusion expects a list [p_global (batch, K), p_local (batch, K)].")
        g, loc = (tuple(s) for s in input_shape)
        if len(g) != 2 or g[-1] != loc[-1]:
            raise ValueError(f"GlobalLocalFusion needs two (batch, K) inputs with the same K, got {g} and {loc}.")

    def call(self, inputs):
        p_global, p_local = inputs
        p = p_global + self.local_weight * p_local
        p = p / ops.sum(p, axis=-1, keepdims=True)
        ages = ops.arange(p.shape[-1], dtype=p.dtype) + ops.cast(self.age_min, p.dtype)
        return p, ops.sum(p * ages, axis=-1)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape[0])
        return shape, shape[:-1]

    def get_config(self):
        return {**super().get_config(), "local_weight": self.local_weight, "age_min": self.age_min}
