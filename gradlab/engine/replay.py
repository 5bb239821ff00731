"""``gl.replay``: one run of a sweep again, alone, with its parameters along the way.

A sweep records metrics, not parameters: 65,536 runs' weights at every step would not fit
anywhere. But every run is deterministic given its configuration (its seed draws θ_0 and, with
``batch_order="per_seed"``, its batches; the shared batch order comes from ``data_seed``), so
one run can be trained again on its own, by the same program, and this time return θ_t at its
logged steps and at the end: the weights of the run that exploded, just before it did.

The replayed run's metrics equal the sweep's for that run: bit for bit on CPU where the sweep's
chunks held one run (``chunk_size=1``), to float32 rounding otherwise (XLA blocks the matrix
products of a chunk of several runs differently; see the README's "Determinism"). On the edge
of trainability that rounding can change the verdict: a run that diverged at step 9 in a chunk
of 512 trained to the end alone (notebook 08). ``replay`` compares its verdict with the sweep's
and warns when they differ; to look at boundary runs exactly as they were swept, sweep their
neighbourhood with ``chunk_size=1`` and replay from that Dataset.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import numpy as np
import xarray as xr

from gradlab import store
from gradlab.engine import cache, platform, program
from gradlab.engine.plan import chain_reads, make_plan, resolve_data
from gradlab.engine.run import device_arrays, program_args
from gradlab.errors import ConfigError, fail
from gradlab.spec import SweepSpec
from gradlab.spec_toml import from_toml

__all__ = ["Replay", "replay"]


class Replay(NamedTuple):
    """One run trained again.

    Attributes:
      params: θ_t at the replayed steps: the run's parameter PyTree (as the Flax module reads
        them, ``module.apply({"params": ...}, x)``) with a leading axis over ``steps``.
      steps: the steps of ``params`` (every ``every``-th logged step).
      final_params: θ after training (a diverged run's parameters stay those of the step
        before it diverged: its updates stop there).
      module: the Flax module of the run, ready for ``module.apply({"params": p}, x)``.
      ds: the run's result Dataset (one point on every grid axis the chain reads), as the
        sweep records it.
    """

    params: Any
    steps: np.ndarray
    final_params: Any
    module: Any
    ds: xr.Dataset


def replay(
    ds: xr.Dataset, *, every: int | None = None, spec: SweepSpec | None = None, **selection: Any
) -> Replay:
    """Train one run of a sweep again and return its parameters every ``every`` logged steps.

    Args:
      ds: the sweep's result Dataset (its ``spec`` attribute says how to train the run).
      every: the steps between parameter snapshots, a multiple of the sweep's ``log_every``
        (default: every logged step).
      spec: the sweep's spec, needed when it holds what TOML cannot (a user's Flax module,
        callable chain or in-memory arrays): then the ``spec`` attribute only names them.
      **selection: the run: ``optimizer=`` and a value of every grid axis with more than one
        value, e.g. ``optimizer="sgd", seed=3, learning_rate=0.5``.

    Returns:
      A :class:`Replay`.

    Raises:
      ConfigError: the selection names no run or several (a grid axis left open, a value not
        on an axis), ``every`` is not a positive multiple of ``log_every`` within the run, or
        the spec cannot be rebuilt from ``ds``.

    Example:
      >>> r = gl.replay(ds, optimizer="sgd", seed=0, learning_rate=1.0, every=10)
      ... # doctest: +SKIP
      >>> logits = r.module.apply({"params": jax.tree.map(lambda p: p[-1], r.params)}, x)
      ... # doctest: +SKIP
    """
    spec = spec if spec is not None else _spec_of(ds)
    point = _one_run(ds, selection)
    o, chain = _chain(spec, point.pop("optimizer"))
    unread = [a for a, flags in chain_reads(spec).items() if not flags[o]]
    point = {k: v for k, v in point.items() if k not in unread}  # the run is the same along them
    if every is None:
        every = spec.log_every
    _check_every(every, spec, ds)
    one = spec.replace(optimizers=(chain,), grid={k: [v] for k, v in point.items()})
    dataset = resolve_data(one.data, cache=True)
    devices = jax.local_devices()[:1]
    plan = make_plan(one, dataset, chunk_size=1, platform=devices[0].platform)
    cfg = dataclasses.replace(plan.configs[0], snapshot=True)
    hp = {k: np.asarray(v) for k, v in plan.chunk(0, 0).items()}
    args = program_args(plan, 0, dataset.x_train.shape[0], device_arrays(dataset))
    flags = (False, False, True)  # callback, θ_T, θ_t (as gl.run's key: snapshot returns both)
    key = cache.program_key(one, plan.groups[0].label, devices, hp, args, *flags)
    compiled, _ = cache.compiled(
        key,
        lambda: platform.compile_program(
            program.build_program(cfg), devices, hp, args, x64=cfg.dtype == "float64"
        ),
    )
    out = jax.device_get(compiled(hp, *args))
    params = jax.tree.map(lambda a: np.asarray(a)[0], out.pop("params"))
    final = jax.tree.map(lambda a: np.asarray(a)[0], out.pop("final_params"))
    result = store.assemble(plan.layout, {(0, 0): out}, plan.spec_toml, {"replayed": 1})
    _check_verdict(ds, selection, result)
    stride = every // spec.log_every
    steps = np.asarray(plan.layout.steps)[::stride]
    params = jax.tree.map(lambda a: a[::stride], params)
    return Replay(params, steps, final, cfg.module, result)


def _check_verdict(ds: xr.Dataset, selection: Mapping[str, Any], result: xr.Dataset) -> None:
    """Warn when the replayed run diverged at another step than the sweep recorded."""
    if "diverged_at" not in ds:
        return
    swept = int(ds["diverged_at"].sel(selection).squeeze())
    again = int(result["diverged_at"].squeeze())
    if swept != again:
        warnings.warn(
            f"replay: the replayed run's divergence step is {again}, the sweep's {swept} (-1: "
            "never): float32 rounding differs between a chunk of runs and a run alone, and this "
            "run is on the edge; sweep its neighbourhood with chunk_size=1 for exact numbers",
            stacklevel=3,
        )


def _spec_of(ds: xr.Dataset) -> SweepSpec:
    text = ds.attrs.get("spec")
    if not text:
        raise fail("spec", "the Dataset has no spec attribute: pass the sweep's spec=")
    unwritten = [line for line in text.splitlines() if line.startswith("# ") and " = " in line]
    if unwritten:
        raise fail(
            "spec",
            f"the sweep holds what TOML cannot ({unwritten[0][2:]}); pass its spec= to replay it",
        )
    return from_toml(text)


def _one_run(ds: xr.Dataset, selection: Mapping[str, Any]) -> dict[str, Any]:
    """The one point the selection names: optimizer and every grid axis."""
    axes = ["optimizer", *(str(d) for d in ds["diverged"].dims if d != "optimizer")]
    unknown = [k for k in selection if k not in axes]
    if unknown:
        raise fail(unknown[0], f"is not a grid axis of the sweep; its axes: {axes}")
    point = {}
    for axis in axes:
        values = ds[axis].values.tolist()
        if axis in selection:
            if selection[axis] not in values:
                raise fail(axis, f"{selection[axis]!r} is not on the axis; its values: {values}")
            point[axis] = selection[axis]
        elif len(values) == 1:
            point[axis] = values[0]
        else:
            raise fail(
                axis, f"the selection names {len(values)} runs along it: pick one of {values}"
            )
    return point


def _chain(spec: SweepSpec, name: str) -> tuple[int, Any]:
    from gradlab.optim import chain_name

    for o, chain in enumerate(spec.optimizers):
        if chain_name(chain) == name:
            return o, chain
    raise ConfigError(f"optimizer: {name!r} is not a chain of the spec")


def _check_every(every: Any, spec: SweepSpec, ds: xr.Dataset) -> None:
    last = int(ds["step"].values[-1]) if ds.sizes.get("step") else 0
    if not isinstance(every, int) or every <= 0 or every % spec.log_every:
        raise fail("every", f"must be a positive multiple of log_every ({spec.log_every})")
    if every > last + spec.log_every:
        raise fail("every", f"{every} is more than the run's {last + spec.log_every} steps")
