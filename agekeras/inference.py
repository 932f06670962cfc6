"""From photos to ages: detect every face, align it like the training crops, predict.

```python
import agekeras

faces = agekeras.predict(["family.jpg", "photos/"], "runs/r18")
faces[0]["age"], faces[0]["box"], faces[0].get("age_std")
```

or on the command line (one JSON line per face):

    python -m agekeras predict family.jpg photos/ --run runs/r18 --annotate annotated/
    python -m agekeras export --run runs/r18 --format tflite

**Path of a photo.** `read_image` (EXIF orientation, any colour mode) ->
MTCNN (`agekeras.datasets.align.detect_faces`: every face, faces below
`min_face` pixels skipped and counted) -> similarity alignment of each face's
five landmarks to the template of the run's training convention
(`TrainConfig.align`, e.g. "utkface": the 200 x 200 UTKFace framing) -> the
input pipeline's own resize to the model's input size -> the model, in
batches. A run trained without alignment (`align` None, e.g. on synthetic
faces) gets the whole photo, centre-cropped like its training images: one
prediction per photo.

**What each face gets** (a dict, one JSON line on the command line):
`file`, `face` (index in the photo, largest first), `box` [x1, y1, x2, y2]
and `landmarks` [[x, y] x 5] in the photo's pixels, `confidence`, `age`
(years) and, where the model has a distribution over ages, `age_std` (its
standard deviation), `age_interval` (its central interval, years) and
`age_interval_level` (that interval's level, `calibration.DEFAULT_LEVEL`:
90 %): from "age_probs" (DEX-style softmax) or "age_logits" (CORAL: class
probabilities from the differences of the cumulative sigmoids), at the
temperature the run fitted on its validation faces
(`agekeras.calibration.calibrate_run`) so that a 90 % interval holds the
true age about 90 % of the time on faces like the training faces; `gender`
("male" / "female") and `gender_prob` where the model has "gender_probs".

**Bad input** never stops a batch: an unreadable file, a non-image, a photo
without a face (or only tiny faces) is one line in `problems`, and the rest
goes on.

**Export.** `export_model` writes a TensorFlow SavedModel (Keras 3
`model.export`) or a TFLite file whose serving signature takes a batch of
aligned uint8 face crops (batch, S, S, 3) at the model's input size and
returns the ages (batch,).
"""

from __future__ import annotations

import logging
import pathlib
import time

import numpy as np

from agekeras import calibration as C
from agekeras.ages import GENDER_NAMES
from agekeras.calibration import DEFAULT_LEVEL, age_distribution
from agekeras.config import TrainConfig, unaligned_photos_warning
from agekeras.datasets import align as A
from agekeras.evaluation import load_run
from agekeras.runs import BEST, RunDir

logger = logging.getLogger("agekeras.inference")

DEFAULT_ALIGN = "utkface"


class Predictor:
    """A model ready for photos: its input size, alignment and head outputs.

    Args:
        model: a Keras model with an "age" output (dict outputs).
        align: the template name of its training crops, or None (whole image).
        image_size: expected input side; checked against the model's.
        name: what to call it in messages.
        run_dir: the run directory the model comes from, whose
            `calibration.CALIBRATION_FILE` gives the temperature of its age
            intervals (`interval_settings`); None: the model's own spread.

    Raises:
        ValueError: the model has no "age" output, or its image input is not
            a square RGB image of `image_size`.
    """

    def __init__(self, model, align=DEFAULT_ALIGN, image_size=None, name="model", run_dir=None):
        self.model, self.name, self.run_dir = model, name, run_dir
        self.align = None if align in (None, "none") else A.get_template(align).name
        names = [t.name for t in model.inputs]
        self.needs_landmarks = "landmarks" in names
        image_input = model.inputs[names.index("image")] if "image" in names else model.inputs[0]
        shape = tuple(image_input.shape[1:])
        if len(shape) != 3 or shape[-1] != 3 or shape[0] is None or shape[0] != shape[1]:
            raise ValueError(f"{name}: the model's image input is {shape}, not a square RGB image (S, S, 3)")
        if image_size is not None and int(image_size) != shape[0]:
            raise ValueError(f"{name}: the model takes {shape[0]} px images but its run says {image_size} px")
        self.image_size = int(shape[0])
        outputs = model.output if isinstance(model.output, dict) else None
        if not outputs or "age" not in outputs:
            raise ValueError(f"{name}: the model has no 'age' output")
        self.outputs = list(outputs)

    def interval_settings(self, flip=False):
        """(temperature, level) of the age intervals: the run's calibration
        (`agekeras.calibration.run_temperature`; `flip` for averaged views),
        else (1.0, `DEFAULT_LEVEL`)."""
        return C.run_temperature(self.run_dir, flip)


