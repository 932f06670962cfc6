"""The soft mask branch of a residual attention module: an hourglass
(bottom-up max-pooling, top-down bilinear upsampling with skip connections)
ending in two 1x1 convolutions and an attention activation."""

import keras
from keras import ops

from agekeras.layers.attention_activation import AttentionActivation
from agekeras.layers.pre_act_residual_unit import PreActResidualUnit, _ceil_div, batch_norm
from agekeras.layers.resnext_unit import ResNeXtUnit

UNITS = ("preact", "resnext")


def residual_unit(unit, filters, strides=1, cardinality=32, kernel_initializer="he_normal", name=None):
    """A `PreActResidualUnit` (unit="preact") or a `ResNeXtUnit` (unit="resnext")."""
    if unit == "preact":
        return PreActResidualUnit(filters, strides=strides, kernel_initializer=kernel_initializer, name=name)
    if unit == "resnext":
        return ResNeXtUnit(
            filters, strides=strides, cardinality=cardinality, kernel_initializer=kernel_initializer, name=name
        )
    raise ValueError(f"unit must be one of {UNITS}; got {unit!r}.")


@keras.saving.register_keras_serializable(package="agekeras")
class SoftMaskBranch(keras.layers.Layer):
    """Soft mask branch K(X) of a (gated) residual attention module.

    Sec. 3.3 and Fig. 2 of the Residual Attention Network (Wang et al.,
    2017), reused unchanged by GRA_Net (Garain et al., 2021, Fig. 2). With
    `depth` = D pooling levels and r = `num_units`:

        bottom-up:  d_0 = X;  d_l = r units(MaxPool(d_{l-1})),  l = 1..D
                    s_l = unit(d_l) for l = 1..D-1 (skip connections)
        bottom:     u_D = r more units(d_D)      (2r units at the lowest level)
        top-down:   u_l = r units(Up(u_{l+1}) + d_l + s_l),  l = D-1..1
                    u_0 = Up(u_1) + X
        output:     K(X) = f(Conv1x1 . BN-ReLU . Conv1x1 . BN-ReLU (u_0))

    "Up" is bilinear resizing to the exact size of the level above, so the
    mask has the shape of the trunk's output for odd sizes too (7 -> 4 -> 7),
    and f is an `AttentionActivation` (mixed, channel or spatial). In
    Attention-56 the branch has D = 3, 2, 1 at the 56, 28, 14 px stages.

    Readings of ambiguous points (each follows the authors' Caffe model of
    Attention-56 unless stated otherwise):
        - Max pooling is 3x3 with stride 2 and "same" padding.
        - Each top-down merge adds the upsampled map, the bottom-up map of
          that level and the skip unit's output.
        - The last merge adds the branch input X. The Caffe model adds the
          *trunk's* output there; we use X so that K depends on X only, as
          in K(X) of Eq. 3, and so the branch can be used on its own.
        - Upsampling uses Keras' bilinear resize (half-pixel centres);
          Caffe's Interp layer aligns corners. Both are "linear
          interpolation" as the paper says.
        - The two 1x1 convolutions keep the channel count; the last one has
          a bias (it feeds the activation, not a BatchNorm).
        - The last 1x1 convolution starts at `logit_scale` (0.01) times its
          initializer's weights: the hourglass sums three maps per level,
          so with a plain He start the mask logits have a standard
          deviation of ~7 and most sigmoid values sit at 0 or 1 (no
          gradient, features fully gated), in inference mode at
          initialisation up to 99 %; at 0.01 the masks start near 0.5 for
          any seed (at 0.1, 8-56 % of the first module's values were still
          saturated, depending on the seed). Adam-type optimizers (the
          report's Nadam) step by the gradient's sign and scale, so the
          smaller gradient reaching the branch's units early on does not
          slow them.
        - BatchNorm momentum 0.9, epsilon 1e-5 (as the units).

    Args:
        depth: int >= 1, number of max-pooling levels D.
        num_units: int >= 1, residual units r per step.
        unit: "preact" (`PreActResidualUnit`) or "resnext" (`ResNeXtUnit`).
        cardinality: groups of the ResNeXt units.
        attention: "mixed", "channel" or "spatial" (`AttentionActivation`).
        pool_size: max-pooling window.
        kernel_initializer: initializer of every convolution kernel.
        logit_scale: factor on the initial weights of the last 1x1
            convolution (1 = plain initializer).
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: `(batch, H, W, C)` with static H and W.
        training: BatchNorm mode.

    Returns:
        The mask `(batch, H, W, C)`: in (0, 1) for mixed and spatial, in
        [-1, 1] for channel attention.

    Example:

    >>> branch = SoftMaskBranch(depth=2)
    >>> tuple(branch(np.zeros((2, 7, 7, 32), "float32")).shape)
    (2, 7, 7, 32)

    Reference: GRA_Net: A Deep Learning Model for Classification of Age and
    Gender From Facial Images (Garain et al., IEEE Access 2021,
    https://ieeexplore.ieee.org/document/9446083); Residual Attention Network
    for Image Classification (Wang et al., CVPR 2017,
    https://arxiv.org/abs/1704.06904).
    """

    def __init__(
        self,
        depth=1,
        num_units=1,
        unit="preact",
        cardinality=32,
        attention="mixed",
        pool_size=3,
        kernel_initializer="he_normal",
        logit_scale=0.01,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(depth) < 1 or int(num_units) < 1:
            raise ValueError(f"depth and num_units must be >= 1; got {depth}, {num_units}.")
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}; got {unit!r}.")
        self.depth = int(depth)
        self.num_units = int(num_units)
        self.unit = unit
        self.cardinality = int(cardinality)
        self.attention = attention
        self.pool_size = int(pool_size)
        self.logit_scale = float(logit_scale)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.pools = [
            keras.layers.MaxPooling2D(self.pool_size, strides=2, padding="same", name=f"pool{l + 1}")
            for l in range(self.depth)
        ]
        self.activation = AttentionActivation(attention, dtype=self.dtype_policy, name="activation")
        self.bn1 = batch_norm(self.dtype_policy, "out_bn1")
        self.bn2 = batch_norm(self.dtype_policy, "out_bn2")
        self.down_units = self.skip_units = self.bottom_units = self.up_units = None
        self.conv1 = self.conv2 = None
        self._sizes = None

    def _unit(self, filters, name):
        return residual_unit(self.unit, filters, 1, self.cardinality, self.kernel_initializer, name=name)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"SoftMaskBranch expects feature maps of shape (batch, height, width, channels); "
                f"got {tuple(input_shape)}."
            )
        _, h, w, c = input_shape
        if h is None or w is None:
            raise ValueError(
                f"SoftMaskBranch needs static height and width (to upsample to them); got {tuple(input_shape)}."
            )
        r, d = self.num_units, self.depth
        self._sizes = [(int(h), int(w))]
        for _ in range(d):
            ph, pw = self._sizes[-1]
            self._sizes.append((_ceil_div(ph, 2), _ceil_div(pw, 2)))
        self.down_units = [[self._unit(c, f"down{l + 1}_{i + 1}") for i in range(r)] for l in range(d)]
        self.skip_units = [self._unit(c, f"skip{l + 1}") for l in range(d - 1)]
        self.bottom_units = [self._unit(c, f"bottom_{i + 1}") for i in range(r)]
        self.up_units = [[self._unit(c, f"up{l + 1}_{i + 1}") for i in range(r)] for l in range(d - 1)]
        conv = dict(padding="same", kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy)
        self.conv1 = keras.layers.Conv2D(c, 1, use_bias=False, name="out_conv1", **conv)
        self.conv2 = keras.layers.Conv2D(c, 1, use_bias=True, name="out_conv2", **conv)
        for l in range(d):
            shape = (None, *self._sizes[l + 1], c)
            for u in self.down_units[l]:
                u.build(shape)
            if l < d - 1:
                self.skip_units[l].build(shape)
                for u in self.up_units[l]:
                    u.build(shape)
        for u in self.bottom_units:
            u.build((None, *self._sizes[d], c))
        full = (None, int(h), int(w), c)
        for layer in (self.bn1, self.conv1, self.bn2, self.conv2, self.activation):
            layer.build(full)
        if self.logit_scale != 1.0:
            self.conv2.kernel.assign(self.conv2.kernel * self.logit_scale)

    def _resize(self, x, size):
        # Keras' resize returns float32 for some dtypes; keep the input's.
        return ops.cast(ops.image.resize(x, size, interpolation="bilinear"), x.dtype)

    def call(self, inputs, training=None):
        x, downs, skips = inputs, [], []
        for l in range(self.depth):
            x = self.pools[l](x)
            for u in self.down_units[l]:
                x = u(x, training=training)
            downs.append(x)
            if l < self.depth - 1:
                skips.append(self.skip_units[l](x, training=training))
        for u in self.bottom_units:
            x = u(x, training=training)
        for l in reversed(range(self.depth - 1)):
            x = self._resize(x, self._sizes[l + 1]) + downs[l] + skips[l]
            for u in self.up_units[l]:
                x = u(x, training=training)
        x = self._resize(x, self._sizes[0]) + inputs
        x = self.conv1(ops.relu(self.bn1(x, training=training)))
        x = self.conv2(ops.relu(self.bn2(x, training=training)))
        return self.activation(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "depth": self.depth,
                "num_units": self.num_units,
                "unit": self.unit,
                "cardinality": self.cardinality,
                "attention": self.attention,
                "pool_size": self.pool_size,
                "logit_scale": self.logit_scale,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
