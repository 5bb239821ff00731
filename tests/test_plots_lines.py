"""gradlab.plots.lines: median lines over pooled runs, with diverged runs counted as the worst."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from plot_datasets import LR, make_dataset, panels, render

from gradlab import plots

# Layout problems (collapsed axes) and bad data handling surface as warnings: make them errors.
pytestmark = pytest.mark.filterwarnings("error::UserWarning", "error::RuntimeWarning")


def test_trajectory_median_stops_when_half_the_runs_have_exploded():
    ds = make_dataset({"seed": [0, 1, 2, 3]}, chains=("sgd",), diverge="none")
    at = np.array([[-1, -1, 3, 5]])  # two of four runs diverge, at steps 3 and 5
    live = (at[..., None] < 0) | (ds["step"].values <= at[..., None])
    values = np.where(live, 1.0 + np.arange(4)[None, :, None] + 0 * ds["step"].values, np.nan)
    ds["grad_norm"] = (("optimizer", "seed", "step"), values)
    ds["diverged_at"] = (("optimizer", "seed"), at)
    ds["diverged"] = ds["diverged_at"] >= 0
    fig = plots.trajectories(ds, "grad_norm")
    ax = panels(fig)[0]
    median = ax.get_lines()[0].get_ydata()
    # values 1, 2, 3, 4: median 2.5 while all alive, 3 once the run of value 3 counts as +inf
    # (steps 4, 5); from step 6 two of four runs are +inf: the median is not finite, not drawn
    np.testing.assert_allclose(median[:6], [2.5] * 4 + [3.0, 3.0])
    assert np.isnan(median[6:]).all()
    marks = ax.get_lines()[1]
    np.testing.assert_array_equal(marks.get_xdata(), [3, 5])  # one × per diverged run
    assert "2/4 diverged" in ax.get_title()
    render(fig)
    (ax,) = panels(plots.trajectories(ds, "grad_norm", sel={"optimizer": "sgd"}))
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata()[:6], [2.5] * 4 + [3.0, 3.0])


def test_a_diverged_run_counts_as_the_worst_accuracy_not_the_best():
    """Accuracy is higher-is-better (gradlab.schema): a diverged run counts as −∞, not +∞."""
    ds = make_dataset({"seed": [0, 1, 2, 3]}, chains=("sgd",), diverge="none")
    at = np.array([[-1, -1, 3, 5]])  # the runs of accuracy 0.3 and 0.4 diverge at steps 3, 5
    live = (at[..., None] < 0) | (ds["step"].values <= at[..., None])
    acc = 0.1 * (1.0 + np.arange(4))[None, :, None] + 0 * ds["step"].values
    ds["accuracy"] = (("optimizer", "seed", "step"), np.where(live, acc, np.nan))
    ds["diverged_at"] = (("optimizer", "seed"), at)
    ds["diverged"] = ds["diverged_at"] >= 0
    median = panels(plots.trajectories(ds, "accuracy"))[0].get_lines()[0].get_ydata()
    # 0.1, 0.2, 0.3, 0.4: median 0.25; with 0.3 as −∞ (steps 4, 5): 0.15; then −∞: not drawn
    np.testing.assert_allclose(median[:6], [0.25] * 4 + [0.15, 0.15])
    assert np.isnan(median[6:]).all()


def test_trajectories_hue_and_errors():
    ds = make_dataset({"seed": [0, 1], "learning_rate": LR, "init_scale": [1.0, 2.0]})
    fig = plots.trajectories(ds, "update_norm", hue="init_scale")
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:2] == [r"$\sigma_w$ = 1", r"$\sigma_w$ = 2"]
    fig = plots.trajectories(ds, "accuracy")
    assert panels(fig)[0].get_yscale() == "log"  # positive values
    assert plots.trajectories(ds, "accuracy", log=False).axes[0].get_yscale() == "linear"
    with pytest.raises(ValueError, match="per layer"):
        plots.trajectories(ds, "grad_norm_layer")
    with pytest.raises(ValueError, match="not a per-step"):
        plots.trajectories(ds, "final_loss")
    ds["accuracy"] = ds["accuracy"] * np.nan  # regression: accuracy is NaN
    with pytest.raises(ValueError, match="no finite values"):
        plots.trajectories(ds, "accuracy")


def test_layer_profile_shows_depth():
    ds = make_dataset({"seed": [0, 1], "init_scale": [1.0, 2.0]}, layers=5)
    fig = plots.layer_profile(ds, "delta_rms_layer")
    ax = panels(fig)[0]
    assert list(ax.get_xticks()) == [0, 1, 2, 3, 4]
    assert ax.get_xlabel() == "layer (0 = input side)"
    line = ax.get_lines()[0]
    expected = ds["delta_rms_layer"].sel(optimizer="sgd", init_scale=1.0, step=0).median("seed")
    np.testing.assert_allclose(line.get_ydata(), expected.values)
    with pytest.raises(ValueError, match="per-layer"):
        plots.layer_profile(ds, "loss")


def test_sharpness_vs_bound_draws_the_computed_steps():
    ds = make_dataset({"seed": [0, 1], "learning_rate": LR}, sharpness=True)
    fig = plots.sharpness_vs_bound(ds)
    ax = panels(fig)[0]
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [0, 3, 6])  # computed steps
    with pytest.raises(ValueError, match="sharpness"):
        plots.sharpness_vs_bound(ds.drop_vars("sharpness"))


def test_a_chains_bound_is_drawn_only_against_the_curvature_it_bounds():
    """sharpness_bound is 2/η for sgd (on λ_max(H)) but 38/η for adam (on λ_max(P⁻¹H))."""
    ds = make_dataset({"seed": [0, 1], "learning_rate": LR}, sharpness=True)
    assert list(ds["optimizer"].values) == ["sgd", "clip_by_global_norm|adam"]
    ds = ds.assign_coords(stability_rule=("optimizer", ["sgd", "adam"]))

    def dashed(ax):
        return [line for line in ax.get_lines() if line.get_linestyle() == "--"]

    sgd, adam = panels(plots.sharpness_vs_bound(ds, hue=None))
    (bound,) = dashed(sgd)
    assert not dashed(adam)  # the adam chain's bound is not a bound on its plain sharpness
    recorded = ds["sharpness_bound"].sel(optimizer="sgd")
    live = np.isfinite(recorded.transpose("seed", "learning_rate", "step").values)
    two_over_lr = np.broadcast_to(2 / np.array(LR)[None, :, None], live.shape)
    expected = [np.median(two_over_lr[..., t][live[..., t]]) for t in (0, 3, 6)]
    np.testing.assert_allclose(bound.get_ydata(), expected)
    pre = ds.assign(precond_sharpness=ds["sharpness"])
    sgd, adam = panels(plots.sharpness_vs_bound(pre, hue=None, var="precond_sharpness"))
    assert len(dashed(adam)) == 1 and not dashed(sgd)
    legend = [t.get_text() for t in sgd.figure.legends[0].get_texts()]
    assert r"bound, e.g. $38/\eta$" in legend


def test_sharpness_vs_bound_for_preconditioned_sharpness():
    ds = make_dataset({"seed": [0, 1], "learning_rate": LR}, sharpness=True)
    ds = ds.rename({"sharpness": "precond_sharpness"})
    fig = plots.sharpness_vs_bound(ds, var="precond_sharpness")
    render(fig)
    ax = panels(fig)[0]
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [0, 3, 6])
    assert "Preconditioned sharpness" in fig.get_suptitle()
    assert ax.get_ylabel().startswith("preconditioned sharpness")
    with pytest.raises(ValueError, match="'sharpness'"):
        plots.sharpness_vs_bound(ds)
    assert ax.get_yscale() == "log"  # bounds 2/η over three decades
    narrow = make_dataset({"seed": [0, 1], "learning_rate": [0.1, 0.2]}, sharpness=True)
    assert panels(plots.sharpness_vs_bound(narrow))[0].get_yscale() == "linear"  # a plateau
    assert panels(plots.sharpness_vs_bound(narrow, log=True))[0].get_yscale() == "log"
