"""Tables as text: the comparison table of ``gradlab run``, in plain text and in markdown.

:data:`TABLE_COLUMNS` names the columns of :func:`gradlab.analysis.compare_optimizers` with
their number formats (a column is printed under its own name), :data:`SUMMARY_COLUMNS` the
subset ``gradlab run`` prints; :func:`table_cells` formats any
DataFrame with them (plots draw the same cells as a figure, the report writes them as
markdown), and :func:`format_table` / :func:`markdown_table` lay the cells out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "SUMMARY_COLUMNS",
    "TABLE_COLUMNS",
    "format_cell",
    "format_table",
    "markdown_table",
    "table_cells",
]

# Columns of `compare_optimizers`, in order, with the number format of the text tables. A column
# is printed under its own name, so what a table shows is what ``df[...]`` takes.
TABLE_COLUMNS: dict[str, str] = {
    "runs": "int",
    "diverged": "pct",
    "trained": "pct",
    "max_stable_lr": "g",
    "max_trained_lr": "g",
    "stable_decades": "f2",
    "best_lr": "g",
    "best_final_loss": "g",
    "best_final_loss_lower": "g",
    "best_final_loss_upper": "g",
    "best_test_accuracy": "pct",
    "best_test_accuracy_lower": "pct",
    "best_test_accuracy_upper": "pct",
    "final_loss": "g",
    "test_loss": "g",
    "test_accuracy": "pct",
    "clip_rate": "pct",
    "max_grad_norm": "g",
    "diverged_at": "g",
    "sharpness_ratio": "g",
}

# The columns ``gradlab run`` prints (the whole table is in the report's summary.csv): what a
# chain risks (diverged, max_stable_lr), whether it trains there (trained, max_trained_lr) and
# its best result (best_lr and the medians there).
SUMMARY_COLUMNS: tuple[str, ...] = (
    "runs",
    "diverged",
    "trained",
    "max_stable_lr",
    "max_trained_lr",
    "best_lr",
    "best_final_loss",
    "best_test_accuracy",
    "clip_rate",
)


def format_cell(value: Any, kind: str) -> str:
    """One table cell as text.

    Strings are kept; ``None`` and NaN become ``-``; otherwise by ``kind``: ``"int"`` an
    integer, ``"pct"`` a percentage to 3 significant digits, ``"f2"`` two decimals, anything
    else 3 significant digits (integers and booleans as they are).

    Args:
      value: the cell's value.
      kind: the column's format, the value of its :data:`TABLE_COLUMNS` entry.

    Returns:
      The cell's text.

    Example:
      >>> format_cell(0.25, "pct"), format_cell(float("nan"), "g"), format_cell(1234.5, "g")
      ('25%', '-', '1.23e+03')
    """
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float | np.floating) and np.isnan(value)):
        return "-"
    if kind == "int":
        return str(int(value))
    if kind == "pct":
        return f"{100 * float(value):.3g}%"
    if kind == "f2":
        return f"{float(value):.2f}"
    if isinstance(value, int | np.integer | bool | np.bool_):
        return str(value)
    return f"{float(value):.3g}"


def table_cells(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells of a table, the index first.

    Every column is headed by its name (so a printed header is what ``df[...]`` takes); columns
    named in :data:`TABLE_COLUMNS` get its format, others 3 significant digits
    (:func:`format_cell`).

    Args:
      df: a table, typically from :func:`gradlab.analysis.compare_optimizers`.

    Returns:
      ``(headers, rows)``: the index name and the column headers, and one list of cell strings
      per row (index value first).

    Example:
      >>> df = pd.DataFrame({"diverged": [0.25]}, index=pd.Index(["sgd"], name="optimizer"))
      >>> table_cells(df)
      (['optimizer', 'diverged'], [['sgd', '25%']])
    """
    headers = [str(df.index.name or ""), *map(str, df.columns)]
    kinds = [TABLE_COLUMNS.get(c, "g") for c in df.columns]
    rows = [
        [str(idx)] + [format_cell(v, k) for v, k in zip(row, kinds, strict=True)]
        for idx, row in zip(df.index, df.itertuples(index=False), strict=True)
    ]
    return headers, rows


def format_table(df: pd.DataFrame) -> str:
    """Plain-text table with aligned columns, as printed by ``gradlab run``.

    The index (chain names) is left-aligned, numbers right-aligned; fractions in percent, other
    numbers to 3 significant digits, NaN as ``-``. Each column is headed by its name; the columns
    of :func:`gradlab.analysis.compare_optimizers` get the formats of :data:`TABLE_COLUMNS`.

    Args:
      df: a table, typically from :func:`gradlab.analysis.compare_optimizers`.

    Returns:
      The table as a string, one line per row plus a header and a rule, no trailing newline.

    Example:
      >>> df = pd.DataFrame({"diverged": [0.25]}, index=pd.Index(["sgd"], name="optimizer"))
      >>> print(format_table(df))
      optimizer  diverged
      ---------  --------
      sgd             25%
    """
    headers, rows = table_cells(df)
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Iterable[str]) -> str:
        parts = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line("-" * w for w in widths), *map(line, rows)])


def markdown_table(df: pd.DataFrame) -> str:
    """GitHub-flavoured markdown version of :func:`format_table` (same formatting).

    Args:
      df: a table, typically from :func:`gradlab.analysis.compare_optimizers`.

    Returns:
      The markdown table, numbers right-aligned, ending in a newline.

    Example:
      >>> df = pd.DataFrame({"diverged": [0.25]}, index=pd.Index(["sgd"], name="optimizer"))
      >>> print(markdown_table(df), end="")
      | optimizer | diverged |
      |:--|--:|
      | sgd | 25% |
    """
    headers, rows = table_cells(df)

    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    out = ["| " + " | ".join(map(esc, headers)) + " |"]
    out.append("|:--|" + "--:|" * (len(headers) - 1))
    out += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(out) + "\n"
