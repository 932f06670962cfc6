"""Readers on tiny fixture folders, `load` errors, and the real shared copies."""

import logging
import pathlib

import numpy as np
import pytest

from agekeras import datasets
from agekeras.datasets import readers

from . import fixtures

pytestmark = pytest.mark.usefixtures("agekeras_cache")


def by_name(ds):
    return {pathlib.Path(p).name: i for i, p in enumerate(ds.paths)}


# ---------------------------------------------------------------- UTKFace


def test_utkface_parses_names_and_skips_bad_ones(tmp_path):
    good = fixtures.make_utkface(tmp_path)
    ds = readers.read_utkface(tmp_path)
    assert len(ds) == len(good) == 6
    idx = by_name(ds)
    for name, (age, gender, race) in good.items():
        i = idx[pathlib.Path(name).name]
        assert (ds.age[i], ds.gender[i], ds.race[i]) == (age, gender, race)
    assert np.all(ds.subject == "")
    assert not ds.official
    assert ds.skipped.counts == {"unparseable name": 2, "age out of range": 1}
    assert "61_1_20170109142408075.jpg.chip.jpg" in ds.skipped.examples["unparseable name"]


def test_utkface_age_range_is_configurable(tmp_path):
    fixtures.make_utkface(tmp_path)
    ds = readers.read_utkface(tmp_path, min_age=18, max_age=120)
    assert sorted(ds.age.tolist()) == [25, 33, 40, 80, 116, 117]
    assert ds.skipped.counts["age out of range"] == 1


def test_utkface_in_the_wild_landmarks(tmp_path):
    fixtures.save_image(tmp_path / "part1" / "30_1_0_20170103200329407.jpg")
    fixtures.save_image(tmp_path / "part1" / "31_1_0_20170103200329408.jpg")
    pts = np.arange(136, dtype=float).reshape(68, 2)
    line = "30_1_0_20170103200329407.jpg " + " ".join(map(str, pts.ravel()))
    fixtures.write(tmp_path / "landmark_list_part1.txt", line + "\n")
    ds = readers.read_utkface(tmp_path)
    i, j = by_name(ds)["30_1_0_20170103200329407.jpg"], by_name(ds)["31_1_0_20170103200329408.jpg"]
    np.testing.assert_allclose(ds.landmarks[i], readers.ibug68_to_5(pts))
    np.testing.assert_allclose(ds.landmarks[i][0], pts[36:42].mean(0))
    np.testing.assert_allclose(ds.landmarks[i][2], pts[30])
    assert np.all(np.isnan(ds.landmarks[j]))


# ---------------------------------------------------------------- AFAD


@pytest.mark.parametrize("name", ["afad", "afad_lite"])
def test_afad_folders(tmp_path, name):
    fixtures.make_afad(tmp_path)  # tmp_path/AFAD-Lite/<age>/<111|112>/
    ds = datasets.load(name, tmp_path, validate=False)
    assert ds.name == name
    got = sorted(
        (pathlib.Path(p).name, a, g)
        for p, a, g in zip(ds.paths, ds.age.tolist(), ds.gender.tolist(), strict=True)
    )
    assert got == [("a.jpg", 18, 0), ("b.jpg", 18, 1), ("c.jpg", 18, 1), ("d.jpg", 22, 0)]
    assert ds.skipped.total == 0


def test_afad_wrong_folder_says_layout(tmp_path):
    fixtures.save_image(tmp_path / "x" / "y.jpg")
    with pytest.raises(FileNotFoundError, match="111 male, 112 female"):
        readers.read_afad(tmp_path)


# ---------------------------------------------------------------- FG-NET


