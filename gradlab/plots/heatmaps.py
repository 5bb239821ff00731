"""Where in the grid do runs diverge, and how well do the others train: phase diagrams.

:func:`phase_diagram` colours one cell per grid point of two axes, one panel per chain. The
cell helpers here (:func:`cell_values`, :func:`draw_heatmap`, :func:`missing_cells_patch`) also
draw the mean-field diagrams of :mod:`gradlab.plots.mean_field`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.patheffects import withStroke

from gradlab import analysis
from gradlab.plots import reading, style

__all__ = [
    "cell_values",
    "draw_heatmap",
    "missing_cells_patch",
    "phase_diagram",
]

_OVERLAY_STYLES = ("--", ":", "-.", "-")


def cell_values(
    ds: xr.Dataset, metric: str | xr.DataArray, keep: Sequence[str]
) -> tuple[xr.DataArray, str]:
    """The value of ``metric`` per chain and cell, pooling every grid axis not in ``keep``.

    Args:
      ds: a result Dataset.
      metric: ``"divergence_rate"`` (the fraction of pooled runs that diverged),
        ``"time_to_explode"`` / ``"diverged_at"`` (median divergence step), a per-run variable
        (median over the runs that did not diverge: NaN where all did), or a DataArray (its
        median over the pooled dims; without an ``optimizer`` dim it serves every chain).
      keep: the grid axes the figure shows.

    Returns:
      ``(values, name)``: the values over ``optimizer`` and ``keep``, and the metric's name.

    Raises:
      ValueError: ``metric`` is none of these (e.g. a per-step variable).
    """
    if isinstance(metric, xr.DataArray):
        if "optimizer" not in metric.dims:  # the same for every chain
            metric = metric.expand_dims(optimizer=ds["optimizer"].values)
        pool = [d for d in metric.dims if d not in ("optimizer", *keep)]
        with analysis.quiet_nan_warnings():
            return metric.median(pool), str(metric.name or "value")
    pool = [d for d in analysis.grid_axes(ds) if d not in keep]
    counted = analysis.counted_runs(ds, pooled=pool)  # no copies pooled, no unfinished runs
    with analysis.quiet_nan_warnings():
        if metric == "divergence_rate":
            return ds["diverged"].astype(float).where(counted).mean(pool), metric
        if metric in ("time_to_explode", "diverged_at"):
            return analysis.time_to_explode(ds).where(counted).median(pool), metric
        if metric in ds and "step" not in ds[metric].dims:
            survived = counted & ~ds["diverged"].astype(bool)
            return ds[metric].where(survived).median(pool), metric
    raise ValueError(
        f"metric {metric!r}: use 'divergence_rate', 'time_to_explode', a per-run variable "
        "(final_loss, test_loss, test_accuracy, ...) or a DataArray"
    )


def draw_heatmap(
    ax: Axes,
    xe: Any,
    ye: Any,
    xpos: Any,
    ypos: Any,
    z: np.ndarray,
    cmap: Colormap,
    norm: Normalize,
    annotate: bool,
) -> Any:
    """Draw ``z`` on cell edges ``xe`` x ``ye`` over a hatched background (missing cells show
    the hatching), optionally writing each value at (xpos, ypos) in a legible colour.

    Returns:
      The ``QuadMesh`` (the first collection of ``ax``), for a colour bar.
    """
    ax.add_patch(
        Rectangle(
            (xe[0], ye[0]), xe[-1] - xe[0], ye[-1] - ye[0], facecolor="0.9",
            edgecolor="0.6", hatch="///", linewidth=0, zorder=0,
        )
    )  # fmt: skip
    mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(z), cmap=cmap, norm=norm, zorder=1)
    if annotate:
        for (i, j), v in np.ndenumerate(z):
            if np.isfinite(v):
                r, g, b, _ = cmap(norm(v))
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                ax.text(
                    xpos[j], ypos[i], f"{v:.2g}", ha="center", va="center", fontsize=7,
                    color="white" if dark else "black", zorder=3,
                )  # fmt: skip
    return mesh


def missing_cells_patch() -> Patch:
    """The legend entry of a hatched cell: every pooled run diverged, so there is no value."""
    return Patch(facecolor="0.9", edgecolor="0.6", hatch="///", label="every run diverged")


def _color_norm(values: np.ndarray, is_rate: bool, log_color: bool | None) -> Normalize:
    """Rates on [0, 1]; other values over their finite range, log when asked or when positive
    and spanning more than a decade."""
    if is_rate:
        return Normalize(0.0, 1.0)
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    use_log = lo > 0 and hi / lo > 10 if log_color is None else log_color
    return LogNorm(lo, hi) if use_log else Normalize(lo, hi if hi > lo else lo + 1)


def _overlay_xy(line: Any, x: str, y: str | None, chain: str) -> tuple[np.ndarray, np.ndarray]:
    """Data coordinates of an overlay line: ``(xs, ys)`` as given, or a DataArray over ``x``
    (values are y positions) or over ``y`` (values are x positions), picked for ``chain``."""
    if not isinstance(line, xr.DataArray):
        xs, ys = line
        return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    if "optimizer" in line.dims:
        line = line.sel(optimizer=chain)
    line = line.squeeze(drop=True)
    if line.ndim != 1 or line.dims[0] not in (x, y):
        raise ValueError(f"overlay {line.name!r} must be a line over {x!r} or {y!r}: {line.dims}")
    (dim,) = line.dims
    line = line.sortby(dim)
    coord, vals = line[dim].values.astype(float), line.values.astype(float)
    return (coord, vals) if dim == x else (vals, coord)


def _overlay_style(k: int) -> dict[str, Any]:
    """Overlay line ``k``: white with a black outline, legible on any cell colour."""
    return {
        "color": "white", "lw": 2, "ls": _OVERLAY_STYLES[k % len(_OVERLAY_STYLES)],
        "path_effects": [withStroke(linewidth=3.5, foreground="black")],
    }  # fmt: skip


def _set_cell_ticks(
    ax: Axes, which: str, ds: xr.Dataset, name: str, geo: style.AxisGeometry
) -> None:
    """Ticks at the cells: category names, or the grid values (log scale where log-spaced)."""
    if geo.categorical:
        set_ticks = ax.set_xticks if which == "x" else ax.set_yticks
        set_ticks(geo.positions, [style.format_value(v) for v in ds[name].values])
    else:
        style.set_grid_ticks(ax, which, geo.positions, geo.log)


def _phase_panel(
    ax: Axes,
    ds: xr.Dataset,
    axes: tuple[str, str | None],
    geos: tuple[style.AxisGeometry, style.AxisGeometry],
    z: np.ndarray,
    norm: Normalize,
    annotate: bool,
    overlay: Mapping[str, Any],
    chain: str,
) -> Any:
    """One chain's panel of :func:`phase_diagram`: cells, overlay lines, limits, ticks."""
    (x, y), (gx, gy) = axes, geos
    mesh = draw_heatmap(
        ax, gx.edges, gy.edges, gx.positions, gy.positions, z, colormaps[style.MAP], norm, annotate
    )
    for k, (name, line) in enumerate(overlay.items()):
        lx, ly = _overlay_xy(line, x, y or "", chain)
        ax.plot(lx, ly, label=name, zorder=4, **_overlay_style(k))
    ax.set_xlim(gx.edges[0], gx.edges[-1])
    ax.set_ylim(gy.edges[0], gy.edges[-1])
    ax.set_title(chain, fontsize=10)
    _set_cell_ticks(ax, "x", ds, x, gx)
    if y is None:
        ax.set_yticks([])
    else:
        _set_cell_ticks(ax, "y", ds, y, gy)
    return mesh


