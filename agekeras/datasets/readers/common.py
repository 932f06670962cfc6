"""What every reader shares: the rows it collects, folder checks, label tables, label codes.

Race codes follow UTKFace: 0 White, 1 Black, 2 Asian, 3 Indian, 4 Others.
Gender: 0 male, 1 female, -1 unknown.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import pathlib
import re
from collections.abc import Callable

import numpy as np

from ..base import AgeDataset, SkipReport

_GENDER_WORDS = {"m": 0, "male": 0, "man": 0, "0": 0, "f": 1, "female": 1, "woman": 1, "1": 1}
_RACE_WORDS = {
    "w": 0, "white": 0, "caucasian": 0,
    "b": 1, "black": 1, "african": 1, "african-american": 1,
    "a": 2, "asian": 2,
    "i": 3, "indian": 3,
    "h": 4, "hispanic": 4, "o": 4, "other": 4, "others": 4,
}  # fmt: skip
_NAN_LANDMARKS = np.full((5, 2), np.nan, dtype="float32")


@dataclasses.dataclass
class Rows:
    """Column lists a reader appends to, then turns into an `AgeDataset`.

    Rows it cannot use go to `skipped` with their reason.

    Example:

    >>> rows = Rows()
    >>> rows.add("a.jpg", 30, gender=1, split="train")
    >>> rows.checked_age("130", 0, 116, "b.jpg") is None  # counted as "age out of range"
    True
    >>> ds = rows.build("mine")
    >>> len(ds), ds.official["train"].tolist(), ds.skipped.total
    (1, [0], 1)
    """

    paths: list = dataclasses.field(default_factory=list)
    age: list = dataclasses.field(default_factory=list)
    gender: list = dataclasses.field(default_factory=list)
    race: list = dataclasses.field(default_factory=list)
    subject: list = dataclasses.field(default_factory=list)
    age_std: list = dataclasses.field(default_factory=list)
    group: list = dataclasses.field(default_factory=list)
    landmarks: list = dataclasses.field(default_factory=list)
    split: list = dataclasses.field(default_factory=list)
    skipped: SkipReport = dataclasses.field(default_factory=SkipReport)

    def add(self, path, age, *, gender=-1, race=-1, subject="", age_std=np.nan,
            group=-1, landmarks=None, split=""):  # fmt: skip
        """Append one row (the sentinels of `agekeras.datasets.base` by default;
        `landmarks` (5, 2) or None for NaN; `split` an official split name or "")."""
        self.paths.append(os.fspath(path))
        self.age.append(age)
        self.gender.append(gender)
        self.race.append(race)
        self.subject.append(subject)
        self.age_std.append(age_std)
        self.group.append(group)
        self.landmarks.append(_NAN_LANDMARKS if landmarks is None else landmarks)
        self.split.append(split)

    def checked_age(self, value, min_age: float, max_age: float, example) -> float | None:
        """`value` as an age in `[min_age, max_age]`, or None after counting the
        row in `skipped` as "missing age" (not a number) or "age out of range"
        (`example` names the row)."""
        age = to_float(value)
        if age is None:
            self.skipped.add("missing age", example)
        elif not in_range(age, min_age, max_age):
            self.skipped.add("age out of range", example)
            return None
        return age

    def build(self, name: str, *, group_names: tuple = ()) -> AgeDataset:
        """The `AgeDataset` of the rows; `official` maps each split named in
        `add` to its row indices."""
        split = np.asarray(self.split, dtype=str)
        official = {s: np.flatnonzero(split == s) for s in dict.fromkeys(self.split) if s}
        return AgeDataset(
            name=name,
            paths=np.asarray(self.paths, dtype=str),
            age=np.asarray(self.age, dtype="float32"),
            gender=np.asarray(self.gender, dtype="int32"),
            race=np.asarray(self.race, dtype="int32"),
            subject=np.asarray(self.subject, dtype=str),
            age_std=np.asarray(self.age_std, dtype="float32"),
            group=np.asarray(self.group, dtype="int32"),
            landmarks=np.asarray(self.landmarks, dtype="float32").reshape(-1, 5, 2),
            official=official,
            group_names=group_names,
            skipped=self.skipped,
        )


def require_dir(data_dir, name: str, layout: str) -> pathlib.Path:
    """`data_dir` as a path, when it is a folder holding something.

    Args:
        data_dir: the dataset folder.
        name: the dataset, for the message.
        layout: the expected layout, for the message.

    Returns:
        The folder (`~` expanded).

    Raises:
        FileNotFoundError: missing or empty, with the expected layout.

    Example:

    >>> require_dir("/nowhere", "afad", "<age>/111/*.jpg")  # doctest: +SKIP
    FileNotFoundError: afad: /nowhere is missing or empty. Expected layout: ...
    """
    root = pathlib.Path(data_dir).expanduser()
    if not root.is_dir() or not any(root.iterdir()):
        raise FileNotFoundError(f"{name}: {root} is missing or empty. Expected layout:\n{layout}")
    return root


def find_root(root: pathlib.Path, is_root: Callable[[pathlib.Path], bool], name: str, layout: str) -> pathlib.Path:
    """`root` or its only sub-folder satisfying `is_root` (archives unpack into one).

    Args:
        root: the folder given.
        is_root: whether a folder is the dataset's top folder.
        name, layout: for the message.

    Returns:
        The dataset's top folder.

    Raises:
        FileNotFoundError: neither `root` nor exactly one sub-folder matches.

    Example:

    >>> find_root(path, lambda p: (p / "list").is_dir(), "megaage_asian", layout)  # doctest: +SKIP
    PosixPath('.../megaage_asian')
    """
    if is_root(root):
        return root
    candidates = sorted(p for p in root.iterdir() if p.is_dir() and is_root(p))
    if len(candidates) == 1:
        return candidates[0]
    raise FileNotFoundError(
        f"{name}: {root} does not look like this dataset"
        + (f" (several candidates: {[c.name for c in candidates]})" if candidates else "")
        + f". Expected layout:\n{layout}"
    )


def in_range(age: float, min_age: float, max_age: float) -> bool:
    """Whether `min_age <= age <= max_age`.

    Example:

    >>> in_range(117, 0, 116)
    False
    """
    return min_age <= age <= max_age


def column_key(column: str) -> str:
    """A column or folder name compared without case and punctuation.

    Example:

    >>> column_key("Apparent_Age-Avg")
    'apparentageavg'
    """
    return re.sub(r"[^a-z0-9]", "", column.lower())


def pick_column(header: list[str], aliases: tuple[str, ...]) -> int | None:
    """Index of the first column of `header` whose `column_key` is in `aliases`.

    Args:
        header: the column names.
        aliases: accepted keys, best first.

    Returns:
        The column index, or None.

    Example:

    >>> pick_column(["File Name", "Age"], ("path", "filename"))
    0
    """
    keys = [column_key(h) for h in header]
    for alias in aliases:
        if alias in keys:
            return keys.index(alias)
    return None


def read_table(path: pathlib.Path) -> list[list[str]]:
    """Rows of a comma, semicolon or tab separated file, the delimiter sniffed.

    Args:
        path: the file (UTF-8, a byte-order mark allowed).

    Returns:
        Non-empty rows, cells stripped.

    Example:

    >>> read_table(pathlib.Path("Train.csv"))[0]  # doctest: +SKIP
    ['image_0.jpg', '20.5', '3.25']
    """
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    return [[c.strip() for c in row] for row in csv.reader(text.splitlines(), dialect) if row]


def to_float(value) -> float | None:
    """`value` as a finite float, or None.

    Example:

    >>> to_float("20.5"), to_float("None"), to_float("nan")
    (20.5, None, None)
    """
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def gender_code(value) -> int:
    """0 male, 1 female, -1 unknown, from a label such as "M", "female" or "1".

    Example:

    >>> gender_code("F"), gender_code("u")
    (1, -1)
    """
    return _GENDER_WORDS.get(str(value).strip().lower(), -1)


def race_code(value) -> int:
    """The UTKFace race code (0-4, -1 unknown) of a code or a word.

    W White, B Black, A Asian, I Indian; H Hispanic and O Other are 4 "Others".

    Example:

    >>> race_code("B"), race_code("Hispanic"), race_code("3"), race_code("?")
    (1, 4, 3, -1)
    """
    v = str(value).strip().lower()
    if v.isdigit() and int(v) <= 4:
        return int(v)
    return _RACE_WORDS.get(v, -1)
