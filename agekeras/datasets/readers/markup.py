"""68-point landmark markups (iBUG/300-W, FG-NET) and their `.pts` files, reduced to our five points."""

from __future__ import annotations

import pathlib

import numpy as np


def ibug68_to_5(points: np.ndarray) -> np.ndarray:
    """Reduce 68 iBUG/300-W landmarks to our 5 (x, y) points.

    Left eye (image left) = mean of points 36-41, right eye = mean of 42-47,
    nose tip = 30, mouth corners = 48 and 54 (0-based indices).

    Args:
        points: float array (68, 2) of pixel (x, y).

    Returns:
        float32 array (5, 2).
    """
    p = np.asarray(points, dtype="float32").reshape(68, 2)
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]]).astype("float32")


def fgnet68_to_5(points: np.ndarray) -> np.ndarray:
    """Reduce the 68 FG-NET landmarks to our 5 (x, y) points.

    FG-NET's `.pts` files do not use the iBUG/300-W order: 0-14 are the jaw,
    15-26 the brows, 27-30 the image-left eye contour with its pupil at 31,
    32-35 the image-right eye with its pupil at 36, 37-47 the nose with its
    tip at 67, and 48-65 the mouth with corners 48 (image left) and 54.
    Eyes are the two pupils, then nose tip 67 and mouth corners 48 and 54.

    Args:
        points: float array (68, 2) of pixel (x, y).

    Returns:
        float32 array (5, 2).
    """
    p = np.asarray(points, dtype="float32").reshape(68, 2)
    return p[[31, 36, 67, 48, 54]]


def read_pts(path) -> np.ndarray:
    """Points of an iBUG `.pts` file (`version`, `n_points`, then `{ x y ... }`).

    Args:
        path: the `.pts` file.

    Returns:
        float32 array (n_points, 2).
    """
    text = pathlib.Path(path).read_text(errors="replace")
    body = text[text.index("{") + 1 : text.rindex("}")]
    return np.asarray(body.split(), dtype="float32").reshape(-1, 2)
