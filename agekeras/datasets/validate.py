"""Check every image of a file-backed dataset once, before training touches it.

`validate_dataset` opens each file with Pillow and fully decodes it
(`Image.open(p).load()`, truncation not tolerated):

* files that cannot be decoded are dropped and counted in `ds.skipped` under
  "missing file", "empty file", "not an image", "truncated image" or
  "corrupt image";
* decodable files that are not a plain 8-bit JPEG (L, RGB) or PNG (L, RGB,
  or RGBA without transparent pixels) -- CMYK JPEG, 16-bit or palette PNG,
  LA, transparent RGBA, GIF, TIFF, BMP, WebP, ... -- are converted once to
  an RGB PNG under `cache_dir()/converted/` with
  `agekeras.datasets.images.to_rgb` (transparency on white, 16-bit scaled
  to 8), and the row's path replaced. After validation every path is
  therefore something `tf.io.decode_image(channels=3)` and
  `tf.io.decode_jpeg`/`decode_png` decode to the pixels
  `agekeras.datasets.images.read_image` gives;
* each image's (height, width) is recorded; `image_sizes(ds)` returns them
  (e.g. to choose a JPEG decode `ratio` in the input pipeline).

Results are cached per file (key: absolute path, size, mtime) in
`cache_dir()/validate/<dataset>.json`, so a second load only `stat`s the
files. The cache root is `$AGEKERAS_CACHE`, default `~/.cache/agekeras`.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import os
import pathlib
import tempfile

import numpy as np
from PIL import Image, UnidentifiedImageError

from .base import AgeDataset, SkipReport
from .images import to_rgb

logger = logging.getLogger("agekeras.datasets")

CACHE_VERSION = 2
# Formats and modes TensorFlow decodes as Pillow + `to_rgb` do (an RGBA PNG
# only while no pixel is transparent: TensorFlow drops the alpha channel).
_TF_SAFE = {"JPEG": {"L", "RGB"}, "PNG": {"L", "RGB", "RGBA"}}

_sizes: dict[str, tuple[int, int]] = {}  # absolute path -> (height, width)


def write_json_atomic(path, obj, **dump_kwargs) -> None:
    """Writes `obj` as JSON to `path` through a private temporary file in the
    same folder and `os.replace`: a reader never sees half a file, and two
    processes saving at once do not overwrite each other's temporary file.
    `dump_kwargs` go to `json.dump` (e.g. `indent=2`, `default=`); if it
    fails, the old file stays and the temporary one is removed."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, **dump_kwargs)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def cache_dir() -> pathlib.Path:
    """Root of agekeras' caches: `$AGEKERAS_CACHE`, default `~/.cache/agekeras`."""
    return pathlib.Path(os.environ.get("AGEKERAS_CACHE", "~/.cache/agekeras")).expanduser()


def check_image(path: str, converted_dir: pathlib.Path) -> dict:
    """Decode one image and classify it.

    Args:
        path: the image file.
        converted_dir: where a converted RGB PNG is written when needed.

    Returns:
        A dict with "status" ("ok", "converted" or "bad"), "size" (height,
        width) when decodable, "path" (the converted file) or "reason".
    """
    try:
        if os.path.getsize(path) == 0:
            return {"status": "bad", "reason": "empty file"}
        with Image.open(path) as im:
            im.load()
            fmt, mode, (width, height) = im.format, im.mode, im.size
            if mode in _TF_SAFE.get(fmt, ()) and "transparency" not in im.info and _opaque(im):
                return {"status": "ok", "size": [height, width]}
            out = converted_dir / (hashlib.sha1(os.path.abspath(path).encode()).hexdigest() + ".png")
            Image.fromarray(to_rgb(im)).save(out)
            return {"status": "converted", "size": [height, width], "path": str(out), "from": f"{fmt} {mode}"}
    except FileNotFoundError:
        return {"status": "bad", "reason": "missing file"}
    except UnidentifiedImageError:
        return {"status": "bad", "reason": "not an image"}
    except OSError as e:
        reason = "truncated image" if "truncat" in str(e).lower() else "corrupt image"
        return {"status": "bad", "reason": reason}
    except Exception:  # noqa: BLE001 - any decoder failure means the file is unusable
        return {"status": "bad", "reason": "corrupt image"}


def _opaque(im: Image.Image) -> bool:
    """No transparent pixel (always true without an alpha channel)."""
    return im.mode != "RGBA" or im.getchannel("A").getextrema()[0] == 255


def _stat_key(path: str) -> list | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


