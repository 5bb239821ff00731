"""``gl.run``: plan a sweep, compile each group once, train its chunks, persist, assemble.

The orchestration only: what to compute is in :mod:`~gradlab.engine.plan`, how in
:mod:`~gradlab.engine.program`, where compiled programs are kept in
:mod:`~gradlab.engine.cache`, and how chunks become files and the Dataset in
:mod:`gradlab.store`.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from gradlab import saved_params, store
from gradlab.engine import cache, platform, program
from gradlab.engine.plan import Plan, eval_layout, make_plan, resolve_data
from gradlab.engine.progress import Bar, check_mode
from gradlab.errors import ConfigError
from gradlab.lease import PeerWatch, release_all
from gradlab.spec import SweepSpec

__all__ = ["run"]


def run(
    spec: SweepSpec,
    out: str | None = None,
    *,
    chunk_size: int | None = None,
    progress: bool | str = True,
    overwrite: bool = False,
    memory_budget: int | None = None,
    devices: list[Any] | None = None,
    save_params: bool = False,
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
        512 per CPU device); results do not depend on it beyond float rounding.
      progress: ``True``: a progress bar on stderr (each process its own), which says
        "compiling <group> (s)" while a program compiles and then moves as chunks finish, with
        the rate and the time left; ``"steps"``: it also moves within a chunk, 20 to 40 times,
        from a host callback in the program (a program JAX's persistent compilation cache
        does not keep: a new process compiles it again); ``False``: no bar. The numbers are
        the same in every mode (see :mod:`gradlab.engine.progress`).
      overwrite: replace a run directory that holds a different spec.
      memory_budget: bytes one chunk may use when ``chunk_size`` is not given (default: 2 GiB
        on CPU; half of the devices' memory on GPU or TPU, see
        :func:`gradlab.engine.default_memory_budget`).
      devices: the local devices to shard each chunk over (default: ``jax.local_devices()``).
      save_params: also write every run's final parameters to ``out`` as its chunks finish
        (:mod:`gradlab.saved_params`; read one back with :func:`gradlab.load_params`). A run
        directory resumed with it computes again the chunks whose parameters are missing.

    Returns:
      An ``xarray.Dataset`` with dims ``optimizer``, every grid axis, ``step`` and ``layer``
      (the variables are listed in :mod:`gradlab.schema`).

    Raises:
      ConfigError: the spec does not fit the data, or ``out`` holds a different sweep.
    """
    _check_arguments(spec, out, progress, save_params)
    start = time.perf_counter()
    devices = list(devices) if devices else jax.local_devices()
    dataset = resolve_data(spec.data, cache=True)
    plan = _plan(spec, dataset, out, chunk_size, memory_budget, devices, save_params)
    run_dir = _open_run_dir(out, plan, overwrite) if out else None
    arrays = device_arrays(dataset)
    bar = Bar(sum(plan.layout.group_runs(g) for g in range(len(plan.groups))), progress)
    results: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    clock = _Clock(start, run_dir)
    try:  # the run directory's lease is released however this ends
        for g in range(len(plan.groups)):
            args = program_args(plan, g, dataset.x_train.shape[0], arrays)
            _train_group(plan, g, args, devices, run_dir, results, bar, clock)
        bar.close()
        _barrier("gradlab-chunks-done", run_dir)
    except BaseException:
        if run_dir:
            run_dir.close()
        raise
    attrs = {"devices": len(devices) * jax.process_count(), **clock.times()}
    if spec.lr_units != "absolute":  # the learning_rate axis holds c = η·λ₀
        attrs["lr_units"] = spec.lr_units
    if run_dir:
        return run_dir.finish(attrs, write=jax.process_index() == 0)
    return store.assemble(plan.layout, results, plan.spec_toml, attrs)


