"""Which optimizer chain is most robust, and at what cost? Chains side by side.

:func:`compare_optimizers` is the one-row-per-chain-configuration table that ``gradlab run``
prints; :func:`best_learning_rate` finds the learning rate each chain should be run at, and
:func:`relative_cost` prices a chain (e.g. a clipped one) against a baseline at the same point.
Performance profiles across configurations are in :mod:`gradlab.analysis.profiles`.
"""

from __future__ import annotations

import itertools
from typing import Any

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
    chain_reads,
    counted_runs,
    grid_axes,
    hyperparameter_axes,
    in_dataset_order,
    pool_axes,
    quiet_nan_warnings,
    surviving,
    where_counted,
)
from gradlab.analysis.stability import stable_lr_range, time_to_explode
from gradlab.analysis.tables import TABLE_COLUMNS
from gradlab.analysis.training import (
    best_over,
    chance_accuracy,
    is_classifier,
    max_trained_lr,
    trains,
)

__all__ = ["best_learning_rate", "chain_rows", "compare_optimizers", "relative_cost"]


def chain_rows(ds: xr.Dataset, lr: str = LR) -> dict[str, dict[str, Any]]:
    """The rows of :func:`compare_optimizers`: each chain x the values of the axes it reads.

    A chain's *configuration* is the chain and one value of each optimizer hyperparameter axis
    it reads (:func:`~gradlab.analysis.selection.hyperparameter_axes`,
    :func:`~gradlab.analysis.selection.chain_reads`), other than the learning rate, that has
    more than one value: ``clip_by_global_norm|sgd`` over ``clip_norm = [1, 3, 10]`` has three,
    ``sgd`` one. A row's label is the chain, followed by its values where it has any, e.g.
    ``"clip_by_global_norm|sgd (clip_norm=3)"``.

    Args:
      ds: a result Dataset.
      lr: name of the learning-rate axis (searched within a row, never split into rows).

    Returns:
      ``{label: {"optimizer": chain, axis: value, ...}}`` in the Dataset's order.

    Example:
      >>> list(chain_rows(ds))  # doctest: +SKIP
      ['sgd', 'clip_by_global_norm|sgd (clip_norm=1)', 'clip_by_global_norm|sgd (clip_norm=3)']
    """
    rows: dict[str, dict[str, Any]] = {}
    axes = [a for a in hyperparameter_axes(ds) if a != lr and ds.sizes[a] > 1]
    for chain, reads in zip(ds["optimizer"].values.tolist(), _reads(ds, axes), strict=True):
        split = [a for a, r in zip(axes, reads, strict=True) if r]
        for values in itertools.product(*(ds[a].values.tolist() for a in split)):
            label = str(chain)
            if split:
                pairs = zip(split, values, strict=True)
                label += " (" + ", ".join(f"{a}={_fmt(v)}" for a, v in pairs) + ")"
            rows[label] = {"optimizer": chain, **dict(zip(split, values, strict=True))}
    return rows


