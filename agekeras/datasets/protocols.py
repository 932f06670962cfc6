"""Evaluation protocols: split an `AgeDataset` into train / test (/ val).

| protocol          | test set                                   | needs        |
|-------------------|--------------------------------------------|--------------|
| `random`          | seeded `test_fraction` of the rows         | -            |
| `subject_kfold`   | fold `fold` of `k` subject-exclusive folds | `subject`    |
| `lopo`            | every image of the `fold`-th subject (sorted ids) | `subject` |
| `official`        | the dataset's own test split / fold        | `official`   |
| `morph_caucasian` | seeded subject-exclusive `test_fraction` of the White (race 0) rows | `race` |

`random` ignores subjects: on datasets with several images per person
(FG-NET, Adience, MORPH) the same face can land in train and test; use a
subject protocol there.

`morph_caucasian` is the "Caucasian subset" setting of MORPH II papers: keep
the rows with race == 0 (White; about 5.5k images), then an 80/20 split.
We make that split subject-exclusive (`GroupShuffleSplit` on `subject`);
without subject ids it falls back to rows, with a warning.

`official`: with folds `fold_0`..`fold_{m-1}` (Adience), test = `fold_{fold}`
and train = the other folds; otherwise train = "train" and test = "test"
(or "valid" when there is no test split, as for LAP 2015 without test
labels). When the dataset also ships "valid" next to "test" (LAP, APPA-REAL),
it is returned as "val" and `val_fraction` is not used.

Determinism: every random choice goes through scikit-learn with
`random_state=seed`. Readers emit rows in a stable, sorted order, so the same
folder, protocol and arguments give the same split on every machine and run.
Different seeds give different splits; `fold` picks one of the `k` folds of
the same seeded partition.

`val_fraction > 0` carves a validation set out of the training rows
(a fraction of the *training* rows), subject-exclusively for the subject
protocols.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
from sklearn.model_selection import GroupKFold, GroupShuffleSplit, LeaveOneGroupOut, train_test_split

from .base import AgeDataset

logger = logging.getLogger("agekeras.datasets")

_GROUPED = ("subject_kfold", "lopo", "morph_caucasian")


def protocols() -> list[str]:
    """Names accepted by `split`."""
    return ["random", "subject_kfold", "lopo", "official", "morph_caucasian"]


def num_folds(ds: AgeDataset, protocol: str = "lopo", *, k: int = 5) -> int:
    """How many values `fold` can take for `protocol` on `ds`.

    Args:
        ds: the dataset.
        protocol: a name from `protocols()`.
        k: folds of `subject_kfold`.

    Returns:
        The number of subjects for "lopo", `k` for "subject_kfold", the
        number of `fold_*` splits for "official" (1 if it has none), else 1.
    """
    if protocol == "lopo":
        return len(np.unique(_subjects(ds, protocol)))
    if protocol == "subject_kfold":
        return k
    if protocol == "official":
        return max(1, len(_official_folds(ds)))
    return 1


def split(
    ds: AgeDataset,
    protocol: str = "random",
    *,
    seed: int = 0,
    fold: int = 0,
    k: int = 5,
    test_fraction: float = 0.2,
    val_fraction: float = 0.0,
) -> dict[str, AgeDataset]:
    """Split `ds` by an evaluation protocol (see the module docstring).

    Args:
        ds: the dataset.
        protocol: one of `protocols()`.
        seed: random state of every random choice; same seed, same split.
        fold: which fold is the test set (`subject_kfold`, `lopo`, Adience
            `official`).
        k: number of folds of `subject_kfold`.
        test_fraction: test share for `random` and `morph_caucasian`.
        val_fraction: share of the training rows moved to "val" (0 = none).

    Returns:
        {"train": ..., "test": ...} plus "val" when `val_fraction > 0` or the
        dataset ships a validation split. Train, val and test are disjoint.
    """
    if protocol not in protocols():
        raise ValueError(f"Unknown protocol {protocol!r}; choose from {protocols()}.")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1); got {val_fraction}.")
    rows = np.arange(len(ds))
    val = None
    if protocol == "random":
        train, test = train_test_split(rows, test_size=test_fraction, random_state=seed, shuffle=True)
    elif protocol == "subject_kfold":
        groups = _subjects(ds, protocol)
        n_groups = len(np.unique(groups))
        if not 2 <= k <= n_groups:
            raise ValueError(f"subject_kfold needs 2 <= k <= {n_groups} subjects; got k={k}.")
        _check_fold(fold, k, protocol)
        splitter = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
        train, test = next(itertools.islice(splitter.split(rows, groups=groups), fold, None))
    elif protocol == "lopo":
        groups = _subjects(ds, protocol)
        _check_fold(fold, len(np.unique(groups)), protocol)
        train, test = next(itertools.islice(LeaveOneGroupOut().split(rows, groups=groups), fold, None))
    elif protocol == "official":
        train, test, val = _official(ds, fold)
    else:
        white = np.flatnonzero(ds.race == 0)
        if len(white) < 2:
            raise ValueError(
                f"morph_caucasian needs rows with race == 0 (White); {ds.name} has {len(white)}."
            )
        groups = ds.subject[white]
        if np.any(groups == ""):
            logger.warning("%s: no subject ids; morph_caucasian splits rows, not subjects.", ds.name)
            groups = white.astype(str)
        splitter = GroupShuffleSplit(n_splits=1, test_size=test_fraction, random_state=seed)
        train, test = (white[i] for i in next(splitter.split(white, groups=groups)))
    if val is None and val_fraction > 0:
        train, val = _carve(ds, train, val_fraction, seed, grouped=protocol in _GROUPED)
    out = {"train": ds.subset(np.sort(train)), "test": ds.subset(np.sort(test))}
    if val is not None:
        out["val"] = ds.subset(np.sort(val))
    return out


def _check_fold(fold: int, n: int, protocol: str) -> None:
    if not 0 <= fold < n:
        raise ValueError(f"{protocol}: fold must be in [0, {n}); got {fold}.")


def _subjects(ds: AgeDataset, protocol: str) -> np.ndarray:
    missing = int(np.sum(ds.subject == ""))
    if missing:
        raise ValueError(
            f"Protocol {protocol!r} needs subject ids, but {missing} of {len(ds)} rows of "
            f"{ds.name} have none; use 'random' (or 'official' where the dataset has one)."
        )
    return ds.subject


def _official_folds(ds: AgeDataset) -> list[str]:
    folds = [name for name in ds.official if name.startswith("fold_")]
    return sorted(folds, key=lambda name: int(name.split("_")[1]))


def _official(ds: AgeDataset, fold: int):
    folds = _official_folds(ds)
    if folds:
        _check_fold(fold, len(folds), "official")
        test = ds.official[folds[fold]]
        train = np.concatenate([ds.official[f] for f in folds if f != folds[fold]])
        return train, test, None
    test_name = "test" if "test" in ds.official else "valid"
    if "train" not in ds.official or test_name not in ds.official:
        raise ValueError(
            f"{ds.name} has no official train/test split (has {sorted(ds.official)}); "
            "use 'random', 'subject_kfold' or 'lopo'."
        )
    val = ds.official["valid"] if test_name == "test" and "valid" in ds.official else None
    return ds.official["train"], ds.official[test_name], val


def _carve(ds: AgeDataset, train: np.ndarray, fraction: float, seed: int, *, grouped: bool):
    """Move `fraction` of `train` to a validation set (by subject if `grouped`)."""
    if grouped and np.all(ds.subject[train] != ""):
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        keep, val = next(splitter.split(train, groups=ds.subject[train]))
        return train[keep], train[val]
    return tuple(train_test_split(train, test_size=fraction, random_state=seed, shuffle=True))
