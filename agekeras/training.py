"""Training and evaluation: `train(TrainConfig(...))` and `evaluate(run_dir)`.

A run directory holds everything a run produced, and is enough to resume it
or evaluate it again:

    RUN_DIR/
      config.json        the TrainConfig, data/label facts (age_min, classes)
      history.csv        one row per epoch (Keras CSVLogger, appended on resume)
      last.keras         model + optimizer after the latest epoch
      best.keras         model with the best validation MAE so far
      state.json         epochs done, seconds trained, best score (for resume)
      metrics.json       test metrics of best.keras (written at the end)
      predictions.csv    per test face: true age, predicted age, gender, race
      figures/           loss and metric curves, predicted vs true, MAE by age

Restarting `train` with the same `out` continues from `last.keras` (epoch,
optimizer state, elapsed time for `time_budget`, learning-rate schedule).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import pathlib
import time
import warnings

import keras
import numpy as np

from agekeras import metrics as M
from agekeras import models as model_registry
from agekeras.ages import GENDER_NAMES, RACE_NAMES

logger = logging.getLogger("agekeras.training")


# Alignment convention of each dataset's face crops (see agekeras.datasets.align).
DATASET_ALIGNMENT = {"utkface": "utkface"}


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (saved as config.json).

    Args:
        model: registry name (`agekeras.models.available()`).
        dataset: dataset name (`agekeras.datasets.available()`).
        data_dir: folder of a file-backed dataset.
        protocol: split protocol (`agekeras.datasets.protocols()`).
        fold: fold index for k-fold / leave-one-person-out protocols.
        epochs: number of epochs; with `time_budget`, an upper bound (None:
            train until the budget runs out).
        time_budget: minutes of training; the learning-rate schedule is
            stretched over this budget, and training stops when it runs out.
        batch_size, image_size, lr, optimizer: as usual; optimizer is
            "adam", "adamw", "sgd" (momentum 0.9) or "nadam".
        weight_decay: None (the optimizer's default: none for adam and
            nadam, 1e-4 for adamw and sgd) or a number, which every
            optimizer honours (see `make_optimizer`).
        warmup: fraction of the run with a linear learning-rate warm-up; the
            rest follows a cosine decay to 1% of `lr`.
        lr_drops: instead of the cosine, a step schedule: fractions of the run
            (e.g. `[0.5, 0.75]`) at which the learning rate is divided by 10.
        seed: seeds the split, shuffling, augmentation and initialisation.
        out: run directory.
        strategy: "default", "mirrored" or "multiworker" (reads TF_CONFIG).
        mixed_precision: mixed precision: "mixed_float16" on a GPU,
            "mixed_bfloat16" on a CPU (`mixed_precision_policy`).
        augment: augmentation during training: True for the input
            pipeline's default factors (`agekeras.datasets.pipeline.
            DEFAULT_AUGMENT`: mirror, +-10 degrees, 5% shifts, 10% zoom),
            False for none, or a dict overriding some of them, e.g.
            `{"rotation": 0, "zoom": 0.05}`.
        val_fraction: share of the training split held out for validation
            (model selection); 0 disables validation and best.keras tracks
            the training loss.
        cache: cache decoded images in memory after the first epoch.
        max_train: cap the number of training faces (seeded subset), for
            quick runs.
        num_classes, age_min: age classes of the head; by default taken from
            the whole dataset's age range.
        model_kwargs: extra builder arguments.
        dataset_kwargs: extra reader arguments (e.g. `n` for synthetic).
        verbose: Keras progress-bar verbosity.
        align: face-alignment convention of the training crops (a template
            name of `agekeras.datasets.align.TEMPLATES`, or None for crops
            used as they are); "auto" takes it from the dataset (utkface:
            "utkface"). `predict` and cross-dataset `evaluate` align photos
            this way before the model sees them.
        label_sigma: None, or train every `age_probs*` softmax against a
            Gaussian label distribution of this standard deviation in years
            (`agekeras.losses.GaussianLabelCrossentropy`) instead of one-hot.
        age_l1: weight of an L1 loss on the "age" output (the expected age of
            a softmax head) added to the model's losses; 0 adds none.
        ema: None, or the momentum of an exponential moving average of the
            weights (Polyak averaging; Keras' optimizer `use_ema`): after
            every step, avg <- ema * avg + (1 - ema) * w. Validation and
            best.keras then use the averaged weights (last.keras keeps the
            raw weights and the average, so a resume continues both). The
            average spans about 1 / (1 - ema) steps: 0.995 is 200 steps,
            about 2 epochs of utkface-dev at batch 64.
    """

    model: str = "resnet18_dex"
    dataset: str = "synthetic"
    data_dir: str | None = None
    protocol: str = "random"
    fold: int = 0
    epochs: int | None = 10
    time_budget: float | None = None
    batch_size: int = 64
    image_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float | None = None
    warmup: float = 0.03
    lr_drops: list | None = None
    seed: int = 0
    out: str = "runs/run"
    strategy: str = "default"
    mixed_precision: bool = False
    augment: bool | dict = True
    val_fraction: float = 0.1
    cache: bool = True
    max_train: int | None = None
    num_classes: int | None = None
    age_min: int | None = None
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    dataset_kwargs: dict = dataclasses.field(default_factory=dict)
    verbose: int | str = "auto"
    align: str | None = "auto"
    label_sigma: float | None = None
    age_l1: float = 0.0
    ema: float | None = None

    def __post_init__(self):
        if self.align == "auto":
            self.align = DATASET_ALIGNMENT.get(self.dataset)
        if not isinstance(self.augment, bool):  # fail on unknown factors now, not after the data has loaded
            from agekeras.datasets.pipeline import augment_factors

            augment_factors(self.augment)

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d):
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})


