"""Model builders, one module per paper, behind one registry.

    >>> import agekeras
    >>> agekeras.models.available()
    ['resnet18_coral', 'resnet18_dex', ...]
    >>> model = agekeras.models.get("resnet18_dex", input_shape=(64, 64, 3), num_classes=101)

Every module of this package registers its models on import.
"""

import importlib
import pkgutil

from agekeras.models.outputs import compile_args, make_targets
from agekeras.models.registry import CUSTOM, ModelEntry, available, entry, entry_for, get, register

for _m in pkgutil.iter_modules(__path__):
    if _m.name not in ("registry", "outputs"):
        importlib.import_module(f"agekeras.models.{_m.name}")

__all__ = ["CUSTOM", "ModelEntry", "available", "compile_args", "entry", "entry_for", "get", "make_targets", "register"]
