"""`tfds.load("agekeras_<name>")` round trips on fixture folders."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

import agekeras.datasets.tfds_builders  # noqa: F401  (registers the builders)
from agekeras.datasets import download, tfds_builders

from . import fixtures

pytestmark = pytest.mark.usefixtures("agekeras_cache")


def manual(path):
    return {"download_config": tfds.download.DownloadConfig(manual_dir=str(path))}


def test_builders_are_registered():
    names = set(tfds.list_builders(with_community_datasets=False))
    expected = {"agekeras_" + n for n in ("utkface", "afad", "afad_lite", "fgnet", "adience", "megaage_asian",
                                          "lap2015", "lap2016", "appa_real", "morph2")}  # fmt: skip
    assert expected <= names
    assert set(tfds_builders.BUILDERS) == {n[len("agekeras_") :] for n in expected}


def test_utkface_round_trip(tmp_path):
    raw = tmp_path / "raw"
    good = fixtures.make_utkface(raw, broken=True, odd=True)
    ds, info = tfds.load("agekeras_utkface", split="train", data_dir=tmp_path / "tfds", with_info=True,
                         download_and_prepare_kwargs=manual(raw))  # fmt: skip
    assert set(info.splits) == {"train"}
    examples = list(tfds.as_numpy(ds))
    assert len(examples) == len(good) + len(fixtures.ODD_FORMATS) + 2  # broken files dropped
    assert all(ex["image"].ndim == 3 and ex["image"].shape[-1] == 3 for ex in examples)
    got = {(float(ex["age"]), int(ex["gender"]), int(ex["race"])) for ex in examples}
    assert {(float(a), g, r) for a, g, r in good.values()} <= got
    ex = examples[0]
    assert ex["landmarks"].shape == (5, 2) and np.all(np.isnan(ex["landmarks"]))
    assert ex["subject"] == b"" and ex["group"] == -1 and np.isnan(ex["age_std"])


def test_adience_official_folds_become_splits(tmp_path):
    fixtures.make_adience(tmp_path / "raw")
    builder = tfds.builder("agekeras_adience", data_dir=tmp_path / "tfds")
    builder.download_and_prepare(**manual(tmp_path / "raw"))
    assert sorted(builder.info.splits) == [f"fold_{k}" for k in range(5)]
    fold0 = list(tfds.as_numpy(builder.as_dataset(split="fold_0")))
    assert sorted(ex["subject"].decode() for ex in fold0) == ["user0_0", "user0_1"]
    assert {int(ex["group"]) for ex in fold0} == {4, 3}  # (25, 32) and (8, 23) -> 15-20


def test_manual_dir_required_says_where_to_get_it(tmp_path):
    builder = tfds.builder("agekeras_fgnet", data_dir=tmp_path / "tfds")
    with pytest.raises(AssertionError, match="FG-NET"):
        builder.download_and_prepare(**manual(tmp_path / "nothing"))


def test_afad_lite_downloads_without_manual_dir(tmp_path, monkeypatch):
    url = fixtures.serve_split_tarball(tmp_path / "server", "AFAD-Lite", fixtures.make_afad)
    monkeypatch.setitem(
        download.SOURCES, "afad_lite", download.Source(url, folder="AFAD-Lite", split_parts=True)
    )
    ds = tfds.load("agekeras_afad_lite", split="train", data_dir=tmp_path / "tfds")
    ages = sorted(int(ex["age"]) for ex in tfds.as_numpy(ds))
    assert ages == [18, 18, 18, 22]
