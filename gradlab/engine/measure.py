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
``grad_snr`` come from the per-example gradients of the batch.
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


def variables(sets: tuple[str, ...]) -> tuple[str, ...]:
    """The variables these sets record, sorted."""
    return tuple(sorted({v for s in sets for v in schema.CURVATURE_SETS[s]}))


class Probe(NamedTuple):
    """What one measurement sees: θ_t, the optimizer state after step t, the batch."""

    loss_fn: Callable[[Any], jax.Array]  # θ -> L(θ) on the step's batch
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
    """One curvature set: ``fn(cfg, probe, warm) -> (values, new warm-start vector or None)``."""

    fn: Callable[[Facts, Probe, Any], tuple[Values, Any]]
    warm_start: bool = False


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


MEASUREMENTS: dict[str, Measurement] = {
    "sharpness": Measurement(_sharpness, warm_start=True),
    "precond_sharpness": Measurement(_precond_sharpness, warm_start=True),
    "hessian_trace": Measurement(_hessian_trace),
    "per_example": Measurement(_per_example),
}


def initial_vectors(cfg: Facts, params: Any) -> dict[str, Any]:
    """The warm starts before the first measurement: zeros (Lanczos then starts afresh)."""
    sets = [s for s in cfg.curvature_sets if MEASUREMENTS[s].warm_start]
    return {s: jax.tree.map(jnp.zeros_like, params) for s in sets}


def measure(
    cfg: Facts, probe: Probe, vectors: dict[str, Any], due: jax.Array
) -> tuple[Values, dict[str, Any]]:
    """Every selected set's variables at this step (NaN unless ``due``) and the warm starts.

    Args:
      cfg: the selected sets and what they read.
      probe: θ_t, the optimizer state and the batch of this step.
      vectors: the warm-start vectors by set, as :func:`initial_vectors` makes them.
      due: whether this step measures (``t % sharpness_every == 0``), a scalar shared by all
        runs, so ``lax.cond`` stays a real branch and the other steps cost nothing.
    """

    def run(_):
        values, new = {}, dict(vectors)
        for s in cfg.curvature_sets:
            out, vector = MEASUREMENTS[s].fn(cfg, probe, vectors.get(s))
            values |= out
            if MEASUREMENTS[s].warm_start:
                new[s] = vector
        return {k: jnp.asarray(values[k], jnp.float32) for k in names}, new

    def skip(_):
        return {k: jnp.full([], jnp.nan) for k in names}, vectors

    names = variables(cfg.curvature_sets)

    return jax.lax.cond(due, run, skip, None)
