"""The opt-in curvature metric sets, measured inside the training step on their own cadence.

One entry point, :func:`measure`, runs every selected set at a step ``t`` with
``t % sharpness_every == 0`` (the step stays a real branch: ``t`` is shared by all runs). Each
set is one function in :data:`MEASUREMENTS` that returns exactly the variables
:data:`gradlab.schema.CURVATURE_SETS` lists for it, plus its new warm-start vector if it keeps
one. A new opt-in set is one function here and one entry in the schema.

Every measurement is of θ_t on the step's batch (the whole training set for full-batch
training); the maths lives in :mod:`gradlab.curvature`. ``sharpness`` is λ_max(∇²L) by Lanczos
with ``sharpness_iters`` Hessian-vector products, warm-started from the previous measurement's
eigenvector; ``precond_sharpness`` is λ_max(P⁻¹∇²L) with P Adam's preconditioner after step t's
update (the one that produced θ_{t+1}), NaN for chains without Adam; ``sharpness_bound`` is the
chain's edge of stability at step t's learning rate η_t (NaN where no closed form is known);
``hessian_trace`` uses 10 Rademacher probes shared by all runs; ``grad_noise_scale`` and
``grad_snr`` come from the per-example gradients of the batch. ``feature_change`` is measured at
every logged step (not on the ``sharpness_every`` cadence): the RMS of h^l(θ_t; x_t) −
h^l(θ_0; x_t), each layer's pre-activation change since initialisation on the step's batch, the
coordinate check of Tensor Programs V (θ_0 is kept as that set's state).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import optax

from gradlab import curvature, optim, schema

__all__ = [
    "MEASUREMENTS",
    "Facts",
    "Measurement",
    "Probe",
    "initial_vectors",
    "measure",
    "variables",
]

HUTCHINSON_PROBES = 10


class Facts(Protocol):
    """The static facts of a group's program that the measurements read
    (:class:`gradlab.engine.program.Config` has them)."""

    chain: Any
    schedule: str
    steps: int
    warmup_steps: int
    sharpness_iters: int  # Lanczos steps per measurement
    data_seed: int  # seeds the Hutchinson probes
    curvature_sets: tuple[str, ...]  # the selected sets, in schema order
    num_layers: int  # length of the ``layer`` dim


def variables(sets: tuple[str, ...]) -> tuple[str, ...]:
    """The variables these sets record, sorted."""
    return tuple(sorted({v for s in sets for v in schema.CURVATURE_SETS[s]}))


class Probe(NamedTuple):
    """What one measurement sees: θ_t, the optimizer state after step t, the batch."""

    loss_fn: Callable[[Any], jax.Array]  # θ -> L(θ) on the step's batch
    signals: Callable[[Any], list[jax.Array]]  # θ -> the pre-activations h^l on the batch
    example_loss: Callable[[Any, jax.Array, jax.Array], jax.Array]  # θ, x_i, y_i -> ℓ_i
    params: Any
    opt_state: Any
    hp: Mapping[str, jax.Array]
    t: jax.Array
    x: jax.Array
    y: jax.Array


Values = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One opt-in set: ``fn(cfg, probe, state) -> (values, its new state or None)``.

    ``warm_start``: the set keeps a state between measurements (a Lanczos warm start, zeros
    at first; or, with ``keeps_init``, the initial parameters θ_0). ``every_logged``: measured
    at every logged step instead of every ``sharpness_every`` steps.
    """

    fn: Callable[[Facts, Probe, Any], tuple[Values, Any]]
    warm_start: bool = False
    keeps_init: bool = False
    every_logged: bool = False


def _sharpness_bound(cfg: Facts, probe: Probe) -> jax.Array:
    """The chain's edge of stability at step t's learning rate (NaN without a known rule)."""
    rule = optim.stability_rule(cfg.chain)
    if rule is None:
        return jnp.full([], jnp.nan)
    hp, chain = probe.hp, cfg.chain
    lr = optim.make_schedule(
        cfg.schedule, optim.hparam(chain, "learning_rate", hp), cfg.steps, cfg.warmup_steps
    )
    lr = lr(probe.t) if callable(lr) else lr
    return curvature.stability_threshold(
        rule,
        lr,
        momentum=optim.hparam(chain, "momentum", hp) if rule == "momentum" else 0.9,
        b1=optim.hparam(chain, "b1", hp) if rule == "adam" else 0.9,
    )


def _sharpness(cfg: Facts, probe: Probe, warm: Any) -> tuple[Values, Any]:
    value, vector = curvature.top_hessian_eigenvalue(
        probe.loss_fn, probe.params, warm, num_iters=cfg.sharpness_iters
    )
    return {"sharpness": value, "sharpness_bound": _sharpness_bound(cfg, probe)}, vector


