"""Faces: image grids with boxes and landmark points, heat-map overlays, polygon outlines."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .common import displayable_image, grid_axes, save_figure


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
    images = [displayable_image(im) for im in images]
    n = len(images)
    if titles is not None and len(titles) != n:
        raise ValueError(f"Got {len(titles)} titles for {n} images.")
    if boxes is not None:
        boxes = np.asarray(boxes, dtype="float64").reshape(n, -1, 4)
    if points is not None:
        points = np.asarray(points, dtype="float64").reshape(n, -1, 2)
    box_relative = _is_relative(boxes) if relative is None and boxes is not None else relative
    point_relative = _is_relative(points) if relative is None and points is not None else relative

    fig, axes = grid_axes(ax, n, ncols, cell=(1.6, 1.8))

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
    return save_figure(fig, save_to)


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
    images = [displayable_image(im) for im in images]
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
    return save_figure(fig, save_to)


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
    images = [displayable_image(im) for im in images]
    n = len(images)
    polygons = np.asarray(polygons, dtype="float64")
    if polygons.ndim != 4 or polygons.shape[0] != n or polygons.shape[-1] != 2:
        raise ValueError(f"polygons must have shape (n={n}, k, m, 2); got {polygons.shape}.")
    if labels is not None and len(labels) != polygons.shape[1]:
        raise ValueError(f"Got {len(labels)} labels for {polygons.shape[1]} polygons per image.")
    if titles is not None and len(titles) != n:
        raise ValueError(f"Got {len(titles)} titles for {n} images.")
    fig, axes = grid_axes(ax, n, ncols, cell=(2.4, 2.4))
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
    return save_figure(fig, save_to)
