"""Tiny runs for fast tests of evaluation, prediction and the command line.

- `utkface_folder(root, n)`: small noise "faces" saved losslessly under
  UTKFace names (`age_gender_race_datetime.png`), so that the input pipeline
  feeds a model exactly the saved pixels.
- `linear_model(size)`: a dict-output model whose outputs are fixed functions
  of the pixels: the age a linear read-out (left and right weigh differently,
  so a face and its mirror image get different ages), gender probabilities
  from another read-out.
- `make_run(run_dir, model, ...)`: a run directory around a model
  (config.json and a checkpoint), without training.
- `tiny_registered_model(monkeypatch)`: a small convolutional model registered
  for the duration of a test, so that `train` runs in seconds.
"""

import json
import pathlib

import keras
import numpy as np
from PIL import Image

from agekeras.training import TrainConfig

SIZE = 32


def utkface_folder(root, n=60, size=SIZE, seed=0):
    """A UTKFace-style folder of `n` noise images; returns {file name: (age, gender, race)}.

    Ages 1-80, both gender codes and all five race codes occur.
    """
    root = pathlib.Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = {}
    for i in range(n):
        age, gender, race = int(rng.integers(1, 81)), i % 2, (i // 2) % 5
        name = f"{age}_{gender}_{race}_2017011617{i:07d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / name)
        labels[name] = (age, gender, race)
    return labels


def read_face(path):
    """The pixels of a saved face as the model sees them: float32 (H, W, 3)."""
    return np.asarray(Image.open(path).convert("RGB"), dtype="float32")


def linear_model(size=SIZE, seed=0):
    """{"age": 40 + w . (x / 255 - 0.5), "gender_probs": softmax(V (x / 255 - 0.5))}, fixed random w, V."""
    image = keras.Input((size, size, 3), name="image")
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255, offset=-0.5)(image))
    age = keras.layers.Dense(1, kernel_initializer=keras.initializers.RandomNormal(stddev=1.0, seed=seed),
                             bias_initializer=keras.initializers.Constant(40.0))(x)
    gender = keras.layers.Dense(2, activation="softmax",
                                kernel_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=seed + 1))(x)
    return keras.Model(image, {"age": keras.layers.Reshape(())(age), "gender_probs": gender}, name="linear")


def make_run(run_dir, model, *, image_size=SIZE, age_min=1, num_classes=80, checkpoint="best.keras", **config):
    """A run directory holding `model` as `checkpoint` and a config.json made of `config` (TrainConfig fields)."""
    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True)
    config = TrainConfig(image_size=image_size, out=str(run_dir), **config)
    saved = {"train": config.to_json(), "age_min": age_min, "num_classes": num_classes}
    (run_dir / "config.json").write_text(json.dumps(saved))
    if model is not None:
        model.save(run_dir / checkpoint)
    return run_dir


TINY_MODEL = "tiny_test_dex"


def _tiny_builder(input_shape=(SIZE, SIZE, 3), num_classes=101, age_min=0):
    """A 4-filter convolution, global pooling and a DEX head."""
    from agekeras.models.baselines import age_model

    def features(x):
        return keras.layers.Conv2D(4, 3, strides=4, activation="relu")(x)

    return age_model(features, input_shape=input_shape, head="dex", num_classes=num_classes, age_min=age_min,
                     name=TINY_MODEL)


def tiny_registered_model(monkeypatch):
    """Register `TINY_MODEL` until the test ends (the registry is restored by `monkeypatch`)."""
    from agekeras.models import registry

    registry.available()  # every package model registered first
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register(TINY_MODEL, paper="tests")(_tiny_builder)
    return TINY_MODEL
