"""Execute course notebooks in cpu mode on real faces and store their outputs: the reference run.

    python benchmarks/execute_notebooks.py notebooks/00_getting_started.ipynb --data-root ~/agekeras_data \
        --budget 5

GitHub and Colab show a committed notebook's stored outputs before anything
runs: these are they. Each notebook is executed by a fresh kernel from a
temporary working directory, with `AGEKERAS_MODE=cpu`, the given data root
and a time budget per model (`AGEKERAS_TIME_BUDGET`, printed by the setup
cell). Then its outputs are cleaned for publishing:

- every path of the machine that ran it becomes a label: the data root
  `<data root>`, the runs root `runs`, the home folder `~`;
- standard-error streams (library logs and progress bars) are dropped;
- the cells marked `NBVAL_CHECK_OUTPUT` keep the outputs they had, which the
  quick-mode test (`pytest --nbval-lax`) compares;
- the exercises' solution cells (tagged `solution`) are not run: they are
  the student's to run (the quick-mode test runs them);
- figures stored larger than `JPEG_FROM_BYTES` (grids of face photos) are
  stored as JPEG instead of PNG, which keeps a notebook of faces small;
- the notebook's metadata records the run (`agekeras.reference_run`: mode,
  minutes per model, date, seconds of execution).

The result must hold no machine path and stay under `MAX_BYTES`, or the
notebook is left as it was and the script exits 1.

    python benchmarks/execute_notebooks.py notebooks/0*.ipynb --refresh-results

re-executes only the cells tagged `committed-results` (each renders results
committed in `benchmarks/results/` and imports what it uses), in a fresh
kernel, and stores their new outputs; every other cell keeps the reference
run's. A result committed after the reference run (a benchmark, a paper's
ablation) then shows without training again (`agekeras.reference_run`
records `results_refreshed`).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import pathlib
import re
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAX_BYTES = 2_000_000
"""The largest stored notebook, outputs included."""

JPEG_FROM_BYTES = 120_000
"""A stored PNG larger than this (photos of faces) is stored as JPEG instead."""
JPEG_QUALITY = 85

MACHINE_PATH = re.compile(r"(?<![\w<])/(?:work|tmp|home|root|Users|content|mnt|private|var/folders)/[^\s'\"<>)]*")
"""An absolute path of the machine that ran the notebook (what must not be published)."""


def machine_paths(nb) -> list[str]:
    """The machine paths left in a notebook's outputs."""
    found = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            for text in _texts(output):
                found += MACHINE_PATH.findall(text)
    return found


def _texts(output):
    if output.get("output_type") == "stream":
        yield output.get("text", "")
    for key, value in (output.get("data") or {}).items():
        if key.startswith("text/") or key == "application/json":
            yield value if isinstance(value, str) else str(value)
    if output.get("output_type") == "error":
        yield "\n".join(output.get("traceback", []))


def scrub_text(text, replacements):
    for old, new in replacements:
        text = text.replace(old, new)
    return text


