"""Training: `train(config)` for a registered model, `train(config, model=m)`
for a model built anywhere (a notebook cell, a changed builder).

```python
from agekeras.training import TrainConfig, train

result = train(TrainConfig(model="resnet18_dex", dataset="utkface", data_dir="UTKFace", time_budget=15,
                           out="runs/r18"))
model = my_model_from_agekeras_layers()            # dict outputs named by agekeras.models.outputs
result = train(TrainConfig(model="my_model", epochs=5, out="runs/mine"), model=model)  # trains `model` itself
```

A run writes its directory through `agekeras.runs.RunDir` (config, history,
checkpoints, state, metrics, figures). Restarting `train` with the same
`out` continues from last.keras (epoch, optimizer state, elapsed time for
`time_budget`, learning-rate schedule), provided every setting of the run
(`agekeras.config.resume_key`) and the model's architecture
(`architecture(model)["fingerprint"]`) are the same; otherwise `train`
refuses and names what differs, so that a changed model is never scored as
the old one. Evaluation lives in `agekeras.evaluation` (`evaluate` is
re-exported here); the device, precision and optimizer in `agekeras.runtime`;
the callbacks in `agekeras.callbacks`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings

import keras

from agekeras import models as model_registry
from agekeras.calibration import calibrate_run
from agekeras.callbacks import BudgetProgress, ProgressSchedule, RunCheckpoint, TrainingClock
from agekeras.config import DATASET_ALIGNMENT, TrainConfig, config_differences
from agekeras.evaluation import evaluate, load_run, load_splits
from agekeras.runs import RunDir
from agekeras.runtime import MAX_STEPS_ENV, get_strategy, make_optimizer, max_steps, mixed_precision_policy, run_eagerly

__all__ = ["DATASET_ALIGNMENT", "TrainConfig", "architecture", "build_model", "compile_model", "evaluate",
           "load_splits", "make_dataset", "train"]

logger = logging.getLogger("agekeras.training")


def make_dataset(ds, config: TrainConfig, model, *, training, age_min, num_classes, repeat=False, entry=None):
    """The tf.data pipeline for `ds`, with the targets `model` needs.

    Args:
        ds: an `AgeDataset`.
        config: the run's settings (size, batch, seed, augmentation).
        model: the model (its output names choose the targets).
        training: shuffle and augment.
        age_min, num_classes: the age classes of the head.
        repeat: repeat forever.
        entry: the model's `ModelEntry` (landmarks, extra targets); default
            `agekeras.models.entry_for(config.model, model)`.
    """
    from agekeras.datasets.pipeline import make_tf_dataset

    names = list(model.output.keys())
    entry = entry or model_registry.entry_for(config.model, model)
    extra = None
    if entry.targets is not None:
        kwargs = dict(config.model_kwargs)

        def extra(labels):
            return entry.targets(labels, **kwargs)

    return make_tf_dataset(
        ds,
        image_size=config.image_size,
        batch_size=config.batch_size,
        training=training,
        seed=config.seed,
        augment=config.augment if training else False,
        cache=config.cache,
        with_landmarks=entry.needs_landmarks,
        targets=model_registry.make_targets(names, age_min, num_classes, extra),
        repeat=repeat,
    )


def build_model(config: TrainConfig, age_min, num_classes, train_ages=None):
    """Build and compile the registered model of `config`.

    Args:
        config: the run's settings.
        age_min, num_classes: the age classes of the head.
        train_ages: ages of the training split; a builder declared with
            `accepts_prior` gets their label prior (`agekeras.ages.age_prior`),
            so its head starts at the prior.
    """
    from agekeras.ages import age_prior

    entry = model_registry.entry(config.model)
    kwargs = dict(config.model_kwargs)
    if train_ages is not None and entry.accepts_prior and "age_prior" not in kwargs:
        kwargs["age_prior"] = age_prior(train_ages, age_min, num_classes).tolist()
    model = entry.builder(
        input_shape=(config.image_size, config.image_size, 3),
        num_classes=num_classes,
        age_min=age_min,
        **kwargs,
    )
    return compile_model(model, config, entry, num_classes)


def compile_model(model, config: TrainConfig, entry, num_classes):
    """Compile `model` with the run's optimizer and its entry's losses plus the
    run's loss recipe (`ModelEntry.compile_args`); returns the model."""
    model.compile(optimizer=make_optimizer(config.optimizer, config.lr, config.weight_decay, config.ema),
                  **entry.compile_args(model, num_classes=num_classes, label_sigma=config.label_sigma,
                                       age_l1=config.age_l1))
    return model


_NOT_ARCHITECTURE = ("name", "inbound_nodes", "input_layers", "output_layers", "shared_object_id",
                     "age_prior")  # Keras' per-session names and graph wiring; the head's initial bias (data, not design)


