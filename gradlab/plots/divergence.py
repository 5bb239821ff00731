"""How often runs diverge, and how soon: divergence rate against a grid axis, survival curves.

:func:`divergence_curve` draws the fraction of runs that diverged at each value of one grid axis
with Wilson intervals, :func:`survival_curves` the fraction still alive at each step; both put
the chains on one panel. The numbers are those of :func:`gradlab.analysis.divergence_rate` and
:func:`gradlab.analysis.survival`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import xarray as xr
from matplotlib.figure import Figure

from gradlab import analysis
from gradlab.plots import reading, style

__all__ = ["divergence_curve", "survival_curves"]


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
    ax.set_xlabel(reading.axis_label(ds, x))
    ax.set_ylabel(style.label("divergence_rate"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title=f"chain ({confidence:.0%} Wilson band)", title_fontsize=8)
    title = f"Divergence rate against {reading.axis_label(ds, x)}"
    style.suptitle(fig, title, reading.pool_note(ds, pool))
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
