"""Notebook 05 (GRA_Net): the cell that wires the model is the model that trains.

The test runs the notebook's own `wire-model` cell (it builds GRA_Net from
`agekeras.layers` and checks it against the registered `gra_net`), then
trains the model object it built for one tiny epoch on synthetic faces with
`train(TrainConfig(...), model=model)`, and checks that this very object was
trained and that the run recorded its architecture.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import agekeras
from agekeras import datasets, layers
from agekeras.training import TrainConfig, architecture, train
from tests.notebooks.cells import run_tagged, tagged_sources

SIZE, WIDTH = 32, 4  # GRA_Net's smallest input, a very narrow network


def _wired(age_min, age_max):
    namespace = {"keras": keras, "layers": layers, "agekeras": agekeras, "np": np,
                 "IMAGE_SIZE": SIZE, "BASE_FILTERS": WIDTH, "AGE_MIN": age_min, "AGE_MAX": age_max}
    return run_tagged("05", "wire-model", namespace)


def test_the_notebook_has_one_wiring_cell():
    assert len(tagged_sources("05", "wire-model")) == 1


@pytest.mark.slow
def test_the_wired_model_is_the_model_that_trains(tmp_path):
    faces = datasets.load("synthetic", n=48, image_size=SIZE, seed=0)
    age_min, age_max = faces.age_range()
    ns = _wired(age_min, age_max)
    model = ns["model"]
    assert model.name == "gra_net" and set(model.output) == {"age", "group_probs", "gender_probs"}
    assert model.count_params() == agekeras.models.get(
        "gra_net", input_shape=(SIZE, SIZE, 3), age_min=age_min, num_classes=age_max - age_min + 1,
        base_filters=WIDTH).count_params()
    variant = ns["gra_net_model"](attention="spatial", gamma_mode="fixed", gamma=0.0)  # the notebook's loop builds these
    assert architecture(variant)["fingerprint"] != architecture(model)["fingerprint"]

    before = [w.copy() for w in model.get_weights()]
    config = TrainConfig(model="gra_net", model_kwargs={"base_filters": WIDTH}, dataset="synthetic",
                         dataset_kwargs={"n": 48, "image_size": SIZE, "seed": 0}, image_size=SIZE,
                         age_min=age_min, num_classes=age_max - age_min + 1, epochs=1, batch_size=16,
                         optimizer="nadam", augment=False, out=str(tmp_path / "run"), verbose=0)
    tf.config.run_functions_eagerly(True)  # tracing Attention-56's step costs more than this tiny epoch
    try:
        result = train(config, model=model)
    finally:
        tf.config.run_functions_eagerly(False)

    assert np.isfinite(result["mae"]) and 0.0 <= result["gender_accuracy"] <= 1.0
    after = model.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(before, after)), "the wired model's weights did not change"
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["model"]
    assert saved["custom"] is True
    assert saved["fingerprint"] == architecture(model)["fingerprint"]
    assert saved["params"] == model.count_params()
