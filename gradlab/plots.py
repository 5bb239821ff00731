"""Figures from a sweep's result Dataset: one call, one matplotlib ``Figure``.

Each function reads the Dataset of ``gl.run`` / ``gl.load`` (through :mod:`gradlab.analysis`)
and returns a :class:`matplotlib.figure.Figure` built without pyplot, so nothing is shown or kept
in global state: display it in a notebook, or ``fig.savefig("x.png")``.

Shared conventions:

- one panel per optimizer chain (titled with the chain), up to four panels per row;
- grid axes that a figure does not show are *pooled* (seeds always; any other axis with more than
  one value too, and the title says so); pick one slice with ``sel={"clip_norm": 1.0}``;
- numeric axes that are log-spaced (learning rates, init scales 0.5, 1, 2, 4) get log scales;
- colour-blind-safe colours: viridis for maps, plasma for ordered hues, Okabe-Ito for chains;
- runs are compared while alive: a diverged run counts as +∞ from its divergence step (−∞ for
  accuracies), so a median line ends when half the runs have exploded, and × marks each divergence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.patheffects import withStroke
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator

from gradlab import analysis

__all__ = [
    "chi1_vs_theory",
    "comparison_bars",
    "divergence_curve",
    "layer_profile",
    "mean_field_diagram",
    "optimizer_table",
    "performance_profiles",
    "phase_diagram",
    "sharpness_vs_bound",
    "survival_curves",
    "trajectories",
]

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
MAP = "viridis"  # heatmaps
LINE_MAP = "plasma"  # lines coloured by an ordered axis (both colour-blind safe)

AXIS_LABELS = {
    "learning_rate": r"learning rate $\eta$",
    "init_scale": r"init scale $\sigma_w$",
    "bias_std": r"bias std $\sigma_b$",
    "clip_norm": r"clip threshold $c$",
    "clip_value": "clip value",
    "agc_clip": "AGC clip ratio",
    "momentum": r"momentum $\beta$",
    "weight_decay": "weight decay",
    "seed": "seed",
    "step": "training step",
    "layer": "layer (0 = input side)",
    "tau": r"performance ratio $\tau$",
}
AXIS_SYMBOLS = {
    "learning_rate": r"$\eta$",
    "init_scale": r"$\sigma_w$",
    "bias_std": r"$\sigma_b$",
    "clip_norm": "$c$",
    "momentum": r"$\beta$",
}
VAR_LABELS = {
    "loss": "training loss",
    "accuracy": "training accuracy",
    "grad_norm": r"gradient norm $\|g\|_2$",
    "grad_max_abs": r"largest gradient entry $\|g\|_\infty$",
    "update_norm": r"update norm $\|\Delta\theta\|_2$",
    "sharpness": r"sharpness $\lambda_{\max}$",
    "precond_sharpness": r"preconditioned sharpness $\lambda_{\max}(P^{-1}H)$",
    "grad_norm_layer": r"layer gradient norm $\|\partial L/\partial W_l\|$",
    "param_norm_layer": r"layer weight norm $\|W_l\|$",
    "update_ratio_layer": r"update ratio $\|\Delta W_l\| / \|W_l\|$",
    "act_rms_layer": r"pre-activation RMS $h_l$",
    "delta_rms_layer": r"backward signal RMS $\partial L/\partial h_l$",
    "divergence_rate": "fraction of runs diverged",
    "final_loss": "final training loss (non-diverged)",
    "test_loss": "test loss (non-diverged)",
    "test_accuracy": "test accuracy (non-diverged)",
    "time_to_explode": "divergence step",
    "diverged_at": "divergence step",
}
_HIGHER_IS_BETTER = ("accuracy", "test_accuracy")


# ---------------------------------------------------------------------------------------------
# Small helpers


def _label(name: Hashable) -> str:
    key = str(name)
    return AXIS_LABELS.get(key) or VAR_LABELS.get(key) or key.replace("_", " ")


def _symbol(name: str) -> str:
    return AXIS_SYMBOLS.get(name, name.replace("_", " "))


def _fmt(v: Any) -> str:
    """Short tick / legend text for a grid value."""
    if isinstance(v, str | np.str_):
        return str(v)
    v = float(v)
    if v != 0 and abs(math.log10(abs(v))) >= 3 and math.log10(abs(v)).is_integer():
        sign = "-" if v < 0 else ""
        return f"${sign}10^{{{round(math.log10(abs(v)))}}}$"
    return f"{v:.3g}"


def _is_numeric(values: np.ndarray) -> bool:
    return np.asarray(values).dtype.kind in "iuf"


def _is_log_spaced(values: np.ndarray) -> bool:
    """Positive values that are geometric, or span a decade without being arithmetic."""
    if not _is_numeric(values):
        return False
    v = np.sort(np.asarray(values, dtype=float))
    if len(v) < 2 or (v <= 0).any():
        return False
    if len(v) == 2:
        return bool(v[1] / v[0] >= 10)
    lin, geo = np.diff(v), np.diff(np.log(v))
    if np.allclose(lin, lin[0], rtol=0.02):
        return False
    return bool(np.allclose(geo, geo[0], rtol=0.05) or v[-1] / v[0] >= 10)


def _edges(values: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges for sorted grid values: midpoints (geometric on log axes)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 1:
        half = 0.5 * abs(v[0]) or 0.5
        return np.array([v[0] - half, v[0] + half])
    t = np.log(v) if log else v
    mid = (t[1:] + t[:-1]) / 2
    e = np.concatenate([[t[0] - (mid[0] - t[0])], mid, [t[-1] + (t[-1] - mid[-1])]])
    return np.exp(e) if log else e


def _set_grid_ticks(ax: Axes, which: str, values: np.ndarray, log: bool) -> None:
    """Ticks at the grid values (at most about 8 labelled), log scale where log-spaced."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    if log:
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    every = max(1, math.ceil(len(values) / 8))
    labels = [_fmt(v) if i % every == 0 else "" for i, v in enumerate(values)]
    axis.set_ticks(np.asarray(values, dtype=float), labels)
    axis.set_minor_locator(NullLocator())


