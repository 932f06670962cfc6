"""Procedural cartoon faces with age cues: the embedded `synthetic` dataset.

`synthetic` needs no download: every face is drawn from a seed with Pillow's
`ImageDraw` on a 2x canvas (premultiplied "RGBa"), posed with one affine
warp, box-downsampled to `image_size` (anti-aliasing) and finished in NumPy
(background, lighting, blur, noise). Sample `i` depends only on `(seed, i)`,
so any chunking of `generate` gives the same arrays, bit for bit.

Each face has a label `age` and a hidden *apparent age*
`b = max(0, age + z * (0.5 + 0.09 * age))`, `z ~ N(0, 1)`: people age at
different rates, so the same label gives different faces. The cues below use
`b`; each cue also has its own random onset, rate or amount. With
`ramp(x, lo, hi) = clip((x - lo) / (hi - lo), 0, 1)`:

| cue | formula |
|-----|---------|
| growth | `g = ramp(b, 0, 18) ** 0.8` (0 at birth, 1 from 18 on) |
| face width / image | `(0.58 - 0.14 g) * U(0.95, 1.05)`: big heads in children |
| face height / width | `(0.96 + 0.34 g) * U(0.97, 1.03)`: round babies, long adults |
| eye line (from top of head / face height) | `0.59 - 0.13 g + N(0, 0.01)`: low eyes in children |
| eye radius / face width | `(0.105 - 0.04 g) * U(0.92, 1.08)`: big eyes in children |
| neck length, shoulder width | `0.06 + 0.08 g`, `(0.28 + 0.12 g) * U(0.92, 1.08)` |
| hair density | `min(1, 0.2 + b / 4)`; short hair only below `b = 2.5` |
| wrinkle severity | `w = ramp(b, 25 + U(-5, 5), 80) ** 1.2 * U(0.6, 1.3)` |
| forehead lines | `round(4.5 w + U(-0.5, 0.5))` arcs, darkness `(0.12 + 0.35 w) * U(0.7, 1.3)` |
| crow's feet | `2 + round(3 w)` rays per eye when `w > 0.12`, length `(0.35 + w)` eye radii |
| nasolabial folds, eye bags | darkness `0.35 w * U(0.7, 1.3)`; marionette lines when `w > 0.5` |
| eyelids, lips | hooded lids `0.5 w`, eye opening `U(0.6, 0.8) - 0.12 w`, lip height `~ 0.03 - 0.015 w`, mouth corners droop `0.015 w` |
| age spots | `Poisson(14 * ramp(b, 45, 90) ** 1.5)` brown dots (freckles on 15% of faces from 4 y are an age-free decoy) |
| hair greying | `grey = ramp(b, onset, onset + span)`, onset `U(28, 55)`, span `U(20, 45)`: colour mixed `0.75 grey` towards white, `900 grey` white strands; brows and beard follow with a lag |
| hairline recession | `ramp(b, r, r + U(15, 40)) * U(0.2, 1.0)` for men, `* U(0, 0.3)` for women, `r ~ U(18, 50)`; M-shaped temples |
| baldness | men, probability `0.55 * ramp(b, 35, 80)` (a horseshoe fringe) |
| facial hair | men, probability `0.7 * ramp(age, 15, 25)`: stubble 45%, full beard 25%, moustache 15%, goatee 15% |

Nuisances (independent of age): skin tone (6 tones), hair colour and style
(women mostly long hair, men mostly short), eye colour, clothing, background
colour and texture, in-plane rotation +-15 deg, scale +-10 %, shift +-8 % of
the size, lighting gradient and brightness, Gaussian blur and noise.

Landmarks (float32 pixel (x, y), pixel centres at integers, "left" = image
left): left eye centre, right eye centre, nose tip, left and right mouth
corner, transformed with the same pose as the image.

Example:

```python
from agekeras.datasets.synthetic import load_synthetic

ds = load_synthetic(n=2000, image_size=128, seed=0)
ds.images.shape, ds.age[:3], ds.landmarks[0]
```
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from agekeras.datasets.base import AgeDataset

LANDMARK_NAMES = ("left_eye", "right_eye", "nose_tip", "mouth_left", "mouth_right")

SUPERSAMPLE = 2

SKIN_TONES = np.array(
    [
        [255, 224, 200],
        [241, 198, 168],
        [226, 176, 138],
        [196, 138, 100],
        [150, 100, 70],
        [105, 70, 50],
    ],
    dtype="float32",
)
HAIR_COLOURS = np.array(
    [
        [28, 22, 20],  # black
        [62, 42, 30],  # dark brown
        [105, 72, 45],  # brown
        [160, 120, 75],  # dark blond
        [214, 180, 120],  # blond
        [140, 62, 32],  # auburn
    ],
    dtype="float32",
)
EYE_COLOURS = np.array(
    [[72, 46, 26], [110, 76, 42], [62, 104, 150], [84, 112, 72], [40, 30, 26]],
    dtype="float32",
)
MARKER_COLOUR = (0, 255, 0)


def generate(n, image_size=128, seed=0, age_range=(0, 100), gender_p=0.5, start=0):
    """Draws `n` synthetic faces.

    Sample `i` uses only `np.random.default_rng([seed, start + i])`, so
    `generate(n, start=k)` equals rows `k:k + n` of any larger call.

    Args:
        n: number of faces.
        image_size: side of the square images, in pixels.
        seed: non-negative integer seed.
        age_range: (min, max) integer ages, both included, drawn uniformly.
        gender_p: probability that a face is female (gender 1).
        start: index of the first sample.

    Returns:
        Dict with `images` uint8 (n, S, S, 3), `age` float32 (n,), `gender`
        int32 (n,) (0 male, 1 female) and `landmarks` float32 (n, 5, 2).
    """
    lo, hi = int(age_range[0]), int(age_range[1])
    if not 0 <= lo <= hi:
        raise ValueError(f"age_range must satisfy 0 <= min <= max; got {age_range}.")
    images = np.empty((n, image_size, image_size, 3), dtype="uint8")
    age = np.empty(n, dtype="float32")
    gender = np.empty(n, dtype="int32")
    landmarks = np.empty((n, 5, 2), dtype="float32")
    for i in range(n):
        rng = np.random.default_rng([seed, start + i])
        age[i] = rng.integers(lo, hi + 1)
        gender[i] = rng.random() < gender_p
        images[i], landmarks[i] = render_face(age[i], gender[i], rng, image_size)
    return {"images": images, "age": age, "gender": gender, "landmarks": landmarks}


def load_synthetic(n=2000, image_size=128, seed=0, **kwargs):
    """The `synthetic` dataset: `n` procedural faces, one subject each.

    Args:
        n: number of faces.
        image_size: side of the square images, in pixels.
        seed: non-negative integer seed.
        **kwargs: `age_range`, `gender_p` or `start`, passed to `generate`.

    Returns:
        An in-memory `AgeDataset` named "synthetic" with images, age, gender,
        landmarks and subject "synth_<i>".
    """
    data = generate(n, image_size=image_size, seed=seed, **kwargs)
    start = kwargs.get("start", 0)
    return AgeDataset(
        name="synthetic",
        subject=[f"synth_{start + i}" for i in range(n)],
        **data,
    )


def render_face(age, gender, rng, image_size=128, markers=False, return_params=False):
    """Draws one face of a given age and gender.

    Args:
        age: age in years (>= 0).
        gender: 0 male, 1 female.
        rng: a `np.random.Generator`, the only source of randomness.
        image_size: side of the square image, in pixels.
        markers: if True, paint a green disc (radius 1.5 px) on each landmark
            before the pose warp, to check landmarks against pixels.
        return_params: if True, also return a dict of hidden parameters:
            `apparent_age`, `wrinkles` (severity `w`), `grey` (0-1),
            `hair_style`, `bald`, `beard` (None or its kind),
            `canonical_landmarks` ((5, 2) before the pose, in image fractions
            with 0 and 1 at the image edges) and `pose` (`angle` in degrees,
            `scale`, `shift` (2,) in image fractions), with
            `landmarks = (A (canonical - 0.5) + 0.5 + shift) * S - 0.5` and
            `A = scale * [[cos, -sin], [sin, cos]](angle)`.

    Returns:
        `(image, landmarks)`: uint8 (S, S, 3) and float32 (5, 2) pixel (x, y);
        plus the parameter dict when `return_params` is True.
    """
    face = _sample_face(float(age), int(gender), rng)
    pose = _sample_pose(rng)
    canvas = _Canvas(image_size * SUPERSAMPLE)
    _draw_face(canvas, face, rng)
    if markers:
        for x, y in face["landmarks"]:
            canvas.ellipse(x, y, 1.5 / image_size, 1.5 / image_size, MARKER_COLOUR)
    image = _finish(canvas.image, pose, rng, image_size)
    landmarks = _apply_pose(face["landmarks"], pose) * image_size - 0.5
    landmarks = landmarks.astype("float32")
    if not return_params:
        return image, landmarks
    params = {
        "apparent_age": face["apparent_age"],
        "wrinkles": face["wrinkles"],
        "grey": face["grey"],
        "hair_style": face["hair_style"],
        "bald": face["bald"],
        "beard": face["beard"],
        "canonical_landmarks": face["landmarks"].copy(),
        "pose": pose,
    }
    return image, landmarks, params


def _ramp(x, lo, hi):
    """0 below `lo`, 1 above `hi`, linear in between."""
    return min(1.0, max(0.0, (x - lo) / (hi - lo)))


def _mix(a, b, t):
    """Linear blend `(1 - t) a + t b` of colours, in float32."""
    return np.asarray(a, "float32") * np.float32(1.0 - t) + np.asarray(b, "float32") * np.float32(t)


class _Canvas:
    """`ImageDraw` in normalised coordinates: (0, 0) and (1, 1) are the image corners.

    A canvas is either a premultiplied "RGBa" layer (colours are RGB triples,
    drawn opaque) or an "L" mask (colours are 0-255 opacities). Pillow
    truncates coordinates to whole pixels; we round them instead so that
    shapes are centred on their nominal positions on average.

    Args:
        size: side in pixels.
        mode: "RGBa" or "L".
        fill: background colour; None is transparent (or 0 for a mask).
    """

    def __init__(self, size, mode="RGBa", fill=None):
        self.size, self.mode = size, mode
        self.image = Image.new(mode, (size, size), 0 if fill is None else self._ink(fill))
        self.draw = ImageDraw.Draw(self.image)

    def _xy(self, points):
        return np.round(np.asarray(points, "float64") * self.size - 0.5).ravel().tolist()

    def _ink(self, colour):
        if self.mode == "L":
            return int(colour)
        return tuple(min(255, max(0, round(c))) for c in np.asarray(colour).tolist()) + (255,)

    def ellipse(self, cx, cy, rx, ry, colour):
        s = self.size
        x0, x1 = round(cx * s - rx * s), round(cx * s + rx * s) - 1
        y0, y1 = round(cy * s - ry * s), round(cy * s + ry * s) - 1
        self.draw.ellipse((x0, y0, max(x0, x1), max(y0, y1)), fill=self._ink(colour))

    def polygon(self, points, colour):
        self.draw.polygon(self._xy(points), fill=self._ink(colour))

    def line(self, points, colour, width):
        self.draw.line(self._xy(points), fill=self._ink(colour), width=max(1, round(width * self.size)))

    def points(self, points, colour):
        if len(points):
            self.draw.point(self._xy(points), fill=self._ink(colour))

    def blend(self, layer, mask):
        """Pastes canvas `layer` through the "L" canvas `mask`."""
        self.image.paste(layer.image, mask=mask.image)


def _bezier(p0, p1, p2, n=8):
    """`n` points of the quadratic Bezier curve with control points p0, p1, p2."""
    return _bezier_basis(n) @ np.array([p0, p1, p2], dtype="float64")


@functools.lru_cache(maxsize=16)
def _bezier_basis(n):
    t = np.linspace(0.0, 1.0, n)[:, None]
    return np.concatenate([(1 - t) ** 2, 2 * (1 - t) * t, t**2], axis=1)


def _ellipse_points(cx, cy, rx, ry, n=40):
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _sample_face(age, gender, rng):
    """All shape and colour parameters of one face, in canonical normalised coordinates."""
    female = gender == 1
    b = max(0.0, age + rng.normal() * (0.5 + 0.09 * age))
    g = _ramp(b, 0, 18) ** 0.8
    w = _ramp(b, 25 + rng.uniform(-5, 5), 80) ** 1.2 * rng.uniform(0.6, 1.3)
    f = {"apparent_age": b, "growth": g, "wrinkles": w, "female": female}

    fw = (0.58 - 0.14 * g) * rng.uniform(0.95, 1.05) * (1.0 if female else 1.0 + 0.03 * g)
    fh = fw * (0.96 + 0.34 * g) * rng.uniform(0.97, 1.03)
    cx, cy = 0.5, 0.46 - 0.01 * g
    top = cy - fh / 2
    eye_y = top + fh * (0.59 - 0.13 * g + rng.normal() * 0.01)
    chin = cy + fh / 2
    eye_dx = fw * rng.uniform(0.19, 0.22)
    nose_y = eye_y + (chin - eye_y) * (0.40 + 0.03 * g + 0.03 * w + rng.uniform(-0.02, 0.02))
    mouth_y = eye_y + (chin - eye_y) * (0.66 + 0.03 * g + rng.uniform(-0.02, 0.02))
    mouth_dx = fw * (0.11 + 0.05 * g) * rng.uniform(0.9, 1.1)
    droop = fh * 0.015 * w
    f.update(fw=fw, fh=fh, cx=cx, cy=cy, top=top, chin=chin, eye_y=eye_y, eye_dx=eye_dx)
    f.update(nose_y=nose_y, mouth_y=mouth_y, mouth_dx=mouth_dx, droop=droop)
    f["landmarks"] = np.array(
        [
            [cx - eye_dx, eye_y],
            [cx + eye_dx, eye_y],
            [cx, nose_y],
            [cx - mouth_dx, mouth_y + droop],
            [cx + mouth_dx, mouth_y + droop],
        ]
    )
    taper = 0.10 + g * (0.22 if female else 0.12) + rng.uniform(-0.04, 0.04) - 0.05 * w
    f["outline"] = _face_outline(cx, cy, fw / 2, fh / 2, taper, 2.0 if female else 3.0)
    f["eye_r"] = fw * (0.105 - 0.04 * g) * rng.uniform(0.92, 1.08)
    f["eye_open"] = rng.uniform(0.6, 0.8) - 0.12 * w
    f["iris"] = EYE_COLOURS[rng.integers(len(EYE_COLOURS))]

    tone = rng.integers(len(SKIN_TONES))
    f["skin"] = SKIN_TONES[tone] * rng.uniform(0.94, 1.04, 3).astype("float32")
    dark_hair = tone >= 3 or rng.random() < 0.4
    base_hair = HAIR_COLOURS[rng.integers(2) if dark_hair else rng.integers(len(HAIR_COLOURS))]
    if b < 6:
        base_hair = _mix(base_hair, [200, 160, 110], 0.3 * rng.random())
    onset, span = rng.uniform(28, 55), rng.uniform(20, 45)
    grey = _ramp(b, onset, onset + span)
    f["grey"] = grey
    white = np.float32(rng.uniform(185, 240)) * np.array([1.0, 1.0, 1.02], "float32")
    f["white"] = white
    f["hair"] = _mix(base_hair * rng.uniform(0.9, 1.1), white, 0.75 * grey)
    f["brow"] = _mix(base_hair * 0.8, white, 0.5 * _ramp(b, onset + 10, onset + span + 20))

    p_styles = [0.10, 0.20, 0.55, 0.15, 0.0] if female else [0.55, 0.22, 0.05, 0.0, 0.18]
    style = ("short", "medium", "long", "bangs", "buzz")[rng.choice(5, p=p_styles)]
    if b < 2.5:
        style = "short"
    r_onset = rng.uniform(18, 50)
    recession = _ramp(b, r_onset, r_onset + rng.uniform(15, 40)) * rng.uniform(
        *((0.0, 0.3) if female else (0.2, 1.0))
    )
    bald = (not female) and rng.random() < 0.55 * _ramp(b, 35, 80)
    f.update(hair_style=style, recession=1.7 if bald else recession, bald=bald)
    f["hair_density"] = min(1.0, 0.2 + b / 4.0)

    beard = None
    if not female and rng.random() < 0.7 * _ramp(age, 15, 25):
        beard = ("stubble", "full", "moustache", "goatee")[rng.choice(4, p=[0.45, 0.25, 0.15, 0.15])]
    f["beard"] = beard
    f["beard_colour"] = _mix(base_hair * 0.9, white, 0.8 * _ramp(b, onset - 5, onset + span - 5))
    f["beard_density"] = rng.uniform(0.3, 0.55) if beard == "stubble" else rng.uniform(0.8, 1.0)

    lips = _mix(f["skin"], [190, 70, 80], rng.uniform(0.25, 0.45))
    if female and age >= 16 and rng.random() < 0.4:
        lips = _mix(lips, [170, 20, 50], rng.uniform(0.4, 0.8))
    f["lips"] = lips
    f["lip_h"] = fh * (0.030 - 0.015 * w) * rng.uniform(0.8, 1.2)
    f["blush"] = rng.uniform(0.0, 0.35) * (1.0 - _ramp(b, 2, 14)) + (0.1 if female else 0.0)
    f["freckles"] = rng.random() < 0.15 and b >= 4
    f["spots"] = rng.poisson(14 * _ramp(b, 45, 90) ** 1.5)
    f["clothes"] = rng.uniform(30, 200, 3).astype("float32")
    f["shoulders"] = (0.28 + 0.12 * g) * (0.9 if female else 1.0) * rng.uniform(0.92, 1.08)
    f["ears"] = style not in ("long", "bangs")
    return f


def _face_outline(cx, cy, rx, ry, taper, power, n=48):
    """Egg-shaped outline: an ellipse whose lower half narrows towards the chin."""
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    lower = np.clip(np.sin(t), 0, None) ** power
    return np.stack([cx + rx * np.cos(t) * (1 - taper * lower), cy + ry * np.sin(t)], axis=1)


def _draw_face(c, f, rng):
    """Draws the unposed face `f` on canvas `c`, back to front."""
    cx, fw, fh, skin = f["cx"], f["fw"], f["fh"], f["skin"]
    eye_y, nose_y, mouth_y = f["eye_y"], f["nose_y"], f["mouth_y"]
    shoulder_y, shoulder_w = f["chin"] + 0.06 + 0.08 * f["growth"], f["shoulders"]
    c.ellipse(cx, shoulder_y + 0.12, shoulder_w, 0.14, f["clothes"])
    c.polygon([[cx - shoulder_w, shoulder_y + 0.12], [cx + shoulder_w, shoulder_y + 0.12],
               [cx + shoulder_w, 1.05], [cx - shoulder_w, 1.05]], f["clothes"])
    _draw_back_hair(c, f)
    neck_w = fw * 0.26
    c.polygon([[cx - neck_w, f["cy"]], [cx + neck_w, f["cy"]], [cx + neck_w * 1.05, shoulder_y + 0.02],
               [cx - neck_w * 1.05, shoulder_y + 0.02]], skin * 0.8)
    c.ellipse(cx, shoulder_y + 0.02, neck_w * 1.05, 0.03, skin * 0.8)
    if f["ears"]:
        for side in (-1, 1):
            c.ellipse(cx + side * fw * 0.49, (eye_y + nose_y) / 2, fw * 0.07, fh * 0.09, skin * 0.9)
    c.polygon(f["outline"], skin)
    if f["blush"] > 0.02:
        for side in (-1, 1):
            c.ellipse(cx + side * fw * 0.27, nose_y + 0.2 * (mouth_y - nose_y), fw * 0.09, fw * 0.06,
                      skin * (1.0 - f["blush"] * np.array([0.0, 0.3, 0.25], "float32")))
    _draw_skin_marks(c, f, rng)
    _draw_wrinkles(c, f, rng)
    _draw_top_hair(c, f, rng)
    _draw_eyes(c, f, rng)
    _draw_nose(c, f)
    _draw_beard(c, f, rng)
    _draw_mouth(c, f)


def _draw_back_hair(c, f):
    cx, fw, fh = f["cx"], f["fw"], f["fh"]
    if f["bald"] or f["hair_style"] in ("short", "buzz"):
        return
    colour = _mix(f["skin"] * 0.9, f["hair"] * 0.85, f["hair_density"])
    if f["hair_style"] == "medium":
        c.ellipse(cx, f["cy"] - 0.04 * fh, fw * 0.58, fh * 0.52, colour)
        return
    bottom = f["chin"] + fh * 0.35
    c.ellipse(cx, f["top"] + fh * 0.45, fw * 0.62, fh * 0.52, colour)
    c.polygon([[cx - fw * 0.62, f["top"] + fh * 0.45], [cx + fw * 0.62, f["top"] + fh * 0.45],
               [cx + fw * 0.7, bottom], [cx - fw * 0.7, bottom]], colour)


def _draw_top_hair(c, f, rng):
    """Hair on the scalp: outer scalp ellipse minus a hairline window (receding, M-shaped)."""
    cx, fw, fh, top = f["cx"], f["fw"], f["fh"], f["top"]
    style, rec = f["hair_style"], f["recession"]
    volume = {"short": 0.05, "medium": 0.09, "long": 0.09, "bangs": 0.09, "buzz": 0.015}[style]
    sy = f["cy"] - 0.03 * fh
    srx, sry = fw / 2 * (1.03 + volume), fh / 2 * (1.0 + 1.3 * volume)
    mask = _Canvas(c.size, "L")
    mask.ellipse(cx, sy, srx, sry, 255)
    if style == "bangs":
        hairline = f["eye_y"] - fh * rng.uniform(0.13, 0.18)
    else:
        hairline = top + fh * (0.16 - 0.17 * rec + rng.uniform(-0.02, 0.02))
    wy = f["nose_y"]
    window = _ellipse_points(cx, wy, fw / 2 * 0.9, wy - hairline, n=48)
    temples = np.exp(-(((np.abs(window[:, 0] - cx) - fw * 0.27) / (fw * 0.09)) ** 2))
    window[:, 1] -= (window[:, 1] < f["eye_y"]) * temples * fh * 0.10 * min(rec, 1.0)
    if style == "bangs":
        window[:, 1] = np.maximum(window[:, 1], hairline)
    mask.polygon(window, 0)
    side_cut = f["eye_y"] + (0.08 if style in ("medium", "long") else -0.01) * fh
    mask.polygon([[0, side_cut], [1, side_cut], [1, 1], [0, 1]], 0)
    density = f["hair_density"] * (0.45 if style == "buzz" else 1.0)
    if density < 1.0:
        mask.image = mask.image.point(lambda v: int(v * density))

    hair = _Canvas(c.size, fill=f["hair"])
    for u in rng.uniform(-1, 1, 8):
        crown = [cx + 0.2 * u * srx, sy - sry]
        end = [cx + 1.1 * u * srx, hairline + 0.3 * abs(u) * (side_cut - hairline)]
        hair.line(_bezier(crown, [cx + 0.9 * u * srx, sy - 0.8 * sry], end, n=6), f["hair"] * 0.75, 0.004)
    n_grey = int(900 * f["grey"])
    grey_xy = np.stack([rng.uniform(cx - srx, cx + srx, n_grey), rng.uniform(sy - sry, side_cut, n_grey)], 1)
    hair.points(grey_xy, f["white"])
    c.blend(hair, mask)


def _draw_skin_marks(c, f, rng):
    """Age spots (older faces) and freckles (age-free decoy)."""
    cx, fw, fh, skin = f["cx"], f["fw"], f["fh"], f["skin"]
    for n, colour, r, spread in (
        (f["spots"], skin * np.array([0.72, 0.62, 0.52]), 0.012, 0.36),
        (rng.integers(10, 30) if f["freckles"] else 0, skin * np.array([0.82, 0.70, 0.60]), 0.006, 0.3),
    ):
        if not n:
            continue
        rad = np.sqrt(rng.random(n)) * spread
        ang = rng.uniform(0, 2 * np.pi, n)
        sizes = rng.uniform(0.4, 1.0, n) * r * fw / 0.45
        ys = f["cy"] - 0.05 * fh + rad * np.sin(ang) * fh * 1.2
        xs = cx + rad * np.cos(ang) * fw
        for x, y, s in zip(xs, ys, sizes):
            c.ellipse(x, y, s, s * 0.85, colour)


def _draw_wrinkles(c, f, rng):
    """Forehead lines, crow's feet, nasolabial folds, eye bags and marionette lines."""
    w = f["wrinkles"]
    if w < 0.03:
        return
    cx, fw, fh, skin = f["cx"], f["fw"], f["fh"], f["skin"]
    eye_y, eye_r, lw = f["eye_y"], f["eye_r"], 0.006 * fw / 0.45

    def ink(depth):
        return skin * (1.0 - min(0.6, depth * rng.uniform(0.7, 1.3)))

    brow_y = eye_y - eye_r * 1.9
    for k in range(int(round(4.5 * w + rng.uniform(-0.5, 0.5)))):
        y = brow_y - fh * (0.035 + 0.03 * k + rng.uniform(-0.008, 0.008))
        half = fw * rng.uniform(0.18, 0.30)
        x0 = cx + rng.uniform(-0.03, 0.03) * fw
        lift = rng.uniform(0.0, 0.03) * fh
        arc = _bezier([x0 - half, y + 0.01 * fh], [x0, y - lift], [x0 + half, y + 0.01 * fh])
        c.line(arc, ink(0.12 + 0.35 * w), lw)
    for side in (-1, 1):
        ex = cx + side * f["eye_dx"]
        if w > 0.12:
            corner = np.array([ex + side * eye_r * 1.15, eye_y])
            for a in np.linspace(-0.6, 0.6, 2 + int(round(3 * w))) + rng.uniform(-0.15, 0.15):
                tip = corner + (0.35 + w) * eye_r * np.array([side * np.cos(a), np.sin(a)])
                c.line([corner, tip], ink(0.1 + 0.35 * w), lw)
        c.line(_bezier([ex - eye_r * 0.8, eye_y + eye_r * 0.9], [ex, eye_y + eye_r * (1.2 + 0.6 * w)],
                       [ex + eye_r * 0.8, eye_y + eye_r * 0.9], n=6), ink(0.35 * w), lw)
        wing = [cx + side * fw * 0.11, f["nose_y"] - 0.01 * fh]
        end = [cx + side * (f["mouth_dx"] + fw * 0.05), f["mouth_y"] + f["droop"] + 0.02 * fh]
        bend = [cx + side * fw * (0.2 + 0.03 * w), (wing[1] + end[1]) / 2]
        c.line(_bezier(wing, bend, end), ink(0.35 * w), lw)
        if w > 0.5:
            mc = [cx + side * f["mouth_dx"], f["mouth_y"] + f["droop"]]
            c.line([mc, [mc[0] + side * 0.01 * fw, mc[1] + (0.08 * w) * fh]], ink(0.3 * w), lw)


