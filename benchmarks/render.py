"""Render every result table a student reads, and the benchmark figures, from `benchmarks/results/`.

    python benchmarks/render.py                 # rewrite the blocks of README.md and benchmarks/README.md,
                                                # and figures/benchmark/
    python benchmarks/render.py --check         # exit 1 when a block differs from what the results give
    python benchmarks/render.py --publish runs/bench [--name NAME]
                                                # first copy a finished benchmark folder into benchmarks/results/NAME

Each generated block sits between `<!-- results:NAME:start -->` and
`<!-- results:NAME:end -->`; the text between them is never edited by hand.
README.md's benchmark blocks come from the committed reference benchmark
(`agekeras.experiments.benchmark.REFERENCE`); the measured tables of both
READMEs from `benchmarks/results/lab/` and `benchmarks/results/quickstart.json`
(`lab_tables.FILES`). `tests/benchmarks/test_render.py`
runs `--check`.
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
FIGURES = ROOT / "figures" / "benchmark"


def _lab_tables():
    """benchmarks/lab_tables.py (the marker renderer and the lab blocks), loaded by path."""
    spec = importlib.util.spec_from_file_location("lab_tables", HERE / "lab_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lab_tables = _lab_tables()


def readme_blocks(results):
    """Block name -> function(lab results folder) -> markdown: README.md's
    blocks of the reference benchmark `results` (the argument is unused: the
    lab blocks take it)."""
    from agekeras.experiments import benchmark

    return {"benchmark": lambda _: benchmark.readme_markdown(results),
            "benchmark_command": lambda _: benchmark.reproduce_command(results),
            "benchmark_figures": lambda _: figure_table(results),
            "real_photos": lambda _: real_photos_table(results),
            "ablations": lambda _: ablations_markdown()}


def ablations_markdown(root=HERE / "results"):
    """README.md's section-2 tables: for each paper whose comparison is
    committed (`benchmarks/results/ablation_<paper>/`), its model beside the same
    model without each component, and the generated findings."""
    from agekeras.experiments import benchmark

    names = {model: paper for paper, model in KEY_FIGURES}
    parts, missing = [], []
    for paper, spec in benchmark.ABLATIONS.items():
        results = benchmark.load_committed(benchmark.ablation_name(paper), root=root, quiet=True)
        if results is None:
            missing.append(paper)
            continue
        s = results["settings"]
        parts.append(f"**{names[spec['model']]}** ({s.get('data_name', s['dataset'])}, {s['image_size']} px, {s['epochs']} epochs, "
                     f"seeds {', '.join(str(x) for x in s['seeds'])}; MAE with flip, difference = without minus with):\n\n"
                     + benchmark.ablation_table(results, paper).to_markdown() + "\n\n"
                     + "\n".join(f"- {line}" for line in benchmark.ablation_findings(results, paper)))
    if missing:
        parts.append("The other papers' comparisons train with " + ", ".join(f"`--ablation {p}`" for p in missing) + ".")
    return "\n\n".join(parts) + "\n"


#: The FG-NET metrics file of a reference run: `evaluate --run RUN --dataset fgnet --split all --align utkface --flip`.
FGNET_METRICS = "metrics_fgnet_utkface_flip.json"


def _coverage(metrics, level="0.9"):
    cover = (metrics.get("interval") or {}).get("coverage", {}).get(level)
    return "—" if cover is None else f"{100 * cover['coverage']:.0f} % (±{cover['width'] / 2:.1f} y)"


def real_photos_table(results, root=HERE / "results"):
    """README.md's table of the reference runs on photos unlike their training
    faces: each model's UTKFace test split and FG-NET (every photo, detected
    and aligned like the training crops), MAE and mean error for colour and
    greyscale photos, and how often the stated 90 % interval holds the true age."""
    import json

    from agekeras.experiments import benchmark

    runs = benchmark.results_root(root) / benchmark.REFERENCE
    rows = []
    for row in sorted(results["runs"], key=lambda r: (r["model"], r["seed"])):
        folder = benchmark.run_dir(runs, row["model"], row["seed"])
        if row["seed"] != results["settings"]["seeds"][0] or not (folder / FGNET_METRICS).is_file():
            continue
        utk = json.loads((folder / "metrics_flip.json").read_text())
        fg = json.loads((folder / FGNET_METRICS).read_text())
        by = fg.get("by_colour", {})

        def part(name):
            m = by.get(name)
            return "—" if m is None else f"{m['mae']:.2f} ({m['mean_error']:+.1f})"

        rows.append(f"| {row['model']} | {utk['mae']:.2f} | {_coverage(utk)} | {fg['mae']:.2f} | {part('colour')} | "
                    f"{part('greyscale')} | {_coverage(fg)} | {fg['n']:,} |")
    if not rows:
        return "No reference run has been scored on FG-NET yet.\n"
    s = results["settings"]
    head = ("| model | UTKFace test MAE | its 90 % interval holds | FG-NET MAE | colour MAE (mean error) | "
            "greyscale MAE (mean error) | its 90 % interval holds | FG-NET photos |\n|---|---|---|---|---|---|---|---|\n")
    return (f"The reference runs (trained on {s.get('data_name', s['dataset'])} at {s['image_size']} px for {s['epochs']} "
            f"epochs, seed {s['seeds'][0]}; flip at test time) on FG-NET's photos, each face detected and aligned like the training "
            f"crops (`evaluate --run RUN --dataset fgnet --split all --align utkface --flip`). The mean error is "
            f"predicted minus true age; the interval is the one `predict` states (`age_interval`, 90 %, its temperature "
            f"fitted on the validation faces), with its half-width in years.\n\n" + head + "\n".join(rows) + "\n")


#: The README's key figure per paper: (paper, model of the benchmark).
KEY_FIGURES = (("VoVNetv4", "vovnetv4"), ("AL-RoR", "al_ror34"), ("DAA", "daa_resnet18"), ("DHAA", "dhaa"),
               ("GRA_Net", "gra_net"))


def figure_table(results):
    """The README's table of key figures: the benchmark's MAE by age, and each
    paper model's predicted-vs-true plot where the benchmark holds its run."""
    ran = {r["model"] for r in results["runs"]}
    rel = FIGURES.relative_to(ROOT).as_posix()
    rows = [f"| all models | ![MAE by true age bracket]({rel}/mae_by_age.png) |"]
    for paper, model in KEY_FIGURES:
        if model in ran:
            rows.append(f"| {paper} | ![{model}: predicted vs true age]({rel}/{model}_pred_vs_true.png) |")
    return "| paper | key figure (each titled with model, data, size and budget) |\n|---|---|\n" + "\n".join(rows) + "\n"


