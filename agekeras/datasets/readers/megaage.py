"""MegaAge-Asian: official train/test list files."""

from __future__ import annotations

from ..base import AgeDataset
from .common import Rows, find_root, require_dir

MEGAAGE_LAYOUT = """\
  <data_dir>/list/train_name.txt, train_age.txt, test_name.txt, test_age.txt
  <data_dir>/train/<name>, <data_dir>/test/<name>"""


def read_megaage_asian(data_dir, *, min_age: float = 0, max_age: float = 116) -> AgeDataset:
    """MegaAge-Asian: official list files give the train/test protocol.

    Expected layout (the extracted `megaage_asian/` folder or its parent):

    ```
    <data_dir>/list/train_name.txt   # one image name per line ("1.jpg")
    <data_dir>/list/train_age.txt    # one age per line, same order
    <data_dir>/list/test_name.txt    # 3,945 names in the official release
    <data_dir>/list/test_age.txt
    <data_dir>/train/<name>  <data_dir>/test/<name>
    ```

    Name and age lists of different lengths raise `ValueError` (labels would
    be misaligned). `official` holds "train" and "test".

    Args:
        data_dir: the folder.
        min_age, max_age: inclusive valid age range.

    Returns:
        An `AgeDataset` with age and `official` train/test.
    """
    root = find_root(
        require_dir(data_dir, "megaage_asian", MEGAAGE_LAYOUT),
        lambda p: (p / "list" / "train_name.txt").is_file(), "megaage_asian", MEGAAGE_LAYOUT,
    )  # fmt: skip
    rows = Rows()
    for split in ("train", "test"):
        names_file, ages_file = root / "list" / f"{split}_name.txt", root / "list" / f"{split}_age.txt"
        if not (names_file.is_file() and ages_file.is_file()):
            raise FileNotFoundError(
                f"megaage_asian: {names_file} or {ages_file.name} is missing. "
                f"Expected layout:\n{MEGAAGE_LAYOUT}"
            )
        names = names_file.read_text().split()
        ages = ages_file.read_text().split()
        if len(names) != len(ages):
            raise ValueError(f"megaage_asian: {len(names)} names but {len(ages)} ages for {split}.")
        for name, age_text in zip(names, ages, strict=True):
            age = rows.checked_age(age_text, min_age, max_age, f"{split}/{name}")
            if age is None:
                continue
            path = root / split / name
            if not path.is_file():
                rows.skipped.add("missing file", f"{split}/{name}")
                continue
            rows.add(path, age, split=split)
    return rows.build("megaage_asian")