def _phase_legend(fig: Figure, overlay: Mapping[str, Any], any_missing: bool) -> None:
    """Below the panels: the overlay lines, and the hatching if some cell has no value."""
    handles: list[Any] = [
        Line2D([], [], label=name, **_overlay_style(k)) for k, name in enumerate(overlay)
    ]
    if any_missing:
        handles.append(missing_cells_patch())
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)


def phase_diagram(
    ds: xr.Dataset,
    x: str = analysis.LR,
    y: str | None = "init_scale",
    metric: str | xr.DataArray = "divergence_rate",
    *,
    sel: Mapping[str, Any] | None = None,
    overlay: Mapping[str, Any] | None = None,
    annotate: bool | None = None,
    log_color: bool | None = None,
) -> Figure:
    """Heatmap of a metric over two grid axes, one panel per optimizer chain.

    Each cell is one (x, y) grid point; its colour pools the runs at that point (seeds, and any
    axis not shown): the fraction that diverged (``metric="divergence_rate"``), or the median of a
    per-run variable over the runs that did not diverge (``"final_loss"``, ``"test_accuracy"``,
    ...; cells where every run diverged are hatched grey), or the median divergence step
    (``"time_to_explode"``). Log-spaced axes are drawn on log scales with cells centred on the
    grid values; string axes (``activation``) are categorical.

    Args:
      ds: a result Dataset.
      x: grid axis along x (default ``learning_rate``).
      y: grid axis along y (default ``init_scale``); ``None`` draws a one-row strip, for 1-D grids.
      metric: what to colour by, see above, or a DataArray over ``x``, ``y`` (and optionally
        ``optimizer`` and pooled axes, over which its median is taken).
      sel: grid values to fix before plotting, e.g. ``{"clip_norm": 1.0}``.
      overlay: theory lines, ``{label: line}``; a line is ``(xs, ys)`` in data coordinates or a
        DataArray over ``y`` whose values are x positions (e.g.
        :func:`gradlab.analysis.predicted_lr_boundary` over ``init_scale``), or over ``x`` whose
        values are y positions (e.g. :func:`gradlab.analysis.critical_init_scale`); an
        ``optimizer`` dim picks each panel's line.
      annotate: write each cell's value; default when there are at most 100 cells.
      log_color: log colour scale; default when the values are positive and span > a decade.

    Returns:
      The Figure.

    Example:
      >>> fig = phase_diagram(ds, "learning_rate", "init_scale")  # doctest: +SKIP
      >>> fig.savefig("phase.png")  # doctest: +SKIP

    References:
      Schoenholz et al., *Deep Information Propagation*, ICLR 2017 (phase diagrams of trainability
      over σ_w², σ_b²).
    """
    ds = reading.select(ds, sel)
    reading.check_axis(ds, x)
    reading.check_axis(ds, y)
    if x == y:
        raise ValueError("x and y must be different axes")
    ds = reading.sort_axes(ds, x, y)
    keep = [d for d in (x, y) if d is not None]
    values, name = cell_values(ds, metric, keep)
    values = values.reindex({d: ds[d].values for d in keep})  # the (sorted) grid order
    values = values.transpose("optimizer", *([y] if y else []), x)
    pool = [d for d in analysis.grid_axes(ds) if d not in keep]
    geos = (style.axis_geometry(ds, x), style.axis_geometry(ds, y))
    norm = _color_norm(values.values, name == "divergence_rate", log_color)
    n_x, n_y = len(geos[0].positions), len(geos[1].positions)
    annotate = n_x * n_y <= 100 if annotate is None else annotate
    width = min(1.2 + 0.45 * n_x, 5.0) if annotate else 3.6
    height = 2.0 if y is None else min(1.2 + 0.4 * n_y, 4.5)
    chains = reading.chains(ds)
    fig, axes = style.panels(len(chains), size=(max(width, 3.0), height))
    mesh, any_missing = None, False
    for ax, chain in zip(axes, chains, strict=True):
        z = np.atleast_2d(values.sel(optimizer=chain).values.astype(float))
        any_missing |= bool(np.isnan(z).any())
        mesh = _phase_panel(ax, ds, (x, y), geos, z, norm, annotate, overlay or {}, chain)
    xlabel, ylabel = reading.axis_label(ds, x), reading.axis_label(ds, y) if y else ""
    style.label_panels(axes, xlabel, ylabel)
    fig.colorbar(mesh, ax=axes, shrink=0.9).set_label(style.label(name))
    _phase_legend(fig, overlay or {}, any_missing)
    what = f"{xlabel} × {ylabel}" if y else xlabel
    style.suptitle(fig, f"{style.label(name)} over {what}", reading.pool_note(ds, pool))
    return fig
