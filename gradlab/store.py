"""Run directories: the files of a sweep, verified before they are reused or assembled.

A run directory holds::

    spec.toml            the sweep, as TOML
    manifest.json        the layout: groups, grid, steps, chunking, and the spec's fingerprint
    chunks/gGGG-cCCCCC.nc  one finished chunk of one group (netCDF-4 via h5netcdf); its attrs say
                         which sweep (fingerprint), group, chunk size and run range it holds,
                         the versions of gradlab, jax, jaxlib, flax and optax that computed it
                         (``code``), with a SHA-256 of its arrays; a chunk that does not verify
                         is recomputed, never reused
    chunks/gGGG-cCCCCC.sha256  the index: that SHA-256 again, written just before the chunk
                         (one file per chunk, so cooperating processes never share a file)
    sessions/*.json      the time each session (process and call) spent, for the totals
    writers/*.json       the leases of the processes writing the directory (gradlab.lease)
    result.nc            the assembled Dataset, written when every chunk is done, and
    result.sha256        its fingerprint, chunk size, code versions and SHA-256: a finished sweep
                         run again returns result.nc as it is when it verifies, and does not
                         rewrite it

A sweep resumed under other versions of gradlab or its libraries recomputes the chunks the
other versions wrote (one warning says so) rather than mix two codes' numbers in one Dataset;
``gradlab.load`` of a finished directory still reads its result.nc, whatever wrote it.

Every file is written atomically (a temporary file in the same directory, then ``os.replace``),
so a killed sweep leaves only whole files; calling :func:`gradlab.run` again with the same spec
and directory computes only the missing chunks. One sweep writes a directory at a time
(:mod:`gradlab.lease`): another sweep is refused while a writer of it lives, and a writer stops
before its next chunk if another sweep took the directory over. netCDF files are built in
memory and written with plain Python I/O (:func:`gradlab.files.write_netcdf`), so a full disk
raises an ``OSError`` and leaves nothing behind. Nothing here imports JAX.

How the chunks tile the Dataset (the :class:`~gradlab.assembly.Layout` stored as the
manifest, and the assembly) is :mod:`gradlab.assembly`; the leases are :mod:`gradlab.lease`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from gradlab import assembly
from gradlab.assembly import (
    Layout,
    assemble,
    grid_array,
    stack_chunks,
    unfinished_arrays,
)
from gradlab.errors import ConfigError
from gradlab.files import atomic_write_text, write_netcdf
from gradlab.lease import Lease, RunDirError, remove_orphans
from gradlab.schema import VARIABLES

__all__ = ["Layout", "RunDir", "RunDirError", "assemble", "load"]

_TIMES = ("wall_time_s", "compile_time_s", "run_time_s")


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


class RunDir:
    """A run directory being written by a sweep (see the module docstring)."""

    def __init__(
        self, path: Path, layout: Layout, lease: Lease | None = None, finished: bool = False
    ) -> None:
        self.path = path
        self.layout = layout
        self.lease = lease
        # result.nc verified when opened: every chunk is done, and nothing is written at all
        self.finished = finished
        self._warned_code = False  # one warning for the chunks other versions wrote

    @staticmethod
    def stored_layout(path: str | os.PathLike, field: str = "out") -> Layout | None:
        """The layout recorded in an existing run directory, if any.

        Raises:
          ConfigError: ``manifest.json`` is not a gradlab manifest (``null``, a string, a list,
            garbage bytes, unknown fields), naming ``field`` and the file.
        """
        manifest = Path(path) / "manifest.json"
        if not manifest.exists():
            return None
        try:
            text = manifest.read_bytes().decode()
            if not isinstance(json.loads(text), dict):
                raise ValueError(f"a JSON {type(json.loads(text)).__name__}, not an object")
            return Layout.from_json(text)
        except (ValueError, TypeError, KeyError, OSError) as err:
            why = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
            raise ConfigError(f"{field}: {manifest} is not a gradlab manifest ({why})") from None

    @classmethod
    def resumable_chunk_size(cls, path: str | os.PathLike, fingerprint: str) -> int | None:
        """The chunk size of the sweep with this fingerprint already in ``path``, if any: a
        resumed sweep keeps the chunking its finished chunks were written with. (An unreadable
        manifest gives None here; :meth:`open` says what is wrong with it.)"""
        try:
            stored = cls.stored_layout(path)
        except ConfigError:
            return None
        if stored is not None and stored.fingerprint == fingerprint:
            return stored.chunk_size
        return None

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        spec_toml: str,
        layout: Layout,
        *,
        overwrite: bool = False,
        process: int = 0,
    ) -> RunDir:
        """Open ``path`` for a sweep: create it, or resume it if it holds the same sweep.

        A directory whose manifest and ``result.nc`` are this sweep's, the result verified
        (:meth:`stored_result`), is opened without writing anything (no lease either), so a
        finished sweep runs again even on a full or read-only disk.

        Otherwise, in order: this process takes a lease (:mod:`gradlab.lease`); a live writer of
        another sweep or chunking refuses the directory, even with ``overwrite``; temporary files
        of dead writers are removed; a directory of another sweep is cleared when ``overwrite``
        is given or when it holds no finished chunk (a sweep that crashed before its first
        chunk), and refused otherwise; a ``manifest.json`` that is not gradlab's is refused
        unless ``overwrite``. If opening fails, a directory it created is removed again.

        Raises:
          ConfigError: ``path`` holds a different sweep or a foreign manifest (unless
            ``overwrite``), is a file, lies under a file, or is a dangling symbolic link.
          RunDirError: a live writer of another sweep holds ``path``, or it cannot be written.
        """
        path = Path(path)
        _check_out(path)
        if cls.resumable_chunk_size(path, layout.fingerprint) == layout.chunk_size:
            if RunDir(path, layout).stored_result() is not None:
                return cls(path, layout, finished=True)
        created = not path.exists()
        try:
            path.mkdir(parents=True, exist_ok=True)
            lease = Lease(path, layout.fingerprint, layout.chunk_size, process).acquire()
        except OSError as err:
            raise RunDirError(f"out: cannot write {path}: {err.strerror or err}") from None
        try:
            lease.check_exclusive(path)
            remove_orphans(path)
            cls._claim(path, layout, overwrite)
            (path / "chunks").mkdir(exist_ok=True)
            atomic_write_text(path / "spec.toml", spec_toml)
            atomic_write_text(path / "manifest.json", layout.to_json())
        except BaseException:
            lease.release()
            if created:
                shutil.rmtree(path, ignore_errors=True)
            raise
        return cls(path, layout, lease)

    @classmethod
    def _claim(cls, path: Path, layout: Layout, overwrite: bool) -> None:
        """Clear ``path`` of another sweep where :meth:`open`'s rule allows it, or refuse."""
        try:
            stored = cls.stored_layout(path)
        except ConfigError as err:
            if not overwrite:
                hint = "pass overwrite=True (--overwrite) to replace it"
                raise ConfigError(f"{err}; {hint}") from None
            stored = dataclasses.replace(layout, fingerprint="")  # foreign: cleared below
        if stored is None or stored.same_chunks(layout):
            return
        if not overwrite and _finished(path):
            what = "spec" if stored.fingerprint != layout.fingerprint else "chunk size"
            raise ConfigError(
                f"out: {path} holds a different sweep (its {what} differs); "
                "choose another directory or pass overwrite=True (--overwrite)"
            )
        shutil.rmtree(path / "chunks", ignore_errors=True)
        for name in ("result.nc", "result.sha256", "manifest.json"):
            (path / name).unlink(missing_ok=True)

    def check_owner(self) -> None:
        """Stop if the directory no longer belongs to this sweep (another sweep took it over
        with ``overwrite`` after this writer's lease was found dead).

        Raises:
          RunDirError: ``manifest.json`` now describes another sweep or chunking, or is gone.
        """
        try:
            stored = self.stored_layout(self.path)
        except ConfigError:
            stored = None
        if stored is None or not stored.same_chunks(self.layout):
            raise RunDirError(
                f"out: {self.path} was taken over by another sweep while this one wrote it; "
                "this process stops (the other sweep's files are untouched)"
            )

    def close(self) -> None:
        """Release this process's lease on the directory (idempotent)."""
        if self.lease is not None:
            self.lease.release()

    def chunk_path(self, group: int, chunk: int) -> Path:
        return self.path / "chunks" / f"g{group:03d}-c{chunk:05d}.nc"

    def index_path(self, group: int, chunk: int) -> Path:
        """The chunk's entry in the run directory's index: its SHA-256, one file per chunk."""
        return self.chunk_path(group, chunk).with_suffix(".sha256")

    def chunk_identity(self, group: int, chunk: int) -> dict[str, Any]:
        """What a chunk file must say about itself to be reused: the sweep's fingerprint, its
        group and index, the chunk size it was cut with, its run range and the code versions
        (:func:`gradlab.assembly.code_version`)."""
        start = chunk * self.layout.chunk_size
        return {
            "fingerprint": self.layout.fingerprint,
            "code": assembly.code_version(),
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
        if differ == ["code"]:
            return None, "computed by other versions of gradlab or its libraries (code differs)"
        if differ:
            return None, f"written for another sweep or chunking ({', '.join(differ)} differ)"
        if attrs.get("checksum") != _checksum(arrays):
            return None, "its checksum does not match its contents"
        index = self.index_path(group, chunk)
        try:
            indexed = index.read_text().strip()
        except OSError:
            return None, f"it is not in the index ({index.name} is missing)"
        if indexed != attrs["checksum"]:
            return None, f"its checksum is not the one in the index ({index.name})"
        return arrays, ""

    def has_chunk(self, group: int, chunk: int) -> bool:
        """Whether a chunk file that verifies exists (:meth:`read_chunk`). One that exists and
        does not verify is removed, with a warning, so the sweep computes it again. (In a
        directory opened ``finished``, every chunk is in the verified result.nc: True.)"""
        if self.finished:
            return True
        arrays, why = self.read_chunk(group, chunk)
        if arrays is None and why != "missing":
            path = self.chunk_path(group, chunk)
            if why.endswith("(code differs)"):
                if not self._warned_code:
                    warnings.warn(
                        f"{self.path}: chunks written by other versions than "
                        f"{assembly.code_version()} are recomputed",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                self._warned_code = True
            else:
                warnings.warn(f"{path}: {why}; it is recomputed", RuntimeWarning, stacklevel=2)
            path.unlink(missing_ok=True)
        return arrays is not None

    def write_chunk(self, group: int, chunk: int, outputs: Mapping[str, np.ndarray]) -> None:
        """Write one finished chunk: its index entry, then the chunk file (atomically).

        First checks that the directory still belongs to this sweep (:meth:`check_owner`), and
        removes ``result.nc`` (it no longer describes the chunks). ``chunks/`` is never created
        here: if another sweep removed it, this writer stops.

        Raises:
          RunDirError: the directory was taken over by another sweep.
          OSError: the disk is full or not writable (nothing partial is left behind).
        """
        self.check_owner()
        for name in ("result.sha256", "result.nc"):
            (self.path / name).unlink(missing_ok=True)
        checksum = _checksum(outputs)
        ds = _chunk_dataset(outputs)
        ds.attrs.update(self.chunk_identity(group, chunk), checksum=checksum)
        try:
            atomic_write_text(self.index_path(group, chunk), checksum, make_parent=False)
            write_netcdf(self.chunk_path(group, chunk), ds, make_parent=False)
        except FileNotFoundError:
            self.check_owner()  # chunks/ removed: by another sweep, most likely
            raise RunDirError(f"out: {self.path / 'chunks'} was removed while writing") from None
        if self.lease is not None:
            self.lease.refresh()

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
            chunks.setdefault((g, c), unfinished_arrays(template, self.layout.chunk_len(g, c)))
        spec = (self.path / "spec.toml").read_text()
        ds = assemble(self.layout, chunks, spec, attrs)
        if partial:
            finished = grid_array(self.layout, stack_chunks(self.layout, done, "finished"), ())
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

    def stored_result(self) -> xr.Dataset | None:
        """``result.nc``, if it is there and verifies against ``result.sha256`` (this sweep's
        fingerprint and chunk size, and the SHA-256 of its arrays); None otherwise."""
        try:
            record = json.loads((self.path / "result.sha256").read_text())
            if record.get("fingerprint") != self.layout.fingerprint:
                return None
            with xr.open_dataset(self.path / "result.nc", engine="h5netcdf") as ds:
                ds = ds.load()
        except (OSError, ValueError, KeyError):  # missing, torn or truncated: written again
            return None
        return ds if record == self._result_record(ds) else None

    def _result_record(self, ds: xr.Dataset) -> dict[str, Any]:
        """What result.sha256 says of result.nc: this sweep, chunking and code, its SHA-256."""
        return {
            "fingerprint": self.layout.fingerprint,
            "chunk_size": self.layout.chunk_size,
            "code": assembly.code_version(),
            "checksum": _checksum({k: ds[k].values for k in ds.data_vars}),
        }

    def finish(self, attrs: Mapping[str, Any], *, write: bool = True) -> xr.Dataset:
        """Assemble every chunk, write ``result.nc`` (and ``result.sha256``) and return the
        Dataset; then release the lease. A ``result.nc`` that is already there and verifies
        (:meth:`stored_result`) is returned as it is, not written again. With ``write=False``
        (the other processes of a ``jax.distributed`` job) the Dataset is only assembled."""
        try:
            stored = self.stored_result() if write else None
            ds = stored if stored is not None else self.assemble(self.timing_attrs(attrs))
            if write and stored is None:
                self.check_owner()
                write_netcdf(self.path / "result.nc", ds)
                record = self._result_record(ds)
                atomic_write_text(self.path / "result.sha256", json.dumps(record))
        finally:
            self.close()
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
        try:
            with xr.open_dataset(result, engine="h5netcdf") as ds:
                return ds.load()
        except (OSError, ValueError) as err:  # truncated: the chunks still hold every number
            why = f"unreadable ({type(err).__name__}); assembled from its chunks instead"
            warnings.warn(f"{result}: {why}", RuntimeWarning, stacklevel=2)
    layout = RunDir.stored_layout(path, field="run_dir")
    if layout is None:
        raise FileNotFoundError(f"{path} is not a gradlab run directory (no manifest.json)")
    if not _finished(path):
        raise ValueError(f"{path} has no finished chunk yet; run the same sweep again")
    run_dir = RunDir(path, layout)
    return run_dir.assemble(run_dir.timing_attrs({"devices": 1}), partial=partial)


def _finished(path: Path) -> bool:
    """Whether ``path`` holds any finished chunk or result (valid or not)."""
    return (path / "result.nc").exists() or any((path / "chunks").glob("*.nc"))


def _check_out(path: Path) -> None:
    """Refuse an output path that cannot be a directory, naming what is in the way."""
    if path.is_symlink() and not path.exists():
        target = os.readlink(path)
        raise ConfigError(f"out: {path} is a symbolic link to {target}, which is missing")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"out: {path} exists and is not a directory")
    for parent in path.absolute().parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise ConfigError(f"out: {parent} is a file, so {path} cannot be a directory")
            return
