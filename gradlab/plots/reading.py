"""What a figure reads from a result Dataset: the slice, the axis order, the runs it pools.

Every figure fixes the grid values given by ``sel`` (:func:`select`), checks the axes it was
asked to draw (:func:`check_axis`), sorts numeric axes so lines and cells run left to right
(:func:`sort_axes`), pools every grid axis it does not show (seeds always) and says so in its
subtitle (:func:`pool_note`). The numbers themselves come from :mod:`gradlab.analysis`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from gradlab import analysis
from gradlab.plots import style

__all__ = [
    "chains",
    "check_axis",
    "default_hue",
    "grid_note",
    "pool_note",
    "runs_matrix",
    "select",
    "sort_axes",
]


def select(ds: xr.Dataset, sel: Mapping[str, Any] | None) -> xr.Dataset:
    """``ds.sel(sel)``, with an error naming any key that is not a dim of the Dataset.

    One chain (``sel={"optimizer": "sgd"}``) keeps the ``optimizer`` dim: it is one panel.
    """
    if not sel:
        return ds
    unknown = [k for k in sel if k not in ds.dims]
    if unknown:
        raise ValueError(f"sel names {unknown}, not dims of the Dataset: {list(ds.dims)}")
    keep = {k: [v] if k == "optimizer" and np.ndim(v) == 0 else v for k, v in sel.items()}
    return ds.sel(keep)


def check_axis(ds: xr.Dataset, name: str | None) -> None:
    """Raise ``ValueError`` unless ``name`` is ``None`` or a grid axis of ``ds``."""
    if name is not None and name not in analysis.grid_axes(ds):
        raise ValueError(f"{name!r} is not a grid axis; grid axes: {list(analysis.grid_axes(ds))}")


def sort_axes(ds: xr.Dataset, *names: str | None) -> xr.Dataset:
    """Sort numeric axes ascending, so lines and cells run left to right."""
    for n in names:
        if n is not None and style.is_numeric(ds[n].values):
            ds = ds.sortby(n)
    return ds


def chains(ds: xr.Dataset) -> list[str]:
    """The optimizer chains of ``ds``, as strings, in the Dataset's order (one panel each)."""
    return [str(c) for c in ds["optimizer"].values]


def default_hue(ds: xr.Dataset) -> str | None:
    """The axis to colour lines by: learning rate if swept, else the first swept non-seed axis."""
    cands = [d for d in analysis.grid_axes(ds) if d != analysis.SEED and ds.sizes[d] > 1]
    return analysis.LR if analysis.LR in cands else (cands[0] if cands else None)


def pool_note(ds: xr.Dataset, pool: Sequence[str], per: str = "point") -> str:
    """What a point pools, e.g. ``'12 runs per point (seed × clip_norm)'``; axes of length one
    are left out."""
    pool = [d for d in pool if ds.sizes[d] > 1]
    if not pool:
        return f"1 run per {per}"
    n = math.prod(ds.sizes[d] for d in pool)
    return f"{n} runs per {per} ({' × '.join(pool)})"


def grid_note(ds: xr.Dataset) -> str:
    """The grid's shape, e.g. ``'3 seed × 4 learning_rate'`` (``'no grid'`` without axes)."""
    axes = [f"{ds.sizes[d]} {d}" for d in analysis.grid_axes(ds)]
    return " × ".join(axes) if axes else "no grid"


def runs_matrix(da: xr.DataArray, pool: Sequence[str], xdim: str) -> np.ndarray:
    """A ``(runs, x)`` float array: the pooled axes of ``da`` stacked into rows."""
    da = da.transpose(*pool, xdim)
    return da.values.reshape(-1, da.sizes[xdim]).astype(float)
