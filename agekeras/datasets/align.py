"""Face detection (MTCNN) and alignment to the framing a model was trained on.

```python
from agekeras.datasets import align

image = align.read_image("photo.jpg")                  # uint8 RGB, EXIF-rotated
found = align.detect_faces([image])[0]                 # every face of the photo
crop, points = align.align_face(image, found.faces[0].landmarks, "utkface")
crop.shape                                             # (200, 200, 3), UTKFace framing
```

**Detector.** The `mtcnn` package (1.0; its wheel ships the P-, R- and O-Net
weights, so it runs offline on TensorFlow), imported only when a detector is
made. It gives per face a box, a confidence and five landmarks: left eye,
right eye, nose tip, left and right mouth corner ("left" = image left), as
pixel coordinates with pixel centres at integers.

**Alignment.** A similarity transform (rotation, uniform scale, shift; least
squares, no reflection: Umeyama's method) sends the landmarks onto a
*template*, the positions they take in the training crops; PIL's
`Image.transform(AFFINE)` then resamples the photo (after a box-filter
reduction when the face is shrunk more than 2x, so small crops do not alias).
One template per training convention, in `TEMPLATES`:

- `"utkface"`: the framing of UTKFace's "aligned & cropped" 200 x 200 faces,
  all five points; fitted as the mean MTCNN landmarks of the utkface-dev
  crops (`fit_template`; MTCNN finds 7,564 of its 7,811 faces); a
  similarity fit of one face's points to it leaves 4.6 px of mean residual
  per point at 200 px (median 4.4 px; the faces' own shape
  and pose differences, plus the detector's noise): the precision to which
  a photo can be framed like a UTKFace crop from five MTCNN points.
- `"dhaa"`: DHAA's pre-processing (Tan et al., 2018, as cited by the DHAA
  paper): the eye centres and the upper lip (midpoint of the mouth corners)
  at fixed positions, 256 x 256 px; the same canonical face as
  `agekeras.layers.aligned_region_pooling.CANONICAL`.

**Bad input.** `read_image` converts grayscale, palette, CMYK and 16-bit
images to RGB, puts transparent images on white and applies the EXIF
orientation; an unreadable file raises `ImageReadError` (a `ValueError`) with
a one-line reason. Faces below `min_face` pixels are skipped and counted
(`Detections.tiny`); an image without a face gives an empty `faces` list.

**Cache.** `detect_files` keeps the raw detections of every file in a JSON
file per folder under `cache_dir()/detections/` (keyed by path, size and
modification time), so a second pass over a dataset skips the detector.
`write_landmarks_csv` / `ensure_landmarks_csv` write a dataset's main-face
landmarks as a CSV readable by `agekeras.datasets.load("csv", ...)`
(the command line is `python -m data_prep.align_faces`).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import time

import numpy as np

from agekeras.datasets.validate import cache_dir, write_json_atomic

logger = logging.getLogger("agekeras.datasets.align")

HEADER = ["path", "age", "gender", "race", "subject"] + [f"{a}{k}" for k in range(5) for a in ("lx", "ly")] + ["source"]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclasses.dataclass(frozen=True)
class Template:
    """Where the landmarks sit in a training crop.

    Args:
        name: the convention's name.
        points: float64 (k, 2) relative (x, y) positions in [0, 1] of the
            crop (continuous coordinates: 0 and 1 are the crop's outer edges).
        size: side in pixels of the training crops.
        use: "five" (all five landmarks) or "eyes_lip" (eye centres and the
            midpoint of the mouth corners).
    """

    name: str
    points: np.ndarray
    size: int
    use: str = "five"

    def source_points(self, landmarks):
        """The (k, 2) points of `landmarks` (5, 2) that this template places."""
        landmarks = np.asarray(landmarks, dtype="float64")
        if self.use == "eyes_lip":
            return np.stack([landmarks[0], landmarks[1], landmarks[3:5].mean(0)])
        return landmarks

    def landmarks(self, size=None):
        """Pixel landmarks (5, 2) of a face lying exactly on the template in a
        `size` crop (pixel centres at integers); for "eyes_lip" the nose and
        mouth corners come from the "utkface" template, moved along."""
        size = self.size if size is None else size
        if self.use == "five":
            return self.points * size - 0.5
        ref = TEMPLATES["utkface"]
        m = similarity_transform(ref.points[[0, 1]].tolist() + [ref.points[3:5].mean(0)], self.points)
        return apply_transform(m, ref.points) * size - 0.5


TEMPLATES = {
    # Mean MTCNN landmarks of utkface-dev's aligned 200 x 200 crops
    # (`fit_template`; `python -m data_prep.align_faces utkface --data-dir
    # ... --fit-template 200` refits it).
    "utkface": Template(
        "utkface",
        np.array([[0.2992, 0.2948], [0.6886, 0.2956], [0.4906, 0.5194], [0.3160, 0.6862], [0.6694, 0.6872]]),
        200,
    ),
    # DHAA: eye centres and upper lip; `CANONICAL` of aligned_region_pooling
    # in relative coordinates ((c + 1) / 2), the face filling a 256 px crop.
    "dhaa": Template("dhaa", np.array([[0.305, 0.30], [0.695, 0.30], [0.5, 0.68]]), 256, use="eyes_lip"),
}


def get_template(name):
    """The `Template` called `name` (a `Template` passes through).

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    if isinstance(name, Template):
        return name
    if name not in TEMPLATES:
        raise ValueError(f"Unknown alignment {name!r}; choose from {sorted(TEMPLATES)} or None.")
    return TEMPLATES[name]


# ----- images ---------------------------------------------------------------------


class ImageReadError(ValueError):
    """A file that is not a readable image (the message is one line)."""


def read_image(source):
    """An image as uint8 RGB (H, W, 3), upright.

    Args:
        source: a path, a PIL image, or an array (H, W), (H, W, 1), (H, W, 3)
            or (H, W, 4) (uint8, or floats in [0, 1]).

    Returns:
        uint8 array (H, W, 3): EXIF orientation applied, grayscale / palette /
        CMYK / 16-bit converted, transparency composited on white.

    Raises:
        ImageReadError: missing file, not an image, broken or truncated data.

    Example:

    >>> read_image(np.zeros((4, 5), "uint8")).shape
    (4, 5, 3)
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(source, np.ndarray):
        return _array_to_rgb(source)
    if isinstance(source, Image.Image):
        return _pil_to_rgb(ImageOps.exif_transpose(source))
    path = pathlib.Path(source)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            im.load()
            return _pil_to_rgb(ImageOps.exif_transpose(im))
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageReadError(f"{path}: broken image file ({reason})") from None


def _pil_to_rgb(im):
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype="float64")
        top = 65535.0 if arr.max() > 255 else 255.0
        return _array_to_rgb((arr / top * 255).round().astype("uint8"))
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return np.asarray(white)
    return np.asarray(im.convert("RGB"))


def _array_to_rgb(arr):
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        arr = np.clip(np.asarray(arr, "float64") * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).round().astype("uint8")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise ImageReadError(f"an image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {arr.shape}")
    if arr.shape[-1] == 1:
        return np.repeat(arr, 3, axis=-1)
    if arr.shape[-1] == 4:
        alpha = arr[..., 3:].astype("float64") / 255.0
        return (arr[..., :3] * alpha + 255.0 * (1 - alpha)).round().astype("uint8")
    return np.ascontiguousarray(arr)


def list_images(paths):
    """Image files of `paths` (files, or folders searched recursively), in order.

    Files named explicitly are kept whatever their extension (so that a
    broken or non-image file is reported, not silently ignored); in folders,
    only files with an image extension (`IMAGE_EXTENSIONS`) are taken.

    Raises:
        FileNotFoundError: a path that does not exist.
    """
    out = []
    for p in paths:
        p = pathlib.Path(p)
        if p.is_dir():
            out.extend(sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS))
        elif p.exists():
            out.append(str(p))
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return out


# ----- detection ------------------------------------------------------------------


@dataclasses.dataclass
class Face:
    """One detected face: `box` (x1, y1, x2, y2) pixels, `confidence`,
    `landmarks` float64 (5, 2) pixel (x, y)."""

    box: np.ndarray
    confidence: float
    landmarks: np.ndarray

    @property
    def size(self):
        return float(min(self.box[2] - self.box[0], self.box[3] - self.box[1]))


@dataclasses.dataclass
class Detections:
    """The faces of one image, largest first, and how many were too small."""

    faces: list
    tiny: int = 0


def make_detector():
    """An `mtcnn.MTCNN` face + landmark detector on the CPU (offline weights)."""
    from mtcnn import MTCNN

    return MTCNN(stages="face_and_landmarks_detection", device="CPU:0")


def detect_raw(images, detector=None, batch_size=16, max_side=1024):
    """The detector's rows for every image, in the images' own pixels.

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
    """`Detections` from raw rows (see `detect_raw`): faces at or above
    `min_confidence`, largest box first; those whose box's shorter side is
    below `min_face` pixels are dropped and counted in `tiny`."""
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
        detector, batch_size, max_side: see `detect_raw`.
        min_confidence: detections below it are ignored.
        min_face: faces whose box is smaller (shorter side, pixels) are
            skipped and counted as `tiny`.

    Returns:
        list (one per image) of `Detections`, faces largest first.

    Example:

    >>> found = detect_faces([read_image("photo.jpg")])[0]  # doctest: +SKIP
    >>> [f.box for f in found.faces], found.tiny            # doctest: +SKIP
    """
    raw = detect_raw(images, detector, batch_size=batch_size, max_side=max_side)
    return [select_faces(r, min_confidence, min_face) for r in raw]


def detect(images, detector=None, batch_size=16, min_confidence=0.9):
    """Five landmarks of the main (largest) face of every image.

    Args:
        images: list of uint8 RGB arrays (H, W, 3), sizes may differ.
        detector, batch_size: see `detect_raw`.
        min_confidence: detections below it are ignored.

    Returns:
        (landmarks, confidence): float32 (n, 5, 2) pixel (x, y), NaN where no
        face was found, and float32 (n,) confidence (0 where none).
    """
    n = len(images)
    landmarks = np.full((n, 5, 2), np.nan, dtype="float32")
    confidence = np.zeros(n, dtype="float32")
    for i, found in enumerate(detect_faces(images, detector, min_confidence=min_confidence, min_face=0,
                                           batch_size=batch_size, max_side=None)):  # fmt: skip
        if found.faces:
            landmarks[i] = found.faces[0].landmarks
            confidence[i] = found.faces[0].confidence
    return landmarks, confidence


class DetectionCache:
    """Raw detector rows of image files, kept in one JSON file per folder.

    A file's entry is reused while its size and modification time are
    unchanged. `get` returns None for unknown or changed files.

    Args:
        root: the cache folder (default `cache_dir()/"detections"`).
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
        path = pathlib.Path(path).resolve()
        entry = self._table(path.parent).get(path.name)
        try:
            if entry is None or entry["stamp"] != self._stamp(path):
                return None
        except OSError:
            return None
        return np.asarray(entry["rows"], dtype="float64").reshape(-1, 15)

    def put(self, path, rows):
        path = pathlib.Path(path).resolve()
        self._table(path.parent)[path.name] = {"stamp": self._stamp(path), "rows": np.round(rows, 3).tolist()}
        self._dirty.add(path.parent)

    def save(self):
        for folder in self._dirty:
            write_json_atomic(self._file(folder), self._tables[folder])
        self._dirty.clear()


# ----- alignment ------------------------------------------------------------------


def similarity_transform(src, dst):
    """2 x 3 similarity (rotation, uniform scale, shift) sending the points
    `src` (k, 2) onto `dst` (k, 2) by least squares (Umeyama, no reflection).

    Example:

    >>> m = similarity_transform([[0, 0], [1, 0]], [[1, 1], [1, 3]])
    >>> np.round(apply_transform(m, [[0.5, 0]]), 6).tolist()
    [[1.0, 2.0]]
    """
    src, dst = np.asarray(src, dtype="float64"), np.asarray(dst, dtype="float64")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, s, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rot = u @ d @ vt
    scale = np.trace(np.diag(s) @ d) / max(a.var(0).sum(), 1e-12)
    shift = mu_d - scale * rot @ mu_s
    return np.c_[scale * rot, shift]


def apply_transform(matrix, points):
    """Points (..., 2) moved by a 2 x 3 affine `matrix`."""
    points = np.asarray(points, dtype="float64")
    return points @ np.asarray(matrix)[:, :2].T + np.asarray(matrix)[:, 2]


def similarity_to_template(points, size, template="dhaa"):
    """2 x 3 similarity sending the template's points of `points` (5, 2,
    continuous coordinates) onto `template.points * size`."""
    t = get_template(template)
    return similarity_transform(t.source_points(points), t.points * size)


def warp(image, matrix, size):
    """Resample `image` (uint8 (H, W, 3)) by the 2 x 3 `matrix` (continuous
    coordinates, source -> output) into a `size` x `size` crop (bilinear;
    a box-filter reduction first when the matrix shrinks more than 2x).
    Outside the image: black, as in UTKFace's crops."""
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(image))
    matrix = np.asarray(matrix, dtype="float64")
    scale = np.sqrt(abs(np.linalg.det(matrix[:, :2])))
    factor = int(1.0 / scale) if scale < 0.5 else 1
    if factor > 1:
        im = im.reduce(factor)
        matrix = matrix.copy()
        matrix[:, :2] *= factor  # a reduced pixel spans `factor` source pixels
    inv = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    out = im.transform((size, size), Image.AFFINE, inv.reshape(-1).tolist(), Image.BILINEAR)
    return np.asarray(out)


