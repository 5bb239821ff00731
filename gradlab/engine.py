"""The sweep engine: spec -> plan -> one compiled program per group -> chunks -> Dataset.

A sweep is the Cartesian product of optimizer chains, static grid axes (``activation``, ``init``,
``batch_size``) and traced grid axes (everything else). Chains and static axes make **groups**;
each group is compiled once as one program, ``jit(vmap(train_run))``, and fed the flat table of
traced runs in fixed-size **chunks** (the last one padded), so changing any traced value never
recompiles.

Each run draws its initial parameters from its ``seed`` and ``init_scale``/``bias_std``
(``init_run``); ``train_run`` builds its optax chain from its traced hyperparameters and runs one
``lax.scan`` over blocks of ``log_every`` steps (the first step of a block records the metrics,
the others only train). Every step checks divergence: a run diverges at the first step whose loss
or gradient is non-finite, or whose loss exceeds ``divergence_factor`` x its initial loss (chains
with ``apply_if_finite`` skip non-finite gradients instead; for them non-finite *parameters*
count). From that step on the run is frozen (its update is not applied) and its later metrics are
NaN; the step of divergence keeps the values measured there.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

from gradlab import curvature, models, optim, store
from gradlab import data as data_lib
from gradlab import metrics as M
from gradlab.spec import ConfigError, DataSpec, ModelSpec, SweepSpec

__all__ = ["Group", "Plan", "default_memory_budget", "load_data", "make_plan", "run"]

EVAL_BATCH = 1000
DEFAULT_MEMORY_BUDGET = 2 * 2**30  # bytes for one chunk's outputs and working set, on CPU
# Runs per device in one compiled call. On CPU larger chunks do not go faster: the article
# workload at 4,096 runs took 42.9 s in chunks of 256 or 512, 47.5 s in chunks of 1,024 and
# 61.5 s in one chunk (benchmarks/scaling.py on the 2-core machine), as the working set
# outgrows the caches. A GPU or TPU needs wide batches to be busy, so there only the memory
# budget (by default half of the device's memory) limits the chunk.
MAX_CHUNK = 512
MAX_CHUNK_ACCELERATOR = 65_536
# XLA options for compiling on CPU. At optimisation level 1 instead of XLA's default 3, LLVM
# skips its heavier passes: gradlab's programs spend their time in library matrix products
# (YNNPACK, Eigen) and memory-bound loops, which those passes do not speed up (article workload
# at 1,024 runs, 8 interleaved rounds: 5.50 against 5.49 s per call), while compiling takes 40 %
# less time (2.0 against 3.3-3.5 s per program; the notebooks' fast runs: -24 %). Set it to {}
# for XLA's defaults.
CPU_COMPILER_OPTIONS: dict[str, Any] = {"xla_backend_optimization_level": 1}


@dataclasses.dataclass(frozen=True)
class Group:
    """A static group: one optimizer chain and one value of each static grid axis."""

    chain: Any
    static: Mapping[str, Any]

    @property
    def label(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.static.items())
        return f"{optim.chain_name(self.chain)}{extra}"


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a sweep will compute: groups x a flat table of traced runs, in chunks.

    Attributes:
      spec: the validated spec.
      groups: the static groups (optimizer outermost, then static axes in grid order).
      runs: traced axis -> [num_runs] values, the Cartesian product in C order.
      steps: optimizer steps per run.
      steps_per_epoch: batches per epoch (1 for full batch).
      logged_steps: the steps whose metrics are recorded.
      chunk_size: runs per compiled call.
    """

    spec: SweepSpec
    groups: tuple[Group, ...]
    runs: Mapping[str, np.ndarray]
    steps: int
    steps_per_epoch: int
    logged_steps: np.ndarray
    chunk_size: int

    @property
    def num_runs(self) -> int:
        """Traced runs per group."""
        return len(next(iter(self.runs.values()))) if self.runs else 1

    @property
    def num_chunks(self) -> int:
        """Chunks per group."""
        return math.ceil(self.num_runs / self.chunk_size)

    def chunk(self, index: int) -> dict[str, np.ndarray]:
        """The traced hyperparameters of chunk ``index``, padded to ``chunk_size`` runs.

        Padding repeats the chunk's first run; padded results are discarded.
        """
        start = index * self.chunk_size
        stop = min(start + self.chunk_size, self.num_runs)
        pad = self.chunk_size - (stop - start)
        out = {}
        for name, values in self.runs.items():
            part = values[start:stop]
            out[name] = np.concatenate([part, np.repeat(part[:1], pad)]) if pad else part
        if not out:  # a grid with no traced axis: one run per group (seed 0)
            out["seed"] = np.zeros(self.chunk_size, np.int32)
        return out


