"""Tests for agekeras.tables: exact markdown, HTML, missing values."""

import subprocess
import sys

import numpy as np
import pytest

from agekeras.tables import format_number, results_table

ROWS = [
    {"method": "ResNet-18 DEX", "dataset": "utkface-dev (seed 0, 80/20)", "size": 64, "MAE": 7.123},
    {"method": "VoVNetv4", "dataset": "utkface-dev (seed 0, 80/20)", "size": 64, "MAE": 6.5},
]
PAPER = {
    "VoVNetv4": {"MAE": 3.08, "dataset": "AFAD", "size": 224},
    "C3AE": {"MAE": 2.75, "dataset": "FG-NET"},
}


def test_format_number():
    assert format_number(7.1234) == "7.12"
    assert format_number(7.1254, digits=3) == "7.125"
    assert format_number(np.float32(2.5)) == "2.50"
    assert format_number(64) == "64"
    assert format_number(np.int64(224)) == "224"
    assert format_number(None) == "—"
    assert format_number(float("nan")) == "—"
    assert format_number(np.nan) == "—"


def test_markdown_with_paper_numbers():
    table = results_table(ROWS, paper=PAPER)
    assert table.to_markdown() == "\n".join(
        [
            "| method        | MAE (ours) | MAE (paper) | dataset (ours)              | dataset (paper) | size (ours) | size (paper) |",
            "| ------------- | ---------: | ----------: | --------------------------- | --------------- | ----------- | ------------ |",
            "| ResNet-18 DEX |       7.12 |           — | utkface-dev (seed 0, 80/20) | —               | 64          | —            |",
            "| VoVNetv4      |       6.50 |        3.08 | utkface-dev (seed 0, 80/20) | AFAD            | 64          | 224          |",
            "| C3AE          |          — |        2.75 | —                           | FG-NET          | —           | —            |",
        ]
    )
    assert table._repr_markdown_() == table.to_markdown() == str(table)


def test_markdown_without_paper_and_missing_values():
    rows = [
        {"method": "DEX", "dataset": "fgnet (LOPO)", "MAE": 4.0, "CA(5)": 0.71},
        {"method": "MV|loss", "dataset": "fgnet (LOPO)", "MAE": float("nan")},
    ]
    table = results_table(rows, digits=1)
    assert table.columns == ["method", "dataset", "MAE", "CA(5)"]  # no size column
    assert table.to_markdown() == "\n".join(
        [
            "| method   | dataset      | MAE | CA(5) |",
            "| -------- | ------------ | --: | ----: |",
            "| DEX      | fgnet (LOPO) | 4.0 |   0.7 |",
            "| MV\\|loss | fgnet (LOPO) |   — |     — |",
        ]
    )


def test_rows_hold_raw_values():
    table = results_table(ROWS, paper=PAPER)
    assert len(table.rows) == 3
    assert table.rows[1] == {
        "method": "VoVNetv4",
        "MAE (ours)": 6.5,
        "MAE (paper)": 3.08,
        "dataset (ours)": "utkface-dev (seed 0, 80/20)",
        "dataset (paper)": "AFAD",
        "size (ours)": 64,
        "size (paper)": 224,
    }
    assert table.rows[2]["MAE (ours)"] is None


def test_html_repr():
    table = results_table([{"method": "A<B", "MAE": 3.0}], paper={"A<B": {"MAE": None}})
    html = table._repr_html_()
    assert html.startswith("<table><thead><tr><th>method</th>")
    assert '<th style="text-align: right">MAE (ours)</th>' in html
    assert "<td>A&lt;B</td>" in html
    assert '<td style="text-align: right">3.00</td><td style="text-align: right">—</td>' in html
    assert html.count("<tr>") == 2


def test_row_without_method_is_an_error():
    with pytest.raises(KeyError, match="method"):
        results_table([{"MAE": 3.0}])


def test_no_pandas_import():
    code = "import sys, agekeras.tables; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
