"""What a student reads in notebooks 01-06, the experiment modules and the benchmarks' README speaks of the
methods and their results, not of how the code got there: no development history, no machine paths, no dataset
name a student is never given. (Genuine method words such as "fixed point" or "gamma fixed" are fine.)"""

import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0[1-6]_*.ipynb"))
MODULES = sorted((ROOT / "agekeras" / "experiments").rglob("*.py"))

#: Development history, machine paths and a dataset name a student never gets defined.
HISTORY = re.compile(
    r"\bfix(es)?\b|\bbugs?\b|before the fix|after the fix|\bpredates?\b|other jobs|this machine|utkface-dev|"
    r"\.\./shared|earlier locator|earlier methods|cpu shared",
    re.IGNORECASE,
)
#: The CPU share of other processes belongs in the benchmarks' own files, not in the course's notebooks.
CPU_SHARE = re.compile(r"others' CPU|cpu_others|other processes took", re.IGNORECASE)


def _notebook_text(path):
    return "\n".join("".join(cell["source"]) for cell in json.loads(path.read_text())["cells"])


def test_there_are_six_course_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_tell_methods_and_results_not_history(path):
    text = _notebook_text(path)
    found = [m.group(0) for pattern in (HISTORY, CPU_SHARE) for m in pattern.finditer(text)]
    assert not found, f"{path.name}: {found}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_experiment_modules_tell_methods_not_history(path):
    found = [m.group(0) for m in HISTORY.finditer(path.read_text())]
    assert not found, f"{path.relative_to(ROOT)}: {found}"


def test_benchmarks_readme_tells_measurements_not_history():
    found = [m.group(0) for m in HISTORY.finditer((ROOT / "benchmarks" / "README.md").read_text())]
    assert not found, found
