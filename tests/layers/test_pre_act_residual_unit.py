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


def _np_conv_same(a, k, stride=1):
    """"same" convolution (odd input sizes: TensorFlow pads evenly), then the stride."""
    kh, kw = k.shape[:2]
    pad = np.pad(a, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    out = np.zeros(a.shape[:3] + (k.shape[-1],))
    for i in range(kh):
        for j in range(kw):
            out += pad[:, i:i + a.shape[1], j:j + a.shape[2], :] @ k[i, j]
    return out[:, ::stride, ::stride]


def _set_bn(bn, rng):
    """Random BatchNorm parameters and moving statistics, so that BN-ReLU(x) is far from x."""
    c = bn.gamma.shape[0]
    bn.gamma.assign(rng.uniform(0.5, 1.5, c).astype("float32"))
    bn.beta.assign(rng.normal(0.0, 0.5, c).astype("float32"))
    bn.moving_mean.assign(rng.normal(0.0, 0.5, c).astype("float32"))
    bn.moving_variance.assign(rng.uniform(0.5, 2.0, c).astype("float32"))


def _np_bn(a, bn):
    g, b, m, v = (ops.convert_to_numpy(w).astype("float64") for w in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance))
    return g * (a - m) / np.sqrt(v + bn.epsilon) + b


def test_projection_shortcut_takes_the_pre_activated_input():
    """y = F(h) + Conv1x1_s(h), h = ReLU(BN1(x)) (He et al. 2016, Fig. 4e; ResNet50V2): an
    independent NumPy reference with non-trivial BatchNorm statistics. A shortcut taken from
    x instead of h differs by far more than the tolerance."""
    rng = np.random.RandomState(4)
    x = rng.normal(0.0, 1.0, (2, 7, 7, 6)).astype("float32")
    unit = PreActResidualUnit(8, strides=2, bottleneck_filters=4)
    unit.build(x.shape)
    for bn in (unit.bn1, unit.bn2, unit.bn3):
        _set_bn(bn, rng)
    y = ops.convert_to_numpy(unit(x, training=False)).astype("float64")
    k1, k2, k3, ks = (ops.convert_to_numpy(c.kernel).astype("float64")
                      for c in (unit.conv1, unit.conv2, unit.conv3, unit.shortcut_conv))
    relu = lambda a: np.maximum(a, 0)  # noqa: E731
    h = relu(_np_bn(x.astype("float64"), unit.bn1))
    f = _np_conv_same(h, k1)
    f = _np_conv_same(relu(_np_bn(f, unit.bn2)), k2, stride=2)
    f = _np_conv_same(relu(_np_bn(f, unit.bn3)), k3)
    want = f + _np_conv_same(h, ks, stride=2)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
    wrong = f + _np_conv_same(x.astype("float64"), ks, stride=2)
    assert np.abs(wrong - want).max() > 100 * 1e-4  # the test can tell the two shortcuts apart


def test_last_convolution_starts_scaled_and_bn_follows_the_short_run_choice():
    keras_seed = 7
    import keras

    keras.utils.set_random_seed(keras_seed)
    plain = PreActResidualUnit(16, residual_scale=1.0)
    plain.build((None, 4, 4, 16))
    keras.utils.set_random_seed(keras_seed)
    scaled = PreActResidualUnit(16)
    scaled.build((None, 4, 4, 16))
    np.testing.assert_allclose(ops.convert_to_numpy(scaled.conv3.kernel),
                               0.3 * ops.convert_to_numpy(plain.conv3.kernel), rtol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(scaled.conv1.kernel), ops.convert_to_numpy(plain.conv1.kernel))
    for bn in (scaled.bn1, scaled.bn2, scaled.bn3):
        assert (bn.momentum, bn.epsilon) == (0.9, 1e-5)