def load_predictor(model_or_run, *, align="auto", checkpoint=BEST):
    """A `Predictor` from a run directory, a .keras file or a Keras model.

    Args:
        model_or_run: a run directory (its config.json gives the alignment
            and input size), a `.keras` file (alignment from the config.json
            beside it when it lies in a run directory, else `DEFAULT_ALIGN`),
            a `Predictor`, or a `keras.Model`.
        align: "auto" (as above), a template name, or None (whole image).
        checkpoint: the run's checkpoint ("best.keras", falls back to
            "last.keras").

    Returns:
        A `Predictor`.

    Raises:
        FileNotFoundError: a missing file, or a folder that is not a run.
        ValueError: a model this path cannot feed.
    """
    import keras

    if isinstance(model_or_run, Predictor):
        return model_or_run
    if isinstance(model_or_run, keras.Model):
        return Predictor(model_or_run, DEFAULT_ALIGN if align == "auto" else align, name=model_or_run.name)
    path = pathlib.Path(model_or_run)
    if path.is_dir():
        model, config, _ = load_run(path, checkpoint)
        if align == "auto" and (note := unaligned_photos_warning(config, str(path))):
            logger.warning(note)
        return Predictor(model, config.align if align == "auto" else align, config.image_size, name=str(path),
                         run_dir=path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file or run directory")
    if path.suffix != ".keras":
        raise ValueError(f"{path}: not a .keras model file")
    model = keras.saving.load_model(path, safe_mode=True)
    if align == "auto":
        saved = RunDir(path.parent).read_config()
        config = TrainConfig.from_json(saved["train"]) if saved else None
        if config is not None and (note := unaligned_photos_warning(config, str(path))):
            logger.warning(note)
        align = config.align if config is not None else DEFAULT_ALIGN
    return Predictor(model, align, name=str(path), run_dir=path.parent if RunDir(path.parent).exists() else None)


# ----- the model's outputs ------------------------------------------------------------


def spread(probs, age, level=DEFAULT_LEVEL, temperature=1.0):
    """Standard deviation and central `level` interval of age distributions.

    The classes are integer ages k = 0..K-1 shifted so that the mean of the
    (untempered) distribution is the model's `age` (true for DEX and CORAL
    heads, whose age is the expectation / the sum of the cumulative
    probabilities), so no `age_min` is needed (`calibration.class_offset`).
    Both are read from the distribution at `temperature`
    (`calibration.temper`), the run's calibrated one in `predict`.

    Args:
        probs: (batch, K) probabilities.
        age: (batch,) predicted ages.
        level: interval mass.
        temperature: T > 0 (1: the model's own distribution).

    Returns:
        (std, interval): float64 (batch,) and (batch, 2) years.

    Example:

    >>> std, iv = spread(np.array([[0.25, 0.5, 0.25]]), np.array([30.0]), level=0.8)
    >>> round(float(std[0]), 4), iv.tolist()
    (0.7071, [[29.0, 31.0]])
    """
    offset = C.class_offset(probs, age)
    return C.std(probs, temperature), C.interval(probs, level, temperature, offset)


def _face_outputs(outputs, i, std=None, interval=None, level=None):
    out = {"age": round(float(np.asarray(outputs["age"]).reshape(-1)[i]), 2)}
    if std is not None:
        out["age_std"] = round(float(std[i]), 2)
        out["age_interval"] = [round(float(v), 1) for v in interval[i]]
        out["age_interval_level"] = level
    if "gender_probs" in outputs:
        g = np.asarray(outputs["gender_probs"], dtype="float64")[i]
        k = int(np.argmax(g))
        out["gender"], out["gender_prob"] = GENDER_NAMES[k], round(float(g[k]), 3)
    return out


# ----- predict ------------------------------------------------------------------------


class PredictResult(list):
    """The faces (a list of dicts), plus `problems` (one line per image that
    gave no face: unreadable, no face found, only tiny faces) and `stats`
    (images, faces, seconds and faces/s of detection and of the model, and
    `interval_level` and `interval_temperature` of the age intervals)."""

    problems: list
    stats: dict


def predict(images_or_paths, model_or_run, *, align="auto", detector=None, min_confidence=0.9, min_face=20,
            batch_size=32, chunk=32, cache=False, annotate_dir=None, progress=False, flip=False,
            tta=False):  # fmt: skip
    """The age of every face in photos.

    Args:
        images_or_paths: a path (file or folder, searched recursively), a
            uint8 array (H, W, 3), or a list of those (and PIL images).
        model_or_run: a run directory, a .keras file, a `keras.Model` or a
            `Predictor` (see `load_predictor`).
        align: "auto" (the run's training convention), a template name of
            `agekeras.datasets.align.TEMPLATES`, or None (whole image, no
            detection).
        detector: an MTCNN-like detector (default: made on first use).
        min_confidence: detections below it are ignored.
        min_face: faces smaller than this (box's shorter side, pixels) are
            skipped and reported.
        batch_size: faces per model call.
        chunk: images read and detected per step.
        cache: keep detections of files in `DetectionCache` (True, or a
            `DetectionCache`).
        annotate_dir: write a copy of every photo with boxes and ages drawn.
        progress: show a progress bar (tqdm when installed, else Keras).
        flip: flip test-time averaging: every output is the mean of the
            aligned face's and its mirror image's (landmarks mirrored too),
            as `evaluate --flip` scores a run (`agekeras.evaluation.mean_over_views`).
        tta: average the six views of `agekeras.evaluation.TTA_VIEWS` (three
            zooms about the face centre, each also mirrored), as
            `evaluate --tta` scores a run; six model passes per face.

    Returns:
        A `PredictResult`: a list of face dicts (see the module docstring),
        with `.problems` and `.stats`.

    Example:

    >>> faces = predict("photo.jpg", "runs/r18")  # doctest: +SKIP
    >>> [(f["age"], f["box"]) for f in faces]     # doctest: +SKIP
    """
    from agekeras.evaluation import test_views

    views = test_views(flip, tta)
    predictor = load_predictor(model_or_run, align=align)
    temperature, level = predictor.interval_settings(flip=len(views) > 1)
    items = _items(images_or_paths)
    result = PredictResult()
    result.problems = []
    stats = {"images": len(items), "images_with_faces": 0, "faces": 0, "tiny_faces": 0,
             "detected_images": 0, "detected_faces": 0, "detection_seconds": 0.0, "model_seconds": 0.0}  # fmt: skip
    store = A.DetectionCache() if cache is True else (cache or None)
    bar = _progress_bar(len(items)) if progress else None
    annotate_dir = pathlib.Path(annotate_dir) if annotate_dir else None
    if annotate_dir:
        annotate_dir.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(items), chunk):
        part = items[start:start + chunk]
        images, names = [], []
        for name, item in part:
            try:
                images.append(A.read_image(item))
                names.append(name)
            except A.ImageReadError as e:
                result.problems.append(str(e))
        crops, points, meta = [], [], []
        if predictor.align is None:
            for name, image in zip(names, images):
                h, w = image.shape[:2]
                crops.append(A.centre_crop(image, predictor.image_size))
                points.append(A.TEMPLATES[DEFAULT_ALIGN].landmarks(predictor.image_size))
                meta.append((name, 0, {"box": [0.0, 0.0, float(w), float(h)]}))
        else:
            t = A.get_template(predictor.align)
            rows = [None] * len(images)
            todo = []
            for j, name in enumerate(names):
                got = store.get(name) if store is not None and _is_file(name) else None
                if got is None:
                    todo.append(j)
                else:
                    rows[j] = got
            if todo:
                tic = time.perf_counter()
                detector = detector or A.detection.make_detector()
                for j, r in zip(todo, A.detect_rows([images[j] for j in todo], detector)):
                    rows[j] = r
                    if store is not None and _is_file(names[j]):
                        store.put(names[j], r)
                    stats["detected_faces"] += len(A.select_faces(r, min_confidence, min_face).faces)
                stats["detection_seconds"] += time.perf_counter() - tic
                stats["detected_images"] += len(todo)
            for j, (name, image) in enumerate(zip(names, images)):
                found = A.select_faces(rows[j], min_confidence, min_face)
                stats["tiny_faces"] += found.tiny
                if not found.faces:
                    why = f"{found.tiny} face(s) smaller than {min_face} px skipped" if found.tiny else "no face found"
                    result.problems.append(f"{name}: {why}")
                    continue
                if found.tiny:
                    logger.info("%s: %d face(s) smaller than %d px skipped", name, found.tiny, min_face)
                for k, face in enumerate(found.faces):
                    crop, pts = A.align_face(image, face.landmarks, t)
                    crops.append(crop)
                    points.append(pts)
                    meta.append((name, k, {
                        "box": [round(float(v), 1) for v in face.box],
                        "confidence": round(face.confidence, 4),
                        "landmarks": np.round(face.landmarks, 1).tolist(),
                    }))  # fmt: skip
            if store is not None:
                store.save()
        faces = []
        if crops:
            outputs, seconds = _run_model(predictor, np.stack(crops), np.stack(points).astype("float32"), batch_size,
                                          views)
            stats["model_seconds"] += seconds
            dist = age_distribution(outputs)
            std, interval = (None, None) if dist is None else spread(dist, outputs["age"], level, temperature)
            for i, (name, k, info) in enumerate(meta):
                face = {"file": name, "face": k, **info, **_face_outputs(outputs, i, std, interval, level)}
                if predictor.align:
                    face["align"] = predictor.align
                faces.append(face)
        result.extend(faces)
        stats["faces"] += len(faces)
        stats["images_with_faces"] += len({f["file"] for f in faces})
        if annotate_dir:
            for name, image in zip(names, images):
                _annotate(image, [f for f in faces if f["file"] == name], annotate_dir, name)
        if bar is not None:
            bar(start + len(part))
    secs = stats["detection_seconds"]
    stats["detection_images_per_s"] = round(stats["detected_images"] / secs, 2) if secs else None
    stats["detection_faces_per_s"] = round(stats["detected_faces"] / secs, 2) if secs else None
    stats["model_faces_per_s"] = round(stats["faces"] / stats["model_seconds"], 2) if stats["model_seconds"] else None
    stats["detection_seconds"] = round(stats["detection_seconds"], 2)
    stats["model_seconds"] = round(stats["model_seconds"], 2)
    stats["problems"] = len(result.problems)
    stats["interval_level"], stats["interval_temperature"] = level, temperature
    result.stats = stats
    for line in result.problems:
        logger.warning("%s", line)
    return result


