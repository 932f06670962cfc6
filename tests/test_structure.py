"""The package's import direction: layers, losses, metrics <- models <- training <- experiments <- cli.

Read from the source (imports as written), so that a lazy import inside a
function counts as much as one at the top of a file.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "agekeras"

# module folder/file -> agekeras subpackages it must never import
FORBIDDEN = {
    "layers": ("models", "training", "experiments", "cli", "datasets", "plots", "inference"),
    "losses.py": ("models", "training", "experiments", "cli", "datasets", "plots", "inference"),
    "metrics.py": ("models", "training", "experiments", "cli", "datasets", "plots", "inference"),
    "models": ("training", "experiments", "cli", "datasets", "plots", "inference"),
    "training.py": ("experiments", "cli", "inference"),
    "experiments": ("cli",),
    "datasets": ("layers", "models", "training", "experiments", "cli", "plots", "losses", "metrics", "inference"),
    "plots.py": ("layers", "models", "training", "experiments", "cli", "datasets", "losses", "metrics", "inference"),
    "ages.py": ("layers", "models", "training", "experiments", "cli", "datasets", "plots", "losses", "metrics"),
}


def _agekeras_imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: inside the same subpackage
                continue
            names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "agekeras" and len(parts) > 1:
                yield parts[1], node.lineno
        if isinstance(node, ast.ImportFrom) and node.module == "agekeras":
            for a in node.names:
                yield a.name, node.lineno


def _files(key):
    target = PACKAGE / key
    return sorted(target.rglob("*.py")) if target.is_dir() else [target]


@pytest.mark.parametrize("key", sorted(FORBIDDEN))
def test_imports_run_one_way(key):
    bad = []
    for path in _files(key):
        for sub, line in _agekeras_imports(path):
            if sub in FORBIDDEN[key]:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports agekeras.{sub}")
    assert not bad, "\n".join(bad)


def test_models_never_import_matplotlib_or_private_keras_cv():
    bad = []
    for path in _files("models"):
        text = path.read_text()
        for needle in ("matplotlib", "keras_cv.src", "import resource"):
            if needle in text:
                bad.append(f"{path.name}: {needle}")
    assert not bad, bad


def test_no_sys_path_insert_anywhere():
    root = PACKAGE.parent
    offenders = []
    for folder in ("agekeras", "data_prep", "benchmarks", "tests", "notebooks"):
        for path in (root / folder).rglob("*"):
            if path.suffix in (".py", ".ipynb") and path != pathlib.Path(__file__).resolve():
                if "sys.path.insert" in path.read_text():
                    offenders.append(str(path.relative_to(root)))
    assert not offenders, offenders


def test_importing_the_layers_loads_neither_tfds_nor_datasets():
    code = (
        "import sys, agekeras, agekeras.layers, agekeras.models; "
        "print('tensorflow_datasets' in sys.modules, 'agekeras.datasets' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[-2:] == ["False", "False"], out
