"""Apparent age: ChaLearn LAP 2015, LAP 2016 and APPA-REAL (a label file per split)."""

from __future__ import annotations

import pathlib
import re

import numpy as np

from ..base import AgeDataset
from .common import Rows, column_key, find_root, pick_column, read_table, require_dir, to_float

APPARENT_LAYOUT = """\
  <data_dir>/<label file per split>.csv  with image name, apparent age mean, std
    LAP 2015:  Train.csv, Validation.csv[, Test.csv]           images in Train/ Validation/ Test/
    LAP 2016:  gt_avg_train.csv or train_gt.csv, valid..., test...  images in train/ valid/ test/
    APPA-REAL: gt_avg_train.csv, gt_avg_valid.csv, gt_avg_test.csv  images in train/ valid/ test/"""

_SPLIT_WORDS = {
    "train": ("train", "training", "trainingset"),
    "valid": ("valid", "validation", "val", "validationset"),
    "test": ("test", "testing", "testset"),
}
_NAME_COLUMNS = ("filename", "file", "image", "imagename", "img", "name", "path", "imagepath")
_MEAN_COLUMNS = (
    "apparentageavg",
    "apparentagemean",
    "apparentage",
    "mean",
    "meanage",
    "avg",
    "age",
    "apparent",
)
_STD_COLUMNS = ("apparentagestd", "std", "stdv", "stddev", "sd", "sigma", "apparentagestdv")


def _split_files(root: pathlib.Path, suffixes=(".csv", ".txt")) -> dict[str, pathlib.Path]:
    """Label file per split: names whose words include the split's word.

    When a split matches several files, one with "avg" in its name wins
    (APPA-REAL's `gt_avg_train.csv` over the per-rating `gt_train.csv`).
    """
    found = {}
    files = [p for p in sorted(root.iterdir()) if p.is_file() and p.suffix.lower() in suffixes]
    for split, words in _SPLIT_WORDS.items():
        matches = [p for p in files if set(re.split(r"[^a-z]+", p.stem.lower())) & set(words)]
        if len(matches) > 1:
            matches = [p for p in matches if "avg" in p.stem.lower()] or matches
        if len(matches) > 1:
            raise ValueError(f"{root}: several label files for {split}: {[p.name for p in matches]}.")
        if matches:
            found[split] = matches[0]
    return found


def _split_image_dir(root: pathlib.Path, split: str) -> pathlib.Path:
    for d in sorted(root.iterdir()):
        if d.is_dir() and column_key(d.name) in _SPLIT_WORDS[split]:
            return d
    return root


def _read_apparent(name, data_dir, *, target="apparent", face_crops=False, min_age=0, max_age=116):
    root = require_dir(data_dir, name, APPARENT_LAYOUT)
    root = find_root(root, lambda p: "train" in _split_files(p), name, APPARENT_LAYOUT)
    rows = Rows()
    for split, label_file in _split_files(root).items():
        table = read_table(label_file)
        has_header = to_float(table[0][1] if len(table[0]) > 1 else None) is None
        header = table[0] if has_header else []
        i_name = pick_column(header, _NAME_COLUMNS) if has_header else 0
        i_mean = pick_column(header, _MEAN_COLUMNS) if has_header else 1
        i_std = pick_column(header, _STD_COLUMNS) if has_header else 2
        if target == "real":
            i_mean = pick_column(header, ("realage",))
        if i_name is None or i_mean is None:
            raise ValueError(
                f"{name}: {label_file.name} needs an image-name column {_NAME_COLUMNS} and a "
                f"{'real_age' if target == 'real' else 'mean'} column {_MEAN_COLUMNS}; got {header}."
            )
        image_dir = _split_image_dir(root, split)
        for row in table[1:] if has_header else table:
            age = rows.checked_age(row[i_mean] if len(row) > i_mean else None, min_age, max_age,
                                   f"{label_file.name}: {row[:2]}")  # fmt: skip
            if age is None:
                continue
            file_name = row[i_name] + ("_face.jpg" if face_crops else "")
            path = next((p for p in (image_dir / file_name, root / file_name) if p.is_file()), None)
            if path is None:
                rows.skipped.add("missing file", f"{image_dir.name}/{file_name}")
                continue
            std = to_float(row[i_std]) if i_std is not None and len(row) > i_std else None
            rows.add(path, age, age_std=np.nan if std is None else std, split=split)
    return rows.build(name)


