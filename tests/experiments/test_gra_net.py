import numpy as np
import pytest

import agekeras
from agekeras import tables
from agekeras.experiments import gra_net as E
from agekeras.models import entry, make_targets

TINY = {"base_filters": 8}


def _batch(n=8, size=32, seed=0):
    rng = np.random.RandomState(seed)
    x = rng.uniform(0, 255, (n, size, size, 3)).astype("float32")
    labels = {"age": rng.uniform(1, 80, n).astype("float32"), "gender": rng.randint(0, 2, n)}
    return x, labels


def _model(**kwargs):
    return agekeras.models.get("gra_net", input_shape=(32, 32, 3), num_classes=80, age_min=1, **{**TINY, **kwargs})


def test_prior_work_is_quoted_with_its_setting_and_never_as_gra_net():
    rows = E.prior_work_rows()
    assert len(rows) == len(E.PRIOR_WORK) == 8
    assert not any("GRA_Net" in r["method"] for r in rows)
    for r in rows:
        assert r["table"] and r["dataset"] and r["protocol"] and r["pretraining"]
    utk = {r["method"]: r for r in E.prior_work_rows(E.UTKFACE_PRIOR_WORK)}
    assert utk["two-stage modified MobileNet (Savchenko 2019)"]["MAE"] == 5.44
    assert all(r["dataset"] == "UTKFace" for r in utk.values())
    text = tables.results_table(rows, settings=E.PRIOR_WORK_SETTINGS).to_markdown()
    assert "98.7" not in text and "0.99" in text and "MORPH-II" in text  # fractions, two decimals


def test_variants_cover_the_attention_types_and_the_two_gate_ends():
    assert {v.get("attention") for v in E.FIG4_VARIANTS.values()} == {"mixed", "channel", "spatial"}
    fixed = sorted(v["gamma"] for v in E.FIG4_VARIANTS.values() if v.get("gamma_mode") == "fixed")
    assert fixed == [0.0, 1.0]
    assert E.run_name("mixed, gamma fixed 0") == "mixed_gamma_fixed_0"
    assert E.run_name("mixed, no gate: (1 + K) F") == "mixed_no_gate_1_K_F"  # a folder name on any system
    rows = E.variant_result_rows({"a": {"mae": 7.0, "gender_accuracy": 0.8}}, dataset="d", size=32)
    assert rows == [{"method": "a", "MAE": 7.0, "gender acc": 0.8, "dataset": "d", "size": 32}]


def test_attention_maps_gammas_and_saturation():
    model = _model(attention="spatial")
    x, _ = _batch(2)
    assert [m.name for m in E.attention_modules(model)] == ["attention1_1", "attention2_1", "attention3_1"]
    assert E.learned_gammas(model) == pytest.approx({"attention1_1": 0.5, "attention2_1": 0.5, "attention3_1": 0.5})
    maps = E.attention_maps(model, x)
    assert list(maps) == ["attention1_1", "attention2_1", "attention3_1"]
    for m in maps.values():
        assert m.shape == (2, 32, 32) and m.min() >= 0 and m.max() <= 1
    sat = E.mask_saturation(model, x)
    assert set(sat) == set(maps) and all(0.0 <= v <= 1.0 for v in sat.values())
    with pytest.raises(ValueError, match="reduce"):
        E.attention_maps(model, x, reduce="median")
    fig = E.plot_attention_maps(x, {"spatial, gamma learned": maps}, titles=["a", "b"])
    assert len(fig.axes) == 2 * 4


def test_task_gradient_norms_follow_the_loss_weights():
    model = _model()
    x, labels = _batch(8)
    e = entry("gra_net")
    y = make_targets(model.output.keys(), 1, 80, lambda lab: e.targets(lab))(labels)
    losses = e.compile_args(model)["loss"]
    ones = E.task_gradient_norms(model, x, y, losses=losses, loss_weights={})
    assert set(ones) == {"age", "group_probs", "gender_probs"} and all(v > 0 for v in ones.values())
    halved = E.task_gradient_norms(model, x, y, losses=losses, loss_weights={"age": 0.5})
    assert halved["age"] == pytest.approx(0.5 * ones["age"], rel=1e-4)
    assert halved["gender_probs"] == pytest.approx(ones["gender_probs"], rel=1e-4)


def test_parameter_counts_grow_with_width():
    counts = E.gra_net_parameter_counts({"w8": TINY, "w16": {"base_filters": 16}})
    assert 0 < counts["w8"] < counts["w16"]


@pytest.mark.slow
def test_train_variants_and_shared_features(tmp_path):
    from agekeras import datasets

    variants = {"mixed, gamma learned": {"attention": "mixed"}}
    results = E.train_gra_net_variants(
        variants, lambda name: tmp_path / name, model_kwargs=TINY, dataset="synthetic",
        dataset_kwargs={"n": 64, "image_size": 32}, image_size=32, epochs=1, batch_size=16, optimizer="nadam",
        verbose=0,
    )
    r = results["mixed, gamma learned"]
    assert np.isfinite(r["mae"]) and 0.0 <= r["gender_accuracy"] <= 1.0
    assert (tmp_path / "mixed_gamma_learned" / "best.keras").exists()
    true, pred = E.predicted_ages(r["run_dir"])
    assert true.shape == pred.shape and len(true) == r["n"]
    assert np.mean(np.abs(true - pred)) == pytest.approx(r["mae"], abs=0.06)  # the faces scored (ages kept to 0.1)
    with pytest.raises(FileNotFoundError, match="predictions"):
        E.predicted_ages(tmp_path / "no_run")
    from agekeras.evaluation import load_run

    model, _, saved = load_run(r["run_dir"])
    fresh = agekeras.models.get("gra_net", input_shape=(32, 32, 3), num_classes=saved["num_classes"],
                                age_min=saved["age_min"], **TINY)
    assert E.with_best_weights(fresh, r["run_dir"]) is fresh
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)  # the scored checkpoint's weights, loaded into the object
    faces = datasets.load("synthetic", n=12, image_size=32)
    feats, ages = E.shared_features(model, faces, 32)
    assert feats.shape == (12, 8 * 32) and ages.shape == (12,)


def test_registry_loss_weights_put_the_three_tasks_on_the_same_order():
    """Unweighted, the age loss (years) sends ~10x the cross-entropies' gradient into the shared
    features; with the registry's weights (age 0.1) the three norms are within a factor 3."""
    model = _model()
    x, labels = _batch(32, seed=1)
    e = entry("gra_net")
    y = make_targets(model.output.keys(), 1, 80, lambda lab: e.targets(lab))(labels)
    plain = E.task_gradient_norms(model, x, y, loss_weights={})
    assert plain["age"] > 5 * max(plain["group_probs"], plain["gender_probs"])
    balanced = E.task_gradient_norms(model, x, y)
    assert max(balanced.values()) < 3 * min(balanced.values())
