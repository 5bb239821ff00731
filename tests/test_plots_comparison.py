"""gradlab.plots.comparison: the bars and the table show each chain's numbers on its own row."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from plot_datasets import LR, make_dataset

from gradlab import plots

# Layout problems (collapsed axes) and bad data handling surface as warnings: make them errors.
pytestmark = pytest.mark.filterwarnings("error::UserWarning", "error::RuntimeWarning")


def test_comparison_bars_draw_a_panel_per_measured_column():
    ds = make_dataset({"seed": [0, 1], "learning_rate": LR}, sharpness=True)
    fig = plots.comparison_bars(ds.drop_vars("clipped"))
    titles = [ax.get_title() for ax in fig.axes]
    assert "fraction of steps clipped" not in titles  # no clipping measured: no panel
    assert "fraction of runs diverged" in titles


def test_comparison_bars_and_table_show_each_chains_divergence_rate_on_its_row():
    ds = make_dataset({"seed": [0, 1, 2], "learning_rate": LR}, seed=3)
    rate = ds["diverged"].values.reshape(2, -1).mean(axis=1)  # per chain, over all 12 runs
    assert rate[0] != rate[1]  # the rows can be told apart
    fig = plots.comparison_bars(ds)
    (ax,) = [ax for ax in fig.axes if ax.get_title() == "fraction of runs diverged"]
    bars = sorted(ax.patches, key=lambda p: p.get_y())  # top row (first chain) first
    np.testing.assert_allclose([b.get_width() for b in bars], rate)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list(ds["optimizer"].values)
    table = plots.optimizer_table(ds).axes[0].tables[0]
    cells = table.get_celld()
    headers = [cells[0, c].get_text().get_text() for c in range(max(c for _, c in cells) + 1)]
    col = headers.index("diverged")
    for row, (chain, r) in enumerate(zip(ds["optimizer"].values, rate, strict=True), start=1):
        assert cells[row, 0].get_text().get_text() == chain
        assert cells[row, col].get_text().get_text() == f"{100 * r:.3g}%"
