"""Throughput of the article workload: gradlab against the obvious ways to run the same sweep.

Workload (``common.article_spec``): the article's MLP 784-10-10-10 (ReLU, softmax cross-entropy)
on the default MNIST subset (4,000 train / 1,000 test), batch 32, one epoch = 125 steps of Adam,
gradlab's default metrics, for R runs = seeds x learning rates x init scales. Every method trains
the same configurations, records the loss of every step, and afterwards computes what gradlab
returns per run: the loss on the training set and the loss and accuracy on the test set.

Methods, all measured in this one process, side by side: for each R every method is prepared
(compiled, warmed up), then timed in ``--repeats`` rounds that call each method once in turn,
so that the changing load of a shared machine falls on all of them alike; the table shows the
median of the rounds (Keras, 100x slower, is timed once up front).

- ``gradlab first call``: ``gl.run`` with an empty program cache (includes compilation).
- ``gradlab steady``: median of ``--repeats`` further ``gl.run`` calls of the same spec, which
  reuse the compiled program (the table flags any call whose ``compile_time_s`` was not 0).
- ``jax loop``: the obvious hand-written JAX: one ``jax.jit`` function that trains one
  configuration with a ``lax.scan`` over steps (Flax + Optax), compiled once, called in a Python
  loop with ``block_until_ready``; timed on ``--loop-configs`` configurations spread over the
  grid (median of ``--repeats``) and extrapolated to R runs.
- ``jax vmap``: the same training function written by hand as ``jit(vmap(train))`` over chunks
  of runs as large as gradlab's (no metrics, no divergence masking): the lower bound that
  gradlab's engine competes with.
- ``torch.func vmap`` (if torch is installed): ``stack_module_state`` + ``functional_call`` +
  ``vmap(grad_and_value)`` over all R runs, with Adam written on the stacked tensors.
- ``torch loop`` (if torch is installed): one ``nn.Sequential`` + ``torch.optim.Adam`` per
  configuration, eager, on ``--torch-configs`` configurations, extrapolated.

Both torch methods run with ``--torch-threads`` intra-op threads (default 1): on this shared
2-core machine, with two threads OpenMP's spin-waiting made the eager loop 10-50x and the
``torch.func`` ensemble up to 10x slower whenever another process was busy on a core; on an idle
machine two threads made ``torch.func`` about 1.7x faster (R = 256).
- ``keras`` (if keras is installed; Keras 3 on its JAX backend): the article's own code, a
  ``Sequential`` of Dense(10, relu) x2 and Dense(10, softmax), Adam, sparse categorical
  cross-entropy, ``fit(batch_size=32, epochs=1)`` then ``evaluate`` on the test set; median
  of ``--keras-runs`` runs after one warm-up (each run builds, compiles and fits a new model,
  as the article's code does).

Roofline (measured here, in this run): the best of 5 timings of a large float32 GEMM with
``jnp`` gives the FLOP rate; the memory bandwidth is the higher of a donated STREAM triad
``y <- a*x + y`` (best of 10) and the same update in a ``fori_loop`` (best of 5), on arrays
larger than the caches (the triad measures about twice the loop on the 2-core CPU). Per run
and step the MLP needs ``2·B·Σ fan_in·fan_out`` FLOPs forward, as many again for the weight
gradients and ``2·B·fan_in·fan_out`` for the input gradient of every layer but the first; Adam
needs about 14 FLOPs per parameter, and reads and writes the parameters and both moment vectors once
(24 bytes per parameter). The roofline time of a run-epoch is max(FLOPs / FLOP rate, bytes /
bandwidth); ``% roofline`` is that time over the measured time. It counts training only, not
the metrics or the final evaluation. At small R the optimizer state fits in the caches, where
the bandwidth is higher than the one measured, so the memory term is not a hard bound there.

Times are per run and per epoch (ms), ``speedup`` is the jax loop's time over the method's
(above 1: faster than the loop).

    python benchmarks/sweep_throughput.py                      # R = 64, 256 (a few minutes)
    python benchmarks/sweep_throughput.py --runs 1024 4096     # bigger sweeps
    python benchmarks/sweep_throughput.py --json out.json --skip keras torch-loop
    bash benchmarks/gpu.sh                                     # on a GPU: 1k-64k runs x 10 epochs

Each R's rows are printed (and the JSON rewritten) as soon as that R is measured, so a run
stopped at a time limit keeps what it measured.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import math
import os
import sys
import time
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

import gradlab as gl

METHODS = ("gradlab", "jax-loop", "jax-vmap", "torch-func", "torch-loop", "keras")
ADAM_FLOPS_PER_PARAM = 14
ADAM_BYTES_PER_PARAM = 24  # read + write of parameter, first and second moment (float32)
EVAL_BLOCK = 1000
HEADERS = ["runs", "method", "total s", "ms/run-epoch", "speedup vs loop", "% roofline", "note"]


# ----------------------------------------------------------------------------- data and roofline


def load_workload(epochs: int) -> dict[str, Any]:
    """The data as arrays, and the shared batch order: [steps, batch] example indices."""
    d = gl.data.load("mnist")
    n = d.x_train.shape[0]
    per_epoch = n // common.BATCH
    rows = [
        np.random.default_rng([0, e]).permutation(n)[: per_epoch * common.BATCH]
        for e in range(epochs)
    ]
    order = np.concatenate(rows).reshape(-1, common.BATCH).astype(np.int32)
    widths = [d.x_train.shape[1], *common.HIDDEN, d.num_classes]
    return {"data": d, "order": order, "steps": len(order), "widths": widths}


def workload_cost(widths: list[int], batch: int, steps: int) -> dict[str, float]:
    """FLOPs and bytes of optimizer-state traffic of one run's training (see the docstring)."""
    pairs = list(itertools.pairwise(widths))
    n_params = sum(a * b + b for a, b in pairs)
    forward = 2 * batch * sum(a * b for a, b in pairs)
    backward = forward + 2 * batch * sum(a * b for a, b in pairs[1:])
    per_step = forward + backward + ADAM_FLOPS_PER_PARAM * n_params
    return {
        "params": n_params,
        "flops": float(per_step * steps),
        "bytes": float(ADAM_BYTES_PER_PARAM * n_params * steps),
    }


