"""gradlab.analysis against hand-built result Datasets whose answers are known by construction."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from gradlab import analysis

STEPS = 5


def dataset(at: np.ndarray, grid: dict[str, list], chains=("sgd", "adam")) -> xr.Dataset:
    """A result Dataset whose runs diverge at ``at`` (shape (chains, *grid), -1 = never).

    Per-step values follow the divergence semantics: measured up to and including the step of
    divergence, NaN after it; ``clipped`` is False after it.
    """
    at = np.asarray(at)
    dims = ("optimizer", *grid)
    assert at.shape == (len(chains), *(len(v) for v in grid.values()))
    step = np.arange(STEPS)
    live = (at[..., None] < 0) | (step <= at[..., None])
    per_step = (*dims, "step")
    return xr.Dataset(
        {
            "loss": (per_step, np.where(live, 1.0, np.nan)),
            "grad_norm": (per_step, np.where(live, 1.0, np.nan)),
            "clipped": (per_step, np.zeros(live.shape, bool)),
            "diverged": (dims, at >= 0),
            "diverged_at": (dims, at.astype(np.int32)),
            "final_loss": (dims, np.where(at >= 0, np.nan, 0.5)),
        },
        coords={"optimizer": list(chains), **grid, "step": step},
        attrs={"spec": "steps = 5\n"},
    )


# A 2-chain sweep over seed x learning_rate x init_scale with a known divergence pattern.
GRID = {"seed": [0, 1, 2], "learning_rate": [0.01, 0.1, 1.0], "init_scale": [1.0, 2.0]}
AT = np.full((2, 3, 3, 2), -1)
AT[0, :, 2, :] = 1  # sgd: every seed diverges at lr = 1 (both init scales)
AT[0, 0, 1, 1] = 3  # sgd: seed 0 also diverges at lr = 0.1, init_scale = 2
AT[1, 1, 2, 1] = 0  # adam: only seed 1 at lr = 1, init_scale = 2, right at step 0


@pytest.fixture
def ds() -> xr.Dataset:
    return dataset(AT, GRID)


def test_grid_axes_and_alive(ds):
    assert analysis.grid_axes(ds) == ("seed", "learning_rate", "init_scale")
    live = analysis.alive(ds).sel(optimizer="sgd", seed=0, init_scale=2.0)
    # diverged at step 3 (lr = 0.1): alive at 0..3 (the step of divergence counts), dead at 4
    np.testing.assert_array_equal(live.sel(learning_rate=0.1), [1, 1, 1, 1, 0])
    np.testing.assert_array_equal(live.sel(learning_rate=1.0), [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(live.sel(learning_rate=0.01), [1, 1, 1, 1, 1])
    adam = analysis.alive(ds).sel(optimizer="adam", seed=1, learning_rate=1.0, init_scale=2.0)
    np.testing.assert_array_equal(adam, [1, 0, 0, 0, 0])


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


def comparison_dataset() -> xr.Dataset:
    """Two chains over seed x learning_rate with every table column known by hand."""
    grid = {"seed": [0, 1], "learning_rate": [0.1, 1.0]}
    at = np.array([[[-1, 2], [-1, -1]], [[-1, -1], [-1, -1]]])
    ds = dataset(at, grid, chains=("sgd", "clip_by_global_norm|sgd"))
    sgd = {"optimizer": "sgd"}
    # final losses: the diverged run gets a finite value to prove it is masked by `diverged`
    ds["final_loss"] = ds["final_loss"].copy(data=[[[0.5, 99.0], [0.7, 0.9]], [[1, 2], [3, 4]]])
    ds["test_accuracy"] = ds["final_loss"] * 0 + 0.8
    clipped = ds["clipped"].values
    clipped[0, 0, 1, 2] = True  # the diverged run, at its divergence step: counts
    clipped[0, 0, 1, 4] = True  # the diverged run after divergence: does not
    clipped[0, 1, 0, 0] = True
    clipped[1, :, :, :] = True  # the clip chain clips every step
    ds["clipped"] = ds["clipped"].copy(data=clipped)
    g = ds["grad_norm"].values
    g[0, 0, 1, 2] = np.inf  # non-finite gradient at divergence: not the max gradient norm
    g[0, 0, 1, 4] = 1e9  # not alive: ignored
    g[0, 1, 1, 3] = 7.0
    ds["grad_norm"] = ds["grad_norm"].copy(data=g)
    bound = 2.0 / ds["learning_rate"] + 0 * ds["loss"].fillna(0)
    sharp = xr.full_like(bound, np.nan)
    sharp.loc[{**sgd, "step": 0}] = 0.5 * bound.sel(**sgd, step=0)
    sharp.loc[{**sgd, "step": 2}] = 1.5 * bound.sel(**sgd, step=2)
    clip = {"optimizer": "clip_by_global_norm|sgd", "step": 0}
    sharp.loc[clip] = 0.25 * bound.sel(clip)
    ds["sharpness"], ds["sharpness_bound"] = sharp, bound
    return ds


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
    # alive steps: 3 (run diverged at step 2) + 3 * 5; clipped on 2 of them
    assert sgd["clip_rate"] == pytest.approx(2 / 18) and clip["clip_rate"] == 1.0
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


def test_format_table_and_markdown():
    df = analysis.compare_optimizers(comparison_dataset())
    text = analysis.format_table(df)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["optimizer", "runs", "diverged"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert len(lines) == 2 + len(df)
    assert lines[2].startswith("sgd ") and "25%" in lines[2] and "0.1" in lines[2]
    assert "  -" in lines[3]  # NaN shown as '-'
    assert len({len(line) for line in lines}) == 1  # right-aligned columns: one width
    md = analysis.markdown_table(df)
    assert md.splitlines()[1].startswith("|:--|--:|")
    assert md.count("\n") == 2 + len(df)
    assert "clip_by_global_norm\\|sgd" in md  # the pipe of a chain name is escaped


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


def layered(deltas: np.ndarray) -> xr.Dataset:
    """One chain, an init_scale axis, 2 steps, the given delta_rms per (init_scale, layer)."""
    deltas = np.asarray(deltas, dtype=float)
    n, layers = deltas.shape
    ds = dataset(np.full((1, n), -1), {"init_scale": list(range(1, n + 1))}, chains=("sgd",))
    data = np.broadcast_to(deltas[None, :, None, :], (1, n, STEPS, layers))
    ds["delta_rms_layer"] = (("optimizer", "init_scale", "step", "layer"), data.copy())
    return ds.assign_coords(layer=np.arange(layers))


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


def test_predicted_lr_boundary_and_momentum():
    grid = {"learning_rate": [0.1, 1.0], "init_scale": [1.0, 2.0]}
    ds = dataset(np.full((1, 2, 2), -1), grid, chains=("sgd",))
    lam = xr.DataArray([10.0, 40.0], dims="init_scale", coords={"init_scale": [1.0, 2.0]})
    sharp = (lam + 0 * ds["loss"]).where(ds["step"] >= 1)  # first computed at step 1
    ds["sharpness"] = sharp
    eta = analysis.predicted_lr_boundary(ds)
    assert eta.dims == ("optimizer", "init_scale")
    np.testing.assert_allclose(eta.squeeze(), [0.2, 0.05])
    np.testing.assert_allclose(
        analysis.predicted_lr_boundary(ds, momentum=0.9).squeeze(), [0.38, 0.095]
    )
    mom = ds.expand_dims(momentum=[0.0, 0.5]).transpose("optimizer", "momentum", ...)
    eta_m = analysis.predicted_lr_boundary(mom)
    np.testing.assert_allclose(eta_m.sel(init_scale=1.0).squeeze(), [0.2, 0.3])
    with pytest.raises(ValueError, match="sharpness"):
        analysis.predicted_lr_boundary(ds.drop_vars("sharpness"))


def test_critical_init_scale_converts_variances():
    crit = analysis.critical_init_scale(xr.DataArray([0.0, 0.5]), lambda sb2: 1.0 + 4.0 * sb2)
    assert crit.dims == ("bias_std",)
    np.testing.assert_allclose(crit, [1.0, math.sqrt(2.0)])
    np.testing.assert_allclose(crit["bias_std"], [0.0, 0.5])


def test_float32_engine_dtypes_are_fine(ds):
    """The engine writes float32 and int32; results must not depend on it."""
    ds32 = ds.assign({k: ds[k].astype(np.float32) for k in ("loss", "grad_norm", "final_loss")})
    pd.testing.assert_frame_equal(
        analysis.compare_optimizers(ds32), analysis.compare_optimizers(ds), check_dtype=False
    )


# -- studies across sweeps, interventions and regimes ------------------------------------------


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


def test_fire_rate_counts_alive_steps_only():
    ds = comparison_dataset()
    rate = analysis.fire_rate(ds, "clipped")
    assert rate.dims == ("optimizer", "learning_rate")
    # sgd, lr = 1: seed 0 alive for 3 steps (clipped once), seed 1 alive for 5 (never) -> 1/8
    assert float(rate.sel(optimizer="sgd", learning_rate=1.0)) == pytest.approx(1 / 8)
    # sgd, lr = 0.1: one clipped step out of 10 alive ones
    assert float(rate.sel(optimizer="sgd", learning_rate=0.1)) == pytest.approx(1 / 10)
    np.testing.assert_allclose(rate.sel(optimizer="clip_by_global_norm|sgd"), 1.0)
    pooled = analysis.fire_rate(ds, "clipped", over=["seed", "learning_rate"])
    assert float(pooled.sel(optimizer="sgd")) == pytest.approx(2 / 18)
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


def test_power_law_exponent_recovers_known_exponents():
    s = [0.5, 1.0, 2.0, 4.0]
    x = xr.DataArray(s, dims="init_scale", coords={"init_scale": s})
    y = xr.concat([3.0 * x**2, 0.1 * x**-1.5, x * 0 + np.nan], dim="chain")
    y[0, 1] = np.inf  # a non-finite point is left out
    np.testing.assert_allclose(analysis.power_law_exponent(y, "init_scale")[:2], [2.0, -1.5])
    assert np.isnan(analysis.power_law_exponent(y, "init_scale")[2])


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


def test_edge_of_stability_summary():
    grid = {"learning_rate": [0.1, 0.2]}
    at = np.array([[-1, 6], [-1, -1]])
    steps = np.arange(8)
    ds = dataset(at, grid).reindex(step=steps)
    ds["diverged_at"] = ds["diverged_at"].copy(data=at)
    bound = (2.0 / ds["learning_rate"]).broadcast_like(ds["diverged_at"]).expand_dims(step=steps)
    ratio = np.full((2, 2, 8), np.nan)
    ratio[0, 0, ::2] = [0.5, 0.95, 1.1, 1.0]  # sgd, lr 0.1: reaches the edge at step 2
    ratio[0, 1, ::2] = [0.5, 0.6, 0.7, 2.0]  # sgd, lr 0.2: diverged at 6 (its 2.0 counts)
    ratio[1, 0, ::2] = [9.0, 0.5, 0.92, 0.98]  # adam-like: a spike at the first step
    ds["sharpness_bound"] = bound.transpose("optimizer", "learning_rate", "step")
    ds["sharpness"] = ds["sharpness_bound"] * ratio
    eos = analysis.edge_of_stability(ds)
    sgd = eos.sel(optimizer="sgd")
    assert float(sgd["reached_at"].sel(learning_rate=0.1)) == 2
    assert float(sgd["ratio"].sel(learning_rate=0.1)) == pytest.approx(1.0)
    assert float(sgd["initial"].sel(learning_rate=0.1)) == pytest.approx(0.5 * 20)
    assert float(sgd["reached_at"].sel(learning_rate=0.2)) == 6
    assert float(sgd["peak_ratio"].sel(learning_rate=0.2)) == 2.0
    adam = eos.sel(optimizer="adam", learning_rate=0.1)
    assert float(adam["reached_at"]) == 0
    later = analysis.edge_of_stability(ds, start=1).sel(optimizer="adam", learning_rate=0.1)
    assert float(later["reached_at"]) == 4 and float(later["ratio"]) == pytest.approx(0.95)
    assert np.isnan(float(eos["reached_at"].sel(optimizer="adam", learning_rate=0.2)))
    with pytest.raises(ValueError, match="precond_sharpness"):
        analysis.edge_of_stability(ds, "precond_sharpness")


def test_adam_sharpness_ratio_uses_preconditioned_sharpness():
    """Adam's bound (2+2β1)/(η(1−β1)) bounds λ_max(P⁻¹H), not λ_max(H)."""
    ds = comparison_dataset().assign_coords(optimizer=["sgd", "adam"])
    bound = ds["sharpness_bound"]
    ds["precond_sharpness"] = xr.full_like(bound, np.nan)
    ds["precond_sharpness"].loc[{"optimizer": "adam", "step": 0}] = 0.9 * bound.sel(
        optimizer="adam", step=0
    )
    df = analysis.compare_optimizers(ds)
    assert df.loc["adam", "sharpness_ratio"] == pytest.approx(0.9)
    assert df.loc["sgd", "sharpness_ratio"] == pytest.approx(1.5)  # plain sharpness for SGD
    only_plain = analysis.compare_optimizers(ds.drop_vars("precond_sharpness"))
    assert math.isnan(only_plain.loc["adam", "sharpness_ratio"])


