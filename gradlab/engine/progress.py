"""Progress of a sweep: the bar, compilation as its own phase, and steps reported from a chunk.

``gl.run(progress=...)``:

- ``True`` (the default): a bar over the sweep's runs that says "compiling <group> (s)" while
  a group's program compiles, then moves as each chunk finishes, with tqdm's rate and time
  left. The program holds no callback, so JAX's persistent compilation cache keeps it.
- ``"steps"``: the same bar, also moving *within* a chunk. The program reports from inside its
  training scan (:func:`report`): at the end of every ``every``-th block of ``log_every``
  steps it calls the host with the number of steps done, 20 to 40 times per chunk
  (:data:`REPORTS_PER_CHUNK`) and never more than once per block. JAX does not write a
  program with a host callback to its persistent cache, so every new process compiles it
  again, and each report costs a host callback (``benchmarks/README.md``, "Progress within a
  chunk"): worth it for chunks that train for minutes, not for a sweep whose compilation is
  most of its time.
- ``False``: no bar and no callback.

The reported step count is the scan's counter: the same for every run of the chunk and
independent of the vmapped hyperparameters, so under ``vmap`` the callback is *unbatched*:
JAX binds it once for the whole batch, not once per run. Under ``shard_map`` every device
reports the same counts; the host keeps the largest, so repeats do not count twice. Each
process of a ``jax.distributed`` job reports to its own bar. The callback is unordered
(``ordered=False``): no token threads through the scan, and its only operand is the counter.

On the host, :class:`Bar` turns a report of ``done`` of ``steps`` steps into
``runs x done / steps`` runs of the current chunk (:meth:`Bar.chunk`); the chunk's remainder is
added when the call returns. :meth:`Bar.compiling` restarts the bar's clock after compilation,
so its rate and time left count training only.

Without ``"steps"`` the program holds no callback (``Config.progress_every == 0``): it is the
very program of earlier versions, bit for bit the same numbers (``tests/test_progress.py``).
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Iterator
from typing import Any

import jax

from gradlab.errors import ConfigError

__all__ = [
    "REPORTS_PER_CHUNK",
    "Bar",
    "check_mode",
    "report",
    "report_every",
    "reporting",
]

# At least this many reports per chunk, and fewer than twice as many (fewer only when a chunk
# has fewer blocks of log_every steps): each report costs a host callback, so a handful is
# enough for a bar (benchmarks/README.md, "Progress within a chunk").
REPORTS_PER_CHUNK = 20

_lock = threading.Lock()
_sinks: list[Any] = []  # where this process's reports go (see reporting)


def report_every(blocks: int) -> int:
    """Blocks between two reports: from :data:`REPORTS_PER_CHUNK` to twice as many reports
    over ``blocks`` (every block when there are fewer)."""
    return max(1, blocks // REPORTS_PER_CHUNK)


def report(block: jax.Array, every: int, log_every: int, steps: int) -> None:
    """Inside the training scan, after block ``block`` (0-based) of ``log_every`` steps: every
    ``every``-th block, tell the host that ``(block + 1) * log_every`` of ``steps`` are done.

    ``block`` must not depend on the vmapped run (the scan's counter), so that the callback is
    bound once per chunk, not once per run. The check runs in a ``lax.cond`` on that counter,
    so the host is called only on a reporting block.
    """

    def call(done):
        jax.debug.callback(functools.partial(_on_steps, steps=steps), done, ordered=False)

    jax.lax.cond((block + 1) % every == 0, call, lambda done: None, (block + 1) * log_every)


def _on_steps(done: Any, steps: int) -> None:
    """Host side of :func:`report` (on an XLA thread): pass the count to every sink."""
    with _lock:
        sinks = list(_sinks)
    for sink in sinks:
        sink.steps_done(int(done), steps)


@contextlib.contextmanager
def reporting(sink: Any) -> Iterator[Any]:
    """Pass this process's reports to ``sink.steps_done(done, steps)`` while the block runs
    (the bar's current chunk is one sink; a test's recorder can be another)."""
    with _lock:
        _sinks.append(sink)
    try:
        yield sink
    finally:
        with _lock:
            _sinks.remove(sink)


class _Chunk:
    """One chunk's share of the bar: ``runs`` runs, advanced by the fraction of steps done."""

    def __init__(self, bar: Bar, runs: int) -> None:
        self.bar, self.runs, self.advanced = bar, runs, 0

    def steps_done(self, done: int, steps: int) -> None:
        self.advance(self.runs * min(done, steps) // max(steps, 1))

    def advance(self, target: int) -> None:
        with _lock:  # devices of one process report concurrently; the largest count wins
            if target > self.advanced:
                self.bar.update(target - self.advanced)
                self.advanced = target


def check_mode(mode: Any) -> None:
    """Raise :class:`~gradlab.errors.ConfigError` naming ``progress`` unless ``mode`` is
    ``True``, ``False`` or ``"steps"``."""
    if not (isinstance(mode, bool) or (isinstance(mode, str) and mode == "steps")):
        raise ConfigError(f"progress: expected True, False or 'steps', got {mode!r}")


class Bar:
    """The progress bar of one ``gl.run`` in this process (on stderr; nothing when disabled).

    Args:
      total: runs in the sweep (every group's runs).
      mode: ``True``: the bar moves when a chunk finishes; ``"steps"``: also within a chunk,
        from the program's reports (:attr:`reports_steps`); ``False``: no bar, and every
        method does nothing.

    Raises:
      ConfigError: ``mode`` is none of these.
    """

    def __init__(self, total: int, mode: bool | str) -> None:
        check_mode(mode)
        self.reports_steps = mode == "steps"
        self._bar = None
        if mode is not False:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit="run", dynamic_ncols=True)

    def update(self, runs: int) -> None:
        """Count ``runs`` more runs as done."""
        if self._bar is not None and runs:
            self._bar.update(runs)

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_description(text)

    @contextlib.contextmanager
    def compiling(self, label: str) -> Iterator[None]:
        """Show "compiling <label> (s)" while the block runs, then ``label``; the bar's clock
        restarts after it, so its rate and time left count training only."""
        if self._bar is None:
            yield
            return
        start, stop = time.perf_counter(), threading.Event()

        def tick() -> None:
            while True:
                self.describe(f"compiling {label} ({time.perf_counter() - start:.0f} s)")
                if stop.wait(1.0):
                    return

        ticker = threading.Thread(target=tick, name="gradlab-compiling", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()
            self.describe(label)
            self._bar.unpause()

    @contextlib.contextmanager
    def chunk(self, runs: int) -> Iterator[_Chunk]:
        """Train a chunk of ``runs`` runs in the block: the program's reports move the bar,
        and the chunk's remainder is added when the block ends without an error."""
        chunk = _Chunk(self, runs)
        with reporting(chunk):
            yield chunk
        chunk.advance(runs)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