def best_time(fn, *args, repeats: int = 5) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return min(times)


def triad_bandwidth(size: int, repeats: int = 10) -> float:
    """Bytes per second of a STREAM triad ``y <- 0.5·x + y`` whose ``y`` is donated (written in
    place, as STREAM does): 12 bytes per element, best of ``repeats`` calls."""
    triad = jax.jit(lambda x, y: 0.5 * x + y, donate_argnums=1)
    x, y = jnp.ones(size, jnp.float32), jnp.ones(size, jnp.float32)
    y = jax.block_until_ready(triad(x, y))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        y = jax.block_until_ready(triad(x, y))
        times.append(time.perf_counter() - t0)
    return 3 * 4 * size / min(times)


def measure_peaks() -> dict[str, float]:
    """FLOP rate of a large float32 GEMM and memory bandwidth (default device).

    Bandwidth is measured two ways: a donated STREAM triad (:func:`triad_bandwidth`) and an
    ``y <- 0.5·x + y`` loop inside ``fori_loop`` without donation, which measures about half
    of it on the 2-core CPU. The higher one is the machine's bandwidth and sets the bound
    (``bytes_per_s``); a looser bound would overstate how close a method comes to it.
    """
    gpu = jax.default_backend() != "cpu"
    n = 8192 if gpu else 2048
    a = jnp.ones((n, n), jnp.float32)
    flops = 2 * n**3 / best_time(jax.jit(lambda a, b: a @ b), a, a)
    size, inner = (2**28, 20) if gpu else (2**25, 10)  # 1 GiB / 128 MiB per array
    x = jnp.ones(size, jnp.float32)
    axpy = jax.jit(lambda x, y: jax.lax.fori_loop(0, inner, lambda i, y: 0.5 * x + y, y))
    loop = inner * 3 * 4 * size / best_time(axpy, x, x)
    triad = triad_bandwidth(size)
    return {
        "flops_per_s": flops,
        "bytes_per_s": max(triad, loop),
        "triad_bytes_per_s": triad,
        "loop_bytes_per_s": loop,
        "gemm_n": n,
        "axpy_floats": size,
    }


# ----------------------------------------------------------------------------- hand-written JAX


class ArticleMLP(nn.Module):
    """784-10-10-10 ReLU MLP, layer names as gradlab's so that the initial draws are the same."""

    @nn.compact
    def __call__(self, x):
        for i, width in enumerate((*common.HIDDEN, 10)):
            x = nn.Dense(width, name=f"layer_{i}")(x)
            x = nn.relu(x) if i < len(common.HIDDEN) else x
        return x


