"""What a benchmark's finished runs hold: one row per run, the mean over seeds, the validation curves.

Each run folder is read through `agekeras.runs.RunDir`; extra scores (flip
test-time averaging, other datasets) come from
`agekeras.evaluation.evaluate_cached`, so a run is scored once per
checkpoint. `collect` gathers a benchmark into the results dict that
`write_results` saves as `OUT/results.json` and `OUT/results.csv`.
"""

from __future__ import annotations

import csv
import math
import pathlib

import numpy as np

from agekeras.runs import RunDir, read_json, write_json

from .spec import MARK_MINUTES, METRICS, PAPER_HEADLINES


def run_dir(out, model, seed) -> pathlib.Path:
    """`OUT/<model>/seed<seed>`: the run folder of one (model, seed).

    Example:

    >>> run_dir("runs/bench", "dhaa", 1).as_posix()
    'runs/bench/dhaa/seed1'
    """
    return pathlib.Path(out) / model / f"seed{int(seed)}"


def is_number(v) -> bool:
    """Whether `v` is a finite int or float (not a bool, not None, not NaN).

    Example:

    >>> [is_number(v) for v in (1, 2.5, float("nan"), None, True)]
    [True, True, False, False, False]
    """
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ----- one run ---------------------------------------------------------------------------

PARAMS_FILE = "params.json"
"""The benchmark's cache of a run's parameter count, in the run folder."""


def free_models():
    """Drop the models and graphs of finished runs from memory (Keras' global
    state keeps them): a benchmark trains and scores many models in one process."""
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()


def _params(run):
    """Parameter count of a run's model (cached in the run folder: loading a model takes seconds)."""
    cache = run.path / PARAMS_FILE
    cached = read_json(cache)
    if "params" in cached:
        return int(cached["params"])
    from agekeras.evaluation import load_run

    model, _, _ = load_run(run.path)
    n = int(model.count_params())
    write_json(cache, {"params": n})
    return n


def benchmark_row(path, model, seed, cross=(), flip=False):
    """The benchmark's results row of one finished run folder.

    Args:
        path: the run folder (`run_dir`).
        model, seed: the (model, seed) it trained.
        cross: `(dataset, data_dir)` pairs to score the run on (whole data).
        flip: also score the test split with flip test-time averaging.

    Returns:
        A dict with model, seed, params, epochs, train_minutes, train_faces,
        train_img_per_s, cpu_others (where logged), the test metrics
        (`METRICS`), `mae_age_<bracket>`, `mae_gender_<name>`,
        `mae_race_<name>` (groups present in the test split),
        `cross_<dataset>_mae` per `cross` dataset, and with `flip` the test
        MAE with flip test-time averaging, `mae_flip`.

    Raises:
        FileNotFoundError: the run has no test metrics (it did not finish).

    Example:

    >>> row = benchmark_row(run_dir("runs/bench", "resnet18_dex", 0), "resnet18_dex", 0, flip=True)  # doctest: +SKIP
    >>> row["mae"], row["mae_flip"]  # doctest: +SKIP
    (6.21, 6.02)
    """
    from agekeras.evaluation import evaluate_cached

    run = RunDir(path)
    saved, state, metrics = run.read_config(), run.read_state(), run.read_metrics()
    if not metrics:
        raise FileNotFoundError(f"{run.path} has no {run.metrics_file().name}: the run did not finish")
    faces = int(saved["splits"]["train"])
    seconds = float(state.get("train_seconds", 0.0))
    epochs = int(state.get("epochs_done", 0))
    row = {"model": model, "seed": int(seed), "params": _params(run), "epochs": epochs,
           "train_minutes": seconds / 60.0, "train_faces": faces,
           "train_img_per_s": epochs * faces / seconds if seconds > 0 else None}
    others = run_cpu_others(run.path)
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
        row[f"cross_{dataset}_mae"] = evaluate_cached(run.path, dataset=dataset, data_dir=data_dir, split="all")["mae"]
    if flip:
        row["mae_flip"] = evaluate_cached(run.path, flip=True)["mae"]
    return row


SHARED_MACHINE = 0.1
"""A run whose epochs left more than this share of the CPU to other processes
(mean `cpu_others` of its history) shared the machine: its img/s, epochs and,
under a time budget, MAE are not comparable with the other runs'."""


def run_cpu_others(path):
    """Mean share of the machine's CPU other processes used during a run's epochs.

    Args:
        path: the run folder.

    Returns:
        The mean of the history's `cpu_others` column (logged by
        `TrainingClock`), or None when the history does not have it (not
        Linux, or an older run).

    Example:

    >>> run_cpu_others("runs/bench/resnet18_dex/seed0")  # doctest: +SKIP
    0.02
    """
    values = RunDir(path).read_history().get("cpu_others", np.array([]))
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else None


def run_curve(path):
    """`(minutes, validation MAE)` of a run's epochs, from its history.

    The columns are `train_seconds` and `val_age_mae`, or `val_mae` for a
    single-output model; the training MAE when the run had no validation
    split. Epochs missing either number are left out.

    Args:
        path: the run folder.

    Returns:
        Two lists of floats; empty when there is no history.

    Example:

    >>> minutes, mae = run_curve("runs/bench/resnet18_dex/seed0")  # doctest: +SKIP
    """
    history = RunDir(path).read_history()
    # a model with one age output logs `mae` (DAA), a multi-output model `age_mae`
    key = next((k for k in ("val_age_mae", "val_mae", "age_mae", "mae") if k in history), None)
    if key is None or "train_seconds" not in history:
        return [], []
    seconds, mae = history["train_seconds"], history[key]
    keep = np.isfinite(seconds) & np.isfinite(mae)
    return [float(s) / 60.0 for s in seconds[keep]], [float(m) for m in mae[keep]]


# ----- over seeds and models ---------------------------------------------------------------


def aggregate(rows):
    """Mean and standard deviation over seeds, per model.

    Every numeric field `k` of the rows (except "seed") becomes `k` (mean
    over the seeds that have it) and `k_std` (sample standard deviation,
    ddof=1; None with a single value). "seeds" counts the model's rows.

    Args:
        rows: results rows (`benchmark_row`), any order.

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
            values = [float(r[k]) for r in mine if is_number(r.get(k))]
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


# ----- the results of a benchmark ------------------------------------------------------------

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"


def collect(spec, *, skipped=(), failed=()):
    """The results dict of the finished runs of `spec` in `spec.out`.

    Keys: "settings", "runs" (rows, `benchmark_row`), "summary" (`aggregate`),
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
            if not RunDir(path).is_finished():
                unfinished.append({"model": model, "seed": seed})
                continue
            rows.append(benchmark_row(path, model, seed, spec.cross, spec.flip))
            free_models()
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
    write_json(out / RESULTS_JSON, results)
    columns = list(dict.fromkeys(k for r in results["runs"] for k in r))
    with open(out / RESULTS_CSV, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns or ["model", "seed"])
        w.writeheader()
        for r in results["runs"]:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})


def load_results(out):
    """The results dict of a benchmark folder (its results.json).

    Raises:
        FileNotFoundError: with the command that makes it.
    """
    path = pathlib.Path(out) / RESULTS_JSON
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `python -m agekeras benchmark --out {out} ...` first")
    return read_json(path)

