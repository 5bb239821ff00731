"""gradlab.analysis.mean_field: empirical χ1, the critical line, trainable depth."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from analysis_datasets import dataset, layered

from gradlab import analysis


def test_empirical_chi1_uses_interior_pairs_only():
    # 5 layers (4 hidden + output): interior ratios 4, 4, 1 -> geometric mean 16^(1/3);
    # the output pair has ratio 100 and must not count.
    d = np.array([[4.0, 2.0, 1.0, 1.0, 0.1]])
    chi = analysis.empirical_chi1(layered(d))
    assert chi.dims == ("optimizer", "init_scale")
    assert float(chi.squeeze()) == pytest.approx(16 ** (1 / 3))
    prof = analysis.chi1_profile(layered(d))
    np.testing.assert_allclose(prof.squeeze(), [4.0, 4.0, 1.0, 100.0])
    np.testing.assert_array_equal(prof["layer"], [1, 2, 3, 4])


def test_empirical_chi1_per_run_depth_with_nan_padding():
    # run 0: 5 layers; run 1: 3 layers padded with NaN (interior pair 1 only); run 2: 2 layers
    d = np.array(
        [
            [8.0, 4.0, 2.0, 1.0, 5.0],
            [3.0, 1.0, 7.0, np.nan, np.nan],
            [1.0, 2.0, np.nan, np.nan, np.nan],
        ]
    )
    chi = analysis.empirical_chi1(layered(d)).squeeze()
    np.testing.assert_allclose(chi[:2], [4.0, 9.0])
    assert np.isnan(chi[2])
    with pytest.raises(ValueError, match="two hidden layers"):
        analysis.empirical_chi1(layered(d[2:, :2]))


def test_fixed_point_chi1_skips_the_pairs_nearest_the_input():
    # 6 layers (5 hidden + output): pair ratios 16, 4, 1, 1 (interior), 100 (output)
    d = np.array([[16.0, 4.0, 2.0, 2.0, 2.0, 0.2]])
    ds = layered(d)
    assert float(analysis.fixed_point_chi1(ds, skip=0).squeeze()) == pytest.approx(
        float(analysis.empirical_chi1(ds).squeeze())
    )
    assert float(analysis.fixed_point_chi1(ds, skip=1).squeeze()) == pytest.approx(4 ** (1 / 3))
    # one implementation: empirical_chi1 takes the same skip (pairs 2..4: 4, 1, 1)
    assert float(analysis.empirical_chi1(ds, skip=1).squeeze()) == pytest.approx(4 ** (1 / 3))
    assert float(analysis.empirical_chi1(ds, skip=3).squeeze()) == pytest.approx(1.0)
    assert float(analysis.fixed_point_chi1(ds, skip=2).squeeze()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no interior layer pair"):
        analysis.fixed_point_chi1(ds, skip=4)
    with pytest.raises(ValueError, match="skip"):
        analysis.fixed_point_chi1(ds, skip=-1)


def test_critical_init_scale_converts_variances():
    crit = analysis.critical_init_scale(xr.DataArray([0.0, 0.5]), lambda sb2: 1.0 + 4.0 * sb2)
    assert crit.dims == ("bias_std",)
    np.testing.assert_allclose(crit, [1.0, math.sqrt(2.0)])
    np.testing.assert_allclose(crit["bias_std"], [0.0, 0.5])


def test_trainable_depth_is_the_deepest_passing_median():
    grid = {"depth": [5, 10, 20, 40], "seed": [0, 1, 2]}
    at = np.full((1, 4, 3), -1)
    at[0, 3, :] = 2  # depth 40: every seed diverges
    ds = dataset(at, grid, chains=("sgd",))
    acc = np.array([[0.9, 0.9, 0.9], [0.8, 0.2, 0.7], [0.6, 0.1, 0.1], [0.9, 0.9, 0.9]])
    ds["test_accuracy"] = ds["final_loss"].copy(data=acc[None]).where(~ds["diverged"])
    depth = analysis.trainable_depth(ds, threshold=0.5)
    assert depth.dims == ("optimizer",)
    assert float(depth.sel(optimizer="sgd")) == 10  # 20: one seed of three; 40: diverged
    assert float(analysis.trainable_depth(ds, threshold=0.05)[0]) == 20
    assert np.isnan(float(analysis.trainable_depth(ds, threshold=0.95)[0]))
    with pytest.raises(ValueError, match="not a grid axis"):
        analysis.trainable_depth(ds, dim="width")


@pytest.mark.parametrize(
    ("acc", "expected"),
    [
        # 2 seeds: depth 10 has one passing seed of two, a tie: not a majority
        ([[0.9, 0.9], [0.9, 0.2], [0.1, 0.1]], 5),
        # 4 seeds: depth 10 passes on 3 of 4, depth 20 on 2 of 4 (a tie)
        ([[0.9, 0.9, 0.9, 0.9], [0.9, 0.9, 0.9, 0.2], [0.9, 0.9, 0.1, 0.1]], 10),
        # 4 seeds: a tie at every depth but the first
        ([[0.9, 0.9, 0.9, 0.1], [0.9, 0.9, 0.1, 0.1], [0.1, 0.9, 0.9, 0.1]], 5),
    ],
)
def test_trainable_depth_needs_a_strict_majority_of_seeds(acc, expected):
    acc = np.array(acc)
    grid = {"depth": [5, 10, 20], "seed": list(range(acc.shape[1]))}
    ds = dataset(np.full((1, *acc.shape), -1), grid, chains=("sgd",))
    ds["test_accuracy"] = ds["final_loss"].copy(data=acc[None])
    assert float(analysis.trainable_depth(ds, threshold=0.5)[0]) == expected
    # the same rule for a loss, where passing is being at most the threshold
    ds["test_loss"] = 1.0 - ds["test_accuracy"]
    assert float(analysis.trainable_depth(ds, metric="test_loss", threshold=0.5)[0]) == expected
