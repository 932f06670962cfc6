"""What a student reads speaks of the methods and their results, not of how the code got there.

Every notebook (markdown and code cells, comments included) and the package's text (every module of
`agekeras`: docstrings, comments, messages) is searched for development history and development paths.
The notebooks' markdown is also searched for results of our runs typed by hand: those are rendered by
code from the committed results (`agekeras.experiments.benchmark.load_committed`), so they cannot drift.
Papers' numbers stay allowed, and so do ordinary words ("before training", "fixed point", "gamma fixed",
"shared weights", "a slower model").
"""

import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PACKAGE = sorted((ROOT / "agekeras").rglob("*.py"))

#: Development history and development paths: never in a notebook, never in the package.
HISTORY = {
    "a development data path": r"utkface-dev|\.\./shared\b|/shared/datasets\b|/work/(?:main|shared)\b",
    "a fix": r"\bfix(?:es)?\b|\bbug ?fix(?:es)?\b",
    "a bug story": r"\bbugs?\b|\bbuggy\b",
    "an earlier version": r"\bearlier (?:version|locator|code|run|release|reading|notebook|implementation)s?\b"
    r"|\b(?:older|previous) versions?\b",
    "before/after a change": r"\b(?:before|after) (?:the|our|this|that) (?:[\w-]+ ){0,2}"
    r"(?:fix(?:es)?|change|changes|rewrite|patch)\b|\bbefore/after\b",
    "predates": r"\bpredates?\b",
    "the machine it was developed on": r"\bthis machine\b|\bother jobs?\b|\bCPU shared\b|\bour machine\b",
    "a speed story": r"\b(?:trained|ran) slower\b",
}
#: Notebooks only: the CPU share of other processes is a diagnostic of the benchmark module, not course material.
NOTEBOOK_ONLY = {
    "the CPU share of other processes": r"others' CPU|\bcpu_others\b|\bother processes\b|\bshared the machine\b",
}
#: Notebook markdown only: results of our runs typed by hand.
NUMBER = r"\*{0,2}[-+]?\d+\.\d+\*{0,2}(?: ± \d+\.\d+)?"
TYPED_RESULT = {
    "a measured MAE in prose": r"\b(?:test|validation|val|best) MAE(?: of| is|:)? \*{0,2}\d+\.\d+",
    "a mean ± std over seeds": r"\d+\.\d+ ± \d+\.\d+",
    "a leader typed by hand": r"\bLeader by best validation MAE\b|\b\d+ min: `\w+` \(\d+\.\d+\)",
}


def _compile(patterns):
    return {name: re.compile(p, re.IGNORECASE) for name, p in patterns.items()}


HISTORY_RE, NOTEBOOK_ONLY_RE, TYPED_RESULT_RE = _compile(HISTORY), _compile(NOTEBOOK_ONLY), _compile(TYPED_RESULT)
#: A markdown table line of a model of the registry (a lower-case name such as `resnet18_dex`) with numbers.
RESULT_ROW = re.compile(r"^\|\s*`?[a-z][a-z0-9_]*`?\s*(?:\(.*?\))?\s*\|")


def _cells(path):
    return json.loads(path.read_text())["cells"]


def _source(cell):
    return "".join(cell["source"])


def find(patterns, text):
    """`[(name, matched text), ...]` for every pattern found in `text`."""
    return [(name, m.group(0)) for name, pattern in patterns.items() for m in pattern.finditer(text)]


def typed_result_rows(markdown):
    """Markdown table lines that give a registry model two or more measured numbers."""
    rows = []
    for line in markdown.splitlines():
        if RESULT_ROW.match(line):
            cells = [c.strip() for c in line.strip().strip("|").split("|")[1:]]
            if sum(bool(re.fullmatch(NUMBER, c)) for c in cells) >= 2:
                rows.append(line.strip())
    return rows


def test_there_are_notebooks_and_modules():
    assert [p.name[:2] for p in NOTEBOOKS] == ["00", "01", "02", "03", "04", "05", "06"]
    assert len(PACKAGE) > 20


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_tells_methods_not_history(path):
    found = [(i, name, text) for i, cell in enumerate(_cells(path))
             for name, text in find({**HISTORY_RE, **NOTEBOOK_ONLY_RE}, _source(cell))]
    assert not found, f"{path.name} (cell, what, text): {found}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_markdown_types_no_result_of_our_runs(path):
    found = []
    for i, cell in enumerate(_cells(path)):
        if cell["cell_type"] == "markdown":
            text = _source(cell)
            found += [(i, name, t) for name, t in find(TYPED_RESULT_RE, text)]
            found += [(i, "a results table typed by hand", row) for row in typed_result_rows(text)]
    assert not found, f"{path.name} (cell, what, text): {found}"


@pytest.mark.parametrize("path", PACKAGE, ids=lambda p: str(p.relative_to(ROOT)))
def test_package_text_tells_methods_not_history(path):
    found = find(HISTORY_RE, path.read_text())
    assert not found, f"{path.relative_to(ROOT)}: {found}"


# ----- the patterns themselves: they catch what they must and leave ordinary words alone -----


@pytest.mark.parametrize("text", [
    "Before the bias fix the heads decoded everyone young.",
    "These runs predate the landmark-aware augmentation.",
    "The earlier locator used four sigmoids.",
    "a Keras metric bug made the MAE wrong",
    "read from ../shared/datasets/utkface-dev",
    "on this machine, with the CPU shared with other jobs",
    "These runs trained slower than the others.",
    "numbers before/after the fixes",
])
def test_history_patterns_catch_development_history(text):
    assert find(HISTORY_RE, text), text


@pytest.mark.parametrize("text", [
    "Normalise the images before training.",
    "The template is a fixed point of the map; gamma fixed at 0.",
    "one weight vector shared by all tasks",
    "the question is whether a slower model catches up",
    "before the transition to the next region",
    "look at the masks before and after training",
])
def test_history_patterns_leave_ordinary_words_alone(text):
    assert not find(HISTORY_RE, text), text


def test_typed_results_are_caught_and_paper_settings_are_not():
    typed = ("| model | seeds | MAE |\n|---|---:|---:|\n| `resnet18_dex` | 1 | 6.56 | 10.03 |\n"
             "| dhaa (ResNet-18 width) | 3 | 5.95 ± 0.32 | 9.30 |\n")
    assert len(typed_result_rows(typed)) == 2
    assert find(TYPED_RESULT_RE, "it scores test MAE 6.27 (flip 6.06)")
    assert find(TYPED_RESULT_RE, "over seeds 0-2 its MAE is 6.34 ± 0.08")
    settings = ("| question | the paper | ours |\n|---|---|---|\n| Optimiser | SGD, momentum 0.9, lr 0.01 | the same |\n"
                "| ResNet18+DAA | 2.25 | 2.06 |\n")
    assert not typed_result_rows(settings)
    assert not find(TYPED_RESULT_RE, "The paper's gain (Table 1: ResNet18+DAA 2.25 on MORPH II)")
