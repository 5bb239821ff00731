"""What happens during training and across depth, and how often runs diverge: line plots.

:func:`trajectories` (a per-step variable), :func:`layer_profile` (a per-layer variable against
depth) and :func:`sharpness_vs_bound` (sharpness against its stability bound) draw the median
and inter-quartile band over pooled runs, one panel per chain, one line per value of a hue
axis. A diverged run counts as +∞ (−∞ where higher is better) from its divergence step, so a
median line ends when half the runs have exploded, and × marks each divergence.
:func:`divergence_curve` and :func:`survival_curves` put the chains on one panel.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from gradlab import analysis, schema
from gradlab.plots import reading, style

__all__ = [
    "divergence_curve",
    "layer_profile",
    "sharpness_vs_bound",
    "survival_curves",
    "trajectories",
]


# ---------------------------------------------------------------------------------------------
# Median and inter-quartile band over pooled runs


def _hues(ds: xr.Dataset, hue: str | None) -> tuple[list[Any], list[Any]]:
    """The values of the hue axis (``[None]`` without one) and a colour for each."""
    hues = list(ds[hue].values) if hue else [None]
    colors = style.hue_colors(np.asarray(hues)) if hue else [style.OKABE_ITO[0]]
    return hues, colors


def _hue_label(hue: str | None, value: Any) -> str:
    return f"{style.symbol(hue)} = {style.format_value(value)}" if hue else "median"


def _draw_band(
    ax: Axes,
    vals: np.ndarray,
    ok: np.ndarray,
    xs: np.ndarray,
    *,
    worst: float,
    log: bool,
    color: Any,
    label: str,
) -> None:
    """Median line and inter-quartile band of ``(runs, x)`` values, a dead entry (``ok`` false)
    counting as ``worst``; quartiles that are not finite (or not positive on a log axis) are
    not drawn."""
    vals = np.where(ok, vals, worst)
    with analysis.quiet_nan_warnings():
        q = np.nanquantile(vals, [0.25, 0.5, 0.75], axis=0)
    q[~np.isfinite(q)] = np.nan
    if log:
        q[q <= 0] = np.nan
    marker = {"marker": "o", "ms": 3} if len(xs) == 1 else {}
    ax.plot(xs, q[1], color=color, lw=1.6, label=label, **marker)
    ax.fill_between(xs, q[0], q[2], color=color, alpha=0.15, lw=0)


def _mark_divergences(ax: Axes, at: np.ndarray, color: Any) -> None:
    """An × at the top of the panel at each run's divergence step (``at`` < 0: never)."""
    at = at[at >= 0]
    if at.size:
        ax.plot(
            at, np.full(at.shape, 0.97), ls="none", marker="x", ms=6, mew=1.5,
            color=color, transform=ax.get_xaxis_transform(), clip_on=False,
        )  # fmt: skip


def _band_legend(fig: Figure, axes: list[Axes], ds: xr.Dataset, marks: bool) -> None:
    """Right of the panels: the hue lines, the × of a divergence, the band."""
    handles, labels = axes[0].get_legend_handles_labels()
    if marks and int(ds["diverged"].sum()):
        handles.append(Line2D([], [], ls="none", marker="x", color="0.3", mew=1.5))
        labels.append("divergence of one run")
    handles.append(Patch(color="0.5", alpha=0.3))
    labels.append("inter-quartile range")
    # one panel: keep the legend clear of the (wider) title
    fig.legend(handles, labels, loc=f"outside right {style.legend_row(axes)}", fontsize=8)


