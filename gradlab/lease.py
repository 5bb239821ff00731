"""One writer identity per run directory: the leases of the processes that write it.

Every process that writes a run directory holds a lease there while it writes::

    writers/<host>~<pid>.json   {"fingerprint", "chunk_size", "host", "pid", "process",
                                 "started", "refreshed"}
    writers/<host>~<pid>.lock   an exclusive fcntl.flock held for the life of the lease

The JSON is rewritten (atomically) by a heartbeat thread every :data:`HEARTBEAT` seconds and
after every chunk, and both files are removed when the sweep returns. Writers whose fingerprint
and chunk size agree share the directory (the multi-host recipe: several processes of one sweep
write one directory); a writer of another sweep, or of the same sweep cut into other chunks, is
refused while any of them lives (:class:`RunDirError`, naming the host, pid and start time).

Why one lease file per process and not one ``writer.json``: cooperating writers would race on
a shared file, and a lock that serialises them would have to work on every shared filesystem.
Each lease file has one writer (its owner), so creating and refreshing it needs only an atomic
rename, which NFS, Lustre and local disks all give.

Whether a lease is live:

- on the same host, its ``flock``: the kernel drops it when the process dies (even by
  ``kill -9``), and a recycled pid does not hold it. Where ``flock`` is not supported, whether
  the pid runs.
- on another host, its heartbeat: live while refreshed within :data:`STALE_AFTER` seconds (by
  the lease file's own clock). ``flock`` is not trusted across hosts (NFS mounted ``nolock``
  grants the lock to every host) and a pid means nothing on another host; the price is that a
  crashed writer of another host holds the directory for :data:`STALE_AFTER` seconds (or until
  its lease file is deleted by hand, as the refusal says).

A lease found dead is taken over with a one-line warning. The leases also tell the processes
of one ``jax.distributed`` job whether a peer is gone while they wait for it at a barrier
(:class:`PeerWatch`). Nothing here imports JAX.

References:
  Gray and Cheriton, "Leases: an efficient fault-tolerant mechanism for distributed file cache
  consistency", SOSP 1989.
"""

from __future__ import annotations

import atexit
import dataclasses
import errno
import fcntl
import json
import os
import socket
import threading
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gradlab.files import atomic_write_text

__all__ = [
    "HEARTBEAT",
    "PEER_SILENCE",
    "STALE_AFTER",
    "Lease",
    "PeerWatch",
    "RunDirError",
    "Writer",
    "pid_alive",
    "writers",
]

HEARTBEAT = 15.0  # seconds between refreshes of a live lease
STALE_AFTER = 600.0  # a lease of another host not refreshed for this long is dead
PEER_SILENCE = 60.0  # a peer at a barrier whose lease is silent this long is gone (jax: 100 s)
_HELD: dict[Path, Lease] = {}  # the leases this process holds, by run directory


class RunDirError(RuntimeError):
    """A run directory that cannot be used now: held by a live writer of another sweep, taken
    over by another sweep while this process wrote it, or not writable. An environment failure,
    not a bad spec (the CLI exits 1, not 2); the message starts with ``out:``."""


