"""Tables and numbers from a sweep's result Dataset.

Every function here is a pure function of the ``xarray.Dataset`` that ``gl.run`` / ``gl.load``
return (dims ``optimizer``, the grid axes, ``step``, ``layer``); nothing here trains, compiles or
writes. The questions of DESIGN.md map onto them:

- *where do gradients explode?* :func:`divergence_rate` (with Wilson intervals across seeds),
  :func:`stable_lr_range` / :func:`max_stable_lr`, :func:`time_to_explode`, :func:`survival`;
- *which optimizer chain is most robust, at what cost?* :func:`compare_optimizers` (one row per
  chain, printed by the CLI via :func:`format_table`), :func:`performance_profile`;
- *does the measurement agree with theory?* :func:`empirical_chi1`, :func:`chi1_profile`,
  :func:`predicted_lr_boundary` (2/λ), :func:`critical_init_scale` (the mean-field critical line).

Conventions. A run is *alive* at step ``s`` iff ``diverged_at == -1`` or ``s <= diverged_at``
(the values at ``diverged_at`` are measured, later ones are NaN). ``over=`` names the grid axes a
function reduces (pools) over; ``"seed"`` may be named even when the sweep has no seed axis (a
sweep without seeds has one run per configuration).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "TABLE_COLUMNS",
    "alive",
    "best_learning_rate",
    "chi1_profile",
    "claims_table",
    "compare_optimizers",
    "concat_sweeps",
    "critical_init_scale",
    "crossing",
    "divergence_rate",
    "edge_of_stability",
    "empirical_chi1",
    "fire_rate",
    "fixed_point_chi1",
    "format_table",
    "grid_axes",
    "markdown_table",
    "max_stable_lr",
    "performance_profile",
    "power_law_exponent",
    "predicted_lr_boundary",
    "profile_score",
    "relative_cost",
    "stable_lr_range",
    "survival",
    "time_to_explode",
    "trainable_depth",
    "typical_grad_norm",
    "wilson_interval",
]

LR = "learning_rate"
SEED = "seed"

Axes = str | Sequence[str] | None

# Columns of `compare_optimizers`, with the header and number format used by the text tables.
TABLE_COLUMNS: dict[str, tuple[str, str]] = {
    "runs": ("runs", "int"),
    "diverged": ("diverged", "pct"),
    "max_stable_lr": ("max stable lr", "g"),
    "stable_decades": ("lr decades", "f2"),
    "final_loss": ("final loss", "g"),
    "test_loss": ("test loss", "g"),
    "test_accuracy": ("test acc", "pct"),
    "clip_rate": ("clipped", "pct"),
    "max_grad_norm": ("max |g|", "g"),
    "diverged_at": ("div. step", "g"),
    "sharpness_ratio": ("λ/bound", "g"),
}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's warnings for reductions over all-NaN slices (NaN is the honest answer)."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        warnings.filterwarnings("ignore", "divide by zero", RuntimeWarning)
        yield


def grid_axes(ds: xr.Dataset) -> tuple[str, ...]:
    """The grid axes of a result Dataset, in the sweep's order.

    The grid axes are the dims of the per-run variable ``diverged`` other than ``optimizer``
    (``step`` and ``layer`` are never grid axes).

    Args:
      ds: a result Dataset.

    Returns:
      The axis names, e.g. ``("seed", "learning_rate", "init_scale")``.

    Example:
      >>> grid_axes(ds)  # doctest: +SKIP
      ('seed', 'learning_rate', 'init_scale', 'clip_norm')
    """
    return tuple(str(d) for d in ds["diverged"].dims if d != "optimizer")


def _canonical(da: xr.DataArray, ds: xr.Dataset) -> xr.DataArray:
    """Transpose to the Dataset's order: optimizer, grid axes, step, layer."""
    order = ["optimizer", *grid_axes(ds), "step", "layer"]
    return da.transpose(*[d for d in order if d in da.dims], ...)


def _axes(ds: xr.Dataset, over: Axes) -> list[str]:
    """Validate ``over`` against the grid axes; ``"seed"`` may be absent from the sweep."""
    names = [] if over is None else [over] if isinstance(over, str) else list(over)
    grid = grid_axes(ds)
    unknown = [n for n in names if n not in grid and n != SEED]
    if unknown:
        raise ValueError(f"{unknown} not grid axes of this sweep; grid axes: {list(grid)}")
    return [n for n in names if n in grid]


