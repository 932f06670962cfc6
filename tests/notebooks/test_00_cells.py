"""Notebook 00's own wiring cell (tagged `wire-model`): the model it builds is the registered
`resnet18_dex`, and `train(config, model=model)` trains that very object."""

import json

import keras
import numpy as np

import agekeras
from agekeras import datasets
from agekeras.ages import age_prior
from agekeras.evaluation import load_splits
from agekeras.training import TrainConfig, architecture, train

from .cells import run_tagged

SIZE, FACES = 32, 60


def _wired():
    """Run the notebook's wiring cell on a few synthetic faces, split as the notebook splits them."""
    full = datasets.load("synthetic", n=FACES)
    splits = datasets.split(full, "random", seed=0, val_fraction=0.1)
    return run_tagged("00", "wire-model", {"keras": keras, "np": np, "IMAGE_SIZE": SIZE, "full": full,
                                           "splits": splits})


def test_the_wired_model_is_the_registered_resnet18_dex_and_train_trains_that_object(tmp_path):
    ns = _wired()
    model = ns["model"]
    registered = agekeras.models.get("resnet18_dex", input_shape=(SIZE, SIZE, 3), num_classes=ns["NUM_CLASSES"],
                                     age_min=ns["AGE_MIN"], age_prior=ns["PRIOR"])
    assert architecture(model)["fingerprint"] == architecture(registered)["fingerprint"]

    config = TrainConfig(model="resnet18_dex", dataset="synthetic", dataset_kwargs={"n": FACES}, image_size=SIZE,
                         epochs=1, batch_size=16, seed=0, out=str(tmp_path / "run"), verbose=0)
    # the prior the cell starts the head from is the one of the training faces `train` uses
    splits, full = load_splits(config)
    lo, hi = full.age_range()
    np.testing.assert_allclose(ns["PRIOR"], age_prior(splits["train"].age, lo, hi - lo + 1), rtol=1e-6)
    assert (ns["AGE_MIN"], ns["NUM_CLASSES"]) == (lo, hi - lo + 1)

    before = [w.numpy().copy() for w in model.trainable_weights]
    result = train(config, model=model)
    assert np.isfinite(result["mae"])
    changed = [not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    assert all(changed[-2:]) and sum(changed) > len(changed) // 2  # the head and most of the trunk trained
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["model"]
    assert saved["custom"] is True
    assert saved["fingerprint"] == architecture(model)["fingerprint"]
    assert saved["name"] == model.name == "resnet18_dex"
