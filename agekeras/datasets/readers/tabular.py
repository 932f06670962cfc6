"""Datasets described by one CSV: MORPH II and any CSV of your own."""

from __future__ import annotations

import pathlib

import numpy as np

from ..base import AgeDataset
from .common import Rows, gender_code, pick_column, race_code, read_table, require_dir, to_float

CSV_LAYOUT = """\
  a CSV with a header: path, age[, gender, subject, race, age_std, group, lx0, ly0, ..., lx4, ly4]
  relative paths resolve against the CSV's folder"""
MORPH_LAYOUT = """\
  <data_dir>/<one .csv> with a header naming path (or photo/file/filename), age,
  gender (M/F), race (W/B/A/H/O) and optionally a subject id (id_num/subject);
  relative image paths resolve against the CSV's folder"""

_PATH_COLUMNS = ("path", "photo", "filepath", "filename", "file", "image", "img", "imagepath")
_SUBJECT_COLUMNS = ("subject", "subjectid", "idnum", "personid", "person", "id")


def _find_csv(data_dir, name: str, layout: str, prefer: str) -> pathlib.Path:
    path = pathlib.Path(data_dir).expanduser()
    if path.is_file():
        return path
    root = require_dir(path, name, layout)
    csvs = sorted(root.glob("*.csv"))
    if len(csvs) > 1:
        csvs = [p for p in csvs if prefer in p.name.lower()] or csvs
    if len(csvs) != 1:
        raise FileNotFoundError(
            f"{name}: expected one .csv in {root}, found {[p.name for p in csvs]}; "
            f"pass the CSV file itself. Expected layout:\n{layout}"
        )
    return csvs[0]


def _read_tabular(name, csv_path, layout, *, image_dir=None, min_age=0, max_age=116):
    table = read_table(csv_path)
    if not table:
        raise ValueError(f"{name}: {csv_path} is empty. Expected layout:\n{layout}")
    header, body = table[0], table[1:]
    cols = {
        "path": pick_column(header, _PATH_COLUMNS),
        "age": pick_column(header, ("age", "realage")),
        "gender": pick_column(header, ("gender", "sex")),
        "race": pick_column(header, ("race", "ethnicity")),
        "subject": pick_column(header, _SUBJECT_COLUMNS),
        "age_std": pick_column(header, ("agestd", "std")),
        "group": pick_column(header, ("group", "agegroup")),
    }
    if cols["path"] is None or cols["age"] is None:
        raise ValueError(
            f"{name}: {csv_path.name} needs path and age columns; got {header}. Expected layout:\n{layout}"
        )
    marks = [pick_column(header, (f"{axis}{k}",)) for k in range(5) for axis in ("lx", "ly")]
    base = pathlib.Path(image_dir).expanduser() if image_dir else csv_path.parent
    rows = Rows()

    def cell(row, key, default=""):
        i = cols[key]
        return row[i] if i is not None and i < len(row) else default

    for row in body:
        age = rows.checked_age(cell(row, "age"), min_age, max_age, cell(row, "path") or row)
        if age is None:
            continue
        path = base / cell(row, "path")
        if not cell(row, "path") or not path.is_file():
            rows.skipped.add("missing file", cell(row, "path"))
            continue
        landmarks = None
        if None not in marks:
            values = [to_float(row[i]) if i < len(row) else None for i in marks]
            if None not in values:
                landmarks = np.asarray(values, dtype="float32").reshape(5, 2)
        std, group = to_float(cell(row, "age_std")), to_float(cell(row, "group"))
        rows.add(
            path, age,
            gender=gender_code(cell(row, "gender")), race=race_code(cell(row, "race")),
            subject=cell(row, "subject"), age_std=np.nan if std is None else std,
            group=-1 if group is None else int(group), landmarks=landmarks,
        )  # fmt: skip
    return rows.build(name)


def read_morph2(data_dir, *, image_dir=None, min_age: float = 0, max_age: float = 116) -> AgeDataset:
    """MORPH II (Album 2) from a metadata CSV as commonly distributed.

    Expected layout: `data_dir` is the CSV, or a folder with one `.csv` (a
    name containing "morph" wins when there are several):

    ```
    photo,age,gender,race,id_num              # header; columns in any order
    Album2/246186_1M47.JPG,47,M,B,246186
    ```

    Columns are matched by name, case and punctuation ignored: path = path /
    photo / filepath / filename / file / image; age; gender / sex (M, F,
    male, female, 0, 1); race / ethnicity (W White, B Black, A Asian,
    I Indian, H Hispanic and O Other -> 4 "Others", or UTKFace codes 0-4);
    subject = subject / subject_id / id_num / person_id / id (optional, but
    `split(..., "morph_caucasian_subject")` is subject-exclusive only with
    it). `official` is empty: use `split(ds, "random")` (80/20),
    `split(ds, "morph_caucasian")` (the papers' Caucasian subset) or
    `split(ds, "morph_caucasian_subject")`.

    Args:
        data_dir: the CSV or its folder.
        image_dir: folder relative image paths resolve against (default: the
            CSV's folder).
        min_age, max_age: inclusive valid age range.

    Returns:
        An `AgeDataset` with age, gender, race and subject.
    """
    csv_path = _find_csv(data_dir, "morph2", MORPH_LAYOUT, prefer="morph")
    return _read_tabular("morph2", csv_path, MORPH_LAYOUT, image_dir=image_dir,
                         min_age=min_age, max_age=max_age)  # fmt: skip


def read_csv(data_dir, *, image_dir=None, name: str = "csv", min_age: float = 0,
             max_age: float = 116) -> AgeDataset:  # fmt: skip
    """Any dataset described by a CSV with a header.

    Columns (matched by name, case and punctuation ignored): `path` and `age`
    (required); optional `gender` (0/1 or M/F), `subject`, `race` (0-4 or
    words), `age_std`, `group` and the 5 landmarks `lx0, ly0, ..., lx4, ly4`
    (pixels). The delimiter (comma, semicolon, tab) is sniffed. Relative
    paths resolve against the CSV's folder (or `image_dir`); rows whose
    image is missing are skipped as "missing file".

    Args:
        data_dir: the CSV, or a folder holding exactly one `.csv`.
        image_dir: folder relative paths resolve against.
        name: the dataset name to report.
        min_age, max_age: inclusive valid age range.

    Returns:
        An `AgeDataset`.
    """
    csv_path = _find_csv(data_dir, name, CSV_LAYOUT, prefer=name)
    return _read_tabular(name, csv_path, CSV_LAYOUT, image_dir=image_dir,
                         min_age=min_age, max_age=max_age)  # fmt: skip
