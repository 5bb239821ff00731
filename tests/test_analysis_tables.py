"""gradlab.analysis.tables: the comparison table as text and markdown."""

from __future__ import annotations

import pandas as pd
from analysis_datasets import comparison_dataset

from gradlab import analysis


def test_format_table_and_markdown():
    df = analysis.compare_optimizers(comparison_dataset())
    text = analysis.format_table(df)
    lines = text.splitlines()
    # one naming: each printed header is the DataFrame's column, in its order
    assert lines[0].split() == ["optimizer", *df.columns]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert len(lines) == 2 + len(df)
    assert lines[2].startswith("sgd ") and "25%" in lines[2] and "0.1" in lines[2]
    assert "  -" in lines[3]  # NaN shown as '-'
    assert len({len(line) for line in lines}) == 1  # right-aligned columns: one width
    md = analysis.markdown_table(df)
    assert md.splitlines()[1].startswith("|:--|--:|")
    assert md.count("\n") == 2 + len(df)
    assert "clip_by_global_norm\\|sgd" in md  # the pipe of a chain name is escaped


def test_table_cells_formats_known_and_unknown_columns():
    df = pd.DataFrame(
        {"runs": [4.0], "stable_decades": [1.0], "my_metric": [1234.5], "note": ["ok"]},
        index=pd.Index(["sgd"], name="optimizer"),
    )
    headers, rows = analysis.table_cells(df)
    assert headers == ["optimizer", "runs", "stable_decades", "my_metric", "note"]
    assert rows == [["sgd", "4", "1.00", "1.23e+03", "ok"]]
