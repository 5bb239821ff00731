"""Shared pieces of the benchmarks: the article workload, timing helpers and table printing.

The article workload is the Keras MLP of the gradient-explosion article: 784-10-10-10, ReLU,
softmax cross-entropy, on the 5,000-image MNIST subset that ``gl.data.load("mnist")`` returns by
default (4,000 train / 1,000 test), batch 32, one epoch (125 steps), Adam. A sweep of R runs is
the grid seeds x learning rates x init scales, factored as evenly as R allows.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import gradlab as gl

HIDDEN = (10, 10)
BATCH = 32
EPOCHS = 1
LR_RANGE = (1e-4, 1.0)  # Adam learning rates, log-spaced (the top ones diverge at large init)
INIT_RANGE = (0.25, 4.0)  # init scales, log-spaced


def factor3(r: int) -> tuple[int, int, int]:
    """(seeds, learning rates, init scales) with product ``r``, as close to a cube as possible."""
    best = None
    for a in range(1, r + 1):
        if r % a:
            continue
        for b in range(a, r // a + 1):
            if (r // a) % b:
                continue
            c = r // a // b
            if c < b:
                break
            if best is None or c / a < best[2] / best[0]:
                best = (a, b, c)
    return best


def grid(runs: int) -> dict[str, list]:
    """The traced grid of a sweep of ``runs`` configurations."""
    n_seed, n_lr, n_init = factor3(runs)
    return {
        "seed": list(range(n_seed)),
        "learning_rate": [float(v) for v in np.geomspace(*LR_RANGE, n_lr)],
        "init_scale": [float(v) for v in np.geomspace(*INIT_RANGE, n_init)],
    }


def configs(runs: int) -> list[tuple[int, float, float]]:
    """The (seed, learning rate, init scale) of every run, in the sweep's C order."""
    g = grid(runs)
    return [(s, lr, sc) for s in g["seed"] for lr in g["learning_rate"] for sc in g["init_scale"]]


def spread(items: Sequence[Any], n: int) -> list[Any]:
    """``n`` items spread evenly over ``items`` (a representative subset for per-run timing)."""
    if n >= len(items):
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def article_spec(runs: int, **overrides: Any) -> gl.SweepSpec:
    """The article workload as a gradlab sweep of ``runs`` Adam runs."""
    fields = dict(
        model=gl.ModelSpec(hidden=HIDDEN, activation="relu", init="lecun_normal"),
        data=gl.DataSpec(name="mnist"),
        loss="cross_entropy",
        optimizers=("adam",),
        grid=grid(runs),
        epochs=EPOCHS,
        batch_size=BATCH,
    )
    fields.update(overrides)
    return gl.SweepSpec(**fields)


def chunk_size_used(spec: gl.SweepSpec, dataset: Any, chunk_size: int | None) -> int:
    """The chunk size ``gl.run(spec, chunk_size=chunk_size)`` uses on ``dataset``."""
    runs = math.prod(len(v) for v in spec.grid.values())
    try:
        return gl.engine.make_plan(spec, dataset, chunk_size).chunk_size
    except (AttributeError, TypeError):  # the engine's planning API changed
        return min(chunk_size or runs, runs)


def clear_program_cache() -> None:
    """Forget gradlab's compiled programs, so the next ``gl.run`` compiles (a first call)."""
    engine = getattr(gl, "engine", None)
    if hasattr(engine, "cache"):
        engine.cache.clear()
    elif hasattr(engine, "_PROGRAMS"):  # gradlab before the engine package (2f84037)
        engine._PROGRAMS.clear()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds one call of ``fn`` took, and its result."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