def alive(ds: xr.Dataset) -> xr.DataArray:
    r"""Which runs are still alive (not yet diverged) at each logged step.

    .. math:: \mathrm{alive}(r, s) = [\,d_r = -1\,] \lor [\,s \le d_r\,],
       \quad d_r = \texttt{diverged\_at}

    The step at which a run diverges counts as alive: its values are the measured ones (the loss
    may be huge or infinite); later steps are NaN.

    Args:
      ds: a result Dataset with ``diverged_at`` and a ``step`` coordinate.

    Returns:
      A boolean DataArray with dims ``(optimizer, *grid, step)``.

    Example:
      >>> ds["clipped"].where(alive(ds)).mean()  # clip-fire rate  # doctest: +SKIP
    """
    at = ds["diverged_at"]
    return (at < 0) | (ds["step"] <= at)


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
    rate); the interval is :func:`wilson_interval`.

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
    dims = _axes(ds, over)
    div = ds["diverged"].astype(bool)
    k = div.sum(dims).astype(int)
    n = xr.full_like(k, math.prod(ds.sizes[d] for d in dims), dtype=int)
    lower, upper = wilson_interval(k, n, confidence)
    return xr.Dataset(
        {"rate": k / n, "lower": lower, "upper": upper, "diverged": k, "runs": n},
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
    NaN where no learning rate is stable.

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
    dims = _axes(ds, over)
    if lr in dims:
        raise ValueError(f"{lr!r} cannot be pooled over; it is the axis being searched")
    div = ds["diverged"].astype(bool)
    stable = ~div.any(dims) if dims else ~div
    lrs = ds[lr].astype(float).where(stable)
    with _quiet():
        hi, lo = lrs.max(lr), lrs.min(lr)
        decades = np.log10(hi / lo)
    order = [d for d in stable.dims if d != lr]
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
    :func:`survival` for the fraction of runs still alive at each step.

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

    Args:
      ds: a result Dataset.
      over: grid axes to pool; ``None`` (default) pools all of them, giving one curve per chain.

    Returns:
      A DataArray over ``optimizer``, the axes not pooled, and ``step``, in [0, 1].

    Example:
      >>> survival(ds).sel(optimizer="sgd").plot()  # doctest: +SKIP
    """
    dims = list(grid_axes(ds)) if over is None else _axes(ds, over)
    return alive(ds).mean(dims).rename("survival")


def _masked_runs(ds: xr.Dataset, name: str) -> xr.DataArray:
    """A per-run variable with diverged runs set to NaN."""
    return ds[name].where(~ds["diverged"].astype(bool))


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
    - ``clip_rate``: fraction of alive steps, over all runs, at which a clip stage changed the
      gradient (0 for chains without clipping);
    - ``max_grad_norm``: largest finite raw gradient norm measured in any alive step of any run
      (non-finite gradients are counted by ``diverged`` instead);
    - ``diverged_at``: median divergence step over the runs that diverged;
    - ``sharpness_ratio``: median over runs of the largest sharpness / ``sharpness_bound``
      (e.g. λ_max η / 2) over alive steps where sharpness was computed; > 1 means the run
      crossed its stability threshold.

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
    with _quiet():
        cols["runs"] = xr.full_like(chains, math.prod(ds.sizes[d] for d in grid), dtype=int)
        cols["diverged"] = div.mean(grid)
        if lr in grid:
            rng = stable_lr_range(ds, over=[d for d in grid if d != lr], lr=lr)
            cols["max_stable_lr"] = rng["max_stable_lr"]
            cols["stable_decades"] = rng["stable_decades"]
        for name in ("final_loss", "test_loss", "test_accuracy"):
            if name in ds:
                cols[name] = _masked_runs(ds, name).median(grid)
        if "clipped" in ds:
            cols["clip_rate"] = ds["clipped"].astype(float).where(live).mean(steps)
        if "grad_norm" in ds:
            g = ds["grad_norm"]
            cols["max_grad_norm"] = g.where(live & np.isfinite(g)).max(steps)
        cols["diverged_at"] = time_to_explode(ds).median(grid)
        if "sharpness_bound" in ds:
            ratio = (_bounded_sharpness(ds) / ds["sharpness_bound"]).where(live)
            cols["sharpness_ratio"] = ratio.max("step").median(grid)
    nan = xr.full_like(chains, np.nan, dtype=float)
    cols = {k: cols.get(k, nan) for k in TABLE_COLUMNS}
    index = pd.Index([str(c) for c in chains.values], name="optimizer")
    return pd.DataFrame({k: np.asarray(v.values) for k, v in cols.items()}, index=index)


def _bounded_sharpness(ds: xr.Dataset) -> xr.DataArray:
    """The curvature that ``sharpness_bound`` bounds, per chain: λ_max(P⁻¹H) for Adam chains
    (``precond_sharpness``), λ_max(H) (``sharpness``) for the others; NaN where not measured."""
    from gradlab.optim import stability_rule

    nan = xr.full_like(ds["sharpness_bound"], np.nan)
    plain = ds["sharpness"] if "sharpness" in ds else nan
    pre = ds["precond_sharpness"] if "precond_sharpness" in ds else nan
    is_adam = xr.DataArray(
        [_rule(stability_rule, str(c)) == "adam" for c in ds["optimizer"].values],
        coords={"optimizer": ds["optimizer"]},
    )
    return xr.where(is_adam, pre, plain)


def _rule(stability_rule: Any, chain: str) -> str | None:
    try:
        return stability_rule(chain)
    except ValueError:  # a callable chain's name: no known rule
        return None


# ---------------------------------------------------------------------------------------------
# Text tables


def _format_cell(value: Any, kind: str) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float | np.floating) and np.isnan(value)):
        return "-"
    if kind == "int":
        return str(int(value))
    if kind == "pct":
        return f"{100 * float(value):.3g}%"
    if kind == "f2":
        return f"{float(value):.2f}"
    if isinstance(value, int | np.integer | bool | np.bool_):
        return str(value)
    return f"{float(value):.3g}"


def _cells(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells (index first) of a table."""
    headers = [str(df.index.name or "")] + [TABLE_COLUMNS.get(c, (c, ""))[0] for c in df.columns]
    kinds = [TABLE_COLUMNS.get(c, (c, "g"))[1] for c in df.columns]
    rows = [
        [str(idx)] + [_format_cell(v, k) for v, k in zip(row, kinds, strict=True)]
        for idx, row in zip(df.index, df.itertuples(index=False), strict=True)
    ]
    return headers, rows


def format_table(df: pd.DataFrame) -> str:
    """Plain-text table with aligned columns, as printed by ``gradlab run``.

    The index (chain names) is left-aligned, numbers right-aligned; fractions in percent, other
    numbers to 3 significant digits, NaN as ``-``. Known columns of :func:`compare_optimizers`
    get short human headers (:data:`TABLE_COLUMNS`).

    Args:
      df: a table, typically from :func:`compare_optimizers`.

    Returns:
      The table as a string, one line per row plus a header and a rule, no trailing newline.

    Example:
      >>> df = pd.DataFrame({"diverged": [0.25]}, index=pd.Index(["sgd"], name="optimizer"))
      >>> print(format_table(df))
      optimizer  diverged
      ---------  --------
      sgd             25%
    """
    headers, rows = _cells(df)
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Iterable[str]) -> str:
        parts = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line("-" * w for w in widths), *map(line, rows)])