def files_and_blocks(results):
    """{file: {block name: function}} that `main` renders: the lab blocks of
    both READMEs (`lab_tables.FILES`) and README.md's benchmark blocks."""
    files = {path: dict(blocks) for path, blocks in lab_tables.FILES.items()}
    files[ROOT / "README.md"] = {**files.get(ROOT / "README.md", {}), **readme_blocks(results)}
    return files


def render_figures(results, folder=FIGURES, root=HERE / "results"):
    """figures/benchmark/<name>.png (the benchmark's figures) and
    figures/benchmark/<model>_pred_vs_true.png (each model's first seed) from
    the results; returns name -> path of those drawn."""
    import csv

    from agekeras import metrics, plots
    from agekeras.experiments import benchmark

    drawn = benchmark.write_figures(results, folder)
    s = results["settings"]
    runs = benchmark.results_root(root) / benchmark.REFERENCE
    for row in sorted(results["runs"], key=lambda r: (r["model"], r["seed"])):
        if row["model"] + "_pred_vs_true" in drawn:
            continue
        path = benchmark.run_dir(runs, row["model"], row["seed"]) / "predictions.csv"
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        true = [float(r["age"]) for r in rows]
        pred = [float(r["predicted"]) for r in rows]
        fig = plots.plot_predictions(true, pred, mae=metrics.mae(true, pred))
        title = (f"{row['model']}, {s.get('data_name', s['dataset'])} test split (seed {row['seed']}), {s['image_size']} px, "
                 f"{row['epochs']} epochs, {s.get('recipe', 'default')} recipe")
        name = row["model"] + "_pred_vs_true"
        plots.with_title(fig, title, save_to=folder / f"{name}.png")
        drawn[name] = folder / f"{name}.png"
    return drawn


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 when a block would change")
    p.add_argument("--publish", metavar="BENCHMARK_DIR", help="a finished benchmark folder to copy in first")
    p.add_argument("--name", default=None, help="its name under benchmarks/results/ (default: the reference)")
    p.add_argument("--data-name", default=None, help="with --publish: what the data is, e.g. 'UTKFace, 7,811 faces'")
    p.add_argument("--data-label", default=None, help="with --publish: the data's folder instead of its path")
    p.add_argument("--no-figures", action="store_true", help="leave figures/benchmark/ as it is")
    a = p.parse_args(argv)
    from agekeras.experiments import benchmark

    if a.publish:
        target = benchmark.publish(a.publish, a.name or benchmark.REFERENCE, root=HERE / "results",
                                   data_label=a.data_label, data_name=a.data_name)
        print(f"render: published {a.publish} as {target.relative_to(ROOT)}")
    results = benchmark.load_committed(root=HERE / "results")
    if results is None:
        print(f"render: benchmarks/results/{benchmark.REFERENCE}/ is missing", file=sys.stderr)
        return 2
    status = lab_tables.main(["--check"] if a.check else [], files=files_and_blocks(results))
    if status or a.check or a.no_figures:
        return status
    for path in render_figures(results).values():
        print(f"render: drew {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
