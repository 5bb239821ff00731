"""gradlab.analysis.selection: grid axes, the alive mask, pooled axes, run costs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from analysis_datasets import divergence_dataset

from gradlab import analysis, schema
from gradlab.analysis.selection import run_cost


@pytest.fixture
def ds() -> xr.Dataset:
    return divergence_dataset()


def test_grid_axes_and_alive(ds):
    assert analysis.grid_axes(ds) == ("seed", "learning_rate", "init_scale")
    live = analysis.alive(ds).sel(optimizer="sgd", seed=0, init_scale=2.0)
    # diverged at step 3 (lr = 0.1): alive at 0..3 (the step of divergence counts), dead at 4
    np.testing.assert_array_equal(live.sel(learning_rate=0.1), [1, 1, 1, 1, 0])
    np.testing.assert_array_equal(live.sel(learning_rate=1.0), [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(live.sel(learning_rate=0.01), [1, 1, 1, 1, 1])
    adam = analysis.alive(ds).sel(optimizer="adam", seed=1, learning_rate=1.0, init_scale=2.0)
    np.testing.assert_array_equal(adam, [1, 0, 0, 0, 0])


def test_pool_axes_validates_and_keeps_the_order_given(ds):
    assert analysis.pool_axes(ds, None) == []
    assert analysis.pool_axes(ds, "init_scale") == ["init_scale"]
    assert analysis.pool_axes(ds, ("init_scale", "seed")) == ["init_scale", "seed"]
    # "seed" may be named in a sweep without seeds: nothing to pool
    assert analysis.pool_axes(ds.isel(seed=0, drop=True), ["seed", "init_scale"]) == ["init_scale"]
    with pytest.raises(ValueError, match=r"\['width'\] not grid axes.*'learning_rate'"):
        analysis.pool_axes(ds, ["seed", "width"])


def test_quiet_nan_warnings_silences_only_empty_slice_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with analysis.quiet_nan_warnings():
            assert np.isnan(np.nanmean(np.array([np.nan])))
            assert np.isnan(np.nanmax(np.array([np.nan])))
            assert np.isinf(np.array([1.0]) / 0.0)[0]
        with pytest.raises(RuntimeWarning):  # restored on exit
            np.nanmean(np.array([np.nan]))
        with pytest.raises(UserWarning), analysis.quiet_nan_warnings():
            warnings.warn("not about NaN", UserWarning, stacklevel=1)


@pytest.mark.parametrize(
    "name", [n for n, v in schema.VARIABLES.items() if v.dims == () and v.dtype == "float32"]
)
def test_run_cost_direction_comes_from_the_schema(ds, name):
    ds = ds.assign({name: ds["final_loss"].fillna(0.5) * 0 + 0.25})
    cost = run_cost(ds, name)
    expected = -0.25 if schema.VARIABLES[name].higher_is_better else 0.25
    alive_runs = ~ds["diverged"]
    np.testing.assert_array_equal(cost.where(alive_runs, expected), expected)
    assert np.isposinf(cost.where(ds["diverged"], np.inf)).all()  # diverged: +inf
    with pytest.raises(ValueError, match="per-step"):
        run_cost(ds, "loss")
