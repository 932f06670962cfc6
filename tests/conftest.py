"""Shared pytest fixtures: paths to the shared real-face folders, seeding."""

import os
import pathlib

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("AGEKERAS_SHARED", REPO.parent / "shared")) / "datasets"
UTKFACE_DEV = SHARED / "utkface-dev"
FGNET = SHARED / "fgnet"


@pytest.fixture
def utkface_dev_dir():
    if not UTKFACE_DEV.is_dir():
        pytest.skip(f"{UTKFACE_DEV} not present")
    return UTKFACE_DEV


@pytest.fixture
def fgnet_dir():
    if not FGNET.is_dir():
        pytest.skip(f"{FGNET} not present")
    return FGNET


@pytest.fixture(autouse=True)
def _no_eager_left_behind(monkeypatch):
    """`course.setup(mode="quick")` turns on eager training (AGEKERAS_EAGER) for its
    process; a test that calls it must not leave it on for the next tests."""
    if "AGEKERAS_EAGER" in os.environ:
        monkeypatch.setenv("AGEKERAS_EAGER", os.environ["AGEKERAS_EAGER"])
    else:
        monkeypatch.delenv("AGEKERAS_EAGER", raising=False)
    yield


@pytest.fixture(autouse=True)
def _seed():
    import keras

    keras.utils.set_random_seed(1234)
    np.random.seed(1234)
    yield


@pytest.fixture
def float64():
    """float64 arrays stay float64 during the test (JAX otherwise computes
    them in float32); a no-op on TensorFlow and PyTorch."""
    from tests.harness import float64_enabled

    with float64_enabled():
        yield


def pytest_collection_modifyitems(config, items):
    """`tf_only` tests are skipped, with the reason, on the other backends."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        return
    skip = pytest.mark.skip(reason=f"tf_only: needs the TensorFlow backend, this run uses {backend}")
    for item in items:
        if "tf_only" in item.keywords:
            item.add_marker(skip)
