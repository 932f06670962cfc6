"""One benchmark for every model: same data, split, size, augmentation and budget.

`python -m agekeras benchmark ...` (and notebook 06) drive this module:

    python -m agekeras benchmark --dataset utkface --data-dir DIR --time-budget 15 \\
        --seeds 0,1,2 --out runs/bench

- every (model, seed) is one `agekeras.training.train` run, in
  `OUT/<model>/seed<seed>/`, with the same seeded random split (the split
  depends on the seed only, so seed `s` gives every model the same faces),
  image size, batch size, augmentation and budget;
- two views: equal time (`--time-budget MINUTES`: what a model reaches in a
  fixed time, speed included) and equal epochs (`--epochs N`: the method
  alone); use one `--out` per view (the folder records its settings and
  refuses another view);
- a killed benchmark resumes: a finished (model, seed) (its `state.json`
  says "finished") is not trained again, a half-done one continues where
  `train` left it;
- a model that needs landmarks (DHAA) on a dataset without them is skipped
  with a logged reason, counted in `results["skipped"]`;
- writes `OUT/results.csv` (one row per run), `OUT/results.json` (the runs,
  the mean +- std per model, the validation curves, which model leads at 1,
  5 and 15 minutes, the papers' headline numbers, skips and failures) and
  `OUT/figures/*.png`.

Train img/s of a run = epochs done x training faces / training seconds
(validation passes included, as in the time budget).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import math
import pathlib
import sys
import time

import numpy as np

logger = logging.getLogger("agekeras.benchmark")

#: Every paper model and the baselines, in the order of the tables.
DEFAULT_MODELS = ("resnet18_dex", "resnet34_dex", "resnet34_coral", "vovnetv4", "al_ror34", "daa_resnet18", "dhaa",
                  "gra_net")
#: `--quick`: two small models on synthetic faces, one seed, one epoch at 32 px.
QUICK_MODELS = ("resnet18_dex", "resnet18_coral")
QUICK_FACES = 300
QUICK_IMAGE_SIZE = 32
QUICK_BATCH_SIZE = 32
#: Default protocol of the full benchmark.
DEFAULT_TIME_BUDGET = 15.0

#: The best from-scratch recipe found for 15 CPU-minutes on utkface-dev at 64 px
#: (the README's "Results"): `TrainConfig` fields, trained for `CPU_RECIPE_MINUTES`
#: and scored with flip test-time averaging. `quickstart --data-dir` trains it.
#: Its only augmentation is the mirror image: in 15 CPU-minutes the network is short of
#: fitting, and rotation, shifts and zoom cost more fit than they add (README).
CPU_RECIPE = {
    "model": "resnet18_dex", "image_size": 64, "batch_size": 64, "label_sigma": 2.0, "age_l1": 1.0,
    "augment": {"rotation": 0, "translation": 0, "zoom": 0},
}
CPU_RECIPE_MINUTES = 15.0

DEFAULT_SEEDS = (0, 1, 2)
#: Minutes at which the curves say which model leads.
MARK_MINUTES = (1, 5, 15)
#: Metrics of each run's metrics.json copied to the results rows.
METRICS = ("mae", "rmse", "ca3", "ca5", "ca7", "median_predictor_mae", "gender_accuracy")

_MORPH_8020 = "MORPH II, random 80/20"
#: The papers' headline numbers next to the model that implements them (from
#: `NNN-results.md`; each with its table, dataset, protocol and pretraining).
#: Not comparable with ours: other datasets, 224-256 px, pretrained
#: backbones, 100-200 epochs on a GPU. GRA_Net's seminar report gives no
#: result number (its MAE stays empty).
PAPER_HEADLINES = {
    "resnet18_dex": {"method": "Res18+EX (DHAA paper's baseline)", "paper": "Tan et al., IJCAI 2019", "table": "3",
                     "dataset": _MORPH_8020, "pretraining": "ImageNet", "size": 256, "MAE": 2.331},
    "resnet34_dex": {"method": "ResNet-34 (classification baseline)", "paper": "Zhang et al., VoVNetv4",
                     "table": "I", "dataset": "AFAD (ages 15-40), split not stated", "pretraining": "not stated",
                     "size": None, "MAE": 3.71, "RMSE": 5.15},
    "resnet34_coral": {"method": "ResNet-34 + CORAL", "paper": "Zhang et al., VoVNetv4", "table": "I",
                       "dataset": "AFAD (ages 15-40), split not stated", "pretraining": "not stated", "size": None,
                       "MAE": 3.44, "RMSE": 4.69},
    "vovnetv4": {"method": "VoVNetv4 + CORAL", "paper": "Zhang et al., VoVNetv4", "table": "I",
                 "dataset": "AFAD (ages 15-40), split not stated", "pretraining": "not stated", "size": None,
                 "MAE": 3.30, "RMSE": 4.64},
    "al_ror34": {"method": "AL-RoR-34", "paper": "Zhang et al., TCSVT (arXiv 1805.10445)", "table": "VI",
                 "dataset": "MORPH II (5,475 Caucasian), random 80/20", "pretraining": "ImageNet + IMDB-WIKI-101",
                 "size": 224, "MAE": 2.36},
    "daa_resnet18": {"method": "ResNet18+DAA", "paper": "Chen et al., CVPR 2023 (arXiv 2303.07929)", "table": "1",
                     "dataset": _MORPH_8020 + " (C3AE protocol)", "pretraining": "none (2.06 with IMDB-Wiki)",
                     "size": 128, "MAE": 2.25},
    "dhaa": {"method": "DHAA", "paper": "Tan et al., IJCAI 2019", "table": "1 and 3", "dataset": _MORPH_8020,
             "pretraining": "ImageNet", "size": 256, "MAE": 1.908},
    "gra_net": {"method": "GRA_Net", "paper": "seminar report on Garain et al., IEEE Access 2021", "table": "—",
                "dataset": "no result number in the report", "pretraining": "—", "size": 32, "MAE": None},
}


# ----- settings -------------------------------------------------------------------------


@dataclasses.dataclass
class BenchmarkSpec:
    """What one benchmark trains (`parse_args` builds it from the command line).

    Attributes:
        models: registry names, in table order.
        dataset, data_dir, dataset_kwargs: the data (see `agekeras.datasets.load`).
        time_budget: training minutes per run (equal-time view), or None.
        epochs: epochs per run (equal-epochs view), or None.
        seeds: one run per model and seed; the seed also picks the split.
        image_size, batch_size: as in `TrainConfig`.
        out: the benchmark folder.
        cross: `(dataset, data_dir)` pairs evaluated on their whole data.
        model_args: model -> extra builder arguments.
        flip: also report the test MAE with flip test-time averaging
            (`agekeras.training.average_views`), as `mae_flip`.
    """

    models: tuple
    dataset: str = "utkface"
    data_dir: str | None = None
    dataset_kwargs: dict = dataclasses.field(default_factory=dict)
    time_budget: float | None = DEFAULT_TIME_BUDGET
    epochs: int | None = None
    seeds: tuple = DEFAULT_SEEDS
    image_size: int = 64
    batch_size: int = 64
    out: str = "runs/bench"
    cross: tuple = ()
    model_args: dict = dataclasses.field(default_factory=dict)
    flip: bool = False

    @property
    def view(self):
        """"equal time" or "equal epochs"."""
        return "equal time" if self.time_budget is not None else "equal epochs"

    def protocol(self):
        """The settings that must not change between the runs of one benchmark folder."""
        return {"dataset": self.dataset, "data_dir": self.data_dir, "dataset_kwargs": self.dataset_kwargs,
                "time_budget": self.time_budget, "epochs": self.epochs, "image_size": self.image_size,
                "batch_size": self.batch_size}

    def describe(self):
        budget = f"{self.time_budget:g} min" if self.time_budget is not None else f"{self.epochs} epochs"
        return (f"{self.dataset}, random split by seed, {self.image_size} px, batch {self.batch_size}, "
                f"{budget} per run ({self.view}), seeds {','.join(map(str, self.seeds))}")


def _parser():
    p = argparse.ArgumentParser(
        prog="python -m agekeras benchmark",
        description="Train every (model, seed) with one protocol and compare them (results.csv/json, figures).")
    p.add_argument("--models", default=None,
                   help=f"comma-separated registry names (default: {','.join(DEFAULT_MODELS)})")
    p.add_argument("--dataset", default=None, help="dataset name (default utkface; synthetic with --quick)")
    p.add_argument("--data-dir", default=None, help="folder of the dataset")
    view = p.add_mutually_exclusive_group()
    view.add_argument("--time-budget", type=float, default=None, metavar="MINUTES",
                      help=f"equal-time view: training minutes per run (default {DEFAULT_TIME_BUDGET:g})")
    view.add_argument("--epochs", type=int, default=None, metavar="N", help="equal-epochs view: epochs per run")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default 0,1,2; 0 with --quick)")
    p.add_argument("--image-size", type=int, default=None, help="input size in pixels (default 64; 32 with --quick)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default 64; 32 with --quick)")
    p.add_argument("--out", default="runs/bench", help="benchmark folder (re-use it to resume)")
    p.add_argument("--cross", action="append", default=[], metavar="DATASET:DIR",
                   help="also report the MAE on the whole of another dataset (repeatable)")
    p.add_argument("--flip", action="store_true",
                   help="also report the test MAE with flip test-time averaging (each face and its mirror image)")
    p.add_argument("--quick", action="store_true",
                   help=f"the same code on {QUICK_FACES} synthetic faces, 1 epoch, {QUICK_IMAGE_SIZE} px, "
                        f"models {','.join(QUICK_MODELS)} unless --models is given (for CI)")
    p.add_argument("--model-arg", action="append", default=[], metavar="MODEL:KEY=VALUE",
                   help="extra builder argument of one model (JSON value), e.g. dhaa:width=0.25; repeatable")
    return p


def _json_value(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_model_args(items, models):
    """`["dhaa:width=0.25", ...]` -> `{"dhaa": {"width": 0.25}}` (values parsed as JSON when they are).

    Raises:
        ValueError: malformed item, or a model that is not benchmarked.
    """
    out = {}
    for item in items:
        model, sep, rest = item.partition(":")
        key, eq, value = rest.partition("=")
        if not sep or not eq or not model or not key:
            raise ValueError(f"--model-arg {item!r}: expected MODEL:KEY=VALUE, e.g. dhaa:width=0.25")
        if model not in models:
            raise ValueError(f"--model-arg {item!r}: {model!r} is not one of the benchmarked models {list(models)}")
        out.setdefault(model, {})[key] = _json_value(value)
    return out


def parse_args(argv):
    """The `BenchmarkSpec` of a command line (the words after "benchmark").

    Raises:
        ValueError: an unknown model, a malformed --model-arg, --cross or --seeds.
    """
    from agekeras import models as registry

    a = _parser().parse_args(list(argv))
    if a.models:
        names = tuple(m.strip() for m in a.models.split(",") if m.strip())
    else:
        names = QUICK_MODELS if a.quick else DEFAULT_MODELS
    if not names:
        raise ValueError("--models is empty")
    for name in names:
        registry.entry(name)  # unknown names raise with the list of choices
    if len(set(names)) != len(names):
        raise ValueError(f"--models lists a model twice: {','.join(names)}")
    try:
        seeds = tuple(int(s) for s in a.seeds.split(",") if s.strip()) if a.seeds else None
    except ValueError:
        raise ValueError(f"--seeds {a.seeds!r}: expected comma-separated integers, e.g. 0,1,2") from None
    cross = []
    for item in a.cross:
        name, sep, folder = item.partition(":")
        if not sep or not name or not folder:
            raise ValueError(f"--cross {item!r}: expected DATASET:DIR, e.g. fgnet:data/fgnet")
        cross.append((name, folder))
        if name == (a.dataset or ("synthetic" if a.quick else "utkface")) and folder == a.data_dir:
            raise ValueError(f"--cross {item!r} is the benchmark's own dataset: its test MAE is already reported")
    if a.quick:
        dataset, kwargs = a.dataset or "synthetic", {}
        if dataset == "synthetic":
            kwargs = {"n": QUICK_FACES}
        epochs = a.epochs if a.epochs is not None else (None if a.time_budget is not None else 1)
        spec = BenchmarkSpec(models=names, dataset=dataset, data_dir=a.data_dir, dataset_kwargs=kwargs,
                             time_budget=a.time_budget, epochs=epochs, seeds=seeds or (0,),
                             image_size=a.image_size or QUICK_IMAGE_SIZE, batch_size=a.batch_size or QUICK_BATCH_SIZE)
    else:
        time_budget = a.time_budget if a.time_budget is not None or a.epochs is not None else DEFAULT_TIME_BUDGET
        spec = BenchmarkSpec(models=names, dataset=a.dataset or "utkface", data_dir=a.data_dir,
                             time_budget=time_budget, epochs=a.epochs, seeds=seeds or DEFAULT_SEEDS,
                             image_size=a.image_size or 64, batch_size=a.batch_size or 64)
    if not spec.seeds:
        raise ValueError("--seeds is empty")
    spec.out = a.out
    spec.cross = tuple(cross)
    spec.model_args = parse_model_args(a.model_arg, names)
    spec.flip = a.flip
    return spec


# ----- running ---------------------------------------------------------------------------


def run_dir(out, model, seed) -> pathlib.Path:
    """`OUT/<model>/seed<seed>`: the run folder of one (model, seed)."""
    return pathlib.Path(out) / model / f"seed{int(seed)}"


def _read_json(path):
    path = pathlib.Path(path)
    return json.loads(path.read_text()) if path.exists() else {}


def is_finished(path) -> bool:
    """Whether the run in `path` finished (its state.json says so)."""
    return bool(_read_json(pathlib.Path(path) / "state.json").get("finished"))


def _check_protocol(spec):
    """Record the protocol in OUT/benchmark.json; refuse a folder holding another one."""
    out = pathlib.Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "benchmark.json"
    wanted = spec.protocol()
    saved = _read_json(path)
    if saved:
        old = saved.get("protocol", {})
        diff = {k: (old.get(k), v) for k, v in wanted.items() if old.get(k) != v}
        if diff:
            changes = "; ".join(f"{k}: {a!r} there, {b!r} asked" for k, (a, b) in diff.items())
            raise ValueError(f"{out} holds a benchmark with other settings ({changes}): use another --out")
    path.write_text(json.dumps({"protocol": wanted}, indent=2))


def skip_reason(model, has_landmarks):
    """Why `model` cannot run on the data, or None."""
    from agekeras import models as registry

    if registry.entry(model).needs_landmarks and not has_landmarks:
        return "needs 5 facial landmarks per face; the dataset has none (use the csv reader on a landmarks file)"
    return None


def _dataset_has_landmarks(spec):
    """True when some face of the dataset has 5 landmarks.

    Faces without them (e.g. MTCNN found no face and the landmarks CSV left
    the cells empty) are counted and logged, not a reason to skip the model:
    `AlignedRegionPooling` gives them its canonical face.
    """
    from agekeras import datasets

    ds = datasets.load(spec.dataset, spec.data_dir, **spec.dataset_kwargs)
    found = int(ds.landmarks_found.sum())
    if 0 < found < len(ds):
        logger.warning("%d of %d faces have no landmarks: models that need them use the canonical face there",
                       len(ds) - found, len(ds))  # fmt: skip
    return found > 0


def train_config(spec, model, seed):
    """The `TrainConfig` of one (model, seed) of the benchmark."""
    from agekeras.training import TrainConfig

    return TrainConfig(model=model, dataset=spec.dataset, data_dir=spec.data_dir, protocol="random",
                       epochs=spec.epochs, time_budget=spec.time_budget, batch_size=spec.batch_size,
                       image_size=spec.image_size, seed=int(seed), out=str(run_dir(spec.out, model, seed)),
                       model_kwargs=dict(spec.model_args.get(model, {})),
                       dataset_kwargs=dict(spec.dataset_kwargs), verbose=0)


def _check_model_args(path, config):
    saved = _read_json(pathlib.Path(path) / "config.json").get("train")
    if saved and saved.get("model_kwargs", {}) != config.model_kwargs:
        raise ValueError(f"{path} was trained with model args {saved.get('model_kwargs')}, "
                         f"not {config.model_kwargs}: use another --out")


def run_benchmark(spec, *, train_fn=None, print_fn=print):
    """Train (or resume) every (model, seed) of `spec`, then write the results.

    Args:
        spec: a `BenchmarkSpec`.
        train_fn: the training function (default `agekeras.training.train`).
        print_fn: where the progress lines go.

    Returns:
        The results dict also written to `OUT/results.json` (see `collect`).
    """
    from agekeras import training

    train_fn = train_fn or training.train
    _check_protocol(spec)
    needs = [m for m in spec.models if skip_reason(m, has_landmarks=False)]
    has_landmarks = _dataset_has_landmarks(spec) if needs else True
    skipped, failed = [], []
    jobs = [(m, s) for m in spec.models for s in spec.seeds]
    print_fn(f"benchmark: {len(spec.models)} models x {len(spec.seeds)} seeds; {spec.describe()}; out {spec.out}")
    start = time.monotonic()
    for i, (model, seed) in enumerate(jobs, 1):
        tag = f"[{i}/{len(jobs)}] {model} seed {seed}"
        reason = skip_reason(model, has_landmarks)
        if reason:
            skipped.append({"model": model, "seed": seed, "reason": reason})
            logger.warning("%s skipped: %s", tag, reason)
            print_fn(f"{tag}: skipped ({reason})")
            continue
        path = run_dir(spec.out, model, seed)
        if is_finished(path):
            print_fn(f"{tag}: finished before, not trained again ({path})")
            continue
        config = train_config(spec, model, seed)
        t0 = time.monotonic()
        try:
            _check_model_args(path, config)
            print_fn(f"{tag}: training ({spec.view}) -> {path}")
            metrics = train_fn(config)
        except Exception as e:  # one broken model must not stop the others; counted and reported
            failed.append({"model": model, "seed": seed, "error": f"{type(e).__name__}: {e}"[:500]})
            logger.exception("%s failed", tag)
            print_fn(f"{tag}: FAILED ({type(e).__name__}: {str(e)[:200]})")
            continue
        state = _read_json(path / "state.json")
        print_fn(f"{tag}: {state.get('epochs_done', '?')} epochs in {state.get('train_seconds', 0) / 60:.1f} min, "
                 f"test MAE {metrics.get('mae', float('nan')):.2f} "
                 f"(this run {time.monotonic() - t0:.0f} s, benchmark {(time.monotonic() - start) / 60:.1f} min so far)")
        others = run_cpu_others(path)
        if others is not None and others > SHARED_MACHINE:
            logger.warning("%s shared the machine: other processes used %.0f%% of the CPU", tag, 100 * others)
            print_fn(f"{tag}: WARNING other processes used {100 * others:.0f}% of the CPU during this run: its speed "
                     f"and MAE are not comparable; delete {path} and run the benchmark again on an idle machine")
    results = collect(spec, skipped=skipped, failed=failed)
    write_results(results, spec.out)
    write_figures(results, pathlib.Path(spec.out) / "figures")
    print_fn(f"benchmark: {len(results['runs'])} runs in results, {len(skipped)} skipped, {len(failed)} failed; "
             f"{pathlib.Path(spec.out) / 'results.csv'}")
    return results


# ----- results ---------------------------------------------------------------------------


def _params(path):
    """Parameter count of a run's model (cached in the run folder)."""
    cache = path / "params.json"
    if cache.exists():
        return json.loads(cache.read_text())["params"]
    from agekeras.training import load_run

    model, _, _ = load_run(path)
    n = int(model.count_params())
    cache.write_text(json.dumps({"params": n}))
    return n


