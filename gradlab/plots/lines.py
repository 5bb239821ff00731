"""What happens during training and across depth: median lines over pooled runs.

:func:`trajectories` (a per-step variable), :func:`layer_profile` (a per-layer variable against
depth) and :func:`sharpness_vs_bound` (sharpness against its stability bound) draw the median
and inter-quartile band over pooled runs, one panel per chain, one line per value of a hue
axis. A diverged run counts as +∞ (−∞ where higher is better) from its divergence step, so a
median line ends when half the runs have exploded, and × marks each divergence.
How often and how soon runs diverge is :mod:`~gradlab.plots.divergence`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from gradlab import analysis, schema
from gradlab.analysis.selection import is_parameter_norm
from gradlab.plots import reading, style

__all__ = [
    "layer_profile",
    "sharpness_vs_bound",
    "trajectories",
]


# ---------------------------------------------------------------------------------------------
# Median and inter-quartile band over pooled runs


def _hues(ds: xr.Dataset, hue: str | None) -> tuple[list[Any], list[Any]]:
    """The values of the hue axis (``[None]`` without one) and a colour for each."""
    hues = list(ds[hue].values) if hue else [None]
    colors = style.hue_colors(np.asarray(hues)) if hue else [style.OKABE_ITO[0]]
    return hues, colors


def _hue_label(ds: xr.Dataset, hue: str | None, value: Any) -> str:
    return f"{reading.axis_symbol(ds, hue)} = {style.format_value(value)}" if hue else "median"


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


def _mark_divergences(ax: Axes, at: np.ndarray, color: Any, row: int) -> int:
    """An × at each step at which runs diverged (``at`` < 0: never), near the top of the panel
    in row ``row`` (0 at the top; each hue with divergences takes the next row), with the
    number of runs beside it when several diverged at the same step: runs that all explode at
    step 1 are one × marked "4", not four × drawn on top of each other. Returns the number of
    rows used (0 or 1)."""
    steps, counts = np.unique(at[at >= 0], return_counts=True)
    if not steps.size:
        return 0
    y = 0.965 - 0.045 * row
    ax.plot(
        steps, np.full(steps.shape, y), ls="none", marker="x", ms=6, mew=1.5,
        color=color, transform=ax.get_xaxis_transform(), clip_on=False,
    )  # fmt: skip
    for step, n in zip(steps, counts, strict=True):
        if n > 1:
            ax.annotate(
                str(n), (step, y), xycoords=ax.get_xaxis_transform(), xytext=(4, 0),
                textcoords="offset points", va="center", fontsize=7, color=color,
            )  # fmt: skip
    return 1


def _band_legend(
    fig: Figure, axes: list[Axes], ds: xr.Dataset, hue: str | None, marks: bool
) -> None:
    """Right of the panels, under the hue axis' label: the hue lines, the × of a divergence,
    the band."""
    handles, labels = axes[0].get_legend_handles_labels()
    if marks and int(ds["diverged"].sum()):
        handles.append(Line2D([], [], ls="none", marker="x", color="0.3", mew=1.5))
        labels.append("step a run diverged\n(number: runs at that step)")
    handles.append(Patch(color="0.5", alpha=0.3))
    labels.append("inter-quartile range")
    # one panel: keep the legend clear of the (wider) title
    title = reading.axis_label(ds, hue) if hue else None
    loc = f"outside right {style.legend_row(axes)}"
    fig.legend(handles, labels, loc=loc, fontsize=8, title=title, title_fontsize=8)


class _Band(NamedTuple):
    """What :func:`_band_panels` draws: ``da`` (``live`` says where a run is alive) along
    ``xdim``, one line per value of ``hue``, panels by chain and by ``row`` / ``col``."""

    da: xr.DataArray
    live: xr.DataArray
    xdim: str
    hue: str | None
    row: str | None
    col: str | None


def _band_panels(
    ds: xr.Dataset,
    band: _Band,
    *,
    title: str,
    ylabel: str,
    log: bool | None,
    worst: float,
    marks: bool,
    note: str = "",
) -> Figure:
    """Median line and inter-quartile band over pooled runs, one panel per chain (and per
    value of the row / col axes), hue lines; ``note`` leads the subtitle."""
    da, live, xdim, hue = band.da, band.live, band.xdim, band.hue
    pool = [d for d in analysis.grid_axes(ds) if d not in (hue, band.row, band.col)]
    hues, colors = _hues(ds, hue)
    xs = ds[xdim].values
    alive_vals = da.where(live).values
    positive = alive_vals[np.isfinite(alive_vals)]
    if positive.size == 0:
        raise ValueError(f"{da.name!r} has no finite values while the runs are alive")
    log = bool((positive > 0).all()) if log is None else log
    panels, ncols = reading.facets(ds, band.row, band.col)
    fig, axes = style.panels(len(panels), ncols=ncols)
    for ax, panel in zip(axes, panels, strict=True):
        marked = 0  # rows of × used so far in this panel
        for h, color in zip(hues, colors, strict=True):
            pick = panel.pick | ({hue: h} if hue else {})
            vals = reading.runs_matrix(da.sel(pick), pool, xdim)
            ok = reading.runs_matrix(live.sel(pick), pool, xdim).astype(bool)
            label = _hue_label(ds, hue, h)
            _draw_band(ax, vals, ok, xs, worst=worst, log=log, color=color, label=label)
            if marks:
                marked += _mark_divergences(ax, ds["diverged_at"].sel(pick).values, color, marked)
        if log:
            ax.set_yscale("log")
        died = ds["diverged"].sel(panel.pick)
        counts = f"  ({int(died.sum())}/{died.size} diverged)" if marks else ""
        ax.set_title(panel.title + counts, fontsize=10)
        ax.grid(alpha=0.3)
    if log:
        style.tidy_log(axes[0])  # shared y: once, after every panel has its data
    style.label_panels(axes, reading.axis_label(ds, xdim), ylabel, ncols=ncols)
    _band_legend(fig, axes, ds, hue, marks)
    pooled = reading.pool_note(ds, pool)
    style.suptitle(fig, title, f"{note}; {pooled}" if note else pooled)
    return fig


# ---------------------------------------------------------------------------------------------
# During training and across depth


def _hue_and_facets(
    ds: xr.Dataset, hue: str | None, row: str | None, col: str | None, prefer: str | None = None
) -> tuple[str | None, xr.Dataset]:
    """The hue axis (``"auto"``: ``prefer`` if swept, else :func:`reading.default_hue`), checked
    apart from the facet axes, and ``ds`` with the three sorted."""
    if hue == "auto":
        faceted = (row, col)
        swept = prefer in analysis.grid_axes(ds) and prefer not in faceted
        hue = prefer if swept and ds.sizes[prefer] > 1 else reading.default_hue(ds, faceted)
    reading.check_axis(ds, hue)
    if hue is not None and hue in (row, col):
        raise ValueError(f"{hue!r} is both the hue and a facet axis")
    return hue, reading.sort_axes(ds, hue, row, col)


def trajectories(
    ds: xr.Dataset,
    var: str = "grad_norm",
    *,
    hue: str | None = "auto",
    sel: Mapping[str, Any] | None = None,
    row: str | None = None,
    col: str | None = None,
    log: bool | None = None,
) -> Figure:
    """A per-step variable during training: median and inter-quartile band over seeds.

    One panel per chain (and per value of ``row`` / ``col``), one line per value of ``hue``
    (default: the learning rate, if swept); every other grid axis is pooled with the seeds, and
    the subtitle names the pooled axes and the fixed values. A diverged run counts as +∞ (−∞ for
    accuracy, or any variable :func:`gradlab.schema.higher_is_better`) from its divergence step
    on, so the median line stops when half the runs have exploded rather than following the
    survivors; an × at the top of the panel marks each step at which runs diverged (with their
    number, where several diverged at the same step).

    Args:
      ds: a result Dataset.
      var: a per-step variable (``loss``, ``grad_norm``, ``update_norm``, ...).
      hue: grid axis to colour lines by; ``"auto"`` picks one, ``None`` pools everything.
      sel: grid values to fix first, e.g. ``{"init_scale": 1.0}``.
      row: grid axis whose values get a row of panels each, e.g. ``"activation"``.
      col: grid axis whose values get a column of panels each (the chains then go down).
      log: log y axis; default when all values are positive.

    Returns:
      The Figure.

    Example:
      >>> trajectories(ds, "grad_norm", sel={"init_scale": 2.0})  # doctest: +SKIP
      >>> trajectories(ds, "loss", col="activation")  # ReLU beside tanh  # doctest: +SKIP
    """
    ds = reading.select(ds, sel)
    if var not in ds or "step" not in ds[var].dims:
        raise ValueError(f"{var!r} is not a per-step variable of the Dataset")
    if "layer" in ds[var].dims:
        raise ValueError(f"{var!r} is per layer: use layer_profile, or sel={{'layer': l}}")
    hue, ds = _hue_and_facets(ds, hue, row, col)
    worst = -np.inf if schema.higher_is_better(var) else np.inf
    what = f"by {reading.axis_label(ds, hue)}" if hue else ""
    return _band_panels(
        ds, _Band(ds[var], analysis.alive(ds), "step", hue, row, col),
        title=f"{style.label(var)} during training {what}".strip(),
        ylabel=style.label(var), log=log, worst=worst, marks=True,
    )  # fmt: skip


def _per_layer(ds: xr.Dataset, var: str, per_parameter: bool | None) -> tuple[xr.DataArray, str]:
    """The per-layer values :func:`layer_profile` draws and their label: a norm over a layer's
    parameters per parameter (:func:`gradlab.analysis.per_parameter_rms`) where the Dataset has
    ``layer_size`` and ``per_parameter`` is not false, else as recorded."""
    if not is_parameter_norm(var):
        if per_parameter:
            raise ValueError(f"{var!r} is not a norm over parameters: per_parameter is for those")
        return ds[var], style.label(var)
    sized = "layer_size" in ds.coords
    if per_parameter and not sized:
        raise ValueError(
            "per_parameter=True needs the layer_size coordinate (parameters per layer), which "
            "this Dataset lacks (written by an older gradlab)"
        )
    if sized and per_parameter is not False:
        rms = analysis.per_parameter_rms(ds, var)
        return rms, style.label(rms.name)
    why = "per_parameter=False" if sized else "no layer_size recorded"
    return ds[var], f"{style.label(var)}\n(raw norm, grows with layer size: {why})"


def _chains_agree(ds: xr.Dataset, da: xr.DataArray) -> bool:
    """Whether every chain has the same values of ``da`` (to float32 rounding, NaN as NaN, some
    value finite): at initialisation nothing has been trained, so every chain starts from the
    same network."""
    if ds.sizes["optimizer"] < 2:
        return False
    vals = da.transpose("optimizer", ...).values.astype(float)
    same = all(np.allclose(v, vals[0], rtol=1e-6, atol=0, equal_nan=True) for v in vals[1:])
    return same and bool(np.isfinite(vals[0]).any())


def layer_profile(
    ds: xr.Dataset,
    var: str = "grad_norm_layer",
    step: int | None = None,
    *,
    hue: str | None = "auto",
    sel: Mapping[str, Any] | None = None,
    row: str | None = None,
    col: str | None = None,
    per_parameter: bool | None = None,
    log: bool | None = None,
) -> Figure:
    """A per-layer variable against depth at one step: median and inter-quartile band.

    Exploding gradients show as a straight line on the log scale rising towards the input side
    (layer 0): the backward signal ``delta_rms_layer`` grows by χ1 per layer
    (see :func:`gradlab.analysis.empirical_chi1`). ``hue`` defaults to ``init_scale`` if swept.

    Norms over a layer's parameters (``grad_norm_layer``, ``param_norm_layer``) grow with the
    layer's size: the 784-input layer of an MNIST MLP looks several times larger than a 10-unit
    one whatever each weight sees. They are drawn per parameter by default,
    ‖x_l‖/√n_l (:func:`gradlab.analysis.per_parameter_rms`, ``n_l`` the ``layer_size``
    coordinate); a Dataset without ``layer_size`` (older run directories) draws the raw norm and
    says so on the axis.

    Chains that agree at ``step`` (every chain at initialisation) are drawn once, in one panel
    titled so, instead of once per chain.

    Args:
      ds: a result Dataset with per-layer variables.
      var: ``grad_norm_layer``, ``delta_rms_layer``, ``act_rms_layer``, ``param_norm_layer`` or
        ``update_ratio_layer``.
      step: logged step to show; default the first (initialisation, where theory applies).
      hue: grid axis to colour lines by; ``"auto"`` prefers ``init_scale``.
      sel: grid values to fix first.
      row: grid axis whose values get a row of panels each.
      col: grid axis whose values get a column of panels each, e.g. ``"activation"``.
      per_parameter: draw a norm over parameters per parameter (default: when the Dataset has
        ``layer_size``); ``False`` draws the raw norm.
      log: log y axis; default when all values are positive.

    Returns:
      The Figure.

    Raises:
      ValueError: ``var`` is not per layer, ``step`` was not logged, or ``per_parameter=True``
        without ``layer_size`` (or for a variable that is not a norm over parameters).

    Example:
      >>> layer_profile(ds, "delta_rms_layer", sel={"learning_rate": 0.01})  # doctest: +SKIP
      >>> layer_profile(ds, "grad_norm_layer", hue="init", col="activation")  # doctest: +SKIP

    References:
      Schoenholz et al., *Deep Information Propagation*, ICLR 2017.
    """
    ds = reading.select(ds, sel)
    if var not in ds or "layer" not in ds[var].dims:
        raise ValueError(f"{var!r} is not a per-layer variable of the Dataset")
    step = int(ds["step"].values[0]) if step is None else step
    reading.check_step(ds, step)
    hue, ds = _hue_and_facets(ds, hue, row, col, prefer="init_scale")
    values, ylabel = _per_layer(ds, var, per_parameter)
    values = values.sel(step=step)
    note = ""
    if _chains_agree(ds, values):  # one panel for all, not the same panel once per chain
        note = f"{ds.sizes['optimizer']} chains, equal at step {step}: one panel"
        ds = ds.isel(optimizer=[0]).assign_coords(optimizer=["all chains"])
        values = values.isel(optimizer=[0]).assign_coords(optimizer=["all chains"])
    live = analysis.alive(ds).sel(step=step).broadcast_like(values)
    fig = _band_panels(
        ds, _Band(values, live, "layer", hue, row, col),
        title=f"{ylabel.splitlines()[0]} across depth at step {step}",
        ylabel=ylabel, log=log, worst=np.inf, marks=False, note=note,
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
            _sharpness_lines(ax, sharp, its_bound, pick, pool, color, _hue_label(ds, hue, h))
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
