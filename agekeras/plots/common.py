"""What every figure of `agekeras.plots` shares: new or given axes, saving, titles, array inputs, notebook display.

The plotting modules draw with these helpers; a notebook rarely needs them
directly, except `with_title` and `figure_png`.
"""

from __future__ import annotations

import io
import math
import pathlib

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

#: Resolution of the PNG files written by `save_to` (and shown in notebooks).
SAVE_DPI = 120


def root_figure(ax):
    """The top-level `Figure` an `Axes` belongs to (through a `SubFigure` too).

    Args:
        ax: a matplotlib `Axes`.

    Returns:
        Its `Figure`.

    Example:

    >>> fig = Figure(); root_figure(fig.subfigures(1, 2)[0].add_subplot()) is fig
    True
    """
    fig = ax.figure
    return fig if isinstance(fig, Figure) else fig.figure  # SubFigure -> Figure


def new_axes(ax, figsize):
    """One panel: a fresh single-panel figure when `ax` is None, else `ax` and its figure.

    Args:
        ax: an `Axes` to draw into, or None.
        figsize: `(width, height)` in inches of a new figure.

    Returns:
        `(figure, axes)`.

    Example:

    >>> fig, ax = new_axes(None, figsize=(5, 3.5))
    """
    if ax is None:
        fig = Figure(figsize=figsize, layout="constrained")
        return fig, fig.add_subplot()
    return root_figure(ax), ax


def panel_axes(ax, n, figsize):
    """`n` panels side by side: new ones when `ax` is None, else the `n` given.

    Args:
        ax: None, one `Axes` (n = 1) or a sequence of `n` `Axes`.
        n: number of panels.
        figsize: `(width, height)` in inches of a new figure.

    Returns:
        `(figure, [axes] * n)`.

    Raises:
        ValueError: `ax` holds another number of axes than `n`.

    Example:

    >>> fig, (left, right) = panel_axes(None, 2, figsize=(9, 3.5))
    """
    if ax is None:
        fig = Figure(figsize=figsize, layout="constrained")
        return fig, [fig.add_subplot(1, n, i + 1) for i in range(n)]
    axes = [ax] if isinstance(ax, Axes) else list(ax)
    if len(axes) != n:
        raise ValueError(f"Expected {n} axes, got {len(axes)}.")
    return root_figure(axes[0]), axes


def grid_axes(ax, n, ncols, cell):
    """A grid of `n` panels, at most `ncols` per row, or the given axes.

    Args:
        ax: None or a sequence of at least `n` `Axes`.
        n: number of panels.
        ncols: most panels per row.
        cell: `(width, height)` in inches of one panel.

    Returns:
        `(figure, axes)`.

    Raises:
        ValueError: fewer than `n` axes given.

    Example:

    >>> fig, axes = grid_axes(None, 5, ncols=3, cell=(1.6, 1.8))  # two rows
    """
    if ax is not None:
        axes = list(ax)
        if len(axes) < n:
            raise ValueError(f"Got {len(axes)} axes for {n} images.")
        return root_figure(axes[0]), axes
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(cell[0] * ncols, cell[1] * nrows), layout="constrained")
    return fig, [fig.add_subplot(nrows, ncols, i + 1) for i in range(n)]


def save_figure(fig, save_to):
    """Write `fig` as a PNG at `SAVE_DPI` when `save_to` is a path (parent folders created).

    Args:
        fig: a `Figure`.
        save_to: a path, or None to write nothing.

    Returns:
        `fig`.

    Example:

    >>> fig = save_figure(fig, "runs/dex/figures/curves.png")
    """
    if save_to is not None:
        path = pathlib.Path(save_to)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=SAVE_DPI, format="png")
    return fig


def as_vector(a):
    """Any array-like as a flat float64 NumPy vector.

    Args:
        a: numbers of any shape.

    Returns:
        A 1-D `np.ndarray`.

    Example:

    >>> as_vector([[1], [2]])
    array([1., 2.])
    """
    return np.asarray(a, dtype="float64").reshape(-1)


def displayable_image(image):
    """An image as `imshow` draws it: uint8 as is; floats above 1 read as 0-255, then clipped to [0, 1].

    Args:
        image: array `(H, W)`, `(H, W, 1)` or `(H, W, 3)`.

    Returns:
        The array to draw (`(H, W)` for one channel).

    Example:

    >>> float(displayable_image(np.full((2, 2, 3), 255.0)).max())
    1.0
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.dtype == np.uint8:
        return image
    image = image.astype("float32")
    if image.max() > 1.0:
        image = image / 255.0
    return np.clip(image, 0.0, 1.0)


def with_title(fig, title, *, save_to=None):
    """Give a figure an overall title (e.g. model, data, size and budget of the
    run it shows), then optionally save it.

    Args:
        fig: a `Figure` returned by `agekeras.plots`.
        title: the figure's title (`Figure.suptitle`).
        save_to: optional PNG path.

    Returns:
        The same `Figure`.

    Example:

    >>> fig = with_title(plot_image_grid(faces, boxes=boxes),
    ...                  "al_ror34, UTKFace, 64 px, 15 min", save_to="figures/boxes.png")
    """
    import textwrap

    width = max(30, int(fig.get_figwidth() * 11))  # characters that fit the figure's width at the title's size
    fig.suptitle(textwrap.fill(str(title), width))
    return save_figure(fig, save_to)


# ----- notebook display ---------------------------------------------------------------


def figure_png(fig):
    """The PNG bytes of a `Figure` (what a notebook shows for it).

    Args:
        fig: a `Figure`.

    Returns:
        `bytes` of a PNG at `SAVE_DPI`, cropped to the drawn area.

    Example:

    >>> figure_png(plot_curve([0, 1], {"y": [0, 1]}))[:4]
    b'\\x89PNG'
    """
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

    Called when `agekeras.plots` is imported; a no-op outside IPython. Safe to call again.

    Returns:
        True when a kernel was found and taught to draw figures.

    Example:

    >>> register_notebook_display()  # in a plain Python process
    False
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
