"""Embeddings and predictions: a t-SNE map, predicted against true age, MAE per age bracket."""

from __future__ import annotations

import numpy as np

from .common import as_vector, new_axes, save_figure


def plot_tsne(
    embeddings,
    ages,
    *,
    perplexity=30,
    seed=0,
    max_points=2000,
    title=None,
    label="age",
    like=None,
    ax=None,
    save_to=None,
):
    """A 2-D t-SNE map of embeddings, coloured by age (or any other value per row).

    Uses `sklearn.manifold.TSNE(init="pca", random_state=seed)`. With more
    than `max_points` rows, a seeded random subset of `max_points` rows (in
    their original order) is embedded. `perplexity` is lowered to
    `(n - 1) / 3` for small `n` so that tiny sets still run.

    The returned figure carries the result: `fig.agekeras_coords` is the
    `(m, 2)` array of t-SNE coordinates and `fig.agekeras_index` the `(m,)`
    row indices into `embeddings` they belong to.

    Args:
        embeddings: array `(n, d)` (e.g. a model's penultimate features).
        ages: array `(n,)` of ages (or other values, e.g. gender codes) for the colours.
        perplexity: t-SNE perplexity.
        seed: seed of the subsample and of t-SNE.
        max_points: most rows to embed.
        title: axes title; defaults to "t-SNE of <m> embeddings".
        label: the colour bar's label.
        like: a figure returned by `plot_tsne` for the same `embeddings`:
            its map (`agekeras_coords`, `agekeras_index`) is coloured again
            by `ages` instead of being computed anew, so that two colourings
            (age, gender) show the same points at the same places.
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
    ages = as_vector(ages)
    if len(ages) != len(embeddings):
        raise ValueError(f"{len(embeddings)} embeddings but {len(ages)} ages.")
    if like is not None:
        coords, index = np.asarray(like.agekeras_coords), np.asarray(like.agekeras_index)
        if len(index) and index.max() >= len(embeddings):
            raise ValueError(f"`like` maps rows up to {index.max()}, but there are {len(embeddings)} embeddings.")
    else:
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

    fig, ax = new_axes(ax, figsize=(6, 5))
    points = ax.scatter(coords[:, 0], coords[:, 1], c=ages[index], cmap="viridis", s=8)
    fig.colorbar(points, ax=ax, label=label)
    ax.set_title(title or f"t-SNE of {len(index)} embeddings")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.agekeras_coords = coords
    fig.agekeras_index = index
    return save_figure(fig, save_to)


def plot_predictions(y_true, y_pred, *, mae=None, ax=None, save_to=None):
    """Predicted against true age, with the y = x line; the title gives the face count and the MAE.

    Args:
        y_true: true ages, any shape with `n` elements.
        y_pred: predicted ages, same number of elements.
        mae: the MAE to print in the title (`agekeras.metrics.mae(y_true, y_pred)`), or None for
            the face count alone.
        ax: optional `Axes` to draw into.
        save_to: optional PNG path.

    Returns:
        The `Figure`.

    Example:

    >>> from agekeras import metrics
    >>> predictions = model.predict(test_images)
    >>> fig = plot_predictions(test_ages, predictions, mae=metrics.mae(test_ages, predictions))
    """
    y_true, y_pred = as_vector(y_true), as_vector(y_pred)
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true ages but {len(y_pred)} predictions.")
    fig, ax = new_axes(ax, figsize=(5, 5))
    ax.scatter(y_true, y_pred, s=6, alpha=0.5)
    lo = min(y_true.min(), y_pred.min())
    hi = max(y_true.max(), y_pred.max())
    ax.plot([lo, hi], [lo, hi], color="k", linewidth=1, label="y = x")
    ax.set_xlabel("true age")
    ax.set_ylabel("predicted age")
    ax.set_aspect("equal")
    faces = f"n = {len(y_true)}"
    ax.set_title(faces + " faces" if mae is None else f"MAE = {float(mae):.2f} years ({faces})")
    ax.legend(loc="upper left")
    return save_figure(fig, save_to)


_BRACKET_KEYS = ("bracket", "n", "mae")


def plot_error_by_age(by_age, *, mae=None, ax=None, save_to=None):
    """Bar chart of the MAE per age bracket, each bar annotated with its count.

    Draws the numbers of `agekeras.metrics.error_by_age` (or the "by_age"
    entry of a run's metrics file). Empty brackets get a zero-height bar
    labelled "n=0".

    Args:
        by_age: one dict per bracket, `{"bracket": "20-30", "n": count,
            "mae": MAE or None when empty}`, in order.
        mae: the MAE over all faces, printed in the title; None leaves it out.
        ax: optional `Axes` to draw into.
        save_to: optional PNG path.

    Returns:
        The `Figure`.

    Raises:
        ValueError: a row lacks one of "bracket", "n", "mae".

    Example:

    >>> from agekeras import metrics
    >>> fig = plot_error_by_age(metrics.error_by_age(test_ages, predictions),
    ...                         mae=metrics.mae(test_ages, predictions))
    """
    rows = list(by_age)
    for row in rows:
        if not isinstance(row, dict) or not set(_BRACKET_KEYS) <= set(row):
            raise ValueError(f"by_age must hold the rows of agekeras.metrics.error_by_age, dicts with keys "
                             f"{_BRACKET_KEYS}; got {row!r}")
    fig, ax = new_axes(ax, figsize=(7, 3.5))
    bars = ax.bar(
        [str(r["bracket"]) for r in rows],
        [0.0 if r["mae"] is None else float(r["mae"]) for r in rows],
    )
    ax.bar_label(bars, labels=[f"n={r['n']}" for r in rows], fontsize="small")
    ax.margins(y=0.15)
    ax.set_xlabel("true age")
    ax.set_ylabel("MAE (years)")
    ax.set_title("MAE by age" if mae is None else f"MAE by age (overall {float(mae):.2f})")
    return save_figure(fig, save_to)


def plot_largest_errors(images, y_true, y_pred, *, n=8, ncols=8, title=None, ax=None, save_to=None):
    """The `n` faces with the largest absolute error, largest first, each titled with its true and predicted age.

    For error analysis: what the faces a model gets most wrong have in
    common (age, pose, light, crop, a wrong label).

    Args:
        images: the faces, row `i` belonging to `y_true[i]`: an array `(N, H, W, 3)`,
            a sequence of images, or a callable `i -> image` (e.g. reading
            file `i`), so that only the `n` faces shown are read.
        y_true: true ages `(N,)`.
        y_pred: predicted ages `(N,)`.
        n: how many faces to show (fewer when there are fewer faces).
        ncols: most faces per row.
        title: optional overall title of the figure.
        ax: optional sequence of at least `n` `Axes`.
        save_to: optional PNG path.

    Returns:
        The `Figure`; `fig.agekeras_index` holds the indices of the faces
        shown, in order (ties keep the order of the faces).

    Raises:
        ValueError: `y_true` and `y_pred` differ in length, or `images` (an
            array or sequence) holds another number of faces.

    Example:

    >>> fig = plot_largest_errors(test.images, test.age, predictions, n=8)
    >>> fig.agekeras_index[:3]  # doctest: +SKIP
    array([41, 7, 19])
    """
    from .common import with_title
    from .images import plot_image_grid

    y_true, y_pred = as_vector(y_true), as_vector(y_pred)
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true ages but {len(y_pred)} predictions.")
    if not callable(images) and len(images) != len(y_true):
        raise ValueError(f"{len(images)} images for {len(y_true)} ages.")
    if not len(y_true):
        raise ValueError("no faces to show")
    errors = np.abs(y_pred - y_true)
    index = np.argsort(-errors, kind="stable")[: int(n)]
    faces = [images(int(i)) if callable(images) else images[int(i)] for i in index]
    titles = [f"true {y_true[i]:.0f}, pred {y_pred[i]:.0f}" for i in index]
    fig = plot_image_grid(faces, titles=titles, ncols=min(int(ncols), len(index)), ax=ax)
    fig.agekeras_index = index
    if title:
        fig = with_title(fig, title)
    return save_figure(fig, save_to)
