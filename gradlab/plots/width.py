"""Width: the coordinate check and learning-rate transfer, as researchers draw them.

:func:`coord_check` is the familiar coordinate-check figure (one panel per step, one line per
layer, coordinate size against width on log-log axes, the fitted slope in the legend);
:func:`lr_transfer` is the layout of Tensor Programs V's Figure 1 (loss against learning rate,
one line per width, parametrizations or chains side by side, the optimum of each width marked).
The numbers are those of :func:`gradlab.analysis.coord_check` and
:func:`gradlab.analysis.optimal_lr`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from gradlab import analysis
from gradlab.plots import reading, style

__all__ = ["coord_check", "lr_transfer"]


def _single_point(ds: xr.Dataset, keep: Sequence[str], what: str) -> None:
    """Refuse a Dataset that still varies along a grid axis the figure cannot show."""
    extra = [d for d in analysis.grid_axes(ds) if d not in keep and ds.sizes[d] > 1]
    if extra:
        raise ValueError(
            f"{what} draws one configuration; fix {extra} with sel= (e.g. "
            f"sel={{{extra[0]!r}: {ds[extra[0]].values[0].item()!r}}})"
        )


def _set_lr_ticks(ax: Any, lrs: np.ndarray, most: int = 6) -> None:
    """Log-scale ticks at the learning rates; a grid of powers of two (Tensor Programs V's)
    is labelled 2^k, at most ``most`` labels, since decimals like 0.000244 collide."""
    style.set_grid_ticks(ax, "x", lrs, True)
    exponents = np.log2(np.asarray(lrs, dtype=float))
    if np.all(exponents == np.round(exponents)):
        every = max(1, math.ceil(len(lrs) / most))
        labels = [f"$2^{{{int(k)}}}$" if i % every == 0 else "" for i, k in enumerate(exponents)]
        ax.xaxis.set_ticks(np.asarray(lrs, dtype=float), labels)


def coord_check(
    ds: xr.Dataset,
    step: int | Sequence[int] | None = None,
    var: str = "act_rms_layer",
    *,
    sel: Mapping[str, Any] | None = None,
) -> Figure:
    """The coordinate check: each layer's coordinate size against width, one panel per step.

    Lines are the median over seeds of ``var`` (by default the RMS of the pre-activation h^l)
    at each width, one per layer; the legend gives each layer's log-log slope with its
    interval over seeds (:func:`gradlab.analysis.coord_check`). Flat lines (slope ≈ 0) are
    what μP promises for every layer; a rising output layer is the standard parametrization
    trained at a width-independent learning rate.

    Args:
      ds: a result Dataset with a ``width`` grid axis; one chain and one value of every other
        grid axis but ``seed`` (fix them with ``sel``).
      step: the logged step(s) to draw, one panel each (default: the first, a middle and the
        last logged step).
      var: a per-step, per-layer variable.
      sel: grid values to fix first.

    Returns:
      The Figure.

    Example:
      >>> coord_check(ds, step=[0, 10], sel={"optimizer": "adam"})  # doctest: +SKIP
    """
    ds = reading.select(ds, sel)
    reading.check_axis(ds, analysis.WIDTH)
    _single_point(ds, [analysis.WIDTH, analysis.SEED], "coord_check")
    if len(reading.chains(ds)) > 1:
        raise ValueError("coord_check draws one chain; pick it with sel={'optimizer': ...}")
    steps = ds["step"].values
    if step is None:
        step = sorted({int(steps[0]), int(steps[len(steps) // 2]), int(steps[-1])})
    steps = [int(s) for s in np.atleast_1d(step)]
    cc = analysis.coord_check(ds, step=steps, var=var).squeeze(drop=True)
    widths = ds[analysis.WIDTH].values
    fig, axes = style.panels(len(steps), size=(3.6, 3.2))
    colors = style.hue_colors(ds["layer"].values)
    for ax, s in zip(axes, steps, strict=True):
        at = cc.sel(step=s)
        for layer, color in zip(ds["layer"].values, colors, strict=True):
            point = at.sel(layer=layer)
            if not np.isfinite(point["size"]).any():
                continue
            slope, low, high = (float(point[k]) for k in ("slope", "slope_low", "slope_high"))
            ci = f" [{low:+.2f}, {high:+.2f}]" if np.isfinite(low) else ""
            ax.plot(
                widths, point["size"], "o-", color=color, ms=4,
                label=f"layer {layer}: slope {slope:+.2f}{ci}",
            )  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        style.set_grid_ticks(ax, "x", widths, True)
        # Widths are integers: 1024, not the three significant digits of 1.02e+03.
        ax.xaxis.set_ticks(np.asarray(widths, dtype=float), [str(int(w)) for w in widths])
        ax.set_title(f"step {s}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    style.label_panels(axes, style.label(analysis.WIDTH), style.label(var))
    note = reading.pool_note(ds, [analysis.SEED])
    style.suptitle(fig, f"Coordinate check, {reading.chains(ds)[0]}", note)
    return fig


def lr_transfer(
    ds: xr.Dataset,
    metric: str = "final_loss",
    *,
    col: str = "optimizer",
    sel: Mapping[str, Any] | None = None,
) -> Figure:
    """Loss against learning rate, one line per width: does the optimum move as nets widen?

    Each line is the median over seeds of ``metric`` at each learning rate for one width
    (a point whose median run diverged is left out); a dot marks each width's optimum
    :math:`\\eta^*(n)` (:func:`gradlab.analysis.optimal_lr`, diverged runs counted as the
    worst). One panel per value of ``col``: the chains, or a ``parametrization`` axis joined
    with :func:`gradlab.analysis.concat_sweeps` to put SP and μP side by side (the layout of
    Tensor Programs V, Figure 1).

    Args:
      ds: a result Dataset with ``width``, ``learning_rate`` and ``seed`` grid axes.
      metric: a per-run variable (``final_loss``, ``test_loss``, ``test_accuracy``).
      col: the axis whose values get one panel each (``optimizer`` or a grid axis).
      sel: grid values to fix first.

    Returns:
      The Figure.

    Example:
      >>> lr_transfer(gl.analysis.concat_sweeps({"sp": sp, "mup": mup}, "parametrization"),
      ...             col="parametrization", sel={"optimizer": "adam"})  # doctest: +SKIP
    """
    ds = reading.select(ds, sel)
    for axis in (analysis.WIDTH, analysis.LR):
        reading.check_axis(ds, axis)
    if col != "optimizer":
        reading.check_axis(ds, col)
    keep = [analysis.WIDTH, analysis.LR, analysis.SEED, col]
    _single_point(ds, keep, "lr_transfer")
    if col != "optimizer" and len(reading.chains(ds)) > 1:
        raise ValueError("lr_transfer with col= draws one chain; pick it with sel=")
    ds = reading.sort_axes(ds, analysis.LR, analysis.WIDTH)
    with analysis.quiet_nan_warnings():
        median = ds[metric].where(~ds["diverged"].astype(bool)).median(analysis.SEED)
        diverged = ds["diverged"].astype(float).median(analysis.SEED) > 0.5
    best = analysis.optimal_lr(ds, metric, n_boot=200)["optimal_lr"]
    values = ds[col].values
    fig, axes = style.panels(len(values), size=(4.0, 3.2))
    colors = style.hue_colors(ds[analysis.WIDTH].values)
    lrs = ds[analysis.LR].values
    for ax, value in zip(axes, values, strict=True):
        for width, color in zip(ds[analysis.WIDTH].values, colors, strict=True):
            at = {col: value, analysis.WIDTH: width}
            y = median.sel(at).squeeze(drop=True).where(~diverged.sel(at).squeeze(drop=True))
            ax.plot(lrs, y, "-", color=color, lw=1.5, label=f"width {width}")
            eta = float(best.sel(at).squeeze(drop=True))
            if np.isfinite(eta):
                ax.plot([eta], [float(y.sel({analysis.LR: eta}))], "o", color=color, ms=6)
        _set_lr_ticks(ax, lrs)
        ax.set_title(f"{style.label(col)} = {style.format_value(value)}", fontsize=10)
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7, title="dot: η* of the width", title_fontsize=7)
    style.label_panels(axes, reading.axis_label(ds, analysis.LR), style.label(metric))
    note = reading.pool_note(ds, [analysis.SEED])
    style.suptitle(fig, f"Learning-rate transfer across width ({metric})", note)
    return fig
