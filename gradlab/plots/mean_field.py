"""Does the network agree with mean-field theory: χ1 and the mean-field phase diagrams.

- :func:`chi1_vs_theory`: the measured backward growth per layer χ1 against a grid axis, with
  the theory curve and the critical line χ1 = 1;
- :func:`order_chaos_diagram`: a metric over (σ_w², σ_b²) with the order-to-chaos line
  (Poole et al. 2016, fig. 2; Schoenholz et al. 2017, fig. 1);
- :func:`depth_scale_diagram`: a metric over (σ_w², depth) with the trainable depth
  6 ξ_c (Schoenholz et al. 2017, fig. 5);
- :func:`mean_field_diagram`: either of the two, picked by its ``y`` axis.

The sweep's axes are standard deviations (``init_scale`` = σ_w with ``init="normal"``, a
multiple of the scheme's σ otherwise, ``bias_std`` = σ_b); the diagrams draw them as the variances
σ_w², σ_b² of the theory, converting init_scale by the scheme (σ_w² = 2 init_scale² for
``he_normal``) and refusing a scheme that has no single σ_w (Glorot, orthogonal).
:mod:`gradlab.theory` (numerical integrals in JAX) is imported only when a line is drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from gradlab import analysis
from gradlab.plots import heatmaps, reading, style

__all__ = ["chi1_vs_theory", "depth_scale_diagram", "mean_field_diagram", "order_chaos_diagram"]

# the theory line: green, visible on any cell of either colour map
_THEORY_STYLE = {"color": style.OKABE_ITO[2], "lw": 2.5, "ls": "--"}
_SIGMA_W2 = r"weight variance $\sigma_w^2$"
_SIGMA_B2 = r"bias variance $\sigma_b^2$"


Theory = Callable[[float], float] | xr.DataArray


def _theory_of(theory: Theory | Mapping[Any, Theory] | None, panel: reading.Panel) -> Any:
    """The theory of one panel: a mapping is keyed by the panel's facet value (a tuple of the
    row and col values when both are given); a DataArray is selected at the facet values it
    has as dims."""
    if isinstance(theory, Mapping):
        key = tuple(panel.pick.values())
        key = key[0] if len(key) == 1 else key
        if key not in theory:
            raise ValueError(f"theory has no entry for {key!r}; its keys: {list(theory)}")
        theory = theory[key]
    if isinstance(theory, xr.DataArray):
        theory = theory.sel({k: v for k, v in panel.pick.items() if k in theory.dims})
    return theory


def _chi1_panel(ax: Axes, xs: np.ndarray, q: np.ndarray, theory: Any, x: str) -> None:
    """One panel of :func:`chi1_vs_theory`: measured median and IQR, theory, χ1 = 1."""
    blue, red = style.OKABE_ITO[0], style.OKABE_ITO[3]
    ax.fill_between(xs, q[0], q[2], color=blue, alpha=0.25, lw=0, label="measured IQR")
    ax.plot(xs, q[1], "o-", color=blue, label=r"measured $\hat\chi_1$ (median)")
    if theory is not None:
        if isinstance(theory, xr.DataArray):
            tx, ty = theory[x].values, theory.values
        else:
            grid = np.geomspace if style.is_log_spaced(xs) else np.linspace
            tx = grid(xs.min(), xs.max(), 200)
            ty = np.array([theory(float(v)) for v in tx])
        ax.plot(tx, ty, "--", color=red, lw=2, label=r"mean-field $\chi_1$")
    ax.axhline(1.0, color="0.3", ls=":", lw=1.5, label=r"critical $\chi_1 = 1$")
    ax.set_yscale("log")
    style.set_grid_ticks(ax, "x", xs, style.is_log_spaced(xs))
    ax.grid(alpha=0.3)


def chi1_vs_theory(
    ds: xr.Dataset,
    x: str = "init_scale",
    theory: Theory | Mapping[Any, Theory] | None = None,
    step: int = 0,
    *,
    sel: Mapping[str, Any] | None = None,
    row: str | None = None,
    col: str | None = None,
) -> Figure:
    """Measured χ1 against a grid axis, with the mean-field prediction and the critical line.

    Plots the median and inter-quartile range of :func:`gradlab.analysis.empirical_chi1` over
    every other axis (all chains agree at step 0: nothing has been trained yet), the theory curve
    if given, and χ1 = 1 (the order/chaos boundary: above it gradients explode with depth). With
    ``row`` / ``col``, one panel per value of those axes (e.g. ``col="activation"``: ReLU beside
    tanh), each with its own theory.

    Args:
      ds: a result Dataset with ``delta_rms_layer`` and at least two hidden layers.
      x: grid axis on the x axis (default ``init_scale``: σ_w for ``init="normal"``, a multiple
        of the scheme's σ otherwise; the axis label says which).
      theory: mean-field χ1 as a function of the x value, e.g. for ReLU with ``init="normal"``
        ``lambda s: s**2 / 2`` or ``lambda s: gl.theory.chi1("tanh", s**2, 0.05)``; or a
        DataArray over ``x`` (and the facet axes); or, with ``row`` / ``col``, a mapping from
        each facet value (a ``(row, col)`` tuple with both) to one of these.
      step: the logged step (default 0, the initialisation).
      sel: grid values to fix first (e.g. one activation).
      row: grid axis whose values get a row of panels each.
      col: grid axis whose values get a column of panels each.

    Returns:
      The Figure.

    Raises:
      ValueError: ``step`` was not logged, an axis is not a grid axis, or a theory mapping has
        no entry for a panel.

    Example:
      >>> chi1_vs_theory(ds, theory=lambda s: s**2 / 2)  # ReLU  # doctest: +SKIP
      >>> chi1_vs_theory(ds, col="activation", theory={  # doctest: +SKIP
      ...     "relu": lambda s: s**2 / 2,
      ...     "tanh": lambda s: gl.theory.chi1("tanh", s**2, 0.0)})

    References:
      Poole et al., NeurIPS 2016. Schoenholz et al., ICLR 2017.
    """
    ds = reading.select(ds, sel)
    reading.check_axis(ds, x)
    reading.check_step(ds, step)
    if x in (row, col):
        raise ValueError(f"{x!r} is both the x axis and a facet axis")
    panels, ncols = reading.facets(ds, row, col, by_chain=False)
    ds = reading.sort_axes(ds, x, row, col)
    chi = analysis.empirical_chi1(ds, step=step)
    pool = [d for d in chi.dims if d not in (x, row, col)]
    xs = ds[x].values
    fig, axes = style.panels(len(panels), size=(4.6, 3.4), ncols=ncols, sharex=True)
    for ax, panel in zip(axes, panels, strict=True):
        with analysis.quiet_nan_warnings():
            runs = reading.runs_matrix(chi.sel(panel.pick), pool, x)
            q = np.nanquantile(runs, [0.25, 0.5, 0.75], axis=0)
        _chi1_panel(ax, xs, q, _theory_of(theory, panel), x)
        if panel.title:
            ax.set_title(panel.title, fontsize=10)
    style.tidy_log(axes[0])  # shared y: once, after every panel has its data
    ylabel = r"$\chi_1$: growth of $\|\partial L/\partial h\|^2$ per layer"
    style.label_panels(axes, reading.axis_label(ds, x), ylabel, ncols=ncols)
    axes[0].legend(fontsize=8)
    n = ds.sizes["layer"]
    note = reading.pool_note(ds, [d for d in pool if d in ds.dims])
    style.suptitle(
        fig, f"Backward signal growth per layer at step {step}",
        f"hidden-layer pairs 1..{n - 2}; {note}",
    )  # fmt: skip
    return fig


# ---------------------------------------------------------------------------------------------
# The cells of a mean-field diagram: σ_w² across, σ_b² or another axis up


class _Cells(NamedTuple):
    """What a mean-field diagram colours, on which cells."""

    ds: xr.Dataset  # selected, axes sorted
    values: xr.DataArray  # over (optimizer, y, init_scale)
    name: str  # "chi1" or the metric's name
    pool: list[str]  # the dims pooled into each cell
    xs: np.ndarray  # cell centres across: σ_w²
    ys: np.ndarray  # cell centres up: σ_b², or the values of y
    xe: np.ndarray  # cell edges
    ye: np.ndarray
    xlog: bool
    ylog: bool
    sigma_note: str  # how σ_w² was read from init_scale


def _cells(
    ds: xr.Dataset,
    metric: str | xr.DataArray,
    y: str,
    sel: Mapping[str, Any] | None,
    step: int,
    skip: int,
) -> _Cells:
    """The median of ``metric`` per chain over the (σ_w², y) grid: ``"chi1"`` is the median of
    :func:`gradlab.analysis.empirical_chi1` with ``skip``, anything else as
    :func:`~gradlab.plots.phase_diagram` colours it."""
    x = "init_scale"
    ds = reading.select(ds, sel)
    reading.check_axis(ds, x)
    reading.check_axis(ds, y)
    ds = reading.sort_axes(ds, x, y)
    keep = [x, y]
    if isinstance(metric, str) and metric == "chi1":
        chi = analysis.empirical_chi1(ds, step=step, skip=skip)
        pool = [d for d in chi.dims if d not in ("optimizer", *keep)]
        with analysis.quiet_nan_warnings():
            values, name = chi.median(pool), "chi1"
    else:
        values, name = heatmaps.cell_values(ds, metric, keep)
        pool = [d for d in analysis.grid_axes(ds) if d not in keep]
    factor, sigma_note = reading.weight_variance(ds)
    xs = factor * ds[x].values.astype(float) ** 2
    ys = ds[y].values.astype(float) ** (2 if y == "bias_std" else 1)
    xlog, ylog = style.is_log_spaced(xs), style.is_log_spaced(ys)
    xe, ye = style.cell_edges(xs, xlog), style.cell_edges(ys, ylog)
    if y == "bias_std":
        ye = np.maximum(ye, 0.0)
    values = values.transpose("optimizer", y, x)
    return _Cells(ds, values, name, pool, xs, ys, xe, ye, xlog, ylog, sigma_note)


def _color_scale(name: str, z: np.ndarray) -> tuple[Normalize, Colormap]:
    """χ1: red-blue on a log scale symmetric about 1 (blue ordered, red chaotic); a rate on
    [0, 1]; anything else over its finite range (viridis)."""
    finite = z[np.isfinite(z)]
    if name == "chi1":
        m = float(np.exp(np.abs(np.log(finite)).max())) if finite.size else 2.0
        return LogNorm(1 / max(m, 1.01), max(m, 1.01)), colormaps["RdBu_r"]
    if name == "divergence_rate":
        return Normalize(0.0, 1.0), colormaps[style.MAP]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return Normalize(lo, hi if hi > lo else lo + 1), colormaps[style.MAP]


def _draw(
    c: _Cells, annotate: bool | None, theory_line: Callable[[Axes, np.ndarray], None]
) -> tuple[Figure, list[Axes], Any]:
    """One panel per chain: the cells, then ``theory_line(ax, z)`` on top; returns the figure,
    its panels and the last mesh (for the colour bar)."""
    norm, cmap = _color_scale(c.name, c.values.values.astype(float))
    annotate = len(c.xs) * len(c.ys) <= 100 if annotate is None else annotate
    chains = reading.chains(c.ds)
    fig, axes = style.panels(len(chains), size=(min(1.4 + 0.42 * len(c.xs), 5.6), 3.6))
    mesh = None
    for ax, chain in zip(axes, chains, strict=True):
        z = c.values.sel(optimizer=chain).values.astype(float)
        mesh = heatmaps.draw_heatmap(ax, c.xe, c.ye, c.xs, c.ys, z, cmap, norm, annotate)
        theory_line(ax, z)
        ax.set_xlim(c.xe[0], c.xe[-1])
        ax.set_ylim(c.ye[0], c.ye[-1])
        ax.set_title(chain, fontsize=10)
        style.set_grid_ticks(ax, "x", c.xs, c.xlog)
        style.set_grid_ticks(ax, "y", c.ys, c.ylog)
    return fig, axes, mesh


def _finish(
    fig: Figure,
    axes: list[Axes],
    mesh: Any,
    c: _Cells,
    handles: list[Any],
    ylabel: str,
    y_words: str,
    activation: str,
) -> Figure:
    """Axis labels, the colour bar, the legend below (theory lines, hatching) and the title
    (``y_words``: the vertical axis in words)."""
    style.label_panels(axes, _SIGMA_W2, ylabel)
    cbar = fig.colorbar(mesh, ax=axes, shrink=0.9)
    if c.name == "chi1":
        norm = mesh.norm
        ticks = [t for t in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0) if norm.vmin <= t <= norm.vmax]
        cbar.set_ticks(ticks, labels=[f"{t:g}" for t in ticks])
        cbar.ax.yaxis.set_minor_formatter(NullFormatter())
    cbar.set_label(
        r"measured $\chi_1$ (backward growth per layer)"
        if c.name == "chi1"
        else style.label(c.name)
    )
    if c.name != "chi1" and np.isnan(c.values.values.astype(float)).any():
        handles.append(heatmaps.missing_cells_patch())
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    what = "measured χ1" if c.name == "chi1" else style.label(c.name)
    note = reading.pool_note(c.ds, [d for d in c.pool if d in c.ds.dims])
    sigma = f"; {c.sigma_note}" if c.sigma_note else ""
    style.suptitle(fig, f"{what} over σ_w² × {y_words}", f"{activation}{sigma}; {note}")
    return fig


# ---------------------------------------------------------------------------------------------
# The two diagrams


def order_chaos_diagram(
    ds: xr.Dataset,
    metric: str | xr.DataArray = "chi1",
    *,
    activation: str,
    sel: Mapping[str, Any] | None = None,
    step: int = 0,
    skip: int = 0,
    annotate: bool | None = None,
) -> Figure:
    r"""The order-to-chaos phase diagram: a metric over (σ_w², σ_b²), one panel per chain.

    Colours the measured χ1 (``metric="chi1"``, the median of
    :func:`gradlab.analysis.empirical_chi1` with ``skip`` at ``step``, which is
    :func:`gradlab.analysis.empirical_chi1` for ``skip=0``; blue = ordered, gradients vanish;
    red = chaotic, gradients explode), or any metric :func:`~gradlab.plots.phase_diagram`
    colours. On top: the theoretical critical line σ²_w,c(σ_b²) where χ1 = σ_w² E[φ'(√q* z)²] = 1
    (:func:`gradlab.theory.critical_sigma_w2`, dashed) and, for χ1, the measured χ1 = 1 contour
    (solid).

    Args:
      ds: a result Dataset with ``init_scale`` (σ_w, for ``init="normal"``) and ``bias_std``
        (σ_b) grid axes.
      metric: ``"chi1"``, a per-run variable name, ``"divergence_rate"``, or a DataArray.
      activation: the network's activation, for the theory line.
      sel: grid values to fix first.
      step: the logged step for ``metric="chi1"``.
      skip: for ``metric="chi1"``, leave out the ``skip`` layer pairs nearest the input, whose
        lengths have not reached q* yet (:func:`gradlab.analysis.empirical_chi1` with ``skip``).
      annotate: write each cell's value; default when there are at most 100 cells.

    Returns:
      The Figure.

    Example:
      >>> order_chaos_diagram(ds, activation="tanh", skip=2)  # doctest: +SKIP

    References:
      Poole et al., *Exponential expressivity in deep neural networks through transient chaos*,
      NeurIPS 2016 (fig. 2). Schoenholz et al., *Deep Information Propagation*, ICLR 2017
      (fig. 1).
    """
    from gradlab import theory

    c = _cells(ds, metric, "bias_std", sel, step, skip)
    measured = c.name == "chi1" and len(c.xs) > 1 and len(c.ys) > 1

    def critical_line(ax: Axes, z: np.ndarray) -> None:
        sb2 = np.linspace(c.ye[0], c.ye[-1], 30)
        crit = np.asarray(theory.critical_sigma_w2(activation, sb2), dtype=float)
        ax.plot(crit, sb2, zorder=4, **_THEORY_STYLE)
        if measured and np.isfinite(z).all() and z.min() < 1 < z.max():
            ax.contour(c.xs, c.ys, z, levels=[1.0], colors="black", linewidths=1.5, zorder=4)

    fig, axes, mesh = _draw(c, annotate, critical_line)
    handles = [Line2D([], [], **_THEORY_STYLE, label=r"theory: $\chi_1 = 1$ (order | chaos)")]
    if c.name == "chi1":
        handles.append(Line2D([], [], color="black", lw=1.5, label=r"measured $\chi_1 = 1$"))
    return _finish(fig, axes, mesh, c, handles, _SIGMA_B2, "bias variance", activation)


def depth_scale_diagram(
    ds: xr.Dataset,
    metric: str | xr.DataArray = "test_accuracy",
    y: str = "depth",
    *,
    activation: str,
    sel: Mapping[str, Any] | None = None,
    depth_multiple: float = 6.0,
    step: int = 0,
    skip: int = 0,
    annotate: bool | None = None,
) -> Figure:
    r"""Trainable depth: a metric over (σ_w², depth), one panel per chain, with ``6 ξ_c``.

    Colours a per-run metric as :func:`~gradlab.plots.phase_diagram` does (default the test
    accuracy; or ``"chi1"``) over σ_w² and a second grid axis, usually ``depth`` (sweeps at
    several depths joined with :func:`gradlab.analysis.concat_sweeps`), and draws
    ``depth_multiple`` × ξ_c(σ_w², σ_b²), the correlation depth scale of
    :func:`gradlab.theory.depth_scales` (dashed): the depth to which Schoenholz et al. find
    networks trainable (6 ξ_c). ξ_c diverges at the critical σ_w², so the line leaves the top of
    the panel there.

    Args:
      ds: a result Dataset with an ``init_scale`` grid axis (σ_w, for ``init="normal"``) and at
        most one σ_b (a ``bias_std`` coordinate, or none: σ_b = 0).
      metric: a per-run variable name, ``"divergence_rate"``, ``"chi1"``, or a DataArray.
      y: the grid axis up (default ``depth``); not ``bias_std`` (see
        :func:`order_chaos_diagram`).
      activation: the network's activation, for the theory line.
      sel: grid values to fix first.
      depth_multiple: the multiple of ξ_c drawn.
      step: the logged step for ``metric="chi1"``.
      skip: for ``metric="chi1"``, layer pairs nearest the input left out.
      annotate: write each cell's value; default when there are at most 100 cells.

    Returns:
      The Figure.

    Raises:
      ValueError: ``y`` is ``bias_std``, or the sweep has more than one σ_b.

    Example:
      >>> depth_scale_diagram(by_depth, "test_accuracy", activation="tanh")  # doctest: +SKIP

    References:
      Schoenholz et al., *Deep Information Propagation*, ICLR 2017 (fig. 5).
    """
    from gradlab import theory

    if y == "bias_std":
        raise ValueError("y='bias_std' is the order-to-chaos diagram: use order_chaos_diagram")
    c = _cells(ds, metric, y, sel, step, skip)
    sb = None
    if "bias_std" in c.ds.coords:
        sbs = np.unique(np.atleast_1d(c.ds["bias_std"].values.astype(float)))
        if len(sbs) != 1:
            raise ValueError(f"the depth-scale line needs one bias_std; this sweep has {sbs}")
        sb = float(sbs[0])

    def depth_line(ax: Axes, z: np.ndarray) -> None:
        sw2 = (np.geomspace if c.xlog else np.linspace)(c.xe[0], c.xe[-1], 80)
        xi_c = np.asarray(theory.depth_scales(activation, sw2, (sb or 0.0) ** 2)[1], float)
        ax.plot(sw2, np.where(np.isfinite(xi_c), depth_multiple * xi_c, 1e9), zorder=4,
                **_THEORY_STYLE)  # fmt: skip

    fig, axes, mesh = _draw(c, annotate, depth_line)
    sb_note = "" if sb is None else rf", $\sigma_b^2$ = {sb**2:.3g}"
    label = rf"theory: {depth_multiple:g} $\xi_c$ ({activation}{sb_note})"
    handles = [Line2D([], [], **_THEORY_STYLE, label=label)]
    ylabel = reading.axis_label(c.ds, y)
    return _finish(fig, axes, mesh, c, handles, ylabel, ylabel, activation)


def mean_field_diagram(
    ds: xr.Dataset,
    metric: str | xr.DataArray = "chi1",
    y: str = "bias_std",
    *,
    activation: str,
    sel: Mapping[str, Any] | None = None,
    depth_multiple: float = 6.0,
    step: int = 0,
    skip: int = 0,
    annotate: bool | None = None,
) -> Figure:
    r"""A mean-field phase diagram in the variables of the theory: σ_w² across, σ_b² or depth up.

    - ``y="bias_std"``: :func:`order_chaos_diagram`: the measured χ1 (or ``metric``) over
      (σ_w², σ_b²) with the order-to-chaos line σ²_w,c(σ_b²) and the measured χ1 = 1 contour;
    - ``y`` another grid axis, e.g. ``"depth"``: :func:`depth_scale_diagram`: ``metric`` (e.g.
      ``"test_accuracy"``) with ``depth_multiple`` × ξ_c(σ_w², σ_b²); the sweep must then have a
      single σ_b.

    Args:
      ds: a result Dataset with an ``init_scale`` grid axis (σ_w, for ``init="normal"``).
      metric: ``"chi1"``, a per-run variable name, ``"divergence_rate"``, or a DataArray.
      y: ``"bias_std"`` or another grid axis (e.g. ``"depth"``).
      activation: the network's activation, for the theory lines.
      sel: grid values to fix first.
      depth_multiple: the multiple of ξ_c drawn when ``y`` is not ``bias_std``.
      step: the logged step for ``metric="chi1"``.
      skip: for ``metric="chi1"``, leave out the ``skip`` layer pairs nearest the input, whose
        lengths have not reached q* yet (:func:`gradlab.analysis.empirical_chi1` with ``skip``).
      annotate: write each cell's value; default when there are at most 100 cells.

    Returns:
      The Figure.

    Example:
      >>> mean_field_diagram(ds, activation="tanh")  # doctest: +SKIP
      >>> fig = mean_field_diagram(  # doctest: +SKIP
      ...     by_depth, "test_accuracy", "depth", activation="tanh")

    References:
      Poole et al., NeurIPS 2016 (fig. 2). Schoenholz et al., ICLR 2017 (figs. 1 and 5).
    """
    common = {
        "activation": activation,
        "sel": sel,
        "step": step,
        "skip": skip,
        "annotate": annotate,
    }
    if y == "bias_std":
        return order_chaos_diagram(ds, metric, **common)
    return depth_scale_diagram(ds, metric, y, depth_multiple=depth_multiple, **common)
