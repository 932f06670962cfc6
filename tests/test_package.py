"""Package-level behaviour: loading saved models after `import agekeras`, CLI defaults, progress lines."""

import dataclasses
import subprocess
import sys

import keras
import numpy as np

from agekeras import cli
from agekeras.training import TrainConfig
from agekeras.callbacks import BudgetProgress, TrainingClock


def test_saved_model_loads_after_import_agekeras_alone(tmp_path):
    from agekeras import models

    model = models.get("resnet18_coral", input_shape=(32, 32, 3), num_classes=5)
    path = tmp_path / "m.keras"
    model.save(path)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(x)["age"])
    np.save(tmp_path / "x.npy", x)
    code = (
        "import agekeras, keras, numpy as np, sys\n"
        f"m = keras.saving.load_model(r'{path}', safe_mode=True)\n"
        f"print(list(np.asarray(m(np.load(r'{tmp_path / 'x.npy'}'))['age'])))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    got = np.array(eval(out.stdout.strip().splitlines()[-1].replace("np.float32", "")), dtype="float32")
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_cli_train_defaults_are_the_config_defaults():
    """The fields' own defaults, not a TrainConfig() instance's: __post_init__ resolves "auto" alignment for the
    default dataset (synthetic: None), which a UTKFace run must not inherit."""
    args = cli._parser().parse_args(["train", "--model", "resnet18_dex", "--out", "x"])
    for f in dataclasses.fields(TrainConfig):
        if f.name in cli._NOT_OPTIONS or f.name == "epochs":
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        assert getattr(args, f.name) == default, f.name
    assert args.align == "auto"
    assert args.epochs is None  # resolved in cmd_train: the config's 10, or the budget's None


def test_cli_exposes_warmup_cache_and_head_classes():
    args = cli._parser().parse_args(
        ["train", "--model", "m", "--out", "x", "--warmup", "0.1", "--no-cache", "--num-classes", "26", "--age-min", "15"]
    )
    assert (args.warmup, args.cache, args.num_classes, args.age_min) == (0.1, False, 26, 15)


def test_budget_progress_shows_minutes_used_of_the_budget():
    lines = []
    clock = TrainingClock(budget=15 * 60.0, already=6.3 * 60)
    BudgetProgress(clock, print_fn=lines.append).on_epoch_end(6, {"loss": 1.5, "val_age_mae": 7.25})
    assert lines == ["epoch 7 - 6.3/15 min - loss: 1.5 - val_age_mae: 7.25"]


def test_installing_the_package_never_brings_a_tensorflow_of_its_own():
    """Colab and GPU users keep their TensorFlow: only the `cpu` / `gpu` extras name one."""
    import pathlib
    import tomllib

    root = pathlib.Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    tensorflows = ("tensorflow ", "tensorflow>", "tensorflow=", "tensorflow[", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly")
    assert not [d for d in project["dependencies"] if d.lower().startswith(tensorflows) or d.lower() == "tensorflow"]
    extras = project["optional-dependencies"]
    assert any(d.startswith("tensorflow-cpu") for d in extras["cpu"])
    assert any(d.startswith("tensorflow[and-cuda]") for d in extras["gpu"])
    assert not [d for d in extras["align"] + extras["dev"] if d.lower().startswith(tensorflows)]
    # every notebook's Colab install line installs the package without a TensorFlow extra
    for nb in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        text = nb.read_text()
        if "pip" in text and "google.colab" in text:
            assert "agekeras[align] @ git+" in text, nb.name
            assert "agekeras[cpu]" not in text and "agekeras[gpu]" not in text, nb.name
