"""Notebook 01's experiments: the paper's tables, the modes' data, summaries and rows."""

import dataclasses
import pathlib

import keras
import numpy as np
import pytest

import agekeras
from agekeras import tables
from agekeras.experiments import course
from agekeras.experiments import vovnetv4 as E

PAPERS = pathlib.Path(__file__).resolve().parents[3] / "shared" / "papers"


def test_paper_tables_hold_the_papers_numbers():
    t1, t2 = E.paper_table(1), E.paper_table(2)
    assert [(v["MAE"], v["RMSE"]) for v in t1.values()] == [(3.71, 5.15), (3.44, 4.69), (3.36, 4.74), (3.30, 4.64)]
    assert [(v["MAE"], v["RMSE"]) for v in t2.values()] == [(3.47, 5.03), (3.51, 4.75), (3.47, 4.71), (3.30, 4.64)]
    for row in [*t1.values(), *t2.values()]:
        assert row["dataset"].startswith("AFAD 15-40") and row["protocol"] and row["pretraining"]
    # The paper's method is the last line of both tables.
    assert list(t1)[-1] == list(t2)[-1] == E.method_name("vovnetv4")
    with pytest.raises(ValueError, match="Tables I and II"):
        E.paper_table(3)


@pytest.mark.skipif(not PAPERS.is_dir(), reason="papers folder not present")
def test_paper_numbers_agree_with_the_results_file():
    text = (PAPERS / "000-results.md").read_text().replace("**", "")
    for table in (E.PAPER_TABLE1, E.PAPER_TABLE2):
        for row in table.values():
            assert f"{row['MAE']:.2f} | {row['RMSE']:.2f}" in text


def test_every_table_model_is_registered_and_labelled_as_the_paper_does():
    names = set(agekeras.models.available())
    for table, models, paper in ((1, E.TABLE1_MODELS, E.PAPER_TABLE1), (2, E.TABLE2_MODELS, E.PAPER_TABLE2)):
        assert set(models) <= names
        # each of our models lines up with a line of the paper's table
        assert {E.method_name(m, table) for m in models} <= set(paper)


def test_result_rows_and_table():
    results = {"vovnetv4": {"mae": 5.0, "rmse": 6.0, "ca5": 0.5}, "resnet34_coral": {"mae": 7.0, "rmse": 8.0}}
    rows = E.vovnetv4_result_rows(results, {"dataset": "x", "size": 32}, E.TABLE2_MODELS, table=2)
    assert [r["method"] for r in rows] == ["CORAL-CNN (ResNet-34 + CORAL)", "VoVNetv4 + CORAL"]
    assert rows[1]["CA(5) %"] == 50.0 and rows[0]["CA(5) %"] is None
    md = tables.results_table(rows, paper=E.paper_table(2), settings=E.TABLE_SETTINGS).to_markdown()
    assert "3.51" in md and "OR-CNN (ResNet-34)" in md and "5.00" in md


def test_data_setting_quick_mode_uses_the_papers_ages(capsys):
    C = course.setup("01_vovnetv4", mode="quick", verbose=False)
    s = E.data_setting(C)
    assert (s.dataset, s.min_age, s.max_age, s.num_classes, s.epochs) == ("synthetic", 15, 40, 26, 1)
    assert set(s.models) <= set(E.TABLE1_MODELS + E.TABLE2_MODELS)
    assert "K = 26" in capsys.readouterr().out


