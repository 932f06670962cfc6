"""Paper mode on a CPU: `AGEKERAS_MAX_STEPS` runs the paper's configuration end to end in a few steps.

The fast tests check what the cap promises: every split cut to N batches (so per-face arrays and the
splits' ages keep one length), the whole learning-rate schedule (warm-up, step drops) inside the N steps,
and predictions that read their ages from the faces they predicted.

The slow test executes notebooks 01-05 the way a GPU user would run them, at the papers' image sizes,
batches, optimisers and schedules, but with `AGEKERAS_MAX_STEPS=2`: headless (no input()), from a
temporary folder outside the repository, with an empty data root, so the synthetic faces stand in for the
papers' datasets. It takes 10-30 minutes per notebook on two CPU cores (about 1.5 hours for the five) and
up to 16 GB of memory (notebook 04), so it runs only when `AGEKERAS_PAPER_SMOKE=1`:

    AGEKERAS_PAPER_SMOKE=1 python -m pytest tests/experiments/test_paper_mode.py -m slow -x -q
"""

import json
import os
import pathlib
import shutil

import numpy as np
import pytest

from agekeras import runtime
from agekeras.evaluation import load_splits
from agekeras.training import TrainConfig, train
from tests.tiny_runs import tiny_registered_model

REPO = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = ("01_vovnetv4_coral", "02_attention_lstm", "03_daa", "04_dhaa", "05_gra_net")
TINY = dict(dataset="synthetic", dataset_kwargs={"n": 160}, image_size=32, batch_size=16, verbose=0, seed=0)


def test_cap_splits_cuts_every_split_to_n_batches(monkeypatch):
    monkeypatch.delenv("AGEKERAS_MAX_STEPS", raising=False)
    config = TrainConfig(**TINY)
    full, _ = load_splits(config)
    assert runtime.cap_splits(full, 16) is full and len(full["train"]) > 32
    monkeypatch.setenv("AGEKERAS_MAX_STEPS", "2")
    capped, whole = load_splits(config)
    assert len(whole) == 160  # the full dataset (its age range sets the classes) is never cut
    for name, split in capped.items():
        assert len(split) == min(32, len(full[name]))
        np.testing.assert_array_equal(split.age, full[name].age[: len(split)])  # the first faces, in order


@pytest.mark.slow
def test_capped_run_goes_through_its_whole_step_schedule(tmp_path, monkeypatch):
    """Two steps with drops at 50 %: the second step already trains at lr / 10, as the paper's schedule
    would after its drop (the schedule spans the capped steps, not the uncapped epoch)."""
    monkeypatch.setenv("AGEKERAS_MAX_STEPS", "2")
    out = tmp_path / "run"
    result = train(TrainConfig(model=tiny_registered_model(monkeypatch), epochs=120, lr=1e-3, optimizer="sgd",
                               lr_drops=[0.5], warmup=0.0, out=str(out), **TINY))
    with open(out / "history.csv") as f:
        rows = f.read().splitlines()
    header, last = rows[0].split(","), rows[-1].split(",")
    assert len(rows) == 2 and float(last[header.index("lr")]) == pytest.approx(1e-4)
    assert result["max_steps"] == 2 and result["n"] == 32


@pytest.mark.slow
def test_flip_evaluation_scores_the_faces_it_predicted(tmp_path, monkeypatch):
    """`evaluate_with_flip` on a dataset longer than the cap compares each prediction with its own face."""
    from agekeras import datasets
    from agekeras.experiments import dhaa

    out = tmp_path / "run"
    train(TrainConfig(model=tiny_registered_model(monkeypatch), epochs=1, out=str(out), **TINY))
    faces = datasets.load("synthetic", n=80, image_size=32, seed=5)
    monkeypatch.setenv("AGEKERAS_MAX_STEPS", "1")
    row, flipped, _, _ = dhaa.evaluate_with_flip(out, faces, batch_size=16)
    assert len(flipped["age"]) == 16 and np.isfinite(row["MAE flip"])
    manual = np.mean(np.abs(np.asarray(flipped["age"]).reshape(-1) - faces.age[:16]))
    assert row["MAE flip"] == pytest.approx(manual)


def _execute(name, workdir):
    import nbclient
    import nbformat

    path = workdir / f"{name}.ipynb"
    shutil.copy(REPO / "notebooks" / path.name, path)  # a folder outside the repository
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=3600, kernel_name="python3", allow_errors=False,
                                     resources={"metadata": {"path": str(workdir)}})
    client.execute()
    nbformat.write(nb, workdir / f"executed_{name}.ipynb")
    return nb


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("AGEKERAS_PAPER_SMOKE") != "1",
                    reason="about 1.5 hours on 2 CPU cores: set AGEKERAS_PAPER_SMOKE=1 to run it")
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_paper_mode_notebook_runs_end_to_end(name, tmp_path, monkeypatch):
    work, data = tmp_path / "work", tmp_path / "empty_data_root"
    work.mkdir()
    data.mkdir()
    monkeypatch.setenv("AGEKERAS_MODE", "paper")
    monkeypatch.setenv("AGEKERAS_MAX_STEPS", "2")
    monkeypatch.setenv("AGEKERAS_DATA_ROOT", str(data))
    monkeypatch.setenv("CI", "true")  # nobody to answer a download question
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    for var in ("AGEKERAS_DATA_DIR", "AGEKERAS_RUNS_ROOT", "AGEKERAS_DOWNLOAD", "AGEKERAS_TIME_BUDGET"):
        monkeypatch.delenv(var, raising=False)
    nb = _execute(name, work)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "mode=paper" in text and "synthetic" in text
    metrics = sorted((work / "runs").rglob("metrics.json"))
    assert metrics, "no run was trained and scored"
    for path in metrics:  # every run trained one capped epoch and scored at most 2 batches
        result = json.loads(path.read_text())
        assert result.get("max_steps") == 2, path
        history = (path.parent / "history.csv").read_text().splitlines()
        assert len(history) == 2, path  # header + one epoch


def test_vovnetv4_paper_mode_keeps_the_papers_one_learning_rate(tmp_path, monkeypatch):
    """The VoVNetv4 paper names lr 0.0005 and no schedule: paper mode trains at that rate throughout."""
    from agekeras.callbacks import ProgressSchedule
    from agekeras.experiments import course, vovnetv4

    monkeypatch.setenv("AGEKERAS_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv("AGEKERAS_DATA_DIR", raising=False)
    S = vovnetv4.data_setting(course.setup("01_vovnetv4", "paper", verbose=False))
    assert (S.lr, S.epochs, S.batch_size, S.image_size, S.warmup, S.lr_drops) == (5e-4, 200, 128, 120, 0.0, [])
    schedule = ProgressSchedule(S.lr, total_steps=100, warmup=S.warmup, drops=S.lr_drops)
    assert [schedule.lr_at(p) for p in (0.0, 0.5, 0.99)] == [5e-4] * 3
    assert "constant" in S.protocol()
    trained = []
    monkeypatch.setattr(vovnetv4.training, "train", lambda config: trained.append(config) or {})
    vovnetv4.train_table_models(S, lambda name: tmp_path / name, models=["vovnetv4"])
    assert (trained[0].lr, trained[0].warmup, trained[0].lr_drops, trained[0].batch_size) == (5e-4, 0.0, [], 128)
