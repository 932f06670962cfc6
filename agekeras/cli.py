"""Command line: `python -m agekeras {quickstart,train,evaluate,predict,export,benchmark,download,align,list}`.

    python -m agekeras quickstart                      # 3 minutes of training on synthetic faces
    python -m agekeras train --model resnet18_dex --dataset utkface \\
        --data-dir ~/data/UTKFace --time-budget 15 --out runs/r18
    python -m agekeras evaluate --run runs/r18
    python -m agekeras evaluate --run runs/r18 --flip
    python -m agekeras evaluate --run runs/r18 --tta
    python -m agekeras evaluate --run runs/r18 --dataset fgnet --data-dir ~/data/fgnet --split all
    python -m agekeras predict photo.jpg photos/ --run runs/r18 --annotate annotated/ > ages.jsonl
    python -m agekeras export --run runs/r18 --format tflite
    python -m agekeras download --list
    python -m agekeras align utkface --data-dir ~/data/UTKFace
    python -m agekeras list

Building the parser imports no model and no training code (`--help` stays
fast); each command imports what it runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import sys

from agekeras.runs import BEST, CHECKPOINTS  # imports no model code


# "auto", "none" and the templates of agekeras.datasets.align.TEMPLATES (not
# imported here, to keep `--help` fast).
ALIGN_CHOICES = ("auto", "none", "utkface", "dhaa")


def _parser():
    p = argparse.ArgumentParser(prog="python -m agekeras", description="Facial age estimation with Keras 3.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train (or resume) a model; writes a run directory")
    t.add_argument("--model", required=True, help="registry name; see `python -m agekeras list`")
    _data_args(t, default_dataset="synthetic")
    t.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory (re-use it to resume)")
    _config_args(t)
    t.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="extra model builder argument (JSON value), repeatable")
    t.add_argument("--dataset-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="extra dataset reader argument (JSON value), e.g. n=4000 for synthetic")
    t.add_argument("--augment", dest="augment_factors", action="append", default=[], metavar="KEY=VALUE",
                   help="change one training augmentation factor (flip, rotation as a fraction of a turn, "
                        "translation, zoom, brightness, contrast, color, grayscale probability, blur sigma in "
                        "pixels, lowest jpeg quality; 0 turns it off), repeatable, e.g. "
                        "--augment zoom=0.05 --augment rotation=0 --augment grayscale=0.2")
    t.add_argument("--virtual-cpus", type=int, default=0,
                   help="split the CPU into N logical devices (to try --strategy mirrored without GPUs)")

    e = sub.add_parser("evaluate", help="evaluate a run's best checkpoint")
    e.add_argument("--run", required=True, metavar="RUN_DIR")
    _data_args(e, default_dataset=None)
    e.add_argument("--split", default="test", choices=["test", "val", "all"])
    e.add_argument("--checkpoint", default=BEST, choices=CHECKPOINTS)
    _view_args(e)
    e.add_argument("--align", default="auto", choices=ALIGN_CHOICES,
                   help="another dataset's photos: detect + align faces like the training crops "
                        "(auto: the run's convention; none: photos as they are)")

    pr = sub.add_parser("predict", help="the age of every face in photos (one JSON line per face)")
    pr.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    src = pr.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", metavar="RUN_DIR", help="a run directory (its alignment and best checkpoint)")
    src.add_argument("--model", metavar="FILE.keras", help="a saved model file")
    pr.add_argument("--align", default="auto", choices=ALIGN_CHOICES,
                    help="face alignment (auto: the run's training convention)")
    pr.add_argument("--annotate", metavar="OUT_DIR", help="write copies of the photos with boxes and ages")
    pr.add_argument("--out", metavar="FILE.jsonl", help="write the JSON lines there instead of stdout")
    pr.add_argument("--min-face", type=int, default=20, help="skip faces smaller than this (pixels, default 20)")
    pr.add_argument("--min-confidence", type=float, default=0.9)
    pr.add_argument("--batch-size", type=int, default=32)
    pr.add_argument("--no-cache", action="store_true", help="do not keep the detections of files in the cache")
    _view_args(pr)

    x = sub.add_parser("export", help="export a run's model: aligned uint8 face crops in, ages out")
    x.add_argument("--run", required=True, metavar="RUN_DIR")
    x.add_argument("--format", default="saved_model", choices=["saved_model", "tflite"])
    x.add_argument("--out", help="output (default RUN_DIR/export_saved_model or RUN_DIR/model.tflite)")
    x.add_argument("--checkpoint", default=BEST, choices=CHECKPOINTS)

    q = sub.add_parser("quickstart", help="train a small baseline in a few minutes and show where the results are")
    q.add_argument("--data-dir", help="a UTKFace folder instead of the embedded synthetic faces: trains the best "
                                      "CPU recipe (agekeras.experiments.benchmark.CPU_RECIPE)")
    q.add_argument("--out", default="runs/quickstart")
    q.add_argument("--minutes", type=float, default=None,
                   help="training time budget (default 3 on synthetic faces; with --data-dir, the recipe's 15)")
    q.add_argument("--n", type=int, default=None,
                   help=f"number of synthetic faces (default: {QUICKSTART_FACES_PER_SECOND} per training second, at "
                        "most 40,000, so training sees each face about once: the curves show learning, not "
                        f"memorising; epochs are {QUICKSTART_STEPS_PER_EPOCH} batches, a validation point each)")
    q.add_argument("--record", metavar="JSON", default=None,
                   help="also write the run's summary (settings, epochs, test MAE, the median predictor's, the "
                        "machine's float32 matmul GFLOP/s, the date) to this file, e.g. "
                        "benchmarks/results/quickstart.json, which the README's quickstart sentence is rendered from")

    sub.add_parser("list", help="list the registered models and datasets")
    b = sub.add_parser("benchmark", help="train and compare several models with one protocol",
                       description="Train every (model, seed) with one protocol and compare them (OUT/results.csv, "
                                   "results.json, figures/). Without options: every model on utkface, 15 minutes "
                                   "per run, seeds 0,1,2, 64 px.")
    _benchmark_args(b)
    from agekeras.datasets import download

    download.add_arguments(sub.add_parser(
        "download", help="fetch a dataset that has an anonymous source, or print how to get it",
        description="Fetch a dataset into $AGEKERAS_DATA_ROOT/<name> (or --out); for datasets behind a licence, "
                    "print where and how to request them."))
    from agekeras.datasets.align import batch

    batch.add_arguments(sub.add_parser(
        "align", help="detect five facial landmarks (MTCNN) for a dataset: the CSV the landmark models read",
        description=(batch.__doc__ or "").split("\n")[0]))
    return p


# TrainConfig fields set elsewhere (positional-like options above) or not from the command line.
_NOT_OPTIONS = ("model", "dataset", "data_dir", "out", "model_kwargs", "dataset_kwargs")
_CHOICES = {
    "optimizer": ["adam", "adamw", "sgd", "nadam"],
    "strategy": ["default", "mirrored", "multiworker"],
}
_HELP = {
    "epochs": "number of epochs (default %(default)s; with --time-budget, an upper bound)",
    "time_budget": "train for this many minutes (the learning-rate schedule is fitted to it)",
    "warmup": "fraction of the run with a linear learning-rate warm-up (default %(default)s)",
    "max_train": "use at most this many training faces",
    "num_classes": "age classes of the head (default: the dataset's age range)",
    "age_min": "age of class 0 (default: the dataset's youngest age)",
    "protocol": "split protocol (random, subject_kfold, lopo, official, ...)",
    "verbose": "Keras progress verbosity (auto, 0, 1, 2)",
    "label_sigma": "train softmax age heads on a Gaussian label distribution of this sigma in years "
                   "(default: one-hot)",
    "age_l1": "weight of an L1 loss on the expected age, added to the softmax loss (default %(default)s)",
    "ema": "keep a moving average of the weights with this momentum (e.g. 0.995) and validate and "
           "keep it as the best checkpoint (default: none)",
}


def _config_args(p):
    """One option per `TrainConfig` field, with the dataclass's own default (no second copy)."""
    import dataclasses

    from agekeras.config import TrainConfig

    # The fields' own defaults, never those of a TrainConfig() instance: its __post_init__ resolves
    # values for the default dataset ("auto" alignment -> None for synthetic) that another dataset must not inherit.
    defaults = {f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                for f in dataclasses.fields(TrainConfig)}
    exclusive = p.add_mutually_exclusive_group()  # --epochs or --time-budget
    for f in dataclasses.fields(TrainConfig):
        if f.name in _NOT_OPTIONS:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = defaults[f.name]
        help_text = _HELP.get(f.name, f"default %(default)s (see agekeras.training.TrainConfig)")
        if isinstance(default, bool):
            if default:
                p.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false",
                               help=f"turn off {f.name.replace('_', ' ')} (on by default)")
            else:
                p.add_argument(flag, dest=f.name, action="store_true")
            p.set_defaults(**{f.name: default})
            continue
        kind = {"int": int, "float": float, "str": str}.get(type(default).__name__, None)
        if f.name == "epochs":  # None here: "the config's default, unless --time-budget decides"
            exclusive.add_argument(flag, type=int, default=None, help=_HELP["epochs"].replace("%(default)s", str(default)))
            continue
        if f.name == "time_budget":
            exclusive.add_argument(flag, type=float, default=default, metavar="MINUTES", help=_HELP["time_budget"])
            continue
        if f.name == "lr_drops":  # a list: --lr-drops 0.5 0.75
            p.add_argument(flag, type=float, nargs="+", default=default, metavar="FRACTION",
                           help="step schedule: divide the learning rate by 10 at these fractions of the run")
            continue
        if f.name in ("max_train", "num_classes", "age_min"):
            kind = int
        elif f.name in ("label_sigma", "ema"):
            kind = float
        elif f.name == "time_budget":
            kind = float
        elif f.name == "verbose":
            kind = str
        p.add_argument(flag, dest=f.name, type=kind, default=default, choices=_CHOICES.get(f.name), help=help_text)


