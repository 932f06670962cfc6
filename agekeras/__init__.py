"""agekeras: facial age estimation in Keras 3, one notebook per paper.

`import agekeras` registers every layer, loss and metric with Keras, so that
`keras.saving.load_model("best.keras")` works right after it. The other
subpackages load on first use: `agekeras.models`, `agekeras.datasets`,
`agekeras.training`, `agekeras.experiments`, `agekeras.plots`.
"""

import importlib

from agekeras import layers, losses, metrics  # noqa: F401  (register the custom objects)

__version__ = "0.1.0"

_SUBMODULES = ("models", "datasets", "training", "experiments", "plots", "tables", "ages", "cli")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"agekeras.{name}")
    raise AttributeError(f"module 'agekeras' has no attribute {name!r}")