def test_claims_table_formats_numbers_and_pads_rows():
    t = analysis.claims_table(
        [("critical σ_w²", "Schoenholz 2017", 1.76, 1.76123), ("diverged", "article", None, 0.25)]
    )
    assert list(t.columns) == ["source", "published", "measured"]
    assert t.loc["critical σ_w²", "measured"] == "1.76"
    assert t.loc["diverged", "published"] == "-"
    short = analysis.claims_table([("a", "b")], columns=("claim", "x", "y"))
    assert short.loc["a"].tolist() == ["b", "-"]
    with pytest.raises(ValueError, match="cells"):
        analysis.claims_table([(1, 2, 3)], columns=("a", "b"))


def test_crossing_interpolates_the_first_crossing():
    s = [1.0, 2.0, 3.0, 4.0]
    y = xr.DataArray(
        [[0.5, 0.8, 1.25, 2.0], [2.0, 1.0, 0.5, 0.4], [0.1, 0.2, 0.3, 0.4]],
        dims=("row", "s"),
        coords={"s": s},
    )
    got = analysis.crossing(y, "s")
    assert got.dims == ("row",)
    # row 0: log 0.8 = -0.223, log 1.25 = 0.223 -> halfway between 2 and 3
    assert float(got[0]) == pytest.approx(2.5)
    assert float(got[1]) == 2.0  # exactly at the level
    assert np.isnan(float(got[2]))  # never crosses
    lin = analysis.crossing(y.isel(row=0), "s", level=1.0, log=False)
    assert float(lin) == pytest.approx(2 + 0.2 / 0.45)
    unsorted = y.isel(s=[3, 0, 2, 1])
    xr.testing.assert_allclose(analysis.crossing(unsorted, "s"), got)


def test_fixed_point_chi1_skips_the_pairs_nearest_the_input():
    # 6 layers (5 hidden + output): pair ratios 16, 4, 1, 1 (interior), 100 (output)
    d = np.array([[16.0, 4.0, 2.0, 2.0, 2.0, 0.2]])
    ds = layered(d)
    assert float(analysis.fixed_point_chi1(ds, skip=0).squeeze()) == pytest.approx(
        float(analysis.empirical_chi1(ds).squeeze())
    )
    assert float(analysis.fixed_point_chi1(ds, skip=1).squeeze()) == pytest.approx(4 ** (1 / 3))
    assert float(analysis.fixed_point_chi1(ds, skip=2).squeeze()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no interior layer pair"):
        analysis.fixed_point_chi1(ds, skip=4)
    with pytest.raises(ValueError, match="skip"):
        analysis.fixed_point_chi1(ds, skip=-1)
