"""Face detection, alignment maths and batch jobs (`agekeras.datasets.align`), with a
fake detector and, in slow tests, the real MTCNN. Reading images: test_images.py."""

import csv
import pathlib

import numpy as np
import pytest
from PIL import Image

from agekeras.datasets import AgeDataset, load
from agekeras.datasets import align as A
from agekeras.face_template import CANONICAL, MIRROR_ORDER
from agekeras.layers.aligned_region_pooling import canonical_landmarks

pytestmark = pytest.mark.usefixtures("agekeras_cache")


def synthetic_files(tmp_path, n=4, size=128, seed=0):
    """n synthetic faces written as PNG files: a file-backed AgeDataset
    with the exact landmarks kept aside."""
    mem = load("synthetic", n=n, image_size=size, seed=seed)
    paths = []
    for i, im in enumerate(mem.images):
        paths.append(str(tmp_path / f"face_{i}.png"))
        Image.fromarray(im).save(paths[-1])
    ds = AgeDataset(name="files", age=mem.age, paths=paths, gender=mem.gender)
    return ds, mem.landmarks


class FakeDetector:
    """Rows [image, x1, y1, x2, y2, conf, 5 x, 5 y] per image, by file order:
    0: one face; 1: none; 2: two faces (the larger must win); 3: one face
    below the confidence threshold (so: not found)."""

    def __init__(self, truth):
        self.truth = truth
        self.seen = 0

    def detect_faces(self, images, box_format="xyxy", output_type="numpy"):
        assert box_format == "xyxy" and output_type == "numpy"
        rows = []
        for j in range(len(images)):
            k = self.seen + j
            pts = self.truth[k]
            face = [j, 10, 10, 110, 110, 0.99, *pts[:, 0], *pts[:, 1]]
            if k == 0:
                rows.append(face)
            elif k == 2:
                rows.append([j, 0, 0, 20, 20, 0.999, *(pts[:, 0] + 50), *(pts[:, 1] + 50)])
                rows.append(face)
            elif k == 3:
                rows.append([*face[:5], 0.5, *face[6:]])
        self.seen += len(images)
        return np.array(rows, dtype="float64").reshape(-1, 16)


class NoFaces:
    def detect_faces(self, images, box_format="xyxy", output_type="numpy"):
        return np.empty((0, 16))


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("missing", ["fill", "nan", "drop"])
def test_csv_format_and_listing_of_faces_not_found(tmp_path, missing):
    ds, truth = synthetic_files(tmp_path)
    out = tmp_path / "marks" / "files.csv"
    result = A.write_landmarks_csv(ds, out, detector=FakeDetector(truth), missing=missing, keep_existing=False,
                                   log=None)  # fmt: skip
    assert result["detected"] == 2 and sorted(result["not_found"]) == [ds.paths[1], ds.paths[3]]
    listed = read_rows(result["not_found_csv"])
    assert [r["path"] for r in listed] == [ds.paths[1], ds.paths[3]]
    assert all(r["reason"] == "no face found by MTCNN" and r["handled"] == missing for r in listed)
    rows = read_rows(out)
    assert list(rows[0]) == A.HEADER
    loaded = load("csv", out)
    kept = [0, 2] if missing == "drop" else [0, 1, 2, 3]
    assert len(loaded) == len(kept)
    np.testing.assert_allclose(loaded.age, ds.age[kept], atol=1e-3)
    np.testing.assert_array_equal(loaded.gender, ds.gender[kept])
    # Detected faces: the (larger) face's points, to the CSV's 0.01 px.
    np.testing.assert_allclose(loaded.landmarks[0], truth[0], atol=0.006)
    np.testing.assert_allclose(loaded.landmarks[kept.index(2)], truth[2], atol=0.006)
    sources = [r["source"] for r in rows]
    if missing == "fill":
        assert sources == ["mtcnn", "filled", "mtcnn", "filled"] and loaded.has_landmarks
        median = np.median(truth[[0, 2]], axis=0)  # same image sizes: the median in pixels
        np.testing.assert_allclose(loaded.landmarks[1], median, atol=0.006)
    elif missing == "nan":
        assert sources == ["mtcnn", "none", "mtcnn", "none"]
        assert np.isnan(loaded.landmarks[[1, 3]]).all() and np.isfinite(loaded.landmarks[[0, 2]]).all()
    else:
        assert sources == ["mtcnn", "mtcnn"]


