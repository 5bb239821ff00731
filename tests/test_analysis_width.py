"""Coordinate check and learning-rate transfer against numpy on Datasets built by hand."""

from __future__ import annotations

import numpy as np
import pytest
from width_datasets import WIDTHS, coord_dataset, transfer_dataset

import gradlab as gl


def test_coord_check_recovers_each_layers_exponent():
    ds = coord_dataset([0.0, 0.5, 1.0])
    cc = gl.analysis.coord_check(ds)
    np.testing.assert_allclose(cc["slope"].sel(optimizer="adam").values, [[0, 0.5, 1]] * 2)
    np.testing.assert_allclose(cc["slope_low"], cc["slope"], atol=1e-9)  # no noise: no spread
    assert cc["size"].dims == ("optimizer", "width", "step", "layer")


def test_coord_check_interval_is_the_t_interval_of_per_seed_slopes():
    ds = coord_dataset([0.0, 1.0], noise=0.1)
    cc = gl.analysis.coord_check(ds, step=5)
    rms = ds["act_rms_layer"].sel(optimizer="adam", step=5).values  # seed, width, layer
    for layer in (0, 1):
        slopes = [np.polyfit(np.log(WIDTHS), np.log(rms[s, :, layer]), 1)[0] for s in range(4)]
        half = 3.182446305284263 * np.std(slopes, ddof=1) / 2  # t_{0.975, 3} · s / √4
        got = cc.sel(optimizer="adam", step=5, layer=layer)
        np.testing.assert_allclose(float(got["slope"]), np.mean(slopes), rtol=1e-9)
        np.testing.assert_allclose(float(got["slope_high"] - got["slope"]), half, rtol=1e-9)


def test_coord_check_ignores_runs_after_they_diverged():
    ds = coord_dataset([0.0])
    ds["diverged_at"][0, 0, -1] = 0  # seed 0 at the widest diverged at step 0
    ds["act_rms_layer"][0, 0, -1, 1] = 1e30  # its (NaN-in-reality) value at step 5
    cc = gl.analysis.coord_check(ds, step=5)
    np.testing.assert_allclose(cc["slope"].values, 0, atol=1e-12)


def test_coord_check_needs_a_width_axis():
    ds = coord_dataset([0.0]).isel(width=0)
    with pytest.raises(ValueError, match="'width' grid axis"):
        gl.analysis.coord_check(ds)


def test_optimal_lr_follows_the_minimum_of_the_median_loss():
    ds = transfer_dataset(alpha=-1.0)
    out = gl.analysis.optimal_lr(ds)
    expected = 2.0**-3 * (np.asarray(WIDTHS) / 64.0) ** -1.0
    np.testing.assert_allclose(out["optimal_lr"].sel(optimizer="sgd").values, expected)
    # Seeds only shift the loss: every bootstrap replicate finds the same optimum.
    np.testing.assert_allclose(out["optimal_lr_low"], out["optimal_lr"])
    np.testing.assert_allclose(out["optimal_lr_high"], out["optimal_lr"])


def test_a_diverged_run_counts_as_the_worst_loss():
    # The optimum 2^-3 and above: three of four seeds diverge, so the median run diverged.
    ds = transfer_dataset(alpha=0.0, diverge_above=2.0**-4)
    out = gl.analysis.optimal_lr(ds)
    np.testing.assert_allclose(out["optimal_lr"].values, 2.0**-4)


def test_lr_transfer_exponent_recovers_alpha():
    for alpha in (-1.0, 0.0, -0.4):  # -0.4: no width's optimum halfway between grid values
        ds = transfer_dataset(alpha=alpha)
        out = gl.analysis.lr_transfer_exponent(ds).sel(optimizer="sgd")
        # η* is a grid value: the nearest power of two to η0·(n/64)^α.
        best = 2.0 ** np.round(np.log2(2.0**-3 * (np.asarray(WIDTHS) / 64.0) ** alpha))
        slope = np.polyfit(np.log(WIDTHS), np.log(best), 1)[0]
        np.testing.assert_allclose(float(out["alpha"]), slope, atol=1e-12)
        assert float(out["alpha_low"]) <= float(out["alpha"]) <= float(out["alpha_high"])


def test_lr_transfer_exponent_interval_reflects_the_seeds():
    rng = np.random.default_rng(1)
    ds = transfer_dataset(alpha=0.0)
    ds["final_loss"] = ds["final_loss"] + 3 * rng.random(ds["final_loss"].shape)
    out = gl.analysis.lr_transfer_exponent(ds, n_boot=300).sel(optimizer="sgd")
    assert float(out["alpha_high"]) > float(out["alpha_low"])  # noise: a real interval


@pytest.mark.slow
def test_mup_passes_the_coordinate_check_and_sp_does_not():
    """Widths 32 to 512 (16x), Adam at one learning rate, 3 seeds, 5 steps: under μP every
    layer's coordinates keep their size (|slope| < 0.1); under the standard parametrization
    they are Θ(1) at initialisation and the output layer's grow with width a few steps later
    (Yang et al. 2022, Fig. 5). At initialisation μP's output layer shrinks as 1/√n, by design
    (its readout variance is 1/fan_in²)."""
    slopes = {}
    for parametrization in ("sp", "mup"):
        spec = gl.SweepSpec(
            model=gl.ModelSpec(hidden=(32, 32), parametrization=parametrization, base_width=32),
            data=gl.DataSpec(name="digits"),
            optimizers=("adam",),
            grid={"seed": [0, 1, 2], "width": [32, 64, 128, 256, 512], "learning_rate": [0.01]},
            steps=6,
            batch_size=64,
        )
        cc = gl.analysis.coord_check(gl.run(spec, progress=False), step=[0, 5])
        slopes[parametrization] = cc.sel(optimizer="adam").isel(learning_rate=0)
    sp, mup = slopes["sp"], slopes["mup"]
    assert np.all(np.abs(sp["slope"].sel(step=0)) < 0.1), sp["slope"].values
    assert float(sp["slope_low"].sel(step=5, layer=2)) > 0.3, sp["slope"].values
    assert np.all(np.abs(mup["slope"].sel(step=5)) < 0.1), mup["slope"].values
    np.testing.assert_allclose(float(mup["slope"].sel(step=0, layer=2)), -0.5, atol=0.05)