def jax_functions(w: dict[str, Any]):
    """(init, train_from_params): one configuration's initial parameters and its training."""
    d = w["data"]
    net = ArticleMLP()
    x, y = jnp.asarray(d.x_train), jnp.asarray(d.y_train)
    order = jnp.asarray(w["order"])

    def blocks(a):
        n = a.shape[0] // EVAL_BLOCK * EVAL_BLOCK
        return a[:n].reshape(-1, EVAL_BLOCK, *a.shape[1:])

    evals = {
        "train": (blocks(x), blocks(y)),
        "test": (blocks(jnp.asarray(d.x_test)), blocks(jnp.asarray(d.y_test))),
    }

    loss_fn, evaluate = common.hand_loss_and_evaluate(net)

    def init(seed, scale):
        key = jax.random.split(jax.random.PRNGKey(seed))[0]
        params = net.init(key, x[: common.BATCH])["params"]
        return jax.tree_util.tree_map_with_path(
            lambda path, v: v * scale if path[-1].key == "kernel" else v, params
        )

    adam = common.hand_adam_train(loss_fn, x, y, order)

    def train(params, lr):
        params, losses = adam(params, lr)
        train_loss, _ = evaluate(params, *evals["train"])
        test_loss, test_acc = evaluate(params, *evals["test"])
        return losses, train_loss, test_loss, test_acc

    return init, train


def jax_loop(w, cfgs):
    """The jitted one-configuration training, called in a Python loop over ``cfgs``.

    Returns (compile seconds, the first configuration's step losses, once); ``once()`` trains
    every configuration of ``cfgs`` and returns the seconds per run.
    """
    init, train = jax_functions(w)
    one = jax.jit(lambda seed, lr, scale: train(init(seed, scale), lr))
    args = lambda c: (jnp.int32(c[0]), jnp.float32(c[1]), jnp.float32(c[2]))
    compile_s, first = common.timed(lambda: jax.block_until_ready(one(*args(cfgs[0]))))

    def once():
        t0 = time.perf_counter()
        for c in cfgs:
            jax.block_until_ready(one(*args(c)))
        return (time.perf_counter() - t0) / len(cfgs)

    return compile_s, np.asarray(first[0]), once


def jax_vmap(w, cfgs, chunk):
    """A hand-written jit(vmap(train)) over chunks of runs: (first call seconds, once)."""
    init, train = jax_functions(w)
    chunk = min(chunk, len(cfgs))
    init_chunk = jax.jit(lambda s, sc: jax.lax.map(lambda a: init(*a), (s, sc)))
    train_chunk = jax.jit(jax.vmap(train))
    cols = np.array(cfgs, dtype=np.float64)
    n_chunks = math.ceil(len(cfgs) / chunk)
    pad = n_chunks * chunk - len(cfgs)
    cols = np.concatenate([cols, np.repeat(cols[:1], pad, 0)])

    def sweep():
        out = []
        for c in range(n_chunks):
            part = cols[c * chunk : (c + 1) * chunk]
            params = init_chunk(
                jnp.asarray(part[:, 0], jnp.int32), jnp.asarray(part[:, 2], jnp.float32)
            )
            out.append(jax.device_get(train_chunk(params, jnp.asarray(part[:, 1], jnp.float32))))
        return out

    first_s, _ = common.timed(sweep)
    return first_s, lambda: common.timed(sweep)[0]


# ----------------------------------------------------------------------------- PyTorch


def torch_data(w, device):
    import torch

    d = w["data"]
    t = lambda a, dt: torch.as_tensor(np.asarray(a), dtype=dt, device=device)
    return (
        t(d.x_train, torch.float32),
        t(d.y_train, torch.long),
        t(d.x_test, torch.float32),
        t(d.y_test, torch.long),
        t(w["order"], torch.long),
    )


def torch_model(widths, seed, scale):
    import torch

    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        lin = torch.nn.Linear(a, b)
        torch.nn.init.normal_(lin.weight, std=scale / math.sqrt(a))
        torch.nn.init.zeros_(lin.bias)
        layers += [lin, torch.nn.ReLU()] if i < len(widths) - 2 else [lin]
    return torch.nn.Sequential(*layers)


