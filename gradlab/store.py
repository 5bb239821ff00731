"""Run directories and the assembly of chunk results into one labelled ``xarray.Dataset``.

A run directory holds::

    spec.toml            the sweep, as TOML
    manifest.json        the layout: groups, grid, steps, chunking, and the spec's fingerprint
    chunks/gGGG-cCCCCC.nc  one finished chunk of one group (netCDF-4 via h5netcdf); its attrs say
                         which sweep (fingerprint), group, chunk size and run range it holds,
                         with a SHA-256 of its arrays, and a chunk that does not verify is
                         recomputed, never reused
    sessions/*.json      the time each session (process and call) spent, for the totals
    result.nc            the assembled Dataset, written when every chunk is done

Every file is written atomically (a temporary file in the same directory, then ``os.replace``),
so a killed sweep leaves only whole files; calling :func:`gradlab.run` again with the same spec
and directory computes only the missing chunks. Nothing here imports JAX.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import shutil
import warnings
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from gradlab.errors import ConfigError
from gradlab.files import atomic_write, atomic_write_text
from gradlab.schema import VARIABLES

__all__ = ["Layout", "RunDir", "assemble", "load"]

FORMAT_VERSION = 1
_TIMES = ("wall_time_s", "compile_time_s", "run_time_s")


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


def _write_netcdf(path: Path, ds: xr.Dataset) -> None:
    atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"))


def _chunk_dataset(outputs: Mapping[str, np.ndarray]) -> xr.Dataset:
    return xr.Dataset({k: (("run", *VARIABLES[k].dims), np.asarray(v)) for k, v in outputs.items()})


def _checksum(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of a chunk's arrays: every variable's name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    """A netCDF attribute as a plain Python value (numpy scalars come back from the file)."""
    return value.item() if isinstance(value, np.generic) else value


def versions() -> dict[str, str]:
    """Versions of gradlab and the libraries that computed the numbers."""
    return dict(_installed_versions())


@functools.cache
def _installed_versions() -> dict[str, str]:  # read once per process (benchmarks item 12)
    out = {}
    for name in ("gradlab", "jax", "jaxlib", "flax", "optax"):
        try:
            out[f"{name}_version"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[f"{name}_version"] = "unknown"
    return out


def _stack_chunks(
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
        name: _grid_array(layout, _stack_chunks(layout, chunks, name), VARIABLES[name].dims)
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


def _grid_array(layout: Layout, stacked: np.ndarray, tail: tuple[str, ...]) -> xr.DataArray:
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


def _unfinished(template: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The arrays of ``n`` runs that have not finished: NaN floats, false flags, -1 integers
    (``diverged_at`` of a run that has not diverged)."""
    out = {}
    for name, a in template.items():
        fill = np.nan if a.dtype.kind == "f" else False if a.dtype.kind == "b" else -1
        out[name] = np.full((n, *a.shape[1:]), fill, a.dtype)
    return out


