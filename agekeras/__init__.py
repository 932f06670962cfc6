"""agekeras: facial age estimation in Keras 3, one notebook per paper.

`import agekeras` registers every layer, loss and metric with Keras, so that
`keras.saving.load_model("best.keras")` works right after it. The other
subpackages load on first use: `agekeras.models`, `agekeras.datasets`,
`agekeras.training` (with `config`, `runs`, `runtime`, `callbacks` and
`evaluation`), `agekeras.experiments`, `agekeras.plots`, `agekeras.inference`,
`agekeras.calibration`; `agekeras.predict(photos, run_dir)` gives the age of
every face in photos (see `agekeras.inference.predict`).
"""

import importlib

from agekeras import layers, losses, metrics  # noqa: F401  (register the custom objects)

__version__ = "0.1.0"

_SUBMODULES = ("models", "datasets", "training", "config", "runs", "runtime", "callbacks", "evaluation", "experiments",
               "plots", "tables", "ages", "inference", "calibration", "cli")
_FUNCTIONS = {"predict": "inference"}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"agekeras.{name}")
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(f"agekeras.{_FUNCTIONS[name]}"), name)
    raise AttributeError(f"module 'agekeras' has no attribute {name!r}")
