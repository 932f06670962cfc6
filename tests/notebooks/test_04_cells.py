"""Notebook 04 (DHAA): the cell that wires the model from `agekeras.layers` builds the registered `dhaa`,
and `train(config, model=...)` trains that very object."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from agekeras import layers
from agekeras.face_template import CANONICAL
from agekeras.models import dhaa as D
from agekeras.models import get
from agekeras.training import TrainConfig, architecture, train
from tests.notebooks.cells import run_tagged, tagged_sources

SIZE, AGE_MIN, NUM_CLASSES = 32, 0, 101
MODEL_KW = {"width": 0.125, "feature_dim": 8}


@pytest.fixture(scope="module")
def wired():
    """The namespace after running the notebook's cell tagged wire-model, at 32 px and an eighth of the width."""
    keras.utils.set_random_seed(0)
    namespace = {"keras": keras, "layers": layers, "D": D, "MODEL_KW": dict(MODEL_KW), "IMAGE_SIZE": SIZE,
                 "AGE_MIN": AGE_MIN, "NUM_CLASSES": NUM_CLASSES}
    return run_tagged("04", "wire-model", namespace)


def registered(**kwargs):
    return get("dhaa", input_shape=(SIZE, SIZE, 3), num_classes=NUM_CLASSES, age_min=AGE_MIN, **MODEL_KW, **kwargs)


def test_one_cell_wires_the_model():
    assert len(tagged_sources("04", "wire-model")) == 1


@pytest.mark.parametrize("flags", [{}, {"branches": ["local"]}, {"branches": ["global", "global_local"]},
                                   {"pooling": "roi", "fusion": "fc", "sub_losses": False}],
                         ids=["dhaa", "local", "global+gl", "roi-fc-nosub"])
def test_wired_model_is_the_registered_dhaa(wired, flags):
    """The notebook's dhaa_model with the builder's flags is the registered dhaa, layer for layer."""
    model = wired["dhaa_model"](**flags) if flags else wired["model"]
    reference = registered(**flags)
    assert model.count_params() == reference.count_params()
    assert list(model.output) == list(reference.output)
    assert architecture(model)["fingerprint"] == architecture(reference)["fingerprint"]


def test_templates_give_a_sub_network_its_own_window(wired):
    """Exercise 2: a template for local1 changes what it reads, in the cell and in the builder alike."""
    right_eye = ((CANONICAL - CANONICAL[1]) * 2.5).tolist()
    model = wired["dhaa_model"](templates={"local1": right_eye})
    reference = registered(templates={"local1": right_eye})
    assert architecture(model)["fingerprint"] == architecture(reference)["fingerprint"]
    assert architecture(model)["fingerprint"] != architecture(wired["model"])["fingerprint"]
    arp = model.get_layer("arp")
    assert arp.regions == ("global1", "global2", "global3", "local1", "nose", "mouth")
    np.testing.assert_allclose(arp.templates["local1"], right_eye)
    with pytest.raises(ValueError, match="aligned region"):
        registered(templates={"global1": right_eye})


def test_train_trains_the_wired_object(wired, tmp_path):
    model = wired["model"]
    before = [w.copy() for w in model.get_weights()]
    config = TrainConfig(model="dhaa", dataset="synthetic", dataset_kwargs={"n": 24, "image_size": SIZE},
                         image_size=SIZE, epochs=1, batch_size=8, age_min=AGE_MIN, num_classes=NUM_CLASSES,
                         model_kwargs=MODEL_KW, out=str(tmp_path / "run"), verbose=0)
    eager = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(True)  # one tiny epoch: no graph to trace
    try:
        result = train(config, model=model)
    finally:
        tf.config.run_functions_eagerly(eager)
    assert np.isfinite(result["mae"])
    changed = [not np.array_equal(a, b) for a, b in zip(before, model.get_weights())]
    assert sum(changed) > len(changed) // 2  # the object itself was trained
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["model"]["custom"] is True
    assert saved["model"]["fingerprint"] == architecture(model)["fingerprint"]
    assert saved["model"]["params"] == model.count_params()
