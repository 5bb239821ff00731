"""Zooming into a 2-D grid: a point on the trainability boundary, and the spec of a finer grid.

A fractal boundary (:mod:`gradlab.analysis.fractal`) keeps its detail under magnification. To
look, pick a point on the boundary (:func:`boundary_point`) and build the spec of a grid
centred there with the span divided by a magnification (:func:`zoom_spec`), then run it as its
own sweep; the Datasets of successive zooms go to :func:`gradlab.analysis.fractal_dimension`
and :func:`gradlab.plots.fractal_zooms` as a list:

.. code-block:: python

  levels = [ds]
  for _ in range(2):
      point = gl.analysis.boundary_point(levels[-1])
      levels.append(gl.run(gl.analysis.zoom_spec(levels[-1], point, 8)))
  gl.plots.fractal_zooms(levels)

A log-spaced axis (equal ratios, e.g. learning rates from ``{"logspace": [a, b, n]}``) is
zoomed in log10, any other linearly. Grid values reach the program as float32, so a zoom stops
where neighbouring values become equal in float32 (the spec says so, naming the axis): about
10^6 points per decade, six or seven decades of zoom from a grid that spans a few.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from gradlab.analysis.fractal import boundary_image, outcome_image

__all__ = ["boundary_point", "zoom_spec"]


def boundary_point(
    ds: xr.Dataset, near: Mapping[str, float] | None = None, axes: Sequence[str] | None = None
) -> dict[str, float]:
    """A point on the boundary: the corner of the boundary image nearest to ``near``.

    Distances are measured in cells of the grid (so in log space along a log-spaced axis);
    the point is the geometric (or arithmetic) mean of the two grid values on either side.

    Args:
      ds: a result Dataset of one 2-D grid.
      near: axis -> value to start from (default: the centre of the grid).
      axes: the two grid axes (default: the two with more than one value).

    Returns:
      axis -> value, for both axes.

    Example:
      >>> at = np.zeros((1, 4, 4), bool)
      >>> at[0, :, 2:] = True  # diverged where b >= 100
      >>> ds = xr.Dataset({"diverged": (("optimizer", "a", "b"), at)},
      ...                 coords={"a": [1.0, 2.0, 3.0, 4.0], "b": [1.0, 10.0, 100.0, 1000.0]})
      >>> {k: round(v, 3) for k, v in boundary_point(ds).items()}  # b between 10 and 100
      {'a': 2.5, 'b': 31.623}

    Raises:
      ValueError: no boundary in the grid, or ``near`` names another axis.
    """
    outcome = outcome_image(ds, axes)
    edge = boundary_image(outcome.values)
    if not edge.any():
        raise ValueError("diverged: every run of the grid has the same outcome; no boundary")
    dims = outcome.dims
    near = dict(near or {})
    if set(near) - set(dims):
        raise ValueError(f"near: names {sorted(set(near) - set(dims))}, not the axes {dims}")
    logs = [_is_log(outcome[d].values) for d in dims]
    target = []
    for d, log in zip(dims, logs, strict=True):
        values = _scale(outcome[d].values, log)
        at = _scale(np.asarray(near.get(d, math.nan)), log) if d in near else values.mean()
        target.append(np.interp(at, values, np.arange(len(values))) - 0.5)
    rows, cols = np.nonzero(edge)
    best = np.argmin((rows - target[0]) ** 2 + (cols - target[1]) ** 2)
    point = {}
    for d, log, index in zip(dims, logs, (rows[best], cols[best]), strict=True):
        pair = _scale(outcome[d].values[index : index + 2], log)
        point[str(d)] = float(_unscale(pair.mean(), log))
    return point


def zoom_spec(
    source: Any,
    center: Mapping[str, float],
    magnification: float,
) -> Any:
    """The spec of a grid centred on ``center``, ``magnification`` times finer, same size.

    Each axis named in ``center`` keeps its number of points and its spacing (log-spaced axes
    in log10, others linearly), centred on ``center[axis]`` with its span divided by
    ``magnification``; every other field of the sweep is the same. Run it as its own sweep:

    .. code-block:: python

      point = gl.analysis.boundary_point(ds)
      zoomed = gl.run(gl.analysis.zoom_spec(ds, point, 10))

    Args:
      source: a result Dataset (its spec is read from ``ds.attrs["spec"]``) or a
        :class:`gradlab.SweepSpec`. A sweep of a user's module, callable chain or in-memory
        arrays is not written whole in the Dataset: pass its spec.
      center: axis -> value at the centre of the new grid.
      magnification: > 0; the span of each axis is divided by it.

    Returns:
      A validated :class:`gradlab.SweepSpec`. At a magnification where neighbouring values are
      equal in float32 (about 10^6 per decade), building it raises the spec's error naming the
      axis.

    Example:
      >>> import gradlab as gl
      >>> spec = gl.SweepSpec(steps=2, grid={"learning_rate": {"logspace": [-4, 0, 5]}})
      >>> new = zoom_spec(spec, {"learning_rate": 0.01}, 2)  # 2 of the 4 decades
      >>> [f"{v:.3g}" for v in new.grid["learning_rate"]]
      ['0.001', '0.00316', '0.01', '0.0316', '0.1']

    Raises:
      ValueError: a bad ``magnification``, a ``center`` axis that is not a grid axis of at
        least two values, or a Dataset whose spec cannot be rebuilt from its text.
      gradlab.ConfigError: the new grid is invalid (e.g. values below an axis's range).
    """
    from gradlab.spec import SweepSpec

    if isinstance(source, SweepSpec):
        spec = source
    else:
        text = source.attrs.get("spec", "")
        if not text or any(line.startswith("# ") for line in text.splitlines()):
            raise ValueError(
                "source: this Dataset's sweep has a user's module, callable chain or in-memory "
                "arrays, which its spec text does not hold: pass the SweepSpec"
            )
        from gradlab.spec_toml import from_toml

        spec = from_toml(text)
    if not isinstance(magnification, int | float) or not magnification > 0:
        raise ValueError(f"magnification: must be a number > 0, got {magnification!r}")
    grid = dict(spec.grid)
    for axis, value in center.items():
        values = np.asarray(grid.get(axis, ()), dtype=float)
        if values.size < 2:
            raise ValueError(f"center.{axis}: not a grid axis of two or more values")
        log = _is_log(values)
        lo, hi = _scale(values.min(), log), _scale(values.max(), log)
        half = (hi - lo) / magnification / 2
        middle = _scale(np.asarray(float(value)), log)
        new = _unscale(np.linspace(middle - half, middle + half, values.size), log)
        grid[axis] = [float(v) for v in new]
    return spec.replace(grid=grid)


def _is_log(values: np.ndarray) -> bool:
    """Whether a numeric axis is evenly spaced in log10 (positive, equal ratios) rather than
    linearly."""
    values = np.sort(np.asarray(values, float))
    if np.any(values <= 0):
        return False
    if len(values) < 3:  # two points: log-spaced when they are a decade or more apart
        return bool(values[-1] >= 10 * values[0])
    logs, steps = np.diff(np.log10(values)), np.diff(values)
    return bool(
        np.allclose(logs, logs[0], rtol=1e-3) and not np.allclose(steps, steps[0], rtol=1e-3)
    )


def _scale(values: Any, log: bool) -> np.ndarray:
    return np.log10(np.asarray(values, float)) if log else np.asarray(values, float)


def _unscale(values: Any, log: bool) -> np.ndarray:
    return 10.0 ** np.asarray(values, float) if log else np.asarray(values, float)
