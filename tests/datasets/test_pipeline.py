"""Tests for the tf.data input pipeline (`agekeras.datasets.pipeline`).

Datasets are built directly as `AgeDataset`s, from small images written with
Pillow into `tmp_path` or from in-memory arrays, so these tests do not depend
on the readers.
"""

import pathlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from agekeras.datasets import pipeline
from agekeras.datasets.base import AgeDataset
from agekeras.datasets.pipeline import (
    class_index,
    jpeg_decode_ratio,
    make_tf_dataset,
    steps_per_epoch,
)

NO_GEOMETRY = {"rotation": 0, "translation": 0, "zoom": 0}


def flat_value(i):
    """Grey level of the flat test image number `i`, distinct for i < 20."""
    return 20 + 10 * i


def textured(rng, height, width):
    """A smooth, asymmetric random colour image (uint8)."""
    small = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    return np.asarray(small.resize((width, height), Image.BICUBIC))


def write_files(tmp_path, arrays, ext="png"):
    paths = []
    for i, array in enumerate(arrays):
        path = tmp_path / f"{i:03d}.{ext}"
        Image.fromarray(array).save(path, quality=95)
        paths.append(str(path))
    return paths


def flat_dataset(tmp_path, n, size=(48, 48), ext="jpg"):
    """n flat grey files; row i has age i and grey level `flat_value(i)`."""
    arrays = [np.full((*size, 3), flat_value(i), dtype=np.uint8) for i in range(n)]
    return AgeDataset("flat", age=np.arange(n), paths=write_files(tmp_path, arrays, ext))


