"""Training, resume, time budget, evaluation and strategies, on tiny synthetic runs."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from agekeras.datasets.pipeline import zoom_images
from agekeras.training import TrainConfig, evaluate, load_splits, train
from agekeras.evaluation import TTA_VIEWS, load_run, dataset_outputs, view_pipeline
from agekeras.callbacks import ProgressSchedule

TINY = dict(dataset="synthetic", dataset_kwargs={"n": 160}, image_size=32, batch_size=32, verbose=0)


def _history(run):
    with open(run / "history.csv") as f:
        return list(csv.DictReader(f))


def _assert_lr_on_schedule(schedule, progress, rows):
    """Each history row's lr was set at its epoch's last step, which began
    between the budget-clock readings (as fractions of the budget) that ended
    the previous epoch and this one: the schedule must bracket it there.
    `progress` holds one more reading than `rows`: the start of the first."""
    for start, end, row in zip(progress, progress[1:], rows):
        window = [schedule.lr_at(p) for p in np.linspace(start, end, 201)]
        assert min(window) * (1 - 1e-4) <= float(row["lr"]) <= max(window) * (1 + 1e-4), (start, end, row["lr"])


def _cli(*args, env=None, **kw):
    e = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "agekeras", *args], env=e, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def _kill_after_epochs(proc, run, epochs, timeout=240):
    """SIGKILL a training process once its run has saved `epochs` epochs."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = run / "state.json"
        if state.exists() and json.loads(state.read_text())["epochs_done"] >= epochs:
            break
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_train_writes_the_run_directory(tmp_path):
    run = tmp_path / "run"
    result = train(TrainConfig(model="resnet18_dex", epochs=2, out=str(run), **TINY))
    for name in ("config.json", "history.csv", "best.keras", "last.keras", "metrics.json", "predictions.csv",
                 "state.json", "calibration.json", "figures/curves.png", "figures/pred_vs_true.png",
                 "figures/mae_by_age.png"):
        assert (run / name).exists(), name
    rows = _history(run)
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert {"loss", "age_mae", "val_age_mae", "lr", "train_seconds"} <= set(rows[0])
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["mae"] == pytest.approx(result["mae"]) and saved["n"] == 32  # 20% of 160
    assert set(saved["by_gender"]) == {"male", "female"}
    preds = list(csv.DictReader(open(run / "predictions.csv")))
    assert len(preds) == 32
    pred = np.array([float(p["predicted"]) for p in preds])
    true = np.array([float(p["age"]) for p in preds])
    assert np.mean(np.abs(pred - true)) == pytest.approx(result["mae"], abs=0.01)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["age_min"] >= 0 and cfg["num_classes"] == cfg["dataset"]["age_max"] - cfg["age_min"] + 1
    # A finished run asked for more epochs continues where it stopped.
    train(TrainConfig(model="resnet18_dex", epochs=3, out=str(run), **TINY))
    assert [int(r["epoch"]) for r in _history(run)] == [0, 1, 2]


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_epoch(tmp_path):
    run = tmp_path / "run"
    args = ["train", "--model", "resnet18_dex", "--dataset", "synthetic", "--dataset-arg", "n=160",
            "--image-size", "32", "--batch-size", "16", "--epochs", "30", "--out", str(run), "--verbose", "0"]
    proc = _cli(*args)
    _kill_after_epochs(proc, run, 2)
    done = json.loads((run / "state.json").read_text())["epochs_done"]
    assert 2 <= done < 30
    model = keras.saving.load_model(run / "last.keras", safe_mode=True)
    assert int(model.optimizer.iterations.numpy()) == done * 8  # 128 training faces / 16; optimizer state is in last.keras
    args[args.index("30")] = str(done + 2)
    out, _ = _cli(*args).communicate(timeout=300)
    assert "resuming" in out
    assert [int(r["epoch"]) for r in _history(run)] == list(range(done + 2))
    assert json.loads((run / "state.json").read_text())["epochs_done"] == done + 2
    assert json.loads((run / "metrics.json").read_text())["n"] == 32


