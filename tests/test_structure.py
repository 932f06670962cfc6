"""The package's import direction: layers, losses, metrics <- models <- training <- experiments <- cli.

Read from the source (imports as written), so that a lazy import inside a
function counts as much as one at the top of a file.
"""

import ast
import pathlib
import re
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "agekeras"

# Every module and subpackage of agekeras: what a leaf module imports none of.
EVERYTHING = tuple(sorted(
    p.stem for p in PACKAGE.iterdir()
    if (p.suffix == ".py" and not p.stem.startswith("_")) or (p / "__init__.py").is_file()
))

# module folder/file -> agekeras subpackages it must never import
FORBIDDEN = {
    "layers": ("models", "training", "experiments", "cli", "datasets", "plots", "inference"),
    "losses.py": ("models", "training", "experiments", "cli", "datasets", "plots", "inference"),
    "metrics.py": ("models", "training", "experiments", "cli", "datasets", "plots", "inference"),
    "models": ("training", "experiments", "cli", "datasets", "plots", "inference", "runs", "config", "runtime",
               "callbacks", "evaluation"),
    "training.py": ("experiments", "cli", "inference"),
    # the training core: settings, run files, runtime, callbacks, evaluation (training imports them, never back)
    "runs.py": ("layers", "models", "training", "experiments", "cli", "plots", "inference", "evaluation",
                "callbacks", "runtime", "config", "losses", "metrics"),
    "config.py": ("layers", "models", "training", "experiments", "cli", "plots", "inference", "evaluation",
                  "callbacks", "runtime", "runs"),
    "runtime.py": ("layers", "models", "training", "experiments", "cli", "datasets", "plots", "inference",
                   "evaluation", "callbacks", "config", "runs"),
    "callbacks.py": ("models", "training", "experiments", "cli", "datasets", "plots", "inference", "evaluation",
                     "config"),
    "evaluation.py": ("training", "experiments", "cli", "inference", "callbacks"),
    "calibration.py": ("training", "experiments", "cli", "inference", "callbacks"),
    "experiments": ("cli",),
    "datasets": ("layers", "models", "training", "experiments", "cli", "plots", "losses", "metrics", "inference"),
    "plots": ("layers", "models", "training", "experiments", "cli", "datasets", "losses", "metrics", "inference"),
    "face_template.py": EVERYTHING,  # the five-point face: layers and datasets both use it
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


MAX_LINES = 800


def test_no_module_is_longer_than_800_lines():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules (over {MAX_LINES} lines): {long}"


# The files of a run directory: only agekeras/runs.py names them (as code, not in docstrings).
RUN_FILES = re.compile(r"(config|state|calibration)\.json|history\.csv|(best|last)\.keras|metrics[_{}\w]*\.json"
                       r"|predictions[_{}\w]*\.csv")


def _code_strings(path):
    """The string constants of a module that are not docstrings, with their lines."""
    tree = ast.parse(path.read_text())
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node.lineno, node.value


def test_run_file_names_live_in_the_runs_module_only():
    bad = [f"{p.relative_to(PACKAGE.parent)}:{line}: {text[:60]!r}"
           for p in sorted(PACKAGE.rglob("*.py")) if p.name != "runs.py"
           for line, text in _code_strings(p) if RUN_FILES.search(text)]
    assert not bad, "name run files through agekeras.runs.RunDir:\n" + "\n".join(bad)
