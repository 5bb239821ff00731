"""gradlab.plots.style: number formats, log-spacing, cell edges and panel layout by hand."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import xarray as xr

from gradlab.plots import style


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e-3, "$10^{-3}$"),
        (1000.0, "$10^{3}$"),
        (-1e4, "$-10^{4}$"),
        (0.01, "0.01"),  # a power of ten, but short enough to write out
        (0.5, "0.5"),
        (2, "2"),
        (0.0, "0"),
        (1234.5, "1.23e+03"),
        (1024, "1024"),  # an integer axis (a width) in full
        (np.int64(4096), "4096"),
        ("relu", "relu"),
        (np.str_("tanh"), "tanh"),
    ],
)
def test_format_value(value, text):
    assert style.format_value(value) == text


@pytest.mark.parametrize(
    ("values", "log"),
    [
        ([1e-3, 1e-2, 1e-1, 1.0], True),  # geometric
        ([0.5, 1.0, 2.0, 4.0], True),
        ([4.0, 0.5, 2.0, 1.0], True),  # order does not matter
        ([0.1, 0.2, 0.3], False),  # arithmetic
        ([1.0, 2.0, 3.0, 50.0], True),  # neither, but spans more than a decade
        ([1.0, 2.0, 3.5], False),  # neither, within a decade
        ([1.0, 10.0], True),  # two values: a decade apart
        ([1.0, 5.0], False),
        ([0.0, 1.0, 10.0], False),  # zero cannot go on a log axis
        ([3.0], False),
        (["relu", "tanh"], False),
    ],
)
def test_is_log_spaced(values, log):
    assert style.is_log_spaced(np.array(values)) is log


def test_cell_edges_centre_each_cell_on_its_value():
    np.testing.assert_allclose(
        style.cell_edges(np.array([1.0, 10.0, 100.0]), log=True),
        10.0 ** np.array([-0.5, 0.5, 1.5, 2.5]),
    )
    np.testing.assert_allclose(
        style.cell_edges(np.array([0.0, 0.1, 0.2]), log=False), [-0.05, 0.05, 0.15, 0.25]
    )
    np.testing.assert_allclose(style.cell_edges(np.array([2.0]), log=True), [1.0, 3.0])
    np.testing.assert_allclose(style.cell_edges(np.array([0.0]), log=False), [-0.5, 0.5])


def test_axis_geometry_of_numeric_categorical_and_missing_axes():
    ds = xr.Dataset(coords={"learning_rate": [0.01, 0.1, 1.0], "activation": ["relu", "tanh"]})
    geo = style.axis_geometry(ds, "learning_rate")
    assert geo.log and not geo.categorical
    np.testing.assert_allclose(geo.positions, [0.01, 0.1, 1.0])
    np.testing.assert_allclose(geo.edges, 10.0 ** np.array([-2.5, -1.5, -0.5, 0.5]))
    geo = style.axis_geometry(ds, "activation")
    assert geo.categorical and not geo.log
    np.testing.assert_allclose(geo.positions, [0, 1])
    np.testing.assert_allclose(geo.edges, [-0.5, 0.5, 1.5])
    geo = style.axis_geometry(ds, None)
    np.testing.assert_allclose(geo.edges, [-0.5, 0.5])


def test_labels_and_symbols():
    assert style.label("learning_rate") == r"learning rate $\eta$"
    assert style.label("final_loss") == "final training loss (non-diverged)"
    assert style.label("lr_mult_0") == "lr mult 0"  # unknown: underscores to spaces
    assert style.symbol("learning_rate") == r"$\eta$"
    assert style.symbol("z_loss") == "z loss"


def test_init_scale_is_sigma_w_only_for_the_normal_scheme():
    """init_scale multiplies the scheme's σ: it is σ_w only where the scheme is ``normal``."""
    assert style.init_scale_label("normal") == r"init scale $\sigma_w$"
    assert style.init_scale_label("he_normal") == "init scale (× σ of he_normal)"
    assert style.init_scale_label(None) == "init scale (× σ of the init scheme)"
    assert style.init_scale_symbol("normal") == r"$\sigma_w$"
    assert style.init_scale_symbol("he_normal") == "init scale"
    assert style.label("init_scale") == "init scale"  # without a Dataset: no claim of σ_w


def test_panels_lay_out_up_to_four_per_row_and_label_the_outer_ones():
    fig, axes = style.panels(6)
    assert len(axes) == len(fig.axes) == 6
    np.testing.assert_allclose(fig.get_size_inches(), [3.6 * 4 + 1.4, 3.0 * 2 + 0.9])
    style.label_panels(axes, "x", "y")
    # bottom row: panels 2..5 (a panel is on the bottom row if none sits below it)
    assert [ax.get_xlabel() for ax in axes] == ["", "", "x", "x", "x", "x"]
    assert [ax.get_ylabel() for ax in axes] == ["y", "", "", "", "y", ""]
    assert style.legend_row(axes) == "upper"
    assert style.legend_row(axes[:1]) == "center"


def test_hue_colours_ordered_values_by_colour_map_and_categories_by_palette():
    assert style.hue_colors(np.array(["relu", "tanh"])) == list(style.OKABE_ITO[:2])
    assert style.hue_colors(np.array([0.5])) == [style.OKABE_ITO[0]]
    colors = style.hue_colors(np.array([0.1, 1.0, 10.0]))
    cmap = matplotlib.colormaps[style.LINE_MAP]
    assert colors == [cmap(0.0), cmap(0.425), cmap(0.85)]