def _panels(
    n: int,
    size: tuple[float, float] = (3.6, 3.0),
    ncols: int = 4,
    sharex: bool = True,
    sharey: bool = True,
) -> tuple[Figure, list[Axes]]:
    """A constrained-layout figure with ``n`` panels, up to ``ncols`` per row."""
    ncols = max(1, min(n, ncols))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(size[0] * ncols + 1.4, size[1] * nrows + 0.9), layout="constrained")
    grid = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex, sharey=sharey)
    axes = list(grid.flat)
    for ax in axes[n:]:
        fig.delaxes(ax)
    for ax in axes[:n]:
        ax.tick_params(labelbottom=True, labelleft=True)
    return fig, axes[:n]


def _label_panels(axes: list[Axes], xlabel: str, ylabel: str, ncols: int = 4) -> None:
    for i, ax in enumerate(axes):
        if i + ncols >= len(axes):
            ax.set_xlabel(xlabel)
        if i % ncols == 0:
            ax.set_ylabel(ylabel)


def _select(ds: xr.Dataset, sel: Mapping[str, Any] | None) -> xr.Dataset:
    if not sel:
        return ds
    unknown = [k for k in sel if k not in ds.dims]
    if unknown:
        raise ValueError(f"sel names {unknown}, not dims of the Dataset: {list(ds.dims)}")
    return ds.sel(dict(sel))


def _check_axis(ds: xr.Dataset, name: str | None) -> None:
    if name is not None and name not in analysis.grid_axes(ds):
        raise ValueError(f"{name!r} is not a grid axis; grid axes: {list(analysis.grid_axes(ds))}")


def _sorted(ds: xr.Dataset, *names: str | None) -> xr.Dataset:
    """Sort numeric axes ascending, so lines and cells run left to right."""
    for n in names:
        if n is not None and _is_numeric(ds[n].values):
            ds = ds.sortby(n)
    return ds


def _pool_note(ds: xr.Dataset, pool: Sequence[str], per: str = "point") -> str:
    """E.g. '12 runs per point (seed × clip_norm)'."""
    pool = [d for d in pool if ds.sizes[d] > 1]
    if not pool:
        return f"1 run per {per}"
    n = math.prod(ds.sizes[d] for d in pool)
    return f"{n} runs per {per} ({' × '.join(pool)})"


def _default_hue(ds: xr.Dataset) -> str | None:
    """The axis to colour lines by: learning rate if swept, else the first swept non-seed axis."""
    cands = [d for d in analysis.grid_axes(ds) if d != analysis.SEED and ds.sizes[d] > 1]
    return analysis.LR if analysis.LR in cands else (cands[0] if cands else None)


def _hue_colors(values: np.ndarray) -> list[Any]:
    """Ordered values: plasma (blue to orange); categories: Okabe-Ito."""
    if _is_numeric(values) and len(values) > 1:
        cmap = colormaps[LINE_MAP]
        return [cmap(t) for t in np.linspace(0.0, 0.85, len(values))]
    return [OKABE_ITO[i % len(OKABE_ITO)] for i in range(len(values))]


def _chains(ds: xr.Dataset) -> list[str]:
    return [str(c) for c in ds["optimizer"].values]


def _legend_row(axes: list[Axes]) -> str:
    """Where a legend outside the right edge goes: beside the top row, or, for a single (narrow)
    panel, centred, clear of the title above it."""
    return "center" if len(axes) == 1 else "upper"


def _suptitle(fig: Figure, title: str, subtitle: str) -> None:
    title = title[:1].upper() + title[1:]
    fig.suptitle(f"{title}\n{subtitle}" if subtitle else title, fontsize=11)


def _tidy_log(ax: Axes, which: str = "y") -> None:
    """Log-axis ticks: decades over wide ranges, 1-2-5 steps or plain steps over narrow ones.

    Horizontal axes switch to decades sooner (at one decade, not two): their labels collide first.
    """
    axis = ax.yaxis if which == "y" else ax.xaxis
    lo, hi = ax.get_ylim() if which == "y" else ax.get_xlim()
    plain = FuncFormatter(lambda v, _: f"{v:.3g}")
    if 0 < lo and hi / lo < 3:
        axis.set_major_locator(MaxNLocator(4))
        axis.set_major_formatter(plain)
    elif 0 < lo and hi / lo <= (100 if which == "y" else 10):
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(plain)
    axis.set_minor_formatter(NullFormatter())


# ---------------------------------------------------------------------------------------------
# Phase diagram


