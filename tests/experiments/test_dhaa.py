"""agekeras.experiments.dhaa: flip averaging, per-classifier MAE, regions, paper numbers, runs."""

import json
import pathlib

import keras
import numpy as np
import pytest

from agekeras import tables
from agekeras.datasets import load
from agekeras.experiments import course
from agekeras.experiments import dhaa as E
from agekeras.layers.aligned_region_pooling import canonical_landmarks
from agekeras.models import dhaa as D
from agekeras.training import TrainConfig
from agekeras.callbacks import ProgressSchedule
from agekeras.evaluation import dataset_outputs

SMALL = dict(input_shape=(32, 32, 3), num_classes=10, age_min=20, width=0.125, feature_dim=8)
SUBS = ["global1", "global2", "global3", "local1", "local2", "local3", "gl1", "gl2", "gl3"]
PAPER = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "papers" / "003-results.md"


@pytest.fixture(scope="module")
def small_model():
    keras.utils.set_random_seed(0)
    return D.build_dhaa(**SMALL)


def test_flip_average_is_the_mean_of_image_and_mirror(small_model):
    ds = load("synthetic", n=4, image_size=32, seed=1)
    plain = dataset_outputs(small_model, ds, 32)
    tta = E.flip_averaged_outputs(small_model, ds, 32)
    # NumPy mirror: x -> W - 1 - x and left/right points swapped (eyes, mouth corners).
    marks = ds.landmarks[:, [1, 0, 2, 4, 3]].copy()
    marks[..., 0] = 31 - marks[..., 0]
    mirrored = small_model.predict({"image": ds.images[:, :, ::-1].astype("float32"), "landmarks": marks}, verbose=0)
    np.testing.assert_allclose(tta["age_probs"], (plain["age_probs"] + mirrored["age_probs"]) / 2, atol=1e-5)
    ages = 20 + np.arange(10)
    np.testing.assert_allclose(tta["age"], tta["age_probs"] @ ages, atol=1e-4)
    assert not np.allclose(tta["age_probs"], plain["age_probs"], atol=1e-6)  # the mirror changed something


def test_classifier_maes_and_embeddings(small_model):
    ds = load("synthetic", n=4, image_size=32, seed=1)
    tta = E.flip_averaged_outputs(small_model, ds, 32)
    maes = E.classifier_maes(tta, ds.age, age_min=20)
    assert list(maes) == ["final"] + SUBS
    np.testing.assert_allclose(maes["final"], np.mean(np.abs(tta["age"] - ds.age)), rtol=1e-5)
    probs = tta["age_probs_local2"]
    np.testing.assert_allclose(maes["local2"], np.mean(np.abs(probs @ (20 + np.arange(10)) - ds.age)), rtol=1e-5)
    assert E.fused_embeddings(small_model, ds, 32).shape == (4, 3 * 8)
    assert E.sub_network_names(small_model) == SUBS


def test_branch_parameter_counts_add_up(small_model):
    counts = E.branch_parameter_counts(small_model)
    assert counts["total"] == small_model.count_params() == 1_570_148
    assert sum(v for k, v in counts.items() if k != "total") == counts["total"]
    assert counts["global1"] == counts["local3"] and counts["gl1"] < counts["global1"]


@pytest.mark.slow
def test_full_width_branch_parameter_counts():
    counts = E.branch_parameter_counts(D.build_dhaa(input_shape=(64, 64, 3), num_classes=101))
    assert counts["total"] == 100_106_290
    assert counts["trunk"] == 158_144  # stem + C_B1 of ResNet-18
    assert counts["global1"] == 11_123_557 and counts["gl1"] == 10_924_389


def test_region_polygons_of_canonical_face():
    poly = E.region_polygons(canonical_landmarks(64)[None], 64, regions=("global1", "global3"))
    np.testing.assert_allclose(poly[0, 0], [[0, 0], [64, 0], [64, 64], [0, 64]], atol=1e-4)
    np.testing.assert_allclose(poly[0, 1], poly[0, 0], atol=1e-3)  # canonical face: global3 = image


