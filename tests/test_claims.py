"""The notebooks' claims, as data: every committed claim holds, and the README shows them.

Each research notebook writes the numbers it states as results to ``notebooks/claims/<name>.json``
(:class:`gradlab.analysis.ClaimSet`): measured value, the published or theoretical value with
its source, and the tolerance of a full run. The committed files come from the full runs whose
outputs are committed; ``tests/test_notebooks.py`` checks the fast runs' claims against their
looser bands.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gradlab import analysis

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9]*.ipynb"))
CLAIM_FILES = sorted((ROOT / "notebooks" / "claims").glob("*.json"))
CLAIMS = [
    (claims.notebook, claim)
    for claims in (analysis.load_claims(p) for p in CLAIM_FILES)
    for claim in claims.claims
]


def test_every_notebook_committed_its_full_run_claims():
    assert sorted(p.stem for p in CLAIM_FILES) == NOTEBOOKS
    for path in CLAIM_FILES:
        claims = analysis.load_claims(path)
        assert claims.notebook == path.stem and not claims.fast, path
        assert claims.claims, path


@pytest.mark.parametrize(("notebook", "claim"), CLAIMS, ids=[f"{nb}: {c.name}" for nb, c in CLAIMS])
def test_claim(notebook, claim):
    assert claim.holds(fast=False), (
        f"{notebook}: {claim.name}: measured {claim.measured:.4g}, expected {claim.relation} "
        f"{claim.expected:.4g} within {claim.tolerance:.3g} ({claim.source})"
    )


def test_readme_shows_the_committed_claims():
    table = analysis.claims_markdown(analysis.load_claims(p) for p in CLAIM_FILES)
    assert table in (ROOT / "README.md").read_text(), (
        "README's table of results differs from gl.analysis.claims_markdown(...) of "
        "notebooks/claims/*.json; paste it again"
    )


def test_a_claim_fails_outside_its_tolerance():
    c = analysis.Claim("x", 1.2, 1.0, "s", tolerance=0.1, fast_tolerance=0.3)
    assert not c.holds() and c.holds(fast=True)
    assert not analysis.Claim("nan", float("nan"), 1.0, "s", 1, 1).holds(fast=True)
    assert analysis.Claim("below", 0.9, 1.0, "s", 0, 0, "<").holds()
    assert not analysis.Claim("below", 1.0, 1.0, "s", 0, 0, "<").holds()
    assert analysis.Claim("above", 1.05, 1.0, "s", 0, 0, ">").holds()
    with pytest.raises(ValueError, match="tolerance"):
        analysis.Claim("bad", 1, 1, "s", tolerance=0.5, fast_tolerance=0.1)
