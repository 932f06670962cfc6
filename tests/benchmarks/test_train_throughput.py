"""benchmarks/train_throughput.py: the bookkeeping around the measurement (the timings are not tested)."""

import json

import keras

from . import ROOT, load_script


def _script():
    return load_script("train_throughput")


def test_mixed_precision_applies_to_every_model_not_only_the_first(monkeypatch, capsys):
    from agekeras.runtime import mixed_precision_policy

    script = _script()
    policy = mixed_precision_policy()  # mixed_bfloat16 on a CPU, mixed_float16 on a GPU
    seen = []

    def fake_measure(name, image_size, batch_size, seconds, model_kwargs=None, windows=3, jit_compile="auto"):
        seen.append((name, keras.mixed_precision.global_policy().name, model_kwargs, windows, jit_compile))
        keras.backend.clear_session()  # what building a model and clearing it does to the global policy
        return {"model": name, "train_gflop_per_s": 10.0}

    monkeypatch.setattr(script, "measure", fake_measure)
    monkeypatch.setattr(script, "matmul_gflops", lambda: 100.0)
    before = keras.mixed_precision.global_policy().name
    try:
        script.main(["--models", "resnet18_dex", "resnet34_dex", "--mixed-precision", "--model-arg", "max_pool=false",
                     "--windows", "5", "--jit-compile", "false"])
    finally:
        keras.mixed_precision.set_global_policy(before)
    assert seen == [("resnet18_dex", policy, {"max_pool": False}, 5, False),
                    ("resnet34_dex", policy, {"max_pool": False}, 5, False)]
    report = json.loads(capsys.readouterr().out)
    assert report["dtype_policy"] == policy
    assert [r["ratio_to_matmul"] for r in report["models"]] == [0.1, 0.1]


def test_measure_reports_the_median_of_its_windows_and_their_range():
    script = _script()
    r = script.measure("resnet18_dex", image_size=32, batch_size=2, seconds=0.01, windows=3,
                       model_kwargs={"max_pool": False}, jit_compile=False)
    keras.backend.clear_session()
    low, high = r["train_img_per_s_range"]
    assert r["windows"] == 3 and r["jit_compile"] is False
    assert low <= r["train_img_per_s"] <= high
    assert r["train_gflops_per_img"] > r["forward_gflops_per_img"] > 0