def _cached_evaluation(path, name, **kwargs):
    """`training.evaluate(path, **kwargs)`, kept in `path/<name>` until the
    best checkpoint changes."""
    from agekeras import training

    stamp = (path / "best.keras").stat().st_mtime
    cached = _read_json(path / name)
    if not cached or cached.get("checkpoint_mtime") != stamp:
        cached = training.evaluate(path, **kwargs)
        cached["checkpoint_mtime"] = stamp
        (path / name).write_text(json.dumps(cached, indent=2, default=float))
    return cached


def run_row(path, model, seed, cross=(), flip=False):
    """The results row of one finished run folder.

    Fields: model, seed, params, epochs, train_minutes, train_faces,
    train_img_per_s, the test metrics (`METRICS`), `mae_age_<bracket>`,
    `mae_gender_<name>`, `mae_race_<name>` (groups present in the test
    split), `cross_<dataset>_mae` per `cross` dataset, and with `flip` the
    test MAE with flip test-time averaging, `mae_flip`.
    """
    path = pathlib.Path(path)
    saved, state, metrics = (_read_json(path / f) for f in ("config.json", "state.json", "metrics.json"))
    if not metrics:
        raise FileNotFoundError(f"{path} has no metrics.json: the run did not finish")
    faces = int(saved["splits"]["train"])
    seconds = float(state.get("train_seconds", 0.0))
    epochs = int(state.get("epochs_done", 0))
    row = {"model": model, "seed": int(seed), "params": _params(path), "epochs": epochs,
           "train_minutes": seconds / 60.0, "train_faces": faces,
           "train_img_per_s": epochs * faces / seconds if seconds > 0 else None}
    others = run_cpu_others(path)
    if others is not None:
        row["cpu_others"] = others
    row.update({k: metrics[k] for k in METRICS if metrics.get(k) is not None})
    for r in metrics.get("by_age", []):
        if r.get("mae") is not None:
            row[f"mae_age_{r['bracket']}"] = r["mae"]
    for group in ("gender", "race"):
        for name, v in metrics.get(f"by_{group}", {}).items():
            row[f"mae_{group}_{name}"] = v["mae"]
    for dataset, data_dir in cross:
        cached = _cached_evaluation(path, f"metrics_{dataset}.json", dataset=dataset, data_dir=data_dir, split="all")
        row[f"cross_{dataset}_mae"] = cached["mae"]
    if flip:
        row["mae_flip"] = _cached_evaluation(path, "metrics_flip.json", flip=True)["mae"]
    return row


