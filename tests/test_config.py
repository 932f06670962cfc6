"""What a run's settings are, and when a saved run is the same run (`agekeras.config`)."""

import json

from agekeras.config import TrainConfig, config_differences


def test_a_saved_config_is_the_same_run_after_its_json_round_trip():
    config = TrainConfig(dataset="synthetic", dataset_kwargs={"n": 80, "age_range": (15, 40)}, lr_drops=[0.5],
                         out="runs/a", verbose=0, epochs=3)
    saved = json.loads(json.dumps(config.to_json()))  # what config.json holds: the tuple is a list now
    assert config_differences(saved, config) == []
    # out, verbose, epochs and cache may change on a resume; the settings that define the run may not
    again = TrainConfig(**{**config.to_json(), "out": "runs/b", "verbose": 2, "epochs": 9, "cache": False})
    assert config_differences(saved, again) == []
    other = TrainConfig(**{**config.to_json(), "label_sigma": 2.0, "dataset_kwargs": {"n": 81}})
    assert sorted(d.split(":")[0] for d in config_differences(saved, other)) == ["dataset_kwargs", "label_sigma"]
