r"""Between stable and diverged: catapults, learning-rate sensitivity, warmup and curvature.

Three questions about the *boundary* of trainability, each answered from one sweep over the
learning rate (two for warmup):

- :func:`lr_sensitivity` — *how much does a recipe lose away from its best learning rate?*
  Wortsman et al. (2023)'s learning-rate sensitivity, with a Student-t interval over seeds;
- :func:`catapult_phases` — *which runs fall, which catapult, which diverge, and where are the
  boundaries?* the phase of each run (Lewkowycz et al. 2020; Kalra & Barkeshli 2023) and the
  measured boundaries ``c_loss`` and ``c_max`` in units of the initial sharpness;
- :func:`warmup_stability` — *by how much does linear warmup raise the largest stable learning
  rate, and does η·λ stay at or below 2 while it does?* (Gilmer et al. 2021).

Every pooled number is over the runs that count
(:func:`~gradlab.analysis.selection.counted_runs`): copies along an axis a chain does not read
count once, unfinished runs not at all. A seed contributes to a pooled number only if every one
of its learning rates counts (a boundary or a mean over learning rates with a hole in it would
be a different number). The intervals over seeds are Student-t intervals of the mean
(:func:`mean_interval`): seeds are independent draws of the same experiment, and sweeps have
few of them (an order-statistic interval of the median, :func:`~gradlab.analysis.median_interval`,
needs six at 95 %).

*Catapults in practice* (:func:`catapult_phases`). Where to look for the rise: a catapult is an
*early* event (the loss rises within the first few steps, while the sharpness is still near λ₀;
Kalra & Barkeshli's phase diagram is of early training). Over a long run a deep network can also
rise later for another reason: its loss falls, its sharpness grows (progressive sharpening)
until it passes 2/η, and the loss rises above L₀ at the edge of stability (Cohen et al. 2021).
``early_steps = k`` counts only rises within the first k steps as the catapult's, so that c_loss
is early training's; the default (the whole run) counts both. Choose k before looking at the
data and long enough for a catapult's slow start just above c = 2 (its unstable mode grows by a
factor |1 − c| per step: at c = 2.2 two-layer networks of width 256-2048 passed L₀ only at steps
4-14), and check it on the loss curves.
A catapult's loss peak can be many times :math:`L_0` (6× at c = 2.2 for a two-layer ReLU
network under MSE), and the engine stops a run whose loss exceeds ``divergence_factor``
× its initial loss (default 10): sweep catapults with a large ``divergence_factor`` (e.g.
10⁶), or runs that would have converged are ``"divergent"`` and c_max comes out too low.

References (catapults): Lewkowycz, Bahri, Dyer, Sohl-Dickstein, Gur-Ari, "The large learning rate
phase of deep learning: the catapult mechanism", arXiv:2003.02218, 2020; Kalra & Barkeshli,
"Phase diagram of early training dynamics in deep neural networks: effect of the learning rate,
depth, and width", NeurIPS 2023 (arXiv:2302.12250).
"""

from __future__ import annotations

import tomllib

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
from gradlab.analysis.stability import max_stable_lr
from gradlab.analysis.training import mean_interval

__all__ = [
    "PHASES",
    "catapult_phases",
    "lr_sensitivity",
    "lr_units",
    "mean_interval",
    "warmup_stability",
]

# The phase labels of catapult_phases, in the order of increasing learning rate.
PHASES = ("monotone", "catapult", "divergent", "unresolved")


def _point_axes(ds: xr.Dataset, lr: str, over: Axes, what: str) -> list[str]:
    """The pooled axes of a function that searches ``lr``, after checking both."""
    grid = grid_axes(ds)
    if lr not in grid:
        raise ValueError(f"{what} needs a {lr!r} grid axis; grid axes: {list(grid)}")
    dims = pool_axes(ds, over)
    if lr in dims:
        raise ValueError(f"{lr!r} cannot be pooled over; it is the axis being searched")
    return dims


def _complete(ds: xr.Dataset, dims: list[str], lr: str) -> xr.DataArray:
    """Which points (a chain, a seed, the other axes) count at every learning rate."""
    return counted_runs(ds, dims).all(lr)