def _draw_eyes(c, f, rng):
    cx, fw, skin, w = f["cx"], f["fw"], f["skin"], f["wrinkles"]
    r, open_ = f["eye_r"], f["eye_open"]
    iris_r = r * (0.62 - 0.08 * f["growth"])
    gaze = rng.uniform(-0.15, 0.15) * r
    lid_colour = _mix(skin * 0.35, [20, 15, 15], 0.5)
    for side in (-1, 1):
        ex, ey = cx + side * f["eye_dx"], f["eye_y"]
        c.ellipse(ex, ey, r, r * open_, [242, 240, 235])
        c.ellipse(ex + gaze, ey, iris_r, min(iris_r, r * open_ * 1.05), f["iris"])
        c.ellipse(ex + gaze, ey, iris_r * 0.45, iris_r * 0.45, [15, 12, 12])
        c.ellipse(ex + gaze + iris_r * 0.3, ey - iris_r * 0.3, iris_r * 0.16, iris_r * 0.16, [250, 250, 250])
        hood = w * 0.5 * r * open_
        lid = _ellipse_points(ex, ey, r * 1.05, r * open_, 24)
        upper = lid[lid[:, 1] <= ey + 1e-9]
        upper = upper[np.argsort(upper[:, 0])]
        if hood > 0.002:
            c.polygon(np.concatenate([upper, upper[::-1] + [0, hood]]), skin * 0.96)
        c.line(upper + [0, hood], lid_colour, 0.008 * fw / 0.45)
        brow = _bezier(
            [ex - side * r * 1.2, ey - r * 1.5],
            [ex + side * r * 0.2, ey - r * (2.4 - 0.3 * f["growth"])],
            [ex + side * r * 1.4, ey - r * 1.4],
            n=7,
        )
        thick = (0.010 if f["female"] else 0.016) * fw / 0.45 * (0.5 + 0.5 * f["growth"])
        c.line(brow, f["brow"], thick)


