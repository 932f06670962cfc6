"""Read tagged cells out of the course notebooks, for tests that run a notebook's own code.

A cell carries tags in its metadata (`{"tags": ["wire-model"]}`); a test takes
its source and runs it with `exec` in a namespace it prepares, so the code a
student reads is the code under test.
"""

import json
import pathlib

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[2] / "notebooks"


def notebook_path(prefix):
    """The notebook whose file name starts with `prefix` ("01", "04_dhaa")."""
    (path,) = sorted(NOTEBOOKS.glob(f"{prefix}*.ipynb"))
    return path


def tagged_sources(prefix, tag):
    """The sources of the code cells of notebook `prefix` tagged `tag`, in order."""
    cells = json.loads(notebook_path(prefix).read_text())["cells"]
    return ["".join(c["source"]) for c in cells
            if c["cell_type"] == "code" and tag in c.get("metadata", {}).get("tags", [])]


def run_tagged(prefix, tag, namespace):
    """Run every cell of notebook `prefix` tagged `tag` in `namespace`; returns it."""
    sources = tagged_sources(prefix, tag)
    if not sources:
        raise AssertionError(f"notebook {prefix}: no cell tagged {tag!r}")
    for source in sources:
        exec(compile(source, f"<{prefix} cell tagged {tag}>", "exec"), namespace)
    return namespace


def train_and_check_it_is_that_object(model, config):
    """`train(config, model=model)`; asserts it trained that very object (its weights
    moved) and that the run records its architecture. Returns (metrics, saved config.json)."""
    import numpy as np

    from agekeras.training import architecture, train

    before = [w.copy() for w in model.get_weights()]
    result = train(config, model=model)
    assert np.isfinite(result["mae"])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    saved = json.loads((pathlib.Path(config.out) / "config.json").read_text())
    assert saved["model"]["custom"] is True
    assert saved["model"]["fingerprint"] == architecture(model)["fingerprint"]
    return result, saved
