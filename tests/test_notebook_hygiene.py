"""Committed notebooks: outputs stripped, except the NBVAL_CHECK_OUTPUT cells, which must hold the output nbval compares."""

import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_is_one_notebook_per_paper_and_a_start():
    assert [p.name[:2] for p in NOTEBOOKS] == ["00", "01", "02", "03", "04", "05", "06"]


def _execute_notebooks():
    """benchmarks/execute_notebooks.py (what stores a reference run's outputs), loaded by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("execute_notebooks", ROOT / "benchmarks" / "execute_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_are_a_published_reference_run_or_stripped(path):
    """A notebook is committed either stripped, or with the outputs of its cpu-mode reference run
    (benchmarks/execute_notebooks.py): recorded in its metadata, no machine path, no stderr, under 2 MB.
    The NBVAL_CHECK_OUTPUT cells always hold the output nbval compares."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    reference = nb.metadata.get("agekeras", {}).get("reference_run")
    cells = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(cells):
        if "NBVAL_CHECK_OUTPUT" in cell.source:
            assert cell.outputs, f"{path.name} code cell {i}: marked NBVAL_CHECK_OUTPUT but has no stored output"
            # nbval refuses stored outputs of a cell without an execution count ("unrun reference cell").
            assert isinstance(cell.get("execution_count"), int), f"{path.name} code cell {i}: no execution count"
        elif reference is None:
            assert not cell.outputs, f"{path.name} code cell {i}: outputs not stripped (and no reference run recorded)"
            assert cell.get("execution_count") is None, f"{path.name} code cell {i}: execution count committed"
        if cell.outputs:  # nbval refuses the stored outputs of a cell without an execution count
            assert isinstance(cell.get("execution_count"), int), f"{path.name} code cell {i}: outputs, no count"
        assert all(o.get("name") != "stderr" for o in cell.outputs), f"{path.name} cell {i}: stderr stored"
        assert all(o.get("output_type") != "error" for o in cell.outputs), f"{path.name} cell {i}: an error stored"
    if reference is not None:
        X = _execute_notebooks()
        assert reference["mode"] == "cpu" and reference["minutes_per_model"] > 0
        assert not X.machine_paths(nb), f"{path.name}: machine paths in its outputs: {X.machine_paths(nb)[:3]}"
        assert path.stat().st_size <= X.MAX_BYTES, f"{path.name}: {path.stat().st_size:,} bytes stored"
        assert any(c.outputs for c in cells if "NBVAL_CHECK_OUTPUT" not in c.source), f"{path.name}: no outputs"


def test_the_reference_run_check_sees_machine_paths_and_scrubs_them():
    import nbformat

    X = _execute_notebooks()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="data in /tmp/agekeras_reference_x/runs/00/cpu/r18\n"),
        nbformat.v4.new_output("stream", name="stderr", text="W0000 /home/me/.local/lib/python3/x.py:1\n")])])
    assert X.machine_paths(nb)
    X.scrub(nb, X.replacements_for("/data/faces", "/tmp/agekeras_reference_x/runs", "/tmp/agekeras_reference_x"))
    assert not X.machine_paths(nb)
    assert [o["text"] for o in nb.cells[0].outputs] == ["data in runs/00/cpu/r18\n"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_chooses_the_mode(path):
    """Every notebook starts from `course.setup`: one set of modes (quick/cpu/paper), data root and runs root."""
    sources = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    assert any("course.setup(" in s for s in sources[:4]), f"{path.name}: no course.setup(...) in the first cells"
    text = path.read_text()
    for needle in ("../../shared", "sys.path." + "insert", "not available offline", "this machine", "our issue"):
        assert needle not in text, f"{path.name}: contains {needle!r}"


def test_large_face_figures_are_stored_as_jpeg_and_small_plots_stay_png():
    """A grid of face photos is stored as JPEG (a fraction of its PNG size), white where the PNG was transparent;
    a small line plot keeps its PNG."""
    import base64
    import io

    import nbformat
    import numpy as np
    from PIL import Image

    X = _execute_notebooks()

    def png(array):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode()

    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (400, 400, 4), dtype=np.uint8)
    faces[..., 3] = 255
    faces[:50, :50, 3] = 0  # a transparent corner
    plot = np.full((40, 40, 3), 255, np.uint8)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("show()", outputs=[
        nbformat.v4.new_output("display_data", data={"image/png": png(faces), "text/plain": "<agekeras figure>"}),
        nbformat.v4.new_output("display_data", data={"image/png": png(plot), "text/plain": "<agekeras figure>"})])])
    big = len(nb.cells[0].outputs[0]["data"]["image/png"])
    assert big > X.JPEG_FROM_BYTES
    assert X.compress_images(nb) > 0
    first, second = (o["data"] for o in nb.cells[0].outputs)
    assert set(first) == {"image/jpeg", "text/plain"} and len(first["image/jpeg"]) < big / 2
    assert "image/png" in second and "image/jpeg" not in second
    corner = np.asarray(Image.open(io.BytesIO(base64.b64decode(first["image/jpeg"]))))[:40, :40]
    assert corner.mean() > 240, "transparent pixels must become white, as a notebook shows them"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_cells_that_read_committed_results_are_tagged_to_be_refreshed_alone(path):
    """A cell that reads benchmarks/results/ carries the `committed-results` tag (so
    `execute_notebooks.py --refresh-results` re-renders it when a result is committed), and the tagged
    cells import what they use from agekeras themselves: they run without the rest of the notebook."""
    import nbformat

    X = _execute_notebooks()
    nb = nbformat.read(path, as_version=4)
    tagged = set(X.results_cells(nb))
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and ("load_committed" in cell.source or "results_root" in cell.source):
            assert i in tagged, f"{path.name} cell {i} reads committed results but is not tagged {X.RESULTS_TAG!r}"
    for i in tagged:
        if "benchmark." in nb.cells[i].source:
            assert "import benchmark" in nb.cells[i].source or any(
                "import benchmark" in nb.cells[j].source for j in tagged if j < i), f"{path.name} cell {i}"


def test_refresh_results_reexecutes_only_the_tagged_cells_and_scrubs_their_paths(tmp_path):
    import nbformat

    X = _execute_notebooks()
    stale = nbformat.v4.new_output("stream", name="stdout", text="the reference run's output\n")
    untagged = nbformat.v4.new_code_cell("print('run again')", outputs=[stale])
    tagged = nbformat.v4.new_code_cell("import pathlib\nprint(6 * 7, pathlib.Path.cwd() / 'x')",
                                       outputs=[stale])
    tagged.metadata["tags"] = [X.RESULTS_TAG]
    nb = nbformat.v4.new_notebook(cells=[untagged, tagged])
    nb.metadata["agekeras"] = {"reference_run": {"mode": "cpu", "minutes_per_model": 2}}
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    out, count = X.refresh_results(path)
    assert count == 1
    assert out.cells[0].outputs == [stale]
    assert [o["text"] for o in out.cells[1].outputs] != [stale["text"]]
    assert out.cells[1].outputs[0]["text"].startswith("42 ")
    assert not X.machine_paths(out), X.machine_paths(out)
    assert out.metadata["agekeras"]["reference_run"]["results_refreshed"]
    assert isinstance(out.cells[1].execution_count, int)