def scrub(nb, replacements):
    """Replace machine paths in every text output; drop stderr streams."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                if output.get("name") == "stderr":
                    continue
                output["text"] = scrub_text(output["text"], replacements)
            for key, value in (output.get("data") or {}).items():
                if key.startswith("text/"):
                    output["data"][key] = scrub_text(value if isinstance(value, str) else "".join(value), replacements)
            kept.append(output)
        cell["outputs"] = kept
    return nb


def compress_images(nb, from_bytes=JPEG_FROM_BYTES, quality=JPEG_QUALITY):
    """Store each PNG output larger than `from_bytes` as a JPEG (when that is smaller); returns bytes saved."""
    import base64
    import io

    from PIL import Image

    saved = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data") or {}
            png = data.get("image/png")
            if not png or len(png) <= from_bytes:
                continue
            image = Image.open(io.BytesIO(base64.b64decode(png))).convert("RGBA")
            flat = Image.new("RGB", image.size, "white")
            flat.paste(image, mask=image.getchannel("A"))  # transparency over white, as a notebook shows it
            buffer = io.BytesIO()
            flat.save(buffer, format="JPEG", quality=quality, optimize=True)
            jpeg = base64.b64encode(buffer.getvalue()).decode()
            if len(jpeg) < len(png):
                saved += len(png) - len(jpeg)
                del data["image/png"]
                data["image/jpeg"] = jpeg
    return saved


def keep_checked_outputs(executed, original):
    """The NBVAL_CHECK_OUTPUT cells keep their committed outputs (what nbval compares)."""
    old = {c.source: c for c in original.cells if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source}
    for cell in executed.cells:
        if cell.cell_type == "code" and cell.source in old:
            cell["outputs"] = copy.deepcopy(old[cell.source].get("outputs", []))
            cell["execution_count"] = old[cell.source].get("execution_count")
    return executed


def replacements_for(data_root, runs_root, workdir):
    pairs = [(str(pathlib.Path(data_root).resolve()), "<data root>"), (str(data_root), "<data root>"),
             (str(runs_root), "runs"), (str(workdir), "."), (str(ROOT), "<repository>"),
             (str(pathlib.Path.home()), "~")]
    return sorted(set(pairs), key=lambda p: -len(p[0]))  # the longest first: a folder inside another


def execute(path, data_root, budget, timeout=None, kernel="python3"):
    """Execute one notebook as the reference run; returns (notebook, seconds)."""
    import nbformat
    from nbclient import NotebookClient

    original = nbformat.read(path, as_version=4)
    nb = copy.deepcopy(original)
    solutions = {i: c.source for i, c in enumerate(nb.cells) if "solution" in c.get("metadata", {}).get("tags", [])}
    for i in solutions:
        nb.cells[i].source = "pass"
    with tempfile.TemporaryDirectory(prefix="agekeras_reference_") as work:
        work = pathlib.Path(work)
        runs = work / "runs"
        env = {"AGEKERAS_MODE": "cpu", "AGEKERAS_TIME_BUDGET": f"{budget:g}", "AGEKERAS_DATA_ROOT": str(data_root),
               "AGEKERAS_RUNS_ROOT": str(runs), "AGEKERAS_DOWNLOAD": "no"}
        saved = {k: os.environ.get(k) for k in [*env, "CI"]}
        os.environ.update(env)
        os.environ.pop("CI", None)
        start = time.time()
        try:
            NotebookClient(nb, timeout=timeout, kernel_name=kernel, resources={"metadata": {"path": str(work)}}).execute()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        seconds = time.time() - start
        scrub(nb, replacements_for(data_root, runs, work))
    for i, source in solutions.items():
        nb.cells[i].source, nb.cells[i].outputs, nb.cells[i].execution_count = source, [], None
    keep_checked_outputs(nb, original)
    compress_images(nb)
    nb.metadata.setdefault("agekeras", {})["reference_run"] = {
        "mode": "cpu", "minutes_per_model": budget, "date": datetime.date.today().isoformat(),
        "execution_seconds": round(seconds)}
    return nb, seconds


#: The tag of a cell that only renders committed results (`refresh_results` re-executes it alone).
RESULTS_TAG = "committed-results"


def results_cells(nb):
    """Indices of the code cells tagged `RESULTS_TAG`."""
    return [i for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and RESULTS_TAG in c.get("metadata", {}).get("tags", [])]


def refresh_results(path, timeout=600, kernel="python3"):
    """The notebook at `path` with the outputs of its `RESULTS_TAG` cells
    made again from the committed results (the other cells untouched).

    Returns:
        (notebook, number of cells refreshed).
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    picked = results_cells(nb)
    if not picked:
        return nb, 0
    part = nbformat.v4.new_notebook(cells=[copy.deepcopy(nb.cells[i]) for i in picked], metadata=copy.deepcopy(nb.metadata))
    with tempfile.TemporaryDirectory(prefix="agekeras_results_") as work:
        work = pathlib.Path(work)
        NotebookClient(part, timeout=timeout, kernel_name=kernel, resources={"metadata": {"path": str(work)}}).execute()
        scrub(part, replacements_for(work / "data", work / "runs", work))
    for i, cell in zip(picked, part.cells):
        nb.cells[i]["outputs"] = cell["outputs"]
        if not isinstance(nb.cells[i].get("execution_count"), int):  # nbval refuses outputs of an unrun cell
            nb.cells[i]["execution_count"] = cell.get("execution_count")
    compress_images(nb)
    run = nb.metadata.setdefault("agekeras", {}).setdefault("reference_run", {})
    run["results_refreshed"] = datetime.date.today().isoformat()
    return nb, len(picked)


def write_checked(path, nb):
    """Write `nb` to `path` when it holds no machine path and fits `MAX_BYTES`;
    returns the bytes written, or None (with the reason on stderr)."""
    import nbformat

    left = machine_paths(nb)
    text = nbformat.writes(nb)
    if left or len(text.encode()) > MAX_BYTES:
        print(f"{path.name}: not written ({len(text.encode()):,} bytes; machine paths left: {sorted(set(left))[:5]})",
              file=sys.stderr)
        return None
    nbformat.validate(nb)
    path.write_text(text)
    return len(text.encode())


def main(argv=None):
    import nbformat

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("notebooks", nargs="+", type=pathlib.Path)
    p.add_argument("--data-root", type=pathlib.Path, help="the folder holding utkface/, fgnet/, ... (for a reference run)")
    p.add_argument("--budget", type=float, default=15, help="training minutes per model (AGEKERAS_TIME_BUDGET)")
    p.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: none)")
    p.add_argument("--refresh-results", action="store_true",
                   help=f"re-execute only the cells tagged {RESULTS_TAG!r}, keeping every other output")
    a = p.parse_args(argv)
    if not a.refresh_results and a.data_root is None:
        p.error("--data-root is required for a reference run (or pass --refresh-results)")
    status = 0
    for path in a.notebooks:
        if a.refresh_results:
            nb, count = refresh_results(path, timeout=a.timeout or 600)
            size = write_checked(path, nb)
            status |= size is None
            if size is not None:
                print(f"{path.name}: {count} results cell(s) refreshed, {size / 1e6:.2f} MB stored")
            continue
        nb, seconds = execute(path, a.data_root.expanduser(), a.budget, a.timeout)
        size = write_checked(path, nb)
        status |= size is None
        if size is not None:
            print(f"{path.name}: executed in {seconds / 60:.1f} min, {size / 1e6:.2f} MB stored")
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
