"""AFAD (Full and Lite): labels in the folder names, `<age>/<111 male, 112 female>/`."""

from __future__ import annotations

import pathlib

from ..base import AgeDataset
from ..images import image_files
from .common import Rows, find_root, require_dir

AFAD_LAYOUT = """\
  <data_dir>/<age>/<111|112>/*.jpg      (111 male, 112 female)
  e.g. AFAD-Lite/22/112/638427-0.jpg"""


def _is_afad_root(p: pathlib.Path) -> bool:
    return any(
        d.is_dir() and d.name.isdigit() and ((d / "111").is_dir() or (d / "112").is_dir())
        for d in p.iterdir()
    )


def _read_afad(name: str, data_dir, min_age: float, max_age: float) -> AgeDataset:
    root = find_root(require_dir(data_dir, name, AFAD_LAYOUT), _is_afad_root, name, AFAD_LAYOUT)
    rows = Rows()
    for age_dir in sorted((d for d in root.iterdir() if d.is_dir() and d.name.isdigit()),
                          key=lambda d: int(d.name)):  # fmt: skip
        age = int(age_dir.name)
        for code, gender in (("111", 0), ("112", 1)):
            for path in image_files(age_dir / code) if (age_dir / code).is_dir() else ():
                if rows.checked_age(age, min_age, max_age, path.relative_to(root)) is not None:
                    rows.add(path, age, gender=gender)
    return rows.build(name)


def read_afad(data_dir, *, min_age: float = 0, max_age: float = 116) -> AgeDataset:
    """AFAD-Full (Asian Face Age Dataset): labels are folder names.

    Expected layout (the extracted `AFAD-Full/` folder or its parent):

    ```
    <data_dir>/<age>/111/*.jpg   # male
    <data_dir>/<age>/112/*.jpg   # female
    ```

    Other folders are ignored. No subject ids.

    Args:
        data_dir: the folder.
        min_age, max_age: inclusive valid age range.

    Returns:
        An `AgeDataset` with age and gender.
    """
    return _read_afad("afad", data_dir, min_age, max_age)


def read_afad_lite(data_dir, *, min_age: float = 0, max_age: float = 116) -> AgeDataset:
    """AFAD-Lite: the same layout as `read_afad` (folder `AFAD-Lite/`).

    Args:
        data_dir: the folder.
        min_age, max_age: inclusive valid age range.

    Returns:
        An `AgeDataset` with age and gender.
    """
    return _read_afad("afad_lite", data_dir, min_age, max_age)
