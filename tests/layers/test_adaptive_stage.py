"""AdaptiveStage: derived kernel/stride rule, several input sizes -> the set
output size, NumPy reference, standard checks."""

import keras
import numpy as np
import pytest
from keras import ops

from agekeras.layers import AdaptiveStage, adaptive_kernel_and_stride
from tests.harness import run_layer_test
from tests.layers.test_osa_module import block_weights, np_conv_bn_relu, randomize_bn


def test_kernel_and_stride_rule_gives_the_output_size_for_every_size():
    for n in range(1, 80):
        for m in range(1, n + 1):
            k, s = adaptive_kernel_and_stride(n, m)
            assert k >= 1 and s >= 1
            assert (n - k) // s + 1 == m, (n, m, k, s)  # "valid" convolution output size
            assert (m - 1) * s + k == n, (n, m, k, s)  # the windows end exactly at the border
    assert adaptive_kernel_and_stride(56, 7) == (8, 8)
    assert adaptive_kernel_and_stride(15, 4) == (6, 3)
    assert adaptive_kernel_and_stride(7, 7) == (1, 1)


def test_adaptive_stage_standard_checks():
    x = np.random.RandomState(0).randn(2, 9, 9, 3).astype("float32")
    layer = run_layer_test(
        AdaptiveStage,
        {"output_size": 3, "filters": 5},
        x,
        expected_output_shape=(2, 3, 3, 5),
        expected_num_trainable_weights=3,
        expected_num_non_trainable_weights=2,
    )
    assert layer.kernel_size == (3, 3) and layer.strides == (3, 3)


@pytest.mark.parametrize("output_size", [1, 2, 4, (3, 2)])
def test_adaptive_stage_maps_several_input_sizes_to_the_set_size(output_size):
    want = output_size if isinstance(output_size, tuple) else (output_size, output_size)
    for h, w in [(4, 4), (7, 5), (8, 8), (15, 9), (16, 16), (30, 30), (33, 12)]:
        x = np.random.RandomState(h).randn(2, h, w, 6).astype("float32")
        stage = AdaptiveStage(output_size)
        y = stage(x)
        assert tuple(y.shape) == (2, *want, 6), (h, w, output_size)
        assert stage.compute_output_shape((None, h, w, 6)) == (None, *want, 6)
        # Symbolic inputs at this size get the same shape.
        assert tuple(AdaptiveStage(output_size)(keras.Input((h, w, 6))).shape) == (None, *want, 6)


def test_adaptive_stage_matches_numpy_reference():
    x = np.random.RandomState(1).randn(2, 15, 11, 4).astype("float32")
    stage = AdaptiveStage(output_size=4, filters=3)
    stage.build(x.shape)
    randomize_bn(stage, seed=2)
    assert stage.kernel_size == (6, 5) and stage.strides == (3, 2)
    got = ops.convert_to_numpy(stage(x, training=False))
    np.testing.assert_allclose(got, np_conv_bn_relu(x.astype("float64"), block_weights(stage.block)), rtol=1e-4, atol=1e-5)
    assert got.shape == (2, 4, 4, 3)


def test_adaptive_stage_rejects_bad_input():
    with pytest.raises(ValueError, match="smaller than the output size"):
        AdaptiveStage(5)(np.zeros((1, 4, 8, 3), "float32"))
    with pytest.raises(ValueError, match="static"):
        AdaptiveStage(2)(keras.Input((None, None, 3)))
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\)"):
        AdaptiveStage(2)(np.zeros((4, 8, 3), "float32"))
    with pytest.raises(ValueError, match="output_size"):
        AdaptiveStage(0)
    with pytest.raises(ValueError, match="filters"):
        AdaptiveStage(2, filters=0)