def _draw_nose(c, f):
    cx, fw, fh, skin = f["cx"], f["fw"], f["fh"], f["skin"]
    y = f["nose_y"]
    nw = fw * (0.05 + 0.025 * f["growth"] + 0.01 * f["wrinkles"])
    c.ellipse(cx, y, nw * 0.7, nw * 0.5, skin * 1.04)
    for side in (-1, 1):
        c.ellipse(cx + side * nw * 0.55, y + nw * 0.3, nw * 0.28, nw * 0.18, skin * 0.45)
        c.line(_bezier([cx + side * nw * 0.9, y - nw * 0.4], [cx + side * nw * 1.3, y + nw * 0.2],
                       [cx + side * nw * 0.8, y + nw * 0.5], n=5), skin * 0.75, 0.006 * fw / 0.45)
    bridge = [[cx - nw * 0.5, f["eye_y"] + 0.02 * fh], [cx - nw * 0.6, y - nw * 0.5]]
    c.line(bridge, skin * 0.85, 0.006 * fw / 0.45)


def _draw_mouth(c, f):
    cx, fw = f["cx"], f["fw"]
    (lx, ly), (rx, ry) = f["landmarks"][3], f["landmarks"][4]
    y0, h = f["mouth_y"], f["lip_h"]
    upper = np.concatenate([_bezier([lx, ly], [cx - fw * 0.04, y0 - h * 1.6], [cx, y0 - h * 0.5], n=6),
                            _bezier([cx, y0 - h * 0.5], [cx + fw * 0.04, y0 - h * 1.6], [rx, ry], n=6)])
    lower = _bezier([rx, ry], [cx, y0 + h * 2.4], [lx, ly], n=10)
    c.polygon(np.concatenate([upper, lower]), f["lips"])
    parting = _bezier([lx, ly], [cx, y0 - 1.5 * f["droop"] + 0.3 * h], [rx, ry], n=8)
    c.line(parting, f["lips"] * 0.45, 0.006 * fw / 0.45)