def _cell_values(
    ds: xr.Dataset, metric: str | xr.DataArray, keep: Sequence[str]
) -> tuple[xr.DataArray, str]:
    """The value of ``metric`` per chain and cell, pooling every other grid axis."""
    if isinstance(metric, xr.DataArray):
        if "optimizer" not in metric.dims:  # the same for every chain
            metric = metric.expand_dims(optimizer=ds["optimizer"].values)
        pool = [d for d in metric.dims if d not in ("optimizer", *keep)]
        with analysis._quiet():
            return metric.median(pool), str(metric.name or "value")
    pool = [d for d in analysis.grid_axes(ds) if d not in keep]
    with analysis._quiet():
        if metric == "divergence_rate":
            return ds["diverged"].astype(float).mean(pool), metric
        if metric in ("time_to_explode", "diverged_at"):
            return analysis.time_to_explode(ds).median(pool), metric
        if metric in ds and "step" not in ds[metric].dims:
            return ds[metric].where(~ds["diverged"].astype(bool)).median(pool), metric
    raise ValueError(
        f"metric {metric!r}: use 'divergence_rate', 'time_to_explode', a per-run variable "
        "(final_loss, test_loss, test_accuracy, ...) or a DataArray"
    )


def _axis_geometry(ds: xr.Dataset, name: str | None) -> tuple[np.ndarray, np.ndarray, bool, bool]:
    """(positions, edges, log, categorical) of a heatmap axis; a missing axis is one cell."""
    if name is None:
        return np.array([0.0]), np.array([-0.5, 0.5]), False, True
    values = ds[name].values
    if not _is_numeric(values):
        pos = np.arange(len(values), dtype=float)
        return pos, np.arange(len(values) + 1) - 0.5, False, True
    log = _is_log_spaced(values)
    return values.astype(float), _edges(values, log), log, False


def _overlay_xy(line: Any, x: str, y: str | None, chain: str) -> tuple[np.ndarray, np.ndarray]:
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


def _heatmap(
    ax: Axes,
    xe: Any,
    ye: Any,
    xpos: Any,
    ypos: Any,
    z: np.ndarray,
    cmap: Any,
    norm: Any,
    annotate: bool,
) -> Any:
    """Draw ``z`` on cell edges ``xe`` x ``ye`` over a hatched background (missing cells show
    the hatching), optionally writing each value at (xpos, ypos) in a legible colour."""
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
    ds = _select(ds, sel)
    _check_axis(ds, x)
    _check_axis(ds, y)
    if x == y:
        raise ValueError("x and y must be different axes")
    ds = _sorted(ds, x, y)
    keep = [d for d in (x, y) if d is not None]
    values, name = _cell_values(ds, metric, keep)
    values = values.reindex({d: ds[d].values for d in keep})  # the (sorted) grid order
    values = values.transpose("optimizer", *([y] if y else []), x)
    pool = [d for d in analysis.grid_axes(ds) if d not in keep]
    is_rate = name == "divergence_rate"

    xpos, xe, xlog, xcat = _axis_geometry(ds, x)
    ypos, ye, ylog, ycat = _axis_geometry(ds, y)
    finite = values.values[np.isfinite(values.values)]
    if is_rate:
        norm: Normalize = Normalize(0.0, 1.0)
    else:
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        use_log = lo > 0 and hi / lo > 10 if log_color is None else log_color
        norm = LogNorm(lo, hi) if use_log else Normalize(lo, hi if hi > lo else lo + 1)
    cmap = colormaps[MAP]
    chains = _chains(ds)
    n_cells = len(xpos) * len(ypos)
    annotate = n_cells <= 100 if annotate is None else annotate
    width = min(1.2 + 0.45 * len(xpos), 5.0) if annotate else 3.6
    height = 2.0 if y is None else min(1.2 + 0.4 * len(ypos), 4.5)
    fig, axes = _panels(len(chains), size=(max(width, 3.0), height))
    mesh = None
    any_missing = False
    for ax, chain in zip(axes, chains, strict=True):
        z = np.atleast_2d(values.sel(optimizer=chain).values.astype(float))
        any_missing |= bool(np.isnan(z).any())
        mesh = _heatmap(ax, xe, ye, xpos, ypos, z, cmap, norm, annotate)
        for k, (label, line) in enumerate((overlay or {}).items()):
            lx, ly = _overlay_xy(line, x, y or "", chain)
            ax.plot(
                lx, ly, color="white", lw=2, ls=("--", ":", "-.", "-")[k % 4], label=label,
                path_effects=[withStroke(linewidth=3.5, foreground="black")], zorder=4,
            )  # fmt: skip
        ax.set_xlim(xe[0], xe[-1])
        ax.set_ylim(ye[0], ye[-1])
        ax.set_title(chain, fontsize=10)
        if xcat:
            ax.set_xticks(xpos, [_fmt(v) for v in ds[x].values])
        else:
            _set_grid_ticks(ax, "x", xpos, xlog)
        if y is None:
            ax.set_yticks([])
        elif ycat:
            ax.set_yticks(ypos, [_fmt(v) for v in ds[y].values])
        else:
            _set_grid_ticks(ax, "y", ypos, ylog)
    _label_panels(axes, _label(x), _label(y) if y else "")
    cbar = fig.colorbar(mesh, ax=axes, shrink=0.9)
    cbar.set_label(_label(name))
    handles = [
        Line2D([], [], color="white", lw=2, ls=("--", ":", "-.", "-")[k % 4], label=label,
               path_effects=[withStroke(linewidth=3.5, foreground="black")])
        for k, label in enumerate(overlay or {})
    ]  # fmt: skip
    if any_missing:
        handles.append(
            Patch(facecolor="0.9", edgecolor="0.6", hatch="///", label="every run diverged")
        )
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    what = f"{_label(x)} × {_label(y)}" if y else _label(x)
    _suptitle(fig, f"{_label(name)} over {what}", _pool_note(ds, pool))
    return fig


