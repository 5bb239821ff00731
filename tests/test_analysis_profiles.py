"""gradlab.analysis.profiles: Dolan-Moré performance profiles and their scores."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from analysis_datasets import divergence_dataset

from gradlab import analysis


@pytest.fixture
def ds() -> xr.Dataset:
    return divergence_dataset()


def test_performance_profile_known_ratios():
    costs = xr.DataArray(
        [[1.0, 2.0, np.nan, 0.0], [2.0, 2.0, 3.0, 0.0]],
        dims=("optimizer", "problem"),
        coords={"optimizer": ["a", "b"]},
    )
    rho = analysis.performance_profile(xr.Dataset(), costs, taus=[1.0, 1.5, 2.0, 100.0])
    # ratios a: [1, 1, inf, 1]; b: [2, 1, 1, 1] (0/0 ties count as best)
    np.testing.assert_allclose(rho.sel(optimizer="a"), [0.75, 0.75, 0.75, 0.75])
    np.testing.assert_allclose(rho.sel(optimizer="b"), [0.75, 0.75, 1.0, 1.0])
    assert rho.attrs["problems"] == 4
    score = analysis.profile_score(rho)
    expected_b = np.trapezoid([0.75, 0.75, 1.0, 1.0], [1.0, 1.5, 2.0, 100.0]) / 99.0
    assert float(score.sel(optimizer="b")) == pytest.approx(expected_b)
    assert float(score.sel(optimizer="a")) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="non-negative"):
        analysis.performance_profile(xr.Dataset(), -costs)


def test_performance_profile_on_final_loss_and_stability(ds):
    rho = analysis.performance_profile(ds, "final_loss")
    assert rho.attrs["problems"] == 18
    # equal losses wherever both chains survive; sgd fails on 7 runs, adam on 1
    assert float(rho.sel(optimizer="sgd").isel(tau=0)) == pytest.approx(11 / 18)
    assert float(rho.sel(optimizer="adam").isel(tau=-1)) == pytest.approx(17 / 18)
    assert float(rho["tau"][0]) == 1.0 and float(rho["tau"][-1]) >= 2.0
    stab = analysis.performance_profile(ds, "stability", taus=[1.0, 10.0, 100.0])
    # problems: init_scale 1 (sgd 0.1 vs adam 1: ratio 10) and 2 (0.01 vs 0.1: ratio 10)
    assert stab.attrs["problems"] == 2
    np.testing.assert_allclose(stab.sel(optimizer="sgd"), [0, 1, 1])
    np.testing.assert_allclose(stab.sel(optimizer="adam"), [1, 1, 1])
    with pytest.raises(ValueError, match="per-step"):
        analysis.performance_profile(ds, "loss")


def test_performance_profile_refuses_a_higher_is_better_metric(ds):
    """An accuracy is not a cost: ranking by it would call the worst chain the best."""
    ds = ds.assign(test_accuracy=ds["final_loss"] * 0 + 0.9)
    with pytest.raises(ValueError, match="test_error"):
        analysis.performance_profile(ds, "test_accuracy")
    rho = analysis.performance_profile(ds, "test_error", taus=[1.0])
    # equal errors (0.1) wherever a chain survives: sgd survives 11 of 18 runs, adam 17
    np.testing.assert_allclose(rho.sel(optimizer=["sgd", "adam"]).squeeze(), [11 / 18, 17 / 18])
