"""The one in-memory form every age dataset takes: `AgeDataset`.

A reader (UTKFace, AFAD, FG-NET, ...) turns a folder into an `AgeDataset`: a
table of columns, one row per face. Images are either files (`paths`) or, for
the procedural `synthetic` set, a uint8 array (`images`). Unknown labels use
sentinels so that every column is a dense NumPy array:

| column      | dtype    | unknown  |
|-------------|----------|----------|
| `paths`     | str      | (absent when `images` is set) |
| `images`    | uint8 (n, H, W, 3) | (absent when `paths` is set) |
| `age`       | float32  | never: rows without an age are skipped |
| `gender`    | int32    | -1 (0 male, 1 female) |
| `race`      | int32    | -1 (UTKFace codes) |
| `subject`   | str      | "" |
| `age_std`   | float32  | nan (apparent-age std, LAP/APPA-REAL) |
| `group`     | int32    | -1 (age-group index, e.g. Adience's 8 groups) |
| `landmarks` | float32 (n, 5, 2) | nan; pixel (x, y) of left eye, right eye, nose tip, left and right mouth corner, "left" = image left |

`official` maps a split name ("train", "test", "fold_0", ...) to row indices
where the dataset ships its own protocol. `skipped` counts rows dropped while
reading, by reason, with a few example names each (see `SkipReport`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict

import numpy as np

logger = logging.getLogger("agekeras.datasets")

COLUMNS = ("age", "gender", "race", "subject", "age_std", "group", "landmarks")


@dataclasses.dataclass
class SkipReport:
    """Counts of rows skipped while reading a dataset, by reason.

    Readers call `add(reason, name)` for each bad row and `warn(dataset_name)`
    once at the end: a single summary warning with counts and up to
    `max_examples` names per reason. Nothing is skipped silently.
    """

    counts: dict = dataclasses.field(default_factory=lambda: defaultdict(int))
    examples: dict = dataclasses.field(default_factory=lambda: defaultdict(list))
    max_examples: int = 3

    def add(self, reason: str, name: str) -> None:
        self.counts[reason] += 1
        if len(self.examples[reason]) < self.max_examples:
            self.examples[reason].append(str(name))

    def merge(self, other: "SkipReport") -> None:
        for reason, n in other.counts.items():
            self.counts[reason] += n
            for name in other.examples[reason]:
                if len(self.examples[reason]) < self.max_examples:
                    self.examples[reason].append(name)

    @property
    def total(self) -> int:
        return int(sum(self.counts.values()))

    def as_dict(self) -> dict:
        return {
            r: {"count": int(n), "examples": list(self.examples[r])}
            for r, n in sorted(self.counts.items())
        }

    def summary(self, dataset_name: str = "dataset") -> str:
        if not self.total:
            return f"{dataset_name}: nothing skipped"
        parts = [
            f"{n} {r} (e.g. {', '.join(self.examples[r])})"
            for r, n in sorted(self.counts.items())
        ]
        return f"{dataset_name}: skipped {self.total} rows: " + "; ".join(parts)

    def warn(self, dataset_name: str = "dataset") -> None:
        if self.total:
            logger.warning(self.summary(dataset_name))


@dataclasses.dataclass
class AgeDataset:
    """A face-age dataset as dense columns (see the module docstring).

    Args:
        name: dataset name, e.g. "utkface".
        age: float32 (n,) ages in years.
        paths: str (n,) image files, or None when `images` is given.
        images: uint8 (n, H, W, 3) images, or None when `paths` is given.
        gender, race, subject, age_std, group, landmarks: optional columns;
            missing ones are filled with their "unknown" sentinel.
        official: split name -> int64 row indices, for datasets with their own
            protocol (Adience folds, MegaAge lists, LAP train/valid/test).
        group_names: names of the age groups when `group` is used.
        skipped: what the reader dropped, and why.
    """

    name: str
    age: np.ndarray
    paths: np.ndarray | None = None
    images: np.ndarray | None = None
    gender: np.ndarray | None = None
    race: np.ndarray | None = None
    subject: np.ndarray | None = None
    age_std: np.ndarray | None = None
    group: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    official: dict = dataclasses.field(default_factory=dict)
    group_names: tuple = ()
    skipped: SkipReport = dataclasses.field(default_factory=SkipReport)

    def __post_init__(self):
        self.age = np.asarray(self.age, dtype="float32").reshape(-1)
        n = len(self.age)
        if (self.paths is None) == (self.images is None):
            raise ValueError("AgeDataset needs exactly one of `paths` or `images`.")
        if self.paths is not None:
            self.paths = np.asarray(self.paths, dtype=str).reshape(-1)
            if len(self.paths) != n:
                raise ValueError(f"{len(self.paths)} paths for {n} ages.")
        else:
            self.images = np.asarray(self.images)
            if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
                raise ValueError(
                    "`images` must be uint8 of shape (n, H, W, 3); got "
                    f"{self.images.dtype} {self.images.shape}."
                )
            if len(self.images) != n:
                raise ValueError(f"{len(self.images)} images for {n} ages.")
        self.gender = _column(self.gender, n, "int32", -1)
        self.race = _column(self.race, n, "int32", -1)
        self.group = _column(self.group, n, "int32", -1)
        self.age_std = _column(self.age_std, n, "float32", np.nan)
        self.subject = (
            np.full(n, "", dtype=object).astype(str)
            if self.subject is None
            else np.asarray(self.subject, dtype=str).reshape(-1)
        )
        if self.landmarks is None:
            self.landmarks = np.full((n, 5, 2), np.nan, dtype="float32")
        else:
            self.landmarks = np.asarray(self.landmarks, dtype="float32")
            if self.landmarks.shape != (n, 5, 2):
                raise ValueError(f"landmarks must be (n, 5, 2); got {self.landmarks.shape}.")
        for col in ("gender", "race", "group", "age_std", "subject"):
            if len(getattr(self, col)) != n:
                raise ValueError(f"column {col!r} has {len(getattr(self, col))} rows, expected {n}.")
        self.official = {k: np.asarray(v, dtype="int64") for k, v in self.official.items()}

    def __len__(self) -> int:
        return len(self.age)

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    @property
    def has_gender(self) -> bool:
        return bool(np.any(self.gender >= 0))

    @property
    def landmarks_found(self) -> np.ndarray:
        """`(n,)` bool: the faces whose landmarks are all finite (NaN marks "not found")."""
        return np.all(np.isfinite(self.landmarks), axis=(1, 2))

    @property
    def has_landmarks(self) -> bool:
        """Every face has landmarks (and there is at least one face)."""
        return bool(self.landmarks_found.all()) and len(self) > 0

    def age_range(self) -> tuple[int, int]:
        """(min, max) integer age, e.g. to size a DEX or CORAL head."""
        return int(np.floor(self.age.min())), int(np.ceil(self.age.max()))

    def subset(self, indices, name: str | None = None) -> "AgeDataset":
        """Rows `indices` as a new dataset (official splits are dropped)."""
        idx = np.asarray(indices, dtype="int64")
        return AgeDataset(
            name=name or self.name,
            age=self.age[idx],
            paths=None if self.paths is None else self.paths[idx],
            images=None if self.images is None else self.images[idx],
            gender=self.gender[idx],
            race=self.race[idx],
            subject=self.subject[idx],
            age_std=self.age_std[idx],
            group=self.group[idx],
            landmarks=self.landmarks[idx],
            group_names=self.group_names,
            skipped=self.skipped,
        )

    def describe(self) -> dict:
        """Counts and label ranges, JSON-ready."""
        d = {
            "name": self.name,
            "n": len(self),
            "age_min": float(self.age.min()) if len(self) else None,
            "age_max": float(self.age.max()) if len(self) else None,
            "age_median": float(np.median(self.age)) if len(self) else None,
            "subjects": int(len(set(self.subject))) if np.any(self.subject != "") else None,
            "has_gender": self.has_gender,
            "has_landmarks": self.has_landmarks,
            "official_splits": sorted(self.official),
            "skipped": self.skipped.as_dict(),
        }
        return d


def _column(values, n, dtype, fill):
    if values is None:
        return np.full(n, fill, dtype=dtype)
    return np.asarray(values, dtype=dtype).reshape(-1)
