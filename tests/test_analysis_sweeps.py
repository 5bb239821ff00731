"""gradlab.analysis.sweeps: sweeps joined on a new axis."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from analysis_datasets import divergence_dataset

from gradlab import analysis


@pytest.fixture
def ds() -> xr.Dataset:
    return divergence_dataset()


def test_concat_sweeps_joins_depths_with_nan_padded_layers(ds):
    shallow = ds.assign_coords(layer=[0, 1]).assign(
        delta_rms_layer=ds["loss"].expand_dims(layer=[0, 1]).transpose(..., "layer") * 2.0
    )
    deep = ds.assign_coords(layer=[0, 1, 2]).assign(
        delta_rms_layer=ds["loss"].expand_dims(layer=[0, 1, 2]).transpose(..., "layer") * 3.0
    )
    shallow.attrs["wall_time_s"], deep.attrs["wall_time_s"] = 1.5, 2.5
    both = analysis.concat_sweeps({2: shallow, 3: deep}, "depth")
    assert analysis.grid_axes(both) == ("depth", "seed", "learning_rate", "init_scale")
    assert both["diverged"].dtype == bool and both["diverged_at"].dtype == ds["diverged_at"].dtype
    assert both["clipped"].dtype == bool
    d = both["delta_rms_layer"].sel(optimizer="sgd", seed=0, learning_rate=0.01, init_scale=1.0)
    np.testing.assert_allclose(d.sel(depth=2, step=0), [2.0, 2.0, np.nan])  # padded
    np.testing.assert_allclose(d.sel(depth=3, step=0), [3.0, 3.0, 3.0])
    xr.testing.assert_equal(both["diverged"].sel(depth=2, drop=True), ds["diverged"])
    assert both.attrs["wall_time_s"] == 4.0
    assert "# depth = 2\nsteps = 5" in both.attrs["spec"]
    # the divergence rate of the joined sweep is each part's, per depth
    r = analysis.divergence_rate(both)
    xr.testing.assert_equal(r["rate"].sel(depth=3, drop=True), analysis.divergence_rate(ds)["rate"])
    with pytest.raises(ValueError, match="already a dim"):
        analysis.concat_sweeps({1: ds}, "seed")
    with pytest.raises(ValueError, match="grid axes differ"):
        analysis.concat_sweeps({1: ds, 2: ds.isel(seed=0, drop=True)}, "depth")
    with pytest.raises(ValueError, match="at least one"):
        analysis.concat_sweeps({}, "depth")


def test_concat_sweeps_keeps_each_sweeps_layer_widths_and_rules(ds):
    def sweep(widths):
        layers = np.arange(len(widths))
        out = ds.assign_coords(layer=layers, layer_width=("layer", np.array(widths)))
        delta = ds["loss"].expand_dims(layer=layers).transpose(..., "layer")
        return out.assign(delta_rms_layer=delta)

    both = analysis.concat_sweeps({2: sweep([16, 10]), 3: sweep([64, 16, 10])}, "depth")
    assert both["layer_width"].dims == ("depth", "layer")
    np.testing.assert_array_equal(both["layer_width"].sel(depth=2), [16, 10, np.nan])
    np.testing.assert_array_equal(both["layer_width"].sel(depth=3), [64, 16, 10])
    same = analysis.concat_sweeps({2: sweep([64, 16, 10]), 3: sweep([64, 16, 10])}, "depth")
    assert same["layer_width"].dims == ("layer",)  # equal widths: one row
    np.testing.assert_array_equal(same["layer_width"], [64, 16, 10])
    xr.testing.assert_equal(both["stability_rule"], ds["stability_rule"])


def test_concat_sweeps_refuses_sweeps_over_different_grid_values(ds):
    # Two sweeps with the same axis names but other learning rates: an outer join would leave
    # holes (runs never trained) that came back as diverged=True, diverged_at=-2**31.
    other = ds.assign_coords(learning_rate=ds["learning_rate"].values * 3)
    with pytest.raises(ValueError, match=r"learning_rate: the sweeps must have the same values"):
        analysis.concat_sweeps({1: ds, 2: other}, "width")
    shorter = ds.isel(step=slice(0, 2))
    with pytest.raises(ValueError, match=r"step: the sweeps must have the same values"):
        analysis.concat_sweeps({1: ds, 2: shorter}, "width")
    same = analysis.concat_sweeps({1: ds, 2: ds}, "width")  # equal grids still join
    assert same["diverged"].dtype == bool and not bool(same["diverged_at"].min() < -1)
    assert float(analysis.divergence_rate(same)["rate"].mean()) == pytest.approx(
        float(analysis.divergence_rate(ds)["rate"].mean())
    )
