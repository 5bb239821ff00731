"""The cost of a width sweep: one ``gl.run`` with a ``width`` axis against hand-written JAX.

Workload: an MLP 784-n-n-10 (ReLU, LeCun init, softmax cross-entropy, standard
parametrization) on the default MNIST subset (4,000 train / 1,000 test), batch 32, one epoch =
125 steps of Adam, for widths n = 64 ... 1024; at each width the runs are seeds x learning rates
(``--seeds`` x ``--lrs``). Every method trains the same configurations and afterwards evaluates
what gradlab returns per run (loss on the training set, loss and accuracy on the test set).

Methods, measured in this one process, side by side:

- ``gradlab, one sweep``: one ``gl.run`` whose grid has the ``width`` axis (one compiled
  program per width, one Dataset); its time is split over the widths only in total.
- ``gradlab, width n``: ``gl.run`` of the same spec with ``width = [n]`` (the same compiled
  program as the sweep's group for n, reused from the process cache), so each width's cost is
  measured on its own.
- ``jax vmap, width n``: one ``jax.jit(jax.vmap(train))`` per width over all of its runs,
  written by hand with Flax and Optax (no metrics, no divergence masking, no store): the lower
  bound. The first call of each is its compilation; the table reports the steady state.

Each method is prepared (compiled, warmed up) first, then timed in ``--repeats`` rounds that
call every method once in turn, so that the load of a shared machine falls on all of them
alike; the table shows the median of the rounds, in ms per run and epoch, and gradlab's time
over the hand-written one's.

    python benchmarks/width_sweep.py                          # widths 64 ... 1024, 16 runs each
    python benchmarks/width_sweep.py --seeds 2 --lrs 2 --repeats 2 --json width.json
    python benchmarks/width_sweep.py --widths 64 128 256 512 1024 2048 4096 --seeds 8 --lrs 8
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

import gradlab as gl

LR_RANGE = (1e-4, 1e-2)  # Adam learning rates, log-spaced: all of them train at every width
EVAL_BLOCK = 1000
HEADERS = ["width", "runs", "method", "total s", "ms/run-epoch", "x hand-written", "note"]


def width_spec(widths: list[int], seeds: int, lrs: int, epochs: int) -> gl.SweepSpec:
    """The sweep as gradlab runs it: ``width`` and the traced axes on one grid."""
    return gl.SweepSpec(
        model=gl.ModelSpec(hidden=(widths[0], widths[0]), activation="relu", init="lecun_normal"),
        data=gl.DataSpec(name="mnist"),
        loss="cross_entropy",
        optimizers=("adam",),
        grid={
            "seed": list(range(seeds)),
            "width": list(widths),
            "learning_rate": [float(v) for v in np.geomspace(*LR_RANGE, lrs)],
        },
        epochs=epochs,
        batch_size=common.BATCH,
    )


def batch_order(n: int, epochs: int) -> np.ndarray:
    """The example indices of every step, [steps, batch] (a fresh permutation per epoch)."""
    per_epoch = n // common.BATCH
    rows = [
        np.random.default_rng([0, e]).permutation(n)[: per_epoch * common.BATCH]
        for e in range(epochs)
    ]
    return np.concatenate(rows).reshape(-1, common.BATCH).astype(np.int32)


class WidthMLP(nn.Module):
    """784-n-n-10 ReLU MLP (Flax's default Dense init is LeCun normal, as gradlab's here)."""

    width: int

    @nn.compact
    def __call__(self, x):
        for i, features in enumerate((self.width, self.width, 10)):
            x = nn.Dense(features, name=f"layer_{i}")(x)
            x = nn.relu(x) if i < 2 else x
        return x


def hand_written(data: Any, order: np.ndarray, width: int):
    """A jit(vmap(train)) over every run of one width: returns ``sweep(seeds, lrs)``."""
    net = WidthMLP(width)
    x, y, order = jnp.asarray(data.x_train), jnp.asarray(data.y_train), jnp.asarray(order)

    def blocks(a):
        n = a.shape[0] // EVAL_BLOCK * EVAL_BLOCK
        return a[:n].reshape(-1, EVAL_BLOCK, *a.shape[1:])

    train_eval = (blocks(x), blocks(y))
    test_eval = (blocks(jnp.asarray(data.x_test)), blocks(jnp.asarray(data.y_test)))

    loss_fn, evaluate = common.hand_loss_and_evaluate(net)
    adam = common.hand_adam_train(loss_fn, x, y, order)

    def train(seed, lr):
        key = jax.random.split(jax.random.PRNGKey(seed))[0]  # gradlab's init key of a seed
        params, losses = adam(net.init(key, x[: common.BATCH])["params"], lr)
        return losses, evaluate(params, *train_eval)[0], *evaluate(params, *test_eval)

    program = jax.jit(jax.vmap(train))

    def sweep(seeds, lrs):
        return jax.device_get(program(seeds, lrs))

    return sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    parser.add_argument("--seeds", type=int, default=4, help="seeds per width")
    parser.add_argument("--lrs", type=int, default=4, help="learning rates per width")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (median)")
    parser.add_argument("--json", default=None, help="write the numbers to this file")
    args = parser.parse_args()

    info = common.machine()
    print(common.describe_machine(info))
    spec = width_spec(args.widths, args.seeds, args.lrs, args.epochs)
    data = gl.data.load("mnist")
    order = batch_order(data.x_train.shape[0], args.epochs)
    runs = args.seeds * args.lrs
    grid = spec.grid
    seeds = jnp.repeat(jnp.asarray(grid["seed"], jnp.int32), args.lrs)
    lrs = jnp.tile(jnp.asarray(grid["learning_rate"], jnp.float32), args.seeds)
    print(
        f"workload: MLP 784-n-n-10 relu, n in {args.widths}, MNIST subset "
        f"{data.x_train.shape[0]} train, batch {common.BATCH}, {len(order)} steps of Adam, "
        f"{runs} runs per width ({args.seeds} seeds x {args.lrs} learning rates)"
    )

    timers: dict[str, Any] = {}
    notes: dict[str, str] = {}
    whole = common.GradlabSweep(spec, None)
    timers["gradlab, one sweep"] = whole.once
    notes["gradlab, one sweep"] = f"first call {whole.first_s:.1f} s, compile {whole.compile_s:.1f}"
    singles: dict[int, common.GradlabSweep] = {}
    for width in args.widths:
        one = spec.replace(grid={**grid, "width": [width]})
        singles[width] = common.GradlabSweep(one, None, fresh=False)
        timers[f"gradlab, width {width}"] = singles[width].once
        sweep = hand_written(data, order, width)
        first_s, out = common.timed(lambda sweep=sweep: sweep(seeds, lrs))
        timers[f"jax vmap, width {width}"] = lambda sweep=sweep: common.timed(
            lambda: sweep(seeds, lrs)
        )[0]
        notes[f"jax vmap, width {width}"] = f"first call {first_s:.1f} s"
        got = whole.dataset["loss"].sel(width=width).isel(optimizer=0, seed=0, learning_rate=0)
        mine = out[0][0][got["step"].values]
        diff = float(np.nanmax(np.abs(got.values - mine) / mine))
        print(f"width {width}: run 0's logged losses, gradlab / hand-written - 1: max {diff:.1e}")
    print("prepared; timing", flush=True)

    samples = common.rounds(timers, args.repeats)
    median = {name: common.median(v) for name, v in samples.items()}
    rows = []

    def add(width, n, method, total, lower, note):
        rows.append([width, n, method, total, total / n / args.epochs * 1e3, total / lower, note])

    for width in args.widths:
        lower = median[f"jax vmap, width {width}"]
        recompiled = singles[width].recompiled
        add(width, runs, "gradlab", median[f"gradlab, width {width}"], lower,
            "RECOMPILED" if recompiled else "")  # fmt: skip
        add(width, runs, "jax vmap", lower, lower, notes[f"jax vmap, width {width}"])
    lower_all = sum(median[f"jax vmap, width {w}"] for w in args.widths)
    n_all = runs * len(args.widths)
    note = "RECOMPILED" if whole.recompiled else notes["gradlab, one sweep"]
    add("all", n_all, "gradlab, one sweep", median["gradlab, one sweep"], lower_all, note)
    add("all", n_all, "jax vmap, sum", lower_all, lower_all, "")
    records = [dict(zip(HEADERS, row, strict=True)) for row in rows]
    print()
    print(common.table(HEADERS, rows))
    print(common.load_line())
    common.write_json(
        args.json,
        {"machine": info, "workload": vars(args), "results": records, "samples_s": samples},
    )


if __name__ == "__main__":
    main()
