"""Figures for the notebooks and the training reports.

Every function builds a `matplotlib.figure.Figure` directly (no `pyplot`), so
nothing depends on a global backend or on pyplot's "current figure": scripts
and tests render with Agg when saving, and notebooks display the returned
figure. Every function takes:

- `ax`: draw into an existing `Axes` (or, where a figure has several panels,
  a sequence of them) instead of a new figure; the figure returned is then
  the one `ax` belongs to.
- `save_to`: a path; when given, the figure is also written there as a PNG at
  120 dpi, creating parent folders.

In a Jupyter kernel (JupyterLab, VS Code, Colab), importing this module
teaches IPython to draw a returned `Figure` as a PNG: a cell that ends with a
plot call shows its figure exactly once, without `pyplot`.

| function | shows |
|---|---|
| `plot_history` | training curves from `CSVLogger` files or history dicts |
| `plot_tsne` | a t-SNE map of embeddings coloured by age |
| `plot_predictions` | predicted vs true age |
| `plot_error_by_age` | MAE per age bracket (numbers from `error_by_age`) |
| `plot_image_grid` | faces with optional boxes and landmark points |
| `plot_curve` | a few named curves over one x axis |
| `plot_overlays` | heat maps (e.g. attention masks) over images |
| `plot_grouped_bars` | several series of bars side by side over the same categories |
| `plot_bars` | one labelled bar per named value, with an optional reference line |
| `plot_polygons` | images with polygon outlines (e.g. warped regions) and points |
"""

from __future__ import annotations

import csv
import math
import os
import pathlib
from collections.abc import Mapping

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator


DEFAULT_AGE_BINS = (0, 10, 20, 30, 40, 50, 60, 70, 80, 120)
SAVE_DPI = 120


def _new_axes(ax, figsize):
    """Returns `(figure, axes)`: a fresh single-panel figure when `ax` is None."""
    if ax is None:
        fig = Figure(figsize=figsize, layout="constrained")
        return fig, fig.add_subplot()
    return _root_figure(ax), ax


def _root_figure(ax):
    fig = ax.figure
    return fig if isinstance(fig, Figure) else fig.figure  # SubFigure -> Figure


def _panel_axes(ax, n, figsize):
    """Returns `(figure, [axes] * n)`: one panel per item, new or given."""
    if ax is None:
        fig = Figure(figsize=figsize, layout="constrained")
        return fig, [fig.add_subplot(1, n, i + 1) for i in range(n)]
    axes = [ax] if isinstance(ax, Axes) else list(ax)
    if len(axes) != n:
        raise ValueError(f"Expected {n} axes, got {len(axes)}.")
    return _root_figure(axes[0]), axes


def _grid_axes(ax, n, ncols, cell):
    """Returns `(figure, axes)`: a grid of `n` panels, `ncols` wide, each `cell` inches, or the given axes."""
    if ax is not None:
        axes = list(ax)
        if len(axes) < n:
            raise ValueError(f"Got {len(axes)} axes for {n} images.")
        return _root_figure(axes[0]), axes
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(cell[0] * ncols, cell[1] * nrows), layout="constrained")
    return fig, [fig.add_subplot(nrows, ncols, i + 1) for i in range(n)]


def _save(fig, save_to):
    if save_to is not None:
        path = pathlib.Path(save_to)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=SAVE_DPI, format="png")
    return fig


def _flat(a):
    return np.asarray(a, dtype="float64").reshape(-1)


def mae(y_true, y_pred):
    """Mean absolute error (NumPy; plots stays a leaf module)."""
    return float(np.mean(np.abs(_flat(y_true) - _flat(y_pred))))


def figure_png(fig):
    """The PNG bytes of a `Figure` (what a notebook shows for it)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if fig.canvas is None or not hasattr(fig.canvas, "print_png"):
        FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=SAVE_DPI, bbox_inches="tight")
    return buffer.getvalue()


def _figure_text(fig, printer, cycle):
    title = fig._suptitle.get_text() if fig._suptitle is not None else ""
    printer.text(f"<agekeras figure{': ' + title if title else ''}>")


def register_notebook_display():
    """Show returned `Figure`s as images in the running IPython kernel.

    Called on import; a no-op outside IPython. Safe to call again.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return False
    formatters = shell.display_formatter.formatters
    formatters["image/png"].for_type(Figure, figure_png)
    formatters["text/plain"].for_type(Figure, _figure_text)
    return True


register_notebook_display()


# ----- training history ----------------------------------------------------------


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

    fig, axes = _panel_axes(ax, len(metrics), figsize=(4.5 * len(metrics), 3.5))
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
    return _save(fig, save_to)


