"""The compiled program of one group: initialise and train a chunk of runs, then evaluate.

``chunk_program(cfg, hp, ...)`` maps a dict of [chunk]-shaped traced hyperparameters to a dict of
[chunk, ...] recorded arrays. Every function here is a top-level function of a frozen
:class:`~gradlab.engine.config.Config` (the static facts of the group), bound with
``functools.partial`` by :func:`build_program`; the engine compiles the result once per group.

Each run draws its initial parameters from its ``seed`` and ``init_scale``/``bias_std``
(:func:`init_run`); :func:`train_run` builds its optax chain from its traced hyperparameters and
runs one ``lax.scan`` over blocks of ``log_every`` steps (the first step of a block records the
metrics, the others only train). Every step checks divergence: a run diverges at the first step
whose loss or gradient is non-finite, or whose loss exceeds ``divergence_factor`` x its
reference loss (:func:`divergence_reference`; chains with ``apply_if_finite`` skip non-finite
gradients instead, and for them non-finite *parameters* count). From that step on the run is
frozen (its update is not applied) and its later metrics are NaN; the step of divergence keeps
the values measured there. With ``Config.progress_every`` the scan also reports the steps done
to the host every that many blocks (:func:`gradlab.engine.progress.report`); with 0 (the
default) the program holds no callback.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradlab import curvature, losses, models, optim, schema
from gradlab import metrics as M
from gradlab.engine import measure, platform, progress
from gradlab.engine.config import Config, layer_sizes, layer_widths, make_config

__all__ = [
    "Carry",
    "Config",
    "build_program",
    "chunk_program",
    "layer_sizes",
    "layer_widths",
    "make_chain",
    "make_config",
    "per_seed_batch_order",
]


class Carry(NamedTuple):
    """Scan carry of one run.

    ``param_sq`` holds Σθ² per layer of ``params`` as they stand at the start of a block of
    ``log_every`` steps, for the block's recorded step (``param_norm_layer``,
    ``update_ratio_layer``); ``None`` without the default metrics. It is computed where those
    parameters are produced (before the first step, at the end of each block), not in the step
    that reads them: there, the reduction of θ_t is unordered with respect to the update that
    overwrites θ_t in place, and XLA copies θ_t every step to keep it alive (benchmarks item 7).
    """

    params: Any
    opt_state: Any
    alive: jax.Array  # not diverged before this step
    diverged_at: jax.Array  # step of divergence, -1 if never
    loss0: jax.Array  # reference loss of the divergence factor; NaN until there is one
    vectors: dict[str, Any]  # warm starts of the Lanczos eigenvectors, by metric set
    param_sq: jax.Array | None  # [layers] Σθ² at the start of the block (default metrics)


def apply_model(cfg: Config, params: Any, x: jax.Array, zeros: Any = None):
    """The network's outputs on ``x`` and its sown pre-activations (with ``zeros``, the
    perturbations whose gradients are the backward signals; ``None``: no signals).

    A ``bfloat16`` program computes the forward pass (so the backward pass) in bfloat16 from
    float32 parameters: the parameters and inputs are cast on the way in, the outputs and
    signals back to float32 on the way out, so the loss, the gradients (of the casts) and the
    optimizer stay in float32 (mixed precision, Micikevicius et al. 2018).
    """
    params = cfg.storage(params)
    if cfg.dtype == "bfloat16":
        params = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
        x = x.astype(jnp.bfloat16)
    if zeros is None:
        out, signals = cfg.module.apply({"params": params}, x), {}
    else:
        out, state = cfg.module.apply(
            {"params": params, "perturbations": zeros}, x, mutable=["intermediates"]
        )
        signals = state.get("intermediates", {})
    if cfg.dtype == "bfloat16":
        out = out.astype(jnp.float32)
        signals = jax.tree.map(lambda h: h.astype(jnp.float32), signals)
    return out, signals


def batch_loss(cfg: Config, params: Any, zeros: Any, x: jax.Array, y: jax.Array, z_loss=None):
    """Mean training objective over a batch (the loss, plus the z-loss with a traced ``z_loss``:
    :func:`gradlab.losses.objective`), the outputs and the sown pre-activations (with ``zeros``,
    the perturbations whose gradients are the backward signals; ``None``: no signals)."""
    out, signals = apply_model(cfg, params, x, zeros)
    return jnp.mean(losses.objective(cfg.loss, out, y, z_loss)), (out, signals)


def evaluate(cfg: Config, params: Any, xs: jax.Array, ys: jax.Array, mask: jax.Array):
    """Mean loss and accuracy over a data set laid out as [batches, EVAL_BATCH, ...]; the loss
    without the z-loss term, so that final and test losses compare across ``z_loss`` values."""
    if xs.shape[0] * xs.shape[1] == 0:
        return jnp.full([], jnp.nan), jnp.full([], jnp.nan)

    def body(acc, inputs):
        x, y, m = inputs
        out, _ = apply_model(cfg, params, x)
        loss = jnp.sum(losses.per_example(cfg.loss, out, y) * m)
        hits = jnp.sum((jnp.argmax(out, -1) == y) * m) if cfg.classification else jnp.zeros([])
        return (acc[0] + loss, acc[1] + hits), None

    zero = jnp.zeros([], cfg.param_dtype)
    (loss, hits), _ = jax.lax.scan(body, (zero, zero), (xs, ys, mask))
    n = jnp.sum(mask)
    return loss / n, hits / n if cfg.classification else jnp.full([], jnp.nan)


def per_seed_batch_order(key: jax.Array, n: int, batch: int, steps: int) -> jax.Array:
    """[steps, batch] example indices: a fresh permutation per epoch, last partial batch dropped."""
    per_epoch = n // batch
    epochs = math.ceil(steps / per_epoch)
    perms = jax.vmap(lambda e: jax.random.permutation(jax.random.fold_in(key, e), n))(
        jnp.arange(epochs)
    )
    return perms[:, : per_epoch * batch].reshape(epochs * per_epoch, batch)[:steps]


def init_run(cfg: Config, hp: dict[str, jax.Array]):
    """Initial parameters (and the per-seed batch order) of one run: all its randomness."""
    key = jax.random.PRNGKey(hp.get("seed", jnp.zeros([], jnp.int32)))
    params = models.init_params(
        cfg.module,
        key,
        jnp.zeros(cfg.batch_shape, jnp.float32),
        hp.get("init_scale", 1.0),
        hp.get("bias_std"),
    )
    if cfg.param_dtype != jnp.float32:  # the float32 draw, widened: the same θ_0 in each dtype
        params = jax.tree.map(lambda p: p.astype(cfg.param_dtype), params)
    order = None
    if cfg.per_seed_order:
        order = per_seed_batch_order(jax.random.fold_in(key, 1), cfg.n_train, cfg.batch, cfg.steps)
    return params, order


def apply_update(params: Any, updates: Any, alive: jax.Array) -> Any:
    """θ_{t+1} = θ_t + [alive]·u_t. Freezing masks the update, not the state: the select runs
    inside the fused update loop (a select on the carried parameters would cost a copy of them
    every step). A dead run's optimizer state is never read again."""
    return jax.tree.map(lambda p, u: p + jnp.where(alive, u, jnp.zeros_like(u)), params, updates)


