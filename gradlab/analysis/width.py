r"""Width: does every layer keep its scale, and the best learning rate its place, as a net widens?

Two checks researchers run on a parametrization (standard, NTK, μP), both read from a sweep
with a ``width`` axis (a grid axis, or one joined with :func:`gradlab.analysis.concat_sweeps`)
and seeds:

- the **coordinate check** (:func:`coord_check`): per layer, the size of a coordinate (the RMS
  of the pre-activation h^l, ``act_rms_layer``) after t steps against width n, as the log-log
  slope k in :math:`\mathrm{rms}(h^l_t) \propto n^k`. Under μP every layer's slope is ≈ 0
  (every coordinate stays Θ(1)); under the standard parametrization trained at a fixed learning
  rate the output layer's grows (Yang & Hu 2021, Yang et al. 2022, Fig. 5);
- **learning-rate transfer** (:func:`optimal_lr`, :func:`lr_transfer_exponent`): the learning
  rate with the best median result at each width, and the exponent α in
  :math:`\eta^*(n) \propto n^{\alpha}`. μP's optimum stays put (α ≈ 0); the standard
  parametrization's shifts with width (α < 0 for SGD and Adam on MLPs; Yang et al. 2022,
  Fig. 1; Haas et al. 2025 analyse SP with cross-entropy, where the shift can be smaller).

Confidence intervals are over seeds: a Student-t interval of the per-seed slopes for the
coordinate check, and a percentile bootstrap over seeds (resampled with replacement, the same
seeds at every width) for the optimal learning rate and α.

References:
  Yang & Hu, "Tensor Programs IV: Feature Learning in Infinite-Width Neural Networks", 2021.
  Yang et al., "Tensor Programs V: Tuning Large Neural Networks via Zero-Shot Hyperparameter
  Transfer", 2022.
  Haas et al., "On the Surprising Effectiveness of Large Learning Rates under Standard Width
  Scaling", 2025.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from gradlab.analysis.fits import power_law_exponent
from gradlab.analysis.selection import (
    LR,
    SEED,
    alive,
    counted_runs,
    grid_axes,
    in_dataset_order,
    quiet_nan_warnings,
    run_cost,
    select_values,
)
from gradlab.analysis.training import mean_interval

__all__ = ["WIDTH", "coord_check", "lr_transfer_exponent", "optimal_lr"]


WIDTH = "width"


def _check_axis(ds: xr.Dataset, name: str, what: str) -> None:
    grid = grid_axes(ds)
    if name not in grid:
        raise ValueError(f"{what} needs a {name!r} grid axis; grid axes: {list(grid)}")
    if ds.sizes[name] < 2:
        raise ValueError(f"{what} needs at least two values of {name!r}, got {ds[name].values}")


def coord_check(
    ds: xr.Dataset,
    step: int | Sequence[int] | None = None,
    var: str = "act_rms_layer",
    width: str = WIDTH,
    confidence: float = 0.95,
) -> xr.Dataset:
    r"""The coordinate check: each layer's coordinate size against width, and its slope.

    For every layer l, logged step t and every other grid point, with :math:`s_l(n)` the value
    of ``var`` (by default the RMS of the pre-activation h^l) at width n:

    .. math:: s_l(n) \propto n^{k_l}, \qquad
       k_l = \text{least-squares slope of } \log s_l \text{ against } \log n

    fitted per seed (:func:`gradlab.analysis.power_law_exponent`), then averaged over seeds
    with a Student-t interval. k ≈ 0: the layer's coordinates keep their size as the network
    widens (μP's promise for every layer after any number of steps); k > 0: they blow up with
    width (the standard parametrization's output layer trained at a width-independent learning
    rate). Runs that diverged before step t, and unfinished runs of a partial Dataset, do not
    count.

    Args:
      ds: a result Dataset with a ``width`` grid axis (two or more values).
      step: the logged step(s) to check (default: every logged step).
      var: a per-layer, per-step variable: ``act_rms_layer`` (the coordinates' size),
        ``act_change_rms_layer`` (their change since initialisation, recorded with the
        ``feature_change`` metric set: Tensor Programs V's coordinate check of Δh),
        ``delta_rms_layer``, ...
      width: the name of the width axis.
      confidence: the level of the interval over seeds.

    Returns:
      A Dataset over ``optimizer``, the grid axes other than ``width`` and ``seed``, ``step``
      and ``layer`` with ``slope``, ``slope_low``, ``slope_high`` (NaN bounds with fewer than
      two seeds), and ``size``: the median of ``var`` over seeds at each width (what the
      figure draws; :func:`gradlab.plots.coord_check`).

    Raises:
      ValueError: no width axis with two values, or ``var`` is not per layer and per step.

    Example:
      >>> cc = coord_check(ds, step=[0, 10])  # doctest: +SKIP
      >>> cc["slope"].sel(optimizer="adam", step=10).values  # one slope per layer  # doctest: +SKIP
    """
    _check_axis(ds, width, "coord_check")
    if var not in ds or not {"step", "layer"} <= set(ds[var].dims):
        raise ValueError(f"{var!r} is not a per-step, per-layer variable of the Dataset")
    da = ds[var].where(alive(ds) & counted_runs(ds, pooled=SEED))
    if step is not None:
        da = select_values(da.to_dataset(), {"step": list(np.atleast_1d(step))})[var]
    slopes = power_law_exponent(da, width)
    with quiet_nan_warnings():
        size = da.median(SEED) if SEED in da.dims else da
    if SEED in slopes.dims:
        interval = mean_interval(slopes, [SEED], confidence)
        mean, low, high = interval["mean"], interval["lower"], interval["upper"]
    else:
        mean, low, high = slopes, xr.full_like(slopes, np.nan), xr.full_like(slopes, np.nan)
    out = xr.Dataset({"slope": mean, "slope_low": low, "slope_high": high, "size": size})
    return out.drop_vars([c for c in out.coords if str(c).startswith("reads_")])


def _best_lr(cost: xr.DataArray, lr: str) -> xr.DataArray:
    """The learning rate of the lowest cost along ``lr`` (NaN where every cost is infinite)."""
    finite = np.isfinite(cost)
    best = cost.where(finite, np.inf).argmin(lr)
    return cost[lr].astype(float).isel({lr: best}).drop_vars(lr).where(finite.any(lr))


def _median_cost(ds: xr.Dataset, metric: str, lr: str) -> xr.DataArray:
    """Each run's cost (:func:`run_cost`), NaN for a run that does not count."""
    if lr not in grid_axes(ds):
        raise ValueError(f"{lr!r} is not a grid axis of this sweep; grid axes: {grid_axes(ds)}")
    return run_cost(ds, metric).where(counted_runs(ds, pooled=SEED))


def _bootstrap_optima(
    cost: xr.DataArray, lr: str, n_boot: int, rng: int
) -> tuple[xr.DataArray, xr.DataArray]:
    """The optimal learning rate of the median cost over seeds, and its ``n_boot`` bootstrap
    replicates (seeds resampled with replacement, the same draw at every other grid point)."""
    with quiet_nan_warnings():
        point = _best_lr(cost.median(SEED), lr)
        n = cost.sizes[SEED]
        draws = np.random.default_rng(rng).integers(0, n, size=(n_boot, n))
        resampled = cost.isel({SEED: xr.DataArray(draws, dims=("bootstrap", SEED))})
        replicates = _best_lr(resampled.median(SEED), lr)
    return point, replicates


def optimal_lr(
    ds: xr.Dataset,
    metric: str = "final_loss",
    over: str = WIDTH,
    lr: str = LR,
    confidence: float = 0.95,
    n_boot: int = 1000,
    rng: int = 0,
) -> xr.Dataset:
    r"""The learning rate with the best median result at each width, with a bootstrap CI.

    .. math:: \eta^*(n) = \arg\min_\eta \operatorname{median}_{\text{seeds}} c(\eta, n),
       \qquad c = \text{metric, or } +\infty \text{ if the run diverged}

    (accuracies are maximised; a diverged run counts as the worst result, so a learning rate
    where most seeds explode cannot win on its survivors). The interval is the percentile
    bootstrap over seeds: seeds are resampled with replacement ``n_boot`` times and η* found
    again; it is made of grid values.

    Args:
      ds: a result Dataset with ``lr``, ``over`` (e.g. ``width``) and ``seed`` grid axes.
      metric: a per-run variable (``final_loss``, ``test_loss``, ``test_accuracy``, ...).
      over: the axis along which the optimum is followed (one optimum per value; every other
        grid axis but ``lr`` and ``seed`` is kept as well).
      lr: the learning-rate axis.
      confidence: the level of the bootstrap interval.
      n_boot: bootstrap replicates.
      rng: seed of the bootstrap draws (the result is deterministic).

    Returns:
      A Dataset over ``optimizer`` and the grid axes but ``lr`` and ``seed`` with
      ``optimal_lr`` and its bounds ``optimal_lr_low`` and ``optimal_lr_high``.

    Example:
      >>> optimal_lr(ds).optimal_lr.sel(optimizer="adam").to_series()  # doctest: +SKIP
    """
    _check_axis(ds, over, "optimal_lr")
    _check_axis(ds, SEED, "optimal_lr")
    point, replicates = _bootstrap_optima(_median_cost(ds, metric, lr), lr, n_boot, rng)
    tail = (1 - confidence) / 2
    with quiet_nan_warnings():
        logs = np.log(replicates)
        low = np.exp(logs.quantile(tail, "bootstrap", method="lower")).drop_vars("quantile")
        high = np.exp(logs.quantile(1 - tail, "bootstrap", method="higher")).drop_vars("quantile")
    out = xr.Dataset(
        {"optimal_lr": point, "optimal_lr_low": low, "optimal_lr_high": high},
    )
    return out.map(lambda da: in_dataset_order(da, ds))


def lr_transfer_exponent(
    ds: xr.Dataset,
    metric: str = "final_loss",
    over: str = WIDTH,
    lr: str = LR,
    confidence: float = 0.95,
    n_boot: int = 1000,
    rng: int = 0,
) -> xr.Dataset:
    r"""The exponent α of the optimal learning rate's drift with width: η*(n) ∝ n^α.

    .. math:: \alpha = \text{least-squares slope of } \log \eta^*(n) \text{ against } \log n

    with η*(n) from :func:`optimal_lr`. The interval is the percentile bootstrap over seeds:
    each replicate resamples the seeds (the same draw at every width), finds η* at every width
    and fits α again. α ≈ 0 (an interval containing 0): the learning rate transfers across
    width (μP); α < 0 with an interval excluding 0: wider networks need smaller learning rates
    (the standard parametrization; Yang et al. 2022, Fig. 1).

    Args:
      ds: a result Dataset with ``lr``, ``over`` and ``seed`` grid axes.
      metric: the per-run variable whose median is optimised.
      over: the width axis.
      lr: the learning-rate axis.
      confidence: the level of the bootstrap interval.
      n_boot: bootstrap replicates.
      rng: seed of the bootstrap draws.

    Returns:
      A Dataset over ``optimizer`` and the grid axes other than ``lr``, ``seed`` and ``over``
      with ``alpha``, ``alpha_low`` and ``alpha_high``; NaN where fewer than two widths have
      an optimum inside the grid.

    Example:
      >>> lr_transfer_exponent(ds).alpha.to_series()  # doctest: +SKIP
    """
    _check_axis(ds, over, "lr_transfer_exponent")
    _check_axis(ds, SEED, "lr_transfer_exponent")
    point, replicates = _bootstrap_optima(_median_cost(ds, metric, lr), lr, n_boot, rng)
    alpha = power_law_exponent(point, over)
    samples = power_law_exponent(replicates, over)
    tail = (1 - confidence) / 2
    with quiet_nan_warnings():
        low = samples.quantile(tail, "bootstrap").drop_vars("quantile")
        high = samples.quantile(1 - tail, "bootstrap").drop_vars("quantile")
    out = xr.Dataset({"alpha": alpha, "alpha_low": low, "alpha_high": high})
    return out.map(lambda da: in_dataset_order(da.rename(None), ds))
