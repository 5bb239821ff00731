"""How chunk results become one labelled ``xarray.Dataset``: the layout and the assembly.

A sweep's chunks are arrays over runs (``[runs, *dims]`` per variable, :mod:`gradlab.schema`);
the :class:`Layout` (what ``manifest.json`` stores) says how they tile the grid: the groups
(chain x static axes), the traced axes each chain reads (a chain trains an axis it does not read
at its first value only, and :func:`assemble` copies the runs along it), the chunking, the
logged steps and the per-layer facts. :func:`assemble` lays the chunks out over ``optimizer``,
the grid axes in the spec's order, ``step`` and ``layer``; a run directory
(:mod:`gradlab.store`) assembles an unfinished sweep partially with :func:`unfinished_arrays`
standing in for the chunks it lacks. Nothing here imports JAX or touches a file.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import numpy as np
import xarray as xr

from gradlab.schema import VARIABLES

__all__ = [
    "FORMAT_VERSION",
    "Layout",
    "assemble",
    "grid_array",
    "stack_chunks",
    "unfinished_arrays",
    "versions",
]

FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Layout:
    """Everything needed to turn chunk results into the Dataset (stored as manifest.json)."""

    fingerprint: str
    optimizers: list[str]
    static: dict[str, list[Any]]
    traced: dict[str, list[Any]]
    grid_order: list[str]
    steps: list[int]
    num_layers: int
    num_runs: int
    chunk_size: int
    # Per optimizer: the edge-of-stability rule of its chain ("sgd", "momentum", "adam"; ""
    # where none is known), recorded as the Dataset's ``stability_rule`` coordinate.
    stability_rules: list[str] = dataclasses.field(default_factory=list)
    # Per layer: the width of its pre-activation h^l (0 where the model records no signal),
    # recorded as the Dataset's ``layer_width`` coordinate.
    layer_widths: list[int] = dataclasses.field(default_factory=list)
    # Per layer: its number of parameters (kernel and bias), the Dataset's ``layer_size``
    # coordinate: ‖g_l‖/√size is the per-parameter RMS that compares layers of unequal size.
    layer_sizes: list[int] = dataclasses.field(default_factory=list)
    # Per optimizer hyperparameter axis of the grid (a traced axis other than the model axes):
    # one flag per optimizer, whether its chain reads it. A chain trains an axis it does not
    # read at its first value only, and the Dataset holds copies along it; the flags become
    # the Dataset's ``reads_<axis>`` coordinates. Empty (older manifests): every axis is read.
    reads: dict[str, list[bool]] = dataclasses.field(default_factory=dict)
    # The grid axes the per-layer lists vary over (``width``, ``depth``): then ``layer_widths``
    # and ``layer_sizes`` are nested lists, one level per axis, and the coordinates have these
    # dims before ``layer``. Empty: one list for every group.
    layer_dims: list[str] = dataclasses.field(default_factory=list)

    @property
    def num_groups(self) -> int:
        return len(self.optimizers) * math.prod(len(v) for v in self.static.values())

    def optimizer_of(self, group: int) -> int:
        """The index of group ``group``'s chain (groups: optimizer outermost, then static)."""
        return group // math.prod(len(v) for v in self.static.values())

    def unread(self, optimizer: int) -> list[str]:
        """The traced axes the chain ``optimizer`` does not read, in grid order."""
        return [a for a, flags in self.reads.items() if a in self.traced and not flags[optimizer]]

    def group_axes(self, group: int) -> dict[str, list[Any]]:
        """The traced axes as group ``group`` trains them: an axis its chain does not read has
        only its first value."""
        unread = self.unread(self.optimizer_of(group))
        return {a: v[:1] if a in unread else list(v) for a, v in self.traced.items()}

    def group_runs(self, group: int) -> int:
        """The number of runs group ``group`` trains."""
        return math.prod(len(v) for v in self.group_axes(group).values())

    def group_chunks(self, group: int) -> int:
        """The number of chunks of group ``group``."""
        return math.ceil(self.group_runs(group) / self.chunk_size)

    def chunk_len(self, group: int, chunk: int) -> int:
        """Real (unpadded) runs in chunk ``chunk`` of group ``group``."""
        return min(self.chunk_size, self.group_runs(group) - chunk * self.chunk_size)

    def chunk_keys(self) -> list[tuple[int, int]]:
        """Every (group, chunk) of the sweep, in order."""
        return [(g, c) for g in range(self.num_groups) for c in range(self.group_chunks(g))]

    def same_chunks(self, other: Layout) -> bool:
        """Whether chunk files written under ``other`` belong in this layout: the same sweep
        (fingerprint) cut the same way. The descriptive fields (stability rules, layer widths
        and sizes) are not compared: a run directory written before gradlab recorded them is
        resumed, and its manifest rewritten with them. The read flags are compared by what
        they change: which axes each chain trains."""
        descriptive = {
            "stability_rules": [],
            "layer_widths": [],
            "layer_sizes": [],
            "reads": {},
            "layer_dims": [],
        }
        unread = [self.unread(o) for o in range(len(self.optimizers))]
        return dataclasses.replace(self, **descriptive) == dataclasses.replace(
            other, **descriptive
        ) and unread == [other.unread(o) for o in range(len(other.optimizers))]

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT_VERSION, **dataclasses.asdict(self)}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Layout:
        table = json.loads(text)
        table.pop("format", None)
        if "stability_rules" not in table:  # written before the rules were recorded
            from gradlab.optim import stability_rule

            table["stability_rules"] = [_rule_of(stability_rule, c) for c in table["optimizers"]]
        return cls(**table)


