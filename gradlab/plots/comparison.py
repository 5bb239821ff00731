"""Which optimizer chain is better: bars, the comparison table, performance profiles.

The numbers are those of :func:`gradlab.analysis.compare_optimizers` (one row per chain
configuration: a chain and each value of the optimizer hyperparameters it reads) and
:func:`gradlab.analysis.performance_profile`; these functions only draw them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gradlab import analysis
from gradlab.plots import reading, style

__all__ = ["comparison_bars", "optimizer_table", "performance_profiles"]

# (column of compare_optimizers, panel title, scale): "linear"; "wide": log when positive and
# spanning more than a decade; "grid": log where the learning-rate grid is log-spaced, the
# panel spanning the grid (its values are grid learning rates).
_BARS = (
    ("diverged", "fraction of runs diverged", "linear"),
    ("max_stable_lr", r"max stable learning rate $\eta$ (no run diverged)", "grid"),
    ("max_trained_lr", r"max learning rate $\eta$ at which every run trains", "grid"),
    ("best_final_loss", "final loss at the best learning rate (median)", "wide"),
    ("best_test_accuracy", "test accuracy at the best learning rate (median)", "linear"),
    ("clip_rate", "fraction of steps clipped", "linear"),
    ("max_grad_norm", r"max gradient norm $\|g\|_2$", "wide"),
)


def _bar_scale(vals: np.ndarray, scale: str, grid: np.ndarray | None) -> bool:
    """Whether a panel of :data:`_BARS` is drawn on a log scale."""
    if scale == "grid":
        return grid is not None and style.is_log_spaced(grid)
    ok = vals[np.isfinite(vals)]
    pos = ok[ok > 0]
    return scale == "wide" and pos.size == ok.size > 0 and pos.max() / pos.min() > 10


def _interval(ax: Axes, vals: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
    """Horizontal error bars from ``lo`` to ``hi`` where both are finite (an interval that
    reaches a diverged run, ±inf, or one too few runs to have, NaN, is not drawn)."""
    ok = np.isfinite(vals) & np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        y = np.arange(len(vals))[ok]
        err = np.stack([vals[ok] - lo[ok], hi[ok] - vals[ok]])
        ax.errorbar(vals[ok], y, xerr=err, fmt="none", ecolor="0.2", capsize=3, lw=1, zorder=4)


def _bar_panel(
    ax: Axes, vals: np.ndarray, colors: np.ndarray, title: str, log: bool, grid: np.ndarray | None
) -> None:
    """One measure, one bar per row (dots on a log scale), each labelled; "n/a" where a
    row has no value. ``grid``: the values the measure takes (learning rates), spanned by a
    log axis."""
    ypos = np.arange(len(vals))
    ok = np.isfinite(vals)
    if log:  # bar lengths mean nothing on a log scale: dots
        ax.scatter(vals[ok], ypos[ok], c=colors[ok], s=60, zorder=3)
        ax.set_xscale("log")
    else:
        ax.barh(ypos[ok], vals[ok], color=colors[ok], height=0.65)
    for i in np.flatnonzero(~ok):
        ax.text(0.02, ypos[i], "n/a", va="center", transform=ax.get_yaxis_transform())
    for i in np.flatnonzero(ok):
        ax.annotate(
            f"{vals[i]:.3g}", (vals[i], ypos[i]), xytext=(6, 0), textcoords="offset points",
            va="center", fontsize=8,
        )  # fmt: skip
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    if log and grid is not None:  # the whole grid, so a dot reads against the values tried
        g = np.sort(np.asarray(grid, dtype=float))
        ax.set_xlim(g[0] / 2, g[-1] * 2)
        style.set_grid_ticks(ax, "x", g, log=True)
    elif log:
        ax.margins(x=0.25)
        style.tidy_log(ax, "x")
    else:
        ax.margins(x=0.25)
        if ok.any() and not np.any(vals[ok]):  # all zero: a fraction axis, not ±0.07
            ax.set_xlim(0.0, 1.0)


def _rows_note(ds: xr.Dataset, df: pd.DataFrame) -> str:
    """The subtitle of a comparison figure: the fixed values, the axes each row pools, and how
    many distinct finished runs a row holds (``df["runs"]``: a chain's copies along an axis it
    does not read are one run)."""
    split = {a for values in df.attrs.get("rows", {}).values() for a in values} - {"optimizer"}
    pool = [d for d in analysis.grid_axes(ds) if d not in split and ds.sizes[d] > 1]
    runs = df["runs"].to_numpy(int)
    count = f"{runs.min()}" if runs.min() == runs.max() else f"{runs.min()}–{runs.max()}"
    note = f"{count} runs per row" + (f" ({' × '.join(pool)})" if pool else "")
    fixed = reading.fixed_note(ds)
    return f"{fixed}; {note}" if fixed else note


def comparison_bars(ds: xr.Dataset, lr: str = analysis.LR) -> Figure:
    """Bar charts of the optimizer comparison, one panel per measure, one bar per row.

    The rows and measures are those of :func:`gradlab.analysis.compare_optimizers` (one row per
    chain configuration; divergence rate, max stable and max trained learning rate, final loss
    and test accuracy at the best learning rate with their order-statistic intervals as error
    bars where finite, clip rate, max gradient norm); a panel is drawn when at least one row
    has a value, "n/a" marks a row without one. The learning rates are grid values: where the
    grid is log-spaced they are drawn on a log axis spanning it, with the grid values as
    ticks.

    Args:
      ds: a result Dataset.
      lr: name of the learning-rate axis.

    Returns:
      The Figure.

    Example:
      >>> comparison_bars(ds).savefig("chains.png")  # doctest: +SKIP
    """
    df = analysis.compare_optimizers(ds, lr=lr)
    shown = [(c, t, sc) for c, t, sc in _BARS if np.isfinite(df[c].to_numpy(float)).any()]
    chains = list(df.index)
    ncols = min(3, len(shown))
    nrows = math.ceil(len(shown) / ncols)
    fig = Figure(
        figsize=(3.7 * ncols, 0.5 + nrows * (0.9 + 0.32 * len(chains))), layout="constrained"
    )
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).flat
    colors = np.asarray([style.OKABE_ITO[i % len(style.OKABE_ITO)] for i in range(len(chains))])
    grid = ds[lr].values if lr in analysis.grid_axes(ds) else None
    for ax, (col, title, scale) in zip(axes, shown, strict=False):
        vals = df[col].to_numpy(float)
        log = _bar_scale(vals, scale, grid)
        _bar_panel(ax, vals, colors, title, log, grid if scale == "grid" else None)
        if f"{col}_lower" in df:
            _interval(
                ax, vals, df[f"{col}_lower"].to_numpy(float), df[f"{col}_upper"].to_numpy(float)
            )
    for ax in list(axes)[len(shown) :]:
        fig.delaxes(ax)
    fig.axes[0].set_yticks(np.arange(len(chains)), chains)
    fig.axes[0].invert_yaxis()
    note = _rows_note(ds, df)
    style.suptitle(fig, "Optimizer chains compared", note)
    return fig


def optimizer_table(ds: xr.Dataset) -> Figure:
    """The comparison table of :func:`gradlab.analysis.compare_optimizers` as a figure.

    Same numbers and formatting as :func:`gradlab.analysis.format_table`, for slides and papers:
    the columns ``gradlab run`` prints (:data:`gradlab.analysis.SUMMARY_COLUMNS`).

    Args:
      ds: a result Dataset.

    Returns:
      The Figure.

    Example:
      >>> optimizer_table(ds).savefig("table.png", dpi=200)  # doctest: +SKIP
    """
    df = analysis.compare_optimizers(ds)[list(analysis.SUMMARY_COLUMNS)]
    headers, rows = analysis.table_cells(df)
    widths = np.array([max(len(r[i]) for r in [headers, *rows]) + 2 for i in range(len(headers))])
    fig = Figure(
        figsize=(0.075 * widths.sum() + 0.3, 0.55 + 0.25 * (len(rows) + 1)), layout="constrained"
    )
    ax = fig.add_subplot()
    ax.axis("off")
    table = ax.table(
        cellText=rows, colLabels=headers, cellLoc="right", bbox=(0, 0, 1, 1),
        colWidths=list(widths / widths.sum()),
    )  # fmt: skip
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for (r, c), cell in table.get_celld().items():
        cell.set_edgecolor("0.8")
        if r == 0:
            cell.set_facecolor("#e8eef5")
            cell.set_text_props(weight="bold")
        if c == 0:
            cell.set_text_props(ha="left")
    note = _rows_note(ds, df)
    ax.set_title(f"Optimizer chains: {note}", fontsize=10)
    return fig


_PROFILE_TITLES = {
    "final_loss": "final training loss",
    "test_loss": "test loss",
    "test_error": "test error",
    "stability": "stability (1 / max stable lr)",
}


def _profile_panel(ax: Axes, ds: xr.Dataset, metric: str) -> None:
    """One metric's profile ρ_s(τ), one step line per chain, the score in the legend."""
    rho = analysis.performance_profile(ds, metric)
    score = analysis.profile_score(rho)
    for i, chain in enumerate(reading.chains(ds)):
        ax.step(
            rho["tau"], rho.sel(optimizer=chain), where="post", lw=1.8,
            color=style.OKABE_ITO[i % len(style.OKABE_ITO)],
            label=f"{chain} ({float(score.sel(optimizer=chain)):.2f})",
        )  # fmt: skip
    ax.set_xscale("log")
    style.tidy_log(ax, "x")
    ax.set_ylim(-0.03, 1.03)
    title = _PROFILE_TITLES.get(metric, metric)
    ax.set_title(f"{title}: {rho.attrs['problems']} problems", fontsize=9)
    ax.legend(fontsize=7, title="chain (score)", title_fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)


