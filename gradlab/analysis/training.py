r"""Did a run train, and how well does a chain do at its best? "Trains" versus "survived".

Not diverging is not training: a clipped run at a huge learning rate can survive every step at
chance accuracy. :func:`trains` is the documented notion of a run that *trains* (its loss fell
by a margin and, for classifiers, its test accuracy rose above chance by a margin);
:func:`max_trained_lr` is the largest learning rate at which every run trains, beside
:func:`~gradlab.analysis.max_stable_lr` (the largest at which none diverged). :func:`best_over`
finds the best median of a metric over one axis (the best learning rate), with an
order-statistic confidence interval (:func:`median_interval`), so that notebooks do not hand-roll
``where(~diverged).median("seed").max("learning_rate")`` (which ignores the runs that diverged).

Every count, median and interval here is over the runs that count
(:func:`~gradlab.analysis.selection.counted_runs`): a chain's copies along an axis it does not
read are one run, and unfinished runs are left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import xarray as xr
from scipy import stats

from gradlab import schema
from gradlab.analysis.selection import (
    LR,
    SEED,
    Axes,
    counted_runs,
    grid_axes,
    in_dataset_order,
    pool_axes,
    quiet_nan_warnings,
    run_cost,
)

__all__ = [
    "best_over",
    "chance_accuracy",
    "is_classifier",
    "max_trained_lr",
    "mean_interval",
    "median_interval",
    "trains",
]


def _check_margin(name: str, value: float, upper: float) -> None:
    if not 0.0 <= value < upper:
        raise ValueError(f"{name} must be in [0, {upper}), got {value}")


def chance_accuracy(ds: xr.Dataset) -> float | None:
    """The accuracy of the untrained networks: the chance level :func:`trains` compares with.

    The median, over the runs that count (:func:`~gradlab.analysis.selection.counted_runs`), of
    the minibatch ``accuracy`` at the first logged step (step 0, before any update): about 1/K
    for K balanced classes, the frequency of the class a collapsed network predicts otherwise.

    Args:
      ds: a result Dataset.

    Returns:
      The accuracy, or ``None`` when the Dataset records no classification accuracy (no
      ``accuracy`` or ``test_accuracy`` variable, or no finite step-0 accuracy: regression).

    Example:
      >>> chance_accuracy(ds)  # about 0.1 on MNIST  # doctest: +SKIP
    """
    if "test_accuracy" not in ds or "accuracy" not in ds:
        return None
    start = ds["accuracy"].isel(step=0, drop=True).astype(float).where(counted_runs(ds))
    if not bool(np.isfinite(start.values).any()):
        return None
    with quiet_nan_warnings():
        return float(start.median())


def is_classifier(ds: xr.Dataset) -> bool:
    """The Dataset records a finite test accuracy (NaN for regression and diverged runs)."""
    return "test_accuracy" in ds and bool(np.isfinite(ds["test_accuracy"].values).any())


def trains(
    ds: xr.Dataset,
    margin: float = 0.1,
    accuracy_margin: float = 0.1,
    chance: float | None = None,
) -> xr.DataArray:
    r"""Which runs *train*: they did not diverge and ended clearly better than they started.

    A run r trains iff all of

    .. math:: \neg\,\texttt{diverged}_r, \qquad
       \texttt{final\_loss}_r \le (1 - m)\, L_r(0), \qquad
       \texttt{test\_accuracy}_r \ge a_{\text{chance}} + m_a

    where :math:`L_r(0)` is the run's minibatch ``loss`` at the first logged step (step 0: the
    untrained network), m = ``margin`` (default 0.1: the loss fell by at least 10 %) and
    :math:`m_a` = ``accuracy_margin`` (default 0.1: ten points above chance). The accuracy
    condition applies to classifiers (the Dataset has ``test_accuracy`` and ``accuracy`` with a
    finite value); for regression only the loss condition applies. The chance accuracy
    :math:`a_{\text{chance}}` is ``chance`` if given (e.g. 1/K for K balanced classes), else the
    accuracy of the untrained networks (:func:`chance_accuracy`): the median over the runs
    that count of the minibatch ``accuracy`` at the first logged step. The accuracy condition
    catches what the loss one cannot: a network initialised with a large scale starts far
    above the loss of a uniform prediction and can fall below (1 − m) L(0) by collapsing to
    it, still at chance.

    A classifier's sweep without the per-step ``accuracy`` (``metrics = ["none"]``) has no
    step-0 accuracy: pass ``chance`` (an error says so), rather than skip the accuracy condition
    and call a collapsed network trained.

    A run that survived (did not diverge) but fails either condition did not train. Runs with a
    NaN ``final_loss`` (unfinished runs of a partial Dataset) do not train.

    Args:
      ds: a result Dataset with ``diverged``, ``final_loss`` and the per-step ``loss``.
      margin: the relative fall of the loss required, in [0, 1).
      accuracy_margin: the test accuracy required above chance, in [0, 1).
      chance: the chance accuracy; ``None`` estimates it from the step-0 accuracies.

    Returns:
      A boolean DataArray ``trains`` over ``(optimizer, *grid)``.

    Raises:
      ValueError: a margin out of range, a variable missing, or a classifier's chance level
        unknown (no step-0 accuracy and no ``chance``).

    Example:
      >>> trains(ds).sel(optimizer="clip_by_global_norm|sgd").mean("seed")  # doctest: +SKIP
    """
    _check_margin("margin", margin, 1.0)
    _check_margin("accuracy_margin", accuracy_margin, 1.0)
    for name in ("final_loss", "loss"):
        if name not in ds:
            raise ValueError(f"no variable {name!r} in the Dataset; trains() needs it")
    initial = ds["loss"].isel(step=0, drop=True)
    ok = ~ds["diverged"].astype(bool) & (ds["final_loss"] <= (1.0 - margin) * initial)
    if chance is None:
        chance = chance_accuracy(ds)
        if chance is None and is_classifier(ds):
            raise ValueError(
                "chance: the Dataset has a classifier's test_accuracy but no step-0 minibatch "
                "accuracy to estimate the chance level from (a sweep with metrics = ['none']); "
                "pass chance= (1/K for K balanced classes)"
            )
    if chance is not None and "test_accuracy" in ds:
        ok = ok & (ds["test_accuracy"] >= chance + accuracy_margin)
    return in_dataset_order(ok, ds).rename("trains")


def max_trained_lr(
    ds: xr.Dataset,
    over: Axes = SEED,
    lr: str = LR,
    margin: float = 0.1,
    accuracy_margin: float = 0.1,
    chance: float | None = None,
) -> xr.DataArray:
    r"""Largest grid learning rate at which every counted run *trains* (:func:`trains`).

    .. math:: \eta_{\mathrm{train}} = \max\{\eta : \text{run}(\eta, a) \text{ trains }
       \forall a \in \texttt{over}\}

    over the runs that count (:func:`~gradlab.analysis.selection.counted_runs`), with at least
    one of them at η. Compare :func:`~gradlab.analysis.max_stable_lr`, the same with "did not
    diverge" for "trains": η_train ≤ max_stable_lr, and the gap is the learning rates at which
    runs survive without learning. As fine as the grid; NaN where no learning rate trains.

    Args:
      ds: a result Dataset with ``lr`` among its grid axes.
      over: grid axes whose runs must all train (default the seeds).
      lr: name of the learning-rate axis.
      margin, accuracy_margin, chance: the :func:`trains` rule.

    Returns:
      A DataArray over ``optimizer`` and the grid axes not in ``over`` (nor ``lr``).

    Example:
      >>> max_trained_lr(ds, over=["seed", "init_scale"]).to_pandas()  # doctest: +SKIP
    """
    dims = _searched(ds, lr, over)
    counted = counted_runs(ds, dims)
    ok = trains(ds, margin, accuracy_margin, chance)
    fails = counted & ~ok
    good = (counted.any(dims) & ~fails.any(dims)) if dims else (counted & ok)
    with quiet_nan_warnings():
        out = ds[lr].astype(float).where(good).max(lr)
    return in_dataset_order(out, ds).rename("max_trained_lr")


def _searched(ds: xr.Dataset, axis: str, over: Axes) -> list[str]:
    """The pooled axes of a search along ``axis``, after checking ``axis`` is searchable."""
    if axis not in grid_axes(ds):
        raise ValueError(f"{axis!r} is not a grid axis of this sweep; grid axes: {grid_axes(ds)}")
    dims = pool_axes(ds, over)
    if axis in dims:
        raise ValueError(f"{axis!r} cannot be pooled over; it is the axis being searched")
    return dims


def _median_ci(x: np.ndarray, confidence: float) -> np.ndarray:
    """Median and order-statistic interval of the non-NaN values of ``x``; and their count."""
    x = np.sort(x[~np.isnan(x)])
    n = len(x)
    if n == 0:
        return np.array([np.nan, np.nan, np.nan, 0.0])
    tail, j = 0.0, 0  # tail = P(B <= j - 1), B ~ Binomial(n, 1/2)
    while j < n // 2:
        tail_next = tail + math.comb(n, j) / 2.0**n
        if 2.0 * tail_next > 1.0 - confidence:
            break
        tail, j = tail_next, j + 1
    with np.errstate(invalid="ignore"):
        med = float(np.median(x))
    lo, hi = (x[j - 1], x[n - j]) if j > 0 else (np.nan, np.nan)
    return np.array([med, lo, hi, float(n)])


def mean_interval(da: xr.DataArray, dims: Sequence[str], confidence: float = 0.95) -> xr.Dataset:
    r"""The mean over ``dims`` with a Student-t confidence interval.

    With the n non-NaN values :math:`x_1, \dots, x_n`, mean :math:`\bar x` and sample standard
    deviation s (ddof 1):

    .. math:: \bar x \pm t_{n-1,\,(1+\gamma)/2}\; s / \sqrt{n}

    with γ = ``confidence``. Exact for normal values, approximate otherwise. NaN values are
    skipped (pass the samples that do not count as NaN); with fewer than two the bounds are NaN.

    Args:
      da: the values.
      dims: the dims to pool (e.g. ``["seed"]``).
      confidence: coverage, in (0, 1).

    Returns:
      A Dataset over the other dims with ``mean``, ``lower``, ``upper`` and ``samples`` (n).

    Example:
      >>> x = xr.DataArray([1.0, 2.0, 3.0], dims="seed")
      >>> round(float(mean_interval(x, ["seed"])["upper"]), 3)
      4.484

    References:
      Student, "The probable error of a mean", Biometrika 1908.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    dims = list(dims)
    x = da.astype(float)
    with quiet_nan_warnings():
        n = x.notnull().sum(dims) if dims else x.notnull().astype(int)
        mean = x.mean(dims) if dims else x
        sd = x.std(dims, ddof=1) if dims else xr.full_like(x, np.nan)
    t = stats.t.ppf(0.5 + confidence / 2.0, np.maximum(n.values - 1, 1))
    half = (sd / np.sqrt(n.where(n > 0)) * t).where(n >= 2)
    out = xr.Dataset({"mean": mean, "lower": mean - half, "upper": mean + half, "samples": n})
    return out.assign_attrs(confidence=confidence, interval="Student t")


