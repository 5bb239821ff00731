"""The research notebooks: executed end to end with every sweep shrunk (``GRADLAB_FAST=1``).

The committed notebooks carry the outputs of a full run; here they are executed again from a clean
kernel (the venv's own ``python3`` kernel, via nbclient) in a temporary directory, and each must
run without an error and print its key results. The committed copies must carry outputs for every
code cell and stay small enough to read on GitHub.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from gradlab import analysis

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

# What each notebook must show: text that only appears when its key cells ran, and how many
# figures it draws.
EXPECTED = {
    "01_quickstart.ipynb": {
        "text": [
            "runs in",
            "max_stable_lr",  # a column of the comparison table
            "Adam avoids gradient explosion",
            "CLI and Python runs identical: True",
        ],
        "figures": 2,
    },
    "02_seed_claims.ipynb": {
        "text": [
            "2/λ₀ (theory)",
            "gradient norm at init  ∝ σ_w^",
            "best test acc, σ=1",
            "clip_by_global_norm|adam",
            "init scheme: he_normal",
            "Keras (article's code)",
            "test accuracy per seed",
        ],
        "figures": 4,
    },
    "03_signal_propagation.ipynb": {
        "text": [
            "critical σ_w², tanh, σ_b² = 0.05",
            "6 ξ_c (published rule)",
            "relu, he_normal",
            "tanh, glorot_normal",
        ],
        "figures": 4,
    },
    "04_edge_of_stability.ipynb": {
        "text": ["measured λ/(2/η): median [IQR]", "published λ(P⁻¹H)/(38/η)"],
        "figures": 3,
    },
    "05_clipping.ipynb": {
        "text": [
            "unclipped SGD: mean ‖g‖",
            "price: median loss ratio",
            "apply_if_finite|sgd",
            "global norm c = ",
            "AGC λ = 0.01",
        ],
        "figures": 4,
    },
    "06_width_and_mup.ipynb": {
        "text": [
            "α: 95% low",  # a column of the exponent table
            "Tensor Programs V",
            "largest |slope|, steps 2-5",  # a column of the coordinate-check table
            "mup, adam, layer 2",
        ],
        "figures": 4,
    },
    "07_catapults_and_sensitivity.ipynb": {
        "text": [
            "c_loss (the loss first rises)",
            "catapult: final λ/(2/η)",
            "all combined",
            "warmup gains ×",
        ],
        "figures": 7,
    },
    "08_fractal_boundary.ipynb": {
        "text": [
            "runs per second, in chunks of",
            "box-counting dimension of the boundary:",
            "pooled over the 3 levels: D =",
            "verdicts flipped between float32 and float64",
            "replayed loss vs its sweep over",
        ],
        "figures": 5,
    },
}


def _texts_and_figures(nb) -> tuple[str, int]:
    texts, figures = [], 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                texts.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                data = out.get("data", {})
                texts.append(data.get("text/plain", ""))
                texts.append(data.get("text/html", ""))
                figures += "image/png" in data
    return "\n".join(texts), figures


def test_every_notebook_has_expectations():
    assert sorted(p.name for p in NOTEBOOKS) == sorted(EXPECTED)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_carries_outputs_of_a_full_run(path):
    nb = nbformat.read(path, as_version=4)
    assert path.stat().st_size < 1_000_000, "keep stored figures small (dpi ~80)"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count for c in code), "execute every cell before committing"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
    text, figures = _texts_and_figures(nb)
    assert "FAST=False" in text or "FAST=True" not in text, "commit the full run, not FAST"
    assert figures >= EXPECTED[path.name]["figures"]
    for png in (
        o.data["image/png"] for c in code for o in c.outputs if "image/png" in o.get("data", {})
    ):
        assert len(base64.b64decode(png)) < 200_000
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "Paper" in markdown or "paper" in markdown or "published" in markdown


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes_in_fast_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADLAB_FAST", "1")
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # check fresh outputs, not the stored ones
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=900, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, with the traceback, if any cell fails
    text, figures = _texts_and_figures(nb)
    assert "FAST=True" in text
    for marker in EXPECTED[path.name]["text"]:
        assert marker in text, f"{path.name}: no output contains {marker!r}"
    assert figures >= EXPECTED[path.name]["figures"]
    # Its claims, against the fast run's looser bands (which still fail when the science breaks).
    claims = analysis.load_claims(tmp_path / "claims" / f"{path.stem}.json")
    assert claims.fast and claims.claims
    broken = [c for c in claims.claims if not c.holds(fast=True)]
    assert not broken, [(c.name, c.measured, c.relation, c.expected) for c in broken]