def _rule_of(stability_rule: Any, chain: str) -> str:
    try:
        return stability_rule(chain) or ""
    except ValueError:  # the name of a callable chain
        return ""


def versions() -> dict[str, str]:
    """Versions of gradlab and the libraries that computed the numbers."""
    return dict(_installed_versions())


def code_version() -> str:
    """One line naming the versions that computed a run directory's numbers, e.g.
    ``"gradlab 0.1.0, jax 0.10.2, jaxlib 0.10.2, flax 0.12.8, optax 0.2.8"``: part of every
    chunk's identity, so that a sweep resumed under other versions does not mix their numbers."""
    return ", ".join(f"{k.removesuffix('_version')} {v}" for k, v in _installed_versions().items())


@functools.cache
def _installed_versions() -> dict[str, str]:  # read once per process (benchmarks item 12)
    out = {}
    for name in ("gradlab", "jax", "jaxlib", "flax", "optax"):
        try:
            out[f"{name}_version"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[f"{name}_version"] = "unknown"
    return out


def stack_chunks(
    layout: Layout, chunks: Mapping[tuple[int, int], Mapping[str, np.ndarray]], name: str
) -> np.ndarray:
    """One variable of every chunk as one new, writable [groups, runs, ...] array.

    The array is allocated once and each chunk copied into its place: a 16,384-run, 10-epoch
    sweep returns gigabytes, and concatenating the chunks and then stacking the groups copied
    them twice. (One copy stays: the chunks are read-only views of JAX's buffers.) A group
    whose chain does not read some traced axes trained fewer runs: they are copied along those
    axes (broadcast over the full traced grid).
    """
    first = np.asarray(chunks[(0, 0)][name])
    tail = first.shape[1:]
    full = [len(v) for v in layout.traced.values()]
    out = np.empty((layout.num_groups, layout.num_runs, *tail), first.dtype)
    for g in range(layout.num_groups):
        axes = layout.group_axes(g)
        if layout.group_runs(g) == layout.num_runs:
            view = out[g]
        else:
            view = np.empty((layout.group_runs(g), *tail), first.dtype)
        for c in range(layout.group_chunks(g)):
            start = c * layout.chunk_size
            part = chunks[(g, c)][name]
            view[start : start + len(part)] = part
        if view is not out[g]:
            trained = view.reshape(*(len(v) for v in axes.values()), *tail)
            out[g] = np.broadcast_to(trained, (*full, *tail)).reshape(layout.num_runs, *tail)
    return out


def assemble(
    layout: Layout,
    chunks: Mapping[tuple[int, int], Mapping[str, np.ndarray]],
    spec_toml: str,
    attrs: Mapping[str, Any],
) -> xr.Dataset:
    """Arrange chunk outputs (keyed by (group, chunk)) into the labelled result Dataset.

    Dims: ``optimizer``, the grid axes in the order the spec gives them, ``step``, ``layer``.
    """
    variables = {
        name: grid_array(layout, stack_chunks(layout, chunks, name), VARIABLES[name].dims)
        for name in chunks[(0, 0)]
    }
    coords = {
        "optimizer": layout.optimizers,
        "stability_rule": ("optimizer", layout.stability_rules or [""] * len(layout.optimizers)),
        **{k: v for k, v in {**layout.static, **layout.traced}.items()},
        "step": np.asarray(layout.steps, np.int64),
        "layer": np.arange(layout.num_layers),
    }
    per_layer = [*layout.layer_dims, "layer"]
    if layout.layer_widths:
        coords["layer_width"] = (per_layer, np.asarray(layout.layer_widths, np.int64))
    if layout.layer_sizes:
        coords["layer_size"] = (per_layer, np.asarray(layout.layer_sizes, np.int64))
    for axis, flags in layout.reads.items():
        coords[f"reads_{axis}"] = ("optimizer", np.asarray(flags, bool))
    ds = xr.Dataset(variables, coords=coords)
    ds.attrs.update(spec=spec_toml, **versions(), **dict(attrs))
    return ds


def grid_array(layout: Layout, stacked: np.ndarray, tail: tuple[str, ...]) -> xr.DataArray:
    """A [groups, runs, *tail] array as a DataArray over optimizer, the grid axes (the spec's
    order) and ``tail``."""
    lead = ["optimizer", *layout.static, *layout.traced]
    lead_shape = [
        len(layout.optimizers),
        *(len(v) for v in layout.static.values()),
        *(len(v) for v in layout.traced.values()),
    ]
    da = xr.DataArray(stacked.reshape(*lead_shape, *stacked.shape[2:]), dims=[*lead, *tail])
    return da.transpose("optimizer", *layout.grid_order, *tail)


def unfinished_arrays(template: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The arrays of ``n`` runs that have not finished: NaN floats, false flags, -1 integers
    (``diverged_at`` of a run that has not diverged)."""
    out = {}
    for name, a in template.items():
        fill = np.nan if a.dtype.kind == "f" else False if a.dtype.kind == "b" else -1
        out[name] = np.full((n, *a.shape[1:]), fill, a.dtype)
    return out
