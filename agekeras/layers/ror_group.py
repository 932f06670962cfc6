"""RoRGroup: a group of residual blocks with RoR's middle-level shortcut."""

import keras

from agekeras.layers.pre_act_basic_block import PreActBasicBlock


@keras.saving.register_keras_serializable(package="agekeras")
class RoRGroup(keras.layers.Layer):
    """One block group of a Residual Network of Residual Networks (RoR).

    RoR (Zhang et al., "Residual Networks of Residual Networks: Multilevel
    Residual Networks", 2017; Eq. 2 of the AL-ResNets / AL-RoR paper) adds
    shortcuts above the blocks' own ("final-level") ones: one
    "middle-level" shortcut around each group of blocks, and one
    "root-level" shortcut around all groups (that one lives in the model,
    see `agekeras.models.al_resnet.ror_backbone`). For a group of n
    pre-activation basic blocks B_1..B_n with input x:

        y = B_n(... B_1(x)) + M(x)

    M is the identity when the group keeps the shape, else a 1x1
    convolution of stride `stride` followed by BatchNorm (RoR's "1x1 conv +
    BN" projection for shortcuts that change the shape).

    Readings of ambiguous points:

    - The blocks keep their own shortcuts, including the last block's (the
      issue text: "besides the blocks' own (final-level) shortcuts").
    - The middle-level projection takes the group's raw input x (the
      pre-activation sum), not a BN-ReLU of it, so the identity and the
      projection shortcuts see the same signal.
    - Stochastic depth, when used, drops the residual branches of the blocks
      (`drop_rates`, one per block, e.g. linearly increasing with depth as in
      RoR), never the middle-level shortcut.

    Args:
        filters: channels of every block of the group.
        blocks: number of basic blocks (3, 4, 6, 3 in RoR-34).
        stride: stride of the group's first block (1 or 2).
        middle_shortcut: add the middle-level shortcut (False gives a plain
            pre-activation ResNet group, for ablations).
        drop_rates: None, a float for every block, or one float per block.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: `(batch, H, W, C_in)`.
        training: BatchNorm and stochastic-depth mode.

    Returns:
        `(batch, ceil(H / stride), ceil(W / stride), filters)`.

    Example:

    >>> group = RoRGroup(128, blocks=4, stride=2)
    >>> tuple(group(np.zeros((2, 16, 16, 64), "float32")).shape)
    (2, 8, 8, 128)
    """

    def __init__(self, filters, blocks, stride=1, middle_shortcut=True, drop_rates=None, **kwargs):
        super().__init__(**kwargs)
        if int(blocks) < 1:
            raise ValueError(f"`blocks` must be >= 1, got {blocks}.")
        self.filters, self.blocks, self.stride = int(filters), int(blocks), int(stride)
        self.middle_shortcut = bool(middle_shortcut)
        if drop_rates is None:
            rates = [0.0] * self.blocks
        elif isinstance(drop_rates, (int, float)):
            rates = [float(drop_rates)] * self.blocks
        else:
            rates = [float(r) for r in drop_rates]
        if len(rates) != self.blocks:
            raise ValueError(f"got {len(rates)} drop_rates for {self.blocks} blocks.")
        self.drop_rates = rates
        self.units = [
            PreActBasicBlock(
                self.filters,
                stride=self.stride if i == 0 else 1,
                drop_rate=rate,
                dtype=self.dtype_policy,
                name=f"block{i + 1}",
            )
            for i, rate in enumerate(rates)
        ]
        self.shortcut_conv = None
        self.shortcut_bn = None

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(f"RoRGroup expects (batch, H, W, C), got {tuple(input_shape)}.")
        shape = tuple(input_shape)
        for unit in self.units:
            unit.build(shape)
            shape = unit.compute_output_shape(shape)
        if self.middle_shortcut and (self.stride != 1 or input_shape[-1] != self.filters):
            self.shortcut_conv = keras.layers.Conv2D(
                self.filters, 1, strides=self.stride, use_bias=False, kernel_initializer="he_normal",
                dtype=self.dtype_policy, name="middle_conv",
            )
            self.shortcut_conv.build(input_shape)
            self.shortcut_bn = keras.layers.BatchNormalization(epsilon=1e-5, dtype=self.dtype_policy, name="middle_bn")
            self.shortcut_bn.build(self.shortcut_conv.compute_output_shape(input_shape))
        if not self.trainable:
            # A layer revived frozen (trainable=False in its config) must
            # freeze its sublayers itself: Keras 3.15's `trainable` setter
            # does not reach them when the layer was constructed frozen.
            for sub in [*self.units, self.shortcut_conv, self.shortcut_bn]:
                if sub is not None:
                    sub.trainable = False

    def call(self, inputs, training=None):
        x = inputs
        for unit in self.units:
            x = unit(x, training=training)
        if not self.middle_shortcut:
            return x
        if self.shortcut_conv is None:
            return x + inputs
        return x + self.shortcut_bn(self.shortcut_conv(inputs), training=training)

    def compute_output_shape(self, input_shape):
        return self.units[0].compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "blocks": self.blocks,
                "stride": self.stride,
                "middle_shortcut": self.middle_shortcut,
                "drop_rates": list(self.drop_rates),
            }
        )
        return config