def lr_sensitivity(
    ds: xr.Dataset,
    metric: str = "final_loss",
    lr: str = LR,
    over: Axes = SEED,
    confidence: float = 0.95,
) -> xr.Dataset:
    r"""Learning-rate sensitivity: the loss given away, on average over the grid's learning rates.

    Wortsman et al. (2023)'s definition, on the grid's learning rates :math:`\eta_1, \dots, \eta_m`:

    .. math:: S = \frac{1}{m} \sum_{i=1}^{m} \Bigl[\min\bigl(\ell(\eta_i), \ell_0\bigr)
       - \min_j \min\bigl(\ell(\eta_j), \ell_0\bigr)\Bigr]

    where ℓ(η) is ``metric`` of the run at η (default ``final_loss``, the loss on the full
    training set after training), a diverged run counts as :math:`\ell_0`, and :math:`\ell_0` is
    the run's loss at step 0 (the ``loss`` variable at the first logged step: the untrained
    network's minibatch loss; the full training loss under full-batch GD). The expectation is
    the plain mean over the grid, so a log-spaced grid weighs each decade equally, as in the
    paper. S is 0 for a recipe that reaches its best loss at every learning rate and at most
    :math:`\ell_0 - \min_\eta \ell`: a recipe that diverges everywhere but at its best.

    S is computed for each point of the axes ``over`` (each seed), from the runs that count
    (:func:`~gradlab.analysis.selection.counted_runs` with ``over`` pooled); a seed with a
    learning rate that does not count (an unfinished run) has no S. The reported value is the
    mean over the seeds with a Student-t interval (:func:`mean_interval`).

    With a ``z_loss`` axis, the step-0 ``loss`` includes the z-term z·(log Z)² while
    ``final_loss`` is the cross-entropy alone (see :mod:`gradlab.schema`), so ℓ₀ is larger by
    the z-term at initialisation, z·(log Z₀)² (about z·(log K)² for small logits).

    Args:
      ds: a result Dataset with ``lr`` among its grid axes, ``loss``, ``diverged`` and
        ``metric``.
      metric: the per-run loss ℓ (``final_loss`` or ``test_loss``).
      lr: the learning-rate axis.
      over: the axes whose points are samples of S (default the seeds).
      confidence: coverage of the interval.

    Returns:
      A Dataset over ``optimizer`` and the grid axes not in ``over`` (nor ``lr``) with
      ``lr_sensitivity`` (the mean S), ``lower``, ``upper`` and ``samples`` (the seeds with an
      S); and ``per_sample``, S at each point of ``over``.

    Raises:
      ValueError: ``lr`` is not a grid axis or is in ``over``; a variable is missing.

    Example:
      >>> lr_sensitivity(ds)["lr_sensitivity"].to_pandas()  # one number per chain  # doctest: +SKIP

    References:
      Wortsman et al., "Small-scale proxies for large-scale Transformer training
      instabilities", ICLR 2024 (arXiv:2309.14322).
    """
    dims = _point_axes(ds, lr, over, "lr_sensitivity")
    for name in (metric, "loss"):
        if name not in ds:
            raise ValueError(f"no variable {name!r} in the Dataset; lr_sensitivity needs it")
    if "step" in ds[metric].dims:
        raise ValueError(f"{metric!r} is a per-step variable; this needs one loss per run")
    initial = ds["loss"].isel(step=0, drop=True).astype(float)
    loss = ds[metric].astype(float).where(~ds["diverged"].astype(bool), initial)
    capped = xr.where(loss < initial, loss, initial).where(loss.notnull() & counted_runs(ds, dims))
    with quiet_nan_warnings():
        gap = capped - capped.min(lr)
        per_sample = gap.mean(lr).where(_complete(ds, dims, lr) & gap.notnull().all(lr))
    per_sample = in_dataset_order(per_sample, ds)
    out = mean_interval(per_sample, dims, confidence).rename(mean="lr_sensitivity")
    out["per_sample"] = per_sample
    return out.assign_attrs(metric=metric, lr=lr, over=", ".join(dims))


