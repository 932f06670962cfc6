"""VoVNetv4 paper models: build, one training step, exact parameter counts,
every ROSA region reaching the second aggregation, CORAL monotonicity."""

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keras import ops

import agekeras
import agekeras.ages
from agekeras.layers import coral_probabilities
from agekeras.models import compile_args, make_targets
from agekeras.models import vovnet as V
from tests.layers.test_rosa_stage import conv_bn_params, osa_params, rosa_params

SHAPE = (32, 32, 3)
K = 12  # ages 15..26
RESNET34_BACKBONE = 21_301_696  # keras-cv ResNet-34 backbone (tests/models/test_baselines.py)


def stem_params():
    return conv_bn_params(3, 3, 64) + conv_bn_params(3, 64, 64) + conv_bn_params(3, 64, 128)


def vovnet_params(depth, k=K):
    cfg = V.VOVNET_CONFIGS[depth]
    total, c = stem_params(), 128
    for f, out, blocks in zip(cfg["stage_filters"], cfg["output_filters"], cfg["blocks"]):
        for _ in range(blocks):
            total += osa_params(c, f, out)
            c = out
    return total + c + (k - 1)  # CORAL: one shared weight vector + K-1 biases


def vovnetv4_params(region_sizes, out_size, k=K):
    widths = (256, 512, 768, 1024)
    total = stem_params() + rosa_params(128, (128, 160, 192, 224), widths, (1, 1, 4, 3))
    for n, c in zip(region_sizes, widths):
        total += conv_bn_params(n - (out_size - 1) * (n // out_size), c, c)  # square adaptive kernel
    return total + sum(widths) + (k - 1)


EXPECTED_PARAMS = {  # at 32x32x3, K = 12
    "vovnet39": 21_596_747,
    "vovnet57": 35_647_947,
    "vovnetv4": 48_379_851,
    "resnet34_ce": RESNET34_BACKBONE + 512 * K + K,
    "resnet34_coral": RESNET34_BACKBONE + 512 + K - 1,
    "resnet34_orcnn": RESNET34_BACKBONE + 512 * (K - 1) + K - 1,  # one weight vector per task
}


@pytest.fixture(scope="module")
def v4():
    keras.utils.set_random_seed(0)
    return agekeras.models.get("vovnetv4", input_shape=SHAPE, num_classes=K, age_min=15)


def test_registry_names_and_reuse_of_resnet34_coral():
    assert agekeras.models.available(paper="vovnetv4") == [
        "resnet34_ce", "resnet34_orcnn", "vovnet39", "vovnet57", "vovnetv4", "vovnetv4_dex"
    ]
    assert agekeras.models.entry("resnet34_coral").paper == "foundation"  # reused, not re-registered
    assert {"resnet34_coral", "vovnet57", "vovnetv4"} <= set(agekeras.models.available())


@pytest.mark.parametrize("name", ["vovnet39", "vovnet57", "resnet34_ce", "resnet34_coral", "resnet34_orcnn"])
def test_parameter_counts(name):
    model = agekeras.models.get(name, input_shape=SHAPE, num_classes=K, age_min=15)
    assert model.count_params() == EXPECTED_PARAMS[name]
    if name.startswith("vovnet"):
        assert model.count_params() == vovnet_params(int(name[-2:]))
        assert model.get_layer("embedding").output.shape == (None, 1024)
    outputs = {"age", "age_probs"} if name == "resnet34_ce" else {"age", "age_logits"}
    assert set(model.output) == outputs


def test_vovnetv4_structure_and_parameter_count(v4):
    regions = v4.get_layer("rosa").output
    assert [tuple(r.shape) for r in regions] == [(None, 8, 8, 256), (None, 4, 4, 512), (None, 2, 2, 768), (None, 1, 1, 1024)]
    assert [v4.get_layer(f"adaptive_{i}").kernel_size for i in range(1, 5)] == [(8, 8), (4, 4), (2, 2), (1, 1)]
    assert tuple(v4.get_layer("second_aggregation").output.shape) == (None, 1, 1, 2560)
    assert v4.count_params() == EXPECTED_PARAMS["vovnetv4"] == vovnetv4_params((8, 4, 2, 1), 1)
    # At 64 px the set size is the last region's (2 x 2), and the kernels change.
    big = agekeras.models.get("vovnetv4", input_shape=(64, 64, 3), num_classes=K)
    assert tuple(big.get_layer("second_aggregation").output.shape) == (None, 2, 2, 2560)
    assert big.count_params() == vovnetv4_params((16, 8, 4, 2), 2)


def _train_one_step(model, n=4):
    model.compile(optimizer=keras.optimizers.Adam(1e-3), **compile_args(model))
    x = np.random.RandomState(0).uniform(0, 255, (n, *SHAPE)).astype("float32")
    ages = np.array([15, 18, 22, 26, 16, 30][:n], "float32")
    y = make_targets(model.output.keys(), 15, K)({"age": ages})
    before = [ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    hist = model.fit(x, y, batch_size=n, epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    changed = [not np.allclose(b, ops.convert_to_numpy(w)) for b, w in zip(before, model.trainable_weights)]
    assert np.mean(changed) > 0.9, f"only {np.mean(changed):.0%} of the weights moved"
    age = model.predict(x, verbose=0)["age"]
    assert age.shape == (n,) and np.all((age >= 15) & (age <= 15 + K - 1))
    return x


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vovnet39", "resnet34_ce"])
def test_models_train_one_step(name):
    _train_one_step(agekeras.models.get(name, input_shape=SHAPE, num_classes=K, age_min=15))


@pytest.mark.slow
def test_vovnetv4_trains_one_step_and_stays_rank_consistent(tmp_path):
    model = agekeras.models.get("vovnetv4", input_shape=SHAPE, num_classes=K, age_min=15)
    x = _train_one_step(model)
    bias = ops.convert_to_numpy(model.get_layer("coral_head").bias)
    assert np.all(np.diff(bias) < 0), bias
    p = ops.convert_to_numpy(coral_probabilities(model(x)["age_logits"]))
    assert np.all(np.diff(p, axis=1) <= 1e-7)
    path = tmp_path / "v4.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        ops.convert_to_numpy(loaded(x)["age_logits"]), ops.convert_to_numpy(model(x)["age_logits"]), atol=1e-4
    )


def test_every_region_reaches_the_final_concatenation(v4):
    """Zeroing one ROSA region's output changes the head's input (the pooled
    second aggregation) in that region's channels, and only there."""
    x = np.random.RandomState(1).uniform(0, 255, (2, *SHAPE)).astype("float32")
    embed = keras.Model(v4.input, v4.get_layer("embedding").output)
    stem_out = keras.Model(v4.input, v4.get_layer("rosa").input)(x)
    regions = v4.get_layer("rosa")(stem_out, training=False)

    def head_input(rs):
        smoothed = [v4.get_layer(f"adaptive_{i + 1}")(r, training=False) for i, r in enumerate(rs)]
        return ops.convert_to_numpy(ops.mean(v4.get_layer("second_aggregation")(smoothed), axis=(1, 2)))

    base = head_input(regions)
    np.testing.assert_allclose(base, ops.convert_to_numpy(embed(x, training=False)), rtol=1e-5, atol=1e-5)
    bounds = np.cumsum([0, 256, 512, 768, 1024])
    for i in range(4):
        zeroed = [ops.zeros_like(r) if j == i else r for j, r in enumerate(regions)]
        got = head_input(zeroed)
        lo, hi = bounds[i], bounds[i + 1]
        assert np.abs(got[:, lo:hi] - base[:, lo:hi]).max() > 1e-3, f"region {i + 1} does not reach the head"
        np.testing.assert_array_equal(np.delete(got, np.s_[lo:hi], 1), np.delete(base, np.s_[lo:hi], 1))


@settings(max_examples=12, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 4),
    scale=st.floats(1e-3, 1e4),
    offset=st.floats(-1e3, 1e3),
    kind=st.sampled_from(["uniform", "normal", "constant"]),
)
def test_vovnetv4_coral_probabilities_non_increasing_for_any_input(v4, seed, batch, scale, offset, kind):
    rng = np.random.RandomState(seed)
    if kind == "uniform":
        x = rng.uniform(0, scale, (batch, *SHAPE)) + offset
    elif kind == "normal":
        x = rng.randn(batch, *SHAPE) * scale + offset
    else:
        x = np.full((batch, *SHAPE), offset)
    logits = v4(x.astype("float32"), training=False)["age_logits"]
    p = ops.convert_to_numpy(coral_probabilities(logits))
    assert p.shape == (batch, K - 1)
    assert np.all(np.diff(p, axis=1) <= 1e-7), p
    # Rank consistency comes from the shared weight vector: the logits of two
    # tasks differ by the difference of their biases, whatever the input.
    bias = ops.convert_to_numpy(v4.get_layer("coral_head").bias)
    logits = ops.convert_to_numpy(logits)
    np.testing.assert_allclose(logits - logits[:, :1], np.broadcast_to(bias - bias[0], logits.shape), atol=1e-3)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match=r"\(height, width, 3\)"):
        agekeras.models.get("vovnet39", input_shape=(16, 16, 3))
    with pytest.raises(ValueError, match=r"\(height, width, 3\)"):
        agekeras.models.get("vovnetv4", input_shape=(64, 64))
    with pytest.raises(ValueError, match="adaptive_filters"):
        agekeras.models.get("vovnetv4", input_shape=SHAPE, adaptive_filters=(8, 8))
    with pytest.raises(ValueError, match="depth"):
        V.vovnet_features(50)


PRIOR_BUILDERS = ["vovnetv4", "vovnet39", "vovnet57", "resnet34_ce", "resnet34_orcnn", "resnet18_coral",
                  "resnet34_coral", "resnet50_coral", "resnet18_dex", "resnet34_dex", "resnet50_dex"]


@pytest.mark.parametrize("name", PRIOR_BUILDERS)
def test_builders_accept_the_label_prior(name):
    """`agekeras.training.build_model` passes `age_prior` to exactly these builders."""
    import inspect

    assert "age_prior" in inspect.signature(agekeras.models.entry(name).builder).parameters
    assert "age_prior" not in inspect.signature(agekeras.models.entry("resnet18_regression").builder).parameters


@pytest.mark.parametrize("name,head", [("resnet34_orcnn", "orcnn_head"), ("vovnet39", "coral_head")])
def test_prior_reaches_the_head_and_an_all_zero_feature_decodes_to_the_median(name, head):
    ages = np.r_[np.full(30, 16), np.full(50, 20), np.full(20, 25)]  # median 20
    prior = agekeras.ages.age_prior(ages, 15, K)
    model = agekeras.models.get(name, input_shape=SHAPE, num_classes=K, age_min=15, age_prior=prior.tolist())
    bias = ops.convert_to_numpy(model.get_layer(head).bias)
    np.testing.assert_allclose(bias, agekeras.layers.coral_prior_bias(prior), rtol=1e-5, atol=1e-5)
    decode = model.get_layer(head.replace("head", "age"))
    zero_logits = ops.convert_to_numpy(model.get_layer(head)(np.zeros((1, 512 if name.startswith("resnet") else 1024),
                                                                     "float32")))
    assert float(ops.convert_to_numpy(decode(zero_logits))[0]) == 20.0


def test_orcnn_model_is_not_rank_consistent_by_construction():
    keras.utils.set_random_seed(3)
    model = agekeras.models.get("resnet34_orcnn", input_shape=SHAPE, num_classes=K, age_min=15)
    x = np.random.RandomState(3).uniform(0, 255, (8, *SHAPE)).astype("float32")
    logits = ops.convert_to_numpy(model(x, training=False)["age_logits"])
    diffs = logits - logits[:, :1]
    assert np.abs(diffs - diffs[:1]).max() > 1e-4  # no shared weight vector


def test_vovnetv4_dex_changes_the_head_alone():
    """CORAL versus softmax on the same network: only the head's parameters differ."""
    coral = agekeras.models.get("vovnetv4", input_shape=(64, 64, 3), num_classes=26)
    dex = agekeras.models.get("vovnetv4_dex", input_shape=(64, 64, 3), num_classes=26)
    d = coral.get_layer("embedding").output.shape[-1]
    assert dex.count_params() - coral.count_params() == (d * 26 + 26) - (d + 25)  # DEX: d x K + K; CORAL: d + K - 1
    assert set(dex.output) == {"age", "age_probs"} and set(coral.output) == {"age", "age_logits"}