@dataclasses.dataclass(frozen=True)
class Writer:
    """What a lease file says about its writer."""

    fingerprint: str
    chunk_size: int
    host: str
    pid: int
    started: float
    refreshed: float
    process: int = 0

    @property
    def name(self) -> str:
        return f"{self.host}~{self.pid}"

    def describe(self) -> str:
        since = datetime.fromtimestamp(self.started, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"pid {self.pid} on {self.host}, writing since {since}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _flock_free(lock: Path) -> bool | None:
    """Whether nobody holds ``lock``'s flock (None: flock unsupported here)."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return True
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None
    finally:
        os.close(fd)  # closing drops the probe's lock
    return True


def is_live(writer: Writer, lock: Path, now: float | None = None) -> bool:
    """Whether ``writer`` still writes (see the module docstring for the rule)."""
    if writer.host == socket.gethostname():
        free = _flock_free(lock)
        return pid_alive(writer.pid) if free is None else not free
    now = time.time() if now is None else now
    return now - writer.refreshed < STALE_AFTER


def _read(path: Path) -> Writer | None:
    try:
        table = json.loads(path.read_text())
        return Writer(**table)
    except (OSError, ValueError, TypeError):  # torn, foreign or vanished: not a lease
        return None


def writers(run_dir: str | os.PathLike) -> tuple[list[Writer], list[Writer]]:
    """The live and the dead writers recorded in ``run_dir`` (this process's own lease
    excluded)."""
    live, dead = [], []
    me = f"{socket.gethostname()}~{os.getpid()}"
    for path in sorted((Path(run_dir) / "writers").glob("*.json")):
        writer = _read(path)
        if writer is None or writer.name == me:
            continue
        (live if is_live(writer, path.with_suffix(".lock")) else dead).append(writer)
    return live, dead


class Lease:
    """This process's lease on a run directory (see the module docstring).

    Args:
      run_dir: the run directory (it must exist).
      fingerprint: the sweep's fingerprint.
      chunk_size: the runs per chunk of this sweep's layout.
      process: this process's index in a ``jax.distributed`` job (0 alone).
    """

    def __init__(self, run_dir: Path, fingerprint: str, chunk_size: int, process: int = 0):
        self.dir = Path(run_dir) / "writers"
        now = time.time()
        self.writer = Writer(
            fingerprint, chunk_size, socket.gethostname(), os.getpid(), now, now, process
        )
        self.json = self.dir / f"{self.writer.name}.json"
        self.lock = self.dir / f"{self.writer.name}.lock"
        self._fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> Lease:
        """Write the lease, take its flock and start the heartbeat. A lease this process
        already holds on the same directory (a call that was interrupted) is released first."""
        earlier = _HELD.pop(self.dir.parent.resolve(), None)
        if earlier is not None:
            earlier.release()
        self.dir.mkdir(exist_ok=True)
        self.refresh()
        self._fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise  # held by another process: cannot happen for our own pid's file
        _HELD[self.dir.parent.resolve()] = self
        self._thread = threading.Thread(target=self._beat, name="gradlab-lease", daemon=True)
        self._thread.start()
        return self

    def refresh(self) -> None:
        """Record that this writer is alive now."""
        self.writer = dataclasses.replace(self.writer, refreshed=time.time())
        atomic_write_text(self.json, json.dumps(dataclasses.asdict(self.writer)))

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            try:
                self.refresh()
            except OSError:  # a full disk or a vanished directory: the owner check says why
                pass

    def release(self) -> None:
        """Stop the heartbeat and remove the lease (idempotent)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None
        if _HELD.get(self.dir.parent.resolve()) is self:
            del _HELD[self.dir.parent.resolve()]
        self.json.unlink(missing_ok=True)
        if self._fd is not None:
            self.lock.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None

    def check_exclusive(self, path: Path) -> None:
        """Refuse while a live writer of another sweep or chunking holds the directory; take
        over the leases of dead writers, with a one-line warning each.

        Raises:
          RunDirError: naming every live writer of another sweep.
        """
        live, dead = writers(path)
        mine = (self.writer.fingerprint, self.writer.chunk_size)
        others = [w for w in live if (w.fingerprint, w.chunk_size) != mine]
        if others:
            names = "; ".join(w.describe() for w in others)
            remote = [w for w in others if w.host != self.writer.host]
            hint = f" (if it is gone, delete {self.dir / remote[0].name}.json)" if remote else ""
            raise RunDirError(
                f"out: {path} is being written by another sweep ({names}); wait for it to "
                f"finish or choose another directory{hint}"
            )
        for w in dead:
            warnings.warn(
                f"{path}: taking over from a writer that is gone ({w.describe()})",
                RuntimeWarning,
                stacklevel=3,
            )
            (self.dir / f"{w.name}.json").unlink(missing_ok=True)
            (self.dir / f"{w.name}.lock").unlink(missing_ok=True)


def release_all() -> None:
    """Release every lease this process holds (at exit; :func:`atexit` calls it)."""
    for lease in list(_HELD.values()):
        lease.release()


def owner_of(temporary: Path) -> tuple[str, int] | None:
    """The (host, pid) that created a temporary file of :func:`gradlab.files.atomic_write`,
    from its name ``.<name>~<host>~<pid>~<random>.tmp``; None for a name of another form."""
    parts = temporary.name.split("~")
    if len(parts) != 4 or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2])


