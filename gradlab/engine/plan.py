"""The plan of a sweep: static groups x a flat table of traced runs, in chunks.

A sweep is the Cartesian product of optimizer chains, static grid axes (``activation``, ``init``,
``batch_size``) and traced grid axes (everything else). Chains and static axes make **groups**;
each group is compiled once as one program and fed the flat table of its traced runs in
fixed-size **chunks** (the last one padded), so changing any traced value never recompiles.

A chain trains each of its distinct configurations once: a traced axis it does not read (plain
``sgd`` and a ``clip_norm`` axis) is held at its first value in that chain's groups, and the
store copies the results along it (:attr:`gradlab.store.Layout.reads`), so an unread axis costs
nothing and the analysis can tell the copies from runs. The plan also
fixes what the programs and the run directory need to agree on: the steps and the logged steps,
the batch orders, the evaluation layout, the memory estimate that sizes the chunks, each
group's static :class:`~gradlab.engine.program.Config`, and the run-directory
:class:`~gradlab.store.Layout`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from gradlab import data as data_lib
from gradlab import models, optim, schema, store
from gradlab.engine import program
from gradlab.engine.platform import DEFAULT_MEMORY_BUDGET, max_chunk
from gradlab.errors import ConfigError
from gradlab.layer_rates import check_layer_rate_axes
from gradlab.spec import MODEL_AXES, STRUCTURE_AXES, DataSpec, SweepSpec

__all__ = [
    "EVAL_BATCH",
    "Group",
    "Plan",
    "bytes_per_run",
    "chain_reads",
    "eval_layout",
    "make_plan",
    "resolve_data",
    "result_bytes",
    "shared_batch_order",
]

EVAL_BATCH = 1000  # examples per block of the final evaluation


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
      spec_toml: the spec as TOML (serialised once; its hash is the fingerprint).
      groups: the static groups (optimizer outermost, then static axes in grid order).
      configs: the static facts of each group's program, in the order of ``groups``.
      runs: traced axis -> [num_runs] values, the Cartesian product in C order (the full grid;
        a group trains :meth:`group_runs`, which holds the axes its chain does not read at
        their first value).
      steps: optimizer steps per run.
      steps_per_epoch: batches per epoch (1 for full batch).
      logged_steps: the steps whose metrics are recorded.
      chunk_size: runs per compiled call.
      layout: how the chunks become the Dataset (what a run directory records).
    """

    spec: SweepSpec
    spec_toml: str
    groups: tuple[Group, ...]
    configs: tuple[program.Config, ...]
    runs: Mapping[str, np.ndarray]
    steps: int
    steps_per_epoch: int
    logged_steps: np.ndarray
    chunk_size: int
    layout: store.Layout

    @property
    def num_runs(self) -> int:
        """Traced grid points per group (the runs of a chain that reads every traced axis)."""
        return len(next(iter(self.runs.values()))) if self.runs else 1

    def group_runs(self, group: int) -> dict[str, np.ndarray]:
        """The traced runs group ``group`` trains: the Cartesian product (C order) of the traced
        axes, each axis its chain does not read held at its first value."""
        return _runs_table(self.layout.group_axes(group))

    def num_chunks(self, group: int) -> int:
        """Chunks of group ``group``."""
        return self.layout.group_chunks(group)

    def chunk_len(self, group: int, index: int) -> int:
        """Real (unpadded) runs in chunk ``index`` of group ``group``."""
        return self.layout.chunk_len(group, index)

    def chunk(self, group: int, index: int) -> dict[str, np.ndarray]:
        """The traced hyperparameters of chunk ``index`` of group ``group``, padded to
        ``chunk_size`` runs.

        Padding repeats the chunk's first run; padded results are discarded.
        """
        runs = self.group_runs(group)
        start = index * self.chunk_size
        stop = start + self.chunk_len(group, index)
        pad = self.chunk_size - (stop - start)
        out = {}
        for name, values in runs.items():
            part = values[start:stop]
            out[name] = np.concatenate([part, np.repeat(part[:1], pad)]) if pad else part
        if not out:  # a grid with no traced axis: one run per group (seed 0)
            out["seed"] = np.zeros(self.chunk_size, np.int32)
        return out

    def batch_order(self, group: Group, n_train: int) -> np.ndarray | None:
        """The [steps, batch] order every run of ``group`` shares (``None``: full batch, or each
        run draws its own with ``batch_order="per_seed"``)."""
        if self.spec.batch_order != "shared":
            return None
        batch = group.static.get("batch_size", self.spec.batch_size)
        return shared_batch_order(n_train, batch, self.steps, self.spec.data_seed)


def resolve_data(data: DataSpec | data_lib.Dataset, *, cache: bool = False) -> data_lib.Dataset:
    """The arrays of a :class:`~gradlab.spec.DataSpec` (or a user's Dataset, validated).

    With ``cache`` a named dataset is loaded once per process and its arrays are read-only
    (see :func:`gradlab.data.load`); :func:`gradlab.run` loads that way, since it only reads
    them (benchmarks item 12).
    """
    if isinstance(data, DataSpec):
        return data_lib.load(data, cache=cache)
    return data_lib.from_arrays(*data)