def divergence_reference(loss0: jax.Array, loss: jax.Array, skipped: jax.Array) -> jax.Array:
    """The reference of the divergence factor: the loss of the first step whose loss is finite
    and whose update was applied (not skipped by ``apply_if_finite``), NaN before it.

    A run whose first batch is poisoned (a non-finite loss or gradient) thus keeps the factor
    rule; with a NaN reference the comparison ``loss > factor · ref`` is false.

    The factor rule compares with ``max(reference, zero-output loss)`` (:func:`is_bad`), the
    zero-output loss being that of a network whose outputs are all zero
    (:func:`gradlab.losses.zero_output_loss`: log K for cross-entropy, ½E‖y‖² for MSE). A run
    diverges when it is ``divergence_factor`` times worse than where it started *and* than
    predicting zero: a reference near zero (a student that starts almost on a tiny teacher)
    would otherwise let batch-to-batch noise count as divergence. At the usual inits the
    reference is above it.
    """
    first = jnp.isfinite(loss) & ~skipped
    return jnp.where(jnp.isnan(loss0), jnp.where(first, loss, jnp.nan), loss0)


def is_bad(cfg: Config, loss, loss0, params, measured, grad_max_abs) -> jax.Array:
    """Whether step t diverges: its loss exceeds the factor, or something is non-finite.

    Chains with ``apply_if_finite`` skip non-finite gradients, so for them non-finite
    parameters count. At a recorded step finiteness follows from the metrics' reductions of the
    gradient (max |g| is NaN on a NaN, inf on an inf; benchmarks item 10); otherwise from one
    sum Σ 0·g (NaN exactly when g has a NaN or inf; item 2).
    """
    # A non-finite loss is not the factor rule's: it diverges below (or is skipped).
    bad = jnp.isfinite(loss) & (
        loss > cfg.divergence_factor * jnp.maximum(loss0, cfg.divergence_floor)
    )
    if cfg.tolerant:
        return bad | ~M.tree_all_finite(params)
    if grad_max_abs is not None:
        return bad | ~jnp.isfinite(loss) | ~jnp.isfinite(grad_max_abs)
    return bad | ~jnp.isfinite(loss) | ~M.tree_all_finite(measured)


