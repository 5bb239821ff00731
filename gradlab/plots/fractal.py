"""The fractal trainability boundary: the image of a 2-D grid and its zooms.

:func:`fractal_image` draws one grid (e.g. the input and output layers' learning rates) coloured
by :func:`gradlab.analysis.convergence_measure`: blues for runs that trained (darker: the loss
fell further), reds for runs that diverged (darker: sooner). As in the reference code
(``cdf_img``), each side is coloured by rank, so the colours spread evenly over the runs of
that side whatever the distribution of the measure; the sign, the outcome, is never changed.
:func:`fractal_zooms` draws a sequence of zooms side by side, each with a box where the next
one lies, and the box-counting dimension of each level and over all of them
(:func:`gradlab.analysis.fractal_dimension`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from scipy import stats

from gradlab import analysis
from gradlab.plots import style

__all__ = ["fractal_image", "fractal_zooms", "rank_colours"]

FRACTAL_MAP = "RdBu_r"  # diverging and colour-blind safe: blue trained, red diverged
_GAP = 0.25  # the colour scale keeps [-0.25, 0.25] empty, so the two sides never touch


def rank_colours(q: np.ndarray) -> np.ndarray:
    """The measure mapped to [−1, 1] by rank within each sign (the reference's ``cdf_img``).

    Negative values (trained) go to [−1, −0.25], the most negative to −1; positive values
    (diverged) to [0.25, 1], the largest to 1; equal values share a colour; zeros go to 0;
    NaN stays NaN.

    Example:
      >>> rank_colours(np.array([-5.0, -1.0, 0.5, 2.0, 9.0])).round(3).tolist()
      [-1.0, -0.25, 0.25, 0.625, 1.0]
    """
    q = np.asarray(q, float)
    out = np.where(np.isnan(q), np.nan, 0.0)
    for sign in (-1, 1):
        side = np.isfinite(q) & (np.sign(q) == sign)
        values = np.abs(q[side])
        if values.size == 0:
            continue
        ranks = stats.rankdata(values) - 1  # ties share their mean rank, so one colour
        scale = ranks / (values.size - 1) if values.size > 1 else np.ones(1)
        out[side] = sign * (_GAP + (1 - _GAP) * scale)
    return out


def draw_image(ax: Axes, ds: xr.Dataset, axes: tuple[str, str]) -> None:
    """The rank-coloured convergence measure of one grid on ``ax`` (x: ``axes[0]``)."""
    x, y = axes
    q = analysis.convergence_measure(ds)
    q = q.squeeze([d for d in q.dims if d not in axes]).transpose(y, x).sortby([x, y])
    geometry = [style.axis_geometry(q.to_dataset(), name) for name in (x, y)]
    ax.pcolormesh(
        geometry[0].edges,
        geometry[1].edges,
        rank_colours(q.values),
        cmap=colormaps[FRACTAL_MAP],
        norm=Normalize(-1, 1),
        shading="flat",
        rasterized=True,
    )
    ax.set_xlim(geometry[0].edges[0], geometry[0].edges[-1])
    ax.set_ylim(geometry[1].edges[0], geometry[1].edges[-1])
    for which, g in zip("xy", geometry, strict=True):
        if g.log:
            (ax.set_xscale if which == "x" else ax.set_yscale)("log")
            style.tidy_log(ax, which)  # plain ticks over a zoom's narrow range
    ax.set_xlabel(style.label(x))
    ax.set_ylabel(style.label(y))


def _dimension_text(fit: analysis.BoxCounting | None) -> str:
    if fit is None:
        return "D: too few cells or no boundary"
    return f"D = {fit.dimension:.2f} [{fit.ci[0]:.2f}, {fit.ci[1]:.2f}]"


def _try_dimension(ds: xr.Dataset | Sequence[xr.Dataset], axes: tuple[str, str]):
    try:
        return analysis.fractal_dimension(ds, axes)
    except ValueError:  # a small grid or a grid without a boundary has no dimension to show
        return None


def fractal_image(
    ds: xr.Dataset, axes: Sequence[str] | None = None, title: str | None = None
) -> Figure:
    """One 2-D grid coloured by how fast each run converged (blue) or diverged (red).

    Args:
      ds: a result Dataset of one 2-D grid (other axes of length one; select with ``isel``).
      axes: the two grid axes, x first (default: the two with more than one value).
      title: the figure title (default: the axes and the box-counting dimension).

    Returns:
      The figure.

    Raises:
      ValueError: ``ds`` is not one 2-D grid (:func:`gradlab.analysis.outcome_image`).

    Example:
      >>> fig = gl.plots.fractal_image(ds)  # doctest: +SKIP
    """
    pair = analysis.image_axes(ds, axes)
    fig, (ax,) = style.panels(1, size=(5.0, 4.6))
    draw_image(ax, ds, pair)
    n = f"{ds.sizes[pair[0]]} x {ds.sizes[pair[1]]} runs"
    text = _dimension_text(_try_dimension(ds, pair))
    style.suptitle(fig, title or "Trainability boundary", f"{n}; {text}")
    return fig


def fractal_zooms(
    datasets: Sequence[xr.Dataset], axes: Sequence[str] | None = None, ncols: int = 3
) -> Figure:
    """A zoom sequence: one panel per level, a box on each where the next level lies.

    Args:
      datasets: result Datasets of 2-D grids over the same two axes, outermost first (e.g.
        each run from :func:`gradlab.analysis.zoom_spec` of the one before).
      axes: the two grid axes, x first (default: the two with more than one value).
      ncols: panels per row.

    Returns:
      The figure; each panel's title gives its magnification over the first level and its
      box-counting dimension, the subtitle the dimension fitted over all levels.

    Raises:
      ValueError: no Dataset, or one that is not a 2-D grid over the same axes.
    """
    if not datasets:
        raise ValueError("datasets: give at least one Dataset")
    pair = analysis.image_axes(datasets[0], axes)
    for ds in datasets[1:]:
        if analysis.image_axes(ds, axes) != pair:
            raise ValueError(f"datasets: every level must be a grid over {list(pair)}")
    fig, panels = style.panels(len(datasets), size=(3.8, 3.5), ncols=ncols, sharex=False,
                               sharey=False)  # fmt: skip
    log = style.is_log_spaced(datasets[0][pair[0]].values)
    spans = [_span(ds[pair[0]].values, log) for ds in datasets]
    for i, (ax, ds) in enumerate(zip(panels, datasets, strict=True)):
        draw_image(ax, ds, pair)
        text = _dimension_text(_try_dimension(ds, pair))
        ax.set_title(f"x{spans[0] / spans[i]:.3g}: {text}", fontsize=9)
        if i + 1 < len(datasets):
            inner = datasets[i + 1]
            (x0, x1), (y0, y1) = (_extent(inner[a].values) for a in pair)
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=1.2, ec="k"))
    overall = _dimension_text(_try_dimension(list(datasets), pair))
    style.suptitle(fig, "Trainability boundary, zoomed", f"over all levels: {overall}")
    return fig


def _extent(values: np.ndarray) -> tuple[float, float]:
    values = np.sort(np.asarray(values, float))
    edges = style.cell_edges(values, style.is_log_spaced(values))
    return float(edges[0]), float(edges[-1])


def _span(values: np.ndarray, log: bool) -> float:
    """The span of an axis, in decades when the outermost level is log-spaced."""
    values = np.asarray(values, float)
    return float(np.log10(values.max() / values.min()) if log else values.max() - values.min())
