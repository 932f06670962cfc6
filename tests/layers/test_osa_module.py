"""OSAModule (and its ConvBlock, ConvBNReLU): standard checks, NumPy
reference, and "the input and all 5 ConvBlock outputs are concatenated
exactly once"."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from agekeras.layers import ConvBNReLU, OSAModule
from tests.harness import run_layer_test

# ----- NumPy reference (shared with the ROSA / Adaptive Stage tests) ------------------


def np_conv2d(x, kernel, strides=(1, 1), padding="same"):
    """NHWC convolution, no bias, with TensorFlow's "same" padding rule."""
    kh, kw, _, cout = kernel.shape
    (sh, sw) = strides
    b, h, w, _ = x.shape
    if padding == "same":
        oh, ow = math.ceil(h / sh), math.ceil(w / sw)
        ph, pw = max((oh - 1) * sh + kh - h, 0), max((ow - 1) * sw + kw - w, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    else:
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.zeros((b, oh, ow, cout), "float64")
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :]
            out[:, i, j, :] = np.tensordot(patch, kernel, axes=([1, 2, 3], [0, 1, 2]))
    return out


def block_weights(block):
    """NumPy copies of a ConvBNReLU's kernel and BN (gamma, beta, mean, var)."""
    bn = block.bn
    return {
        "kernel": ops.convert_to_numpy(block.conv.kernel).astype("float64"),
        "gamma": ops.convert_to_numpy(bn.gamma),
        "beta": ops.convert_to_numpy(bn.beta),
        "mean": ops.convert_to_numpy(bn.moving_mean),
        "var": ops.convert_to_numpy(bn.moving_variance),
        "eps": bn.epsilon,
        "strides": block.strides,
        "padding": block.padding,
    }


def np_conv_bn_relu(x, w):
    """ReLU(BN(conv(x))) with the moving statistics (inference)."""
    y = np_conv2d(x, w["kernel"], w["strides"], w["padding"])
    y = w["gamma"] * (y - w["mean"]) / np.sqrt(w["var"] + w["eps"]) + w["beta"]
    return np.maximum(y, 0.0)


def np_osa(x, osa, drop=None):
    """OSA of the paper: F_0 = x, F_i = ConvBlock_i(F_{i-1}), y = ConvBlock_1x1(concat(F_0..F_n)).

    `drop=i` replaces member i of the concatenation by zeros (to see that each
    member is used)."""
    feats = [x]
    for conv in osa.convs:
        feats.append(np_conv_bn_relu(feats[-1], block_weights(conv)))
    if drop is not None:
        feats[drop] = np.zeros_like(feats[drop])
    return np_conv_bn_relu(np.concatenate(feats, axis=-1), block_weights(osa.aggregate))


def randomize_bn(layer, seed=0):
    """Give every BatchNormalization inside `layer` random (valid) parameters and statistics."""
    rng = np.random.RandomState(seed)
    for sub in layer._flatten_layers():
        if isinstance(sub, keras.layers.BatchNormalization):
            n = sub.gamma.shape[0]
            sub.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            sub.beta.assign(rng.uniform(-0.2, 0.5, n).astype("float32"))
            sub.moving_mean.assign(rng.uniform(-0.3, 0.3, n).astype("float32"))
            sub.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))


# ----- ConvBNReLU -------------------------------------------------------------------------


def test_conv_bn_relu_standard_checks():
    x = np.random.RandomState(0).randn(2, 7, 7, 3).astype("float32")
    run_layer_test(
        ConvBNReLU,
        {"filters": 5, "kernel_size": 3, "strides": 2},
        x,
        expected_output_shape=(2, 4, 4, 5),
        expected_num_trainable_weights=3,  # kernel (no bias), gamma, beta
        expected_num_non_trainable_weights=2,
    )