def masked(values: dict[str, jax.Array], measured: jax.Array, applied: jax.Array):
    """Recorded values: a measurement of θ_t stands while the run was alive at step t
    (``measured``); one of the update u_t only where the update was applied (``applied``);
    the rest is NaN (False for flags)."""
    out = {}
    for name, v in values.items():
        valid = applied if schema.VARIABLES[name].of_update else measured
        out[name] = v & valid if v.dtype == jnp.bool_ else jnp.where(valid, v, jnp.nan)
    return out


class RunInputs(NamedTuple):
    """What every step of one run reads besides the carry."""

    hp: dict[str, jax.Array]
    tx: Any  # the run's optax transformation
    zeros: Any  # zero perturbations (their gradients are the backward signals)
    x_train: jax.Array
    y_train: jax.Array


def train_step(cfg: Config, run: RunInputs, carry: Carry, inputs, record: bool):
    """One optimizer step of one run at step ``t``; with ``record``, also its metrics."""
    t, idx = inputs
    x = run.x_train if idx is None else run.x_train[idx]
    y = run.y_train if idx is None else run.y_train[idx]
    params = carry.params
    measure_all = record and cfg.record_all
    with_signals = measure_all and cfg.n_signals > 0
    z_loss = run.hp.get("z_loss")
    (loss, (out, signals)), grads = jax.value_and_grad(
        functools.partial(batch_loss, cfg, z_loss=z_loss),
        argnums=(0, 1) if with_signals else 0,
        has_aux=True,
    )(params, run.zeros if with_signals else None, x, y)
    grads, signal_grads = grads if with_signals else (grads, {})
    updates, opt_state = run.tx.update(grads, carry.opt_state, params)
    measured = platform.for_reductions(grads)
    grad_sq = grad_max_abs = None
    if measure_all:  # the two reductions of g the metrics need
        grad_sq = M.layer_sums_of_squares(measured, cfg.layers)
        grad_max_abs = M.tree_max_abs(measured, grad_sq)
    loss0 = divergence_reference(carry.loss0, loss, optim.skipped(opt_state))
    bad = is_bad(cfg, loss, loss0, params, measured, grad_max_abs)
    alive = carry.alive & ~bad
    if measure_all:  # this step reduces u_t for its norm
        new_params = platform.apply_once(apply_update, params, updates, alive, t)
    else:
        new_params = apply_update(params, updates, alive)
    new_carry = Carry(
        params=new_params,
        opt_state=opt_state,
        alive=alive,
        diverged_at=jnp.where(carry.alive & bad, t, carry.diverged_at),
        loss0=loss0,
        vectors=carry.vectors,
        param_sq=carry.param_sq,
    )
    if not record:
        return new_carry, None
    values = {}
    if cfg.curvature_sets:
        probe = measure.Probe(
            loss_fn=lambda p: batch_loss(cfg, p, None, x, y, z_loss)[0],
            signals=lambda p: M.flat_signals(batch_loss(cfg, p, run.zeros, x, y)[1][1]),
            example_loss=lambda p, xi, yi: batch_loss(cfg, p, None, xi[None], yi[None], z_loss)[0],
            params=params,
            opt_state=opt_state,
            hp=run.hp,
            t=t,
            x=x,
            y=y,
        )
        values, vectors = measure.measure(cfg, probe, carry.vectors, t % cfg.sharpness_every == 0)
        new_carry = new_carry._replace(vectors=tree_where(carry.alive, vectors, carry.vectors))
    if cfg.record_all:
        values |= M.step_metrics(
            loss=loss,
            outputs=out,
            y=y,
            grad_sq=grad_sq,
            grad_max_abs=grad_max_abs,
            param_sq=carry.param_sq,
            updates=updates,  # recorded only where applied (alive), see masked()
            layers=cfg.layers,
            signals=signals,
            signal_grads=signal_grads,
            num_layers=cfg.num_layers,
            clipped=optim.clipped(opt_state),
            skipped=optim.skipped(opt_state),
        )
    else:
        values["loss"] = loss
    return new_carry, masked(values, measured=carry.alive, applied=alive)


