"""gradlab.plots.lines: median lines over pooled runs, with diverged runs counted as the worst."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import xarray as xr
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
    assert labels[:2] == ["init scale = 1", "init scale = 2"]  # no init scheme recorded
    ds.attrs["spec"] = '[model]\ninit = "normal"\n'  # init_scale is σ_w
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


def known_divergences(at: list[int], seeds: int = 5) -> xr.Dataset:
    """One chain, seeds × two learning rates; the runs at lr = 1 diverge at the steps ``at``
    (-1: never), every run at lr = 0.1 survives."""
    ds = make_dataset({"seed": list(range(seeds)), "learning_rate": [0.1, 1.0]}, chains=("sgd",),
                      steps=10, diverge="none")  # fmt: skip
    steps = ds["step"].values
    div = np.full((1, seeds, 2), -1)
    div[0, :, 1] = at
    live = (div[..., None] < 0) | (steps <= div[..., None])
    ds["loss"] = (("optimizer", "seed", "learning_rate", "step"), np.where(live, 1.0, np.nan))
    ds["diverged_at"] = (("optimizer", "seed", "learning_rate"), div.astype(np.int32))
    ds["diverged"] = ds["diverged_at"] >= 0
    return ds


def test_divergence_marks_sit_at_the_divergence_steps_with_their_number_of_runs():
    """Three runs that diverge at step 1 are one × at 1 marked "3", not three × on one spot."""
    ds = known_divergences([1, 1, 1, 4, -1])
    ax = panels(plots.trajectories(ds, "loss"))[0]
    (marks,) = [line for line in ax.get_lines() if line.get_marker() == "x"]
    np.testing.assert_array_equal(marks.get_xdata(), [1, 4])  # the steps, each once
    counts = {float(t.xy[0]): t.get_text() for t in ax.texts}
    assert counts == {1.0: "3"}  # the runs behind the × at step 1; one run at step 4
    assert "4/10 diverged" in ax.get_title()


def test_trajectories_facet_by_a_second_axis():
    grid = {"seed": [0, 1, 2], "activation": ["relu", "tanh"], "learning_rate": LR[:2]}
    ds = make_dataset(grid, diverge="none")
    fig = plots.trajectories(ds, "grad_norm", col="activation")
    axes = panels(fig)
    clip = "clip_by_global_norm|adam"
    assert [ax.get_title().split("  (")[0] for ax in axes] == [
        "sgd, activation = relu", "sgd, activation = tanh",
        f"{clip}, activation = relu", f"{clip}, activation = tanh",
    ]  # fmt: skip
    # each panel draws its own runs: the median over seeds of (chain, activation, lr)
    for ax, (chain, act) in zip(
        axes, [(c, a) for c in ds["optimizer"].values for a in grid["activation"]], strict=True
    ):
        runs = ds["grad_norm"].sel(optimizer=chain, activation=act, learning_rate=LR[0])
        np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), runs.median("seed"))
    assert "per point (seed)" in fig.get_suptitle()  # activation is shown, not pooled
    fig = plots.trajectories(ds, "grad_norm", row="activation", hue=None)
    assert len(panels(fig)) == 4 and panels(fig)[1].get_title().startswith(
        "clip_by_global_norm|adam, activation = relu"
    )
    with pytest.raises(ValueError, match="both the hue and a facet axis"):
        plots.trajectories(ds, "grad_norm", hue="activation", col="activation")
    with pytest.raises(ValueError, match="two different axes"):
        plots.trajectories(ds, "grad_norm", row="activation", col="activation")
    render(fig)


def subtitle(fig) -> str:
    """The figure's subtitle, unwrapped (style.suptitle breaks it at "; ")."""
    return fig.get_suptitle().split("\n", 1)[1].replace("\n", "; ")


