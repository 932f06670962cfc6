import numpy as np
import pytest
from keras import ops

from agekeras.layers import PreActBasicBlock
from tests.harness import run_layer_test


def conv_same(x, kernel, stride=1):
    """NumPy 'same' convolution (NHWC, HWIO), TensorFlow's padding rule."""
    n, h, w, _ = x.shape
    k = kernel.shape[0]
    out_h, out_w = -(-h // stride), -(-w // stride)
    pad_h = max((out_h - 1) * stride + k - h, 0)
    pad_w = max((out_w - 1) * stride + k - w, 0)
    xp = np.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    out = np.zeros((n, out_h, out_w, kernel.shape[-1]))
    for i in range(out_h):
        for j in range(out_w):
            patch = xp[:, i * stride:i * stride + k, j * stride:j * stride + k]
            out[:, i, j] = np.einsum("nhwc,hwco->no", patch, kernel)
    return out


def bn_relu(x, bn):
    gamma, beta, mean, var = (ops.convert_to_numpy(w) for w in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance))
    return np.maximum((x - mean) / np.sqrt(var + bn.epsilon) * gamma + beta, 0)


def numpy_block(block, x):
    pre = bn_relu(x, block.bn1)
    shortcut = x if block.projection is None else conv_same(pre, ops.convert_to_numpy(block.projection.kernel), block.stride)
    y = conv_same(pre, ops.convert_to_numpy(block.conv1.kernel), block.stride)
    y = conv_same(bn_relu(y, block.bn2), ops.convert_to_numpy(block.conv2.kernel))
    return shortcut + y


def _randomise_bn(block, rng):
    for bn in (block.bn1, block.bn2):
        for w in (bn.gamma, bn.beta, bn.moving_mean):
            w.assign(rng.randn(*w.shape).astype("float32") * 0.3 + (1.0 if w is bn.gamma else 0.0))
        bn.moving_variance.assign(rng.uniform(0.5, 2, bn.moving_variance.shape).astype("float32"))


def test_block_standard_checks():
    x = np.random.RandomState(0).randn(2, 6, 6, 3).astype("float32")
    run_layer_test(
        PreActBasicBlock, {"filters": 4, "stride": 2, "drop_rate": 0.0}, x,
        expected_output_shape=(2, 3, 3, 4), expected_num_trainable_weights=7,  # 3 convs + 2 BN x (gamma, beta)
        expected_num_non_trainable_weights=4,
    )


@pytest.mark.parametrize("filters,stride", [(3, 1), (5, 2)])
def test_block_matches_numpy_pre_activation_unit(filters, stride):
    rng = np.random.RandomState(1)
    x = rng.randn(2, 5, 5, 3).astype("float32")
    block = PreActBasicBlock(filters, stride=stride)
    block.build(x.shape)
    _randomise_bn(block, rng)
    assert (block.projection is None) == (filters == 3 and stride == 1)
    got = ops.convert_to_numpy(block(x, training=False))
    np.testing.assert_allclose(got, numpy_block(block, x.astype("float64")), atol=1e-4)


def test_stochastic_depth_drops_whole_residual_branches():
    rng = np.random.RandomState(2)
    x = rng.randn(64, 4, 4, 3).astype("float32")
    block = PreActBasicBlock(3, drop_rate=0.5)
    twin = PreActBasicBlock(3)  # same weights, no stochastic depth
    block.build(x.shape)
    twin.build(x.shape)
    twin.set_weights(block.get_weights())
    out = ops.convert_to_numpy(block(x, training=True))
    full = ops.convert_to_numpy(twin(x, training=True))  # BN on batch statistics in both
    dropped = np.all(np.isclose(out, x, atol=1e-6), axis=(1, 2, 3))
    kept = np.all(np.isclose(out - x, 2.0 * (full - x), atol=1e-4), axis=(1, 2, 3))
    assert np.all(dropped | kept) and 10 < dropped.sum() < 54


def test_block_rejects_bad_arguments():
    with pytest.raises(ValueError, match="stride"):
        PreActBasicBlock(8, stride=3)
    with pytest.raises(ValueError, match=r"\(batch, H, W, C\)"):
        PreActBasicBlock(8)(np.zeros((2, 8, 3), "float32"))