class RunDir:
    """A run directory being written by a sweep (see the module docstring)."""

    def __init__(self, path: Path, layout: Layout) -> None:
        self.path = path
        self.layout = layout

    @staticmethod
    def stored_layout(path: str | os.PathLike) -> Layout | None:
        """The layout recorded in an existing run directory, if any."""
        manifest = Path(path) / "manifest.json"
        if not manifest.exists():
            return None
        try:
            return Layout.from_json(manifest.read_text())
        except (ValueError, TypeError) as err:
            raise ConfigError(f"out: {manifest} is not a gradlab manifest ({err})") from None

    @classmethod
    def resumable_chunk_size(cls, path: str | os.PathLike, fingerprint: str) -> int | None:
        """The chunk size of the sweep with this fingerprint already in ``path``, if any: a
        resumed sweep keeps the chunking its finished chunks were written with."""
        stored = cls.stored_layout(path)
        if stored is not None and stored.fingerprint == fingerprint:
            return stored.chunk_size
        return None

    @classmethod
    def open(
        cls, path: str | os.PathLike, spec_toml: str, layout: Layout, *, overwrite: bool = False
    ) -> RunDir:
        """Open ``path`` for a sweep: create it, or resume it if it holds the same sweep.

        Raises:
          ConfigError: ``path`` holds a different sweep (unless ``overwrite``), or is a file.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise ConfigError(f"out: {path} exists and is not a directory")
        stored = cls.stored_layout(path)
        if stored is not None and not stored.same_chunks(layout):
            if not overwrite:
                what = "spec" if stored.fingerprint != layout.fingerprint else "chunk size"
                raise ConfigError(
                    f"out: {path} holds a different sweep (its {what} differs); "
                    "choose another directory or pass overwrite=True (--overwrite)"
                )
            shutil.rmtree(path / "chunks", ignore_errors=True)
            (path / "result.nc").unlink(missing_ok=True)
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path / "spec.toml", spec_toml)
        atomic_write_text(path / "manifest.json", layout.to_json())
        return cls(path, layout)

    def chunk_path(self, group: int, chunk: int) -> Path:
        return self.path / "chunks" / f"g{group:03d}-c{chunk:05d}.nc"

    def chunk_identity(self, group: int, chunk: int) -> dict[str, Any]:
        """What a chunk file must say about itself to be reused: the sweep's fingerprint, its
        group and index, the chunk size it was cut with and its run range."""
        start = chunk * self.layout.chunk_size
        return {
            "fingerprint": self.layout.fingerprint,
            "group": group,
            "chunk": chunk,
            "chunk_size": self.layout.chunk_size,
            "run_start": start,
            "run_stop": start + self.layout.chunk_len(group, chunk),
        }

    def read_chunk(self, group: int, chunk: int) -> tuple[dict[str, np.ndarray] | None, str]:
        """A finished chunk's arrays, or ``None`` and why not: missing, truncated or corrupt,
        a checksum that does not match the contents, or a file written for another sweep,
        chunk size or run range."""
        path = self.chunk_path(group, chunk)
        if not path.exists():
            return None, "missing"
        try:
            with xr.open_dataset(path, engine="h5netcdf") as ds:
                arrays = {k: ds[k].values for k in ds.data_vars}
                attrs = dict(ds.attrs)
        except Exception as err:
            return None, f"unreadable ({type(err).__name__})"
        expected = self.chunk_identity(group, chunk)
        differ = [k for k in expected if _plain(attrs.get(k)) != expected[k]]
        if differ:
            return None, f"written for another sweep or chunking ({', '.join(differ)} differ)"
        if attrs.get("checksum") != _checksum(arrays):
            return None, "its checksum does not match its contents"
        return arrays, ""

    def has_chunk(self, group: int, chunk: int) -> bool:
        """Whether a chunk file that verifies exists (:meth:`read_chunk`). One that exists and
        does not verify is removed, with a warning, so the sweep computes it again."""
        arrays, why = self.read_chunk(group, chunk)
        if arrays is None and why != "missing":
            path = self.chunk_path(group, chunk)
            warnings.warn(f"{path}: {why}; it is recomputed", RuntimeWarning, stacklevel=2)
            path.unlink(missing_ok=True)
        return arrays is not None

    def write_chunk(self, group: int, chunk: int, outputs: Mapping[str, np.ndarray]) -> None:
        ds = _chunk_dataset(outputs)
        ds.attrs.update(self.chunk_identity(group, chunk), checksum=_checksum(outputs))
        _write_netcdf(self.chunk_path(group, chunk), ds)

    def missing(self) -> list[tuple[int, int]]:
        return [(g, c) for g, c in self.layout.chunk_keys() if not self.chunk_path(g, c).exists()]

    def assemble(self, attrs: Mapping[str, Any], *, partial: bool = False) -> xr.Dataset:
        """The Dataset of every chunk on disk (each verified by :meth:`read_chunk`).

        With ``partial``, chunks that are missing or do not verify are left out: their runs
        hold NaN (false flags, ``diverged_at`` -1) and the boolean variable ``finished`` over
        ``(optimizer, *grid)`` says which runs are real; the analysis counts only those
        (:func:`gradlab.analysis.counted_runs`).

        Raises:
          ValueError: a chunk is missing and not ``partial``, or no chunk has finished yet.
        """
        chunks, done = {}, {}
        for g, c in self.layout.chunk_keys():
            arrays, why = self.read_chunk(g, c)
            if arrays is None and not partial:
                raise ValueError(
                    f"run directory {self.path} is incomplete: chunk {c} of group {g} is "
                    f"{why}; run the same sweep again to finish it, or load what has "
                    "finished with gradlab.load(path, partial=True)"
                )
            if arrays is not None:
                chunks[(g, c)] = arrays
            done[(g, c)] = {"finished": np.full(self.layout.chunk_len(g, c), arrays is not None)}
        if not chunks:
            raise ValueError(f"run directory {self.path} has no finished chunk yet")
        template = next(iter(chunks.values()))
        for g, c in self.layout.chunk_keys():
            chunks.setdefault((g, c), _unfinished(template, self.layout.chunk_len(g, c)))
        spec = (self.path / "spec.toml").read_text()
        ds = assemble(self.layout, chunks, spec, attrs)
        if partial:
            finished = _grid_array(self.layout, _stack_chunks(self.layout, done, "finished"), ())
            ds["finished"] = finished
            # Runs trained, not grid points: a chain's copies along an axis it does not read
            # are one run.
            sizes = [(len(a["finished"]), bool(a["finished"].all())) for a in done.values()]
            ds.attrs["finished_runs"] = sum(n for n, ok in sizes if ok)
            ds.attrs["total_runs"] = sum(n for n, _ in sizes)
        return ds

    def log_session(self, session: str, times: Mapping[str, float]) -> None:
        """Record what one session (one process's ``gl.run`` call) has spent so far:
        ``sessions/<session>.json`` with its wall, compile and run seconds and chunk count.
        Written after every chunk, so an interrupted session keeps its share."""
        atomic_write_text(self.path / "sessions" / f"{session}.json", json.dumps(dict(times)))

    def sessions(self) -> list[dict[str, Any]]:
        """Every recorded session, oldest first (see :meth:`log_session`)."""
        found = []
        for path in sorted((self.path / "sessions").glob("*.json")):
            try:
                found.append({"session": path.stem, **json.loads(path.read_text())})
            except (OSError, ValueError):  # a torn or foreign file: not a timing record
                continue
        return sorted(found, key=lambda t: t.get("started", 0.0))

    def timing_attrs(self, attrs: Mapping[str, Any]) -> dict[str, Any]:
        """``attrs`` with the sweep's totals over every session: ``wall_time_s``,
        ``compile_time_s`` and ``run_time_s`` are sums, ``sessions`` the count, and
        ``session_times`` each session's share (JSON)."""
        sessions = self.sessions()
        if not sessions:
            return dict(attrs)
        total = {k: float(sum(t.get(k, 0.0) for t in sessions)) for k in _TIMES}
        return {**attrs, **total, "sessions": len(sessions), "session_times": json.dumps(sessions)}

    def finish(self, attrs: Mapping[str, Any]) -> xr.Dataset:
        """Assemble every chunk, write ``result.nc`` and return the Dataset."""
        ds = self.assemble(self.timing_attrs(attrs))
        _write_netcdf(self.path / "result.nc", ds)
        return ds


def load(path: str | os.PathLike, *, partial: bool = False) -> xr.Dataset:
    """Read the result Dataset of a run directory (written by ``gradlab.run(spec, out=path)``).

    Args:
      path: the run directory.
      partial: for a sweep that is still running or was interrupted, return the runs that have
        finished: the others hold NaN, and the boolean variable ``finished`` over
        ``(optimizer, *grid)`` marks the real ones; ``attrs["finished_runs"]`` of
        ``attrs["total_runs"]`` trained runs have finished (a chain's copies along an axis it does
        not read are one run).
        A complete sweep is returned as it is, without ``finished``.

    Raises:
      FileNotFoundError: ``path`` is not a run directory.
      ValueError: the sweep is incomplete (it says which chunk is missing) and not ``partial``,
        or no chunk has finished yet.

    Example:
      >>> ds = gl.load("runs/default", partial=True)  # doctest: +SKIP
      >>> float(ds["finished"].mean())  # the fraction of runs done so far  # doctest: +SKIP
    """
    path = Path(path)
    result = path / "result.nc"
    if result.exists():
        with xr.open_dataset(result, engine="h5netcdf") as ds:
            return ds.load()
    layout = RunDir.stored_layout(path)
    if layout is None:
        raise FileNotFoundError(f"{path} is not a gradlab run directory (no manifest.json)")
    run_dir = RunDir(path, layout)
    return run_dir.assemble(run_dir.timing_attrs({"devices": 1}), partial=partial)
