"""Committed notebooks: outputs stripped, except the NBVAL_CHECK_OUTPUT cells, which must hold the output nbval compares."""

import json
import pathlib

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_is_one_notebook_per_paper_and_a_start():
    assert [p.name[:2] for p in NOTEBOOKS] == ["00", "01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_stripped_except_checked_cells(path):
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    for i, cell in enumerate(cells):
        source = "".join(cell["source"])
        if "NBVAL_CHECK_OUTPUT" in source:
            assert cell["outputs"], f"{path.name} code cell {i}: marked NBVAL_CHECK_OUTPUT but has no stored output"
            # nbval refuses stored outputs of a cell without an execution count ("unrun reference cell").
            assert isinstance(cell.get("execution_count"), int), f"{path.name} code cell {i}: no execution count"
            assert all(o.get("name") != "stderr" for o in cell["outputs"]), f"{path.name} cell {i}: stderr stored"
        else:
            assert not cell["outputs"], f"{path.name} code cell {i}: outputs not stripped"
            assert cell.get("execution_count") is None, f"{path.name} code cell {i}: execution count committed"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_chooses_the_mode(path):
    """Every notebook starts from `course.setup`: one set of modes (quick/cpu/paper), data root and runs root."""
    sources = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    assert any("course.setup(" in s for s in sources[:4]), f"{path.name}: no course.setup(...) in the first cells"
    text = path.read_text()
    for needle in ("../../shared", "sys.path." + "insert", "not available offline", "this machine", "our issue"):
        assert needle not in text, f"{path.name}: contains {needle!r}"
