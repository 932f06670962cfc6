"""Age conventions (`agekeras.ages`) against hand-computed references."""

import numpy as np
import pytest

from agekeras.ages import class_index, expected_age, rank_class_probabilities


def test_rank_class_probabilities_differences_of_the_cumulative_sigmoids():
    # P(age > k) for K = 4 classes: 0.9, 0.6, 0.2 -> p = 0.1, 0.3, 0.4, 0.2
    logits = np.log(np.array([[0.9, 0.6, 0.2]]) / (1 - np.array([[0.9, 0.6, 0.2]])))
    np.testing.assert_allclose(rank_class_probabilities(logits), [[0.1, 0.3, 0.4, 0.2]], atol=1e-12)
    # Independent rank tasks need not be monotone: 0.3 then 0.5 gives -0.2, clipped to 0 and renormalised.
    logits = np.log(np.array([0.3, 0.5]) / (1 - np.array([0.3, 0.5])))
    raw = np.array([0.7, 0.0, 0.5])
    np.testing.assert_allclose(rank_class_probabilities(logits), raw / raw.sum(), atol=1e-12)
    # Batch dimensions of any rank; each row sums to 1.
    p = rank_class_probabilities(np.random.default_rng(0).normal(size=(2, 3, 6)))
    assert p.shape == (2, 3, 7) and np.allclose(p.sum(-1), 1.0)


@pytest.mark.parametrize("age_min", [0, 16])
def test_expected_age_and_class_index_with_an_age_offset(age_min):
    probs = np.array([[0.25, 0.5, 0.25], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(expected_age(probs, age_min), [age_min + 1.0, age_min + 0.0])
    idx = np.asarray(class_index(np.array([age_min - 5.0, age_min + 1.4, age_min + 1.6, age_min + 99.0]), age_min, 3))
    np.testing.assert_array_equal(idx, [0, 1, 2, 2])


def _save(path, seed=0):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)


def test_gender_and_race_names_are_the_codes_the_datasets_document(tmp_path):
    """UTKFace file names: gender 0 male, 1 female; race 0 White, 1 Black, 2 Asian,
    3 Indian, 4 Others. AFAD folders: 111 male, 112 female. Words in a CSV
    (MORPH's M/F and W/B/A/H/O) and the synthetic faces' `gender_p` (the share
    of women) map to the same codes."""
    from agekeras.ages import GENDER_NAMES, RACE_NAMES
    from agekeras.datasets import load

    assert GENDER_NAMES == {0: "male", 1: "female"}
    assert RACE_NAMES == {0: "white", 1: "black", 2: "asian", 3: "indian", 4: "others"}
    utk = {"30_0_3_20170116174525125.jpg.chip.jpg": ("male", "indian"),
           "31_1_1_20170116174525126.jpg.chip.jpg": ("female", "black"),
           "32_1_2_20170116174525127.jpg.chip.jpg": ("female", "asian"),
           "33_0_0_20170116174525128.jpg.chip.jpg": ("male", "white"),
           "34_0_4_20170116174525129.jpg.chip.jpg": ("male", "others")}
    for i, name in enumerate(utk):
        _save(tmp_path / "UTKFace" / name, i)
    ds = load("utkface", tmp_path / "UTKFace")
    got = {p.split("/")[-1]: (GENDER_NAMES[g], RACE_NAMES[r]) for p, g, r in zip(ds.paths, ds.gender, ds.race)}
    assert got == utk
    _save(tmp_path / "AFAD" / "20" / "111" / "a.jpg")
    _save(tmp_path / "AFAD" / "21" / "112" / "b.jpg", 1)
    ds = load("afad", tmp_path / "AFAD")
    assert {int(a): GENDER_NAMES[g] for a, g in zip(ds.age, ds.gender)} == {20: "male", 21: "female"}
    for i in range(4):
        _save(tmp_path / "table" / f"{i}.png", i)
    (tmp_path / "table" / "faces.csv").write_text("path,age,gender,race\n0.png,20,F,B\n1.png,21,male,asian\n"
                                                  "2.png,22,m,W\n3.png,23,female,H\n")
    ds = load("csv", tmp_path / "table" / "faces.csv")
    assert [(GENDER_NAMES[g], RACE_NAMES[r]) for g, r in zip(ds.gender, ds.race)] == [
        ("female", "black"), ("male", "asian"), ("male", "white"), ("female", "others")]
    for share, name in ((0.0, "male"), (1.0, "female")):
        assert {GENDER_NAMES[g] for g in load("synthetic", n=3, image_size=32, gender_p=share).gender} == {name}


def test_adience_groups_and_their_names():
    from agekeras.ages import ADIENCE_GROUP_NAMES, ADIENCE_GROUPS, nearest_group

    assert ADIENCE_GROUP_NAMES == ("0-2", "4-6", "8-13", "15-20", "25-32", "38-43", "48-53", "60-100")
    assert [ADIENCE_GROUP_NAMES[g] for g in nearest_group([1, 5, 10, 18, 30, 40, 50, 70])] == list(ADIENCE_GROUP_NAMES)
    assert len(ADIENCE_GROUPS) == 8
    # Other groups: a gap goes to the nearer edge (a tie to the first).
    assert nearest_group([3, 5, 6, 7, 9, 25], groups=((0, 4), (8, 20))).tolist() == [0, 0, 0, 1, 1, 1]


def test_age_prior_counts_classes_from_age_min_with_its_smoothing():
    from agekeras.ages import age_prior

    p = age_prior([20, 20, 22.4, 19, 40], age_min=20, num_classes=4, smoothing=0.5)  # 19 -> class 0, 40 -> class 3
    np.testing.assert_allclose(p, np.array([3.5, 0.5, 1.5, 1.5]) / 7.0)
