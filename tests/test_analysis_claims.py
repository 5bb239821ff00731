"""gradlab.analysis.claims: the published-versus-measured table."""

from __future__ import annotations

import pytest

from gradlab import analysis


def test_claims_table_formats_numbers_and_pads_rows():
    t = analysis.claims_table(
        [("critical σ_w²", "Schoenholz 2017", 1.76, 1.76123), ("diverged", "article", None, 0.25)]
    )
    assert list(t.columns) == ["source", "published", "measured"]
    assert t.loc["critical σ_w²", "measured"] == "1.76"
    assert t.loc["diverged", "published"] == "-"
    short = analysis.claims_table([("a", "b")], columns=("claim", "x", "y"))
    assert short.loc["a"].tolist() == ["b", "-"]
    with pytest.raises(ValueError, match="cells"):
        analysis.claims_table([(1, 2, 3)], columns=("a", "b"))
