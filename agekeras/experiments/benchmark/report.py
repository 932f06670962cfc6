"""A benchmark's results as tables, figures and the README block.

Every function takes the results dict of `collect` / `load_results`:

| tables | figures |
|---|---|
| `summary_table` (mean ± std per model, beside the papers) | `plot_mae_vs_minutes` |
| `runs_table` (one line per run) | `plot_mae_vs_params` |
| `group_table` (MAE by age, gender or race) | `plot_mae_vs_speed` |
| `equal_epochs_table` (the models after the same epochs) | `plot_mae_by_group` |
| `ablation_table`, `ablation_findings`, `ablation_command` (a paper's component on and off) | |

`readme_markdown` is the README's results block; `write_figures` saves every figure.
"""

from __future__ import annotations

import logging
import math
import pathlib

import numpy as np

from .results import at_equal_epochs, is_number
from .spec import MARK_MINUTES

logger = logging.getLogger("agekeras.benchmark")


# ----- tables ----------------------------------------------------------------------------


def mean_std(mean, std=None, digits=2):
    """"6.46 ± 0.12" (or "6.46" without a std, "—" without a mean)."""
    if mean is None or not math.isfinite(mean):
        return "—"
    return f"{mean:.{digits}f}" if std is None or not math.isfinite(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def summary_table(results, *, paper=True, models=None):
    """Our mean ± std per model, beside the paper's headline number (and, in
    the equal-time view, each model's training speed).

    Args:
        results: a results dict (`collect`, `load_results`, `load_committed`).
        paper: add the paper's headline number, table, dataset and pretraining.
        models: only these models (registry names), best first; default all.

    Returns:
        An `agekeras.tables.ResultsTable` (markdown via `to_markdown()`, HTML in notebooks).
    """
    from agekeras.tables import ResultsTable

    cross = [f"cross_{d}_mae" for d, _ in results["settings"].get("cross", [])]
    flip = _scored_with_flip(results["summary"])
    # the equal-epochs view measures the method, and its runs may share the machine: its speeds are not shown
    speed = results["settings"].get("view") != "equal epochs"
    columns = ["model", "seeds", "params (M)", *(["train img/s"] if speed else []), "epochs", "MAE",
               *(["MAE flip"] if flip else []),
               "RMSE", "CA(5)", *(f"MAE on {c[6:-4]}" for c in cross)]
    if paper:
        columns += ["paper MAE", "paper method", "paper table", "paper dataset", "paper pretraining", "paper size"]
    lines = []
    summary = [s for s in results["summary"] if models is None or s["model"] in models]
    for s in sorted(summary, key=lambda s: s.get("mae", math.inf)):
        g = lambda k, d=2, scale=1.0: mean_std(  # noqa: E731
            None if s.get(k) is None else s[k] * scale, None if s.get(f"{k}_std") is None else s[f"{k}_std"] * scale, d)
        params = mean_std(s["params"] / 1e6, None, 1) if is_number(s.get("params")) else "—"  # same for every seed
        line = {"model": s["model"], "seeds": str(s["seeds"]), "params (M)": params, "epochs": g("epochs", 1),
                "MAE": g("mae"), "RMSE": g("rmse"), "CA(5)": g("ca5")}
        if speed:
            line["train img/s"] = g("train_img_per_s", 0)
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


def runs_table(results, *, cpu_share=False):
    """One line per (model, seed): epochs, minutes, img/s, MAE, RMSE, CA(5),
    and with `cpu_share` the share of the CPU other processes took during the
    run, where logged (what makes a run's img/s comparable)."""
    from agekeras.tables import ResultsTable

    columns = ["model", "seed", "epochs", "minutes", "train img/s", "MAE", "RMSE", "CA(5)"]
    if _scored_with_flip(results["runs"]):
        columns.insert(6, "MAE flip")
    if cpu_share and any(r.get("cpu_others") is not None for r in results["runs"]):
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


def _scored_with_flip(rows):
    """Whether any row (a run or a model's summary) has a flip score."""
    return any(r.get("mae_flip") is not None for r in rows)


def _score_key(results):
    """"mae_flip" when the benchmark scored with flip, else "mae"."""
    return "mae_flip" if _scored_with_flip(results["runs"]) else "mae"


def ablation_rows(results, paper):
    """One dict per model of `ABLATIONS[paper]` that `results` holds: its seeds'
    scores and, beside the paper's model, the difference to it.

    A model's score is its test MAE with flip where the benchmark has it (else
    the MAE). `delta` is the mean over the shared seeds (the same split for
    both) of its score minus the paper model's: positive means worse without the
    component. `spread` is the larger of the two models' seed standard
    deviations; `beyond_spread` is True/False when both have at least two seeds
    (None before: one seed has no spread).
    """
    from .spec import ABLATIONS

    spec = ABLATIONS[paper]
    key = _score_key(results)
    scores = {}
    for r in results["runs"]:
        if r.get(key) is not None and math.isfinite(r[key]):
            scores.setdefault(r["model"], {})[r["seed"]] = float(r[key])
    on = scores.get(spec["model"], {})
    rows = []
    for model in (spec["model"], *spec["without"]):
        mine = scores.get(model)
        if not mine:
            continue
        values = list(mine.values())
        row = {"model": model, "differs": spec["without"].get(model, "the paper's model"), "seeds": sorted(mine),
               "mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
               "delta": None, "spread": None, "beyond_spread": None}
        shared = sorted(set(mine) & set(on))
        if model != spec["model"] and shared:
            row["delta"] = float(np.mean([mine[s] - on[s] for s in shared]))
            if len(mine) > 1 and len(on) > 1:
                row["spread"] = float(max(np.std(values, ddof=1), np.std(list(on.values()), ddof=1)))
                row["beyond_spread"] = bool(abs(row["delta"]) > row["spread"])
        rows.append(row)
    return rows


def ablation_command(paper, data_dir="<UTKFace landmarks CSV>"):
    """The command that trains `ABLATIONS[paper]` (with its shared builder arguments) under the
    reference benchmark's protocol (the CPU recipe, 5 epochs, flip, seeds 0-2) into `runs/ablation_<paper>`."""
    from .committed import ablation_name

    return (f"python -m agekeras benchmark --ablation {paper} --dataset csv --data-dir {data_dir} --epochs 5 "
            f"--seeds 0,1,2 --image-size 64 --batch-size 64 --recipe cpu --flip --out runs/{ablation_name(paper)}")


def ablation_table(results, paper):
    """The paper's model beside the same model without each component (`ABLATIONS[paper]`):
    MAE mean ± std over seeds, the difference to the paper's model and whether it exceeds
    the seed spread (see `ablation_rows`).

    Returns:
        An `agekeras.tables.ResultsTable`.
    """
    from agekeras.tables import ResultsTable

    score = "MAE flip" if _score_key(results) == "mae_flip" else "MAE"
    columns = ["model", "what differs", "seeds", score, "difference", "beyond the seed spread"]
    lines = [{"model": r["model"], "what differs": r["differs"], "seeds": ",".join(map(str, r["seeds"])),
              score: mean_std(r["mean"], r["std"]),
              "difference": "—" if r["delta"] is None else f"{r['delta']:+.2f}",
              "beyond the seed spread": {None: "—", True: "yes", False: "no"}[r["beyond_spread"]]}
             for r in ablation_rows(results, paper)]
    return ResultsTable(columns, lines)


def ablation_findings(results, paper):
    """What the ablation's evidence supports, one sentence per model without the component."""
    from .spec import ABLATIONS

    rows = ablation_rows(results, paper)
    model = ABLATIONS[paper]["model"]
    if not any(r["model"] == model for r in rows):
        return [f"{model} has no finished run in these results: nothing to compare with."]
    out = []
    for r in rows:
        if r["model"] == model:
            continue
        head = f"{r['model']} ({r['differs']})"
        if r["delta"] is None:
            out.append(f"{head}: no seed shared with {model}.")
        elif r["beyond_spread"] is None:
            out.append(f"{head}: {r['delta']:+.2f} years against {model} on seed(s) "
                       f"{','.join(map(str, r['seeds']))}; with fewer than two seeds each there is no seed spread "
                       "to weigh the difference against yet.")
        elif not r["beyond_spread"]:
            out.append(f"{head}: {r['delta']:+.2f} years, within the seed spread (±{r['spread']:.2f}): "
                       "the evidence does not separate it from the paper's model.")
        elif r["delta"] > 0:
            out.append(f"{head}: {r['delta']:+.2f} years, beyond the seed spread (±{r['spread']:.2f}): "
                       "the component helps at this recipe and budget.")
        else:
            out.append(f"{head}: {r['delta']:+.2f} years, beyond the seed spread (±{r['spread']:.2f}): "
                       "the model does better without the component at this recipe and budget.")
    return out


def readme_markdown(results):
    """The README's results block: one sentence of protocol, then `summary_table`."""
    s = results["settings"]
    head = (f"Benchmark ({s['description']}); mean ± std over seeds where there are several; rendered by "
            f"`benchmarks/render.py` from `benchmarks/results/`. The papers' numbers are on other data and "
            f"larger images, each from the start its paper gives (the paper pretraining column): read them as "
            f"context, not as a ranking.")
    ran = {r["model"] for r in results["runs"]}
    missing = [m for m in s.get("models", []) if m not in ran]
    if missing:
        head += f" Not trained in this benchmark yet: {', '.join(missing)}."
    return head + "\n\n" + summary_table(results).to_markdown() + "\n"


def reproduce_command(results):
    """The command line that trains a benchmark like `results` (a fenced code block)."""
    s = results["settings"]
    data = "<UTKFace landmarks CSV>" if s.get("dataset") == "csv" else "<dataset folder>"
    parts = ["python -m agekeras benchmark", f"--dataset {s['dataset']}"]
    if s.get("data_dir"):
        parts.append(f"--data-dir {data}")
    budget = f"--time-budget {s['time_budget']:g}" if s.get("time_budget") is not None else f"--epochs {s['epochs']}"
    parts += [budget, f"--seeds {','.join(map(str, s['seeds']))}", f"--image-size {s['image_size']}",
              f"--batch-size {s['batch_size']}", f"--recipe {s.get('recipe', 'default')}"]
    if s.get("flip"):
        parts.append("--flip")
    for model, kwargs in sorted((s.get("model_args") or {}).items()):
        for key, value in sorted(kwargs.items()):
            parts.append(f"--model-arg {model}:{key}={str(value).lower() if isinstance(value, bool) else value}")
    parts.append("--out runs/bench")
    lines, line = [], ""
    for part in parts:
        if line and len(line) + len(part) > 90:
            lines.append(line + " \\")
            line = "    "
        line += ("" if line.strip() == "" else " ") + part
    lines.append(line)
    return "```bash\n" + "\n".join(lines) + "\n```\n"


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


# ----- figures ---------------------------------------------------------------------------


def plot_mae_vs_minutes(results, save_to=None):
    """Validation MAE against training minutes, every model and seed (`plots.plot_lines`)."""
    from agekeras import plots

    lines = {m: [(r["minutes"], r["val_mae"]) for r in runs] for m, runs in results["curves"].items() if runs}
    if not lines:
        raise ValueError("no training curves in the results")
    lead = ", ".join(f"{t} min: {v['model'] or '—'}" for t, v in results["leader_at"].items())
    if any(len(runs) > 1 for runs in lines.values()):
        lead += " (one line per seed, the first seed's darker)"
    longest = max((max(x) for runs in lines.values() for x, _ in runs if len(x)), default=0.0)
    return plots.plot_lines(lines, "training minutes", "validation MAE (years)", f"ahead at {lead}",
                            marks=[m for m in MARK_MINUTES if m <= longest], save_to=save_to)


def _scatter(results, key, xlabel, logx, save_to):
    from agekeras import plots

    rows = [s for s in results["summary"] if is_number(s.get(key)) and is_number(s.get("mae"))]
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