def _view_args(p):
    """--flip or --tta: the test-time views averaged (`agekeras.evaluation.test_views`)."""
    views = p.add_mutually_exclusive_group()
    views.add_argument("--flip", action="store_true",
                       help="flip test-time averaging: average the predictions of each face and its mirror image")
    views.add_argument("--tta", action="store_true",
                       help="test-time averaging over six views: three zooms (1, 1.085, 0.915), each also mirrored")


def _data_args(p, default_dataset):
    p.add_argument("--dataset", default=default_dataset, help="dataset name; see `python -m agekeras list`")
    p.add_argument("--data-dir", help="the dataset's folder (not needed for synthetic)")


def _benchmark_args(p):
    """The options of `benchmark`; `agekeras.experiments.benchmark.make_spec` fills what is left out."""
    from agekeras.experiments.benchmark import (ABLATIONS, DEFAULT_MODELS, DEFAULT_RECIPE, DEFAULT_TIME_BUDGET,
                                                QUICK_FACES, QUICK_IMAGE_SIZE, QUICK_MODELS, RECIPES)

    p.add_argument("--models", type=_names, default=None, metavar="NAME,NAME",
                   help=f"comma-separated registry names (default: {','.join(DEFAULT_MODELS)})")
    p.add_argument("--ablation", choices=sorted(ABLATIONS), default=None, metavar="PAPER",
                   help="instead of --models: one paper's model and the same model without each of its components "
                        f"(agekeras.experiments.benchmark.ABLATIONS), then their comparison; one of "
                        f"{', '.join(sorted(ABLATIONS))}")
    _data_args(p, default_dataset=None)
    view = p.add_mutually_exclusive_group()
    view.add_argument("--time-budget", type=float, default=None, metavar="MINUTES",
                      help=f"equal-time view: training minutes per run (default {DEFAULT_TIME_BUDGET:g})")
    view.add_argument("--epochs", type=int, default=None, metavar="N", help="equal-epochs view: epochs per run")
    p.add_argument("--seeds", type=_seeds, default=None, metavar="S,S",
                   help="comma-separated seeds, one run per model and seed (default 0,1,2; 0 with --quick)")
    p.add_argument("--image-size", type=int, default=None, help="input size in pixels (default 64; 32 with --quick)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default 64; 32 with --quick)")
    p.add_argument("--out", default="runs/bench", help="benchmark folder (re-use it to resume; default %(default)s)")
    p.add_argument("--cross", type=_cross, action="append", default=[], metavar="DATASET:DIR",
                   help="also report the MAE on the whole of another dataset (repeatable)")
    p.add_argument("--flip", action="store_true",
                   help="also report the test MAE with flip test-time averaging (each face and its mirror image)")
    p.add_argument("--recipe", choices=sorted(RECIPES), default=DEFAULT_RECIPE,
                   help="how every model trains: 'default' (each model's own losses, the default augmentation) or "
                        "'cpu' (the CPU recipe for every model: Gaussian label distributions, L1 on the expected "
                        "age, mirror-only augmentation; default %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help=f"the same code on {QUICK_FACES} synthetic faces, 1 epoch, {QUICK_IMAGE_SIZE} px, "
                        f"models {','.join(QUICK_MODELS)} unless --models is given (for CI)")
    p.add_argument("--model-arg", type=_model_arg, action="append", default=[], metavar="MODEL:KEY=VALUE",
                   help="extra builder argument of one model (JSON value), e.g. dhaa:width=0.25; repeatable")