# ----- embeddings and predictions -------------------------------------------------


def plot_tsne(
    embeddings,
    ages,
    *,
    perplexity=30,
    seed=0,
    max_points=2000,
    title=None,
    ax=None,
    save_to=None,
):
    """A 2-D t-SNE map of embeddings, coloured by age.

    Uses `sklearn.manifold.TSNE(init="pca", random_state=seed)`. With more
    than `max_points` rows, a seeded random subset of `max_points` rows (in
    their original order) is embedded. `perplexity` is lowered to
    `(n - 1) / 3` for small `n` so that tiny sets still run.

    The returned figure carries the result: `fig.agekeras_coords` is the
    `(m, 2)` array of t-SNE coordinates and `fig.agekeras_index` the `(m,)`
    row indices into `embeddings` they belong to.

    Args:
        embeddings: array `(n, d)` (e.g. a model's penultimate features).
        ages: array `(n,)` of ages for the colours.
        perplexity: t-SNE perplexity.
        seed: seed of the subsample and of t-SNE.
        max_points: most rows to embed.
        title: axes title; defaults to "t-SNE of <m> embeddings".
        ax: optional `Axes` to draw into.
        save_to: optional PNG path.

    Returns:
        The `Figure`, with `agekeras_coords` and `agekeras_index` attached.

    Example:

    >>> fig = plot_tsne(features, ages, seed=0)
    >>> fig.agekeras_coords.shape
    (2000, 2)
    """
    from sklearn.manifold import TSNE

    embeddings = np.asarray(embeddings, dtype="float32")
    embeddings = embeddings.reshape(len(embeddings), -1)
    ages = _flat(ages)
    if len(ages) != len(embeddings):
        raise ValueError(f"{len(embeddings)} embeddings but {len(ages)} ages.")
    index = np.arange(len(embeddings))
    if len(index) > max_points:
        rng = np.random.default_rng(seed)
        index = np.sort(rng.choice(len(index), size=max_points, replace=False))
    if len(index) < 4:
        raise ValueError(f"t-SNE needs at least 4 points, got {len(index)}.")
    tsne = TSNE(
        n_components=2,
        perplexity=min(float(perplexity), (len(index) - 1) / 3),
        init="pca",
        random_state=seed,
    )
    coords = tsne.fit_transform(embeddings[index])

    fig, ax = _new_axes(ax, figsize=(6, 5))
    points = ax.scatter(coords[:, 0], coords[:, 1], c=ages[index], cmap="viridis", s=8)
    fig.colorbar(points, ax=ax, label="age")
    ax.set_title(title or f"t-SNE of {len(index)} embeddings")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.agekeras_coords = coords
    fig.agekeras_index = index
    return _save(fig, save_to)


def plot_predictions(y_true, y_pred, *, ax=None, save_to=None):
    """Predicted against true age, with the y = x line and the MAE in the title.

    Args:
        y_true: true ages, any shape with `n` elements.
        y_pred: predicted ages, same number of elements.
        ax: optional `Axes` to draw into.
        save_to: optional PNG path.

    Returns:
        The `Figure`.

    Example:

    >>> fig = plot_predictions(test_ages, model.predict(test_images))
    """
    y_true, y_pred = _flat(y_true), _flat(y_pred)
    fig, ax = _new_axes(ax, figsize=(5, 5))
    ax.scatter(y_true, y_pred, s=6, alpha=0.5)
    lo = min(y_true.min(), y_pred.min())
    hi = max(y_true.max(), y_pred.max())
    ax.plot([lo, hi], [lo, hi], color="k", linewidth=1, label="y = x")
    ax.set_xlabel("true age")
    ax.set_ylabel("predicted age")
    ax.set_aspect("equal")
    ax.set_title(f"MAE = {mae(y_true, y_pred):.2f} years (n = {len(y_true)})")
    ax.legend(loc="upper left")
    return _save(fig, save_to)


