"""Notebook 01 (VoVNetv4): the cell that wires the model is the model that trains."""


import keras

import agekeras
from agekeras import layers
from agekeras.experiments import vovnetv4 as E
from agekeras.training import TrainConfig, architecture
from tests.notebooks.cells import run_tagged, train_and_check_it_is_that_object


def _setting(n=40):
    return E.DataSetting("synthetic", None, {"n": n, "age_range": (15, 40)}, "synthetic", 15, 40, 32, 1, None, 16,
                         5e-4, 1, ("vovnetv4",))


def test_the_wire_model_cell_builds_vovnetv4_and_trains_that_object(tmp_path):
    keras.utils.set_random_seed(0)
    S = _setting()
    ns = run_tagged("01", "wire-model", {"S": S, "E": E, "keras": keras, "agekeras": agekeras, "layers": layers})
    model = ns["model"]
    # the cell's model is the paper's: the registered builder's architecture, with the ROSA regions and their stages
    registered = agekeras.models.get("vovnetv4", input_shape=(32, 32, 3), num_classes=26, age_min=15,
                                     age_prior=ns["prior"])
    assert architecture(model)["fingerprint"] == architecture(registered)["fingerprint"]
    assert [model.get_layer(f"adaptive_{r}").output.shape[1] for r in (1, 2, 3, 4)] == [1, 1, 1, 1]
    config = TrainConfig(model="vovnetv4", dataset="synthetic", dataset_kwargs={"n": 40, "age_range": (15, 40)},
                         image_size=32, epochs=1, batch_size=16, lr=5e-4, seed=1, age_min=15, num_classes=26,
                         out=str(tmp_path / "run"), verbose=0)
    # train() trained the cell's object: its weights moved, and the run records its architecture
    result, saved = train_and_check_it_is_that_object(model, config)

