"""Every layer docstring's Example runs and prints what it says (doctest)."""

import doctest
import importlib
import pkgutil

import keras
import numpy as np
import pytest

import agekeras.layers

MODULES = sorted(m.name for m in pkgutil.iter_modules(agekeras.layers.__path__))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(f"agekeras.layers.{name}")
    result = doctest.testmod(
        module,
        extraglobs={"np": np, "keras": keras},
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        verbose=False,
    )
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
    assert result.attempted > 0, f"agekeras/layers/{name}.py has no runnable Example"
