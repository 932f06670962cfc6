"""The callbacks of a training run: its learning-rate schedule, its clock and
time budget, its progress line and its checkpoints (`agekeras.runs.RunDir`)."""

from __future__ import annotations

import math
import time

import keras
import numpy as np

from agekeras.runs import BEST, LAST, RunDir
from agekeras.runtime import cpu_others, cpu_snapshot

class ProgressSchedule(keras.callbacks.Callback):
    """Warm-up then cosine decay (or steps), driven by the run's progress in [0, 1].

    Progress is `step / total_steps` in epoch mode, and elapsed training
    seconds / budget in time-budget mode, so "train for 15 minutes" gets a
    full schedule ending at the budget. The step comes from the optimizer's
    `iterations` and the seconds from `clock`, so both survive a resume.

    `drops` replaces the cosine by a step schedule: the learning rate is
    divided by 10 at each fraction of the run it lists; an empty list keeps
    it constant (after the warm-up, if any).
    """

    def __init__(self, lr, *, total_steps=None, clock=None, warmup=0.03, floor=0.01, drops=None):
        super().__init__()
        self.base_lr, self.total_steps, self.clock = lr, total_steps, clock
        self.warmup, self.floor = warmup, floor
        self.drops = None if drops is None else sorted(float(d) for d in drops)  # [] = constant

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

    Args:
        run: the run's `agekeras.runs.RunDir` (or its path).
        clock: the run's `TrainingClock` (seconds trained, for resume).
        monitor: the logged score to minimise ("val_age_mae").
        best: the best score so far (resume), or None.
    """

    def __init__(self, run, clock, monitor, best=None):
        super().__init__()
        self.run = run if isinstance(run, RunDir) else RunDir(run)
        self.clock, self.monitor = clock, monitor
        self.best = math.inf if best is None else best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        score = logs.get(self.monitor)
        if score is None:
            score = logs.get("loss")
        if score is not None and np.isfinite(score) and score < self.best:
            self.best = float(score)
            self._save_best()
        self.run.save_model(self.model, LAST)
        self.run.write_state(
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
            self.run.save_model(self.model, BEST)
            return
        weights = self.model.trainable_weights
        raw = [keras.ops.convert_to_numpy(w) for w in weights]
        self.model.optimizer.finalize_variable_values(weights)  # the averages into the model
        try:
            self.run.save_model(self.model, BEST)
        finally:
            for w, value in zip(weights, raw):
                w.assign(value)

