"""PreActBasicBlock: the pre-activation ResNet basic block, with optional stochastic depth."""

import keras


@keras.saving.register_keras_serializable(package="agekeras")
class PreActBasicBlock(keras.layers.Layer):
    """Pre-activation basic residual block (He et al., "Identity Mappings in
    Deep Residual Networks", 2016), the unit of the RoR backbones of the
    AL-RoR paper (Eq. 1 there: x_{l+1} = x_l + F(x_l), the "final-level"
    shortcut of RoR):

        F(x) = conv3x3(ReLU(BN(conv3x3_s(ReLU(BN(x))))))
        y = shortcut(x) + F(x)

    The shortcut is the identity when the shape is kept, else a 1x1 conv of
    stride `s` applied to the pre-activated input ReLU(BN(x)) (the
    pre-activation ResNet's projection: the BN-ReLU is shared with the
    residual branch).

    Stochastic depth (Huang et al., 2016; "optional" in the AL paper): with
    `drop_rate` p the residual branch of a whole sample is dropped with
    probability p during training, and the kept branches are scaled by
    1/(1-p) (the "inverted" form, so inference uses the branch unchanged);
    `keras.layers.Dropout` with `noise_shape=(batch, 1, 1, 1)` does exactly
    that.

    Args:
        filters: output channels.
        stride: stride of the first 3x3 convolution (1 or 2).
        drop_rate: stochastic-depth drop probability of the residual branch.
        kernel_initializer: of the convolutions ("he_normal").
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: `(batch, H, W, C_in)`.
        training: BatchNorm and stochastic-depth mode.

    Returns:
        `(batch, ceil(H / stride), ceil(W / stride), filters)`.

    Example:

    >>> block = PreActBasicBlock(128, stride=2)
    >>> tuple(block(np.zeros((2, 8, 8, 64), "float32")).shape)
    (2, 4, 4, 128)
    """

    def __init__(self, filters, stride=1, drop_rate=0.0, kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        if int(filters) < 1 or int(stride) not in (1, 2):
            raise ValueError(f"need filters >= 1 and stride 1 or 2, got filters={filters}, stride={stride}.")
        if not 0.0 <= float(drop_rate) < 1.0:
            raise ValueError(f"`drop_rate` must be in [0, 1), got {drop_rate}.")
        self.filters, self.stride, self.drop_rate = int(filters), int(stride), float(drop_rate)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        conv = dict(padding="same", use_bias=False, kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy)
        self.bn1 = keras.layers.BatchNormalization(epsilon=1e-5, dtype=self.dtype_policy, name="bn1")
        self.conv1 = keras.layers.Conv2D(self.filters, 3, strides=self.stride, name="conv1", **conv)
        self.bn2 = keras.layers.BatchNormalization(epsilon=1e-5, dtype=self.dtype_policy, name="bn2")
        self.conv2 = keras.layers.Conv2D(self.filters, 3, name="conv2", **conv)
        self.projection = None
        self.drop = None
        if self.drop_rate > 0:
            self.drop = keras.layers.Dropout(self.drop_rate, noise_shape=(None, 1, 1, 1), name="stochastic_depth")
        self._conv_kwargs = conv

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(f"PreActBasicBlock expects (batch, H, W, C), got {tuple(input_shape)}.")
        channels = input_shape[-1]
        self.bn1.build(input_shape)
        self.conv1.build(input_shape)
        mid = self.conv1.compute_output_shape(input_shape)
        self.bn2.build(mid)
        self.conv2.build(mid)
        if self.stride != 1 or channels != self.filters:
            self.projection = keras.layers.Conv2D(
                self.filters, 1, strides=self.stride, name="projection", **self._conv_kwargs
            )
            self.projection.build(input_shape)
        if not self.trainable:
            # A layer revived frozen (trainable=False in its config) must
            # freeze its sublayers itself: Keras 3.15's `trainable` setter
            # does not reach them when the layer was constructed frozen.
            for sub in [self.bn1, self.conv1, self.bn2, self.conv2, self.projection]:
                if sub is not None:
                    sub.trainable = False

    def call(self, inputs, training=None):
        pre = keras.ops.relu(self.bn1(inputs, training=training))
        shortcut = inputs if self.projection is None else self.projection(pre)
        x = self.conv1(pre)
        x = self.conv2(keras.ops.relu(self.bn2(x, training=training)))
        if self.drop is not None:
            x = self.drop(x, training=training)
        return shortcut + x

    def compute_output_shape(self, input_shape):
        return self.conv1.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "stride": self.stride,
                "drop_rate": self.drop_rate,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