def textured_images(n, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([textured(rng, size, size) for _ in range(n)])


def collect(dataset):
    """Concatenates the batches of a dataset: (images, labels dict)."""
    images, labels = [], []
    for x, y in dataset:
        images.append(x["image"].numpy() if isinstance(x, dict) else x.numpy())
        labels.append({k: v.numpy() for k, v in y.items()})
    return np.concatenate(images), {k: np.concatenate([b[k] for b in labels]) for k in labels[0]}


def ages(dataset):
    return collect(dataset)[1]["age"].astype(int).tolist()


def brightest(image):
    """(x, y) of the brightest pixel of an (h, w, 3) image."""
    y, x = np.unravel_index(np.argmax(image.sum(-1)), image.shape[:2])
    return np.array([x, y])


# ----- shapes, dtypes, labels -------------------------------------------------


def test_file_batches_have_documented_shapes_dtypes_and_labels(tmp_path):
    ds = flat_dataset(tmp_path, 10)
    ds.gender[:] = np.arange(10) % 2
    batches = list(make_tf_dataset(ds, image_size=(32, 40), batch_size=4))
    assert [int(x.shape[0]) for x, _ in batches] == [4, 4, 2]
    x, y = batches[0]
    assert x.shape == (4, 32, 40, 3) and x.dtype == tf.float32
    assert {k: v.dtype for k, v in y.items()} == {
        "age": tf.float32, "gender": tf.int32, "race": tf.int32, "age_std": tf.float32, "group": tf.int32,
    }
    images, labels = collect(batches)
    assert images.min() >= 0 and images.max() <= 255
    np.testing.assert_array_equal(labels["age"], np.arange(10))
    np.testing.assert_array_equal(labels["gender"], np.arange(10) % 2)
    assert np.all(labels["race"] == -1) and np.all(labels["group"] == -1)
    assert np.all(np.isnan(labels["age_std"]))
    # Each image still belongs to its row.
    np.testing.assert_allclose(images.mean(axis=(1, 2, 3)), flat_value(np.arange(10)), atol=2)


def test_in_memory_dataset_keeps_or_resizes_images(tmp_path):
    images = textured_images(6, size=40)
    ds = AgeDataset("mem", age=np.arange(6), images=images)
    same, labels = collect(make_tf_dataset(ds, image_size=40, batch_size=4))
    np.testing.assert_array_equal(same, images.astype("float32"))
    np.testing.assert_array_equal(labels["age"], np.arange(6))
    small, _ = collect(make_tf_dataset(ds, image_size=(20, 24), batch_size=4))
    assert small.shape == (6, 20, 24, 3) and small.dtype == np.float32
    # Same pixels as decoding the same images from (lossless) files.
    files = AgeDataset("png", age=np.arange(6), paths=write_files(tmp_path, images))
    from_files, _ = collect(make_tf_dataset(files, image_size=(20, 24), batch_size=4))
    np.testing.assert_array_equal(small, from_files)


def test_targets_are_applied_inside_the_graph(tmp_path):
    ds = AgeDataset("mem", age=[8, 10.4, 12.5, 13.6, 20], images=textured_images(5, 16))

    def targets(y):
        return {"age_probs": class_index(y["age"], 10, 5), "age": y["age"] * 2}

    (x, y), = make_tf_dataset(ds, image_size=16, batch_size=5, targets=targets)
    assert set(y) == {"age_probs", "age"}
    assert y["age_probs"].dtype == tf.int32
    np.testing.assert_array_equal(y["age_probs"], [0, 0, 2, 4, 4])
    np.testing.assert_allclose(y["age"], [16, 20.8, 25, 27.2, 40])


def test_class_index_and_steps_per_epoch():
    index = class_index(np.array([-3.0, 0.4, 0.6, 2.5, 99.0]), 0, 10)
    assert index.dtype == tf.int32
    np.testing.assert_array_equal(index, [0, 0, 1, 2, 9])
    np.testing.assert_array_equal(class_index(tf.constant([16.0, 17.0]), 16, 85), [0, 1])
    assert steps_per_epoch(10, 4, drop_remainder=False) == 3
    assert steps_per_epoch(10, 4, drop_remainder=True) == 2
    assert steps_per_epoch(8, 4, drop_remainder=False) == 2
    with pytest.raises(ValueError):
        steps_per_epoch(10, 0)


def test_drop_remainder_and_repeat():
    ds = AgeDataset("mem", age=np.arange(10), images=textured_images(10, 8))
    sizes = [int(x.shape[0]) for x, _ in make_tf_dataset(ds, image_size=8, batch_size=4, drop_remainder=True)]
    assert sizes == [4, 4] == [4] * steps_per_epoch(10, 4, drop_remainder=True)
    repeated = make_tf_dataset(ds, image_size=8, batch_size=4, repeat=True)
    batches = [y["age"].numpy().astype(int) for _, y in repeated.take(5)]
    assert all(len(b) == 4 for b in batches)
    np.testing.assert_array_equal(np.concatenate(batches), np.arange(20) % 10)


def test_autotuning_is_off_unless_asked_for():
    # Destroying an autotuned iterator (Keras does it every epoch) can idle for
    # tens of seconds while the autotuner's thread sleeps: see the module notes.
    ds = AgeDataset("mem", age=np.arange(6), images=textured_images(6, 8))
    for training in (False, True):
        assert make_tf_dataset(ds, image_size=8, training=training).options().autotune.enabled is False
    assert make_tf_dataset(ds, image_size=8, autotune=True).options().autotune.enabled is True


# ----- order and shuffling ------------------------------------------------------


def test_evaluation_order_is_the_dataset_order(tmp_path):
    ds = flat_dataset(tmp_path, 12)
    dataset = make_tf_dataset(ds, image_size=16, batch_size=5)
    assert ages(dataset) == list(range(12))
    assert ages(dataset) == list(range(12))


def test_seeded_shuffle_is_reproducible_and_covers_every_row(tmp_path):
    ds = flat_dataset(tmp_path, 16)

    def deterministic(seed):
        return make_tf_dataset(
            ds, image_size=16, batch_size=8, training=True, seed=seed, augment=False, deterministic=True
        )

    def first_batch(seed):
        return next(iter(deterministic(seed)))[1]["age"].numpy().tolist()

    assert first_batch(1) == first_batch(1)
    assert first_batch(1) != first_batch(2)
    assert sorted(first_batch(1)) != first_batch(1)
    # Reshuffled every epoch, and the sequence of epochs is reproducible.
    one, other = deterministic(1), deterministic(1)
    epochs = [ages(one) for _ in range(2)]
    assert epochs[0] != epochs[1]
    assert epochs == [ages(other) for _ in range(2)]

    # Default training pipeline (non-deterministic order): every row once per
    # epoch, a new order each epoch, images still matching their labels.
    dataset = make_tf_dataset(ds, image_size=16, batch_size=5, training=True, augment=False)
    epochs = []
    for _ in range(2):
        images, labels = collect(dataset)
        assert sorted(labels["age"].astype(int)) == list(range(16))
        np.testing.assert_allclose(images.mean(axis=(1, 2, 3)), flat_value(labels["age"]), atol=2)
        epochs.append(labels["age"].tolist())
    assert epochs[0] != epochs[1]


@pytest.mark.parametrize("cache", [False, True])
def test_file_names_are_shuffled_before_decoding(tmp_path, monkeypatch, cache):
    n = 120
    arrays = [np.full((8, 8, 3), i, dtype=np.uint8) for i in range(n)]
    ds = AgeDataset("tiny", age=np.arange(n), paths=write_files(tmp_path, arrays))
    decoded = []
    load_image = pipeline._load_image

    def counting_load_image(*args):
        image, points = load_image(*args)
        count = tf.py_function(lambda: decoded.append(1) or 0, [], tf.int32)
        with tf.control_dependencies([count]):
            return tf.identity(image), points

    monkeypatch.setattr(pipeline, "_load_image", counting_load_image)
    dataset = make_tf_dataset(ds, image_size=8, batch_size=2, training=True, augment=False, cache=cache)
    next(iter(dataset))
    if cache:
        # Shuffling the cache needs every image decoded first.
        assert len(decoded) == n
    else:
        # Only the first few shuffled names are decoded.
        assert len(decoded) < n // 2


# ----- decoding -----------------------------------------------------------------


def test_jpeg_decode_ratio_rule():
    assert int(jpeg_decode_ratio([200, 200, 3], 64)) == 2
    assert int(jpeg_decode_ratio([200, 200, 3], 128)) == 1
    assert int(jpeg_decode_ratio([256, 256], 64)) == 4
    assert int(jpeg_decode_ratio([1000, 800], 64)) == 8
    # The shorter side decides: 100 px wide cannot be halved for 64 px.
    assert int(jpeg_decode_ratio([400, 100], 64)) == 1
    assert int(jpeg_decode_ratio([400, 100], (32, 32))) == 2


def test_reduced_jpeg_decode_is_close_to_full_decode(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [textured(rng, 256, 256) for _ in range(4)]
    ds = AgeDataset("big", age=np.arange(4), paths=write_files(tmp_path, arrays, "jpg"))
    for size in (64, 128):
        fast, _ = collect(make_tf_dataset(ds, image_size=size, batch_size=4))
        full, _ = collect(make_tf_dataset(ds, image_size=size, batch_size=4, fast_decode=False))
        difference = np.abs(fast - full).mean()
        assert 0 < difference < 2.0, (size, difference)


def test_grayscale_rgba_and_palette_inputs_come_out_rgb(tmp_path):
    images = {
        "gray.png": (Image.new("L", (20, 20), 90), (90, 90, 90)),
        "gray.jpg": (Image.new("L", (20, 20), 150), (150, 150, 150)),
        "gray_alpha.png": (Image.new("LA", (20, 20), (60, 128)), (60, 60, 60)),
        "rgba.png": (Image.new("RGBA", (20, 20), (200, 100, 50, 128)), (200, 100, 50)),
        "palette.png": (Image.new("RGB", (20, 20), (10, 120, 230)).convert("P"), (10, 120, 230)),
        "rgb.bmp": (Image.new("RGB", (20, 20), (30, 60, 90)), (30, 60, 90)),
    }
    paths, expected = [], []
    for name, (image, colour) in images.items():
        image.save(tmp_path / name)
        paths.append(str(tmp_path / name))
        expected.append(colour)
    ds = AgeDataset("formats", age=np.arange(len(paths)), paths=paths)
    out, _ = collect(make_tf_dataset(ds, image_size=16, batch_size=8))
    assert out.shape == (len(paths), 16, 16, 3)
    np.testing.assert_allclose(out.mean(axis=(1, 2)), np.array(expected, dtype="float32"), atol=2)


def test_files_broken_after_validation_are_skipped(tmp_path):
    ds = flat_dataset(tmp_path, 8)
    dataset = make_tf_dataset(ds, image_size=16, batch_size=3)
    good = (tmp_path / "001.jpg").read_bytes()
    (tmp_path / "002.jpg").write_bytes(b"not an image at all")
    (tmp_path / "004.jpg").write_bytes(good[: len(good) // 2])  # truncated JPEG
    (tmp_path / "005.jpg").unlink()
    (tmp_path / "007.jpg").write_bytes(b"")
    images, labels = collect(dataset)
    assert labels["age"].astype(int).tolist() == [0, 1, 3, 6]
    np.testing.assert_allclose(images.mean(axis=(1, 2, 3)), flat_value(np.array([0, 1, 3, 6])), atol=2)
    # The same in training mode, where the shuffle comes first.
    _, labels = collect(make_tf_dataset(ds, image_size=16, batch_size=3, training=True))
    assert sorted(labels["age"].astype(int)) == [0, 1, 3, 6]


# ----- cache --------------------------------------------------------------------


@pytest.mark.parametrize("to_file", [False, True])
def test_cache_replays_identical_batches_without_the_files(tmp_path, to_file):
    data_dir = tmp_path / "images"
    data_dir.mkdir()
    ds = flat_dataset(data_dir, 9)
    cache = str(tmp_path / "cache") if to_file else True
    dataset = make_tf_dataset(ds, image_size=16, batch_size=4, cache=cache)
    first = collect(dataset)
    for path in ds.paths:  # From now on only the cache can provide images.
        pathlib.Path(path).unlink()
    second = collect(dataset)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1]["age"], np.arange(9))
    np.testing.assert_array_equal(second[1]["age"], np.arange(9))
    if to_file:
        assert (tmp_path / "cache.index").exists()


def test_cached_training_pipeline_reshuffles_every_epoch(tmp_path):
    ds = flat_dataset(tmp_path, 12)
    dataset = make_tf_dataset(ds, image_size=16, batch_size=5, training=True, augment=False, cache=True)
    first = collect(dataset)
    for path in ds.paths:
        pathlib.Path(path).unlink()
    second = collect(dataset)
    orders = [labels["age"].astype(int).tolist() for _, labels in (first, second)]
    assert sorted(orders[0]) == sorted(orders[1]) == list(range(12))
    assert orders[0] != orders[1]
    images, labels = second
    np.testing.assert_allclose(images.mean(axis=(1, 2, 3)), flat_value(labels["age"]), atol=2)


# ----- augmentation -------------------------------------------------------------


def test_augmentation_changes_images_not_labels(tmp_path):
    ds = AgeDataset("tex", age=np.arange(12), paths=write_files(tmp_path, textured_images(12, 40)))

    def run(augment):
        dataset = make_tf_dataset(
            ds, image_size=32, batch_size=6, training=True, augment=augment, deterministic=True, seed=3
        )
        return collect(dataset)

    plain, plain_labels = run(False)
    augmented, labels = run(True)
    for key in plain_labels:
        np.testing.assert_array_equal(labels[key], plain_labels[key])
    assert augmented.shape == plain.shape and augmented.dtype == np.float32
    assert augmented.min() >= 0 and augmented.max() <= 255
    assert np.all(np.abs(augmented - plain).mean(axis=(1, 2, 3)) > 1.0)
    # deterministic=True makes the random draws reproducible too.
    np.testing.assert_array_equal(run(True)[0], augmented)


def test_augment_none_means_only_when_training():
    ds = AgeDataset("mem", age=np.arange(8), images=textured_images(8, 24))

    def images(**kwargs):
        return collect(make_tf_dataset(ds, image_size=24, batch_size=8, deterministic=True, **kwargs))[0]

    np.testing.assert_array_equal(images(training=False), ds.images.astype("float32"))
    trained = images(training=True)
    plain = images(training=True, augment=False)
    assert not np.array_equal(trained, plain)


def test_flip_only_augmentation_mirrors_some_images_exactly():
    ds = AgeDataset("mem", age=np.arange(16), images=textured_images(16, 24))
    augmented, labels = collect(
        make_tf_dataset(ds, image_size=24, batch_size=8, training=True, augment={"flip": True, **NO_GEOMETRY})
    )
    originals = ds.images[labels["age"].astype(int)].astype("float32")
    mirrored = [np.array_equal(a, o[:, ::-1]) for a, o in zip(augmented, originals)]
    unchanged = [np.array_equal(a, o) for a, o in zip(augmented, originals)]
    assert all(m or u for m, u in zip(mirrored, unchanged))
    assert any(mirrored) and any(unchanged)


def test_augment_argument_is_validated():
    ds = AgeDataset("mem", age=np.arange(4), images=textured_images(4, 8))
    with pytest.raises(ValueError, match="Unknown augmentation"):
        make_tf_dataset(ds, image_size=8, augment={"shear": 0.1})
    with pytest.raises(TypeError):
        make_tf_dataset(ds, image_size=8, augment="yes")


# ----- degradations: colour, greyscale, blur, JPEG ------------------------------

PLAIN = {"flip": False, **NO_GEOMETRY}


def luma(images):
    """NumPy reference grey levels (ITU-R BT.601), (n, h, w)."""
    return images[..., 0] * 0.299 + images[..., 1] * 0.587 + images[..., 2] * 0.114


def degraded(images, **factors):
    """The in-memory `images` through a training pipeline with only `factors` on: (output, originals)."""
    ds = AgeDataset("mem", age=np.arange(len(images)), images=images)
    out, labels = collect(make_tf_dataset(ds, image_size=images.shape[1], batch_size=8, training=True,
                                          augment={**PLAIN, **factors}, deterministic=True, seed=1))
    np.testing.assert_array_equal(np.sort(labels["age"]), np.arange(len(images)))  # labels untouched
    return out, images[labels["age"].astype(int)].astype("float32")


def test_grayscale_augmentation_turns_a_share_of_the_images_into_their_grey_levels():
    out, originals = degraded(textured_images(32, 16), grayscale=0.5)
    grey = np.repeat(luma(originals)[..., None], 3, -1)
    is_grey = [np.allclose(o, g, atol=1e-3) for o, g in zip(out, grey)]
    unchanged = [np.array_equal(o, x) for o, x in zip(out, originals)]
    assert all(g or u for g, u in zip(is_grey, unchanged))
    assert 6 <= sum(is_grey) <= 26  # about half of 32
    all_grey, originals = degraded(textured_images(8, 16), grayscale=1.0)
    np.testing.assert_allclose(all_grey, np.repeat(luma(originals)[..., None], 3, -1), atol=1e-3)


def test_color_jitter_scales_the_saturation_and_keeps_the_grey_levels():
    rng = np.random.default_rng(4)
    images = rng.integers(100, 160, (16, 12, 12, 3)).astype("uint8")  # no clipping at 1 +- 0.5
    out, originals = degraded(images, color=0.5)
    np.testing.assert_allclose(luma(out), luma(originals), atol=1e-3)
    grey = luma(originals)[..., None]
    scale = np.array([np.sum((o - g) * (x - g)) / np.sum((x - g) ** 2) for o, x, g in zip(out, originals, grey)])
    np.testing.assert_allclose(out, grey + scale[:, None, None, None] * (originals - grey), atol=1e-3)
    assert np.all((scale >= 0.5 - 1e-4) & (scale <= 1.5 + 1e-4)) and scale.std() > 0.1


def reference_blur(image, sigma, radius):
    """NumPy Gaussian blur of one (h, w, c) image: mirrored borders, separable taps."""
    x = np.arange(-radius, radius + 1)
    taps = np.exp(-0.5 * (x / max(sigma, 1e-3)) ** 2)
    taps /= taps.sum()
    padded = np.pad(image.astype("float64"), [(radius, radius), (radius, radius), (0, 0)], mode="reflect")
    h, w = image.shape[:2]
    rows = sum(t * padded[i:i + h] for i, t in enumerate(taps))
    return sum(t * rows[:, i:i + w] for i, t in enumerate(taps))


def test_gaussian_blur_matches_numpy_per_image():
    images = textured_images(3, 20).astype("float32")
    sigma = np.array([0.0, 0.7, 1.6], "float32")
    out = pipeline.gaussian_blur(tf.constant(images), tf.constant(sigma)).numpy()
    radius = int(np.ceil(3 * sigma.max()))
    for o, x, s in zip(out, images, sigma):
        np.testing.assert_allclose(o, reference_blur(x, s, radius), atol=1e-3)
    np.testing.assert_allclose(out[0], images[0], atol=1e-4)  # sigma 0 leaves the image alone


def test_blur_augmentation_smooths_the_images_and_keeps_their_mean():
    images = np.random.default_rng(5).integers(0, 256, (16, 16, 16, 3)).astype("uint8")  # sharp noise
    out, originals = degraded(images, blur=2.0)

    def roughness(a):
        return np.abs(np.diff(a, axis=1)).mean(axis=(1, 2, 3))

    assert np.all(roughness(out) < roughness(originals)) and np.median(roughness(out) / roughness(originals)) < 0.6
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), originals.mean(axis=(1, 2, 3)), atol=6.0)


