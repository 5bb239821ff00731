"""Between stable and diverged: the catapult phase diagram and learning-rate sensitivity bars.

The numbers are those of :func:`gradlab.analysis.catapult_phases` and
:func:`gradlab.analysis.lr_sensitivity`; these functions only draw them:

- :func:`catapult_diagram` — Kalra & Barkeshli (2023)'s phase diagram: c = η·λ₀ on x, depth or
  width (any grid axis) on y, each cell coloured by the phase most of its runs are in, with the
  measured boundaries c_loss and c_max (mean over seeds, Student-t interval) drawn per row;
- :func:`sensitivity_bars` — Wortsman et al. (2023)'s learning-rate sensitivity per
  intervention, one bar per row of :func:`sensitivity_rows`, with its interval over seeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from gradlab import analysis
from gradlab.plots import reading, style

__all__ = ["PHASE_COLORS", "catapult_diagram", "sensitivity_bars", "sensitivity_rows"]

# One colour per label of analysis.PHASES (Okabe-Ito: blue, green, vermillion, grey).
PHASE_COLORS = {
    "monotone": "#0072B2",
    "catapult": "#009E73",
    "divergent": "#D55E00",
    "unresolved": "#999999",
}


def _modal_phase(phase: xr.DataArray, pool: list[str]) -> xr.DataArray:
    """Per cell, the index in ``analysis.PHASES`` of the most common label among the pooled
    runs that count (ties: the earlier phase); -1 where no run counts."""
    counts = xr.concat([(phase == p).sum(pool) for p in analysis.PHASES], dim="phase")
    mode = counts.argmax("phase")
    return mode.where(counts.sum("phase") > 0, -1)


def catapult_diagram(
    ds: xr.Dataset,
    y: str | None = None,
    lr: str = analysis.LR,
    sel: Mapping[str, Any] | None = None,
    **phase_options: Any,
) -> Figure:
    r"""The catapult phase diagram: the phase of each (c, ``y``) cell and the boundaries.

    Per chain one panel. x is the learning-rate axis in units of the initial sharpness,
    c = η·λ₀ (the sweep must have ``lr_units = "sharpness"``, so that every run of a cell has
    the same c); y is the grid axis ``y`` (depth, width; ``None``: one row). A cell's colour is
    the phase (:data:`gradlab.analysis.PHASES`) most of its runs are in, pooling the seeds and
    every other grid axis; its text is the percentage of runs in that phase. Per row, the
    measured boundaries of :func:`gradlab.analysis.catapult_phases` (the mean over the pooled
    points, with the Student-t interval as an error bar): c_loss (the smallest c at which the
    loss rose) as a black diamond, c_max (the largest c at which the run converged) as a black
    square; the published c_loss = 2 is the dotted vertical line.

    Args:
      ds: a result Dataset swept with ``lr_units = "sharpness"``.
      y: the grid axis on y (e.g. ``"depth"``, ``"width"``), or ``None``.
      lr: the learning-rate axis (holding c).
      sel: grid values to fix before drawing, e.g. ``{"z_loss": 0.0}``.
      **phase_options: passed to :func:`gradlab.analysis.catapult_phases` (``rise``,
        ``confidence``).

    Returns:
      The Figure.

    Raises:
      ValueError: the sweep's learning rates are not in units of the sharpness; ``y`` or ``lr``
        is not a grid axis.

    Example:
      >>> catapult_diagram(ds, y="depth").savefig("phases.png")  # doctest: +SKIP

    References:
      Lewkowycz et al., "The large learning rate phase of deep learning: the catapult
      mechanism", arXiv:2003.02218, 2020.
      Kalra & Barkeshli, "Phase diagram of early training dynamics in deep neural networks",
      NeurIPS 2023 (arXiv:2302.12250), Fig. 1.
    """
    ds = reading.select(ds, sel)
    if analysis.lr_units(ds) != "sharpness":
        raise ValueError(
            "catapult_diagram draws c = η·λ₀ on x and needs a sweep with "
            "lr_units = 'sharpness' (each cell then holds one c)"
        )
    for name in (lr, y):
        if name is not None:
            reading.check_axis(ds, name)
    ds = reading.sort_axes(ds, lr, y)
    pool = [d for d in analysis.grid_axes(ds) if d not in (lr, y)]
    phases = analysis.catapult_phases(ds, lr=lr, over=pool, **phase_options)
    mode = _modal_phase(phases["phase"], pool)
    share = xr.concat([(phases["phase"] == p) for p in analysis.PHASES], dim="phase")
    counted = (phases["phase"] != "").sum(pool)
    share = share.sum(pool).max("phase") / counted.where(counted > 0)
    gx, gy = style.axis_geometry(ds, lr), style.axis_geometry(ds, y)
    chains = reading.chains(ds)
    fig, axes = style.panels(len(chains), size=(4.4, 0.9 + 0.45 * len(gy.positions)))
    cmap = ListedColormap(["white", *[PHASE_COLORS[p] for p in analysis.PHASES]])
    norm = BoundaryNorm(np.arange(-1.5, len(analysis.PHASES)), cmap.N)
    for ax, chain in zip(axes, chains, strict=True):
        panel = (mode, share, phases)
        _phase_panel(ax, ds, [p.sel(optimizer=chain) for p in panel], gx, gy, lr, y, cmap, norm)
        ax.set_title(chain, fontsize=10)
    style.label_panels(
        axes, r"$c = \eta\,\lambda_0$", "" if y is None else reading.axis_label(ds, y)
    )
    _phase_legend(fig, axes)
    note = reading.pool_note(ds, pool, per="cell")
    style.suptitle(fig, "catapult phases in units of the initial sharpness", note)
    return fig


def _phase_panel(ax, ds, panel, gx, gy, lr, y, cmap, norm) -> None:
    """One chain's diagram: the modal phase per cell with its share, the boundaries per row."""
    mode, share, phases = panel
    order = [lr] if y is None else [y, lr]
    z = mode.transpose(*order).values.reshape(len(gy.positions), -1)
    ax.pcolormesh(gx.edges, gy.edges, z, cmap=cmap, norm=norm)
    frac = share.transpose(*order).values.reshape(z.shape)
    for (i, j), f in np.ndenumerate(frac):
        if np.isfinite(f):
            ax.text(gx.positions[j], gy.positions[i], f"{100 * f:.0f}", ha="center",
                    va="center", fontsize=6, color="white")  # fmt: skip
    for name, marker in (("c_loss", "D"), ("c_max", "s")):
        mean = phases[name].values.reshape(-1)
        lo = phases[f"{name}_lower"].values.reshape(-1)
        hi = phases[f"{name}_upper"].values.reshape(-1)
        err = np.where(np.isfinite(lo + hi), np.stack([mean - lo, hi - mean]), 0.0)
        ax.errorbar(mean, gy.positions, xerr=err, fmt=marker, color="black", mfc="white",
                    ms=6, capsize=3, label=name, zorder=4)  # fmt: skip
    ax.axvline(2.0, color="black", ls=":", lw=1, label="c = 2 (published c_loss)")
    style.set_grid_ticks(ax, "x", gx.positions, gx.log)
    if y is None:
        ax.set_yticks([])
    elif gy.categorical:
        ax.set_yticks(gy.positions, [str(v) for v in ds[y].values])
    else:
        style.set_grid_ticks(ax, "y", gy.positions, gy.log)


