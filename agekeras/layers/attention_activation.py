"""The three attention activations of the Residual Attention Network
(mixed, channel, spatial), Eqs. 4-6 of GRA_Net."""

import keras
from keras import ops

MODES = ("mixed", "channel", "spatial")


@keras.saving.register_keras_serializable(package="agekeras")
class AttentionActivation(keras.layers.Layer):
    """Turns the soft mask branch's last feature map into an attention mask.

    Eqs. 4-6 of GRA_Net (Garain et al., 2021), taken from Eqs. 3-5 of the
    Residual Attention Network (Wang et al., 2017). With x_{i,c} the value at
    spatial position i and channel c:

        mixed   (Eq. 4): f1(x_{i,c}) = sigmoid(x_{i,c})
        channel (Eq. 5): f2(x_{i,c}) = x_{i,c} / ||x_i||_2
                         (L2 norm over the channels at position i)
        spatial (Eq. 6): f3(x_{i,c}) = sigmoid((x_{i,c} - mean_c) / std_c)
                         (mean and std of channel c over all positions,
                         per image)

    Readings of ambiguous points:
        - std_c is the population standard deviation (1/N) over the H x W
          positions of one image, stabilised as sqrt(var + epsilon) so a
          constant map (or a 1x1 map) gives 0.5 instead of NaN.
        - channel mode divides by max(||x_i||, epsilon) (`keras.ops.normalize`);
          its values lie in [-1, 1] (it is not a [0, 1] mask, as in the
          original paper), so in the gate the mask can also flip a feature's
          sign.

    Args:
        mode: "mixed", "channel" or "spatial".
        epsilon: small constant of the normalisations.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: `(batch, H, W, C)`.

    Returns:
        The mask, same shape as `inputs`.

    Example:

    >>> act = AttentionActivation("spatial")
    >>> tuple(act(np.random.randn(2, 7, 7, 16).astype("float32")).shape)
    (2, 7, 7, 16)

    Reference: GRA_Net: A Deep Learning Model for Classification of Age and
    Gender From Facial Images (Garain et al., IEEE Access 2021,
    https://ieeexplore.ieee.org/document/9446083), Eqs. 4-6.
    """

    def __init__(self, mode="mixed", epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")
        self.mode = mode
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"AttentionActivation expects (batch, height, width, channels); got {tuple(input_shape)}."
            )

    def call(self, inputs):
        if self.mode == "mixed":
            return ops.sigmoid(inputs)
        if self.mode == "channel":
            return ops.normalize(inputs, axis=-1, order=2, epsilon=self.epsilon)
        # Two-pass variance: `ops.moments` computes E[x^2] - E[x]^2, which
        # cancels catastrophically (and can go negative -> NaN) for maps with a
        # large mean, e.g. at inference before BatchNorm statistics settle.
        mean = ops.mean(inputs, axis=(1, 2), keepdims=True)
        var = ops.mean(ops.square(inputs - mean), axis=(1, 2), keepdims=True)
        return ops.sigmoid((inputs - mean) / ops.sqrt(var + self.epsilon))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode, "epsilon": self.epsilon})
        return config
