"""Published claims beside measured numbers: the tables of the research notebooks.

:func:`claims_table` lays out one row per claim (what was claimed, where, the published number,
the measured one) with the numbers written to 3 significant digits. It reads the rows it is
given, not a Dataset.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["claims_table"]


def claims_table(
    rows: Iterable[Sequence[Any]],
    columns: Sequence[str] = ("claim", "source", "published", "measured"),
) -> pd.DataFrame:
    """Published or claimed numbers beside the measured ones, one row per claim.

    A display helper for reports and notebooks: numbers are written to 3 significant digits
    (fractions stay fractions), strings are kept, ``None``/NaN become ``-``.

    Args:
      rows: one sequence per claim, in the order of ``columns`` (shorter rows are padded).
      columns: the column names; the first is the index.

    Returns:
      A DataFrame of strings indexed by the first column.

    Example:
      >>> t = claims_table([("tanh critical σ_w² at σ_b² = 0.05", "Schoenholz 2017", 1.76, 1.7612)])
      >>> t.loc["tanh critical σ_w² at σ_b² = 0.05", "measured"]
      '1.76'
    """

    def cell(v: Any) -> str:
        if v is None or (isinstance(v, float | np.floating) and np.isnan(v)):
            return "-"
        if isinstance(v, bool | np.bool_):
            return "yes" if v else "no"
        if isinstance(v, int | np.integer):
            return str(int(v))
        if isinstance(v, float | np.floating):
            return f"{float(v):.3g}"
        return str(v)

    cols = list(columns)
    table = []
    for row in rows:
        row = list(row)
        if len(row) > len(cols):
            raise ValueError(f"a row has {len(row)} cells for {len(cols)} columns: {row}")
        table.append([cell(v) for v in row] + ["-"] * (len(cols) - len(row)))
    df = pd.DataFrame(table, columns=cols)
    return df.set_index(cols[0])