def _traced_dtype(name: str) -> Any:
    return np.int32 if name == "seed" else np.float32


def _steps(spec: SweepSpec, n_train: int) -> tuple[int, int]:
    """Steps per run and per epoch; checks the batch sizes against the data."""
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
    return steps, steps_per_epoch


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
    ``max_chunk(platform)`` per device (512 on CPU). The chunk size is a multiple of
    ``num_devices`` (each device gets an equal slice).

    Raises:
      ConfigError: a field is inconsistent with the data (e.g. batch larger than the data set).
    """
    n_train = dataset.x_train.shape[0]
    steps, steps_per_epoch = _steps(spec, n_train)
    if "float64" in spec.static_axes.get("dtype", ()) and platform == "tpu":
        raise ConfigError("grid.dtype: TPUs have no float64 arithmetic; use float32 or bfloat16")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size <= 0):
        raise ConfigError(f"chunk_size: must be a positive integer, got {chunk_size!r}")
    static = spec.static_axes
    groups = tuple(
        Group(chain, dict(zip(static, values, strict=True)))
        for chain in spec.optimizers
        for values in itertools.product(*static.values())
    )
    traced = spec.traced_axes
    logged = np.arange(0, (steps // spec.log_every) * spec.log_every, spec.log_every)
    num_runs = math.prod(len(v) for v in traced.values())
    reads = chain_reads(spec)
    configs = tuple(program.make_config(spec, g, dataset, steps) for g in groups)
    # Every group records the deepest model's layers; a shallower one's are NaN-padded.
    num_layers = max(c.num_layers for c in configs)
    configs = tuple(dataclasses.replace(c, num_layers=num_layers) for c in configs)
    # lr_mult_l must name a layer of every group's model (a depth axis changes the count).
    check_layer_rate_axes(spec.grid, min(len(c.layers) for c in configs))
    _check_result_size(spec, len(groups) * num_runs, len(logged), num_layers)
    # The most runs any group trains: its chain reads the most traced axes.
    most_runs = max(
        math.prod(len(v) for a, v in traced.items() if a not in reads or reads[a][o])
        for o in range(len(spec.optimizers))
    )
    chunk_size = _chunk_size(
        spec, dataset, chunk_size, most_runs, len(logged), memory_budget, num_devices, platform
    )
    spec_toml = spec.toml
    layout = store.Layout(
        fingerprint=spec.fingerprint(),
        optimizers=[optim.chain_name(c) for c in spec.optimizers],
        static={k: list(v) for k, v in static.items()},
        traced={k: list(v) for k, v in traced.items()},
        grid_order=list(spec.grid),
        steps=[int(s) for s in logged],
        num_layers=num_layers,
        num_runs=num_runs,
        chunk_size=chunk_size,
        stability_rules=[optim.stability_rule(c) or "" for c in spec.optimizers],
        reads=reads,
        layer_widths=_per_structure(groups, configs, program.layer_widths),
        layer_sizes=_per_structure(groups, configs, program.layer_sizes),
        layer_dims=[a for a in spec.grid if a in STRUCTURE_AXES],
    )
    return Plan(
        spec,
        spec_toml,
        groups,
        configs,
        _runs_table(traced),
        steps,
        steps_per_epoch,
        logged,
        chunk_size,
        layout,
    )


def _chunk_size(
    spec: SweepSpec,
    dataset: data_lib.Dataset,
    chunk_size: int | None,
    most_runs: int,
    logged: int,
    memory_budget: int,
    num_devices: int,
    platform: str,
) -> int:
    """Runs per compiled call: ``chunk_size``, or as many as fit ``memory_budget`` (at most
    ``max_chunk(platform)`` per device), never more than a group trains, a multiple of
    ``num_devices``."""
    if chunk_size is None:
        batch = spec.static_axes.get("batch_size", (spec.batch_size,))[0]
        per_run = bytes_per_run(spec, dataset, logged, batch or dataset.x_train.shape[0])
        if per_run > memory_budget:
            raise ConfigError(
                f"memory_budget: one run needs about {per_run / 2**20:.0f} MiB, more than the "
                f"budget of {memory_budget / 2**20:.0f} MiB; raise it or log less often"
            )
        cap = max_chunk(platform) * num_devices
        chunk_size = max(1, min(most_runs, cap, memory_budget // per_run))
    chunk_size = min(chunk_size, most_runs)
    return math.ceil(chunk_size / num_devices) * num_devices


def _per_structure(
    groups: tuple[Group, ...], configs: tuple[program.Config, ...], per_layer: Any
) -> list[Any]:
    """A per-layer list (``per_layer(config)``), or, when ``width``/``depth`` are grid axes, one
    such list per point of them, nested in grid order ([width][depth][layer])."""
    axes = [a for a in groups[0].static if a in STRUCTURE_AXES]
    found: dict[tuple[Any, ...], list[int]] = {}
    for group, cfg in zip(groups, configs, strict=True):
        found.setdefault(tuple(group.static[a] for a in axes), per_layer(cfg))
    if not axes:
        return found[()]
    values = [list(dict.fromkeys(g.static[a] for g in groups)) for a in axes]

    def nest(prefix: tuple[Any, ...], depth: int) -> list[Any]:
        if depth == len(axes):
            return found[prefix]
        return [nest((*prefix, v), depth + 1) for v in values[depth]]

    return nest((), 0)


def chain_reads(spec: SweepSpec) -> dict[str, list[bool]]:
    """Which chain reads which optimizer hyperparameter axis of the grid.

    Returns:
      For every traced grid axis that is not a model axis (``seed``, ``init_scale``,
      ``bias_std``, ``z_loss``: every chain reads those): one flag per chain of
      ``spec.optimizers``, true if the chain reads it (a stage of the chain takes it, or it is
      a per-layer learning rate ``lr_mult_l``, which every chain string reads; a user's
      callable chain reads every axis).
    """
    return {
        axis: [optim.reads_axis(chain, axis) for chain in spec.optimizers]
        for axis in spec.traced_axes
        if axis not in MODEL_AXES
    }


def bytes_per_run(spec: SweepSpec, dataset: data_lib.Dataset, logged: int, batch: int) -> int:
    """A rough upper estimate of one run's memory: parameters, states, activations, outputs."""
    d_in = dataset.x_train.shape[1]
    if isinstance(spec.model, models.nn.Module):
        widths = [d_in, 256, 256, 10]  # unknown user module: assume a mid-sized MLP
    else:  # the widest and deepest model of the grid
        largest = {a: max(spec.grid[a]) for a in STRUCTURE_AXES if a in spec.grid}
        hidden = spec.model.hidden_for(**largest)
        widths = [d_in, *hidden, dataset.num_classes or dataset.y_train.shape[-1]]
    n_params = sum(a * b + b for a, b in itertools.pairwise(widths))
    n_layers = len(widths) - 1
    activations = batch * sum(widths[1:]) * 4  # pre-activations, signals and their gradients
    per_step = 8 + 5 * n_layers  # recorded floats per logged step
    # Curvature: a Lanczos basis of sharpness_iters vectors per eigenvalue metric, and one
    # per-example gradient per batch element; feature_change keeps θ_0 and a second forward.
    krylov = sum(m in spec.metrics for m in ("sharpness", "precond_sharpness"))
    curvature = krylov * (spec.sharpness_iters + 2) * n_params
    if "per_example" in spec.metrics:
        curvature += batch * n_params
    if "feature_change" in spec.metrics:
        curvature += n_params + activations // 4
    if "initial_sharpness" in spec.metrics:  # Lanczos on the whole training set, once
        n_train = dataset.x_train.shape[0]
        curvature += (spec.sharpness_iters + 2) * n_params + activations // batch * n_train
    wide = 2 if "float64" in spec.static_axes.get("dtype", ()) else 1  # 8-byte floats
    return 4 * wide * (8 * n_params + activations + logged * per_step + curvature) + 1024


