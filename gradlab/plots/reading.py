"""What a figure reads from a result Dataset: the slice, the panels, the runs it pools, the words.

Every figure fixes the grid values given by ``sel`` (:func:`select`), checks the axes it was
asked to draw (:func:`check_axis`), sorts numeric axes so lines and cells run left to right
(:func:`sort_axes`), lays out one panel per chain and per value of the ``row``/``col`` axes
(:func:`facets`), pools every grid axis it does not show (seeds always) and says in its subtitle
what it fixed and what it pooled (:func:`pool_note`). :func:`axis_label` and :func:`axis_symbol`
write a grid axis as what it is in this Dataset (``init_scale`` is σ_w only for
``init="normal"``, :func:`init_scheme`; σ_w² from init_scale, :func:`weight_variance`). The
numbers themselves come from :mod:`gradlab.analysis`.
"""

from __future__ import annotations

import itertools
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from gradlab import analysis
from gradlab.plots import style

__all__ = [
    "Panel",
    "axis_label",
    "axis_symbol",
    "chains",
    "check_axis",
    "check_step",
    "default_hue",
    "facets",
    "fixed_note",
    "fixed_values",
    "grid_note",
    "init_scheme",
    "pool_note",
    "runs_matrix",
    "select",
    "sort_axes",
    "weight_variance",
]

# Coordinates of a result Dataset that are not grid axes: the chains, the logged steps, the
# layers, and what the store records per chain (``reads_<axis>`` too) and per layer.
_NOT_GRID = frozenset({"optimizer", "step", "layer", "stability_rule", "layer_width", "layer_size"})


def _is_grid_coord(name: str) -> bool:
    return name not in _NOT_GRID and not name.startswith("reads_")


def select(ds: xr.Dataset, sel: Mapping[str, Any] | None) -> xr.Dataset:
    """``ds.sel(sel)``, with errors that name an unknown axis, or a value and the axis' values.

    One chain (``sel={"optimizer": "sgd"}``) keeps the ``optimizer`` dim: it is one panel. A
    grid value that is not in the Dataset raises ``ValueError`` naming the axis and its values
    (:func:`gradlab.analysis.select_values`), not xarray's bare ``KeyError``.
    """
    if not sel:
        return ds
    unknown = [k for k in sel if k not in ds.dims]
    if unknown:
        raise ValueError(f"sel names {unknown}, not dims of the Dataset: {list(ds.dims)}")
    keep = {k: [v] if k == "optimizer" and np.ndim(v) == 0 else v for k, v in sel.items()}
    return analysis.select_values(ds, keep)


def check_axis(ds: xr.Dataset, name: str | None) -> None:
    """Raise ``ValueError`` unless ``name`` is ``None`` or a grid axis of ``ds``."""
    if name is not None and name not in analysis.grid_axes(ds):
        raise ValueError(f"{name!r} is not a grid axis; grid axes: {list(analysis.grid_axes(ds))}")


def check_step(ds: xr.Dataset, step: int) -> None:
    """Raise ``ValueError`` naming the logged steps unless ``step`` is one of them."""
    analysis.select_values(xr.Dataset(coords={"step": ds["step"]}), {"step": [step]})


def sort_axes(ds: xr.Dataset, *names: str | None) -> xr.Dataset:
    """Sort numeric axes ascending, so lines and cells run left to right."""
    for n in names:
        if n is not None and style.is_numeric(ds[n].values):
            ds = ds.sortby(n)
    return ds


def chains(ds: xr.Dataset) -> list[str]:
    """The optimizer chains of ``ds``, as strings, in the Dataset's order (one panel each)."""
    return [str(c) for c in ds["optimizer"].values]


def default_hue(ds: xr.Dataset, exclude: Sequence[str | None] = ()) -> str | None:
    """The axis to colour lines by: learning rate if swept, else the first swept non-seed axis;
    never one of ``exclude`` (the axes the panels are faceted by)."""
    cands = [
        d
        for d in analysis.grid_axes(ds)
        if d != analysis.SEED and ds.sizes[d] > 1 and d not in exclude
    ]
    return analysis.LR if analysis.LR in cands else (cands[0] if cands else None)


# ---------------------------------------------------------------------------------------------
# Panels: one per chain and per value of the row / col axes


class Panel(NamedTuple):
    """One panel of a figure.

    Attributes:
      pick: the selection of its runs, e.g. ``{"optimizer": "sgd", "activation": "tanh"}``.
      title: its title, e.g. ``"sgd, activation = tanh"``.
    """

    pick: dict[str, Any]
    title: str


