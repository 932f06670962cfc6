"""Training curves: `plot_history` of `CSVLogger` files, history dicts or `History` objects."""

from __future__ import annotations

import csv
import math
import os
import pathlib
from collections.abc import Mapping

import numpy as np
from matplotlib.ticker import MaxNLocator

from .common import panel_axes, save_figure


def _read_history(source):
    """A history as a dict of column -> list, from a path, dict or `History`."""
    source = getattr(source, "history", source)  # keras.callbacks.History
    if isinstance(source, Mapping):
        return dict(source)
    with open(source, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{source}: no epochs in the history file.")
    return {key: [row[key] for row in rows] for key in rows[0]}


def _column(history, key):
    return np.array([math.nan if v in ("", None) else float(v) for v in history[key]])


def _default_labels(sources):
    names = []
    for i, source in enumerate(sources):
        if isinstance(source, (str, os.PathLike)):
            names.append(pathlib.Path(source))
        else:
            names.append(f"run {i + 1}")
    stems = [n.stem if isinstance(n, pathlib.Path) else n for n in names]
    if len(set(stems)) == len(stems):
        return stems
    return [f"{n.parent.name}/{n.stem}" if isinstance(n, pathlib.Path) else n for n in names]


def plot_history(histories, metrics=("loss",), labels=None, *, ax=None, log_spread=100.0, save_to=None):
    """Training curves of one or several runs, one panel per metric.

    Each run gets one colour: its training curve is solid and its
    validation curve (`val_<metric>`) dashed. The x axis is the 1-based epoch:
    an `epoch` column, as `keras.callbacks.CSVLogger` writes it, is taken as
    0-based; without one, rows are epochs 1, 2, ...

    Args:
        histories: one run or a list of runs. A run is the path of a
            `CSVLogger` file, a dict of lists (`History.history`) or a
            `keras.callbacks.History`.
        metrics: metric name or names to plot, e.g. `("loss", "mae")`.
        labels: legend label per run. Defaults to the file stems (with the
            parent folder when stems repeat) or "run 1", "run 2", ...
        ax: an `Axes` (one metric) or a sequence of one `Axes` per metric.
        log_spread: a panel whose values are all positive and span more than
            this factor (max / min) gets a log y axis, so that one early
            spike (e.g. a first validation loss before BatchNorm statistics
            settle) does not flatten the rest of the curves. None: always
            linear.
        save_to: optional PNG path.

    Returns:
        The `Figure`.

    Example:

    >>> fig = plot_history(["runs/a/history.csv", "runs/b/history.csv"],
    ...                    metrics=("loss", "mae"), labels=["DEX", "MV"])
    """
    if isinstance(histories, (str, os.PathLike, Mapping)) or hasattr(histories, "history"):
        histories = [histories]
    histories = list(histories)
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    if not metrics:
        raise ValueError("No metrics to plot.")
    labels = _default_labels(histories) if labels is None else list(labels)
    if len(labels) != len(histories):
        raise ValueError(f"Got {len(labels)} labels for {len(histories)} runs.")
    runs = [_read_history(h) for h in histories]

    fig, axes = panel_axes(ax, len(metrics), figsize=(4.5 * len(metrics), 3.5))
    for metric, panel in zip(metrics, axes):
        values = []
        for i, (run, label) in enumerate(zip(runs, labels)):
            keys = [k for k in (metric, f"val_{metric}") if k in run]
            if not keys:
                raise KeyError(f"Run {label!r} has no {metric!r} column; it has {sorted(run)}.")
            n = len(run[keys[0]])
            epochs = _column(run, "epoch") + 1 if "epoch" in run else np.arange(1, n + 1)
            for key in keys:
                val = key != metric
                values.append(_column(run, key))
                panel.plot(
                    epochs,
                    values[-1],
                    color=f"C{i % 10}",
                    linestyle="--" if val else "-",
                    marker="o" if n <= 3 else None,  # a 1-2 epoch curve is still visible
                    label=f"{label} (val)" if val else label,
                )
        finite = np.concatenate(values)
        finite = finite[np.isfinite(finite)]
        if log_spread and finite.size and finite.min() > 0 and finite.max() > log_spread * finite.min():
            panel.set_yscale("log")
        panel.xaxis.set_major_locator(MaxNLocator(integer=True))
        panel.set_xlabel("epoch")
        panel.set_ylabel(metric)
        panel.set_title(metric)
        panel.legend(fontsize="small")
    return save_figure(fig, save_to)