def error_by_age(y_true, y_pred, bins=DEFAULT_AGE_BINS):
    """MAE per age bracket of the true age.

    Brackets are half-open, `[bins[i], bins[i + 1])`; faces whose true age
    lies outside `[bins[0], bins[-1])` are not counted.

    Args:
        y_true: true ages.
        y_pred: predicted ages.
        bins: increasing bracket edges.

    Returns:
        A JSON-ready list with one dict per bracket:
        `{"bracket": "20-30", "n": count, "mae": MAE or None when empty}`.

    Example:

    >>> rows = error_by_age([5, 25, 27], [7, 20, 30], bins=(0, 10, 20, 30))
    >>> [(r["bracket"], r["n"], r["mae"]) for r in rows]
    [('0-10', 1, 2.0), ('10-20', 0, None), ('20-30', 2, 4.0)]
    """
    y_true, y_pred = _flat(y_true), _flat(y_pred)
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true ages but {len(y_pred)} predictions.")
    edges = list(bins)
    if len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"bins must be at least two increasing edges, got {bins}.")
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (y_true >= lo) & (y_true < hi)
        n = int(inside.sum())
        out.append(
            {
                "bracket": f"{lo:g}-{hi:g}",
                "n": n,
                "mae": mae(y_true[inside], y_pred[inside]) if n else None,
            }
        )
    return out


def plot_error_by_age(y_true, y_pred, bins=DEFAULT_AGE_BINS, *, ax=None, save_to=None):
    """Bar chart of the MAE per age bracket, each bar annotated with its count.

    Empty brackets get a zero-height bar labelled "n=0". The title gives the
    MAE over all faces.

    Args:
        y_true: true ages.
        y_pred: predicted ages.
        bins: increasing bracket edges (see `error_by_age`).
        ax: optional `Axes` to draw into.
        save_to: optional PNG path.

    Returns:
        The `Figure`.

    Example:

    >>> fig = plot_error_by_age(test_ages, predictions, save_to="runs/dex/error_by_age.png")
    """
    rows = error_by_age(y_true, y_pred, bins)
    fig, ax = _new_axes(ax, figsize=(7, 3.5))
    bars = ax.bar(
        [r["bracket"] for r in rows],
        [0.0 if r["mae"] is None else r["mae"] for r in rows],
    )
    ax.bar_label(bars, labels=[f"n={r['n']}" for r in rows], fontsize="small")
    ax.margins(y=0.15)
    ax.set_xlabel("true age")
    ax.set_ylabel("MAE (years)")
    ax.set_title(f"MAE by age (overall {mae(y_true, y_pred):.2f})")
    return _save(fig, save_to)


# ----- images ----------------------------------------------------------------


