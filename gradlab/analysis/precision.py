"""Precision: which verdicts depend on the arithmetic a run was computed in?

A sweep with a ``dtype`` grid axis (``float32``, ``float64``, ``bfloat16``; see
:mod:`gradlab.spec`) trains every configuration in each precision from the same initial
parameters. Near a trainability boundary a run's fate can hinge on rounding: the boundary of
Sohl-Dickstein 2024 is fractal, so some points flip between precisions however fine the grid.
:func:`precision_flips` finds them.

References:
  Sohl-Dickstein, "The boundary of neural network trainability is fractal", 2024.
"""

from __future__ import annotations

import xarray as xr

from gradlab.analysis.selection import counted_runs, grid_axes, in_dataset_order

__all__ = ["precision_flips"]


def precision_flips(ds: xr.Dataset, dim: str = "dtype") -> xr.DataArray:
    r"""The configurations whose verdict (diverged or not) differs between precisions.

    .. math:: \mathrm{flip}(c, x) = \bigvee_{p} d(c, x, p) \;\land\; \neg \bigwedge_{p}
       d(c, x, p), \qquad d = \texttt{diverged}

    over the values p of ``dim`` at which the run counts (:func:`counted_runs`: finished, and
    not a copy along an axis its chain does not read).

    Args:
      ds: a result Dataset with a ``dtype`` grid axis (two or more values).
      dim: the precision axis.

    Returns:
      A boolean DataArray over ``optimizer`` and the grid axes but ``dim``; its mean is the
      fraction of configurations whose verdict depends on the precision.

    Raises:
      ValueError: ``dim`` is not a grid axis with two or more values.

    Example:
      >>> float(precision_flips(ds).mean())  # doctest: +SKIP
      0.031
    """
    if dim not in grid_axes(ds) or ds.sizes[dim] < 2:
        raise ValueError(f"precision_flips needs a {dim!r} grid axis with two or more values")
    counted = counted_runs(ds, pooled=None)
    diverged = ds["diverged"].astype(bool)
    some = (diverged & counted).any(dim)
    every = (diverged | ~counted).all(dim)
    return in_dataset_order((some & ~every).rename("precision_flip"), ds)
