"""The benchmark of every model (agekeras.experiments.benchmark) and its command line."""

import csv
import json
import math
import os
import pathlib
import time

import numpy as np
import pytest
from matplotlib.figure import Figure

from agekeras import cli, plots
from agekeras.experiments import benchmark as B
from agekeras.experiments.benchmark import running
from agekeras.runs import RunDir

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAPERS = ROOT.parent / "shared" / "papers"


# ----- a fake `train` writing what a finished run folder holds --------------------------------


class FakeTrain:
    """Writes a finished run folder (no TensorFlow), counting its calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, config):
        self.calls.append((config.model, config.seed))
        run = RunDir(config.out).make()
        out = run.path
        mae = 5.0 + len(config.model) / 10 + config.seed
        run.write_config({"train": config.to_json(), "age_min": 0, "num_classes": 101,
                          "splits": {"train": 100, "val": 10, "test": 30}})
        run.write_state({"epochs_done": 4, "train_seconds": 20.0, "finished": True})
        (out / B.results.PARAMS_FILE).write_text(json.dumps({"params": 1000 * len(config.model)}))
        metrics = {"mae": mae, "rmse": mae + 2, "ca3": 0.3, "ca5": 0.5, "ca7": 0.7, "median_predictor_mae": 20.0,
                   "by_age": [{"bracket": "0-10", "n": 3, "mae": 2.0}, {"bracket": "10-20", "n": 0, "mae": None}],
                   "by_gender": {"male": {"n": 15, "mae": mae - 1}, "female": {"n": 15, "mae": mae + 1}},
                   "by_race": {}}
        run.write_metrics(metrics)
        run.history_file.write_text("epoch,age_mae,train_seconds,val_age_mae\n0,9,5.0,8\n1,8,10.0,7.5\n"
                                         "2,7,15.0,7.7\n3,6,20.0,7.0\n")
        return metrics


def _spec(tmp_path, models=("resnet18_dex", "resnet34_coral"), seeds=(0, 1), **kw):
    return B.BenchmarkSpec(models=models, dataset="synthetic", dataset_kwargs={"n": 50}, time_budget=None, epochs=4,
                           seeds=seeds, image_size=32, batch_size=16, out=str(tmp_path / "bench"), **kw)


def test_fake_benchmark_writes_results_and_resumes_without_retraining(tmp_path):
    fake = FakeTrain()
    lines = []
    results = B.run_benchmark(_spec(tmp_path), train_fn=fake, print_fn=lines.append)
    assert fake.calls == [("resnet18_dex", 0), ("resnet18_dex", 1), ("resnet34_coral", 0), ("resnet34_coral", 1)]
    assert sum(": training" in line for line in lines) == 4  # a progress line per run
    row = results["runs"][0]
    assert row["train_img_per_s"] == pytest.approx(4 * 100 / 20.0)  # epochs x train faces / training seconds
    assert row["mae_age_0-10"] == 2.0 and "mae_age_10-20" not in row  # empty bracket: no number
    assert row["mae_gender_male"] == pytest.approx(row["mae"] - 1) and not any(k.startswith("mae_race") for k in row)
    assert results["curves"]["resnet18_dex"][0]["minutes"] == pytest.approx([5 / 60, 10 / 60, 15 / 60, 20 / 60])
    with open(tmp_path / "bench" / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    # a second call trains nothing (finished runs), a third model is trained alone
    again = B.run_benchmark(_spec(tmp_path, models=("resnet18_dex", "resnet34_coral", "vovnetv4")), train_fn=fake,
                            print_fn=lines.append)
    assert fake.calls[4:] == [("vovnetv4", 0), ("vovnetv4", 1)]
    assert len(again["runs"]) == 6 and {s["model"] for s in again["summary"]} == {"resnet18_dex", "resnet34_coral",
                                                                                    "vovnetv4"}
    assert again["paper"]["vovnetv4"]["MAE"] == 3.30


def test_a_run_that_shared_the_machine_is_flagged(tmp_path):
    class SharedTrain(FakeTrain):
        def __call__(self, config):
            metrics = super().__call__(config)
            others = 0.45 if config.model == "resnet34_coral" else 0.02
            (pathlib.Path(config.out) / "history.csv").write_text(
                "epoch,age_mae,train_seconds,val_age_mae,cpu_others\n"
                f"0,9,5.0,8,{others - 0.01}\n1,8,10.0,7.5,{others + 0.01}\n")
            return metrics

    lines = []
    results = B.run_benchmark(_spec(tmp_path, seeds=(0,)), train_fn=SharedTrain(), print_fn=lines.append)
    warned = [line for line in lines if "WARNING" in line]
    assert len(warned) == 1 and "resnet34_coral" in warned[0] and "45%" in warned[0]
    others = {r["model"]: r["cpu_others"] for r in results["runs"]}
    assert others == pytest.approx({"resnet18_dex": 0.02, "resnet34_coral": 0.45})
    assert "others' CPU" in B.runs_table(results, cpu_share=True).columns
    assert "others' CPU" not in B.runs_table(results).columns
    assert "speed is not comparable" in warned[0]  # equal epochs: the MAE is still comparable


def test_models_needing_landmarks_are_skipped_and_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(running, "_dataset_has_landmarks", lambda spec: False)
    fake = FakeTrain()
    results = B.run_benchmark(_spec(tmp_path, models=("resnet18_dex", "dhaa")), train_fn=fake, print_fn=lambda s: None)
    assert [c[0] for c in fake.calls] == ["resnet18_dex", "resnet18_dex"]
    assert [(s["model"], s["seed"]) for s in results["skipped"]] == [("dhaa", 0), ("dhaa", 1)]
    assert "landmarks" in results["skipped"][0]["reason"]
    assert B.skip_reason("dhaa", has_landmarks=True) is None and B.skip_reason("resnet18_dex", False) is None


def test_flip_and_cross_mae_are_evaluated_once_per_checkpoint(tmp_path, monkeypatch):
    from agekeras import evaluation

    results = B.run_benchmark(_spec(tmp_path, seeds=(0,)), train_fn=FakeTrain(), print_fn=lambda s: None)
    calls = []

    def fake_evaluate(path, **kwargs):  # writes its metrics file, as evaluate does
        calls.append(kwargs)
        run = RunDir(path)
        result = {"mae": 5.0 + len(calls)}
        run.write_metrics(result, evaluation.metrics_suffix(run, **kwargs))
        return result

    monkeypatch.setattr(evaluation, "evaluate", fake_evaluate)
    path = B.run_dir(tmp_path / "bench", "resnet18_dex", 0)
    best = RunDir(path).best_model
    best.write_text("checkpoint")
    before = time.time() - 100
    os.utime(best, (before, before))
    for _ in range(2):
        row = B.benchmark_row(path, "resnet18_dex", 0, flip=True)
    assert row["mae_flip"] == 6.0 and calls == [{"flip": True}]  # the second row read the flip metrics file
    cross = (("fgnet", str(tmp_path / "fgnet")),)
    for _ in range(2):
        row = B.benchmark_row(path, "resnet18_dex", 0, cross=cross)
    assert row["cross_fgnet_mae"] == 7.0 and len(calls) == 2
    assert calls[1] == {"dataset": "fgnet", "data_dir": str(tmp_path / "fgnet"), "split": "all"}
    os.utime(best, (before + 200, before + 200))  # a newer checkpoint: scored again
    assert B.benchmark_row(path, "resnet18_dex", 0, flip=True)["mae_flip"] == 8.0 and len(calls) == 3
    assert "mae_flip" not in B.benchmark_row(path, "resnet18_dex", 0) and "mae_flip" not in results["runs"][0]
    results["runs"][0]["mae_flip"] = 5.5
    results["summary"] = B.aggregate(results["runs"])
    assert "MAE flip" in B.summary_table(results).columns and "MAE flip" in B.runs_table(results).columns


def test_a_run_without_test_metrics_has_no_row(tmp_path):
    path = B.run_dir(tmp_path, "resnet18_dex", 0)
    RunDir(path).make().write_config({"splits": {"train": 10}})
    with pytest.raises(FileNotFoundError, match="did not finish"):
        B.benchmark_row(path, "resnet18_dex", 0)


def test_faces_without_landmarks_are_counted_not_a_reason_to_skip(tmp_path, monkeypatch, caplog):
    from agekeras import datasets

    ds = datasets.load("synthetic", n=20)
    ds.landmarks[:3] = np.nan  # as a landmarks CSV whose detector missed three faces
    monkeypatch.setattr(datasets, "load", lambda *a, **k: ds)
    with caplog.at_level("WARNING", logger="agekeras.benchmark"):
        assert running._dataset_has_landmarks(_spec(tmp_path)) is True
    assert "3 of 20 faces have no landmarks" in caplog.text
    ds.landmarks[:] = np.nan
    assert running._dataset_has_landmarks(_spec(tmp_path)) is False


def test_a_failing_model_is_reported_and_the_others_run(tmp_path):
    fake = FakeTrain()

    def train(config):
        if config.model == "resnet34_coral":
            raise RuntimeError("boom")
        return fake(config)

    results = B.run_benchmark(_spec(tmp_path), train_fn=train, print_fn=lambda s: None)
    assert [f["model"] for f in results["failed"]] == ["resnet34_coral"] * 2 and "boom" in results["failed"][0]["error"]
    assert [r["model"] for r in results["runs"]] == ["resnet18_dex"] * 2


def test_a_folder_with_another_protocol_is_refused(tmp_path):
    B.run_benchmark(_spec(tmp_path, seeds=(0,)), train_fn=FakeTrain(), print_fn=lambda s: None)
    other = _spec(tmp_path, seeds=(0,))
    other.image_size = 64
    with pytest.raises(ValueError, match="image_size"):
        B.run_benchmark(other, train_fn=FakeTrain(), print_fn=lambda s: None)
    changed = _spec(tmp_path, seeds=(0,), model_args={"resnet18_dex": {"dropout": 0.5}})
    results = B.run_benchmark(changed, train_fn=FakeTrain(), print_fn=lambda s: None)
    assert results["failed"] == []  # finished runs are not re-trained, whatever their args


def test_aggregate_mean_and_sample_std_by_hand():
    rows = [{"model": "a", "seed": 0, "mae": 6.0, "params": 10},
            {"model": "b", "seed": 0, "mae": 9.0, "params": 20},
            {"model": "a", "seed": 1, "mae": 7.0, "params": 10},
            {"model": "a", "seed": 2, "mae": 8.0, "params": 10, "cross_fgnet_mae": 12.0},
            {"model": "b", "seed": 1, "mae": None, "params": 20}]
    a, b = B.aggregate(rows)
    assert a["model"] == "a" and a["seeds"] == 3 and a["mae"] == 7.0 and a["mae_std"] == pytest.approx(1.0)
    assert a["params_std"] == 0.0 and a["cross_fgnet_mae"] == 12.0 and a["cross_fgnet_mae_std"] is None
    assert b["seeds"] == 2 and b["mae"] == 9.0 and b["mae_std"] is None  # None values do not count
    assert "seed" not in a
    assert B.mean_std(7.0, 1.0) == "7.00 ± 1.00" and B.mean_std(7.0) == "7.00" and B.mean_std(None) == "—"


def test_leader_at_uses_the_best_epoch_so_far_averaged_over_seeds():
    curves = {"fast": [{"seed": 0, "minutes": [0.5, 2, 6], "val_mae": [9, 8, 8.5]},
                       {"seed": 1, "minutes": [0.5, 2, 6], "val_mae": [11, 9, 7.9]}],
              "slow": [{"seed": 0, "minutes": [3, 6], "val_mae": [7, 6]}]}
    lead = B.leader_at(curves, minutes=(1, 5, 15))
    assert lead["1"]["model"] == "fast" and lead["1"]["val_mae"] == pytest.approx(10.0)
    assert lead["5"]["model"] == "slow" and lead["5"]["scores"]["fast"] == pytest.approx(8.5)
    assert lead["15"]["scores"] == pytest.approx({"fast": (8 + 7.9) / 2, "slow": 6.0})
    assert B.leader_at({}, minutes=(1,))["1"]["model"] is None


def test_equal_epochs_takes_the_best_of_the_first_epochs_of_every_model():
    curves = {"fast": [{"seed": 0, "minutes": [1, 2, 3, 4], "val_mae": [9, 7, 8, 5]},
                       {"seed": 1, "minutes": [1, 2, 3, 4], "val_mae": [10, 9, 6, 5]}],
              "slow": [{"seed": 0, "minutes": [4, 8, 12], "val_mae": [8, 6.5, 6]}]}
    eq = B.at_equal_epochs(curves)
    assert eq["epochs"] == 3  # the fewest any model ran
    assert eq["scores"] == pytest.approx({"fast": (7 + 6) / 2, "slow": 6.0})
    assert eq["minutes"] == pytest.approx({"fast": 3.0, "slow": 12.0})
    two = B.at_equal_epochs(curves, epochs=4)
    assert list(two["scores"]) == ["fast"]  # the slow model never reached 4 epochs
    table = B.equal_epochs_table({"curves": curves, "summary": [{"model": "slow", "mae": 6.2}]}).to_markdown()
    assert table.index("slow") < table.index("fast") and "6.20" in table and "after 3 epochs" in table


def test_make_spec_defaults_quick_and_errors():
    spec = B.make_spec()
    assert spec.models == B.DEFAULT_MODELS and spec.time_budget == 15 and spec.epochs is None
    assert (spec.seeds, spec.image_size, spec.batch_size, spec.out, spec.dataset) == ((0, 1, 2), 64, 64, "runs/bench",
                                                                                      "utkface")
    assert spec.view == "equal time" and spec.dataset_kwargs == {} and not spec.flip
    quick = B.make_spec(quick=True)
    assert quick.models == B.QUICK_MODELS and quick.dataset == "synthetic" and quick.epochs == 1
    assert quick.dataset_kwargs == {"n": B.QUICK_FACES} and quick.image_size == 32 and quick.seeds == (0,)
    timed = B.make_spec(quick=True, time_budget=0.5, dataset="fgnet", data_dir="d")
    assert (timed.epochs, timed.time_budget, timed.dataset_kwargs) == (None, 0.5, {})
    for kwargs, match in (({"models": ("resnet_nope",)}, "Unknown model"), ({"models": ()}, "empty"),
                          ({"models": ("resnet18_dex", "resnet18_dex")}, "twice"), ({"seeds": ()}, "empty"),
                          ({"models": ("resnet18_dex",), "model_args": {"dhaa": {"width": 1}}}, "not one of"),
                          ({"dataset": "fgnet", "data_dir": "d", "cross": [("fgnet", "d")]}, "own dataset"),
                          ({"epochs": 2, "time_budget": 1.0}, "not both")):
        with pytest.raises(ValueError, match=match):
            B.make_spec(**kwargs)


def _cli_benchmark(monkeypatch, argv, failed=()):
    """`python -m agekeras benchmark ARGV` with a run_benchmark that records the spec it gets."""
    specs = []

    def fake_run(spec):
        specs.append(spec)
        return {"settings": {"cross": []}, "summary": [], "runs": [], "failed": list(failed)}

    monkeypatch.setattr(B, "run_benchmark", fake_run)
    return cli.main(["benchmark", *argv]), specs


def test_cli_benchmark_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["benchmark", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for option in ("--models", "--dataset", "--data-dir", "--time-budget", "--epochs", "--seeds", "--image-size",
                   "--batch-size", "--out", "--cross", "--flip", "--quick", "--model-arg"):
        assert option in out, option


def test_cli_benchmark_options_build_the_spec(monkeypatch, capsys):
    code, (spec,) = _cli_benchmark(monkeypatch, [])
    assert code == 0 and spec == B.make_spec()
    code, (spec,) = _cli_benchmark(monkeypatch, [
        "--epochs", "3", "--models", "resnet18_dex,dhaa", "--model-arg", "dhaa:width=0.25", "--model-arg",
        "dhaa:name=\"x\"", "--model-arg", "resnet18_dex:dropout=0.5", "--cross", "fgnet:/data/fg:net",
        "--seeds", "4,5", "--flip", "--out", "runs/b", "--image-size", "48", "--batch-size", "8"])
    assert spec.time_budget is None and spec.epochs == 3 and spec.view == "equal epochs"
    assert spec.model_args == {"dhaa": {"width": 0.25, "name": "x"}, "resnet18_dex": {"dropout": 0.5}}
    assert spec.cross == (("fgnet", "/data/fg:net"),) and spec.seeds == (4, 5) and spec.flip
    assert (spec.out, spec.image_size, spec.batch_size, spec.models) == ("runs/b", 48, 8, ("resnet18_dex", "dhaa"))
    code, (spec,) = _cli_benchmark(monkeypatch, ["--quick"])
    assert spec == B.make_spec(quick=True)
    assert _cli_benchmark(monkeypatch, ["--quick"], failed=[{"model": "resnet18_dex"}])[0] == 1  # a run failed


@pytest.mark.parametrize("argv, match", [
    (["--model-arg", "dhaa=1"], "MODEL:KEY=VALUE"), (["--model-arg", "dhaa:=1"], "MODEL:KEY=VALUE"),
    (["--cross", "fgnet"], "DATASET:DIR"), (["--seeds", "a"], "integers"),
    (["--epochs", "2", "--time-budget", "1"], "not allowed with"),
])
def test_cli_benchmark_malformed_options_exit_2(monkeypatch, capsys, argv, match):
    with pytest.raises(SystemExit) as exit_:
        _cli_benchmark(monkeypatch, argv)
    assert exit_.value.code == 2 and match in capsys.readouterr().err


@pytest.mark.parametrize("argv, match", [
    (["--models", "resnet_nope"], "Unknown model"), (["--models", ","], "empty"),
    (["--models", "resnet18_dex", "--model-arg", "dhaa:width=1"], "not one of"),
    (["--dataset", "fgnet", "--data-dir", "d", "--cross", "fgnet:d"], "own dataset"),
    (["--ablation", "daa", "--models", "resnet18_dex"], "not both"),
])
def test_cli_benchmark_refused_options_exit_2_with_one_line(monkeypatch, capsys, argv, match):
    code, specs = _cli_benchmark(monkeypatch, argv)
    err = capsys.readouterr().err
    assert code == 2 and specs == [] and match in err and err.count("\n") == 1


def test_paper_headlines_cover_the_default_models_and_match_the_papers():
    assert set(B.DEFAULT_MODELS) <= set(B.PAPER_HEADLINES)
    for model, p in B.PAPER_HEADLINES.items():
        assert {"method", "table", "dataset", "pretraining"} <= set(p), model
    if not PAPERS.is_dir():
        pytest.skip("the papers' result files are not next to the repository")
    text = "".join(f.read_text() for f in sorted(PAPERS.glob("00?-results.md")))
    for model, p in B.PAPER_HEADLINES.items():
        if p["MAE"] is not None:
            assert f"{p['MAE']:g}" in text.replace("**", ""), model


def test_paper_headlines_pair_each_model_with_its_own_method_and_pretraining():
    """Each headline is the paper's line for the method the model implements, with the start the paper states:
    VoVNetv4's ResNet-34 classification baseline beside `resnet34_ce` (cross-entropy), not `resnet34_dex`."""
    import agekeras

    h = B.PAPER_HEADLINES
    assert set(h) <= set(agekeras.models.available())
    assert (h["resnet34_ce"]["method"], h["resnet34_ce"]["table"], h["resnet34_ce"]["MAE"]) == (
        "ResNet-34 (classification baseline)", "I", 3.71)
    assert "DEX" in h["resnet34_dex"]["method"] and h["resnet34_dex"]["MAE"] == 3.712
    assert not any(p["method"] == h["resnet34_ce"]["method"] for m, p in h.items() if m != "resnet34_ce")
    # The start each paper states: DHAA "all networks" ImageNet; the AL paper ImageNet then IMDB-WIKI-101;
    # DAA's 2.25 without pre-training (2.06 with IMDB-Wiki); VoVNetv4 says nothing.
    want = {"resnet18_dex": "ImageNet", "dhaa": "ImageNet", "al_ror34": "ImageNet + IMDB-WIKI-101",
            "resnet34_dex": "ImageNet + IMDB-WIKI-101", "resnet34_ce": "not stated", "resnet34_coral": "not stated",
            "vovnetv4": "not stated"}
    for model, pretraining in want.items():
        assert h[model]["pretraining"] == pretraining, model
    assert h["daa_resnet18"]["pretraining"].startswith("none") and h["daa_resnet18"]["MAE"] == 2.25
    if PAPERS.is_dir():
        text = "".join(f.read_text() for f in sorted(PAPERS.glob("00?-results.md"))).replace("**", "")
        assert "| ResNet-34 (classification baseline) | 3.71 | 5.15 |" in text
        assert "| ResNets-34 (global only, authors' baseline) | 3.712 |" in text
        assert "| ResNet18+DAA | 2.25 / 2.06 |" in text and "without / with IMDB-Wiki pre-training" in text