def test_jpeg_augmentation_is_a_jpeg_round_trip_at_a_quality_in_range():
    images = textured_images(8, 24)
    out, originals = degraded(images, jpeg=20)
    qualities = []
    for o, x in zip(out, originals.astype("uint8")):
        same = [q for q in range(20, 101) if np.array_equal(o, tf.image.adjust_jpeg_quality(x, q).numpy())]
        assert same, "not a JPEG round trip at any quality in [20, 100]"
        qualities.append(same[0])
    assert len(set(qualities)) > 1  # drawn per image
    assert np.abs(out - originals).mean() > 0.2


def test_degradations_leave_the_landmarks_alone():
    landmarks = np.tile(np.array([[10, 12], [20, 12], [15, 16], [11, 22], [19, 22]], "float32"), (8, 1, 1))
    ds = AgeDataset("mem", age=np.arange(8), images=textured_images(8, 32), landmarks=landmarks)
    (x, y), = make_tf_dataset(ds, image_size=32, batch_size=8, training=True, with_landmarks=True,
                              augment={**PLAIN, "grayscale": 1.0, "blur": 1.0, "jpeg": 50})
    np.testing.assert_allclose(x["landmarks"], landmarks)
    image = x["image"].numpy()
    assert np.abs(image[..., 0] - image[..., 2]).max() <= 12  # grey, up to JPEG's chroma noise
    originals = ds.images[y["age"].numpy().astype(int)].astype("float32")
    assert np.all(np.abs(image - originals).mean(axis=(1, 2, 3)) > 0.5)