@pytest.mark.slow
def test_time_budget_stops_training_and_fits_the_schedule(tmp_path):
    """Speed-independent: training stops once the budget is used (never an epoch that began after it), and
    each epoch's lr lies on the schedule between its budget-clock readings. How many epochs fit, and so how
    far into the cosine tail the last step lands, depends on the machine's speed and load; this does not."""
    run, budget = tmp_path / "run", 12.0
    config = TrainConfig(model="resnet18_dex", epochs=None, time_budget=budget / 60, out=str(run), **TINY)
    train(config)
    state = json.loads((run / "state.json").read_text())
    history = _history(run)
    assert state["train_seconds"] >= budget and state["epochs_done"] == len(history) >= 1
    assert all(float(r["train_seconds"]) < budget for r in history[:-1]), "an epoch began after the budget ran out"
    ends = [min(1.0, float(r["train_seconds"]) / budget) for r in history]
    _assert_lr_on_schedule(ProgressSchedule(config.lr, warmup=config.warmup), [0.0] + ends, history)
    if len(history) >= 2:
        assert float(history[-1]["lr"]) < float(history[0]["lr"])  # the run decayed past its warm-up peak


def test_progress_schedule_shape():
    s = ProgressSchedule(1.0, total_steps=100, warmup=0.1, floor=0.01)
    assert s.lr_at(0.0) == pytest.approx(0.01)
    assert s.lr_at(0.05) == pytest.approx(0.5)
    assert s.lr_at(0.1) == pytest.approx(1.0)
    assert s.lr_at(0.55) == pytest.approx(0.01 + 0.99 * 0.5)
    assert s.lr_at(1.0) == pytest.approx(0.01)


@pytest.mark.slow
def test_evaluate_reloads_with_safe_mode_and_rejects_other_runs(tmp_path):
    run = tmp_path / "run"
    first = train(TrainConfig(model="resnet18_coral", epochs=1, out=str(run), **TINY))
    again = evaluate(run)
    assert again["mae"] == pytest.approx(first["mae"], abs=1e-4)
    val = evaluate(run, split="val")
    assert val["split"] == "val" and (run / "metrics_val.json").exists()
    assert json.loads((run / "metrics.json").read_text())["split"] == "test"  # the test metrics stay
    flipped = evaluate(run, flip=True)  # the mean of the ages predicted on each face and on its mirror image
    model, config, _ = load_run(run)
    test = load_splits(config)[0]["test"]
    both = [dataset_outputs(model, test, 32)["age"].reshape(-1), dataset_outputs(model, test, 32, flip=True)["age"].reshape(-1)]
    assert flipped["mae"] == pytest.approx(np.mean(np.abs((both[0] + both[1]) / 2 - test.age)), abs=1e-4)
    assert flipped["flip"] and flipped["metrics_file"] == str(run / "metrics_flip.json")
    # The mirrored pipeline feeds each face reversed along its width. (A tiny
    # model can predict the same age for a face and its mirror, so the MAE
    # alone cannot show that the images were flipped.)
    (plain_x, _), (mirror_x, _) = (next(iter(view_pipeline(model, test, 32, 8, flip=f))) for f in (False, True))
    np.testing.assert_array_equal(np.asarray(mirror_x), np.asarray(plain_x)[:, :, ::-1])
    assert not np.array_equal(np.asarray(mirror_x), np.asarray(plain_x))
    assert not json.loads((run / "metrics.json").read_text())["flip"]
    # Six views: three zooms about the centre, each also mirrored; the zoomed pipeline feeds `zoom_images` of the plain one.
    tta = evaluate(run, tta=True)
    ages = [dataset_outputs(model, test, 32, flip=f, zoom=z)["age"].reshape(-1) for z, f in TTA_VIEWS]
    assert tta["mae"] == pytest.approx(np.mean(np.abs(np.mean(ages, axis=0) - test.age)), abs=1e-4)
    assert tta["tta"] and not tta["flip"] and tta["metrics_file"] == str(run / "metrics_tta.json")
    assert json.loads((run / "metrics_tta.json").read_text())["mae"] == tta["mae"]
    zoomed_x, _ = next(iter(view_pipeline(model, test, 32, 8, zoom=1.085)))
    np.testing.assert_allclose(np.asarray(zoomed_x), np.asarray(zoom_images(plain_x, None, 1.085)[0]), atol=1e-4)
    with pytest.raises(ValueError, match="not both"):
        evaluate(run, flip=True, tta=True)
    with pytest.raises(ValueError, match="split must be one of"):
        evaluate(run, split="validation")
    with pytest.raises(ValueError, match="holds another run .*model: 'resnet18_coral' -> 'resnet18_dex'"):
        train(TrainConfig(model="resnet18_dex", epochs=1, out=str(run), **TINY))
    with pytest.raises(FileNotFoundError, match="config.json"):
        evaluate(tmp_path)


