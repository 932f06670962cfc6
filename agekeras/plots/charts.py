"""Generic charts: curves over one x axis, named lines, bars, grouped bars, labelled points."""

from __future__ import annotations

import math

import numpy as np

from .common import as_vector, new_axes, save_figure


def plot_curve(x, ys, xlabel="", ylabel="", title=None, *, ax=None, save_to=None):
    """A small line plot of several named curves over one x axis.

    Args:
        x: array `(m,)` of x values.
        ys: dict of label -> array `(m,)`, one line each, in order.
        xlabel: x axis label.
        ylabel: y axis label.
        title: optional axes title.
        ax: optional `Axes` to draw into.
        save_to: optional PNG path.

    Returns:
        The `Figure`.

    Example:

    >>> ages = np.arange(0, 81)
    >>> fig = plot_curve(ages, {"S(age)": s, "T(age)": t}, "age", "value",
    ...                  "Learned S and T")
    """
    x = as_vector(x)
    fig, ax = new_axes(ax, figsize=(5, 3.5))
    for label, y in ys.items():
        y = as_vector(y)
        if len(y) != len(x):
            raise ValueError(f"Curve {label!r} has {len(y)} values for {len(x)} x values.")
        ax.plot(x, y, label=str(label))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if len(ys) > 1:
        ax.legend()
    return save_figure(fig, save_to)


def plot_grouped_bars(groups, ylabel="", title=None, *, ylim=None, ax=None, save_to=None):
    """Bars of several series side by side over the same categories.

    Args:
        groups: dict of series label -> dict of category -> value (e.g.
            `{"model A": {"stage 1": 0.4, "stage 2": 0.7}, ...}`). The
            categories of the first series set the order; a category a
            series lacks is left empty.
        ylabel: y axis label.
        title: optional axes title.
        ylim: optional `(low, high)` of the y axis.
        ax: optional `Axes` to draw into.
        save_to: optional PNG path.

    Returns:
        The `Figure`.

    Example:

    >>> fig = plot_grouped_bars({"mixed": {"m1": 0.4, "m2": 0.6}, "spatial": {"m1": 0.5, "m2": 0.5}},
    ...                         ylabel="gamma", ylim=(0, 1))
    """
    labels = list(groups)
    if not labels:
        raise ValueError("No series to plot.")
    categories = list(groups[labels[0]])
    for label in labels[1:]:
        categories += [c for c in groups[label] if c not in categories]
    width = 0.8 / len(labels)
    fig, ax = new_axes(ax, figsize=(1.5 + 1.1 * len(categories), 3.2))
    for k, label in enumerate(labels):
        xs = np.arange(len(categories)) + k * width
        heights = [float(groups[label].get(c, math.nan)) for c in categories]
        ax.bar(xs, heights, width, label=str(label), color=f"C{k % 10}")
    ax.set_xticks(np.arange(len(categories)) + width * (len(labels) - 1) / 2, [str(c) for c in categories])
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if len(labels) > 1:
        ax.legend(fontsize="small")
    return save_figure(fig, save_to)


def plot_bars(values, ylabel="", title=None, *, reference=None, reference_label=None, ax=None, save_to=None):
    """One bar per named value, each labelled with its number.

    Args:
        values: dict of name -> value (e.g. the MAE of each ablation variant
            or of each classifier of a model), in order.
        ylabel: y axis label.
        title: optional axes title.
        reference: optional value drawn as a dashed horizontal line (e.g. a
            baseline's MAE).
        reference_label: legend label of the reference line.
        ax: optional `Axes` to draw into.
        save_to: optional PNG path.

    Returns:
        The `Figure`.

    Example:

    >>> fig = plot_bars({"baseline": 6.5, "model": 6.1}, ylabel="MAE", reference=6.5)
    """
    names = [str(k) for k in values]
    if not names:
        raise ValueError("No values to plot.")
    heights = [float(v) for v in values.values()]
    fig, ax = new_axes(ax, figsize=(max(4.0, 0.55 * len(names) + 1.5), 3.4))
    bars = ax.bar(range(len(names)), heights, color=[f"C{i % 10}" for i in range(len(names))])
    ax.bar_label(bars, labels=[f"{h:.2f}" for h in heights], fontsize="x-small")
    if reference is not None:
        ax.axhline(float(reference), color="k", linestyle="--", linewidth=0.8, label=reference_label)
        if reference_label:
            ax.legend(fontsize="small")
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize="small")
    ax.margins(y=0.12)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize="medium")
    return save_figure(fig, save_to)


