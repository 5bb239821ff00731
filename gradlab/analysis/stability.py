"""Where do gradients explode? Divergence rates, stable learning rates, time to explode.

A run *diverges* at the first step whose loss or gradient is non-finite or whose loss exceeds
``divergence_factor`` times its initial loss (see the README, "The result Dataset"); the
Dataset records it as ``diverged`` and ``diverged_at``. Everything here counts those runs:
how many diverged at each grid point, with a confidence interval over the seeds
(:func:`divergence_rate`); which learning rates are safe (:func:`stable_lr_range`,
:func:`max_stable_lr`); when the runs exploded (:func:`time_to_explode`, :func:`survival`).

Every count and every worst case is over the runs that count
(:func:`~gradlab.analysis.selection.counted_runs`): a chain's copies along an axis it does not
read are one run, not several, and the unfinished runs of a partial Dataset count nowhere.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np
import xarray as xr

from gradlab.analysis.selection import (
    LR,
    SEED,
    Axes,
    alive,
    counted_runs,
    grid_axes,
    pool_axes,
    quiet_nan_warnings,
)

__all__ = [
    "divergence_rate",
    "max_stable_lr",
    "stable_lr_range",
    "survival",
    "time_to_explode",
    "wilson_interval",
]


def wilson_interval(k: Any, n: Any, confidence: float = 0.95) -> tuple[Any, Any]:
    r"""Wilson score interval for a binomial proportion ``k / n``.

    .. math::
       \tilde p = \frac{\hat p + z^2/2n}{1 + z^2/n}, \qquad
       \tilde p \pm \frac{z}{1 + z^2/n}\sqrt{\frac{\hat p(1-\hat p)}{n} + \frac{z^2}{4n^2}}

    with :math:`\hat p = k/n` and :math:`z` the standard normal quantile of
    :math:`(1 + \mathrm{confidence})/2`. Unlike the normal approximation it stays inside
    [0, 1] and is informative at k = 0 or k = n, which is where divergence rates live.

    Args:
      k: number of successes (here: diverged runs); scalar, array or DataArray.
      n: number of trials (runs); same shape as ``k`` or broadcastable. ``n = 0`` gives NaN.
      confidence: coverage of the interval, in (0, 1).

    Returns:
      ``(lower, upper)``, of the type of ``k / n``.

    Example:
      >>> lo, hi = wilson_interval(0, 4)
      >>> round(float(lo), 3), round(float(hi), 3)
      (0.0, 0.49)

    References:
      Wilson, *Probable inference, the law of succession, and statistical inference*, JASA 1927.
      Brown, Cai & DasGupta, *Interval estimation for a binomial proportion*, Stat. Sci. 2001.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z / denom * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return np.maximum(centre - half, 0.0), np.minimum(centre + half, 1.0)


