"""`python -m agekeras align` (`agekeras.datasets.align.batch.add_arguments` + `run`) and its
script `data_prep/align_faces.py`; the jobs themselves are tested in tests/datasets/test_align.py."""

import argparse
import ast
import pathlib

import numpy as np
import pytest
from PIL import Image

from agekeras.datasets import AgeDataset, load
from agekeras.datasets import align
from agekeras.datasets.align import batch
from data_prep import align_faces as script

PACKAGE = pathlib.Path(batch.__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AGEKERAS_CACHE", str(tmp_path / "cache"))


def parse(*argv):
    return batch.add_arguments(argparse.ArgumentParser()).parse_args(argv)


def test_arguments_parse_on_a_fresh_parser(tmp_path):
    args = parse("fgnet", "--data-dir", "d")
    assert (args.name, args.data_dir, args.out, args.missing, args.aligned_dir, args.fit_template) == (
        "fgnet", "d", None, "fill", None, None)  # fmt: skip
    assert (args.aligned_template, args.aligned_size, args.min_confidence, args.force) == ("dhaa", 256, 0.9, False)
    args = parse("utkface", "--data-dir", "d", "--out", str(tmp_path / "m.csv"), "--missing", "drop",
                 "--no-keep-existing", "--aligned-dir", "a", "--aligned-template", "utkface", "--fit-template", "200")
    assert (args.out, args.missing, args.no_keep_existing, args.aligned_template, args.fit_template) == (
        tmp_path / "m.csv", "drop", True, "utkface", 200)  # fmt: skip
    for bad in (["imdb_wiki", "--data-dir", "d"], ["fgnet"], ["fgnet", "--data-dir", "d", "--missing", "skip"]):
        with pytest.raises(SystemExit):
            parse(*bad)


def face_files(tmp_path, n=2, size=96):
    mem = load("synthetic", n=n, image_size=size, seed=0)
    paths = []
    for i, im in enumerate(mem.images):
        paths.append(str(tmp_path / f"face_{i}.png"))
        Image.fromarray(im).save(paths[-1])
    return AgeDataset(name="files", age=mem.age, paths=paths, gender=mem.gender, landmarks=mem.landmarks)


def test_run_reuses_an_existing_csv_fits_a_template_and_writes_aligned_crops(tmp_path, capsys):
    ds = face_files(tmp_path)
    out = tmp_path / "marks.csv"
    batch.write_landmarks_csv(ds, out, detector=object(), log=None)  # every face has the dataset's landmarks
    code = batch.run(parse("utkface", "--data-dir", str(tmp_path), "--out", str(out), "--aligned-dir",
                           str(tmp_path / "aligned"), "--aligned-size", "48", "--aligned-template", "utkface"))
    assert code == 0 and f"{out} exists" in capsys.readouterr().out
    aligned = load("csv", tmp_path / "aligned" / "landmarks.csv")
    assert len(aligned) == 2 and Image.open(aligned.paths[0]).size == (48, 48)
    # utkface template (five points, least squares): the eyes land near it.
    want = align.TEMPLATES["utkface"].landmarks(48)[:2].mean(0)
    np.testing.assert_allclose(aligned.landmarks[0, :2].mean(0), want, atol=2.0)
    # No point found by MTCNN in this CSV: nothing to fit a template to, one clear line.
    assert batch.run(parse("utkface", "--data-dir", str(tmp_path), "--out", str(out), "--fit-template", "96")) == 2
    assert "no row with landmarks found by MTCNN" in capsys.readouterr().err


def test_run_on_a_missing_dataset_says_how_to_get_it(tmp_path, capsys):
    assert batch.run(parse("adience", "--data-dir", str(tmp_path / "none"))) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: No adience data at") and "Expected layout" in err


def test_script_is_the_same_command(tmp_path):
    ds = face_files(tmp_path)
    out = tmp_path / "marks.csv"
    batch.write_landmarks_csv(ds, out, detector=object(), log=None)
    assert script.main(["utkface", "--data-dir", str(tmp_path), "--out", str(out), "--aligned-dir",
                        str(tmp_path / "crops"), "--aligned-size", "32"]) == 0
    assert len(load("csv", tmp_path / "crops" / "landmarks.csv")) == 2


def _top_level_imports(path):
    """Modules imported when `path` is imported (function bodies excluded)."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the package
                package = path.parent.relative_to(PACKAGE.parent).parts
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ((node.module,) if node.module else ()))
            yield base
            yield from (f"{base}.{a.name}" for a in node.names)


@pytest.mark.parametrize("module", ["agekeras.datasets.download", "agekeras.datasets.align.batch"])
def test_command_modules_import_nothing_heavy(module):
    """Building the parser of `python -m agekeras download|align` loads no
    TensorFlow, Keras, MTCNN, TFDS or scikit-learn: every module it imports
    (inside agekeras.datasets, recursively) imports those only inside functions."""
    heavy = ("tensorflow", "keras", "mtcnn", "tensorflow_datasets", "jax", "torch", "sklearn", "scipy")
    seen, todo, bad = set(), [module], []
    while todo:
        name = todo.pop()
        for candidate in (PACKAGE.parent / (name.replace(".", "/") + ".py"),
                          PACKAGE.parent / name.replace(".", "/") / "__init__.py"):  # fmt: skip
            if candidate.is_file() and candidate not in seen:
                seen.add(candidate)
                for imported in _top_level_imports(candidate):
                    if imported.split(".")[0] in heavy:
                        bad.append(f"{candidate.relative_to(PACKAGE.parent)} imports {imported}")
                    elif imported.startswith("agekeras.datasets"):
                        todo.append(imported)
                # importing a module runs its packages' __init__ too
                parent = candidate.parent / "__init__.py"
                if parent.is_file() and parent not in seen and PACKAGE in parent.parents:
                    todo.append(".".join(parent.parent.relative_to(PACKAGE.parent).parts))
    assert len(seen) > 5 and not bad, bad