SHARED_MACHINE = 0.1
"""A run whose epochs left more than this share of the CPU to other processes
(mean `cpu_others` of its history) shared the machine: its img/s, epochs and,
under a time budget, MAE are not comparable with the other runs'."""


def run_cpu_others(path):
    """Mean share of the machine's CPU other processes used during a run's
    epochs (`cpu_others` in history.csv, logged by `TrainingClock`), or None
    when the history does not have it (not Linux, or an older run)."""
    values = [float(r["cpu_others"]) for r in _history(path) if r.get("cpu_others")]
    return sum(values) / len(values) if values else None


def _history(path):
    """The rows of a run folder's history.csv (dicts of strings); [] when it has none."""
    path = pathlib.Path(path) / "history.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run_curve(path):
    """`(minutes, validation MAE)` of a run's epochs, from its history.csv
    (`train_seconds` and `val_age_mae`, or `val_mae` for a single-output
    model; the training MAE when the run had no validation split). Empty lists when there is no history."""
    rows = _history(path)
    # a model with one age output logs `mae` (DAA), a multi-output model `age_mae`
    names = rows[0].keys() if rows else ()
    key = next((k for k in ("val_age_mae", "val_mae", "age_mae", "mae") if k in names), "age_mae")
    minutes, mae = [], []
    for r in rows:
        if r.get("train_seconds") and r.get(key):
            minutes.append(float(r["train_seconds"]) / 60.0)
            mae.append(float(r[key]))
    return minutes, mae