def lr_units(ds: xr.Dataset) -> str:
    """The units of the sweep's learning-rate axis: ``"sharpness"`` or ``"absolute"``.

    Read from the spec the Dataset carries (its ``spec`` attribute, the sweep's TOML, key
    ``lr_units``); ``"absolute"`` where the spec does not say (older sweeps, hand-made Datasets).

    Args:
      ds: a result Dataset.

    Returns:
      ``"sharpness"`` (each run's learning rate is c/λ₀, c the grid value) or ``"absolute"``.

    Example:
      >>> lr_units(xr.Dataset(attrs={"spec": 'lr_units = "sharpness"'}))
      'sharpness'
    """
    text = ds.attrs.get("spec")
    if not isinstance(text, str):
        return "absolute"
    try:
        units = tomllib.loads(text).get("lr_units", "absolute")
    except tomllib.TOMLDecodeError:
        return "absolute"
    return str(units)


def _initial_sharpness(ds: xr.Dataset, lambda0: float | xr.DataArray | None) -> xr.DataArray:
    """λ₀ per run: ``lambda0``, else ``initial_sharpness``, else the sharpness at step 0."""
    if lambda0 is not None:
        value = xr.DataArray(lambda0) if not isinstance(lambda0, xr.DataArray) else lambda0
    elif "initial_sharpness" in ds:
        value = ds["initial_sharpness"]
    elif "sharpness" in ds and bool(np.isfinite(ds["sharpness"].isel(step=0)).any()):
        value = ds["sharpness"].isel(step=0, drop=True)
    else:
        raise ValueError(
            "catapult_phases needs the initial sharpness λ₀: pass lambda0=, or sweep with "
            "lr_units = 'sharpness' (records initial_sharpness) or metrics = ['sharpness']"
        )
    value = value.astype(float)
    if bool((value <= 0).any()):
        raise ValueError(f"the initial sharpness must be positive, got {value.values}")
    return value


def _curvature_units(
    ds: xr.Dataset, lr: str, lambda0: float | xr.DataArray | None, units: str | None
) -> tuple[xr.DataArray, xr.DataArray]:
    """Per run, c = η·λ₀ and the learning rate η, whatever the units of the ``lr`` axis."""
    units = lr_units(ds) if units is None else units
    if units not in ("absolute", "sharpness"):
        raise ValueError(f"lr_units must be 'absolute' or 'sharpness', got {units!r}")
    lam = _initial_sharpness(ds, lambda0)
    grid = ds[lr].astype(float)
    if units == "sharpness":
        c, eta = grid + 0.0 * lam, grid / lam
    else:
        c, eta = grid * lam, grid + 0.0 * lam
    shape = ds["diverged"].astype(float) * 0.0
    return in_dataset_order(c + shape, ds), in_dataset_order(eta + shape, ds)


def _phase_flags(
    ds: xr.Dataset, eta: xr.DataArray, rise: float, early_steps: int | None
) -> dict[str, xr.DataArray]:
    """Per run: the loss rose (within ``early_steps``), the run converged, and its sharpness
    settled below its bound."""
    loss = ds["loss"].astype(float).where(alive(ds))
    initial = loss.isel(step=0, drop=True)
    diverged = ds["diverged"].astype(bool)
    window = loss["step"] > loss["step"][0]
    if early_steps is not None:
        window = window & (loss["step"] <= early_steps)
        diverged_early = diverged & (ds["diverged_at"] <= early_steps)
    else:
        diverged_early = diverged
    with quiet_nan_warnings():
        peak = loss.where(window).max("step")
    rose = diverged_early | (peak > (1.0 + rise) * initial)
    last = loss.isel(step=-1, drop=True)
    converged = ~diverged & (last < initial)
    flags = {"rose": rose, "converged": converged}
    if "sharpness" in ds:
        bound = ds["sharpness_bound"] if "sharpness_bound" in ds else 2.0 / eta
        peak_at = loss.fillna(-np.inf).argmax("step")
        after = xr.DataArray(np.arange(ds.sizes["step"]), dims="step") >= peak_at
        below = ds["sharpness"] < bound
        flags["settled"] = (below & after).any("step")
        lam = ds["sharpness"].where(alive(ds))
        last_at = lam.notnull().cumsum("step").argmax("step")
        ratio = (lam / bound).isel(step=last_at)
        flags["final_sharpness_ratio"] = ratio.where(lam.notnull().any("step"))
    return flags