def torch_loop(w, cfgs, device):
    """Eager PyTorch, one model and torch.optim.Adam per configuration: ``once`` -> s/run."""
    import torch
    import torch.nn.functional as F

    x, y, xt, yt, order = torch_data(w, device)

    def one(seed, lr, scale):
        model = torch_model(w["widths"], seed, scale).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        losses = []
        for idx in order:
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        with torch.no_grad():
            train_loss = F.cross_entropy(model(x), y)
            logits = model(xt)
            test = (F.cross_entropy(logits, yt), (logits.argmax(-1) == yt).float().mean())
        out = torch.stack(losses), train_loss, *test
        if device != "cpu":
            torch.cuda.synchronize()
        return out

    def once():
        t0 = time.perf_counter()
        for c in cfgs:
            one(*c)
        return (time.perf_counter() - t0) / len(cfgs)

    one(*cfgs[0])  # warm-up
    return once


def torch_func(w, cfgs, device):
    """torch.func vmap ensemble over all ``cfgs``, Adam on stacked tensors.

    Returns (first call seconds, setup seconds, once); ``once()`` -> seconds for all runs, model
    construction and stacking (the setup) included.
    """
    import copy

    import torch
    import torch.nn.functional as F
    from torch.func import functional_call, grad_and_value, stack_module_state, vmap

    x, y, xt, yt, order = torch_data(w, device)
    b1, b2, eps = 0.9, 0.999, 1e-8

    def sweep():
        t0 = time.perf_counter()
        models = [torch_model(w["widths"], s, sc) for s, _, sc in cfgs]
        params, buffers = stack_module_state(models)
        params = {k: v.detach().to(device) for k, v in params.items()}
        buffers = {k: v.to(device) for k, v in buffers.items()}
        base = copy.deepcopy(models[0]).to("meta")
        setup_s = time.perf_counter() - t0
        lr = torch.tensor([c[1] for c in cfgs], dtype=torch.float32, device=device)

        def loss_fn(p, b, xb, yb):
            return F.cross_entropy(functional_call(base, (p, b), (xb,)), yb)

        step = vmap(grad_and_value(loss_fn), in_dims=(0, 0, None, None))
        forward = vmap(lambda p, b, xb: functional_call(base, (p, b), (xb,)), in_dims=(0, 0, None))
        m = {k: torch.zeros_like(v) for k, v in params.items()}
        v2 = {k: torch.zeros_like(v) for k, v in params.items()}
        losses = []
        with torch.no_grad():
            for t, idx in enumerate(order, 1):
                grads, loss = step(params, buffers, x[idx], y[idx])
                losses.append(loss)
                for k, p in params.items():
                    g = grads[k]
                    m[k].mul_(b1).add_(g, alpha=1 - b1)
                    v2[k].mul_(b2).addcmul_(g, g, value=1 - b2)
                    denom = (v2[k] / (1 - b2**t)).sqrt_().add_(eps)
                    step_size = (lr / (1 - b1**t)).view(-1, *([1] * (p.dim() - 1)))
                    p.addcdiv_(m[k] * step_size, denom, value=-1.0)

            def evaluate(xs, ys):
                loss, hits = 0.0, 0.0
                for i in range(0, xs.shape[0], EVAL_BLOCK):
                    logits = forward(params, buffers, xs[i : i + EVAL_BLOCK])
                    yb = ys[i : i + EVAL_BLOCK]
                    ce = F.cross_entropy(
                        logits.transpose(1, 2), yb.expand(len(cfgs), -1), reduction="none"
                    )
                    loss = loss + ce.sum(-1)
                    hits = hits + (logits.argmax(-1) == yb).float().sum(-1)
                return loss / xs.shape[0], hits / xs.shape[0]

            out = torch.stack(losses), evaluate(x, y)[0], *evaluate(xt, yt)
        if device != "cpu":
            torch.cuda.synchronize()
        return setup_s, out

    first_s, (setup_s, _) = common.timed(sweep)
    return first_s, setup_s, lambda: common.timed(sweep)[0]


# ----------------------------------------------------------------------------- Keras


