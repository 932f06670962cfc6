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

The figures draw numbers, they do not compute metrics: `plot_error_by_age`
takes the table of `agekeras.metrics.error_by_age`, and the MAE in a title is
passed in (`mae=agekeras.metrics.mae(...)`).

In a Jupyter kernel (JupyterLab, VS Code, Colab), importing this package
teaches IPython to draw a returned `Figure` as a PNG: a cell that ends with a
plot call shows its figure exactly once, without `pyplot`.

| function | shows | module |
|---|---|---|
| `plot_history` | training curves from `CSVLogger` files or history dicts | `history` |
| `plot_tsne` | a t-SNE map of embeddings coloured by age | `predictions` |
| `plot_predictions` | predicted vs true age | `predictions` |
| `plot_error_by_age` | MAE per age bracket (numbers from `metrics.error_by_age`) | `predictions` |
| `plot_largest_errors` | the faces with the largest errors, true and predicted age over each | `predictions` |
| `plot_image_grid` | faces with optional boxes and landmark points | `images` |
| `plot_overlays` | heat maps (e.g. attention masks) over images | `images` |
| `plot_polygons` | images with polygon outlines (e.g. warped regions) and points | `images` |
| `plot_curve` | a few named curves over one x axis | `charts` |
| `plot_lines` | named curves, each with its own x values (several runs each) | `charts` |
| `plot_grouped_bars` | several series of bars side by side over the same categories | `charts` |
| `plot_bars` | one labelled bar per named value, with an optional reference line | `charts` |
| `plot_scatter_labeled` | one labelled point per item, with error bars | `charts` |
| `with_title` | an overall title on any of them | `common` |

Example:

>>> from agekeras import plots
>>> fig = plots.plot_history("runs/dex/history.csv", metrics=("loss", "age_mae"))
"""

from .charts import plot_bars, plot_curve, plot_grouped_bars, plot_lines, plot_scatter_labeled
from .common import SAVE_DPI, figure_png, register_notebook_display, with_title
from .history import plot_history
from .images import plot_image_grid, plot_overlays, plot_polygons
from .predictions import plot_error_by_age, plot_largest_errors, plot_predictions, plot_tsne

__all__ = [
    "SAVE_DPI", "figure_png", "plot_bars", "plot_curve", "plot_error_by_age", "plot_grouped_bars", "plot_history",
    "plot_image_grid", "plot_largest_errors", "plot_lines", "plot_overlays", "plot_polygons", "plot_predictions",
    "plot_scatter_labeled", "plot_tsne", "register_notebook_display", "with_title",
]

register_notebook_display()