@pytest.mark.parametrize("factor", [{"grayscale": 1.5}, {"color": -0.1}, {"blur": 11}, {"jpeg": 101}])
def test_degradation_factors_are_checked(factor):
    with pytest.raises(ValueError, match=f"{next(iter(factor))}=.* outside"):
        pipeline.augment_factors(factor)


# ----- landmarks ----------------------------------------------------------------


def dot_image(height, width, x, y, radius):
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[y - radius : y + radius + 1, x - radius : x + radius + 1] = 255
    return image


def test_landmarks_follow_crop_and_resize(tmp_path):
    # 100 x 200 (h x w) -> 50 x 50: scale 1/2 after cropping 50 px each side.
    landmarks = np.array([[130, 40], [160, 40], [150, 60], [135, 80], [165, 80]], dtype="float32")
    expected = (landmarks + 0.5 - [50, 0]) * 0.5 - 0.5
    image = dot_image(100, 200, 130, 40, radius=1)
    paths = write_files(tmp_path, [image])
    for ds in (
        AgeDataset("png", age=[30], paths=paths, landmarks=landmarks[None]),
        AgeDataset("mem", age=[30], images=image[None], landmarks=landmarks[None]),
    ):
        (x, _), = make_tf_dataset(ds, image_size=50, batch_size=1, with_landmarks=True)
        assert set(x) == {"image", "landmarks"}
        assert x["landmarks"].shape == (1, 5, 2) and x["landmarks"].dtype == tf.float32
        np.testing.assert_allclose(x["landmarks"][0], expected, atol=1e-4)
        assert np.abs(brightest(x["image"][0].numpy()) - expected[0]).max() <= 1