def test_titles_name_every_selected_value_and_every_pooled_axis():
    grid = {"seed": [0, 1], "activation": ["relu", "tanh"], "learning_rate": LR[2:],
            "init_scale": [1.0, 2.0], "momentum": [0.0, 0.9]}  # fmt: skip
    ds = make_dataset(grid, diverge="none")
    sel = {"activation": "relu", "learning_rate": 0.1}
    expected = "activation = relu, learning_rate = 0.1; 4 runs per point (seed × momentum)"
    assert subtitle(plots.layer_profile(ds, "delta_rms_layer", sel=sel)) == expected
    fig = plots.trajectories(ds, "loss", sel={"activation": "tanh", "init_scale": 2.0})
    assert subtitle(fig) == "activation = tanh, init_scale = 2; 4 runs per point (seed × momentum)"
    fig = plots.chi1_vs_theory(ds, sel={"activation": "relu", "momentum": 0.9})
    assert subtitle(fig) == (
        "hidden-layer pairs 1..2; activation = relu, momentum = 0.9; "
        "8 runs per point (optimizer × seed × learning_rate)"
    )


def test_a_grid_value_not_in_the_dataset_is_named_with_the_axis_values():
    ds = make_dataset({"seed": [0, 1], "init_scale": [0.5, 1.0, 2.0]})
    with pytest.raises(ValueError, match=r"init_scale = 3\.0 is not .* \[0\.5, 1\.0, 2\.0\]"):
        plots.trajectories(ds, "loss", sel={"init_scale": 3.0})
    with pytest.raises(ValueError, match=r"step = 99 is not in the Dataset; its values: \[0, 1"):
        plots.layer_profile(ds, "delta_rms_layer", step=99)


def sized(ds: xr.Dataset, sizes: list[int]) -> xr.Dataset:
    return ds.assign_coords(layer_size=("layer", sizes))


def test_layer_profile_draws_norms_over_parameters_per_parameter():
    """The 784-input layer's raw norm is large because it is large: ‖g_l‖/√n_l compares."""
    ds = make_dataset({"seed": [0, 1, 2]}, chains=("sgd",), diverge="none")
    sizes = [7850, 110, 110, 110]
    ax = panels(plots.layer_profile(sized(ds, sizes), "grad_norm_layer"))[0]
    raw = ds["grad_norm_layer"].sel(optimizer="sgd", step=0).values  # (seed, layer)
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), np.median(raw / np.sqrt(sizes), 0))
    assert (
        ax.get_ylabel() == r"gradient RMS per parameter $\|\partial L/\partial W_l\| / \sqrt{n_l}$"
    )
    ax = panels(plots.layer_profile(sized(ds, sizes), "grad_norm_layer", per_parameter=False))[0]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), np.median(raw, 0))
    assert "raw norm" in ax.get_ylabel() and "per_parameter=False" in ax.get_ylabel()
    ax = panels(plots.layer_profile(ds, "grad_norm_layer"))[0]  # an older run: no layer_size
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), np.median(raw, 0))
    assert "raw norm" in ax.get_ylabel() and "no layer_size" in ax.get_ylabel()
    with pytest.raises(ValueError, match="layer_size"):
        plots.layer_profile(ds, "grad_norm_layer", per_parameter=True)
    with pytest.raises(ValueError, match="not a norm over parameters"):
        plots.layer_profile(sized(ds, sizes), "delta_rms_layer", per_parameter=True)


def test_layer_profile_draws_chains_that_agree_once():
    """At initialisation every chain has the same network: one panel, not one per chain."""
    ds = make_dataset({"seed": [0, 1], "init_scale": [1.0, 2.0]}, diverge="none")
    first = ds["delta_rms_layer"].isel(optimizer=0, step=0)
    ds["delta_rms_layer"][:, ..., 0, :] = first.values  # step 0 equal in both chains
    fig = plots.layer_profile(ds, "delta_rms_layer")
    (ax,) = panels(fig)
    assert ax.get_title() == "all chains"
    assert "2 chains, equal at step 0: one panel" in fig.get_suptitle()
    expected = first.sel(init_scale=1.0).median("seed")
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), expected)
    later = plots.layer_profile(ds, "delta_rms_layer", step=1)  # trained: the chains differ
    assert [ax.get_title() for ax in panels(later)] == list(ds["optimizer"].values)
