"""Which runs count: copies along an axis a chain does not read, and unfinished runs.

Every expected number is computed here with numpy from the hand-made arrays of
``analysis_datasets`` (the divergence pattern ``UNREAD_AT``), never by gradlab.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from analysis_datasets import UNREAD_AT, UNREAD_GRID, dataset, partial, unread_axis_dataset

from gradlab import analysis

LRS = np.array(UNREAD_GRID["learning_rate"])
CLIP = "clip_by_global_norm|sgd"


@pytest.fixture
def ds() -> xr.Dataset:
    return unread_axis_dataset()


def _max_stable(div: np.ndarray) -> float:
    """div: (seed, lr) booleans -> the largest lr whose column has no diverged run."""
    ok = ~div.any(axis=0)
    return float(LRS[ok].max()) if ok.any() else np.nan


def test_counted_runs_keeps_one_copy_along_an_unread_axis(ds):
    counted = analysis.counted_runs(ds)
    assert counted.dims == ds["diverged"].dims
    expected = np.ones(UNREAD_AT.shape, bool)
    expected[0, :, :, 1:] = False  # sgd does not read clip_norm: only its first value counts
    np.testing.assert_array_equal(counted.values, expected)
    # along an axis that is not pooled every copy stands (each is sgd's run at that value)
    assert bool(analysis.counted_runs(ds, "seed").all())
    # hand-made Datasets without reads_ coordinates: every run counts
    assert bool(analysis.counted_runs(dataset(UNREAD_AT, UNREAD_GRID, ("a", "b"))).all())


def test_compare_optimizers_has_a_row_per_clip_norm_and_counts_sgd_once(ds):
    df = analysis.compare_optimizers(ds)
    clip_rows = [f"{CLIP} (clip_norm={c:g})" for c in UNREAD_GRID["clip_norm"]]
    assert list(df.index) == ["sgd", *clip_rows]
    sgd_div = UNREAD_AT[0, :, :, 0] >= 0  # (seed, lr): the distinct runs of sgd
    assert df.loc["sgd", "runs"] == sgd_div.size == 18
    assert df.loc["sgd", "diverged"] == pytest.approx(sgd_div.mean())
    assert df.loc["sgd", "max_stable_lr"] == _max_stable(sgd_div)
    for j, row in enumerate(clip_rows):
        div = UNREAD_AT[1, :, :, j] >= 0
        assert df.loc[row, "runs"] == div.size
        assert df.loc[row, "diverged"] == pytest.approx(div.mean())
        assert df.loc[row, "max_stable_lr"] == _max_stable(div), row
    # the clipped chain is as stable as its best clip norm allows, not its worst
    assert df.loc[f"{CLIP} (clip_norm=1)", "max_stable_lr"] == 10.0
    assert df.attrs["rows"][f"{CLIP} (clip_norm=3)"] == {"optimizer": CLIP, "clip_norm": 3.0}


def test_intervals_are_not_narrowed_by_copies(ds):
    rate = analysis.divergence_rate(ds, over=["seed", "clip_norm"]).sel(optimizer="sgd")
    k = (UNREAD_AT[0, :, :, 0] >= 0).sum(axis=0)  # per lr, over the 6 distinct seeds
    np.testing.assert_array_equal(rate["runs"], [6, 6, 6])
    np.testing.assert_array_equal(rate["diverged"], k)
    lo, hi = analysis.wilson_interval(k, 6)
    np.testing.assert_allclose(rate["lower"], lo)
    np.testing.assert_allclose(rate["upper"], hi)
    # the best result's interval is over sgd's six runs at the best lr: [min, max] at n = 6
    df = analysis.compare_optimizers(ds)
    loss = ds["final_loss"].sel(optimizer="sgd", clip_norm=1.0).values  # (seed, lr)
    cost = np.where(np.isnan(loss), np.inf, loss)
    best = int(np.argmin(np.median(cost, axis=0)))
    assert df.loc["sgd", "best_lr"] == LRS[best]
    assert df.loc["sgd", "best_final_loss"] == pytest.approx(np.median(cost[:, best]))
    assert df.loc["sgd", "best_final_loss_lower"] == pytest.approx(cost[:, best].min())
    assert df.loc["sgd", "best_final_loss_upper"] == cost[:, best].max()


def test_max_stable_lr_and_survival_pool_copies_once(ds):
    got = analysis.max_stable_lr(ds, over=["seed", "clip_norm"]).to_series()
    assert got["sgd"] == _max_stable(UNREAD_AT[0, :, :, 0] >= 0)
    # worst case over the clip norms the clipped chain does read
    assert got[CLIP] == _max_stable((UNREAD_AT[1] >= 0).any(axis=-1))
    surv = analysis.survival(ds).sel(optimizer="sgd")
    at = UNREAD_AT[0, :, :, 0].ravel()
    steps = ds["step"].values
    expected = [((at < 0) | (s <= at)).mean() for s in steps]
    np.testing.assert_allclose(surv, expected)


def test_unfinished_runs_count_nowhere(ds):
    done = np.ones(UNREAD_AT.shape, bool)
    done[:, 5] = False  # seed 5 has not run for any chain
    done[1, :, 2, 2] = False  # nor has the clipped chain at clip_norm = 10, lr = 10
    part = partial(ds, done)
    df = analysis.compare_optimizers(part)
    full = UNREAD_AT[:, :5]  # what has finished, by hand
    assert df.loc["sgd", "runs"] == 15
    assert df.loc["sgd", "diverged"] == pytest.approx((full[0, :, :, 0] >= 0).mean())
    row = f"{CLIP} (clip_norm=10)"
    div = full[1, :, :2, 2] >= 0  # lr = 10 never finished
    assert df.loc[row, "runs"] == div.size
    assert df.loc[row, "diverged"] == pytest.approx(div.mean())
    # lr = 10 has no finished run, so it is not known to be stable: the largest stable is 0.1
    assert df.loc[row, "max_stable_lr"] == float(LRS[:2][~div.any(axis=0)].max()) == 0.1
    rate = analysis.divergence_rate(part, over="seed").sel(optimizer="sgd", clip_norm=1.0)
    np.testing.assert_array_equal(rate["runs"], [5, 5, 5])
    surv = analysis.survival(part, over="seed").sel(optimizer="sgd", learning_rate=10.0)
    np.testing.assert_allclose(surv.sel(clip_norm=1.0), [1, 1, 1, 0, 0])  # all 5 at step 2
    lost = partial(ds, np.zeros(UNREAD_AT.shape, bool))
    assert analysis.divergence_rate(lost)["rate"].isnull().all()
    assert analysis.max_stable_lr(lost).isnull().all()


def test_fire_rate_and_profiles_skip_unfinished_runs(ds):
    clipped = np.zeros((*UNREAD_AT.shape, 5), bool)
    clipped[1, :3] = True  # the clipped chain clips every step of seeds 0-2
    ds["clipped"] = ds["clipped"].copy(data=clipped & analysis.applied(ds).values)
    done = np.ones(UNREAD_AT.shape, bool)
    done[1, 3:] = False  # its unclipped seeds 3-5 have not finished
    part = partial(ds, done)
    rate = analysis.fire_rate(part, over=["seed", "learning_rate", "clip_norm"])
    assert float(rate.sel(optimizer=CLIP)) == 1.0
    rho = analysis.performance_profile(part, "final_loss")
    assert rho.attrs["problems"] == 3 * 3 * 3  # seeds 0-2 only: both chains finished there