def catapult_phases(
    ds: xr.Dataset,
    lr: str = LR,
    over: Axes = SEED,
    lambda0: float | xr.DataArray | None = None,
    units: str | None = None,
    rise: float = 0.0,
    early_steps: int | None = None,
    confidence: float = 0.95,
) -> xr.Dataset:
    r"""The phase of each run in the catapult picture, and the measured boundaries c_loss, c_max.

    In units of the initial sharpness, c = η·λ₀ (λ₀ the top Hessian eigenvalue at
    initialisation), gradient descent on a wide network has three phases (Lewkowycz et al.
    2020): for c < 2 the loss falls (*lazy*, here ``"monotone"``); for 2 < c < c_max the loss
    first rises, the sharpness falls until it is below 2/η, and the run converges in a flatter
    region (``"catapult"``); above c_max it diverges (``"divergent"``). Per run, with
    :math:`L_t` its recorded ``loss`` at the logged steps and :math:`L_0` the first:

    - *the loss rose*: the run diverged, or :math:`\max_{0 < t \le k} L_t > (1 + r) L_0`
      (r = ``rise``, a tolerance for minibatch noise, 0 for full-batch GD; k = ``early_steps``,
      by default the whole run; with k given, a divergence counts only if it happened by step k);
    - *the run converged*: it did not diverge and its last recorded loss is below :math:`L_0`;
    - ``"monotone"``: converged, the loss never rose; ``"catapult"``: converged after the loss
      rose, and — where the sweep recorded ``sharpness`` — the sharpness was below its bound
      (``sharpness_bound``, which is 2/η_t for SGD; 2/η where the Dataset has none) at a logged
      step at or after the loss's peak; ``"unresolved"``: converged after the loss rose, but the
      sharpness recorded after the peak never fell below the bound; ``"divergent"``: the rest
      (diverged, or still above :math:`L_0` at the end: not converged within the run);
    - runs that do not count (:func:`~gradlab.analysis.selection.counted_runs`) get ``""``.

    The boundaries, for each point of ``over`` (each seed) with every learning rate counted:

    .. math:: c_{\mathrm{loss}} = \min\{c : \text{the loss rose}\}, \qquad
       c_{\max} = \max\{c : \text{the run converged}\}

    (NaN where no learning rate of the grid qualifies: the boundary is outside the grid),
    then their mean over the seeds with a Student-t interval (:func:`mean_interval`). Both are
    as fine as the grid: the true c_loss lies between the largest c below it and c_loss.

    Args:
      ds: a result Dataset with ``lr`` among its grid axes, ``loss`` and ``diverged``.
      lr: the learning-rate axis: c itself with ``lr_units = "sharpness"`` in the spec
        (:func:`lr_units`; η = c/λ₀), else η (c = η·λ₀).
      over: the axes whose points are samples of the boundaries (default the seeds).
      lambda0: λ₀ (a number, or a DataArray over grid axes); default the ``initial_sharpness``
        variable, else the ``sharpness`` recorded at step 0.
      units: ``"absolute"`` or ``"sharpness"``, overriding the spec's ``lr_units``.
      rise: the relative rise of the loss above L₀ that counts as rising, ≥ 0.
      early_steps: count a rise (or a divergence) only up to this step; ``None``: any step
        (the module docstring says when to set it, and why catapults need a large
        ``divergence_factor``).
      confidence: coverage of the intervals.

    Returns:
      A Dataset with, per run (``optimizer``, grid axes): ``phase`` (a label of :data:`PHASES`,
      or ``""``), ``c`` and ``eta``, and where sharpness was recorded ``final_sharpness_ratio``
      (the last recorded sharpness over its bound: below 1 for a settled catapult); and over
      ``optimizer`` and the grid axes not in ``over`` (nor ``lr``): ``c_loss``, ``c_max``, each
      with ``_lower``/``_upper``, and ``samples`` (the seeds with every learning rate counted).

    Raises:
      ValueError: ``lr`` is not a grid axis or is in ``over``; no λ₀; ``rise`` negative;
        ``early_steps`` not a positive integer, or fewer than two logged steps within it.

    Example:
      >>> phases = catapult_phases(ds)  # doctest: +SKIP
      >>> phases["phase"].sel(optimizer="sgd", seed=0).to_pandas()  # doctest: +SKIP
      >>> phases["c_loss"].sel(optimizer="sgd")  # about 2 for wide networks  # doctest: +SKIP

    References: Lewkowycz et al. 2020 and Kalra & Barkeshli 2023 (the module docstring).
    """
    dims = _point_axes(ds, lr, over, "catapult_phases")
    _check_rise(ds, rise, early_steps)
    c, eta = _curvature_units(ds, lr, lambda0, units)
    flags = _phase_flags(ds, eta, rise, early_steps)
    counted = counted_runs(ds, dims)
    out = xr.Dataset(
        {"phase": _phase_labels(flags, counted), "c": c, "eta": eta}, coords=counted.coords
    )
    if "final_sharpness_ratio" in flags:
        out["final_sharpness_ratio"] = in_dataset_order(flags["final_sharpness_ratio"], ds)
    out = out.merge(_boundaries(ds, c, flags, counted, dims, lr, confidence))
    attrs = dict(lr=lr, over=", ".join(dims), confidence=confidence, rise=rise)
    return out.assign_attrs(attrs, early_steps="all" if early_steps is None else early_steps)


