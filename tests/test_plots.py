"""gradlab.plots: every figure renders for every grid shape, and shows what it claims to."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure

from gradlab import analysis, plots

# Layout problems (collapsed axes) and bad data handling surface as warnings: make them errors.
pytestmark = pytest.mark.filterwarnings("error::UserWarning", "error::RuntimeWarning")


def make_dataset(
    grid: dict[str, list],
    chains: tuple[str, ...] = ("sgd", "clip_by_global_norm|adam"),
    *,
    steps: int = 8,
    layers: int = 4,
    diverge: str = "some",
    sharpness: bool = False,
    seed: int = 0,
) -> xr.Dataset:
    """A synthetic result Dataset with the engine's variables and divergence semantics."""
    rng = np.random.default_rng(seed)
    dims = ("optimizer", *grid)
    shape = (len(chains), *(len(v) for v in grid.values()))
    when = rng.integers(0, steps, shape)
    at = {
        "none": np.full(shape, -1),
        "all": when,
        "some": np.where(rng.random(shape) < 0.4, when, -1),
    }[diverge]
    step = np.arange(steps)
    live = (at[..., None] < 0) | (step <= at[..., None])
    at_step = step == at[..., None]

    def per_step(values, at_divergence=None):
        values = np.where(live, values, np.nan)
        return np.where(at_step, at_divergence, values) if at_divergence is not None else values

    noise = rng.random((*shape, steps))
    noise_da = xr.DataArray(noise, dims=(*dims, "step"))
    layer = np.arange(layers)
    lay = (*shape, steps, layers)
    ds = xr.Dataset(
        {
            "loss": ((*dims, "step"), per_step(2.3 * np.exp(-0.2 * step) + noise, np.inf)),
            "accuracy": ((*dims, "step"), per_step(0.1 + 0.1 * step / steps + 0 * noise)),
            "grad_norm": ((*dims, "step"), per_step(1.0 + noise, 1e6)),
            "grad_max_abs": ((*dims, "step"), per_step(0.1 + noise)),
            "update_norm": ((*dims, "step"), per_step(0.01 + noise)),
            "clipped": ((*dims, "step"), live & (noise > 0.5)),
            "grad_norm_layer": ((*dims, "step", "layer"), 0.5**-layer * rng.random(lay) + 0.1),
            "delta_rms_layer": ((*dims, "step", "layer"), 1.5**-layer * (1 + rng.random(lay))),
            "act_rms_layer": ((*dims, "step", "layer"), 1 + rng.random(lay)),
            "diverged": (dims, at >= 0),
            "diverged_at": (dims, at.astype(np.int32)),
            "final_loss": (dims, np.where(at >= 0, np.nan, 0.3 + rng.random(shape))),
            "test_loss": (dims, np.where(at >= 0, np.nan, 0.4 + rng.random(shape))),
            "test_accuracy": (dims, np.where(at >= 0, np.nan, 0.9 + 0 * rng.random(shape))),
        },
        coords={"optimizer": list(chains), **grid, "step": step, "layer": layer},
        attrs={"spec": "steps = 8\n", "gradlab_version": "0.1.0", "devices": 1},
    )
    for name in ("grad_norm_layer", "delta_rms_layer", "act_rms_layer"):
        ds[name] = ds[name].where(analysis.alive(ds))
    if sharpness:
        lr = ds["learning_rate"] if "learning_rate" in grid else 0.1
        bound = (2.0 / lr) + 0 * ds["loss"].fillna(0)
        ds["sharpness"] = (bound * (0.5 + noise_da)).where(analysis.alive(ds) & (ds.step % 3 == 0))
        ds["sharpness_bound"] = bound.where(analysis.alive(ds))
    return ds


LR = [1e-3, 1e-2, 1e-1, 1.0]
TWO_D = {"seed": [0, 1], "learning_rate": LR, "init_scale": [1.0, 2.0]}
SHAPES = {
    "2d": dict(grid={"seed": [0, 1, 2], "learning_rate": LR, "init_scale": [0.5, 1.0, 2.0]}),
    "1d_no_seed": dict(grid={"learning_rate": LR}),
    "2d_no_seed": dict(grid={"learning_rate": LR, "init_scale": [0.5, 1.0, 2.0, 4.0]}),
    "categorical": dict(grid={"seed": [0, 1], "activation": ["relu", "tanh"], "learning_rate": LR}),
    "pooled_axis": dict(grid={**TWO_D, "momentum": [0.0, 0.9]}),
    "all_diverged": dict(grid=TWO_D, diverge="all"),
    "none_diverged": dict(grid=TWO_D, diverge="none"),
    "length_one_axes": dict(
        grid={"seed": [0], "learning_rate": [0.1], "clip_norm": [1.0]}, chains=("sgd",)
    ),
}