def test_existing_landmarks_are_kept_and_bad_arguments(tmp_path):
    ds, truth = synthetic_files(tmp_path, n=2)
    ds.landmarks = truth.copy()
    ds.landmarks[1] = np.nan
    result = A.write_landmarks_csv(ds, tmp_path / "x.csv", detector=NoFaces(), log=None)
    assert result["existing"] == 1 and result["detected"] == 0 and result["not_found"] == [ds.paths[1]]
    assert [r["source"] for r in read_rows(tmp_path / "x.csv")] == ["dataset", "filled"]
    np.testing.assert_allclose(load("csv", tmp_path / "x.csv").landmarks, np.stack([truth[0]] * 2), atol=0.006)
    with pytest.raises(ValueError, match="missing"):
        A.write_landmarks_csv(ds, tmp_path / "y.csv", detector=NoFaces(), missing="skip")


def test_similarity_alignment_puts_eyes_and_lip_on_the_template(tmp_path):
    ds, truth = synthetic_files(tmp_path, n=2)
    pts = truth[0].astype("float64")
    m = A.similarity_to_template(pts, 100)
    assert np.isclose(np.linalg.det(m[:, :2]), (m[0, 0] ** 2 + m[0, 1] ** 2))  # rotation * uniform scale
    moved = np.c_[np.stack([pts[0], pts[1], pts[3:5].mean(0)]), np.ones(3)] @ m.T
    assert np.abs(moved - A.TEMPLATES["dhaa"].points * 100).max() < 3.0  # 3 points, 4 dof: least squares
    result = A.write_landmarks_csv(ds, tmp_path / "m.csv", detector=FakeDetector(np.stack([truth[0]] * 2)),
                                   missing="drop", keep_existing=False, log=None)  # fmt: skip
    aligned = load("csv", A.write_aligned_crops(result["csv"], tmp_path / "aligned", size=64, log=None))
    assert len(aligned) == 1 and Image.open(aligned.paths[0]).size == (64, 64)
    eyes = aligned.landmarks[0, :2] + 0.5
    np.testing.assert_allclose(eyes.mean(0), (A.TEMPLATES["dhaa"].points[:2] * 64).mean(0), atol=3.0)


@pytest.mark.slow
def test_mtcnn_on_synthetic_cartoon_faces(tmp_path):
    """The real detector, offline. MTCNN finds some of the cartoon faces;
    where it does, its points are within a few pixels of the exact ones."""
    pytest.importorskip("mtcnn")
    ds, truth = synthetic_files(tmp_path, n=6, size=128)
    result = A.write_landmarks_csv(ds, tmp_path / "m.csv", missing="nan", keep_existing=False,
                                   min_confidence=0.8, log=None)  # fmt: skip
    loaded = load("csv", tmp_path / "m.csv")
    found = np.all(np.isfinite(loaded.landmarks), axis=(1, 2))
    assert found.sum() == result["detected"] >= 2
    assert len(result["not_found"]) == (~found).sum()
    err = np.linalg.norm(loaded.landmarks[found] - truth[found], axis=-1)
    # Pixels at 128 px (eye distance ~22 px): eyes within 3 px, every point
    # within 7 px (a cartoon mouth corner is where MTCNN disagrees most).
    assert err[:, :2].max() < 3.0 and err.max() < 7.0, err
    assert np.median(err) < 2.5, err


# ----- detection and alignment ---------------------------------------------------------


def _face(size=128, seed=0):
    mem = load("synthetic", n=1, image_size=size, seed=seed)
    return mem.images[0], mem.landmarks[0].astype("float64")


def _row(box, conf, pts):
    return [*box, conf, *pts[:, 0], *pts[:, 1]]


def test_select_faces_orders_by_size_and_counts_tiny_faces():
    _, pts = _face()
    rows = np.array([
        _row([0, 0, 10, 10], 0.99, pts * 0.1),       # tiny
        _row([10, 10, 60, 70], 0.95, pts),            # small
        _row([0, 0, 120, 120], 0.97, pts),            # large
        _row([0, 0, 100, 100], 0.50, pts),            # not confident
    ])
    found = A.select_faces(rows, min_confidence=0.9, min_face=20)
    assert [f.box[2] for f in found.faces] == [120, 60] and found.tiny == 1
    assert found.faces[0].landmarks.shape == (5, 2)
    assert A.select_faces(np.empty((0, 15))).faces == []