def test_loss_recipe_label_sigma_and_age_l1(tmp_path):
    from agekeras import losses
    from agekeras.models import registry
    model = registry.get("resnet18_dex", input_shape=(32, 32, 3), num_classes=11, age_min=20)
    args = registry.entry("resnet18_dex").compile_args(model, num_classes=11, label_sigma=2.0, age_l1=0.5)
    assert isinstance(args["loss"]["age_probs"], losses.GaussianLabelCrossentropy)
    assert args["loss"]["age_probs"].sigma == 2.0 and args["loss"]["age_probs"].num_classes == 11
    assert args["loss_weights"] == {"age_probs": 1.0, "age": 0.5}
    assert registry.entry("resnet18_dex").compile_args(model, num_classes=11)["loss"].keys() == {"age_probs"}
    coral = registry.get("resnet18_coral", input_shape=(32, 32, 3), num_classes=11, age_min=20)
    with pytest.raises(ValueError, match="softmax age head"):
        registry.entry("resnet18_coral").compile_args(coral, num_classes=11, label_sigma=2.0)
    regression = registry.get("resnet18_regression", input_shape=(32, 32, 3), num_classes=11, age_min=20)
    with pytest.raises(ValueError, match="already trains its age output"):
        registry.entry("resnet18_regression").compile_args(regression, num_classes=11, age_l1=1.0)
    # A run with the recipe trains, saves it in config.json and reloads with safe_mode.
    run = tmp_path / "run"
    result = train(TrainConfig(model="resnet18_dex", epochs=1, label_sigma=2.0, age_l1=0.1, out=str(run), **TINY))
    assert json.loads((run / "config.json").read_text())["train"]["label_sigma"] == 2.0
    assert evaluate(run)["mae"] == pytest.approx(result["mae"], abs=1e-4)


def test_ema_optimizer_and_best_checkpoint_hold_the_moving_average(tmp_path):
    from agekeras.callbacks import RunCheckpoint, TrainingClock
    from agekeras.runtime import make_optimizer

    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="ema must be a momentum"):
            make_optimizer("adam", 1e-3, ema=bad)
    assert not make_optimizer("sgd", 1e-3).use_ema
    momentum = 0.6
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.compile(optimizer=make_optimizer("adam", 0.1, ema=momentum), loss="mse")
    x, y = np.random.default_rng(0).normal(size=(16, 3)).astype("float32"), np.ones((16, 1), "float32")
    average = None
    for _ in range(4):  # the NumPy reference: avg <- m * avg + (1 - m) * w after each step, avg = w after the first
        model.train_on_batch(x, y)
        raw = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
        average = raw if average is None else [momentum * a + (1 - momentum) * w for a, w in zip(average, raw)]
    checkpoint = RunCheckpoint(tmp_path, TrainingClock(), "val_age_mae")
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"val_age_mae": 1.0})
    best = keras.saving.load_model(tmp_path / "best.keras", safe_mode=True)
    last = keras.saving.load_model(tmp_path / "last.keras", safe_mode=True)
    for b, l, m, a, r in zip(best.trainable_weights, last.trainable_weights, model.trainable_weights, average, raw):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(b), a, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(l), r)  # last.keras and the model keep the raw weights
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(m), r)
    assert not np.allclose(average[0], raw[0])
    assert last.optimizer.use_ema and last.optimizer.ema_momentum == momentum


@pytest.mark.slow
def test_ema_run_validates_and_keeps_the_averaged_weights(tmp_path):
    run = tmp_path / "run"
    train(TrainConfig(model="resnet18_dex", epochs=3, ema=0.7, out=str(run), **TINY))
    state, rows = json.loads((run / "state.json").read_text()), _history(run)
    assert state["best"] == pytest.approx(min(float(r["val_age_mae"]) for r in rows))
    # Validation scored the averaged weights, and best.keras holds those same weights.
    assert evaluate(run, split="val")["mae"] == pytest.approx(state["best"], rel=1e-3)
    assert json.loads((run / "config.json").read_text())["train"]["ema"] == 0.7


