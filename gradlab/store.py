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

    @property
    def num_groups(self) -> int:
        return len(self.optimizers) * math.prod(len(v) for v in self.static.values())

    @property
    def num_chunks(self) -> int:
        return math.ceil(self.num_runs / self.chunk_size)

    def same_chunks(self, other: Layout) -> bool:
        """Whether chunk files written under ``other`` belong in this layout: the same sweep
        (fingerprint) cut the same way. The descriptive fields (stability rules, layer widths
        and sizes) are not compared: a run directory written before gradlab recorded them is
        resumed, and its manifest rewritten with them."""
        descriptive = {"stability_rules": [], "layer_widths": [], "layer_sizes": []}
        return dataclasses.replace(self, **descriptive) == dataclasses.replace(other, **descriptive)

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
    them twice. (One copy stays: the chunks are read-only views of JAX's buffers.)
    """
    first = np.asarray(chunks[(0, 0)][name])
    out = np.empty((layout.num_groups, layout.num_runs, *first.shape[1:]), first.dtype)
    for (g, c), arrays in chunks.items():
        start = c * layout.chunk_size
        part = arrays[name]
        out[g, start : start + len(part)] = part
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
    lead = ["optimizer", *layout.static, *layout.traced]
    lead_shape = [
        len(layout.optimizers),
        *(len(v) for v in layout.static.values()),
        *(len(v) for v in layout.traced.values()),
    ]
    order = ["optimizer", *layout.grid_order]
    variables = {}
    for name in chunks[(0, 0)]:
        stacked = _stack_chunks(layout, chunks, name)
        tail = VARIABLES[name].dims
        arr = stacked.reshape(*lead_shape, *stacked.shape[2:])
        da = xr.DataArray(arr, dims=[*lead, *tail])
        variables[name] = da.transpose(*order, *tail)
    coords = {
        "optimizer": layout.optimizers,
        "stability_rule": ("optimizer", layout.stability_rules or [""] * len(layout.optimizers)),
        **{k: v for k, v in {**layout.static, **layout.traced}.items()},
        "step": np.asarray(layout.steps, np.int64),
        "layer": np.arange(layout.num_layers),
    }
    if layout.layer_widths:
        coords["layer_width"] = ("layer", np.asarray(layout.layer_widths, np.int64))
    if layout.layer_sizes:
        coords["layer_size"] = ("layer", np.asarray(layout.layer_sizes, np.int64))
    ds = xr.Dataset(variables, coords=coords)
    ds.attrs.update(spec=spec_toml, **versions(), **dict(attrs))
    return ds


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

    def chunk_size_of(self, chunk: int) -> int:
        return min(self.layout.chunk_size, self.layout.num_runs - chunk * self.layout.chunk_size)

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
            "run_stop": start + self.chunk_size_of(chunk),
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
        return [
            (g, c)
            for g in range(self.layout.num_groups)
            for c in range(self.layout.num_chunks)
            if not self.chunk_path(g, c).exists()
        ]

    def assemble(self, attrs: Mapping[str, Any]) -> xr.Dataset:
        chunks = {}
        for g in range(self.layout.num_groups):
            for c in range(self.layout.num_chunks):
                arrays, why = self.read_chunk(g, c)
                if arrays is None:
                    raise ValueError(
                        f"run directory {self.path} is incomplete: chunk {c} of group {g} is "
                        f"{why}; run the same sweep again to finish it"
                    )
                chunks[(g, c)] = arrays
        spec = (self.path / "spec.toml").read_text()
        return assemble(self.layout, chunks, spec, attrs)

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


def load(path: str | os.PathLike) -> xr.Dataset:
    """Read the result Dataset of a run directory (written by ``gradlab.run(spec, out=path)``).

    Raises:
      FileNotFoundError: ``path`` is not a run directory.
      ValueError: the sweep is incomplete (it says which chunk is missing).
    """
    path = Path(path)
    result = path / "result.nc"
    if result.exists():
        with xr.open_dataset(result, engine="h5netcdf") as ds:
            return ds.load()
    layout = RunDir.stored_layout(path)
    if layout is None:
        raise FileNotFoundError(f"{path} is not a gradlab run directory (no manifest.json)")
    return RunDir(path, layout).assemble({"devices": 1})