def _strip_names(obj):
    """A layer config without the names Keras numbers per session (dense_3) and without the
    starting values taken from the data (a head's `age_prior`); floats to 6 significant digits,
    so that a model saved and loaded again has the fingerprint it was trained with."""
    if isinstance(obj, dict):
        return {k: _strip_names(v) for k, v in obj.items() if k not in _NOT_ARCHITECTURE}
    if isinstance(obj, (list, tuple)):
        return [_strip_names(v) for v in obj]
    if isinstance(obj, float):
        return float(f"{obj:.6g}")
    return obj


def architecture(model) -> dict:
    """What identifies a model's architecture across sessions.

    Returns:
        dict: `fingerprint` (12 hex digits of a hash over every layer's class,
        configuration without its name, and weight shapes, in order), `params`
        (the number of weights), `name`, and `summary` (one line per layer:
        class, output names, parameter count).
    """
    parts, summary = [], []
    for layer in model.layers:
        try:
            cfg = _strip_names(layer.get_config())
        except (NotImplementedError, TypeError):
            cfg = {}
        shapes = [tuple(int(d) for d in w.shape) for w in layer.weights]
        parts.append([type(layer).__name__, cfg, shapes])
        summary.append(f"{type(layer).__name__} {layer.name} {layer.count_params() if layer.built else 0}")
    text = json.dumps(parts, sort_keys=True, default=str)
    return {"fingerprint": hashlib.sha256(text.encode()).hexdigest()[:12], "params": int(model.count_params()),
            "name": model.name, "summary": summary}

def train(config: TrainConfig, model=None):
    """Train (or resume) a run; returns the test metrics dict.

    Args:
        config: the run's settings; `config.out` is the run directory.
        model: None to build the registered model `config.model`, or a
            `keras.Model` to train that very object: built in a notebook cell
            from `agekeras.layers`, or by a registered builder with other
            arguments. Its outputs are trained by the output-name conventions
            of `agekeras.models.outputs` (with the entry's declared losses when
            `config.model` names a registered model, and the run's loss
            recipe), unless it is compiled already: then its own `compile()`
            holds. An input named "landmarks" gets the faces' landmarks. The
            run records that it was passed in and its `architecture`.

    Returns:
        The test metrics of best.keras (see `agekeras.evaluation.evaluate`);
        a passed `model` ends holding the last epoch's weights.

    Raises:
        ValueError: `config.out` holds a run with other settings or another
            architecture (the message names the differences): use another
            `out`, or delete the folder to start again.

    If `config.out` holds a run with the same settings (and, for a passed
    model, the same architecture), training continues from last.keras (a
    finished run is only evaluated again, unless more epochs than it has done
    are asked for).
    """
    policy = keras.mixed_precision.global_policy()
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy(mixed_precision_policy())
    try:
        return _train(config, model)
    finally:
        keras.mixed_precision.set_global_policy(policy)


def _check_same_run(run, config, model):
    saved = run.read_config()
    diffs = config_differences(saved["train"], config)
    old = saved.get("model", {})
    if model is not None and old.get("fingerprint") != architecture(model)["fingerprint"]:
        diffs.append(f"architecture: {old.get('name', config.model)} {old.get('fingerprint')} -> "
                     f"{model.name} {architecture(model)['fingerprint']}")
    elif model is None and old.get("custom"):
        diffs.append("model: a model passed to train() -> the registered builder")
    if diffs:
        raise ValueError(f"{run.path} holds another run ({'; '.join(diffs)}): use another `out`, or delete "
                         f"{run.path} to start again")


def _check_head_width(model, num_classes):
    """A passed model's age heads must have the run's classes (K softmax
    units, K - 1 rank logits), or its targets would not fit them."""
    for name, tensor in model.output.items():
        want = num_classes if name.startswith("age_probs") else num_classes - 1 if name.startswith("age_logits") else None
        if want is not None and tensor.shape[-1] != want:
            raise ValueError(f"output {name!r} of {model.name} has {tensor.shape[-1]} units; the run has {num_classes} "
                             f"age classes, so it needs {want}: set TrainConfig num_classes/age_min or the head's width")