def align_face(image, landmarks, template="utkface", size=None):
    """The face with `landmarks` cut out of `image` the way `template` frames it.

    Args:
        image: uint8 (H, W, 3).
        landmarks: (5, 2) pixel (x, y), pixel centres at integers.
        template: a name of `TEMPLATES` or a `Template`.
        size: crop side in pixels (default: the template's own size).

    Returns:
        (crop, points): uint8 (size, size, 3) and float32 (5, 2) the
        landmarks moved into the crop (pixel coordinates).

    Example:

    >>> t = TEMPLATES["utkface"]
    >>> crop, pts = align_face(np.zeros((300, 300, 3), "uint8"), t.landmarks(300), "utkface")
    >>> crop.shape, bool(np.allclose(pts, t.landmarks(), atol=1e-6))
    ((200, 200, 3), True)
    """
    t = get_template(template)
    size = int(size or t.size)
    pts = np.asarray(landmarks, dtype="float64") + 0.5
    m = similarity_transform(t.source_points(pts), t.points * size)
    crop = warp(image, m, size)
    return crop, (apply_transform(m, pts) - 0.5).astype("float32")


def centre_crop(image, size):
    """The centred square of `image`, resized to `size` (the input pipeline's
    framing of an image without alignment).

    Returns:
        uint8 (size, size, 3).
    """
    from PIL import Image

    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    im = Image.fromarray(np.ascontiguousarray(image[top:top + side, left:left + side]))
    return np.asarray(im.resize((size, size), Image.BILINEAR, reducing_gap=2.0))


