"""Scoring a run: its model on a dataset, under test-time views, into metrics files.

- `evaluate(run_dir, ...)`: a run's checkpoint on its own test split (or
  another split, or another dataset, aligned like the training crops), with
  optional flip / six-view test-time averaging; writes metrics, per-face
  predictions and figures through `agekeras.runs.RunDir`.
- `evaluate_cached(run_dir, ...)`: the same, reusing a metrics file that is
  newer than the checkpoint it scored.
- `load_run(run_dir)`: a run's model and configuration; `load_splits(config)`:
  its seeded splits (each cut to `AGEKERAS_MAX_STEPS` batches when set).
- `dataset_outputs(model, ds, ...)`: a model's outputs on every face of an
  `AgeDataset`, in order, for one view (`view_pipeline`); `mean_over_views`
  averages views; `test_views(flip, tta)` names them.
"""

from __future__ import annotations

import logging

import keras
import numpy as np

from agekeras import calibration
from agekeras import metrics as M
from agekeras.ages import GENDER_NAMES, RACE_NAMES
from agekeras import config as run_config
from agekeras.config import TrainConfig, unaligned_photos_warning
from agekeras.runs import BEST, CONFIG, RunDir
from agekeras.runtime import cap_splits, max_steps

logger = logging.getLogger("agekeras.evaluation")

#: The views of test-time averaging (`evaluate(..., tta=True)`, `predict --tta`):
#: `(zoom, mirrored)` pairs for `view_pipeline`. The zooms, a 59-pixel
#: centre crop enlarged and a 3-pixel border added at 64 px, stay inside the
#: default training augmentation's +-10% zoom; every view is also mirrored.
TTA_VIEWS = ((1.0, False), (1.0, True), (1.085, False), (1.085, True), (0.915, False), (0.915, True))


def test_views(flip=False, tta=False):
    """The `(zoom, mirrored)` views to average: the face alone, with its
    mirror image (`flip`), or `TTA_VIEWS` (`tta`); the first is the plain face."""
    if flip and tta:
        raise ValueError("tta already averages the mirror images: pass flip or tta, not both")
    return TTA_VIEWS if tta else ((1.0, False), (1.0, True)) if flip else ((1.0, False),)


def view_pipeline(model, ds, image_size, batch_size=64, flip=False, zoom=1.0):
    """The tf.data pipeline that feeds `model` every face of `ds`, in order.

    Images (and landmarks when the model takes a "landmarks" input) without
    augmentation; labels travel with each batch.

    Args:
        model: a Keras model; its inputs decide whether landmarks are fed.
        ds: an `AgeDataset`.
        image_size: the model's input size.
        batch_size: batch size.
        flip: mirror every image (and its landmarks, left/right swapped:
            `agekeras.datasets.pipeline.mirror_landmarks`), for flip
            test-time augmentation.
        zoom: scale every face about the image centre first
            (`agekeras.datasets.pipeline.zoom_images`), for `TTA_VIEWS`.

    Returns:
        A `tf.data.Dataset` of `(inputs, labels)` batches.
    """
    from agekeras.datasets.pipeline import make_tf_dataset, mirror_face, zoom_images

    needs_landmarks = "landmarks" in [t.name for t in model.inputs]
    data = make_tf_dataset(
        ds, image_size=image_size, batch_size=batch_size, training=False, augment=False,
        with_landmarks=needs_landmarks,
    )
    if zoom != 1:

        def scale(x, y):
            if isinstance(x, dict):
                x = dict(x)
                x["image"], x["landmarks"] = zoom_images(x["image"], x["landmarks"], zoom)
            else:
                x = zoom_images(x, None, zoom)[0]
            return x, y

        data = data.map(scale)
    if not flip:
        return data

    def mirror(x, y):
        if isinstance(x, dict):
            x = dict(x)
            x["image"], x["landmarks"] = mirror_face(x["image"], x["landmarks"])
        else:
            x = mirror_face(x)[0]
        return x, y

    return data.map(mirror)