# ----- data -------------------------------------------------------------------


def load_splits(config: TrainConfig):
    """Load `config.dataset` and split it by `config.protocol` (seeded).

    Returns:
        (splits, full): dict with "train", "test" and maybe "val"
        `AgeDataset`s, and the full dataset.
    """
    from agekeras import datasets

    kwargs = dict(config.dataset_kwargs)
    if config.dataset == "synthetic":
        kwargs.setdefault("image_size", config.image_size)
        kwargs.setdefault("seed", config.seed)
    full = datasets.load(config.dataset, config.data_dir, **kwargs)
    splits = datasets.split(
        full, config.protocol, seed=config.seed, fold=config.fold, val_fraction=config.val_fraction
    )
    if config.max_train and len(splits["train"]) > config.max_train:
        rng = np.random.default_rng(config.seed)
        idx = np.sort(rng.choice(len(splits["train"]), config.max_train, replace=False))
        splits["train"] = splits["train"].subset(idx)
    return splits, full


def make_dataset(ds, config: TrainConfig, model, *, training, age_min, num_classes, repeat=False):
    """The tf.data pipeline for `ds`, with the targets `model` needs."""
    from agekeras.datasets.pipeline import make_tf_dataset

    names = list(model.output.keys())
    entry = model_registry.entry(config.model)
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


# ----- callbacks ----------------------------------------------------------------


class ProgressSchedule(keras.callbacks.Callback):
    """Warm-up then cosine decay, driven by the run's progress in [0, 1].

    Progress is `step / total_steps` in epoch mode, and elapsed training
    seconds / budget in time-budget mode, so "train for 15 minutes" gets a
    full schedule ending at the budget. The step comes from the optimizer's
    `iterations` and the seconds from `clock`, so both survive a resume.
    """

    def __init__(self, lr, *, total_steps=None, clock=None, warmup=0.03, floor=0.01, drops=None):
        super().__init__()
        self.base_lr, self.total_steps, self.clock = lr, total_steps, clock
        self.warmup, self.floor = warmup, floor
        self.drops = sorted(float(d) for d in drops) if drops else None  # step schedule: lr / 10 at each

    def progress(self):
        if self.clock is not None and self.clock.budget:
            return min(1.0, self.clock.elapsed() / self.clock.budget)
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        return min(1.0, step / max(1, self.total_steps))

    def lr_at(self, p):
        if p < self.warmup:
            return self.base_lr * max(p / self.warmup, 0.01)
        if self.drops is not None:
            return self.base_lr * 0.1 ** sum(p >= d for d in self.drops)
        q = (p - self.warmup) / max(1e-8, 1.0 - self.warmup)
        return self.base_lr * (self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * q)))

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate.assign(self.lr_at(self.progress()))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def cpu_snapshot():
    """`(busy, total, own)` CPU seconds: the whole machine's busy and total
    time summed over its cores (Linux `/proc/stat`), and this process's time
    (`os.times`). None where `/proc/stat` cannot be read."""
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 5:
        return None
    tick = os.sysconf("SC_CLK_TCK")  # /proc/stat counts in these ticks
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    times = os.times()
    return (total - idle) / tick, total / tick, times.user + times.system


def cpu_others(before, after):
    """The fraction of the machine's CPU that other processes used between
    two `cpu_snapshot`s (0 = this run had the machine to itself, 0.5 = others
    took half of it), or None when unknown."""
    if before is None or after is None:
        return None
    busy, total, own = (a - b for a, b in zip(after, before))
    if total <= 0:
        return None
    return min(1.0, max(0.0, (busy - own) / total))