def _precond_sharpness(cfg: Facts, probe: Probe, warm: Any) -> tuple[Values, Any]:
    bound = _sharpness_bound(cfg, probe)
    adam = optim.states_of(probe.opt_state, optax.ScaleByAdamState)
    if not (adam and isinstance(cfg.chain, str)):  # no Adam preconditioner: nothing to measure
        return {"precond_sharpness": jnp.full([], jnp.nan), "sharpness_bound": bound}, warm
    get = lambda name: optim.hparam(cfg.chain, name, probe.hp)
    precond = curvature.adam_preconditioner(
        adam[0].nu, adam[0].count, b1=get("b1"), b2=get("b2"), eps=get("eps")
    )
    value, vector = curvature.preconditioned_sharpness(
        probe.loss_fn, probe.params, precond, warm, num_iters=cfg.sharpness_iters
    )
    return {"precond_sharpness": value, "sharpness_bound": bound}, vector


def _hessian_trace(cfg: Facts, probe: Probe, warm: Any) -> tuple[Values, Any]:
    # One probe key per step, shared by all runs (so no random draw is vmapped).
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.data_seed), probe.t)
    trace = curvature.hessian_trace(probe.loss_fn, probe.params, key, num_probes=HUTCHINSON_PROBES)
    return {"hessian_trace": trace}, None


def _per_example(cfg: Facts, probe: Probe, warm: Any) -> tuple[Values, Any]:
    grads = jax.vmap(jax.grad(probe.example_loss), in_axes=(None, 0, 0))(
        probe.params, probe.x, probe.y
    )
    return {
        "grad_noise_scale": curvature.gradient_noise_scale(grads),
        "grad_snr": curvature.gradient_snr(grads),
    }, None


def _feature_change(cfg: Facts, probe: Probe, init: Any) -> tuple[Values, Any]:
    now, then = probe.signals(probe.params), probe.signals(init)
    rms = [jnp.sqrt(jnp.mean(jnp.square(a - b))) for a, b in zip(now, then, strict=True)]
    pad = [jnp.full([], jnp.nan)] * (cfg.num_layers - len(rms))
    return {"act_change_rms_layer": jnp.stack([*rms, *pad])}, init


MEASUREMENTS: dict[str, Measurement] = {
    "sharpness": Measurement(_sharpness, warm_start=True),
    "precond_sharpness": Measurement(_precond_sharpness, warm_start=True),
    "hessian_trace": Measurement(_hessian_trace),
    "per_example": Measurement(_per_example),
    "feature_change": Measurement(
        _feature_change, warm_start=True, keeps_init=True, every_logged=True
    ),
}


def initial_vectors(cfg: Facts, params: Any) -> dict[str, Any]:
    """The sets' states before the first measurement: zeros for a Lanczos warm start (it then
    starts afresh), the initial parameters θ_0 for a set that compares with them."""
    out = {}
    for s in cfg.curvature_sets:
        m = MEASUREMENTS[s]
        if m.warm_start:
            out[s] = params if m.keeps_init else jax.tree.map(jnp.zeros_like, params)
    return out


def measure(
    cfg: Facts, probe: Probe, vectors: dict[str, Any], due: jax.Array
) -> tuple[Values, dict[str, Any]]:
    """Every selected set's variables at this step and their states (a set on the
    ``sharpness_every`` cadence is NaN unless ``due``).

    Args:
      cfg: the selected sets and what they read.
      probe: θ_t, the optimizer state and the batch of this step.
      vectors: the warm-start vectors by set, as :func:`initial_vectors` makes them.
      due: whether this step measures (``t % sharpness_every == 0``), a scalar shared by all
        runs, so ``lax.cond`` stays a real branch and the other steps cost nothing.
    """

    def run(sets: list[str]) -> tuple[Values, dict[str, Any]]:
        values, new = {}, {}
        for s in sets:
            out, vector = MEASUREMENTS[s].fn(cfg, probe, vectors.get(s))
            values |= out
            if MEASUREMENTS[s].warm_start:
                new[s] = vector
        return {k: jnp.asarray(v, jnp.float32) for k, v in values.items()}, new

    def skip(sets: list[str]) -> tuple[Values, dict[str, Any]]:
        nan = {k: jnp.full(v.shape, jnp.nan, jnp.float32) for k, v in shapes(sets).items()}
        return nan, {s: vectors[s] for s in sets if s in vectors}

    def shapes(sets: list[str]) -> dict[str, Any]:
        return jax.eval_shape(lambda: run(sets)[0])

    every = [s for s in cfg.curvature_sets if MEASUREMENTS[s].every_logged]
    cadenced = [s for s in cfg.curvature_sets if not MEASUREMENTS[s].every_logged]
    values, new = run(every) if every else ({}, {})
    if cadenced:
        more, more_new = jax.lax.cond(due, lambda _: run(cadenced), lambda _: skip(cadenced), None)
        values, new = values | more, new | more_new
    return values, {**vectors, **new}