@pytest.mark.slow
def test_mixed_precision_restores_the_global_policy(tmp_path):
    result = train(TrainConfig(model="resnet18_dex", epochs=1, mixed_precision=True, out=str(tmp_path / "r"), **TINY))
    assert np.isfinite(result["mae"])
    assert keras.mixed_precision.global_policy().name == "float32"
    model = keras.saving.load_model(tmp_path / "r" / "best.keras", compile=False)
    assert model.get_layer("dex_head").dtype_policy.compute_dtype == "float32"


@pytest.mark.slow
@pytest.mark.parametrize("strategy,extra,env", [
    ("mirrored", ["--virtual-cpus", "2"], {}),
    ("multiworker", [], {"TF_CONFIG": json.dumps({"cluster": {"worker": ["localhost:0"]}, "task": {"type": "worker", "index": 0}})}),
])
def test_distribution_strategies_on_cpu(tmp_path, strategy, extra, env):
    out, _ = _cli("train", "--model", "resnet18_dex", "--dataset", "synthetic", "--dataset-arg", "n=64",
                  "--image-size", "32", "--batch-size", "16", "--epochs", "1", "--strategy", strategy,
                  "--out", str(tmp_path / "r"), "--verbose", "0", *extra, env=env).communicate(timeout=300)
    assert (tmp_path / "r" / "metrics.json").exists(), out
    if strategy == "mirrored":
        assert "cpu:1" in out.lower(), out  # the model was mirrored on two devices


@pytest.mark.slow
def test_time_budget_resume_keeps_schedule_best_score_and_elapsed_time(tmp_path):
    """Kill a budgeted run mid-way: the resumed run continues the clock, the schedule and the best score."""
    run = tmp_path / "run"
    budget_min = 0.75
    args = ["train", "--model", "resnet18_dex", "--dataset", "synthetic", "--dataset-arg", "n=160",
            "--image-size", "32", "--batch-size", "16", "--time-budget", str(budget_min), "--out", str(run),
            "--verbose", "0"]
    proc = _cli(*args)
    _kill_after_epochs(proc, run, 2)
    before = json.loads((run / "state.json").read_text())
    assert before["train_seconds"] < budget_min * 60, "killed too late to test a resume"
    t = time.time()
    out, _ = _cli(*args).communicate(timeout=300)
    assert "resuming" in out
    after = json.loads((run / "state.json").read_text())
    rows = _history(run)
    seconds = [float(r["train_seconds"]) for r in rows]
    lrs = [float(r["lr"]) for r in rows]
    done = before["epochs_done"]
    # the clock continued: seconds keep increasing across the kill, and the resumed process
    # trained only for what was left of the budget
    assert all(b > a for a, b in zip(seconds, seconds[1:])), seconds
    assert seconds[done] > before["train_seconds"]
    assert seconds[-1] - 0.5 <= after["train_seconds"] <= seconds[-1] + 10
    assert budget_min * 60 <= after["train_seconds"] < budget_min * 60 + 20
    assert time.time() - t < budget_min * 60 - before["train_seconds"] + 120
    # the schedule continued: each logged lr lies on the schedule between the
    # budget-clock readings that began and ended its epoch (as in the test above)
    ends = [min(1.0, s / (budget_min * 60)) for s in seconds]
    _assert_lr_on_schedule(ProgressSchedule(1e-3, warmup=TrainConfig().warmup), ends[done - 1:], rows[done:])
    assert max(lrs[done:]) < 1e-3  # no second warm-up to the peak
    # the best score is kept: never worse than before the kill
    assert after["best"] <= before["best"] + 1e-9


def test_cpu_others_is_the_busy_time_this_process_did_not_use(monkeypatch):
    from agekeras import runtime as T

    # 2 cores for 10 s: 20 CPU-seconds; 16 busy, 11 of them this process's
    assert T.cpu_others((100.0, 400.0, 50.0), (116.0, 420.0, 61.0)) == pytest.approx(5 / 20)
    assert T.cpu_others((100.0, 400.0, 50.0), (110.0, 420.0, 61.0)) == 0.0  # clipped, never negative
    assert T.cpu_others(None, (1.0, 2.0, 0.0)) is None
    snapshot = T.cpu_snapshot()
    if snapshot is not None:  # Linux
        busy, total, own = snapshot
        assert 0 <= busy <= total and own >= 0