def fit_template(landmarks, size):
    """A template fitted to the landmarks of already aligned crops.

    The template is the mean position of each landmark (the crops define the
    framing); the residual of a face is the mean distance, over its five
    points, between the template and its points after their own
    least-squares similarity fit to the template -- what is left when
    aligning that face.

    Args:
        landmarks: (n, 5, 2) pixel landmarks of `size` x `size` crops (NaN
            rows are ignored).
        size: the crops' side in pixels.

    Returns:
        (points, residual): float64 (5, 2) relative positions and float64
        (m,) per-face mean residuals in pixels (m faces with landmarks).

    Example:

    >>> pts = np.stack([TEMPLATES["utkface"].landmarks()] * 3)
    >>> points, residual = fit_template(pts, 200)
    >>> bool(np.allclose(points, TEMPLATES["utkface"].points)), float(residual.max()) < 1e-6
    (True, True)
    """
    landmarks = np.asarray(landmarks, dtype="float64")
    landmarks = landmarks[np.all(np.isfinite(landmarks), axis=(1, 2))]
    rel = (landmarks + 0.5) / size
    points = rel.mean(0)
    residual = np.empty(len(rel))
    for i, r in enumerate(rel):
        m = similarity_transform(r, points)
        residual[i] = np.linalg.norm(apply_transform(m, r) - points, axis=-1).mean() * size
    return points, residual


