"""The run directory: one home for the files a training run writes and reads.

A run directory holds everything a run produced, and is enough to resume it
or evaluate it again:

    RUN_DIR/
      config.json        the TrainConfig, data/label facts (age_min, classes),
                         the model's fingerprint (what a resume must match)
      history.csv        one row per epoch (Keras CSVLogger, appended on resume)
      last.keras         model + optimizer after the latest epoch
      best.keras         model with the best validation MAE so far
      state.json         epochs done, seconds trained, best score (for resume)
      metrics.json       test metrics of best.keras (written at the end);
                         metrics_<what>.json for other splits, datasets and
                         test-time views
      predictions.csv    per test face: true age, predicted age, gender, race
      calibration.json   the temperature of the age distribution's interval
      figures/           loss and metric curves, predicted vs true, MAE by age

Nothing else in the package names these files: it asks a `RunDir`.

Example:

>>> run = RunDir("runs/r18")  # doctest: +SKIP
>>> run.read_config()["train"]["model"], run.read_state().get("epochs_done")  # doctest: +SKIP
('resnet18_dex', 22)
"""

from __future__ import annotations

import csv
import json
import os
import pathlib

import numpy as np

CONFIG = "config.json"
STATE = "state.json"
HISTORY = "history.csv"
BEST = "best.keras"
LAST = "last.keras"
CALIBRATION = "calibration.json"
CHECKPOINTS = (BEST, LAST)


def json_default(o):
    """`json.dump`'s `default` for NumPy scalars and arrays (anything else as text)."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def write_json(path, obj):
    """Write `obj` as indented JSON atomically (a private temporary file, then
    `os.replace`), so a reader never sees half a file."""
    from agekeras.datasets.validate import write_json_atomic

    write_json_atomic(path, obj, indent=2, default=json_default)


def read_json(path):
    """The JSON object in `path`, or {} when there is no such file."""
    path = pathlib.Path(path)
    return json.loads(path.read_text()) if path.exists() else {}


class RunDir:
    """The files of one run directory (see the module docstring).

    Args:
        path: the run directory (need not exist yet).
    """

    def __init__(self, path):
        self.path = pathlib.Path(path)

    def __repr__(self):
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self):
        return str(self.path)

    # ----- paths -----------------------------------------------------------------

    @property
    def figures(self) -> pathlib.Path:
        return self.path / "figures"

    @property
    def best_model(self) -> pathlib.Path:
        return self.path / BEST

    @property
    def last_model(self) -> pathlib.Path:
        return self.path / LAST

    @property
    def history_file(self) -> pathlib.Path:
        return self.path / HISTORY

    def metrics_file(self, suffix="") -> pathlib.Path:
        """`metrics{suffix}.json`, e.g. suffix "_flip" or "_fgnet_utkface"."""
        return self.path / f"metrics{suffix}.json"

    def predictions_file(self, suffix="") -> pathlib.Path:
        return self.path / f"predictions{suffix}.csv"

    def checkpoint(self, name=BEST) -> pathlib.Path:
        """The checkpoint file `name` ("best.keras" or "last.keras"), or
        last.keras when it is missing.

        Raises:
            ValueError: `name` is not a checkpoint of a run.
            FileNotFoundError: neither file exists (no epoch finished yet).
        """
        if name not in CHECKPOINTS:
            raise ValueError(f"checkpoint must be one of {CHECKPOINTS}, got {name!r}")
        for path in (self.path / name, self.last_model):
            if path.exists():
                return path
        raise FileNotFoundError(f"{self.path} has no {name} nor {LAST}: has the run trained an epoch yet?")

    def make(self):
        """Create the directory and its figures/ folder; returns self."""
        self.figures.mkdir(parents=True, exist_ok=True)
        return self

    # ----- config and state ---------------------------------------------------------

    def exists(self) -> bool:
        """Whether a run was started here (it has a config.json)."""
        return (self.path / CONFIG).exists()

    def read_config(self) -> dict:
        return read_json(self.path / CONFIG)

    def write_config(self, config: dict):
        write_json(self.path / CONFIG, config)

    def read_state(self) -> dict:
        return read_json(self.path / STATE)

    def write_state(self, state: dict):
        write_json(self.path / STATE, state)

    def can_resume(self) -> bool:
        """A state and a last checkpoint are there: training can continue."""
        return bool(self.read_state()) and self.last_model.exists()

    def is_finished(self) -> bool:
        return bool(self.read_state().get("finished"))

    def mark_finished(self):
        self.write_state({**self.read_state(), "finished": True})

    # ----- history ---------------------------------------------------------------

    def history_columns(self) -> list:
        if not self.history_file.exists():
            return []
        with open(self.history_file, newline="") as f:
            return next(csv.reader(f), [])

    def read_history(self) -> dict:
        """history.csv as {column: float array} ({} when there is none)."""
        if not self.history_file.exists():
            return {}
        with open(self.history_file, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            return {}

        def number(v):
            try:
                return float(v)
            except (TypeError, ValueError):
                return np.nan

        return {k: np.array([number(r.get(k)) for r in rows], dtype="float64") for k in rows[0]}

    def truncate_history(self, epochs_done):
        """Drop history rows of epochs after the last checkpoint (a run killed
        between the CSV row and the checkpoint repeats that epoch)."""
        if not self.history_file.exists():
            return
        with open(self.history_file, newline="") as f:
            rows = list(csv.reader(f))
        if not rows:
            return
        keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < epochs_done]
        with open(self.history_file, "w", newline="") as f:
            csv.writer(f).writerows(keep)

    # ----- models ----------------------------------------------------------------

    def save_model(self, model, name=LAST):
        """Save `model` as `name` atomically (a temporary .keras, then `os.replace`)."""
        if name not in CHECKPOINTS:
            raise ValueError(f"checkpoint must be one of {CHECKPOINTS}, got {name!r}")
        path = self.path / name
        tmp = path.with_name(path.stem + ".tmp.keras")
        model.save(tmp)
        os.replace(tmp, path)

    # ----- results ---------------------------------------------------------------

    def read_metrics(self, suffix="") -> dict:
        return read_json(self.metrics_file(suffix))

    def write_metrics(self, result: dict, suffix="") -> pathlib.Path:
        path = self.metrics_file(suffix)
        write_json(path, result)
        return path

    def metrics_current(self, suffix="", checkpoint=BEST) -> bool:
        """Whether `metrics{suffix}.json` exists and is newer than the checkpoint it scored."""
        path = self.metrics_file(suffix)
        if not path.exists():
            return False
        try:
            ckpt = self.checkpoint(checkpoint)
        except FileNotFoundError:
            return True
        return path.stat().st_mtime >= ckpt.stat().st_mtime

    def write_predictions(self, rows, suffix="") -> pathlib.Path:
        """predictions{suffix}.csv from an iterable of dicts (header from the first)."""
        rows = list(rows)
        path = self.predictions_file(suffix)
        with open(path, "w", newline="") as f:
            if rows:
                w = csv.DictWriter(f, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
        return path

    def read_predictions(self, suffix="") -> list:
        path = self.predictions_file(suffix)
        if not path.exists():
            return []
        with open(path, newline="") as f:
            return list(csv.DictReader(f))

    def read_calibration(self) -> dict:
        return read_json(self.path / CALIBRATION)

    def write_calibration(self, calibration: dict):
        write_json(self.path / CALIBRATION, calibration)
