"""Notebook 03 (DAA): the cell that wires the model is the model that trains.

The `wire-model` cell of the notebook is run as it stands, in a namespace that gives it what the cells before it
define (encoder, image size, comparison ages); its DAA model and its "w/o DAA" baseline must have the registered
builders' architectures, the template and naive-decoder variants too, and `train(config, model=model)` must train
that very object.
"""


import keras
import numpy as np
import pytest

import agekeras
from agekeras.layers import BinaryCodeMapping, DeltaAgeAdaIN, TemplateBank
from agekeras.training import TrainConfig, architecture, load_splits, train
from tests.notebooks.cells import run_tagged, train_and_check_it_is_that_object

SIZE = 48


def _wire(age_min=5, num_ages=36):
    return run_tagged("03", "wire-model", {"ENCODER": "c3ae", "IMAGE_SIZE": SIZE, "AGE_MIN": age_min,
                                           "NUM_AGES": num_ages})


def test_the_wire_model_cell_builds_daa_and_trains_that_object(tmp_path):
    config = TrainConfig(model="daa_c3ae", dataset="synthetic", dataset_kwargs={"n": 48, "age_range": (5, 40)},
                         image_size=SIZE, epochs=1, batch_size=16, seed=1, out=str(tmp_path / "run"), verbose=0)
    _, full = load_splits(config)
    youngest, oldest = full.age_range()  # the notebook's data cell: the comparison ages are the run's age classes
    ns = _wire(youngest, oldest - youngest + 1)
    model = ns["model"]
    registered = agekeras.models.get("daa_c3ae", input_shape=(SIZE, SIZE, 3), num_classes=oldest - youngest + 1,
                                     age_min=youngest)
    assert architecture(model)["fingerprint"] == architecture(registered)["fingerprint"]
    (mapping,) = [layer for layer in model.layers if isinstance(layer, BinaryCodeMapping)]
    assert (mapping.age_min, mapping.num_ages) == (youngest, oldest - youngest + 1)

    # train() trained the cell's object: its weights moved, and the run records its architecture
    result, saved = train_and_check_it_is_that_object(model, config)
    assert saved["num_classes"] == mapping.num_ages and saved["age_min"] == mapping.age_min
    # the same folder refuses another architecture instead of scoring the old run again
    with pytest.raises(ValueError, match="architecture"):
        train(config, model=ns["build_daa"](delta_scale=1.0))


def test_the_cell_builds_every_variant_of_the_ablation_as_the_registry_does():
    ns = _wire()
    shape = dict(input_shape=(SIZE, SIZE, 3), num_classes=36, age_min=5)
    rng = np.random.default_rng(0)
    templates = {"images": rng.uniform(0, 255, (4, SIZE, SIZE, 3)).astype("float32"),
                 "ages": np.array([6, 12, 25, 39], "float32")}
    pairs = [
        (ns["build_without_daa"](), agekeras.models.get("daa_c3ae_plain", **shape)),
        (ns["build_daa"](variant="single", templates=templates),
         agekeras.models.get("daa_c3ae", variant="single", templates=templates, **shape)),
        (ns["build_daa"](variant="multi", templates=templates),
         agekeras.models.get("daa_c3ae", variant="multi", templates=templates, **shape)),
        (ns["build_daa"](interval=5), agekeras.models.get("daa_c3ae", interval=5, **shape)),
        (ns["build_daa"](delta_scale=1.0), agekeras.models.get("daa_c3ae", delta_scale=1.0, **shape)),
    ]
    for ours, theirs in pairs:
        assert architecture(ours)["fingerprint"] == architecture(theirs)["fingerprint"], ours.name
    (bank,) = [layer for layer in pairs[1][0].layers if isinstance(layer, TemplateBank)]
    np.testing.assert_array_equal(bank.ages.numpy(), templates["ages"])


def test_the_naive_decoder_writes_daa_out_and_gives_the_same_ages():
    """decoder="naive" materialises every delta map with DeltaAgeAdaIN (Eq. 7); same weights, same ages."""
    ns = _wire()
    keras.utils.set_random_seed(3)
    factorised = ns["build_daa"]()
    naive = ns["build_daa"](decoder="naive")
    assert any(isinstance(layer, DeltaAgeAdaIN) for layer in naive.layers)
    assert not any(isinstance(layer, DeltaAgeAdaIN) for layer in factorised.layers)
    naive.set_weights(factorised.get_weights())
    x = np.random.default_rng(1).uniform(0, 255, (3, SIZE, SIZE, 3)).astype("float32")
    np.testing.assert_allclose(naive(x, training=False)["age"], factorised(x, training=False)["age"],
                               rtol=1e-4, atol=1e-3)
