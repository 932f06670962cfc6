"""Tests for the procedural `synthetic` face dataset."""

import numpy as np
import pytest
from PIL import Image

from agekeras.datasets.base import AgeDataset
from agekeras.datasets.synthetic import LANDMARK_NAMES, generate, load_synthetic, render_face

AGES = np.arange(0, 101)


def _spearman(x, y):
    """Spearman rank correlation (average ranks for ties), NumPy only."""

    def ranks(v):
        v = np.asarray(v, dtype="float64")
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
        return (np.bincount(inverse, weights=r) / counts)[inverse]

    return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


def _faces(n, seed, size=96):
    """`n` faces with random age and gender, plus their hidden parameters."""
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        age, gender = int(rng.integers(0, 101)), int(rng.integers(2))
        image, landmarks, params = render_face(age, gender, rng, size, return_params=True)
        out.append((age, gender, image, landmarks, params))
    return out


def _align(image, landmarks, size=96, eye_dist=0.25, eye_y=0.45):
    """Similarity-warps `image` so that the eyes land on fixed points."""
    dst_l = np.array([size * (0.5 - eye_dist / 2), size * eye_y])
    dst_r = dst_l + [size * eye_dist, 0.0]
    src_l, src_r = landmarks[0] + 0.5, landmarks[1] + 0.5  # pixel index -> continuous
    z = complex(*(src_r - src_l)) / complex(*(dst_r - dst_l))
    m = np.array([[z.real, -z.imag], [z.imag, z.real]])
    t = src_l - m @ dst_l
    coeffs = (m[0, 0], m[0, 1], t[0], m[1, 0], m[1, 1], t[1])
    warped = Image.fromarray(image).transform((size, size), Image.AFFINE, coeffs, resample=Image.BILINEAR)
    return np.asarray(warped, dtype="float64")


def test_generate_is_deterministic_and_chunk_independent():
    full = generate(10, image_size=48, seed=3)
    again = generate(10, image_size=48, seed=3)
    head = generate(4, image_size=48, seed=3)
    tail = generate(6, image_size=48, seed=3, start=4)
    for key in ("images", "age", "gender", "landmarks"):
        np.testing.assert_array_equal(full[key], again[key])
        np.testing.assert_array_equal(full[key], np.concatenate([head[key], tail[key]]))


def test_different_seeds_give_different_faces():
    a = generate(8, image_size=48, seed=0)
    b = generate(8, image_size=48, seed=1)
    diff = np.abs(a["images"].astype(int) - b["images"].astype(int)).mean(axis=(1, 2, 3))
    assert np.all(diff > 10)
    assert not np.array_equal(a["age"], b["age"])
    assert np.abs(a["landmarks"] - b["landmarks"]).max() > 1.0


def test_shapes_dtypes_and_ranges():
    d = generate(60, image_size=64, seed=5)
    assert d["images"].shape == (60, 64, 64, 3) and d["images"].dtype == np.uint8
    assert d["age"].shape == (60,) and d["age"].dtype == np.float32
    assert d["gender"].shape == (60,) and d["gender"].dtype == np.int32
    assert d["landmarks"].shape == (60, 5, 2) and d["landmarks"].dtype == np.float32
    assert len(LANDMARK_NAMES) == 5
    assert d["age"].min() >= 0 and d["age"].max() <= 100
    np.testing.assert_array_equal(d["age"], np.round(d["age"]))
    assert set(d["gender"].tolist()) == {0, 1}
    assert np.all(np.isfinite(d["landmarks"]))
    # Real images: a wide range of values, not flat or saturated.
    assert d["images"].std(axis=(1, 2, 3)).min() > 15
    assert (d["images"] == 255).mean() < 0.01 and (d["images"] == 0).mean() < 0.01


def test_age_range_and_gender_p_are_honoured():
    d = generate(40, image_size=32, seed=2, age_range=(20, 30), gender_p=1.0)
    assert d["age"].min() >= 20 and d["age"].max() <= 30
    assert np.all(d["gender"] == 1)
    assert np.all(generate(20, image_size=32, seed=2, gender_p=0.0)["gender"] == 0)
    with pytest.raises(ValueError):
        generate(2, age_range=(50, 10))


