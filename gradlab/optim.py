"""Optimizer chains: ``"stage|stage|..."`` strings -> ``optax`` transformations.

A chain is read left to right, like :func:`optax.chain`: ``"clip_by_global_norm|adam"`` clips the
raw gradient to global norm ``clip_norm`` and feeds the result to Adam. ``apply_if_finite`` wraps
every stage to its right (``"apply_if_finite|sgd"`` skips steps whose gradient is not finite).

Every stage reads its hyperparameters from the sweep grid by name, as traced arrays, so one
compiled program serves every value on the grid; where the grid is silent the stage default is
used. A chain may also be a callable ``hparams -> optax.GradientTransformation`` receiving the
same mapping. The stages are the registry :data:`STAGES` and the learning-rate schedules applied
to every optimizer stage the registry :data:`SCHEDULES` (see :func:`make_schedule`); the spec
validates names against them.

=======================  ===========================================  =========================
stage                    optax                                        hyperparameters (default)
=======================  ===========================================  =========================
``sgd``                  ``optax.sgd``                                learning_rate (0.01)
``momentum``             ``optax.sgd(momentum=β)`` (heavy ball)       learning_rate (0.01),
                                                                      momentum (0.9)
``nesterov``             ``optax.sgd(momentum=β, nesterov=True)``     learning_rate, momentum
``adam``                 ``optax.adam``                               learning_rate (1e-3), b1
                                                                      (0.9), b2 (0.999), eps
``adamw``                ``optax.adamw``                              as adam + weight_decay
                                                                      (1e-4)
``rmsprop``              ``optax.rmsprop``                            learning_rate (1e-3),
                                                                      decay (0.9), eps
``adagrad``              ``optax.adagrad``                            learning_rate (0.01), eps
``clip``                 ``optax.clip`` (by value)                    clip_value (1.0)
``clip_by_global_norm``  ``optax.clip_by_global_norm`` (Pascanu)      clip_norm (1.0)
``adaptive_grad_clip``   ``optax.adaptive_grad_clip`` (Brock)         agc_clip (0.01)
``apply_if_finite``      ``optax.apply_if_finite``                    max_consecutive_errors (5)
=======================  ===========================================  =========================

**Per-layer learning rates.** Every chain string also reads the grid axes ``lr_mult_0``,
``lr_mult_1``, ...: :mod:`gradlab.layer_rates` multiplies layer l's update by ``lr_mult_l`` and
by the parametrization's multipliers for the chain's :func:`update_kind`, as the chain's last
stage (after any clip stage, so a clip still sees the raw gradient).

References:
  Pascanu, Mikolov, Bengio, "On the difficulty of training recurrent neural networks", 2013.
  Brock, De, Smith, Simonyan, "High-performance large-scale image recognition without
  normalization", 2021.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradlab.layer_rates import layer_lr_axis, layer_scales, scale_by_layer
from gradlab.schedules import SCHEDULES, make_schedule

__all__ = [
    "HPARAM_RANGES",
    "LR_MULT_RANGE",
    "SCHEDULES",
    "STAGES",
    "ClipObservation",
    "Range",
    "SkipObservation",
    "Stage",
    "build_chain",
    "chain_hparams",
    "chain_name",
    "clipped",
    "hparam",
    "ignores_layout",
    "make_schedule",
    "observe_changes",
    "observe_skips",
    "reads_axis",
    "skipped",
    "stability_rule",
    "states_of",
    "tolerates_nonfinite",
    "update_kind",
]

ChainFactory = Callable[[Mapping[str, Any]], optax.GradientTransformation]


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of a chain: its hyperparameters (with defaults) and how to build it."""

    defaults: Mapping[str, float]
    build: Callable[..., optax.GradientTransformation]
    kind: str  # "optimizer" (takes a learning rate), "clip", or "wrapper"
    # Reads the arrays' axes (e.g. unit-wise norms over a kernel's input axis), so the result
    # changes when a kernel is stored transposed; see :func:`ignores_layout`.
    reads_axes: bool = False
    # The edge-of-stability rule of an optimizer stage (gradlab.curvature.stability_threshold):
    # "sgd", "momentum", "adam", or None where no closed form is known.
    stability_rule: str | None = None
    # An optimizer stage's update: "sgd" (linear in the gradient) or "adam" (normalised
    # entrywise); it picks the parametrization's learning-rate multipliers (update_kind).
    update_kind: str | None = None