def test_fgnet_names_annotations_and_points(tmp_path):
    fixtures.make_fgnet(tmp_path)
    ds = readers.read_fgnet(tmp_path)
    idx = by_name(ds)
    assert len(ds) == 5
    assert [ds.subject[idx[n]] for n in ("001A02.JPG", "001A43a.JPG", "001a43b.jpg", "002A10.JPG")] == [
        "001", "001", "001", "002"
    ]  # fmt: skip
    assert ds.age[idx["001A43a.JPG"]] == 43 and ds.age[idx["001a43b.jpg"]] == 43
    assert ds.age[idx["002A61.JPG"]] == 60  # annotations.csv wins over the name
    assert ds.skipped.counts == {"unparseable name": 1}
    expected = np.array([[10, 12], [22, 12], [16, 18], [11, 25], [21, 25]], dtype="float32")
    for name in ("001A02.JPG", "001A43a.JPG", "001a43b.jpg", "002A10.JPG"):
        np.testing.assert_allclose(ds.landmarks[idx[name]], expected)
    assert np.all(np.isnan(ds.landmarks[idx["002A61.JPG"]]))  # no .pts file
    assert len(np.unique(ds.subject)) == 2


def test_fgnet_without_annotations_uses_names(tmp_path):
    fixtures.make_fgnet(tmp_path, annotations=False)
    ds = readers.read_fgnet(tmp_path)
    assert ds.age[by_name(ds)["002A61.JPG"]] == 61


# ---------------------------------------------------------------- Adience


@pytest.mark.parametrize(
    "label, group",
    [("(0, 2)", "0-2"), ("2", "0-2"), ("3", "0-2"), ("(4, 6)", "4-6"), ("(8, 12)", "8-13"), ("13", "8-13"),
     ("(8, 23)", "15-20"), ("22", "15-20"), ("(15, 20)", "15-20"), ("23", "25-32"), ("(27, 32)", "25-32"),
     ("35", "25-32"), ("36", "38-43"), ("(38, 42)", "38-43"), ("(38, 48)", "38-43"), ("45", "38-43"),
     ("46", "48-53"), ("56", "48-53"), ("57", "60-100"), ("(60, 100)", "60-100")],
)  # fmt: skip
def test_adience_group_mapping(label, group):
    assert readers.ADIENCE_GROUP_NAMES[readers.adience_group(label)] == group


@pytest.mark.parametrize("label", ["None", "", "unknown", "(1, 2, 3)", "150"])
def test_adience_unmappable_labels(label):
    assert readers.adience_group(label) == -1


@pytest.mark.parametrize(
    "folder, prefix", [("faces", "coarse_tilt_aligned_face"), ("aligned", "landmark_aligned_face")]
)
def test_adience_folds(tmp_path, folder, prefix):
    labels = fixtures.make_adience(tmp_path, folder=folder, prefix=prefix)
    ds = readers.read_adience(tmp_path)
    assert len(ds) == 10
    assert ds.group_names == readers.ADIENCE_GROUP_NAMES
    assert sorted(ds.official) == [f"fold_{k}" for k in range(5)]
    for k in range(5):
        rows = ds.official[f"fold_{k}"]
        assert sorted(ds.subject[rows]) == [f"user{k}_0", f"user{k}_1"]
    expected_groups = [readers.adience_group(label) for label in labels]
    assert ds.group.tolist() == expected_groups
    midpoints = [(lo + hi) / 2 for lo, hi in readers.ADIENCE_GROUPS]
    np.testing.assert_allclose(ds.age, [midpoints[g] for g in expected_groups])
    assert ds.gender.tolist() == [0, 1, -1, 1, 0, -1, 0, 1, 0, 1]
    assert ds.skipped.counts == {"unmappable age label": 1, "missing file": 1}
    assert all(f"/{folder}/" in p for p in ds.paths)


# ---------------------------------------------------------------- MegaAge, LAP, APPA-REAL


def test_megaage_official_lists(tmp_path):
    fixtures.make_megaage(tmp_path)
    ds = readers.read_megaage_asian(tmp_path)
    assert ds.age[ds.official["train"]].tolist() == [10, 20, 30]
    assert ds.age[ds.official["test"]].tolist() == [5, 70]
    assert all("/test/" in p for p in ds.paths[ds.official["test"]])


def test_megaage_misaligned_lists_raise(tmp_path):
    fixtures.make_megaage(tmp_path)
    fixtures.write(tmp_path / "megaage_asian" / "list" / "test_age.txt", "5\n")
    with pytest.raises(ValueError, match="2 names but 1 ages"):
        readers.read_megaage_asian(tmp_path)