def test_alignment_undoes_rotation_scale_and_shift():
    image, pts = _face(128)
    # Rotate the face by 25 degrees, shrink it and move it in a larger photo.
    angle = np.deg2rad(25)
    rot = 0.7 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    m = np.c_[rot, [80.0, 40.0]]
    photo = A.warp(image, m, 260)
    moved = A.apply_transform(m, pts + 0.5) - 0.5
    for name in ("utkface", "dhaa"):
        t = A.TEMPLATES[name]
        crop, out = A.align_face(photo, moved, name)
        assert crop.shape == (t.size, t.size, 3)
        # The similarity recovers the face up to its own shape: the same
        # crop as aligning the unrotated face.
        ref_crop, ref = A.align_face(image, pts, name)
        np.testing.assert_allclose(out, ref, atol=1e-3)
        assert np.abs(crop.astype(int) - ref_crop).mean() < 12
    # The template's landmarks are a fixed point of the alignment.
    t = A.TEMPLATES["utkface"]
    _, same = A.align_face(np.zeros((200, 200, 3), "uint8"), t.landmarks(), t)
    np.testing.assert_allclose(same, t.landmarks(), atol=1e-4)


def test_similarity_transform_and_fit_template():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(5, 2))
    a = np.deg2rad(-40)
    m_true = np.c_[1.7 * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]), [3.0, -2.0]]
    np.testing.assert_allclose(A.similarity_transform(src, A.apply_transform(m_true, src)), m_true, atol=1e-9)
    # Faces that are exact similarity copies of the template: zero residual,
    # the template is recovered; noise of 1 px gives ~1 px of residual.
    t = A.TEMPLATES["utkface"]
    base = t.landmarks(200)
    copies = np.stack([A.apply_transform(np.c_[np.eye(2) * s, [0, 0]], base + 0.5) - 0.5 for s in (1.0, 1.0, 1.0)])
    points, residual = A.fit_template(copies, 200)
    np.testing.assert_allclose(points, t.points, atol=1e-9)
    assert residual.max() < 1e-6
    noisy = base[None] + rng.normal(scale=1.0, size=(200, 5, 2))
    noisy[0] = np.nan  # ignored
    points, residual = A.fit_template(noisy, 200)
    assert len(residual) == 199 and 0.5 < residual.mean() < 1.5
    with pytest.raises(ValueError, match="Unknown alignment"):
        A.get_template("ffhq")


class ShapeDetector:
    """Fake MTCNN: the faces of an image are looked up by its shape; counts calls."""

    def __init__(self, table):
        self.table, self.calls = table, 0

    def detect_faces(self, images, box_format="xyxy", output_type="numpy"):
        self.calls += 1
        rows = []
        for j, im in enumerate(images):
            for r in self.table.get(im.shape[:2], []):
                rows.append([j, *r])
        return np.array(rows, dtype="float64").reshape(-1, 16)


def test_detect_faces_and_the_detection_cache(tmp_path):
    image, pts = _face(128)
    two = np.concatenate([image, image], axis=1)  # 128 x 256: two faces
    det = ShapeDetector({
        (128, 128): [_row([20, 20, 110, 110], 0.99, pts)],
        (128, 256): [_row([20, 20, 110, 110], 0.99, pts), _row([148, 20, 238, 110], 0.98, pts + [128, 0])],
    })
    found = A.detect_faces([image, two, np.zeros((50, 60, 3), "uint8")], det)
    assert [len(f.faces) for f in found] == [1, 2, 0]
    np.testing.assert_allclose(found[0].faces[0].landmarks, pts)
    # Large photos are shrunk for the detector; coordinates come back in the photo's pixels.
    big = np.asarray(Image.fromarray(image).resize((512, 512)))
    det_small = ShapeDetector({(128, 128): [_row([20, 20, 110, 110], 0.99, pts)]})
    got = A.detect_faces([big], det_small, max_side=128)[0].faces[0].landmarks
    np.testing.assert_allclose(got, (pts + 0.5) * 4 - 0.5, atol=1e-6)
    # The cache: a second pass does not call the detector; a changed file is redone.
    paths = []
    for k, im in enumerate([image, two]):
        paths.append(str(tmp_path / f"p{k}.png"))
        Image.fromarray(im).save(paths[-1])
    (tmp_path / "bad.png").write_text("no")
    paths.append(str(tmp_path / "bad.png"))
    cache = A.DetectionCache(tmp_path / "cache")
    rows, errors, _ = A.detect_file_rows(paths, det, cache=cache)
    assert [len(r) for r in rows[:2]] == [1, 2] and rows[2] is None and list(errors) == [paths[2]]
    calls = det.calls
    rows2, _, _ = A.detect_file_rows(paths[:2], det, cache=A.DetectionCache(tmp_path / "cache"))
    assert det.calls == calls
    np.testing.assert_allclose(rows2[1], rows[1], atol=1e-3)
    Image.fromarray(two[:, :128]).save(paths[1])  # changed: now one face
    rows3, _, _ = A.detect_file_rows(paths[:2], det, cache=A.DetectionCache(tmp_path / "cache"))
    assert det.calls > calls and len(rows3[1]) == 1