def _band_panels(
    ds: xr.Dataset,
    da: xr.DataArray,
    live: xr.DataArray,
    xdim: str,
    hue: str | None,
    *,
    title: str,
    ylabel: str,
    log: bool | None,
    worst: float,
    marks: bool,
) -> Figure:
    """Median line and inter-quartile band over pooled runs, one panel per chain, hue lines."""
    pool = [d for d in analysis.grid_axes(ds) if d != hue]
    hues, colors = _hues(ds, hue)
    xs = ds[xdim].values
    alive_vals = da.where(live).values
    positive = alive_vals[np.isfinite(alive_vals)]
    if positive.size == 0:
        raise ValueError(f"{da.name!r} has no finite values while the runs are alive")
    log = bool((positive > 0).all()) if log is None else log
    chains = reading.chains(ds)
    fig, axes = style.panels(len(chains))
    for ax, chain in zip(axes, chains, strict=True):
        n_div = int(ds["diverged"].sel(optimizer=chain).sum())
        n_runs = int(ds["diverged"].sel(optimizer=chain).size)
        for h, color in zip(hues, colors, strict=True):
            pick = {"optimizer": chain} | ({hue: h} if hue else {})
            vals = reading.runs_matrix(da.sel(pick), pool, xdim)
            ok = reading.runs_matrix(live.sel(pick), pool, xdim).astype(bool)
            _draw_band(
                ax, vals, ok, xs, worst=worst, log=log, color=color, label=_hue_label(hue, h)
            )
            if marks:
                _mark_divergences(ax, ds["diverged_at"].sel(pick).values, color)
        if log:
            ax.set_yscale("log")
        ax.set_title(f"{chain}  ({n_div}/{n_runs} diverged)" if marks else chain, fontsize=10)
        ax.grid(alpha=0.3)
    if log:
        style.tidy_log(axes[0])  # shared y: once, after every panel has its data
    style.label_panels(axes, style.label(xdim), ylabel)
    _band_legend(fig, axes, ds, marks)
    style.suptitle(fig, title, reading.pool_note(ds, pool))
    return fig


# ---------------------------------------------------------------------------------------------
# During training and across depth


def trajectories(
    ds: xr.Dataset,
    var: str = "grad_norm",
    *,
    hue: str | None = "auto",
    sel: Mapping[str, Any] | None = None,
    log: bool | None = None,
) -> Figure:
    """A per-step variable during training: median and inter-quartile band over seeds.

    One panel per chain, one line per value of ``hue`` (default: the learning rate, if swept);
    every other grid axis is pooled with the seeds. A diverged run counts as +∞ (−∞ for
    accuracy, or any variable :func:`gradlab.schema.higher_is_better`) from its divergence step
    on, so the median line stops when half the runs have exploded rather than following the
    survivors; an × at the top of the panel marks each run's divergence step.

    Args:
      ds: a result Dataset.
      var: a per-step variable (``loss``, ``grad_norm``, ``update_norm``, ...).
      hue: grid axis to colour lines by; ``"auto"`` picks one, ``None`` pools everything.
      sel: grid values to fix first, e.g. ``{"init_scale": 1.0}``.
      log: log y axis; default when all values are positive.

    Returns:
      The Figure.

    Example:
      >>> trajectories(ds, "grad_norm", sel={"init_scale": 2.0})  # doctest: +SKIP
    """
    ds = reading.select(ds, sel)
    if var not in ds or "step" not in ds[var].dims:
        raise ValueError(f"{var!r} is not a per-step variable of the Dataset")
    if "layer" in ds[var].dims:
        raise ValueError(f"{var!r} is per layer: use layer_profile, or sel={{'layer': l}}")
    hue = reading.default_hue(ds) if hue == "auto" else hue
    reading.check_axis(ds, hue)
    ds = reading.sort_axes(ds, hue)
    worst = -np.inf if schema.higher_is_better(var) else np.inf
    what = f"by {style.label(hue)}" if hue else ""
    return _band_panels(
        ds, ds[var], analysis.alive(ds), "step", hue,
        title=f"{style.label(var)} during training {what}".strip(),
        ylabel=style.label(var), log=log, worst=worst, marks=True,
    )  # fmt: skip


