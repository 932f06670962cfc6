"""Evaluation protocols: split an `AgeDataset` into train / test (/ val).

| protocol                  | test set                                   | needs      |
|---------------------------|--------------------------------------------|------------|
| `random`                  | seeded `test_fraction` of the rows         | -          |
| `subject_kfold`           | fold `fold` of `k` subject-exclusive folds | `subject`  |
| `lopo`                    | every image of the `fold`-th subject (sorted ids) | `subject` |
| `official`                | the dataset's own test split / fold        | `official` |
| `morph_caucasian`         | seeded random `test_fraction` of a seeded random subset of `subset_size` White (race 0) rows | `race` |
| `morph_caucasian_subject` | seeded subject-exclusive `test_fraction` of all the White (race 0) rows | `race` |

`random` ignores subjects: on datasets with several images per person
(FG-NET, Adience, MORPH) the same face can land in train and test; use a
subject protocol there.

`morph_caucasian` is the "Caucasian subset" protocol of the MORPH II
papers: a random subset of `subset_size` images of White subjects (race ==
0), split at random into 80 % train and 20 % test, by rows, so one
person's photos can be on both sides. The AL-ResNets / AL-RoR paper draws
5,475 images (`MORPH_CAUCASIAN_SIZE`, the default); DHAA's "partial 80-20"
uses 5,493 (`subset_size=5493`). Both draws are seeded: the same seed gives
the same subset and split.

`morph_caucasian_subject` is our stricter variant: every White row, split
by subject (`GroupShuffleSplit` on `subject`) so that nobody is in both
train and test; without subject ids it falls back to rows, with a warning.
Its numbers are not comparable with the papers'.

`official`: with folds `fold_0`..`fold_{m-1}` (Adience), test = `fold_{fold}`
and train = the other folds; otherwise train = "train" and test = "test"
(or "valid" when there is no test split, as for LAP 2015 without test
labels). When the dataset also ships "valid" next to "test" (LAP, APPA-REAL),
it is returned as "val" and `val_fraction` is not used.

Determinism: every random choice goes through scikit-learn with
`random_state=seed`, or NumPy's `default_rng(seed)` for `morph_caucasian`. Readers emit rows in a stable, sorted order, so the same
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

from .base import AgeDataset

logger = logging.getLogger("agekeras.datasets")

_GROUPED = ("subject_kfold", "lopo", "morph_caucasian_subject")

#: Images in the MORPH II Caucasian subset of the AL-ResNets / AL-RoR paper
#: (DHAA's partial 80-20 protocol uses 5,493).
MORPH_CAUCASIAN_SIZE = 5475


def protocols() -> list[str]:
    """Names accepted by `split`."""
    return ["random", "subject_kfold", "lopo", "official", "morph_caucasian", "morph_caucasian_subject"]


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
    subset_size: int = MORPH_CAUCASIAN_SIZE,
) -> dict[str, AgeDataset]:
    """Split `ds` by an evaluation protocol (see the module docstring).

    Args:
        ds: the dataset.
        protocol: one of `protocols()`.
        seed: random state of every random choice; same seed, same split.
        fold: which fold is the test set (`subject_kfold`, `lopo`, Adience
            `official`).
        k: number of folds of `subject_kfold`.
        test_fraction: test share for `random` and the `morph_caucasian`
            protocols.
        val_fraction: share of the training rows moved to "val" (0 = none).
        subset_size: images of White subjects drawn by `morph_caucasian`
            (5,475 in the AL paper, 5,493 in DHAA's).

    Returns:
        {"train": ..., "test": ...} plus "val" when `val_fraction > 0` or the
        dataset ships a validation split. Train, val and test are disjoint.
    """
    # scikit-learn (and SciPy) load here, not when `agekeras.datasets` is imported.
    from sklearn.model_selection import GroupKFold, GroupShuffleSplit, LeaveOneGroupOut, train_test_split

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
    elif protocol == "morph_caucasian":
        train, test = _morph_caucasian(ds, subset_size, test_fraction, seed)
    else:
        white = _white_rows(ds, protocol, 2)
        groups = ds.subject[white]
        if np.any(groups == ""):
            logger.warning("%s: no subject ids; morph_caucasian_subject splits rows, not subjects.", ds.name)
            groups = white.astype(str)
        splitter = GroupShuffleSplit(n_splits=1, test_size=test_fraction, random_state=seed)
        train, test = (white[i] for i in next(splitter.split(white, groups=groups)))
    if val is None and val_fraction > 0:
        train, val = _carve(ds, train, val_fraction, seed, grouped=protocol in _GROUPED)
    out = {"train": ds.subset(np.sort(train)), "test": ds.subset(np.sort(test))}
    if val is not None:
        out["val"] = ds.subset(np.sort(val))
    return out


def _white_rows(ds: AgeDataset, protocol: str, needed: int, hint: str = "") -> np.ndarray:
    white = np.flatnonzero(ds.race == 0)
    if len(white) < needed:
        raise ValueError(
            f"{protocol} needs {needed} rows with race == 0 (White); {ds.name} has {len(white)}{hint}."
        )
    return white


def _morph_caucasian(ds: AgeDataset, subset_size: int, test_fraction: float, seed: int):
    """The papers' protocol: `subset_size` White rows drawn at random, then a random row split."""
    if int(subset_size) != subset_size or subset_size < 2:
        raise ValueError(f"morph_caucasian: subset_size must be an integer >= 2; got {subset_size}.")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"morph_caucasian: test_fraction must be in (0, 1); got {test_fraction}.")
    white = _white_rows(ds, "morph_caucasian", int(subset_size), hint=" (a smaller subset: subset_size=N)")
    rng = np.random.default_rng(seed)
    subset = rng.choice(white, size=int(subset_size), replace=False)
    order = rng.permutation(subset)
    n_test = int(np.ceil(test_fraction * len(order)))
    return order[n_test:], order[:n_test]


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
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    if grouped and np.all(ds.subject[train] != ""):
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        keep, val = next(splitter.split(train, groups=ds.subject[train]))
        return train[keep], train[val]
    return tuple(train_test_split(train, test_size=fraction, random_state=seed, shuffle=True))
