import numpy as np
import pytest
from keras import ops

from agekeras.layers import PreActResidualUnit
from tests.harness import run_layer_test


def test_standard_checks_projection():
    x = np.random.RandomState(0).randn(2, 7, 7, 8).astype("float32")
    run_layer_test(
        PreActResidualUnit, {"filters": 16, "strides": 2}, x,
        expected_output_shape=(2, 4, 4, 16),
        # 3 BN (gamma, beta) + 3 convs + shortcut conv
        expected_num_trainable_weights=10,
    )


def test_standard_checks_identity():
    x = np.random.RandomState(0).randn(2, 6, 5, 16).astype("float32")
    layer = run_layer_test(
        PreActResidualUnit, {"filters": 16, "bottleneck_filters": 8}, x,
        expected_output_shape=(2, 6, 5, 16), expected_num_trainable_weights=9,
    )
    assert layer.shortcut_conv is None
    assert tuple(layer.conv2.kernel.shape) == (3, 3, 8, 8)


def test_matches_numpy_pre_activation_formula():
    """y = conv3(relu(bn3(conv2(relu(bn2(conv1(relu(bn1(x))))))))) + x with
    inference BatchNorm at its initial statistics (identity up to 1/sqrt(1+eps))."""
    rng = np.random.RandomState(1)
    x = rng.randn(2, 5, 5, 8).astype("float32")
    unit = PreActResidualUnit(8, bottleneck_filters=4)
    y = ops.convert_to_numpy(unit(x, training=False))
    s = 1.0 / np.sqrt(1.0 + unit.bn1.epsilon)
    k1, k2, k3 = (ops.convert_to_numpy(c.kernel) for c in (unit.conv1, unit.conv2, unit.conv3))

    def conv(a, k):  # "same" convolution, stride 1
        kh, kw = k.shape[:2]
        pad = np.pad(a, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
        out = np.zeros(a.shape[:3] + (k.shape[-1],))
        for i in range(kh):
            for j in range(kw):
                out += pad[:, i:i + a.shape[1], j:j + a.shape[2], :] @ k[i, j]
        return out

    relu = lambda a: np.maximum(a, 0)  # noqa: E731
    h = conv(relu(x * s), k1)
    h = conv(relu(h * s), k2)
    h = conv(relu(h * s), k3)
    np.testing.assert_allclose(y, h + x, rtol=1e-4, atol=1e-4)


def test_odd_size_stride_two():
    y = PreActResidualUnit(4, strides=2)(np.zeros((1, 9, 6, 4), "float32"))
    assert tuple(y.shape) == (1, 5, 3, 4)


def test_bad_input_rank():
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\)"):
        PreActResidualUnit(8)(np.zeros((2, 8, 8), "float32"))