def layer_profile(
    ds: xr.Dataset,
    var: str = "grad_norm_layer",
    step: int | None = None,
    *,
    hue: str | None = "auto",
    sel: Mapping[str, Any] | None = None,
    log: bool | None = None,
) -> Figure:
    """A per-layer variable against depth at one step: median and inter-quartile band.

    Exploding gradients show as a straight line on the log scale rising towards the input side
    (layer 0): the backward signal ``delta_rms_layer`` grows by χ1 per layer
    (see :func:`gradlab.analysis.empirical_chi1`). ``hue`` defaults to ``init_scale`` if swept.

    Args:
      ds: a result Dataset with per-layer variables.
      var: ``grad_norm_layer``, ``delta_rms_layer``, ``act_rms_layer``, ``param_norm_layer`` or
        ``update_ratio_layer``.
      step: logged step to show; default the first (initialisation, where theory applies).
      hue: grid axis to colour lines by; ``"auto"`` prefers ``init_scale``.
      sel: grid values to fix first.
      log: log y axis; default when all values are positive.

    Returns:
      The Figure.

    Example:
      >>> layer_profile(ds, "delta_rms_layer", sel={"learning_rate": 0.01})  # doctest: +SKIP

    References:
      Schoenholz et al., *Deep Information Propagation*, ICLR 2017.
    """
    ds = reading.select(ds, sel)
    if var not in ds or "layer" not in ds[var].dims:
        raise ValueError(f"{var!r} is not a per-layer variable of the Dataset")
    step = int(ds["step"].values[0]) if step is None else step
    if hue == "auto":
        swept = "init_scale" in analysis.grid_axes(ds) and ds.sizes["init_scale"] > 1
        hue = "init_scale" if swept else reading.default_hue(ds)
    reading.check_axis(ds, hue)
    ds = reading.sort_axes(ds, hue)
    at = ds.sel(step=step)
    live = analysis.alive(ds).sel(step=step).broadcast_like(at[var])
    fig = _band_panels(
        ds, at[var], live, "layer", hue,
        title=f"{style.label(var)} across depth at step {step}",
        ylabel=style.label(var), log=log, worst=np.inf, marks=False,
    )  # fmt: skip
    for ax in fig.axes:
        if ds.sizes["layer"] <= 12:
            ax.set_xticks(ds["layer"].values)
        else:  # one tick per layer would collide
            ax.xaxis.set_major_locator(MaxNLocator(10, integer=True))
    return fig


# ---------------------------------------------------------------------------------------------
# Sharpness against its stability bound


def _sharpness_lines(
    ax: Axes,
    sharp: xr.DataArray,
    bound: xr.DataArray | None,
    pick: dict[str, Any],
    pool: list[str],
    color: Any,
    label: str,
) -> None:
    """The median measured sharpness (solid, dots) and its median bound (dashed) of one hue."""
    steps = pick["step"]
    with analysis.quiet_nan_warnings():
        s = sharp.sel(pick).median(pool)
        ax.plot(steps, s, "o-", ms=3, color=color, label=label)
        if bound is not None:
            ax.plot(steps, bound.sel(pick).median(pool), "--", color=color, lw=1.2)


def _bounded_chains(ds: xr.Dataset, var: str) -> set[str]:
    """The chains whose ``sharpness_bound`` bounds ``var``, by the Dataset's ``stability_rule``
    coordinate: λ_max(H) (``sharpness``) for ``sgd`` and ``momentum`` chains, λ_max(P⁻¹H)
    (``precond_sharpness``) for ``adam`` chains; every chain where the rules are not recorded."""
    chains = reading.chains(ds)
    if "stability_rule" not in ds.coords:
        return set(chains)
    rules = ("adam",) if var == "precond_sharpness" else ("sgd", "momentum")
    return {c for c, r in zip(chains, ds["stability_rule"].values, strict=True) if str(r) in rules}