# ---------------------------------------------------------------------------------------------
# Median-and-band line plots


def _runs_matrix(da: xr.DataArray, pool: Sequence[str], xdim: str) -> np.ndarray:
    """(runs, x) array: the pooled axes stacked into rows."""
    da = da.transpose(*pool, xdim)
    return da.values.reshape(-1, da.sizes[xdim]).astype(float)


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
    hues = list(ds[hue].values) if hue else [None]
    colors = _hue_colors(np.asarray(hues)) if hue else [OKABE_ITO[0]]
    xs = ds[xdim].values
    alive_vals = da.where(live).values
    positive = alive_vals[np.isfinite(alive_vals)]
    if positive.size == 0:
        raise ValueError(f"{da.name!r} has no finite values while the runs are alive")
    log = bool((positive > 0).all()) if log is None else log
    chains = _chains(ds)
    fig, axes = _panels(len(chains))
    for ax, chain in zip(axes, chains, strict=True):
        n_div = int(ds["diverged"].sel(optimizer=chain).sum())
        n_runs = int(ds["diverged"].sel(optimizer=chain).size)
        for h, color in zip(hues, colors, strict=True):
            pick = {"optimizer": chain} | ({hue: h} if hue else {})
            vals = _runs_matrix(da.sel(pick), pool, xdim)
            ok = _runs_matrix(live.sel(pick), pool, xdim).astype(bool)
            vals = np.where(ok, vals, worst)
            with analysis._quiet():
                q = np.nanquantile(vals, [0.25, 0.5, 0.75], axis=0)
            q[~np.isfinite(q)] = np.nan
            if log:
                q[q <= 0] = np.nan
            style = {"marker": "o", "ms": 3} if len(xs) == 1 else {}
            label = f"{_symbol(hue)} = {_fmt(h)}" if hue else "median"
            ax.plot(xs, q[1], color=color, lw=1.6, label=label, **style)
            ax.fill_between(xs, q[0], q[2], color=color, alpha=0.15, lw=0)
            at = ds["diverged_at"].sel(pick).values
            at = at[at >= 0]
            if marks and at.size:
                ax.plot(
                    at, np.full(at.shape, 0.97), ls="none", marker="x", ms=6, mew=1.5,
                    color=color, transform=ax.get_xaxis_transform(), clip_on=False,
                )  # fmt: skip
        if log:
            ax.set_yscale("log")
        ax.set_title(f"{chain}  ({n_div}/{n_runs} diverged)" if marks else chain, fontsize=10)
        ax.grid(alpha=0.3)
    if log:
        _tidy_log(axes[0])  # shared y: once, after every panel has its data
    _label_panels(axes, _label(xdim), ylabel)
    handles, labels = axes[0].get_legend_handles_labels()
    if marks and int(ds["diverged"].sum()):
        handles.append(Line2D([], [], ls="none", marker="x", color="0.3", mew=1.5))
        labels.append("divergence of one run")
    handles.append(Patch(color="0.5", alpha=0.3))
    labels.append("inter-quartile range")
    # one panel: keep the legend clear of the (wider) title
    fig.legend(handles, labels, loc=f"outside right {_legend_row(axes)}", fontsize=8)
    _suptitle(fig, title, _pool_note(ds, pool))
    return fig


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
    accuracy) from its divergence step on, so the median line stops when half the runs have
    exploded rather than following the survivors; an × at the top of the panel marks each run's
    divergence step.

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
    ds = _select(ds, sel)
    if var not in ds or "step" not in ds[var].dims:
        raise ValueError(f"{var!r} is not a per-step variable of the Dataset")
    if "layer" in ds[var].dims:
        raise ValueError(f"{var!r} is per layer: use layer_profile, or sel={{'layer': l}}")
    hue = _default_hue(ds) if hue == "auto" else hue
    _check_axis(ds, hue)
    ds = _sorted(ds, hue)
    worst = -np.inf if var in _HIGHER_IS_BETTER else np.inf
    what = f"by {_label(hue)}" if hue else ""
    return _band_panels(
        ds, ds[var], analysis.alive(ds), "step", hue,
        title=f"{_label(var)} during training {what}".strip(),
        ylabel=_label(var), log=log, worst=worst, marks=True,
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
    ds = _select(ds, sel)
    if var not in ds or "layer" not in ds[var].dims:
        raise ValueError(f"{var!r} is not a per-layer variable of the Dataset")
    step = int(ds["step"].values[0]) if step is None else step
    if hue == "auto":
        swept = "init_scale" in analysis.grid_axes(ds) and ds.sizes["init_scale"] > 1
        hue = "init_scale" if swept else _default_hue(ds)
    _check_axis(ds, hue)
    ds = _sorted(ds, hue)
    at = ds.sel(step=step)
    live = analysis.alive(ds).sel(step=step).broadcast_like(at[var])
    fig = _band_panels(
        ds, at[var], live, "layer", hue,
        title=f"{_label(var)} across depth at step {step}",
        ylabel=_label(var), log=log, worst=np.inf, marks=False,
    )  # fmt: skip
    for ax in fig.axes:
        if ds.sizes["layer"] <= 12:
            ax.set_xticks(ds["layer"].values)
        else:  # one tick per layer would collide
            ax.xaxis.set_major_locator(MaxNLocator(10, integer=True))
    return fig


def chi1_vs_theory(
    ds: xr.Dataset,
    x: str = "init_scale",
    theory: Callable[[float], float] | xr.DataArray | None = None,
    step: int = 0,
    *,
    sel: Mapping[str, Any] | None = None,
) -> Figure:
    """Measured χ1 against a grid axis, with the mean-field prediction and the critical line.

    Plots the median and inter-quartile range of :func:`gradlab.analysis.empirical_chi1` over
    every other axis (all chains agree at step 0: nothing has been trained yet), the theory curve
    if given, and χ1 = 1 (the order/chaos boundary: above it gradients explode with depth).

    Args:
      ds: a result Dataset with ``delta_rms_layer`` and at least two hidden layers.
      x: grid axis on the x axis (default ``init_scale``, σ_w).
      theory: mean-field χ1 as a function of the x value, e.g. for ReLU
        ``lambda s: s**2 / 2`` or ``lambda s: gl.theory.chi1("tanh", s**2, 0.05)``; or a
        DataArray over ``x``.
      step: the logged step (default 0, the initialisation).
      sel: grid values to fix first (e.g. one activation).

    Returns:
      The Figure.

    Example:
      >>> chi1_vs_theory(ds, theory=lambda s: s**2 / 2)  # ReLU  # doctest: +SKIP

    References:
      Poole et al., NeurIPS 2016. Schoenholz et al., ICLR 2017.
    """
    ds = _select(ds, sel)
    _check_axis(ds, x)
    ds = _sorted(ds, x)
    chi = analysis.empirical_chi1(ds, step=step)
    pool = [d for d in chi.dims if d != x]
    xs = ds[x].values
    with analysis._quiet():
        q = np.nanquantile(_runs_matrix(chi, pool, x), [0.25, 0.5, 0.75], axis=0)
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.fill_between(xs, q[0], q[2], color=OKABE_ITO[0], alpha=0.25, lw=0, label="measured IQR")
    ax.plot(xs, q[1], "o-", color=OKABE_ITO[0], label=r"measured $\hat\chi_1$ (median)")
    if theory is not None:
        if isinstance(theory, xr.DataArray):
            tx, ty = theory[x].values, theory.values
        else:
            tx = (np.geomspace if _is_log_spaced(xs) else np.linspace)(xs.min(), xs.max(), 200)
            ty = np.array([theory(float(v)) for v in tx])
        ax.plot(tx, ty, "--", color=OKABE_ITO[3], lw=2, label=r"mean-field $\chi_1$")
    ax.axhline(1.0, color="0.3", ls=":", lw=1.5, label=r"critical $\chi_1 = 1$")
    ax.set_yscale("log")
    _tidy_log(ax)
    _set_grid_ticks(ax, "x", xs, _is_log_spaced(xs))
    ax.set_xlabel(_label(x))
    ax.set_ylabel(r"$\chi_1$: growth of $\|\partial L/\partial h\|^2$ per layer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    n = ds.sizes["layer"]
    _suptitle(
        fig, f"Backward signal growth per layer at step {step}",
        f"hidden-layer pairs 1..{n - 2}, {_pool_note(ds, [d for d in pool if d in ds.dims])}",
    )  # fmt: skip
    return fig


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

    The sweep's axes are standard deviations (``init_scale`` = σ_w with ``init="normal"``,
    ``bias_std`` = σ_b); this figure draws them as the variances σ_w², σ_b² of Poole et al.
    (2016) and Schoenholz et al. (2017), one panel per chain, with the theory on top:

    - ``y="bias_std"``: colour the measured χ1 (``metric="chi1"``, the median of
      :func:`gradlab.analysis.fixed_point_chi1` at ``step``, which is
      :func:`gradlab.analysis.empirical_chi1` for ``skip=0``; blue = ordered, gradients vanish;
      red = chaotic, gradients explode), with the measured χ1 = 1 contour (solid) and the
      theoretical order-to-chaos line σ²_w,c(σ_b²) of :func:`gradlab.theory.critical_sigma_w2`
      (dashed);
    - ``y`` another grid axis, e.g. ``"depth"`` (joined with
      :func:`gradlab.analysis.concat_sweeps`): colour any per-run metric as
      :func:`phase_diagram` does (e.g. ``"test_accuracy"``), with ``depth_multiple`` × ξ_c(σ_w²,
      σ_b²) from :func:`gradlab.theory.depth_scales` (dashed): the depth to which Schoenholz et
      al. find networks trainable (6 ξ_c). The sweep must then have a single σ_b.

    Args:
      ds: a result Dataset with an ``init_scale`` grid axis (σ_w, for ``init="normal"``).
      metric: ``"chi1"``, a per-run variable name, ``"divergence_rate"``, or a DataArray.
      y: ``"bias_std"`` or another grid axis (e.g. ``"depth"``).
      activation: the network's activation, for the theory lines.
      sel: grid values to fix first.
      depth_multiple: the multiple of ξ_c drawn when ``y`` is not ``bias_std``.
      step: the logged step for ``metric="chi1"``.
      skip: for ``metric="chi1"``, leave out the ``skip`` layer pairs nearest the input, whose
        lengths have not reached q* yet (:func:`gradlab.analysis.fixed_point_chi1`).
      annotate: write each cell's value; default when there are at most 100 cells.

    Returns:
      The Figure.

    Example:
      >>> mean_field_diagram(ds, activation="tanh")  # doctest: +SKIP
      >>> fig = mean_field_diagram(  # doctest: +SKIP
      ...     by_depth, "test_accuracy", "depth", activation="tanh")

    References:
      Poole et al., *Exponential expressivity in deep neural networks through transient chaos*,
      NeurIPS 2016 (fig. 2). Schoenholz et al., *Deep Information Propagation*, ICLR 2017
      (figs. 1 and 5).
    """
    from gradlab import theory  # numerical integrals via JAX: imported only when drawn

    x = "init_scale"
    ds = _select(ds, sel)
    _check_axis(ds, x)
    _check_axis(ds, y)
    ds = _sorted(ds, x, y)
    keep = [x, y]
    if isinstance(metric, str) and metric == "chi1":
        chi = analysis.fixed_point_chi1(ds, skip=skip, step=step)
        pool = [d for d in chi.dims if d not in ("optimizer", *keep)]
        with analysis._quiet():
            values, name = chi.median(pool), "chi1"
    else:
        values, name = _cell_values(ds, metric, keep)
        pool = [d for d in analysis.grid_axes(ds) if d not in keep]
    values = values.transpose("optimizer", y, x)
    xs = ds[x].values.astype(float) ** 2
    if y == "bias_std":
        ys, ylabel = ds[y].values.astype(float) ** 2, r"bias variance $\sigma_b^2$"
    else:
        ys, ylabel = ds[y].values.astype(float), _label(y)
    xlog, ylog = _is_log_spaced(xs), _is_log_spaced(ys)
    xe, ye = _edges(xs, xlog), _edges(ys, ylog)
    if y == "bias_std":
        ye = np.maximum(ye, 0.0)
    z_all = values.values.astype(float)
    finite = z_all[np.isfinite(z_all)]
    if name == "chi1":
        m = float(np.exp(np.abs(np.log(finite)).max())) if finite.size else 2.0
        norm: Normalize = LogNorm(1 / max(m, 1.01), max(m, 1.01))
        cmap = colormaps["RdBu_r"]
    elif name == "divergence_rate":
        norm, cmap = Normalize(0.0, 1.0), colormaps[MAP]
    else:
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        norm, cmap = Normalize(lo, hi if hi > lo else lo + 1), colormaps[MAP]
    annotate = len(xs) * len(ys) <= 100 if annotate is None else annotate
    chains = _chains(ds)
    fig, axes = _panels(len(chains), size=(min(1.4 + 0.42 * len(xs), 5.6), 3.6))
    theory_style = {"color": OKABE_ITO[2], "lw": 2.5, "ls": "--"}  # green: visible on any cell
    handles: list[Any] = []
    mesh = None
    sb = None
    if y != "bias_std" and "bias_std" in ds.coords:
        sbs = np.unique(np.atleast_1d(ds["bias_std"].values.astype(float)))
        if len(sbs) != 1:
            raise ValueError(f"the depth-scale line needs one bias_std; this sweep has {sbs}")
        sb = float(sbs[0])
    for ax, chain in zip(axes, chains, strict=True):
        z = values.sel(optimizer=chain).values.astype(float)
        mesh = _heatmap(ax, xe, ye, xs, ys, z, cmap, norm, annotate)
        if y == "bias_std":
            sb2 = np.linspace(ye[0], ye[-1], 30)
            crit = np.asarray(theory.critical_sigma_w2(activation, sb2), dtype=float)
            ax.plot(crit, sb2, zorder=4, **theory_style)
            if name == "chi1" and len(xs) > 1 and len(ys) > 1 and np.isfinite(z).all():
                if z.min() < 1 < z.max():
                    ax.contour(xs, ys, z, levels=[1.0], colors="black", linewidths=1.5, zorder=4)
        else:
            sw2 = (np.geomspace if xlog else np.linspace)(xe[0], xe[-1], 80)
            xi_c = np.asarray(theory.depth_scales(activation, sw2, (sb or 0.0) ** 2)[1], float)
            depth = np.where(np.isfinite(xi_c), depth_multiple * xi_c, 1e9)
            ax.plot(sw2, depth, zorder=4, **theory_style)
        ax.set_xlim(xe[0], xe[-1])
        ax.set_ylim(ye[0], ye[-1])
        ax.set_title(chain, fontsize=10)
        _set_grid_ticks(ax, "x", xs, xlog)
        _set_grid_ticks(ax, "y", ys, ylog)
    _label_panels(axes, r"weight variance $\sigma_w^2$", ylabel)
    cbar = fig.colorbar(mesh, ax=axes, shrink=0.9)
    if name == "chi1":
        ticks = [t for t in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0) if norm.vmin <= t <= norm.vmax]
        cbar.set_ticks(ticks, labels=[f"{t:g}" for t in ticks])
        cbar.ax.yaxis.set_minor_formatter(NullFormatter())
    cbar.set_label(
        r"measured $\chi_1$ (backward growth per layer)" if name == "chi1" else _label(name)
    )
    if y == "bias_std":
        handles.append(
            Line2D([], [], **theory_style, label=r"theory: $\chi_1 = 1$ (order | chaos)")
        )  # fmt: skip
        if name == "chi1":
            handles.append(Line2D([], [], color="black", lw=1.5, label=r"measured $\chi_1 = 1$"))
    else:
        sb_note = "" if sb is None else rf", $\sigma_b^2$ = {sb**2:.3g}"
        handles.append(
            Line2D([], [], **theory_style,
                   label=rf"theory: {depth_multiple:g} $\xi_c$ ({activation}{sb_note})")
        )  # fmt: skip
    if name != "chi1" and np.isnan(z_all).any():
        handles.append(
            Patch(facecolor="0.9", edgecolor="0.6", hatch="///", label="every run diverged")
        )
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    what = "measured χ1" if name == "chi1" else _label(name)
    _suptitle(
        fig,
        f"{what} over σ_w² × {ylabel.split(' $')[0] if y == 'bias_std' else _label(y)}",
        f"{activation}; {_pool_note(ds, [d for d in pool if d in ds.dims])}",
    )
    return fig


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
    For Adam, pass ``var="precond_sharpness"``: λ_max(P⁻¹H) against 38/η (β1 = 0.9).
    Medians over the alive runs at the steps where sharpness was computed.

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
    ds = _select(ds, sel)
    if var not in ds:
        raise ValueError(f"no {var!r} in the Dataset; add {var!r} to the sweep's metrics")
    hue = _default_hue(ds) if hue == "auto" else hue
    _check_axis(ds, hue)
    ds = _sorted(ds, hue)
    live = analysis.alive(ds)
    sharp = ds[var].where(live)
    bound = ds["sharpness_bound"].where(live) if "sharpness_bound" in ds else None
    computed = sharp.notnull().any([d for d in sharp.dims if d != "step"])
    steps = ds["step"].values[computed.values]
    pool = [d for d in analysis.grid_axes(ds) if d != hue]
    hues = list(ds[hue].values) if hue else [None]
    colors = _hue_colors(np.asarray(hues)) if hue else [OKABE_ITO[0]]
    chains = _chains(ds)
    fig, axes = _panels(len(chains))
    for ax, chain in zip(axes, chains, strict=True):
        for h, color in zip(hues, colors, strict=True):
            pick = {"optimizer": chain, "step": steps} | ({hue: h} if hue else {})
            label = f"{_symbol(hue)} = {_fmt(h)}" if hue else "median"
            with analysis._quiet():
                s = sharp.sel(pick).median(pool)
                ax.plot(steps, s, "o-", ms=3, color=color, label=label)
                if bound is not None:
                    ax.plot(steps, bound.sel(pick).median(pool), "--", color=color, lw=1.2)
        ax.set_title(chain, fontsize=10)
        ax.grid(alpha=0.3)
    if log is None:
        shown = np.concatenate([line.get_ydata() for ax in axes for line in ax.get_lines()])
        shown = shown[np.isfinite(shown) & (shown > 0)]
        log = bool(shown.size) and float(shown.max() / shown.min()) > 10
    if log:
        for ax in axes:
            ax.set_yscale("log")
        _tidy_log(axes[0])
    _label_panels(axes, _label("step"), _label(var))
    handles, labels = axes[0].get_legend_handles_labels()
    handles += [Line2D([], [], color="0.3", ls="-", marker="o", ms=3)]
    labels += ["measured (median)"]
    if bound is not None:
        handles.append(Line2D([], [], color="0.3", ls="--"))
        labels.append(
            r"bound, e.g. $38/\eta$" if var == "precond_sharpness" else r"bound, e.g. $2/\eta$"
        )
    fig.legend(handles, labels, loc=f"outside right {_legend_row(axes)}", fontsize=8)
    what = "Preconditioned sharpness" if var == "precond_sharpness" else "Sharpness"
    _suptitle(fig, f"{what} against its stability bound", _pool_note(ds, pool))
    return fig


# ---------------------------------------------------------------------------------------------
# Comparisons of chains


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
    ds = _select(ds, sel)
    _check_axis(ds, x)
    ds = _sorted(ds, x)
    pool = [d for d in analysis.grid_axes(ds) if d != x]
    rate = analysis.divergence_rate(ds, over=pool, confidence=confidence)
    xpos, _, log, cat = _axis_geometry(ds, x)
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for i, chain in enumerate(_chains(ds)):
        r = rate.sel(optimizer=chain)
        color = OKABE_ITO[i % len(OKABE_ITO)]
        ax.fill_between(xpos, r["lower"], r["upper"], color=color, alpha=0.15, lw=0)
        ax.plot(xpos, r["rate"], "o-", color=color, ms=4, label=chain)
    if cat:
        ax.set_xticks(xpos, [_fmt(v) for v in ds[x].values])
    else:
        _set_grid_ticks(ax, "x", xpos, log)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(_label(x))
    ax.set_ylabel(_label("divergence_rate"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title=f"chain ({confidence:.0%} Wilson band)", title_fontsize=8)
    _suptitle(fig, f"Divergence rate against {_label(x)}", _pool_note(ds, pool))
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
    ds = _select(ds, sel)
    surv = analysis.survival(ds)
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for i, chain in enumerate(_chains(ds)):
        ax.step(
            ds["step"].values, surv.sel(optimizer=chain), where="post", lw=1.8,
            color=OKABE_ITO[i % len(OKABE_ITO)], label=chain,
        )  # fmt: skip
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(_label("step"))
    ax.set_ylabel("fraction of runs alive (not diverged)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="chain", title_fontsize=8)
    note = _pool_note(ds, list(analysis.grid_axes(ds)), per="chain")
    _suptitle(fig, "Runs surviving training", note)
    return fig


_BARS = (
    ("diverged", "fraction of runs diverged", False),
    ("max_stable_lr", r"max stable learning rate $\eta$", True),
    ("final_loss", "final loss (median)", True),
    ("test_accuracy", "test accuracy (median)", False),
    ("clip_rate", "fraction of steps clipped", False),
    ("max_grad_norm", r"max gradient norm $\|g\|_2$", True),
)


def comparison_bars(ds: xr.Dataset) -> Figure:
    """Bar charts of the optimizer comparison, one panel per measure, one bar per chain.

    The measures are columns of :func:`gradlab.analysis.compare_optimizers` (divergence rate,
    max stable learning rate, final loss, test accuracy, clip rate, max gradient norm); a panel
    is drawn when at least one chain has a value, "n/a" marks a chain without one.

    Args:
      ds: a result Dataset.

    Returns:
      The Figure.

    Example:
      >>> comparison_bars(ds).savefig("chains.png")  # doctest: +SKIP
    """
    df = analysis.compare_optimizers(ds)
    shown = [(c, t, lg) for c, t, lg in _BARS if np.isfinite(df[c].to_numpy(float)).any()]
    chains = list(df.index)
    ypos = np.arange(len(chains))
    ncols = min(3, len(shown))
    nrows = math.ceil(len(shown) / ncols)
    fig = Figure(
        figsize=(3.7 * ncols, 0.5 + nrows * (0.9 + 0.32 * len(chains))), layout="constrained"
    )
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).flat
    colors = [OKABE_ITO[i % len(OKABE_ITO)] for i in range(len(chains))]
    for ax, (col, title, log) in zip(axes, shown, strict=False):
        vals = df[col].to_numpy(float)
        ok = np.isfinite(vals)
        pos = vals[ok & (vals > 0)]
        log = log and pos.size == ok.sum() and pos.size > 0 and pos.max() / pos.min() > 10
        if log:  # bar lengths mean nothing on a log scale: dots
            ax.scatter(vals[ok], ypos[ok], c=np.asarray(colors)[ok], s=60, zorder=3)
            ax.set_xscale("log")
        else:
            ax.barh(ypos[ok], vals[ok], color=np.asarray(colors)[ok], height=0.65)
        for i in np.flatnonzero(~ok):
            ax.text(0.02, ypos[i], "n/a", va="center", transform=ax.get_yaxis_transform())
        for i in np.flatnonzero(ok):
            ax.annotate(
                f"{vals[i]:.3g}", (vals[i], ypos[i]), xytext=(6, 0), textcoords="offset points",
                va="center", fontsize=8,
            )  # fmt: skip
        ax.set_title(title, fontsize=9)
        ax.margins(x=0.25)
        ax.grid(axis="x", alpha=0.3)
        if log:
            _tidy_log(ax, "x")
    for ax in list(axes)[len(shown) :]:
        fig.delaxes(ax)
    fig.axes[0].set_yticks(ypos, chains)
    fig.axes[0].invert_yaxis()
    runs = int(df["runs"].iloc[0])
    _suptitle(fig, "Optimizer chains compared", f"{runs} runs per chain ({_grid_note(ds)})")
    return fig


def _grid_note(ds: xr.Dataset) -> str:
    axes = [f"{ds.sizes[d]} {d}" for d in analysis.grid_axes(ds)]
    return " × ".join(axes) if axes else "no grid"


def optimizer_table(ds: xr.Dataset) -> Figure:
    """The comparison table of :func:`gradlab.analysis.compare_optimizers` as a figure.

    Same numbers and formatting as :func:`gradlab.analysis.format_table`, for slides and papers.

    Args:
      ds: a result Dataset.

    Returns:
      The Figure.

    Example:
      >>> optimizer_table(ds).savefig("table.png", dpi=200)  # doctest: +SKIP
    """
    df = analysis.compare_optimizers(ds)
    headers, rows = analysis._cells(df)
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
    ax.set_title(f"Optimizer chains: {_grid_note(ds)}", fontsize=10)
    return fig


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
    titles = {
        "final_loss": "final training loss",
        "test_loss": "test loss",
        "test_error": "test error",
        "stability": "stability (1 / max stable lr)",
    }
    fig, axes = _panels(len(metrics), size=(4.2, 3.4), ncols=3, sharex=False)
    for ax, metric in zip(axes, metrics, strict=True):
        rho = analysis.performance_profile(ds, metric)
        score = analysis.profile_score(rho)
        for i, chain in enumerate(_chains(ds)):
            ax.step(
                rho["tau"], rho.sel(optimizer=chain), where="post", lw=1.8,
                color=OKABE_ITO[i % len(OKABE_ITO)],
                label=f"{chain} ({float(score.sel(optimizer=chain)):.2f})",
            )  # fmt: skip
        ax.set_xscale("log")
        _tidy_log(ax, "x")
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(f"{titles.get(metric, metric)}: {rho.attrs['problems']} problems", fontsize=9)
        ax.legend(fontsize=7, title="chain (score)", title_fontsize=7, loc="lower right")
        ax.grid(alpha=0.3)
    _label_panels(axes, _label("tau"), r"fraction of problems $\rho(\tau)$", ncols=3)
    _suptitle(fig, "Performance profiles (Dolan-Moré)", "within a factor τ of the best chain")
    return fig