def test_training_clock_logs_the_cpu_share_of_other_processes(monkeypatch):
    from agekeras import callbacks as T

    snapshots = iter([(100.0, 400.0, 50.0), (116.0, 420.0, 61.0)])
    monkeypatch.setattr(T, "cpu_snapshot", lambda: next(snapshots))
    clock = T.TrainingClock()
    clock.on_train_begin()
    clock.on_epoch_begin(0)
    logs = {}
    clock.on_epoch_end(0, logs)
    assert logs["cpu_others"] == pytest.approx(0.25) and logs["train_seconds"] >= 0


def _cell_model(width=8, num_classes=60, age_min=1):
    """A model wired as a notebook cell would: agekeras layers, conventional output names."""
    from agekeras import layers

    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = layers.ConvBNReLU(width, 3, strides=2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    probs, age = layers.DEXHead(num_classes, age_min=age_min)(x)
    return keras.Model(inputs, {"age_probs": probs, "age": keras.layers.Identity(name="age")(age)})


def test_train_trains_the_model_object_it_is_given_and_never_reuses_another_models_run(tmp_path):
    keras.utils.set_random_seed(0)
    config = TrainConfig(model="cell_model", epochs=1, num_classes=60, age_min=1, label_sigma=2.0, age_l1=0.5,
                         out=str(tmp_path / "run"), **TINY)
    model = _cell_model()
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    result = train(config, model=model)
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    assert all(not np.allclose(a, b) for a, b in zip(after, before)), "the passed model's weights did not change"
    assert model.optimizer.iterations.numpy() > 0 and np.isfinite(result["mae"])
    # compiled by the conventions with the run's recipe: Gaussian labels on age_probs, L1 on age
    assert {type(l).__name__ for l in keras.tree.flatten(model.loss)} >= {"GaussianLabelCrossentropy",
                                                                         "MeanAbsoluteError"}
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    from agekeras.training import architecture

    assert saved["model"]["custom"] and saved["model"]["fingerprint"] == architecture(model)["fingerprint"]
    assert saved["model"]["params"] == model.count_params() and len(saved["model"]["summary"]) == len(model.layers)
    # The same architecture built again (other auto-generated layer names) resumes: the run is finished, so it
    # is evaluated again, and the object gets the run's weights.
    again = _cell_model()
    assert architecture(again)["fingerprint"] == architecture(model)["fingerprint"]
    assert train(config, model=again)["mae"] == pytest.approx(result["mae"], abs=1e-4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again.trainable_weights[0]), after[0])
    # Another model, or the same model with other settings, never re-scores the old run.
    with pytest.raises(ValueError, match="holds another run .*architecture"):
        train(config, model=_cell_model(width=12))
    import dataclasses

    with pytest.raises(ValueError, match="holds another run .*label_sigma: 2.0 -> 3.0"):
        train(dataclasses.replace(config, label_sigma=3.0), model=_cell_model())
    with pytest.raises(ValueError, match="holds another run .*model_kwargs"):
        train(dataclasses.replace(config, model="resnet18_dex", model_kwargs={"dropout": 0.1}))
    with pytest.raises(ValueError, match="'age_probs' of .* has 50 units; the run has 60 age classes"):
        train(dataclasses.replace(config, out=str(tmp_path / "narrow")), model=_cell_model(num_classes=50))
    # A compiled model keeps its own compile().
    own = _cell_model()
    own.compile(optimizer="sgd", loss={"age": "mse"})
    train(dataclasses.replace(config, out=str(tmp_path / "own")), model=own)
    assert own.loss == {"age": "mse"} and isinstance(own.optimizer, keras.optimizers.SGD)


def test_registering_a_builder_again_from_a_rerun_cell_replaces_it():
    from agekeras.models import registry

    def make():
        @registry.register("cell_rerun_probe", description="probe")
        def cell_rerun_probe(input_shape=(32, 32, 3), num_classes=10, age_min=0):
            return _cell_model(num_classes=num_classes, age_min=age_min)

        return cell_rerun_probe

    first, second = make(), make()  # a cell run twice defines a new function object of the same name
    assert first is not second and registry.entry("cell_rerun_probe").builder is second
    with pytest.raises(ValueError, match="already registered"):
        registry.register("cell_rerun_probe")(lambda **kw: None)  # another function under that name
    registry._REGISTRY.pop("cell_rerun_probe")