@pytest.mark.parametrize("kernel,strides,padding", [(3, 1, "same"), (3, 2, "same"), ((3, 2), (2, 1), "valid"), (1, 1, "same")])
def test_conv_bn_relu_matches_numpy(kernel, strides, padding):
    x = np.random.RandomState(1).randn(2, 9, 8, 3).astype("float32")
    block = ConvBNReLU(4, kernel, strides=strides, padding=padding)
    block.build(x.shape)
    randomize_bn(block)
    got = ops.convert_to_numpy(block(x, training=False))
    np.testing.assert_allclose(got, np_conv_bn_relu(x.astype("float64"), block_weights(block)), rtol=1e-4, atol=1e-5)
    assert got.min() >= 0.0 and (got > 0).any()


def test_conv_bn_relu_rejects_bad_input_and_args():
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\)"):
        ConvBNReLU(4)(np.zeros((2, 8, 3), "float32"))
    with pytest.raises(ValueError, match="filters"):
        ConvBNReLU(0)
    with pytest.raises(ValueError, match="padding"):
        ConvBNReLU(4, padding="causal")


# ----- OSAModule ---------------------------------------------------------------------------


def test_osa_standard_checks():
    x = np.random.RandomState(0).randn(2, 6, 6, 3).astype("float32")
    run_layer_test(
        OSAModule,
        {"filters": 4, "output_filters": 6, "num_convs": 5},
        x,
        expected_output_shape=(2, 6, 6, 6),
        expected_num_trainable_weights=6 * 3,  # 5 ConvBlocks + the 1x1 aggregation
        expected_num_non_trainable_weights=6 * 2,
    )


def test_osa_matches_numpy_reference():
    x = np.random.RandomState(2).randn(2, 5, 6, 3).astype("float32")
    osa = OSAModule(filters=4, output_filters=7)
    osa.build(x.shape)
    randomize_bn(osa, seed=3)
    got = ops.convert_to_numpy(osa(x, training=False))
    np.testing.assert_allclose(got, np_osa(x.astype("float64"), osa), rtol=1e-4, atol=1e-5)


def test_osa_concatenates_input_and_all_five_outputs_exactly_once():
    cin, f, out = 3, 4, 7
    x = np.random.RandomState(4).randn(2, 6, 6, cin).astype("float32")
    osa = OSAModule(filters=f, output_filters=out, num_convs=5)
    osa.build(x.shape)
    randomize_bn(osa, seed=5)

    # Sequential, not dense: each ConvBlock sees only the previous output ...
    assert [tuple(c.conv.kernel.shape) for c in osa.convs] == [(3, 3, cin, f)] + [(3, 3, f, f)] * 4
    # ... and one aggregation sees the input + 5 outputs, each once: 3 + 5 * 4 channels.
    assert tuple(osa.aggregate.conv.kernel.shape) == (1, 1, cin + 5 * f, out)
    assert osa.aggregated_channels(cin) == 23

    feats = osa.features(x, training=False)
    assert [tuple(t.shape) for t in feats] == [(2, 6, 6, cin)] + [(2, 6, 6, f)] * 5
    np.testing.assert_array_equal(ops.convert_to_numpy(feats[0]), x)  # member 0 is the input itself

    # Every member of the concatenation feeds the output: zeroing its slice of
    # the aggregation kernel changes the output, exactly as dropping it does.
    full = ops.convert_to_numpy(osa(x, training=False))
    kernel = ops.convert_to_numpy(osa.aggregate.conv.kernel)
    bounds = np.cumsum([0, cin] + [f] * 5)
    for i in range(6):
        k = kernel.copy()
        k[:, :, bounds[i] : bounds[i + 1], :] = 0.0
        osa.aggregate.conv.kernel.assign(k)
        dropped = ops.convert_to_numpy(osa(x, training=False))
        osa.aggregate.conv.kernel.assign(kernel)
        assert np.abs(dropped - full).max() > 1e-4, f"member {i} does not reach the output"
        np.testing.assert_allclose(dropped, np_osa(x.astype("float64"), osa, drop=i), rtol=1e-4, atol=1e-5)


def test_osa_rejects_bad_input_and_args():
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\)"):
        OSAModule(4, 8)(np.zeros((2, 6, 3), "float32"))
    with pytest.raises(ValueError, match="num_convs"):
        OSAModule(4, 8, num_convs=0)
