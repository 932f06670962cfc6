"""Where a run executes: the device, precision, distribution strategy and optimizer.

- `gpu_available()` and `mixed_precision_policy()`: float16 on a GPU,
  bfloat16 on a CPU.
- `get_strategy(name)`: a `tf.distribute` strategy ("default", "mirrored",
  "multiworker").
- `make_optimizer(name, lr, weight_decay, ema)`: the optimizers a
  `TrainConfig` can name.
- `cpu_snapshot()` / `cpu_others(before, after)`: the share of the machine's
  CPU that other processes took during a time-budgeted epoch.
- `run_eagerly()`: `AGEKERAS_EAGER`, eager execution for runs of a few
  batches (the course's quick mode);
- `max_steps()`: `AGEKERAS_MAX_STEPS`, a cap on every fit and evaluation, to
  run a GPU-sized configuration end to end on a CPU in minutes;
  `cap_splits(splits, batch_size)` cuts every split to that many batches.
"""

from __future__ import annotations

import math
import os

import keras

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


def mixed_precision_policy():
    """"mixed_float16" where a GPU is visible, "mixed_bfloat16" on CPUs.

    Half-precision float16 needs a GPU's tensor cores to pay off; recent x86
    CPUs (AVX512-BF16, AMX) compute bfloat16 natively, and bfloat16 keeps
    float32's exponent range, so no loss scaling is needed.
    """
    return "mixed_float16" if gpu_available() else "mixed_bfloat16"


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



EAGER_ENV = "AGEKERAS_EAGER"


def run_eagerly() -> bool:
    """Whether `agekeras.training.train` runs its model eagerly (`AGEKERAS_EAGER=1`).

    A run of a few batches (the course's quick mode, which sets it) spends
    most of its time tracing the training and prediction graphs; eager
    execution skips the tracing and computes the same numbers, more slowly
    per batch. Not for real training.
    """
    return os.environ.get(EAGER_ENV, "").strip().lower() in ("1", "true", "yes")


MAX_STEPS_ENV = "AGEKERAS_MAX_STEPS"


def max_steps():
    """The step cap of `AGEKERAS_MAX_STEPS`, or None when it is unset.

    With `AGEKERAS_MAX_STEPS=N`, every split of a run holds at most N batches
    of faces (`cap_splits`), a training run trains one epoch of at most N
    batches (and validates on at most N), its learning-rate schedule runs
    from start to end within those N steps, and every evaluation predicts at
    most N batches per view: a smoke test of a configuration (the paper's
    sizes, schedule and optimiser) whose numbers mean nothing.

    Raises:
        ValueError: the variable is set but not a positive integer.
    """
    value = os.environ.get(MAX_STEPS_ENV, "").strip()
    if not value:
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{MAX_STEPS_ENV} must be a positive number of steps, got {value!r}")
    return n


def cap_splits(splits, batch_size):
    """`splits` with every split cut to its first `max_steps()` batches of faces.

    Without `AGEKERAS_MAX_STEPS` the splits come back as they are. With it,
    the training, validation and test faces a notebook reads (its ages, its
    images, the faces it predicts) are the ones the capped run trains on and
    scores, so per-face arrays and ages keep the same length.

    Args:
        splits: dict name -> `AgeDataset` (`agekeras.config.load_splits`).
        batch_size: the run's batch size.

    Returns:
        A new dict (or `splits` itself when no cap is set).
    """
    cap = max_steps()
    if cap is None:
        return splits
    n = cap * int(batch_size)
    return {k: v if len(v) <= n else v.subset(range(n)) for k, v in splits.items()}
