"""Pre-activation bottleneck residual unit (He et al., 2016), the trunk unit
of the Residual Attention Network and of GRA_Net."""

import keras
from keras import ops

BN_MOMENTUM = 0.9
"""BatchNorm momentum of every GRA_Net unit and mask (PyTorch's 0.1, as `ConvBNReLU`):
Keras' default 0.99 leaves the moving statistics far behind on short runs."""
BN_EPSILON = 1e-5
"""BatchNorm epsilon of every GRA_Net unit and mask (PyTorch's default, as `ConvBNReLU`)."""


def batch_norm(dtype, name):
    """The BatchNormalization of GRA_Net's units and masks (`BN_MOMENTUM`, `BN_EPSILON`)."""
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=dtype, name=name)


def _check_image_rank(layer, input_shape):
    if len(input_shape) != 4:
        raise ValueError(
            f"{type(layer).__name__} expects feature maps of shape (batch, height, width, "
            f"channels); got an input of shape {tuple(input_shape)}."
        )


@keras.saving.register_keras_serializable(package="agekeras")
class PreActResidualUnit(keras.layers.Layer):
    """Full pre-activation bottleneck residual unit.

    The unit of "Identity Mappings in Deep Residual Networks" (He et al.,
    2016, Fig. 4e), used for the trunk and the soft mask branch of the
    Residual Attention Network (Wang et al., 2017, Sec. 3.3) and therefore of
    GRA_Net (Garain et al., 2021):

        h = BN-ReLU(x)
        F(x) = Conv1x1(C) . BN-ReLU . Conv3x3(c, stride) . BN-ReLU . Conv1x1(c) (h)
        y = F(x) + shortcut(x)

    with c = `bottleneck_filters` (default C / 4, the usual 4x bottleneck).
    The shortcut is the identity when the unit keeps the shape, else a 1x1
    convolution with the unit's stride applied to the *pre-activated* input
    `h` (as in He et al.'s code and `keras.applications.ResNet50V2`).

    Readings of ambiguous points:
        - The stride sits on the 3x3 convolution (fb.resnet.torch, RAN's
          Caffe model), not on the first 1x1 convolution.
        - Convolutions carry no bias: each is followed by a BatchNorm (or,
          for the last one, by the next unit's BatchNorm).
        - The last convolution starts at `residual_scale` (0.3) times its
          initializer's weights, so each unit starts close to the identity.
          With full-size residual branches the un-normalised pre-activation
          stream doubles its variance at every unit: at initialisation, in
          inference mode (BatchNorm moving statistics still 0 and 1),
          Attention-56's features reach a standard deviation of ~700 and
          99 % of its soft-mask values are saturated at 0 or 1. With 0.3
          they stay of order 1 (tested in the GRA_Net tests).
        - BatchNorm momentum 0.9 and epsilon 1e-5 (PyTorch's defaults, the
          project's short-run choice, as `ConvBNReLU`).

    Reference: Identity Mappings in Deep Residual Networks (He et al., ECCV
    2016, https://arxiv.org/abs/1603.05027).

    Args:
        filters: int, output channels C.
        strides: int, stride of the 3x3 convolution and the shortcut.
        bottleneck_filters: int, width c of the bottleneck; default
            `max(1, filters // 4)`.
        residual_scale: float, factor on the initial weights of the last
            convolution of F (1 = plain initializer).
        kernel_initializer: initializer of every convolution kernel.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: `(batch, H, W, C_in)`.
        training: BatchNorm mode.

    Returns:
        `(batch, ceil(H / strides), ceil(W / strides), filters)`.

    Example:

    >>> unit = PreActResidualUnit(64, strides=2)
    >>> tuple(unit(np.zeros((2, 9, 9, 32), "float32")).shape)
    (2, 5, 5, 64)
    """

    def __init__(self, filters, strides=1, bottleneck_filters=None, kernel_initializer="he_normal",
                 residual_scale=0.3, **kwargs):
        super().__init__(**kwargs)
        if int(filters) < 1 or int(strides) < 1:
            raise ValueError(f"filters and strides must be positive; got {filters}, {strides}.")
        self.filters = int(filters)
        self.strides = int(strides)
        self.bottleneck_filters = None if bottleneck_filters is None else int(bottleneck_filters)
        self.residual_scale = float(residual_scale)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        width = self.bottleneck_filters or max(1, self.filters // 4)
        bn = self._bn
        self.bn1, self.conv1 = bn("bn1"), self._conv(width, 1, name="conv1")
        self.bn2, self.conv2 = bn("bn2"), self._conv(width, 3, self.strides, name="conv2")
        self.bn3, self.conv3 = bn("bn3"), self._conv(self.filters, 1, name="conv3")
        self.shortcut_conv = None  # created in build() once C_in is known

    def _conv(self, n, k, s=1, name=None):
        return keras.layers.Conv2D(
            n, k, strides=s, padding="same", use_bias=False,
            kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy, name=name,
        )

    def _bn(self, name):
        return batch_norm(self.dtype_policy, name)

    def build(self, input_shape):
        _check_image_rank(self, input_shape)
        shape = tuple(input_shape)
        if shape[-1] != self.filters or self.strides != 1:
            self.shortcut_conv = self._conv(self.filters, 1, self.strides, name="shortcut")
            self.shortcut_conv.build(shape)
        for layer in (self.bn1, self.conv1, self.bn2, self.conv2, self.bn3, self.conv3):
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        if self.residual_scale != 1.0:
            self.conv3.kernel.assign(self.conv3.kernel * self.residual_scale)

    def call(self, inputs, training=None):
        h = ops.relu(self.bn1(inputs, training=training))
        shortcut = inputs if self.shortcut_conv is None else self.shortcut_conv(h)
        x = self.conv1(h)
        x = self.conv2(ops.relu(self.bn2(x, training=training)))
        x = self.conv3(ops.relu(self.bn3(x, training=training)))
        return x + shortcut

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        return (b, _ceil_div(h, self.strides), _ceil_div(w, self.strides), self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "strides": self.strides,
                "bottleneck_filters": self.bottleneck_filters,
                "residual_scale": self.residual_scale,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config


def _ceil_div(n, s):
    return None if n is None else -(-int(n) // int(s))
