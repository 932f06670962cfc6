"""ConvBlock of VoVNet / VoVNetv4: convolution, batch normalisation, ReLU."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="agekeras")
class ConvBNReLU(keras.layers.Layer):
    """The ConvBlock of VoVNet and VoVNetv4: `ReLU(BN(Conv(x)))`.

    The building block every other VoVNetv4 layer is made of: the 3x3
    ConvBlocks of an OSA module, its 1x1 aggregation, the 1x1 convolutions
    between ROSA regions, the stem and (with a derived kernel and stride) the
    Adaptive Stage. The convolution has no bias, since the batch
    normalisation that follows has its own shift (as in the reference VoVNet).

    Reading: batch normalisation uses PyTorch's defaults (momentum 0.1, i.e.
    Keras `momentum=0.9`, epsilon 1e-5), those of the VoVNet reference code
    the paper builds on; Keras' own defaults (0.99, 1e-3) would make the
    moving statistics lag far behind on short runs.

    Args:
        filters: int, output channels.
        kernel_size: int or (int, int).
        strides: int or (int, int).
        padding: "same" or "valid".
        kernel_initializer: initializer of the convolution kernel.
        bn_momentum, bn_epsilon: batch normalisation settings.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: `(batch, height, width, channels)`.
        training: bool, batch statistics (True) or moving statistics.

    Returns:
        `(batch, height', width', filters)`, non-negative.

    Example:

    >>> block = ConvBNReLU(16, 3, strides=2)
    >>> tuple(block(np.zeros((2, 32, 32, 3), "float32")).shape)
    (2, 16, 16, 16)

    Reference: Research on Phased Single Aggregation Age Estimation Algorithm Based on
    VoVNetv4 (Zhang et al., 2023; no arXiv or DOI version known); An Energy and
    GPU-Computation Efficient Backbone Network for Real-Time Object Detection
    (VoVNet, https://arxiv.org/abs/1904.09730).
    """

    def __init__(
        self,
        filters,
        kernel_size=3,
        strides=1,
        padding="same",
        kernel_initializer="he_normal",
        bn_momentum=0.9,
        bn_epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(filters) < 1:
            raise ValueError(f"`filters` must be a positive int, got {filters}.")
        if padding not in ("same", "valid"):
            raise ValueError(f"`padding` must be 'same' or 'valid', got {padding!r}.")
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = padding
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bn_momentum = float(bn_momentum)
        self.bn_epsilon = float(bn_epsilon)
        self.conv = keras.layers.Conv2D(
            self.filters,
            self.kernel_size,
            strides=self.strides,
            padding=padding,
            use_bias=False,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="conv",
        )
        self.bn = keras.layers.BatchNormalization(
            momentum=self.bn_momentum, epsilon=self.bn_epsilon, dtype=self.dtype_policy, name="bn"
        )

    def build(self, input_shape):
        _check_image_shape(input_shape, type(self).__name__)
        self.conv.build(input_shape)
        self.bn.build(self.conv.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        return ops.relu(self.bn(self.conv(inputs), training=training))

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bn_momentum": self.bn_momentum,
                "bn_epsilon": self.bn_epsilon,
            }
        )
        return config


def _pair(value, name):
    if isinstance(value, int):
        value = (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 1:
        raise ValueError(f"`{name}` must be a positive int or a pair of them, got {value}.")
    return value


def _check_image_shape(input_shape, who):
    if len(input_shape) != 4:
        raise ValueError(
            f"{who} expects inputs of shape (batch, height, width, channels); got shape {tuple(input_shape)}."
        )
    if input_shape[-1] is None:
        raise ValueError(f"{who} needs a known number of channels; got shape {tuple(input_shape)}.")