# ----- files ------------------------------------------------------------------------


def detect_files(paths, detector=None, *, cache=True, batch_size=16, chunk=64, progress=None):
    """Raw detections of image files, read from / written to the cache.

    Args:
        paths: image files.
        detector: see `detect_raw`; made only when some file is not cached.
        cache: True (the default `DetectionCache`), a `DetectionCache`, or
            False.
        batch_size: see `detect_raw`.
        chunk: files read and detected per step (bounds the memory).
        progress: optional callable `progress(done)` after each step.

    Returns:
        (rows, errors, seconds): a list with a (m, 15) array per file (None
        for files that could not be read), a dict path -> one-line error,
        and the seconds spent reading + detecting uncached files.
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
            for i, r in zip(ok, detect_raw(images, detector, batch_size=batch_size)):
                rows[i] = r
                if store is not None:
                    store.put(paths[i], r)
        seconds += time.perf_counter() - start
        if store is not None:
            store.save()
        if progress:
            progress(len(paths) - len(todo) + s + len(idx))
    return rows, errors, seconds


def aligned_dataset(ds, align, *, size=None, detector=None, cache=True, min_confidence=0.9, log=None):
    """`ds` (file-backed) as an in-memory dataset of aligned face crops.

    The main (largest) face of each photo is aligned with `align`; photos
    where no face is found get the centre crop of the whole photo (the
    framing of the input pipeline) and are counted.

    Args:
        ds: a file-backed `AgeDataset`.
        align: a template name of `TEMPLATES`.
        size: crop side (default: the template's).
        detector, cache: see `detect_files`.
        min_confidence: see `detect_faces`.
        log: optional printer.

    Returns:
        (aligned, report): an `AgeDataset` with `images` uint8 (n', size,
        size, 3) and the moved landmarks (unreadable files dropped), and a
        dict with `align`, `faces_missed`, `missed` (paths), `unreadable`
        and `detection_seconds`.
    """
    from agekeras.datasets.base import AgeDataset

    t = get_template(align)
    size = int(size or t.size)
    if ds.paths is None:
        raise ValueError("aligned_dataset needs a file-backed dataset (ds.paths).")
    rows, errors, seconds = detect_files(list(ds.paths), detector, cache=cache)
    keep, images, points, missed = [], [], [], []
    fallback = t.landmarks(size)  # centre crops: assume the canonical face
    for i, p in enumerate(ds.paths):
        if rows[i] is None:
            continue
        try:
            image = read_image(p)
        except ImageReadError as e:
            errors[p] = str(e)
            continue
        found = select_faces(rows[i], min_confidence)
        if found.faces:
            crop, pts = align_face(image, found.faces[0].landmarks, t, size)
        else:
            crop, pts = centre_crop(image, size), fallback.astype("float32")
            missed.append(str(p))
        keep.append(i)
        images.append(crop)
        points.append(pts)
    if not keep:
        raise ValueError(f"no readable image in {ds.name} ({len(ds)} rows)")
    sub = ds.subset(np.asarray(keep))
    out = AgeDataset(
        name=f"{ds.name}-{t.name}", age=sub.age, images=np.stack(images), gender=sub.gender, race=sub.race,
        subject=sub.subject, age_std=sub.age_std, group=sub.group, landmarks=np.stack(points),
    )  # fmt: skip
    report = {"align": t.name, "faces_missed": len(missed), "missed": missed, "unreadable": len(errors),
              "detection_seconds": round(seconds, 2)}  # fmt: skip
    if log:
        log(f"{ds.name}: aligned {len(keep) - len(missed)} faces ({t.name}), {len(missed)} without a face found "
            f"(centre crop), {len(errors)} unreadable")  # fmt: skip
    return out, report


def landmarks_csv_path(name, data_dir):
    """The default cache path of a dataset's landmarks CSV."""
    return cache_dir() / "landmarks" / f"{name}-{pathlib.Path(data_dir).expanduser().resolve().name}.csv"


def _image_size(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.size[1], im.size[0]


def _fill_value(landmarks, sizes):
    """Median landmarks of the faces with landmarks, relative to the image size."""
    ok = np.all(np.isfinite(landmarks), axis=(1, 2))
    if not ok.any():
        return None
    rel = (landmarks[ok] + 0.5) / sizes[ok][:, None, ::-1]  # (x / W, y / H)
    return np.median(rel, axis=0)


def write_landmarks_csv(ds, out_csv, *, detector=None, missing="fill", keep_existing=True, batch_size=16,
                        min_confidence=0.9, log=print):  # fmt: skip
    """Detect the landmarks of every face of `ds` and write the CSV files.

    For every face of the dataset (in the reader's order) the CSV gets one
    row `path,age,gender,race,subject,lx0,ly0,...,lx4,ly4,source` with
    absolute image paths, pixel landmarks and `source` saying where the
    points come from: "dataset" (the reader's own landmarks, kept unless
    `keep_existing=False`), "mtcnn", "filled" or "none". When an image holds
    several faces, the largest box above `min_confidence` wins.

    Args:
        ds: a file-backed `AgeDataset` (`ds.paths`).
        out_csv: the CSV to write; the list of faces not found goes to
            `<stem>.not_found.csv` beside it.
        detector: see `detect_raw`.
        missing: what the row of a face MTCNN does not find gets: "fill" the
            median landmarks of the detected faces, scaled to the image
            (keeps every row, so seeded splits stay those of the reader);
            "nan" empty landmark cells; "drop" no row.
        keep_existing: keep the dataset's own landmarks where it has them.
        batch_size, min_confidence: see `detect`.
        log: progress printer (`None` for quiet).

    Returns:
        dict with `csv`, `not_found_csv`, `n`, `detected`, `existing`,
        `not_found` (list of paths), `missing`.

    Example:

    >>> write_landmarks_csv(load("utkface", folder), "marks.csv")  # doctest: +SKIP
    """
    if missing not in ("fill", "nan", "drop"):
        raise ValueError(f"missing must be 'fill', 'nan' or 'drop'; got {missing!r}.")
    if ds.paths is None:
        raise ValueError("write_landmarks_csv needs a file-backed dataset (ds.paths).")
    out_csv = pathlib.Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    n = len(ds)
    has = ds.landmarks_found if keep_existing else np.zeros(n, bool)
    todo = np.flatnonzero(~has)
    landmarks = ds.landmarks.astype("float32").copy()
    landmarks[~has] = np.nan
    sizes = np.zeros((n, 2), dtype="float64")
    source = np.where(has, "dataset", "").astype(object)
    detector = detector or (make_detector() if len(todo) else None)
    start, chunk = time.time(), 256
    for s in range(0, len(todo), chunk):
        idx = todo[s:s + chunk]
        images = [read_image(ds.paths[i]) for i in idx]
        sizes[idx] = [im.shape[:2] for im in images]
        found, _ = detect(images, detector, batch_size=batch_size, min_confidence=min_confidence)
        landmarks[idx] = found
        if log:
            log(f"  {min(s + chunk, len(todo))}/{len(todo)} images, {time.time() - start:.0f} s")
    detected = np.all(np.isfinite(landmarks), axis=(1, 2)) & ~has
    source[detected] = "mtcnn"
    not_found = np.flatnonzero(~has & ~detected)
    if missing == "fill" and len(not_found):
        known = has | detected
        for i in np.flatnonzero(known & (sizes[:, 0] == 0)):
            sizes[i] = _image_size(ds.paths[i])
        rel = _fill_value(landmarks[known], sizes[known])
        if rel is None:
            raise RuntimeError("No face has landmarks: nothing to fill the missing landmarks with.")
        for i in not_found:
            landmarks[i] = rel * sizes[i][::-1] - 0.5
        source[not_found] = "filled"
    not_found_csv = out_csv.with_suffix(".not_found.csv")
    with open(not_found_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "age", "reason", "handled"])
        for i in not_found:
            w.writerow([os.path.abspath(ds.paths[i]), f"{ds.age[i]:g}", "no face found by MTCNN", missing])
    tmp = out_csv.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i in range(n):
            if missing == "drop" and source[i] == "":
                continue
            pts = [] if not np.all(np.isfinite(landmarks[i])) else [f"{v:.2f}" for v in landmarks[i].reshape(-1)]
            w.writerow(
                [os.path.abspath(ds.paths[i]), f"{ds.age[i]:g}", _code(ds.gender[i]), _code(ds.race[i]),
                 ds.subject[i], *(pts or [""] * 10), source[i] or "none"]
            )  # fmt: skip
    os.replace(tmp, out_csv)
    result = {
        "csv": str(out_csv), "not_found_csv": str(not_found_csv), "n": n, "detected": int(detected.sum()),
        "existing": int(has.sum()), "not_found": [str(ds.paths[i]) for i in not_found], "missing": missing,
    }  # fmt: skip
    if log:
        log(f"{out_csv}: {n} faces, {result['existing']} with the dataset's landmarks, {result['detected']} "
            f"found by MTCNN, {len(not_found)} not found ({missing}; listed in {not_found_csv.name})")  # fmt: skip
    return result


def _code(value):
    return "" if int(value) < 0 else str(int(value))


def ensure_landmarks_csv(name, data_dir, out_csv=None, force=False, **kwargs):
    """The landmarks CSV of dataset `name` in `data_dir`, computed once and cached.

    Returns:
        The CSV path (load it with `agekeras.datasets.load("csv", path)`).
    """
    from agekeras import datasets

    out_csv = pathlib.Path(out_csv) if out_csv else landmarks_csv_path(name, data_dir)
    if out_csv.exists() and not force:
        return out_csv
    ds = datasets.load(name, data_dir)
    write_landmarks_csv(ds, out_csv, **kwargs)
    return out_csv


def write_aligned_crops(csv_path, aligned_dir, size=256, template="dhaa", log=print):
    """Aligned crops of every row of a landmarks CSV, and their own CSV.

    Args:
        csv_path: a CSV of `write_landmarks_csv`.
        aligned_dir: where the crops (PNG) and `landmarks.csv` go.
        size: crop side in pixels.
        template: the alignment convention (default DHAA's).
        log: printer, or None.

    Returns:
        The path of `<aligned_dir>/landmarks.csv` (landmarks moved along).
    """
    aligned_dir = pathlib.Path(aligned_dir)
    aligned_dir.mkdir(parents=True, exist_ok=True)
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    out_csv = aligned_dir / "landmarks.csv"
    with open(out_csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=HEADER)
        w.writeheader()
        for k, row in enumerate(rows):
            if not row["lx0"]:
                continue
            pts = np.array([float(row[f"{a}{i}"]) for i in range(5) for a in ("lx", "ly")]).reshape(5, 2)
            crop, moved = align_face(read_image(row["path"]), pts, template, size)
            from PIL import Image

            target = aligned_dir / f"{k:06d}_{pathlib.Path(row['path']).stem}.png"
            Image.fromarray(crop).save(target)
            row.update({"path": str(target.resolve())})
            row.update({f"{a}{i}": f"{moved[i, j]:.2f}" for i in range(5) for j, a in enumerate(("lx", "ly"))})
            w.writerow(row)
    if log:
        log(f"aligned crops: {aligned_dir} ({out_csv.name})")
    return out_csv