def test_lap2015_headerless_semicolons(tmp_path):
    fixtures.make_lap2015(tmp_path)
    ds = readers.read_lap2015(tmp_path)
    assert sorted(ds.official) == ["train", "valid"]
    np.testing.assert_allclose(ds.age[ds.official["train"]], [20.5, 21.5, 22.5])
    np.testing.assert_allclose(ds.age_std[ds.official["valid"]], [3.25, 4.25])
    assert all("/Validation/" in p for p in ds.paths[ds.official["valid"]])


def test_lap2016_column_variants(tmp_path):
    for split in ("train", "valid"):
        fixtures.save_image(tmp_path / split / f"{split}_1.jpg")
    fixtures.write(tmp_path / "train_gt.csv", "image,mean,stdv\ntrain_1.jpg,33.3,5.5\n")
    fixtures.write(
        tmp_path / "valid_gt.csv", "Image Name\tApparent Age\tSTD\nvalid_1.jpg\t12\t2\nnope.jpg\t30\t1\n"
    )
    ds = readers.read_lap2016(tmp_path)
    np.testing.assert_allclose(ds.age, [33.3, 12])
    np.testing.assert_allclose(ds.age_std, [5.5, 2])
    assert ds.skipped.counts == {"missing file": 1}


def test_appa_real(tmp_path):
    fixtures.make_appa(tmp_path)
    ds = readers.read_appa_real(tmp_path)  # finds appa-real-release/, ignores per-rating gt_*.csv
    assert {k: len(v) for k, v in ds.official.items()} == {"train": 3, "valid": 2, "test": 2}
    np.testing.assert_allclose(ds.age[ds.official["train"]], [30.5, 31.5, 32.5])
    np.testing.assert_allclose(ds.age_std[ds.official["test"]], [4.0, 5.0])
    real = readers.read_appa_real(tmp_path, target="real", face_crops=True)
    np.testing.assert_allclose(real.age[real.official["train"]], [31, 32, 33])
    assert all(p.endswith(".jpg_face.jpg") for p in real.paths)


# ---------------------------------------------------------------- MORPH II, CSV


def test_morph2_csv(tmp_path):
    fixtures.make_morph(tmp_path)
    ds = datasets.load("morph2", tmp_path, validate=False)
    assert len(ds) == 12
    assert ds.skipped.counts == {"missing file": 1}
    assert ds.race.tolist() == [r for r in (0, 0, 1, 0, 4, 0) for _ in range(2)]
    assert ds.gender.tolist() == [g for g in (1, 0, 1, 0, 1, 0) for _ in range(2)]
    assert ds.subject[:4].tolist() == ["000000", "000000", "000001", "000001"]
    assert ds.age[::2].tolist() == [20, 21, 22, 23, 24, 25]
    assert not ds.official


def test_generic_csv_with_landmarks(tmp_path):
    fixtures.save_image(tmp_path / "img" / "a.png", fmt="PNG")
    fixtures.save_image(tmp_path / "img" / "b.jpg")
    header = "path,age,gender,subject,race,age_std," + ",".join(f"lx{k},ly{k}" for k in range(5))
    marks = ",".join(str(v) for v in range(10))
    fixtures.write(
        tmp_path / "labels.csv",
        f"{header}\nimg/a.png,31.5,f,s1,2,1.5,{marks}\nimg/b.jpg,7,0,s2,,,{marks}\nimg/c.jpg,8,1,s3,,,{marks}\nimg/b.jpg,,1,s4,,,{marks}\n",
    )
    ds = datasets.load("csv", tmp_path / "labels.csv", validate=False)
    assert ds.age.tolist() == [31.5, 7]
    assert ds.gender.tolist() == [1, 0]
    assert ds.subject.tolist() == ["s1", "s2"]
    assert ds.race.tolist() == [2, -1]
    assert ds.age_std[0] == 1.5 and np.isnan(ds.age_std[1])
    np.testing.assert_allclose(ds.landmarks[0], np.arange(10).reshape(5, 2))
    assert ds.has_landmarks
    assert ds.skipped.counts == {"missing file": 1, "missing age": 1}
    assert datasets.load("csv", tmp_path, validate=False).age.tolist() == [31.5, 7]  # folder with one CSV