def tree_where(cond: jax.Array, a: Any, b: Any) -> Any:
    return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)


def with_param_sq(cfg: Config, carry: Carry) -> Carry:
    """The carry with Σθ² of its parameters (see :class:`Carry`)."""
    if not cfg.record_all:
        return carry
    return carry._replace(param_sq=M.layer_sums_of_squares(carry.params, cfg.layers))


def make_chain(cfg: Config, hp: dict[str, jax.Array]) -> Any:
    """The optax transformation of one run: its chain from its traced hyperparameters, with
    the per-layer learning rates (``lr_mult_l``, the parametrization's multipliers)."""
    return optim.build_chain(
        cfg.chain,
        hp,
        schedule=cfg.schedule,
        total_steps=cfg.steps,
        warmup_steps=cfg.warmup_steps,
        layers=cfg.layers,
        layer_lr=cfg.layer_lr,
    )


def initial_sharpness(
    cfg: Config, params: Any, x: jax.Array, y: jax.Array, z_loss: Any = None
) -> jax.Array:
    """λ₀ = λ_max(∇²L(θ_0)) of the training objective on ``(x, y)`` (the training set; with
    the z-loss where the grid has one, as the steps minimise it), by Lanczos with
    ``sharpness_iters`` steps from a fixed start
    (:func:`gradlab.curvature.top_hessian_eigenvalue`)."""
    loss_fn = lambda p: batch_loss(cfg, p, None, x, y, z_loss)[0]
    start = jax.tree.map(jnp.zeros_like, params)
    value, _ = curvature.top_hessian_eigenvalue(
        loss_fn, params, start, num_iters=cfg.sharpness_iters
    )
    return value