def _check_arguments(spec: Any, out: str | None, progress: Any, save_params: bool) -> None:
    """The arguments of :func:`run` that are wrong before anything is read or compiled."""
    if not isinstance(spec, SweepSpec):
        raise ConfigError(f"spec: expected a gradlab.SweepSpec, got {type(spec).__name__}")
    check_mode(progress)
    if save_params and out is None:
        raise ConfigError("save_params: the parameters are saved in a run directory: give out=")
    if jax.process_count() > 1 and out is None:
        raise ConfigError("out: a multi-process sweep needs a run directory on a shared filesystem")


def _plan(
    spec: SweepSpec,
    dataset: Any,
    out: str | None,
    chunk_size: int | None,
    memory_budget: int | None,
    devices: list[Any],
    save_params: bool,
) -> Plan:
    """The sweep's plan on these devices, keeping the chunking of a run directory that holds
    the same sweep (a resumed sweep reuses its finished chunks)."""
    if out is not None and chunk_size is None:
        chunk_size = store.RunDir.resumable_chunk_size(out, spec.fingerprint())
    plan = make_plan(
        spec,
        dataset,
        chunk_size,
        memory_budget or platform.default_memory_budget(devices),
        len(devices),
        platform=devices[0].platform,
    )
    if save_params:  # the programs also return θ_T
        configs = tuple(dataclasses.replace(c, keep_final_params=True) for c in plan.configs)
        plan = dataclasses.replace(plan, configs=configs)
    return plan


def device_arrays(dataset: Any) -> tuple[list[Any], list[Any]]:
    """The data set on the device, once per sweep: the training arrays and the two evaluation
    layouts (:func:`~gradlab.engine.plan.eval_layout`)."""
    train = [jnp.asarray(dataset.x_train), jnp.asarray(dataset.y_train)]
    evals = [
        jax.tree.map(jnp.asarray, eval_layout(dataset.x_train, dataset.y_train)),
        jax.tree.map(jnp.asarray, eval_layout(dataset.x_test, dataset.y_test)),
    ]
    return train, evals


def program_args(plan: Plan, g: int, n_train: int, arrays: tuple[list[Any], list[Any]]):
    """The arguments of group ``g``'s program after the hyperparameters: the training arrays,
    the shared batch order (``None``: full batch or per-seed orders), the evaluation layouts."""
    order = plan.batch_order(plan.groups[g], n_train)
    train, evals = arrays
    return [*train, None if order is None else jnp.asarray(order), *evals]


def _open_run_dir(out: str, plan: Plan, overwrite: bool) -> store.RunDir:
    """Process 0 validates (and maybe clears) the directory, then the others open it."""
    process = jax.process_index()
    if process == 0:
        run_dir = store.RunDir.open(out, plan.spec_toml, plan.layout, overwrite=overwrite)
    _barrier("gradlab-open")
    if process > 0:
        run_dir = store.RunDir.open(out, plan.spec_toml, plan.layout, process=process)
    return run_dir


