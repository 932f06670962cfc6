import numpy as np
import pytest
from keras import ops

from agekeras.layers import AttentionActivation
from tests.harness import run_layer_test


def _np_mixed(x):
    return 1.0 / (1.0 + np.exp(-x))


def _np_channel(x, eps=1e-5):
    norm = np.sqrt((x.astype("float64") ** 2).sum(-1, keepdims=True))
    return x / np.maximum(norm, eps)


def _np_spatial(x, eps=1e-5):
    x = x.astype("float64")
    mean = x.mean(axis=(1, 2), keepdims=True)
    std = np.sqrt(x.var(axis=(1, 2), keepdims=True) + eps)
    return 1.0 / (1.0 + np.exp(-(x - mean) / std))


@pytest.mark.parametrize("mode", ["mixed", "channel", "spatial"])
def test_standard_checks(mode):
    x = np.random.RandomState(0).randn(3, 5, 4, 6).astype("float32")
    run_layer_test(
        AttentionActivation, {"mode": mode, "epsilon": 1e-4}, x,
        expected_output_shape=(3, 5, 4, 6), expected_num_trainable_weights=0,
    )


@pytest.mark.parametrize("mode,ref", [("mixed", _np_mixed), ("channel", _np_channel), ("spatial", _np_spatial)])
def test_matches_numpy(mode, ref):
    x = (np.random.RandomState(1).randn(2, 7, 5, 8) * 3 + 1).astype("float32")
    got = ops.convert_to_numpy(AttentionActivation(mode)(x))
    np.testing.assert_allclose(got, ref(x), rtol=1e-4, atol=1e-6)


def test_channel_mode_gives_unit_norm_per_position():
    x = np.random.RandomState(2).randn(2, 3, 3, 10).astype("float32")
    got = ops.convert_to_numpy(AttentionActivation("channel")(x))
    np.testing.assert_allclose(np.linalg.norm(got, axis=-1), 1.0, rtol=1e-5)


def test_spatial_mode_is_per_channel_and_per_image():
    # Scaling and shifting one channel of one image leaves its mask unchanged
    # (standardisation), and does not touch the other image.
    x = np.random.RandomState(3).randn(2, 4, 4, 3).astype("float32")
    y = x.copy()
    y[0, ..., 1] = 5.0 * y[0, ..., 1] + 2.0
    act = AttentionActivation("spatial")
    a, b = ops.convert_to_numpy(act(x)), ops.convert_to_numpy(act(y))
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert 0.25 < a[..., 0].mean() < 0.75  # centred: about half above 0.5


def test_spatial_mode_is_stable_for_maps_with_a_large_mean():
    # E[x^2] - E[x]^2 (keras.ops.moments) cancels to a negative variance here.
    x = (np.random.RandomState(4).randn(2, 4, 4, 3) * 0.5 + 3000.0).astype("float32")
    got = ops.convert_to_numpy(AttentionActivation("spatial")(x))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, _np_spatial(x), atol=2e-3)


def test_spatial_mode_constant_map_is_half_not_nan():
    got = ops.convert_to_numpy(AttentionActivation("spatial")(np.ones((1, 1, 1, 4), "float32")))
    np.testing.assert_allclose(got, 0.5)


def test_rejects_unknown_mode_and_bad_rank():
    with pytest.raises(ValueError, match="mode"):
        AttentionActivation("softmax")
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\)"):
        AttentionActivation()(np.zeros((2, 8), "float32"))
