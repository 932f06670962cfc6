"""Training throughput of every registered model, against the machine's matmul speed.

For each model at 64 px, on random tensors already in memory (so the input
pipeline is not measured):

- train img/s: `model.fit` steps (forward, backward, optimizer update) after
  a warm-up that traces the step, timed in `--windows` windows of about
  `--seconds` each; the median window is reported with the slowest and
  fastest (one window alone varies by up to +-30% between runs);
- training FLOPs per image, COUNTED: the TensorFlow profiler
  (`tf.compat.v1.profiler` with `float_operation()`) on the traced graph of
  one forward + backward pass (`tf.GradientTape` gradients of the model's
  outputs w.r.t. every trainable weight) at the benchmark batch size, divided
  by the batch size. The forward pass alone is counted the same way. The
  optimizer update (a few FLOPs per weight) is not counted;
- the machine's float32 matmul peak, measured in the same process (a 2048 x
  2048 matmul repeated), and the ratio achieved training FLOP/s / peak.

    python benchmarks/train_throughput.py [--models resnet18_dex ...] [--image-size 64] [--batch-size 64]
        [--mixed-precision] [--windows 3] [--model-arg max_pool=false] [--jit-compile auto|true|false]

Prints one JSON object. DHAA gets random landmarks at plausible positions.
Target: ratio >= 0.5 per model.
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
from agekeras.cli import _kv
from agekeras.models import make_targets


def matmul_gflops(n=2048, seconds=3.0):
    """Float32 matmul GFLOP/s of this process (all threads), best of a few timed repeats."""
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    f = tf.function(lambda: tf.matmul(a, b))
    f().numpy()
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t = time.perf_counter()
        for _ in range(3):
            r = f()
        r.numpy()
        best = max(best, 2 * n**3 * 3 / (time.perf_counter() - t) / 1e9)
    return best


def _profile_flops(fn, specs):
    graph = tf.function(fn, autograph=False).get_concrete_function(*specs).graph
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    info = tf.compat.v1.profiler.profile(graph=graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=opts)
    return info.total_float_ops


def counted_flops(model, x, batch_size):
    """(forward FLOPs, forward + backward FLOPs) per image, counted on the traced graphs at `batch_size`."""
    if isinstance(x, dict):
        specs = [{k: tf.TensorSpec((batch_size,) + v.shape[1:], tf.float32) for k, v in x.items()}]
    else:
        specs = [tf.TensorSpec((batch_size,) + x.shape[1:], tf.float32)]

    def forward(inputs):
        return model(inputs, training=True)

    def forward_backward(inputs):
        with tf.GradientTape() as tape:
            out = model(inputs, training=True)
            loss = tf.add_n([tf.reduce_sum(tf.cast(v, tf.float32)) for v in tf.nest.flatten(out)])
        return tape.gradient(loss, model.trainable_variables)

    return _profile_flops(forward, specs) / batch_size, _profile_flops(forward_backward, specs) / batch_size


def _inputs(entry, rng, batch_size, image_size):
    x = rng.uniform(0, 255, (batch_size, image_size, image_size, 3)).astype("float32")
    if not entry.needs_landmarks:
        return x
    # eyes, nose tip, mouth corners of a centred face, jittered by 2 px
    base = np.array([[0.35, 0.4], [0.65, 0.4], [0.5, 0.55], [0.38, 0.72], [0.62, 0.72]], "float32") * image_size
    marks = base[None] + rng.normal(0, 2, (batch_size, 5, 2)).astype("float32")
    return {"image": x, "landmarks": marks}


def measure(name, image_size, batch_size, seconds, model_kwargs=None, windows=3, jit_compile="auto"):
    age_min, num_classes = 0, 101
    entry = agekeras.models.entry(name)
    model = entry.builder(input_shape=(image_size, image_size, 3), num_classes=num_classes, age_min=age_min,
                          **(model_kwargs or {}))
    model.compile(optimizer="adam", jit_compile=jit_compile, **entry.compile_args(model))
    rng = np.random.default_rng(0)
    x = _inputs(entry, rng, batch_size, image_size)
    labels = {"age": rng.uniform(1, 90, batch_size).astype("float32"), "gender": np.zeros(batch_size, "int32")}
    extra = (lambda lab: entry.targets(lab, **(model_kwargs or {}))) if entry.targets else None
    y = make_targets(model.output.keys(), age_min, num_classes, extra)(labels)
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    t = time.perf_counter()
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)  # trace + warm up
    t = time.perf_counter()
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)
    step = (time.perf_counter() - t) / 2
    steps = max(3, int(seconds / max(step, 1e-3)))
    rates = []
    for _ in range(max(1, windows)):
        t = time.perf_counter()
        model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
        rates.append(steps * batch_size / (time.perf_counter() - t))
    img_s = float(np.median(rates))
    fwd, train = counted_flops(model, x, batch_size)
    return {
        "model": name,
        "params": int(model.count_params()),
        "batch_size": batch_size,
        "jit_compile": bool(model.jit_compile),  # what "auto" resolved to
        "timed_steps": steps,
        "windows": len(rates),
        "train_img_per_s": round(img_s, 1),
        "train_img_per_s_range": [round(min(rates), 1), round(max(rates), 1)],
        "forward_gflops_per_img": round(fwd / 1e9, 4),
        "train_gflops_per_img": round(train / 1e9, 4),
        "train_gflop_per_s": round(train * img_s / 1e9, 2),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="*", default=None, help="default: every registered model")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seconds", type=float, default=8.0, help="timed seconds per window (after the warm-up)")
    p.add_argument("--windows", type=int, default=3, help="timed windows per model; the median is reported")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="extra model builder argument (JSON value), as `train --model-arg`; repeatable")
    p.add_argument("--mixed-precision", action="store_true",
                   help="train in mixed precision (bfloat16 on a CPU, float16 on a GPU), as `train --mixed-precision`")
    p.add_argument("--jit-compile", choices=["auto", "true", "false"], default="auto",
                   help="XLA compilation of the train step (Keras' compile(jit_compile=...); default auto, as `train`)")
    a = p.parse_args(argv)
    jit = {"auto": "auto", "true": True, "false": False}[a.jit_compile]
    policy = "float32"
    if a.mixed_precision:
        from agekeras.runtime import mixed_precision_policy

        policy = mixed_precision_policy()
    model_kwargs = _kv(a.model_arg)
    peak = matmul_gflops()
    rows = []
    for name in a.models or agekeras.models.available():
        # set before every model: `clear_session` below resets the global policy to float32
        keras.mixed_precision.set_global_policy(policy)
        try:
            r = measure(name, a.image_size, a.batch_size, a.seconds, model_kwargs, a.windows, jit)
        except Exception as e:  # report, keep measuring the others
            r = {"model": name, "error": f"{type(e).__name__}: {e}"[:300]}
        if "train_gflop_per_s" in r:
            r["ratio_to_matmul"] = round(r["train_gflop_per_s"] / peak, 3)
        rows.append(r)
        print(json.dumps(r), flush=True, file=__import__("sys").stderr)
        keras.backend.clear_session()
    print(json.dumps({
        "benchmark": "train_throughput",
        "image_size": a.image_size,
        "batch_size": a.batch_size,
        "cpu_count": os.cpu_count(),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "matmul_f32_gflop_per_s": round(peak, 2),
        "dtype_policy": policy,
        "model_kwargs": model_kwargs,
        "windows": a.windows,
        "flops": "counted by the TF profiler on the traced forward + backward graph, per image",
        "models": rows,
        "target": "ratio_to_matmul >= 0.5",
    }, indent=1))


if __name__ == "__main__":
    main()