STAGES: dict[str, Stage] = {
    "sgd": Stage(
        {"learning_rate": 1e-2},
        lambda learning_rate: optax.sgd(learning_rate),
        "optimizer",
        stability_rule="sgd",
        update_kind="sgd",
    ),
    "momentum": Stage(
        {"learning_rate": 1e-2, "momentum": 0.9},
        lambda learning_rate, momentum: optax.sgd(learning_rate, momentum=momentum),
        "optimizer",
        stability_rule="momentum",
        update_kind="sgd",
    ),
    "nesterov": Stage(
        {"learning_rate": 1e-2, "momentum": 0.9},
        lambda learning_rate, momentum: optax.sgd(learning_rate, momentum=momentum, nesterov=True),
        "optimizer",
        update_kind="sgd",
    ),
    "adam": Stage(
        {"learning_rate": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-8},
        optax.adam,
        "optimizer",
        stability_rule="adam",
        update_kind="adam",
    ),
    "adamw": Stage(
        {"learning_rate": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 1e-4},
        optax.adamw,
        "optimizer",
        update_kind="adam",
    ),
    "rmsprop": Stage(
        {"learning_rate": 1e-3, "decay": 0.9, "eps": 1e-8},
        optax.rmsprop,
        "optimizer",
        update_kind="adam",
    ),
    "adagrad": Stage(
        {"learning_rate": 1e-2, "eps": 1e-7}, optax.adagrad, "optimizer", update_kind="adam"
    ),
    "clip": Stage({"clip_value": 1.0}, lambda clip_value: optax.clip(clip_value), "clip"),
    "clip_by_global_norm": Stage(
        {"clip_norm": 1.0}, lambda clip_norm: optax.clip_by_global_norm(clip_norm), "clip"
    ),
    "adaptive_grad_clip": Stage(
        {"agc_clip": 0.01},
        lambda agc_clip: optax.adaptive_grad_clip(agc_clip),
        "clip",
        reads_axes=True,
    ),
    # A wrapper's build takes the transformation of the stages to its right first.
    "apply_if_finite": Stage(
        {"max_consecutive_errors": 5},
        lambda inner, max_consecutive_errors: observe_skips(
            optax.apply_if_finite(inner, max_consecutive_errors), max_consecutive_errors
        ),
        "wrapper",
    ),
}


# Valid range of each hyperparameter: (lower, upper, lower bound included).
@dataclasses.dataclass(frozen=True)
class Range:
    """The valid values of a hyperparameter: an interval, each end open or closed."""

    low: float
    high: float = math.inf
    low_closed: bool = True
    high_closed: bool = True

    def __contains__(self, value: float) -> bool:
        above = value >= self.low if self.low_closed else value > self.low
        below = value <= self.high if self.high_closed else value < self.high
        return above and below

    def __str__(self) -> str:
        low = f"{'>=' if self.low_closed else '>'} {self.low:g}"
        if math.isinf(self.high):
            return low
        return f"{low} and {'<=' if self.high_closed else '<'} {self.high:g}"


# The domain of each optimizer hyperparameter. Decay rates and momentum are < 1: at 1 the moment
# estimates never forget (Adam's b2 = 1 divides by a v̂ that stays at its first value, heavy
# ball with β = 1 never damps), which no sweep means.
HPARAM_RANGES: dict[str, Range] = {
    "learning_rate": Range(0.0, low_closed=False),
    "clip_norm": Range(0.0, low_closed=False),
    "clip_value": Range(0.0, low_closed=False),
    "agc_clip": Range(0.0, low_closed=False),
    "momentum": Range(0.0, 1.0, high_closed=False),
    "b1": Range(0.0, 1.0, high_closed=False),
    "b2": Range(0.0, 1.0, high_closed=False),
    "decay": Range(0.0, 1.0, high_closed=False),
    "eps": Range(0.0),
    "weight_decay": Range(0.0),
    "max_consecutive_errors": Range(0.0),
}
# The per-layer learning-rate multipliers lr_mult_l (gradlab.layer_rates); 0 freezes layer l.
LR_MULT_RANGE = Range(0.0)


def reads_axis(chain: str | ChainFactory, axis: str) -> bool:
    """Whether ``chain`` reads the hyperparameter axis ``axis``: a stage of a chain string
    takes it, or it is a per-layer learning rate (every chain string reads those); a callable
    receives every axis."""
    if not isinstance(chain, str):
        return True
    return layer_lr_axis(axis) is not None or axis in chain_hparams(chain)


def chain_name(chain: str | ChainFactory) -> str:
    """The label of a chain on the ``optimizer`` dimension (the string, or the callable's name)."""
    if isinstance(chain, str):
        return chain
    return getattr(chain, "__name__", type(chain).__name__)