def markdown_table(df: pd.DataFrame) -> str:
    """GitHub-flavoured markdown version of :func:`format_table` (same formatting).

    Args:
      df: a table, typically from :func:`compare_optimizers`.

    Returns:
      The markdown table, numbers right-aligned, ending in a newline.

    Example:
      >>> df = pd.DataFrame({"diverged": [0.25]}, index=pd.Index(["sgd"], name="optimizer"))
      >>> print(markdown_table(df), end="")
      | optimizer | diverged |
      |:--|--:|
      | sgd | 25% |
    """
    headers, rows = _cells(df)

    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    out = ["| " + " | ".join(map(esc, headers)) + " |"]
    out.append("|:--|" + "--:|" * (len(headers) - 1))
    out += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Performance profiles


def _profile_costs(ds: xr.Dataset, metric: str | xr.DataArray, lr: str) -> xr.DataArray:
    """Cost of each chain on each problem (lower is better; NaN = failed)."""
    if isinstance(metric, xr.DataArray):
        return metric
    if metric == "stability":
        return 1.0 / max_stable_lr(ds, lr=lr)
    if metric == "test_error":
        return 1.0 - _masked_runs(ds, "test_accuracy")
    if metric not in ds:
        raise ValueError(f"no variable {metric!r} in the Dataset")
    if "step" in ds[metric].dims:
        raise ValueError(f"{metric!r} is a per-step variable; profiles need one cost per run")
    return _masked_runs(ds, metric)


