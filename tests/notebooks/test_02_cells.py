"""Notebook 02 (AL-RoR): the cells that wire and train the AL network are run here as the student reads them.

`wire-model` writes the AL network out from `agekeras.layers` (and checks it against the registered
`al_ror34`); `two-stage` is the paper's training loop (stage 1: trunk + global head; stage 2: the AL network
with stage 1's layers copied in and frozen). Both run on a few synthetic faces at 32 px.
"""

import dataclasses
import json
import pathlib
import types

import keras
import numpy as np

from agekeras import models
from agekeras.layers import AttentionLSTMLocator, DEXHead, FeatureCrop, GlobalLocalFusion
from agekeras.models import al_resnet
from agekeras.models.backbones import scale_inputs
from agekeras.models.baselines import resnet_backbone
from agekeras.runs import RunDir
from agekeras.training import TrainConfig, architecture, load_splits, train
from tests.notebooks.cells import run_tagged

SIZE = 32


def _config(tmp_path):
    return TrainConfig(dataset="synthetic", dataset_kwargs={"n": 48}, image_size=SIZE, batch_size=16, epochs=1,
                       seed=0, verbose=0, out=str(tmp_path / "run"))


def _namespace(config):
    """What the notebook's earlier cells define for the wiring cell (small images, the data's age classes)."""
    _, full = load_splits(config)
    lo, hi = (int(a) for a in full.age_range())
    return {
        "keras": keras, "models": models, "al_resnet": al_resnet, "resnet_backbone": resnet_backbone,
        "scale_inputs": scale_inputs, "AttentionLSTMLocator": AttentionLSTMLocator, "DEXHead": DEXHead,
        "FeatureCrop": FeatureCrop, "GlobalLocalFusion": GlobalLocalFusion,
        # 32 px with no stem max-pool and a stride-1 last group: a 4 x 4 map for the box to move on
        "IMAGE_SIZE": SIZE, "MODEL_KWARGS": {"small_input": True}, "AGE_MIN": lo, "NUM_CLASSES": hi - lo + 1,
    }


def _weights(layer):
    return [np.array(w) for w in layer.get_weights()]


def _changed(before, after):
    return any(not np.array_equal(a, b) for a, b in zip(before, after))


def test_wire_model_cell_trains_the_object_it_builds(tmp_path):
    config = _config(tmp_path)
    ns = run_tagged("02", "wire-model", _namespace(config))
    model = ns["model"]
    assert model.name == "al_ror34"
    assert set(model.output) == {"age", "age_probs_global", "age_probs_local"}
    assert model.get_layer("locator").carry_state is ns["CARRY_STATE"] is True
    assert model.get_layer("fusion").local_weight == ns["LOCAL_WEIGHT"] == 0.5
    # the cell's network is the registered al_ror34 with the same settings, layer by layer
    assert architecture(model)["fingerprint"] == architecture(ns["registered"])["fingerprint"]

    before = {name: _weights(model.get_layer(name)) for name in ("ror34_backbone", "locator", "local_head")}
    result = train(dataclasses.replace(config, model="al_ror34"), model=model)
    assert np.isfinite(result["mae"])
    for name, weights in before.items():  # the object itself was trained, every branch of it
        assert _changed(weights, _weights(model.get_layer(name))), name
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["model"]
    assert saved["custom"] is True
    assert saved["fingerprint"] == architecture(model)["fingerprint"]


def test_two_stage_cell_freezes_what_stage_one_trained(tmp_path):
    config = _config(tmp_path)
    ns = run_tagged("02", "wire-model", _namespace(config))
    printed = []
    ns.update(
        dataclasses=dataclasses, train=train, RunDir=RunDir, architecture=architecture, config=config,
        TRUNKS=["ror34"], STAGE1={"epochs": 1, "lr": 1e-3}, STAGE2={"epochs": 1, "lr": 1e-3},
        C=types.SimpleNamespace(run_dir=lambda name: tmp_path / name, smoke_test_note=lambda: printed.append(1)),
    )
    run_tagged("02", "two-stage", ns)
    assert printed == [1]
    stage1, stage2 = ns["run_dirs"]["ror34", 1], ns["run_dirs"]["ror34", 2]
    assert "stage1" in stage1 and "stage2" in stage2
    assert np.isfinite(ns["results"]["ror34", 1]["mae"]) and np.isfinite(ns["results"]["ror34", 2]["mae"])
    first = keras.saving.load_model(RunDir(stage1).best_model, safe_mode=True)
    second = keras.saving.load_model(RunDir(stage2).best_model, safe_mode=True)
    assert first.name == "ror34_dex" and second.name == "al_ror34"
    for name in ("ror34_backbone", "dex_head"):  # copied from stage 1 and frozen: unchanged by stage 2
        assert not second.get_layer(name).trainable, name
        for a, b in zip(_weights(first.get_layer(name)), _weights(second.get_layer(name))):
            np.testing.assert_array_equal(a, b)
    assert second.get_layer("locator").trainable and second.get_layer("local_head").trainable
    saved = json.loads((pathlib.Path(stage2) / "config.json").read_text())["model"]
    assert saved["fingerprint"] in stage2  # the run folder is named by the architecture it holds