def _displayable(image):
    """uint8 as is; floats above 1 are read as 0-255, then clipped to [0, 1]."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.dtype == np.uint8:
        return image
    image = image.astype("float32")
    if image.max() > 1.0:
        image = image / 255.0
    return np.clip(image, 0.0, 1.0)


def _is_relative(coords):
    finite = coords[np.isfinite(coords)]
    return bool(finite.size) and finite.min() >= 0.0 and finite.max() <= 1.0


def plot_image_grid(
    images,
    titles=None,
    ncols=8,
    boxes=None,
    points=None,
    *,
    relative=None,
    ax=None,
    save_to=None,
):
    """Images in a grid, with optional boxes and landmark points on top.

    Coordinates are continuous image coordinates: (0, 0) is the top-left
    corner of the top-left pixel and (W, H) the bottom-right corner of the
    image. They are either in pixels or relative to the image size (`[0, 1]`).
    Rows containing NaN (unknown landmarks, absent boxes) are skipped.

    Args:
        images: array `(n, H, W)`, `(n, H, W, 1)` or `(n, H, W, 3)`, uint8
            or float (floats above 1 are read as 0-255).
        titles: optional string per image.
        ncols: most images per row.
        boxes: optional `(n, 4)` or `(n, k, 4)` boxes `(x, y, w, h)`, with
            `(x, y)` the top-left corner; box `j` of each image gets colour
            `C{j}` (e.g. the glimpses of an attention model over time).
        points: optional `(n, k, 2)` points `(x, y)`, e.g. 5 face landmarks;
            point `j` gets colour `C{j}`.
        relative: whether `boxes` and `points` are relative to the image size.
            None infers it separately for each: relative when every finite
            coordinate lies in `[0, 1]`. Pass it explicitly when boxes may
            leave the image.
        ax: optional sequence of at least `n` `Axes`, one per image.
        save_to: optional PNG path.

    Returns:
        The `Figure`.

    Example:

    >>> fig = plot_image_grid(ds.images[:16], titles=[f"{a:.0f}" for a in ds.age[:16]],
    ...                       points=ds.landmarks[:16])
    """
    images = [_displayable(im) for im in images]
    n = len(images)
    if titles is not None and len(titles) != n:
        raise ValueError(f"Got {len(titles)} titles for {n} images.")
    if boxes is not None:
        boxes = np.asarray(boxes, dtype="float64").reshape(n, -1, 4)
    if points is not None:
        points = np.asarray(points, dtype="float64").reshape(n, -1, 2)
    box_relative = _is_relative(boxes) if relative is None and boxes is not None else relative
    point_relative = _is_relative(points) if relative is None and points is not None else relative

    fig, axes = _grid_axes(ax, n, ncols, cell=(1.6, 1.8))

    for i, (image, panel) in enumerate(zip(images, axes)):
        height, width = image.shape[:2]
        panel.imshow(image, cmap="gray" if image.ndim == 2 else None, extent=(0, width, height, 0))
        if boxes is not None:
            scale = np.array([width, height, width, height]) if box_relative else 1.0
            for j, box in enumerate(boxes[i] * scale):
                if np.all(np.isfinite(box)):
                    x, y, w, h = box
                    panel.add_patch(
                        Rectangle((x, y), w, h, fill=False, edgecolor=f"C{j % 10}", linewidth=1.5)
                    )
        if points is not None:
            scale = np.array([width, height]) if point_relative else 1.0
            xy = points[i] * scale
            keep = np.all(np.isfinite(xy), axis=1)
            colors = [f"C{j % 10}" for j in np.flatnonzero(keep)]
            panel.scatter(
                xy[keep, 0], xy[keep, 1], c=colors, s=16, edgecolors="white", linewidths=0.5
            )
        panel.set_xlim(0, width)
        panel.set_ylim(height, 0)
        panel.set_axis_off()
        if titles is not None:
            panel.set_title(str(titles[i]), fontsize="small")
    return _save(fig, save_to)


# ----- generic ---------------------------------------------------------------


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
    x = _flat(x)
    fig, ax = _new_axes(ax, figsize=(5, 3.5))
    for label, y in ys.items():
        y = _flat(y)
        if len(y) != len(x):
            raise ValueError(f"Curve {label!r} has {len(y)} values for {len(x)} x values.")
        ax.plot(x, y, label=str(label))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if len(ys) > 1:
        ax.legend()
    return _save(fig, save_to)


def plot_overlays(images, maps, titles=None, *, alpha=0.55, cmap="jet", vmin=0.0, vmax=1.0, save_to=None):
    """Images with heat maps drawn over them (e.g. attention masks).

    One row per image: the image alone, then one panel per named set of maps,
    each map stretched over the whole image (any map size works: a 4x4 mask
    over a 32x32 face covers the face).

    Args:
        images: array `(n, H, W, 3)` (uint8, or floats read as 0-255 above 1).
        maps: dict of name -> array `(n, h, w)`, one column each, in order.
        titles: optional string per image (row), shown over its first panel.
        alpha: opacity of the maps.
        cmap: matplotlib colour map of the maps.
        vmin, vmax: value range of the colour map.
        save_to: optional PNG path.

    Returns:
        The `Figure`.

    Example:

    >>> fig = plot_overlays(faces, {"stage 1": masks1, "stage 2": masks2},
    ...                     titles=[f"{a:.0f} y" for a in ages])
    """
    images = [_displayable(im) for im in images]
    n, names = len(images), list(maps)
    if titles is not None and len(titles) != n:
        raise ValueError(f"Got {len(titles)} titles for {n} images.")
    arrays = {}
    for name in names:
        values = np.asarray(maps[name], dtype="float32")
        if values.ndim != 3 or len(values) != n:
            raise ValueError(f"Maps {name!r} must have shape (n={n}, h, w); got {values.shape}.")
        arrays[name] = values
    cols = len(names) + 1
    fig = Figure(figsize=(1.8 * cols, 1.8 * n), layout="constrained")
    for i, image in enumerate(images):
        height, width = image.shape[:2]
        extent = (0, width, height, 0)
        for j in range(cols):
            panel = fig.add_subplot(n, cols, i * cols + j + 1)
            panel.imshow(image, cmap="gray" if image.ndim == 2 else None, extent=extent)
            if j:
                panel.imshow(arrays[names[j - 1]][i], cmap=cmap, alpha=alpha, vmin=vmin, vmax=vmax,
                             extent=extent, interpolation="bilinear")
                if i == 0:
                    panel.set_title(str(names[j - 1]), fontsize="small")
            elif titles is not None:
                panel.set_title(str(titles[i]), fontsize="small")
            panel.set_axis_off()
    return _save(fig, save_to)


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
    fig, ax = _new_axes(ax, figsize=(1.5 + 1.1 * len(categories), 3.2))
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
    return _save(fig, save_to)


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
    fig, ax = _new_axes(ax, figsize=(max(4.0, 0.55 * len(names) + 1.5), 3.4))
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
    return _save(fig, save_to)


def plot_polygons(images, polygons, *, labels=None, points=None, titles=None, title=None, ncols=4, ax=None,
                  save_to=None):
    """Images with closed polygon outlines (e.g. warped regions) drawn on top.

    Coordinates are continuous pixel coordinates, as in `plot_image_grid`:
    (0, 0) is the top-left corner of the top-left pixel.

    Args:
        images: array `(n, H, W, 3)` (uint8, or floats read as 0-255 above 1).
        polygons: array `(n, k, m, 2)`: `k` polygons of `m` corners (x, y) per
            image; polygon `j` gets colour `C{j}`.
        labels: optional name per polygon (`k`), shown as a legend on the
            first image.
        points: optional `(n, p, 2)` points drawn as white dots (e.g. landmarks).
        titles: optional string per image.
        title: optional title of the whole figure.
        ncols: most images per row.
        ax: optional sequence of at least `n` `Axes`.
        save_to: optional PNG path.

    Returns:
        The `Figure`.

    Example:

    >>> square = [[8, 8], [24, 8], [24, 24], [8, 24]]
    >>> fig = plot_polygons(np.zeros((1, 32, 32, 3)), [[square]], labels=["box"])
    """
    images = [_displayable(im) for im in images]
    n = len(images)
    polygons = np.asarray(polygons, dtype="float64")
    if polygons.ndim != 4 or polygons.shape[0] != n or polygons.shape[-1] != 2:
        raise ValueError(f"polygons must have shape (n={n}, k, m, 2); got {polygons.shape}.")
    if labels is not None and len(labels) != polygons.shape[1]:
        raise ValueError(f"Got {len(labels)} labels for {polygons.shape[1]} polygons per image.")
    if titles is not None and len(titles) != n:
        raise ValueError(f"Got {len(titles)} titles for {n} images.")
    fig, axes = _grid_axes(ax, n, ncols, cell=(2.4, 2.4))
    for i, (image, panel) in enumerate(zip(images, axes)):
        height, width = image.shape[:2]
        panel.imshow(image, cmap="gray" if image.ndim == 2 else None, extent=(0, width, height, 0))
        for j, poly in enumerate(polygons[i]):
            closed = np.vstack([poly, poly[:1]])
            label = str(labels[j]) if labels is not None and i == 0 else None
            panel.plot(closed[:, 0], closed[:, 1], color=f"C{j % 10}", linewidth=1.2, label=label)
        if points is not None:
            xy = np.asarray(points, dtype="float64")[i]
            panel.scatter(xy[:, 0], xy[:, 1], s=8, c="white", edgecolors="black", linewidths=0.4)
        panel.set_xlim(0, width)
        panel.set_ylim(height, 0)
        panel.set_axis_off()
        if titles is not None:
            panel.set_title(str(titles[i]), fontsize="small")
    if labels is not None:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=min(6, len(labels)),
                   fontsize="small")
    if title:
        fig.suptitle(title, fontsize="medium")
    return _save(fig, save_to)


def with_title(fig, title, *, save_to=None):
    """Give a figure an overall title (e.g. model, data, size and budget of the
    run it shows), then optionally save it.

    Args:
        fig: a `Figure` returned by this module.
        title: the figure's title (`Figure.suptitle`).
        save_to: optional PNG path.

    Returns:
        The same `Figure`.

    Example:

    >>> fig = with_title(plot_image_grid(faces, boxes=boxes),
    ...                  "al_ror34, utkface-dev, 64 px, 15 min", save_to="figures/boxes.png")
    """
    fig.suptitle(str(title))
    return _save(fig, save_to)


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
    fig, ax = _new_axes(ax, figsize=(6, 3.8))
    for k, (label, runs) in enumerate(lines.items()):
        if isinstance(runs, tuple) and len(runs) == 2 and np.ndim(runs[0]) == 1:
            runs = [runs]
        for j, (x, y) in enumerate(runs):
            x, y = _flat(x), _flat(y)
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
    return _save(fig, save_to)


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
    x, y = _flat(x).astype("float64"), _flat(y).astype("float64")
    labels = [str(s) for s in labels]
    if not (len(x) == len(y) == len(labels)):
        raise ValueError(f"Got {len(x)} x values, {len(y)} y values and {len(labels)} labels.")
    errs = []
    for name, err in (("xerr", xerr), ("yerr", yerr)):
        if err is not None:
            err = np.nan_to_num(_flat(err).astype("float64"), nan=0.0)
            if len(err) != len(x):
                raise ValueError(f"{name} has {len(err)} values for {len(x)} points.")
        errs.append(err)
    fig, ax = _new_axes(ax, figsize=(5.5, 3.8))
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
    return _save(fig, save_to)
