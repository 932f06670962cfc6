"""Face-age datasets: readers, evaluation protocols, bad-input handling.

```python
from agekeras import datasets

ds = datasets.load("utkface", "~/agekeras_data/utkface")
parts = datasets.split(ds, "random", seed=0, val_fraction=0.1)
parts["train"], parts["val"], parts["test"]
```

`load` reads a folder as its authors distribute it (see each reader's
docstring in `agekeras.datasets.readers` for the layout), then, with
`validate=True`, decodes every image once (`agekeras.datasets.validate`):
broken files are dropped, odd formats converted, and image sizes recorded
for `image_sizes(ds)`. What was dropped, and why, is in `ds.skipped` and in
one warning on the "agekeras.datasets" logger.

The TFDS builders register on their own import, so that this package does
not load TensorFlow Datasets: `import agekeras.datasets.tfds_builders`, then
`tfds.load("agekeras_utkface", ...)`.
"""

from __future__ import annotations

import os
import pathlib

from .base import AgeDataset, SkipReport
from .protocols import num_folds, protocols, split
from .readers import READERS
from .validate import image_sizes, validate_dataset

__all__ = [
    "AgeDataset",
    "SkipReport",
    "available",
    "data_root",
    "default_data_dir",
    "image_sizes",
    "load",
    "num_folds",
    "protocols",
    "split",
]


def available() -> list[str]:
    """Names accepted by `load`."""
    return sorted([*READERS, "synthetic"])


def default_data_dir(name: str) -> pathlib.Path:
    """Where `load(name)` looks without `data_dir`: `<data root>/<name>`.

    The data root is `$AGEKERAS_DATA_ROOT` (`$AGEKERAS_DATA` is accepted
    too), default `~/agekeras_data`, where `python -m agekeras download
    <name>` puts downloads by default. Every notebook finds data there.
    """
    return data_root() / name


def data_root() -> pathlib.Path:
    """The one folder holding every dataset: `$AGEKERAS_DATA_ROOT` or `~/agekeras_data`."""
    root = os.environ.get("AGEKERAS_DATA_ROOT") or os.environ.get("AGEKERAS_DATA") or "~/agekeras_data"
    return pathlib.Path(root).expanduser()


def load(name: str, data_dir=None, *, validate: bool = True, **kwargs) -> AgeDataset:
    """Read dataset `name` from `data_dir`.

    Args:
        name: one of `available()`.
        data_dir: the dataset folder (or CSV file for "csv" / "morph2");
            default `default_data_dir(name)`. Ignored for "synthetic".
        validate: decode every image once, drop broken ones, convert odd
            formats and record sizes (cached; see `agekeras.datasets.validate`).
        **kwargs: passed to the reader, e.g. `min_age`, `max_age`;
            `images="aligned"` for Adience; `target="real"` or
            `face_crops=True` for APPA-REAL; `n`, `image_size`, `seed` for
            "synthetic".

    Returns:
        An `AgeDataset`.

    Raises:
        ValueError: unknown `name`.
        FileNotFoundError: `data_dir` is missing, empty or not laid out as
            expected; the message says how to get the data.
    """
    if name == "synthetic":
        from .synthetic import load_synthetic

        return load_synthetic(**kwargs)
    if name not in READERS:
        raise ValueError(f"Unknown dataset {name!r}; choose from {available()}.")
    spec = READERS[name]
    path = pathlib.Path(data_dir).expanduser() if data_dir is not None else default_data_dir(name)
    if not path.is_file() and (not path.is_dir() or not any(path.iterdir())):
        from .download import SOURCES

        how = (
            f"download it with `python -m agekeras download {name} --out {path}`"
            if name in SOURCES
            else f"download it by hand from {spec.homepage} (`python -m agekeras download {name}` "
            "prints how)"
        )
        raise FileNotFoundError(
            f"No {name} data at {path} (missing or empty). To get it, {how}, "
            f"then call load({name!r}, '<folder>'). Expected layout:\n{spec.layout}"
        )
    ds = spec.reader(path, **kwargs)
    if validate:
        ds = validate_dataset(ds)
    ds.skipped.warn(name)
    return ds
