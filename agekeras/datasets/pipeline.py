"""`tf.data` input pipelines for `AgeDataset`: decode, resize, augment, batch.

```python
from agekeras.datasets.pipeline import make_tf_dataset

train = make_tf_dataset(parts["train"], image_size=64, batch_size=128, training=True)
val = make_tf_dataset(parts["val"], image_size=64, batch_size=128)
model.fit(train, validation_data=val, epochs=10)
```

Each batch is `(x, y)`: `x` float32 images in [0, 255] of shape
(batch, height, width, 3) -- or `{"image": ..., "landmarks": ...}` with
`with_landmarks=True` -- and `y` a dict of label tensors (`age`, `gender`,
`race`, `age_std`, `group`, with the sentinels of `agekeras.datasets.base`),
or whatever `targets(y)` returns.

The pipeline for a file-backed dataset:

```
file names + labels -> shuffle (training) -> read, decode, crop + resize
  (parallel map) -> ignore_errors -> [cache] -> batch -> float32, augment,
  targets (parallel map) -> prefetch
```

Design notes:

* **Shuffling** happens on the file names, before decoding, so the shuffle
  buffer holds strings and covers the whole dataset. With `cache`, the
  shuffle moves after the cache (over decoded uint8 images), otherwise every
  epoch would replay the first epoch's order from the cache.
* **Geometry.** Images are resized so that the shorter side fits
  `image_size` and centre-cropped to it (face crops are usually square, so
  this is usually a plain resize). Downscaling uses area averaging (an
  antialiasing box filter, several times faster than
  `tf.image.resize(antialias=True)` and within about 1/255 of it);
  upscaling uses bilinear interpolation. Images travel through the pipeline
  as uint8 (rounded once after resizing) and become float32 per batch, which
  makes caches and shuffle buffers 4x smaller.
* **Fast JPEG decoding.** JPEG decoding dominates the cost. libjpeg can
  decode at 1/2, 1/4 or 1/8 scale for much less work, so JPEGs are decoded
  with the largest such `ratio` that still leaves the (cropped) image at
  least as large as `image_size` (200 px UTKFace at 64 px: ratio 2, 100 px,
  then resized), see `jpeg_decode_ratio`. The source size comes from the
  JPEG header, read in the graph (`tf.image.extract_jpeg_shape`), so no pass
  over the files is needed beforehand. Other formats (PNG, BMP, GIF,
  grayscale, RGBA) go through `tf.io.decode_image(channels=3)` and come out
  RGB.
* **Landmarks** are (x, y) pixel coordinates with pixel centres at integer
  coordinates (x = 0 is the centre of the first column), "left" meaning
  image-left. They follow every step exactly: the reduced JPEG decode, the
  crop, the resize and the augmentation flip.
* **Bad files.** The readers validate every image up front
  (`agekeras.datasets.validate`); that is where skipped files are counted
  and reported. A file that breaks after validation (deleted, truncated,
  rewritten) is dropped at run time by `Dataset.ignore_errors` with a
  TensorFlow warning, and is not counted, so an epoch may be slightly
  shorter than `steps_per_epoch` promises; it never crashes.
* **Autotuning is off by default.** Keras makes a new iterator over the
  dataset every epoch (training and validation), and destroying a tf.data
  iterator waits for its autotuning thread, which sleeps between
  optimisation rounds for up to a minute. With TensorFlow 2.21 on a 2-core
  CPU, a ResNet-18 at 64 px then lost 16-40 s at many epoch boundaries,
  with the whole process idle (a 20 s epoch took 41 or 63 s; 28 epochs in
  15 minutes). Without the autotuner, `AUTOTUNE`
  parallelism falls back to one call per core and each training step is
  about 8% slower, which is the better trade. `autotune=True` turns it back
  on (e.g. for one long epoch on a many-core machine).
* **Augmentation** uses Keras preprocessing layers on whole batches:
  `RandomFlip("horizontal")`, `RandomRotation`, `RandomTranslation`,
  `RandomZoom` and, optionally, `RandomBrightness` and `RandomContrast`
  (defaults in `DEFAULT_AUGMENT`). Inside `tf.data` they run on the
  TensorFlow backend whatever the Keras backend is. The three geometric
  layers each resample every image, which costs more than decoding at 128 px
  (see `benchmarks/input_pipeline.py`). With `with_landmarks=True` only
  transforms whose effect on the landmarks is exact are used: a per-sample
  horizontal flip (x mirrored, left/right eye and mouth corners swapped so
  that "left" stays image-left), then one random similarity per image
  (rotation, zoom and translation with the same factors as the Keras
  layers, composed into one resampling: `random_similarity`) that moves the
  landmarks with the image, plus brightness and contrast. Off by default,
  `degrade_images` then imitates photos unlike a dataset's own, per image:
  a saturation change, greyscale, a Gaussian blur and JPEG compression
  (factors `color`, `grayscale`, `blur`, `jpeg`), in both paths.
* **Determinism.** By default (`deterministic=None`) evaluation pipelines are
  deterministic and training pipelines are not (parallel maps may reorder
  elements, which is faster). With `deterministic=True` a training pipeline
  is reproducible for a given `seed`, augmentation included: the augmentation
  map then runs sequentially so that the layers' random draws happen in
  order.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from agekeras.ages import class_index  # noqa: F401  (re-exported: the pipeline's targets use it)
from agekeras.datasets.base import AgeDataset
from agekeras.face_template import MIRROR_ORDER

AUTOTUNE = tf.data.AUTOTUNE

DEFAULT_AUGMENT = {
    "flip": True,
    "rotation": 10 / 360,
    "translation": 0.05,
    "zoom": 0.1,
    "brightness": 0.0,
    "contrast": 0.0,
    "color": 0.0,
    "grayscale": 0.0,
    "blur": 0.0,
    "jpeg": 0,
}
"""Default augmentation factors (Keras layer factors; rotation as a fraction of
a full turn, so 10/360 is +-10 degrees). A factor of 0 disables a layer.