def _is_file(name):
    return not name.startswith("<")


def _items(images_or_paths):
    """(name, image-or-path) pairs; arrays get names "<image 0>", ..."""
    if isinstance(images_or_paths, (str, pathlib.Path, np.ndarray)) or hasattr(images_or_paths, "getpixel"):
        images_or_paths = [images_or_paths]
    out = []
    for i, item in enumerate(images_or_paths):
        if isinstance(item, (str, pathlib.Path)):
            p = pathlib.Path(item)
            if p.is_dir():
                out.extend((f, f) for f in A.list_images([p]))
            else:
                out.append((str(p), str(p)))
        else:
            out.append((f"<image {i}>", item))
    return out


def _run_model(predictor, crops, points, batch_size, views=((1.0, False),)):
    """Resize aligned crops to the model's size like the input pipeline, run
    the model in batches on every `(zoom, mirrored)` view
    (`agekeras.evaluation.test_views`), average the views; returns
    (outputs dict of NumPy arrays, seconds)."""
    from agekeras.datasets.pipeline import resize_faces, mirror_face, zoom_images
    from agekeras.evaluation import mean_over_views

    images, pts = resize_faces(crops, points, (predictor.image_size, predictor.image_size))
    tic = time.perf_counter()

    def run(images, pts, zoom=1.0, mirrored=False):
        parts = []
        for s in range(0, len(images), batch_size):
            x = images[s:s + batch_size].astype("float32")
            p = pts[s:s + batch_size].astype("float32")
            if zoom != 1:
                x, p = (np.asarray(t) for t in zoom_images(x, p, zoom))
            if mirrored:
                x, p = mirror_face(x, p)
            if predictor.needs_landmarks:
                x = {"image": x, "landmarks": p}
            out = predictor.model.predict_on_batch(x)
            parts.append({k: np.asarray(v) for k, v in out.items()})
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    outputs = [run(images, pts, zoom, mirrored) for zoom, mirrored in views]
    if len(outputs) == 1:
        return outputs[0], time.perf_counter() - tic
    return {k: v.astype("float32") for k, v in mean_over_views(*outputs).items()}, time.perf_counter() - tic


