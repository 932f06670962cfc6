"""Fixtures for the dataset tests (the layouts themselves are in `fixtures.py`)."""

import pytest


@pytest.fixture
def agekeras_cache(tmp_path, monkeypatch):
    """A private `AGEKERAS_CACHE` (validation index, converted images) per test."""
    cache = tmp_path / "agekeras-cache"
    monkeypatch.setenv("AGEKERAS_CACHE", str(cache))
    return cache
