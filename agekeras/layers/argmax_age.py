"""`ArgmaxAge`: the age of the most probable class of a softmax head."""

import keras


@keras.saving.register_keras_serializable(package="agekeras")
class ArgmaxAge(keras.layers.Layer):
    """Age of the most probable class: `age_min + argmax_k p_k` (float).

    The decode of a plain softmax classifier over ages (the "classification"
    head of the baselines, VoVNetv4's Table I cross-entropy row), beside the
    DEX expectation of `DEXHead`.

    Args:
        age_min: the age of class 0.

    Call arguments:
        probs: `(B, K)` class probabilities (or logits: the arg-max is the same).

    Returns:
        `(B,)` ages in years, in the layer's compute dtype.

    Example:
    >>> import numpy as np
    >>> layer = ArgmaxAge(age_min=16)
    >>> keras.ops.convert_to_numpy(layer(np.array([[0.1, 0.7, 0.2]], "float32"))).tolist()
    [17.0]

    Reference: DEX: Deep EXpectation of apparent age from a single image (Rothe,
    Timofte, Van Gool, ICCV Workshops 2015), https://doi.org/10.1109/ICCVW.2015.41.
    """

    def __init__(self, age_min=0, **kwargs):
        super().__init__(**kwargs)
        self.age_min = age_min

    def call(self, probs):
        idx = keras.ops.argmax(probs, axis=-1)
        return keras.ops.cast(idx, self.compute_dtype) + keras.ops.cast(self.age_min, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])

    def get_config(self):
        return {**super().get_config(), "age_min": self.age_min}