def _draw_beard(c, f, rng):
    kind = f["beard"]
    if kind is None:
        return
    cx, fw, fh = f["cx"], f["fw"], f["fh"]
    nose_y, mouth_y, mdx = f["nose_y"], f["mouth_y"] + f["droop"], f["mouth_dx"]
    mask = _Canvas(c.size, "L")
    value = int(255 * f["beard_density"])
    moustache = [[cx - mdx * 1.15, mouth_y + 0.005 * fh], [cx - mdx * 0.6, nose_y + 0.035 * fh],
                 [cx + mdx * 0.6, nose_y + 0.035 * fh], [cx + mdx * 1.15, mouth_y + 0.005 * fh],
                 [cx, mouth_y - f["lip_h"] * 0.5]]
    if kind in ("stubble", "full"):
        outline = f["outline"]
        lower = outline[outline[:, 1] > nose_y - 0.02 * fh]
        lower = lower[np.argsort(-lower[:, 0])]
        cheek = [[cx - fw * 0.3, nose_y + 0.02 * fh], [cx - mdx * 1.2, nose_y + 0.05 * fh],
                 [cx, nose_y + 0.04 * fh], [cx + mdx * 1.2, nose_y + 0.05 * fh],
                 [cx + fw * 0.3, nose_y + 0.02 * fh]]
        mask.polygon(np.concatenate([lower, cheek]), value)
    elif kind == "goatee":
        mask.ellipse(cx, (mouth_y + f["chin"]) / 2 + 0.01 * fh, mdx, (f["chin"] - mouth_y) * 0.55, value)
        mask.polygon(moustache, value)
    else:
        mask.polygon(moustache, value)
    beard = _Canvas(c.size, fill=f["beard_colour"])
    hairs = np.stack([rng.uniform(cx - fw / 2, cx + fw / 2, 400), rng.uniform(nose_y, f["chin"], 400)], 1)
    beard.points(hairs, f["beard_colour"] * 0.6)
    c.blend(beard, mask)