def _finite(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def aggregate(rows):
    """Mean and standard deviation over seeds, per model.

    Every numeric field `k` of the rows (except "seed") becomes `k` (mean
    over the seeds that have it) and `k_std` (sample standard deviation,
    ddof=1; None with a single value). "seeds" counts the model's rows.

    Args:
        rows: results rows (`run_row`), any order.

    Returns:
        One dict per model, in order of first appearance.
    """
    models = list(dict.fromkeys(r["model"] for r in rows))
    out = []
    for model in models:
        mine = [r for r in rows if r["model"] == model]
        agg = {"model": model, "seeds": len(mine)}
        keys = list(dict.fromkeys(k for r in mine for k in r if k not in ("model", "seed")))
        for k in keys:
            values = [float(r[k]) for r in mine if _finite(r.get(k))]
            if not values:
                continue
            agg[k] = float(np.mean(values))
            agg[f"{k}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        out.append(agg)
    return out


def leader_at(curves, minutes=MARK_MINUTES):
    """Which model leads at each of `minutes` of training.

    A model's score at `t` is its best validation MAE among the epochs that
    ended by `t` (what its best checkpoint holds then), averaged over the
    seeds that had finished an epoch by then.

    Args:
        curves: model -> list of `{"seed", "minutes", "val_mae"}`.
        minutes: the times.

    Returns:
        `{t: {"model": leader or None, "val_mae": its score, "scores": {model: score}}}`,
        keyed by `str(t)` (JSON-ready).
    """
    out = {}
    for t in minutes:
        scores = {}
        for model, runs in curves.items():
            best = [min(m for x, m in zip(r["minutes"], r["val_mae"]) if x <= t)
                    for r in runs if any(x <= t for x in r["minutes"])]
            if best:
                scores[model] = float(np.mean(best))
        leader = min(scores, key=scores.get) if scores else None
        out[str(t)] = {"model": leader, "val_mae": scores.get(leader), "scores": scores}
    return out


def at_equal_epochs(curves, epochs=None):
    """Every model's validation MAE after the same number of epochs.

    A model's score is its best validation MAE among its first `epochs`
    epochs, averaged over seeds. It separates method from speed in an
    equal-time benchmark without new training, with one bias to keep in
    mind: a time-budgeted run's learning-rate schedule follows the clock, so
    after `epochs` epochs a slow model has annealed further than a fast one
    (it favours the slow model). `--epochs N` trains the real equal-epochs
    view.

    Args:
        curves: model -> list of `{"seed", "minutes", "val_mae"}` (one
            entry per epoch).
        epochs: the epoch count; default the fewest epochs any model ran.

    Returns:
        `{"epochs": epochs, "scores": {model: score}, "minutes": {model: mean
        minutes those epochs took}}`; models with fewer epochs are left out.
    """
    runs = [r for rs in curves.values() for r in rs if r["val_mae"]]
    if epochs is None:
        epochs = min((len(r["val_mae"]) for r in runs), default=0)
    scores, minutes = {}, {}
    for model, rs in curves.items():
        done = [r for r in rs if len(r["val_mae"]) >= epochs > 0]
        if done:
            scores[model] = float(np.mean([min(r["val_mae"][:epochs]) for r in done]))
            minutes[model] = float(np.mean([r["minutes"][epochs - 1] for r in done]))
    return {"epochs": int(epochs), "scores": scores, "minutes": minutes}


def equal_epochs_table(results):
    """The equal-epochs reading (`at_equal_epochs`) beside the equal-time test MAE.

    Returns:
        An `agekeras.tables.ResultsTable`, best validation MAE first.
    """
    from agekeras.tables import ResultsTable

    eq = results.get("equal_epochs") or at_equal_epochs(results["curves"])
    test = {r["model"]: r.get("mae") for r in results["summary"]}
    val = f"val MAE after {eq['epochs']} epochs"
    columns = ["model", val, "minutes they took", "test MAE (equal time)"]
    lines = [{"model": m, val: v, "minutes they took": eq["minutes"][m], "test MAE (equal time)": test.get(m)}
             for m, v in sorted(eq["scores"].items(), key=lambda kv: kv[1])]
    return ResultsTable(columns, lines, frozenset(columns[1:]))


def collect(spec, *, skipped=(), failed=()):
    """The results dict of the finished runs of `spec` in `spec.out`.

    Keys: "settings", "runs" (rows, `run_row`), "summary" (`aggregate`),
    "curves" (model -> per-seed validation curves), "leader_at"
    (`leader_at`), "equal_epochs" (`at_equal_epochs`), "paper" (`PAPER_HEADLINES` of the benchmarked models),
    "skipped", "failed", "unfinished" (runs without a finished state).
    """
    rows, curves, unfinished = [], {}, []
    for model in spec.models:
        for seed in spec.seeds:
            path = run_dir(spec.out, model, seed)
            if not path.exists() or any(s["model"] == model and s["seed"] == seed for s in skipped):
                continue
            if not is_finished(path):
                unfinished.append({"model": model, "seed": seed})
                continue
            rows.append(run_row(path, model, seed, spec.cross, spec.flip))
            x, y = run_curve(path)
            curves.setdefault(model, []).append({"seed": seed, "minutes": x, "val_mae": y})
    settings = {"models": list(spec.models), "seeds": list(spec.seeds), "view": spec.view,
                "description": spec.describe(), "cross": [list(c) for c in spec.cross], "flip": spec.flip,
                "model_args": spec.model_args, **spec.protocol()}
    return {"settings": settings, "runs": rows, "summary": aggregate(rows), "curves": curves,
            "leader_at": leader_at(curves), "equal_epochs": at_equal_epochs(curves),
            "paper": {m: PAPER_HEADLINES[m] for m in spec.models if m in PAPER_HEADLINES},
            "skipped": list(skipped), "failed": list(failed), "unfinished": unfinished}


def write_results(results, out):
    """`OUT/results.json` (everything) and `OUT/results.csv` (one row per run)."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float))
    columns = list(dict.fromkeys(k for r in results["runs"] for k in r))
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns or ["model", "seed"])
        w.writeheader()
        for r in results["runs"]:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})


def load_results(out):
    """The results dict of a benchmark folder (its results.json).

    Raises:
        FileNotFoundError: with the command that makes it.
    """
    path = pathlib.Path(out) / "results.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `python -m agekeras benchmark --out {out} ...` first")
    return json.loads(path.read_text())


# ----- tables ----------------------------------------------------------------------------


def mean_std(mean, std=None, digits=2):
    """"6.46 ± 0.12" (or "6.46" without a std, "—" without a mean)."""
    if mean is None or not math.isfinite(mean):
        return "—"
    return f"{mean:.{digits}f}" if std is None or not math.isfinite(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def summary_table(results, *, paper=True):
    """Our mean ± std per model, beside the paper's headline number.

    Returns:
        An `agekeras.tables.ResultsTable` (markdown via `to_markdown()`, HTML in notebooks).
    """
    from agekeras.tables import ResultsTable

    cross = [f"cross_{d}_mae" for d, _ in results["settings"].get("cross", [])]
    flip = any(s.get("mae_flip") is not None for s in results["summary"])
    columns = ["model", "seeds", "params (M)", "train img/s", "epochs", "MAE", *(["MAE flip"] if flip else []),
               "RMSE", "CA(5)", *(f"MAE on {c[6:-4]}" for c in cross)]
    if paper:
        columns += ["paper MAE", "paper method", "paper table", "paper dataset", "paper pretraining", "paper size"]
    lines = []
    for s in sorted(results["summary"], key=lambda s: s.get("mae", math.inf)):
        g = lambda k, d=2, scale=1.0: mean_std(  # noqa: E731
            None if s.get(k) is None else s[k] * scale, None if s.get(f"{k}_std") is None else s[f"{k}_std"] * scale, d)
        params = mean_std(s["params"] / 1e6, None, 1) if _finite(s.get("params")) else "—"  # same for every seed
        line = {"model": s["model"], "seeds": str(s["seeds"]), "params (M)": params,
                "train img/s": g("train_img_per_s", 0), "epochs": g("epochs", 1), "MAE": g("mae"),
                "RMSE": g("rmse"), "CA(5)": g("ca5")}
        if flip:
            line["MAE flip"] = g("mae_flip")
        for c in cross:
            line[f"MAE on {c[6:-4]}"] = g(c)
        if paper:
            p = results.get("paper", {}).get(s["model"], {})
            line.update({"paper MAE": None if p.get("MAE") is None else f"{p['MAE']:g}",
                         "paper method": p.get("method"), "paper table": p.get("table"),
                         "paper dataset": p.get("dataset"), "paper pretraining": p.get("pretraining"),
                         "paper size": p.get("size")})
        lines.append(line)
    return ResultsTable(columns, lines)


def runs_table(results):
    """One line per (model, seed): epochs, minutes, img/s, MAE, RMSE, CA(5),
    and the share of the CPU other processes took during the run, where logged."""
    from agekeras.tables import ResultsTable

    columns = ["model", "seed", "epochs", "minutes", "train img/s", "MAE", "RMSE", "CA(5)"]
    if any(r.get("mae_flip") is not None for r in results["runs"]):
        columns.insert(6, "MAE flip")
    if any(r.get("cpu_others") is not None for r in results["runs"]):
        columns.append("others' CPU")
    lines = [{"model": r["model"], "seed": r["seed"], "epochs": r["epochs"], "minutes": r["train_minutes"],
              "train img/s": r.get("train_img_per_s"), "MAE": r.get("mae"), "MAE flip": r.get("mae_flip"),
              "RMSE": r.get("rmse"), "CA(5)": r.get("ca5"), "others' CPU": r.get("cpu_others")}
             for r in results["runs"]]  # fmt: skip
    return ResultsTable(columns, lines, frozenset(columns[3:]))


def group_table(results, group):
    """MAE (mean ± std over seeds) per model and per group: "age", "gender" or "race".

    Groups absent from the test data (e.g. race on the synthetic faces) have no column.
    """
    from agekeras.tables import ResultsTable

    if group not in ("age", "gender", "race"):
        raise ValueError(f"group must be 'age', 'gender' or 'race'; got {group!r}")
    prefix = f"mae_{group}_"
    keys = list(dict.fromkeys(k for s in results["summary"] for k in s if k.startswith(prefix) and
                              not k.endswith("_std")))
    if not keys:
        return ResultsTable(["model", "note"], [{"model": s["model"], "note": f"no {group} labels in the test data"}
                                                for s in results["summary"]])
    columns = ["model", *(k[len(prefix):] for k in keys)]
    lines = [{"model": s["model"], **{k[len(prefix):]: mean_std(s.get(k), s.get(f"{k}_std")) for k in keys}}
             for s in results["summary"]]
    return ResultsTable(columns, lines)


def readme_markdown(results):
    """The README's results block: one sentence of protocol, then `summary_table`."""
    s = results["settings"]
    head = (f"Benchmark ({s['description']}); mean ± std over seeds; generated by "
            f"`benchmarks/readme_table.py` from `results.json`. The papers' numbers are on other data, "
            f"larger images and pretrained backbones: read them as context, not as a ranking.")
    return head + "\n\n" + summary_table(results).to_markdown() + "\n"


# ----- figures ---------------------------------------------------------------------------


def plot_mae_vs_minutes(results, save_to=None):
    """Validation MAE against training minutes, every model and seed (`plots.plot_lines`)."""
    from agekeras import plots

    lines = {m: [(r["minutes"], r["val_mae"]) for r in runs] for m, runs in results["curves"].items() if runs}
    if not lines:
        raise ValueError("no training curves in the results")
    lead = ", ".join(f"{t} min: {v['model'] or '—'}" for t, v in results["leader_at"].items())
    longest = max((max(x) for runs in lines.values() for x, _ in runs if len(x)), default=0.0)
    return plots.plot_lines(lines, "training minutes", "validation MAE (years)", f"ahead at {lead}",
                            marks=[m for m in MARK_MINUTES if m <= longest], save_to=save_to)


def _scatter(results, key, xlabel, logx, save_to):
    from agekeras import plots

    rows = [s for s in results["summary"] if _finite(s.get(key)) and _finite(s.get("mae"))]
    if not rows:
        raise ValueError(f"no model has both {key!r} and an MAE")
    return plots.plot_scatter_labeled([s[key] for s in rows], [s["mae"] for s in rows], [s["model"] for s in rows],
                                      xlabel, "test MAE (years)", f"MAE against {xlabel.split(' (')[0]}",
                                      xerr=[s.get(f"{key}_std") or np.nan for s in rows],
                                      yerr=[s.get("mae_std") or np.nan for s in rows], logx=logx, save_to=save_to)


def plot_mae_vs_params(results, save_to=None):
    """Test MAE (mean ± std) against parameter count."""
    return _scatter(results, "params", "parameters", True, save_to)


def plot_mae_vs_speed(results, save_to=None):
    """Test MAE (mean ± std) against training images per second."""
    return _scatter(results, "train_img_per_s", "training speed (img/s)", True, save_to)


def plot_mae_by_group(results, group="age", save_to=None):
    """Test MAE per model and age bracket / gender / race (`plots.plot_grouped_bars`)."""
    from agekeras import plots

    prefix = f"mae_{group}_"
    groups = {s["model"]: {k[len(prefix):]: s[k] for k in s if k.startswith(prefix) and not k.endswith("_std")}
              for s in results["summary"]}
    groups = {m: g for m, g in groups.items() if g}
    if not groups:
        raise ValueError(f"no MAE by {group} in the results")
    label = {"age": "true age bracket", "gender": "gender", "race": "race"}[group]
    return plots.plot_grouped_bars(groups, "test MAE (years)", f"MAE by {label}, mean over seeds", save_to=save_to)


def write_figures(results, folder):
    """Every benchmark figure as a PNG in `folder`, titled with the protocol
    (data, size, budget, seeds); returns name -> path of those drawn."""
    from agekeras import plots

    folder = pathlib.Path(folder)
    title = f"benchmark: {results['settings'].get('description', '')}"
    makers = {"mae_vs_minutes": plot_mae_vs_minutes, "mae_vs_params": plot_mae_vs_params,
              "mae_vs_speed": plot_mae_vs_speed, "mae_by_age": lambda r, save_to=None: plot_mae_by_group(r, "age", save_to)}
    done = {}
    for name, fn in makers.items():
        try:
            plots.with_title(fn(results), title, save_to=folder / f"{name}.png")
            done[name] = folder / f"{name}.png"
        except ValueError as e:  # e.g. no finished run yet: say so, draw the others
            logger.warning("figure %s not drawn: %s", name, e)
    return done


# ----- command line ----------------------------------------------------------------------


def main(argv=None):
    """`python -m agekeras benchmark ...`: returns 0, 1 when a run failed, 2 on bad arguments."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        spec = parse_args(sys.argv[1:] if argv is None else argv)
    except ValueError as e:
        print(f"agekeras benchmark: error: {e}", file=sys.stderr)
        return 2
    try:
        results = run_benchmark(spec)
    except ValueError as e:  # e.g. a folder holding another protocol
        print(f"agekeras benchmark: error: {e}", file=sys.stderr)
        return 2
    print(summary_table(results).to_markdown())
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
