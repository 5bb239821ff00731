"""Every run's final parameters, saved beside a sweep's chunks (``gradlab run --save-params``).

With ``gl.run(spec, out=DIR, save_params=True)`` each chunk's final parameters θ_T are written
as ``DIR/params/gGGG-cCCCCC.nc`` when the chunk finishes: one netCDF variable per parameter
array (named by its path in the parameter tree, e.g. ``layer_0.kernel``) with a leading ``run``
dim, as the Flax module reads them. Written chunk by chunk, they never have to fit in memory at
once; on disk they take runs x parameters x 4 bytes. :func:`load_params` reads one run back by
its grid values. (To follow a run's parameters *during* training, replay it:
:func:`gradlab.replay`.) Nothing here imports JAX.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from gradlab.assembly import Layout
from gradlab.errors import fail
from gradlab.files import write_netcdf

__all__ = ["load_params", "params_path", "run_position", "write_params"]

SEP = "."  # joins a parameter's path into a netCDF name (HDF5 reserves "/")


def params_path(run_dir: str | os.PathLike, group: int, chunk: int) -> Path:
    """Where chunk ``chunk`` of group ``group`` keeps its runs' final parameters."""
    return Path(run_dir) / "params" / f"g{group:03d}-c{chunk:05d}.nc"


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= _flatten(value, f"{name}{SEP}")
        else:
            out[name] = np.asarray(value)
    return out


def _unflatten(arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in arrays.items():
        *path, leaf = name.split(SEP)
        node = tree
        for key in path:
            node = node.setdefault(key, {})
        node[leaf] = value
    return tree


def write_params(run_dir: str | os.PathLike, group: int, chunk: int, params: Any) -> None:
    """Write a chunk's final parameters (a tree of ``[runs, ...]`` arrays), atomically."""
    arrays = _flatten(params)
    ds = xr.Dataset(
        {
            name: (("run", *(f"{name}_{i}" for i in range(a.ndim - 1))), a)
            for name, a in arrays.items()
        }
    )
    write_netcdf(params_path(run_dir, group, chunk), ds)  # a full disk: a clean OSError


def run_position(layout: Layout, selection: Mapping[str, Any]) -> tuple[int, int, int]:
    """(group, chunk, index in the chunk) of the one run ``selection`` names.

    The selection gives ``optimizer`` and a value of every grid axis with more than one value
    (an axis of one value may be left out). Along an axis the chain does not read, every value
    names the same run (the one trained at the axis's first value).

    Raises:
      ConfigError: an unknown axis, a value not on its axis, or an axis left open.
    """
    axes = {"optimizer": layout.optimizers, **layout.static, **layout.traced}
    unknown = [k for k in selection if k not in axes]
    if unknown:
        raise fail(unknown[0], f"is not a grid axis of the sweep; its axes: {list(axes)}")
    index = {}
    for axis, values in axes.items():
        if axis in selection:
            if selection[axis] not in values:
                raise fail(axis, f"{selection[axis]!r} is not on the axis; its values: {values}")
            index[axis] = values.index(selection[axis])
        elif len(values) == 1:
            index[axis] = 0
        else:
            raise fail(
                axis, f"the selection names {len(values)} runs along it: pick one of {values}"
            )
    static = [index[a] for a in layout.static]
    sizes = [len(v) for v in layout.static.values()]
    group = index["optimizer"] * math.prod(sizes) + (
        int(np.ravel_multi_index(static, sizes)) if sizes else 0
    )
    trained = layout.group_axes(group)
    position = [min(index[a], len(v) - 1) for a, v in trained.items()]  # unread: its first value
    run = int(np.ravel_multi_index(position, [len(v) for v in trained.values()])) if trained else 0
    return group, run // layout.chunk_size, run % layout.chunk_size


def load_params(run_dir: str | os.PathLike, **selection: Any) -> dict[str, Any]:
    """The final parameters of one run of a sweep saved with ``save_params=True``.

    Args:
      run_dir: the run directory.
      **selection: ``optimizer=`` and a value of every grid axis with more than one value,
        e.g. ``optimizer="adam", seed=2, learning_rate=0.01``.

    Returns:
      The run's parameter tree (nested dicts of numpy arrays), ready for
      ``module.apply({"params": params}, x)``; a diverged run's are those of the step before it
      diverged.

    Raises:
      FileNotFoundError: ``run_dir`` is not a run directory, or its sweep did not save
        parameters (``gradlab run --save-params``).
      ConfigError: the selection names no run or several.

    Example:
      >>> p = gl.load_params("runs/demo", optimizer="sgd", seed=0, learning_rate=0.1)
      ... # doctest: +SKIP
    """
    from gradlab.store import RunDir

    layout = RunDir.stored_layout(run_dir, field="run_dir")
    if layout is None:
        raise FileNotFoundError(f"{run_dir} is not a gradlab run directory (no manifest.json)")
    group, chunk, offset = run_position(layout, selection)
    path = params_path(run_dir, group, chunk)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: run the sweep with --save-params (save_params=True) to keep "
            "every run's final parameters"
        )
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return _unflatten({name: ds[name].values[offset] for name in ds.data_vars})