def _runs_table(traced: Mapping[str, tuple[Any, ...]]) -> dict[str, np.ndarray]:
    """Traced axis -> [num_runs] values: the Cartesian product of the axes in C order."""
    axes = [np.asarray(values, _traced_dtype(name)) for name, values in traced.items()]
    return {
        name: grid.ravel()
        for name, grid in zip(traced, np.meshgrid(*axes, indexing="ij"), strict=True)
    }


def _check_result_size(spec: SweepSpec, runs: int, logged: int, num_layers: int) -> None:
    need = result_bytes(spec, runs, logged, num_layers)
    if need > result_budget():
        raise ConfigError(
            f"grid: the result Dataset would need {need / 2**30:.1f} GiB ({runs:,} runs x "
            f"{logged} logged steps), more than half of this machine's memory "
            f"({result_budget() * 2 / 2**30:.0f} GiB): record fewer steps (log_every), fewer "
            "metrics, or split the grid"
        )


def result_bytes(spec: SweepSpec, runs: int, logged: int, num_layers: int) -> int:
    """Bytes of the assembled result Dataset: every recorded variable (:mod:`gradlab.schema`) of
    every run, at its dims."""
    per_run = 0
    for name in schema.variables_of(spec.metrics):
        variable = schema.VARIABLES[name]
        size = {(): 1, schema.STEP: logged, schema.STEP_LAYER: logged * num_layers}[variable.dims]
        per_run += size * np.dtype(variable.dtype).itemsize
    return runs * per_run


def result_budget() -> int:
    """The most bytes a result Dataset may take: half of the machine's physical memory (it is
    assembled in memory; a larger sweep must log less often or be split)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


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


def eval_layout(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