def performance_profile(
    ds: xr.Dataset,
    metric: str | xr.DataArray = "final_loss",
    taus: Sequence[float] | np.ndarray | None = None,
    lr: str = LR,
) -> xr.DataArray:
    r"""Dolan-Moré performance profiles of the optimizer chains across configurations.

    Each configuration p (a grid point, seeds included) is a *problem*; chain s has cost
    :math:`t_{p,s}` on it (lower is better; a diverged run has :math:`t = \infty`). With the
    performance ratio :math:`r_{p,s} = t_{p,s} / \min_{s'} t_{p,s'}`, the profile is

    .. math:: \rho_s(\tau) = \frac{1}{|P|}\,\#\{p : r_{p,s} \le \tau\}

    the fraction of problems on which chain s is within a factor τ of the best chain:
    :math:`\rho_s(1)` is how often it wins, :math:`\rho_s(\infty)` how often it succeeds.

    Metrics: any per-run variable (``"final_loss"``, ``"test_loss"``, ...) with diverged runs
    failed; ``"test_error"`` = 1 − ``test_accuracy``; ``"stability"``: cost 1 / ``max_stable_lr``
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
      ValueError: unknown metric, or negative costs (ratios need costs ≥ 0).

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
    c = costs.transpose("optimizer", *other).values.astype(float)
    c = c.reshape(c.shape[0], -1)
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


# ---------------------------------------------------------------------------------------------
# Theory


def chi1_profile(ds: xr.Dataset, step: int = 0) -> xr.DataArray:
    r"""Empirical χ1 of every consecutive layer pair: the backward signal's growth per layer.

    .. math:: \hat\chi_1^{(l)} = \frac{\mathrm{rms}(\delta_{l-1})^2}{\mathrm{rms}(\delta_l)^2},
       \qquad \delta_l = \partial\mathcal L / \partial h_l, \quad l = 1, \dots, L-1

    In mean field (equal widths) :math:`E[\delta_{l-1}^2] = \chi_1 E[\delta_l^2]`, so > 1
    means gradients grow towards the input (explode), < 1 that they vanish. The last pair
    (l = L − 1) involves the output layer, whose width differs, and picks up a factor
    :math:`N_{L-1}/N_{L-2}` besides χ1.

    Args:
      ds: a result Dataset with ``delta_rms_layer``.
      step: the logged step (coordinate value) to read; theory describes initialisation, 0.

    Returns:
      A DataArray over ``(optimizer, *grid, layer)`` with ``layer = l`` labelling the pair
      (l − 1, l).

    Example:
      >>> chi1_profile(ds).median("seed")  # doctest: +SKIP

    References:
      Schoenholz et al., *Deep Information Propagation*, ICLR 2017 (eq. 9).
    """
    d2 = ds["delta_rms_layer"].sel(step=step) ** 2
    prev, nxt = d2.isel(layer=slice(None, -1)), d2.isel(layer=slice(1, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = nxt.copy(data=prev.data / nxt.data)
    return ratio.rename("chi1").assign_attrs(
        description="rms(delta[l-1])^2 / rms(delta[l])^2, pair (l-1, l)"
    )


def empirical_chi1(ds: xr.Dataset, step: int = 0) -> xr.DataArray:
    r"""Measured χ1: geometric mean of the layer-to-layer backward-signal ratio, hidden layers.

    With layers 0..L−1 (L − 1 the output layer), the pairs used are the *interior* ones, both
    layers hidden: (l − 1, l) for l = 1, ..., L − 2. The output pair is excluded (see
    :func:`chi1_profile`). The geometric mean telescopes:

    .. math:: \hat\chi_1 = \Big(\prod_{l=1}^{L-2}\hat\chi_1^{(l)}\Big)^{1/(L-2)}
       = \left(\frac{\mathrm{rms}(\delta_0)^2}{\mathrm{rms}(\delta_{L-2})^2}\right)^{1/(L-2)}

    to be compared with mean-field :math:`\chi_1 = \sigma_w^2 E[\phi'(\sqrt{q^*}z)^2]`
    (ReLU: σ_w²/2), critical at χ1 = 1.

    Args:
      ds: a result Dataset with ``delta_rms_layer`` (at least two hidden layers).
      step: the logged step to read (default 0, the initialisation theory describes).

    Returns:
      A DataArray over ``(optimizer, *grid)``; NaN for runs with fewer than two hidden layers.
      L is counted per run (layers padded with NaN, for models shallower than the deepest in
      the sweep, are ignored).

    Raises:
      ValueError: no model in the sweep has two hidden layers, so there is no interior pair.

    Example:
      >>> empirical_chi1(ds).median("seed").sel(optimizer="sgd")  # doctest: +SKIP

    References:
      Poole et al., *Exponential expressivity in deep neural networks through transient chaos*,
      NeurIPS 2016. Schoenholz et al., *Deep Information Propagation*, ICLR 2017.
    """
    depth = ds["delta_rms_layer"].sel(step=step).notnull().sum("layer")  # padding is NaN
    if int(depth.max()) < 3:
        raise ValueError(
            "empirical χ1 needs at least two hidden layers (3 layers); "
            f"the deepest model here has {int(depth.max())}"
        )
    pairs = chi1_profile(ds, step)
    index = xr.DataArray(np.arange(1, ds.sizes["layer"]), dims="layer")
    with np.errstate(invalid="ignore", divide="ignore"), _quiet():
        logs = np.log(pairs).where(index <= depth - 2)
        out = np.exp(logs.mean("layer"))
    return out.rename("chi1").assign_attrs(step=step, pairs="(l-1, l), l = 1..L-2")


def predicted_lr_boundary(
    ds: xr.Dataset,
    momentum: float | None = None,
    over: Axes = (SEED, LR),
) -> xr.DataArray:
    r"""Largest stable learning rate predicted from the measured initial sharpness.

    Gradient descent on a quadratic with top Hessian eigenvalue λ diverges iff η > 2/λ; heavy-ball
    momentum β moves the edge to (2 + 2β)/λ:

    .. math:: \eta^* = \frac{2 + 2\beta}{\lambda_{\max}(\theta_0)}

    λ is read at the first logged step where sharpness was computed (the initialisation, which
    does not depend on the learning rate) and its median taken over ``over``. The prediction is
    for (heavy-ball) GD; adaptive chains (Adam) have other thresholds. Overlay it on a
    :func:`gradlab.plots.phase_diagram` with ``learning_rate`` on an axis.

    Args:
      ds: a result Dataset with ``sharpness``.
      momentum: β; ``None`` uses the ``momentum`` grid axis if there is one, else 0.
      over: axes to take the median of λ over (default seeds and learning rates).

    Returns:
      A DataArray ``lr_boundary`` over ``optimizer`` and the grid axes not in ``over``.

    Example:
      >>> fig = phase_diagram(ds, "learning_rate", "init_scale",  # doctest: +SKIP
      ...                     overlay={"2/λ₀": predicted_lr_boundary(ds)})

    References:
      Cohen et al., *Gradient Descent on Neural Networks Typically Occurs at the Edge of
      Stability*, ICLR 2021.
    """
    if "sharpness" not in ds:
        raise ValueError("no 'sharpness' in the Dataset; add 'sharpness' to the sweep's metrics")
    s = ds["sharpness"]
    computed = s.notnull().any([d for d in s.dims if d != "step"]).values
    if not computed.any():
        raise ValueError("sharpness was never computed")
    lam = s.isel(step=int(np.argmax(computed)), drop=True)
    with _quiet():
        lam = lam.median(_axes(ds, over))
    if momentum is None:
        beta: Any = ds["momentum"] if "momentum" in grid_axes(ds) else 0.0
    else:
        beta = momentum
    return _canonical((2 + 2 * beta) / lam, ds).rename("lr_boundary")


def critical_init_scale(
    bias_std: Sequence[float] | np.ndarray | xr.DataArray,
    critical_sigma_w2: Callable[[float], float],
) -> xr.DataArray:
    r"""The mean-field order/chaos line as init scale σ_w against bias std σ_b.

    The theory is written in variances, the grid in standard deviations:

    .. math:: \sigma_w^*(\sigma_b) = \sqrt{\sigma_{w,\mathrm{crit}}^2(\sigma_b^2)}

    where χ1(σ_w², σ_b²) = 1. ``init_scale`` is σ_w for ``init="normal"`` and
    ``"lecun_normal"`` (variance σ_w²/fan_in); for other schemes rescale first.

    Args:
      bias_std: σ_b values (e.g. ``ds["bias_std"]``).
      critical_sigma_w2: maps σ_b² to the critical σ_w², e.g.
        ``lambda sb2: gl.theory.critical_sigma_w2("tanh", sb2)``.

    Returns:
      A DataArray ``init_scale`` over ``bias_std``: a line to overlay on a phase diagram of
      ``bias_std`` × ``init_scale``.

    Example:
      >>> crit = critical_init_scale([0.0, 0.5], lambda sb2: 2.0)  # ReLU: σ_w² = 2
      >>> [round(float(v), 4) for v in crit]
      [1.4142, 1.4142]

    References:
      Poole et al., NeurIPS 2016. Schoenholz et al., ICLR 2017.
    """
    sb = np.asarray(bias_std, dtype=float).ravel()
    sw = np.sqrt([critical_sigma_w2(float(b) ** 2) for b in sb])
    return xr.DataArray(sw, dims="bias_std", coords={"bias_std": sb}, name="init_scale")


# ---------------------------------------------------------------------------------------------
# Studies across sweeps, interventions and regimes (used by the research notebooks)


def concat_sweeps(results: Mapping[Any, xr.Dataset], dim: str) -> xr.Dataset:
    """Join sweeps that differ in a model field the grid cannot hold (depth, width) on a new axis.

    ``hidden`` is part of the compiled program and not a grid axis, so a study over depth runs
    one sweep per depth; this stacks them as if ``dim`` had been a grid axis, placed right after
    ``optimizer``. Per-layer variables of shallower models are padded with NaN (as the engine
    pads models of unequal depth), so :func:`empirical_chi1` and the plots keep working.

    Args:
      results: axis value -> result Dataset, e.g. ``{10: ds10, 20: ds20}``; every Dataset must
        have the same chains and grid axes.
      dim: name of the new axis (must not be a dim already).

    Returns:
      One Dataset with ``dim`` among its grid axes. Its ``spec`` attr holds each sweep's spec
      under a ``# <dim> = <value>`` line; ``wall_time_s`` and ``compile_time_s`` are summed.

    Raises:
      ValueError: no results, ``dim`` already a dim, or the sweeps' chains or grid axes differ.

    Example:
      >>> ds = concat_sweeps({d: gl.run(spec_of(d)) for d in (10, 20)}, "depth")  # doctest: +SKIP
      >>> grid_axes(ds)  # doctest: +SKIP
      ('depth', 'seed', 'init_scale')
    """
    if not results:
        raise ValueError("concat_sweeps needs at least one result Dataset")
    items = list(results.items())
    first = items[0][1]
    for value, ds in items:
        if dim in ds.dims:
            raise ValueError(f"{dim!r} is already a dim of the sweep at {value!r}")
        if grid_axes(ds) != grid_axes(first):
            raise ValueError(
                f"grid axes differ: {list(grid_axes(ds))} at {value!r}, "
                f"{list(grid_axes(first))} at {items[0][0]!r}"
            )
        if list(ds["optimizer"].values) != list(first["optimizer"].values):
            raise ValueError(f"optimizer chains differ at {value!r}")
    parts = [ds.drop_attrs().expand_dims({dim: [value]}) for value, ds in items]
    out = xr.concat(parts, dim=dim, join="outer", combine_attrs="drop")
    out = out.transpose("optimizer", dim, ...)
    for name in ("diverged", "diverged_at"):
        out[name] = out[name].astype(first[name].dtype)
    if "clipped" in first and out["clipped"].dtype != bool:
        out["clipped"] = out["clipped"].fillna(False).astype(bool)
    specs = "".join(f"# {dim} = {value}\n{ds.attrs.get('spec', '')}" for value, ds in items)
    out.attrs = {k: v for k, v in first.attrs.items() if k not in ("spec",)}
    out.attrs["spec"] = specs
    for key in ("wall_time_s", "compile_time_s"):
        if all(key in ds.attrs for _, ds in items):
            out.attrs[key] = float(sum(ds.attrs[key] for _, ds in items))
    return out


def _higher_is_better(metric: str) -> bool:
    return "accuracy" in metric


def _run_cost(ds: xr.Dataset, metric: str) -> xr.DataArray:
    """A per-run cost, lower is better, with diverged runs at +∞ (accuracies are negated)."""
    if metric not in ds:
        raise ValueError(f"no variable {metric!r} in the Dataset")
    if "step" in ds[metric].dims:
        raise ValueError(f"{metric!r} is a per-step variable; this needs one value per run")
    value = ds[metric].astype(float)
    if _higher_is_better(metric):
        value = -value
    return value.where(~ds["diverged"].astype(bool), np.inf)


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
    dims = _axes(ds, over)
    if lr in dims:
        raise ValueError(f"{lr!r} cannot be pooled over; it is the axis being searched")
    with _quiet():
        cost = _run_cost(ds, metric).median(dims) if dims else _run_cost(ds, metric)
    finite = np.isfinite(cost)
    best = cost.where(finite, np.inf).argmin(lr)
    out = ds[lr].astype(float).isel({lr: best}).drop_vars(lr).where(finite.any(lr))
    return _canonical(out, ds).rename("best_learning_rate")


def fire_rate(ds: xr.Dataset, var: str = "clipped", over: Axes = SEED) -> xr.DataArray:
    r"""How often an intervention fired: the fraction of alive logged steps where ``var`` is set.

    .. math:: f = \frac{\sum_{r, s} \mathrm{alive}(r, s)\,[\texttt{var}(r, s)]}
       {\sum_{r, s} \mathrm{alive}(r, s)}

    with the sums over the logged steps and the runs pooled by ``over``. ``clipped``: a clip
    stage changed the gradient; ``skipped``: ``apply_if_finite`` dropped the update.

    Args:
      ds: a result Dataset.
      var: a boolean per-step variable (``"clipped"`` or ``"skipped"``).
      over: grid axes to pool (default the seeds); ``None`` gives one rate per run.

    Returns:
      A DataArray in [0, 1] over ``optimizer`` and the grid axes not pooled.

    Example:
      >>> fire_rate(ds, "clipped", over=["seed", "init_scale"]).to_pandas()  # doctest: +SKIP
    """
    if var not in ds or "step" not in ds[var].dims:
        raise ValueError(f"{var!r} is not a per-step variable of the Dataset")
    live = alive(ds)
    fired = ds[var].astype(bool) & live
    dims = [*_axes(ds, over), "step"]
    with _quiet():
        return (fired.sum(dims) / live.sum(dims)).rename(f"{var}_rate")


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

    pooled over the logged steps and the runs of ``over``.

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
    g = ds[var].where(~ds["diverged"].astype(bool))
    g = g.where(np.isfinite(g))
    dims = [*_axes(ds, over), "step"]
    with _quiet():
        if statistic == "mean":
            out = g.mean(dims)
        elif statistic == "median":
            out = g.median(dims)
        elif isinstance(statistic, float | int) and 0 <= statistic <= 1:
            out = g.quantile(float(statistic), dims).drop_vars("quantile")
        else:
            raise ValueError(f"statistic must be 'mean', 'median' or a quantile, got {statistic!r}")
    return out.rename(f"{var}_{statistic}")


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
    dims = _axes(ds, over)
    with _quiet():
        m = _masked_runs(ds, metric).astype(float)
        m = m.median(dims) if dims else m
        ratio = m / m.sel(optimizer=baseline, drop=True)
    return _canonical(ratio, ds).rename(f"{metric}_ratio")


def power_law_exponent(da: xr.DataArray, dim: str) -> xr.DataArray:
    r"""Least-squares slope of ``log |y|`` against ``log x`` along ``dim``: y ∝ x^k.

    .. math:: k = \frac{\sum_i (u_i - \bar u)(v_i - \bar v)}{\sum_i (u_i - \bar u)^2},
       \quad u = \log x, \; v = \log |y|

    Non-finite or zero values are left out; NaN where fewer than two points remain. E.g. the
    gradient norm at initialisation against the init scale σ_w grows as σ_w^k, with k the
    number of weight matrices the gradient passes through.

    Args:
      da: values with a positive numeric coordinate ``dim``.
      dim: the axis to fit along.

    Returns:
      The exponent k, over the other dims of ``da``.

    Example:
      >>> x = xr.DataArray([1.0, 2.0, 4.0], dims="s", coords={"s": [1.0, 2.0, 4.0]})
      >>> round(float(power_law_exponent(x**3, "s")), 6)
      3.0
    """
    x = np.log(da[dim].astype(float))
    with _quiet():
        y = np.log(np.abs(da.astype(float)))
        ok = np.isfinite(y) & np.isfinite(x)
        u, v = x.where(ok), y.where(ok)
        du, dv = u - u.mean(dim), v - v.mean(dim)
        slope = (du * dv).sum(dim) / (du**2).sum(dim)
    return slope.where(ok.sum(dim) >= 2).rename("exponent")


def trainable_depth(
    ds: xr.Dataset,
    dim: str = "depth",
    metric: str = "test_accuracy",
    threshold: float = 0.5,
    over: Axes = SEED,
) -> xr.DataArray:
    r"""The largest value of ``dim`` (depth) at which the median run still trains.

    A run *trains* when its ``metric`` passes ``threshold`` (at least, for accuracies; at most,
    for losses); a diverged run does not train. Over the runs pooled by ``over``:

    .. math:: L_{\max} = \max\{L : \operatorname{median}_{a} [\text{run}(L, a) \text{ trains}]\}

    Schoenholz et al. (2017) find :math:`L_{\max} \approx 6\,\xi_c` (see
    :func:`gradlab.theory.depth_scales`). Works for any ordered axis, typically one joined by
    :func:`concat_sweeps`.

    Args:
      ds: a result Dataset with ``dim`` among its grid axes.
      dim: the depth axis.
      metric: a per-run variable.
      threshold: the pass mark (e.g. 0.5 test accuracy: well above chance for 10 classes).
      over: grid axes to take the median over (default the seeds).

    Returns:
      A DataArray over ``optimizer`` and the grid axes other than ``dim`` and ``over``; NaN where
      no depth trains.

    Example:
      >>> trainable_depth(ds, threshold=0.5).sel(optimizer="sgd")  # doctest: +SKIP

    References:
      Schoenholz et al., *Deep Information Propagation*, ICLR 2017 (section 6).
    """
    if dim not in grid_axes(ds):
        raise ValueError(f"{dim!r} is not a grid axis; grid axes: {list(grid_axes(ds))}")
    dims = _axes(ds, over)
    if dim in dims:
        raise ValueError(f"{dim!r} cannot be pooled over; it is the axis being searched")
    cost = _run_cost(ds, metric)
    limit = -threshold if _higher_is_better(metric) else threshold
    passes = (cost <= limit).astype(float)
    with _quiet():
        share = passes.mean(dims) if dims else passes
    depth = ds[dim].astype(float).where(share >= 0.5)
    with _quiet():
        return depth.max(dim).rename(f"trainable_{dim}")


def edge_of_stability(
    ds: xr.Dataset,
    var: str = "sharpness",
    reach: float = 0.9,
    start: int = 0,
) -> xr.Dataset:
    r"""Does the sharpness rise to its stability bound and stay there? One summary per run.

    With :math:`r_t = \lambda_t / b_t` the measured (preconditioned) sharpness over its bound
    (``sharpness_bound``: 2/η for GD, 38/η for Adam at β1 = 0.9) at the steps where it was
    computed and the run was alive:

    - ``initial``: λ at the first computed step, and ``initial_ratio`` = r there;
    - ``reached_at``: the first computed step ≥ ``start`` with :math:`r_t \ge` ``reach``
      (NaN: never; progressive sharpening had not got there);
    - ``ratio``, ``ratio_lo``, ``ratio_hi``: median and inter-quartile range of :math:`r_t` from
      ``reached_at`` on: how closely the sharpness hovers at the bound (1 = exactly at it;
      Cohen et al. 2021 report it hovering at or just above 2/η);
    - ``peak_ratio``: the largest :math:`r_t` after ``start``.

    Args:
      ds: a result Dataset with ``var`` and ``sharpness_bound``.
      var: ``"sharpness"`` or ``"precond_sharpness"``.
      reach: fraction of the bound that counts as having reached it.
      start: ignore measurements before this step (e.g. Adam's first step, whose
        preconditioner is built from a single gradient).

    Returns:
      A Dataset over ``optimizer`` and the grid axes.

    Example:
      >>> edge_of_stability(ds).ratio.to_pandas()  # doctest: +SKIP

    References:
      Cohen et al., *Gradient Descent on Neural Networks Typically Occurs at the Edge of
      Stability*, ICLR 2021. Cohen et al., *Adaptive Gradient Methods at the Edge of
      Stability*, 2022.
    """
    for name in (var, "sharpness_bound"):
        if name not in ds:
            raise ValueError(f"no {name!r} in the Dataset; add {var!r} to the sweep's metrics")
    live = alive(ds)
    lam = _canonical(ds[var].where(live), ds)
    ratio = lam / _canonical(ds["sharpness_bound"].where(live), ds)
    steps = ds["step"].values
    lead = lam.dims[:-1]
    lam_v = lam.values.reshape(-1, len(steps))
    r_v = ratio.values.reshape(-1, len(steps))
    names = (
        "initial",
        "initial_ratio",
        "reached_at",
        "ratio",
        "ratio_lo",
        "ratio_hi",
        "peak_ratio",
    )
    out = {n: np.full(lam_v.shape[0], np.nan) for n in names}
    late = steps >= start
    with _quiet():
        for i in range(lam_v.shape[0]):
            ok = np.isfinite(r_v[i])
            if not ok.any():
                continue
            first = int(np.argmax(ok))
            out["initial"][i], out["initial_ratio"][i] = lam_v[i, first], r_v[i, first]
            cand = ok & late
            if cand.any():
                out["peak_ratio"][i] = np.max(r_v[i, cand])
            hit = cand & (r_v[i] >= reach)
            if hit.any():
                k = int(np.argmax(hit))
                out["reached_at"][i] = steps[k]
                after = r_v[i, k:][ok[k:]]
                out["ratio_lo"][i], out["ratio"][i], out["ratio_hi"][i] = np.quantile(
                    after, [0.25, 0.5, 0.75]
                )
    coords = {d: lam[d] for d in lead}
    shape = [lam.sizes[d] for d in lead]
    return xr.Dataset(
        {n: (lead, v.reshape(shape)) for n, v in out.items()},
        coords=coords,
        attrs={"var": var, "reach": reach, "start": start},
    )


def claims_table(
    rows: Iterable[Sequence[Any]],
    columns: Sequence[str] = ("claim", "source", "published", "measured"),
) -> pd.DataFrame:
    """Published or claimed numbers beside the measured ones, one row per claim.

    A display helper for reports and notebooks: numbers are written to 3 significant digits
    (fractions stay fractions), strings are kept, ``None``/NaN become ``-``.

    Args:
      rows: one sequence per claim, in the order of ``columns`` (shorter rows are padded).
      columns: the column names; the first is the index.

    Returns:
      A DataFrame of strings indexed by the first column.

    Example:
      >>> t = claims_table([("tanh critical σ_w² at σ_b² = 0.05", "Schoenholz 2017", 1.76, 1.7612)])
      >>> t.loc["tanh critical σ_w² at σ_b² = 0.05", "measured"]
      '1.76'
    """

    def cell(v: Any) -> str:
        if v is None or (isinstance(v, float | np.floating) and np.isnan(v)):
            return "-"
        if isinstance(v, bool | np.bool_):
            return "yes" if v else "no"
        if isinstance(v, int | np.integer):
            return str(int(v))
        if isinstance(v, float | np.floating):
            return f"{float(v):.3g}"
        return str(v)

    cols = list(columns)
    table = []
    for row in rows:
        row = list(row)
        if len(row) > len(cols):
            raise ValueError(f"a row has {len(row)} cells for {len(cols)} columns: {row}")
        table.append([cell(v) for v in row] + ["-"] * (len(cols) - len(row)))
    df = pd.DataFrame(table, columns=cols)
    return df.set_index(cols[0])


def crossing(da: xr.DataArray, dim: str, level: float = 1.0, log: bool = True) -> xr.DataArray:
    r"""Where a measured curve first crosses ``level`` along ``dim``, by linear interpolation.

    Along ``dim`` sorted ascending, with :math:`v = \log y` (or :math:`y` when ``log`` is
    false) and the first pair of neighbours :math:`(x_i, x_{i+1})` that brackets the level
    :math:`\ell`:

    .. math:: x^* = x_i + (x_{i+1} - x_i)\,\frac{\ell - v_i}{v_{i+1} - v_i}

    E.g. the measured critical init scale: where the empirical χ1 crosses 1 along
    ``init_scale``, to compare with :func:`gradlab.theory.critical_sigma_w2`.

    Args:
      da: values with a numeric coordinate ``dim`` (e.g. the median :func:`empirical_chi1`).
      dim: the axis to search along.
      level: the level to cross.
      log: interpolate in ``log y`` (right for χ1, which is geometric).

    Returns:
      The crossing point over the other dims of ``da``; NaN where the curve does not cross.

    Example:
      >>> x = xr.DataArray([0.5, 0.8, 1.25, 2.0], dims="s", coords={"s": [1.0, 2.0, 3.0, 4.0]})
      >>> round(float(crossing(x, "s")), 3)
      2.5
    """
    da = da.sortby(dim)
    xs = da[dim].values.astype(float)
    ref = math.log(level) if log else level

    def first(y: np.ndarray) -> float:
        with np.errstate(invalid="ignore", divide="ignore"):
            v = np.log(y) - ref if log else y - ref
        for i in range(len(v) - 1):
            a, b = v[i], v[i + 1]
            if np.isfinite(a) and np.isfinite(b) and a * b <= 0 and a != b:
                return float(xs[i] + (xs[i + 1] - xs[i]) * (-a) / (b - a))
            if np.isfinite(a) and a == 0:
                return float(xs[i])
        return math.nan

    out = xr.apply_ufunc(
        first, da.astype(float), input_core_dims=[[dim]], vectorize=True, output_dtypes=[float]
    )
    return out.rename(f"{dim}_crossing")


def fixed_point_chi1(ds: xr.Dataset, skip: int = 4, step: int = 0) -> xr.DataArray:
    r"""Measured χ1 past the input transient: geometric mean over the deeper hidden-layer pairs.

    Mean-field χ1 is defined at the fixed point q* of the length map; the first layers of a
    network are still relaxing from the input's length towards q* (over a few ξ_q layers), and
    their backward gain differs. This is :func:`empirical_chi1` restricted to the pairs
    (l − 1, l) with ``skip`` < l ≤ L − 2:

    .. math:: \hat\chi_1 = \Big(\prod_{l=\mathrm{skip}+1}^{L-2}
       \hat\chi_1^{(l)}\Big)^{1/(L-2-\mathrm{skip})}
       = \left(\frac{\mathrm{rms}(\delta_{\mathrm{skip}})^2}
       {\mathrm{rms}(\delta_{L-2})^2}\right)^{1/(L-2-\mathrm{skip})}

    ``skip=0`` is :func:`empirical_chi1`.

    Args:
      ds: a result Dataset with ``delta_rms_layer``.
      skip: how many pairs nearest the input to leave out.
      step: the logged step to read (default 0, the initialisation).

    Returns:
      A DataArray over ``(optimizer, *grid)``; NaN for runs with no pair left.

    Raises:
      ValueError: no model in the sweep has ``skip + 1`` interior pairs.

    Example:
      >>> fixed_point_chi1(ds, skip=5).median("seed")  # doctest: +SKIP

    References:
      Schoenholz et al., *Deep Information Propagation*, ICLR 2017 (eqs. 4 and 9: q* and χ1).
    """
    if skip < 0:
        raise ValueError(f"skip must be >= 0, got {skip}")
    depth = ds["delta_rms_layer"].sel(step=step).notnull().sum("layer")
    if int(depth.max()) < skip + 3:
        raise ValueError(
            f"no interior layer pair left after skipping {skip}: the deepest model here has "
            f"{int(depth.max())} layers"
        )
    pairs = chi1_profile(ds, step)
    index = xr.DataArray(np.arange(1, ds.sizes["layer"]), dims="layer")
    with np.errstate(invalid="ignore", divide="ignore"), _quiet():
        logs = np.log(pairs).where((index <= depth - 2) & (index > skip))
        out = np.exp(logs.mean("layer"))
    return out.rename("chi1").assign_attrs(step=step, pairs=f"(l-1, l), l = {skip + 1}..L-2")