# ---------------------------------------------------------------- load()


def test_available_and_unknown_name():
    names = datasets.available()
    for name in ("synthetic", "utkface", "afad", "afad_lite", "fgnet", "adience", "megaage_asian",
                 "lap2015", "lap2016", "appa_real", "morph2", "csv"):  # fmt: skip
        assert name in names
    with pytest.raises(ValueError, match="choose from .*utkface"):
        datasets.load("imdb_wiki", "/nowhere")


@pytest.mark.parametrize(
    "name, hint",
    [("afad_lite", "`python -m agekeras download afad_lite --out"), ("adience", "talhassner"),
     ("utkface", "`python -m agekeras download utkface` prints how")],  # fmt: skip
)
def test_missing_or_empty_dir_says_how_to_get_data(tmp_path, name, hint):
    with pytest.raises(FileNotFoundError, match="Expected layout") as info:
        datasets.load(name, tmp_path / "missing")
    assert hint in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="missing or empty"):
        datasets.load(name, tmp_path / "empty")


def test_default_data_dir_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("AGEKERAS_DATA", str(tmp_path))
    fixtures.make_afad(tmp_path / "afad_lite")
    assert len(datasets.load("afad_lite")) == 4


def test_in_memory_dataset_loads_lazily():
    ds = datasets.load("synthetic", n=4, image_size=32, seed=0)
    assert ds.in_memory and len(ds) == 4
    assert datasets.image_sizes(ds).tolist() == [[32, 32]] * 4


def test_load_warns_once_with_counts(tmp_path, caplog):
    fixtures.make_utkface(tmp_path, broken=True)
    with caplog.at_level(logging.INFO, logger="agekeras.datasets"):
        ds = datasets.load("utkface", tmp_path)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert message.startswith("utkface: skipped 7 rows: ")
    for reason in ("2 unparseable name", "1 age out of range", "1 empty file", "1 truncated image",
                   "1 not an image", "1 corrupt image"):  # fmt: skip
        assert reason in message
    assert len(ds) == 6


# ---------------------------------------------------------------- real shared copies


@pytest.mark.integration
def test_utkface_dev(utkface_dev_dir, agekeras_cache, monkeypatch):
    from agekeras.datasets import validate

    assert len(list(utkface_dev_dir.iterdir())) == 7812
    ds = datasets.load("utkface", utkface_dev_dir)
    assert len(ds) == 7811
    assert ds.skipped.as_dict() == {
        "unparseable name": {"count": 1, "examples": ["61_1_20170109142408075.jpg.chip.jpg"]}
    }
    assert set(np.unique(ds.gender)) == {0, 1} and set(np.unique(ds.race)) == {0, 1, 2, 3, 4}
    assert 1 <= ds.age.min() and ds.age.max() <= 116
    assert np.all(datasets.image_sizes(ds) == 200)
    calls = []
    monkeypatch.setattr(validate, "check_image", lambda *a: calls.append(a))
    again = datasets.load("utkface", utkface_dev_dir)  # served by the cache: no decode
    assert calls == [] and len(again) == 7811


@pytest.mark.integration
def test_fgnet_real(fgnet_dir):
    ds = datasets.load("fgnet", fgnet_dir)
    assert len(ds) == 1002 and ds.skipped.total == 0
    assert len(np.unique(ds.subject)) == 82
    assert ds.has_landmarks
    assert ds.age.min() == 0 and ds.age.max() == 69
    lm = ds.landmarks
    assert np.all(lm[:, 0, 0] < lm[:, 1, 0])  # left eye is image left
    assert np.all(lm[:, 3, 0] < lm[:, 4, 0])  # so is the left mouth corner
    assert np.all(lm[:, 2, 1] > lm[:, :2, 1].mean(1))  # nose tip below the eyes
    sizes = datasets.image_sizes(ds)
    assert np.all(lm[..., 0] < sizes[:, None, 1]) and np.all(lm[..., 1] < sizes[:, None, 0])
    assert datasets.num_folds(ds, "lopo") == 82
