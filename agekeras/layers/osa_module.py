"""One-shot aggregation (OSA) module of VoVNet, the unit of VoVNetv4's regions."""

import keras
from keras import ops

from agekeras.layers.conv_bn_relu import ConvBNReLU, _check_image_shape


@keras.saving.register_keras_serializable(package="agekeras")
class OSAModule(keras.layers.Layer):
    """One-shot aggregation module (VoVNet; Sec. "OSA module" of the VoVNetv4 paper).

    `num_convs` ConvBlocks (3x3 conv, BN, ReLU, stride 1, all `filters`
    wide) run in sequence, each on the previous one's output only. The
    module input and all `num_convs` outputs are concatenated **once**, at
    the end, and a 1x1 ConvBlock maps the concatenation to `output_filters`:

        F_0 = x,   F_i = ConvBlock_i(F_{i-1})   (i = 1..n),
        y = ConvBlock_1x1([F_0, F_1, ..., F_n]),

    so the aggregation's input has `C_in + n * filters` channels. This is
    what distinguishes OSA from a DenseNet block, which concatenates before
    every convolution.

    Readings:
    - The input is part of the concatenation, as in the VoVNet reference
      code and our reading of the paper ("the input and all n outputs").
    - No identity shortcut (VoVNet-V1 / "vovnet39a/57a"); the paper does not
      mention VoVNetV2's residual connection or eSE attention.

    Args:
        filters: int, width of every ConvBlock (the "stage width",
            e.g. 128, 160, 192, 224).
        output_filters: int, width of the 1x1 aggregation (e.g. 256 ... 1024).
        num_convs: int, number of ConvBlocks (5 in VoVNet and VoVNetv4).
        kernel_initializer: initializer of every convolution.
        bn_momentum, bn_epsilon: batch normalisation settings.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: `(batch, height, width, channels)`.
        training: bool, for batch normalisation.

    Returns:
        `(batch, height, width, output_filters)` (same spatial size).

    Example:

    >>> osa = OSAModule(filters=8, output_filters=16)
    >>> tuple(osa(np.zeros((2, 8, 8, 4), "float32")).shape)
    (2, 8, 8, 16)
    >>> tuple(osa.aggregate.conv.kernel.shape)  # 4 input + 5 x 8 ConvBlock channels
    (1, 1, 44, 16)

    Reference: Research on Phased Single Aggregation Age Estimation Algorithm Based on
    VoVNetv4 (Zhang et al., 2023; no arXiv or DOI version known); An Energy and
    GPU-Computation Efficient Backbone Network for Real-Time Object Detection
    (VoVNet, https://arxiv.org/abs/1904.09730).
    """

    def __init__(
        self,
        filters,
        output_filters,
        num_convs=5,
        kernel_initializer="he_normal",
        bn_momentum=0.9,
        bn_epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(num_convs) < 1:
            raise ValueError(f"`num_convs` must be >= 1, got {num_convs}.")
        self.filters = int(filters)
        self.output_filters = int(output_filters)
        self.num_convs = int(num_convs)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bn_momentum = float(bn_momentum)
        self.bn_epsilon = float(bn_epsilon)
        common = dict(
            kernel_initializer=self.kernel_initializer,
            bn_momentum=self.bn_momentum,
            bn_epsilon=self.bn_epsilon,
            dtype=self.dtype_policy,
        )
        self.convs = [ConvBNReLU(self.filters, 3, name=f"conv_{i + 1}", **common) for i in range(self.num_convs)]
        self.aggregate = ConvBNReLU(self.output_filters, 1, name="aggregate", **common)

    def build(self, input_shape):
        _check_image_shape(input_shape, type(self).__name__)
        shape = tuple(input_shape)
        for conv in self.convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        self.aggregate.build(shape[:-1] + (self.aggregated_channels(input_shape[-1]),))

    def aggregated_channels(self, input_channels):
        """Channels entering the 1x1 aggregation: `C_in + num_convs * filters`."""
        return int(input_channels) + self.num_convs * self.filters

    def features(self, inputs, training=None):
        """The list `[x, F_1, ..., F_n]` that the module concatenates once."""
        feats = [inputs]
        for conv in self.convs:
            feats.append(conv(feats[-1], training=training))
        return feats

    def call(self, inputs, training=None):
        feats = self.features(inputs, training=training)
        return self.aggregate(ops.concatenate(feats, axis=-1), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_filters,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "output_filters": self.output_filters,
                "num_convs": self.num_convs,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bn_momentum": self.bn_momentum,
                "bn_epsilon": self.bn_epsilon,
            }
        )
        return config