class _Cache:
    """JSON file of per-image results, keyed by absolute path."""

    def __init__(self, name: str):
        self.file = cache_dir() / "validate" / f"{name}.json"
        self.entries = {}
        self.dirty = False
        try:
            data = json.loads(self.file.read_text())
            if data.get("version") == CACHE_VERSION:
                self.entries = data["entries"]
        except (OSError, ValueError, KeyError):
            pass

    def get(self, path: str, key: list) -> dict | None:
        entry = self.entries.get(path)
        if entry is None or entry["key"] != key:
            return None
        if entry["status"] == "converted" and not os.path.isfile(entry["path"]):
            return None
        return entry

    def put(self, path: str, key: list, result: dict) -> None:
        self.entries[path] = {"key": key, **result}
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        write_json_atomic(self.file, {"version": CACHE_VERSION, "entries": self.entries})


def validate_dataset(ds: AgeDataset, *, workers: int = 2, use_cache: bool = True) -> AgeDataset:
    """Drop undecodable images, convert odd ones, record sizes (see module doc).

    Bad rows are added to `ds.skipped` (the caller warns once with
    `ds.skipped.warn`); conversions are reported in one INFO message.
    In-memory datasets are returned unchanged.

    Args:
        ds: a dataset from a reader.
        workers: threads for the first, uncached pass.
        use_cache: read and update the on-disk cache.

    Returns:
        The dataset without bad rows (`official` indices remapped), with
        converted rows pointing at their RGB PNG.
    """
    if ds.in_memory:
        return ds
    cache = _Cache(ds.name) if use_cache else None
    converted_dir = cache_dir() / "converted"
    paths = [os.path.abspath(p) for p in ds.paths]
    keys = [_stat_key(p) for p in paths]
    results = [cache.get(p, k) if cache and k else None for p, k in zip(paths, keys, strict=True)]
    todo = [i for i, r in enumerate(results) if r is None]
    if todo:
        converted_dir.mkdir(parents=True, exist_ok=True)
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            for i, result in zip(
                todo, pool.map(lambda i: check_image(paths[i], converted_dir), todo), strict=True
            ):
                results[i] = result
                if cache and keys[i]:
                    cache.put(paths[i], keys[i], result)
        if cache:
            cache.save()

    keep, new_paths, conversions = [], [], SkipReport()
    for i, r in enumerate(results):
        if r["status"] == "bad":
            ds.skipped.add(r["reason"], ds.paths[i])
            continue
        keep.append(i)
        path = r["path"] if r["status"] == "converted" else ds.paths[i]
        if r["status"] == "converted":
            conversions.add(r["from"], ds.paths[i])
        new_paths.append(path)
        _sizes[os.path.abspath(path)] = tuple(r["size"])
    if conversions.total:
        kinds = "; ".join(
            f"{n} {kind} (e.g. {', '.join(conversions.examples[kind])})"
            for kind, n in sorted(conversions.counts.items())
        )
        logger.info(
            "%s: converted %d images to RGB PNG in %s: %s", ds.name, conversions.total, converted_dir, kinds
        )
    if len(keep) == len(ds) and not conversions.total:
        return ds
    out = take(ds, keep)
    out.paths = np.asarray(new_paths, dtype=str)
    return out


def take(ds: AgeDataset, indices) -> AgeDataset:
    """Rows `indices` (sorted) of `ds`, keeping `official` splits remapped.

    Args:
        ds: a dataset.
        indices: increasing row indices to keep.

    Returns:
        The subset, with name, group names, skip report and official splits.
    """
    indices = np.asarray(indices, dtype="int64")
    out = ds.subset(indices)
    new_index = np.full(len(ds), -1, dtype="int64")
    new_index[indices] = np.arange(len(indices))
    out.official = {k: new_index[v][new_index[v] >= 0] for k, v in ds.official.items()}
    return out


def image_sizes(ds: AgeDataset) -> np.ndarray:
    """(height, width) of every image of `ds`.

    Sizes recorded by `validate_dataset` are free; others are read from the
    file header (no decode). Works on any subset or split of a dataset.

    Args:
        ds: a dataset (file-backed or in memory).

    Returns:
        int32 array (n, 2) of (height, width).
    """
    if ds.in_memory:
        return np.tile(np.asarray(ds.images.shape[1:3], dtype="int32"), (len(ds), 1))
    out = np.empty((len(ds), 2), dtype="int32")
    for i, p in enumerate(ds.paths):
        key = os.path.abspath(p)
        size = _sizes.get(key)
        if size is None:
            with Image.open(p) as im:
                size = (im.height, im.width)
            _sizes[key] = size
        out[i] = size
    return out