def test_tables_and_figures_from_results(tmp_path):
    results = B.run_benchmark(_spec(tmp_path), train_fn=FakeTrain(), print_fn=lambda s: None)
    md = B.summary_table(results).to_markdown()
    assert "± " in md and "AFAD" in md and "Res18+EX" in md
    assert md.index("resnet18_dex") < md.index("resnet34_coral")  # sorted by MAE
    gender = B.group_table(results, "gender")
    assert gender.columns == ["model", "male", "female"]
    assert "no race labels" in B.group_table(results, "race").to_markdown()
    with pytest.raises(ValueError):
        B.group_table(results, "height")
    assert "after 4 epochs" in B.equal_epochs_table(results).to_markdown()
    for fig in (B.plot_mae_vs_minutes(results), B.plot_mae_vs_params(results), B.plot_mae_vs_speed(results),
                B.plot_mae_by_group(results, "age"), B.plot_mae_by_group(results, "gender")):
        assert isinstance(fig, Figure)
    assert sorted(p.name for p in (tmp_path / "bench" / "figures").glob("*.png")) == [
        "mae_by_age.png", "mae_vs_minutes.png", "mae_vs_params.png", "mae_vs_speed.png"]
    with pytest.raises(ValueError, match="race"):
        B.plot_mae_by_group(results, "race")


