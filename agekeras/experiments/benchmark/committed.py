"""The committed reference results: a benchmark folder's small files, kept in the repository.

Every result number the README, `benchmarks/README.md` and the notebooks
show comes from `benchmarks/results/` of the repository: `publish` copies a
finished benchmark folder there (its results.json and results.csv, and per run
config.json, state.json, history.csv, metrics*.json and the test split's
predictions.csv, without model files and without the paths of the machine
that trained it), `load_committed` reads it back. `benchmarks/render.py`
renders the README's tables and `figures/benchmark/` from it.

Example:

>>> from agekeras.experiments import benchmark
>>> R = benchmark.load_committed()  # doctest: +SKIP
>>> benchmark.summary_table(R, models=["resnet18_dex", "dhaa"])  # doctest: +SKIP
"""

from __future__ import annotations

import os
import pathlib
import shutil

from agekeras.runs import CONFIG, HISTORY, STATE, RunDir, read_json, write_json

from .results import RESULTS_CSV, RESULTS_JSON, run_dir

#: The committed benchmark the course's tables show: every paper model and
#: baseline with the CPU recipe (`RECIPES["cpu"]`), equal epochs.
REFERENCE = "utkface_cpu_recipe_equal_epochs"
#: The committed runs of `ABLATIONS[paper]` are in `benchmarks/results/<ABLATION_PREFIX><paper>`.
ABLATION_PREFIX = "ablation_"
#: Environment variable naming another results folder (default: the
#: repository's `benchmarks/results/`).
RESULTS_ENV = "AGEKERAS_RESULTS"
RESULTS_PATH = ("benchmarks", "results")
#: A run's files that `publish` copies besides its metrics files (small text
#: files; no model weights), and the suffixes of the predictions it copies
#: (the test split, one view: what the figures draw).
RUN_FILES = (CONFIG, STATE, HISTORY)
PREDICTION_SUFFIXES = ("",)


def _run_files(run):
    """The files of `run` that `publish` copies."""
    metrics = run.metrics_file()
    files = [run.path / f for f in RUN_FILES] + sorted(run.path.glob(f"{metrics.stem}*{metrics.suffix}"))
    return files + [run.predictions_file(s) for s in PREDICTION_SUFFIXES]


def results_root(root=None) -> pathlib.Path | None:
    """The folder of committed results: `root`, `$AGEKERAS_RESULTS`, or
    `benchmarks/results/` of the repository this package runs from (found
    beside the package, else above the working directory); None when there
    is none (e.g. agekeras installed without the repository)."""
    if root is not None:
        return pathlib.Path(root)
    if os.environ.get(RESULTS_ENV):
        return pathlib.Path(os.environ[RESULTS_ENV])
    here = pathlib.Path(__file__).resolve()
    for base in (here.parents[3], *pathlib.Path.cwd().resolve().parents, pathlib.Path.cwd().resolve()):
        candidate = base.joinpath(*RESULTS_PATH)
        if candidate.is_dir():
            return candidate
    return None


def load_committed(name=REFERENCE, root=None, *, quiet=False):
    """The results dict of the committed benchmark `name` (as `load_results`),
    or None, with one printed line saying where the results live, when it is absent.

    Args:
        name: a folder of `benchmarks/results/` (default `REFERENCE`).
        root: another results folder (default `results_root()`).
        quiet: print nothing when it is absent.
    """
    base = results_root(root)
    path = None if base is None else base / name / RESULTS_JSON
    if path is None or not path.exists():
        if not quiet:
            print(f"The reference results {name!r} are not here: they live in benchmarks/results/ of the agekeras "
                  "repository (clone it to see them).")
        return None
    return read_json(path)