def test_landmarks_follow_reduced_jpeg_decode(tmp_path):
    # 400 px JPEG at 64 px is decoded at 1/4 scale (100 px), then resized.
    landmarks = np.array([[250, 120], [300, 120], [280, 200], [250, 280], [310, 280]], dtype="float32")
    expected = (landmarks + 0.5) * 64 / 400 - 0.5
    paths = write_files(tmp_path, [dot_image(400, 400, 250, 120, radius=4)], "jpg")
    ds = AgeDataset("jpg", age=[30], paths=paths, landmarks=landmarks[None])
    assert int(jpeg_decode_ratio([400, 400], 64)) == 4
    for fast_decode in (True, False):
        dataset = make_tf_dataset(
            ds, image_size=64, batch_size=1, with_landmarks=True, fast_decode=fast_decode
        )
        (x, _), = dataset
        np.testing.assert_allclose(x["landmarks"][0], expected, atol=1e-4)
        assert np.abs(brightest(x["image"][0].numpy()) - expected[0]).max() <= 1


def test_landmark_flip_mirrors_x_and_swaps_left_and_right():
    rng = np.random.default_rng(0)
    n, size = 16, 32
    landmarks = rng.uniform(4, size - 5, (n, 5, 2)).round().astype("float32")
    images = np.stack([dot_image(size, size, int(p[0, 0]), int(p[0, 1]), radius=0) for p in landmarks])
    ds = AgeDataset("dots", age=np.arange(n), images=images, landmarks=landmarks)
    dataset = make_tf_dataset(
        ds, image_size=size, batch_size=8, training=True, with_landmarks=True,
        augment={"flip": True, "rotation": 0, "translation": 0, "zoom": 0},
    )
    flipped_count = 0
    for x, y in dataset:
        for image, points, age in zip(x["image"].numpy(), x["landmarks"].numpy(), y["age"].numpy()):
            original = landmarks[int(age)]
            if np.array_equal(image, images[int(age)][:, ::-1].astype("float32")):
                flipped_count += 1
                mirrored = original[[1, 0, 2, 4, 3]]
                mirrored[:, 0] = size - 1 - mirrored[:, 0]
                np.testing.assert_allclose(points, mirrored)
                # The dot drawn at the left eye is now the right eye.
                np.testing.assert_array_equal(brightest(image), points[1])
            else:
                np.testing.assert_array_equal(image, images[int(age)])
                np.testing.assert_allclose(points, original)
                np.testing.assert_array_equal(brightest(image), points[0])
    assert 0 < flipped_count < n


