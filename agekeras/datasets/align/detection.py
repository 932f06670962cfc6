"""Face detection: the MTCNN detector, its raw rows, the faces chosen from them, a cache per file.

**Detector.** The `mtcnn` package (1.0; its wheel ships the P-, R- and O-Net
weights, so it runs offline on TensorFlow), imported only when a detector is
made (`make_detector`). It gives per face a box, a confidence and the five
landmarks of `agekeras.face_template` as pixel coordinates with pixel
centres at integers.

**Three entry points**, by what goes in and what comes out:

- `detect_faces(images)`: in-memory images -> the chosen faces of each
  (`Detections`: above `min_confidence`, largest first, tiny ones counted).
- `detect_rows(images)`: in-memory images -> the detector's raw rows (keep
  them, e.g. in a `DetectionCache`, and choose faces later with
  `select_faces`, whose thresholds may change).
- `detect_file_rows(paths)`: image files -> raw rows, read from and written
  to a `DetectionCache` (one JSON file per folder under
  `cache_dir()/detections/`, keyed by path, size and modification time), so a
  second pass over a dataset skips the detector.

Faces below `min_face` pixels are skipped and counted (`Detections.tiny`); an
image without a face gives an empty `faces` list.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import time

import numpy as np

from ..images import ImageReadError, read_image
from ..validate import cache_dir, write_json_atomic


@dataclasses.dataclass
class Face:
    """One detected face: `box` (x1, y1, x2, y2) pixels, `confidence`,
    `landmarks` float64 (5, 2) pixel (x, y).

    Example:

    >>> Face(np.array([0, 0, 40, 30]), 0.99, np.zeros((5, 2))).size
    30.0
    """

    box: np.ndarray
    confidence: float
    landmarks: np.ndarray

    @property
    def size(self):
        """The shorter side of the box, in pixels."""
        return float(min(self.box[2] - self.box[0], self.box[3] - self.box[1]))


@dataclasses.dataclass
class Detections:
    """The faces of one image, largest first, and how many were too small."""

    faces: list
    tiny: int = 0


def make_detector():
    """An `mtcnn.MTCNN` face + landmark detector on the CPU (offline weights).

    Example:

    >>> detector = make_detector()  # doctest: +SKIP
    >>> detect_faces([read_image("photo.jpg")], detector)  # doctest: +SKIP
    """
    try:
        from mtcnn import MTCNN
    except ModuleNotFoundError as e:
        if e.name != "mtcnn":
            raise
        raise ModuleNotFoundError('face detection needs the mtcnn package: pip install "agekeras[align]"') from None
    return MTCNN(stages="face_and_landmarks_detection", device="CPU:0")


def detect_rows(images, detector=None, *, batch_size=16, max_side=1024):
    """The detector's raw rows for every image, in the images' own pixels.

    Args:
        images: list of uint8 RGB arrays (H, W, 3), sizes may differ.
        detector: an `mtcnn.MTCNN` (default: `make_detector()`), or any
            object with the same `detect_faces(list, box_format="xyxy",
            output_type="numpy")` returning rows `[image index, x1, y1, x2,
            y2, confidence, 5 x, 5 y]`.
        batch_size: images per detector call (only same-size images are
            batched together, to avoid padding).
        max_side: larger images are shrunk to this side for the detector
            (coordinates are mapped back); None: never.

    Returns:
        list of float64 arrays (m_i, 15): x1, y1, x2, y2, confidence, 5 x, 5 y.

    Example:

    >>> rows = detect_rows([read_image("photo.jpg")])[0]  # doctest: +SKIP
    >>> select_faces(rows, min_confidence=0.95).faces      # doctest: +SKIP
    """
    detector = detector or make_detector()
    scaled, scales = [], []
    for im in images:
        s = 1.0
        if max_side and max(im.shape[:2]) > max_side:
            from PIL import Image

            s = max_side / max(im.shape[:2])
            size = (max(1, round(im.shape[1] * s)), max(1, round(im.shape[0] * s)))
            im = np.asarray(Image.fromarray(im).resize(size, Image.BILINEAR, reducing_gap=2.0))
            s = im.shape[1] / images[len(scaled)].shape[1]
        scaled.append(im)
        scales.append(s)
    out = [np.empty((0, 15)) for _ in images]
    by_shape = {}
    for i, im in enumerate(scaled):
        by_shape.setdefault(tuple(np.shape(im)), []).append(i)
    for indices in by_shape.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            rows = _detect_batch(detector, [scaled[i] for i in chunk])
            for j, i in enumerate(chunk):
                r = rows[rows[:, 0] == j][:, 1:].copy()
                if scales[i] != 1.0:
                    r[:, :4] = (r[:, :4] + 0.5) / scales[i] - 0.5
                    r[:, 5:] = (r[:, 5:] + 0.5) / scales[i] - 0.5
                out[i] = r
    return out


def _detect_batch(detector, images):
    try:
        rows = detector.detect_faces(list(images), box_format="xyxy", output_type="numpy")
    except Exception:  # noqa: BLE001 -- mtcnn 1.0 can fail on a batch without faces; retry one by one
        if len(images) == 1:
            return np.empty((0, 16))
        parts = []
        for j, im in enumerate(images):
            r = _detect_batch(detector, [im])
            if len(r):
                r = np.array(r, dtype="float64")
                r[:, 0] = j
                parts.append(r)
        return np.concatenate(parts) if parts else np.empty((0, 16))
    rows = np.asarray(rows, dtype="float64").reshape(-1, 16) if np.size(rows) else np.empty((0, 16))
    return rows


def select_faces(rows, min_confidence=0.9, min_face=0):
    """`Detections` from raw rows (see `detect_rows`): faces at or above
    `min_confidence`, largest box first; those whose box's shorter side is
    below `min_face` pixels are dropped and counted in `tiny`.

    Example:

    >>> row = [0, 0, 50, 50, 0.99, *range(5), *range(5)]
    >>> found = select_faces([row], min_face=60)
    >>> found.faces, found.tiny
    ([], 1)
    """
    rows = np.asarray(rows, dtype="float64").reshape(-1, 15)
    rows = rows[rows[:, 4] >= min_confidence]
    area = (rows[:, 2] - rows[:, 0]) * (rows[:, 3] - rows[:, 1])
    faces, tiny = [], 0
    for r in rows[np.argsort(-area, kind="stable")]:
        face = Face(r[:4].copy(), float(r[4]), np.stack([r[5:10], r[10:15]], axis=-1))
        if face.size < min_face:
            tiny += 1
        else:
            faces.append(face)
    return Detections(faces, tiny)


def detect_faces(images, detector=None, *, min_confidence=0.9, min_face=20, batch_size=16, max_side=1024):
    """Every face of every image.

    Args:
        images: list of uint8 RGB arrays (H, W, 3) (see `read_image`).
        detector, batch_size, max_side: see `detect_rows`.
        min_confidence: detections below it are ignored.
        min_face: faces whose box is smaller (shorter side, pixels) are
            skipped and counted as `tiny`.

    Returns:
        list (one per image) of `Detections`, faces largest first.

    Example:

    >>> found = detect_faces([read_image("photo.jpg")])[0]  # doctest: +SKIP
    >>> [f.box for f in found.faces], found.tiny            # doctest: +SKIP
    """
    raw = detect_rows(images, detector, batch_size=batch_size, max_side=max_side)
    return [select_faces(r, min_confidence, min_face) for r in raw]


class DetectionCache:
    """Raw detector rows of image files, kept in one JSON file per folder.

    A file's entry is reused while its size and modification time are
    unchanged. `get` returns None for unknown or changed files.

    Args:
        root: the cache folder (default `cache_dir()/"detections"`).

    Example:

    >>> cache = DetectionCache()                        # doctest: +SKIP
    >>> cache.put("a.jpg", rows); cache.save()          # doctest: +SKIP
    >>> DetectionCache().get("a.jpg")                   # doctest: +SKIP
    """

    def __init__(self, root=None):
        self.root = pathlib.Path(root) if root is not None else cache_dir() / "detections"
        self._tables, self._dirty = {}, set()

    def _file(self, folder):
        digest = hashlib.sha1(str(folder).encode()).hexdigest()[:10]
        return self.root / f"{folder.name or 'root'}-{digest}.json"

    def _table(self, folder):
        if folder not in self._tables:
            f = self._file(folder)
            try:
                self._tables[folder] = json.loads(f.read_text()) if f.exists() else {}
            except (OSError, ValueError):
                self._tables[folder] = {}
        return self._tables[folder]

    @staticmethod
    def _stamp(path):
        st = os.stat(path)
        return [st.st_size, st.st_mtime_ns]

    def get(self, path):
        """The (m, 15) rows of `path`, or None when unknown or changed since."""
        path = pathlib.Path(path).resolve()
        entry = self._table(path.parent).get(path.name)
        try:
            if entry is None or entry["stamp"] != self._stamp(path):
                return None
        except OSError:
            return None
        return np.asarray(entry["rows"], dtype="float64").reshape(-1, 15)

    def put(self, path, rows):
        """Remember the rows of `path` (kept in memory until `save`)."""
        path = pathlib.Path(path).resolve()
        self._table(path.parent)[path.name] = {"stamp": self._stamp(path), "rows": np.round(rows, 3).tolist()}
        self._dirty.add(path.parent)

    def save(self):
        """Write the folders whose entries changed."""
        for folder in self._dirty:
            write_json_atomic(self._file(folder), self._tables[folder])
        self._dirty.clear()


def detect_file_rows(paths, detector=None, *, cache=True, batch_size=16, chunk=64, progress=None):
    """Raw detector rows of image files, read from / written to the cache.

    Args:
        paths: image files.
        detector: see `detect_rows`; made only when some file is not cached.
        cache: True (the default `DetectionCache`), a `DetectionCache`, or
            False.
        batch_size: see `detect_rows`.
        chunk: files read and detected per step (bounds the memory).
        progress: optional callable `progress(done)` after each step.

    Returns:
        (rows, errors, seconds): a list with a (m, 15) array per file (None
        for files that could not be read), a dict path -> one-line error,
        and the seconds spent reading + detecting uncached files.

    Example:

    >>> rows, errors, seconds = detect_file_rows(["a.jpg", "b.png"])  # doctest: +SKIP
    >>> select_faces(rows[0]).faces                                   # doctest: +SKIP
    """
    store = DetectionCache() if cache is True else (cache or None)
    rows, errors, seconds = [None] * len(paths), {}, 0.0
    todo = []
    for i, p in enumerate(paths):
        got = store.get(p) if store is not None else None
        if got is None:
            todo.append(i)
        else:
            rows[i] = got
    if progress:
        progress(len(paths) - len(todo))
    for s in range(0, len(todo), chunk):
        idx = todo[s:s + chunk]
        start = time.perf_counter()
        images, ok = [], []
        for i in idx:
            try:
                images.append(read_image(paths[i]))
                ok.append(i)
            except ImageReadError as e:
                errors[paths[i]] = str(e)
        if images:
            detector = detector or make_detector()
            for i, r in zip(ok, detect_rows(images, detector, batch_size=batch_size)):
                rows[i] = r
                if store is not None:
                    store.put(paths[i], r)
        seconds += time.perf_counter() - start
        if store is not None:
            store.save()
        if progress:
            progress(len(paths) - len(todo) + s + len(idx))
    return rows, errors, seconds
