"""One GRA_Net attention module: trunk branch, soft mask branch and the gate
of Eq. 3."""

import math

import keras
from keras import ops

from agekeras.layers.attention_activation import MODES
from agekeras.layers.soft_mask_branch import UNITS, SoftMaskBranch, residual_unit

GAMMA_MODES = ("learned", "fixed")
FUSIONS = ("gated", "residual")


@keras.saving.register_keras_serializable(package="agekeras")
class GatedResidualAttention(keras.layers.Layer):
    """Gated residual attention module (GRA_Net, Garain et al., 2021).

    A Residual Attention Network module (Wang et al., 2017, Fig. 2) whose
    fusion of mask and trunk is the gate of Eq. 3 of GRA_Net:

        X' = p units(X)
        F  = t trunk units(X')                       (trunk branch)
        K  = SoftMaskBranch(X')                      (soft mask branch)
        O  = (gamma + (1 - gamma) * M) * F           (Eq. 3, M = K)
        Y  = p units(O)

    gamma = 1 removes the mask (O = F, a plain residual network); gamma = 0
    applies the full mask (O = K * F, "naive attention learning"). With
    `fusion="residual"`, M = 1 + K, so gamma = 0 gives the Residual
    Attention Network's attention residual learning O = (1 + K) * F.

    One scalar gamma per module. `gamma_mode="learned"`: gamma = sigmoid(a)
    with a trainable free parameter a (initialised so that gamma starts at
    `gamma`); `gamma_mode="fixed"`: gamma is the constant `gamma` (0 and 1
    allowed).

    Readings of ambiguous points:
        - Keeping gamma in [0, 1]: we use gamma = sigmoid(a) rather than a
          clipping `keras.constraints` constraint. The constraint is applied
          by the optimizer only, so a custom training loop (or an optimizer
          that skips it) could leave gamma outside [0, 1], and a clipped
          gamma stuck at 0 or 1 gets its update thrown away each step. The
          sigmoid keeps gamma in (0, 1) under any optimizer and always
          passes a gradient; the price is that a learned gamma never reaches
          exactly 0 or 1 (use `gamma_mode="fixed"` for those).
        - p, t, r = 1, 2, 1 as in the Residual Attention Network (the
          GRA_Net paper keeps its hyper-parameters).
        - The mask branch uses the same unit type as the trunk.
        - A public Keras port of the gate computes the gated output and then
          overwrites it with the ungated one, so gamma never matters; here
          the gated O is what the last units receive (tested: gamma gets a
          gradient and changes the output).

    Args:
        mask_depth: pooling levels D of the soft mask branch.
        num_pre: p, units before the split (and after the fusion).
        num_trunk: t, trunk units.
        num_mask_units: r, units per step of the mask branch.
        unit: "preact" or "resnext".
        cardinality: groups of the ResNeXt units.
        attention: "mixed", "channel" or "spatial".
        gamma_mode: "learned" or "fixed".
        gamma: initial (learned, in (0, 1)) or constant (fixed, in [0, 1])
            gamma.
        fusion: "gated" (M = K, Eq. 3) or "residual" (M = 1 + K).
        kernel_initializer: initializer of every convolution kernel.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: `(batch, H, W, C)` with static H and W.
        training: BatchNorm mode.

    Returns:
        `(batch, H, W, C)`, the shape of the input.

    Example:

    >>> module = GatedResidualAttention(mask_depth=2, gamma=0.5)
    >>> tuple(module(np.zeros((2, 8, 8, 64), "float32")).shape)
    (2, 8, 8, 64)
    >>> float(module.gamma_value())
    0.5

    Reference: GRA_Net: A Deep Learning Model for Classification of Age and
    Gender From Facial Images (Garain et al., IEEE Access 2021,
    https://ieeexplore.ieee.org/document/9446083); Residual Attention Network
    for Image Classification (Wang et al., CVPR 2017,
    https://arxiv.org/abs/1704.06904).
    """

    def __init__(
        self,
        mask_depth=1,
        num_pre=1,
        num_trunk=2,
        num_mask_units=1,
        unit="preact",
        cardinality=32,
        attention="mixed",
        gamma_mode="learned",
        gamma=0.5,
        fusion="gated",
        kernel_initializer="he_normal",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}; got {unit!r}.")
        if attention not in MODES:
            raise ValueError(f"attention must be one of {MODES}; got {attention!r}.")
        if gamma_mode not in GAMMA_MODES:
            raise ValueError(f"gamma_mode must be one of {GAMMA_MODES}; got {gamma_mode!r}.")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}; got {fusion!r}.")
        gamma = float(gamma)
        if gamma_mode == "learned" and not 0.0 < gamma < 1.0:
            raise ValueError(f"a learned gamma starts strictly inside (0, 1); got gamma={gamma}.")
        if gamma_mode == "fixed" and not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must lie in [0, 1]; got gamma={gamma}.")
        self.mask_depth = int(mask_depth)
        self.num_pre = int(num_pre)
        self.num_trunk = int(num_trunk)
        self.num_mask_units = int(num_mask_units)
        self.unit = unit
        self.cardinality = int(cardinality)
        self.attention = attention
        self.gamma_mode = gamma_mode
        self.gamma = gamma
        self.fusion = fusion
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.mask_branch = SoftMaskBranch(
            depth=self.mask_depth,
            num_units=self.num_mask_units,
            unit=unit,
            cardinality=self.cardinality,
            attention=attention,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="soft_mask",
        )
        self.pre_units = self.trunk_units = self.post_units = None
        self.gamma_logit = None

    def _units(self, n, channels, prefix):
        return [
            residual_unit(self.unit, channels, 1, self.cardinality, self.kernel_initializer, name=f"{prefix}_{i + 1}")
            for i in range(n)
        ]

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"GatedResidualAttention expects feature maps of shape (batch, height, width, channels); "
                f"got {tuple(input_shape)}."
            )
        shape = tuple(input_shape)
        c = shape[-1]
        self.pre_units = self._units(self.num_pre, c, "pre")
        self.trunk_units = self._units(self.num_trunk, c, "trunk")
        self.post_units = self._units(self.num_pre, c, "post")
        for u in self.pre_units + self.trunk_units + self.post_units:
            u.build(shape)
        self.mask_branch.build(shape)
        if self.gamma_mode == "learned":
            logit = math.log(self.gamma / (1.0 - self.gamma))
            self.gamma_logit = self.add_weight(
                name="gamma_logit",
                shape=(),
                initializer=keras.initializers.Constant(logit),
                dtype="float32",
            )

    def gamma_value(self):
        """gamma as a float32 scalar tensor (sigmoid of the free parameter when learned)."""
        if self.gamma_mode == "learned":
            return ops.sigmoid(ops.cast(self.gamma_logit, "float32"))
        return ops.convert_to_tensor(self.gamma, "float32")

    def branches(self, inputs, training=None):
        """`(F, K)`: trunk output and soft mask for the module input."""
        x = inputs
        for u in self.pre_units:
            x = u(x, training=training)
        trunk = x
        for u in self.trunk_units:
            trunk = u(trunk, training=training)
        return trunk, self.mask_branch(x, training=training)

    def gate(self, trunk, mask):
        """Eq. 3: `(gamma + (1 - gamma) * M) * F`, M = K or 1 + K."""
        gamma = ops.cast(self.gamma_value(), trunk.dtype)
        m = mask if self.fusion == "gated" else 1.0 + mask
        return (gamma + (1.0 - gamma) * m) * trunk

    def call(self, inputs, training=None):
        trunk, mask = self.branches(inputs, training=training)
        x = self.gate(trunk, mask)
        for u in self.post_units:
            x = u(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "mask_depth": self.mask_depth,
                "num_pre": self.num_pre,
                "num_trunk": self.num_trunk,
                "num_mask_units": self.num_mask_units,
                "unit": self.unit,
                "cardinality": self.cardinality,
                "attention": self.attention,
                "gamma_mode": self.gamma_mode,
                "gamma": self.gamma,
                "fusion": self.fusion,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
