"""How every figure looks: labels, colours, number formats, grid ticks, log axes, panels, titles.

The one place that says how a name is written on an axis (:data:`AXIS_LABELS`,
:data:`VAR_LABELS`), which colours are used (viridis for maps, plasma for ordered hues,
Okabe-Ito for chains: all colour-blind safe), when a numeric axis is drawn on a log scale
(:func:`is_log_spaced`), and how panels, legends and titles are laid out. The figure modules
(:mod:`~gradlab.plots.heatmaps`, :mod:`~gradlab.plots.lines`, ...) draw with these and nothing
else, so two figures of the same variable read the same.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any, NamedTuple

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator

__all__ = [
    "AXIS_LABELS",
    "AXIS_SYMBOLS",
    "LINE_MAP",
    "MAP",
    "OKABE_ITO",
    "VAR_LABELS",
    "AxisGeometry",
    "axis_geometry",
    "cell_edges",
    "format_value",
    "hue_colors",
    "init_scale_label",
    "init_scale_symbol",
    "is_log_spaced",
    "is_numeric",
    "label",
    "label_panels",
    "legend_row",
    "panels",
    "set_grid_ticks",
    "suptitle",
    "symbol",
    "tidy_log",
]

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
MAP = "viridis"  # heatmaps
LINE_MAP = "plasma"  # lines coloured by an ordered axis (both colour-blind safe)

AXIS_LABELS = {
    "learning_rate": r"learning rate $\eta$",
    "init_scale": "init scale",  # σ_w only for init="normal": see init_scale_label
    "bias_std": r"bias std $\sigma_b$",
    "clip_norm": r"clip threshold $c$",
    "clip_value": "clip value",
    "agc_clip": "AGC clip ratio",
    "momentum": r"momentum $\beta$",
    "weight_decay": "weight decay",
    "seed": "seed",
    "width": "width $n$ (hidden units per layer)",
    "step": "training step",
    "layer": "layer (0 = input side)",
    "tau": r"performance ratio $\tau$",
}
AXIS_SYMBOLS = {
    "learning_rate": r"$\eta$",
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
    "grad_rms_layer": r"gradient RMS per parameter $\|\partial L/\partial W_l\| / \sqrt{n_l}$",
    "param_rms_layer": r"weight RMS per parameter $\|W_l\| / \sqrt{n_l}$",
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


# ---------------------------------------------------------------------------------------------
# Words and numbers


def label(name: Hashable) -> str:
    """The axis or colour-bar label of a grid axis or variable, e.g. ``learning rate $\\eta$``;
    an unknown name is written with spaces for underscores."""
    key = str(name)
    return AXIS_LABELS.get(key) or VAR_LABELS.get(key) or key.replace("_", " ")


def symbol(name: str) -> str:
    """The short symbol of a grid axis for legends, e.g. ``$\\eta$`` for ``learning_rate``
    (``init_scale``: :func:`init_scale_symbol`, which knows the init scheme)."""
    return AXIS_SYMBOLS.get(name, name.replace("_", " "))


def init_scale_label(init: str | None) -> str:
    """The axis label of ``init_scale`` for init scheme ``init``.

    ``init_scale`` multiplies the standard deviation of the init scheme (:mod:`gradlab.inits`):
    with ``init="normal"`` it is the mean-field σ_w (W ~ N(0, σ_w²/fan_in)); with any other
    scheme it is a multiple of that scheme's own σ (for ``he_normal``, σ_w = √2 × init_scale).

    Args:
      init: the scheme's name, or ``None`` when unknown or varying.

    Returns:
      ``init scale $\\sigma_w$`` for ``normal``, else e.g. ``init scale (× σ of he_normal)``.
    """
    if init == "normal":
        return r"init scale $\sigma_w$"
    return f"init scale (× σ of {init or 'the init scheme'})"


def init_scale_symbol(init: str | None) -> str:
    """The legend name of ``init_scale``: ``$\\sigma_w$`` for ``init="normal"``, else
    ``init scale`` (see :func:`init_scale_label`)."""
    return r"$\sigma_w$" if init == "normal" else "init scale"


def format_value(v: Any) -> str:
    """Short tick or legend text for a grid value: strings as they are, integers (widths, batch
    sizes, seeds) in full, exact powers of ten beyond 10^±3 as ``$10^{k}$``, other numbers to
    three significant digits."""
    if isinstance(v, str | np.str_):
        return str(v)
    if isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_):
        return str(int(v))
    v = float(v)
    if v != 0 and abs(math.log10(abs(v))) >= 3 and math.log10(abs(v)).is_integer():
        sign = "-" if v < 0 else ""
        return f"${sign}10^{{{round(math.log10(abs(v)))}}}$"
    return f"{v:.3g}"


def is_numeric(values: np.ndarray) -> bool:
    """Whether grid values are numbers (integers or floats), not strings."""
    return np.asarray(values).dtype.kind in "iuf"


def is_log_spaced(values: np.ndarray) -> bool:
    """Positive values that are geometric, or span a decade without being arithmetic.

    Such an axis (learning rates 1e-3 … 1, init scales 0.5, 1, 2, 4) is drawn on a log scale;
    an arithmetic one (biases 0, 0.1, 0.2) on a linear scale.
    """
    if not is_numeric(values):
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


# ---------------------------------------------------------------------------------------------
# Axes


def cell_edges(values: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges for sorted grid values: midpoints (geometric on log axes), so each heatmap
    cell is centred on its grid value; one value gets a cell of its own width either side."""
    v = np.asarray(values, dtype=float)
    if len(v) == 1:
        half = 0.5 * abs(v[0]) or 0.5
        return np.array([v[0] - half, v[0] + half])
    t = np.log(v) if log else v
    mid = (t[1:] + t[:-1]) / 2
    e = np.concatenate([[t[0] - (mid[0] - t[0])], mid, [t[-1] + (t[-1] - mid[-1])]])
    return np.exp(e) if log else e