def _check_rise(ds: xr.Dataset, rise: float, early_steps: int | None) -> None:
    """``rise`` is at least 0; ``early_steps`` is None or a positive integer with a logged step
    after step 0 within it."""
    if not rise >= 0.0:
        raise ValueError(f"rise must be >= 0, got {rise}")
    if early_steps is None:
        return
    if isinstance(early_steps, bool) or not isinstance(early_steps, (int, np.integer)):
        raise ValueError(f"early_steps must be a positive integer or None, got {early_steps!r}")
    steps = ds["step"].values
    if early_steps < 1 or not np.any((steps > steps[0]) & (steps <= early_steps)):
        raise ValueError(
            f"early_steps = {early_steps}: no logged step after step {steps[0]} within it "
            f"(logged steps {steps[:4].tolist()}...); log more often (log_every) or widen it"
        )


def _phase_labels(flags: dict[str, xr.DataArray], counted: xr.DataArray) -> xr.DataArray:
    """Each run's label of :data:`PHASES` from its flags (``""`` for a run that does not count)."""
    rose, converged = flags["rose"], flags["converged"]
    settled = flags.get("settled", xr.ones_like(rose))
    labels = np.select(
        [
            ~counted.values,
            (converged & ~rose).values,
            (converged & rose & settled).values,
            (converged & rose).values,
        ],
        ["", PHASES[0], PHASES[1], PHASES[3]],
        PHASES[2],
    )
    return xr.DataArray(labels, dims=counted.dims, coords=counted.coords)


def _boundaries(
    ds: xr.Dataset,
    c: xr.DataArray,
    flags: dict[str, xr.DataArray],
    counted: xr.DataArray,
    dims: list[str],
    lr: str,
    confidence: float,
) -> xr.Dataset:
    """c_loss and c_max per sample of ``dims`` (every learning rate counted), then their mean
    with a Student-t interval and the number of samples."""
    complete = _complete(ds, dims, lr)
    with quiet_nan_warnings():
        boundary = {
            "c_loss": c.where(flags["rose"] & counted).min(lr).where(complete),
            "c_max": c.where(flags["converged"] & counted).max(lr).where(complete),
        }
    out = xr.Dataset()
    for name, per_sample in boundary.items():
        stats_ = mean_interval(in_dataset_order(per_sample, ds), dims, confidence)
        out[name] = stats_["mean"]
        out[f"{name}_lower"], out[f"{name}_upper"] = stats_["lower"], stats_["upper"]
        out["samples"] = stats_["samples"]
    return out


