"""Published claims beside measured numbers: the claims of the research notebooks, as data.

A :class:`Claim` is one number a notebook (or the README) states as a result: what is claimed,
the measured value, the published or theoretical value it is compared with and its source, and
the tolerance within which the two must agree — a tight one for the full run whose outputs are
committed, a looser one for the shrunk ``GRADLAB_FAST=1`` run of CI, which still fails when the
science breaks. A :class:`ClaimSet` collects a notebook's claims, displays them as a table and
writes them to ``notebooks/claims/<notebook>.json``; ``tests/test_claims.py`` asserts every
committed claim, and ``tests/test_notebooks.py`` the fast run's.

:func:`claims_table` lays out free-form rows (what was claimed, where, the published number, the
measured one) with the numbers written to 3 significant digits. It reads the rows it is given,
not a Dataset.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Claim", "ClaimSet", "claims_markdown", "claims_table", "load_claims"]

RELATIONS = ("≈", "<", ">")


@dataclasses.dataclass(frozen=True)
class Claim:
    """One measured number against the value it claims to reproduce.

    Attributes:
      name: what is claimed, in words.
      measured: the number this run measured.
      expected: the published or theoretical value (or the bound, for ``<`` and ``>``).
      source: where ``expected`` comes from (paper, theory, the article).
      tolerance: how far apart they may be in the full run (absolute).
      fast_tolerance: the same for the shrunk ``GRADLAB_FAST=1`` run (at least ``tolerance``).
      relation: ``"≈"``: |measured − expected| ≤ tolerance; ``"<"``: measured < expected +
        tolerance; ``">"``: measured > expected − tolerance.
    """

    name: str
    measured: float
    expected: float
    source: str
    tolerance: float
    fast_tolerance: float
    relation: str = "≈"

    def __post_init__(self) -> None:
        if self.relation not in RELATIONS:
            raise ValueError(f"relation: one of {RELATIONS}, got {self.relation!r}")
        if not (self.tolerance >= 0 and self.fast_tolerance >= self.tolerance):
            raise ValueError(
                f"{self.name}: need 0 <= tolerance <= fast_tolerance, got "
                f"{self.tolerance}, {self.fast_tolerance}"
            )
        object.__setattr__(self, "measured", float(self.measured))
        object.__setattr__(self, "expected", float(self.expected))

    def holds(self, fast: bool = False) -> bool:
        """Whether the measured value agrees with the expected one within the tolerance (a NaN
        measurement never does)."""
        tol = self.fast_tolerance if fast else self.tolerance
        m, e = self.measured, self.expected
        if math.isnan(m):
            return False
        if self.relation == "≈":
            return abs(m - e) <= tol
        if self.relation == "<":
            return m < e + tol
        return m > e - tol


@dataclasses.dataclass
class ClaimSet:
    """The claims of one notebook run (``fast``: the shrunk CI run).

    Example:
      >>> claims = ClaimSet("03_signal_propagation", fast=False)
      >>> _ = claims.add("critical σ_w², tanh, σ_b² = 0.05", measured=1.78, expected=1.7612,
      ...                source="Schoenholz et al. 2017", tolerance=0.05, fast_tolerance=0.3)
      >>> claims.all_hold()
      True
    """

    notebook: str
    fast: bool = False
    claims: list[Claim] = dataclasses.field(default_factory=list)

    def add(
        self,
        name: str,
        measured: float,
        expected: float,
        source: str,
        *,
        tolerance: float,
        fast_tolerance: float,
        relation: str = "≈",
    ) -> Claim:
        """Record a claim (see :class:`Claim`) and return it."""
        claim = Claim(name, measured, expected, source, tolerance, fast_tolerance, relation)
        self.claims.append(claim)
        return claim

    def __getitem__(self, name: str) -> Claim:
        for claim in self.claims:
            if claim.name == name:
                return claim
        raise KeyError(f"no claim {name!r}; claims: {[c.name for c in self.claims]}")

    def all_hold(self) -> bool:
        """Whether every claim holds at this run's tolerance."""
        return all(c.holds(self.fast) for c in self.claims)

    def table(self) -> pd.DataFrame:
        """One row per claim: measured, expected, source, the tolerance of this run, whether
        it holds."""
        rows = [
            {
                "claim": c.name,
                "measured": c.measured,
                "relation": c.relation,
                "expected": c.expected,
                "source": c.source,
                "tolerance": c.fast_tolerance if self.fast else c.tolerance,
                "holds": c.holds(self.fast),
            }
            for c in self.claims
        ]
        return pd.DataFrame(rows).set_index("claim")

    def save(self, directory: str | os.PathLike = "claims") -> Path:
        """Write ``<directory>/<notebook>.json`` and return its path."""
        path = Path(directory) / f"{self.notebook}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        table = {
            "notebook": self.notebook,
            "fast": self.fast,
            "claims": [dataclasses.asdict(c) for c in self.claims],
        }
        path.write_text(json.dumps(table, indent=1, ensure_ascii=False) + "\n")
        return path


def claims_markdown(claim_sets: Iterable[ClaimSet]) -> str:
    """A markdown table of every claim of some notebooks (the README's table of results).

    Args:
      claim_sets: the notebooks' claims, e.g. ``[load_claims(p) for p in paths]``.

    Returns:
      One row per claim: notebook, claim, measured, expected (with the relation and the
      tolerance of the run), source; numbers to 3 significant digits.

    Example:
      >>> paths = sorted(Path("notebooks/claims").glob("*.json"))  # doctest: +SKIP
      >>> print(claims_markdown(load_claims(p) for p in paths))  # doctest: +SKIP
    """
    rows = ["| notebook | claim | measured | expected | source |", "|---|---|---|---|---|"]
    for claims in claim_sets:
        for c in claims.claims:
            tol = c.fast_tolerance if claims.fast else c.tolerance
            expected = f"{c.relation} {c.expected:.3g} ± {tol:.2g}"
            name = c.name.replace("|", "\\|")
            rows.append(
                f"| {claims.notebook} | {name} | {c.measured:.3g} | {expected} | {c.source} |"
            )
    return "\n".join(rows)


def load_claims(path: str | os.PathLike) -> ClaimSet:
    """Read a :class:`ClaimSet` written by :meth:`ClaimSet.save`.

    Args:
      path: the JSON file, e.g. ``notebooks/claims/03_signal_propagation.json``.

    Returns:
      The claims, with the ``fast`` flag of the run that wrote them.

    Example:
      >>> claims = load_claims("notebooks/claims/03_signal_propagation.json")  # doctest: +SKIP
      >>> claims.all_hold()  # doctest: +SKIP
    """
    table = json.loads(Path(path).read_text())
    claims = [Claim(**c) for c in table["claims"]]
    return ClaimSet(table["notebook"], bool(table["fast"]), claims)


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
