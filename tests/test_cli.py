import json
import subprocess
import sys

import pytest

from agekeras import cli


def test_unknown_names_list_the_choices(capsys):
    with pytest.raises(SystemExit, match="Available models: .*resnet18_dex"):
        cli.main(["train", "--model", "nope", "--out", "x"])
    with pytest.raises(SystemExit, match="Available datasets: .*utkface"):
        cli.main(["train", "--model", "resnet18_dex", "--dataset", "nope", "--out", "x"])


def test_epochs_and_time_budget_are_exclusive():
    with pytest.raises(SystemExit):
        cli.main(["train", "--model", "resnet18_dex", "--epochs", "2", "--time-budget", "1", "--out", "x"])


def test_list_shows_models_and_datasets(capsys):
    cli.main(["list"])
    out = capsys.readouterr().out
    assert "resnet18_dex" in out and "synthetic" in out and "utkface" in out


def test_model_args_parse_json():
    assert cli._kv(["n=40", "name=abc", "flag=true", "xs=[1,2]"]) == {"n": 40, "name": "abc", "flag": True, "xs": [1, 2]}


@pytest.mark.slow
def test_quickstart_and_evaluate_end_to_end(tmp_path):
    run = tmp_path / "qs"
    p = subprocess.run([sys.executable, "-m", "agekeras", "quickstart", "--minutes", "0.1", "--n", "300", "--out", str(run),
                        "--record", str(tmp_path / "quickstart.json")],
                       capture_output=True, text=True, timeout=400)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "metrics:" in p.stdout and "figures:" in p.stdout
    summary = json.loads([l for l in p.stdout.splitlines() if l.startswith("{")][-1])
    assert summary["n"] == 60 and summary["mae"] > 0
    record = json.loads((tmp_path / "quickstart.json").read_text())
    assert record["faces"] == 300 and record["splits"]["test"] == 60 and record["test_mae"] == pytest.approx(summary["mae"], abs=1e-3)
    assert record["epochs"] >= 1 and record["validation_points"] == record["epochs"] and record["date"]
    assert record["machine"]["matmul_peak_gflops"] > 0 and record["command"].endswith("--minutes 0.1 --n 300")
    p = subprocess.run([sys.executable, "-m", "agekeras", "evaluate", "--run", str(run)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads((run / "metrics.json").read_text())["mae"] == pytest.approx(summary["mae"], abs=1e-3)


def test_quickstart_with_a_data_dir_trains_the_cpu_recipe_and_scores_it_with_flip(tmp_path, monkeypatch, capsys):
    from agekeras import training
    from agekeras.experiments.benchmark import CPU_RECIPE, CPU_RECIPE_MINUTES

    seen = {}

    def fake_train(config):
        seen["config"] = config
        return {"mae": 6.0, "median_predictor_mae": 15.0, "n": 10}

    def fake_evaluate(run, flip=False, tta=False):
        seen.setdefault("views", []).append((flip, tta))
        return {"mae": 5.8, "metrics_file": f"{run}/metrics_{'tta' if tta else 'flip'}.json"}

    monkeypatch.setattr(training, "train", fake_train)
    monkeypatch.setattr(training, "evaluate", fake_evaluate)
    cli.main(["quickstart", "--data-dir", str(tmp_path), "--out", str(tmp_path / "qs")])
    config = seen["config"]
    assert config.dataset == "utkface" and config.time_budget == CPU_RECIPE_MINUTES
    assert seen["views"] == [(True, False)]  # scored with flip
    assert {k: getattr(config, k) for k in CPU_RECIPE} == CPU_RECIPE
    assert config.augment == {"rotation": 0, "translation": 0, "zoom": 0}  # the mirror image alone
    out = capsys.readouterr().out
    assert "flip test-time averaging" in out and "qs/metrics_flip.json" in out
    assert "augment rotation=0 translation=0 zoom=0" in out
    cli.main(["quickstart", "--data-dir", str(tmp_path), "--minutes", "2", "--out", str(tmp_path / "qs")])
    assert seen["config"].time_budget == 2


def test_quickstart_draws_fresh_faces_in_short_epochs():
    from agekeras.cli import (QUICKSTART_FACES_PER_SECOND, QUICKSTART_STEPS_PER_EPOCH, QUICKSTART_VAL_FRACTION,
                              quickstart_faces)

    n = quickstart_faces(3)
    assert n == 36_000 and n == 3 * 60 * QUICKSTART_FACES_PER_SECOND  # about one face per training example
    assert quickstart_faces(0.1) == 2_000 and quickstart_faces(600) == 40_000
    rate = 150  # ResNet-18 DEX at 64 px on 2 CPU cores, end to end (speeds move 2x)
    points = 3 * 60 * rate / (QUICKSTART_STEPS_PER_EPOCH * 64)
    assert points / 2 >= 10  # cores half as fast still give 10 validation points
    assert n * 0.8 * QUICKSTART_VAL_FRACTION <= 1_000  # a validation pass costs a few seconds, not an epoch's


def test_quickstart_trains_on_the_sized_faces_and_records_its_run(tmp_path, monkeypatch, capsys):
    from agekeras import cli, training

    seen = {}

    def fake_train(config):
        seen["config"] = config
        return {"mae": 9.0, "median_predictor_mae": 25.0, "n": 380}

    monkeypatch.setattr(training, "train", fake_train)
    monkeypatch.setattr(cli, "matmul_gflops", lambda: 123.4)
    monkeypatch.setattr(cli, "quickstart_record", lambda run, result, flipped, peak, command: {
        "command": command, "test_mae": result["mae"], "peak": peak, "flipped": flipped})
    record = tmp_path / "results" / "quickstart.json"
    cli.main(["quickstart", "--out", str(tmp_path / "qs"), "--record", str(record)])
    config = seen["config"]
    assert config.dataset == "synthetic" and config.time_budget == 3 and config.epochs is None
    assert config.dataset_kwargs["n"] == cli.quickstart_faces(3)
    assert config.steps_per_epoch == cli.QUICKSTART_STEPS_PER_EPOCH and config.val_fraction == cli.QUICKSTART_VAL_FRACTION
    assert json.loads(record.read_text()) == {"command": "python -m agekeras quickstart", "test_mae": 9.0,
                                              "peak": 123.4, "flipped": None}
    assert "drawing 36,000 synthetic faces" in capsys.readouterr().out


def test_evaluate_tta_and_flip_options(tmp_path, monkeypatch, capsys):
    from agekeras import training

    seen = {}

    def fake_evaluate(run, **kw):
        seen.update(kw)
        return {"mae": 5.5, "metrics_file": f"{run}/metrics_tta.json"}

    monkeypatch.setattr(training, "evaluate", fake_evaluate)
    cli.main(["evaluate", "--run", str(tmp_path), "--tta"])
    assert seen["tta"] is True and seen["flip"] is False
    out = capsys.readouterr().out  # the report names the file the six-view metrics went to, and its figures
    assert f"metrics:  {tmp_path}/metrics_tta.json" in out and "pred_vs_true_tta.png" in out
    with pytest.raises(SystemExit):  # tta already holds the mirror images
        cli.main(["evaluate", "--run", str(tmp_path), "--tta", "--flip"])


def test_augment_factors_reach_the_config_and_bad_ones_fail_early(tmp_path, monkeypatch):
    from agekeras import training

    seen = {}
    monkeypatch.setattr(training, "train", lambda config: seen.setdefault("config", config) and {"mae": 6.0})
    monkeypatch.setattr(cli, "_report", lambda *a: None)
    cli.main(["train", "--model", "resnet18_dex", "--out", str(tmp_path), "--augment", "zoom=0.05",
              "--augment", "rotation=0"])
    assert seen["config"].augment == {"zoom": 0.05, "rotation": 0}
    seen.clear()
    cli.main(["train", "--model", "resnet18_dex", "--out", str(tmp_path), "--no-augment"])
    assert seen["config"].augment is False
    with pytest.raises(SystemExit, match="cannot be combined"):
        cli.main(["train", "--model", "resnet18_dex", "--out", str(tmp_path), "--no-augment", "--augment", "zoom=0"])
    with pytest.raises(SystemExit, match="--augment: Unknown augmentation keys"):  # before any data is read
        cli.main(["train", "--model", "resnet18_dex", "--out", str(tmp_path), "--augment", "shear=1"])
    with pytest.raises(SystemExit, match="--augment: Augmentation factor grayscale=2 is outside"):
        cli.main(["train", "--model", "resnet18_dex", "--out", str(tmp_path), "--augment", "grayscale=2"])
    with pytest.raises(ValueError, match="Unknown augmentation keys"):  # and from Python, when the config is made
        training.TrainConfig(augment={"shear": 1})


@pytest.mark.parametrize("dataset", ["synthetic", "utkface", "fgnet"])
def test_train_options_default_to_the_configs_own_values_for_every_dataset(tmp_path, monkeypatch, dataset):
    """No option's default is a value the config resolved for another dataset
    (e.g. the alignment "auto" resolves to for the default, synthetic, one): a
    bare `train --dataset D` is `TrainConfig(model, dataset=D, out)`."""
    from agekeras import training

    seen = {}
    monkeypatch.setattr(training, "train", lambda config: seen.setdefault("config", config) and {"mae": 6.0})
    monkeypatch.setattr(cli, "_report", lambda *a: None)
    cli.main(["train", "--model", "resnet18_dex", "--dataset", dataset, "--out", str(tmp_path)])
    want = training.TrainConfig(model="resnet18_dex", dataset=dataset, out=str(tmp_path))
    assert seen["config"].to_json() == want.to_json()
    assert seen["config"].align == {"utkface": "utkface"}.get(dataset)


def test_train_on_utkface_records_the_utkface_alignment(tmp_path, monkeypatch):
    """A real one-epoch run of a tiny registered model through the command line:
    config.json holds the alignment of UTKFace's crops, so `predict` aligns
    photos that way."""
    from agekeras import inference
    from tests.tiny_runs import tiny_registered_model, utkface_folder

    model = tiny_registered_model(monkeypatch)
    utkface_folder(tmp_path / "UTKFace", n=24)
    run = tmp_path / "run"
    cli.main(["train", "--model", model, "--dataset", "utkface", "--data-dir", str(tmp_path / "UTKFace"),
              "--epochs", "1", "--image-size", "32", "--batch-size", "8", "--out", str(run), "--verbose", "0"])
    saved = json.loads((run / "config.json").read_text())["train"]
    assert (saved["model"], saved["dataset"], saved["align"]) == (model, "utkface", "utkface")
    assert inference.load_predictor(run).align == "utkface"
    assert json.loads((run / "metrics.json").read_text())["n"] > 0


@pytest.mark.parametrize("command", ["download", "align", "benchmark", "train"])
def test_every_command_helps_from_outside_the_repository_without_importing_models(tmp_path, command):
    """`python -m agekeras <command> --help` works wherever the package is installed (no `data_prep` needed), and
    building the parser imports no model builder and no training code."""
    code = ("import sys; from agekeras import cli\n"
            f"try:\n    cli.main([{command!r}, '--help'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "heavy = sorted(m for m in sys.modules if m.startswith(('agekeras.models', 'agekeras.training',"
            " 'agekeras.evaluation', 'data_prep')))\n"
            "print('HEAVY', heavy)")
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage: python -m agekeras " + command in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "HEAVY []"
