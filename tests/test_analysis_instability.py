"""gradlab.analysis.instability: learning-rate sensitivity, catapult phases, warmup.

Expected values are computed here from the hand-made arrays of ``analysis_datasets`` with plain
numpy loops over the formulas of the docstrings (Wortsman et al. 2023; the phase rules of
Lewkowycz et al. 2020), never from gradlab itself.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from analysis_datasets import (
    CATAPULT_KINDS,
    CATAPULT_LAMBDA0,
    CATAPULT_LR,
    UNREAD_AT,
    catapult_dataset,
    dataset,
    partial,
    sensitivity_dataset,
    unread_axis_dataset,
)
from scipy import stats

import gradlab as gl
from gradlab import analysis


def sensitivity_by_hand(initial: float, finals: list[float]) -> float:
    """Wortsman et al. 2023's sensitivity for one seed: finals with NaN for a diverged run."""
    capped = [initial if np.isnan(f) else min(f, initial) for f in finals]
    best = min(capped)
    return sum(v - best for v in capped) / len(capped)


def t_interval_by_hand(values: list[float]) -> tuple[float, float, float]:
    n = len(values)
    mean = sum(values) / n
    sd = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
    half = stats.t.ppf(0.975, n - 1) * sd / n**0.5
    return mean, mean - half, mean + half


def test_lr_sensitivity_is_wortsmans_formula():
    ds = sensitivity_dataset()
    out = analysis.lr_sensitivity(ds)
    for c, chain in enumerate(["sgd", "adam"]):
        per_seed = []
        for s in range(3):
            finals = ds["final_loss"].values[c, s].tolist()
            per_seed.append(sensitivity_by_hand(2.0 + 0.1 * s, finals))
        np.testing.assert_allclose(out["per_sample"].sel(optimizer=chain), per_seed)
        mean, low, high = t_interval_by_hand(per_seed)
        row = out.sel(optimizer=chain)
        assert float(row["lr_sensitivity"]) == pytest.approx(mean)
        assert float(row["lower"]) == pytest.approx(low)
        assert float(row["upper"]) == pytest.approx(high)
        assert int(row["samples"]) == 3
    # sgd, seed 0: capped [1, 0.5, 2 (ℓ₀), 2 (diverged)], best 0.5: (0.5 + 0 + 1.5 + 1.5) / 4
    assert float(out["per_sample"].sel(optimizer="sgd", seed=0)) == pytest.approx(0.875)


def test_lr_sensitivity_counts_each_run_once_and_skips_unfinished_seeds():
    ds = unread_axis_dataset()  # sgd's runs are copies along clip_norm; ℓ₀ = 1
    out = analysis.lr_sensitivity(ds, over=["seed", "clip_norm"])
    finals = ds["final_loss"].values
    sgd = [sensitivity_by_hand(1.0, finals[0, s, :, 0].tolist()) for s in range(6)]
    clip = [
        sensitivity_by_hand(1.0, finals[1, s, :, k].tolist()) for s in range(6) for k in range(3)
    ]
    assert int(out["samples"].sel(optimizer="sgd")) == 6  # not 18: copies count once
    assert float(out["lr_sensitivity"].sel(optimizer="sgd")) == pytest.approx(np.mean(sgd))
    assert float(out["lr_sensitivity"].sel(optimizer="clip_by_global_norm|sgd")) == (
        pytest.approx(np.mean(clip))
    )
    # seed 3 of the clipped chain at clip_norm 10, lr 1 unfinished: that sample is dropped
    finished = np.ones(UNREAD_AT.shape, bool)
    finished[1, 3, 1, 2] = False
    out = analysis.lr_sensitivity(partial(ds, finished), over=["seed", "clip_norm"])
    clip_left = [v for i, v in enumerate(clip) if i != 3 * 3 + 2]
    assert int(out["samples"].sel(optimizer="clip_by_global_norm|sgd")) == 17
    assert float(out["lr_sensitivity"].sel(optimizer="clip_by_global_norm|sgd")) == (
        pytest.approx(np.mean(clip_left))
    )


def test_lr_sensitivity_refuses_a_missing_axis_or_a_per_step_metric():
    ds = sensitivity_dataset()
    with pytest.raises(ValueError, match="'width' grid axis"):
        analysis.lr_sensitivity(ds, lr="width")
    with pytest.raises(ValueError, match="cannot be pooled"):
        analysis.lr_sensitivity(ds, over=["seed", "learning_rate"])
    with pytest.raises(ValueError, match="per-step"):
        analysis.lr_sensitivity(ds, metric="grad_norm")


EXPECTED_PHASE = {
    "monotone": "monotone",
    "catapult": "catapult",
    "unresolved": "unresolved",
    "unconverged": "divergent",
    "diverged": "divergent",
}