def dataset_outputs(model, ds, image_size, batch_size=64, with_labels=False, flip=False, zoom=1.0):
    """The model's outputs on every face of `ds`, in order (NumPy arrays).

    Args:
        model: a Keras model (dict or single output).
        ds: an `AgeDataset`.
        image_size: the model's input size.
        batch_size: prediction batch size.
        with_labels: also return the label dict that travelled through the
            pipeline with each image, so that a file dropped at run time
            (unreadable after validation) cannot misalign predictions and labels.
        flip: predict the mirrored faces instead (see `view_pipeline`).
        zoom: predict the faces scaled about the centre (see `view_pipeline`).

    Returns:
        The outputs (same structure as the model's), or `(outputs, labels)`.
    """
    data = view_pipeline(model, ds, image_size, batch_size, flip=flip, zoom=zoom)
    cap = max_steps()
    if cap is not None:  # AGEKERAS_MAX_STEPS: a smoke test scores the first `cap` batches
        data = data.take(cap)
    to_backend = keras.backend.backend() != "tensorflow"  # JAX and PyTorch take NumPy, not tf.Tensor
    outs, labels = [], []
    for x, y in data:
        if to_backend:
            x = keras.tree.map_structure(lambda t: t.numpy(), x)
        outs.append(model.predict_on_batch(x))
        labels.append({k: v.numpy() for k, v in y.items()})
    if not outs:
        raise ValueError(f"no readable image in {ds.name} ({len(ds)} rows)")
    cat = lambda parts: np.concatenate([np.asarray(p) for p in parts], axis=0)  # noqa: E731
    out = {k: cat([o[k] for o in outs]) for k in outs[0]} if isinstance(outs[0], dict) else cat(outs)
    if not with_labels:
        return out
    lab = {k: cat([l[k] for l in labels]) for k in labels[0]}
    if len(lab["age"]) != len(ds) and max_steps() is None:
        logger.warning("%d of %d faces of %s could not be read at prediction time", len(ds) - len(lab["age"]), len(ds), ds.name)
    return out, lab


def load_splits(config: TrainConfig):
    """The seeded splits of a run (`agekeras.config.load_splits`), each cut to
    its first `AGEKERAS_MAX_STEPS` batches when that is set (`cap_splits`).

    Returns:
        (splits, full): dict with "train", "test" and maybe "val"
        `AgeDataset`s, and the full dataset (never cut: its age range gives
        the run's age classes).
    """
    splits, full = run_config.load_splits(config)
    return cap_splits(splits, config.batch_size), full


def load_run(run_dir, checkpoint=BEST):
    """A run's model and configuration.

    Args:
        run_dir: a run directory (see the module docstring).
        checkpoint: "best.keras" or "last.keras"; falls back to last.keras
            when the asked checkpoint is missing.

    Returns:
        (model, config, saved): the loaded Keras model, the `TrainConfig`
        and the whole config.json dict (`age_min`, `num_classes`, ...).

    Raises:
        FileNotFoundError: no config.json, or no checkpoint in `run_dir`.

    Example:

    >>> model, config, saved = load_run("runs/r18")  # doctest: +SKIP
    >>> config.image_size, config.align, saved["age_min"]  # doctest: +SKIP
    (64, 'utkface', 1)
    """
    run = RunDir(run_dir)
    saved = run.read_config()
    if not saved:
        raise FileNotFoundError(f"{run.path} has no {CONFIG}: is it a run directory?")
    config = TrainConfig.from_json(saved["train"])
    ckpt = run.checkpoint(checkpoint)
    model = keras.saving.load_model(ckpt, safe_mode=True)
    saved["checkpoint"] = ckpt.name
    return model, config, saved


def mean_over_views(*views):
    """Test-time averaging: the mean of every output over views of the same
    faces (`dataset_outputs(..., flip=True)`, `dataset_outputs(..., zoom=...)`, `TTA_VIEWS`).

    Our heads decode `age` linearly from probabilities (the DEX expectation,
    CORAL's sum of rank probabilities), so the averaged `age` is also the age
    decoded from the averaged probabilities. Two outputs are averaged without
    that meaning: the `age` of a softmax head decoded by argmax (the mean of
    class ages), and raw `*_logits` (their mean is not the logit of the
    mean probability): read `age` and the `*_probs` outputs.

    Args:
        *views: dicts of NumPy arrays from `dataset_outputs`, same keys and shapes
            (at least one).

    Returns:
        dict of float64 arrays.
    """
    if not views:
        raise ValueError("mean_over_views needs at least one view")
    return {k: np.mean([np.asarray(v[k], "float64") for v in views], axis=0) for k in views[0]}


