"""Delta Age AdaIN (DAA), Eq. 7 of the DAA paper: the naive reference."""

import keras
from keras import ops

#: Floor of the standard deviation returned by `instance_statistics`, so that
#: 1/sigma of a dead (constant) channel stays finite even with epsilon = 0,
#: and small enough for float16 (1/1e-3 = 1e3, far below 65504). With the
#: default epsilon (1e-5, sigma >= 3.2e-3) it never binds.
MIN_STD = 1e-3


def instance_statistics(features, epsilon=1e-5, channelwise=True):
    """Mean and standard deviation of feature maps, per image.

        mu_c(x)    = 1/(HW) sum_hw x_hwc
        sigma_c(x) = sqrt(1/(HW) sum_hw (x_hwc - mu_c)^2 + epsilon)

    (the AdaIN statistics; epsilon inside the square root). With
    `channelwise=False` the sums also run over the channels (one mean and one
    std per image, the "multi-channel" statistics of Eq. 5 of the DAA paper).
    The variance is the biased (population) one, as in instance
    normalisation; the authors' PyTorch code uses `Tensor.var()`, i.e. the
    unbiased one (a factor HW/(HW-1), 1.6% at 8x8).

    Dead channels: a constant channel has variance 0, so with epsilon = 0
    (or an epsilon that underflows, e.g. 1e-8 in float16) sigma would be 0
    and 1/sigma infinite. The variance + epsilon is therefore floored at
    `MIN_STD**2` *before* the square root (so the gradient stays finite too)
    and the statistics are computed in float32, then cast back to the
    features' dtype. With the default epsilon the floor never binds.

    Args:
        features: `(batch, h, w, C)`.
        epsilon: added to the variance.
        channelwise: per channel (True) or over all channels (False).

    Returns:
        `(mean, std)`, each `(batch, 1, 1, C)` (channelwise) or
        `(batch, 1, 1, 1)`.
    """
    features = ops.convert_to_tensor(features)  # NumPy input works on every backend
    if len(features.shape) != 4:
        raise ValueError(f"features must be (batch, h, w, C), got shape {tuple(features.shape)}.")
    axes = (1, 2) if channelwise else (1, 2, 3)
    dtype = features.dtype
    x = ops.cast(features, "float32")
    mean = ops.mean(x, axis=axes, keepdims=True)
    var = ops.mean(ops.square(x - mean), axis=axes, keepdims=True)
    std = ops.sqrt(ops.maximum(var + float(epsilon), MIN_STD**2))
    return ops.cast(mean, dtype), ops.cast(std, dtype)


def check_style(features_shape, s_shape, t_shape):
    """Validate DAA style statistics against a feature shape; returns A."""
    if len(features_shape) != 4:
        raise ValueError(f"features must be (batch, h, w, C), got shape {tuple(features_shape)}.")
    channels = features_shape[-1]
    if tuple(s_shape) != tuple(t_shape):
        raise ValueError(f"s and t must have the same shape, got {tuple(s_shape)} and {tuple(t_shape)}.")
    if len(s_shape) == 2:
        if s_shape[1] is not None and channels is not None and s_shape[1] != channels:
            raise ValueError(
                f"per-channel s, t must be (ages, C={channels}), got {tuple(s_shape)}."
            )
    elif len(s_shape) != 1:
        raise ValueError(
            f"s, t must be (ages,) (shared by all channels) or (ages, C) (per channel), got {tuple(s_shape)}."
        )
    return s_shape[0]


@keras.saving.register_keras_serializable(package="agekeras")
class DeltaAgeAdaIN(keras.layers.Layer):
    """Delta Age AdaIN: the feature difference between a face and each age.

    For an encoder feature E(x) of shape `(h, w, C)` and, for each
    comparison age y, a style std s_y and mean t_y, Eq. 7 of the DAA paper
    gives the "delta" feature map

        delta_c(x, y) = (s_y - sigma_c(x)) (E_c(x) - mu_c(x)) / sigma_c(x)
                        + t_y - mu_c(x)

    i.e. AdaIN(E, y) - E: the face re-styled to age y, minus the face
    (because (E - mu)/sigma * sigma + mu = E). mu_c and sigma_c are the
    per-channel statistics of `instance_statistics` (epsilon inside the
    square root; sigma floored at `MIN_STD`, so a dead, constant channel
    gives finite outputs and gradients). The AgeDecoder reads one delta map
    per age.

    This layer materialises all of them, `(batch, ages, h, w, C)`: 13 MB per
    image for 100 ages of a 512 x 8 x 8 ResNet-18 feature in float32. It is
    the reference (and the tool for inspecting delta maps); models use
    `AgeDecoder` on `[features, s, t, ages]`, which computes the same deltas
    without materialising them.

    s and t may be
    - `(ages,)`: one style per age shared by all channels (binary code
      mapping, and the multi-channel template variant, Eq. 5), or
    - `(ages, C)`: per-channel styles (the single-channel template
      variant, Eq. 3, statistics of a template face per channel).

    Args:
        epsilon: added to the variance of the content statistics.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: list `[features, s, t]`: features `(batch, h, w, C)`,
            s and t `(ages,)` or `(ages, C)`.

    Returns:
        `(batch, ages, h, w, C)` delta features.

    Example:

    >>> daa = DeltaAgeAdaIN()
    >>> d = daa([np.random.rand(2, 8, 8, 32).astype("float32"),
    ...          np.ones(100, "float32"), np.zeros(100, "float32")])
    >>> tuple(d.shape)
    (2, 100, 8, 8, 32)

    Reference: A Delta Age AdaIN operation for age estimation via binary code
    transformer (Chen et al., CVPR 2023), https://arxiv.org/abs/2303.07929.
    """

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 3:
            raise ValueError("DeltaAgeAdaIN expects [features, s, t].")
        features, s, t = inputs
        check_style(features.shape, s.shape, t.shape)
        dtype = features.dtype
        # float32 inside (also under mixed precision): for a dead channel the
        # gradient of (E - mu) / sigma has terms of size 1/sigma that cancel
        # exactly only when they do not overflow float16.
        features = ops.cast(features, "float32")
        mean, std = instance_statistics(features, self.epsilon)
        normalized = (features - mean) / std  # (B, h, w, C)
        if len(s.shape) == 1:
            s = s[:, None]
            t = t[:, None]
        s = ops.cast(s, "float32")[None, :, None, None, :]  # (1, A, 1, 1, C|1)
        t = ops.cast(t, "float32")[None, :, None, None, :]
        return ops.cast((s - std[:, None]) * normalized[:, None] + (t - mean[:, None]), dtype)

    def compute_output_shape(self, input_shape):
        f, s, t = input_shape
        ages = check_style(f, s, t)
        return (f[0], ages, f[1], f[2], f[3])

    def get_config(self):
        config = super().get_config()
        config["epsilon"] = self.epsilon
        return config