def _progress_bar(total):
    try:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="image")

        def update(done):
            bar.update(done - bar.n)
            if done >= total:
                bar.close()

        return update
    except ImportError:
        import keras

        bar = keras.utils.Progbar(total, unit_name="image")
        return lambda done: bar.update(done)


def annotate(image, faces):
    """A copy of a photo with each face's box and a label (age, +- its spread, gender) drawn on it.

    Each face is drawn at its own scale, so that a group photo with faces near and far reads well:
    the box line is about 1/50 of the face's side (at least 1 px) and the label's text about 1/5 of
    it (at least 10 px or 1/80 of the photo's shorter side, at most 1/12 of it). A label sits on
    the box's top edge, outside when there is room above the box, else inside it, and is moved
    (and, on a photo narrower than the label, shrunk) so that it never leaves the photo.

    Args:
        image: uint8 (H, W, 3).
        faces: dicts with "box" [x1, y1, x2, y2] and "age", optionally "age_std" and "gender"
            (the dicts `predict` returns).

    Returns:
        (annotated, labels): uint8 (H, W, 3), and each face's label rectangle [x0, y0, x1, y1]
        (pixels, inside the photo).

    Example:
        >>> img, labels = annotate(np.zeros((100, 120, 3), "uint8"), [{"box": [90, 5, 119, 40], "age": 31.6}])
        >>> img.shape, all(0 <= v for v in labels[0]) and labels[0][2] <= 120
        ((100, 120, 3), True)
    """
    from PIL import Image, ImageDraw

    im = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(im)
    width, height = im.size
    short = min(width, height)
    labels = []
    for f in faces:
        x1, y1, x2, y2 = (float(v) for v in f["box"])
        side = max(1.0, min(x2 - x1, y2 - y1))
        line = max(1, round(side / 50))
        draw.rectangle([x1, y1, x2, y2], outline=(255, 40, 40), width=line)
        text = f"{f['age']:.0f}" + (f" ±{f['age_std']:.0f}" if "age_std" in f else "")
        if "gender" in f:
            text += " " + f["gender"][0].upper()
        size = round(min(max(side / 5, 10, short / 80), max(10, short / 12)))
        while True:
            font = _font(size)
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            pad = max(1, round((bottom - top) / 6))
            box_w, box_h = right - left + 2 * pad, bottom - top + 2 * pad
            if box_w <= width or size <= 6:
                break
            size -= 1
        lx = min(max(0.0, x1), max(0.0, width - box_w))
        ly = y1 - box_h if y1 - box_h >= 0 else max(0.0, y1)  # above the box, else inside it
        ly = min(ly, max(0.0, height - box_h))
        rect = [round(lx), round(ly), round(lx) + box_w, round(ly) + box_h]
        draw.rectangle([rect[0], rect[1], rect[2] - 1, rect[3] - 1], fill=(255, 40, 40))
        draw.text((rect[0] + pad - left, rect[1] + pad - top), text, fill=(255, 255, 255), font=font)
        labels.append(rect)
    return np.asarray(im), labels