def test_aligned_dataset_counts_missed_faces(tmp_path):
    image, pts = _face(128)
    paths = []
    for k, im in enumerate([image, np.zeros((100, 90, 3), "uint8")]):
        paths.append(str(tmp_path / f"p{k}.png"))
        Image.fromarray(im).save(paths[-1])
    ds = AgeDataset(name="files", age=np.array([20.0, 30.0]), paths=paths)
    det = ShapeDetector({(128, 128): [_row([20, 20, 110, 110], 0.99, pts)]})
    out, report = A.aligned_dataset(ds, "utkface", size=64, detector=det, cache=A.DetectionCache(tmp_path / "c"))
    assert out.images.shape == (2, 64, 64, 3) and report["faces_missed"] == 1 and report["missed"] == [paths[1]]
    np.testing.assert_allclose(out.age, ds.age)
    assert np.isfinite(out.landmarks).all()


def test_landmarks_csv_reuses_cached_detections_and_lists_unreadable_files(tmp_path):
    ds, truth = synthetic_files(tmp_path, n=3)
    pathlib.Path(ds.paths[2]).write_text("not a picture")
    det = ShapeDetector({(128, 128): [_row([10, 10, 110, 110], 0.99, truth[0])]})
    first = A.write_landmarks_csv(ds, tmp_path / "a.csv", detector=det, keep_existing=False, log=None)
    assert first["detected"] == 2 and first["not_found"] == [ds.paths[2]]
    listed = read_rows(first["not_found_csv"])
    assert "not an image" in listed[0]["reason"] and listed[0]["handled"] == "nan"
    assert [r["source"] for r in read_rows(tmp_path / "a.csv")] == ["mtcnn", "mtcnn", "none"]
    calls = det.calls
    A.write_landmarks_csv(ds, tmp_path / "b.csv", detector=det, keep_existing=False, log=None)
    assert det.calls == calls  # every readable file's detections came from the cache
    again, before = read_rows(tmp_path / "b.csv"), read_rows(tmp_path / "a.csv")
    assert [r["source"] for r in again] == [r["source"] for r in before]
    marks = [[float(r[f"{a}{k}"]) for k in range(5) for a in ("lx", "ly")] for r in again[:2] + before[:2]]
    np.testing.assert_allclose(marks[:2], marks[2:], atol=0.011)  # the cache keeps 0.001 px


def test_dhaa_template_frames_the_canonical_face_of_the_layers():
    """One canonical face (`agekeras.face_template`): the "dhaa" crops put the
    eyes and the upper lip where AlignedRegionPooling expects them."""
    size = 256
    on_layer = canonical_landmarks(size)
    np.testing.assert_allclose(A.TEMPLATES["dhaa"].points * size - 0.5, A.eyes_and_lip(on_layer), atol=1e-9)
    _, moved = A.align_face(np.zeros((300, 300, 3), "uint8"), on_layer * 1.1 + 7, "dhaa", size)
    np.testing.assert_allclose(A.eyes_and_lip(moved), A.eyes_and_lip(on_layer), atol=1e-3)
    # Mirroring the canonical face about its centre gives the canonical face.
    mirrored = CANONICAL[list(MIRROR_ORDER)] * [-1, 1]
    np.testing.assert_allclose(mirrored, CANONICAL, atol=1e-12)


def test_align_stands_apart_and_imports_mtcnn_lazily():
    import subprocess
    import sys

    code = ("import sys, agekeras.datasets.align; "
            "bad = [m for m in sys.modules if m.startswith(('agekeras.models', 'agekeras.training', "
            "'agekeras.plots', 'mtcnn'))]; print(bad); sys.exit(bool(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