def _sample_pose(rng):
    return {
        "angle": float(rng.uniform(-15, 15)),
        "scale": float(rng.uniform(0.9, 1.1)),
        "shift": rng.uniform(-0.08, 0.08, 2),
    }


def _pose_matrix(pose):
    """2x2 matrix `A` of the pose: `u' = A (u - 0.5) + 0.5 + shift` in normalised coordinates."""
    t = np.deg2rad(pose["angle"])
    return pose["scale"] * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def _apply_pose(points, pose):
    return (np.asarray(points) - 0.5) @ _pose_matrix(pose).T + 0.5 + pose["shift"]


def _finish(layer, pose, rng, size):
    """Warps the 2x face layer, box-downsamples it, adds background, lighting, blur and noise."""
    big = layer.size[0]
    inv = np.linalg.inv(_pose_matrix(pose))
    offset = big * 0.5 - inv @ (big * (0.5 + pose["shift"]))
    coeffs = (inv[0, 0], inv[0, 1], offset[0], inv[1, 0], inv[1, 1], offset[1])
    face = layer.transform(layer.size, Image.AFFINE, coeffs, resample=Image.NEAREST).reduce(SUPERSAMPLE)
    face = np.asarray(face, dtype="float32")

    bg_colour = rng.uniform(40, 220, 3)
    bg_colour = _mix(bg_colour, bg_colour.mean(), rng.uniform(0.2, 0.8))
    coarse = rng.uniform(-1, 1, (4, 4, 3)).astype("float32") * np.float32(rng.uniform(5, 35)) + bg_colour
    interp = _interp_matrix(4, size)
    image = np.matmul(interp, (interp @ coarse.reshape(4, 12)).reshape(size, 4, 3))
    image *= 1.0 - face[..., 3:] * np.float32(1 / 255)
    image += face[..., :3]

    ramp = np.linspace(-0.5, 0.5, size, dtype="float32")
    gx, gy = (np.float32(v) for v in rng.uniform(-0.5, 0.5, 2))
    light = np.float32(rng.uniform(0.7, 1.2)) * (1.0 + gx * ramp[None, :] + gy * ramp[:, None])
    image *= light[..., None]

    radius = rng.uniform(0.0, 1.0) * size / 128
    if radius > 0.3:
        blurred = Image.fromarray(np.clip(image, 0, 255).astype("uint8")).filter(ImageFilter.BoxBlur(radius))
        image = np.asarray(blurred, dtype="float32")
    noise = np.float32(rng.uniform(5.0, 24.0))
    image += rng.random((size, size, 1), dtype="float32") * noise
    image += 0.5 - noise / 2
    return np.clip(image, 0, 255, out=image).astype("uint8")