def train_run(cfg: Config, hp, params, order, x_train, y_train, eval_train, eval_test):
    """Train one run from ``params`` and evaluate it: the recorded per-step arrays and the
    per-run results (see :mod:`gradlab.schema`).

    With ``lr_units = "sharpness"`` the run's ``learning_rate`` hyperparameter is c, and it
    trains (chain, schedule, stability bound) at η = c/λ₀, λ₀ its :func:`initial_sharpness`.
    A ``float64`` program widens the data on the way in; every recorded float is float32 on the
    way out (the schema's dtypes), whatever the program computed in.
    """
    params = cfg.storage(params)
    if cfg.param_dtype != jnp.float32:
        widen = lambda a: a.astype(cfg.param_dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a
        x_train, y_train, eval_train, eval_test = jax.tree.map(
            widen, (x_train, y_train, eval_train, eval_test)
        )
    first = {}
    if cfg.initial_sharpness:
        lam0 = initial_sharpness(cfg, params, x_train, y_train, hp.get("z_loss"))
        first["initial_sharpness"] = lam0
        if cfg.lr_units == "sharpness":
            hp = {**hp, "learning_rate": hp["learning_rate"] / lam0}
    tx = make_chain(cfg, hp)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, cfg.compute_dtype), cfg.perturbations)
    run = RunInputs(hp, tx, zeros, x_train, y_train)

    def plain(carry, inputs):
        return train_step(cfg, run, carry, inputs, record=False)[0], None

    def block(carry, inputs):
        t, idx = inputs
        params_at_t = carry.params
        carry, recorded = train_step(cfg, run, carry, (t[0], None if idx is None else idx[0]), True)
        if cfg.log_every > 1:
            carry, _ = jax.lax.scan(plain, carry, (t[1:], None if idx is None else idx[1:]))
        if cfg.snapshot:  # θ_t of the block's recorded step, as the module reads it
            recorded = {**recorded, "params": cfg.storage(params_at_t)}
        if cfg.progress_every:  # t is the scan's counter, the same for every run
            progress.report(t[0] // cfg.log_every, cfg.progress_every, cfg.log_every, cfg.steps)
        return with_param_sq(cfg, carry), recorded

    steps, log_every = cfg.steps, cfg.log_every
    n_blocks = steps // log_every
    t_all = jnp.arange(steps, dtype=jnp.int32)
    t_blocks = t_all[: n_blocks * log_every].reshape(n_blocks, log_every)
    idx_blocks = (
        None if order is None else order[: n_blocks * log_every].reshape(n_blocks, log_every, -1)
    )
    carry = Carry(
        params,
        tx.init(params),
        jnp.ones([], bool),
        jnp.full([], -1, jnp.int32),
        jnp.full([], jnp.nan, cfg.param_dtype),
        measure.initial_vectors(cfg, params),
        None,
    )
    carry, recorded = jax.lax.scan(block, with_param_sq(cfg, carry), (t_blocks, idx_blocks))
    if steps > n_blocks * log_every:
        rest = (
            t_all[n_blocks * log_every :],
            None if order is None else order[n_blocks * log_every :],
        )
        carry, _ = jax.lax.scan(plain, carry, rest)
    out = {**recorded, **first, **final_results(cfg, carry, eval_train, eval_test)}
    if cfg.snapshot or cfg.keep_final_params:
        out["final_params"] = cfg.storage(carry.params)
    if cfg.param_dtype == jnp.float32:
        return out
    narrow = lambda a: a.astype(jnp.float32) if jnp.issubdtype(a.dtype, jnp.floating) else a
    return jax.tree.map(narrow, out)


def final_results(cfg: Config, carry: Carry, eval_train, eval_test) -> dict[str, jax.Array]:
    """The per-run results after training (NaN losses and accuracy for a diverged run)."""
    diverged = carry.diverged_at >= 0
    nan_if_diverged = lambda v: jnp.where(diverged, jnp.nan, v)
    final_loss, _ = evaluate(cfg, carry.params, *eval_train)
    test_loss, test_accuracy = evaluate(cfg, carry.params, *eval_test)
    return {
        "diverged": diverged,
        "diverged_at": carry.diverged_at,
        "final_loss": nan_if_diverged(final_loss),
        "test_loss": nan_if_diverged(test_loss),
        "test_accuracy": nan_if_diverged(test_accuracy),
    }


def chunk_program(cfg: Config, hp, x_train, y_train, shared_order, eval_train, eval_test):
    """Initialise and train a chunk of runs (``hp``: name -> [chunk] values).

    The random draws run as a sequential ``lax.map`` over the chunk's runs (cheap to run, slow
    to compile under ``vmap``); training is vmapped across them.
    """
    params, order = jax.lax.map(functools.partial(init_run, cfg), hp)
    order_axis = None if order is None else 0
    order = shared_order if order is None else order
    train = functools.partial(train_run, cfg)
    return jax.vmap(train, in_axes=(0, 0, order_axis, None, None, None, None))(
        hp, params, order, x_train, y_train, eval_train, eval_test
    )


def build_program(cfg: Config, report: bool = False) -> Callable[..., dict[str, jax.Array]]:
    """``program(hp, x_train, y_train, order, eval_train, eval_test)`` for one group: ``order``
    is the shared [steps, batch] example order (``None`` for full batch or per-seed orders).

    With ``report``, the training scan tells the host how many steps are done 20 to 40 times
    per call (:data:`gradlab.engine.progress.REPORTS_PER_CHUNK`)
    (:func:`gradlab.engine.progress.report`); without it the program holds no callback.
    """
    if report:
        every = progress.report_every(cfg.steps // cfg.log_every)
        cfg = dataclasses.replace(cfg, progress_every=every)
    return functools.partial(chunk_program, cfg)