def _train_group(
    plan: Plan,
    g: int,
    args: list[Any],
    devices: list[Any],
    run_dir: store.RunDir | None,
    results: dict[tuple[int, int], dict[str, np.ndarray]],
    bar: Any,
    clock: _Clock,
) -> None:
    """Train this process's missing chunks of group ``g``, timing them on ``clock``.

    Under ``jax.distributed`` each process takes every ``process_count``-th chunk of the sweep.
    """
    processes, process = jax.process_count(), jax.process_index()
    group = plan.groups[g]
    first = plan.layout.chunk_keys().index((g, 0))  # the sweep-wide index of chunk (g, 0)
    chunks = range(plan.num_chunks(g))
    mine = [c for c in chunks if (first + c) % processes == process]
    keep = plan.configs[g].keep_final_params
    done = [c for c in mine if run_dir and run_dir.has_chunk(g, c)]
    todo = [c for c in mine if c not in done or (keep and not _has_params(run_dir, g, c))]
    bar.update(sum(plan.chunk_len(g, c) for c in chunks if c not in todo))
    if not todo:
        return
    cfg = plan.configs[g]
    lanczos = cfg.initial_sharpness or {"sharpness", "precond_sharpness"} & set(cfg.curvature_sets)
    devices = platform.program_devices(devices, bool(lanczos))
    hp0 = {k: jnp.asarray(v) for k, v in plan.chunk(g, 0).items()}
    spec = plan.spec
    flags = (bar.reports_steps, cfg.keep_final_params, False)  # callback, θ_T, θ_t
    key = cache.program_key(spec, group.label, devices, hp0, args, *flags)
    t0 = time.perf_counter()
    with bar.compiling(group.label):
        chunk_program, new = cache.compiled(
            key,
            lambda: platform.compile_program(
                program.build_program(plan.configs[g], bar.reports_steps),
                devices,
                hp0,
                args,
                x64=plan.configs[g].dtype == "float64",
            ),
        )
    if new:
        clock.compile_time += time.perf_counter() - t0
    for c in todo:
        hp = {k: jnp.asarray(v) for k, v in plan.chunk(g, c).items()}
        n = plan.chunk_len(g, c)
        t0 = time.perf_counter()
        with bar.chunk(n):
            outputs = jax.device_get(chunk_program(hp, *args))
        clock.run_time += time.perf_counter() - t0
        final_params = outputs.pop("final_params", None)
        if keep and final_params is None:  # never write a chunk whose parameters were asked for
            raise RuntimeError("internal: the program of a save_params sweep returned no θ_T")
        outputs = {k: np.asarray(v)[:n] for k, v in outputs.items()}
        if final_params is not None:  # before the chunk: a chunk on disk has its parameters
            real = jax.tree.map(lambda a, n=n: np.asarray(a)[:n], final_params)
            saved_params.write_params(run_dir.path, g, c, real)
        if run_dir and c not in done:
            run_dir.write_chunk(g, c, outputs)
        elif not run_dir:
            results[(g, c)] = outputs
        clock.chunk_done()


def _has_params(run_dir: store.RunDir | None, g: int, c: int) -> bool:
    return run_dir is not None and saved_params.params_path(run_dir.path, g, c).exists()


class _Clock:
    """This session's wall, compile and run seconds; with a run directory, logged after every
    chunk (``RunDir.log_session``), so a resumed sweep reports its totals over all sessions."""

    def __init__(self, start: float, run_dir: store.RunDir | None) -> None:
        self.start, self.run_dir = start, run_dir
        self.started = time.time()
        self.session = f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"
        self.compile_time = self.run_time = 0.0
        self.chunks = 0

    def times(self) -> dict[str, float]:
        return {
            "wall_time_s": time.perf_counter() - self.start,
            "compile_time_s": self.compile_time,
            "run_time_s": self.run_time,
        }

    def chunk_done(self) -> None:
        self.chunks += 1
        if self.run_dir is not None:
            record = {**self.times(), "chunks": self.chunks, "started": self.started}
            self.run_dir.log_session(self.session, record)


def _barrier(name: str, run_dir: store.RunDir | None = None) -> None:
    """Wait until every process of a ``jax.distributed`` job reaches this point.

    With a run directory, the peers' leases are watched meanwhile
    (:class:`gradlab.lease.PeerWatch`): a peer that died would otherwise leave this process
    waiting until JAX's coordination service aborts it with a C++ stack (or the barrier fails at
    once, and JAX's shutdown barrier then aborts it the same way at exit); instead it exits 1
    with one line naming the peer, without JAX's shutdown (``os._exit``).
    """
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    if run_dir is None or run_dir.lease is None:
        multihost_utils.sync_global_devices(name)
        return
    watch = PeerWatch(run_dir.lease, jax.process_count(), _peer_gone)
    try:
        with watch:
            multihost_utils.sync_global_devices(name)
    except Exception as err:  # the collective itself failed (gloo: "connection closed by peer")
        why = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        _peer_gone(watch.gone(time.monotonic()) or f"a process of the job is gone ({why})")


def _peer_gone(message: str) -> None:
    """End this process of a job whose peer is gone (called from the watching thread)."""
    release_all()
    again = "run the same command again (every process) to finish"
    print(f"gradlab: error: {message}; {again}", file=sys.stderr, flush=True)
    os._exit(1)
