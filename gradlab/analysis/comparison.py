"""Which optimizer chain is most robust, and at what cost? Chains side by side.

:func:`compare_optimizers` is the one-row-per-chain table that ``gradlab run`` prints;
:func:`best_learning_rate` finds the learning rate each chain should be run at, and
:func:`relative_cost` prices a chain (e.g. a clipped one) against a baseline at the same point.
Performance profiles across configurations are in :mod:`gradlab.analysis.profiles`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr

from gradlab.analysis.curvature import bounded_sharpness
from gradlab.analysis.selection import (
    LR,
    SEED,
    Axes,
    alive,
    applied,
    grid_axes,
    in_dataset_order,
    pool_axes,
    quiet_nan_warnings,
    run_cost,
    surviving,
)
from gradlab.analysis.stability import stable_lr_range, time_to_explode
from gradlab.analysis.tables import TABLE_COLUMNS

__all__ = ["best_learning_rate", "compare_optimizers", "relative_cost"]


def compare_optimizers(ds: xr.Dataset, lr: str = LR) -> pd.DataFrame:
    """One row per optimizer chain: how robust it is and what it costs.

    Every grid point and seed of a chain is one run. Columns (NaN where the Dataset lacks the
    variable or no run qualifies):

    - ``runs``: number of runs of the chain;
    - ``diverged``: fraction of runs that diverged;
    - ``max_stable_lr``: largest grid learning rate at which *no* run diverged, for any seed and
      any value of the other grid axes (:func:`stable_lr_range` pooled over all of them);
    - ``stable_decades``: log10(max / min stable learning rate);
    - ``final_loss``, ``test_loss``, ``test_accuracy``: medians over the runs that did not
      diverge;
    - ``clip_rate``: fraction of applied steps, over all runs, at which a clip stage changed the
      gradient (0 for chains without clipping);
    - ``max_grad_norm``: largest finite raw gradient norm measured in any alive step of any run
      (non-finite gradients are counted by ``diverged`` instead);
    - ``diverged_at``: median divergence step over the runs that diverged;
    - ``sharpness_ratio``: median over runs of the largest sharpness / ``sharpness_bound``
      (e.g. λ_max η / 2) over alive steps where sharpness was computed; > 1 means the run
      crossed its stability threshold. The sharpness is the one the chain's bound bounds
      (:func:`gradlab.analysis.bounded_sharpness`, by the ``stability_rule`` coordinate: the
      preconditioned one for Adam); NaN for a chain with no known rule.

    Args:
      ds: a result Dataset.
      lr: name of the learning-rate axis (stable-lr columns are NaN if it is not swept).

    Returns:
      A DataFrame indexed by ``optimizer`` with the columns above, in that order.

    Example:
      >>> print(format_table(compare_optimizers(ds)))  # doctest: +SKIP
    """
    grid = list(grid_axes(ds))
    chains = ds["optimizer"]
    div = ds["diverged"].astype(bool)
    live = alive(ds)
    steps = [*grid, "step"]
    cols: dict[str, xr.DataArray] = {}
    with quiet_nan_warnings():
        cols["runs"] = xr.full_like(chains, math.prod(ds.sizes[d] for d in grid), dtype=int)
        cols["diverged"] = div.mean(grid)
        if lr in grid:
            rng = stable_lr_range(ds, over=[d for d in grid if d != lr], lr=lr)
            cols["max_stable_lr"] = rng["max_stable_lr"]
            cols["stable_decades"] = rng["stable_decades"]
        for name in ("final_loss", "test_loss", "test_accuracy"):
            if name in ds:
                cols[name] = surviving(ds, name).median(grid)
        if "clipped" in ds:
            cols["clip_rate"] = ds["clipped"].astype(float).where(applied(ds)).mean(steps)
        if "grad_norm" in ds:
            g = ds["grad_norm"]
            cols["max_grad_norm"] = g.where(live & np.isfinite(g)).max(steps)
        cols["diverged_at"] = time_to_explode(ds).median(grid)
        if "sharpness_bound" in ds:
            ratio = (bounded_sharpness(ds) / ds["sharpness_bound"]).where(live)
            cols["sharpness_ratio"] = ratio.max("step").median(grid)
    nan = xr.full_like(chains, np.nan, dtype=float)
    cols = {k: cols.get(k, nan) for k in TABLE_COLUMNS}
    index = pd.Index([str(c) for c in chains.values], name="optimizer")
    return pd.DataFrame({k: np.asarray(v.values) for k, v in cols.items()}, index=index)


def best_learning_rate(
    ds: xr.Dataset, metric: str = "final_loss", over: Axes = SEED, lr: str = LR
) -> xr.DataArray:
    r"""The grid learning rate with the best median result: the "suitable learning rate".

    A diverged run counts as the worst possible result (+∞ loss, −∞ accuracy), so a learning
    rate at which most seeds explode cannot win on the survivors alone:

    .. math:: \eta^\dagger = \arg\min_\eta \operatorname{median}_{a \in \texttt{over}}
       c(\eta, a), \qquad c = \text{metric, or } +\infty \text{ if the run diverged}

    (accuracies are maximised). Compare it with :func:`max_stable_lr`: the best learning rate
    usually sits just below the divergence boundary.

    Args:
      ds: a result Dataset with ``lr`` among its grid axes.
      metric: a per-run variable (``final_loss``, ``test_loss``, ``test_accuracy``, ...).
      over: grid axes to take the median over (default the seeds).
      lr: name of the learning-rate axis.

    Returns:
      A DataArray over ``optimizer`` and the grid axes not in ``over`` (nor ``lr``); NaN where
      every learning rate has a median run that diverged.

    Example:
      >>> best_learning_rate(ds).to_pandas()  # doctest: +SKIP
    """
    if lr not in grid_axes(ds):
        raise ValueError(f"{lr!r} is not a grid axis of this sweep; grid axes: {grid_axes(ds)}")
    dims = pool_axes(ds, over)
    if lr in dims:
        raise ValueError(f"{lr!r} cannot be pooled over; it is the axis being searched")
    with quiet_nan_warnings():
        cost = run_cost(ds, metric).median(dims) if dims else run_cost(ds, metric)
    finite = np.isfinite(cost)
    best = cost.where(finite, np.inf).argmin(lr)
    out = ds[lr].astype(float).isel({lr: best}).drop_vars(lr).where(finite.any(lr))
    return in_dataset_order(out, ds).rename("best_learning_rate")


def relative_cost(
    ds: xr.Dataset, baseline: str, metric: str = "final_loss", over: Axes = SEED
) -> xr.DataArray:
    r"""The price of a chain: its median result relative to a baseline chain at the same point.

    .. math:: \rho(\text{chain}, p) = \frac{\operatorname{median}_{a \in \texttt{over}}
       m(\text{chain}, p, a)}{\operatorname{median}_{a \in \texttt{over}} m(\text{baseline}, p, a)}

    medians over the runs that did not diverge, at each grid point p. For losses ρ > 1 means the
    chain ends worse than the baseline (the price of, e.g., clipping), ρ < 1 better; NaN where
    either chain has no surviving run.

    Args:
      ds: a result Dataset.
      baseline: the chain to compare against (a value of ``optimizer``).
      metric: a per-run variable.
      over: grid axes to take the medians over (default the seeds).

    Returns:
      A DataArray over ``optimizer`` and the grid axes not in ``over`` (1 for the baseline where
      it survived).

    Example:
      >>> relative_cost(ds, "sgd").median("learning_rate")  # doctest: +SKIP
    """
    if baseline not in ds["optimizer"].values:
        raise ValueError(f"baseline {baseline!r} is not a chain of the Dataset")
    if metric not in ds or "step" in ds[metric].dims:
        raise ValueError(f"{metric!r} is not a per-run variable of the Dataset")
    dims = pool_axes(ds, over)
    with quiet_nan_warnings():
        m = surviving(ds, metric).astype(float)
        m = m.median(dims) if dims else m
        ratio = m / m.sel(optimizer=baseline, drop=True)
    return in_dataset_order(ratio, ds).rename(f"{metric}_ratio")
