"""Dolan-Moré performance profiles: how often is each chain (nearly) the best?

Each configuration of a sweep is a *problem* and each optimizer chain a *solver*; the profile of
a chain is the fraction of problems on which its cost is within a factor τ of the best chain's
(:func:`performance_profile`), and its normalised area is one score per chain
(:func:`profile_score`), as in the AlgoPerf benchmark.

References:
  Dolan & Moré, *Benchmarking optimization software with performance profiles*,
  Math. Program. 2002. Dahl et al., *Benchmarking Neural Network Training Algorithms*, 2023.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from gradlab import schema
from gradlab.analysis.selection import LR, surviving
from gradlab.analysis.stability import max_stable_lr

__all__ = ["performance_profile", "profile_score"]


def _profile_costs(ds: xr.Dataset, metric: str | xr.DataArray, lr: str) -> xr.DataArray:
    """Cost of each chain on each problem (lower is better; NaN = failed)."""
    if isinstance(metric, xr.DataArray):
        return metric
    if metric == "stability":
        return 1.0 / max_stable_lr(ds, lr=lr)
    if metric == "test_error":
        return 1.0 - surviving(ds, "test_accuracy")
    if metric not in ds:
        raise ValueError(f"no variable {metric!r} in the Dataset")
    if "step" in ds[metric].dims:
        raise ValueError(f"{metric!r} is a per-step variable; profiles need one cost per run")
    if schema.higher_is_better(metric):
        raise ValueError(
            f"{metric!r} is higher-is-better; profiles need a cost (lower is better): use "
            "'test_error' (1 − test_accuracy) or pass a DataArray of costs"
        )
    return surviving(ds, metric)


def _known_problems(ds: xr.Dataset, costs: xr.DataArray) -> np.ndarray:
    """Which problems (the non-optimizer cells of ``costs``, flattened) every chain has finished:
    all of a problem's runs (any run, where the cost pools axes such as the seeds)."""
    other = [d for d in costs.dims if d != "optimizer"]
    if "finished" not in ds:
        return np.ones(int(np.prod([costs.sizes[d] for d in other])), bool)
    done = ds["finished"].astype(bool)
    pooled = [d for d in done.dims if d not in costs.dims]
    done = (done.any(pooled) if pooled else done).all("optimizer")
    done = done.broadcast_like(costs.isel(optimizer=0, drop=True))
    return done.transpose(*other).values.reshape(-1)


def performance_profile(
    ds: xr.Dataset,
    metric: str | xr.DataArray = "final_loss",
    taus: Sequence[float] | np.ndarray | None = None,
    lr: str = LR,
) -> xr.DataArray:
    r"""Dolan-Moré performance profiles of the optimizer chains across configurations.

    Each configuration p (a grid point, seeds included) is a *problem*; chain s has cost
    :math:`t_{p,s}` on it (lower is better; a diverged run has :math:`t = \infty`). A chain's
    copies along an axis it does not read stay: on the problem ``clip_norm = 3`` the cost of
    ``sgd`` is that of its one run at those other values, which is its true cost there, and the
    clipped chain's differs. A problem on which any chain's run has not finished (a partial
    Dataset's ``finished``) is left out: it is not a failure, it is not known yet. With the
    performance ratio :math:`r_{p,s} = t_{p,s} / \min_{s'} t_{p,s'}`, the profile is

    .. math:: \rho_s(\tau) = \frac{1}{|P|}\,\#\{p : r_{p,s} \le \tau\}

    the fraction of problems on which chain s is within a factor τ of the best chain:
    :math:`\rho_s(1)` is how often it wins, :math:`\rho_s(\infty)` how often it succeeds.

    Metrics: any per-run variable where lower is better (``"final_loss"``, ``"test_loss"``, ...;
    :func:`gradlab.schema.higher_is_better` says which are not) with diverged runs failed;
    ``"test_error"`` = 1 − ``test_accuracy``; ``"stability"``: cost 1 / ``max_stable_lr``
    across seeds, one problem per point of the non-lr, non-seed axes (ratio r = how many times
    smaller the chain's largest stable learning rate is than the best chain's); or a DataArray
    of costs with an ``optimizer`` dim.

    Args:
      ds: a result Dataset.
      metric: what to compare, see above.
      taus: the τ grid (≥ 1); default: 256 log-spaced points from 1 to beyond the largest finite
        ratio (at least 2).
      lr: name of the learning-rate axis (for ``"stability"``).

    Returns:
      A DataArray ``rho`` over ``(optimizer, tau)`` with attrs ``metric`` and ``problems``.

    Raises:
      ValueError: unknown or per-step metric, a higher-is-better metric (an accuracy: use
        ``"test_error"``), or negative costs (ratios need costs ≥ 0).

    Example:
      >>> rho = performance_profile(ds, "final_loss")  # doctest: +SKIP
      >>> profile_score(rho)  # doctest: +SKIP

    References:
      Dolan & Moré, *Benchmarking optimization software with performance profiles*,
      Math. Program. 2002.
      Dahl et al., *Benchmarking Neural Network Training Algorithms* (AlgoPerf), 2023.
    """
    costs = _profile_costs(ds, metric, lr)
    other = [d for d in costs.dims if d != "optimizer"]
    known = _known_problems(ds, costs)
    c = costs.transpose("optimizer", *other).values.astype(float)
    c = c.reshape(c.shape[0], -1)[:, known]
    c = np.where(np.isfinite(c), c, np.inf)
    if (c < 0).any():
        raise ValueError("performance profiles need non-negative costs")
    best = c.min(axis=0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = c / best
    r = np.where((c == best) & np.isfinite(c), 1.0, r)
    r = np.where(np.isfinite(c), r, np.inf)
    if taus is None:
        finite = r[np.isfinite(r)]
        tau_max = max(2.0, 1.05 * float(finite.max())) if finite.size else 2.0
        taus = np.geomspace(1.0, tau_max, 256)
    taus = np.asarray(taus, dtype=float)
    rho = (r[:, :, None] <= taus[None, None, :]).mean(axis=1)
    name = metric if isinstance(metric, str) else str(metric.name or "cost")
    return xr.DataArray(
        rho,
        dims=("optimizer", "tau"),
        coords={"optimizer": costs["optimizer"].values, "tau": taus},
        name="rho",
        attrs={"metric": name, "problems": r.shape[1]},
    )


def profile_score(profile: xr.DataArray) -> xr.DataArray:
    r"""AlgoPerf-style score of a performance profile: its normalised area.

    .. math:: B_s = \frac{1}{\tau_{\max} - 1}\int_1^{\tau_{\max}} \rho_s(\tau)\,d\tau

    1 means best on every problem; 0 means never within τ_max of the best.

    Args:
      profile: the output of :func:`performance_profile`.

    Returns:
      A DataArray over ``optimizer`` in [0, 1].

    Example:
      >>> profile_score(performance_profile(ds)).to_pandas()  # doctest: +SKIP

    References:
      Dahl et al., *Benchmarking Neural Network Training Algorithms*, 2023 (section 4.5).
    """
    tau = profile["tau"]
    span = float(tau[-1] - tau[0])
    if span == 0:  # a single τ: the profile there
        return profile.isel(tau=0, drop=True).rename("score")
    return (profile.integrate("tau") / span).rename("score")
