"""The ResNet-18 DEX baseline on UTKFace: 64 px, a seeded 80/20 split, a 15-minute training budget.

    python benchmarks/baseline_utkface.py [--data-dir <data root>/utkface]
        [--minutes 15] [--out runs/baseline_utkface]

`--data-dir` defaults to the data root's `utkface` folder
(`agekeras.datasets.default_data_dir("utkface")`: `$AGEKERAS_DATA_ROOT/utkface`,
or `~/agekeras_data/utkface`).

Split: `agekeras.datasets.split(ds, "random", seed=0)` (80% train, 20% test),
10% of the training part held out for validation (model selection). Prints
one JSON object: test MAE, RMSE, CA(3/5/7), the median predictor's MAE, the
split sizes and the training time. The run directory can be resumed.
"""

import argparse
import json
import os
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=None, help="UTKFace folder (default: <data root>/utkface)")
    p.add_argument("--minutes", type=float, default=15.0)
    p.add_argument("--model", default="resnet18_dex")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(REPO / "runs" / "baseline_utkface"))
    a = p.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if a.data_dir is None:
        from agekeras.datasets import default_data_dir

        a.data_dir = str(default_data_dir("utkface"))
    if not os.path.isdir(a.data_dir):
        sys.exit(f"No UTKFace folder at {a.data_dir}; pass --data-dir or set AGEKERAS_DATA_ROOT")

    from agekeras.training import TrainConfig, train

    config = TrainConfig(
        model=a.model, dataset="utkface", data_dir=a.data_dir, protocol="random", seed=a.seed,
        epochs=None, time_budget=a.minutes, batch_size=a.batch_size, image_size=a.image_size,
        lr=a.lr, optimizer="adam", out=a.out, verbose=2,
    )
    t = time.time()
    result = train(config)
    saved = json.loads((pathlib.Path(a.out) / "config.json").read_text())
    state = json.loads((pathlib.Path(a.out) / "state.json").read_text())
    print(json.dumps({
        "benchmark": "baseline_utkface",
        "model": a.model,
        "image_size": a.image_size,
        "split": f"random 80/20, seed {a.seed}; val 10% of train",
        "split_sizes": saved["splits"],
        "skipped": saved["dataset"]["skipped"],
        "train_minutes": round(state["train_seconds"] / 60, 2),
        "epochs": state["epochs_done"],
        "wall_minutes": round((time.time() - t) / 60, 2),
        "test_mae": round(result["mae"], 3),
        "test_rmse": round(result["rmse"], 3),
        "test_ca3": round(result["ca3"], 4),
        "test_ca5": round(result["ca5"], 4),
        "test_ca7": round(result["ca7"], 4),
        "median_predictor_mae": round(result["median_predictor_mae"], 3),
    }, indent=1))


if __name__ == "__main__":
    main()