def _spans_decade(axes: list[Axes]) -> bool:
    """Whether the positive values drawn on ``axes`` span more than a decade."""
    shown = np.concatenate([line.get_ydata() for ax in axes for line in ax.get_lines()])
    shown = shown[np.isfinite(shown) & (shown > 0)]
    return bool(shown.size) and float(shown.max() / shown.min()) > 10


def _bound_legend(fig: Figure, axes: list[Axes], var: str, has_bound: bool) -> None:
    """Right of the panels: the hue lines, the measured style, the bound style."""
    handles, labels = axes[0].get_legend_handles_labels()
    handles += [Line2D([], [], color="0.3", ls="-", marker="o", ms=3)]
    labels += ["measured (median)"]
    if has_bound:
        handles.append(Line2D([], [], color="0.3", ls="--"))
        labels.append(
            r"bound, e.g. $38/\eta$" if var == "precond_sharpness" else r"bound, e.g. $2/\eta$"
        )
    fig.legend(handles, labels, loc=f"outside right {style.legend_row(axes)}", fontsize=8)


def sharpness_vs_bound(
    ds: xr.Dataset,
    *,
    hue: str | None = "auto",
    sel: Mapping[str, Any] | None = None,
    var: str = "sharpness",
    log: bool | None = None,
) -> Figure:
    """Measured sharpness λ_max during training against its stability bound (dashed).

    For gradient descent the bound is 2/η (heavy ball: (2 + 2β)/η); sharpness that rises to the
    bound and hovers there is the edge of stability, sharpness well above it precedes divergence.
    For Adam, pass ``var="precond_sharpness"``: λ_max(P⁻¹H) against 38/η (β1 = 0.9). A chain's
    bound is drawn only against the curvature it bounds (its ``stability_rule`` coordinate:
    ``sharpness`` for sgd and momentum, ``precond_sharpness`` for adam). Medians over the alive
    runs at the steps where sharpness was computed.

    Args:
      ds: a result Dataset with ``sharpness`` (and ideally ``sharpness_bound``).
      hue: grid axis to colour by (default the learning rate, if swept).
      sel: grid values to fix first.
      var: ``"sharpness"`` or ``"precond_sharpness"``.
      log: log y axis; default when the values (and bounds) span more than a decade, so that an
        edge-of-stability plateau is read on a linear scale.

    Returns:
      The Figure.

    Raises:
      ValueError: the Dataset has no sharpness.

    Example:
      >>> sharpness_vs_bound(ds, sel={"init_scale": 1.0})  # doctest: +SKIP

    References:
      Cohen et al., *Gradient Descent on Neural Networks Typically Occurs at the Edge of
      Stability*, ICLR 2021.
    """
    ds = reading.select(ds, sel)
    if var not in ds:
        raise ValueError(f"no {var!r} in the Dataset; add {var!r} to the sweep's metrics")
    hue = reading.default_hue(ds) if hue == "auto" else hue
    reading.check_axis(ds, hue)
    ds = reading.sort_axes(ds, hue)
    live = analysis.alive(ds)
    sharp = ds[var].where(live)
    bound = ds["sharpness_bound"].where(live) if "sharpness_bound" in ds else None
    computed = sharp.notnull().any([d for d in sharp.dims if d != "step"])
    steps = ds["step"].values[computed.values]
    pool = [d for d in analysis.grid_axes(ds) if d != hue]
    hues, colors = _hues(ds, hue)
    chains = reading.chains(ds)
    bounded = _bounded_chains(ds, var) if bound is not None else set()
    fig, axes = style.panels(len(chains))
    for ax, chain in zip(axes, chains, strict=True):
        its_bound = bound if chain in bounded else None
        for h, color in zip(hues, colors, strict=True):
            pick = {"optimizer": chain, "step": steps} | ({hue: h} if hue else {})
            _sharpness_lines(ax, sharp, its_bound, pick, pool, color, _hue_label(hue, h))
        ax.set_title(chain, fontsize=10)
        ax.grid(alpha=0.3)
    log = _spans_decade(axes) if log is None else log
    if log:
        for ax in axes:
            ax.set_yscale("log")
        style.tidy_log(axes[0])
    style.label_panels(axes, style.label("step"), style.label(var))
    _bound_legend(fig, axes, var, bool(bounded))
    what = "Preconditioned sharpness" if var == "precond_sharpness" else "Sharpness"
    style.suptitle(fig, f"{what} against its stability bound", reading.pool_note(ds, pool))
    return fig


