import numpy as np
import pytest
from keras import ops

from agekeras.layers import RoRGroup
from agekeras.models.al_resnet import copy_matching_weights, ror_backbone
from tests.harness import run_layer_test


def test_ror_group_standard_checks():
    x = np.random.RandomState(0).randn(2, 8, 8, 4).astype("float32")
    run_layer_test(
        RoRGroup, {"filters": 6, "blocks": 2, "stride": 2, "middle_shortcut": True, "drop_rates": [0.0, 0.1]}, x,
        expected_output_shape=(2, 4, 4, 6),
        # block1: 3 convs + 4 BN params, block2: 2 convs + 4, middle conv + 2 BN params
        expected_num_trainable_weights=7 + 6 + 3,
    )


def _blocks_only(group, x):
    for unit in group.units:
        x = unit(x, training=False)
    return ops.convert_to_numpy(x)


def test_identity_middle_shortcut_adds_the_group_input():
    x = np.random.RandomState(1).randn(2, 5, 5, 4).astype("float32")
    group = RoRGroup(4, blocks=3, stride=1)
    y = ops.convert_to_numpy(group(x, training=False))
    assert group.shortcut_conv is None
    np.testing.assert_allclose(y, _blocks_only(group, x) + x, atol=1e-5)


def test_projection_middle_shortcut_is_strided_1x1_conv_bn():
    rng = np.random.RandomState(2)
    x = rng.randn(2, 6, 6, 3).astype("float32")
    group = RoRGroup(5, blocks=2, stride=2)
    group.build(x.shape)
    bn = group.shortcut_bn
    bn.moving_mean.assign(rng.randn(5).astype("float32"))
    bn.gamma.assign(rng.uniform(0.5, 2, 5).astype("float32"))
    y = ops.convert_to_numpy(group(x, training=False))
    kernel = ops.convert_to_numpy(group.shortcut_conv.kernel)[0, 0]  # (3, 5)
    proj = np.einsum("nhwc,co->nhwo", x[:, ::2, ::2].astype("float64"), kernel)
    gamma, beta, mean, var = (ops.convert_to_numpy(w) for w in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance))
    proj = (proj - mean) / np.sqrt(var + bn.epsilon) * gamma + beta
    np.testing.assert_allclose(y, _blocks_only(group, x) + proj, atol=1e-4)


def test_removing_middle_shortcut_changes_output():
    x = np.random.RandomState(3).randn(2, 4, 4, 4).astype("float32")
    with_mid = RoRGroup(4, blocks=2)
    without = RoRGroup(4, blocks=2, middle_shortcut=False)
    with_mid.build(x.shape)
    without.build(x.shape)
    without.set_weights(with_mid.get_weights())  # same blocks, shortcut aside
    a = ops.convert_to_numpy(with_mid(x, training=False))
    b = ops.convert_to_numpy(without(x, training=False))
    np.testing.assert_allclose(a - b, x, atol=1e-5)


def _small_backbone(**kw):
    return ror_backbone((32, 32, 3), blocks=(1, 1, 1, 1), filters=(4, 6, 8, 8), **kw)


def test_root_and_middle_shortcuts_exist_and_matter_in_the_backbone():
    x = np.random.RandomState(4).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    full = _small_backbone()
    root = full.get_layer("root_conv")
    assert root.strides == (8, 8) and root.kernel.shape == (1, 1, 4, 8)
    assert full.output.shape[1:] == (1, 1, 8)
    ref = ops.convert_to_numpy(full(x, training=False))
    for kw in ({"root_shortcut": False}, {"middle_shortcuts": False}):
        ablated = _small_backbone(**kw)
        copied = copy_matching_weights(ablated, full)
        assert "stem_conv" in copied and "post_bn" in copied
        out = ops.convert_to_numpy(ablated(x, training=False))
        assert np.abs(out - ref).max() > 1e-3, f"{kw} did not change the output"
    # Parameters of the shortcuts: 1x1 convs + BN (gamma, beta, mean, var).
    bare = _small_backbone(root_shortcut=False, middle_shortcuts=False)
    mid = 4 * 6 + 6 * 8 + 8 * 8 + 4 * (6 + 8 + 8)
    assert full.count_params() - bare.count_params() == mid + 4 * 8 + 4 * 8


def test_group_rejects_bad_arguments():
    with pytest.raises(ValueError, match="drop_rates"):
        RoRGroup(8, blocks=2, drop_rates=[0.1])
    with pytest.raises(ValueError, match="blocks"):
        RoRGroup(8, blocks=0)
