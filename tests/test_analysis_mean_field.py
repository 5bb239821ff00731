"""gradlab.analysis.mean_field: empirical χ1, the critical line, trainable depth."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from analysis_datasets import dataset, layered

import gradlab as gl
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


def test_empirical_chi1_skips_the_pairs_nearest_the_input():
    # 6 layers (5 hidden + output): pair ratios 16, 4, 1, 1 (interior), 100 (output)
    d = np.array([[16.0, 4.0, 2.0, 2.0, 2.0, 0.2]])
    ds = layered(d)
    # geometric mean over the interior pairs, minus the `skip` nearest the input
    assert float(analysis.empirical_chi1(ds).squeeze()) == pytest.approx((16 * 4) ** (1 / 4))
    assert float(analysis.empirical_chi1(ds, skip=1).squeeze()) == pytest.approx(4 ** (1 / 3))
    assert float(analysis.empirical_chi1(ds, skip=2).squeeze()) == pytest.approx(1.0)
    assert float(analysis.empirical_chi1(ds, skip=3).squeeze()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no interior layer pair"):
        analysis.empirical_chi1(ds, skip=4)
    with pytest.raises(ValueError, match="skip"):
        analysis.empirical_chi1(ds, skip=-1)


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


def bottleneck_deltas(widths: list[int], chi1: list[float], out_ms: float = 1e-4) -> np.ndarray:
    """RMS backward signals of a network with these layer widths whose pair l has gain chi1[l-1].

    From δ^{l-1}_i = φ'(h^{l-1}_i) Σ_j W^l_ji δ^l_j with W^l ~ N(0, σ_w²/N_{l-1}), the mean
    square per unit obeys ms[l-1] = χ1 · (N_l / N_{l-1}) · ms[l]; built from the output back.
    """
    ms = [out_ms]
    for k in range(len(widths) - 1, 0, -1):  # pair (k - 1, k)
        ms.insert(0, chi1[k - 1] * widths[k] / widths[k - 1] * ms[0])
    return np.sqrt(np.array([ms]))


def test_chi1_is_corrected_for_unequal_widths():
    # hidden (64, 16, 64) and 10 outputs: χ1 = 1.5 between hidden layers, 0.7 into the output
    widths = [64, 16, 64, 10]
    ds = layered(bottleneck_deltas(widths, [1.5, 1.5, 0.7]), widths=widths)
    np.testing.assert_allclose(analysis.chi1_profile(ds).squeeze(), [1.5, 1.5, 0.7], rtol=1e-6)
    assert float(analysis.empirical_chi1(ds).squeeze()) == pytest.approx(1.5)
    assert float(analysis.empirical_chi1(ds, skip=1).squeeze()) == pytest.approx(1.5)
    # hidden (64, 32, 16): the uncorrected geometric mean would be 0.8 * (16 / 64)^(1/2) = 0.4
    widths = [64, 32, 16, 10]
    ds = layered(bottleneck_deltas(widths, [0.8, 0.8, 2.0]), widths=widths)
    assert float(analysis.empirical_chi1(ds).squeeze()) == pytest.approx(0.8)
    np.testing.assert_allclose(analysis.chi1_profile(ds).squeeze(), [0.8, 0.8, 2.0], rtol=1e-6)


def test_chi1_widths_given_or_recorded_or_a_clear_error():
    widths = [64, 16, 64, 10]
    d = bottleneck_deltas(widths, [1.5, 1.5, 0.7])
    old = layered(d, widths=False)  # a Dataset from before gradlab recorded the widths
    with pytest.raises(ValueError, match=r"no 'layer_width' coordinate.*widths="):
        analysis.empirical_chi1(old)
    with pytest.raises(ValueError, match="layer_width"):
        analysis.chi1_profile(old)
    given = analysis.chi1_profile(old, widths=widths)
    np.testing.assert_allclose(given.squeeze(), [1.5, 1.5, 0.7], rtol=1e-6)
    # an explicit widths= overrides the coordinate
    wrong = layered(d, widths=[8, 8, 8, 8])
    assert float(analysis.empirical_chi1(wrong, widths=widths).squeeze()) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="one width per layer"):
        analysis.chi1_profile(old, widths=widths[:3])
    as_array = xr.DataArray(widths, dims="layer", coords={"layer": old["layer"]})
    np.testing.assert_allclose(analysis.chi1_profile(old, widths=as_array), given)
    with pytest.raises(ValueError, match="'layer' dim"):
        analysis.chi1_profile(old, widths=xr.DataArray(widths, dims="width"))
    with pytest.raises(ValueError, match=r"layers \[1\].*width is 0"):
        analysis.chi1_profile(layered(d, widths=[64, 0, 64, 10]))
    # width 0 where the model records no signal (NaN padding) is fine
    padded = np.concatenate([d, [[np.nan]]], axis=1)
    ok = analysis.chi1_profile(layered(padded, widths=[*widths, 0]))
    np.testing.assert_allclose(ok.squeeze()[:3], [1.5, 1.5, 0.7], rtol=1e-6)
    assert np.isnan(ok.squeeze()[3])


def test_chi1_of_joined_sweeps_uses_each_sweeps_widths():
    shallow_w, deep_w = [64, 16, 32, 10], [32, 16, 16, 8, 10]
    shallow = layered(bottleneck_deltas(shallow_w, [1.5, 1.5, 0.7]), widths=shallow_w)
    deep = layered(bottleneck_deltas(deep_w, [0.9, 0.9, 0.9, 3.0]), widths=deep_w)
    both = analysis.concat_sweeps({3: shallow, 4: deep}, "depth")
    chi = analysis.empirical_chi1(both).squeeze()
    np.testing.assert_allclose(chi.sel(depth=[3, 4]), [1.5, 0.9], rtol=1e-6)


def test_chi1_of_a_real_bottleneck_network_matches_mean_field():
    """gl.run on a ReLU net with hidden (64, 16, 64): χ1 = σ_w²/2 at every pair, whose
    uncorrected ratios would be χ1/4 (64 -> 16) and 4 χ1 (16 -> 64)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(264, 32)).astype(np.float32)
    y = rng.integers(0, 4, size=264).astype(np.int32)
    sigma_w2 = [1.0, 3.0]
    spec = gl.SweepSpec(
        model=gl.ModelSpec(hidden=(64, 16, 64), activation="relu", init="normal"),
        data=gl.data.from_arrays(x[:256], y[:256], x[256:], y[256:]),
        optimizers=("sgd",),
        grid={"seed": list(range(8)), "init_scale": np.sqrt(sigma_w2).tolist(), "bias_std": [0.0]},
        steps=1,
        batch_size=256,
    )
    ds = gl.run(spec, progress=False)
    np.testing.assert_array_equal(ds["layer_width"], [64, 16, 64, 4])
    measured = analysis.chi1_profile(ds).median("seed").squeeze("optimizer").squeeze("bias_std")
    for s2 in sigma_w2:
        theory = float(gl.theory.chi1("relu", s2, 0.0))
        got = measured.sel(init_scale=np.sqrt(s2), method="nearest")
        np.testing.assert_allclose(got, theory, rtol=0.15)


def test_a_step_that_was_not_logged_is_named_not_a_key_error():
    ds = layered(np.array([[16.0, 4.0, 2.0, 2.0, 2.0, 0.2]]))
    with pytest.raises(ValueError, match="step"):
        analysis.empirical_chi1(ds, step=7)
