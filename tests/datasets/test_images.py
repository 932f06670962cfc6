"""Reading images (`agekeras.datasets.images`): one RGB conversion for prediction
(`read_image`) and training (`validate` converts files that TensorFlow would
decode differently), image suffixes and folder listings."""

import pathlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from agekeras.datasets import AgeDataset, images, load, readers, validate
from agekeras.datasets import align as A

pytestmark = pytest.mark.usefixtures("agekeras_cache")


def _face(size=128, seed=0):
    mem = load("synthetic", n=1, image_size=size, seed=seed)
    return mem.images[0], mem.landmarks[0].astype("float64")


def _half_transparent(rgb, mode):
    """`rgb` with alpha 0 in the top-left corner, 128 in the top-right one, 255 elsewhere."""
    alpha = np.full(rgb.shape[:2], 255, "uint8")
    alpha[:8, :8] = 0
    alpha[:8, -8:] = 128
    if mode == "LA":
        return Image.fromarray(np.dstack([rgb[..., 0], alpha]), "LA")
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")


# kind -> (file name, writer(path, rgb)); every one decoded by TensorFlow after
# validation must give the pixels `read_image` gives.
KINDS = {
    "16-bit PNG": ("deep.png", lambda p, rgb: Image.fromarray(rgb[..., 0].astype("uint16") * 257).save(p)),
    "dark 16-bit PNG": ("dark.png", lambda p, rgb: Image.fromarray(rgb[..., 0].astype("uint16")).save(p)),
    "RGBA PNG with transparency": ("rgba.png", lambda p, rgb: _half_transparent(rgb, "RGBA").save(p)),
    "LA PNG": ("la.png", lambda p, rgb: _half_transparent(rgb, "LA").save(p)),
    "opaque RGBA PNG": ("opaque.png", lambda p, rgb: Image.fromarray(rgb).convert("RGBA").save(p)),
    "CMYK JPEG": ("cmyk.jpg", lambda p, rgb: Image.fromarray(rgb).convert("CMYK").save(p, quality=95)),
    "grayscale PNG": ("gray.png", lambda p, rgb: Image.fromarray(rgb).convert("L").save(p)),
    "palette PNG with a transparent colour": (
        "pal.png", lambda p, rgb: Image.fromarray(rgb).convert("P").save(p, transparency=0)),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(KINDS))
def test_training_and_prediction_see_the_same_pixels(tmp_path, kind):
    rgb, _ = _face(48)
    name, write = KINDS[kind]
    path = tmp_path / name
    write(path, rgb)
    predicted = A.read_image(path)  # what prediction sees
    ds = validate.validate_dataset(AgeDataset(name="t", paths=[str(path)], age=np.array([30.0])))
    trained = tf.io.decode_image(pathlib.Path(ds.paths[0]).read_bytes(), channels=3).numpy()  # the pipeline
    assert predicted.shape == (48, 48, 3) and predicted.dtype == np.uint8
    np.testing.assert_array_equal(trained, predicted)
    assert (ds.paths[0] == str(path)) == (kind in ("opaque RGBA PNG", "grayscale PNG"))  # converted or not


def test_16_bit_is_scaled_to_8_bits_whatever_its_range():
    deep = np.array([[0, 128, 257, 32896, 65535]], "uint16")
    expected = [0, 0, 1, 128, 255]  # round(v / 257), also for values below 256
    assert images.to_rgb(deep)[0, :, 0].tolist() == expected
    assert images.to_rgb(Image.fromarray(deep))[0, :, 0].tolist() == expected
    assert (images.to_rgb(Image.fromarray(deep)) == images.to_rgb(deep)).all()
    dark = np.array([[0, 128, 255]], "uint16")  # a 16-bit image is 16-bit even when it is dark
    assert images.to_rgb(dark)[0, :, 0].tolist() == images.to_rgb(Image.fromarray(dark))[0, :, 0].tolist() == [0, 0, 1]
    # 32-bit integers: 8-bit values stay, a 16-bit range is scaled.
    assert images.to_rgb(np.array([[0, 200]], "int32"))[0, :, 0].tolist() == [0, 200]
    assert images.to_rgb(np.array([[0, 65535]], "int32"))[0, :, 0].tolist() == [0, 255]
    # Floats: [0, 1] scaled, larger ranges clipped to [0, 255].
    assert images.to_rgb(np.array([[0.0, 0.5, 1.0]]))[0, :, 0].tolist() == [0, 128, 255]
    assert images.to_rgb(np.array([[-3.0, 254.6, 300.0]]))[0, :, 0].tolist() == [0, 255, 255]