# ---------------------------------------------------------------------------------------------
# Divergence: how often, and how soon


def divergence_curve(
    ds: xr.Dataset,
    x: str = analysis.LR,
    *,
    sel: Mapping[str, Any] | None = None,
    confidence: float = 0.95,
) -> Figure:
    """Divergence rate against one grid axis, one line per chain, with Wilson intervals.

    Where exactly is the boundary, with seed-level uncertainty: each point is the fraction of
    runs at that value that diverged, pooling seeds and every axis not fixed by ``sel``; the
    band is the Wilson score interval (:func:`gradlab.analysis.wilson_interval`).

    Args:
      ds: a result Dataset.
      x: grid axis along x (default ``learning_rate``).
      sel: grid values to fix first.
      confidence: coverage of the band.

    Returns:
      The Figure.

    Example:
      >>> divergence_curve(ds, sel={"init_scale": 1.0})  # doctest: +SKIP
    """
    ds = reading.select(ds, sel)
    reading.check_axis(ds, x)
    ds = reading.sort_axes(ds, x)
    pool = [d for d in analysis.grid_axes(ds) if d != x]
    rate = analysis.divergence_rate(ds, over=pool, confidence=confidence)
    geo = style.axis_geometry(ds, x)
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for i, chain in enumerate(reading.chains(ds)):
        r = rate.sel(optimizer=chain)
        color = style.OKABE_ITO[i % len(style.OKABE_ITO)]
        ax.fill_between(geo.positions, r["lower"], r["upper"], color=color, alpha=0.15, lw=0)
        ax.plot(geo.positions, r["rate"], "o-", color=color, ms=4, label=chain)
    if geo.categorical:
        ax.set_xticks(geo.positions, [style.format_value(v) for v in ds[x].values])
    else:
        style.set_grid_ticks(ax, "x", geo.positions, geo.log)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(style.label(x))
    ax.set_ylabel(style.label("divergence_rate"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title=f"chain ({confidence:.0%} Wilson band)", title_fontsize=8)
    style.suptitle(fig, f"Divergence rate against {style.label(x)}", reading.pool_note(ds, pool))
    return fig


def survival_curves(ds: xr.Dataset, *, sel: Mapping[str, Any] | None = None) -> Figure:
    """Fraction of runs not yet diverged at each step, one line per chain.

    The survival function of the divergence step (:func:`gradlab.analysis.survival`): how many
    runs explode, and how fast.

    Args:
      ds: a result Dataset.
      sel: grid values to fix first.

    Returns:
      The Figure.

    Example:
      >>> survival_curves(ds, sel={"learning_rate": 1.0})  # doctest: +SKIP
    """
    ds = reading.select(ds, sel)
    surv = analysis.survival(ds)
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for i, chain in enumerate(reading.chains(ds)):
        ax.step(
            ds["step"].values, surv.sel(optimizer=chain), where="post", lw=1.8,
            color=style.OKABE_ITO[i % len(style.OKABE_ITO)], label=chain,
        )  # fmt: skip
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(style.label("step"))
    ax.set_ylabel("fraction of runs alive (not diverged)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="chain", title_fontsize=8)
    note = reading.pool_note(ds, list(analysis.grid_axes(ds)), per="chain")
    style.suptitle(fig, "Runs surviving training", note)
    return fig