def test_data_setting_cpu_mode_falls_back_with_one_sentence(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AGEKERAS_DATA_ROOT", str(tmp_path))
    monkeypatch.delenv("AGEKERAS_DATA_DIR", raising=False)
    C = course.setup("01_vovnetv4", mode="cpu", verbose=False)
    s = E.data_setting(C)
    assert s.dataset == "synthetic" and s.time_budget == C.time_budget and s.epochs is None
    assert "Neither AFAD nor UTKFace" in capsys.readouterr().out


def test_summary_lists_every_part_and_the_total():
    keras.utils.set_random_seed(0)
    model = agekeras.models.get("vovnetv4", input_shape=(32, 32, 3), num_classes=6)
    text = E.vovnetv4_summary(model)
    for part in ("stem", "ROSA region 4 (3 cyc.)", "adaptive_4", "second_aggregation", "coral_head"):
        assert part in text
    assert text.splitlines()[-1].split()[-1] == f"{model.count_params():,}"


def test_parameter_rows_count_the_head():
    (row,) = E.vovnetv4_parameter_rows(["resnet34_ce"], input_shape=(32, 32, 3), num_classes=6)
    assert row["head"] == 512 * 6 + 6
    assert row["trainable"] < row["params"]  # BatchNorm moving statistics are not trainable


def test_train_config_carries_the_setting_and_the_prior_is_the_training_splits():
    s = E.DataSetting("synthetic", None, {"n": 40, "age_range": (15, 40)}, "synthetic", 15, 40, 32, 1, None, 16,
                      5e-4, 1, ("resnet34_coral",), lr_drops=[])
    config = E.train_config(s, "resnet34_orcnn", "/tmp/x", model_kwargs={"dropout": 0.1})
    assert (config.model, config.image_size, config.epochs, config.batch_size, config.lr, config.seed) == (
        "resnet34_orcnn", 32, 1, 16, 5e-4, 1)
    assert (config.age_min, config.num_classes, config.lr_drops, config.model_kwargs) == (15, 26, [], {"dropout": 0.1})
    assert config.dataset_kwargs == {"n": 40, "age_range": (15, 40)} and config.out == "/tmp/x"
    assert s.budget() == "1 epoch" and dataclasses.replace(s, time_budget=15.0).budget() == "15 min"
    prior = E.train_prior(s)
    # what agekeras.training gives a registered builder: the prior of the run's training faces
    from agekeras import ages, training

    splits, _ = training.load_splits(config)
    assert np.allclose(prior, ages.age_prior(splits["train"].age, 15, 26)) and len(prior) == 26


def test_coral_curves_and_adaptive_stage_figures():
    rng = np.random.default_rng(0)
    logits = np.sort(rng.normal(size=(30, 25)), axis=1)[:, ::-1] * 3
    fig = E.plot_coral_curves(logits, rng.integers(15, 41, 30), 15, faces=4, title="t")
    (ax,) = fig.axes
    assert len([line for line in ax.lines if line.get_marker() == "."]) == 4 and fig._suptitle.get_text() == "t"
    model = agekeras.models.get("vovnetv4", input_shape=(64, 64, 3), num_classes=6)
    rows = E.adaptive_stage_shapes(model)
    assert [(r["size"], r["kernel"], r["stride"], r["out_size"]) for r in rows] == [
        (16, 8, 8, 2), (8, 4, 4, 2), (4, 2, 2, 2), (2, 1, 1, 2)]
    assert [r["cycles"] for r in rows] == [1, 1, 4, 3]
    fig = E.plot_adaptive_stages({"64 px": model})
    assert "2x2x2560" in " ".join(t.get_text() for t in fig.axes[0].texts)
    s = E.DataSetting("synthetic", None, {}, "UTKFace 15-40", 15, 40, 64, None, 15.0, 64, 5e-4, 1, ())
    assert E.figure_title("MAE by age", s) == "MAE by age: VoVNetv4 + CORAL, UTKFace 15-40, 64 px, 15 min"


@pytest.mark.slow
def test_train_table_models_and_embedding(tmp_path):
    s = E.DataSetting("synthetic", None, {"n": 40, "age_range": (15, 40)}, "synthetic", 15, 40, 32, 1, None, 16,
                      5e-4, 1, ("resnet34_coral",))
    results = E.train_table_models(s, lambda name: tmp_path / name)
    assert np.isfinite(results["resnet34_coral"]["mae"])
    emb, ages = E.embedding_and_ages(tmp_path / "resnet34_coral", max_faces=5)
    assert emb.shape == (5, 512) and ages.shape == (5,) and np.all((ages >= 15) & (ages <= 40))
    out = E.run_outputs(tmp_path / "resnet34_coral", max_faces=5)
    assert out["age_logits"].shape == (5, 25) and out["age_min"] == 15
    # the count decode of the logits is the run's predicted age
    p = 1 / (1 + np.exp(-out["age_logits"]))
    assert np.allclose(out["age"], 15 + np.sum(p > 0.5, axis=1))
