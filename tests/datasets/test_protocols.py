"""Split protocols: disjointness, coverage, subject exclusivity, determinism."""

import numpy as np
import pytest

from agekeras import datasets
from agekeras.datasets import AgeDataset, num_folds, protocols, split


def people(n_subjects=12, per_subject=(1, 5), seed=0, **kw):
    """A dataset of fake paths: subject "s03" has 1..5 images, row ids in `age`."""
    rng = np.random.default_rng(seed)
    subjects = np.repeat([f"s{i:02d}" for i in range(n_subjects)], rng.integers(*per_subject, n_subjects))
    n = len(subjects)
    return AgeDataset(name="people", paths=[f"/x/{i}.jpg" for i in range(n)], age=np.arange(n),
                      subject=subjects, **kw)  # fmt: skip


def rows(part):
    return part.age.astype(int).tolist()


def check_partition(ds, parts):
    ids = [set(rows(p)) for p in parts.values()]
    assert sum(len(s) for s in ids) == len(set().union(*ids)), "parts overlap"
    return set().union(*ids)


def test_protocol_names():
    assert protocols() == ["random", "subject_kfold", "lopo", "official", "morph_caucasian"]
    with pytest.raises(ValueError, match="choose from"):
        split(people(), "kfold")


def test_random_is_seeded_80_20_and_covering():
    ds = people(40)
    parts = split(ds, "random", seed=3)
    assert set(parts) == {"train", "test"}
    assert check_partition(ds, parts) == set(range(len(ds)))
    assert len(parts["test"]) == int(np.ceil(0.2 * len(ds)))
    assert rows(split(ds, "random", seed=3)["test"]) == rows(parts["test"])
    assert rows(split(ds, "random", seed=4)["test"]) != rows(parts["test"])
    assert parts["train"].subject.dtype.kind == "U" and parts["train"].name == "people"


@pytest.mark.parametrize("k", [3, 5])
def test_subject_kfold_folds_are_exclusive_and_cover(k):
    ds = people(17)
    tests = []
    for fold in range(k):
        parts = split(ds, "subject_kfold", fold=fold, k=k, seed=1)
        assert check_partition(ds, parts) == set(range(len(ds)))
        assert not set(parts["train"].subject) & set(parts["test"].subject)
        tests.append(rows(parts["test"]))
    assert sorted(sum(tests, [])) == list(range(len(ds)))  # every row tested exactly once
    assert num_folds(ds, "subject_kfold", k=k) == k
    same = [rows(split(ds, "subject_kfold", fold=f, k=k, seed=1)["test"]) for f in range(k)]
    other = [rows(split(ds, "subject_kfold", fold=f, k=k, seed=2)["test"]) for f in range(k)]
    assert same == tests and other != tests


def test_subject_protocols_need_subjects():
    ds = AgeDataset(name="nosubj", paths=["/a", "/b", "/c"], age=[1, 2, 3])
    for protocol in ("subject_kfold", "lopo"):
        with pytest.raises(ValueError, match="needs subject ids"):
            split(ds, protocol, k=2)
    with pytest.raises(ValueError, match="k <= 3"):
        split(people(3), "subject_kfold", k=5)


def test_lopo_one_fold_per_subject_in_sorted_order():
    ds = people(9)
    subjects = sorted(set(ds.subject))
    assert num_folds(ds, "lopo") == 9
    for fold, subject in enumerate(subjects):
        parts = split(ds, "lopo", fold=fold)
        assert set(parts["test"].subject) == {subject}
        assert subject not in set(parts["train"].subject)
        assert check_partition(ds, parts) == set(range(len(ds)))
    with pytest.raises(ValueError, match=r"fold must be in \[0, 9\)"):
        split(ds, "lopo", fold=9)


def test_val_is_carved_from_train_by_subject():
    ds = people(30)
    parts = split(ds, "subject_kfold", fold=2, val_fraction=0.25, seed=5)
    assert set(parts) == {"train", "val", "test"}
    plain = split(ds, "subject_kfold", fold=2, seed=5)
    assert rows(parts["test"]) == rows(plain["test"])
    assert sorted(rows(parts["train"]) + rows(parts["val"])) == rows(plain["train"])
    subj = [set(parts[k].subject) for k in ("train", "val", "test")]
    assert not (subj[0] & subj[1]) and not (subj[0] & subj[2]) and not (subj[1] & subj[2])
    random_parts = split(ds, "random", val_fraction=0.1)
    assert check_partition(ds, random_parts) == set(range(len(ds)))
    n_train = len(ds) - int(np.ceil(0.2 * len(ds)))
    assert len(random_parts["val"]) == int(np.ceil(0.1 * n_train))


def test_official_folds_like_adience():
    ds = people(10, official={f"fold_{k}": np.arange(len(people(10)))[k::5] for k in range(5)})
    assert num_folds(ds, "official") == 5
    for k in range(5):
        parts = split(ds, "official", fold=k)
        assert rows(parts["test"]) == ds.official[f"fold_{k}"].tolist()
        assert check_partition(ds, parts) == set(range(len(ds)))


def test_official_train_valid_test():
    n = len(people())
    ds = people(
        official={"train": np.arange(0, n - 6), "valid": np.arange(n - 6, n - 3), "test": np.arange(n - 3, n)}
    )
    parts = split(ds, "official", val_fraction=0.5)  # the shipped valid split wins
    assert rows(parts["val"]) == list(range(n - 6, n - 3))
    assert rows(parts["test"]) == list(range(n - 3, n))
    no_test = people(official={"train": np.arange(0, n - 3), "valid": np.arange(n - 3, n)})
    parts = split(no_test, "official")
    assert set(parts) == {"train", "test"} and rows(parts["test"]) == list(range(n - 3, n))
    with pytest.raises(ValueError, match="no official"):
        split(people(), "official")


def test_morph_caucasian_keeps_white_and_is_subject_exclusive():
    ds = people(40, seed=2)
    race = np.resize([0, 1, 0, 4], len(np.unique(ds.subject)))[np.unique(ds.subject, return_inverse=True)[1]]
    ds = people(40, seed=2, race=race)
    parts = split(ds, "morph_caucasian", seed=0)
    assert np.all(parts["train"].race == 0) and np.all(parts["test"].race == 0)
    assert check_partition(ds, parts) == set(np.flatnonzero(ds.race == 0))
    assert not set(parts["train"].subject) & set(parts["test"].subject)
    n_test_subjects = len(set(parts["test"].subject))
    assert n_test_subjects == int(np.ceil(0.2 * len(set(ds.subject[ds.race == 0]))))
    assert rows(split(ds, "morph_caucasian", seed=0)["test"]) == rows(parts["test"])


def test_morph_caucasian_without_subjects_warns(caplog):
    ds = AgeDataset(name="m", paths=[f"/{i}" for i in range(10)], age=np.arange(10), race=[0] * 8 + [1] * 2)
    parts = split(ds, "morph_caucasian")
    assert len(parts["test"]) == 2 and len(parts["train"]) == 6
    assert "splits rows, not subjects" in caplog.text


@pytest.mark.integration
def test_fgnet_lopo_real(fgnet_dir, agekeras_cache):
    ds = datasets.load("fgnet", fgnet_dir)
    assert num_folds(ds, "lopo") == 82
    sizes = [len(split(ds, "lopo", fold=f)["test"]) for f in range(82)]
    assert sum(sizes) == 1002
    parts = split(ds, "subject_kfold", fold=0, k=5, seed=0)
    assert not set(parts["train"].subject) & set(parts["test"].subject)
