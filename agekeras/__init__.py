"""agekeras: facial age estimation in Keras 3, one notebook per paper.

Subpackages load lazily so that `import agekeras` stays cheap:
`agekeras.layers`, `agekeras.losses`, `agekeras.metrics`, `agekeras.models`,
`agekeras.datasets`, `agekeras.training`, `agekeras.plots`,
`agekeras.inference`; `agekeras.predict(photos, run_dir)` gives the age of
every face in photos (see `agekeras.inference.predict`).
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("layers", "losses", "metrics", "models", "datasets", "training", "plots", "inference", "cli")
_FUNCTIONS = {"predict": "inference"}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"agekeras.{name}")
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(f"agekeras.{_FUNCTIONS[name]}"), name)
    raise AttributeError(f"module 'agekeras' has no attribute {name!r}")