def evaluate(run_dir, *, dataset=None, data_dir=None, splits=None, split="test", checkpoint=BEST,
             align="auto", flip=False, tta=False, model=None):  # fmt: skip
    """Evaluate a run's checkpoint on a dataset's test split.

    Args:
        run_dir: the run directory.
        dataset, data_dir: evaluate on another dataset (default: the run's own
            test split, re-created from config.json with the same seed).
        splits: already loaded splits (saves re-reading the data).
        split: which split to evaluate ("test", "val" or "all" for the whole
            dataset when evaluating on another dataset).
        checkpoint: "best.keras" or "last.keras".
        flip: flip test-time averaging (`mean_over_views`): every face is
            predicted as it is and mirrored, and the outputs are averaged.
            The metrics go to a file with the suffix `_flip`.
        tta: average the six `TTA_VIEWS` instead (three zooms, each also
            mirrored); the metrics go to a file with the suffix `_tta`.
        align: for another dataset, the face alignment applied to its photos
            before the model (a template of `agekeras.datasets.align`):
            "auto" uses the run's own (`TrainConfig.align`), None feeds the
            photos as they are. Photos where MTCNN finds no face are scored
            on a centre crop and counted (`faces_missed` in the metrics).
        model: the run's `checkpoint` already loaded (`load_run`), to save
            loading it again.

    Returns:
        The metrics dict, also written to `metrics.json` (or
        `metrics_<split>.json` for another split of the run's dataset,
        `metrics_<dataset>.json`, `metrics_<dataset>_<align>.json` for
        another dataset, each with `_flip` or `_tta` after test-time
        averaging). The returned dict also names that file
        (`"metrics_file"`).
    """
    run = RunDir(run_dir)
    if model is None:
        model, config, saved = load_run(run.path, checkpoint)
    else:
        saved = run.read_config()
        config = TrainConfig.from_json(saved["train"])
        saved["checkpoint"] = run.checkpoint(checkpoint).name
    suffix = metrics_suffix(run, dataset=dataset, data_dir=data_dir, split=split, align=align, flip=flip, tta=tta)
    align_report = None
    if dataset is not None and (dataset != config.dataset or data_dir != config.data_dir):
        from agekeras import datasets

        full = datasets.load(dataset, data_dir)
        ds = full if split == "all" else datasets.split(full, "random", seed=config.seed)[split]
        if align == "auto" and ds.paths is not None and (note := unaligned_photos_warning(config, str(run.path))):
            logger.warning(note)
        align = config.align if align == "auto" else align
        if align and ds.paths is None:
            raise ValueError(f"{dataset} has no image files to align; pass align=None")
        if align:
            from agekeras.datasets.align import aligned_dataset

            ds, align_report = aligned_dataset(ds, align, log=logger.info)
    else:
        if splits is None:
            splits, _ = load_splits(config)
        if split not in splits:
            raise ValueError(f"split must be one of {sorted(splits)} for the run's own dataset; got {split!r}")
        ds = splits[split]
    views = test_views(flip, tta)
    out, labels = dataset_outputs(model, ds, config.image_size, config.batch_size, with_labels=True)
    if len(views) > 1:  # views[0] is the plain face, already in `out`
        rest = [dataset_outputs(model, ds, config.image_size, config.batch_size, flip=f, zoom=z) for z, f in views[1:]]
        out = mean_over_views(out, *rest)
    pred = np.asarray(out["age"], dtype="float64").reshape(-1)
    true = labels["age"].astype("float64")
    aligned = len(true) == len(ds)
    result = {"checkpoint": saved["checkpoint"], "dataset": dataset or config.dataset, "split": split, "flip": bool(flip),
              "tta": bool(tta)}
    result.update(M.age_metrics(true, pred))
    result["median_predictor_mae"] = M.mae(true, np.full_like(true, np.median(true)))
    cap = max_steps()
    result["unreadable"] = int(len(ds) - len(true)) if cap is None else 0
    if cap is not None:
        result["max_steps"] = cap  # a smoke test: the first `cap` batches only
    if align_report is not None:
        result["align"] = align_report["align"]
        result["faces_missed"] = align_report["faces_missed"]  # scored on a centre crop
        result["unreadable"] += align_report["unreadable"]
        result["missed"] = align_report["missed"]
    if ds.images is not None and aligned:  # greyscale photos (equal channels) apart from colour ones
        found = np.ones(len(true), bool) if align_report is None else np.asarray(align_report["found"], bool)
        grey = np.all(ds.images == ds.images[..., :1], axis=(1, 2, 3))
        result["by_colour"] = {name: _signed_errors(true[m], pred[m]) for name, m in
                               (("all", np.ones_like(grey)), ("faces_found", found), ("colour", found & ~grey),
                                ("greyscale", found & grey)) if m.any()}  # fmt: skip
    if np.all(np.isfinite(labels["age_std"])) and len(true):
        result["epsilon_error"] = M.epsilon_error(pred, labels["age"], labels["age_std"])
    if "gender_probs" in out:
        result["gender_accuracy"] = M.gender_accuracy(labels["gender"], out["gender_probs"])
    result["by_gender"] = _by_group(true, pred, labels["gender"], GENDER_NAMES)
    result["by_race"] = _by_group(true, pred, labels["race"], RACE_NAMES)
    from agekeras import plots

    result["by_age"] = M.error_by_age(true, pred)
    probs = calibration.age_distribution(out)
    if probs is not None:  # how often the age intervals hold the true age
        result["interval"] = calibration.interval_report(probs, out["age"], true, run.path, flip=len(views) > 1)
    metrics_file = run.write_metrics(result, suffix)
    run.write_predictions(_prediction_rows(ds if aligned else None, true, pred, labels), suffix)
    figs = run.make().figures
    plots.plot_predictions(true, pred, mae=result["mae"], save_to=figs / f"pred_vs_true{suffix}.png")
    plots.plot_error_by_age(result["by_age"], mae=result["mae"], save_to=figs / f"mae_by_age{suffix}.png")
    return {**result, "metrics_file": str(metrics_file)}