def facets(
    ds: xr.Dataset, row: str | None = None, col: str | None = None, *, by_chain: bool = True
) -> tuple[list[Panel], int]:
    """The panels of a figure and how many columns they take, in reading order.

    - no ``row``/``col``: one panel per chain, up to four in a row;
    - ``col``: a column per value of ``col``, a row per chain (and per value of ``row``);
    - ``row`` alone: a row per value of ``row``, a column per chain.

    With ``by_chain=False`` the chains are not separated (a figure that pools them) and the
    panels are the values of ``row`` × ``col`` (one panel without either).

    Args:
      ds: a result Dataset (selected, axes sorted).
      row: grid axis whose values are the rows, or ``None``.
      col: grid axis whose values are the columns, or ``None``.
      by_chain: one panel per chain as well.

    Returns:
      ``(panels, ncols)``.

    Raises:
      ValueError: ``row`` or ``col`` is not a grid axis, or both name the same axis.
    """
    check_axis(ds, row)
    check_axis(ds, col)
    if row is not None and row == col:
        raise ValueError(f"row and col are both {row!r}: facet by two different axes")
    chain_axis = [("optimizer", chains(ds))] if by_chain else []
    row_axis = [(row, ds[row].values.tolist())] if row else []
    col_axis = [(col, ds[col].values.tolist())] if col else []
    if row is None and col is None:
        down, across = [], chain_axis
    elif col is None:
        down, across = row_axis, chain_axis
    else:
        down, across = chain_axis + row_axis, col_axis
    ncols = math.prod(len(v) for _, v in across)
    if row is None and col is None:
        ncols = min(ncols, 4)
    names = [n for n, _ in down + across]
    panels = []
    for values in itertools.product(*(v for _, v in down + across)):
        pick = dict(zip(names, values, strict=True))
        chain = [str(pick["optimizer"])] if "optimizer" in pick else []  # the chain first
        parts = chain + [
            f"{n} = {style.format_value(v)}" for n, v in pick.items() if n != "optimizer"
        ]
        panels.append(Panel(pick, ", ".join(parts)))
    return panels, max(ncols, 1)


# ---------------------------------------------------------------------------------------------
# What a figure fixed and what it pooled


def fixed_values(ds: xr.Dataset) -> list[tuple[str, Any]]:
    """The grid values every panel shares: axes fixed by a selection (scalar coordinates) and
    grid axes of length one, e.g. ``[("activation", "relu"), ("clip_norm", 1.0)]``."""
    fixed = [
        (str(name), c.values.item())
        for name, c in ds.coords.items()
        if c.ndim == 0 and _is_grid_coord(str(name))
    ]
    fixed += [(d, ds[d].values[0].item()) for d in analysis.grid_axes(ds) if ds.sizes[d] == 1]
    return fixed


def fixed_note(ds: xr.Dataset) -> str:
    """:func:`fixed_values` as text, e.g. ``'activation = relu, clip_norm = 1'`` (``''``
    when nothing is fixed)."""
    return ", ".join(f"{n} = {style.format_value(v)}" for n, v in fixed_values(ds))


def pool_note(ds: xr.Dataset, pool: Sequence[str], per: str = "point") -> str:
    """The subtitle of a figure: the grid values it fixed, then what each point pools.

    E.g. ``'activation = relu, clip_norm = 1; 12 runs per point (seed × init_scale)'``: the
    selected values and length-one axes (:func:`fixed_values`), then the number of runs behind
    each point and the axes it pools (axes of length one are left out of the pool). The runs
    are those that count (:func:`gradlab.analysis.counted_runs`: a chain's copies along an axis
    it does not read once, unfinished runs not at all); where points pool different numbers,
    the range is given (``'4–12 runs per point'``).
    """
    fixed = fixed_note(ds)
    pool = [d for d in pool if d in ds.dims and ds.sizes[d] > 1]
    grid = analysis.grid_axes(ds) if "diverged" in ds else ()
    if all(d in grid or d == "optimizer" for d in pool) and grid:
        counted = analysis.counted_runs(ds, pooled=[d for d in pool if d in grid])
        counts = counted.sum(pool).values
        low, high = (int(counts.min()), int(counts.max())) if counts.size else (0, 0)
    else:
        low = high = math.prod(ds.sizes[d] for d in pool)
    n = f"{low}" if low == high else f"{low}–{high}"
    runs = f"{n} run{'s' if high != 1 else ''} per {per}"
    if pool:
        runs += f" ({' × '.join(pool)})"
    return f"{fixed}; {runs}" if fixed else runs


