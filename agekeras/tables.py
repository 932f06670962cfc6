"""Results tables: our numbers next to the papers' numbers, without pandas.

`results_table` lines up, per method, each metric we measured with the one
the paper reports, and the setting (dataset, image size, ...) of each, since
numbers from different settings are not comparable. The returned
`ResultsTable` renders as a GitHub markdown table (`to_markdown()`, for
READMEs) and as HTML in notebooks.

Example:

>>> table = results_table(
...     [{"method": "DEX", "dataset": "UTKFace", "size": 64, "MAE": 7.123}],
...     paper={"DEX": {"MAE": 3.25, "dataset": "MORPH", "size": 224}},
... )
>>> print(table.to_markdown())
| method | MAE (ours) | MAE (paper) | dataset (ours) | dataset (paper) | size (ours) | size (paper) |
| ------ | ---------: | ----------: | -------------- | --------------- | ----------- | ------------ |
| DEX    |       7.12 |        3.25 | UTKFace        | MORPH           | 64          | 224          |
"""

from __future__ import annotations

import dataclasses
import html
import math
import numbers

MISSING = "—"
SETTINGS = ("dataset", "size")


def format_number(x, digits=2):
    """Formats a number for a table: integers as is, reals with `digits`
    decimals, and None or NaN as "—".

    Args:
        x: a number (Python or NumPy) or None.
        digits: decimals for non-integer numbers.

    Returns:
        The string.

    Example:

    >>> format_number(7.1234), format_number(64), format_number(float("nan"))
    ('7.12', '64', '—')
    """
    if x is None:
        return MISSING
    if isinstance(x, numbers.Integral):
        return str(int(x))
    x = float(x)
    if math.isnan(x):
        return MISSING
    return f"{x:.{digits}f}"


@dataclasses.dataclass
class ResultsTable:
    """A rendered-on-demand results table.

    Attributes:
        columns: column headers, in order.
        rows: one dict per table line, column header -> raw value (None where
            missing).
        numeric: the headers of the metric columns (formatted with `digits`
            decimals and right-aligned).
        digits: decimals of the metric columns.
    """

    columns: list
    rows: list
    numeric: frozenset = frozenset()
    digits: int = 2

    def _cell(self, column, value):
        if column in self.numeric:
            return format_number(value, self.digits)
        if value is None or value == "":
            return MISSING
        return str(value)

    def _cells(self):
        return [[self._cell(c, row[c]) for c in self.columns] for row in self.rows]

    def to_markdown(self):
        """The table as GitHub-flavoured markdown, columns padded to align."""
        header = [c.replace("|", "\\|") for c in self.columns]
        body = [[v.replace("|", "\\|") for v in line] for line in self._cells()]
        widths = [max(3, len(h), *(len(line[i]) for line in body)) for i, h in enumerate(header)]
        right = [c in self.numeric for c in self.columns]

        def line(values):
            padded = [v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)]
            return "| " + " | ".join(padded) + " |"

        rule = line(["-" * (w - 1) + ":" if r else "-" * w for w, r in zip(widths, right)])
        return "\n".join([line(header), rule, *(line(b) for b in body)])

    def _repr_markdown_(self):
        return self.to_markdown()

    def _repr_html_(self):
        def cell(tag, column, value):
            style = ' style="text-align: right"' if column in self.numeric else ""
            return f"<{tag}{style}>{html.escape(value)}</{tag}>"

        head = "".join(cell("th", c, c) for c in self.columns)
        body = "".join(
            "<tr>" + "".join(cell("td", c, v) for c, v in zip(self.columns, line)) + "</tr>"
            for line in self._cells()
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __str__(self):
        return self.to_markdown()


def _ordered_keys(dicts, exclude):
    keys = {}
    for d in dicts:
        keys.update((k, None) for k in d if k not in exclude)
    return list(keys)


def results_table(rows, paper=None, *, settings=SETTINGS, digits=2):
    """Builds a table of our results, optionally beside the papers' numbers.

    Keys of the row dicts other than "method" and the `settings` keys are
    metrics. Without `paper` the columns are: method, the settings, the
    metrics. With `paper` each metric and each setting gets an "(ours)" and a
    "(paper)" column; methods found only in `paper` get a line of their own
    after ours. Missing values show as "—". Settings that no row or paper
    entry has are left out.

    Args:
        rows: list of dicts, e.g. `{"method": "ResNet-18 DEX", "dataset":
            "UTKFace (seed 0, 80/20)", "size": 64, "MAE": 7.12}`.
        paper: optional dict of method -> dict of the paper's numbers and
            setting, e.g. `{"VoVNetv4": {"MAE": 3.08, "dataset": "AFAD",
            "size": 224}}`.
        settings: the keys that describe a setting rather than a metric.
        digits: decimals shown for metrics.

    Returns:
        A `ResultsTable`.

    Example:

    >>> table = results_table([{"method": "DEX", "dataset": "UTKFace", "MAE": 7.1}])
    >>> print(table.to_markdown())
    | method | dataset |  MAE |
    | ------ | ------- | ---: |
    | DEX    | UTKFace | 7.10 |
    """
    rows = [dict(r) for r in rows]
    for r in rows:
        if "method" not in r:
            raise KeyError(f"Results row without a 'method': {r}")
    paper = dict(paper or {})
    entries = rows + list(paper.values())
    settings = [s for s in settings if any(s in e for e in entries)]
    metrics = _ordered_keys(entries, exclude={"method", *settings})

    if not paper:
        columns = ["method", *settings, *metrics]
        lines = [{c: r.get(c) for c in columns} for r in rows]
        return ResultsTable(columns, lines, frozenset(metrics), digits)

    keys = [*metrics, *settings]
    columns = ["method", *(f"{k} ({side})" for k in keys for side in ("ours", "paper"))]
    our_methods = {r["method"] for r in rows}
    lines = []
    for ours in rows + [{"method": m} for m in paper if m not in our_methods]:
        theirs = paper.get(ours["method"], {})
        line = {"method": ours["method"]}
        for k in keys:
            line[f"{k} (ours)"] = ours.get(k)
            line[f"{k} (paper)"] = theirs.get(k)
        lines.append(line)
    numeric = frozenset(f"{k} ({side})" for k in metrics for side in ("ours", "paper"))
    return ResultsTable(columns, lines, numeric, digits)