def _train(config: TrainConfig, model):
    if model is not None and config.strategy != "default":
        raise ValueError("a model passed to train() is built outside a distribution strategy: use "
                         "strategy='default', or a registered model name")
    run = RunDir(config.out).make()
    keras.utils.set_random_seed(config.seed)
    entry = model_registry.entry_for(config.model, model)
    resuming = run.can_resume()
    state = run.read_state() if resuming else {}
    if resuming:
        _check_same_run(run, config, model)
        more_epochs = config.epochs is not None and config.epochs > state["epochs_done"] and config.time_budget is None
        if state.get("finished") and not more_epochs:
            logger.info("%s is finished; evaluating it again", run.path)
            if model is not None:
                _restore(model, run)
            return _finish(run, config, None)

    splits, full = load_splits(config)
    if resuming:
        saved = run.read_config()
        age_min, num_classes = saved["age_min"], saved["num_classes"]
    else:
        lo, hi = full.age_range()
        age_min = lo if config.age_min is None else config.age_min
        num_classes = (hi - age_min + 1) if config.num_classes is None else config.num_classes

    given = model is not None
    if model is None:
        with get_strategy(config.strategy).scope():
            if resuming:
                model = keras.saving.load_model(run.last_model, safe_mode=True)
            else:
                model = build_model(config, age_min, num_classes, train_ages=splits["train"].age)
    else:
        _check_head_width(model, num_classes)
        if not model.compiled:
            compile_model(model, config, entry, num_classes)
        if resuming:
            _restore(model, run)
    if run_eagerly():  # a few batches: tracing the graphs would cost more than it saves
        model.run_eagerly = True
    if resuming:
        logger.info("resuming %s after epoch %d", run.path, state["epochs_done"])
    else:
        run.write_config({
            "train": config.to_json(),
            "age_min": age_min,
            "num_classes": num_classes,
            "splits": {k: len(v) for k, v in splits.items()},
            "dataset": full.describe(),
            "model": {"custom": given, "needs_landmarks": entry.needs_landmarks, **architecture(model)},
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
        })

    data = dict(config=config, model=model, age_min=age_min, num_classes=num_classes, entry=entry)
    train_ds = make_dataset(splits["train"], training=True, repeat=bool(config.steps_per_epoch), **data)
    val_ds = None
    if "val" in splits and len(splits["val"]):
        val_ds = make_dataset(splits["val"], training=False, **data)

    initial_epoch = state["epochs_done"] if resuming else 0
    if resuming:
        run.truncate_history(initial_epoch)
    budget = None if config.time_budget is None else float(config.time_budget) * 60.0
    if budget is None and not config.epochs:
        raise ValueError("give `epochs` or `time_budget`")
    epochs = config.epochs or 100_000  # with a budget, the clock stops training
    cap = max_steps()
    if cap is not None:  # a smoke test: one epoch of at most `cap` steps
        logger.warning("%s=%d: one epoch of at most %d steps; the numbers mean nothing", MAX_STEPS_ENV, cap, cap)
        train_ds, epochs = train_ds.take(cap), min(epochs, initial_epoch + 1)
        val_ds = None if val_ds is None else val_ds.take(cap)
    clock = TrainingClock(budget, already=state.get("train_seconds", 0.0) if resuming else 0.0)
    from agekeras.datasets.pipeline import steps_per_epoch

    steps = config.steps_per_epoch or steps_per_epoch(len(splits["train"]), config.batch_size)
    if cap is not None:  # the whole schedule (warm-up, drops, decay) within the capped steps
        steps = min(steps, cap)
    schedule = ProgressSchedule(config.lr, total_steps=steps * epochs, clock=clock, warmup=config.warmup,
                                drops=config.lr_drops)
    monitor = "val_age_mae" if val_ds is not None else "age_mae"
    callbacks = [
        clock,
        schedule,
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.CSVLogger(str(run.history_file), append=resuming),
        RunCheckpoint(run, clock, monitor, best=state.get("best") if resuming else None),
    ]
    if getattr(model.optimizer, "use_ema", False):
        callbacks.insert(0, keras.callbacks.SwapEMAWeights())  # validate the averaged weights
    if budget and config.verbose not in (0, "0"):
        callbacks.append(BudgetProgress(clock))
    if initial_epoch < epochs and not (budget and clock.elapsed() >= budget):
        with warnings.catch_warnings():
            # An image dataset skips unreadable files, so its length is unknown until the first epoch ends;
            # Keras then warns that the input "ran out of data". One epoch is one pass: nothing is lost.
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            model.fit(
                train_ds,
                validation_data=val_ds,
                epochs=epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps if config.steps_per_epoch else None,  # repeated faces: epochs of `steps`
                callbacks=callbacks,
                verbose=0 if budget else config.verbose,
                shuffle=False,  # the pipeline shuffles file names itself
            )
    return _finish(run, config, splits)


def _restore(model, run):
    """Load the run's last.keras (weights and optimizer state) into `model`."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    model.load_weights(run.last_model)


def _finish(run, config, splits):
    """Evaluate best.keras on the test split, write metrics and figures."""
    if splits is None:
        splits, _ = load_splits(config)
    best, _, _ = load_run(run.path)  # loaded once, for both
    if run_eagerly():
        best.run_eagerly = True
    calibrate_run(run.path, splits=splits, model=best)  # the temperature of the age intervals, on the validation faces
    result = evaluate(run.path, splits=splits, model=best)
    run.mark_finished()
    history = run.read_history()
    if history:
        from agekeras import plots

        wanted = [c for c in ("loss", "age_mae") if c in history]
        plots.plot_history([run.history_file], metrics=wanted, labels=[config.model],
                           save_to=run.figures / "curves.png")
    return result