def _font(size):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _annotate(image, faces, out_dir, name):
    from PIL import Image

    annotated, _ = annotate(image, faces)
    stem = pathlib.Path(name).stem if _is_file(name) else name.strip("<>").replace(" ", "_")
    target = out_dir / f"{stem}.jpg"
    n = 1
    while target.exists():
        target = out_dir / f"{stem}_{n}.jpg"
        n += 1
    Image.fromarray(annotated).save(target, quality=90)
    return target


# ----- export -------------------------------------------------------------------------


def serving_model(predictor):
    """A Keras model taking aligned uint8 crops (batch, S, S, 3) and returning
    {"age": (batch,)}; models with a landmarks input get the template's
    landmarks (the crops are aligned)."""
    import keras

    s = predictor.image_size
    inp = keras.Input((s, s, 3), dtype="uint8", name="faces")
    x = keras.ops.cast(inp, "float32")
    if predictor.needs_landmarks:
        pts = A.TEMPLATES[predictor.align or DEFAULT_ALIGN].landmarks(s).astype("float32")
        marks = keras.ops.zeros_like(x[:, :5, :2, 0]) + pts  # (batch, 5, 2), batch size unknown here
        out = predictor.model({"image": x, "landmarks": marks})
    else:
        out = predictor.model(x)
    return keras.Model(inp, {"age": keras.ops.cast(out["age"], "float32")}, name="age_serving")


def export_model(model_or_run, out, format="saved_model", checkpoint=BEST):
    """Export a model for serving: aligned uint8 crops in, ages out.

    Args:
        model_or_run: see `load_predictor`.
        out: output folder (saved_model) or file (tflite).
        format: "saved_model" (Keras 3 `model.export`, format
            "tf_saved_model") or "tflite" (converted from that SavedModel).
        checkpoint: the run's checkpoint.

    Returns:
        The path written.

    Example:

    >>> export_model("runs/r18", "runs/r18/export", "saved_model")  # doctest: +SKIP
    """
    import tempfile

    import tensorflow as tf

    if format not in ("saved_model", "tflite"):
        raise ValueError(f"format must be 'saved_model' or 'tflite'; got {format!r}")
    predictor = load_predictor(model_or_run, checkpoint=checkpoint)
    serving = serving_model(predictor)
    out = pathlib.Path(out)
    if format == "saved_model":
        serving.export(str(out), format="tf_saved_model", verbose=False)
        return out
    with tempfile.TemporaryDirectory() as tmp:
        serving.export(tmp, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
        data = converter.convert()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out
