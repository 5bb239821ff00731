"""gradlab.plots: every figure renders for every grid shape, and the package's public names."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
from matplotlib.figure import Figure
from plot_datasets import LR, SHAPES, make_dataset, panels, phase_axes, render, shape_ds

from gradlab import plots

# Layout problems (collapsed axes) and bad data handling surface as warnings: make them errors.
pytestmark = pytest.mark.filterwarnings("error::UserWarning", "error::RuntimeWarning")


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


# The public names of gradlab.plots when it was one module: each still works as gl.plots.X.
FORMER_PUBLIC = (
    "chi1_vs_theory", "comparison_bars", "divergence_curve", "layer_profile",
    "mean_field_diagram", "optimizer_table", "performance_profiles", "phase_diagram",
    "sharpness_vs_bound", "survival_curves", "trajectories",
)  # fmt: skip


def test_public_names_are_re_exported():
    import gradlab as gl

    assert set(FORMER_PUBLIC) | {"order_chaos_diagram", "depth_scale_diagram"} <= set(plots.__all__)
    for name in plots.__all__:
        assert getattr(gl.plots, name) is getattr(plots, name)
    for name in FORMER_PUBLIC:
        assert callable(getattr(gl.plots, name))
    assert gl.plots.OKABE_ITO[0] == "#0072B2" and gl.plots.MAP == "viridis"
    assert gl.plots.AXIS_LABELS["init_scale"] == "init scale"  # σ_w only for init="normal"