class GradlabSweep:
    """A gradlab sweep made ready to time: the first ``gl.run`` call (compiling) is done here.

    Attributes:
      first_s: wall seconds of the first call, compilation included.
      compile_s: that call's ``compile_time_s``.
      recompiled: whether a later call (``once``) compiled again (it should reuse the program).
      dataset: the result of the last call.

    ``progress`` is ``gl.run``'s (``False`` by default here: no bar, no callback).
    """

    def __init__(
        self,
        spec: gl.SweepSpec,
        chunk_size: int | None,
        fresh: bool = True,
        progress: bool | str = False,
    ):
        self.spec, self.chunk_size, self.progress = spec, chunk_size, progress
        if fresh:
            clear_program_cache()
        self.first_s, self.dataset = timed(self._run)
        self.compile_s = float(self.dataset.attrs["compile_time_s"])
        self.recompiled = False

    def _run(self):
        return gl.run(self.spec, chunk_size=self.chunk_size, progress=self.progress)

    def once(self) -> float:
        """Wall seconds of one steady-state call."""
        wall, self.dataset = timed(self._run)
        self.recompiled |= float(self.dataset.attrs["compile_time_s"]) > 0
        return wall


def rounds(timers: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """``repeats`` rounds, each calling every timer once in turn: interleaving the methods
    spreads the changing load of a shared machine over all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(repeats):
        for name, once in timers.items():
            samples[name].append(once())
    return samples


def machine() -> dict[str, Any]:
    """What this run measured on: CPU, cores, load, versions, date."""
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    try:  # which gradlab was measured (read-only git query)
        here = os.path.dirname(os.path.abspath(__file__))
        commit = subprocess.run(
            ["git", "-C", here, "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "commit": commit or "?",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "loadavg": [round(v, 2) for v in load],
        "jax_devices": [str(d) for d in jax.devices()],
        "versions": {"jax": jax.__version__, "gradlab": getattr(gl, "__version__", "?")},
    }


def describe_machine(info: dict[str, Any]) -> str:
    return (
        f"{info['date']}  gradlab {info['commit']}  {info['cpu']}, {info['cores']} cores, "
        f"devices {info['jax_devices']}, load average {info['loadavg']} (at start)"
    )


def load_line() -> str:
    """The load average now (other users' work on a shared machine slows every method)."""
    load = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else "?"
    return f"load average at end: {load} on {os.cpu_count()} cores"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An aligned text table: text columns left, numeric columns right."""
    cells = [[str(h) for h in headers]] + [[fmt(v) for v in row] for row in rows]
    numeric = [
        all(isinstance(row[i], (int, float)) or row[i] in (None, "-") for row in rows)
        for i in range(len(headers))
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for j, r in enumerate(cells):
        parts = [
            c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fmt(v: Any) -> str:
    """Numbers with about three significant digits; None as '-'."""
    if v is None:
        return "-"
    if isinstance(v, bool) or isinstance(v, str):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        a = abs(v)
        if a >= 100:
            return f"{v:,.0f}"
        if a >= 10:
            return f"{v:.1f}"
        if a >= 1:
            return f"{v:.2f}"
        return f"{v:.3g}"
    return str(v)


def write_json(path: str | None, payload: dict[str, Any], quiet: bool = False) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(payload, f, indent=2, default=float)
        if not quiet:
            print(f"wrote {path}")


def hand_loss_and_evaluate(net: Any) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The hand-written baselines' loss (softmax cross-entropy and the logits of a batch) and
    evaluation (mean loss and accuracy over [blocks, block, ...] arrays by ``lax.scan``)."""
    import jax
    import jax.numpy as jnp
    import optax

    def loss_fn(p, xb, yb):
        logits = net.apply({"params": p}, xb)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean(), logits

    def evaluate(p, xs, ys):
        def block(_, xy):
            loss, logits = loss_fn(p, *xy)
            return None, (loss, jnp.mean(jnp.argmax(logits, -1) == xy[1]))

        _, (loss, acc) = jax.lax.scan(block, None, (xs, ys))
        return loss.mean(), acc.mean()

    return loss_fn, evaluate


def hand_adam_train(loss_fn: Callable[..., Any], x: Any, y: Any, order: Any) -> Callable[..., Any]:
    """The hand-written baselines' training: Adam at ``lr`` by ``lax.scan`` over the batches of
    ``order`` ([steps, batch] indices into ``x``, ``y``); ``train(params, lr)`` returns the
    trained parameters and the loss of every step."""
    import jax
    import optax

    def train(params, lr):
        tx = optax.adam(lr)

        def step(carry, idx):
            p, s = carry
            (loss, _), g = jax.value_and_grad(loss_fn, has_aux=True)(p, x[idx], y[idx])
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), loss

        (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), order)
        return params, losses

    return train
