"""agekeras: facial age estimation in Keras 3, one notebook per paper.

Subpackages load lazily so that `import agekeras` stays cheap:
`agekeras.layers`, `agekeras.losses`, `agekeras.metrics`, `agekeras.models`,
`agekeras.datasets`, `agekeras.training`, `agekeras.plots`.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("layers", "losses", "metrics", "models", "datasets", "training", "plots", "cli")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"agekeras.{name}")
    raise AttributeError(f"module 'agekeras' has no attribute {name!r}")
