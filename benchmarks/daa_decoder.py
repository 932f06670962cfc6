"""DAA AgeDecoder: factorised vs naive, at 128 px with ResNet-18 features.

The naive path (`DeltaAgeAdaIN` then the decoder conv on every age's map)
materialises (batch, 100, 8, 8, 512) floats and runs the 3x3 conv 100 times;
the factorised `AgeDecoder` runs three convolutions and combines them per
age. This script checks both give the same outputs and times them:

1. features: the adapted ResNet-18 FaceEncoder (`agekeras.models.daa`,
   random init) on random 128 x 128 images -> (batch, 8, 8, 512);
2. equality: deltas and ages of both paths (inference and training-mode BN),
   same decoder weights, max |difference| must be <= 1e-4;
3. time: one compiled (tf.function) forward + backward step of the decoder
   and the binary code mapping (gradients to the decoder and mapping
   weights and to the features, i.e. what training back-propagates into
   the encoder), median over repeats, per path;
4. peak memory: each path runs again in a fresh subprocess and reports
   `resource.getrusage(RUSAGE_SELF).ru_maxrss` (peak resident set size of
   the process, KiB on Linux) after the steps, and the same number taken
   just before the first step (TensorFlow, the encoder features and the
   weights already loaded), so `peak_step_mib` = peak - before is what the
   step itself added. (`tracemalloc` does not see TensorFlow's allocator,
   and `tf.config.experimental.get_memory_info` works on GPUs only.)

    python benchmarks/daa_decoder.py [--batch 16] [--ages 100] [--repeats 5]

Prints one JSON object. Target: outputs equal within 1e-4 and
`speedup` (naive time / factorised time) >= 10.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def _setup(batch, ages, image_size, seed=0):
    import keras

    from agekeras.layers import AgeDecoder, BinaryCodeMapping
    from agekeras.models.daa import face_resnet18

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (batch, image_size, image_size, 3)).astype("float32")
    encoder = face_resnet18((image_size, image_size, 3))
    features = keras.ops.convert_to_numpy(encoder(images, training=False))
    mapping = BinaryCodeMapping(num_ages=ages)
    decoder = AgeDecoder(64)
    s, t, a = mapping(features)
    decoder([features, s, t, a])  # build
    return features, mapping, decoder


def _paths(mapping, decoder):
    from agekeras.layers import DeltaAgeAdaIN

    adain = DeltaAgeAdaIN(epsilon=decoder.epsilon)

    def factorised(features, training):
        s, t, a = mapping(features)
        return decoder([features, s, t, a], training=training)

    def naive(features, training):
        s, t, a = mapping(features)
        return decoder([adain([features, s, t]), a], training=training)

    return {"factorised": factorised, "naive": naive}


def _step_fn(fn, mapping, decoder):
    import tensorflow as tf

    variables = [w.value for w in mapping.trainable_weights + decoder.trainable_weights]

    @tf.function
    def step(features):
        with tf.GradientTape() as tape:
            tape.watch(features)
            deltas, age = fn(features, True)
            loss = tf.reduce_mean(tf.square(age - 30.0)) + 1e-3 * tf.reduce_mean(tf.square(deltas))
        grads = tape.gradient(loss, variables + [features])
        return loss, grads

    return step


def _time_path(name, batch, ages, image_size, repeats):
    import tensorflow as tf

    features, mapping, decoder = _setup(batch, ages, image_size)
    step = _step_fn(_paths(mapping, decoder)[name], mapping, decoder)
    f = tf.constant(features)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    loss, _ = step(f)  # trace + first run
    float(loss)
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        loss, grads = step(f)
        float(loss)
        [g.numpy() for g in grads[-1:]]
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "path": name,
        "median_s": float(np.median(times)),
        "min_s": float(np.min(times)),
        "first_call_s": round(first, 3),
        "peak_rss_mib": round(peak / 1024, 1),
        "rss_before_step_mib": round(before / 1024, 1),
        "peak_step_mib": round((peak - before) / 1024, 1),
    }


def _equality(batch, ages, image_size):
    features, mapping, decoder = _setup(batch, ages, image_size)
    paths = _paths(mapping, decoder)
    out = {}
    for training in (False, True):
        fd, fa = (np.asarray(v) for v in paths["factorised"](features, training))
        nd, na = (np.asarray(v) for v in paths["naive"](features, training))
        key = "training" if training else "inference"
        out[key] = {
            "max_abs_diff_deltas": float(np.abs(fd - nd).max()),
            "max_abs_diff_age": float(np.abs(fa - na).max()),
            "max_abs_delta": float(np.abs(nd).max()),
        }
    out["equal_within_1e-4"] = all(
        v["max_abs_diff_deltas"] <= 1e-4 and v["max_abs_diff_age"] <= 1e-4 for v in out.values()
    )
    out["feature_shape"] = list(features.shape)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--ages", type=int, default=100)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--worker", choices=["factorised", "naive"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(_time_path(args.worker, args.batch, args.ages, args.image_size, args.repeats)))
        return
    result = {
        "batch": args.batch,
        "ages": args.ages,
        "image_size": args.image_size,
        "memory_measure": "ru_maxrss of a fresh subprocess per path (peak RSS, CPU)",
        "equality": _equality(min(args.batch, 4), args.ages, args.image_size),
    }
    runs = {}
    for name in ("factorised", "naive"):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, "--batch", str(args.batch),
               "--ages", str(args.ages), "--image-size", str(args.image_size), "--repeats", str(args.repeats)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        runs[name] = json.loads(done.stdout.strip().splitlines()[-1])
    result["factorised"], result["naive"] = runs["factorised"], runs["naive"]
    result["speedup"] = round(runs["naive"]["median_s"] / runs["factorised"]["median_s"], 1)
    result["memory_ratio"] = round(
        runs["naive"]["peak_step_mib"] / max(runs["factorised"]["peak_step_mib"], 1e-3), 1
    )
    result["target_met"] = bool(result["equality"]["equal_within_1e-4"] and result["speedup"] >= 10)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