def keras_per_run(w, cfgs, epochs):
    """Per-run seconds of the article's Keras code (build, compile, fit, evaluate): the median
    over ``cfgs[1:]`` after a warm-up run on ``cfgs[0]``."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        import keras
    except Exception as e:  # e.g. KERAS_BACKEND names a backend that is not installed
        return {"skipped": f"import keras failed: {e}"}
    if keras.backend.backend() != "jax":
        return {"skipped": f"keras backend is {keras.backend.backend()}, not jax"}
    d = w["data"]

    def one(seed, lr, scale):
        keras.utils.set_random_seed(int(seed))
        init = keras.initializers.VarianceScaling(scale**2, "fan_in", "truncated_normal")
        model = keras.Sequential(
            [
                keras.Input((d.x_train.shape[1],)),
                keras.layers.Dense(10, activation="relu", kernel_initializer=init),
                keras.layers.Dense(10, activation="relu", kernel_initializer=init),
                keras.layers.Dense(10, activation="softmax", kernel_initializer=init),
            ]
        )
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=lr),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        model.fit(d.x_train, d.y_train, batch_size=common.BATCH, epochs=epochs, verbose=0)
        return model.evaluate(d.x_test, d.y_test, verbose=0)

    one(*cfgs[0])  # warm-up: imports, first traces
    times = [common.timed(lambda c=c: one(*c))[0] for c in cfgs[1:]]
    return {"per_run_s": common.median(times), "runs_timed": len(times)}


# ----------------------------------------------------------------------------- main


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[64, 256], help="sweep sizes R")
    parser.add_argument("--epochs", type=int, default=common.EPOCHS)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median)")
    parser.add_argument("--chunk-size", type=int, default=None, help="gl.run chunk_size")
    parser.add_argument("--loop-configs", type=int, default=16, help="configs timed, jax loop")
    parser.add_argument("--torch-configs", type=int, default=8, help="configs timed, torch loop")
    parser.add_argument("--keras-runs", type=int, default=3, help="runs timed, keras")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument(
        "--torch-func-max-runs",
        type=int,
        default=None,
        help="skip torch.func above this R (it builds one nn.Module per run in Python)",
    )
    parser.add_argument("--skip", nargs="*", default=[], choices=METHODS, action="extend")
    parser.add_argument("--json", default=None, help="write the numbers to this file")
    args = parser.parse_args()

    info = common.machine()
    print(common.describe_machine(info))
    w = load_workload(args.epochs)
    cost = workload_cost(w["widths"], common.BATCH, w["steps"])
    peaks = measure_peaks()
    roof_s = max(cost["flops"] / peaks["flops_per_s"], cost["bytes"] / peaks["bytes_per_s"])
    print(
        f"workload: MLP {'-'.join(map(str, w['widths']))} relu, MNIST subset "
        f"{w['data'].x_train.shape[0]} train, batch {common.BATCH}, {args.epochs} epoch(s) = "
        f"{w['steps']} steps of Adam, {cost['params']:,} parameters\n"
        f"roofline: GEMM {peaks['flops_per_s'] / 1e9:.1f} GFLOP/s, memory "
        f"{peaks['bytes_per_s'] / 1e9:.1f} GB/s (donated triad "
        f"{peaks['triad_bytes_per_s'] / 1e9:.1f}, fori_loop axpy "
        f"{peaks['loop_bytes_per_s'] / 1e9:.1f}: the higher sets the bound); per run-epoch "
        f"{cost['flops'] / args.epochs / 1e6:.0f} MFLOP -> "
        f"{cost['flops'] / args.epochs / peaks['flops_per_s'] * 1e3:.2f} ms, "
        f"{cost['bytes'] / args.epochs / 1e6:.1f} MB -> "
        f"{cost['bytes'] / args.epochs / peaks['bytes_per_s'] * 1e3:.2f} ms"
    )
    torch_device = "cpu"
    if installed("torch"):
        import torch

        torch_device = "cuda" if torch.cuda.is_available() else "cpu"
        torch.set_num_threads(args.torch_threads)

    # Per-run methods: prepared (compiled, warmed up) once, timed within every R's rounds.
    all_cfgs = common.configs(max(args.runs))
    loop_cfgs = common.spread(all_cfgs, args.loop_configs)
    per_run: dict[str, Any] = {}
    if "jax-loop" not in args.skip:
        loop_compile_s, loop_losses0, per_run["jax loop"] = jax_loop(w, loop_cfgs)
    if "torch-loop" not in args.skip and installed("torch"):
        per_run["torch loop"] = torch_loop(
            w, common.spread(all_cfgs, args.torch_configs), torch_device
        )
    keras_s = None
    if "keras" not in args.skip and installed("keras"):
        res = keras_per_run(w, common.spread(all_cfgs, args.keras_runs + 1), args.epochs)
        if "skipped" in res:
            print(f"keras: skipped ({res['skipped']})")
        else:
            keras_s = res["per_run_s"]
            print(f"keras: {keras_s * 1e3:.0f} ms/run (median of {res['runs_timed']})", flush=True)
    for name, needs in (("torch", ("torch-func", "torch-loop")), ("keras", ("keras",))):
        if not installed(name) and not set(needs) <= set(args.skip):
            print(f"{name} is not installed: its baselines are skipped")

    rows, records = [], []

    def write_results(quiet=True):
        payload = {
            "machine": info,
            "workload": {"runs": args.runs, "epochs": args.epochs, "steps": w["steps"], **cost},
            "peaks": peaks,
            "roofline_s_per_run": roof_s,
            "results": records,
        }
        common.write_json(args.json, payload, quiet=quiet)

    def add(runs, method, total_s, loop_s, note="", samples=None):
        ms = total_s / runs * 1e3 / args.epochs
        speedup = loop_s * runs / total_s if loop_s else None
        pct = 100 * roof_s / (total_s / runs)
        rows.append([runs, method, total_s, ms, speedup, pct, note])
        records.append(
            dict(
                runs=runs,
                method=method,
                total_s=total_s,
                ms_per_run_epoch=ms,
                speedup_vs_jax_loop=speedup,
                roofline_pct=pct,
                note=note,
                samples_s=samples,
            )
        )

    for runs in args.runs:
        cfgs = common.configs(runs)
        timers: dict[str, Any] = {}  # name -> once(): seconds for all R runs
        notes: dict[str, str] = {}
        first: dict[str, float] = {}
        if "gradlab" not in args.skip:
            spec = common.article_spec(runs, epochs=args.epochs)
            chunk = None if args.chunk_size is None else min(args.chunk_size, runs)
            g = common.GradlabSweep(spec, chunk)
            timers["gradlab steady"] = g.once
            first["gradlab first call"] = g.first_s
            notes["gradlab first call"] = f"compile {g.compile_s:.1f} s"
            if "jax loop" in per_run and loop_cfgs[0] == cfgs[0]:  # the same computation?
                got = g.dataset["loss"].isel(optimizer=0).values.reshape(runs, -1)[0]
                diff = float(np.nanmax(np.abs(got[: len(loop_losses0)] - loop_losses0)))
                print(f"R={runs}: run 0 step losses, gradlab vs jax loop: max |diff| {diff:.1e}")
        if "jax-vmap" not in args.skip:  # in chunks of the size gradlab uses
            spec_r = common.article_spec(runs, epochs=args.epochs)
            chunk = common.chunk_size_used(spec_r, w["data"], args.chunk_size)
            first_s, timers["jax vmap (hand-written)"] = jax_vmap(w, cfgs, chunk)
            notes["jax vmap (hand-written)"] = f"first call {first_s:.1f} s"
        torch_func_fits = args.torch_func_max_runs is None or runs <= args.torch_func_max_runs
        if "torch-func" not in args.skip and installed("torch") and torch_func_fits:
            name = f"torch.func vmap ({torch_device})"
            _, setup_s, timers[name] = torch_func(w, cfgs, torch_device)
            notes[name] = f"setup {setup_s:.2f} s included"
        for name, once in per_run.items():
            timers[name] = lambda once=once, runs=runs: once() * runs
            timed_runs = len(loop_cfgs) if name == "jax loop" else args.torch_configs
            notes[name] = f"extrapolated from {timed_runs} runs"
            if name == "jax loop":
                notes[name] += f", compile {loop_compile_s:.1f} s"
        samples = common.rounds(timers, args.repeats)
        total = {name: common.median(v) for name, v in samples.items()}
        if keras_s is not None:
            total["keras"] = keras_s * runs
            notes["keras"] = f"extrapolated from {args.keras_runs} runs, measured once"
        loop_s = total["jax loop"] / runs if "jax loop" in total else None
        for name, seconds in first.items():
            add(runs, name, seconds, loop_s, notes[name])
        if "gradlab steady" in total:
            add(
                runs,
                "gradlab steady",
                total["gradlab steady"],
                loop_s,
                "RECOMPILED" if g.recompiled else "compile 0 s",
                samples["gradlab steady"],
            )
        for name, seconds in total.items():
            if name != "gradlab steady":
                add(runs, name, seconds, loop_s, notes.get(name, ""), samples.get(name))
        # Each R's rows as soon as they are measured, and the JSON so far: a long GPU run
        # stopped at its time limit keeps what it measured.
        table = common.table(HEADERS, [r for r in rows if r[0] == runs])
        print(f"R={runs} done\n{table}\n", flush=True)
        write_results()

    print()
    print(common.table(HEADERS, rows))
    print(
        f"\nroofline: {roof_s / args.epochs * 1e3:.2f} ms per run-epoch "
        f"(max of compute and memory terms above); speedup = jax loop ms / method ms"
    )
    print(common.load_line())
    write_results(quiet=False)


if __name__ == "__main__":
    main()