def test_catapult_phases_label_constructed_curves():
    ds = catapult_dataset()
    out = analysis.catapult_phases(ds)
    expected = [[EXPECTED_PHASE[k] for k in row] for row in CATAPULT_KINDS]
    np.testing.assert_array_equal(out["phase"].values[0], expected)
    c = np.array(CATAPULT_LAMBDA0)[:, None] * np.array(CATAPULT_LR)[None, :]
    np.testing.assert_allclose(out["c"].values[0], c)
    np.testing.assert_allclose(out["eta"].values[0], np.broadcast_to(CATAPULT_LR, (2, 5)))
    # the settled catapults end at half their bound, the unresolved run at 1.5 times it
    ratio = out["final_sharpness_ratio"].values[0]
    assert ratio[0, 2] == pytest.approx(0.5) and ratio[1, 2] == pytest.approx(1.5)
    assert ratio[0, 0] == pytest.approx(10.0 * 0.05 / 2)  # monotone: λ₀ / (2/η) = c/2


def test_catapult_boundaries_on_a_constructed_grid():
    out = analysis.catapult_phases(catapult_dataset())
    # by hand: seed 0 (λ₀ = 10), c = [0.5, 1.5, 2.5, 5, 10]: the loss first rises at 2.5, the
    # last run to converge is at 5; seed 1 (λ₀ = 20), c = [1, 3, 5, 10, 20]: rises at 3, the
    # unresolved run at 5 converged, 10 did not
    for name, per_seed in (("c_loss", [2.5, 3.0]), ("c_max", [5.0, 5.0])):
        mean, low, high = t_interval_by_hand(per_seed)
        assert float(out[name].item()) == pytest.approx(mean)
        assert float(out[f"{name}_lower"].item()) == pytest.approx(low)
        assert float(out[f"{name}_upper"].item()) == pytest.approx(high)
    assert int(out["samples"].item()) == 2
    # a grid entirely below the catapult: c_loss is outside the grid (NaN), c_max its top
    low_grid = analysis.catapult_phases(catapult_dataset().isel(learning_rate=[0]))
    assert np.isnan(low_grid["c_loss"].item())
    assert float(low_grid["c_max"].item()) == pytest.approx(np.mean([0.5, 1.0]))


def test_catapult_phases_read_c_units_and_lambda0_sources():
    ds = catapult_dataset()
    reference = analysis.catapult_phases(ds)
    # λ₀ from the sharpness at step 0 instead of initial_sharpness, or passed by the caller
    from_sharpness = analysis.catapult_phases(ds.drop_vars("initial_sharpness"))
    xr.testing.assert_equal(from_sharpness["phase"], reference["phase"])
    np.testing.assert_allclose(from_sharpness["c"], reference["c"])
    passed = analysis.catapult_phases(ds, lambda0=40.0)
    np.testing.assert_allclose(passed["c"].values[0], 40.0 * np.array([CATAPULT_LR] * 2))
    # a sweep in c units: the grid is c, and η = c/λ₀
    c_grid = [0.5, 1.5, 2.5, 5.0, 10.0]
    in_c = ds.assign_coords(learning_rate=c_grid).assign_attrs(spec='lr_units = "sharpness"\n')
    assert analysis.lr_units(in_c) == "sharpness"
    out = analysis.catapult_phases(in_c)
    np.testing.assert_allclose(out["c"].values[0], [c_grid, c_grid])
    np.testing.assert_allclose(out["eta"].values[0, 1], np.array(c_grid) / 20.0)
    with pytest.raises(ValueError, match="initial sharpness"):
        analysis.catapult_phases(catapult_dataset(sharpness=False).drop_vars("initial_sharpness"))


def test_catapult_phases_without_sharpness_and_with_a_rise_tolerance():
    ds = catapult_dataset(sharpness=False)
    out = analysis.catapult_phases(ds)
    assert out["phase"].values[0, 1, 2] == "catapult"  # no sharpness to refute it
    assert "final_sharpness_ratio" not in out
    bumped = ds.copy(deep=True)
    bumped["loss"][0, 0, 0, 1] = 1.05  # a 5 % bump above L0 on a falling curve
    assert analysis.catapult_phases(bumped)["phase"].values[0, 0, 0] == "catapult"
    assert analysis.catapult_phases(bumped, rise=0.1)["phase"].values[0, 0, 0] == "monotone"
    with pytest.raises(ValueError, match="rise"):
        analysis.catapult_phases(ds, rise=-0.1)