def load_data(data: DataSpec | data_lib.Dataset, *, cache: bool = False) -> data_lib.Dataset:
    """The arrays of a :class:`DataSpec` (or a user's Dataset, validated).

    With ``cache`` a named dataset is loaded once per process and its arrays are read-only
    (see :func:`gradlab.data.load`). :func:`run` loads that way, since it only reads them:
    generating MNIST-1D takes about 0.2 s and reading the MNIST subset 35 ms, which every
    ``gl.run`` call paid again.
    """
    if isinstance(data, DataSpec):
        return data_lib.load(
            data.name,
            n_train=data.n_train,
            n_test=data.n_test,
            seed=data.seed,
            data_dir=data.data_dir,
            cache=cache,
            **data.options,
        )
    return data_lib.from_arrays(*data)


def _traced_dtype(name: str) -> Any:
    return np.int32 if name == "seed" else np.float32


def make_plan(
    spec: SweepSpec,
    dataset: data_lib.Dataset,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    num_devices: int = 1,
    platform: str = "cpu",
) -> Plan:
    """Lay out the sweep: groups, the flat table of traced runs, steps and chunking.

    Without ``chunk_size``, a chunk holds as many runs as fit ``memory_budget``, at most
    ``MAX_CHUNK`` per device on ``platform="cpu"`` and ``MAX_CHUNK_ACCELERATOR`` on a GPU or
    TPU. The chunk size is a multiple of ``num_devices`` (each device gets an equal slice).

    Raises:
      ConfigError: a field is inconsistent with the data (e.g. batch larger than the data set).
    """
    n_train = dataset.x_train.shape[0]
    batch_sizes = spec.static_axes.get("batch_size", (spec.batch_size,))
    for b in batch_sizes:
        if b is not None and b > n_train:
            raise ConfigError(f"batch_size: {b} is larger than the training set ({n_train})")
    if spec.epochs is not None and len(set(batch_sizes)) > 1:
        raise ConfigError("epochs: give steps= when batch_size is a grid axis")
    batch = batch_sizes[0]
    steps_per_epoch = 1 if batch is None else n_train // batch
    steps = spec.steps if spec.steps is not None else spec.epochs * steps_per_epoch
    if spec.log_every > steps:
        raise ConfigError(f"log_every: {spec.log_every} is more than the {steps} steps")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size <= 0):
        raise ConfigError(f"chunk_size: must be a positive integer, got {chunk_size!r}")

    static = spec.static_axes
    groups = tuple(
        Group(chain, dict(zip(static, values, strict=True)))
        for chain in spec.optimizers
        for values in itertools.product(*static.values())
    )
    traced = spec.traced_axes
    grid_points = list(itertools.product(*traced.values()))
    runs = {
        name: np.array([p[i] for p in grid_points], _traced_dtype(name))
        for i, name in enumerate(traced)
    }
    logged = np.arange(0, (steps // spec.log_every) * spec.log_every, spec.log_every)
    num_runs = len(grid_points)
    if chunk_size is None:
        per_run = _bytes_per_run(spec, dataset, len(logged), batch or n_train)
        cap = MAX_CHUNK if platform == "cpu" else MAX_CHUNK_ACCELERATOR
        chunk_size = max(1, min(num_runs, cap * num_devices, memory_budget // per_run))
        if per_run > memory_budget:
            raise ConfigError(
                f"memory_budget: one run needs about {per_run / 2**20:.0f} MiB, more than the "
                f"budget of {memory_budget / 2**20:.0f} MiB; raise it or log less often"
            )
    chunk_size = min(chunk_size, num_runs)
    chunk_size = math.ceil(chunk_size / num_devices) * num_devices
    return Plan(spec, groups, runs, steps, steps_per_epoch, logged, chunk_size)


def _bytes_per_run(spec: SweepSpec, dataset: data_lib.Dataset, logged: int, batch: int) -> int:
    """A rough upper estimate of one run's memory: parameters, states, activations, outputs."""
    d_in = dataset.x_train.shape[1]
    if isinstance(spec.model, models.nn.Module):
        widths = [d_in, 256, 256, 10]  # unknown user module: assume a mid-sized MLP
    else:
        widths = [d_in, *spec.model.hidden, dataset.num_classes or dataset.y_train.shape[-1]]
    n_params = sum(a * b + b for a, b in itertools.pairwise(widths))
    n_layers = len(widths) - 1
    activations = batch * sum(widths[1:]) * 4  # pre-activations, signals and their gradients
    per_step = 8 + 5 * n_layers  # recorded floats per logged step
    # Curvature: a Lanczos basis of sharpness_iters vectors per eigenvalue metric, and one
    # per-example gradient per batch element.
    krylov = sum(m in spec.metrics for m in ("sharpness", "precond_sharpness"))
    curvature = krylov * (spec.sharpness_iters + 2) * n_params
    if "per_example" in spec.metrics:
        curvature += batch * n_params
    return 4 * (8 * n_params + activations + logged * per_step + curvature) + 1024


CURVATURE_SETS = ("sharpness", "precond_sharpness", "hessian_trace", "per_example")
CURVATURE_VARIABLES = {
    "sharpness": ("sharpness", "sharpness_bound"),
    "precond_sharpness": ("precond_sharpness", "sharpness_bound"),
    "hessian_trace": ("hessian_trace",),
    "per_example": ("grad_noise_scale", "grad_snr"),
}
HUTCHINSON_PROBES = 10


class Carry(NamedTuple):
    """Scan carry of one run.

    ``param_sq`` holds Σθ² per layer of ``params`` as they stand at the start of a block of
    ``log_every`` steps, for the block's recorded step (``param_norm_layer``,
    ``update_ratio_layer``); ``None`` without the default metrics. It is computed where those
    parameters are produced (before the first step, at the end of each block), not in the step
    that reads them: there, the reduction of θ_t is unordered with respect to the update that
    overwrites θ_t in place, so XLA copies θ_t every step to keep it alive. On the 2-core CPU
    that copy made the default metrics cost 1.30x ``none`` at 256 runs, against 1.16x this way
    (interleaved A/B, 11 rounds).
    """

    params: Any
    opt_state: Any
    alive: jax.Array  # not diverged before this step
    diverged_at: jax.Array  # step of divergence, -1 if never
    loss0: jax.Array  # loss at step 0 (reference for the divergence factor)
    vectors: dict[str, Any]  # warm starts of the Lanczos eigenvectors, by metric set
    param_sq: jax.Array | None  # [layers] Σθ² at the start of the block (default metrics)


def _tree_where(cond: jax.Array, a: Any, b: Any) -> Any:
    return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)


class _ByIdentity:
    """Hashes and compares by identity, and keeps the object alive so its id is not reused."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByIdentity) and other.obj is self.obj


def _cache_key(obj: Any) -> Any:
    """``obj`` as part of a cache key: itself when hashable (a Flax module compares by class and
    fields), else by identity."""
    try:
        hash(obj)
        return obj
    except TypeError:
        return _ByIdentity(obj)


def _variable_shapes(module: Any, batch_shape: tuple[int, int]) -> Any:
    """The shapes of ``module.init`` on a [batch, features] input. Tracing Flax's init takes
    about 30 ms, paid by every ``gl.run`` call, even one whose program is cached; a module that
    compares equal reuses the shapes."""
    return _cached_variable_shapes(_cache_key(module), batch_shape)


@functools.lru_cache(maxsize=32)
def _cached_variable_shapes(key: Any, batch_shape: tuple[int, int]) -> Any:
    module = key.obj if isinstance(key, _ByIdentity) else key
    return jax.eval_shape(
        lambda k, x: module.init(k, x),
        jax.random.PRNGKey(0),
        jax.ShapeDtypeStruct(batch_shape, jnp.float32),
    )


def build_program(
    spec: SweepSpec, group: Group, plan: Plan, dataset: data_lib.Dataset
) -> tuple[Callable[..., dict[str, jax.Array]], int]:
    """The program that trains one chunk of a group's runs, and the width of each layer's signal.

    ``program(hparams, x_train, y_train, order, eval_train, eval_test)`` maps a dict of
    [chunk]-shaped hyperparameter arrays to a dict of [chunk, ...] recorded arrays; ``order`` is
    the shared [steps, batch] example order (``None`` for full batch or per-seed orders). The
    engine compiles it once per group with ``jax.jit``.
    """
    classification = dataset.num_classes is not None
    num_outputs = dataset.num_classes if classification else dataset.y_train.shape[-1]
    module = models.make_model(
        spec.model, num_outputs, **{k: v for k, v in group.static.items() if k != "batch_size"}
    )
    batch = group.static.get("batch_size", spec.batch_size)
    n_train = dataset.x_train.shape[0]
    batch_shape = (n_train if batch is None else batch, dataset.x_train.shape[1])
    variables = _variable_shapes(module, batch_shape)
    layers = models.layer_names(variables["params"])
    perturbations = variables.get("perturbations", {})
    n_signals = len(jax.tree.leaves(perturbations))
    num_layers = max(len(layers), n_signals)
    widths = [int(h.shape[-1]) for h in M.flat_signals(perturbations)]
    widths += [0] * (num_layers - len(widths))
    chain, loss_kind = group.chain, spec.loss
    record_all = "default" in spec.metrics
    tolerant = optim.tolerates_nonfinite(chain)
    factor = spec.divergence_factor
    log_every, steps = spec.log_every, plan.steps
    curvature_sets = [m for m in CURVATURE_SETS if m in spec.metrics]
    curvature_names = sorted({v for m in curvature_sets for v in CURVATURE_VARIABLES[m]})
    rule = optim.stability_rule(chain)

    # gradlab's MLP trains its kernels stored [out, in] (PyTorch's layout), not Flax's [in, out],
    # when the chain ignores layout (optim.ignores_layout). Vmapped over runs, a dense layer's
    # two big matrix products are then plain GEMMs on the stored [runs·out, in] matrix: the
    # forward Wxᵀ (models.kernel_first_dot) and the weight gradient δᵀx, which XLA produces in
    # that same layout. With [in, out] storage XLA copies W to [in, runs·out] for the forward
    # pass and transposes the gradient for every reduction of it (norms, finiteness): on the
    # 2-core CPU the article workload trains 1.4x faster this way (benchmarks/README.md). The
    # model always sees its own layout (batch_loss and evaluate convert back), and every metric
    # is a norm, a maximum or a permutation-invariant statistic, so none depends on it.
    transpose_kernels = optim.ignores_layout(chain) and isinstance(module, models.MLP)

    def storage(params):  # its own inverse
        if not transpose_kernels:
            return params
        return jax.tree.map(lambda a: jnp.swapaxes(a, -1, -2) if a.ndim == 2 else a, params)

    def batch_loss(params, zeros, x, y):
        params = storage(params)
        if zeros is None:
            out, signals = module.apply({"params": params}, x), {}
        else:
            out, state = module.apply(
                {"params": params, "perturbations": zeros}, x, mutable=["intermediates"]
            )
            signals = state.get("intermediates", {})
        return jnp.mean(M.per_example_loss(loss_kind, out, y)), (out, signals)

    def evaluate(params, xs, ys, mask):
        """Mean loss and accuracy over a data set laid out as [batches, EVAL_BATCH, ...]."""
        if xs.shape[0] * xs.shape[1] == 0:
            return jnp.full([], jnp.nan), jnp.full([], jnp.nan)

        params = storage(params)

        def body(acc, inputs):
            x, y, m = inputs
            out = module.apply({"params": params}, x)
            loss = jnp.sum(M.per_example_loss(loss_kind, out, y) * m)
            if classification:
                hits = jnp.sum((jnp.argmax(out, -1) == y) * m)
            else:
                hits = jnp.zeros([])
            return (acc[0] + loss, acc[1] + hits), None

        (loss, hits), _ = jax.lax.scan(body, (jnp.zeros([]), jnp.zeros([])), (xs, ys, mask))
        n = jnp.sum(mask)
        acc = hits / n if classification else jnp.full([], jnp.nan)
        return loss / n, acc

    def measure_curvature(hp, t, params, opt_state, vectors, x, y):
        """The opt-in curvature metrics of θ_t on the step's batch (all of x when full batch)."""

        def loss_fn(p):
            return batch_loss(p, None, x, y)[0]

        values, vectors = {}, dict(vectors)
        iters = spec.sharpness_iters
        if "sharpness" in curvature_sets:
            values["sharpness"], vectors["sharpness"] = curvature.top_hessian_eigenvalue(
                loss_fn, params, vectors["sharpness"], num_iters=iters
            )
        if "precond_sharpness" in curvature_sets:
            adam = optim.states_of(opt_state, optax.ScaleByAdamState)
            if adam and isinstance(chain, str):
                get = lambda name: optim.hparam(chain, name, hp)
                precond = curvature.adam_preconditioner(
                    adam[0].nu, adam[0].count, b1=get("b1"), b2=get("b2"), eps=get("eps")
                )
                values["precond_sharpness"], vectors["precond_sharpness"] = (
                    curvature.preconditioned_sharpness(
                        loss_fn, params, precond, vectors["precond_sharpness"], num_iters=iters
                    )
                )
            else:  # no Adam preconditioner in this chain: nothing to measure
                values["precond_sharpness"] = jnp.full([], jnp.nan)
        if "sharpness_bound" in curvature_names:
            if rule is None:
                values["sharpness_bound"] = jnp.full([], jnp.nan)
            else:
                lr = optim.make_schedule(
                    spec.schedule,
                    optim.hparam(chain, "learning_rate", hp),
                    steps,
                    spec.warmup_steps,
                )
                lr = lr(t) if callable(lr) else lr
                values["sharpness_bound"] = curvature.stability_threshold(
                    rule,
                    lr,
                    momentum=optim.hparam(chain, "momentum", hp) if rule == "momentum" else 0.9,
                    b1=optim.hparam(chain, "b1", hp) if rule == "adam" else 0.9,
                )
        if "hessian_trace" in curvature_sets:
            # One probe key per step, shared by all runs (so no random draw is vmapped).
            key = jax.random.fold_in(jax.random.PRNGKey(spec.data_seed), t)
            values["hessian_trace"] = curvature.hessian_trace(
                loss_fn, params, key, num_probes=HUTCHINSON_PROBES
            )
        if "per_example" in curvature_sets:
            per_example = jax.vmap(
                jax.grad(lambda p, xi, yi: batch_loss(p, None, xi[None], yi[None])[0]),
                in_axes=(None, 0, 0),
            )(params, x, y)
            values["grad_noise_scale"] = curvature.gradient_noise_scale(per_example)
            values["grad_snr"] = curvature.gradient_snr(per_example)
        return {k: jnp.asarray(v, jnp.float32) for k, v in values.items()}, vectors

    def apply_update(params, updates, alive):
        """θ_{t+1} = θ_t + [alive]·u_t. Freezing masks the update, not the state: the select
        runs inside the fused update loop (a select on the carried parameters would cost a
        copy of them every step). A dead run's optimizer state is never read again."""
        return jax.tree.map(
            lambda p, u: p + jnp.where(alive, u, jnp.zeros_like(u)), params, updates
        )

    def init_run(hp):
        """Initial parameters (and the per-seed batch order) of one run: all its randomness."""
        key = jax.random.PRNGKey(hp.get("seed", jnp.zeros([], jnp.int32)))
        params = models.init_params(
            module,
            key,
            jnp.zeros(batch_shape, jnp.float32),
            hp.get("init_scale", 1.0),
            hp.get("bias_std"),
        )
        per_seed = spec.batch_order == "per_seed" and batch is not None
        order = (
            _batch_order(jax.random.fold_in(key, 1), n_train, batch, steps) if per_seed else None
        )
        return params, order

    def train_run(hp, params, order, x_train, y_train, eval_train, eval_test):
        tx = optim.build_chain(
            chain,
            hp,
            schedule=spec.schedule,
            total_steps=steps,
            warmup_steps=spec.warmup_steps,
        )
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), perturbations)
        params = storage(params)

        def step(carry: Carry, inputs, record: bool):
            t, idx = inputs
            x = x_train if idx is None else x_train[idx]
            y = y_train if idx is None else y_train[idx]
            params = carry.params
            with_signals = record and record_all and n_signals > 0
            (loss, (out, signals)), grads = jax.value_and_grad(
                batch_loss, argnums=(0, 1) if with_signals else 0, has_aux=True
            )(params, zeros if with_signals else None, x, y)
            grads, signal_grads = grads if with_signals else (grads, {})
            updates, opt_state = tx.update(grads, carry.opt_state, params)
            # On CPU the divergence check and the metrics read the gradient through an
            # optimization barrier. Vmapped, a dense kernel's gradient leaves its GEMM as
            # [runs·out, in]; without the barrier XLA moves the reshape to [runs, out, in] into
            # the per-run reductions (finiteness, max |g|, Σ g²), and YNNPACK runs them 3x
            # slower (1.4 ms instead of 0.4 ms per step for the article MLP at 256 runs: 5-11 %
            # of the whole step in interleaved A/B runs). Elsewhere the reductions stay free to
            # fuse with the optimizer's reads.
            measured = jax.lax.platform_dependent(
                grads, cpu=jax.lax.optimization_barrier, default=lambda g: g
            )
            if record and record_all:  # the two reductions of g the metrics need
                grad_sq = M.layer_sums_of_squares(measured, layers)
                grad_max_abs = M.tree_max_abs(measured, grad_sq)
            loss0 = jnp.where(t == 0, loss, carry.loss0)
            bad = loss > factor * loss0
            if tolerant:
                bad |= ~M.tree_all_finite(params)
            elif record and record_all:
                # Finiteness follows from the metrics' two reductions, where a separate check
                # would read the gradient a third time: 2-3 % of a step at 1,024 runs.
                bad |= ~jnp.isfinite(loss) | ~jnp.isfinite(grad_max_abs)
            else:
                bad |= ~jnp.isfinite(loss) | ~M.tree_all_finite(measured)
            alive = carry.alive & ~bad
            if record and record_all:
                # This step records ‖u_t‖, whose reduction needs u_t written out. On CPU XLA
                # then writes it twice (Adam's direction, then scaled by the learning rate) and
                # recomputes it inside the update loop; applied in a conditional branch (t ≥ 0
                # always holds), u_t is written once and the update reads it. Default metrics
                # cost 1.29x -> 1.20x `none` at 256 runs, 1.23x -> 1.00x at 1,024 (interleaved
                # A/B, 5-11 rounds). Elsewhere the update stays free to fuse.
                new_params = jax.lax.platform_dependent(
                    params,
                    updates,
                    alive,
                    cpu=lambda *a: jax.lax.cond(t >= 0, apply_update, lambda p, u, alive: p, *a),
                    default=apply_update,
                )
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
            if curvature_sets:
                # On its own cadence; t is the same for every run, so this stays a real branch.
                skip = lambda *_: (
                    {k: jnp.full([], jnp.nan) for k in curvature_names},
                    carry.vectors,
                )
                values, vectors = jax.lax.cond(
                    t % spec.sharpness_every == 0,
                    lambda *_: measure_curvature(hp, t, params, opt_state, carry.vectors, x, y),
                    skip,
                )
                new_carry = new_carry._replace(
                    vectors=_tree_where(carry.alive, vectors, carry.vectors)
                )
            if record_all:
                values |= M.step_metrics(
                    loss=loss,
                    outputs=out,
                    y=y,
                    grad_sq=grad_sq,
                    grad_max_abs=grad_max_abs,
                    param_sq=carry.param_sq,
                    updates=updates,  # recorded only where applied (alive), see below
                    layers=layers,
                    signals=signals,
                    signal_grads=signal_grads,
                    num_layers=num_layers,
                    clipped=optim.clipped(opt_state),
                    skipped=optim.skipped(opt_state),
                )
            else:
                values["loss"] = loss
            # Measurements of θ_t stand while the run was alive at step t; the update (and the
            # clip/skip flags that describe it) only when it was actually applied.
            applied = ("update_norm", "update_ratio_layer", "clipped", "skipped")
            recorded = {}
            for name, v in values.items():
                valid = alive if name in applied else carry.alive
                if v.dtype == jnp.bool_:
                    recorded[name] = v & valid
                else:
                    recorded[name] = jnp.where(valid, v, jnp.nan)
            return new_carry, recorded

        def with_param_sq(carry):  # see Carry
            if not record_all:
                return carry
            return carry._replace(param_sq=M.layer_sums_of_squares(carry.params, layers))

        def plain(carry, inputs):
            return step(carry, inputs, record=False)[0], None

        def block(carry, inputs):
            t, idx = inputs
            carry, recorded = step(carry, (t[0], None if idx is None else idx[0]), record=True)
            if log_every > 1:
                rest = (t[1:], None if idx is None else idx[1:])
                carry, _ = jax.lax.scan(plain, carry, rest)
            return with_param_sq(carry), recorded

        n_blocks = steps // log_every
        t_all = jnp.arange(steps, dtype=jnp.int32)
        t_blocks = t_all[: n_blocks * log_every].reshape(n_blocks, log_every)
        idx_blocks = (
            None
            if order is None
            else order[: n_blocks * log_every].reshape(n_blocks, log_every, -1)
        )
        carry = Carry(
            params,
            tx.init(params),
            jnp.ones([], bool),
            jnp.full([], -1, jnp.int32),
            jnp.zeros([], jnp.float32),
            {m: jax.tree.map(jnp.zeros_like, params) for m in curvature_sets if "sharp" in m},
            None,
        )
        carry, recorded = jax.lax.scan(block, with_param_sq(carry), (t_blocks, idx_blocks))
        if steps > n_blocks * log_every:
            rest = (
                t_all[n_blocks * log_every :],
                None if order is None else order[n_blocks * log_every :],
            )
            carry, _ = jax.lax.scan(plain, carry, rest)

        diverged = carry.diverged_at >= 0
        nan_if_diverged = lambda v: jnp.where(diverged, jnp.nan, v)
        final_loss, _ = evaluate(carry.params, *eval_train)
        test_loss, test_accuracy = evaluate(carry.params, *eval_test)
        return {
            **recorded,
            "diverged": diverged,
            "diverged_at": carry.diverged_at,
            "final_loss": nan_if_diverged(final_loss),
            "test_loss": nan_if_diverged(test_loss),
            "test_accuracy": nan_if_diverged(test_accuracy),
        }

    def program(hp, x_train, y_train, shared_order, eval_train, eval_test):
        # Random draws are cheap to run but slow to compile under vmap, so they run as a
        # sequential map over the chunk's runs; training is vmapped across them.
        params, order = jax.lax.map(init_run, hp)
        order_axis = None if order is None else 0
        order = shared_order if order is None else order
        return jax.vmap(train_run, in_axes=(0, 0, order_axis, None, None, None, None))(
            hp, params, order, x_train, y_train, eval_train, eval_test
        )

    return program, widths


def _batch_order(key: jax.Array, n: int, batch: int, steps: int) -> jax.Array:
    """[steps, batch] example indices: a fresh permutation per epoch, last partial batch dropped."""
    per_epoch = n // batch
    epochs = math.ceil(steps / per_epoch)
    perms = jax.vmap(lambda e: jax.random.permutation(jax.random.fold_in(key, e), n))(
        jnp.arange(epochs)
    )
    return perms[:, : per_epoch * batch].reshape(epochs * per_epoch, batch)[:steps]


def shared_batch_order(n: int, batch: int | None, steps: int, seed: int) -> np.ndarray | None:
    """The batch order every run of a sweep shares (``batch_order="shared"``), from numpy.

    Epoch e uses ``np.random.default_rng([seed, e]).permutation(n)``; the last partial batch of
    each epoch is dropped. ``None`` for full-batch training.
    """
    if batch is None:
        return None
    per_epoch = n // batch
    epochs = math.ceil(steps / per_epoch)
    rows = [
        np.random.default_rng([seed, e]).permutation(n)[: per_epoch * batch].reshape(-1, batch)
        for e in range(epochs)
    ]
    return np.concatenate(rows)[:steps].astype(np.int32)


def _eval_layout(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pad a data set to whole [batches, EVAL_BATCH] blocks, with a mask of real examples."""
    n = x.shape[0]
    size = min(max(n, 1), EVAL_BATCH)
    nb = math.ceil(n / size)
    pad = nb * size - n
    mask = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    xp = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
    yp = np.concatenate([y, np.zeros((pad, *y.shape[1:]), y.dtype)])
    return (
        xp.reshape(nb, size, *x.shape[1:]),
        yp.reshape(nb, size, *y.shape[1:]),
        mask.reshape(nb, size),
    )


def run(
    spec: SweepSpec,
    out: str | None = None,
    *,
    chunk_size: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    memory_budget: int | None = None,
    devices: list[Any] | None = None,
) -> xr.Dataset:
    """Train every run of ``spec`` and return the labelled results.

    Each chunk's runs are split evenly over ``devices`` (all local devices by default) with
    ``shard_map``: every device trains its slice with the same compiled program, so the results
    are those of one device. On CPU, expose the cores as devices with
    ``jax.config.update("jax_num_cpu_devices", n)`` before JAX starts (``gradlab run --devices``).
    Under ``jax.distributed`` (several processes, e.g. one per host), each process trains every
    ``process_count``-th chunk on its local devices and writes it to ``out`` (which must be on a
    filesystem all processes share); every process then returns the assembled Dataset.

    Args:
      spec: the sweep.
      out: run directory; finished chunks are written there as they complete, and calling
        ``run`` again with the same spec and ``out`` resumes instead of recomputing.
      chunk_size: runs per compiled call (default: as many as fit ``memory_budget``, at most
        ``MAX_CHUNK`` per CPU device); results do not depend on it.
      progress: show a progress bar (on stderr).
      overwrite: replace a run directory that holds a different spec.
      memory_budget: bytes one chunk may use when ``chunk_size`` is not given (default: 2 GiB
        on CPU; half of the devices' memory on GPU or TPU, see :func:`default_memory_budget`).
      devices: the local devices to shard each chunk over (default: ``jax.local_devices()``).

    Returns:
      An ``xarray.Dataset`` with dims ``optimizer``, every grid axis, ``step`` and ``layer``
      (see DESIGN.md and :mod:`gradlab.metrics`).

    Raises:
      ConfigError: the spec does not fit the data, or ``out`` holds a different sweep.
    """
    if not isinstance(spec, SweepSpec):
        raise ConfigError(f"spec: expected a gradlab.SweepSpec, got {type(spec).__name__}")
    start = time.perf_counter()
    devices = list(devices) if devices else jax.local_devices()
    process, processes = jax.process_index(), jax.process_count()
    if processes > 1 and out is None:
        raise ConfigError("out: a multi-process sweep needs a run directory on a shared filesystem")
    dataset = load_data(spec.data, cache=True)
    if out is not None and chunk_size is None:  # resume with the chunking already on disk
        stored = store.RunDir.stored_layout(out)
        if stored is not None and stored.fingerprint == spec.fingerprint():
            chunk_size = stored.chunk_size
    if memory_budget is None:
        memory_budget = default_memory_budget(devices)
    plan = make_plan(
        spec, dataset, chunk_size, memory_budget, len(devices), platform=devices[0].platform
    )
    layout = None
    programs = []
    for group in plan.groups:
        program, widths = build_program(spec, group, plan, dataset)
        programs.append(program)
        layout = layout or store.Layout.from_plan(plan, widths)
    run_dir = None
    if out:
        if process == 0:  # one process validates (and maybe clears) the directory, then the rest
            run_dir = store.RunDir.open(out, spec, layout, overwrite=overwrite)
        _barrier("gradlab-open")
        if process > 0:
            run_dir = store.RunDir.open(out, spec, layout)

    order = None
    if spec.batch_order == "shared":
        order = shared_batch_order(
            dataset.x_train.shape[0],
            plan.groups[0].static.get("batch_size", spec.batch_size),
            plan.steps,
            spec.data_seed,
        )
    eval_train = _eval_layout(dataset.x_train, dataset.y_train)
    eval_test = _eval_layout(dataset.x_test, dataset.y_test)
    data_args = [jnp.asarray(dataset.x_train), jnp.asarray(dataset.y_train)]
    data_tail = [jax.tree.map(jnp.asarray, eval_train), jax.tree.map(jnp.asarray, eval_test)]

    total = len(plan.groups) * plan.num_runs
    bar = _progress(total, progress)
    results: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    compile_time = 0.0
    for g, (group, chunk_program) in enumerate(zip(plan.groups, programs, strict=True)):
        mine = [
            c for c in range(plan.num_chunks) if (g * plan.num_chunks + c) % processes == process
        ]
        todo = [c for c in mine if not (run_dir and run_dir.has_chunk(g, c))]
        bar.update(sum(_chunk_len(plan, c) for c in range(plan.num_chunks) if c not in todo))
        if not todo:
            continue
        group_order = order
        if spec.batch_order == "shared" and "batch_size" in group.static:
            group_order = shared_batch_order(
                dataset.x_train.shape[0], group.static["batch_size"], plan.steps, spec.data_seed
            )
        args = [*data_args, None if group_order is None else jnp.asarray(group_order), *data_tail]
        hp0 = {k: jnp.asarray(v) for k, v in plan.chunk(0).items()}
        key = (
            spec.replace(grid={}).fingerprint(),
            _code_identity(spec),
            group.label,
            *_signature(hp0, args),
        )
        program = _PROGRAMS.get(key)
        if program is None:
            bar.set_description(f"compiling {group.label}")
            t0 = time.perf_counter()
            program = _compile(chunk_program, devices, hp0, args)
            compile_time += time.perf_counter() - t0
            _remember(key, program)
        bar.set_description(group.label)
        for c in todo:
            hp = {k: jnp.asarray(v) for k, v in plan.chunk(c).items()}
            outputs = jax.device_get(program(hp, *args))
            n = _chunk_len(plan, c)
            outputs = {k: np.asarray(v)[:n] for k, v in outputs.items()}
            if run_dir:
                run_dir.write_chunk(g, c, outputs)
            else:
                results[(g, c)] = outputs
            bar.update(n)
    bar.close()
    _barrier("gradlab-chunks-done")

    attrs = {
        "devices": len(devices) * processes,
        "wall_time_s": time.perf_counter() - start,
        "compile_time_s": compile_time,
    }
    if run_dir:
        return run_dir.finish(attrs) if process == 0 else run_dir.assemble(attrs)
    return store.assemble(layout, results, spec, attrs)


def default_memory_budget(devices: list[Any]) -> int:
    """Bytes one chunk may use: half of the devices' memory on GPU/TPU, 2 GiB on CPU.

    An accelerator's memory is what its allocator may hand out (``memory_stats()["bytes_limit"]``,
    by default 75 % of the card); the other half is left for XLA's temporaries, which the
    per-run estimate does not count. CPU chunks are capped by ``MAX_CHUNK`` long before memory.
    """
    if devices[0].platform == "cpu":
        return DEFAULT_MEMORY_BUDGET
    limits = [(d.memory_stats() or {}).get("bytes_limit") for d in devices]
    if not all(limits):
        return DEFAULT_MEMORY_BUDGET
    return sum(limits) // 2


def _compile(chunk_program: Callable[..., Any], devices: list[Any], hp0: Any, args: list[Any]):
    """Compile a chunk program for ``devices``: plain ``jit`` on one, ``shard_map`` on several.

    With several devices the run axis (axis 0 of every hyperparameter and every output) is
    split into one contiguous slice per device; data arguments are replicated.
    """
    options = CPU_COMPILER_OPTIONS if devices[0].platform == "cpu" else None
    if len(devices) == 1:
        with jax.default_device(devices[0]):
            return jax.jit(chunk_program).lower(hp0, *args).compile(compiler_options=options)
    mesh = jax.sharding.Mesh(np.asarray(devices), ("runs",))
    runs, replicated = jax.sharding.PartitionSpec("runs"), jax.sharding.PartitionSpec()
    in_specs = (runs, *([replicated] * len(args)))
    try:  # jax >= 0.6
        sharded = jax.shard_map(
            chunk_program, mesh=mesh, in_specs=in_specs, out_specs=runs, check_vma=False
        )
    except (AttributeError, TypeError):
        from jax.experimental.shard_map import shard_map

        sharded = shard_map(chunk_program, mesh, in_specs, runs, check_rep=False)
    return jax.jit(sharded).lower(hp0, *args).compile(compiler_options=options)


def _barrier(name: str) -> None:
    """Wait until every process of a ``jax.distributed`` job reaches this point."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


# Compiled programs by everything that shapes them (spec without grid values, group, argument
# shapes), so a second sweep that changes only traced values reuses them without recompiling.
_PROGRAMS: dict[tuple[Any, ...], Any] = {}
_MAX_PROGRAMS = 32


def _signature(hp: Mapping[str, jax.Array], args: list[Any]) -> tuple[Any, ...]:
    leaves = jax.tree.leaves((hp, args))
    return tuple(sorted(hp)), tuple((x.shape, str(x.dtype)) for x in leaves)


def _code_identity(spec: SweepSpec) -> tuple[Any, ...]:
    """The code in a spec that its fingerprint knows only by ``repr``: a Flax module and
    callable chains, as cache keys (see :func:`_cache_key`). A class redefined in a notebook
    has the repr of the old one (``MyMLP()``), so without them a second ``gl.run`` would reuse
    the old class's program.
    """
    code = [] if isinstance(spec.model, ModelSpec) else [spec.model]
    code += [c for c in spec.optimizers if callable(c)]
    return tuple(_cache_key(obj) for obj in code)


def _remember(key: tuple[Any, ...], program: Any) -> None:
    if len(_PROGRAMS) >= _MAX_PROGRAMS:
        del _PROGRAMS[next(iter(_PROGRAMS))]
    _PROGRAMS[key] = program


def _chunk_len(plan: Plan, c: int) -> int:
    return min(plan.chunk_size, plan.num_runs - c * plan.chunk_size)


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def set_description(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoProgress()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="run", dynamic_ncols=True)