def test_plot_lines_and_scatter_labeled():
    fig = plots.plot_lines({"A": ([1, 2, 3], [9, 7, 6]), "B": [([1, 3], [8, 5]), ([1, 3], [8.5, 5.2])]},
                           "minutes", "MAE", marks=[1, 5])
    ax = fig.axes[0]
    assert len(ax.lines) == 3 + 2  # three runs, two marks
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["A", "B"]
    with pytest.raises(ValueError):
        plots.plot_lines({"A": ([1, 2], [1])})
    fig = plots.plot_scatter_labeled([1e6, 2e7], [6.5, 7.0], ["a", "b"], yerr=[0.1, math.nan], logx=True)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.texts] == ["a", "b"]
    with pytest.raises(ValueError):
        plots.plot_scatter_labeled([1, 2], [1, 2], ["a"])


@pytest.mark.slow
def test_quick_benchmark_end_to_end_on_synthetic_faces(tmp_path):
    out = tmp_path / "bench"
    assert cli.main(["benchmark", "--quick", "--out", str(out)]) == 0  # its speed: benchmarks/, not a timed test
    results = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in results["runs"]] == list(B.QUICK_MODELS)
    with open(out / "results.csv") as f:
        header = next(csv.reader(f))
    for field in ("model", "seed", "params", "train_img_per_s", "epochs", "mae", "rmse", "ca3", "ca5", "ca7",
                  "mae_age_20-30", "mae_gender_male"):
        assert field in header, field
    for r in results["runs"]:
        assert r["epochs"] == 1 and r["params"] > 1e6 and r["train_img_per_s"] > 0 and np.isfinite(r["mae"])
    best = {m: (B.run_dir(out, m, 0) / "best.keras").stat().st_mtime for m in B.QUICK_MODELS}
    counter = []
    B.run_benchmark(B.make_spec(quick=True, out=str(out)), train_fn=lambda c: counter.append(c),
                    print_fn=lambda s: None)
    assert counter == []  # finished (model, seed): not trained again
    assert best == {m: (B.run_dir(out, m, 0) / "best.keras").stat().st_mtime for m in B.QUICK_MODELS}