def test_alpha_is_composited_on_white():
    rgb = np.zeros((16, 16, 3), "uint8")
    rgb[..., 0] = 255  # red
    for image in (_half_transparent(rgb, "RGBA"), np.asarray(_half_transparent(rgb, "RGBA"))):
        out = images.to_rgb(image)
        assert out[0, 0].tolist() == [255, 255, 255]  # transparent: white
        assert out[0, -1].tolist() == [255, 127, 127]  # half: between red and white
        assert out[-1, -1].tolist() == [255, 0, 0]  # opaque: as it is
    gray_alpha = images.to_rgb(np.dstack([np.full((2, 2), 10, "uint8"), np.array([[0, 255], [255, 255]], "uint8")]))
    assert gray_alpha[0, 0].tolist() == [255] * 3 and gray_alpha[0, 1].tolist() == [10] * 3
    with pytest.raises(images.ImageReadError, match="image array"):
        images.to_rgb(np.zeros((2, 2, 5), "uint8"))


def test_one_list_of_image_suffixes(tmp_path):
    assert readers.IMAGE_SUFFIXES is images.IMAGE_SUFFIXES is A.IMAGE_SUFFIXES
    for suffix in images.IMAGE_SUFFIXES + (".JPG", ".txt", ".pts"):
        (tmp_path / f"x{suffix}").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "y.PNG").write_bytes(b"")
    found = images.image_files(tmp_path)
    names = [p.relative_to(tmp_path).as_posix() for p in found]
    assert names == sorted([f"x{s}" for s in images.IMAGE_SUFFIXES + (".JPG",)] + ["sub/y.PNG"])
    assert images.list_images([tmp_path]) == [str(p) for p in found]


def test_read_image_handles_modes_exif_and_bad_files(tmp_path):
    rgb, _ = _face(64)
    Image.fromarray(rgb).convert("L").save(tmp_path / "gray.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, "uint8")])
    rgba[:8, :8, 3] = 0  # a transparent corner -> white
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    upright = rgb[:, :48]  # 64 x 48, not square
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(np.ascontiguousarray(np.rot90(upright))).save(tmp_path / "exif.jpg", exif=exif, quality=95)
    good = tmp_path / "good.jpg"
    Image.fromarray(rgb).save(good)
    (tmp_path / "broken.jpg").write_bytes(good.read_bytes()[:200])
    (tmp_path / "notes.jpg").write_text("not an image")

    gray = A.read_image(tmp_path / "gray.png")
    assert gray.shape == (64, 64, 3) and gray.dtype == np.uint8 and (gray[..., 0] == gray[..., 2]).all()
    assert np.abs(A.read_image(tmp_path / "cmyk.jpg").astype(int) - rgb).mean() < 8
    out = A.read_image(tmp_path / "rgba.png")
    assert (out[:8, :8] == 255).all() and (out[10:, 10:] == rgb[10:, 10:]).all()
    exif_img = A.read_image(tmp_path / "exif.jpg")
    assert exif_img.shape == (64, 48, 3) and np.abs(exif_img.astype(int) - upright).mean() < 8
    with pytest.raises(A.ImageReadError, match="broken"):
        A.read_image(tmp_path / "broken.jpg")
    with pytest.raises(A.ImageReadError, match="not an image"):
        A.read_image(tmp_path / "notes.jpg")
    with pytest.raises(A.ImageReadError, match="no such file"):
        A.read_image(tmp_path / "missing.jpg")
    # Arrays: grayscale, alpha and [0, 1] floats.
    assert A.read_image(rgb[..., 0]).shape == (64, 64, 3)
    assert A.read_image(rgba)[0, 0].tolist() == [255, 255, 255]
    assert A.read_image(rgb / 255.0).dtype == np.uint8
    # Folders: images only, recursively; named files whatever their extension.
    (tmp_path / "sub").mkdir()
    Image.fromarray(rgb).save(tmp_path / "sub" / "deep.png")
    listed = A.list_images([tmp_path])
    assert str(tmp_path / "sub" / "deep.png") in listed and not any(p.endswith(".txt") for p in listed)
    assert A.list_images([tmp_path / "notes.jpg"]) == [str(tmp_path / "notes.jpg")]
    with pytest.raises(FileNotFoundError):
        A.list_images([tmp_path / "nowhere"])


