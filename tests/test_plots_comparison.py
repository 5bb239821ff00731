"""gradlab.plots.comparison: the bars and the table show each chain's numbers on its own row."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import xarray as xr
from analysis_datasets import unread_axis_dataset
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


def stable_up_to(ds, stable: dict[str, float]):
    """Every run of a chain diverges at learning rates above ``stable[chain]``, none below."""
    lr = ds["learning_rate"]
    limit = xr.DataArray(
        list(stable.values()), dims="optimizer", coords={"optimizer": list(stable)}
    )
    diverged = (lr > limit).broadcast_like(ds["diverged"])
    ds["diverged_at"] = xr.where(diverged, 1, -1).astype(np.int32)
    ds["diverged"] = diverged
    return ds


def max_stable_lr_panel(fig):
    (ax,) = [ax for ax in fig.axes if ax.get_title().startswith("max stable learning rate")]
    return ax


def test_max_stable_lr_is_drawn_on_a_log_axis_where_the_learning_rates_are_log_spaced():
    """0.3 and 0.1 are less than a decade apart, but they are points of a log-spaced grid."""
    ds = make_dataset({"seed": [0, 1], "learning_rate": [0.03, 0.1, 0.3, 0.6, 1.0]})
    ds = stable_up_to(ds, {"sgd": 0.3, "clip_by_global_norm|adam": 0.1})
    ax = max_stable_lr_panel(plots.comparison_bars(ds))
    assert ax.get_xscale() == "log"
    (dots,) = ax.collections
    np.testing.assert_allclose(dots.get_offsets()[:, 0], [0.3, 0.1])  # one dot per chain
    np.testing.assert_allclose(ax.get_xticks(), [0.03, 0.1, 0.3, 0.6, 1.0])  # the grid
    even = make_dataset({"seed": [0, 1], "learning_rate": [0.1, 0.2, 0.3, 0.4]})
    even = stable_up_to(even, {"sgd": 0.3, "clip_by_global_norm|adam": 0.1})
    ax = max_stable_lr_panel(plots.comparison_bars(even))
    assert ax.get_xscale() == "linear"  # an arithmetic grid: bars
    np.testing.assert_allclose(sorted(p.get_width() for p in ax.patches), [0.1, 0.3])


def test_comparison_bars_have_a_row_per_chain_configuration_and_interval_bars():
    """A clip-norm axis that sgd does not read: one sgd row, a row per clip norm for the clipped
    chain; the best final loss carries its interval (six seeds: min to max)."""
    ds = unread_axis_dataset()
    fig = plots.comparison_bars(ds)
    rows = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    clip = "clip_by_global_norm|sgd"
    assert rows == ["sgd", *(f"{clip} (clip_norm={c})" for c in ("1", "3", "10"))]
    # 18 distinct runs per row: sgd's copies along clip_norm are not counted again
    assert fig.texts[0].get_text().endswith("18 runs per row (seed × learning_rate)")
    (ax,) = [a for a in fig.axes if a.get_title().startswith("final loss at the best")]
    # the clip-norm-1 row has no diverged run at its best lr: a finite interval, drawn
    loss = ds["final_loss"].sel(optimizer=clip, clip_norm=1.0).values  # (seed, lr)
    best = int(np.argmin(np.median(loss, axis=0)))
    (bars,) = [c for c in ax.collections if c.get_segments()]
    spans = sorted((s[0][0], s[1][0]) for s in bars.get_segments())
    assert (loss[:, best].min(), loss[:, best].max()) in [pytest.approx(s) for s in spans]
