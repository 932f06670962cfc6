"""Training throughput of every registered model, against the machine's matmul speed.

For each model at 64 px (random data, so the input pipeline is not measured):
train images/s, forward GFLOPs per image (counted by the TensorFlow profiler
on the traced graph), the achieved training GFLOP/s (3 x forward FLOPs per
image: forward + two backward matmuls per layer), and the ratio to this
machine's float32 matmul GFLOP/s measured in the same run.

    python benchmarks/train_throughput.py [--models resnet18_dex ...] [--image-size 64]

Prints one JSON object. Target: ResNet-18 baseline ratio >= 0.5.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf

import agekeras
from agekeras.models import compile_args, make_targets


def matmul_gflops(n=2048, repeats=10):
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    f = tf.function(lambda: tf.matmul(a, b))
    f().numpy()
    t = time.perf_counter()
    for _ in range(repeats):
        r = f()
    r.numpy()
    return 2 * n**3 * repeats / (time.perf_counter() - t) / 1e9


def forward_flops(model, input_shape):
    spec = tf.TensorSpec((1,) + tuple(input_shape), tf.float32)
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    info = tf.compat.v1.profiler.profile(graph=concrete.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=opts)
    return info.total_float_ops


def measure(name, image_size, batch_size, seconds):
    age_min, num_classes = 0, 101
    entry = agekeras.models.entry(name)
    model = entry.builder(input_shape=(image_size, image_size, 3), num_classes=num_classes, age_min=age_min)
    if entry.needs_landmarks:
        return {"model": name, "skipped": "needs landmarks input"}
    args = compile_args(model, head_is_regression=name.endswith("_regression"), overrides=entry.losses, loss_weights=entry.loss_weights)
    model.compile(optimizer="adam", **args)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch_size, image_size, image_size, 3)).astype("float32")
    y = make_targets(model.output.keys(), age_min, num_classes)({"age": rng.uniform(0, 100, batch_size), "gender": np.zeros(batch_size)})
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)  # trace + warm up
    steps = 0
    t = time.perf_counter()
    while time.perf_counter() - t < seconds:
        model.fit(data, steps_per_epoch=5, epochs=1, verbose=0)
        steps += 5
    dt = time.perf_counter() - t
    img_s = steps * batch_size / dt
    flops = forward_flops(model, (image_size, image_size, 3))
    return {
        "model": name,
        "params": int(model.count_params()),
        "train_img_per_s": round(img_s, 1),
        "forward_gflops_per_img": round(flops / 1e9, 4),
        "train_gflop_per_s": round(3 * flops * img_s / 1e9, 2),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="*", default=None, help="default: every registered model")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seconds", type=float, default=15.0, help="timed seconds per model")
    a = p.parse_args()
    peak = matmul_gflops()
    rows = []
    for name in a.models or agekeras.models.available():
        try:
            r = measure(name, a.image_size, a.batch_size, a.seconds)
        except Exception as e:  # report, keep measuring the others
            r = {"model": name, "error": f"{type(e).__name__}: {e}"[:300]}
        if "train_gflop_per_s" in r:
            r["ratio_to_matmul"] = round(r["train_gflop_per_s"] / peak, 3)
        rows.append(r)
        keras.backend.clear_session()
    print(json.dumps({
        "benchmark": "train_throughput",
        "image_size": a.image_size,
        "batch_size": a.batch_size,
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "matmul_f32_gflop_per_s": round(peak, 2),
        "models": rows,
        "target": "resnet18_dex ratio_to_matmul >= 0.5",
    }, indent=1))


if __name__ == "__main__":
    main()