def _names(text):
    """`--models a,b` -> ("a", "b")."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _seeds(text):
    """`--seeds 0,1,2` -> (0, 1, 2)."""
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. 0,1,2") from None


def _cross(text):
    """`--cross fgnet:data/fgnet` -> ("fgnet", "data/fgnet")."""
    name, sep, folder = text.partition(":")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"{text!r}: expected DATASET:DIR, e.g. fgnet:data/fgnet")
    return name, folder


def _model_arg(text):
    """`--model-arg dhaa:width=0.25` -> ("dhaa", "width", 0.25) (the value parsed as JSON when it is)."""
    model, sep, rest = text.partition(":")
    key, eq, _ = rest.partition("=")
    if not sep or not model or not eq or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected MODEL:KEY=VALUE, e.g. dhaa:width=0.25")
    ((key, value),) = _kv([rest]).items()
    return model, key, value


def _kv(items):
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"expected KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def _check_names(model=None, dataset=None):
    from agekeras import datasets, models

    if model is not None and model not in models.available():
        raise SystemExit(f"Unknown model {model!r}. Available models: {', '.join(models.available())}")
    if dataset is not None and dataset not in datasets.available():
        raise SystemExit(f"Unknown dataset {dataset!r}. Available datasets: {', '.join(datasets.available())}")


def _virtual_cpus(n):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)


def cmd_train(a):
    import dataclasses

    from agekeras.training import TrainConfig, train

    _check_names(a.model, a.dataset)
    if a.virtual_cpus:
        _virtual_cpus(a.virtual_cpus)
    values = {f.name: getattr(a, f.name) for f in dataclasses.fields(TrainConfig) if f.name not in _NOT_OPTIONS}
    values["verbose"] = int(a.verbose) if str(a.verbose).isdigit() else a.verbose
    if values.get("align") == "none":  # crops used as they are
        values["align"] = None
    if a.augment_factors:
        from agekeras.datasets.pipeline import augment_factors

        if not a.augment:
            raise SystemExit("--augment KEY=VALUE changes a factor; it cannot be combined with --no-augment")
        values["augment"] = _kv(a.augment_factors)
        try:
            augment_factors(values["augment"])
        except ValueError as e:
            raise SystemExit(f"--augment: {e}") from None
    if a.epochs is None:
        values["epochs"] = None if a.time_budget is not None else TrainConfig().epochs
    config = TrainConfig(
        model=a.model, dataset=a.dataset, data_dir=a.data_dir, out=a.out,
        model_kwargs=_kv(a.model_arg), dataset_kwargs=_kv(a.dataset_arg), **values,
    )
    result = train(config)
    _report(a.out, result)


def cmd_download(a):
    from agekeras.datasets import download

    return download.run(a)


def cmd_align(a):
    from agekeras.datasets.align import batch

    return batch.run(a)


def cmd_evaluate(a):
    from agekeras.training import evaluate

    if a.dataset:
        _check_names(dataset=a.dataset)
    align = None if a.align == "none" else a.align
    result = evaluate(a.run, dataset=a.dataset, data_dir=a.data_dir, split=a.split, checkpoint=a.checkpoint,
                      align=align, flip=a.flip, tta=a.tta)  # fmt: skip
    _report(a.run, result)


def cmd_predict(a):
    """Faces as JSON lines; problems one line each on stderr. Exit code 1 when
    no face at all could be predicted."""
    from agekeras import inference
    from agekeras.datasets.align import list_images

    paths = []
    for p in a.paths:
        try:
            paths.extend(list_images([p]))
        except FileNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
    try:
        predictor = inference.load_predictor(a.run or a.model, align=None if a.align == "none" else a.align)
    except (OSError, ValueError) as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    result = inference.predict(
        paths, predictor, min_confidence=a.min_confidence, min_face=a.min_face, batch_size=a.batch_size,
        cache=not a.no_cache, annotate_dir=a.annotate, progress=len(paths) > 20, flip=a.flip,
        tta=a.tta,
    )  # fmt: skip
    out = open(a.out, "w") if a.out else sys.stdout
    try:
        for face in result:
            print(json.dumps(face), file=out)
    finally:
        if a.out:
            out.close()
    s = result.stats
    print(f"{s['faces']} faces in {s['images_with_faces']} of {s['images']} images; {s['problems']} images "
          f"without a prediction; detection {s['detection_faces_per_s']} faces/s ({s['detection_images_per_s']} "
          f"images/s), model {s['model_faces_per_s']} faces/s", file=sys.stderr)  # fmt: skip
    t = s["interval_temperature"]
    how = f"temperature {t:g}, fitted on the run's validation faces" if t != 1 else "the model's own spread"
    print(f"age_interval: the central {s['interval_level']:.0%} interval ({how})", file=sys.stderr)
    if a.annotate:
        print(f"annotated: {a.annotate}", file=sys.stderr)
    return 0 if len(result) else 1


def cmd_export(a):
    import pathlib

    from agekeras.inference import export_model

    default = "export_saved_model" if a.format == "saved_model" else "model.tflite"
    out = export_model(a.run, a.out or pathlib.Path(a.run) / default, a.format, checkpoint=a.checkpoint)
    print(f"exported: {out}")


QUICKSTART_FACES_PER_SECOND = 200
"""Synthetic faces drawn per second of the quickstart's budget: a bit above
ResNet-18's training rate at 64 px on 2 CPU cores, so each face is seen about
once (fresh faces, not a memorised set)."""

QUICKSTART_STEPS_PER_EPOCH = 20
"""Batches of 64 per quickstart epoch (`TrainConfig.steps_per_epoch`): about 10
seconds at ResNet-18's rate on 2 CPU cores, so the 3 minutes give the curves
about 15-20 validation points (10 on cores half as fast)."""

QUICKSTART_VAL_FRACTION = 0.02
"""Share of the training split held out for validation: about 600 of 36,000
faces, scored after every short epoch."""


def quickstart_faces(minutes):
    """How many synthetic faces the quickstart draws for a `minutes` budget (2,000 to 40,000)."""
    return int(min(40_000, max(2_000, round(minutes * 60 * QUICKSTART_FACES_PER_SECOND, -3))))


def cmd_quickstart(a):
    from agekeras.training import TrainConfig, evaluate, train

    peak = matmul_gflops() if a.record else None  # before training, on an idle process
    if a.data_dir:  # real faces: the best recipe we found for a CPU
        from agekeras.experiments.benchmark import CPU_RECIPE, CPU_RECIPE_MINUTES

        minutes = a.minutes or CPU_RECIPE_MINUTES
        config = TrainConfig(**CPU_RECIPE, dataset="utkface", data_dir=a.data_dir, epochs=None, time_budget=minutes,
                             out=a.out, verbose=2)  # fmt: skip
        recipe = ", ".join(
            f"augment {' '.join(f'{f}={x:.4g}' for f, x in v.items())}" if k == "augment" else f"{k} {v}"
            for k, v in CPU_RECIPE.items() if k != "model"
        )
        print(f"agekeras quickstart: {config.model} ({recipe}) on utkface for {minutes:g} min -> {a.out}")
    else:
        minutes = a.minutes or 3.0
        n = a.n or quickstart_faces(minutes)
        # drawn at the training size: a fresh face for (almost) every training example, in short epochs
        print(f"drawing {n:,} synthetic faces (about {max(1, round(n / 1000))} s)")
        config = TrainConfig(
            model="resnet18_dex", dataset="synthetic", epochs=None, time_budget=minutes, batch_size=64,
            image_size=64, lr=1e-3, optimizer="adam", out=a.out, dataset_kwargs={"n": n, "image_size": 64},
            steps_per_epoch=QUICKSTART_STEPS_PER_EPOCH, val_fraction=QUICKSTART_VAL_FRACTION, verbose=2,
        )
        print(f"agekeras quickstart: ResNet-18 + DEX on synthetic at 64 px for {minutes:g} min -> {a.out}")
    result = train(config)
    _report(a.out, result)
    print(
        f"test MAE {result['mae']:.2f} years, against {result['median_predictor_mae']:.2f} for the median predictor "
        "(always answering the median age): the number to beat."
    )
    flipped = None
    if a.data_dir:
        flipped = evaluate(a.out, flip=True)
        print(f"test MAE with flip test-time averaging (each face and its mirror image): {flipped['mae']:.2f} years "
              f"({flipped['metrics_file']}): the recipe's score")
    if a.record:
        record = quickstart_record(a.out, result, flipped, peak, command=_quickstart_command(a))
        from agekeras.runs import write_json

        pathlib.Path(a.record).parent.mkdir(parents=True, exist_ok=True)
        write_json(a.record, record)
        print(f"record:   {a.record}")


def _quickstart_command(a):
    parts = ["python -m agekeras quickstart"]
    if a.data_dir:
        parts.append("--data-dir DIR")
    if a.minutes:
        parts.append(f"--minutes {a.minutes:g}")
    if a.n:
        parts.append(f"--n {a.n}")
    return " ".join(parts)


def matmul_gflops(n=2048, seconds=2.0):
    """This process's float32 matmul GFLOP/s (n x n, best of a few timed repeats, all threads).

    The yardstick a speed is read against: the same code trains at about the
    same share of it on another CPU.
    """
    import time

    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    x = keras.ops.convert_to_tensor(rng.standard_normal((n, n), dtype="float32"))
    y = keras.ops.convert_to_tensor(rng.standard_normal((n, n), dtype="float32"))
    keras.ops.convert_to_numpy(keras.ops.matmul(x, y))
    best, stop = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < stop:
        t = time.perf_counter()
        for _ in range(3):
            z = keras.ops.matmul(x, y)
        keras.ops.convert_to_numpy(z)
        best = max(best, 2 * n**3 * 3 / (time.perf_counter() - t) / 1e9)
    return round(best, 1)


def quickstart_record(run_dir, result, flipped=None, peak=None, command="python -m agekeras quickstart"):
    """The quickstart run's summary as a JSON-ready dict (what `--record` writes).

    Everything comes from the run folder (config.json, state.json,
    history.csv) and the test metrics: the README renders its quickstart
    sentence from this file.
    """
    import datetime
    import platform

    import keras

    from agekeras.runs import RunDir

    run = RunDir(run_dir)
    saved, state, history = run.read_config(), run.read_state(), run.read_history()
    train = saved["train"]
    epochs = int(state.get("epochs_done", 0))
    seconds = float(state.get("train_seconds", 0.0))
    record = {
        "command": command,
        "date": datetime.date.today().isoformat(),
        "model": train["model"],
        "dataset": train["dataset"],
        "faces": saved["dataset"]["n"],
        "splits": saved["splits"],
        "image_size": train["image_size"],
        "batch_size": train["batch_size"],
        "time_budget_minutes": train["time_budget"],
        "train_minutes": round(seconds / 60, 2),
        "epochs": epochs,
        "validation_points": sum(1 for v in history.get("val_age_mae", []) if v == v),
        "steps_per_epoch": train.get("steps_per_epoch"),
        "train_img_per_s": round(epochs * (train["steps_per_epoch"] * train["batch_size"] if train.get("steps_per_epoch")
                                           else saved["splits"]["train"]) / seconds, 1) if seconds else None,
        "test_mae": round(float(result["mae"]), 3),
        "median_predictor_mae": round(float(result["median_predictor_mae"]), 3),
        "test_mae_flip": None if flipped is None else round(float(flipped["mae"]), 3),
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.machine(),
            "matmul_peak_gflops": peak,
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
        },
    }
    try:
        import tensorflow as tf

        record["machine"]["tensorflow"] = tf.__version__
    except ImportError:  # another backend without TensorFlow
        pass
    return record


def _report(run_dir, result):
    keys = ("mae", "rmse", "ca5", "median_predictor_mae", "gender_accuracy", "epsilon_error", "n", "align",
            "faces_missed")
    summary = {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items() if k in keys}
    print(json.dumps(summary))
    from agekeras.runs import RunDir

    run = RunDir(run_dir)
    metrics_file = pathlib.Path(result.get("metrics_file", run.metrics_file()))
    suffix = metrics_file.stem.removeprefix(run.metrics_file().stem)  # "_flip" for metrics_flip.json
    print(f"metrics:  {metrics_file}")
    print(f"figures:  {run.figures}/ (curves.png, pred_vs_true{suffix}.png, mae_by_age{suffix}.png)")
    print(f"model:    {run.best_model}")


def cmd_benchmark(a):
    """Train and compare the models; prints the summary table. Exit code 1
    when a run failed, 2 on options the benchmark refuses."""
    from agekeras.experiments import benchmark

    model_args = {}
    for model, key, value in a.model_arg:
        model_args.setdefault(model, {})[key] = value
    try:
        spec = benchmark.make_spec(models=a.models, dataset=a.dataset, data_dir=a.data_dir, time_budget=a.time_budget,
                                   epochs=a.epochs, seeds=a.seeds, image_size=a.image_size, batch_size=a.batch_size,
                                   out=a.out, cross=a.cross, model_args=model_args, flip=a.flip, recipe=a.recipe,
                                   quick=a.quick, ablation=a.ablation)
        results = benchmark.run_benchmark(spec)
    except ValueError as e:  # e.g. an unknown model, or a folder holding another protocol
        print(f"python -m agekeras benchmark: error: {e}", file=sys.stderr)
        return 2
    print(benchmark.summary_table(results).to_markdown())
    if a.ablation:
        print()
        print(benchmark.ablation_table(results, a.ablation).to_markdown())
        print("\n".join(benchmark.ablation_findings(results, a.ablation)))
    return 1 if results["failed"] else 0


def cmd_list(_):
    from agekeras import datasets, models

    print("models:")
    for name in models.available():
        e = models.entry(name)
        print(f"  {name:28s} [{e.paper}] {e.description}")
    print("datasets:")
    for name in datasets.available():
        print(f"  {name}")


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    commands = {"train": cmd_train, "evaluate": cmd_evaluate, "quickstart": cmd_quickstart, "list": cmd_list,
                "predict": cmd_predict, "export": cmd_export, "benchmark": cmd_benchmark, "download": cmd_download,
                "align": cmd_align}  # fmt: skip
    return int(commands[args.command](args) or 0)


if __name__ == "__main__":
    sys.exit(main())