def median_interval(da: xr.DataArray, dims: Sequence[str], confidence: float = 0.95) -> xr.Dataset:
    r"""The median over ``dims`` with a distribution-free (order-statistic) confidence interval.

    With the n non-NaN values sorted, :math:`x_{(1)} \le \dots \le x_{(n)}`, the interval is
    :math:`[x_{(j)}, x_{(n+1-j)}]` with the largest j whose coverage

    .. math:: P(x_{(j)} \le \mathrm{median} \le x_{(n+1-j)}) = 1 - 2\,P(B \le j - 1),
       \qquad B \sim \mathrm{Binomial}(n, \tfrac12)

    is at least ``confidence`` (exact for any continuous distribution). Small samples cannot
    reach it: at 95 % the interval needs n ≥ 6 (then [min, max], coverage 96.9 %); below, the
    bounds are NaN rather than a narrower interval claiming a coverage it lacks. NaN values are
    skipped (pass the runs that do not count as NaN); ±∞ values (a diverged run as the worst
    result) are ordered like any other, so a bound at ∞ means the interval reaches a run that
    diverged.

    Args:
      da: the values.
      dims: the dims to pool (e.g. ``["seed"]``); empty: each value on its own (n = 1).
      confidence: coverage, in (0, 1).

    Returns:
      A Dataset over the other dims with ``median``, ``lower``, ``upper`` and ``runs`` (n).

    Example:
      >>> median_interval(xr.DataArray(np.arange(6.0), dims="seed"), ["seed"])["lower"].item()
      0.0

    References:
      Conover, *Practical Nonparametric Statistics*, 3rd ed., 1999, section 3.2 (the
      confidence interval for a quantile).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    dims = list(dims)
    x = da.astype(float).stack(_runs=dims) if dims else da.astype(float).expand_dims("_runs", -1)
    x = x.transpose(..., "_runs").reset_coords(drop=True)
    if "_runs" in x.indexes:
        x = x.drop_vars([c for c in x.coords if c in (*dims, "_runs")])
    stats = np.apply_along_axis(_median_ci, -1, x.values, confidence)
    other = [d for d in x.dims if d != "_runs"]
    coords = {d: x[d] for d in other if d in x.coords}
    names = ("median", "lower", "upper", "runs")
    out = {n: (other, stats[..., i]) for i, n in enumerate(names)}
    ds = xr.Dataset(out, coords=coords)
    ds["runs"] = ds["runs"].astype(int)
    return ds.assign_attrs(confidence=confidence, interval="order statistic")


def best_over(
    ds: xr.Dataset,
    metric: str = "final_loss",
    axis: str = LR,
    over: Axes = SEED,
    also: Sequence[str] = (),
    confidence: float = 0.95,
) -> xr.Dataset:
    r"""The best median of ``metric`` over the values of ``axis``, where it is, and its interval.

    A diverged run counts as the worst possible result (+∞ loss, −∞ accuracy;
    :func:`~gradlab.analysis.selection.run_cost`), so a value at which half the runs explode
    cannot win on its survivors:

    .. math:: v^\dagger = \arg\min_{v \in \texttt{axis}}\;
       \operatorname{median}_{a \in \texttt{over}} c(v, a)

    with c the metric (negated where higher is better), medians over the runs that count
    (:func:`~gradlab.analysis.selection.counted_runs`). Ties go to the first value of the axis.
    At :math:`v^\dagger` the median and its order-statistic interval over the pooled runs
    (:func:`median_interval`) are reported for ``metric`` and for each of ``also`` (e.g. the
    test accuracy at the learning rate with the best final loss), in the metric's own units.

    Args:
      ds: a result Dataset with ``axis`` among its grid axes.
      metric: a per-run variable to optimise (``final_loss``, ``test_accuracy``, ...).
      axis: the grid axis searched (default the learning rate).
      over: grid axes pooled into each median (default the seeds).
      also: other per-run variables to report at the best value.
      confidence: coverage of the intervals.

    Returns:
      A Dataset over ``optimizer`` and the grid axes not in ``over`` (nor ``axis``) with ``at``
      (the best value of ``axis``), ``runs`` (counted runs there), and for ``metric`` and each of
      ``also`` the median under its own name with ``<name>_lower`` and ``<name>_upper``. All
      NaN where every value of ``axis`` has a median run that diverged.

    Example:
      >>> best = best_over(ds, "final_loss", also=["test_accuracy"])  # doctest: +SKIP
      >>> best["at"], best["test_accuracy"]  # doctest: +SKIP
    """
    dims = _searched(ds, axis, over)
    counted = counted_runs(ds, dims)
    stats = median_interval(run_cost(ds, metric).where(counted), dims, confidence)
    med = stats["median"]
    found = np.isfinite(med).any(axis)
    index = med.where(np.isfinite(med), np.inf).argmin(axis)
    out = xr.Dataset(
        {
            "at": ds[axis].astype(float).isel({axis: index}).drop_vars(axis).where(found),
            "runs": stats["runs"].isel({axis: index}).where(found, 0),
        }
    )
    for name in dict.fromkeys([metric, *also]):
        at = stats if name == metric else None
        if at is None:
            at = median_interval(run_cost(ds, name).where(counted), dims, confidence)
        at = at.isel({axis: index})
        sign = -1.0 if schema.higher_is_better(name) else 1.0
        lo, hi = ("upper", "lower") if sign < 0 else ("lower", "upper")
        out[name] = (sign * at["median"]).where(found)
        out[f"{name}_lower"] = (sign * at[lo]).where(found)
        out[f"{name}_upper"] = (sign * at[hi]).where(found)
    out = out.drop_vars(axis, errors="ignore")
    order = ["optimizer", *grid_axes(ds), ...]
    out = out.transpose(*[d for d in order if d is ... or d in out.dims])
    return out.assign_attrs(
        metric=metric, axis=axis, over=", ".join(dims), confidence=confidence,
        interval="order statistic",
    )  # fmt: skip