def performance_profiles(
    ds: xr.Dataset, metrics: Sequence[str] = ("final_loss", "stability")
) -> Figure:
    r"""Dolan-Moré performance profiles of the chains, one panel per metric.

    :math:`\rho_s(\tau)`: the fraction of configurations on which chain s is within a factor τ
    of the best chain (:func:`gradlab.analysis.performance_profile`); higher and further left is
    better. The legend gives each chain's AlgoPerf-style score (normalised area).

    Args:
      ds: a result Dataset.
      metrics: metrics of :func:`gradlab.analysis.performance_profile`, e.g. ``"final_loss"``,
        ``"test_error"``, ``"stability"`` (largest stable learning rate).

    Returns:
      The Figure.

    Example:
      >>> performance_profiles(ds, ["final_loss", "stability"])  # doctest: +SKIP

    References:
      Dolan & Moré, Math. Program. 2002. Dahl et al., *Benchmarking Neural Network Training
      Algorithms*, 2023.
    """
    fig, axes = style.panels(len(metrics), size=(4.2, 3.4), ncols=3, sharex=False)
    for ax, metric in zip(axes, metrics, strict=True):
        _profile_panel(ax, ds, metric)
    style.label_panels(axes, style.label("tau"), r"fraction of problems $\rho(\tau)$", ncols=3)
    fixed = reading.fixed_note(ds)
    note = "within a factor τ of the best chain"
    style.suptitle(fig, "Performance profiles (Dolan-Moré)", f"{fixed}; {note}" if fixed else note)
    return fig
