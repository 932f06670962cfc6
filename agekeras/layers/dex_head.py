"""DEX head: softmax over age classes and its expected value."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="agekeras")
class DEXHead(keras.layers.Layer):
    """Deep EXpectation (DEX) age head.

    A dense layer maps features to `num_classes` logits, one per integer age
    `age_min, age_min + 1, ..., age_min + num_classes - 1`; the softmax gives
    p_k and the predicted age is the expectation

        E[age] = sum_k p_k * (age_min + k)

    (Rothe et al., "DEX: Deep EXpectation of apparent age", Eq. 1; used as the
    "expectation" output of the AL-ResNets, DHAA and DAA baselines).

    Args:
        num_classes: int, number of age classes K.
        age_min: int or float, the age of class 0. Defaults to `0`.
        kernel_initializer, bias_initializer: initializers of the dense map.
        **kwargs: base `Layer` arguments (`name`, `dtype`, ...). Use
            `dtype="float32"` under mixed precision so the softmax is computed
            in float32.

    Call arguments:
        inputs: features of shape `(batch, ..., d)`.

    Returns:
        A tuple `(probs, age)`: `probs` of shape `(batch, ..., K)` and the
        expected age of shape `(batch, ...)`.

    Example:

    >>> head = DEXHead(num_classes=101)
    >>> probs, age = head(np.zeros((2, 512), "float32"))
    >>> tuple(probs.shape), tuple(age.shape)
    ((2, 101), (2,))
    """

    def __init__(
        self,
        num_classes,
        age_min=0,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(num_classes) < 2:
            raise ValueError(f"`num_classes` must be >= 2, got {num_classes}.")
        self.num_classes = int(num_classes)
        self.age_min = age_min
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        dim = input_shape[-1]
        self.kernel = self.add_weight(
            name="kernel",
            shape=(dim, self.num_classes),
            initializer=self.kernel_initializer,
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.num_classes,), initializer=self.bias_initializer
        )

    def call(self, inputs):
        logits = ops.matmul(inputs, self.kernel) + self.bias
        probs = ops.softmax(logits, axis=-1)
        ages = ops.arange(self.num_classes, dtype=probs.dtype) + ops.cast(
            self.age_min, probs.dtype
        )
        return probs, ops.sum(probs * ages, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_classes,), tuple(input_shape[:-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "age_min": self.age_min,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
