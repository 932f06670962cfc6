"""`python -m data_prep.align_faces`: the command line over `agekeras.datasets.align`
(the logic itself is tested in tests/datasets/test_align.py)."""

import numpy as np
from PIL import Image

from agekeras.datasets import AgeDataset, load
from agekeras.datasets import align
from data_prep import align_faces as A


def test_wrapper_exports_the_package_functions():
    assert A.write_landmarks_csv is align.write_landmarks_csv
    assert A.ensure_landmarks_csv is align.ensure_landmarks_csv
    assert A.HEADER == align.HEADER
    np.testing.assert_array_equal(A.ALIGN_TEMPLATE, align.TEMPLATES["dhaa"].points)


def test_main_reuses_an_existing_csv_and_writes_aligned_crops(tmp_path):
    mem = load("synthetic", n=2, image_size=96, seed=0)
    paths = []
    for i, im in enumerate(mem.images):
        paths.append(str(tmp_path / f"face_{i}.png"))
        Image.fromarray(im).save(paths[-1])
    ds = AgeDataset(name="files", age=mem.age, paths=paths, gender=mem.gender, landmarks=mem.landmarks)
    out = tmp_path / "marks.csv"
    align.write_landmarks_csv(ds, out, detector=object(), log=None)  # every face has the dataset's landmarks
    result = A.main(["utkface", "--data-dir", str(tmp_path), "--out", str(out), "--aligned-dir",
                     str(tmp_path / "aligned"), "--aligned-size", "48", "--aligned-template", "utkface"])
    aligned = load("csv", result["aligned_csv"])
    assert len(aligned) == 2 and Image.open(aligned.paths[0]).size == (48, 48)
    # utkface template (five points, least squares): the eyes land near it.
    want = align.TEMPLATES["utkface"].landmarks(48)[:2].mean(0)
    np.testing.assert_allclose(aligned.landmarks[0, :2].mean(0), want, atol=2.0)
