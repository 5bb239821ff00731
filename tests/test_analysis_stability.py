"""gradlab.analysis.stability: divergence rates, stable learning rates, time to explode."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from analysis_datasets import dataset, divergence_dataset

from gradlab import analysis


@pytest.fixture
def ds() -> xr.Dataset:
    return divergence_dataset()


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [
        # Brown, Cai & DasGupta (2001) / standard tables, 95%
        (0, 10, 0.0, 0.2775),
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (1, 20, 0.0089, 0.2361),
    ],
)
def test_wilson_interval_matches_published_values(k, n, lo, hi):
    got_lo, got_hi = analysis.wilson_interval(k, n)
    assert got_lo == pytest.approx(lo, abs=1e-4)
    assert got_hi == pytest.approx(hi, abs=1e-4)


def test_wilson_interval_is_vectorised_and_handles_zero_runs():
    lo, hi = analysis.wilson_interval(np.array([0, 2, 0]), np.array([4, 4, 0]), confidence=0.9)
    assert lo[0] == 0.0 and 0 < hi[0] < 1
    assert lo[1] < 0.5 < hi[1]
    assert np.isnan(lo[2]) and np.isnan(hi[2])
    # wider at higher confidence
    assert analysis.wilson_interval(2, 4, 0.99)[1] > analysis.wilson_interval(2, 4, 0.9)[1]
    with pytest.raises(ValueError, match="confidence"):
        analysis.wilson_interval(1, 2, confidence=1.0)


def test_divergence_rate_over_seeds(ds):
    r = analysis.divergence_rate(ds)
    assert set(r["rate"].dims) == {"optimizer", "learning_rate", "init_scale"}
    sgd = r.sel(optimizer="sgd")
    np.testing.assert_allclose(sgd["rate"].sel(init_scale=2.0), [0, 1 / 3, 1])
    np.testing.assert_allclose(sgd["rate"].sel(init_scale=1.0), [0, 0, 1])
    assert int(sgd["diverged"].sel(learning_rate=0.1, init_scale=2.0)) == 1
    assert (r["runs"] == 3).all()
    lo, hi = analysis.wilson_interval(1, 3)
    cell = sgd.sel(learning_rate=0.1, init_scale=2.0)
    assert float(cell["lower"]) == pytest.approx(lo) and float(cell["upper"]) == pytest.approx(hi)
    assert bool(((r["lower"] <= r["rate"]) & (r["rate"] <= r["upper"])).all())


def test_divergence_rate_pooling_and_missing_seed(ds):
    pooled = analysis.divergence_rate(ds, over=["seed", "init_scale"])
    np.testing.assert_allclose(pooled["rate"].sel(optimizer="sgd"), [0, 1 / 6, 1])
    assert (pooled["runs"] == 6).all()
    per_run = analysis.divergence_rate(ds, over=None)
    xr.testing.assert_equal(per_run["rate"], ds["diverged"].astype(float))
    no_seed = ds.isel(seed=0, drop=True)
    r = analysis.divergence_rate(no_seed)  # "seed" absent: one run per configuration
    assert (r["runs"] == 1).all()
    with pytest.raises(ValueError, match="not grid axes"):
        analysis.divergence_rate(ds, over="sed")


def test_stable_lr_range_per_init_scale(ds):
    rng = analysis.stable_lr_range(ds)
    assert set(rng["max_stable_lr"].dims) == {"optimizer", "init_scale"}
    # sgd: lr = 1 diverges everywhere; lr = 0.1 diverged for one seed at init_scale 2
    np.testing.assert_allclose(rng["max_stable_lr"].sel(optimizer="sgd"), [0.1, 0.01])
    # adam: only one seed diverged, at lr = 1, init_scale 2
    np.testing.assert_allclose(rng["max_stable_lr"].sel(optimizer="adam"), [1.0, 0.1])
    np.testing.assert_allclose(rng["min_stable_lr"], 0.01)
    np.testing.assert_allclose(rng["stable_decades"].sel(optimizer="adam"), [2.0, 1.0])
    xr.testing.assert_equal(analysis.max_stable_lr(ds), rng["max_stable_lr"])


def test_max_stable_lr_requires_every_other_axis_stable(ds):
    pooled = analysis.max_stable_lr(ds, over=["seed", "init_scale"])
    assert pooled.dims == ("optimizer",)
    np.testing.assert_allclose(pooled, [0.01, 0.1])


def test_stable_lr_range_edge_cases():
    grid = {"learning_rate": [1.0, 0.01, 0.1]}  # unsorted on purpose
    at = np.array([[0, 0, 0], [-1, -1, -1]])
    m = analysis.max_stable_lr(dataset(at, grid))
    assert np.isnan(float(m.sel(optimizer="sgd")))  # every lr diverged
    assert float(m.sel(optimizer="adam")) == 1.0  # none diverged: the largest, not the last
    # a stable lr above an unstable one still counts (the definition is literal)
    at = np.array([[-1, -1, 2], [-1, -1, -1]])  # sgd: lr = 0.1 diverged, 0.01 and 1 did not
    rng = analysis.stable_lr_range(dataset(at, grid))
    assert float(rng["max_stable_lr"].sel(optimizer="sgd")) == 1.0
    assert float(rng["stable_decades"].sel(optimizer="sgd")) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="not a grid axis"):
        analysis.max_stable_lr(dataset(at[:, :1], {"init_scale": [1.0]}))
    with pytest.raises(ValueError, match="cannot be pooled"):
        analysis.max_stable_lr(dataset(at, grid), over="learning_rate")


def test_time_to_explode_and_survival(ds):
    t = analysis.time_to_explode(ds)
    assert t.dims == ds["diverged"].dims
    assert float(t.sel(optimizer="sgd", seed=0, learning_rate=0.1, init_scale=2.0)) == 3
    assert float(t.sel(optimizer="adam", seed=1, learning_rate=1.0, init_scale=2.0)) == 0
    assert int(t.notnull().sum()) == int(ds["diverged"].sum())
    s = analysis.survival(ds)
    assert s.dims == ("optimizer", "step")
    # sgd: 18 runs; 6 diverge at step 1 (dead from 2), 1 at step 3 (dead from 4)
    np.testing.assert_allclose(s.sel(optimizer="sgd"), [1, 1, 12 / 18, 12 / 18, 11 / 18])
    np.testing.assert_allclose(s.sel(optimizer="adam"), [1, 17 / 18, 17 / 18, 17 / 18, 17 / 18])
    by_lr = analysis.survival(ds, over=["seed", "init_scale"])
    np.testing.assert_allclose(by_lr.sel(optimizer="sgd", learning_rate=1.0), [1, 1, 0, 0, 0])