The last four imitate photos unlike a dataset's own (`degrade_images`), per image:
`color` scales the saturation by a factor uniform in [1 - color, 1 + color]
(the grey level of every pixel stays); `grayscale` is the probability of
turning an image into its grey levels (as a greyscale scan); `blur` is the
largest standard deviation, in pixels of the output image, of a Gaussian blur
whose standard deviation is uniform in [0, blur]; `jpeg` is the lowest quality
of a JPEG compression whose quality is uniform in [jpeg, 100]."""

_GEOMETRIC = ("rotation", "translation", "zoom")
_DEGRADING = ("color", "grayscale", "blur", "jpeg")
# Grey level of an RGB pixel (ITU-R BT.601 luma; the weights sum to 1, so a saturation change keeps it).
_LUMA = (0.299, 0.587, 0.114)
_JPEG_RATIOS = (1, 2, 4, 8)
# With a file cache the data may not fit in memory: bound the shuffle buffer.
_FILE_CACHE_SHUFFLE_BUFFER = 10_000
# Rows resized per step when an in-memory dataset needs resizing up front.
_RESIZE_CHUNK = 512


def make_tf_dataset(
    ds: AgeDataset,
    *,
    image_size: int | tuple = 128,
    batch_size: int = 64,
    training: bool = False,
    seed: int = 0,
    augment: bool | dict | None = None,
    cache: bool | str = False,
    with_landmarks: bool = False,
    targets: Callable[[dict], Any] | None = None,
    drop_remainder: bool = False,
    repeat: bool = False,
    deterministic: bool | None = None,
    fast_decode: bool = True,
    autotune: bool = False,
) -> tf.data.Dataset:
    """A batched `tf.data.Dataset` of `(x, y)` for `ds`.

    Args:
        ds: the dataset, file-backed (`ds.paths`) or in memory (`ds.images`).
        image_size: output size, an int for square images or (height, width).
            The shorter side is resized to fit and the rest centre-cropped.
        batch_size: images per batch.
        training: shuffle (seeded, reshuffled every epoch) and, by default,
            augment.
        seed: seeds the shuffle and the augmentation layers.
        augment: `True` for `DEFAULT_AUGMENT`, a dict overriding some of its
            factors (keys `flip`, `rotation`, `translation`, `zoom`,
            `brightness`, `contrast`, `color`, `grayscale`, `blur`, `jpeg`;
            0 or False disables one), `False` for
            none, or `None` for "`True` when `training`". With
            `with_landmarks=True` rotation, translation and zoom are drawn
            as one similarity per image that moves the landmarks too
            (`random_similarity`).
        cache: `True` caches the decoded, resized (not augmented) images in
            memory after the first pass; a path caches them to files with
            that prefix (use one path per dataset and image size). Ignored
            for in-memory datasets.
        with_landmarks: make `x` a dict `{"image": images, "landmarks":
            (batch, 5, 2) float32 pixel coordinates in the output images}`.
        targets: optional function applied to the label dict inside the
            graph (it receives and returns tf tensors), e.g. to turn ages
            into class indices with `agekeras.ages.class_index`.
        drop_remainder: drop the last, smaller batch.
        repeat: repeat forever (reshuffling each pass when `training`).
        deterministic: keep the element order (and, when augmenting, the
            random draws) reproducible; default `not training`.
        fast_decode: decode large JPEGs at a reduced scale (see
            `jpeg_decode_ratio`); `False` always decodes at full size.
        autotune: let tf.data's autotuner choose the parallelism and the
            prefetch depth. Off by default: see "Autotuning" above.

    Returns:
        A `tf.data.Dataset` yielding `(x, y)` batches.
    """
    if len(ds) == 0:
        raise ValueError(f"Dataset {ds.name!r} is empty.")
    size = _image_size(image_size)
    config = augment_factors(augment, training)
    deterministic = (not training) if deterministic is None else bool(deterministic)
    labels = {
        "age": ds.age.astype("float32"),
        "gender": ds.gender.astype("int32"),
        "race": ds.race.astype("int32"),
        "age_std": ds.age_std.astype("float32"),
        "group": ds.group.astype("int32"),
    }

    if ds.in_memory:
        images, landmarks = resize_faces(ds.images, ds.landmarks, size)
        dataset = tf.data.Dataset.from_tensor_slices((images, landmarks, labels))
        shuffle_buffer = len(ds)
    else:

        def load(path, points, row_labels):
            image, points = _load_image(path, points, size, fast_decode)
            return image, points, row_labels

        dataset = tf.data.Dataset.from_tensor_slices((ds.paths, ds.landmarks, labels))
        if training and not cache:
            dataset = dataset.shuffle(len(ds), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.map(load, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
        dataset = dataset.ignore_errors(log_warning=True)
        if cache:
            filename = "" if cache is True else os.fspath(cache)
            dataset = dataset.cache(filename)
        shuffle_buffer = len(ds) if cache is True else min(len(ds), _FILE_CACHE_SHUFFLE_BUFFER)
    if training and (ds.in_memory or cache):
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(
        batch_size,
        drop_remainder=drop_remainder,
        num_parallel_calls=AUTOTUNE,
        deterministic=deterministic,
    )

    augmenter = None if config is None else _make_augmenter(config, seed, with_landmarks)

    def finish(images, points, batch_labels):
        images = tf.cast(images, "float32")
        if augmenter is not None:
            images, points = augmenter(images, points)
        x = {"image": images, "landmarks": points} if with_landmarks else images
        y = batch_labels if targets is None else targets(batch_labels)
        return x, y

    # Keras layers draw from stateful seed generators: to make the draws
    # reproducible they must happen in batch order, i.e. sequentially.
    sequential = augmenter is not None and deterministic
    dataset = dataset.map(
        finish,
        num_parallel_calls=None if sequential else AUTOTUNE,
        deterministic=None if sequential else deterministic,
    )
    dataset = dataset.prefetch(AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = deterministic
    options.autotune.enabled = bool(autotune)
    return dataset.with_options(options)


def jpeg_decode_ratio(source_shape, image_size) -> tf.Tensor:
    """The JPEG decode `ratio` used for a source of shape `source_shape`.

    libjpeg decodes at 1/2, 1/4 or 1/8 scale much faster than at full size.
    The ratio chosen is the largest of 1, 2, 4, 8 that keeps the part of the
    image kept by the centre crop at least `image_size` large, so the final
    resize still only downscales.

    Args:
        source_shape: (height, width, ...) of the full-size image, e.g. from
            `tf.image.extract_jpeg_shape`.
        image_size: target size, an int or (height, width).

    Returns:
        An int32 scalar tensor: 1, 2, 4 or 8.
    """
    return tf.gather(_JPEG_RATIOS, _jpeg_ratio_index(source_shape, _image_size(image_size)))


def mirror_landmarks(landmarks, width):
    """The 5 landmarks of the horizontally flipped image.

    x becomes `width - 1 - x` (pixel centres) and the left/right points swap
    (eyes, mouth corners: `agekeras.face_template.MIRROR_ORDER`), so that
    "left eye" stays the eye on the image's left.

    Args:
        landmarks: `(..., 5, 2)` (x, y) pixels, a tensor or array.
        width: image width in pixels (a number or a scalar tensor).

    Returns:
        float32 tensor `(..., 5, 2)`.

    Example:
        >>> mirror_landmarks([[[1, 2], [5, 2], [3, 4], [2, 6], [4, 6]]], 8)[0, :2].numpy().tolist()
        [[2.0, 2.0], [6.0, 2.0]]
    """
    landmarks = tf.cast(landmarks, "float32")
    mirrored = tf.gather(landmarks, MIRROR_ORDER, axis=-2)
    width = tf.cast(width, "float32")
    return tf.stack([width - 1.0 - mirrored[..., 0], mirrored[..., 1]], axis=-1)


def mirror_face(images, landmarks=None):
    """Faces flipped left-right, with their landmarks (`mirror_landmarks`).

    The width is the images' own (axis -2 of `(..., height, width,
    channels)`), so one image or a batch both work.

    Args:
        images: `(..., height, width, channels)`, a tf tensor or a NumPy array.
        landmarks: `(..., 5, 2)` (x, y) pixels in those images, or None.

    Returns:
        `(images, landmarks)`: the mirrored images (same type and dtype) and
        float32 landmarks (None when `landmarks` is None). With NumPy images
        both come back as NumPy arrays, else as tensors.

    Example:
        >>> x = np.arange(6, dtype="float32").reshape(1, 1, 3, 2)
        >>> flipped, _ = mirror_face(x)
        >>> flipped[0, 0, :, 0].tolist()
        [4.0, 2.0, 0.0]
    """
    if isinstance(images, np.ndarray):
        width = images.shape[-2]
        points = None if landmarks is None else mirror_landmarks(landmarks, width).numpy()
        return images[..., ::-1, :], points
    images = tf.convert_to_tensor(images)
    width = images.shape[-2] if images.shape[-2] is not None else tf.shape(images)[-2]
    return tf.reverse(images, axis=[-2]), None if landmarks is None else mirror_landmarks(landmarks, width)


def zoom_images(images, landmarks, zoom):
    """Scale a batch's faces about the image centre, keeping the image size.

    A test-time view: `zoom` > 1 enlarges a centred crop of
    `round(side / zoom)` pixels to the full size; `zoom` < 1 adds a mirrored
    border of `round(side * (1 / zoom - 1) / 2)` pixels on every side and
    shrinks the result back; 1 returns the batch unchanged. Both resizes are
    bilinear. The landmarks move with the pixels.

    Args:
        images: float `(batch, height, width, channels)`.
        landmarks: `(batch, points, 2)` (x, y) pixels, or None.
        zoom: scale factor > 0.

    Returns:
        `(images, landmarks)`: float32 images of the same shape, float32
        landmarks (or None).

    Example:
        >>> x = tf.zeros((2, 64, 64, 3))
        >>> zoom_images(x, None, 1.085)[0].shape
        TensorShape([2, 64, 64, 3])
    """
    if not zoom > 0:
        raise ValueError(f"zoom must be > 0, got {zoom!r}")
    images = tf.cast(images, "float32")
    if zoom == 1:
        return images, None if landmarks is None else tf.cast(landmarks, "float32")
    height, width = int(images.shape[1]), int(images.shape[2])
    if zoom > 1:
        crop_h, crop_w = round(height / zoom), round(width / zoom)
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        source = images[:, top:top + crop_h, left:left + crop_w]
    else:
        pad_h, pad_w = round(height * (1 / zoom - 1) / 2), round(width * (1 / zoom - 1) / 2)
        top, left, crop_h, crop_w = -pad_h, -pad_w, height + 2 * pad_h, width + 2 * pad_w
        source = tf.pad(images, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]], mode="SYMMETRIC")
    out = tf.image.resize(source, (height, width), method="bilinear")
    if landmarks is None:
        return out, None
    # Pixel centres to continuous coordinates and back (as `resize_faces` does).
    points = tf.cast(landmarks, "float32") + 0.5
    points = (points - [float(left), float(top)]) * [width / crop_w, height / crop_h]
    return out, points - 0.5


def steps_per_epoch(n, batch_size, drop_remainder=False):
    """Batches in one pass over `n` rows.

    Args:
        n: number of rows.
        batch_size: rows per batch.
        drop_remainder: whether the last, smaller batch is dropped.

    Returns:
        The number of batches, an int.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive; got {batch_size}.")
    return n // batch_size if drop_remainder else math.ceil(n / batch_size)


def _image_size(image_size):
    if isinstance(image_size, (int, np.integer)):
        size = (int(image_size), int(image_size))
    else:
        size = tuple(int(s) for s in image_size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"image_size must be an int or (height, width); got {image_size!r}.")
    return size


def augment_factors(augment, training=True):
    """The augmentation factors `augment` stands for, or None for none.

    Args:
        augment: as in `make_tf_dataset`: True, False, None ("`training`")
            or a dict overriding some of `DEFAULT_AUGMENT`'s factors.
        training: what None stands for.

    Returns:
        A full dict of factors, or None when every factor is off.

    Raises:
        ValueError: a dict with unknown keys or a factor out of its range.
        TypeError: anything else.

    Example:
        >>> augment_factors({"rotation": 0, "zoom": 0.05})["zoom"]
        0.05
    """
    if augment is None:
        augment = training
    if augment is False:
        return None
    config = dict(DEFAULT_AUGMENT)
    if isinstance(augment, dict):
        unknown = set(augment) - set(config)
        if unknown:
            raise ValueError(
                f"Unknown augmentation keys {sorted(unknown)}; expected some of {sorted(config)}."
            )
        config.update(augment)
    elif augment is not True:
        raise TypeError(f"augment must be a bool, a dict or None; got {augment!r}.")
    ranges = {"grayscale": (0, 1), "color": (0, 1), "blur": (0, 10), "jpeg": (0, 100)}
    for key, (low, high) in ranges.items():
        if not low <= float(config[key]) <= high:
            raise ValueError(f"Augmentation factor {key}={config[key]!r} is outside [{low}, {high}].")
    return config if any(config.values()) else None


def _jpeg_ratio_index(source_shape, size):
    """Index into `_JPEG_RATIOS` of the decode ratio (see `jpeg_decode_ratio`)."""
    source = tf.cast(tf.convert_to_tensor(source_shape)[:2], "float32")
    fit = tf.minimum(source[0] / size[0], source[1] / size[1])
    return tf.reduce_sum(tf.cast(fit >= tf.constant(_JPEG_RATIOS[1:], "float32"), "int32"))


def _decode(contents, size, fast_decode):
    """Decodes an image file's bytes to uint8 RGB.

    Returns:
        The image (h, w, 3) and the decode ratio (float32 scalar): the image
        is the original downscaled by that factor.
    """

    def decode_any():
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return image

    def decode_jpeg(ratio):
        return lambda: tf.io.decode_jpeg(
            contents, channels=3, ratio=ratio, dct_method="INTEGER_FAST"
        )

    # Branch 0 decodes any format; branch 1 + i decodes a JPEG at ratio i.
    is_jpeg = tf.io.is_jpeg(contents)
    if fast_decode:
        branch = tf.cond(
            is_jpeg,
            lambda: 1 + _jpeg_ratio_index(tf.image.extract_jpeg_shape(contents), size),
            lambda: tf.constant(0),
        )
    else:
        branch = tf.cast(is_jpeg, "int32")
    image = tf.switch_case(branch, [decode_any] + [decode_jpeg(r) for r in _JPEG_RATIOS])
    ratio = tf.gather(tf.constant((1,) + _JPEG_RATIOS, "float32"), branch)
    return image, ratio


def _load_image(path, landmarks, size, fast_decode):
    """Reads, decodes and resizes one file; moves its landmarks along."""
    image, ratio = _decode(tf.io.read_file(path), size, fast_decode)
    # Work in continuous coordinates (pixel i spans [i, i + 1)), where
    # scaling by the decode ratio and resizing are plain multiplications.
    points = (landmarks + 0.5) / ratio
    image, points = _crop_resize(image, points, size)
    return image, points - 0.5


def _crop_resize(images, points, size):
    """Centre-crops to the aspect of `size`, then resizes to `size`.

    Args:
        images: uint8 image (h, w, 3) or batch (n, h, w, 3).
        points: (..., 2) continuous (x, y) coordinates in `images`.
        size: (height, width).

    Returns:
        uint8 images of spatial size `size`, and `points` in their coordinates.
    """
    height, width = size
    shape = tf.shape(images)
    source_h = tf.cast(shape[-3], "float32")
    source_w = tf.cast(shape[-2], "float32")
    scale = tf.maximum(height / source_h, width / source_w)
    crop_h = tf.minimum(tf.round(height / scale), source_h)
    crop_w = tf.minimum(tf.round(width / scale), source_w)
    top = tf.floor((source_h - crop_h) / 2)
    left = tf.floor((source_w - crop_w) / 2)
    y0, y1 = tf.cast(top, "int32"), tf.cast(top + crop_h, "int32")
    x0, x1 = tf.cast(left, "int32"), tf.cast(left + crop_w, "int32")
    images = images[..., y0:y1, x0:x1, :]
    # Area averaging is the cheap antialiased downscale; bilinear upscales.
    resized = tf.cond(
        scale < 1.0,
        lambda: tf.image.resize(images, size, method="area"),
        lambda: tf.image.resize(images, size, method="bilinear"),
    )
    images = tf.saturate_cast(tf.round(resized), "uint8")
    points = (points - tf.stack([left, top])) * tf.stack([width / crop_w, height / crop_h])
    return images, points


def resize_faces(images, landmarks, size):
    """In-memory faces resized to `size` once, up front, landmarks moved with them.

    Args:
        images: uint8 array `(n, h, w, 3)`.
        landmarks: float array `(n, 5, 2)` in pixel coordinates of `images`.
        size: `(height, width)` of the result.

    Returns:
        `(images, landmarks)`: uint8 `(n, *size, 3)` and the landmarks in the
        new pixels (the arrays themselves when the size is already right).
    """
    if tuple(images.shape[1:3]) == size:
        return images, landmarks
    out_images = np.empty((len(images), *size, 3), dtype="uint8")
    out_points = np.empty_like(landmarks)
    for start in range(0, len(images), _RESIZE_CHUNK):
        rows = slice(start, start + _RESIZE_CHUNK)
        resized, points = _crop_resize(tf.constant(images[rows]), landmarks[rows] + 0.5, size)
        out_images[rows] = resized.numpy()
        out_points[rows] = points.numpy() - 0.5
    return out_images, out_points


def _make_augmenter(config, seed, with_landmarks):
    """A function `(images, landmarks) -> (images, landmarks)` on float32 batches.

    The Keras layers are created once, here, with seeds derived from `seed`.
    """
    photometric = []
    if config["brightness"]:
        photometric.append(
            keras.layers.RandomBrightness(config["brightness"], value_range=(0, 255), seed=seed + 4)
        )
    if config["contrast"]:
        photometric.append(
            keras.layers.RandomContrast(config["contrast"], value_range=(0, 255), seed=seed + 5)
        )

    degrade = {key: config[key] for key in _DEGRADING}
    if with_landmarks:
        geometric = {key: float(config[key] or 0.0) for key in _GEOMETRIC}
        return _landmark_augmenter(config["flip"], photometric, seed, geometric, degrade)

    layers = []
    if config["flip"]:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if config["rotation"]:
        layers.append(keras.layers.RandomRotation(config["rotation"], seed=seed + 1))
    if config["translation"]:
        factor = config["translation"]
        layers.append(keras.layers.RandomTranslation(factor, factor, seed=seed + 2))
    if config["zoom"]:
        layers.append(keras.layers.RandomZoom(config["zoom"], seed=seed + 3))
    pipeline = keras.layers.Pipeline(layers + photometric) if layers or photometric else None
    degrade_generator = tf.random.Generator.from_seed(seed + 6) if any(degrade.values()) else None

    def augment(images, landmarks):
        if pipeline is not None:
            images = pipeline(images, training=True)
        if degrade_generator is not None:
            images = degrade_images(images, degrade_generator, **degrade)
        return images, landmarks

    return augment


def _landmark_augmenter(flip, photometric, seed, geometric=None, degrade=None):
    """Flip and one random similarity (both moving the landmarks),
    photometric changes and degradations (`degrade_images`), per sample."""
    geometric = {k: v for k, v in (geometric or {}).items() if v}
    degrade = degrade or {}
    generator = tf.random.Generator.from_seed(seed) if flip else None
    affine_generator = tf.random.Generator.from_seed(seed + 1) if geometric else None
    degrade_generator = tf.random.Generator.from_seed(seed + 6) if any(degrade.values()) else None
    colour = keras.layers.Pipeline(photometric) if photometric else None

    def augment(images, landmarks):
        if generator is not None:
            coin = generator.uniform([tf.shape(images)[0]]) < 0.5
            flipped, mirrored = mirror_face(images, landmarks)
            images = tf.where(coin[:, None, None, None], flipped, images)
            landmarks = tf.where(coin[:, None, None], mirrored, landmarks)
        if affine_generator is not None:
            images, landmarks = random_similarity(images, landmarks, affine_generator, **geometric)
        if colour is not None:
            images = colour(images, training=True)
        if degrade_generator is not None:
            images = degrade_images(images, degrade_generator, **degrade)
        return images, landmarks

    return augment


def degrade_images(images, generator, *, color=0.0, grayscale=0.0, blur=0.0, jpeg=0):
    """Per-image colour, greyscale, blur and JPEG changes of a batch, in that order.

    The factors are those of `DEFAULT_AUGMENT` (0 skips a step): the
    saturation scaled by a factor uniform in `[1 - color, 1 + color]` about
    each pixel's grey level (`_LUMA`), which stays; each image turned into its
    grey levels with probability `grayscale`; a Gaussian blur of standard
    deviation uniform in `[0, blur]` pixels (separable, mirrored borders;
    `gaussian_blur`); a JPEG compression at a quality uniform in
    `[jpeg, 100]`. Geometry and landmarks are untouched.

    Args:
        images: float32 `(batch, H, W, 3)` in [0, 255].
        generator: a `tf.random.Generator` (seeded: reproducible draws).
        color, grayscale, blur, jpeg: the factors.

    Returns:
        float32 images of the same shape, in [0, 255].

    Example:
        >>> g = tf.random.Generator.from_seed(0)
        >>> x = tf.random.uniform((2, 16, 16, 3), 0, 255, seed=1)
        >>> y = degrade_images(x, g, grayscale=1.0)
        >>> bool(tf.reduce_all(y[..., 0] == y[..., 2]))
        True
    """
    images = tf.cast(images, "float32")
    batch = tf.shape(images)[0]
    if color or grayscale:
        grey = tf.reduce_sum(images * tf.constant(_LUMA, "float32"), axis=-1, keepdims=True)
        scale = tf.ones([batch])
        if color:
            scale = generator.uniform([batch], 1.0 - float(color), 1.0 + float(color))
        if grayscale:
            scale = tf.where(generator.uniform([batch]) < float(grayscale), 0.0, scale)
        images = tf.clip_by_value(grey + scale[:, None, None, None] * (images - grey), 0.0, 255.0)
    if blur:
        images = gaussian_blur(images, generator.uniform([batch], 0.0, float(blur)))
    if jpeg:
        quality = tf.cast(tf.round(generator.uniform([batch], float(jpeg), 100.0)), "int32")

        def compress(args):
            image, q = args
            return tf.image.adjust_jpeg_quality(tf.saturate_cast(tf.round(image), "uint8"), q)

        images = tf.cast(
            tf.map_fn(compress, (images, quality), fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8)),
            "float32",
        )
        images.set_shape([None, None, None, 3])
    return images


def gaussian_blur(images, sigma):
    """A Gaussian blur of each image of a batch with its own standard deviation.

    Separable, with mirrored borders (`tf.pad` "REFLECT") and a kernel of
    radius `ceil(3 * max(sigma))`; a standard deviation of 0 leaves the image
    unchanged.

    Args:
        images: float32 `(batch, H, W, C)`, H and W larger than the radius.
        sigma: `(batch,)` standard deviations in pixels (>= 0).

    Returns:
        float32 images of the same shape.

    Example:
        >>> x = tf.ones((2, 8, 8, 3))
        >>> bool(tf.reduce_all(tf.abs(gaussian_blur(x, tf.constant([0.0, 1.5])) - 1) < 1e-5))
        True
    """
    images = tf.cast(images, "float32")
    sigma = tf.cast(tf.reshape(sigma, [-1]), "float32")
    radius = tf.cast(tf.math.ceil(3.0 * tf.reduce_max(sigma)), "int32")
    radius = tf.maximum(radius, 1)
    x = tf.cast(tf.range(-radius, radius + 1), "float32")
    kernel = tf.exp(-0.5 * tf.square(x[None, :] / tf.maximum(sigma[:, None], 1e-3)))
    kernel /= tf.reduce_sum(kernel, axis=1, keepdims=True)  # (batch, taps)
    shape = tf.shape(images)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    # Every image's channels side by side, so one depthwise convolution applies each its own kernel.
    stacked = tf.reshape(tf.transpose(images, [1, 2, 0, 3]), [1, height, width, batch * channels])
    stacked = tf.pad(stacked, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    taps = tf.repeat(tf.transpose(kernel), channels, axis=1)  # (taps, batch * channels)
    stacked = tf.nn.depthwise_conv2d(stacked, taps[:, None, :, None], [1, 1, 1, 1], "VALID")
    stacked = tf.nn.depthwise_conv2d(stacked, taps[None, :, :, None], [1, 1, 1, 1], "VALID")
    out = tf.transpose(tf.reshape(stacked, [height, width, batch, channels]), [2, 0, 1, 3])
    out.set_shape(images.shape)
    return out


def random_similarity(images, landmarks, generator, *, rotation=0.0, translation=0.0, zoom=0.0,
                      fill_mode="reflect"):
    """One random rotation + zoom + translation per image, landmarks moved alike.

    The factors mean what they mean for Keras' `RandomRotation`,
    `RandomZoom` and `RandomTranslation`: an angle uniform in
    `+-rotation * 2 pi`, a scale uniform in `[1 - zoom, 1 + zoom]` and a
    shift uniform in `+-translation` times the image size, per axis. The
    three are composed into one map about the image centre, so each image is
    resampled once (bilinear), where the chain of Keras layers resamples it
    three times. A landmark p (pixel centres at integers) goes to
    `s R (p - c) + c + t`, the point where its pixel lands.

    Args:
        images: float32 `(batch, H, W, C)`.
        landmarks: float32 `(batch, 5, 2)` (x, y) pixels.
        generator: a `tf.random.Generator` (seeded: reproducible draws).
        rotation, translation, zoom: the factors (0 disables one).
        fill_mode: "reflect", "constant", "nearest" or "wrap" (outside the
            image; Keras' layers default to "reflect").

    Returns:
        `(images, landmarks)`, same shapes.
    """
    shape = tf.shape(images)
    batch = shape[0]
    height, width = tf.cast(shape[1], "float32"), tf.cast(shape[2], "float32")
    angle = generator.uniform([batch], -1.0, 1.0) * (2.0 * math.pi * float(rotation))
    scale = 1.0 + generator.uniform([batch], -1.0, 1.0) * float(zoom)
    shift = generator.uniform([batch, 2], -1.0, 1.0) * float(translation) * tf.stack([width, height])
    centre = tf.stack([(width - 1.0) / 2.0, (height - 1.0) / 2.0])
    cos, sin = tf.cos(angle), tf.sin(angle)
    # forward map (input -> output): A p + b, A = s R
    a = scale[:, None, None] * tf.stack([tf.stack([cos, -sin], -1), tf.stack([sin, cos], -1)], 1)
    b = centre + shift - tf.linalg.matvec(a, tf.broadcast_to(centre, [batch, 2]))
    moved = tf.einsum("bij,bkj->bki", a, landmarks) + b[:, None, :]
    # inverse (output -> input), as the resampler reads it: A^-1 = R^T / s
    inv = tf.linalg.matrix_transpose(a) / (scale * scale)[:, None, None]
    inv_b = -tf.linalg.matvec(inv, b)
    transforms = tf.concat(
        [inv[:, 0, :], inv_b[:, :1], inv[:, 1, :], inv_b[:, 1:], tf.zeros([batch, 2])], axis=1
    )
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=shape[1:3], fill_value=0.0,
        interpolation="BILINEAR", fill_mode=fill_mode.upper(),
    )  # fmt: skip
    warped.set_shape(images.shape)
    return warped, moved