def test_mirror_face_on_tensors_and_arrays():
    """One mirroring for training, evaluation and prediction: the image is
    flipped along its width (not its height), x -> width - 1 - x, and the
    left and right eyes and mouth corners swap."""
    height, width = 20, 30  # not square
    points = np.array([[[8, 5], [21, 6], [15, 10], [10, 15], [20, 14]]], "float32")
    image = dot_image(height, width, 8, 5, radius=0)[None].astype("float32")  # a dot at the left eye
    want = points[:, [1, 0, 2, 4, 3]].copy()
    want[..., 0] = width - 1 - want[..., 0]
    for x in (image, tf.constant(image)):
        flipped, moved = pipeline.mirror_face(x, points)
        assert type(flipped) is type(x) and isinstance(moved, np.ndarray) == isinstance(x, np.ndarray)
        flipped, moved = np.asarray(flipped), np.asarray(moved)
        np.testing.assert_array_equal(flipped, image[:, :, ::-1])
        np.testing.assert_allclose(moved, want)
        np.testing.assert_array_equal(brightest(flipped[0]), moved[0, 1])  # the dot is now the right eye
        twice, back = pipeline.mirror_face(*pipeline.mirror_face(x, points))
        np.testing.assert_array_equal(np.asarray(twice), image)
        np.testing.assert_allclose(np.asarray(back), points)
    assert pipeline.mirror_face(image[0])[1] is None  # one image, no landmarks


