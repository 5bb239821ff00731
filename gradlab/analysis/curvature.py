"""Does the sharpness agree with the stability threshold? Edge-of-stability summaries.

Gradient descent on a quadratic with top Hessian eigenvalue λ diverges iff η > 2/λ; heavy-ball
momentum β moves the threshold to (2 + 2β)/η and Adam's (bias-corrected, β1) to
(2 + 2β1)/(η(1 − β1)) on the *preconditioned* sharpness λ_max(P⁻¹H). The engine records the
threshold of each chain at every step as ``sharpness_bound`` and the rule it used as the
Dataset's ``stability_rule`` coordinate (``"sgd"``, ``"momentum"``, ``"adam"``, or ``""``
where no rule is known). This module reads them: :func:`bounded_sharpness` picks the curvature
each chain's bound bounds, :func:`edge_of_stability` summarises how the sharpness approaches
its bound, and :func:`predicted_lr_boundary` predicts the largest stable learning rate from the
sharpness at initialisation.

References:
  Cohen et al., *Gradient Descent on Neural Networks Typically Occurs at the Edge of
  Stability*, ICLR 2021. Cohen et al., *Adaptive Gradient Methods at the Edge of Stability*,
  2022.
"""

from __future__ import annotations

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
    in_dataset_order,
    pool_axes,
    quiet_nan_warnings,
)

__all__ = [
    "BOUNDED_CURVATURE",
    "EOS_SUMMARY",
    "bounded_sharpness",
    "edge_of_stability",
    "predicted_lr_boundary",
    "stability_rules",
]

# For each stability rule, the curvature variable its ``sharpness_bound`` bounds.
BOUNDED_CURVATURE: dict[str, str] = {
    "sgd": "sharpness",
    "momentum": "sharpness",
    "adam": "precond_sharpness",
}


def stability_rules(ds: xr.Dataset) -> xr.DataArray:
    """Each chain's edge-of-stability rule, from the Dataset's ``stability_rule`` coordinate.

    A Dataset written before gradlab recorded the coordinate has no rule for any chain (``""``):
    the chain strings are not parsed here.

    Args:
      ds: a result Dataset.

    Returns:
      A string DataArray over ``optimizer``: ``"sgd"``, ``"momentum"``, ``"adam"`` or ``""``.
    """
    if "stability_rule" in ds.coords:
        return ds["stability_rule"].astype(str)
    return xr.full_like(ds["optimizer"], "", dtype=object).astype(str)


def bounded_sharpness(ds: xr.Dataset) -> xr.DataArray:
    r"""The curvature that each chain's ``sharpness_bound`` bounds.

    Per chain, by its ``stability_rule`` (:data:`BOUNDED_CURVATURE`):

    - ``"sgd"``, ``"momentum"``: :math:`\lambda_{\max}(H)`, the variable ``sharpness``
      (bound 2/η, resp. (2 + 2β)/η);
    - ``"adam"``: :math:`\lambda_{\max}(P^{-1}H)` with P Adam's preconditioner, the variable
      ``precond_sharpness`` (bound (2 + 2β1)/(η(1 − β1)));
    - ``""`` (no known rule, and every chain of a Dataset without the ``stability_rule``
      coordinate): NaN, since it is not known which curvature a bound would bound.

    NaN too where the variable was not measured (the metric set was not requested, or at the
    steps between curvature measurements).

    Args:
      ds: a result Dataset with ``sharpness_bound``.

    Returns:
      A DataArray shaped like ``sharpness_bound``.

    Example:
      >>> ratio = bounded_sharpness(ds) / ds["sharpness_bound"]  # doctest: +SKIP

    References:
      Cohen et al., ICLR 2021 (GD: 2/η); Cohen et al., 2022 (Adam: λ_max(P⁻¹H) against
      (2 + 2β1)/(η(1 − β1))).
    """
    bound = ds["sharpness_bound"]
    rules = stability_rules(ds)
    out = xr.full_like(bound, np.nan)
    for rule, name in BOUNDED_CURVATURE.items():
        if name in ds:
            out = xr.where(rules == rule, ds[name], out)
    return in_dataset_order(out, ds)


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
    does not depend on the learning rate) and its median taken over the runs of ``over`` that
    count (:func:`~gradlab.analysis.selection.counted_runs`). The prediction is
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
    pooled = pool_axes(ds, over)
    with quiet_nan_warnings():
        lam = lam.where(counted_runs(ds, pooled)).median(pooled)
    if momentum is None:
        beta: Any = ds["momentum"] if "momentum" in grid_axes(ds) else 0.0
    else:
        beta = momentum
    return in_dataset_order((2 + 2 * beta) / lam, ds).rename("lr_boundary")


# The variables of an `edge_of_stability` summary, one value per run each.
EOS_SUMMARY = (
    "initial",
    "initial_ratio",
    "reached_at",
    "ratio",
    "ratio_lo",
    "ratio_hi",
    "peak_ratio",
)


def _run_summary(
    lam: np.ndarray, r: np.ndarray, steps: np.ndarray, start: int, reach: float
) -> dict[str, float]:
    """The :func:`edge_of_stability` summary of one run: λ_t and r_t = λ_t / b_t over steps."""
    out = dict.fromkeys(EOS_SUMMARY, np.nan)
    ok = np.isfinite(r)
    if not ok.any():
        return out
    first = int(np.argmax(ok))
    out["initial"], out["initial_ratio"] = lam[first], r[first]
    cand = ok & (steps >= start)
    if cand.any():
        out["peak_ratio"] = np.max(r[cand])
    hit = cand & (r >= reach)
    if hit.any():
        k = int(np.argmax(hit))
        out["reached_at"] = steps[k]
        after = r[k:][ok[k:]]
        out["ratio_lo"], out["ratio"], out["ratio_hi"] = np.quantile(after, [0.25, 0.5, 0.75])
    return out


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
      var: ``"sharpness"`` or ``"precond_sharpness"``; :func:`bounded_sharpness` gives the one
        each chain's bound bounds.
      reach: fraction of the bound that counts as having reached it.
      start: ignore measurements before this step (e.g. Adam's first step, whose
        preconditioner is built from a single gradient).

    Returns:
      A Dataset over ``optimizer`` and the grid axes with the variables above.

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
    lam = in_dataset_order(ds[var].where(live), ds)
    ratio = lam / in_dataset_order(ds["sharpness_bound"].where(live), ds)
    steps = ds["step"].values
    lead = lam.dims[:-1]
    lam_v = lam.values.reshape(-1, len(steps))
    r_v = ratio.values.reshape(-1, len(steps))
    with quiet_nan_warnings():
        runs = [_run_summary(lam_v[i], r_v[i], steps, start, reach) for i in range(len(lam_v))]
    shape = [lam.sizes[d] for d in lead]
    return xr.Dataset(
        {n: (lead, np.array([s[n] for s in runs], float).reshape(shape)) for n in EOS_SUMMARY},
        coords={d: lam[d] for d in lead},
        attrs={"var": var, "reach": reach, "start": start},
    )
