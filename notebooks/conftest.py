"""Checks on the executed notebooks (nbval runs each code cell as a test item).

Every cell that draws with a `plot_*` function shows its figure as an image
(`image/png`, or `image/jpeg` for stored photos), no more images than it has plot calls, and no cell prints the
text of a figure object (`<Figure size ...>`), which is what a figure that
failed to render looks like.
"""

import re

import pytest

PLOT_CALL = re.compile(r"(?<![\w])(?:[\w.]+\.)?plot_\w+\(")


def _code(source):
    return "\n".join(line.split("#", 1)[0] for line in source.splitlines())


def _texts(output):
    if output.get("output_type") == "stream":
        yield output.get("text", "")
    for key, value in (output.get("data") or {}).items():
        if key.startswith("text/"):
            yield value if isinstance(value, str) else "".join(value)


def check_figures(source, outputs):
    """The figure rules for one executed cell; returns a list of problems."""
    problems = []
    if any("<Figure size" in text for out in outputs for text in _texts(out)):
        problems.append("prints '<Figure size ...>' instead of drawing the figure")
    calls = len(PLOT_CALL.findall(_code(source)))
    images = sum(any(k in (out.get("data") or {}) for k in ("image/png", "image/jpeg")) for out in outputs)
    if calls and not images:
        problems.append(f"calls {calls} plot function(s) but shows no image (end the cell with the figure)")
    if images > max(calls, 1):
        problems.append(f"shows {images} images for {calls} plot call(s): a figure is shown twice")
    return problems


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    outputs = getattr(item, "test_outputs", None)
    cell = getattr(item, "cell", None)
    if outputs is not None and cell is not None:
        problems = check_figures(cell.source, outputs)
        if problems:
            raise AssertionError(f"{item.name}: " + "; ".join(problems))
    return result
