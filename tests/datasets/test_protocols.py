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
    assert protocols() == ["random", "subject_kfold", "lopo", "official", "morph_caucasian",
                           "morph_caucasian_subject"]
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


def morph_like(n_subjects=13_617, seed=0):
    """A MORPH II-like table: 13,617 subjects with 1-7 photos each (about 55k rows), one race per subject,
    about 77 % Black (1), 19 % White (0), the rest Asian, Indian, Others; row ids in `age`."""
    rng = np.random.default_rng(seed)
    per_subject = rng.integers(1, 8, n_subjects)
    subject_race = rng.choice([1, 0, 2, 3, 4], n_subjects, p=[0.77, 0.19, 0.01, 0.01, 0.02])
    subjects = np.repeat([f"{i:06d}" for i in range(n_subjects)], per_subject)
    n = len(subjects)
    return AgeDataset(name="morph_like", paths=[f"/m/{i}.jpg" for i in range(n)], age=np.arange(n),
                      subject=subjects, race=np.repeat(subject_race, per_subject))


def caucasian_reference(race, subset_size, seed, test_fraction=0.2):
    """The papers' protocol in plain NumPy: `subset_size` of the White rows drawn at random (seeded), then the
    subset shuffled and its first ceil(test_fraction * subset_size) rows taken as test, the rest as train."""
    white = [i for i, r in enumerate(race) if r == 0]
    rng = np.random.default_rng(seed)
    subset = rng.choice(np.array(white), size=subset_size, replace=False)
    order = rng.permutation(subset).tolist()
    n_test = -(-test_fraction * subset_size // 1)  # ceil without NumPy
    return sorted(order[int(n_test):]), sorted(order[:int(n_test)])


@pytest.fixture(scope="module")
def morph():
    return morph_like()


@pytest.mark.parametrize("subset_size, n_train, n_test", [(5475, 4380, 1095), (5493, 4394, 1099)])
def test_morph_caucasian_is_the_papers_random_subset_and_random_split(morph, subset_size, n_train, n_test):
    """AL-ResNets / AL-RoR: 5,475 Caucasian images, random 80/20; DHAA's partial 80-20: 5,493 images."""
    kwargs = {} if subset_size == 5475 else {"subset_size": subset_size}
    parts = split(morph, "morph_caucasian", seed=0, **kwargs)
    assert (len(parts["train"]), len(parts["test"])) == (n_train, n_test)
    assert (rows(parts["train"]), rows(parts["test"])) == caucasian_reference(morph.race, subset_size, 0)
    assert np.all(parts["train"].race == 0) and np.all(parts["test"].race == 0)
    assert check_partition(morph, parts) < set(np.flatnonzero(morph.race == 0))  # a subset of the White rows
    # A random row split, not a subject split: some people have photos on both sides.
    assert set(parts["train"].subject) & set(parts["test"].subject)
    assert rows(split(morph, "morph_caucasian", seed=0, **kwargs)["test"]) == rows(parts["test"])
    other = split(morph, "morph_caucasian", seed=1, **kwargs)
    assert (rows(other["train"]), rows(other["test"])) == caucasian_reference(morph.race, subset_size, 1)
    assert rows(other["test"]) != rows(parts["test"])


def test_morph_caucasian_draws_every_white_row_alike():
    """Over seeds, each White row is in the subset with probability subset / White rows, wherever it stands in
    the table (a draw of the first rows, or a fixed stride, fails this)."""
    race = np.tile([0, 1, 0, 0, 1, 0, 0, 1], 5)  # 25 White rows of 40
    ds = AgeDataset(name="tiny", paths=[f"/t/{i}" for i in range(len(race))], age=np.arange(len(race)), race=race)
    white = np.flatnonzero(race == 0)
    counts = dict.fromkeys(white.tolist(), 0)
    for seed in range(400):
        parts = split(ds, "morph_caucasian", seed=seed, subset_size=10)
        assert len(parts["train"]) == 8 and len(parts["test"]) == 2
        for i in rows(parts["train"]) + rows(parts["test"]):
            counts[i] += 1
    share = np.array(list(counts.values())) / 400
    assert np.all(np.abs(share - 10 / 25) < 0.1), share  # 0.4 each; 4.1 standard errors of 400 draws


def test_morph_caucasian_refuses_too_few_white_rows_and_val_is_random():
    ds = AgeDataset(name="m", paths=[f"/{i}" for i in range(10)], age=np.arange(10), race=[0] * 8 + [1] * 2,
                    subject=["a", "a", "b", "b", "c", "c", "d", "d", "e", "e"])
    with pytest.raises(ValueError, match=r"needs 5475 rows with race == 0 \(White\); m has 8.*subset_size"):
        split(ds, "morph_caucasian")
    parts = split(ds, "morph_caucasian", subset_size=8, val_fraction=0.25, seed=0)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [4, 2, 2]
    assert check_partition(ds, parts) == set(range(8))


def test_morph_caucasian_subject_keeps_every_white_row_and_is_subject_exclusive(morph):
    parts = split(morph, "morph_caucasian_subject", seed=0)
    white = [i for i, r in enumerate(morph.race) if r == 0]  # plain-Python reference
    assert check_partition(morph, parts) == set(white)
    assert not set(parts["train"].subject) & set(parts["test"].subject)
    white_subjects = {morph.subject[i] for i in white}
    assert len(set(parts["test"].subject)) == -(-len(white_subjects) // 5)  # ceil(0.2 x subjects)
    assert rows(split(morph, "morph_caucasian_subject", seed=0)["test"]) == rows(parts["test"])
    assert rows(split(morph, "morph_caucasian_subject", seed=1)["test"]) != rows(parts["test"])


def test_morph_caucasian_subject_without_subjects_warns(caplog):
    ds = AgeDataset(name="m", paths=[f"/{i}" for i in range(10)], age=np.arange(10), race=[0] * 8 + [1] * 2)
    parts = split(ds, "morph_caucasian_subject")
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
