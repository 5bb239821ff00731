"""gradlab.analysis.training: runs that train versus runs that survived, the best over an axis.

Expected values come from the hand-made arrays of ``analysis_datasets`` and from published
order-statistic tables, never from gradlab itself.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from analysis_datasets import dataset, survived_dataset

from gradlab import analysis

CLIP = "clip_by_global_norm|sgd"


@pytest.fixture
def ds() -> xr.Dataset:
    return survived_dataset()


def test_runs_that_survive_at_chance_do_not_train(ds):
    ok = analysis.trains(ds)
    assert ok.dims == ds["diverged"].dims
    lr = ds["learning_rate"].values
    # by hand: lr 0.1 and 1 train; 3.16 survived (not diverged) at chance accuracy; 10 diverged
    np.testing.assert_array_equal(ok.values[0], np.broadcast_to(lr < 2, (3, 4)))
    assert not bool(ds["diverged"].sel(learning_rate=3.16).any())  # it did survive
    assert analysis.chance_accuracy(ds) == pytest.approx(0.1)
    df = analysis.compare_optimizers(ds)
    assert df.loc[CLIP, "max_stable_lr"] == 3.16  # "did not diverge"
    assert df.loc[CLIP, "max_trained_lr"] == 1.0  # "trains"
    assert df.loc[CLIP, "trained"] == pytest.approx(6 / 12)
    assert df.loc[CLIP, "diverged"] == pytest.approx(3 / 12)
    assert float(analysis.max_trained_lr(ds).item()) == 1.0


def test_the_rule_is_a_parameter(ds):
    # the loss fell from 8 to 2.3 at lr 3.16: only the accuracy condition rejects it
    loose = analysis.trains(ds, chance=0.0, accuracy_margin=0.05)
    assert bool(loose.sel(learning_rate=3.16).all())
    assert float(analysis.max_trained_lr(ds, chance=0.0, accuracy_margin=0.05).item()) == 3.16
    # a margin of 0.8 asks for final loss <= 1.6: lr 3.16 fails on the loss alone
    strict = analysis.trains(ds, margin=0.8, chance=0.0, accuracy_margin=0.0)
    np.testing.assert_array_equal(strict.values[0, 0], [True, True, False, False])
    with pytest.raises(ValueError, match="margin"):
        analysis.trains(ds, margin=1.0)


def test_trains_without_accuracy_uses_the_loss_alone():
    at = np.array([[[-1, -1, 3]]])  # one seed, three learning rates
    ds = dataset(at, {"seed": [0], "learning_rate": [0.1, 1.0, 10.0]}, chains=("sgd",))
    ds["final_loss"] = ds["final_loss"].copy(data=[[[0.5, 0.95, np.nan]]])  # initial loss 1
    np.testing.assert_array_equal(analysis.trains(ds).values, [[[True, False, False]]])
    assert analysis.chance_accuracy(ds) is None


@pytest.mark.parametrize(
    ("n", "ranks"),
    # distribution-free 95% interval for the median: ranks (j, n + 1 - j), e.g. Conover 1999,
    # table A3; n < 6 cannot reach 95% (min..max covers 1 - 2 / 2^n)
    [(5, None), (6, (1, 6)), (8, (1, 8)), (9, (2, 8)), (12, (3, 10)), (20, (6, 15))],
)
def test_median_interval_order_statistics(n, ranks):
    values = np.random.default_rng(n).permutation(np.arange(1.0, n + 1) * 10)
    da = xr.DataArray(np.append(values, np.nan), dims="seed")  # NaN: a run that does not count
    got = analysis.median_interval(da, ["seed"])
    assert int(got["runs"]) == n
    assert float(got["median"]) == pytest.approx(np.median(values))
    if ranks is None:
        assert math.isnan(got["lower"]) and math.isnan(got["upper"])
    else:
        assert (float(got["lower"]), float(got["upper"])) == (10.0 * ranks[0], 10.0 * ranks[1])


def test_best_over_counts_diverged_runs_as_worst_and_reports_the_others_there():
    lr = [0.01, 0.1, 1.0]
    at = np.full((1, 6, 3), -1)
    at[0, :3, 2] = 1  # lr = 1: half the seeds diverge, so its median is +inf
    ds = dataset(at, {"seed": list(range(6)), "learning_rate": lr}, chains=("sgd",))
    loss = np.array([0.9, 0.5, 0.01])[None, :] + np.arange(6)[:, None] * 0.01  # seed x lr
    ds["final_loss"] = ds["final_loss"].copy(data=np.where(at[0] >= 0, np.nan, loss)[None])
    ds["test_accuracy"] = 1 - ds["final_loss"]
    best = analysis.best_over(ds, "final_loss", also=["test_accuracy"])
    assert float(best["at"].item()) == 0.1  # not 1.0, whose survivors are best
    col = loss[:, 1]
    assert float(best["final_loss"].item()) == pytest.approx(np.median(col))
    assert float(best["final_loss_lower"].item()) == pytest.approx(col.min())
    assert float(best["test_accuracy"].item()) == pytest.approx(1 - np.median(col))
    assert float(best["test_accuracy_lower"].item()) == pytest.approx(1 - col.max())
    assert int(best["runs"].item()) == 6
    by_acc = analysis.best_over(ds, "test_accuracy")
    assert float(by_acc["at"].item()) == 0.1
    assert float(analysis.best_learning_rate(ds).item()) == 0.1


def test_a_classifier_without_step0_accuracy_needs_its_chance_level(ds):
    # a sweep with metrics = ["none"] records test_accuracy but no per-step accuracy: the runs
    # at lr 3.16 collapsed to chance, and skipping the accuracy condition would call them trained
    bare = ds.drop_vars("accuracy")
    with pytest.raises(ValueError, match="chance"):
        analysis.trains(bare)
    with pytest.raises(ValueError, match="chance"):
        analysis.max_trained_lr(bare)
    np.testing.assert_array_equal(analysis.trains(bare, chance=0.1), analysis.trains(ds))
    df = analysis.compare_optimizers(bare)  # the table leaves what it cannot judge empty
    assert np.isnan(df.loc[CLIP, "trained"]) and np.isnan(df.loc[CLIP, "max_trained_lr"])
    assert df.loc[CLIP, "max_stable_lr"] == 3.16
    given = analysis.compare_optimizers(bare, chance=0.1)
    assert given.loc[CLIP, "max_trained_lr"] == 1.0
    assert given.loc[CLIP, "trained"] == pytest.approx(6 / 12)