class AxisGeometry(NamedTuple):
    """Where a heatmap axis puts its cells.

    Attributes:
      positions: the cell centres (grid values, or 0, 1, … for a categorical axis).
      edges: the cell edges, one more than ``positions``.
      log: drawn on a log scale.
      categorical: string values (or a missing axis), labelled by name.
    """

    positions: np.ndarray
    edges: np.ndarray
    log: bool
    categorical: bool


def axis_geometry(ds: xr.Dataset, name: str | None) -> AxisGeometry:
    """The cells of heatmap axis ``name``; a missing axis (``None``) is one cell."""
    if name is None:
        return AxisGeometry(np.array([0.0]), np.array([-0.5, 0.5]), False, True)
    values = ds[name].values
    if not is_numeric(values):
        pos = np.arange(len(values), dtype=float)
        return AxisGeometry(pos, np.arange(len(values) + 1) - 0.5, False, True)
    log = is_log_spaced(values)
    return AxisGeometry(values.astype(float), cell_edges(values, log), log, False)


def set_grid_ticks(ax: Axes, which: str, values: np.ndarray, log: bool) -> None:
    """Ticks at the grid values (at most about 8 labelled), log scale where log-spaced."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    if log:
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    every = max(1, math.ceil(len(values) / 8))
    labels = [format_value(v) if i % every == 0 else "" for i, v in enumerate(values)]
    axis.set_ticks(np.asarray(values, dtype=float), labels)
    axis.set_minor_locator(NullLocator())


def tidy_log(ax: Axes, which: str = "y") -> None:
    """Log-axis ticks: decades over wide ranges, 1-2-5 steps or plain steps over narrow ones.

    Horizontal axes switch to decades sooner (at one decade, not two): their labels collide first.
    Call it once the axis has its data (on shared axes, after every panel is drawn).
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


def hue_colors(values: np.ndarray) -> list[Any]:
    """One colour per hue value: ordered values plasma (blue to orange), categories Okabe-Ito."""
    if is_numeric(values) and len(values) > 1:
        cmap = colormaps[LINE_MAP]
        return [cmap(t) for t in np.linspace(0.0, 0.85, len(values))]
    return [OKABE_ITO[i % len(OKABE_ITO)] for i in range(len(values))]


# ---------------------------------------------------------------------------------------------
# Panels, legends, titles


def panels(
    n: int,
    size: tuple[float, float] = (3.6, 3.0),
    ncols: int = 4,
    sharex: bool = True,
    sharey: bool = True,
) -> tuple[Figure, list[Axes]]:
    """A constrained-layout figure with ``n`` panels of ``size`` inches, up to ``ncols`` per row;
    every panel keeps its tick labels (shared axes would hide the inner ones)."""
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


def label_panels(axes: list[Axes], xlabel: str, ylabel: str, ncols: int = 4) -> None:
    """Axis labels on the outer panels only: x under the bottom row, y beside the left column."""
    for i, ax in enumerate(axes):
        if i + ncols >= len(axes):
            ax.set_xlabel(xlabel)
        if i % ncols == 0:
            ax.set_ylabel(ylabel)


def legend_row(axes: list[Axes]) -> str:
    """Where a legend outside the right edge goes: beside the top row, or, for a single (narrow)
    panel, centred, clear of the title above it."""
    return "center" if len(axes) == 1 else "upper"


def suptitle(fig: Figure, title: str, subtitle: str) -> None:
    """The figure's title (first letter capitalised) over a subtitle saying what was fixed and
    pooled, wrapped at "; " to the figure's width (about 9 characters per inch)."""
    title = title[:1].upper() + title[1:]
    width = max(40, int(9 * fig.get_figwidth()))
    lines: list[str] = []
    for part in subtitle.split("; ") if subtitle else []:
        if lines and len(lines[-1]) + 2 + len(part) <= width:
            lines[-1] += f"; {part}"
        else:
            lines.append(part)
    fig.suptitle("\n".join([title, *lines]), fontsize=11)
