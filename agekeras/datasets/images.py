"""Image files and pixels: which files are images, and one way to make any image RGB.

```python
from agekeras.datasets.images import list_images, read_image

for path in list_images(["photos/"]):
    image = read_image(path)          # uint8 (H, W, 3), upright
```

`to_rgb` is the one conversion of the package: `read_image` (photos for
detection and prediction) and `agekeras.datasets.validate` (dataset files
converted once for the input pipeline) both use it, so a face looks the same
to training and to prediction:

* grayscale, palette, CMYK and the like: Pillow's RGB conversion;
* transparency (RGBA, LA, palette with a transparent colour, 2- or
  4-channel arrays): composited on white;
* 16-bit images (`uint16` arrays, Pillow's "I;16" modes): scaled to 8 bits,
  `round(v / 257)`, so 65535 becomes 255; 32-bit integer images ("I") are
  read as 8-bit when no value exceeds 255, else as 16-bit (larger ranges
  are scaled by their maximum);
* floats: values in [0, 1] are scaled by 255, others clipped to [0, 255].

Folders are searched for files with a suffix of `IMAGE_SUFFIXES` (any case).
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

# Pillow modes whose pixels are wider than 8 bits, read as arrays and scaled.
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


class ImageReadError(ValueError):
    """A file that is not a readable image (the message is one line)."""


def to_rgb(image) -> np.ndarray:
    """Any image as uint8 RGB (H, W, 3) (rules in the module docstring).

    Args:
        image: a PIL image, or an array (H, W), (H, W, 1), (H, W, 2) (gray
            + alpha), (H, W, 3) or (H, W, 4) (RGBA) of any numeric dtype.

    Returns:
        uint8 array (H, W, 3).

    Raises:
        ImageReadError: an array of another shape.

    Example:

    >>> to_rgb(np.array([[0, 65535]], "uint16"))[0].tolist()
    [[0, 0, 0], [255, 255, 255]]
    >>> to_rgb(np.array([[[0, 0, 0, 0]]], "uint8"))[0, 0].tolist()  # transparent: white
    [255, 255, 255]
    """
    if not isinstance(image, np.ndarray):
        mode = image.mode
        if mode in _WIDE_MODES:
            image = np.asarray(image)
        elif mode in _ALPHA_MODES or "transparency" in image.info:
            image = np.asarray(image.convert("RGBA"))
        else:
            return np.asarray(image.convert("RGB"))
    arr = _to_uint8(np.asarray(image))
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4):
        raise ImageReadError(f"an image array must be (H, W) or (H, W, 1 to 4 channels); got {arr.shape}")
    if arr.shape[-1] in (2, 4):  # the last channel is alpha: composite on white
        alpha = arr[..., -1:].astype("float64") / 255.0
        arr = (arr[..., :-1] * alpha + 255.0 * (1.0 - alpha)).round().astype("uint8")
    if arr.shape[-1] == 1:
        return np.repeat(arr, 3, axis=-1)
    return np.ascontiguousarray(arr)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """8-bit values of an array of any numeric dtype (see the module docstring)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype("uint8") * 255
    values = arr.astype("float64")
    top = float(values.max()) if values.size else 0.0
    if arr.dtype.kind == "f":
        scaled = values * 255.0 if top <= 1.0 else values
    elif arr.dtype == np.uint16 or 255 < top <= 65535:
        scaled = values / 257.0
    elif top > 65535:
        scaled = values * (255.0 / top)
    else:
        scaled = values
    return np.clip(np.rint(scaled), 0, 255).astype("uint8")


def read_image(source) -> np.ndarray:
    """An image as uint8 RGB (H, W, 3), upright.

    Args:
        source: a path, a PIL image, or an array (see `to_rgb`).

    Returns:
        uint8 array (H, W, 3): EXIF orientation applied (files and PIL
        images), converted with `to_rgb`.

    Raises:
        ImageReadError: missing file, not an image, broken or truncated data.

    Example:

    >>> read_image(np.zeros((4, 5), "uint8")).shape
    (4, 5, 3)
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(source, np.ndarray):
        return to_rgb(source)
    if isinstance(source, Image.Image):
        return to_rgb(ImageOps.exif_transpose(source))
    path = pathlib.Path(source)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            im.load()
            return to_rgb(ImageOps.exif_transpose(im))
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageReadError(f"{path}: broken image file ({reason})") from None


def image_files(folder) -> list[pathlib.Path]:
    """Image files under `folder` (recursive, by suffix), sorted by path.

    The order is the same on every machine, so that readers give rows in a
    stable order and a seeded split of a folder is reproducible.

    Args:
        folder: a folder.

    Returns:
        list of `pathlib.Path`.

    Example:

    >>> image_files("photos/")  # doctest: +SKIP
    [PosixPath('photos/a.jpg'), PosixPath('photos/trip/b.png')]
    """
    return sorted(
        pathlib.Path(dirpath, f)
        for dirpath, _, files in os.walk(folder)
        for f in files
        if f.lower().endswith(IMAGE_SUFFIXES)
    )


def list_images(paths) -> list[str]:
    """Image files of `paths` (files, or folders searched recursively), in order.

    Files named explicitly are kept whatever their suffix (so that a broken
    or non-image file is reported, not silently ignored); in folders, only
    files with an image suffix are taken (`image_files`).

    Args:
        paths: files and folders.

    Returns:
        list of str paths.

    Raises:
        FileNotFoundError: a path that does not exist.

    Example:

    >>> list_images(["photo.jpg", "photos/"])  # doctest: +SKIP
    ['photo.jpg', 'photos/a.jpg', 'photos/trip/b.png']
    """
    out = []
    for p in paths:
        p = pathlib.Path(p)
        if p.is_dir():
            out.extend(str(f) for f in image_files(p))
        elif p.exists():
            out.append(str(p))
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return out