class TrainingClock(keras.callbacks.Callback):
    """Counts training seconds across resumes and stops at the budget.

    Each epoch also logs `cpu_others`, the share of the machine's CPU used by
    other processes during it (Linux only): a time-budgeted run that shared
    the machine trains fewer epochs, and its result is not comparable.

    Args:
        budget: seconds, or None for no limit.
        already: seconds trained before this process (from state.json).
    """

    def __init__(self, budget=None, already=0.0):
        super().__init__()
        self.budget, self.already, self._start = budget, float(already), None
        self._cpu = None

    def on_epoch_begin(self, epoch, logs=None):
        self._cpu = cpu_snapshot()

    def elapsed(self):
        return self.already + (0.0 if self._start is None else time.monotonic() - self._start)

    def on_train_begin(self, logs=None):
        self._start = time.monotonic()

    def on_train_end(self, logs=None):
        self.already, self._start = self.elapsed(), None

    def on_train_batch_end(self, batch, logs=None):
        if self.budget and self.elapsed() >= self.budget:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["train_seconds"] = round(self.elapsed(), 2)
            others = cpu_others(self._cpu, cpu_snapshot())
            if others is not None:
                logs["cpu_others"] = round(others, 3)
        if self.budget and self.elapsed() >= self.budget:
            self.model.stop_training = True


class BudgetProgress(keras.callbacks.Callback):
    """One line per epoch for time-budgeted runs, instead of Keras' "Epoch 7/100000".

    Prints the epoch count so far, the minutes used of the budget, and the
    epoch's metrics (the loss and the age MAE, training and validation).

    Args:
        clock: the run's `TrainingClock` (its budget in seconds).
        print_fn: where lines go (default `print`).
    """

    KEYS = ("loss", "age_mae", "val_loss", "val_age_mae")

    def __init__(self, clock, print_fn=print):
        super().__init__()
        self.clock, self.print_fn = clock, print_fn

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        used = self.clock.elapsed() / 60.0
        budget = (self.clock.budget or 0.0) / 60.0
        values = " - ".join(f"{k}: {float(logs[k]):.4g}" for k in self.KEYS if k in logs)
        self.print_fn(f"epoch {epoch + 1} - {used:.1f}/{budget:g} min - {values}")


class RunCheckpoint(keras.callbacks.Callback):
    """Writes last.keras + state.json every epoch, and best.keras on improvement.

    state.json is written after last.keras (atomically, via a temporary file
    and `os.replace`), so a crash between the two at worst repeats an epoch.
    With an optimizer that keeps a moving average of the weights
    (`use_ema`), best.keras holds the averaged weights, the ones validation
    scored (`keras.callbacks.SwapEMAWeights`); last.keras keeps the raw ones.
    """

    def __init__(self, run_dir, clock, monitor, best=None):
        super().__init__()
        self.run_dir, self.clock, self.monitor = pathlib.Path(run_dir), clock, monitor
        self.best = math.inf if best is None else best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        score = logs.get(self.monitor)
        if score is None:
            score = logs.get("loss")
        if score is not None and np.isfinite(score) and score < self.best:
            self.best = float(score)
            self._save_best()
        _atomic_save(self.model, self.run_dir / "last.keras")
        _write_json(
            self.run_dir / "state.json",
            {
                "epochs_done": epoch + 1,
                "train_seconds": self.clock.elapsed(),
                "best": self.best,
                "monitor": self.monitor,
                "finished": False,
            },
        )

    def _save_best(self):
        if not getattr(self.model.optimizer, "use_ema", False):
            _atomic_save(self.model, self.run_dir / "best.keras")
            return
        weights = self.model.trainable_weights
        raw = [keras.ops.convert_to_numpy(w) for w in weights]
        self.model.optimizer.finalize_variable_values(weights)  # the averages into the model
        try:
            _atomic_save(self.model, self.run_dir / "best.keras")
        finally:
            for w, value in zip(weights, raw):
                w.assign(value)


