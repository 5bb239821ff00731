"""gradlab.analysis.clipping: how often interventions fire, the typical gradient norm."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from analysis_datasets import comparison_dataset

from gradlab import analysis


def test_fire_rate_counts_applied_steps_only():
    ds = comparison_dataset()
    rate = analysis.fire_rate(ds, "clipped")
    assert rate.dims == ("optimizer", "learning_rate")
    # sgd, lr = 1: seed 0 applied 2 updates before diverging at step 2 (clipped once), seed 1
    # applied 5 (never clipped) -> 1/7
    assert float(rate.sel(optimizer="sgd", learning_rate=1.0)) == pytest.approx(1 / 7)
    # sgd, lr = 0.1: one clipped step out of 10 alive ones
    assert float(rate.sel(optimizer="sgd", learning_rate=0.1)) == pytest.approx(1 / 10)
    np.testing.assert_allclose(rate.sel(optimizer="clip_by_global_norm|sgd"), 1.0)
    pooled = analysis.fire_rate(ds, "clipped", over=["seed", "learning_rate"])
    assert float(pooled.sel(optimizer="sgd")) == pytest.approx(2 / 17)
    with pytest.raises(ValueError, match="per-step"):
        analysis.fire_rate(ds, "final_loss")


def test_typical_grad_norm_ignores_diverged_runs():
    ds = comparison_dataset()
    g = ds["grad_norm"].values
    g[0, 1, 1, :] = [1.0, 2.0, 3.0, 7.0, 12.0]  # sgd, seed 1, lr = 1 (never diverged)
    ds["grad_norm"] = ds["grad_norm"].copy(data=g)
    mean = analysis.typical_grad_norm(ds, "mean")
    # sgd, lr = 1: only seed 1 counts (seed 0 diverged, with an inf and a 1e9 in it)
    assert float(mean.sel(optimizer="sgd", learning_rate=1.0)) == pytest.approx(5.0)
    assert (
        float(analysis.typical_grad_norm(ds, "median").sel(optimizer="sgd", learning_rate=1.0)) == 3
    )
    q = analysis.typical_grad_norm(ds, 0.5).sel(optimizer="sgd", learning_rate=1.0)
    assert float(q) == 3
    assert float(mean.sel(optimizer="sgd", learning_rate=0.1)) == 1.0
    with pytest.raises(ValueError, match="statistic"):
        analysis.typical_grad_norm(ds, "max")


def test_fire_rate_does_not_count_the_step_of_divergence():
    # The step at which a run diverges applies no update, so it has no clip flag (False):
    # counting it would under-count the rate by one step per diverged run.
    clipped = np.array([[[True, True, False, False], [True, False, True, False]]])
    ds = xr.Dataset(
        {
            "clipped": (("optimizer", "seed", "step"), clipped),
            "diverged_at": (("optimizer", "seed"), np.array([[2, -1]], np.int32)),
            "diverged": (("optimizer", "seed"), np.array([[True, False]])),
        },
        coords={"optimizer": ["clip_by_global_norm|sgd"], "seed": [0, 1], "step": [0, 1, 2, 3]},
    )
    rate = analysis.fire_rate(ds)
    assert float(rate.squeeze()) == pytest.approx((2 + 2) / (2 + 4))  # applied steps: 2 and 4
    per_run = analysis.fire_rate(ds, over=None).squeeze().values
    np.testing.assert_allclose(per_run, [2 / 2, 2 / 4])
