"""ROSAStage: standard checks, NumPy reference, cycle counts honoured."""

import collections

import numpy as np
import pytest
from keras import ops

from agekeras.layers import OSAModule, ROSAStage
from tests.harness import run_layer_test
from tests.layers.test_osa_module import block_weights, np_conv_bn_relu, np_osa, randomize_bn

SMALL = dict(stage_filters=(3, 4, 4, 5), output_filters=(4, 5, 6, 7))


def np_maxpool_3x3_s2_same(x):
    b, h, w, c = x.shape
    oh, ow = -(-h // 2), -(-w // 2)
    ph, pw = max((oh - 1) * 2 + 3 - h, 0), max((ow - 1) * 2 + 3 - w, 0)
    x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), constant_values=-np.inf)
    return np.stack(
        [np.stack([x[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].max(axis=(1, 2)) for j in range(ow)], 1) for i in range(oh)],
        1,
    )


def np_rosa(x, stage):
    """R_1 = OSA^c1(x); R_r = OSA^cr(MaxPool(ConvBlock_1x1(R_{r-1})))."""
    regions = []
    for r, order in enumerate(stage.schedule):
        if r > 0:
            x = np_maxpool_3x3_s2_same(np_conv_bn_relu(x, block_weights(stage.transitions[r - 1])))
        for i in order:
            x = np_osa(x, stage.osa_modules[i])
        regions.append(x)
    return regions


def conv_bn_params(k, cin, cout):
    return k * k * cin * cout + 4 * cout  # kernel + gamma, beta, moving mean, moving variance


def osa_params(cin, f, out, n=5):
    return conv_bn_params(3, cin, f) + (n - 1) * conv_bn_params(3, f, f) + conv_bn_params(1, cin + n * f, out)


def rosa_params(cin, stage_filters, output_filters, cycles, share=False):
    total, c = 0, cin
    for r, (f, out, cyc) in enumerate(zip(stage_filters, output_filters, cycles)):
        if r > 0:
            total += conv_bn_params(1, c, c)  # width-keeping 1x1 transition
        distinct = min(cyc, 2) if share else cyc
        total += osa_params(c, f, out) + (distinct - 1) * osa_params(out, f, out)
        c = out
    return total


def test_rosa_standard_checks():
    # 16 px: the last region is 2 x 2 (at 1 x 1 with a batch of 2, batch
    # normalisation leaves some 3x3 kernels without gradient).
    x = np.random.RandomState(0).randn(2, 16, 16, 3).astype("float32")
    run_layer_test(
        ROSAStage,
        {**SMALL, "cycles": (1, 1, 2, 1)},
        x,
        expected_output_shape=[(2, 16, 16, 4), (2, 8, 8, 5), (2, 4, 4, 6), (2, 2, 2, 7)],
        expected_num_trainable_weights=5 * 18 + 3 * 3,  # 5 OSA modules, 3 transitions
    )


def test_rosa_matches_numpy_reference():
    x = np.random.RandomState(1).randn(2, 7, 6, 3).astype("float32")
    stage = ROSAStage(**SMALL, cycles=(1, 2, 1, 1))
    stage.build(x.shape)
    randomize_bn(stage, seed=2)
    got = stage(x, training=False)
    want = np_rosa(x.astype("float64"), stage)
    assert [tuple(g.shape) for g in got] == [(2, 7, 6, 4), (2, 4, 3, 5), (2, 2, 2, 6), (2, 1, 1, 7)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(ops.convert_to_numpy(g), w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("share", [False, True])
@pytest.mark.parametrize("cycles", [(1, 1, 4, 3), (2, 1, 1, 3), (1, 3, 1, 1)])
def test_rosa_honours_cycle_counts(cycles, share, monkeypatch):
    x = np.random.RandomState(3).randn(1, 8, 8, 3).astype("float32")
    stage = ROSAStage(**SMALL, cycles=cycles, share_weights=share)
    # Count the OSA module calls of each region in one forward pass.
    calls = collections.Counter()
    original = OSAModule.call

    def counting_call(self, *args, **kwargs):
        calls[self.name.split("_")[0]] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(OSAModule, "call", counting_call)
    stage(x)
    assert [calls[f"region{r + 1}"] for r in range(4)] == list(cycles)
    assert [len(s) for s in stage.schedule] == list(cycles)
    distinct = [len(set(s)) for s in stage.schedule]
    assert distinct == ([min(c, 2) for c in cycles] if share else list(cycles))
    assert len(stage.osa_modules) == sum(distinct)
    # The parameter count is that of exactly those modules (+ 3 transitions).
    assert stage.count_params() == rosa_params(3, SMALL["stage_filters"], SMALL["output_filters"], cycles, share)


def test_rosa_default_is_vovnet57_schedule():
    stage = ROSAStage()
    assert stage.cycles == [1, 1, 4, 3]
    assert stage.stage_filters == [128, 160, 192, 224] and stage.output_filters == [256, 512, 768, 1024]
    assert [len(s) for s in stage.schedule] == [1, 1, 4, 3]
    assert stage.compute_output_shape((None, 16, 16, 128)) == [
        (None, 16, 16, 256),
        (None, 8, 8, 512),
        (None, 4, 4, 768),
        (None, 2, 2, 1024),
    ]


def test_rosa_transition_filters():
    stage = ROSAStage(**SMALL, cycles=(1, 1, 1, 1), transition_filters=(2, 3, 9))
    stage.build((None, 8, 8, 3))
    assert [tuple(t.conv.kernel.shape) for t in stage.transitions] == [(1, 1, 4, 2), (1, 1, 5, 3), (1, 1, 6, 9)]
    assert tuple(stage.osa_modules[1].convs[0].conv.kernel.shape) == (3, 3, 2, 4)


def test_rosa_rejects_bad_arguments():
    with pytest.raises(ValueError, match="one entry per region"):
        ROSAStage(stage_filters=(4, 4, 4), output_filters=(4, 4, 4, 4))
    with pytest.raises(ValueError, match="at least one cycle"):
        ROSAStage(**SMALL, cycles=(1, 0, 1, 1))
    with pytest.raises(ValueError, match="transition_filters"):
        ROSAStage(**SMALL, transition_filters=(4, 4))
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\)"):
        ROSAStage(**SMALL)(np.zeros((8, 8, 3), "float32"))