def plot_lines(lines, xlabel="", ylabel="", title=None, *, marks=None, logy=False, ax=None, save_to=None):
    """Named curves, each with its own x values; a curve may have several runs.

    Unlike `plot_curve` (one shared x axis), each series brings its own
    `(x, y)` points, e.g. the validation MAE of every model against the
    training minutes at which each of its epochs ended. A series given as a
    list of `(x, y)` pairs (e.g. one per seed) draws every run in the
    series' colour, labelled once.

    Args:
        lines: dict of label -> `(x, y)` or list of `(x, y)` pairs, in order.
        xlabel: x axis label.
        ylabel: y axis label.
        title: optional axes title.
        marks: optional x values drawn as dotted vertical lines (e.g. 1, 5
            and 15 minutes).
        logy: logarithmic y axis.
        ax: optional `Axes` to draw into.
        save_to: optional PNG path.

    Returns:
        The `Figure`.

    Example:

    >>> fig = plot_lines({"A": ([1, 2, 3], [9, 7, 6]), "B": [([1, 3], [8, 5]), ([1, 3], [8.5, 5.2])]},
    ...                  "minutes", "val MAE", marks=[1, 5])
    """
    if not lines:
        raise ValueError("No lines to plot.")
    fig, ax = new_axes(ax, figsize=(6, 3.8))
    for k, (label, runs) in enumerate(lines.items()):
        if isinstance(runs, tuple) and len(runs) == 2 and np.ndim(runs[0]) == 1:
            runs = [runs]
        for j, (x, y) in enumerate(runs):
            x, y = as_vector(x), as_vector(y)
            if len(x) != len(y):
                raise ValueError(f"Series {label!r} has {len(x)} x values and {len(y)} y values.")
            ax.plot(x, y, marker=".", markersize=4, color=f"C{k % 10}", alpha=1.0 if j == 0 else 0.5,
                    label=str(label) if j == 0 else None)
    for m in marks or ():
        ax.axvline(float(m), color="grey", linestyle=":", linewidth=0.8)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="x-small", ncols=2 if len(lines) > 4 else 1)
    return save_figure(fig, save_to)


def plot_scatter_labeled(x, y, labels, xlabel="", ylabel="", title=None, *, xerr=None, yerr=None, logx=False,
                         ax=None, save_to=None):
    """One labelled point per item, with optional error bars (e.g. MAE against parameters).

    Args:
        x: array `(n,)` of x values.
        y: array `(n,)` of y values.
        labels: `n` names written beside the points.
        xlabel: x axis label.
        ylabel: y axis label.
        title: optional axes title.
        xerr, yerr: optional arrays `(n,)` of error-bar half-widths (e.g. the
            standard deviation over seeds); NaN draws no bar.
        logx: logarithmic x axis (e.g. parameter counts).
        ax: optional `Axes` to draw into.
        save_to: optional PNG path.

    Returns:
        The `Figure`.

    Example:

    >>> fig = plot_scatter_labeled([11.2e6, 21.3e6], [6.5, 7.1], ["resnet18", "resnet34"],
    ...                            "parameters", "MAE", yerr=[0.1, 0.2], logx=True)
    """
    x, y = as_vector(x).astype("float64"), as_vector(y).astype("float64")
    labels = [str(s) for s in labels]
    if not (len(x) == len(y) == len(labels)):
        raise ValueError(f"Got {len(x)} x values, {len(y)} y values and {len(labels)} labels.")
    errs = []
    for name, err in (("xerr", xerr), ("yerr", yerr)):
        if err is not None:
            err = np.nan_to_num(as_vector(err).astype("float64"), nan=0.0)
            if len(err) != len(x):
                raise ValueError(f"{name} has {len(err)} values for {len(x)} points.")
        errs.append(err)
    fig, ax = new_axes(ax, figsize=(5.5, 3.8))
    for i in range(len(x)):
        ax.errorbar(x[i], y[i], xerr=None if errs[0] is None else errs[0][i],
                    yerr=None if errs[1] is None else errs[1][i], fmt="o", color=f"C{i % 10}", capsize=3)
        ax.annotate(labels[i], (x[i], y[i]), textcoords="offset points", xytext=(4, 4), fontsize="x-small")
    if logx:
        ax.set_xscale("log")
    ax.margins(0.12)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize="medium")
    return save_figure(fig, save_to)