def test_landmarks_with_photometric_augmentation(tmp_path):
    landmarks = np.tile(np.array([[10, 12], [20, 12], [15, 16], [11, 22], [19, 22]], "float32"), (8, 1, 1))
    ds = AgeDataset("mem", age=np.arange(8), images=textured_images(8, 32), landmarks=landmarks)
    dataset = make_tf_dataset(
        ds, image_size=32, batch_size=8, training=True, with_landmarks=True,
        augment={"flip": False, "rotation": 0, "translation": 0, "zoom": 0, "brightness": 0.3, "contrast": 0.3},
    )
    (x, y), = dataset
    np.testing.assert_allclose(x["landmarks"], landmarks)
    originals = ds.images[y["age"].numpy().astype(int)].astype("float32")
    assert np.all(np.abs(x["image"].numpy() - originals).mean(axis=(1, 2, 3)) > 0.5)
    assert x["image"].numpy().min() >= 0 and x["image"].numpy().max() <= 255


def test_landmarks_follow_the_image_under_the_random_similarity():
    """Rotation, zoom and translation with landmarks: a dot drawn at each landmark ends where its point goes."""
    from agekeras.datasets.pipeline import random_similarity

    rng = np.random.default_rng(0)
    n, size = 12, 64
    points = rng.uniform(20, 44, (n, 5, 2)).round().astype("float32")
    images = np.zeros((n, size, size, 3), "float32")
    for i, p in enumerate(points):
        x, y = int(p[0, 0]), int(p[0, 1])
        images[i, y - 1 : y + 2, x - 1 : x + 2] = 255.0  # a 3x3 dot at the left eye
    generator = tf.random.Generator.from_seed(3)
    warped, moved = random_similarity(tf.constant(images), tf.constant(points), generator,
                                      rotation=30 / 360, translation=0.1, zoom=0.2, fill_mode="constant")
    warped, moved = warped.numpy(), moved.numpy()
    assert not np.allclose(moved, points, atol=0.5)  # the draws moved the points
    for image, p in zip(warped, moved):
        weights = image[..., 0]
        ys, xs = np.mgrid[:size, :size]
        centroid = np.array([(weights * xs).sum(), (weights * ys).sum()]) / weights.sum()
        np.testing.assert_allclose(centroid, p[0], atol=0.35)
    # Distances between points scale by the same factor as the dot moves (a similarity).
    before = np.linalg.norm(points[:, :, None] - points[:, None], axis=-1)
    after = np.linalg.norm(moved[:, :, None] - moved[:, None], axis=-1)
    far = before > 1
    ratio = after[far].reshape(-1) / before[far].reshape(-1)
    assert np.all((ratio > 0.79) & (ratio < 1.21))
    per_face = [np.ptp(after[i][far[i]] / before[i][far[i]]) for i in range(n)]
    assert max(per_face) < 1e-4  # one scale per face: shapes are kept