def test_load_synthetic_returns_age_dataset():
    ds = load_synthetic(n=12, image_size=48, seed=4, start=3)
    assert isinstance(ds, AgeDataset) and ds.name == "synthetic"
    assert len(ds) == 12 and ds.in_memory and ds.has_gender and ds.has_landmarks
    assert ds.subject[0] == "synth_3" and ds.subject[-1] == "synth_14"
    assert len(set(ds.subject)) == 12
    np.testing.assert_array_equal(ds.images, generate(12, image_size=48, seed=4, start=3)["images"])
    assert ds.describe()["subjects"] == 12


def test_canonical_landmark_geometry():
    for age, _, _, _, params in _faces(150, seed=8, size=32):
        (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = params["canonical_landmarks"]
        assert lx < nx < rx and mlx < nx < mrx, age
        assert ly == ry and max(ly, ry) < ny < min(mly, mry), age


def test_landmarks_follow_the_pose_analytically():
    size = 96
    for _, _, _, landmarks, params in _faces(100, seed=9, size=size):
        pose = params["pose"]
        assert abs(pose["angle"]) <= 15 and 0.9 <= pose["scale"] <= 1.1
        assert np.all(np.abs(pose["shift"]) <= 0.08)
        t = np.deg2rad(pose["angle"])
        rot = pose["scale"] * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        canonical = params["canonical_landmarks"]  # normalised, continuous
        expected = ((canonical - 0.5) @ rot.T + 0.5 + pose["shift"]) * size - 0.5
        np.testing.assert_allclose(landmarks, expected, atol=1e-3)
        # The eye line is tilted by the pose angle (image y points down).
        dx, dy = landmarks[1] - landmarks[0]
        assert abs(np.degrees(np.arctan2(dy, dx)) - pose["angle"]) < 1e-2
        assert landmarks[0, 0] < landmarks[1, 0] and landmarks[3, 0] < landmarks[4, 0]
        assert np.all(landmarks > 2) and np.all(landmarks < size - 3)


def test_landmarks_match_marker_pixels():
    """A green disc painted on each canonical landmark ends up on the returned landmark."""
    size, errors = 128, []
    for i in range(40):

        def draw(markers):
            rng = np.random.default_rng([10, i])
            return render_face(int(rng.integers(0, 101)), int(rng.integers(2)), rng, size, markers=markers)

        image, landmarks = draw(markers=True)
        plain, plain_landmarks = draw(markers=False)
        np.testing.assert_array_equal(landmarks, plain_landmarks)
        far = np.ones((size, size), dtype=bool)
        image = image.astype("float64")
        for x, y in landmarks:
            x0, y0 = int(round(x)), int(round(y))
            ys, xs = np.mgrid[y0 - 5 : y0 + 6, x0 - 5 : x0 + 6]
            far[ys, xs] = False
            patch = image[ys, xs]
            green = np.clip(patch[..., 1] - np.maximum(patch[..., 0], patch[..., 2]) - 60, 0, None)
            assert green.sum() > 0
            errors.append([(green * xs).sum() / green.sum() - x, (green * ys).sum() / green.sum() - y])
        # Markers are the only difference from the normal rendering.
        np.testing.assert_array_equal(image[far], plain[far])
    errors = np.array(errors)
    assert np.abs(errors).max() < 0.75
    assert np.all(np.abs(errors.mean(axis=0)) < 0.1)


@pytest.fixture(scope="module")
def faces():
    return _faces(300, seed=11)


def test_hair_whiteness_and_forehead_lines_track_age(faces):
    """Two simple pixel statistics in eye-aligned faces correlate with age."""
    size, d = 96, 0.25 * 96
    eye_y, cx = 0.45 * 96, 48

    def box(x0, x1, y0, y1):  # in interocular distances from the eye-line centre
        return slice(int(eye_y + y0 * d), int(eye_y + y1 * d)), slice(int(cx + x0 * d), int(cx + x1 * d))

    ages, whiteness, lines = [], [], []
    for age, _, image, landmarks, _ in faces:
        face = _align(image, landmarks, size)
        lum = face.mean(axis=-1)
        skin = lum[box(-0.6, -0.3, 0.5, 0.8)].mean() + 1.0  # cheek, under the left eye
        whiteness.append(face[box(-0.6, 0.6, -1.35, -1.05)].min(axis=-1).mean() / skin)  # top of the head
        profile = lum[box(-0.45, 0.45, -0.85, -0.42)].mean(axis=1)  # forehead rows, averaged across
        lines.append(np.abs(np.diff(profile, 2)).mean() / skin)
        ages.append(age)
    ages = np.array(ages)
    assert _spearman(whiteness, ages) > 0.6
    assert _spearman(lines, ages) > 0.35
    old, young = ages >= 60, (ages >= 5) & (ages <= 25)
    assert np.median(np.array(whiteness)[old]) > 1.2 * np.median(np.array(whiteness)[young])
    assert np.median(np.array(lines)[old]) > 1.5 * np.median(np.array(lines)[young])


def test_children_have_larger_heads_and_lower_eyes(faces):
    ages = np.array([f[0] for f in faces])
    lm = np.stack([f[3] for f in faces])
    interocular = np.linalg.norm(lm[:, 1] - lm[:, 0], axis=1)
    eye_to_mouth = np.linalg.norm((lm[:, 3] + lm[:, 4]) / 2 - (lm[:, 0] + lm[:, 1]) / 2, axis=1)
    ratio = eye_to_mouth / interocular
    kids, adults = ages <= 6, (ages >= 25) & (ages <= 60)
    assert kids.sum() >= 10 and adults.sum() >= 50
    assert interocular[kids].mean() > 1.08 * interocular[adults].mean()
    assert np.median(ratio[kids]) < 0.9 < np.median(ratio[adults])
    assert _spearman(ratio[ages <= 20], ages[ages <= 20]) > 0.7
    # Face size comes from the canonical landmarks too (before the random scale).
    canonical = np.stack([f[4]["canonical_landmarks"] for f in faces])
    spacing = canonical[:, 1, 0] - canonical[:, 0, 0]
    assert spacing[kids].min() > spacing[adults].mean()


def test_beards_only_on_adult_men(faces):
    kinds = [f[4]["beard"] for f in faces]
    for (age, gender, *_), kind in zip(faces, kinds):
        if gender == 1 or age < 15:
            assert kind is None, (age, gender, kind)
    men = [(age, kind) for (age, gender, *_), kind in zip(faces, kinds) if gender == 0 and age >= 25]
    assert 0.4 < np.mean([k is not None for _, k in men]) < 0.9

    def chin_contrast(image, lm):
        """Colour distance between the chin and the skin between the eyes, over their brightness."""
        ys, xs = np.mgrid[: image.shape[0], : image.shape[1]]
        eye_mid, mouth = (lm[0] + lm[1]) / 2, (lm[3] + lm[4]) / 2
        down, iod = mouth - eye_mid, np.linalg.norm(lm[1] - lm[0])

        def patch(point, radius):
            inside = (xs - point[0]) ** 2 + (ys - point[1]) ** 2 <= radius**2
            return image[inside].astype("float64").mean(axis=0)

        chin, ref = patch(mouth + 0.3 * down, 0.08 * iod), patch(eye_mid + 0.15 * down, 0.1 * iod)
        return np.linalg.norm(chin - ref) / ref.mean()

    contrast = np.array([chin_contrast(f[2], f[3]) for f in faces])
    clean = np.array([g == 1 or a < 15 for a, g, *_ in faces])
    bearded = np.array([k in ("full", "goatee") for k in kinds])
    assert bearded.sum() >= 10
    assert np.percentile(contrast[clean], 95) < 0.3
    assert np.median(contrast[bearded]) > 0.45


def test_same_age_faces_differ():
    images, apparent, landmarks = [], [], []
    for i in range(30):
        image, lm, params = render_face(60, i % 2, np.random.default_rng([12, i]), 64, return_params=True)
        images.append(image.astype(int))
        apparent.append(params["apparent_age"])
        landmarks.append(lm)
    assert np.std(apparent) > 3.0  # hidden ageing rate: a label, many looks
    assert min(np.abs(images[0] - im).mean() for im in images[1:]) > 10
    assert np.std(np.stack(landmarks), axis=0).min() > 1.0
