"""Writing files so that a reader never sees half of one."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "write_netcdf"]


def atomic_write(
    path: str | os.PathLike, write: Callable[[Path], None], *, make_parent: bool = True
) -> None:
    """Write ``path`` through ``write(tmp)`` on a temporary file in the same directory, then an
    atomic rename: a killed writer leaves the old file or the new one, and nothing else. The
    file gets the mode the user's umask gives new files (as ``open`` would).

    The temporary file is ``.<name>~<host>~<pid>~<random>.tmp``, so that a later writer can tell
    the leftovers of a killed process from a live one's (:func:`gradlab.lease.remove_orphans`).
    If ``write`` fails (a full disk: ``OSError(ENOSPC)``), the temporary file is removed and the
    error raised; the old file, if any, is untouched.

    Args:
      path: the file to write.
      write: writes the whole content to the path it is given.
      make_parent: create the parent directory if it is missing; with False, a missing parent
        raises ``FileNotFoundError`` (a run directory's ``chunks/`` that another sweep removed
        must not be recreated by a writer of the old one).
    """
    path = Path(path)
    if make_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}~{socket.gethostname()}~{os.getpid()}~"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    os.close(fd)
    try:
        # mkstemp creates 0600; a run directory shared by several users or hosts (the
        # multi-host recipe) needs the mode the user's umask gives a new file.
        os.chmod(tmp, 0o666 & ~_umask())
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str, *, make_parent: bool = True) -> None:
    """:func:`atomic_write` of a text file."""
    atomic_write(path, lambda tmp: tmp.write_text(text), make_parent=make_parent)


def atomic_write_bytes(
    path: str | os.PathLike, data: bytes | memoryview, *, make_parent: bool = True
) -> None:
    """:func:`atomic_write` of bytes already in memory, written with plain Python I/O (so a
    failing disk raises a Python ``OSError`` and leaves no library half-way through a file)."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data), make_parent=make_parent)


_IN_MEMORY = 2**30  # netCDF files up to this size are built in memory, then written


def write_netcdf(path: Path, ds: Any, *, make_parent: bool = True) -> None:
    """Write the xarray Dataset ``ds`` to ``path`` as netCDF-4, atomically.

    HDF5 must never see a failing disk: after a write that fails with ENOSPC it leaves its file
    half-closed and crashes the process later (a segfault at exit). So the file is built in
    memory and written with plain Python I/O, which raises a clean ``OSError``. A Dataset over
    1 GiB (a result.nc; chunks are far smaller) is written by HDF5 directly, to spare the memory
    of a second copy, after checking that the disk has room for it.
    """
    if ds.nbytes <= _IN_MEMORY:
        data = ds.to_netcdf(engine="h5netcdf")
        atomic_write_bytes(path, data, make_parent=make_parent)
        return
    free = shutil.disk_usage(path.parent).free
    if free < 1.05 * ds.nbytes + 2**26:
        need = f"{ds.nbytes / 2**30:.1f} GiB needed, {free / 2**30:.1f} GiB free"
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({need})", str(path))
    atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"), make_parent=make_parent)
