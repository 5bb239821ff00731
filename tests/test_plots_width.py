"""The width figures: what they draw is what gl.analysis measures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import xarray as xr
from width_datasets import WIDTHS, coord_dataset, transfer_dataset

import gradlab as gl


def test_coord_check_draws_one_line_per_layer_with_its_slope():
    ds = coord_dataset([0.0, 1.0])
    fig = gl.plots.coord_check(ds, step=[0, 5])
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["step 0", "step 5"]
    lines = axes[1].get_lines()
    assert len(lines) == 2
    expected = ds["act_rms_layer"].sel(optimizer="adam", step=5).median("seed")
    for layer, line in enumerate(lines):
        np.testing.assert_allclose(line.get_ydata(), expected.isel(layer=layer))
        assert f"slope {[0.0, 1.0][layer]:+.2f}" in line.get_label()
    assert axes[1].get_xscale() == "log" and axes[1].get_yscale() == "log"
    assert [t.get_text() for t in axes[1].get_xticklabels()] == [str(w) for w in WIDTHS]


def test_coord_check_asks_for_one_chain():
    ds = coord_dataset([0.0])
    two = xr.concat([ds, ds.assign_coords(optimizer=["sgd"])], "optimizer")
    with pytest.raises(ValueError, match="one chain"):
        gl.plots.coord_check(two)


def test_lr_transfer_marks_each_widths_optimum():
    ds = transfer_dataset(alpha=-1.0)
    fig = gl.plots.lr_transfer(ds)
    ax = fig.axes[0]
    dots = [line for line in ax.get_lines() if line.get_marker() == "o"]
    expected = gl.analysis.optimal_lr(ds)["optimal_lr"].sel(optimizer="sgd").values
    np.testing.assert_allclose([d.get_xdata()[0] for d in dots], expected)
    assert ax.get_xscale() == "log"


def test_lr_transfer_puts_a_second_axis_side_by_side():
    sp, mup = transfer_dataset(alpha=-1.0), transfer_dataset(alpha=0.0)
    both = gl.analysis.concat_sweeps({"sp": sp, "mup": mup}, "parametrization")
    fig = gl.plots.lr_transfer(both, col="parametrization")
    assert len(fig.axes) == 2
    assert "sp" in fig.axes[0].get_title() and "mup" in fig.axes[1].get_title()


def test_lr_transfer_labels_a_power_of_two_grid_as_powers_of_two():
    ds = transfer_dataset(alpha=0.0)
    lrs = ds["learning_rate"].values
    exponents = np.log2(lrs)
    assert np.all(exponents == np.round(exponents)) and len(lrs) > 6
    ax = gl.plots.lr_transfer(ds).axes[0]
    np.testing.assert_allclose(ax.get_xticks(), lrs)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    every = int(np.ceil(len(lrs) / 6))
    expected = [f"$2^{{{int(k)}}}$" if i % every == 0 else "" for i, k in enumerate(exponents)]
    assert labels == expected
