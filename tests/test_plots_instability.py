"""gradlab.plots.instability: the catapult diagram and the sensitivity bars draw what the
analysis computes, on hand-made Datasets (tests/analysis_datasets.py)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import xarray as xr
from analysis_datasets import CATAPULT_KINDS, catapult_dataset, sensitivity_dataset
from plot_datasets import render

from gradlab import analysis, plots

pytestmark = pytest.mark.filterwarnings("error::UserWarning", "error::RuntimeWarning")

# catapult_dataset's kinds as catapult_phases labels them (unconverged and diverged runs are
# "divergent").
LABEL = {
    "monotone": "monotone",
    "catapult": "catapult",
    "unresolved": "unresolved",
    "unconverged": "divergent",
    "diverged": "divergent",
}


def c_units(ds: xr.Dataset) -> xr.Dataset:
    """The hand-made sweep read as if its learning-rate axis held c (lr_units = "sharpness")."""
    return ds.assign_attrs(spec='lr_units = "sharpness"\nsteps = 5\n')


def by_width() -> xr.Dataset:
    """catapult_dataset at width 64, and at width 256 with the seeds' curves swapped."""
    ds = c_units(catapult_dataset())
    swapped = ds.copy()
    for name in ("loss", "sharpness", "sharpness_bound", "diverged", "diverged_at"):
        swapped[name] = ds[name].copy(data=ds[name].values[:, ::-1])
    swapped["initial_sharpness"] = ds["initial_sharpness"].copy(data=[20.0, 10.0])
    return xr.concat([ds, swapped], xr.DataArray([64, 256], dims="width", name="width")).transpose(
        "optimizer", "seed", "learning_rate", "width", "step"
    )


def test_catapult_diagram_colours_each_cell_by_its_modal_phase():
    ds = by_width()
    fig = plots.catapult_diagram(ds, y="width")
    ax = fig.axes[0]
    z = np.asarray(ax.collections[0].get_array()).reshape(2, 5)
    # by hand: seed 0 and seed 1 disagree at c = 0.15, 0.25, 0.5; a tie goes to the earlier
    # phase of analysis.PHASES, so the modal label is the lesser of the two kinds' labels
    order = {p: i for i, p in enumerate(analysis.PHASES)}
    expected = [
        min(order[LABEL[CATAPULT_KINDS[0][j]]], order[LABEL[CATAPULT_KINDS[1][j]]])
        for j in range(5)
    ]
    np.testing.assert_array_equal(z[0], expected)
    np.testing.assert_array_equal(z[1], expected)  # the same pair of curves, swapped seeds
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("100") == 4 and texts.count("50") == 6  # c = 0.05 and 1.0 agree
    # the boundaries: c_loss is the smallest c whose loss rose, c_max the largest converged
    cl = np.mean([0.25, 0.15])  # seed 0 rises first at c = 0.25, seed 1 at 0.15
    cm = np.mean([0.5, 0.25])  # seed 0 converges up to 0.5, seed 1 up to 0.25 (unresolved)
    lines = [line for line in ax.get_lines() if line.get_marker() in ("D", "s")]
    diamond = next(line for line in lines if line.get_marker() == "D")
    square = next(line for line in lines if line.get_marker() == "s")
    np.testing.assert_allclose(diamond.get_xdata(), [cl, cl])
    np.testing.assert_allclose(square.get_xdata(), [cm, cm])
    np.testing.assert_allclose(diamond.get_ydata(), [64, 256])
    assert "2 runs per cell (seed)" in fig.get_suptitle()
    render(fig)


def test_catapult_diagram_without_a_y_axis_and_its_errors():
    ds = c_units(catapult_dataset())
    fig = plots.catapult_diagram(ds)
    assert np.asarray(fig.axes[0].collections[0].get_array()).size == 5
    render(fig)
    with pytest.raises(ValueError, match="lr_units = 'sharpness'"):
        plots.catapult_diagram(catapult_dataset())
    with pytest.raises(ValueError, match="depth"):
        plots.catapult_diagram(ds, y="depth")


def test_sensitivity_bars_draw_the_formula():
    ds = sensitivity_dataset()
    table = plots.sensitivity_rows({"base": ds})
    # by hand, sgd seed 0: losses capped at ℓ0 = 2: [1.0, 0.5, 2.0, 2.0] - 0.5 -> mean 0.875
    init = 2.0 + 0.1 * np.arange(3)
    final = np.array([[1.0, 0.5, 3.0, np.inf], [1.2, 0.4, 0.9, np.inf], [1.1, 0.6, np.inf, np.inf]])
    capped = np.minimum(final, init[:, None])
    per_seed = (capped - capped.min(1, keepdims=True)).mean(1)
    assert per_seed[0] == pytest.approx(0.875)
    assert table.loc["base: sgd", "lr_sensitivity"] == pytest.approx(per_seed.mean())
    half = 4.302652729911275 * per_seed.std(ddof=1) / np.sqrt(3)  # t_{2, 0.975}
    assert table.loc["base: sgd", "upper"] == pytest.approx(per_seed.mean() + half)
    fig = plots.sensitivity_bars({"base": ds})
    ax = fig.axes[0]
    widths = [p.get_width() for p in ax.patches]
    np.testing.assert_allclose(widths, table["lr_sensitivity"].to_numpy())
    assert [t.get_text() for t in ax.get_yticklabels()] == ["base: sgd", "base: adam"]
    render(fig)


def test_sensitivity_rows_split_other_grid_axes():
    ds = sensitivity_dataset()
    both = xr.concat([ds, ds], xr.DataArray([0.0, 1e-4], dims="z_loss", name="z_loss"))
    table = plots.sensitivity_rows(both)
    assert list(table.index) == [
        "sgd, z_loss = 0",
        "sgd, z_loss = 0.0001",
        "adam, z_loss = 0",
        "adam, z_loss = 0.0001",
    ]
    assert table["samples"].tolist() == [3, 3, 3, 3]
