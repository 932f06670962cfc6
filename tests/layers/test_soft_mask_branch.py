import keras
import numpy as np
import pytest
from keras import ops

from agekeras.layers import SoftMaskBranch
from tests.harness import run_layer_test


def test_standard_checks():
    x = np.random.RandomState(0).randn(2, 7, 7, 8).astype("float32")
    # A 2x2 residual unit can be ReLU-dead for some initialisations (the
    # suite's seed on JAX); this seed gives every weight a path on TF, JAX and PyTorch.
    keras.utils.set_random_seed(3)
    run_layer_test(
        SoftMaskBranch, {"depth": 2, "attention": "spatial"}, x,
        expected_output_shape=(2, 7, 7, 8),
        # 5 pre-activation units (2 down, 1 skip, 1 bottom, 1 up) x 9 weights
        # + 2 BN x 2 + conv1 kernel + conv2 kernel and bias
        expected_num_trainable_weights=5 * 9 + 4 + 1 + 2,
    )


@pytest.mark.parametrize("size", [(7, 7), (8, 8), (9, 6), (5, 11), (1, 1), (2, 3)])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_mask_has_trunk_shape_for_odd_and_even_sizes(size, depth):
    x = np.random.RandomState(1).randn(2, *size, 4).astype("float32")
    mask = ops.convert_to_numpy(SoftMaskBranch(depth=depth)(x))
    assert mask.shape == x.shape
    assert np.all((mask >= 0) & (mask <= 1)) and mask.std() > 0  # mixed attention: a sigmoid


def test_resnext_units_and_channel_attention():
    x = np.random.RandomState(2).randn(2, 9, 9, 8).astype("float32")
    branch = SoftMaskBranch(depth=2, unit="resnext", cardinality=4, attention="channel")
    mask = ops.convert_to_numpy(branch(x))
    assert mask.shape == x.shape
    np.testing.assert_allclose(np.linalg.norm(mask, axis=-1), 1.0, rtol=1e-4)
    assert type(branch.bottom_units[0]).__name__ == "ResNeXtUnit"


# ----- the hourglass wiring against NumPy -------------------------------------------


def _np_maxpool_same(x, k=3, s=2):
    n, h, w, c = x.shape
    oh, ow = -(-h // s), -(-w // s)
    ph, pw = max((oh - 1) * s + k - h, 0), max((ow - 1) * s + k - w, 0)
    pad = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), constant_values=-np.inf)
    out = np.full((n, oh, ow, c), -np.inf)
    for i in range(k):
        for j in range(k):
            out = np.maximum(out, pad[:, i:i + s * oh:s, j:j + s * ow:s, :])
    return out


def _np_resize_bilinear(x, size):
    """TF2 bilinear resize, half-pixel centres, edges clamped."""

    def axis_weights(n_in, n_out):
        src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        f = np.floor(src)
        lo = np.clip(f, 0, n_in - 1).astype(int)
        hi = np.clip(np.ceil(src), 0, n_in - 1).astype(int)
        return lo, hi, (src - f)

    ylo, yhi, ya = axis_weights(x.shape[1], size[0])
    xlo, xhi, xa = axis_weights(x.shape[2], size[1])
    top = x[:, ylo] + (x[:, yhi] - x[:, ylo]) * ya[None, :, None, None]
    return top[:, :, xlo] + (top[:, :, xhi] - top[:, :, xlo]) * xa[None, None, :, None]


def test_matches_numpy_hourglass():
    """K(X) = f(conv(bn-relu(conv(bn-relu(u_0))))) with u_0 from the bottom-up /
    top-down recursion of the docstring; units are the layer's own, pooling,
    upsampling and merges are NumPy."""
    rng = np.random.RandomState(3)
    x = rng.randn(2, 7, 7, 4).astype("float32")
    branch = SoftMaskBranch(depth=2, attention="spatial")
    got = ops.convert_to_numpy(branch(x, training=False))

    def unit(u, a):
        return ops.convert_to_numpy(u(a.astype("float32"), training=False)).astype("float64")

    d1 = unit(branch.down_units[0][0], _np_maxpool_same(x))
    s1 = unit(branch.skip_units[0], d1)
    d2 = unit(branch.down_units[1][0], _np_maxpool_same(d1))
    u2 = unit(branch.bottom_units[0], d2)
    u1 = unit(branch.up_units[0][0], _np_resize_bilinear(u2, d1.shape[1:3]) + d1 + s1)
    u0 = _np_resize_bilinear(u1, (7, 7)) + x
    bn_scale = 1.0 / np.sqrt(1.0 + branch.bn1.epsilon)  # inference BN at initial statistics
    k1 = ops.convert_to_numpy(branch.conv1.kernel)[0, 0]
    k2 = ops.convert_to_numpy(branch.conv2.kernel)[0, 0]
    b2 = ops.convert_to_numpy(branch.conv2.bias)
    h = np.maximum(u0 * bn_scale, 0) @ k1
    h = np.maximum(h * bn_scale, 0) @ k2 + b2
    mean, std = h.mean(axis=(1, 2), keepdims=True), np.sqrt(h.var(axis=(1, 2), keepdims=True) + 1e-5)
    want = 1.0 / (1.0 + np.exp(-(h - mean) / std))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert d1.shape[1:3] == (4, 4) and d2.shape[1:3] == (2, 2)


def test_rejects_bad_arguments_and_shapes():
    with pytest.raises(ValueError, match="unit"):
        SoftMaskBranch(unit="inception")
    with pytest.raises(ValueError, match="depth"):
        SoftMaskBranch(depth=0)
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\)"):
        SoftMaskBranch()(np.zeros((2, 8, 8), "float32"))


def test_mask_logits_start_small_so_the_mask_starts_near_one_half():
    import keras

    keras.utils.set_random_seed(3)
    plain = SoftMaskBranch(depth=2, logit_scale=1.0)
    plain.build((None, 8, 8, 16))
    keras.utils.set_random_seed(3)
    scaled = SoftMaskBranch(depth=2)
    scaled.build((None, 8, 8, 16))
    np.testing.assert_allclose(ops.convert_to_numpy(scaled.conv2.kernel),
                               0.01 * ops.convert_to_numpy(plain.conv2.kernel), rtol=1e-6)
    x = np.random.RandomState(0).normal(0.0, 3.0, (2, 8, 8, 16)).astype("float32")
    mask = ops.convert_to_numpy(scaled(x, training=False))
    saturated = lambda m: np.mean((m < 0.01) | (m > 0.99))  # noqa: E731
    assert saturated(mask) == 0.0 and abs(float(mask.mean()) - 0.5) < 0.1
    assert saturated(ops.convert_to_numpy(plain(x, training=False))) > 0.2
    for bn in (scaled.bn1, scaled.bn2):
        assert (bn.momentum, bn.epsilon) == (0.9, 1e-5)