def test_landmark_pipeline_uses_geometric_augmentation_reproducibly():
    rng = np.random.default_rng(1)
    points = rng.uniform(10, 22, (8, 5, 2)).astype("float32")
    ds = AgeDataset("mem", age=np.arange(8), images=textured_images(8, 32), landmarks=points)

    def first_batch():
        dataset = make_tf_dataset(ds, image_size=32, batch_size=8, training=True, with_landmarks=True,
                                  deterministic=True, seed=5)
        (x, y), = dataset
        return x["landmarks"].numpy(), y["age"].numpy()

    (a, ages), (b, _) = first_batch(), first_batch()
    np.testing.assert_allclose(a, b)
    moved = np.abs(a - points[ages.astype(int)]).max(axis=(1, 2))
    assert np.all(moved > 0.01)  # every face got its own similarity



@pytest.mark.parametrize("zoom", [1.085, 0.915, 1.3, 0.8])
def test_zoom_images_moves_the_landmarks_with_the_pixels(zoom):
    size, marks = 64, np.array([[[20.0, 25.0], [45.0, 30.0], [32.0, 41.0]]], "float32")  # (x, y) pixel indices
    image = np.zeros((1, size, size, 3), "float32")
    for x, y in marks[0].astype(int):
        image[0, y - 1:y + 2, x - 1:x + 2] = 255.0  # a bright 3x3 blob centred on each landmark
    out, moved = (np.asarray(t) for t in pipeline.zoom_images(image, marks, zoom))
    assert out.shape == image.shape
    centre = (size - 1) / 2  # in pixel indices; the crop's whole-pixel rounding moves points by < 1 px
    np.testing.assert_allclose(moved, (marks - centre) * zoom + centre, atol=1.0)
    ys, xs = np.mgrid[:size, :size]
    for x, y in moved[0]:  # the blob's brightness centroid is where the landmark went
        near = out[0, ..., 0] * ((np.abs(xs - x) <= 4) & (np.abs(ys - y) <= 4))
        assert (near * xs).sum() / near.sum() == pytest.approx(x, abs=0.25)
        assert (near * ys).sum() / near.sum() == pytest.approx(y, abs=0.25)


def test_zoom_images_keeps_a_unit_zoom_and_rejects_bad_ones():
    image = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    same, none = pipeline.zoom_images(image, None, 1.0)
    np.testing.assert_array_equal(np.asarray(same), image)
    assert none is None
    with pytest.raises(ValueError, match="zoom must be > 0"):
        pipeline.zoom_images(image, None, 0.0)
