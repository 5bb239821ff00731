"""Interventions on the gradient: how often they fire, and where to set their threshold.

Clipping (by value, by global norm, adaptive) and ``apply_if_finite`` change or drop some steps'
gradients; the engine records ``clipped`` and ``skipped`` per step. :func:`fire_rate` counts
how often an intervention acted while the run was alive; :func:`typical_grad_norm` is the
statistic of the unclipped gradient norm from which Pascanu et al. set the clipping threshold.

References:
  Pascanu, Mikolov & Bengio, *On the difficulty of training recurrent neural networks*,
  ICML 2013. Brock, De, Smith & Simonyan, *High-Performance Large-Scale Image Recognition
  Without Normalization*, ICML 2021 (adaptive gradient clipping).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from gradlab.analysis.selection import (
    SEED,
    Axes,
    applied,
    counted_runs,
    pool_axes,
    quiet_nan_warnings,
)

__all__ = ["fire_rate", "typical_grad_norm"]


def fire_rate(ds: xr.Dataset, var: str = "clipped", over: Axes = SEED) -> xr.DataArray:
    r"""How often an intervention fired: the fraction of applied logged steps where ``var`` is set.

    .. math:: f = \frac{\sum_{r, s} \mathrm{applied}(r, s)\,[\texttt{var}(r, s)]}
       {\sum_{r, s} \mathrm{applied}(r, s)}

    (:func:`~gradlab.analysis.selection.applied`: the step of divergence applies no update, so
    it has no clip or skip flag and is not counted).

    with the sums over the logged steps and the runs pooled by ``over`` that count
    (:func:`~gradlab.analysis.selection.counted_runs`: a chain's copies along a pooled axis it
    does not read once, unfinished runs not at all). ``clipped``: a clip stage changed the
    gradient; ``skipped``: ``apply_if_finite`` dropped the update.

    Args:
      ds: a result Dataset.
      var: a boolean per-step variable (``"clipped"`` or ``"skipped"``).
      over: grid axes to pool (default the seeds); ``None`` gives one rate per run.

    Returns:
      A DataArray in [0, 1] over ``optimizer`` and the grid axes not pooled.

    Example:
      >>> fire_rate(ds, "clipped", over=["seed", "init_scale"]).to_pandas()  # doctest: +SKIP

    References:
      Pascanu et al., ICML 2013 (clipping by global norm); Brock et al., ICML 2021 (adaptive
      clipping); ``optax.apply_if_finite`` (skipping non-finite updates).
    """
    if var not in ds or "step" not in ds[var].dims:
        raise ValueError(f"{var!r} is not a per-step variable of the Dataset")
    pooled = pool_axes(ds, over)
    steps = applied(ds) & counted_runs(ds, pooled)
    fired = ds[var].astype(bool) & steps
    dims = [*pooled, "step"]
    with quiet_nan_warnings():
        return (fired.sum(dims) / steps.sum(dims)).rename(f"{var}_rate")


def typical_grad_norm(
    ds: xr.Dataset,
    statistic: str | float = "mean",
    over: Axes = SEED,
    var: str = "grad_norm",
) -> xr.DataArray:
    r"""A statistic of the raw gradient norm over training, for runs that never diverged.

    Pascanu et al. (2013, section 3.2) set the global-norm clipping threshold from "statistics
    on the average norm over a sufficiently large number of updates" of unclipped training; this
    is that statistic:

    .. math:: c = \operatorname{stat}\{\|g_t\|_2 : t \text{ logged}, \text{run not diverged}\}

    pooled over the logged steps and the runs of ``over`` that count
    (:func:`~gradlab.analysis.selection.counted_runs`).

    Args:
      ds: a result Dataset with ``grad_norm``.
      statistic: ``"mean"``, ``"median"``, or a quantile in [0, 1] (e.g. 0.9).
      over: grid axes to pool with the steps (default the seeds).
      var: the per-step variable (default ``grad_norm``).

    Returns:
      A DataArray over ``optimizer`` and the grid axes not pooled; NaN where every run diverged.

    Example:
      >>> typical_grad_norm(ds.sel(optimizer="sgd"), "median")  # doctest: +SKIP

    References:
      Pascanu, Mikolov & Bengio, *On the difficulty of training recurrent neural networks*,
      ICML 2013.
    """
    if var not in ds:
        raise ValueError(f"no variable {var!r} in the Dataset")
    pooled = pool_axes(ds, over)
    g = ds[var].where(~ds["diverged"].astype(bool) & counted_runs(ds, pooled))
    g = g.where(np.isfinite(g))
    dims = [*pooled, "step"]
    with quiet_nan_warnings():
        if statistic == "mean":
            out = g.mean(dims)
        elif statistic == "median":
            out = g.median(dims)
        elif isinstance(statistic, float | int) and 0 <= statistic <= 1:
            out = g.quantile(float(statistic), dims).drop_vars("quantile")
        else:
            raise ValueError(f"statistic must be 'mean', 'median' or a quantile, got {statistic!r}")
    return out.rename(f"{var}_{statistic}")