def test_region_figures_and_crops():
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    marks = np.stack([canonical_landmarks(32)] * 2)
    crops = E.region_crops(images, marks, regions=("global1", "nose"), crop_size=8)
    assert list(crops) == ["global1", "nose"] and crops["nose"].shape == (2, 8, 8, 3)
    fig = E.plot_regions(images, marks)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 6
    fig = E.plot_region_crops(images, marks, regions=("global1", "nose"), crop_size=8)
    assert len(fig.axes) == 4


def test_rotate_faces_moves_pixels_and_landmarks_alike():
    images = np.zeros((1, 33, 33, 3), "float32")
    images[0, 15:18, 23:26] = 255.0  # a bright patch around (x, y) = (24, 16)
    marks = np.tile([[24.0, 16.0]], (1, 5, 1)).astype("float32")
    turned, moved = E.rotate_faces(images, marks, 90)
    np.testing.assert_allclose(moved[0, 0], [16.0, 24.0], atol=1e-4)  # clockwise on screen (y points down)
    weight = turned[0, ..., 0]
    ys, xs = np.mgrid[:33, :33]
    centre = [(xs * weight).sum() / weight.sum(), (ys * weight).sum() / weight.sum()]
    np.testing.assert_allclose(centre, [16.0, 24.0], atol=1e-3)  # the patch went where its landmark went
    same, kept = E.rotate_faces(images, marks, 0)
    np.testing.assert_allclose(same, images, atol=1e-3)
    np.testing.assert_allclose(kept, marks, atol=1e-5)


def test_face_arrays_follow_the_dataset():
    ds = load("synthetic", n=5, image_size=32, seed=1)
    images, marks, ages = E.face_arrays(ds, 32, batch_size=2)
    assert images.shape == (5, 32, 32, 3) and marks.shape == (5, 5, 2)
    np.testing.assert_allclose(ages, ds.age)
    np.testing.assert_allclose(marks, ds.landmarks, atol=1e-3)


def _fake_run(path, model, best_weights, val_scores):
    """A run folder as `train` leaves it: config (architecture), state, history and best.keras."""
    from agekeras.runs import RunDir, write_json
    from agekeras.training import architecture

    run = RunDir(path).make()
    write_json(run.path / "config.json", {"model": architecture(model)})
    scores = list(val_scores)
    write_json(run.path / "state.json", {"epochs_done": len(scores), "best": min(scores), "monitor": "val_age_mae",
                                         "finished": True})
    run.history_file.write_text("epoch,val_age_mae\n" + "".join(f"{i},{v!r}\n" for i, v in enumerate(scores)))
    kept = model.get_weights()
    model.set_weights(best_weights)
    model.save(run.path / "best.keras")
    model.set_weights(kept)
    return run.path


def test_with_best_weights_loads_best_unless_the_last_epoch_was_best(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    last = model.get_weights()
    best = [w + 1.0 for w in last]
    run = _fake_run(tmp_path / "a", model, best, [5.0, 4.0, 4.5])  # epoch 2 was best, not the last one
    assert not E.last_epoch_was_best(run)
    np.testing.assert_allclose(E.with_best_weights(model, run).get_weights()[0], best[0])
    tie = _fake_run(tmp_path / "tie", model, best, [4.0, 4.5, 4.0])  # a tie is not an improvement: best.keras is epoch 0
    assert not E.last_epoch_was_best(tie)
    model.set_weights(last)
    run = _fake_run(tmp_path / "b", model, best, [5.0, 4.5, 4.0])  # the last epoch was best: the object holds it
    assert E.last_epoch_was_best(run)
    np.testing.assert_allclose(E.with_best_weights(model, run).get_weights()[0], last[0])
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="d")])
    with pytest.raises(ValueError, match="architecture"):
        E.with_best_weights(other, run)


