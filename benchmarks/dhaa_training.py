"""DHAA training speed and peak memory on random data, one setting per process.

Builds `dhaa` (nine ResNet-18 sub-networks), compiles it as the registry
does, runs one warm-up step and then `--steps` timed `train_on_batch` steps
(`agekeras.experiments.dhaa.training_speed`). Peak memory is the process's
`ru_maxrss` (Linux), so each setting runs in a fresh subprocess.

    python -m benchmarks.dhaa_training [--settings 64:32 256:8] [--steps 3]

`SIZE:BATCH` pairs; `--width` / `--feature-dim` shrink the sub-networks.
Prints one JSON object.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _worker(size, batch, steps, width, feature_dim):
    from agekeras.experiments import dhaa

    result = dhaa.training_speed((size, size, 3), batch_size=batch, steps=steps, width=width, feature_dim=feature_dim)
    print(json.dumps({"image_size": size, "batch_size": batch, "width": width, "feature_dim": feature_dim,
                      "img_per_s": round(result["img_per_s"], 2), "params": result["params"],
                      "peak_rss_mib": None if result["peak_rss_mib"] is None else round(result["peak_rss_mib"], 1)}))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--settings", nargs="*", default=["64:32", "256:8"], help="SIZE:BATCH pairs")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--feature-dim", type=int, default=128)
    p.add_argument("--worker", nargs=2, type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        _worker(*args.worker, args.steps, args.width, args.feature_dim)
        return
    results = []
    for setting in args.settings:
        size, batch = (int(v) for v in setting.split(":"))
        cmd = [sys.executable, "-m", "benchmarks.dhaa_training", "--worker", str(size), str(batch),
               "--steps", str(args.steps),
               "--width", str(args.width), "--feature-dim", str(args.feature_dim)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    print(json.dumps({"model": "dhaa", "steps": args.steps, "results": results}, indent=1))


if __name__ == "__main__":
    main()
