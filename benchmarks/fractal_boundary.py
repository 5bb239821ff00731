"""Throughput of a fractal trainability image, and its box-counting dimension.

Workload: Sohl-Dickstein 2024's setup ("The boundary of neural network trainability is
fractal"): a 16 -> 16 -> 1 tanh network in the mean-field parametrization, no biases
(``ModelSpec(parametrization="mean_field")``), full-batch gradient descent on 272 Gaussian
examples (as many as parameters, ``DataSpec(name="gaussian")``), ``--steps`` steps (200; the
paper used 500 or 1000), over an N x N grid (``--size``, 256: 65,536 runs) of the input and
output layers' learning rates (``lr_mult_0`` x ``lr_mult_1`` at ``learning_rate = 1``,
log-spaced over a window where the boundary is ragged: ``--window``; gradlab's ``mse`` is half
the notebook's loss, so these rates are twice the notebook's). A run is trained or diverged
by gradlab's rule (loss above 10x its initial value, or not finite; the paper's rule is
whether the mean of the last 20 normalised losses is below 1). The sweep records little:
``metrics=("none",)``, ``log_every = steps / 10``.

Timed, in the same process and interleaved in ``--repeats`` rounds (1: a 256 x 256 round
takes minutes) after gradlab's first call (which compiles) and one chunk of the hand-written
program (likewise):

- **gradlab steady**: a second ``gl.run`` of the spec (compiled program reused), memory-budgeted
  chunks (512 runs per chunk on CPU);
- **jax vmap**: the same training written by hand: the reference notebook's ``net``, plain
  gradient descent on each layer at its own rate, ``jit(vmap)`` over the runs in chunks of
  gradlab's size, a ``lax.scan`` over steps that keeps the loss every ``log_every`` steps and
  the divergence step; its outcome per run is compared with gradlab's (runs on the boundary
  may flip with float rounding: the number that differ is printed).

Printed: runs per second of each, compile time, the size of the result Dataset, and the
box-counting dimension of the image (``gl.analysis.fractal_dimension``) beside the paper's
1.2 to 2.0.

    python benchmarks/fractal_boundary.py                     # 256 x 256, ~8 min on 2 cores
    python benchmarks/fractal_boundary.py --size 64 --repeats 1         # a quick look
    python benchmarks/fractal_boundary.py --size 1024 --skip-vmap       # on a GPU (gpu.sh)
    python benchmarks/fractal_boundary.py --png fractal.png --json out.json
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

import gradlab as gl
from gradlab import models

WIDTH, STEPS = 16, 200
WINDOW = (4.8, 5.6, 1.85, 2.25)  # log10 of lr_mult_0 (min, max), lr_mult_1 (min, max)
PAPER = (1.2, 2.0)  # the range of dimensions Sohl-Dickstein 2024 reports


def fractal_spec(size: int, steps: int, window=WINDOW) -> gl.SweepSpec:
    """The sweep of one image: ``size`` x ``size`` runs of the paper's setup."""
    model = gl.ModelSpec(
        hidden=(WIDTH,), activation="tanh", init="normal", use_bias=False,
        parametrization="mean_field",
    )  # fmt: skip
    return gl.SweepSpec(
        model=model,
        data=gl.DataSpec(name="gaussian"),
        loss="mse",
        optimizers=("sgd",),
        grid={
            "learning_rate": [1.0],  # so lr_mult_l is layer l's learning rate
            "lr_mult_0": {"logspace": [window[0], window[1], size]},
            "lr_mult_1": {"logspace": [window[2], window[3], size]},
        },
        steps=steps,
        batch_size=None,
        metrics=("none",),
        log_every=max(1, steps // 10),
    )


def hand_vmap(spec: gl.SweepSpec, chunk: int):
    """The same training by hand: returns ``run() -> diverged [runs]`` (compiled on first use).

    The notebook's ``net`` (layer z = x W/√fan_in, tanh(√2 z), readout z/√fan_in), gradlab's
    ``mse`` (½ (f − y)², mean over examples), W ← W − η_l ∇_W per layer, gradlab's divergence
    rule (loss above ``divergence_factor`` x the initial loss, or not finite; the run is frozen
    from then on), the loss kept every ``log_every`` steps; the initial parameters are gradlab's
    (its initialiser at seed 0).
    """
    data = gl.data.load(spec.data)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    params = models.init_params(models.make_model(spec.model, 1), jax.random.PRNGKey(0), x[:2])
    theta0 = (params["layer_0"]["kernel"], params["layer_1"]["kernel"])
    steps, every, factor = spec.steps, spec.log_every, spec.divergence_factor

    def loss_fn(theta):
        w0, w1 = theta
        h = jnp.tanh(math.sqrt(2.0) * (x @ w0) / math.sqrt(w0.shape[0]))
        f = (h @ w1) / w1.shape[0]
        return 0.5 * jnp.mean(jnp.sum((f - y) ** 2, axis=-1))

    def train(lr0, lr1):
        def step(carry, t):
            theta, first, at = carry
            loss, (g0, g1) = jax.value_and_grad(loss_fn)(theta)
            first = jnp.where(t == 0, loss, first)
            bad = ~jnp.isfinite(loss) | (loss > factor * first)
            at = jnp.where((at < 0) & bad, t, at)
            alive = at < 0
            new = (theta[0] - lr0 * g0, theta[1] - lr1 * g1)
            theta = jax.tree.map(lambda a, b: jnp.where(alive, a, b), new, theta)
            return (theta, first, at), loss

        init = (theta0, jnp.float32(0), jnp.int32(-1))
        (_, _, at), losses = jax.lax.scan(step, init, jnp.arange(steps))
        return at, losses[::every]

    program = jax.jit(jax.vmap(train))
    lr0, lr1 = (np.asarray(spec.grid[a], np.float32) for a in ("lr_mult_0", "lr_mult_1"))
    grid0, grid1 = (g.ravel() for g in np.meshgrid(lr0, lr1, indexing="ij"))

    def warm_up():
        program(grid0[:chunk], grid1[:chunk])[0].block_until_ready()

    def run():
        out = []
        for start in range(0, grid0.size, chunk):
            part0, part1 = grid0[start : start + chunk], grid1[start : start + chunk]
            pad = chunk - part0.size
            at, _ = program(np.pad(part0, (0, pad), "edge"), np.pad(part1, (0, pad), "edge"))
            out.append(np.asarray(at)[: part0.size])
        return np.concatenate(out).reshape(lr0.size, lr1.size) >= 0

    return warm_up, run


def on_boundary(outcome: np.ndarray) -> np.ndarray:
    """The runs with a neighbour (of the 8 around them) whose outcome differs."""
    padded = np.pad(outcome, 1, mode="edge")
    n, m = outcome.shape
    shifted = [padded[1 + i : 1 + i + n, 1 + j : 1 + j + m] for i in (-1, 0, 1) for j in (-1, 0, 1)]
    return np.logical_or.reduce([s != outcome for s in shifted])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="grid points per axis (256)")
    parser.add_argument("--steps", type=int, default=STEPS, help="gradient steps per run (200)")
    parser.add_argument("--repeats", type=int, default=1, help="timed rounds (1)")
    parser.add_argument("--window", type=float, nargs=4, default=WINDOW,
                        metavar=("X0", "X1", "Y0", "Y1"),
                        help="log10 ranges of lr_mult_0 and lr_mult_1")  # fmt: skip
    parser.add_argument("--chunk-size", type=int, default=None, help="default: memory-budgeted")
    parser.add_argument("--skip-vmap", action="store_true", help="time gradlab only")
    parser.add_argument("--png", help="save the image (gl.plots.fractal_image) here")
    parser.add_argument("--json", help="write every number here")
    args = parser.parse_args()

    info = common.machine()
    print(common.describe_machine(info))
    spec = fractal_spec(args.size, args.steps, tuple(args.window))
    runs = args.size**2
    data = gl.data.load(spec.data)
    chunk = common.chunk_size_used(spec, data, args.chunk_size)
    print(f"{args.size} x {args.size} = {runs:,} runs x {args.steps} steps, chunks of {chunk}")

    sweep = common.GradlabSweep(spec, args.chunk_size)
    timers = {"gradlab steady": sweep.once}
    first = {"gradlab first call": sweep.first_s}
    hand: dict[str, np.ndarray] = {}
    if not args.skip_vmap:
        warm_up, by_hand = hand_vmap(spec, chunk)
        first["jax vmap compile (one chunk)"] = common.timed(warm_up)[0]

        def time_by_hand() -> float:
            wall, hand["diverged"] = common.timed(by_hand)
            return wall

        timers["jax vmap"] = time_by_hand
    samples = common.rounds(timers, args.repeats)

    ds = sweep.dataset
    rows = [[name, runs / common.median(s), common.median(s), s] for name, s in samples.items()]
    rows += [[name, None, wall, "compile included"] for name, wall in first.items()]
    print(common.table(["method", "runs/s", "median s", "rounds s"], rows))
    print(
        f"gradlab: compile {sweep.compile_s:.1f} s, result Dataset {ds.nbytes / 2**20:.2f} MiB "
        f"({ds.nbytes / runs:.0f} bytes a run){'; RECOMPILED' if sweep.recompiled else ''}"
    )
    diverged = gl.analysis.outcome_image(ds).values
    differ = None
    if hand:
        flips = hand["diverged"] != diverged
        differ = int(flips.sum())
        near = int((flips & on_boundary(diverged)).sum())
        print(
            f"outcome differs from the hand-written vmap in {differ} of {runs:,} runs, "
            f"{near} of them next to a run of the other outcome"
        )

    fit = gl.analysis.fractal_dimension(ds)
    print(
        f"box-counting dimension of the boundary: {fit.dimension:.3f} "
        f"(95 % CI {fit.ci[0]:.3f} to {fit.ci[1]:.3f}; boxes {fit.sizes.tolist()} cells, "
        f"counts {fit.counts.tolist()}); the paper: {PAPER[0]} to {PAPER[1]}; "
        f"diverged: {diverged.mean():.1%} of the runs"
    )
    print(common.load_line())
    if args.png:
        gl.plots.fractal_image(ds).savefig(args.png, dpi=120)
        print(f"wrote {args.png}")
    common.write_json(
        args.json,
        {
            "machine": info,
            "size": args.size,
            "steps": args.steps,
            "window": list(args.window),
            "chunk_size": chunk,
            "samples_s": samples,
            "first_call_s": first,
            "compile_s": sweep.compile_s,
            "dataset_bytes": int(ds.nbytes),
            "outcome_differs": differ,
            "dimension": fit.dimension,
            "dimension_ci": list(fit.ci),
            "box_sizes": fit.sizes.tolist(),
            "box_counts": fit.counts.tolist(),
        },
    )


if __name__ == "__main__":
    main()