def read_lap2015(data_dir, *, min_age: float = 0, max_age: float = 116) -> AgeDataset:
    """ChaLearn LAP 2015 apparent age (ICCV '15).

    Expected layout: one label file per split, found by the split word in its
    name (train / valid, validation, val / test; any case, `.csv` or `.txt`),
    images in a folder named after the split (else `data_dir` itself):

    ```
    <data_dir>/Train.csv        <data_dir>/Train/image_1.jpg ...
    <data_dir>/Validation.csv   <data_dir>/Validation/...
    <data_dir>/Test.csv         <data_dir>/Test/...        # optional
    ```

    Label files are comma, semicolon or tab separated, with or without a
    header. With a header, columns are found by name (case and punctuation
    ignored): image = file_name / filename / image / image_name / name /
    path; mean = apparent_age_avg / apparent_age / mean / avg / age; std =
    apparent_age_std / std / stdv / stddev / sigma. Without one, columns are
    (image, mean, std). `age` is the apparent mean, `age_std` its std, and
    `official` holds the splits present ("train", "valid", "test").

    Args:
        data_dir: the folder.
        min_age, max_age: inclusive valid age range.

    Returns:
        An `AgeDataset` with age, age_std and `official` splits.
    """
    return _read_apparent("lap2015", data_dir, min_age=min_age, max_age=max_age)


def read_lap2016(data_dir, *, min_age: float = 0, max_age: float = 116) -> AgeDataset:
    """ChaLearn LAP 2016 apparent age (CVPR '16): same rules as `read_lap2015`.

    ```
    <data_dir>/gt_avg_train.csv (or train_gt.csv)   <data_dir>/train/000000.jpg ...
    <data_dir>/gt_avg_valid.csv (or valid_gt.csv)   <data_dir>/valid/...
    <data_dir>/gt_avg_test.csv  (or test_gt.csv)    <data_dir>/test/...
    ```

    Args:
        data_dir: the folder.
        min_age, max_age: inclusive valid age range.

    Returns:
        An `AgeDataset` with age, age_std and `official` splits.
    """
    return _read_apparent("lap2016", data_dir, min_age=min_age, max_age=max_age)


def read_appa_real(data_dir, *, target: str = "apparent", face_crops: bool = False,
                   min_age: float = 0, max_age: float = 116) -> AgeDataset:  # fmt: skip
    """APPA-REAL (7,591 images: 4,113 train, 1,500 valid, 1,978 test).

    Expected layout (the extracted `appa-real-release/` folder or its parent):

    ```
    <data_dir>/gt_avg_train.csv   # file_name,num_ratings,apparent_age_avg,apparent_age_std,real_age
    <data_dir>/gt_avg_valid.csv
    <data_dir>/gt_avg_test.csv
    <data_dir>/train/000000.jpg, 000000.jpg_face.jpg, ...
    <data_dir>/valid/...  <data_dir>/test/...
    ```

    Column rules as in `read_lap2015`; the per-rating `gt_train.csv` files
    are ignored when the `gt_avg_*` ones are present.

    Args:
        data_dir: the folder.
        target: "apparent" (age = apparent_age_avg, age_std = its std) or
            "real" (age = real_age; age_std still the apparent std).
        face_crops: read the released cropped faces `X.jpg_face.jpg` instead
            of the full images `X.jpg`.
        min_age, max_age: inclusive valid age range.

    Returns:
        An `AgeDataset` with age, age_std and `official` train/valid/test.
    """
    if target not in ("apparent", "real"):
        raise ValueError(f"target must be 'apparent' or 'real'; got {target!r}.")
    return _read_apparent("appa_real", data_dir, target=target, face_crops=face_crops,
                          min_age=min_age, max_age=max_age)  # fmt: skip