def divergence_rate(ds: xr.Dataset, over: Axes = SEED, confidence: float = 0.95) -> xr.Dataset:
    r"""Fraction of runs that diverged, with a Wilson confidence interval.

    .. math:: \hat p = k / n, \quad k = \#\{\text{runs with } \texttt{diverged}\},
       \quad n = \#\{\text{runs}\}

    counted over the axes ``over`` (by default the seeds, so every other grid point keeps its own
    rate); the interval is :func:`wilson_interval`. Only the runs that count are counted
    (:func:`~gradlab.analysis.selection.counted_runs` with ``over`` pooled): pooling ``sgd``
    over ``clip_norm``, which it does not read, counts each of its runs once, and unfinished
    runs are in neither k nor n. A grid point without a counted run has n = 0 and a NaN rate.

    Args:
      ds: a result Dataset.
      over: grid axes to pool (default ``"seed"``; ``None`` pools nothing, a rate of 0 or 1 per
        run). ``"seed"`` is skipped when the sweep has no seed axis.
      confidence: coverage of the interval.

    Returns:
      A Dataset over ``optimizer`` and the remaining grid axes with ``rate``, ``lower``,
      ``upper`` (floats in [0, 1]), ``diverged`` (k) and ``runs`` (n).

    Example:
      >>> r = divergence_rate(ds)  # doctest: +SKIP
      >>> r.rate.sel(optimizer="sgd", learning_rate=1.0, init_scale=2.0)  # doctest: +SKIP

    References:
      Wilson, JASA 1927 (the interval).
    """
    dims = pool_axes(ds, over)
    counted = counted_runs(ds, dims)
    k = (ds["diverged"].astype(bool) & counted).sum(dims).astype(int)
    n = counted.sum(dims).astype(int)
    lower, upper = wilson_interval(k, n, confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = k / n
    return xr.Dataset(
        {"rate": rate, "lower": lower, "upper": upper, "diverged": k, "runs": n},
        attrs={"over": ", ".join(dims), "confidence": confidence},
    )


def stable_lr_range(ds: xr.Dataset, over: Axes = SEED, lr: str = LR) -> xr.Dataset:
    r"""The learning rates at which no run diverged: largest, smallest, and width in decades.

    A learning rate η is *stable* for a chain (at a point of the axes not pooled) iff no run with
    that η diverged, across every value of the axes in ``over``:

    .. math:: \eta_{\max} = \max\{\eta : \neg\,\texttt{diverged}(\eta, a)\;
       \forall a \in \texttt{over}\}, \qquad
       \text{decades} = \log_{10}(\eta_{\max} / \eta_{\min})

    with η_min the smallest stable η. Only grid values are candidates, so the answer is as fine
    as the grid; the true boundary lies between ``max_stable_lr`` and the next grid value.
    NaN where no learning rate is stable. The "for every a" is over the runs that count
    (:func:`~gradlab.analysis.selection.counted_runs`), and an η needs at least one counted
    run to be stable: an η none of whose runs has finished is not known to be stable.

    Args:
      ds: a result Dataset with ``lr`` among its grid axes.
      over: grid axes that must all be divergence-free (default ``"seed"``); pass every other
        grid axis for one number per chain.
      lr: name of the learning-rate axis.

    Returns:
      A Dataset over ``optimizer`` and the grid axes not in ``over`` (and not ``lr``) with
      ``max_stable_lr``, ``min_stable_lr`` and ``stable_decades``.

    Raises:
      ValueError: ``lr`` is not a grid axis, or is in ``over``.

    Example:
      >>> stable_lr_range(ds).max_stable_lr.sel(init_scale=1.0)  # doctest: +SKIP
    """
    if lr not in grid_axes(ds):
        raise ValueError(f"{lr!r} is not a grid axis of this sweep; grid axes: {grid_axes(ds)}")
    dims = pool_axes(ds, over)
    if lr in dims:
        raise ValueError(f"{lr!r} cannot be pooled over; it is the axis being searched")
    counted = counted_runs(ds, dims)
    div = ds["diverged"].astype(bool) & counted
    stable = (counted.any(dims) & ~div.any(dims)) if dims else (counted & ~div)
    lrs = ds[lr].astype(float).where(stable)
    with quiet_nan_warnings():
        hi, lo = lrs.max(lr), lrs.min(lr)
        decades = np.log10(hi / lo)
    order = [d for d in ds["diverged"].dims if d in stable.dims and d != lr]
    out = xr.Dataset({"max_stable_lr": hi, "min_stable_lr": lo, "stable_decades": decades})
    return out.transpose(*order)


def max_stable_lr(ds: xr.Dataset, over: Axes = SEED, lr: str = LR) -> xr.DataArray:
    """Largest grid learning rate at which no run (no seed) diverged.

    See :func:`stable_lr_range` for the definition; this is its ``max_stable_lr``.

    Args:
      ds: a result Dataset with a ``learning_rate`` grid axis.
      over: grid axes that must all be divergence-free (default ``"seed"``).
      lr: name of the learning-rate axis.

    Returns:
      A DataArray over ``optimizer`` and the grid axes other than ``lr`` and ``over``;
      NaN where every learning rate diverged.

    Example:
      >>> max_stable_lr(ds).to_pandas()  # rows: chains, columns: init_scale  # doctest: +SKIP
    """
    return stable_lr_range(ds, over=over, lr=lr)["max_stable_lr"]


def time_to_explode(ds: xr.Dataset) -> xr.DataArray:
    """Step at which each run diverged; NaN for runs that never did.

    Its distribution over seeds (or any axes) answers *how fast* gradients explode; see
    :func:`survival` for the fraction of runs still alive at each step. Unfinished runs are NaN
    (they have not diverged); before pooling over an axis a chain does not read, drop its copies
    with :func:`~gradlab.analysis.selection.counted_runs`.

    Args:
      ds: a result Dataset.

    Returns:
      A float DataArray over ``(optimizer, *grid)``, in training steps.

    Example:
      >>> time_to_explode(ds).median("seed")  # doctest: +SKIP
    """
    t = ds["diverged_at"].where(ds["diverged"].astype(bool)).astype(float)
    return t.rename("time_to_explode").assign_attrs(units="steps")


def survival(ds: xr.Dataset, over: Axes = None) -> xr.DataArray:
    r"""Fraction of runs still alive at each step (one minus the CDF of the divergence step).

    .. math:: S(s) = \frac{1}{n}\sum_r \mathrm{alive}(r, s)

    over the n runs that count (:func:`~gradlab.analysis.selection.counted_runs` with the
    pooled axes): an unfinished run is in neither the sum nor n.

    Args:
      ds: a result Dataset.
      over: grid axes to pool; ``None`` (default) pools all of them, giving one curve per chain.

    Returns:
      A DataArray over ``optimizer``, the axes not pooled, and ``step``, in [0, 1].

    Example:
      >>> survival(ds).sel(optimizer="sgd").plot()  # doctest: +SKIP
    """
    dims = list(grid_axes(ds)) if over is None else pool_axes(ds, over)
    counted = counted_runs(ds, dims)
    with quiet_nan_warnings():
        share = (alive(ds) & counted).sum(dims) / counted.sum(dims)
    return share.rename("survival")
