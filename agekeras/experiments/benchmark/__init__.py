"""One benchmark for every model: same data, split, size, augmentation and budget.

`python -m agekeras benchmark ...` (and notebook 06) drive this package:

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
- a killed benchmark resumes: a finished (model, seed) (its run state
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

| module | holds |
|---|---|
| `spec` | `BenchmarkSpec`, `make_spec`, the default models and protocol, `PAPER_HEADLINES`, `CPU_RECIPE`, `ABLATIONS` |
| `running` | `run_benchmark`; its steps `check_protocol`, `landmarks_available`, `skip_reason`, `train_config` |
| `results` | `benchmark_row` (one run), `aggregate` (over seeds), `collect`, `write_results`, `load_results` |
| `committed` | `publish` a benchmark into the repository's `benchmarks/results/`, `load_committed` (`REFERENCE`) |
| `report` | tables (`summary_table`, `runs_table`, `ablation_table`, ...), figures (`plot_mae_vs_minutes`, ...), `readme_markdown` |

Every public name is also here: `from agekeras.experiments import benchmark; benchmark.summary_table(results)`.

Example:

>>> from agekeras.experiments import benchmark
>>> spec = benchmark.make_spec(quick=True, out="runs/bench_quick")
>>> results = benchmark.run_benchmark(spec)  # doctest: +SKIP
>>> benchmark.summary_table(results)  # doctest: +SKIP
"""

from .committed import ABLATION_PREFIX, REFERENCE, ablation_name, lab_table, load_committed, publish, results_root
from .report import (ablation_command, ablation_findings, ablation_rows, ablation_table, equal_epochs_table, group_table, mean_std, plot_mae_by_group, plot_mae_vs_minutes,
                     plot_mae_vs_params, plot_mae_vs_speed, readme_markdown, reproduce_command, runs_table,
                     summary_table, write_figures)
from .results import (SHARED_MACHINE, aggregate, at_equal_epochs, benchmark_row, collect, free_models, leader_at,
                      load_results, run_cpu_others, run_curve, run_dir, write_results)
from .running import check_protocol, landmarks_available, recipe_settings, run_benchmark, skip_reason, train_config
from .spec import (ABLATIONS, CPU_RECIPE, CPU_RECIPE_MINUTES, DEFAULT_MODELS, DEFAULT_RECIPE, DEFAULT_SEEDS, DEFAULT_TIME_BUDGET,
                   MARK_MINUTES, METRICS, PAPER_HEADLINES, QUICK_BATCH_SIZE, QUICK_FACES, QUICK_IMAGE_SIZE,
                   QUICK_MODELS, RECIPES, BenchmarkSpec, ablation_models, make_spec)

__all__ = [
    "ABLATIONS", "ABLATION_PREFIX", "ablation_command", "ablation_name", "CPU_RECIPE", "CPU_RECIPE_MINUTES", "DEFAULT_MODELS", "DEFAULT_RECIPE", "DEFAULT_SEEDS", "DEFAULT_TIME_BUDGET",
    "MARK_MINUTES", "METRICS", "PAPER_HEADLINES", "QUICK_BATCH_SIZE", "QUICK_FACES", "QUICK_IMAGE_SIZE",
    "QUICK_MODELS", "RECIPES", "REFERENCE", "SHARED_MACHINE", "BenchmarkSpec", "ablation_findings",
    "ablation_models", "ablation_rows", "ablation_table", "aggregate", "at_equal_epochs",
    "benchmark_row", "check_protocol", "collect", "equal_epochs_table", "free_models", "group_table",
    "lab_table", "landmarks_available", "leader_at", "load_committed", "load_results", "make_spec", "mean_std", "plot_mae_by_group",
    "plot_mae_vs_minutes", "plot_mae_vs_params", "plot_mae_vs_speed", "publish", "readme_markdown", "recipe_settings",
    "reproduce_command", "results_root", "run_benchmark", "run_cpu_others", "run_curve", "run_dir", "runs_table",
    "skip_reason", "summary_table", "train_config", "write_figures", "write_results",
]
