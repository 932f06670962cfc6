"""Face detection and alignment (`agekeras.datasets.align`), with a fake detector
and, in slow tests, the real MTCNN."""

import csv

import numpy as np
import pytest
from PIL import Image

from agekeras.datasets import AgeDataset, load
from agekeras.datasets import align as A


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