def _by_group(true, pred, codes, names):
    out = {}
    for code, name in names.items():
        m = codes == code
        if m.any():
            out[name] = {"n": int(m.sum()), "mae": M.mae(true[m], pred[m])}
    return out


def _signed_errors(true, pred):
    return {"n": int(len(true)), "mae": M.mae(true, pred), "mean_error": float(np.mean(pred - true))}


def _prediction_rows(ds, true, pred, labels):
    """One row per predicted face; paths only when no face was dropped (so
    that row i is face i of `ds`)."""
    paths = ds.paths if ds is not None and ds.paths is not None else None
    for i in range(len(true)):
        yield {"index": i, "path": paths[i] if paths is not None else "", "age": f"{true[i]:.1f}",
               "predicted": f"{pred[i]:.3f}", "gender": int(labels["gender"][i]), "race": int(labels["race"][i])}


def evaluate_cached(run_dir, **kwargs):
    """`evaluate(run_dir, **kwargs)`, unless the metrics file it would write
    exists and is newer than the checkpoint it scored: then that file's
    metrics (no model is loaded)."""
    run = RunDir(run_dir)
    suffix = metrics_suffix(run, **kwargs)
    if suffix is not None and run.metrics_current(suffix, kwargs.get("checkpoint", BEST)):
        return {**run.read_metrics(suffix), "metrics_file": str(run.metrics_file(suffix))}
    return evaluate(run.path, **kwargs)


def metrics_suffix(run, *, dataset=None, data_dir=None, split="test", align="auto", flip=False, tta=False,
                   **_ignored):
    """The suffix of the metrics file `evaluate` writes for these arguments
    ("" for metrics.json, "_flip", "_val", "_fgnet_utkface_flip", ...), or
    None when it depends on the data (no run configuration)."""
    saved = run.read_config()
    if not saved:
        return None
    config = TrainConfig.from_json(saved["train"])
    suffix = ""
    if dataset is not None and (dataset != config.dataset or data_dir != config.data_dir):
        suffix = f"_{dataset}"
        align = config.align if align == "auto" else align
        if align:
            suffix += f"_{align}"
    elif split != "test":
        suffix = f"_{split}"
    if tta:
        suffix += "_tta"
    elif flip:
        suffix += "_flip"
    return suffix
