"""Alignment maths: templates, similarity transforms, warping a face into its crop.

A similarity transform (rotation, uniform scale, shift; least squares, no
reflection: Umeyama's method) sends a face's landmarks onto a *template*, the
positions they take in the training crops; PIL's `Image.transform(AFFINE)`
then resamples the photo (after a box-filter reduction when the face is
shrunk more than 2x, so small crops do not alias). One template per training
convention, in `TEMPLATES`:

- `"utkface"`: the framing of UTKFace's "aligned & cropped" 200 x 200 faces,
  all five points; fitted as the mean MTCNN landmarks of UTKFace crops
  (`fit_template`; MTCNN finds 7,564 of the 7,811 faces of the course's
  UTKFace subset); a similarity fit of one face's points to it leaves 4.6 px
  of mean residual per point at 200 px (median 4.4 px; the faces' own shape
  and pose differences, plus the detector's noise): the precision to which
  a photo can be framed like a UTKFace crop from five MTCNN points.
- `"dhaa"`: DHAA's pre-processing (Tan et al., 2018, as cited by the DHAA
  paper): the eye centres and the upper lip (midpoint of the mouth corners)
  of the canonical face (`agekeras.face_template.CANONICAL`) at fixed
  positions, 256 x 256 px.

Coordinates: landmarks are pixel (x, y) with pixel centres at integers;
template points are relative positions in [0, 1] of the crop (continuous
coordinates: 0 and 1 are the crop's outer edges).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from agekeras.face_template import canonical_relative


def eyes_and_lip(points):
    """The eye centres and the upper lip (midpoint of the mouth corners) of a face.

    Args:
        points: (5, 2) landmarks, in any coordinates.

    Returns:
        float64 (3, 2): left eye, right eye, upper lip.

    Example:

    >>> eyes_and_lip([[0, 0], [2, 0], [1, 1], [0, 2], [2, 2]])[2].tolist()
    [1.0, 2.0]
    """
    points = np.asarray(points, dtype="float64")
    return np.stack([points[0], points[1], points[3:5].mean(0)])


@dataclasses.dataclass(frozen=True)
class Template:
    """Where the landmarks sit in a training crop.

    Args:
        name: the convention's name.
        points: float64 (k, 2) relative (x, y) positions in [0, 1] of the
            crop (continuous coordinates: 0 and 1 are the crop's outer edges).
        size: side in pixels of the training crops.
        use: "five" (all five landmarks) or "eyes_lip" (`eyes_and_lip`).

    Example:

    >>> TEMPLATES["dhaa"].landmarks(100).shape
    (5, 2)
    """

    name: str
    points: np.ndarray
    size: int
    use: str = "five"

    def source_points(self, landmarks):
        """The (k, 2) points of `landmarks` (5, 2) that this template places."""
        if self.use == "eyes_lip":
            return eyes_and_lip(landmarks)
        return np.asarray(landmarks, dtype="float64")

    def landmarks(self, size=None):
        """Pixel landmarks (5, 2) of a face lying exactly on the template in a
        `size` crop (pixel centres at integers); for "eyes_lip" the nose and
        mouth corners come from the "utkface" template, moved along."""
        size = self.size if size is None else size
        if self.use == "five":
            return self.points * size - 0.5
        ref = TEMPLATES["utkface"]
        m = similarity_transform(eyes_and_lip(ref.points), self.points)
        return apply_transform(m, ref.points) * size - 0.5


TEMPLATES = {
    # Mean MTCNN landmarks of UTKFace's aligned 200 x 200 crops
    # (`fit_template`; `python -m agekeras align utkface --data-dir ...
    # --fit-template 200` refits it).
    "utkface": Template(
        "utkface",
        np.array([[0.2992, 0.2948], [0.6886, 0.2956], [0.4906, 0.5194], [0.3160, 0.6862], [0.6694, 0.6872]]),
        200,
    ),
    # DHAA: eye centres and upper lip of the canonical face, filling a 256 px crop.
    "dhaa": Template("dhaa", eyes_and_lip(canonical_relative()), 256, use="eyes_lip"),
}


def get_template(name):
    """The `Template` called `name` (a `Template` passes through).

    Raises:
        ValueError: unknown name; the message lists the known ones.

    Example:

    >>> get_template("utkface").size
    200
    """
    if isinstance(name, Template):
        return name
    if name not in TEMPLATES:
        raise ValueError(f"Unknown alignment {name!r}; choose from {sorted(TEMPLATES)} or None.")
    return TEMPLATES[name]


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
    """Points (..., 2) moved by a 2 x 3 affine `matrix`.

    Example:

    >>> apply_transform([[2, 0, 1], [0, 2, 0]], [[1.0, 1.0]]).tolist()
    [[3.0, 2.0]]
    """
    points = np.asarray(points, dtype="float64")
    return points @ np.asarray(matrix)[:, :2].T + np.asarray(matrix)[:, 2]


def similarity_to_template(points, size, template="dhaa"):
    """2 x 3 similarity sending the template's points of `points` (5, 2,
    continuous coordinates) onto `template.points * size`.

    Example:

    >>> t = TEMPLATES["utkface"]
    >>> bool(np.allclose(similarity_to_template(t.points * 200, 200, t), [[1, 0, 0], [0, 1, 0]]))
    True
    """
    t = get_template(template)
    return similarity_transform(t.source_points(points), t.points * size)


def warp(image, matrix, size):
    """Resample `image` (uint8 (H, W, 3)) by the 2 x 3 `matrix` (continuous
    coordinates, source -> output) into a `size` x `size` crop (bilinear;
    a box-filter reduction first when the matrix shrinks more than 2x).
    Outside the image: black, as in UTKFace's crops.

    Example:

    >>> warp(np.zeros((50, 40, 3), "uint8"), [[0.5, 0, 0], [0, 0.5, 0]], 16).shape
    (16, 16, 3)
    """
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

    Example:

    >>> centre_crop(np.zeros((60, 80, 3), "uint8"), 32).shape
    (32, 32, 3)
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