def test_max_steps_caps_training_and_evaluation(tmp_path, monkeypatch):
    """AGEKERAS_MAX_STEPS=N: one epoch of N steps, and N batches per evaluation (the paper-mode smoke test)."""
    monkeypatch.setenv("AGEKERAS_MAX_STEPS", "1")
    run = tmp_path / "run"
    result = train(TrainConfig(model="cell_model", epochs=5, num_classes=60, age_min=1, out=str(run), **TINY),
                   model=_cell_model())
    assert len(_history(run)) == 1
    assert result["n"] == TINY["batch_size"] and result["max_steps"] == 1 and result["unreadable"] == 0
    model = keras.saving.load_model(run / "last.keras", safe_mode=True)
    assert int(model.optimizer.iterations.numpy()) == 1
    monkeypatch.setenv("AGEKERAS_MAX_STEPS", "zero")
    with pytest.raises(ValueError, match="AGEKERAS_MAX_STEPS must be a positive number"):
        evaluate(run)


def test_steps_per_epoch_draws_short_epochs_from_the_repeated_faces(tmp_path, monkeypatch):
    # 160 faces -> 115 training faces = 4 batches of 32; epochs of 6 batches need the faces repeated
    seen, batches = {}, []
    fit = keras.Model.fit

    def recording_fit(self, *args, **kwargs):
        seen.update(kwargs)
        kwargs["callbacks"] = [*kwargs["callbacks"], keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: batches.append(batch))]
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", recording_fit)
    config = TrainConfig(**TINY, epochs=3, steps_per_epoch=6, out=str(tmp_path / "run"))
    train(config)
    assert seen["steps_per_epoch"] == 6 and len(batches) == 18  # no epoch ran out of faces
    assert [int(r["epoch"]) for r in _history(tmp_path / "run")] == [0, 1, 2]
    with pytest.raises(ValueError, match="steps_per_epoch"):
        TrainConfig(steps_per_epoch=0)


def test_eager_runs_fit_and_score_without_tracing_and_give_a_finished_run(tmp_path, monkeypatch):
    """AGEKERAS_EAGER=1 (the course's quick mode): the model trains and best.keras is scored eagerly."""
    seen = []
    fit = keras.Model.fit

    def recording_fit(self, *args, **kwargs):
        seen.append(self.run_eagerly)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", recording_fit)
    monkeypatch.setenv("AGEKERAS_EAGER", "1")
    result = train(TrainConfig(**TINY, epochs=1, out=str(tmp_path / "eager")))
    assert seen == [True] and result["n"] > 0 and np.isfinite(result["mae"])
    monkeypatch.setenv("AGEKERAS_EAGER", "0")
    train(TrainConfig(**TINY, epochs=1, out=str(tmp_path / "traced")))
    assert seen == [True, False]


def test_quick_mode_turns_eager_training_on(monkeypatch):
    from agekeras import runtime as T
    from agekeras.experiments import course

    monkeypatch.delenv("AGEKERAS_EAGER", raising=False)
    course.setup("00_getting_started", mode="cpu", verbose=False)
    assert not T.run_eagerly()
    course.setup("00_getting_started", mode="quick", verbose=False)
    assert T.run_eagerly()


def test_fingerprint_survives_save_and_load_of_a_model_with_a_data_prior(tmp_path):
    """The head's age prior (the training labels, renormalised on load) is not architecture: a trained model
    loaded from its .keras file has the fingerprint its run recorded; another width still differs."""
    from agekeras.training import architecture

    prior = np.full(110, 1 / 110)  # renormalised when loaded: 0.009090909090909092 -> ...094
    import agekeras.models

    model = agekeras.models.get("resnet18_dex", input_shape=(32, 32, 3), num_classes=110, age_min=1, age_prior=prior)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert architecture(loaded)["fingerprint"] == architecture(model)["fingerprint"]
    other = agekeras.models.get("resnet18_dex", input_shape=(32, 32, 3), num_classes=111, age_min=1)
    assert architecture(other)["fingerprint"] != architecture(model)["fingerprint"]
