"""Bad-input handling: undecodable files, format conversion, sizes, cache."""

import logging
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from agekeras import datasets
from agekeras.datasets import AgeDataset, validate

from . import fixtures

pytestmark = pytest.mark.usefixtures("agekeras_cache")


def file_dataset(paths, **kw):
    return AgeDataset(name="t", paths=[str(p) for p in paths], age=np.arange(len(paths)), **kw)


@pytest.mark.parametrize("reason", list(fixtures.BAD_FILES))
def test_bad_files_are_dropped_with_reason(tmp_path, reason):
    good = fixtures.save_image(tmp_path / "good.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(fixtures.BAD_FILES[reason]())
    ds = validate.validate_dataset(file_dataset([good, bad]))
    assert ds.paths.tolist() == [str(good)]
    assert ds.skipped.counts == {reason: 1}
    assert ds.skipped.examples[reason] == [str(bad)]


def test_missing_file_is_dropped(tmp_path):
    good = fixtures.save_image(tmp_path / "good.jpg")
    ds = validate.validate_dataset(file_dataset([tmp_path / "gone.jpg", good]))
    assert ds.paths.tolist() == [str(good)] and ds.skipped.counts == {"missing file": 1}


@pytest.mark.parametrize(
    "mode, fmt", [("L", "JPEG"), ("RGB", "JPEG"), ("L", "PNG"), ("RGB", "PNG"), ("RGBA", "PNG")]
)
def test_plain_jpeg_png_stay_and_tf_decodes_them_like_pillow(tmp_path, mode, fmt):
    path = fixtures.save_image(tmp_path / f"x.{fmt.lower()}", mode=mode, fmt=fmt)
    ds = validate.validate_dataset(file_dataset([path]))
    assert ds.paths.tolist() == [str(path)]
    decoded = tf.io.decode_image(path.read_bytes(), channels=3).numpy()
    reference = np.asarray(Image.open(path).convert("RGB"))
    assert decoded.shape == (32, 32, 3)
    # libjpeg builds may round the IDCT and chroma upsampling differently by a
    # few levels (this image is pure noise, the worst case); PNG is exact.
    diff = np.abs(decoded.astype(int) - reference)
    assert diff.max() <= (8 if fmt == "JPEG" else 0) and diff.mean() < 1.5


@pytest.mark.parametrize("kind", list(fixtures.ODD_FORMATS))
def test_odd_formats_are_converted_to_rgb_png(tmp_path, agekeras_cache, kind, caplog):
    suffix, kw = fixtures.ODD_FORMATS[kind]
    path = fixtures.save_image(tmp_path / f"x{suffix}", size=(40, 24), **kw)
    with caplog.at_level(logging.INFO, logger="agekeras.datasets"):
        ds = validate.validate_dataset(file_dataset([path]))
    assert ds.skipped.total == 0
    new = pathlib.Path(ds.paths[0])
    assert new.parent == agekeras_cache / "converted" and new.suffix == ".png"
    with Image.open(new) as im:
        assert (im.format, im.mode, im.size) == ("PNG", "RGB", (40, 24))
    assert tf.io.decode_image(new.read_bytes(), channels=3).shape == (24, 40, 3)
    assert datasets.image_sizes(ds).tolist() == [[24, 40]]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("t: converted 1 images to RGB PNG" in m for m in infos)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_16bit_is_rescaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    ds = validate.validate_dataset(file_dataset([path]))
    rgb = np.asarray(Image.open(ds.paths[0]))
    assert rgb[0, :, 0].tolist() == [0, 1, 128, 255]


def test_official_indices_are_remapped(tmp_path):
    paths = [fixtures.save_image(tmp_path / f"{i}.jpg", seed=i) for i in range(5)]
    paths[1].write_bytes(b"")
    paths[3].write_bytes(b"junk" * 20)
    ds = file_dataset(paths, official={"train": [0, 1, 2], "test": [3, 4]})
    out = validate.validate_dataset(ds)
    assert out.age.tolist() == [0, 2, 4]
    assert out.official["train"].tolist() == [0, 1] and out.official["test"].tolist() == [2]


def test_second_pass_uses_cache_and_notices_changes(tmp_path, agekeras_cache, monkeypatch):
    paths = [fixtures.save_image(tmp_path / f"{i}.jpg", seed=i) for i in range(3)]
    paths[2].write_bytes(b"")
    first = validate.validate_dataset(file_dataset(paths))
    assert (agekeras_cache / "validate" / "t.json").is_file()
    checked = []
    real_check = validate.check_image
    monkeypatch.setattr(validate, "check_image", lambda p, d: checked.append(p) or real_check(p, d))
    second = validate.validate_dataset(file_dataset(paths))
    assert checked == [] and second.paths.tolist() == first.paths.tolist()
    assert second.skipped.counts == {"empty file": 1}
    fixtures.save_image(paths[2], seed=9)  # repaired: new size and mtime
    os.utime(paths[2], ns=(1, 1))
    third = validate.validate_dataset(file_dataset(paths))
    assert checked == [os.path.abspath(paths[2])] and len(third) == 3


def test_validate_uses_two_threads_and_survives_exceptions(tmp_path, monkeypatch):
    paths = [fixtures.save_image(tmp_path / f"{i}.jpg", seed=i) for i in range(4)]

    def explode(self):
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(Image.Image, "load", explode)
    ds = validate.validate_dataset(file_dataset(paths), use_cache=False)
    assert len(ds) == 0 and ds.skipped.counts == {"corrupt image": 4}


def test_image_sizes_on_subsets_and_unvalidated_rows(tmp_path):
    paths = [fixtures.save_image(tmp_path / f"{i}.png", size=(10 + i, 20 + i), fmt="PNG") for i in range(4)]
    ds = validate.validate_dataset(file_dataset(paths[:3]))
    assert datasets.image_sizes(ds).tolist() == [[20, 10], [21, 11], [22, 12]]
    assert datasets.image_sizes(ds.subset([2, 0])).tolist() == [[22, 12], [20, 10]]
    assert datasets.image_sizes(file_dataset(paths[3:])).tolist() == [[23, 13]]  # header read


def test_in_memory_dataset_is_untouched():
    ds = AgeDataset(name="m", images=np.zeros((2, 8, 6, 3), np.uint8), age=[1, 2])
    assert validate.validate_dataset(ds) is ds
    assert datasets.image_sizes(ds).tolist() == [[8, 6], [8, 6]]


def test_load_with_odd_and_broken_files(tmp_path):
    fixtures.make_utkface(tmp_path, broken=True, odd=True)
    ds = datasets.load("utkface", tmp_path)
    assert len(ds) == 6 + len(fixtures.ODD_FORMATS) + 2
    for reason in fixtures.BAD_FILES:
        assert ds.skipped.counts[reason] == 1
    kept = [p for p in ds.paths if "agekeras-cache" not in p]
    assert sorted(pathlib.Path(p).suffix for p in kept).count(".png") == 1  # the RGBA PNG stayed
    assert sum("agekeras-cache" in p for p in ds.paths) == len(fixtures.ODD_FORMATS)
    raw = datasets.load("utkface", tmp_path, validate=False)
    assert len(raw) == len(ds) + len(fixtures.BAD_FILES)


def test_atomic_json_keeps_the_old_file_when_the_new_one_cannot_be_written(tmp_path):
    path = tmp_path / "sub" / "state.json"
    validate.write_json_atomic(path, {"a": np.float32(1.5)}, indent=2, default=float)
    assert path.read_text() == '{\n  "a": 1.5\n}'
    with pytest.raises(TypeError):  # an object json cannot write
        validate.write_json_atomic(path, {"a": object()})
    assert path.read_text() == '{\n  "a": 1.5\n}' and os.listdir(path.parent) == ["state.json"]