def lab_table(name, columns, root=None):
    """A committed measurement, `benchmarks/results/lab/<name>.csv`, as a table.

    Args:
        name: the measurement's file name without `.csv`.
        columns: dict CSV column -> table header, in the table's order;
            columns the CSV lacks are left out.
        root: another results folder (default `results_root()`).

    Returns:
        An `agekeras.tables.ResultsTable`, or None (with one printed line
        saying where it lives) when the file is not here.

    Example:

    >>> benchmark.lab_table("dhaa_training", {"setting": "setting", "train_img_per_s": "train img/s"})  # doctest: +SKIP
    """
    import csv

    from agekeras.tables import ResultsTable

    base = results_root(root)
    path = None if base is None else base / "lab" / f"{name}.csv"
    if path is None or not path.is_file():
        print(f"benchmarks/results/lab/{name}.csv is not here: it lives in the agekeras repository")
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    kept = {c: h for c, h in columns.items() if rows and c in rows[0]}
    return ResultsTable(list(kept.values()), [{h: r[c] for c, h in kept.items()} for r in rows])


def ablation_name(paper):
    """The folder of `benchmarks/results/` holding the committed runs of `ABLATIONS[paper]`."""
    from .spec import ABLATIONS

    if paper not in ABLATIONS:
        raise ValueError(f"unknown ablation {paper!r}: choose one of {', '.join(ABLATIONS)}")
    return ABLATION_PREFIX + paper


def _scrub(value, replacements):
    """`value` with every string that is or holds a machine path rewritten."""
    if isinstance(value, dict):
        return {k: _scrub(v, replacements) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, replacements) for v in value]
    if isinstance(value, str):
        for old, new in replacements:
            if old and old in value:
                value = value.replace(old, new)
    return value


def _replacements(out, data_dir, data_label):
    """(machine path, neutral name) pairs, longest first."""
    pairs = [(str(pathlib.Path(out).resolve()), "runs/bench"), (str(pathlib.Path(out)), "runs/bench")]
    if data_dir:
        pairs += [(str(pathlib.Path(data_dir).resolve()), data_label), (str(data_dir), data_label)]
        parent = pathlib.Path(data_dir).resolve().parent
        pairs.append((str(parent) + os.sep, ""))  # image paths beside the data file keep only their folder's name
    return sorted(set(pairs), key=lambda p: -len(p[0]))


def publish(out, name, root=None, *, data_label=None, data_name=None):
    """Copy the finished benchmark folder `out` into `<results>/<name>/`.

    Args:
        out: a benchmark folder holding results.json (`run_benchmark`).
        name: the folder name under the results root (e.g. `REFERENCE`).
        root: the results root (default `results_root()`, which must exist).
        data_label: what the data's folder is called instead of its path
            (default "<data root>/<dataset>").
        data_name: what the data is, for titles and tables (e.g. "UTKFace,
            7,811 faces" for a landmarks CSV of UTKFace read by the csv
            reader); saved as the settings' "data_name" and put first in
            their "description".

    Returns:
        The published folder.

    Raises:
        FileNotFoundError: `out` has no results.json, or there is no results root.
    """
    out = pathlib.Path(out)
    results = read_json(out / RESULTS_JSON)
    if not results:
        raise FileNotFoundError(f"{out / RESULTS_JSON} does not exist: run the benchmark first")
    base = results_root(root)
    if base is None:
        raise FileNotFoundError("no benchmarks/results/ folder found: give root=")
    settings = results["settings"]
    label = data_label or f"<data root>/{settings.get('dataset')}"
    replacements = _replacements(out, settings.get("data_dir"), label)
    target = base / name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    if data_name:
        settings["data_name"] = data_name
        settings["description"] = settings["description"].replace(str(settings["dataset"]), data_name, 1)
    write_json(target / RESULTS_JSON, _scrub(results, replacements))
    csv_text = (out / RESULTS_CSV).read_text() if (out / RESULTS_CSV).exists() else ""
    (target / RESULTS_CSV).write_text(_scrub(csv_text, replacements))
    for row in results["runs"]:
        dest = run_dir(target, row["model"], row["seed"])
        dest.mkdir(parents=True)
        for f in _run_files(RunDir(run_dir(out, row["model"], row["seed"]))):
            if not f.exists():
                continue
            if f.suffix == ".json":
                write_json(dest / f.name, _scrub(read_json(f), replacements))
            else:
                (dest / f.name).write_text(_scrub(f.read_text(), replacements))
    return target