def _eta_sharpness(ds: xr.Dataset) -> xr.DataArray:
    """η_t·λ_t per run and logged step, for chains whose bound is GD's 2/η_t (NaN elsewhere)."""
    for name in ("sharpness", "sharpness_bound"):
        if name not in ds:
            raise ValueError(
                f"no variable {name!r} in the Dataset; warmup_stability needs "
                "metrics = ['sharpness'] in both sweeps"
            )
    gd = ds["stability_rule"] == "sgd" if "stability_rule" in ds.coords else True
    value = 2.0 * ds["sharpness"] / ds["sharpness_bound"]
    return value.where(alive(ds)).where(gd)


def warmup_stability(
    constant: xr.Dataset, warmup: xr.Dataset, over: Axes = SEED, lr: str = LR
) -> xr.Dataset:
    r"""How much linear warmup raises the largest stable learning rate, and η·λ along the runs.

    Gilmer et al. (2021): at a large learning rate, the early sharpness λ_t is what makes
    training unstable (η·λ > 2 for GD); a linear warmup keeps η_t·λ_t near or below 2 while the
    sharpness falls, so larger peak learning rates become stable. From two sweeps that differ
    only in the schedule (``schedule = "constant"`` and ``"warmup_constant"``, the same grid):

    .. math:: \text{gain} = \eta^{\text{warmup}}_{\max} / \eta^{\text{constant}}_{\max}

    with :math:`\eta_{\max}` :func:`~gradlab.analysis.max_stable_lr` of each sweep (no seed
    diverged; as fine as the grid), and per run and logged step
    :math:`\eta_t \lambda_t = 2\lambda_t / \texttt{sharpness\_bound}_t` (the bound is GD's 2/η_t;
    NaN for chains with another stability rule, and after a run diverged).

    Args:
      constant: the sweep without warmup.
      warmup: the same sweep with linear warmup.
      over: axes that must all be divergence-free (default the seeds).
      lr: the learning-rate axis.

    Returns:
      A Dataset with ``max_stable_lr_constant``, ``max_stable_lr_warmup`` and ``gain`` over
      ``optimizer`` and the grid axes not in ``over`` (nor ``lr``), and ``eta_sharpness_constant``
      / ``eta_sharpness_warmup`` per run and logged step.

    Raises:
      ValueError: the sweeps' chains, grid axes or logged steps differ, or one lacks the
        sharpness.

    Example:
      >>> w = warmup_stability(ds_constant, ds_warmup)  # doctest: +SKIP
      >>> float(w["gain"].sel(optimizer="sgd"))  # doctest: +SKIP

    References:
      Gilmer, Ghorbani, Garg, Kudugunta, Neyshabur, Cardoze, Dahl, Nado, Firat, "A loss
      curvature perspective on training instability in deep learning", ICLR 2022
      (arXiv:2110.04369).
    """
    if grid_axes(constant) != grid_axes(warmup):
        raise ValueError(
            f"the two sweeps' grid axes differ: {grid_axes(constant)} vs {grid_axes(warmup)}"
        )
    for axis in ("optimizer", *grid_axes(constant), "step"):
        if not np.array_equal(constant[axis].values, warmup[axis].values):
            raise ValueError(f"the two sweeps differ in {axis!r}; they must share the grid")
    low = max_stable_lr(constant, over=over, lr=lr)
    high = max_stable_lr(warmup, over=over, lr=lr)
    out = xr.Dataset(
        {"max_stable_lr_constant": low, "max_stable_lr_warmup": high, "gain": high / low}
    )
    out["eta_sharpness_constant"] = _eta_sharpness(constant)
    out["eta_sharpness_warmup"] = _eta_sharpness(warmup)
    return out.assign_attrs(lr=lr, over=", ".join(pool_axes(constant, over)))