def _truncate_history(path, epochs_done):
    """Drop history rows of epochs after the last checkpoint (a run killed
    between the CSV row and the checkpoint repeats that epoch)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < epochs_done]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(keep)


def _atomic_save(model, path):
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def _write_json(path, obj):
    from agekeras.datasets.validate import write_json_atomic

    write_json_atomic(path, obj, indent=2, default=_json_default)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


# ----- distribution -------------------------------------------------------------


def get_strategy(name):
    """A `tf.distribute` strategy by name (TensorFlow backend only).

    "default" is the no-op default strategy; "mirrored" copies the model on
    every local device (GPUs, or logical CPUs when configured); "multiworker"
    reads the cluster from the `TF_CONFIG` environment variable.
    """
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"--strategy {name} needs the TensorFlow backend")
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy {name!r}; choose default, mirrored or multiworker")


#: Weight decay of each optimizer when `TrainConfig.weight_decay` is None.
DEFAULT_WEIGHT_DECAY = {"adam": 0.0, "adamw": 1e-4, "sgd": 1e-4, "nadam": 0.0}


def make_optimizer(name, lr, weight_decay=None, ema=None):
    """A Keras optimizer by name.

    Args:
        name: "adam", "adamw", "sgd" (momentum 0.9, Nesterov) or "nadam".
        lr: learning rate (or a schedule).
        weight_decay: None for the optimizer's default
            (`DEFAULT_WEIGHT_DECAY`: none for adam and nadam, 1e-4 for adamw
            and sgd), or a number >= 0 that every optimizer honours. For
            adam, adamw and nadam it is Keras' *decoupled* weight decay
            (AdamW style: every step, w <- w - lr * weight_decay * w, apart
            from the gradient step), so "adam" with a weight decay is AdamW.
            PyTorch's `Adam(weight_decay=...)`, which many papers use,
            instead adds weight_decay * w to the gradient (L2), so the same
            number regularises differently there. For sgd, Keras' decay is
            applied the same decoupled way.
        ema: None, or the momentum in (0, 1) of a moving average of the
            weights kept by the optimizer (`use_ema=True`, `ema_momentum`).

    Returns:
        A `keras.optimizers.Optimizer`.
    """
    name = name.lower()
    if name not in DEFAULT_WEIGHT_DECAY:
        raise ValueError(f"Unknown optimizer {name!r}; choose adam, adamw, sgd or nadam")
    wd = DEFAULT_WEIGHT_DECAY[name] if weight_decay is None else float(weight_decay)
    if not (wd >= 0 and math.isfinite(wd)):
        raise ValueError(f"weight_decay must be a number >= 0 or None, got {weight_decay!r}")
    if ema is not None and not 0.0 < float(ema) < 1.0:
        raise ValueError(f"ema must be a momentum between 0 and 1 (e.g. 0.995) or None, got {ema!r}")
    averaging = {"use_ema": True, "ema_momentum": float(ema)} if ema is not None else {}
    if name == "adam":
        return keras.optimizers.Adam(lr, weight_decay=wd or None, **averaging)
    if name == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=wd, **averaging)
    if name == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True, weight_decay=wd or None, **averaging)
    return keras.optimizers.Nadam(lr, weight_decay=wd or None, **averaging)


# ----- train / evaluate ---------------------------------------------------------


def build_model(config: TrainConfig, age_min, num_classes, train_ages=None):
    """Build and compile the registered model of `config`.

    Args:
        config: the run's settings.
        age_min, num_classes: the age classes of the head.
        train_ages: ages of the training split; a builder that takes an
            `age_prior` argument gets their label prior
            (`agekeras.ages.age_prior`), so its head starts at the prior.
    """
    import inspect

    from agekeras.ages import age_prior

    entry = model_registry.entry(config.model)
    kwargs = dict(config.model_kwargs)
    accepts_prior = "age_prior" in inspect.signature(entry.builder).parameters
    if train_ages is not None and accepts_prior and "age_prior" not in kwargs:
        kwargs["age_prior"] = age_prior(train_ages, age_min, num_classes).tolist()
    model = entry.builder(
        input_shape=(config.image_size, config.image_size, 3),
        num_classes=num_classes,
        age_min=age_min,
        **kwargs,
    )
    model.compile(optimizer=make_optimizer(config.optimizer, config.lr, config.weight_decay, config.ema),
                  **recipe_compile_args(entry, model, num_classes, config.label_sigma, config.age_l1))
    return model


def recipe_compile_args(entry, model, num_classes, label_sigma=None, age_l1=0.0):
    """The compile arguments of a registered model, with the run's loss recipe.

    Args:
        entry: the model's `ModelEntry` (its declared losses and weights).
        model: the built model.
        num_classes: width of its age softmax.
        label_sigma: None, or the sigma of a Gaussian label distribution
            replacing the one-hot cross-entropy of every `age_probs*` output.
        age_l1: weight of an L1 loss on the "age" output (0: none).

    Returns:
        The `loss`, `loss_weights` and `metrics` dict for `model.compile`.
    """
    from agekeras.losses import GaussianLabelCrossentropy
    from agekeras.models.outputs import compile_args

    if not label_sigma and not age_l1:
        return entry.compile_args(model)
    names = list(model.output.keys())
    overrides = dict(entry.losses or {})
    weights = dict(entry.loss_weights or {})
    if label_sigma:
        probs = [n for n in names if n.startswith("age_probs") and n not in overrides]
        if not probs:
            raise ValueError(f"label_sigma needs a softmax age head (an age_probs output); model "
                             f"{entry.name!r} has {names}")
        for n in probs:
            overrides[n] = GaussianLabelCrossentropy(num_classes, label_sigma, name=f"{n}_gauss")
    if age_l1:
        if "age" in overrides:
            raise ValueError(f"model {entry.name!r} already trains its age output with {overrides['age']!r}")
        overrides["age"] = keras.losses.MeanAbsoluteError(name="age_l1")
        weights["age"] = float(age_l1)
    args = compile_args(model, overrides=overrides)
    if weights:  # every loss gets a weight (1 unless given), so Keras sees the whole structure
        args["loss_weights"] = {n: float(weights.get(n, 1.0)) for n in args["loss"]}
    return args


def mixed_precision_policy():
    """"mixed_float16" where a GPU is visible, "mixed_bfloat16" on CPUs.

    Half-precision float16 needs a GPU's tensor cores to pay off; recent x86
    CPUs (AVX512-BF16, AMX) compute bfloat16 natively, and bfloat16 keeps
    float32's exponent range, so no loss scaling is needed.
    """
    return "mixed_float16" if gpu_available() else "mixed_bfloat16"


def gpu_available() -> bool:
    """Whether the current Keras backend sees a GPU."""
    backend = keras.config.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return bool(tf.config.list_physical_devices("GPU"))
        if backend == "jax":
            import jax

            return any(d.platform == "gpu" for d in jax.devices())
        if backend == "torch":
            import torch

            return bool(torch.cuda.is_available())
    except Exception:  # a broken accelerator stack counts as "no GPU", not a crash
        return False
    return False


def train(config: TrainConfig):
    """Train (or resume) a run; returns the test metrics dict.

    The run directory `config.out` receives the files listed in the module
    docstring. If it already holds a run with the same model, dataset and
    image size, training continues from `last.keras` (a finished run is only
    re-evaluated, unless more epochs than it has done are asked for).
    """
    policy = keras.mixed_precision.global_policy()
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy(mixed_precision_policy())
    try:
        return _train(config)
    finally:
        keras.mixed_precision.set_global_policy(policy)


def _train(config: TrainConfig):
    run_dir = pathlib.Path(config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "figures").mkdir(exist_ok=True)
    keras.utils.set_random_seed(config.seed)

    state = _read_json(run_dir / "state.json")
    resuming = bool(state) and (run_dir / "last.keras").exists()
    if resuming:
        saved = TrainConfig.from_json(_read_json(run_dir / "config.json")["train"])
        if (saved.model, saved.dataset, saved.image_size) != (config.model, config.dataset, config.image_size):
            raise ValueError(
                f"{run_dir} holds a run of {saved.model} on {saved.dataset} at {saved.image_size} px; "
                "use another --out, or the same settings to resume"
            )
        more_epochs = config.epochs is not None and config.epochs > state["epochs_done"] and config.time_budget is None
        if state.get("finished") and not more_epochs:
            logger.info("%s is finished; evaluating it again", run_dir)
            return _finish(run_dir, config, None)

    splits, full = load_splits(config)
    lo, hi = full.age_range()
    age_min = lo if config.age_min is None else config.age_min
    num_classes = (hi - age_min + 1) if config.num_classes is None else config.num_classes
    if resuming:
        saved = _read_json(run_dir / "config.json")
        age_min, num_classes = saved["age_min"], saved["num_classes"]
    else:
        _write_json(
            run_dir / "config.json",
            {
                "train": config.to_json(),
                "age_min": age_min,
                "num_classes": num_classes,
                "splits": {k: len(v) for k, v in splits.items()},
                "dataset": full.describe(),
                "keras": keras.__version__,
                "backend": keras.backend.backend(),
            },
        )

    strategy = get_strategy(config.strategy)
    with strategy.scope():
        if resuming:
            model = keras.saving.load_model(run_dir / "last.keras", safe_mode=True)
            logger.info("resuming %s after epoch %d", run_dir, state["epochs_done"])
        else:
            model = build_model(config, age_min, num_classes, train_ages=splits["train"].age)

    train_ds = make_dataset(splits["train"], config, model, training=True, age_min=age_min, num_classes=num_classes)
    val_ds = None
    if "val" in splits and len(splits["val"]):
        val_ds = make_dataset(splits["val"], config, model, training=False, age_min=age_min, num_classes=num_classes)

    initial_epoch = state["epochs_done"] if resuming else 0
    if resuming:
        _truncate_history(run_dir / "history.csv", initial_epoch)
    budget = None if config.time_budget is None else float(config.time_budget) * 60.0
    if budget is None and not config.epochs:
        raise ValueError("give `epochs` or `time_budget`")
    epochs = config.epochs or 100_000  # with a budget, the clock stops training
    clock = TrainingClock(budget, already=state.get("train_seconds", 0.0) if resuming else 0.0)
    from agekeras.datasets.pipeline import steps_per_epoch

    steps = steps_per_epoch(len(splits["train"]), config.batch_size)
    schedule = ProgressSchedule(config.lr, total_steps=steps * epochs, clock=clock, warmup=config.warmup,
                                drops=config.lr_drops)
    monitor = "val_age_mae" if val_ds is not None else "age_mae"
    callbacks = [
        clock,
        schedule,
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=resuming),
        RunCheckpoint(run_dir, clock, monitor, best=state.get("best") if resuming else None),
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
                callbacks=callbacks,
                verbose=0 if budget else config.verbose,
                shuffle=False,  # the pipeline shuffles file names itself
            )
    return _finish(run_dir, config, splits)


def _finish(run_dir, config, splits):
    """Evaluate best.keras on the test split, write metrics and figures."""
    result = evaluate(run_dir, splits=splits)
    state = _read_json(run_dir / "state.json") or {}
    state["finished"] = True
    _write_json(run_dir / "state.json", state)
    history = run_dir / "history.csv"
    if history.exists():
        from agekeras import plots

        cols = _csv_columns(history)
        wanted = [c for c in ("loss", "age_mae") if c in cols]
        plots.plot_history([history], metrics=wanted, labels=[config.model], save_to=run_dir / "figures" / "curves.png")
    return result


def _csv_columns(path):
    with open(path) as f:
        return next(csv.reader(f), [])


#: The views of test-time averaging (`evaluate(..., tta=True)`, `predict --tta`):
#: `(zoom, mirrored)` pairs for `prediction_dataset`. The zooms, a 59-pixel
#: centre crop enlarged and a 3-pixel border added at 64 px, stay inside the
#: default training augmentation's +-10% zoom; every view is also mirrored.
TTA_VIEWS = ((1.0, False), (1.0, True), (1.085, False), (1.085, True), (0.915, False), (0.915, True))


def averaged_views(flip=False, tta=False):
    """The `(zoom, mirrored)` views to average: the face alone, with its
    mirror image (`flip`), or `TTA_VIEWS` (`tta`); the first is the plain face."""
    if flip and tta:
        raise ValueError("tta already averages the mirror images: pass flip or tta, not both")
    return TTA_VIEWS if tta else ((1.0, False), (1.0, True)) if flip else ((1.0, False),)


def prediction_dataset(model, ds, image_size, batch_size=64, flip=False, zoom=1.0):
    """The tf.data pipeline that feeds `model` every face of `ds`, in order.

    Images (and landmarks when the model takes a "landmarks" input) without
    augmentation; labels travel with each batch.

    Args:
        model: a Keras model; its inputs decide whether landmarks are fed.
        ds: an `AgeDataset`.
        image_size: the model's input size.
        batch_size: batch size.
        flip: mirror every image (and its landmarks, left/right swapped:
            `agekeras.datasets.pipeline.mirror_landmarks`), for flip
            test-time augmentation.
        zoom: scale every face about the image centre first
            (`agekeras.datasets.pipeline.zoom_images`), for `TTA_VIEWS`.

    Returns:
        A `tf.data.Dataset` of `(inputs, labels)` batches.
    """
    import tensorflow as tf  # tf.data graphs are TensorFlow whatever the Keras backend

    from agekeras.datasets.pipeline import make_tf_dataset, mirror_landmarks, zoom_images

    needs_landmarks = "landmarks" in [t.name for t in model.inputs]
    data = make_tf_dataset(
        ds, image_size=image_size, batch_size=batch_size, training=False, augment=False,
        with_landmarks=needs_landmarks,
    )
    if zoom != 1:

        def scale(x, y):
            if isinstance(x, dict):
                x = dict(x)
                x["image"], x["landmarks"] = zoom_images(x["image"], x["landmarks"], zoom)
            else:
                x = zoom_images(x, None, zoom)[0]
            return x, y

        data = data.map(scale)
    if not flip:
        return data

    def mirror(x, y):
        if isinstance(x, dict):
            x = dict(x)
            x["landmarks"] = mirror_landmarks(x["landmarks"], image_size)
            x["image"] = tf.reverse(x["image"], axis=[2])
        else:
            x = tf.reverse(x, axis=[2])
        return x, y

    return data.map(mirror)


def predict(model, ds, image_size, batch_size=64, with_labels=False, flip=False, zoom=1.0):
    """The model's outputs on every face of `ds`, in order (NumPy arrays).

    Args:
        model: a Keras model (dict or single output).
        ds: an `AgeDataset`.
        image_size: the model's input size.
        batch_size: prediction batch size.
        with_labels: also return the label dict that travelled through the
            pipeline with each image, so that a file dropped at run time
            (unreadable after validation) cannot misalign predictions and labels.
        flip: predict the mirrored faces instead (see `prediction_dataset`).
        zoom: predict the faces scaled about the centre (see `prediction_dataset`).

    Returns:
        The outputs (same structure as the model's), or `(outputs, labels)`.
    """
    data = prediction_dataset(model, ds, image_size, batch_size, flip=flip, zoom=zoom)
    to_backend = keras.backend.backend() != "tensorflow"  # JAX and PyTorch take NumPy, not tf.Tensor
    outs, labels = [], []
    for x, y in data:
        if to_backend:
            x = keras.tree.map_structure(lambda t: t.numpy(), x)
        outs.append(model.predict_on_batch(x))
        labels.append({k: v.numpy() for k, v in y.items()})
    if not outs:
        raise ValueError(f"no readable image in {ds.name} ({len(ds)} rows)")
    cat = lambda parts: np.concatenate([np.asarray(p) for p in parts], axis=0)  # noqa: E731
    out = {k: cat([o[k] for o in outs]) for k in outs[0]} if isinstance(outs[0], dict) else cat(outs)
    if not with_labels:
        return out
    lab = {k: cat([l[k] for l in labels]) for k in labels[0]}
    if len(lab["age"]) != len(ds):
        logger.warning("%d of %d faces of %s could not be read at prediction time", len(ds) - len(lab["age"]), len(ds), ds.name)
    return out, lab


def load_run(run_dir, checkpoint="best.keras"):
    """A run's model and configuration.

    Args:
        run_dir: a run directory (see the module docstring).
        checkpoint: "best.keras" or "last.keras"; falls back to last.keras
            when the asked checkpoint is missing.

    Returns:
        (model, config, saved): the loaded Keras model, the `TrainConfig`
        and the whole config.json dict (`age_min`, `num_classes`, ...).

    Raises:
        FileNotFoundError: no config.json, or no checkpoint in `run_dir`.

    Example:

    >>> model, config, saved = load_run("runs/r18")  # doctest: +SKIP
    >>> config.image_size, config.align, saved["age_min"]  # doctest: +SKIP
    (64, 'utkface', 1)
    """
    run_dir = pathlib.Path(run_dir)
    saved = _read_json(run_dir / "config.json")
    if not saved:
        raise FileNotFoundError(f"{run_dir} has no config.json: is it a run directory?")
    config = TrainConfig.from_json(saved["train"])
    ckpt = run_dir / checkpoint
    if not ckpt.exists():
        ckpt = run_dir / "last.keras"
    if not ckpt.exists():
        raise FileNotFoundError(f"{run_dir} has no {checkpoint} nor last.keras: has the run trained an epoch yet?")
    model = keras.saving.load_model(ckpt, safe_mode=True)
    saved["checkpoint"] = ckpt.name
    return model, config, saved


def average_views(*views):
    """Test-time averaging: the mean of every output over views of the same
    faces (`predict(..., flip=True)`, `predict(..., zoom=...)`, `TTA_VIEWS`).

    Our heads decode `age` linearly from probabilities (the DEX expectation,
    CORAL's sum of rank probabilities), so the averaged `age` is also the age
    decoded from the averaged probabilities. Two outputs are averaged without
    that meaning: the `age` of a softmax head decoded by argmax (the mean of
    class ages), and raw `*_logits` (their mean is not the logit of the
    mean probability): read `age` and the `*_probs` outputs.

    Args:
        *views: dicts of NumPy arrays from `predict`, same keys and shapes
            (at least one).

    Returns:
        dict of float64 arrays.
    """
    if not views:
        raise ValueError("average_views needs at least one view")
    return {k: np.mean([np.asarray(v[k], "float64") for v in views], axis=0) for k in views[0]}


def evaluate(run_dir, *, dataset=None, data_dir=None, splits=None, split="test", checkpoint="best.keras",
             align="auto", flip=False, tta=False):  # fmt: skip
    """Evaluate a run's checkpoint on a dataset's test split.

    Args:
        run_dir: the run directory.
        dataset, data_dir: evaluate on another dataset (default: the run's own
            test split, re-created from config.json with the same seed).
        splits: already loaded splits (saves re-reading the data).
        split: which split to evaluate ("test", "val" or "all" for the whole
            dataset when evaluating on another dataset).
        checkpoint: "best.keras" or "last.keras".
        flip: flip test-time averaging (`average_views`): every face is
            predicted as it is and mirrored, and the outputs are averaged.
            The metrics go to a file with the suffix `_flip`.
        tta: average the six `TTA_VIEWS` instead (three zooms, each also
            mirrored); the metrics go to a file with the suffix `_tta`.
        align: for another dataset, the face alignment applied to its photos
            before the model (a template of `agekeras.datasets.align`):
            "auto" uses the run's own (`TrainConfig.align`), None feeds the
            photos as they are. Photos where MTCNN finds no face are scored
            on a centre crop and counted (`faces_missed` in the metrics).

    Returns:
        The metrics dict, also written to `metrics.json` (or
        `metrics_<split>.json` for another split of the run's dataset,
        `metrics_<dataset>.json`, `metrics_<dataset>_<align>.json` for
        another dataset, each with `_flip` or `_tta` after test-time
        averaging). The returned dict also names that file
        (`"metrics_file"`).
    """
    run_dir = pathlib.Path(run_dir)
    model, config, saved = load_run(run_dir, checkpoint)
    ckpt = run_dir / saved["checkpoint"]
    suffix, align_report = "", None
    if dataset is not None and (dataset != config.dataset or data_dir != config.data_dir):
        from agekeras import datasets

        full = datasets.load(dataset, data_dir)
        ds = full if split == "all" else datasets.split(full, "random", seed=config.seed)[split]
        suffix = f"_{dataset}"
        align = config.align if align == "auto" else align
        if align and ds.paths is not None:
            from agekeras.datasets.align import aligned_dataset

            ds, align_report = aligned_dataset(ds, align, log=logger.info)
            suffix += f"_{align}"
    else:
        if splits is None:
            splits, _ = load_splits(config)
        if split not in splits:
            raise ValueError(f"split must be one of {sorted(splits)} for the run's own dataset; got {split!r}")
        ds = splits[split]
        if split != "test":  # the test metrics in metrics.json stay
            suffix = f"_{split}"
    views = averaged_views(flip, tta)
    out, labels = predict(model, ds, config.image_size, config.batch_size, with_labels=True)
    if len(views) > 1:  # views[0] is the plain face, already in `out`
        rest = [predict(model, ds, config.image_size, config.batch_size, flip=f, zoom=z) for z, f in views[1:]]
        out = average_views(out, *rest)
        suffix += "_tta" if tta else "_flip"
    pred = np.asarray(out["age"], dtype="float64").reshape(-1)
    true = labels["age"].astype("float64")
    aligned = len(true) == len(ds)
    result = {"checkpoint": ckpt.name, "dataset": dataset or config.dataset, "split": split, "flip": bool(flip),
              "tta": bool(tta)}
    result.update(M.age_metrics(true, pred))
    result["median_predictor_mae"] = M.mae(true, np.full_like(true, np.median(true)))
    result["unreadable"] = int(len(ds) - len(true))
    if align_report is not None:
        result["align"] = align_report["align"]
        result["faces_missed"] = align_report["faces_missed"]  # scored on a centre crop
        result["unreadable"] += align_report["unreadable"]
        result["missed"] = align_report["missed"]
    if np.all(np.isfinite(labels["age_std"])) and len(true):
        result["epsilon_error"] = M.epsilon_error(pred, labels["age"], labels["age_std"])
    if "gender_probs" in out:
        result["gender_accuracy"] = M.gender_accuracy(labels["gender"], out["gender_probs"])
    result["by_gender"] = _by_group(true, pred, labels["gender"], GENDER_NAMES)
    result["by_race"] = _by_group(true, pred, labels["race"], RACE_NAMES)
    from agekeras import plots

    result["by_age"] = plots.error_by_age(true, pred)
    metrics_file = run_dir / f"metrics{suffix}.json"
    _write_json(metrics_file, result)
    _write_predictions(run_dir / f"predictions{suffix}.csv", ds if aligned else None, true, pred, labels)
    figs = run_dir / "figures"
    figs.mkdir(exist_ok=True)
    plots.plot_predictions(true, pred, save_to=figs / f"pred_vs_true{suffix}.png")
    plots.plot_error_by_age(true, pred, save_to=figs / f"mae_by_age{suffix}.png")
    return {**result, "metrics_file": str(metrics_file)}


def _by_group(true, pred, codes, names):
    out = {}
    for code, name in names.items():
        m = codes == code
        if m.any():
            out[name] = {"n": int(m.sum()), "mae": M.mae(true[m], pred[m])}
    return out


def _write_predictions(path, ds, true, pred, labels):
    """One row per predicted face; paths only when no face was dropped."""
    paths = ds.paths if ds is not None and ds.paths is not None else None
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "path", "age", "predicted", "gender", "race"])
        for i in range(len(true)):
            p = paths[i] if paths is not None else ""
            w.writerow([i, p, f"{true[i]:.1f}", f"{pred[i]:.3f}", int(labels["gender"][i]), int(labels["race"][i])])


def _read_json(path):
    path = pathlib.Path(path)
    if not path.exists():
        return {}
    return json.loads(path.read_text())
