"""AgeDecoder of the DAA paper (Eqs. 8-9), factorised over the ages."""

import keras
from keras import ops

from agekeras.layers.delta_age_adain import check_style, instance_statistics


@keras.saving.register_keras_serializable(package="agekeras")
class AgeDecoder(keras.layers.Layer):
    """DAA AgeDecoder: one delta age per comparison age, and the age.

    Eq. 8 of the DAA paper decodes each delta feature map delta(x, y) (Eq. 7,
    `DeltaAgeAdaIN`) into a delta age

        Delta_y = FC(GAP(ReLU(BN(Conv3x3(delta(x, y))))))

    with one Conv 3x3 (`channels` = 64 filters, zero "same" padding), batch
    normalisation, ReLU, global average pooling and a fully connected layer
    to one number; the weights are shared by all ages. Eq. 9 turns the
    deltas into the predicted age, the mean over the comparison ages y of
    "age y minus how much older than x the face of age y is":

        x' = 1/|Y| sum_y (y - Delta_y).

    Factorised computation (the default, `[features, s, t, ages]` input).
    Writing n = (E - mu)/sigma for the normalised feature, Eq. 7 is
    delta_y = s_y n + t_y 1 - E exactly (since sigma n + mu = E), and the
    convolution K is linear, so

        K * delta_y = s_y (K * n) + t_y (K * 1) - K * E,

    three convolutions for all ages instead of one per age, then |Y| cheap
    affine combinations of `channels`-channel maps before BN/ReLU. K * 1 is
    the convolution of an all-ones map (it differs from a constant at the
    borders because of the zero padding, which is why it is computed and
    not summed). For per-channel styles s, t `(ages, C)` (the single-channel
    template variant) s_y n is a per-channel scaling, and K * (s_y n) =
    sum_c s_yc (K_c * n_c): one depthwise convolution gives the C per-channel
    responses `(h, w, C, channels)`, contracted with s (cost of one dense
    conv per age divided by 9, still linear in the ages).

    BN is folded into the combinations: in training, its batch statistics
    over (batch, ages, positions) follow from the three basis maps alone
    (mean = mb . c_bar, variance = E_y[c_y' Cov c_y] + Var_y(mb . c_y), with
    c_y = (s_y, t_y, -1) and mb, Cov the mean and covariance of the basis
    over batch and positions), so BN becomes one scale and shift per filter
    applied inside the single matmul that forms all A combinations; the only
    pass over the `(batch, channels, A, h*w)` tensor is ReLU + pooling. The
    moving statistics are updated with the BN layer's momentum exactly as
    `keras.layers.BatchNormalization` does (the naive path calls that layer
    itself, so both paths train the same BN weights). This hand-written BN
    application is the reason the factorised path is ~15-20x faster than the
    naive one instead of ~9x with a plain BN layer on the combined tensor
    (`benchmarks/daa_decoder.py`).

    Naive computation (the reference, `[delta_features, ages]` input with
    delta_features `(batch, ages, h, w, C)` from `DeltaAgeAdaIN`): the
    convolution runs on every age's map. Both paths share the weights and
    give the same outputs (up to float rounding).

    Readings: the conv has no bias (the authors' conv has one, but BN right
    after it removes any constant, so it gets a zero gradient); BN statistics
    in training run over batch x ages x h x w (the authors reshape to
    (batch * ages, C, h, w) before their Conv-BN); the comparison ages y come
    in as a tensor so that interval sampling (every k-th age) and template
    ages need no change here.

    Args:
        channels: filters of the 3x3 convolution (the paper: 64; the
            authors' released config uses 32).
        epsilon: added to the variance of the content statistics (must match
            the `DeltaAgeAdaIN` used for the naive path).
        delta_scale: the FC output is multiplied by this constant to give
            Delta_y in years. 1 is the paper's parametrisation. A larger value
            (the DAA models use the spread of the comparison ages, ~29 for
            100 ages) is a re-parametrisation with the same function class:
            with Adam, whose steps are ~lr whatever the gradient scale, it
            lets the FC reach deltas of tens of years in tens of steps
            instead of thousands (equivalent to a larger learning rate and
            init for that one layer).
        kernel_initializer: initializer of the conv kernel.
        fc_initializer: initializer of the FC kernel (default: normal with
            std 0.01, the authors' init).
        **kwargs: base `Layer` arguments (`dtype="float32"` in models).

    Call arguments:
        inputs: `[features, s, t, ages]` (factorised): features
            `(batch, h, w, C)`, s and t `(A,)` or `(A, C)`, ages `(A,)`; or
            `[delta_features, ages]` (naive): `(batch, A, h, w, C)` and `(A,)`.
        training: BN mode.

    Returns:
        `(deltas, age)`: delta ages `(batch, A)` and the predicted age
        `(batch,)` (Eq. 9).

    Example:

    >>> decoder = AgeDecoder(channels=64)
    >>> f = np.random.rand(2, 8, 8, 32).astype("float32")
    >>> s, t, ages = np.ones(100, "float32"), np.zeros(100, "float32"), np.arange(100, dtype="float32")
    >>> deltas, age = decoder([f, s, t, ages])
    >>> tuple(deltas.shape), tuple(age.shape)
    ((2, 100), (2,))
    >>> from agekeras.layers import DeltaAgeAdaIN
    >>> naive, _ = decoder([DeltaAgeAdaIN()([f, s, t]), ages])  # the reference path
    >>> bool(np.allclose(keras.ops.convert_to_numpy(naive), keras.ops.convert_to_numpy(deltas), atol=1e-4))
    True

    Reference: DAA: A Delta Age AdaIN operation for age estimation via binary code
    transformer (Chen et al., CVPR 2023), https://arxiv.org/abs/2303.07929.
    """

    def __init__(
        self,
        channels=64,
        epsilon=1e-5,
        delta_scale=1.0,
        kernel_initializer="he_normal",
        fc_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.channels = int(channels)
        if self.channels < 1:
            raise ValueError(f"`channels` must be >= 1, got {channels}.")
        self.epsilon = float(epsilon)
        self.delta_scale = float(delta_scale)
        if not self.delta_scale > 0:
            raise ValueError(f"`delta_scale` must be > 0, got {delta_scale}.")
        if fc_initializer is None:  # the authors' init of their Linear layers
            fc_initializer = keras.initializers.RandomNormal(0.0, 0.01)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.fc_initializer = keras.initializers.get(fc_initializer)
        self.conv = keras.layers.Conv2D(
            self.channels,
            3,
            padding="same",
            use_bias=False,
            kernel_initializer=self.kernel_initializer,
            name="conv",
            dtype=self.dtype_policy,
        )
        self.bn = keras.layers.BatchNormalization(axis=-1, name="bn", dtype=self.dtype_policy)
        self.fc = keras.layers.Dense(1, kernel_initializer=self.fc_initializer, name="fc", dtype=self.dtype_policy)

    @staticmethod
    def _split(inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) not in (2, 4):
            raise ValueError(
                "AgeDecoder expects [features, s, t, ages] (factorised) or "
                "[delta_features, ages] (naive, delta_features (batch, ages, h, w, C))."
            )
        return list(inputs)

    def _check(self, shapes):
        if len(shapes) == 4:
            f, s, t, ages = shapes
            num = check_style(f, s, t)
        else:
            d, ages = shapes
            if len(d) != 5:
                raise ValueError(f"naive input must be (batch, ages, h, w, C), got shape {tuple(d)}.")
            f, num = (d[0], d[2], d[3], d[4]), d[1]
        if len(ages) != 1 or (num is not None and ages[0] is not None and ages[0] != num):
            raise ValueError(f"ages must be ({num},), one per style, got shape {tuple(ages)}.")
        return f, num

    def build(self, input_shape):
        f, _ = self._check(self._split(input_shape))
        self.conv.build((None, None, None, f[-1]))
        self.bn.build((None, None, None, self.channels))
        self.fc.build((None, None, self.channels))
        self.built = True

    # ----- factorised path -------------------------------------------------------
    # Layout (batch, F, A, P): F filters, A ages, P = h * w positions, so the
    # affine combinations are one batched matmul and the pooling a reduction
    # over the contiguous last axis.

    def _bn_affine(self, mean, var, training):
        """BN as a per-filter scale and shift, updating the moving statistics
        in training exactly as `keras.layers.BatchNormalization` does."""
        bn = self.bn
        if training and bn.trainable:
            m = bn.momentum
            bn.moving_mean.assign(ops.cast(bn.moving_mean, mean.dtype) * m + mean * (1.0 - m))
            bn.moving_variance.assign(ops.cast(bn.moving_variance, var.dtype) * m + var * (1.0 - m))
        else:
            mean = ops.cast(bn.moving_mean, self.compute_dtype)
            var = ops.cast(bn.moving_variance, self.compute_dtype)
        scale = ops.cast(bn.gamma, var.dtype) * ops.rsqrt(var + bn.epsilon)
        return scale, ops.cast(bn.beta, var.dtype) - mean * scale

    def _factorised(self, features, s, t, training):
        """ReLU(BN(K * delta_y)) pooled over positions, `(batch, F, A)`."""
        kernel = ops.cast(self.conv.kernel, features.dtype)
        shape = ops.shape(features)
        c, f = kernel.shape[2], kernel.shape[3]
        mean, std = instance_statistics(features, self.epsilon)
        normalized = (features - mean) / std
        ones = ops.ones_like(features[:1])
        s = ops.cast(s, features.dtype)
        t = ops.cast(t, features.dtype)

        def positions_last(x, extra=()):  # (B, h, w, F, *extra) -> (B, F, *extra, P)
            x = ops.reshape(x, (shape[0], -1, f) + tuple(extra))
            return ops.transpose(x, (0, 2) + tuple(range(3, 3 + len(extra))) + (1,))

        k_e = ops.conv(features, kernel, padding="same")  # K * E, (B, h, w, F)
        if len(s.shape) == 1:
            # delta_y = s_y n + t_y 1 - E: basis [K*n, K*1, K*E] times [s_y, t_y, -1].
            k_n = ops.conv(normalized, kernel, padding="same")
            k_1 = ops.broadcast_to(ops.conv(ones, kernel, padding="same"), ops.shape(k_n))
            basis = positions_last(ops.stack([k_n, k_1, k_e], axis=-1), (3,))  # (B, F, 3, P)
            coef = ops.stack([s, t, -ops.ones_like(s)], axis=0)  # (3, A)
            # BN batch statistics over (batch, ages, positions) from the basis
            # alone: mean = mb . c_bar, var = E_a[c_a' Cov c_a] + Var_a(mb . c_a)
            # with mb, Cov the mean and covariance of the basis over
            # (batch, positions); no (B, F, A, P) pass is needed for them.
            mb = ops.mean(basis, axis=(0, 3))  # (F, 3)
            centered = basis - mb[None, :, :, None]
            n_pos = ops.cast(ops.shape(basis)[0] * ops.shape(basis)[3], basis.dtype)
            cov = ops.einsum("bfkp,bfjp->fkj", centered, centered) / n_pos
            m_a = ops.matmul(mb, coef)  # (F, A)
            mu = ops.mean(m_a, axis=1)
            var = ops.mean(ops.square(m_a - mu[:, None]), axis=1)
            var = var + ops.mean(ops.einsum("fkj,ka,ja->fa", cov, coef, coef), axis=1)
            scale, shift = self._bn_affine(mu, var, training)
            # The BN shift rides along as a fourth basis row (times 1 for
            # every age), so one matmul gives BN(K * delta_y) directly.
            scaled = basis * scale[None, :, None, None]
            shift_row = ops.broadcast_to(shift[None, :, None, None], ops.shape(scaled[:, :, :1]))
            coef = ops.concatenate([coef, ops.ones_like(coef[:1])], axis=0)  # (4, A)
            z = ops.matmul(ops.transpose(coef), ops.concatenate([scaled, shift_row], axis=2))  # (B, F, A, P)
            return ops.transpose(ops.mean(ops.relu(z), axis=-1), (0, 2, 1))  # (B, A, F)
        else:
            # Per-channel styles: per-input-channel responses via a depthwise
            # conv whose depth multiplier is the number of filters.
            d_n = ops.reshape(ops.depthwise_conv(normalized, kernel, padding="same"), (shape[0], -1, c, f))
            d_1 = ops.reshape(ops.depthwise_conv(ones, kernel, padding="same"), (-1, c, f))
            pre = (
                ops.einsum("bpcf,ac->bfap", d_n, s)
                + ops.einsum("pcf,ac->fap", d_1, t)[None]
                - positions_last(k_e)[:, :, None, :]
            )
            mu = ops.mean(pre, axis=(0, 2, 3))
            var = ops.mean(ops.square(pre - mu[None, :, None, None]), axis=(0, 2, 3))
            scale, shift = self._bn_affine(mu, var, training)
            z = pre * scale[None, :, None, None] + shift[None, :, None, None]
            return ops.transpose(ops.mean(ops.relu(z), axis=-1), (0, 2, 1))  # (B, A, F)

    # ----- naive path (reference) ---------------------------------------------------

    def _naive(self, deltas, training):
        """The conv + BN layers on every age's delta map, pooled: `(batch, A, F)`."""
        shape = ops.shape(deltas)
        flat = ops.reshape(deltas, (-1, shape[2], shape[3], shape[4]))
        x = ops.relu(self.bn(self.conv(flat), training=training))
        return ops.reshape(ops.mean(x, axis=(1, 2)), (shape[0], shape[1], self.channels))

    def call(self, inputs, training=None):
        inputs = self._split(inputs)
        self._check([tuple(x.shape) for x in inputs])
        if len(inputs) == 4:
            features, s, t, ages = inputs
            pooled = self._factorised(features, s, t, training)
        else:
            deltas, ages = inputs
            pooled = self._naive(deltas, training)
        deltas = ops.squeeze(self.fc(pooled), axis=-1) * self.delta_scale  # (B, A), years
        return deltas, age_from_deltas(deltas, ages)

    def compute_output_shape(self, input_shape):
        f, num = self._check(self._split(input_shape))
        return (f[0], num), (f[0],)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "channels": self.channels,
                "epsilon": self.epsilon,
                "delta_scale": self.delta_scale,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "fc_initializer": keras.initializers.serialize(self.fc_initializer),
            }
        )
        return config


def age_from_deltas(deltas, ages):
    """Eq. 9 of the DAA paper: `mean_y (y - Delta_y)`.

    Args:
        deltas: `(batch, A)` delta ages.
        ages: `(A,)` comparison ages.

    Returns:
        `(batch,)` predicted ages.
    """
    deltas = ops.convert_to_tensor(deltas)
    return ops.mean(ops.cast(ages, deltas.dtype)[None, :] - deltas, axis=-1)