def shape_ds(name: str) -> xr.Dataset:
    kw = dict(SHAPES[name])
    return make_dataset(kw.pop("grid"), **kw)


def render(fig: Figure) -> bytes:
    assert isinstance(fig, Figure)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    png = buf.getvalue()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return png


def panels(fig: Figure) -> list:
    """The data axes of a figure (colorbars excluded)."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def phase_axes(ds: xr.Dataset) -> tuple[str, str | None]:
    swept = [d for d in analysis.grid_axes(ds) if d != "seed" and ds.sizes[d] > 1]
    x = "learning_rate" if "learning_rate" in swept else analysis.grid_axes(ds)[-1]
    others = [d for d in swept if d != x]
    return x, (others[0] if others else None)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_phase_diagram_and_trajectories_render_for_every_shape(shape):
    ds = shape_ds(shape)
    x, y = phase_axes(ds)
    fig = plots.phase_diagram(ds, x, y)
    render(fig)
    assert len(panels(fig)) == ds.sizes["optimizer"]
    assert [ax.get_title() for ax in panels(fig)] == list(ds["optimizer"].values)
    assert "over" in fig.get_suptitle()  # says what was swept
    fig = plots.trajectories(ds, "loss")
    render(fig)
    assert panels(fig)[0].get_yscale() == "log"
    assert panels(fig)[-1].get_xlabel() == "training step"


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_other_figure_builds_for_every_shape(shape):
    """Built (not rendered, to stay fast); rendering of each kind is covered below."""
    ds = shape_ds(shape)
    x, _ = phase_axes(ds)
    figs = [
        plots.phase_diagram(ds, x, None, "final_loss"),
        plots.trajectories(ds, "grad_norm", hue=None),
        plots.layer_profile(ds, "delta_rms_layer"),
        plots.divergence_curve(ds, x),
        plots.survival_curves(ds),
        plots.comparison_bars(ds),
        plots.optimizer_table(ds),
    ]
    if ds.sizes["optimizer"] > 1:
        figs.append(plots.performance_profiles(ds, ["final_loss", "stability"]))
    assert all(isinstance(f, Figure) and f.axes for f in figs)


def test_every_figure_kind_renders():
    ds = make_dataset(
        {"seed": [0, 1, 2], "learning_rate": LR, "init_scale": [0.5, 1.0, 2.0]}, sharpness=True
    )
    figs = [
        plots.layer_profile(ds, "grad_norm_layer"),
        plots.chi1_vs_theory(ds, theory=lambda s: s**2 / 2),
        plots.sharpness_vs_bound(ds),
        plots.divergence_curve(ds),
        plots.survival_curves(ds),
        plots.comparison_bars(ds),
        plots.optimizer_table(ds),
        plots.performance_profiles(ds, ["final_loss", "test_error", "stability"]),
    ]
    for fig in figs:
        render(fig)


def test_phase_diagram_cells_axes_and_overlay():
    ds = make_dataset({"seed": [0, 1], "learning_rate": LR, "init_scale": [0.5, 1.0, 2.0, 4.0]})
    scales = {"init_scale": [0.5, 1.0, 2.0, 4.0]}
    boundary = xr.DataArray([1.0, 0.3, 0.1, 0.03], dims="init_scale", coords=scales)
    fig = plots.phase_diagram(ds, overlay={"2/λ₀": boundary, "line": ([1e-3, 1.0], [1.0, 1.0])})
    ax = panels(fig)[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"  # both grids log-spaced
    mesh = ax.collections[0]
    rate = ds["diverged"].mean("seed").sel(optimizer="sgd").transpose("init_scale", "learning_rate")
    np.testing.assert_allclose(mesh.get_array().filled(np.nan).reshape(4, 4), rate.values)
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_allclose(lines["2/λ₀"].get_xdata(), boundary.values)
    np.testing.assert_allclose(lines["2/λ₀"].get_ydata(), boundary["init_scale"].values)
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 16  # one annotation per cell
    assert fig.axes[-1].get_ylabel() == "fraction of runs diverged"  # the colorbar


def test_phase_diagram_linear_categorical_and_missing_cells():
    grid = {"activation": ["relu", "tanh", "gelu"], "bias_std": [0.0, 0.1, 0.2]}
    ds = make_dataset(grid, chains=("sgd",), diverge="all")
    fig = plots.phase_diagram(ds, "bias_std", "activation", "final_loss")
    ax = panels(fig)[0]
    assert ax.get_xscale() == "linear"  # 0, 0.1, 0.2 is arithmetic
    assert [t.get_text() for t in ax.get_yticklabels()] == ["relu", "tanh", "gelu"]
    assert "every run diverged" in [t.get_text() for t in fig.legends[0].get_texts()]
    assert not ax.texts  # nothing to annotate
    render(fig)


def test_phase_diagram_pools_sorts_and_selects():
    ds = make_dataset({"seed": [0, 1], "learning_rate": LR[::-1], "momentum": [0.0, 0.9]})
    fig = plots.phase_diagram(ds, "learning_rate", None)
    assert "seed × momentum" in fig.get_suptitle()
    z = panels(fig)[0].collections[0].get_array().ravel()
    sgd = ds["diverged"].sel(optimizer="sgd").mean(["seed", "momentum"]).sortby("learning_rate")
    np.testing.assert_allclose(z, sgd.values)  # sorted ascending despite the grid order
    fig = plots.phase_diagram(ds, "learning_rate", None, sel={"momentum": 0.9})
    assert "momentum" not in fig.get_suptitle()
    with pytest.raises(ValueError, match="not a grid axis"):
        plots.phase_diagram(ds, "learning_rate", "init_scale")
    with pytest.raises(ValueError, match="sel names"):
        plots.phase_diagram(ds, "learning_rate", None, sel={"init_scale": 1.0})
    with pytest.raises(ValueError, match="metric"):
        plots.phase_diagram(ds, "learning_rate", None, "grad_norm")
    # a DataArray metric without an optimizer dim is drawn in every chain's panel
    peak = ds["grad_norm"].sel(optimizer="sgd", drop=True).max("step")
    fig = plots.phase_diagram(ds, "learning_rate", None, peak)
    expected = peak.median(["seed", "momentum"]).sortby("learning_rate").values
    for ax in panels(fig):
        np.testing.assert_allclose(ax.collections[0].get_array().ravel(), expected)


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


def test_sharpness_chi1_and_bars():
    ds = make_dataset({"seed": [0, 1], "learning_rate": LR}, sharpness=True)
    fig = plots.sharpness_vs_bound(ds)
    ax = panels(fig)[0]
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [0, 3, 6])  # computed steps
    with pytest.raises(ValueError, match="sharpness"):
        plots.sharpness_vs_bound(ds.drop_vars("sharpness"))
    fig = plots.chi1_vs_theory(make_dataset({"init_scale": [0.5, 1.0, 2.0]}), theory=np.square)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert r"mean-field $\chi_1$" in labels and r"critical $\chi_1 = 1$" in labels
    fig = plots.comparison_bars(ds.drop_vars("clipped"))
    titles = [ax.get_title() for ax in fig.axes]
    assert "fraction of steps clipped" not in titles  # no clipping measured: no panel
    assert "fraction of runs diverged" in titles


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


def test_mean_field_diagram_draws_variances_measured_chi1_and_the_critical_line():
    from gradlab import theory

    sw = [0.8, 1.0, 1.2, 1.4, 1.6]
    sb = [0.0, 0.3, 0.5]
    ds = make_dataset({"seed": [0, 1, 2], "init_scale": sw, "bias_std": sb}, chains=("sgd",))
    # delta_rms grows towards the input by a factor σ_w per layer: χ1 = σ_w²
    layer = xr.DataArray(np.arange(4), dims="layer")
    ds["delta_rms_layer"] = (ds["init_scale"] ** (3 - layer)).broadcast_like(ds["delta_rms_layer"])
    fig = plots.mean_field_diagram(ds, activation="tanh")
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
    skipped = panels(plots.mean_field_diagram(ds, activation="tanh", skip=1))[0]
    np.testing.assert_allclose(skipped.collections[0].get_array(), mesh.get_array(), rtol=1e-6)
    with pytest.raises(ValueError, match="no interior layer pair"):
        plots.mean_field_diagram(ds, activation="tanh", skip=2)


def test_mean_field_diagram_over_depth_draws_six_xi_c():
    from gradlab import theory

    sw = [0.8, 1.0, 1.4, 2.0]
    parts = {
        depth: make_dataset(
            {"seed": [0, 1], "init_scale": sw, "bias_std": [0.2]}, chains=("sgd",), seed=depth
        )
        for depth in (4, 8, 16)
    }
    ds = analysis.concat_sweeps(parts, "depth")
    fig = plots.mean_field_diagram(ds, "test_accuracy", "depth", activation="tanh")
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
        plots.mean_field_diagram(analysis.concat_sweeps(two, "depth"), "final_loss", "depth",
                                 activation="tanh")  # fmt: skip
