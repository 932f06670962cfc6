"""The figure rules that notebooks/conftest.py applies to every executed notebook cell."""

import importlib.util
import pathlib

spec = importlib.util.spec_from_file_location(
    "notebook_checks", pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "conftest.py"
)
checks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(checks)

PNG = {"output_type": "display_data", "data": {"image/png": "iVBOR...", "text/plain": "<agekeras figure>"}}


def test_a_plot_cell_that_shows_its_figure_passes():
    assert checks.check_figures("fig = plots.plot_history(h)\nfig", [PNG]) == []


def test_a_figure_shown_as_text_fails():
    out = {"output_type": "execute_result", "data": {"text/plain": "<Figure size 640x480 with 1 Axes>"}}
    assert checks.check_figures("plots.plot_history(h)", [out])


def test_an_assigned_but_never_shown_figure_fails():
    assert checks.check_figures("fig = plots.plot_predictions(t, p)", [])


def test_a_figure_shown_twice_fails():
    assert checks.check_figures("plots.plot_gammas(g)", [PNG, PNG])


def test_cells_without_plot_calls_and_comments_are_ignored():
    assert checks.check_figures("x = 1  # plots.plot_history(h)", []) == []
