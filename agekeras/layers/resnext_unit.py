"""ResNeXt bottleneck unit (Xie et al., 2017), the alternative trunk unit of
the Residual Attention Network ("AttentionNeXt") and of GRA_Net."""

import keras
from keras import ops

from agekeras.layers.pre_act_residual_unit import _ceil_div, _check_image_rank, batch_norm


@keras.saving.register_keras_serializable(package="agekeras")
class ResNeXtUnit(keras.layers.Layer):
    """ResNeXt bottleneck unit with grouped 3x3 convolution.

    Fig. 3(c) of "Aggregated Residual Transformations for Deep Neural
    Networks" (Xie et al., 2017), the form the Residual Attention Network
    paper (Wang et al., 2017, Sec. 4.2, "AttentionNeXt-56") plugs into its
    trunk:

        F(x) = BN . Conv1x1(C) . ReLU-BN . GroupConv3x3(d, G groups, stride)
               . ReLU-BN . Conv1x1(d) (x)
        y = ReLU(F(x) + shortcut(x))

    d = `bottleneck_width` (default C / 2: ResNeXt-50 32x4d has d = 128 for
    C = 256), G = `cardinality` (default 32). The shortcut is the identity
    when the shape is kept, else Conv1x1(stride) + BN (ResNeXt's projection).
    The grouped convolution is `keras.layers.Conv2D(groups=G)`.

    Readings of ambiguous points:
        - ResNeXt units are *post*-activation (as in Xie et al.), unlike the
          pre-activation units of the Residual Attention Network; we keep
          ResNeXt's own ordering rather than invent a pre-activation ResNeXt.
        - The stride sits on the grouped 3x3 convolution (as in ResNeXt).

    Args:
        filters: int, output channels C.
        strides: int, stride of the 3x3 convolution and the shortcut.
        cardinality: int, number of groups G; must divide the width.
        bottleneck_width: int d; default `max(cardinality, filters // 2)`.
        kernel_initializer: initializer of every convolution kernel.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: `(batch, H, W, C_in)`.
        training: BatchNorm mode.

    Returns:
        `(batch, ceil(H / strides), ceil(W / strides), filters)`.

    Example:

    >>> unit = ResNeXtUnit(256, cardinality=32)
    >>> tuple(unit(np.zeros((2, 8, 8, 256), "float32")).shape)
    (2, 8, 8, 256)

    Reference: GRA_Net: A Deep Learning Model for Classification of Age and Gender
    from Facial Images (Garain et al., IEEE Access 2021),
    https://ieeexplore.ieee.org/document/9446083; Aggregated Residual
    Transformations for Deep Neural Networks (https://arxiv.org/abs/1611.05431).
    """

    def __init__(
        self, filters, strides=1, cardinality=32, bottleneck_width=None, kernel_initializer="he_normal", **kwargs
    ):
        super().__init__(**kwargs)
        if int(filters) < 1 or int(strides) < 1 or int(cardinality) < 1:
            raise ValueError(
                f"filters, strides and cardinality must be positive; got {filters}, {strides}, {cardinality}."
            )
        self.filters = int(filters)
        self.strides = int(strides)
        self.cardinality = int(cardinality)
        self.bottleneck_width = None if bottleneck_width is None else int(bottleneck_width)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        width = self.bottleneck_width or max(self.cardinality, self.filters // 2)
        if width % self.cardinality:
            raise ValueError(
                f"bottleneck width {width} is not divisible by cardinality {self.cardinality}; "
                "pass a bottleneck_width that is a multiple of the cardinality."
            )
        self.conv1, self.bn1 = self._conv(width, 1, name="conv1"), self._bn("bn1")
        self.conv2 = self._conv(width, 3, self.strides, groups=self.cardinality, name="conv2")
        self.bn2 = self._bn("bn2")
        self.conv3, self.bn3 = self._conv(self.filters, 1, name="conv3"), self._bn("bn3")
        self.shortcut_conv = self.shortcut_bn = None  # created in build() once C_in is known

    def _conv(self, n, k, s=1, groups=1, name=None):
        return keras.layers.Conv2D(
            n, k, strides=s, padding="same", groups=groups, use_bias=False,
            kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy, name=name,
        )

    def _bn(self, name):
        return batch_norm(self.dtype_policy, name)  # momentum 0.9, epsilon 1e-5

    def build(self, input_shape):
        _check_image_rank(self, input_shape)
        shape = tuple(input_shape)
        if shape[-1] != self.filters or self.strides != 1:
            self.shortcut_conv = self._conv(self.filters, 1, self.strides, name="shortcut")
            self.shortcut_conv.build(shape)
            self.shortcut_bn = self._bn("shortcut_bn")
            self.shortcut_bn.build(self.shortcut_conv.compute_output_shape(shape))
        for layer in (self.conv1, self.bn1, self.conv2, self.bn2, self.conv3, self.bn3):
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, inputs, training=None):
        shortcut = inputs
        if self.shortcut_conv is not None:
            shortcut = self.shortcut_bn(self.shortcut_conv(inputs), training=training)
        x = ops.relu(self.bn1(self.conv1(inputs), training=training))
        x = ops.relu(self.bn2(self.conv2(x), training=training))
        x = self.bn3(self.conv3(x), training=training)
        return ops.relu(x + shortcut)

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        return (b, _ceil_div(h, self.strides), _ceil_div(w, self.strides), self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "strides": self.strides,
                "cardinality": self.cardinality,
                "bottleneck_width": self.bottleneck_width,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
