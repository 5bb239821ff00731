"""Everything in the engine that depends on the platform (CPU, GPU, TPU), in one place.

Each helper here is an XLA:CPU workaround or a platform limit with a one-line reason and a
pointer to the benchmark item that justifies it (``benchmarks/README.md``, "What made the
difference"). The training step calls them by name; on GPU and TPU each one is the plain
operation. Nothing else in gradlab branches on the platform.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "CPU_COMPILER_OPTIONS",
    "DEFAULT_MEMORY_BUDGET",
    "MAX_CHUNK",
    "MAX_CHUNK_ACCELERATOR",
    "apply_once",
    "compile_program",
    "default_memory_budget",
    "for_reductions",
    "kernel_storage",
    "max_chunk",
]

# Bytes one chunk may use on CPU (outputs and working set).
DEFAULT_MEMORY_BUDGET = 2 * 2**30
# Runs per device in one compiled call: on CPU larger chunks outgrow the caches (Scaling); a
# GPU or TPU needs wide batches, so there only the memory budget limits the chunk.
MAX_CHUNK = 512
MAX_CHUNK_ACCELERATOR = 65_536
# XLA options on CPU: optimisation level 1 compiles 40 % faster at the same run time (item 9).
# Set it to {} for XLA's defaults.
CPU_COMPILER_OPTIONS: dict[str, Any] = {"xla_backend_optimization_level": 1}


def max_chunk(platform: str) -> int:
    """The most runs per device in one compiled call on ``platform``."""
    return MAX_CHUNK if platform == "cpu" else MAX_CHUNK_ACCELERATOR


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


def for_reductions(grads: Any) -> Any:
    """The gradient as the per-run reductions (norms, max, finiteness) should read it.

    On CPU through an optimization barrier: without it XLA moves the [runs·out, in] -> [runs,
    out, in] reshape of a vmapped kernel gradient into the reductions, which then run slower
    (item 5). Elsewhere the reductions stay free to fuse with the optimizer's reads.
    """
    return jax.lax.platform_dependent(grads, cpu=jax.lax.optimization_barrier, default=lambda g: g)


def apply_once(
    apply: Callable[[Any, Any, jax.Array], Any],
    params: Any,
    updates: Any,
    alive: jax.Array,
    t: jax.Array,
) -> Any:
    """``apply(params, updates, alive)`` at a step that also reduces ``updates`` (‖u_t‖).

    On CPU inside a conditional branch that always runs (t ≥ 0): XLA then writes u_t once and
    the update reads it, instead of writing Adam's direction and its scaled copy and recomputing
    u_t in the update loop (item 8). ``t`` is shared by all runs, so it stays a real branch.
    """
    return jax.lax.platform_dependent(
        params,
        updates,
        alive,
        cpu=lambda *a: jax.lax.cond(t >= 0, apply, lambda p, u, alive: p, *a),
        default=apply,
    )


def kernel_storage(transpose: bool) -> Callable[[Any], Any]:
    """The map between the model's kernel layout and the one the sweep trains (its own inverse).

    With ``transpose`` gradlab's MLP trains its kernels stored [out, in] (PyTorch's layout), not
    Flax's [in, out]: vmapped over runs, a dense layer's forward product and weight gradient are
    then plain GEMMs on the stored [runs·out, in] matrix, where [in, out] storage makes XLA:CPU
    copy and transpose the kernels every step (item 1). Only valid for chains that ignore the
    layout (``optim.ignores_layout``); every metric is layout-invariant.
    """
    if not transpose:
        return lambda params: params
    return lambda params: jax.tree.map(
        lambda a: jnp.swapaxes(a, -1, -2) if a.ndim == 2 else a, params
    )


def _x64_types() -> Any:
    """64-bit types for the duration of a ``with`` block: ``jax.enable_x64(True)`` (jax >= 0.8),
    else the older ``jax.experimental.enable_x64()``."""
    try:
        return jax.enable_x64(True)
    except (AttributeError, TypeError):  # pragma: no cover - older jax
        from jax.experimental import enable_x64

        return enable_x64()


def program_devices(devices: list[Any], lanczos: bool) -> list[Any]:
    """The devices a group's program is sharded over: all of them, except that on several CPU
    devices a program that runs Lanczos (the sharpness sets, ``initial_sharpness``) runs on the
    first one only: XLA:CPU has been seen to deadlock running it under ``shard_map`` over host
    devices (20 Lanczos steps, 6 runs per device; root cause not yet found)."""
    if lanczos and len(devices) > 1 and devices[0].platform == "cpu":
        return devices[:1]
    return devices


def compile_program(
    program: Callable[..., Any], devices: list[Any], hp0: Any, args: list[Any], x64: bool = False
):
    """Compile a chunk program for ``devices``: plain ``jit`` on one, ``shard_map`` on several.

    With several devices the run axis (axis 0 of every hyperparameter and every output) is
    split into one contiguous slice per device; data arguments are replicated. With ``x64`` the
    program is traced with 64-bit types enabled (``jax.enable_x64``) for this compilation only:
    its float64 arithmetic is real while the process stays in 32-bit mode, and since its inputs
    and outputs are 32-bit it is called like any other.
    """
    if x64:
        with _x64_types():
            return compile_program(program, devices, hp0, args)
    options = CPU_COMPILER_OPTIONS if devices[0].platform == "cpu" else None
    if len(devices) == 1:
        with jax.default_device(devices[0]):
            return jax.jit(program).lower(hp0, *args).compile(compiler_options=options)
    mesh = jax.sharding.Mesh(np.asarray(devices), ("runs",))
    runs, replicated = jax.sharding.PartitionSpec("runs"), jax.sharding.PartitionSpec()
    in_specs = (runs, *([replicated] * len(args)))
    try:  # jax >= 0.6
        sharded = jax.shard_map(
            program, mesh=mesh, in_specs=in_specs, out_specs=runs, check_vma=False
        )
    except (AttributeError, TypeError):  # older jax: the experimental API
        from jax.experimental.shard_map import shard_map

        sharded = shard_map(program, mesh, in_specs, runs, check_rep=False)
    return jax.jit(sharded).lower(hp0, *args).compile(compiler_options=options)
