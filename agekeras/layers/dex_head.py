"""DEX head: softmax over age classes and its expected value."""

import keras
import numpy as np
from keras import ops

from agekeras.layers.coral_head import check_prior


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
        age_prior: optional list of K class probabilities of the training
            labels (e.g. `agekeras.ages.age_prior`); when given, the bias
            starts at log(prior) (our choice, replacing `bias_initializer`),
            so an all-zero feature predicts the prior and its expectation,
            the training mean age. Without it the bias starts at
            `bias_initializer` (zeros: a uniform softmax).
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
    >>> head = DEXHead(num_classes=3, age_min=20, age_prior=[0.2, 0.3, 0.5])
    >>> probs, age = head(np.zeros((1, 4), "float32"))
    >>> [round(float(v), 3) for v in keras.ops.convert_to_numpy(age)]
    [21.3]

    Reference: "DEX: Deep EXpectation of apparent age from a single image"
    (Rothe, Timofte, Van Gool, ICCV Workshops 2015),
    https://doi.org/10.1109/ICCVW.2015.41.
    """

    def __init__(
        self,
        num_classes,
        age_min=0,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        age_prior=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(num_classes) < 2:
            raise ValueError(f"`num_classes` must be >= 2, got {num_classes}.")
        self.num_classes = int(num_classes)
        self.age_min = age_min
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.age_prior = None if age_prior is None else check_prior(age_prior, self.num_classes)

    def build(self, input_shape):
        dim = input_shape[-1]
        self.kernel = self.add_weight(
            name="kernel",
            shape=(dim, self.num_classes),
            initializer=self.kernel_initializer,
        )
        if self.age_prior is None:
            bias_init = self.bias_initializer
        else:
            log_prior = np.log(np.maximum(np.asarray(self.age_prior), 1e-12))
            bias_init = keras.initializers.Constant((log_prior - log_prior.mean()).tolist())
        self.bias = self.add_weight(name="bias", shape=(self.num_classes,), initializer=bias_init)

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
                "age_prior": self.age_prior,
            }
        )
        return config