def test_paper_numbers_match_the_results_file():
    """Every number of PAPER_RESULTS appears in the paper's results file."""
    if not PAPER.exists():
        pytest.skip("the papers folder is not beside the repository")
    text = PAPER.read_text()
    for row in E.PAPER_RESULTS:
        assert f"{row['MAE']:.3f}" in text, row
    dhaa = E.paper_rows({"DHAA (ours)": "DHAA"}, table=4, dataset="FG-NET")
    assert sorted(r["MAE"] for r in dhaa.values()) == [2.595, 3.721]
    table1 = E.paper_rows(table=1, dataset="MORPH", protocol="80-20 random")
    assert list(table1) == ["Res18+EX", "global", "local", "global-local", "global + local", "DHAA"]
    assert set(table1) <= set(E.ABLATIONS) and table1["DHAA"]["MAE"] == 1.908
    table = tables.results_table([{"method": "DHAA (ours)", "dataset": "synthetic", "MAE": 9.0}],
                                 paper=E.paper_rows({"DHAA (ours)": "DHAA"}, table=2),
                                 settings=E.PAPER_SETTINGS)  # fmt: skip
    assert "3.55" in table.to_markdown() and "Web-FaceAge" in table.to_markdown()


def test_paper_step_schedule_divides_the_learning_rate_by_ten():
    """Sec. 4.2: SGD from lr 0.01, divided by 10 in steps (ours: at 50 % and 75 % of the run)."""
    schedule = ProgressSchedule(0.01, total_steps=100, warmup=0.0, drops=[0.75, 0.5])
    lrs = [schedule.lr_at(p) for p in (0.0, 0.49, 0.5, 0.74, 0.75, 1.0)]
    np.testing.assert_allclose(lrs, [0.01, 0.01, 0.001, 0.001, 0.0001, 0.0001], rtol=1e-9)
    cosine = ProgressSchedule(0.01, total_steps=100, warmup=0.0)
    assert 0.001 < cosine.lr_at(0.5) < 0.01  # without drops: the cosine


def test_landmark_data_per_mode(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AGEKERAS_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("AGEKERAS_CACHE", str(tmp_path / "cache"))  # no landmarks CSV left by `python -m agekeras align`
    quick = course.setup("04_dhaa", mode="quick", verbose=False)
    assert E.landmark_data(quick, quick_n=12) == ("synthetic", None, {"n": 12})
    cpu = course.setup("04_dhaa", mode="cpu", verbose=False)
    assert E.landmark_data(cpu, fallback_n=30) == ("synthetic", None, {"n": 30})
    assert "python -m agekeras align" in capsys.readouterr().out
    (tmp_path / E.LANDMARKS_CSV).write_text("path,age\n")
    assert E.landmark_data(cpu) == ("csv", str(tmp_path / E.LANDMARKS_CSV), {})


def test_training_speed_reports_memory():
    result = E.training_speed((32, 32, 3), batch_size=2, steps=1, num_classes=10, width=0.125, feature_dim=8,
                              branches=("local",))  # fmt: skip
    assert result["img_per_s"] > 0 and result["params"] > 0
    assert result["peak_rss_mib"] is None or result["peak_rss_mib"] > 10


@pytest.mark.slow
def test_ablation_variant_trains_and_evaluates_with_flip(tmp_path):
    config = TrainConfig(model="dhaa", dataset="synthetic", dataset_kwargs={"n": 48}, image_size=32, epochs=1,
                         batch_size=16, model_kwargs={"width": 0.125, "feature_dim": 8}, verbose=0)  # fmt: skip
    run_dir, metrics = E.train_ablation_variant("local", config, tmp_path)
    assert run_dir == tmp_path / "local" and np.isfinite(metrics["mae"])
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["train"]["model_kwargs"] == {"width": 0.125, "feature_dim": 8, "branches": ["local"]}
    from agekeras.training import load_splits

    splits, _ = load_splits(TrainConfig.from_json(saved["train"]))
    row, outputs, model, age_min = E.evaluate_with_flip(run_dir, splits["test"])
    assert age_min == saved["age_min"]
    assert set(row) == {"MAE", "MAE flip", "RMSE flip"} and row["RMSE flip"] >= row["MAE flip"]
    assert list(E.classifier_maes(outputs, splits["test"].age, age_min)) == ["final", "local1", "local2", "local3"]
