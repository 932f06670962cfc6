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
    p = subprocess.run([sys.executable, "-m", "agekeras", "quickstart", "--minutes", "0.1", "--n", "300", "--out", str(run)],
                       capture_output=True, text=True, timeout=400)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "metrics:" in p.stdout and "figures:" in p.stdout
    summary = json.loads([l for l in p.stdout.splitlines() if l.startswith("{")][-1])
    assert summary["n"] == 60 and summary["mae"] > 0
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


def test_quickstart_draws_about_one_face_per_training_example():
    from agekeras.cli import QUICKSTART_FACES_PER_SECOND, quickstart_faces

    assert quickstart_faces(3) == 3 * 60 * QUICKSTART_FACES_PER_SECOND == 36_000
    assert quickstart_faces(0.1) == 2_000 and quickstart_faces(60) == 40_000


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
        cli.main(["train", "--model", "resnet18_dex", "--out", str(tmp_path), "--augment", "blur=1"])
    with pytest.raises(ValueError, match="Unknown augmentation keys"):  # and from Python, when the config is made
        training.TrainConfig(augment={"blur": 1})
