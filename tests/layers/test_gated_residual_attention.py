import keras
import numpy as np
import pytest
from keras import ops

from agekeras.layers import GatedResidualAttention
from tests.harness import gradients, run_layer_test

SMALL = {"mask_depth": 2, "num_trunk": 1}


def _x(seed=0, shape=(2, 7, 7, 8)):
    return np.random.RandomState(seed).randn(*shape).astype("float32")


def test_standard_checks_learned_gamma():
    # At 2x2 (the bottom of a depth-2 mask on 7x7) a whole residual unit can
    # be ReLU-dead for some initialisations (the suite's seed on JAX; seeds
    # 0-2 on one backend or another); seed 3 gives every weight a path on
    # TF, JAX and PyTorch.
    keras.utils.set_random_seed(3)
    run_layer_test(
        GatedResidualAttention, {**SMALL, "gamma": 0.3, "attention": "spatial"}, _x(),
        expected_output_shape=(2, 7, 7, 8),
        # units: 1 pre + 1 trunk + 1 post (9 weights each); mask branch 52; gamma 1
        expected_num_trainable_weights=3 * 9 + 52 + 1,
    )


def test_standard_checks_resnext_fixed_residual():
    layer = run_layer_test(
        GatedResidualAttention,
        {"mask_depth": 1, "num_trunk": 1, "unit": "resnext", "cardinality": 4, "gamma_mode": "fixed",
         "gamma": 0.0, "fusion": "residual"},
        _x(shape=(2, 6, 6, 8)),
        expected_output_shape=(2, 6, 6, 8),
    )
    assert layer.gamma_logit is None and "gamma_logit" not in " ".join(w.path for w in layer.weights)


@pytest.mark.parametrize("fusion", ["gated", "residual"])
@pytest.mark.parametrize("mode,gamma", [("learned", 0.3), ("fixed", 0.0), ("fixed", 1.0), ("fixed", 0.6)])
def test_gate_matches_numpy_eq3(fusion, mode, gamma):
    """O = (gamma + (1 - gamma) M) F (Eq. 3), M = K or 1 + K, then the post units."""
    layer = GatedResidualAttention(**SMALL, gamma_mode=mode, gamma=gamma, fusion=fusion)
    x = _x(1)
    got = ops.convert_to_numpy(layer(x, training=False))
    f, k = (ops.convert_to_numpy(t).astype("float64") for t in layer.branches(x, training=False))
    m = k if fusion == "gated" else 1.0 + k
    o = (gamma + (1.0 - gamma) * m) * f
    want = ops.convert_to_numpy(layer.post_units[0](o.astype("float32"), training=False))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(float(layer.gamma_value()), gamma, rtol=1e-6)


def _mask_weights(layer):
    return [w for w in layer.trainable_weights if "/soft_mask/" in w.path or w.path.startswith("soft_mask")]


def test_gamma_one_makes_output_independent_of_mask():
    x = _x(2)
    layer = GatedResidualAttention(**SMALL, gamma_mode="fixed", gamma=1.0)
    before = ops.convert_to_numpy(layer(x, training=False))
    mask_weights = _mask_weights(layer)
    assert len(mask_weights) == 52
    # No gradient flows into the mask branch...
    grads = gradients(lambda t: layer(t, training=False), x, mask_weights)
    assert all(g is None or not np.any(ops.convert_to_numpy(g)) for g in grads)
    # ...and scrambling it leaves the output unchanged.
    rng = np.random.RandomState(0)
    for w in mask_weights:
        w.assign(rng.randn(*w.shape).astype("float32"))
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x, training=False)), before, atol=1e-6)


def test_gamma_zero_output_depends_on_mask():
    x = _x(3)
    layer = GatedResidualAttention(**SMALL, gamma_mode="fixed", gamma=0.0)
    before = ops.convert_to_numpy(layer(x, training=False))
    layer.mask_branch.conv2.bias.assign(np.full(layer.mask_branch.conv2.bias.shape, 3.0, "float32"))
    assert np.abs(ops.convert_to_numpy(layer(x, training=False)) - before).max() > 1e-3


def test_learned_gamma_gets_gradient_and_changes_output():
    """Regression test for the public Keras port whose gated output is overwritten
    (so gamma never reaches the loss)."""
    x = _x(4)
    layer = GatedResidualAttention(**SMALL, gamma=0.5)
    out = ops.convert_to_numpy(layer(x, training=False))
    (g,) = gradients(lambda t: layer(t, training=False), x, [layer.gamma_logit])
    assert g is not None and abs(float(ops.convert_to_numpy(g))) > 1e-6
    layer.gamma_logit.assign(2.0)
    assert np.abs(ops.convert_to_numpy(layer(x, training=False)) - out).max() > 1e-3


def test_learned_gamma_stays_in_unit_interval_after_training():
    x = _x(5, (4, 8, 8, 8))
    inputs = keras.Input((8, 8, 8))
    layer = GatedResidualAttention(mask_depth=1, num_trunk=1, gamma=0.5)
    model = keras.Model(inputs, layer(inputs))
    target = np.full((4, 8, 8, 8), 50.0, "float32")
    # A large learning rate drives the free parameter far; gamma must stay in [0, 1].
    model.compile(optimizer=keras.optimizers.Adam(0.5), loss="mse", run_eagerly=True)
    start = float(layer.gamma_value())
    model.fit(x, target, epochs=6, batch_size=4, verbose=0)
    gamma = float(layer.gamma_value())
    assert 0.0 <= gamma <= 1.0 and np.isfinite(gamma)
    assert abs(gamma - start) > 1e-4


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"gamma_mode": "learned", "gamma": 0.0}, "strictly inside"),
        ({"gamma_mode": "learned", "gamma": 1.0}, "strictly inside"),
        ({"gamma_mode": "fixed", "gamma": 1.5}, r"\[0, 1\]"),
        ({"gamma_mode": "trainable"}, "gamma_mode"),
        ({"fusion": "concat"}, "fusion"),
        ({"attention": "softmax"}, "attention"),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GatedResidualAttention(**kwargs)


def test_rejects_bad_rank():
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\)"):
        GatedResidualAttention()(np.zeros((2, 8), "float32"))


@pytest.mark.parametrize("gamma", [0.0, 0.5])
def test_wiring_mask_reads_the_pre_unit_output_not_the_trunk(gamma):
    """Y = post((gamma + (1 - gamma) K(X')) * trunk(X')), X' = pre(X), wired here from the
    module's units called one by one (not from `branches`/`gate`): a mask branch fed the
    trunk's output instead of X' fails this test."""
    layer = GatedResidualAttention(mask_depth=2, num_trunk=2, gamma_mode="fixed", gamma=gamma)
    x = _x(5, shape=(2, 8, 8, 8))
    got = ops.convert_to_numpy(layer(x, training=False)).astype("float64")

    def run(u, a):
        return ops.convert_to_numpy(u(np.asarray(a, "float32"), training=False)).astype("float64")

    pre = run(layer.pre_units[0], x)
    trunk = run(layer.trunk_units[1], run(layer.trunk_units[0], pre))
    mask = run(layer.mask_branch, pre)
    want = run(layer.post_units[0], (gamma + (1.0 - gamma) * mask) * trunk)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    wrong = run(layer.post_units[0], (gamma + (1.0 - gamma) * run(layer.mask_branch, trunk)) * trunk)
    assert np.abs(wrong - want).max() > 100 * 1e-4  # the mutant's output is far outside the tolerance