def _reads(ds: xr.Dataset, axes: list[str]) -> list[list[bool]]:
    """Per chain, whether it reads each of ``axes``."""
    flags = [chain_reads(ds, a).values.tolist() for a in axes]
    return [[f[i] for f in flags] for i in range(ds.sizes["optimizer"])]


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def compare_optimizers(
    ds: xr.Dataset,
    lr: str = LR,
    best_by: str = "final_loss",
    margin: float = 0.1,
    accuracy_margin: float = 0.1,
    chance: float | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """One row per chain configuration: how robust it is, whether it trains, and its best result.

    Rows (:func:`chain_rows`): a chain x each value of the optimizer hyperparameter axes it
    reads other than the learning rate, so ``clip_by_global_norm|sgd`` over ``clip_norm =
    [1, 3, 10]`` gives three rows and ``sgd`` one, labelled by the chain alone (so
    ``table.loc["sgd", ...]`` works). Within a row, the runs pooled are those that count
    (:func:`~gradlab.analysis.selection.counted_runs`): ``sgd``'s copies along ``clip_norm`` are
    one run, and unfinished runs of a partial Dataset are left out. The seeds and the model axes
    (``init_scale``, ``bias_std``, ``activation``, ...) are pooled into each row; select them
    first (``ds.sel(init_scale=1.0)``) for a row per model. A Dataset without ``reads_<axis>``
    coordinates (older, or built by hand) has one row per chain, every axis pooled.

    Columns (NaN where the Dataset lacks the variable or no run qualifies), named as printed:

    - ``runs``: number of counted runs; ``diverged``: the fraction that diverged; ``trained``:
      the fraction that *trains* (:func:`~gradlab.analysis.trains`: not diverged, final loss at
      most (1 − ``margin``) times the step-0 loss, test accuracy at least chance +
      ``accuracy_margin``; NaN, as is ``max_trained_lr``, for a classifier's sweep that recorded
      no step-0 ``accuracy`` unless ``chance`` is given);
    - ``max_stable_lr``: largest grid learning rate at which *no* counted run diverged, for any
      seed or pooled axis (:func:`~gradlab.analysis.stable_lr_range`); ``max_trained_lr``: the
      largest at which every counted run trains (:func:`~gradlab.analysis.max_trained_lr`);
      ``stable_decades``: log10(max / min stable learning rate);
    - ``best_lr``: the learning rate with the best median ``best_by`` over the pooled runs,
      diverged runs counted as the worst (:func:`~gradlab.analysis.best_over`); there,
      ``best_final_loss`` and ``best_test_accuracy``: the median over the pooled runs, with
      ``_lower``/``_upper`` its order-statistic interval at ``confidence``
      (:func:`~gradlab.analysis.median_interval`; NaN below 6 runs at 95 %);
    - ``final_loss``, ``test_loss``, ``test_accuracy``: medians over the counted runs that did
      not diverge, at every learning rate;
    - ``clip_rate``: fraction of applied steps of the counted runs at which a clip stage changed
      the gradient (0 for chains without clipping);
    - ``max_grad_norm``: largest finite raw gradient norm in any alive step of a counted run
      (non-finite gradients are counted by ``diverged`` instead);
    - ``diverged_at``: median divergence step over the counted runs that diverged;
    - ``sharpness_ratio``: median over counted runs of the largest sharpness /
      ``sharpness_bound`` (e.g. λ_max η / 2) over alive steps where sharpness was computed;
      > 1 means the run crossed its stability threshold. The sharpness is the one the chain's
      bound bounds (:func:`gradlab.analysis.bounded_sharpness`: the preconditioned one for
      Adam); NaN for a chain with no known rule.

    Args:
      ds: a result Dataset.
      lr: name of the learning-rate axis (learning-rate columns are NaN if it is not swept).
      best_by: the per-run variable whose best median picks ``best_lr``.
      margin, accuracy_margin, chance: the rule of :func:`~gradlab.analysis.trains` (chance:
        :func:`~gradlab.analysis.chance_accuracy` of the whole Dataset when ``None``).
      confidence: coverage of the ``best_*`` intervals.

    Returns:
      A DataFrame indexed by row label (index name ``optimizer``) with the columns of
      :data:`~gradlab.analysis.TABLE_COLUMNS`, in that order; ``df.attrs["rows"]`` holds each
      label's chain and hyperparameter values (:func:`chain_rows`).

    Example:
      >>> print(format_table(compare_optimizers(ds)[list(SUMMARY_COLUMNS)]))  # doctest: +SKIP
    """
    rows = chain_rows(ds, lr)
    if chance is None:
        chance = chance_accuracy(ds)
    rule = {"margin": margin, "accuracy_margin": accuracy_margin, "chance": chance}
    index = {c: i for i, c in enumerate(ds["optimizer"].values.tolist())}
    table = []
    for values in rows.values():
        pick = {a: list(ds[a].values).index(v) for a, v in values.items() if a != "optimizer"}
        sub = ds.isel(optimizer=[index[values["optimizer"]]], **pick)
        table.append(_row(sub, lr, best_by, rule, confidence))
    df = pd.DataFrame(table, index=pd.Index(list(rows), name="optimizer"), columns=TABLE_COLUMNS)
    df["runs"] = df["runs"].astype(int)
    df.attrs["rows"] = rows
    return df


def _row(
    sub: xr.Dataset, lr: str, best_by: str, rule: dict[str, Any], confidence: float
) -> dict[str, float]:
    """The columns of one row of :func:`compare_optimizers` from its chain's sub-Dataset."""
    grid = list(grid_axes(sub))
    counted = counted_runs(sub)
    cols: dict[str, xr.DataArray] = {}
    with quiet_nan_warnings():
        n = counted.sum(grid)
        cols["runs"] = n
        cols["diverged"] = (sub["diverged"].astype(bool) & counted).sum(grid) / n
        if _judged(sub, rule):
            cols["trained"] = (trains(sub, **rule) & counted).sum(grid) / n
        if lr in grid:
            cols.update(_lr_columns(sub, lr, best_by, rule, confidence))
        for name in ("final_loss", "test_loss", "test_accuracy"):
            if name in sub:
                cols[name] = where_counted(surviving(sub, name), counted).median(grid)
        cols.update(_step_columns(sub, counted))
        cols["diverged_at"] = time_to_explode(sub).where(counted).median(grid)
    return {k: float(v.squeeze("optimizer")) for k, v in cols.items()}


def _judged(sub: xr.Dataset, rule: dict[str, Any]) -> bool:
    """Whether :func:`trains` can judge the runs: the variables it reads, and for a classifier
    a chance level (given, or from the step-0 accuracy)."""
    has = "loss" in sub and "final_loss" in sub
    return has and (rule["chance"] is not None or not is_classifier(sub))


def _lr_columns(
    sub: xr.Dataset, lr: str, best_by: str, rule: dict[str, Any], confidence: float
) -> dict[str, xr.DataArray]:
    """The learning-rate columns of a row: stable and trained ranges, the best result."""
    others = [d for d in grid_axes(sub) if d != lr]
    rng = stable_lr_range(sub, over=others, lr=lr)
    cols = {"max_stable_lr": rng["max_stable_lr"], "stable_decades": rng["stable_decades"]}
    if _judged(sub, rule):
        cols["max_trained_lr"] = max_trained_lr(sub, over=others, lr=lr, **rule)
    if best_by in sub:
        also = [m for m in ("final_loss", "test_accuracy") if m in sub]
        best = best_over(sub, best_by, lr, over=others, also=also, confidence=confidence)
        cols["best_lr"] = best["at"]
        for m in also:
            for tail in ("", "_lower", "_upper"):
                cols[f"best_{m}{tail}"] = best[f"{m}{tail}"]
    return cols


def _step_columns(sub: xr.Dataset, counted: xr.DataArray) -> dict[str, xr.DataArray]:
    """The per-step columns of a row: clip rate, largest gradient norm, sharpness ratio."""
    grid = list(grid_axes(sub))
    live = alive(sub) & counted
    steps = [*grid, "step"]
    cols = {}
    if "clipped" in sub:
        used = applied(sub) & counted
        cols["clip_rate"] = (sub["clipped"].astype(bool) & used).sum(steps) / used.sum(steps)
    if "grad_norm" in sub:
        g = sub["grad_norm"]
        cols["max_grad_norm"] = g.where(live & np.isfinite(g)).max(steps)
    if "sharpness_bound" in sub:
        ratio = (bounded_sharpness(sub) / sub["sharpness_bound"]).where(live)
        cols["sharpness_ratio"] = ratio.max("step").median(grid)
    return cols


def best_learning_rate(
    ds: xr.Dataset, metric: str = "final_loss", over: Axes = SEED, lr: str = LR
) -> xr.DataArray:
    r"""The grid learning rate with the best median result: the "suitable learning rate".

    A diverged run counts as the worst possible result (+∞ loss, −∞ accuracy), so a learning
    rate at which most seeds explode cannot win on the survivors alone:

    .. math:: \eta^\dagger = \arg\min_\eta \operatorname{median}_{a \in \texttt{over}}
       c(\eta, a), \qquad c = \text{metric, or } +\infty \text{ if the run diverged}

    (accuracies are maximised), medians over the runs that count
    (:func:`~gradlab.analysis.selection.counted_runs`); ties go to the smaller learning rate
    (the first on the grid). This is ``best_over(ds, metric, lr, over)["at"]``
    (:func:`~gradlab.analysis.best_over`, which also gives the result there with an interval).
    Compare it with :func:`max_stable_lr`: the best learning rate usually sits just below the
    divergence boundary.

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
    return best_over(ds, metric, lr, over)["at"].rename("best_learning_rate")


def relative_cost(
    ds: xr.Dataset, baseline: str, metric: str = "final_loss", over: Axes = SEED
) -> xr.DataArray:
    r"""The price of a chain: its median result relative to a baseline chain at the same point.

    .. math:: \rho(\text{chain}, p) = \frac{\operatorname{median}_{a \in \texttt{over}}
       m(\text{chain}, p, a)}{\operatorname{median}_{a \in \texttt{over}} m(\text{baseline}, p, a)}

    medians over the counted runs (:func:`~gradlab.analysis.selection.counted_runs`) that did
    not diverge, at each grid point p. For losses ρ > 1 means the
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
        m = where_counted(surviving(ds, metric), counted_runs(ds, dims))
        m = m.median(dims) if dims else m
        ratio = m / m.sel(optimizer=baseline, drop=True)
    return in_dataset_order(ratio, ds).rename(f"{metric}_ratio")
