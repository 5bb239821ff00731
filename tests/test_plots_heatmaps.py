"""gradlab.plots.heatmaps: phase diagrams colour the right cells on the right axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import xarray as xr
from plot_datasets import LR, make_dataset, panels, render

from gradlab import plots

# Layout problems (collapsed axes) and bad data handling surface as warnings: make them errors.
pytestmark = pytest.mark.filterwarnings("error::UserWarning", "error::RuntimeWarning")


def test_phase_diagram_cells_axes_and_overlay():
    ds = make_dataset({"seed": [0, 1], "learning_rate": LR, "init_scale": [0.5, 1.0, 2.0, 4.0]})
    scales = {"init_scale": [0.5, 1.0, 2.0, 4.0]}
    boundary = xr.DataArray([1.0, 0.3, 0.1, 0.03], dims="init_scale", coords=scales)
    fig = plots.phase_diagram(ds, overlay={"2/λ₀": boundary, "line": ([1e-3, 1.0], [1.0, 1.0])})
    ax = panels(fig)[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"  # both grids log-spaced
    mesh = ax.collections[0]
    rate = ds["diverged"].mean("seed").sel(optimizer="sgd").transpose("init_scale", "learning_rate")
    np.testing.assert_allclose(mesh.get_array().filled(np.nan).reshape(4, 4), rate.values)
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_allclose(lines["2/λ₀"].get_xdata(), boundary.values)
    np.testing.assert_allclose(lines["2/λ₀"].get_ydata(), boundary["init_scale"].values)
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 16  # one annotation per cell
    assert fig.axes[-1].get_ylabel() == "fraction of runs diverged"  # the colorbar


def test_phase_diagram_linear_categorical_and_missing_cells():
    grid = {"activation": ["relu", "tanh", "gelu"], "bias_std": [0.0, 0.1, 0.2]}
    ds = make_dataset(grid, chains=("sgd",), diverge="all")
    fig = plots.phase_diagram(ds, "bias_std", "activation", "final_loss")
    ax = panels(fig)[0]
    assert ax.get_xscale() == "linear"  # 0, 0.1, 0.2 is arithmetic
    assert [t.get_text() for t in ax.get_yticklabels()] == ["relu", "tanh", "gelu"]
    assert "every run diverged" in [t.get_text() for t in fig.legends[0].get_texts()]
    assert not ax.texts  # nothing to annotate
    render(fig)


def test_phase_diagram_pools_sorts_and_selects():
    ds = make_dataset({"seed": [0, 1], "learning_rate": LR[::-1], "momentum": [0.0, 0.9]})
    fig = plots.phase_diagram(ds, "learning_rate", None)
    assert "seed × momentum" in fig.get_suptitle()
    z = panels(fig)[0].collections[0].get_array().ravel()
    sgd = ds["diverged"].sel(optimizer="sgd").mean(["seed", "momentum"]).sortby("learning_rate")
    np.testing.assert_allclose(z, sgd.values)  # sorted ascending despite the grid order
    fig = plots.phase_diagram(ds, "learning_rate", None, sel={"momentum": 0.9})
    assert "momentum = 0.9; 2 runs per point (seed)" in fig.get_suptitle()  # fixed, not pooled
    with pytest.raises(ValueError, match="not a grid axis"):
        plots.phase_diagram(ds, "learning_rate", "init_scale")
    with pytest.raises(ValueError, match="sel names"):
        plots.phase_diagram(ds, "learning_rate", None, sel={"init_scale": 1.0})
    with pytest.raises(ValueError, match="metric"):
        plots.phase_diagram(ds, "learning_rate", None, "grad_norm")
    # a DataArray metric without an optimizer dim is drawn in every chain's panel
    peak = ds["grad_norm"].sel(optimizer="sgd", drop=True).max("step")
    fig = plots.phase_diagram(ds, "learning_rate", None, peak)
    expected = peak.median(["seed", "momentum"]).sortby("learning_rate").values
    for ax in panels(fig):
        np.testing.assert_allclose(ax.collections[0].get_array().ravel(), expected)
