"""UTKFace: labels in the file names, optional 68-point landmark lists."""

from __future__ import annotations

import re

import numpy as np

from ..base import AgeDataset
from ..images import image_files
from .common import Rows, require_dir
from .markup import ibug68_to_5

UTKFACE_LAYOUT = """\
  <data_dir>/**/<age>_<gender>_<race>_<datetime>.jpg[.chip.jpg]
  e.g. UTKFace/1_0_0_20161219140623097.jpg.chip.jpg (aligned & cropped 200x200)
  or the "in the wild" part1/ part2/ part3/ with optional landmark_list_part*.txt"""

_UTKFACE_NAME = re.compile(r"^(\d+)_(\d+)_(\d+)_(\d+)\.")


def read_utkface(data_dir, *, min_age: float = 0, max_age: float = 116) -> AgeDataset:
    """UTKFace: labels are in the file names, `age_gender_race_datetime.jpg...`.

    Expected layout (every image under `data_dir`, any depth):

    ```
    <data_dir>/**/<age>_<gender>_<race>_<datetime>.jpg.chip.jpg   # aligned & cropped
    <data_dir>/**/<age>_<gender>_<race>_<datetime>.jpg            # "in the wild"
    <data_dir>/**/landmark_list*.txt                              # optional, in the wild
    ```

    gender is 0 male / 1 female, race 0 White / 1 Black / 2 Asian / 3 Indian
    / 4 Others. A few real names lack a field (`61_1_20170109142408075.jpg.chip.jpg`):
    they are skipped as "unparseable name"; ages outside `[min_age, max_age]`
    as "age out of range". The in-the-wild `landmark_list_part*.txt` files
    (`<file name> x0 y0 ... x67 y67` per line) become 5-point landmarks; rows
    without an entry keep NaN. UTKFace has no subject ids. Point `data_dir`
    at one copy only (`UTKFace/` and `crop_part1/` hold the same faces).

    Args:
        data_dir: the folder.
        min_age, max_age: inclusive valid age range.

    Returns:
        An `AgeDataset` with age, gender, race (and landmarks when given).
    """
    root = require_dir(data_dir, "utkface", UTKFACE_LAYOUT)
    marks = {}
    for txt in sorted(root.rglob("landmark_list*.txt")):
        for line in txt.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 137:
                marks[parts[0]] = ibug68_to_5(np.asarray(parts[1:], dtype="float32"))
    rows = Rows()
    for path in image_files(root):
        m = _UTKFACE_NAME.match(path.name)
        if not m or int(m[2]) > 1 or int(m[3]) > 4:
            rows.skipped.add("unparseable name", path.name)
            continue
        age = rows.checked_age(m[1], min_age, max_age, path.name)
        if age is None:
            continue
        rows.add(path, age, gender=int(m[2]), race=int(m[3]), landmarks=marks.get(path.name))
    return rows.build("utkface")