def _stages(chain: str) -> list[str]:
    stages = [s.strip() for s in chain.split("|")]
    for s in stages:
        if s not in STAGES:
            raise ValueError(f"unknown optimizer stage {s!r}; valid stages: {', '.join(STAGES)}")
    if stages[-1] == "apply_if_finite":
        raise ValueError("apply_if_finite wraps the stages to its right; put it first")
    if not any(STAGES[s].kind == "optimizer" for s in stages):
        raise ValueError(
            f"chain {chain!r} has no optimizer stage (one of "
            + ", ".join(k for k, v in STAGES.items() if v.kind == "optimizer")
            + ")"
        )
    return stages


def chain_hparams(chain: str) -> dict[str, float]:
    """The hyperparameters a chain string reads, with their defaults (first stage wins)."""
    out: dict[str, float] = {}
    for s in _stages(chain):
        for k, v in STAGES[s].defaults.items():
            out.setdefault(k, v)
    return out


class ClipObservation(NamedTuple):
    """State of :func:`observe_changes`: the inner state and whether the last update changed."""

    inner: Any
    changed: jax.Array


def observe_changes(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """Wrap a clipping transformation so its state records whether it changed its input.

    The flag is exact: ``changed`` is true iff some element of the output differs from the
    input, e.g. for ``clip_by_global_norm(c)`` exactly when ‖g‖ > c (and g ≠ 0). Wrap a custom
    chain's clipping stages with it to have them counted in the ``clipped`` metric.
    """

    def init_fn(params):
        return ClipObservation(inner.init(params), jnp.zeros([], bool))

    def update_fn(updates, state, params=None):
        new, inner_state = inner.update(updates, state.inner, params)
        diffs = jax.tree.leaves(jax.tree.map(lambda a, b: jnp.any(a != b), new, updates))
        changed = jnp.any(jnp.stack(diffs)) if diffs else jnp.zeros([], bool)
        return new, ClipObservation(inner_state, changed)

    return optax.GradientTransformation(init_fn, update_fn)


class SkipObservation(NamedTuple):
    """State of :func:`observe_skips`: the ``apply_if_finite`` state and whether the last update
    was dropped."""

    inner: Any
    skipped: jax.Array


def observe_skips(
    inner: optax.GradientTransformation, max_consecutive_errors: jax.Array | float
) -> optax.GradientTransformation:
    """Wrap ``optax.apply_if_finite(tx, max_consecutive_errors)`` so its state records whether
    it dropped the last update.

    ``apply_if_finite`` drops a non-finite update unless it is the (k+1)-th non-finite one in a
    row, k = ``max_consecutive_errors``: then it gives up and applies it. Its own state says only
    whether the update was finite (``last_finite``), so the drop is
    ``not last_finite and notfinite_count <= k``.
    """

    def init_fn(params):
        return SkipObservation(inner.init(params), jnp.zeros([], bool))

    def update_fn(updates, state, params=None):
        new, inner_state = inner.update(updates, state.inner, params)
        dropped = ~inner_state.last_finite & (inner_state.notfinite_count <= max_consecutive_errors)
        return new, SkipObservation(inner_state, dropped)

    return optax.GradientTransformation(init_fn, update_fn)


def build_chain(
    chain: str | ChainFactory,
    hparams: Mapping[str, jax.Array],
    *,
    schedule: str = "constant",
    total_steps: int = 1,
    warmup_steps: int = 0,
    layers: Sequence[str] = (),
    layer_lr: Mapping[str, Mapping[str, float]] | None = None,
) -> optax.GradientTransformation:
    """Build the optax transformation of ``chain`` from (traced) hyperparameters.

    Args:
      chain: a chain string or a callable ``hparams -> optax.GradientTransformation``.
      hparams: hyperparameter name -> scalar (a traced array inside the sweep); missing names
        take the stage defaults. ``lr_mult_l`` multiplies layer l's update (see the module
        docstring).
      schedule: learning-rate schedule applied to every optimizer stage (:func:`make_schedule`).
      total_steps, warmup_steps: the schedule's horizon and warmup.
      layers: the layer names, input side first (what ``lr_mult_l`` counts).
      layer_lr: the parametrization's learning-rate multipliers, layer -> parameter -> factor
        (:func:`gradlab.models.layer_lr_multipliers`; ``None``: all 1).

    Returns:
      An ``optax.GradientTransformation``; clip stages are wrapped in :func:`observe_changes`,
      ``apply_if_finite`` in :func:`observe_skips`; per-layer factors other than 1 add
      :func:`gradlab.layer_rates.scale_by_layer` as the last stage.

    Raises:
      ValueError: an ``lr_mult_l`` axis for a missing layer, or per-layer factors for a
        callable chain.
    """
    scales = layer_scales(hparams, layers, layer_lr)
    if not isinstance(chain, str):
        if scales:
            raise ValueError("a callable chain takes no per-layer learning rates")
        return chain(hparams)

    def value(stage: str, name: str) -> Any:
        return hparams[name] if name in hparams else STAGES[stage].defaults[name]

    def build(stages: list[str]) -> optax.GradientTransformation:
        parts = []
        for i, s in enumerate(stages):
            stage = STAGES[s]
            kwargs = {k: value(s, k) for k in stage.defaults}
            if stage.kind == "wrapper":
                # apply_if_finite: the rest of the chain runs only on finite gradients.
                parts.append(stage.build(build(stages[i + 1 :]), **kwargs))
                break
            if stage.kind == "optimizer":
                kwargs["learning_rate"] = make_schedule(
                    schedule, kwargs["learning_rate"], total_steps, warmup_steps
                )
            tx = stage.build(**kwargs)
            parts.append(observe_changes(tx) if stage.kind == "clip" else tx)
        return optax.chain(*parts) if len(parts) > 1 else parts[0]

    tx = build(_stages(chain))
    return optax.chain(tx, scale_by_layer(scales)) if scales else tx


def states_of(state: Any, kind: type) -> list[Any]:
    """The sub-states of type ``kind`` (e.g. ``optax.ScaleByAdamState``) in a chain's state."""
    leaves = jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, kind))
    return [s for s in leaves if isinstance(s, kind)]


