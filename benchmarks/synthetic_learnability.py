"""Is age learnable from the `synthetic` faces, but not trivially?

Generates a seeded train set (4,000 faces) and a disjoint test set (1,000
faces, another seed) at 64 px, trains a small CNN (4 conv blocks 32-64-128-128,
global average pooling, Dense(1) on age / 100, MAE loss, Adam with a cosine
learning rate decayed over the time budget or the epochs), and prints one JSON
object: the CNN's test MAE in years, the MAE of always predicting the training
median, their ratio, MAE by age band, and the generator's speed in faces/s at
64 and 128 px (one process).

The target is a ratio well below 0.6 with an MAE that is not near zero
(roughly 5-12 years after a few minutes on a CPU).

Usage:

```
python benchmarks/synthetic_learnability.py
python benchmarks/synthetic_learnability.py --epochs 30
```
"""

import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from agekeras.datasets.synthetic import generate

AGE_BANDS = ((0, 12), (13, 25), (26, 45), (46, 65), (66, 100))


class CosineProgress(keras.callbacks.Callback):
    """Cosine learning-rate decay over a time budget or a number of epochs.

    Progress is `elapsed / seconds` with a time budget, else the fraction of
    `epochs` done; the learning rate is `base_lr * (1 + cos(pi * progress)) / 2`.
    With a time budget, training stops when another epoch would overrun it.

    Args:
        base_lr: learning rate at the start.
        seconds: time budget, or None to use `epochs`.
        epochs: number of epochs when `seconds` is None.
        steps_per_epoch: batches per epoch.
    """

    def __init__(self, base_lr, seconds=None, epochs=None, steps_per_epoch=1):
        super().__init__()
        self.base_lr, self.seconds, self.epochs = base_lr, seconds, epochs
        self.steps_per_epoch = steps_per_epoch

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()
        self.epoch, self.epochs_run = 0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.seconds is None:
            progress = (self.epoch + batch / self.steps_per_epoch) / self.epochs
        else:
            progress = (time.perf_counter() - self.start) / self.seconds
        lr = self.base_lr * 0.5 * (1.0 + np.cos(np.pi * min(progress, 1.0)))
        self.model.optimizer.learning_rate.assign(lr)

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_run = epoch + 1
        if self.seconds is not None:
            elapsed = time.perf_counter() - self.start
            if elapsed * (epoch + 2) / (epoch + 1) > self.seconds:
                self.model.stop_training = True


def build_cnn(image_size):
    """4 conv blocks (32-64-128-128) + global average pooling + Dense(1).

    Args:
        image_size: side of the square RGB input.

    Returns:
        An uncompiled `keras.Model` mapping uint8-range images to age / 100.
    """
    inputs = keras.Input((image_size, image_size, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    for filters in (32, 64, 128, 128):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1)(x)
    return keras.Model(inputs, outputs, name="age_cnn")


def timed_generate(n, image_size, seed):
    start = time.perf_counter()
    data = generate(n, image_size=image_size, seed=seed)
    return data, n / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--time-budget-s", type=float, default=180.0)
    parser.add_argument("--epochs", type=int, default=None, help="exact number of epochs (no time budget)")
    args = parser.parse_args()

    _, speed_128 = timed_generate(500, 128, seed=args.seed + 100)
    train, speed = timed_generate(args.n_train, args.image_size, seed=args.seed)
    test, _ = timed_generate(args.n_test, args.image_size, seed=args.seed + 1)

    keras.utils.set_random_seed(args.seed)
    model = build_cnn(args.image_size)
    model.compile(optimizer=keras.optimizers.Adam(args.lr), loss="mae")
    steps_per_epoch = int(np.ceil(args.n_train / args.batch_size))
    schedule = CosineProgress(
        args.lr,
        seconds=None if args.epochs else args.time_budget_s,
        epochs=args.epochs,
        steps_per_epoch=steps_per_epoch,
    )
    start = time.perf_counter()
    model.fit(
        train["images"].astype("float32"),
        train["age"] / 100.0,
        batch_size=args.batch_size,
        epochs=args.epochs or 10_000,
        callbacks=[schedule],
        verbose=0,
    )
    train_s = time.perf_counter() - start

    pred = 100.0 * model.predict(test["images"].astype("float32"), batch_size=256, verbose=0).reshape(-1)
    err = np.abs(pred - test["age"])
    median_err = np.abs(np.median(train["age"]) - test["age"])
    by_band = {}
    for lo, hi in AGE_BANDS:
        sel = (test["age"] >= lo) & (test["age"] <= hi)
        by_band[f"{lo}-{hi}"] = round(float(err[sel].mean()), 2)
    result = {
        "benchmark": "synthetic_learnability",
        "image_size": args.image_size,
        "n_train": args.n_train,
        "n_test": args.n_test,
        "epochs": schedule.epochs_run,
        "train_seconds": round(train_s, 1),
        "cnn_test_mae": round(float(err.mean()), 2),
        "median_predictor_mae": round(float(median_err.mean()), 2),
        "mae_ratio": round(float(err.mean() / median_err.mean()), 3),
        "cnn_test_mae_by_age": by_band,
        "generation_faces_per_s": {
            str(args.image_size): round(speed, 1),
            "128": round(speed_128, 1),
        },
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