@functools.lru_cache(maxsize=8)
def _interp_matrix(n, size):
    """(size, n) linear-interpolation weights from `n` coarse nodes to `size` pixels."""
    pos = np.linspace(0, n - 1, size)
    lo = np.minimum(np.floor(pos).astype(int), n - 2)
    frac = (pos - lo).astype("float32")
    m = np.zeros((size, n), dtype="float32")
    m[np.arange(size), lo] = 1 - frac
    m[np.arange(size), lo + 1] = frac
    return m


def _save_figure(path, image_size=128, seed=0):
    """Saves a grid of faces: 8 ages, two rows of men then two rows of women.

    The PNG is palette-quantised (256 colours) to stay small.

    Args:
        path: output PNG file.
        image_size: side of each face, in pixels.
        seed: seed of the grid (cell `(row, col)` uses `default_rng([seed, row, col])`).
    """
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ages = (2, 6, 12, 18, 30, 45, 65, 90)
    fig, axes = plt.subplots(4, len(ages), figsize=(1.25 * len(ages), 5.6))
    for row in range(4):
        gender = int(row >= 2)
        for col, age in enumerate(ages):
            image, _ = render_face(age, gender, np.random.default_rng([seed, row, col]), image_size)
            ax = axes[row, col]
            ax.imshow(image)
            ax.set_title(f"{age} y, {'F' if gender else 'M'}", fontsize=8)
            ax.axis("off")
    fig.tight_layout(pad=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    Image.open(buffer).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Saves a grid of synthetic faces by age and gender.")
    parser.add_argument("--out", default="figures/synthetic_faces.png")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    _save_figure(args.out, args.image_size, args.seed)
