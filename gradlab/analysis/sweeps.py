"""Studies across sweeps: join sweeps that differ in a model field into one Dataset.

A model's structure (``hidden``: depth and width) is part of the compiled program, not a grid
axis, so a study over depth runs one sweep per depth; :func:`concat_sweeps` stacks them on a
new axis as if it had been one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from gradlab.analysis.selection import grid_axes

__all__ = ["concat_sweeps"]


def concat_sweeps(results: Mapping[Any, xr.Dataset], dim: str) -> xr.Dataset:
    """Join sweeps that differ in a model field the grid cannot hold (depth, width) on a new axis.

    ``hidden`` is part of the compiled program and not a grid axis, so a study over depth runs
    one sweep per depth; this stacks them as if ``dim`` had been a grid axis, placed right after
    ``optimizer``. Per-layer variables of shallower models are padded with NaN (as the engine
    pads models of unequal depth), so :func:`gradlab.analysis.empirical_chi1` and the plots
    keep working.

    Args:
      results: axis value -> result Dataset, e.g. ``{10: ds10, 20: ds20}``; every Dataset must
        have the same chains and grid axes.
      dim: name of the new axis (must not be a dim already).

    Returns:
      One Dataset with ``dim`` among its grid axes. Its ``spec`` attr holds each sweep's spec
      under a ``# <dim> = <value>`` line; ``wall_time_s`` and ``compile_time_s`` are summed.

    Raises:
      ValueError: no results, ``dim`` already a dim, or the sweeps' chains, grid axes, grid
        values or logged steps differ. Only the ``layer`` axis may differ (it is padded):
        joining sweeps over different grid values would leave holes that no value of
        ``diverged`` or ``diverged_at`` describes honestly, so they are refused.

    Example:
      >>> ds = concat_sweeps({d: gl.run(spec_of(d)) for d in (10, 20)}, "depth")  # doctest: +SKIP
      >>> grid_axes(ds)  # doctest: +SKIP
      ('depth', 'seed', 'init_scale')
    """
    if not results:
        raise ValueError("concat_sweeps needs at least one result Dataset")
    items = list(results.items())
    first = items[0][1]
    for value, ds in items:
        if dim in ds.dims:
            raise ValueError(f"{dim!r} is already a dim of the sweep at {value!r}")
        if grid_axes(ds) != grid_axes(first):
            raise ValueError(
                f"grid axes differ: {list(grid_axes(ds))} at {value!r}, "
                f"{list(grid_axes(first))} at {items[0][0]!r}"
            )
        if list(ds["optimizer"].values) != list(first["optimizer"].values):
            raise ValueError(f"optimizer chains differ at {value!r}")
        for axis in (*grid_axes(first), "step"):
            if not np.array_equal(ds[axis].values, first[axis].values):
                raise ValueError(
                    f"{axis}: the sweeps must have the same values to be joined, but the sweep "
                    f"at {value!r} has {list(ds[axis].values)} and the one at {items[0][0]!r} "
                    f"has {list(first[axis].values)}"
                )
    parts = [ds.drop_attrs().expand_dims({dim: [value]}) for value, ds in items]
    # coords="different": a coordinate that differs between sweeps (``layer_width`` of models
    # of different depths) gets the new axis too; one that agrees (``stability_rule``) is kept.
    out = xr.concat(
        parts,
        dim=dim,
        data_vars="all",
        coords="different",
        compat="equals",
        join="outer",
        combine_attrs="drop",
    )
    out = out.transpose("optimizer", dim, ...)
    for name in ("diverged", "diverged_at"):
        out[name] = out[name].astype(first[name].dtype)
    if "clipped" in first and out["clipped"].dtype != bool:
        out["clipped"] = out["clipped"].fillna(False).astype(bool)
    specs = "".join(f"# {dim} = {value}\n{ds.attrs.get('spec', '')}" for value, ds in items)
    out.attrs = {k: v for k, v in first.attrs.items() if k not in ("spec",)}
    out.attrs["spec"] = specs
    for key in ("wall_time_s", "compile_time_s", "run_time_s"):
        if all(key in ds.attrs for _, ds in items):
            out.attrs[key] = float(sum(ds.attrs[key] for _, ds in items))
    return out