def clipped(opt_state: Any) -> jax.Array:
    """Whether any clip stage of the chain changed its input at the last update."""
    flags = [s.changed for s in states_of(opt_state, ClipObservation)]
    return jnp.any(jnp.stack(flags)) if flags else jnp.zeros([], bool)


def skipped(opt_state: Any) -> jax.Array:
    """Whether ``apply_if_finite`` dropped the last update because it was not finite.

    Exact for the chains :func:`build_chain` makes (their ``apply_if_finite`` is wrapped in
    :func:`observe_skips`). In a user's chain with a bare ``optax.apply_if_finite`` the flag is
    ``not last_finite``, which is also true for the non-finite update that is applied once more
    than ``max_consecutive_errors`` came in a row.
    """
    observed = states_of(opt_state, SkipObservation)
    if observed:
        flags = [s.skipped for s in observed]
    else:
        flags = [~s.last_finite for s in states_of(opt_state, optax.ApplyIfFiniteState)]
    return jnp.any(jnp.stack(flags)) if flags else jnp.zeros([], bool)


def stability_rule(chain: str | ChainFactory) -> str | None:
    """Which edge-of-stability bound governs a chain: ``"sgd"``, ``"momentum"``, ``"adam"``.

    The chain's optimizer stage decides (clip stages leave the linearised dynamics below the
    threshold unchanged). ``None`` where no closed form is known (nesterov, adamw, rmsprop,
    adagrad, callables).
    """
    if not isinstance(chain, str):
        return None
    stages = [s for s in _stages(chain) if STAGES[s].kind == "optimizer"]
    return STAGES[stages[0]].stability_rule if len(stages) == 1 else None


def hparam(chain: str, name: str, hparams: Mapping[str, Any]) -> Any:
    """The value a chain uses for ``name``: the grid's, else the first stage default."""
    return hparams[name] if name in hparams else chain_hparams(chain)[name]


def update_kind(chain: str | ChainFactory) -> str | None:
    """Whether a chain's update is SGD-like (``"sgd"``: linear in the gradient) or Adam-like
    (``"adam"``: normalised entrywise, so invariant to the gradient's scale), which picks μP's
    learning-rate multipliers (:mod:`gradlab.parametrizations`).

    A chain is Adam-like if any optimizer stage is (one entrywise normalisation removes the
    gradient's scale from the update); clip and wrapper stages do not change the kind (a clip
    that is active rescales the gradient, which μP's table does not model). ``None`` for a
    callable.
    """
    if not isinstance(chain, str):
        return None
    kinds = {STAGES[s].update_kind for s in _stages(chain) if STAGES[s].kind == "optimizer"}
    return "adam" if "adam" in kinds else "sgd"


def ignores_layout(chain: str | ChainFactory) -> bool:
    """True for chains that treat the parameters as a bag of numbers: every stage is
    elementwise or uses global reductions (norms over all parameters), so storing a kernel
    transposed changes nothing but rounding. False for ``adaptive_grad_clip`` (unit-wise norms
    over a kernel's input axis) and for user callables (unknown)."""
    return isinstance(chain, str) and not any(STAGES[s].reads_axes for s in _stages(chain))


def tolerates_nonfinite(chain: str | ChainFactory) -> bool:
    """True for chains that skip non-finite gradients (``apply_if_finite``) instead of dying."""
    return isinstance(chain, str) and any(STAGES[s].kind == "wrapper" for s in _stages(chain))
