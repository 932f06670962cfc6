import os
import tempfile

import keras
import numpy as np
import pytest
from keras import ops

import agekeras
from agekeras.layers import GatedResidualAttention
from agekeras.models import compile_args, entry, make_targets
from agekeras.models.gra_net import (
    DECADES,
    GroupedAgeHead,
    attention_maps,
    attention_modules,
    group_targets,
    learned_gammas,
)

TINY = {"base_filters": 8}
# Trainable parameters of the full-width models (base_filters=64); they do not
# depend on the input size nor on num_classes (the groups come from the edges).
ATTENTION56_PARAMS = 29_808_601
ATTENTION92_PARAMS = 50_466_780


def _count(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def test_registered_with_targets_and_losses():
    names = agekeras.models.available(paper="gra_net")
    assert names == ["gra_net", "residual_attention56"]
    for name in names:
        e = entry(name)
        assert e.targets is group_targets and "age" in e.losses


def test_group_targets_use_the_model_edges():
    labels = {"age": np.array([0, 9, 10, 19.5, 20, 95, 116], "float32")}
    np.testing.assert_array_equal(np.asarray(group_targets(labels)["group_probs"]), [0, 0, 1, 1, 2, 9, 9])
    got = group_targets(labels, group_edges=(18, 40), depth=92, attention="spatial")["group_probs"]
    np.testing.assert_array_equal(np.asarray(got), [0, 0, 0, 1, 1, 2, 2])


def test_grouped_age_head_matches_numpy():
    x = np.random.RandomState(0).randn(5, 6).astype("float32")
    head = GroupedAgeHead(group_edges=(10, 30), age_min=2, age_max=70)
    probs, age = (ops.convert_to_numpy(t) for t in head(x))
    wc, bc, wr, br = (ops.convert_to_numpy(v) for v in (head.cls_kernel, head.cls_bias, head.reg_kernel, head.reg_bias))
    logits = x @ wc + bc
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    t = 1.0 / (1.0 + np.exp(-(x @ wr + br)))
    lo, hi = np.array([2.0, 10, 30]), np.array([10.0, 30, 70])
    np.testing.assert_allclose(probs, p, rtol=1e-5)
    np.testing.assert_allclose(age, (p * (lo + t * (hi - lo))).sum(-1), rtol=1e-5)
    assert np.all((age > 2) & (age < 70))


@pytest.mark.slow
def test_parameter_counts_attention56_and_92():
    a56 = agekeras.models.get("gra_net", input_shape=(32, 32, 3), num_classes=116, age_min=1)
    assert _count(a56) == ATTENTION56_PARAMS
    assert [m.mask_depth for m in attention_modules(a56)] == [3, 2, 1]
    a92 = agekeras.models.get("gra_net", input_shape=(32, 32, 3), depth=92)
    assert _count(a92) == ATTENTION92_PARAMS
    assert [m.mask_depth for m in attention_modules(a92)] == [3, 2, 2, 1, 1, 1]
    ran = agekeras.models.get("residual_attention56", input_shape=(32, 32, 3))
    # Same network minus the three learned gammas.
    assert _count(ran) == ATTENTION56_PARAMS - 3


def test_residual_attention56_is_the_one_plus_mask_baseline_and_trains():
    model = agekeras.models.get("residual_attention56", input_shape=(32, 32, 3), num_classes=90, age_min=1, **TINY)
    for m in attention_modules(model):
        assert (m.fusion, m.gamma_mode, m.gamma) == ("residual", "fixed", 0.0)
    assert set(learned_gammas(model).values()) == {0.0}
    e = entry("residual_attention56")
    # One eager Nadam step (the paper's optimizer); the graph path is tested on gra_net.
    model.compile(optimizer=keras.optimizers.Nadam(1e-3), run_eagerly=True,
                  **compile_args(model, head_is_regression=True, overrides=e.losses))
    x = np.random.RandomState(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    y = make_targets(model.output.keys(), 1, 90, lambda lab: e.targets(lab))(
        {"age": np.array([5, 33, 47, 88], "float32"), "gender": np.array([1, 0, 1, 0])}
    )
    np.testing.assert_array_equal(np.asarray(y["group_probs"]), [0, 3, 4, 8])
    kernel = model.get_layer("gender_head").kernel
    before = kernel.numpy().copy()
    hist = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0]) and not np.allclose(before, kernel.numpy())


@pytest.mark.slow
def test_gra_net_trains_one_step_saves_and_loads():
    kwargs = {**TINY, "attention": "spatial", "group_edges": (20, 40)}
    model = agekeras.models.get("gra_net", input_shape=(32, 32, 3), num_classes=60, age_min=10, **kwargs)
    assert set(model.output) == {"age", "group_probs", "gender_probs"}
    e = entry("gra_net")
    # Clipped plain SGD: Keras traces one update graph per variable (~340
    # here) and Nadam's takes ~3x longer to trace; the optimizer is not what
    # is tested. Unclipped SGD is not usable on this network: at init the
    # stem's gradient is in the thousands (multiplicative masks on an
    # un-normalised pre-activation residual stream); Nadam, the paper's
    # optimizer, takes bounded steps.
    model.compile(
        optimizer=keras.optimizers.SGD(1e-2, clipnorm=1.0),
        **compile_args(model, head_is_regression=True, overrides=e.losses),
    )
    x = np.random.RandomState(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    labels = {"age": np.array([12, 25, 45, 60], "float32"), "gender": np.array([0, 1, -1, 1])}
    y = make_targets(model.output.keys(), 10, 60, lambda lab: e.targets(lab, **kwargs))(labels)
    np.testing.assert_array_equal(np.asarray(y["group_probs"]), [0, 1, 2, 2])
    gammas = {m.name: m.gamma_logit.numpy().copy() for m in attention_modules(model)}
    hist = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    for m in attention_modules(model):  # every learned gamma moved, and stays in [0, 1]
        assert m.gamma_logit.numpy() != gammas[m.name]
        assert 0.0 < float(m.gamma_value()) < 1.0
    out = model.predict(x, verbose=0)
    assert out["age"].shape == (4,) and out["group_probs"].shape == (4, 3)
    assert np.all((out["age"] >= 10) & (out["age"] <= 69))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0)["age"], out["age"], rtol=1e-4)
    maps = attention_maps(model, x[:2])
    assert list(maps) == ["attention1_1", "attention2_1", "attention3_1"]
    for m in maps.values():
        assert m.shape == (2, 32, 32) and m.min() >= 0 and m.max() <= 1


def test_resnext_variant_and_odd_input_size():
    model = agekeras.models.get("gra_net", input_shape=(40, 36, 3), unit="resnext", cardinality=4, **TINY)
    out = model(np.zeros((2, 40, 36, 3), "float32"))
    assert out["age"].shape == (2,) and out["gender_probs"].shape == (2, 2)
    assert out["group_probs"].shape == (2, len(DECADES) + 1)
    assert all(isinstance(m, GatedResidualAttention) and m.unit == "resnext" for m in attention_modules(model))


def test_bad_arguments():
    with pytest.raises(ValueError, match="depth"):
        agekeras.models.get("gra_net", depth=50)
    with pytest.raises(ValueError, match=r"\(height, width, 3\)"):
        agekeras.models.get("gra_net", input_shape=(32, 32))
    with pytest.raises(ValueError, match="at least 32x32"):
        agekeras.models.get("gra_net", input_shape=(16, 16, 3))
    with pytest.raises(ValueError, match="increasing"):
        GroupedAgeHead(group_edges=(30, 20))
