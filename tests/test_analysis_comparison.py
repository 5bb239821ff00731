"""gradlab.analysis.comparison: the optimizer table, the best learning rate, relative cost."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from analysis_datasets import comparison_dataset, dataset, divergence_dataset

from gradlab import analysis


@pytest.fixture
def ds() -> xr.Dataset:
    return divergence_dataset()


def test_compare_optimizers_known_table():
    df = analysis.compare_optimizers(comparison_dataset())
    assert list(df.columns) == list(analysis.TABLE_COLUMNS)
    assert list(df.index) == ["sgd", "clip_by_global_norm|sgd"]
    sgd, clip = df.loc["sgd"], df.loc["clip_by_global_norm|sgd"]
    assert sgd["runs"] == 4 and clip["runs"] == 4
    assert sgd["diverged"] == 0.25 and clip["diverged"] == 0
    assert sgd["max_stable_lr"] == 0.1 and clip["max_stable_lr"] == 1.0
    assert sgd["stable_decades"] == 0 and clip["stable_decades"] == pytest.approx(1.0)
    assert sgd["final_loss"] == pytest.approx(0.7)  # median of 0.5, 0.7, 0.9 (99 diverged)
    assert clip["final_loss"] == pytest.approx(2.5)
    assert sgd["test_accuracy"] == pytest.approx(0.8)
    assert math.isnan(sgd["test_loss"])  # no such variable
    # applied steps: 2 (the run that diverged at step 2) + 3 * 5; clipped on 2 of them
    assert sgd["clip_rate"] == pytest.approx(2 / 17) and clip["clip_rate"] == 1.0
    assert sgd["max_grad_norm"] == 7.0 and clip["max_grad_norm"] == 1.0
    assert sgd["diverged_at"] == 2 and math.isnan(clip["diverged_at"])
    # per run: max over alive steps of sharpness / bound; sgd runs reach 1.5 except the one that
    # died at step 2 (alive there: 1.5 too); median 1.5. The clip chain: 0.25.
    assert sgd["sharpness_ratio"] == pytest.approx(1.5)
    assert clip["sharpness_ratio"] == pytest.approx(0.25)


def test_compare_optimizers_minimal_dataset():
    """No seed, no learning-rate axis, no optional variables: NaN columns, never an error."""
    ds = dataset(np.array([[-1, 3]]), {"init_scale": [1.0, 4.0]}, chains=("adam",))
    ds = ds.drop_vars(["clipped", "grad_norm"])
    df = analysis.compare_optimizers(ds)
    assert df.loc["adam", "diverged"] == 0.5 and df.loc["adam", "runs"] == 2
    for col in ("max_stable_lr", "clip_rate", "max_grad_norm", "sharpness_ratio", "test_loss"):
        assert math.isnan(df.loc["adam", col])


def test_float32_engine_dtypes_are_fine(ds):
    """The engine writes float32 and int32; results must not depend on it."""
    ds32 = ds.assign({k: ds[k].astype(np.float32) for k in ("loss", "grad_norm", "final_loss")})
    pd.testing.assert_frame_equal(
        analysis.compare_optimizers(ds32), analysis.compare_optimizers(ds), check_dtype=False
    )


def test_best_learning_rate_counts_diverged_runs_as_worst():
    grid = {"seed": [0, 1, 2], "learning_rate": [0.01, 0.1, 1.0]}
    at = np.full((2, 3, 3), -1)
    at[0, :2, 2] = 3  # sgd, lr = 1: two of three seeds diverge (its survivor has the best loss)
    ds = dataset(at, grid)
    loss = np.array([[0.9, 0.5, 0.1], [0.8, 0.6, 0.1], [0.7, 0.4, 0.05]])  # seed x lr
    ds["final_loss"] = ds["final_loss"].copy(data=np.stack([loss, loss[:, ::-1]]))
    ds["final_loss"] = ds["final_loss"].where(~ds["diverged"])
    best = analysis.best_learning_rate(ds)
    assert best.dims == ("optimizer",)
    assert float(best.sel(optimizer="sgd")) == 0.1  # lr = 1 has a diverged median run
    assert float(best.sel(optimizer="adam")) == 0.01  # reversed losses
    ds["test_accuracy"] = 1 - ds["final_loss"]
    assert float(analysis.best_learning_rate(ds, "test_accuracy").sel(optimizer="adam")) == 0.01
    all_div = dataset(np.zeros((2, 3, 3), int), grid)
    assert analysis.best_learning_rate(all_div).isnull().all()
    with pytest.raises(ValueError, match="cannot be pooled"):
        analysis.best_learning_rate(ds, over="learning_rate")
    with pytest.raises(ValueError, match="per-step"):
        analysis.best_learning_rate(ds, "loss")


def test_relative_cost_is_the_ratio_of_medians():
    ds = comparison_dataset()
    cost = analysis.relative_cost(ds, "sgd")
    assert cost.dims == ("optimizer", "learning_rate")
    np.testing.assert_allclose(cost.sel(optimizer="sgd"), 1.0)
    # clip chain: medians over seeds 2 (lr 0.1: 1, 3) and 3 (lr 1: 2, 4); sgd: 0.6 and 0.9
    # (at lr = 1 sgd's seed 0 diverged, so its median is its survivor's 0.9)
    np.testing.assert_allclose(cost.sel(optimizer="clip_by_global_norm|sgd"), [2 / 0.6, 3 / 0.9])
    with pytest.raises(ValueError, match="baseline"):
        analysis.relative_cost(ds, "adam")