def test_catapult_phases_count_only_early_rises_with_early_steps():
    # seed 0, lr 0.05 (c = 0.5): the loss falls, then rises above L0 at step 3 (a late rise, as
    # at the edge of stability); seed 1, lr 0.5 (c = 10): falls, then diverges at step 3
    ds = catapult_dataset(sharpness=False)
    ds["loss"][0, 0, 0] = [1.0, 0.8, 0.6, 1.5, 0.5]
    ds["loss"][0, 1, 3] = [1.0, 0.8, 0.6, 40.0, np.nan]
    ds["diverged"][0, 1, 3], ds["diverged_at"][0, 1, 3] = True, 3
    whole = analysis.catapult_phases(ds)
    early = analysis.catapult_phases(ds, early_steps=2)
    assert whole["phase"].values[0, 0, 0] == "catapult"
    assert early["phase"].values[0, 0, 0] == "monotone"
    assert early["phase"].values[0, 1, 3] == "divergent"  # diverged, just not early
    assert early.attrs["early_steps"] == 2 and whole.attrs["early_steps"] == "all"
    # by hand, rises by step 2: seed 0 c = [0.5, 1.5, 2.5, 5, 10] -> first at 2.5 (the late
    # rise at 0.5 no longer counts); seed 1 c = [1, 3, 5, 10, 20] -> 3 (its late divergence at
    # 10 is above it anyway); over the whole run seed 0's c_loss is 0.5
    assert float(early["c_loss"].item()) == pytest.approx(np.mean([2.5, 3.0]))
    assert float(whole["c_loss"].item()) == pytest.approx(np.mean([0.5, 3.0]))
    # a curve whose only rise is a divergence after the window is not "rose" by step 2
    only = ds.isel(seed=[1], learning_rate=[3])
    assert analysis.catapult_phases(only, lambda0=20.0, early_steps=2)["c_loss"].isnull().all()
    for bad in (0, 1.5, True, "10"):
        with pytest.raises(ValueError, match="early_steps"):
            analysis.catapult_phases(ds, early_steps=bad)
    with pytest.raises(ValueError, match="no logged step"):
        analysis.catapult_phases(ds.isel(step=[0, 2, 4]).assign_coords(step=[0, 10, 20]),
                                 early_steps=5)  # fmt: skip


def test_catapult_phases_label_unfinished_runs_empty():
    ds = catapult_dataset()
    finished = np.ones((1, 2, 5), bool)
    finished[0, 1, 0] = False
    out = analysis.catapult_phases(partial(ds, finished))
    assert out["phase"].values[0, 1, 0] == ""
    assert int(out["samples"].item()) == 1  # seed 1 lacks a learning rate
    assert float(out["c_loss"].item()) == pytest.approx(2.5)


def warmup_pair() -> tuple[xr.Dataset, xr.Dataset]:
    """sgd over seed (2) x lr [0.1, 1, 10]: without warmup lr 1 diverges for one seed; with
    warmup only lr 10 diverges. Sharpness 1.5 at every step, bound 2/η (η constant)."""
    grid = {"seed": [0, 1], "learning_rate": [0.1, 1.0, 10.0]}
    at_constant = np.array([[[-1, 1, 0], [-1, -1, 0]]])
    at_warmup = np.array([[[-1, -1, 3], [-1, -1, 2]]])
    pair = []
    for at in (at_constant, at_warmup):
        ds = dataset(at, grid, chains=("sgd",))
        ds["sharpness"] = ds["loss"] * 1.5
        ds["sharpness_bound"] = 2.0 / ds["learning_rate"] + 0.0 * ds["step"]
        pair.append(ds)
    return pair[0], pair[1]


def test_warmup_stability_gain_and_eta_lambda():
    constant, warmup = warmup_pair()
    out = analysis.warmup_stability(constant, warmup)
    assert float(out["max_stable_lr_constant"].item()) == 0.1
    assert float(out["max_stable_lr_warmup"].item()) == 1.0
    assert float(out["gain"].item()) == pytest.approx(10.0)
    # η·λ = 1.5 η while alive, NaN after divergence
    eta_lambda = out["eta_sharpness_warmup"].sel(optimizer="sgd", seed=0)
    np.testing.assert_allclose(eta_lambda.sel(learning_rate=1.0), [1.5] * 5)
    np.testing.assert_allclose(eta_lambda.sel(learning_rate=10.0), [15.0] * 4 + [np.nan])
    with pytest.raises(ValueError, match="'sharpness'"):
        analysis.warmup_stability(constant.drop_vars("sharpness"), warmup)
    with pytest.raises(ValueError, match="learning_rate"):
        analysis.warmup_stability(constant, warmup.isel(learning_rate=[0, 1]))


def test_instability_functions_are_exported():
    for name in ("lr_sensitivity", "catapult_phases", "warmup_stability", "mean_interval"):
        assert getattr(gl.analysis, name) is getattr(analysis.instability, name)