def test_run_curve_reads_a_single_output_model_history(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,mae,train_seconds,val_mae\n0,9,30.0,8.5\n1,8,60.0,7.5\n")
    assert B.run_curve(tmp_path) == ([0.5, 1.0], [8.5, 7.5])


def test_run_curve_and_cpu_share_skip_epochs_without_the_numbers(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,age_mae,train_seconds,val_age_mae,cpu_others\n"
                                          "0,9,30.0,8.5,0.1\n1,8,60.0,,\n2,7,90.0,7.0,0.3\n")
    assert B.run_curve(tmp_path) == ([0.5, 1.5], [8.5, 7.0])
    assert B.run_cpu_others(tmp_path) == pytest.approx(0.2)
    assert B.run_curve(tmp_path / "none") == ([], []) and B.run_cpu_others(tmp_path / "none") is None


# ----- each paper's component on and off (ABLATIONS) ------------------------------------------


def test_every_ablation_names_registered_models_with_one_change_each():
    import agekeras.models

    names = set(agekeras.models.available())
    for paper, a in B.ABLATIONS.items():
        assert a["model"] in names and a["without"], paper
        for model, what in a["without"].items():
            assert model in names and model != a["model"] and what, (paper, model)
        assert set(a.get("model_args", {})) <= {a["model"], *a["without"]}, paper


def test_make_spec_of_an_ablation_trains_its_models_with_their_shared_arguments():
    spec = B.make_spec(ablation="al_resnet", epochs=5, model_args={"ror34_dex": {"dropout": 0.5}})
    assert spec.models == ("al_ror34", "ror34_dex") == B.ablation_models("al_resnet")
    assert spec.model_args == {"al_ror34": {"small_input": True}, "ror34_dex": {"small_input": True, "dropout": 0.5}}
    assert B.make_spec(ablation="dhaa").models[:2] == ("dhaa", "resnet18_dex")
    with pytest.raises(ValueError, match="unknown ablation 'nope'"):
        B.make_spec(ablation="nope")


def _ablation_results(scores, key="mae_flip"):
    """A results dict holding one run per (model, seed) with the given scores."""
    runs = [{"model": m, "seed": s, "mae": v + 0.1, key: v} for m, by_seed in scores.items() for s, v in by_seed.items()]
    return {"settings": {"cross": []}, "runs": runs, "summary": B.aggregate(runs)}


def test_ablation_table_weighs_each_difference_against_the_seed_spread():
    results = _ablation_results({
        "dhaa": {0: 6.0, 1: 6.2, 2: 6.1},               # std 0.1
        "resnet18_dex": {0: 6.5, 1: 6.7, 2: 6.6},       # +0.5, spread 0.1: the component helps
        "dhaa_global": {0: 6.05, 1: 6.3, 2: 6.0},       # +0.05 on average, spread 0.16: within
        "dhaa_local": {0: 5.0},                         # one seed: no spread yet
        "dhaa_global_local": {0: 5.5, 1: 5.6, 2: 5.7},  # -0.5: better without
    })
    rows = {r["model"]: r for r in B.ablation_rows(results, "dhaa")}
    assert list(rows) == ["dhaa", "resnet18_dex", "dhaa_global", "dhaa_local", "dhaa_global_local"]
    assert rows["dhaa"]["delta"] is None and rows["dhaa"]["std"] == pytest.approx(0.1)
    assert rows["resnet18_dex"]["delta"] == pytest.approx(0.5) and rows["resnet18_dex"]["beyond_spread"] is True
    assert rows["dhaa_global"]["delta"] == pytest.approx(0.05 / 3) and rows["dhaa_global"]["beyond_spread"] is False
    assert rows["dhaa_global"]["spread"] == pytest.approx(np.std([6.05, 6.3, 6.0], ddof=1))
    assert rows["dhaa_local"]["delta"] == pytest.approx(-1.0) and rows["dhaa_local"]["beyond_spread"] is None
    assert rows["dhaa_global_local"]["beyond_spread"] is True
    table = B.ablation_table(results, "dhaa")
    assert table.columns[3] == "MAE flip"
    assert [(r["MAE flip"], r["difference"], r["beyond the seed spread"]) for r in table.rows][:2] == [
        ("6.10 ± 0.10", "—", "—"), ("6.60 ± 0.10", "+0.50", "yes")]
    findings = B.ablation_findings(results, "dhaa")
    assert len(findings) == 4
    assert "the component helps" in findings[0] and "does not separate" in findings[1]
    assert "no seed spread" in findings[2] and "better without" in findings[3]


def test_ablation_of_results_without_the_papers_model_says_so():
    results = _ablation_results({"resnet18_dex": {0: 6.5}}, key="mae")
    assert B.ablation_findings(results, "dhaa") == [
        "dhaa has no finished run in these results: nothing to compare with."]
    assert B.ablation_table(results, "dhaa").columns[3] == "MAE"


def test_cli_benchmark_ablation_builds_its_spec_and_prints_the_comparison(monkeypatch, capsys):
    def fake_run(spec):
        results = _ablation_results({"daa_resnet18": {0: 9.0, 1: 9.2}, "daa_resnet18_plain": {0: 9.9, 1: 10.1}})
        results["failed"] = []
        return results

    monkeypatch.setattr(B, "run_benchmark", fake_run)
    assert cli.main(["benchmark", "--ablation", "daa", "--epochs", "5"]) == 0
    out = capsys.readouterr().out
    assert "daa_resnet18_plain" in out and "+0.90" in out and "the component helps" in out


def test_ablation_command_is_the_reference_protocol_for_that_paper(monkeypatch):
    """The printed command builds the spec of the reference benchmark's protocol with the ablation's models."""
    import shlex

    command = B.ablation_command("al_resnet", data_dir="faces.csv")
    code, (spec,) = _cli_benchmark(monkeypatch, shlex.split(command)[4:])
    reference = B.load_committed(quiet=True)
    assert code == 0 and spec.models == B.ablation_models("al_resnet") and spec.out == "runs/ablation_al_resnet"
    assert spec.model_args["ror34_dex"] == {"small_input": True} and spec.seeds == (0, 1, 2)
    if reference is not None:  # the same protocol as the committed reference benchmark
        wanted = {k: v for k, v in reference["settings"].items() if k in spec.protocol() and k != "data_dir"}
        assert {k: v for k, v in spec.protocol().items() if k in wanted} == wanted
    with pytest.raises(ValueError, match="unknown ablation"):
        B.ablation_name("resnet")
