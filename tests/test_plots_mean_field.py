"""gradlab.plots.mean_field: χ1 and the mean-field diagrams against the theory's closed forms."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import warnings

import numpy as np
import pytest
import xarray as xr
from plot_datasets import make_dataset, panels, render

from gradlab import analysis, plots

# Layout problems (collapsed axes) and bad data handling surface as warnings: make them errors.
pytestmark = pytest.mark.filterwarnings("error::UserWarning", "error::RuntimeWarning")


def chi1_is_sigma_w2(ds: xr.Dataset) -> xr.Dataset:
    """delta_rms grows towards the input by a factor σ_w per layer: χ1 = σ_w²."""
    layer = xr.DataArray(np.arange(ds.sizes["layer"]), dims="layer")
    top = ds.sizes["layer"] - 1
    ds["delta_rms_layer"] = (ds["init_scale"] ** (top - layer)).broadcast_like(
        ds["delta_rms_layer"]
    )
    return ds


def test_chi1_vs_theory_draws_the_measured_chi1_the_theory_and_the_critical_line():
    sw = [0.5, 1.0, 2.0]
    fig = plots.chi1_vs_theory(chi1_is_sigma_w2(make_dataset({"init_scale": sw})), theory=np.square)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert r"mean-field $\chi_1$" in labels and r"critical $\chi_1 = 1$" in labels
    lines = {line.get_label(): line for line in ax.get_lines()}
    median = lines[r"measured $\hat\chi_1$ (median)"]
    np.testing.assert_allclose(median.get_ydata(), np.square(sw), rtol=1e-5)
    theory_line = lines[r"mean-field $\chi_1$"]
    np.testing.assert_allclose(theory_line.get_ydata(), np.square(theory_line.get_xdata()))
    np.testing.assert_allclose(theory_line.get_xdata()[[0, -1]], [0.5, 2.0])  # spans the grid
    render(fig)


@pytest.mark.parametrize("diagram", [plots.mean_field_diagram, plots.order_chaos_diagram])
def test_order_chaos_diagram_draws_variances_measured_chi1_and_the_critical_line(diagram):
    from gradlab import theory

    sw = [0.8, 1.0, 1.2, 1.4, 1.6]
    sb = [0.0, 0.3, 0.5]
    ds = make_dataset({"seed": [0, 1, 2], "init_scale": sw, "bias_std": sb}, chains=("sgd",))
    ds = chi1_is_sigma_w2(ds)
    fig = diagram(ds, activation="tanh")
    render(fig)
    ax = panels(fig)[0]
    mesh = ax.collections[0]
    np.testing.assert_allclose(mesh.get_array().reshape(3, 5), np.square([sw] * 3), rtol=1e-6)
    np.testing.assert_allclose(ax.get_xticks(), np.square(sw))  # variances, not std devs
    np.testing.assert_allclose(ax.get_yticks(), np.square(sb))
    (line,) = ax.get_lines()
    np.testing.assert_allclose(
        line.get_xdata(), theory.critical_sigma_w2("tanh", line.get_ydata()), rtol=1e-6
    )
    assert ax.get_xlabel() == r"weight variance $\sigma_w^2$"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [r"theory: $\chi_1 = 1$ (order | chaos)", r"measured $\chi_1 = 1$"]
    assert len(ax.collections) > 1  # the measured χ1 = 1 contour (σ_w² = 1 is in the grid)
    skipped = panels(diagram(ds, activation="tanh", skip=1))[0]
    np.testing.assert_allclose(skipped.collections[0].get_array(), mesh.get_array(), rtol=1e-6)
    with pytest.raises(ValueError, match="no interior layer pair"):
        diagram(ds, activation="tanh", skip=2)


@pytest.mark.parametrize("diagram", [plots.mean_field_diagram, plots.depth_scale_diagram])
def test_depth_scale_diagram_draws_six_xi_c(diagram):
    from gradlab import theory

    sw = [0.8, 1.0, 1.4, 2.0]
    parts = {
        depth: make_dataset(
            {"seed": [0, 1], "init_scale": sw, "bias_std": [0.2]}, chains=("sgd",), seed=depth
        )
        for depth in (4, 8, 16)
    }
    ds = analysis.concat_sweeps(parts, "depth")
    fig = diagram(ds, "test_accuracy", "depth", activation="tanh")
    render(fig)
    ax = panels(fig)[0]
    assert ax.get_yscale() == "log"  # 4, 8, 16 are log-spaced
    (line,) = ax.get_lines()
    xi_c = theory.depth_scales("tanh", line.get_xdata(), 0.04)[1]
    finite = np.isfinite(xi_c)
    np.testing.assert_allclose(line.get_ydata()[finite], 6 * xi_c[finite], rtol=1e-6)
    assert "6 $\\xi_c$" in fig.legends[0].get_texts()[0].get_text()
    with pytest.raises(ValueError, match="one bias_std"):
        two = {d: make_dataset({"init_scale": sw, "bias_std": [0.1, 0.2]}) for d in (4, 8)}
        diagram(analysis.concat_sweeps(two, "depth"), "final_loss", "depth", activation="tanh")


def test_depth_scale_diagram_colours_the_median_test_accuracy_of_the_runs_that_did_not_diverge():
    sw = [0.8, 1.0, 1.4, 2.0]
    parts = {
        depth: make_dataset(
            {"seed": [0, 1, 2], "init_scale": sw, "bias_std": [0.2]}, chains=("sgd",), seed=depth
        )
        for depth in (4, 8, 16)
    }
    ds = analysis.concat_sweeps(parts, "depth")
    ds["test_accuracy"] = 1 - ds["final_loss"] / 2  # varies by run; NaN where a run diverged
    ax = panels(plots.depth_scale_diagram(ds, activation="tanh"))[0]  # the defaults
    acc = ds["test_accuracy"].sel(optimizer="sgd", bias_std=0.2)
    acc = acc.transpose("depth", "init_scale", "seed").values
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells: every run diverged
        expected = np.nanmedian(acc, axis=-1)
    np.testing.assert_allclose(ax.collections[0].get_array().filled(np.nan), expected)
    assert ax.get_ylabel() == "depth"
    with pytest.raises(ValueError, match="order_chaos_diagram"):
        plots.depth_scale_diagram(ds, y="bias_std", activation="tanh")


def test_chi1_vs_theory_facets_with_a_theory_per_panel():
    """ReLU beside tanh: one panel per activation, each with its own measured χ1 and theory."""
    sw = [0.5, 1.0, 2.0]
    ds = make_dataset({"seed": [0, 1], "activation": ["relu", "tanh"], "init_scale": sw})
    ds = chi1_is_sigma_w2(ds)
    delta, tanh = ds["delta_rms_layer"], ds["activation"] == "tanh"
    ds["delta_rms_layer"] = xr.where(tanh, delta**0.5, delta)  # tanh: χ1 = σ_w, not σ_w²
    theory = {"relu": np.square, "tanh": lambda s: s}
    fig = plots.chi1_vs_theory(ds, theory=theory, col="activation", sel={"seed": [0, 1]})
    relu, tanh = panels(fig)
    assert [relu.get_title(), tanh.get_title()] == ["activation = relu", "activation = tanh"]
    for ax, expected in ((relu, np.square(sw)), (tanh, np.asarray(sw))):
        lines = {line.get_label(): line for line in ax.get_lines()}
        np.testing.assert_allclose(lines[r"measured $\hat\chi_1$ (median)"].get_ydata(), expected,
                                   rtol=1e-5)  # fmt: skip
        t = lines[r"mean-field $\chi_1$"]
        np.testing.assert_allclose(t.get_ydata(), theory[ax.get_title()[13:]](t.get_xdata()))
    assert "runs per point (optimizer × seed)" in fig.get_suptitle()  # activation: not pooled
    with pytest.raises(ValueError, match="no entry for 'tanh'"):
        plots.chi1_vs_theory(ds, theory={"relu": np.square}, col="activation")
    render(fig)


def test_init_scale_is_labelled_and_converted_by_the_init_scheme():
    """init_scale is σ_w only for init="normal"; for he_normal σ_w² = 2 init_scale²."""
    sw = [0.8, 1.0, 1.2]
    ds = make_dataset({"seed": [0, 1], "init_scale": sw, "bias_std": [0.0, 0.3]}, chains=("sgd",))
    ds = chi1_is_sigma_w2(ds)
    ds.attrs["spec"] = '[model]\ninit = "normal"\n'
    assert panels(plots.chi1_vs_theory(ds))[0].get_xlabel() == r"init scale $\sigma_w$"
    ax = panels(plots.order_chaos_diagram(ds, activation="tanh"))[0]
    np.testing.assert_allclose(ax.get_xticks(), np.square(sw))
    ds.attrs["spec"] = '[model]\ninit = "he_normal"\n'
    assert panels(plots.chi1_vs_theory(ds))[0].get_xlabel() == "init scale (× σ of he_normal)"
    fig = plots.order_chaos_diagram(ds, activation="tanh")
    np.testing.assert_allclose(panels(fig)[0].get_xticks(), 2 * np.square(sw))  # σ_w², not s²
    assert "init = he_normal: σ_w² = 2 × init_scale²" in fig.get_suptitle()
    assert panels(plots.phase_diagram(ds, "init_scale", "bias_std"))[0].get_xlabel() == (
        "init scale (× σ of he_normal)"
    )
    ds.attrs["spec"] = '[model]\ninit = "glorot_normal"\n'
    with pytest.raises(ValueError, match="depends on fan_out"):
        plots.order_chaos_diagram(ds, activation="tanh")