def grid_note(ds: xr.Dataset) -> str:
    """The grid's shape, e.g. ``'3 seed × 4 learning_rate'`` (``'no grid'`` without axes)."""
    axes = [f"{ds.sizes[d]} {d}" for d in analysis.grid_axes(ds)]
    return " × ".join(axes) if axes else "no grid"


def runs_matrix(da: xr.DataArray, pool: Sequence[str], xdim: str) -> np.ndarray:
    """A ``(runs, x)`` float array: the pooled axes of ``da`` stacked into rows."""
    da = da.transpose(*pool, xdim)
    return da.values.reshape(-1, da.sizes[xdim]).astype(float)


# ---------------------------------------------------------------------------------------------
# Axes written as what they are in this Dataset


def init_scheme(ds: xr.Dataset) -> str | None:
    """The init scheme whose standard deviation ``init_scale`` multiplies, or ``None``.

    Read from an ``init`` coordinate when the grid or a selection fixes one scheme, else from
    the ``[model] init`` of the spec the Dataset records (TOML; a joined sweep's specs count if
    they agree). ``None`` when it is unknown (no spec, a user's Flax module) or varies (an
    ``init`` grid axis with several schemes).
    """
    if "init" in ds.coords:
        schemes = {str(v) for v in np.atleast_1d(ds["init"].values)}
        return schemes.pop() if len(schemes) == 1 else None
    spec = ds.attrs.get("spec")
    if not isinstance(spec, str):
        return None
    try:
        init = tomllib.loads(spec).get("model", {}).get("init")
        return init if isinstance(init, str) else None
    except tomllib.TOMLDecodeError:  # specs of sweeps joined by concat_sweeps, one after another
        schemes = set(re.findall(r"""^\s*init\s*=\s*["']([^"']+)["']""", spec, re.MULTILINE))
        return schemes.pop() if len(schemes) == 1 else None


def axis_label(ds: xr.Dataset, name: str) -> str:
    """The axis label of a grid axis or variable in ``ds``: :func:`gradlab.plots.style.label`,
    with ``init_scale`` written for the Dataset's init scheme (:func:`init_scheme`) and the
    learning rate in units of the initial sharpness where the sweep used them (``lr_units``)."""
    if name == "init_scale":
        return style.init_scale_label(init_scheme(ds))
    if name == "learning_rate" and ds.attrs.get("lr_units") == "sharpness":
        return r"learning rate $c = \eta\,\lambda_0$ (units of $1/\lambda_0$)"
    return style.label(name)


def axis_symbol(ds: xr.Dataset, name: str) -> str:
    """The short legend name of a grid axis in ``ds``: :func:`gradlab.plots.style.symbol`, with
    ``init_scale`` as σ_w only where the scheme is ``normal``, and the learning rate as c where
    it is in units of the initial sharpness (``lr_units``)."""
    if name == "init_scale":
        return style.init_scale_symbol(init_scheme(ds))
    if name == "learning_rate" and ds.attrs.get("lr_units") == "sharpness":
        return "$c$"
    return style.symbol(name)


def weight_variance(ds: xr.Dataset) -> tuple[float, str]:
    """``(σ_w² / init_scale², note)`` for the Dataset's init scheme, for the mean-field diagrams.

    A scheme draws each weight with standard deviation s(fan_in, fan_out) × init_scale
    (:mod:`gradlab.inits`); mean field's σ_w² is fan_in × that variance, so the factor is
    s² fan_in: 1 for ``normal`` (init_scale is σ_w) and ``lecun_normal``, 2 for ``he_normal``.
    A scheme whose s depends on fan_out (Glorot, orthogonal) has no single σ_w and is refused;
    without a recorded scheme, init_scale is read as σ_w and the note says so.
    """
    scheme = init_scheme(ds)
    if scheme is None:
        if "init" in ds.coords:
            raise ValueError("the sweep has several init schemes: fix one, e.g. sel={'init': ...}")
        return 1.0, "σ_w read as init_scale (init scheme not recorded)"
    from gradlab import inits

    if scheme not in inits.INITS:
        raise ValueError(f"init scheme {scheme!r} is not one of gradlab's: {list(inits.INITS)}")
    std = inits.INITS[scheme].std
    factors = [std(i, o) ** 2 * i for i, o in ((16, 16), (64, 16), (16, 64))]
    if not np.allclose(factors, factors[0], rtol=1e-12):
        raise ValueError(
            f"init={scheme!r} draws weights with a std that depends on fan_out, so init_scale "
            "gives no single σ_w: sweep init='normal' (init_scale = σ_w) for mean-field diagrams"
        )
    factor = factors[0]
    if scheme == "normal":
        return factor, ""
    return factor, f"init = {scheme}: σ_w² = {factor:.3g} × init_scale²"