def _phase_legend(fig: Figure, axes: list[Any]) -> None:
    """The phases' colours and the boundary markers, beside the panels."""
    handles = [Patch(color=PHASE_COLORS[p], label=p) for p in analysis.PHASES]
    handles += [
        Line2D([], [], marker="D", color="black", mfc="white", ls="", label=r"$c_{loss}$"),
        Line2D([], [], marker="s", color="black", mfc="white", ls="", label=r"$c_{max}$"),
        Line2D([], [], color="black", ls=":", label="c = 2 (published)"),
    ]
    fig.legend(handles=handles, loc=f"{style.legend_row(axes)} left", bbox_to_anchor=(1.0, 0.9),
               fontsize=8)  # fmt: skip


def _plain(v: Any) -> str:
    """A grid value as plain text (a table's row label, not a LaTeX axis label)."""
    return f"{v:g}" if isinstance(v, (int, float, np.number)) else str(v)


def sensitivity_rows(
    sweeps: xr.Dataset | Mapping[str, xr.Dataset],
    metric: str = "final_loss",
    lr: str = analysis.LR,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Learning-rate sensitivity per intervention, one row per sweep, chain and grid point.

    Each sweep's :func:`gradlab.analysis.lr_sensitivity` (seeds pooled), flattened: one row per
    chain and value of the other grid axes (a ``z_loss`` or ``weight_decay`` axis gives one row
    per value), labelled ``"<sweep label>: <chain>, axis = value"``.

    Args:
      sweeps: a result Dataset, or label -> result Dataset (e.g. one sweep per intervention:
        warmup is a schedule and μP a parametrization, so they are separate sweeps).
      metric: the per-run loss ℓ.
      lr: the learning-rate axis.
      confidence: coverage of the intervals.

    Returns:
      A DataFrame indexed by the row label with ``lr_sensitivity``, ``lower``, ``upper`` and
      ``samples`` (seeds).

    Example:
      >>> sensitivity_rows({"baseline": ds, "warmup": ds_warmup})  # doctest: +SKIP
    """
    if isinstance(sweeps, xr.Dataset):
        sweeps = {"": sweeps}
    rows = []
    for label, ds in sweeps.items():
        s = analysis.lr_sensitivity(ds, metric=metric, lr=lr, confidence=confidence)
        s = s.drop_vars("per_sample")
        dims = [d for d in s["lr_sensitivity"].dims]
        frame = s[["lr_sensitivity", "lower", "upper", "samples"]].to_dataframe()
        frame = frame.reset_index()
        for _, r in frame.iterrows():
            point = [f"{d} = {_plain(r[d])}" for d in dims if d != "optimizer"]
            name = ", ".join([str(r["optimizer"]), *point])
            rows.append({"row": f"{label}: {name}" if label else name, **{
                k: r[k] for k in ("lr_sensitivity", "lower", "upper", "samples")
            }})  # fmt: skip
    out = pd.DataFrame(rows).set_index("row")
    out.attrs.update(metric=metric, confidence=confidence)
    return out


def sensitivity_bars(
    sweeps: xr.Dataset | Mapping[str, xr.Dataset] | pd.DataFrame,
    metric: str = "final_loss",
    lr: str = analysis.LR,
    confidence: float = 0.95,
) -> Figure:
    r"""Learning-rate sensitivity per intervention: one bar per row with its seed interval.

    The rows are those of :func:`sensitivity_rows` (or that DataFrame itself): the bar is the
    mean over seeds of S = E_η[min(ℓ(η), ℓ₀) − min_η ℓ(η)]
    (:func:`gradlab.analysis.lr_sensitivity`), the error bar its Student-t interval, where
    finite. Lower is better: a recipe that loses less away from its best learning rate.

    Args:
      sweeps: a result Dataset, label -> result Dataset, or a :func:`sensitivity_rows` table.
      metric: the per-run loss ℓ.
      lr: the learning-rate axis.
      confidence: coverage of the intervals.

    Returns:
      The Figure.

    Example:
      >>> sensitivity_bars({"baseline": ds, "warmup": ds_warmup}).savefig("s.png")  # doctest: +SKIP

    References:
      Wortsman et al., "Small-scale proxies for large-scale Transformer training
      instabilities", ICLR 2024 (arXiv:2309.14322), Fig. 1.
    """
    table = (
        sweeps
        if isinstance(sweeps, pd.DataFrame)
        else sensitivity_rows(sweeps, metric=metric, lr=lr, confidence=confidence)
    )
    vals = table["lr_sensitivity"].to_numpy(float)
    lo, hi = table["lower"].to_numpy(float), table["upper"].to_numpy(float)
    ypos = np.arange(len(table))
    fig = Figure(figsize=(7.0, 1.2 + 0.32 * len(table)), layout="constrained")
    ax = fig.subplots()
    colors = [style.OKABE_ITO[i % len(style.OKABE_ITO)] for i in range(len(table))]
    ok = np.isfinite(vals)
    ax.barh(ypos[ok], vals[ok], color=np.asarray(colors)[ok], height=0.65)
    bars = ok & np.isfinite(lo) & np.isfinite(hi)
    if bars.any():
        err = np.stack([vals[bars] - lo[bars], hi[bars] - vals[bars]])
        ax.errorbar(vals[bars], ypos[bars], xerr=err, fmt="none", ecolor="0.2", capsize=3, lw=1)
    for i in ypos:
        text = f"{vals[i]:.3g}" if ok[i] else "n/a"
        ax.annotate(text, (vals[i] if ok[i] else 0.0, i), xytext=(6, 6), va="bottom",
                    textcoords="offset points", fontsize=8)  # fmt: skip
    ax.set_yticks(ypos, list(table.index))
    ax.invert_yaxis()
    ax.set_xlabel(
        f"learning-rate sensitivity of {table.attrs.get('metric', metric)} (lower is better)"
    )
    ax.grid(axis="x", alpha=0.3)
    ax.margins(x=0.15)
    conf = table.attrs.get("confidence", confidence)
    style.suptitle(
        fig, "learning-rate sensitivity", f"mean over seeds, {conf:.0%} Student-t interval"
    )
    return fig
