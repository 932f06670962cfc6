import numpy as np
import pytest
from keras import ops

from agekeras.layers import ResNeXtUnit
from tests.harness import run_layer_test


def test_standard_checks_projection():
    x = np.random.RandomState(0).randn(2, 7, 7, 8).astype("float32")
    run_layer_test(
        ResNeXtUnit, {"filters": 16, "strides": 2, "cardinality": 4}, x,
        expected_output_shape=(2, 4, 4, 16),
        expected_num_trainable_weights=12,  # 3 conv + 3 BN*2 + shortcut conv + BN*2
    )


def test_standard_checks_identity():
    x = np.random.RandomState(0).randn(2, 5, 6, 16).astype("float32")
    layer = run_layer_test(
        ResNeXtUnit, {"filters": 16, "cardinality": 4, "bottleneck_width": 8}, x,
        expected_output_shape=(2, 5, 6, 16), expected_num_trainable_weights=9,
    )
    # Grouped 3x3 convolution: each of the 4 groups sees 8 / 4 = 2 input channels.
    assert tuple(layer.conv2.kernel.shape) == (3, 3, 2, 8)


def test_grouped_conv_matches_numpy_blocks():
    """The grouped convolution equals G independent convolutions on channel slices
    (Xie et al., Fig. 3(a) == Fig. 3(c))."""
    rng = np.random.RandomState(1)
    unit = ResNeXtUnit(8, cardinality=4, bottleneck_width=8)
    unit.build((None, 5, 5, 8))
    x = rng.randn(2, 5, 5, 8).astype("float32")
    got = ops.convert_to_numpy(unit.conv2(x))
    k = ops.convert_to_numpy(unit.conv2.kernel)  # (3, 3, 2, 8)
    pad = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    want = np.zeros((2, 5, 5, 8))
    for g in range(4):
        xs, ks = pad[..., 2 * g:2 * g + 2], k[..., 2 * g:2 * g + 2]
        for i in range(3):
            for j in range(3):
                want[..., 2 * g:2 * g + 2] += xs[:, i:i + 5, j:j + 5, :] @ ks[i, j]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_output_is_post_activation_non_negative():
    y = ops.convert_to_numpy(ResNeXtUnit(8, cardinality=2)(np.random.randn(2, 4, 4, 8).astype("float32")))
    assert y.min() >= 0.0 and y.max() > 0.0


def test_rejects_width_not_divisible_and_bad_rank():
    with pytest.raises(ValueError, match="divisible by cardinality"):
        ResNeXtUnit(16, cardinality=3, bottleneck_width=8)
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\)"):
        ResNeXtUnit(8, cardinality=2)(np.zeros((2, 8), "float32"))
