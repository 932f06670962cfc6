import keras
import numpy as np
import pytest
from keras import ops

import agekeras
from agekeras.models import compile_args, make_targets
from agekeras.models import al_resnet

# 64 px: the last feature map is 2x2 (at 32 px it is 1x1, and a box on a
# single cell gets no gradient: the locator could not learn).
K, AGE_MIN, SIZE = 20, 10, 64
LSTM_AND_LOCATOR = 4 * (512 + 128 + 1) * 128 + (256 * 4 + 4) + 2 * 128  # + stored h, C
ROR34_BACKBONE = 21_508_800
RESNET34_BACKBONE = 21_301_696  # backbones.resnet_v1(34), as keras-cv's ResNet-34 (tests/models/test_baselines.py)
RESNET152V2_BACKBONE = 58_331_648


def _head(d, k=101):
    return d * k + k


def _images(n=4, seed=0, size=SIZE):
    return np.random.RandomState(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def _fit_one_step(model, n=4):
    model.compile(optimizer=keras.optimizers.Adam(1e-3), **compile_args(model))
    ages = np.linspace(AGE_MIN, AGE_MIN + K - 1, n).astype("float32")
    y = make_targets(model.output.keys(), AGE_MIN, K)({"age": ages})
    trainable = {w.path: w.numpy().copy() for w in model.trainable_weights}
    hist = model.fit(_images(n), y, batch_size=n, epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    return {p for p, w in ((w.path, w) for w in model.trainable_weights) if not np.allclose(trainable[p], w.numpy())}


@pytest.fixture(scope="module")
def al_ror():
    return agekeras.models.get("al_ror34", input_shape=(SIZE, SIZE, 3), num_classes=K, age_min=AGE_MIN)


def test_registry_names():
    names = agekeras.models.available(paper="al_resnet")
    assert names == ["al_resnet152", "al_resnet34", "al_ror34", "ror34_dex"]
    assert "resnet34_dex" in agekeras.models.available()  # the plain ResNet baseline


@pytest.mark.parametrize(
    "name,expected",
    [
        ("ror34_dex", ROR34_BACKBONE + _head(512)),
        ("al_ror34", ROR34_BACKBONE + 2 * _head(512) + LSTM_AND_LOCATOR),
        ("al_resnet34", RESNET34_BACKBONE + 2 * _head(512) + LSTM_AND_LOCATOR),
    ],
)
def test_parameter_counts(name, expected):
    model = agekeras.models.get(name, input_shape=(64, 64, 3), num_classes=101)
    assert model.count_params() == expected
    assert {"ror34_dex": 21_560_613, "al_ror34": 21_941_902, "al_resnet34": 21_734_798}[name] == expected


@pytest.mark.slow
def test_al_resnet152_builds_counts_and_predicts():
    # A fit step of the 152-layer model takes ~45 s on 2 cores: we only check
    # the parameter count and a forward pass (same code path as al_resnet34).
    model = agekeras.models.get("al_resnet152", input_shape=(32, 32, 3), num_classes=K, age_min=AGE_MIN)
    lstm = 4 * (2048 + 128 + 1) * 128 + 1028 + 256
    assert model.count_params() == RESNET152V2_BACKBONE + 2 * _head(2048, K) + lstm
    out = model(_images(2, size=32))
    assert out["age"].shape == (2,) and out["age_probs_local"].shape == (2, K)


@pytest.mark.slow
def test_al_ror34_trains_one_step_and_outputs(al_ror):
    assert set(al_ror.output) == {"age", "age_probs_global", "age_probs_local"}
    changed = _fit_one_step(al_ror)
    assert {"locator/lstm_cell/kernel", "locator/location/kernel", "local_head/kernel"} <= changed
    assert any("group4" in p for p in changed)  # end to end without init_from
    out = al_ror.predict(_images(), verbose=0)
    assert out["age"].shape == (4,) and np.all((out["age"] >= AGE_MIN) & (out["age"] <= AGE_MIN + K - 1))


@pytest.mark.slow
def test_al_resnet34_trains_one_step():
    model = agekeras.models.get("al_resnet34", input_shape=(SIZE, SIZE, 3), num_classes=K, age_min=AGE_MIN)
    assert model.get_layer("resnet34_backbone") is not None
    changed = _fit_one_step(model, n=2)
    assert {"locator/lstm_cell/kernel", "local_head/kernel", "dex_head/kernel"} <= changed


@pytest.mark.slow
def test_two_stage_training_copies_and_freezes(tmp_path):
    # Stage 1 is the plain model, ror34_dex (this is also its one-step training test).
    plain = agekeras.models.get("ror34_dex", input_shape=(SIZE, SIZE, 3), num_classes=K, age_min=AGE_MIN)
    assert "group4/block1/conv1/kernel" in _fit_one_step(plain, n=2)
    path = tmp_path / "stage1.keras"
    plain.save(path)
    stage2 = agekeras.models.get("al_ror34", input_shape=(SIZE, SIZE, 3), num_classes=K, age_min=AGE_MIN,
                                 init_from=str(path), freeze_backbone=True)
    x = _images(3, seed=3)
    np.testing.assert_allclose(stage2.predict(x, verbose=0)["age_probs_global"],
                               plain.predict(x, verbose=0)["age_probs"], atol=1e-5)
    trainable = sorted(w.path.split("/")[0] for w in stage2.trainable_weights)
    assert trainable == ["local_head"] * 2 + ["locator"] * 5
    changed = _fit_one_step(stage2)
    assert changed == {w.path for w in stage2.trainable_weights}  # LSTM, locator, local head all learn
    np.testing.assert_allclose(stage2.predict(x, verbose=0)["age_probs_global"],
                               plain.predict(x, verbose=0)["age_probs"], atol=1e-5)
    # The freeze survives a .keras round trip (resuming stage 2 stays stage 2).
    stage2.save(tmp_path / "stage2.keras")
    revived = keras.saving.load_model(tmp_path / "stage2.keras", safe_mode=True)
    assert sorted(w.path for w in revived.trainable_weights) == sorted(w.path for w in stage2.trainable_weights)
    with pytest.raises(ValueError, match="resnet34_backbone"):
        agekeras.models.get("al_resnet34", input_shape=(SIZE, SIZE, 3), num_classes=K, age_min=AGE_MIN,
                            init_from=str(path))
    with pytest.raises(FileNotFoundError):
        agekeras.models.get("al_ror34", input_shape=(SIZE, SIZE, 3), init_from=str(tmp_path / "nope.keras"))


def test_builders_module_holds_builders_only():
    # Issue 11: the experiment helpers live in agekeras.experiments.al_resnet.
    for moved in ("two_stage_train", "ablation_rows", "ten_crops", "predict_outputs", "no_paper_numbers"):
        assert not hasattr(al_resnet, moved), moved


def test_builders_use_the_one_input_scaling(al_ror):
    scale = al_ror.get_layer("scale")
    assert isinstance(scale, keras.layers.Rescaling)
    x = _images(1)
    np.testing.assert_allclose(ops.convert_to_numpy(scale(x)), x / 127.5 - 1.0, atol=1e-6)


def test_small_input_backbone_ends_in_an_8x8_map_at_64px():
    standard = al_resnet.ror_backbone((64, 64, 3))
    small = al_resnet.ror_backbone((64, 64, 3), small_input=True)
    assert tuple(standard.output.shape) == (None, 2, 2, 512)
    assert tuple(small.output.shape) == (None, 8, 8, 512)  # the paper's map is 7 x 7 (224 px)
    assert small.count_params() == standard.count_params()  # same weights, strides differ
    model = agekeras.models.get("al_ror34", input_shape=(64, 64, 3), num_classes=K, age_min=AGE_MIN,
                                small_input=True)
    assert tuple(model.get_layer("feature_crop").input[0].shape) == (None, 8, 8, 512)
    assert model.predict(_images(2), verbose=0)["age"].shape == (2,)