def remove_orphans(run_dir: Path, *, older_than: float = 60.0) -> list[Path]:
    """Remove temporary files left by killed writers in ``run_dir`` and its subdirectories:
    on this host those whose process is gone; of another host (or of an unknown one) those
    older than ``older_than`` seconds whose writer holds no live lease. Returns what was
    removed."""
    live, _ = writers(run_dir)
    keep = {(w.host, w.pid) for w in live} | {(socket.gethostname(), os.getpid())}
    host, now, removed = socket.gethostname(), time.time(), []
    for folder in (run_dir, *(run_dir / d for d in ("chunks", "sessions", "writers"))):
        for tmp in folder.glob(".*.tmp"):
            owner = owner_of(tmp)
            if owner in keep:
                continue
            try:
                old = now - tmp.stat().st_mtime > older_than
            except FileNotFoundError:
                continue
            if owner is not None and owner[0] == host:
                old = not pid_alive(owner[1])  # on this host, only a dead process's
            if old:
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed


atexit.register(release_all)


class PeerWatch:
    """Watch the other processes of a ``jax.distributed`` job while this one waits at a barrier.

    Every second, each peer's lease (same sweep, its process index) is read; a peer is gone
    when its lease's flock is free (same host), when its lease stays unchanged for
    :data:`PEER_SILENCE` seconds (another host: measured on this process's clock, so the hosts'
    clocks need not agree), or when it has no lease for that long. Then ``on_gone`` is called
    once with a line naming the peer, from the watching thread.

    Args:
      lease: this process's lease (its directory, sweep and process index).
      processes: how many processes the job has.
      on_gone: called with the message; it is expected to end the process.
    """

    def __init__(self, lease: Lease, processes: int, on_gone: Any) -> None:
        self.lease, self.processes, self.on_gone = lease, processes, on_gone
        self._stop = threading.Event()
        self._seen: dict[int, tuple[float, float]] = {}  # process -> (refreshed, seen at)
        self._thread = threading.Thread(target=self._watch, name="gradlab-peers", daemon=True)

    def __enter__(self) -> PeerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def gone(self, now: float) -> str | None:
        """The line naming a peer that is gone, or None while every peer lives."""
        me = self.lease.writer
        peers: dict[int, tuple[Writer, Path]] = {}
        for path in self.lease.dir.glob("*.json"):
            w = _read(path)
            if w and (w.fingerprint, w.chunk_size) == (me.fingerprint, me.chunk_size):
                peers[w.process] = (w, path.with_suffix(".lock"))
        for p in range(self.processes):
            if p == me.process:
                continue
            writer, lock = peers.get(p, (None, None))
            refreshed = writer.refreshed if writer else -1.0
            last, since = self._seen.get(p, (refreshed, now))
            since = now if refreshed != last else since
            self._seen[p] = (refreshed, since)
            same_host = writer is not None and writer.host == me.host
            if (same_host and not is_live(writer, lock)) or now - since > PEER_SILENCE:
                who = writer.describe() if writer else "no lease"
                return f"process {p} of the job is gone ({who}); the finished chunks are kept"
        return None

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            message = self.gone(time.monotonic())
            if message is not None:
                self.on_gone(message)
                return
