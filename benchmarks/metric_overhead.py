"""What each metric set costs, relative to ``metrics=("none",)``, on the article workload.

Workload: ``common.article_spec`` (MLP 784-10-10-10 ReLU, MNIST subset, batch 32, one epoch =
125 steps of Adam) with R runs (``--runs``, default 128). Each variant is one spec; each is run
once to compile (that first call's compile time is reported), then all are timed in
``--repeats`` rounds (3 by default) that call every variant once in turn, reusing the compiled
programs, so that the changing load of a shared machine falls on all variants alike. The table
shows the median wall time of those steady-state calls, per run and per epoch, and its ratio to
the ``none`` variant.

Variants: ``none`` (loss only), ``default`` (every per-step and per-layer metric),
``default+sharpness`` (Lanczos top Hessian eigenvalue, ``sharpness_every=10``,
``sharpness_iters=20``, and the same with 10 iterations), ``default+hessian_trace``
(Hutchinson, 10 probes, every 10 steps), ``default+per_example`` (per-example gradients every
10 steps), and ``default`` and ``none`` with ``log_every=10`` (metrics recorded on every 10th
step; divergence still checked every step). With ``--progress on steps`` each variant is also
timed with ``gl.run(progress=True)`` (the bar, moving per chunk; the same program) and
``progress="steps"`` (the program reports the steps done 20-40 times per chunk; see
``gradlab.engine.progress``), in the same rounds as without (``progress=False``).

    python benchmarks/metric_overhead.py                 # R = 128, about 3 minutes
    python benchmarks/metric_overhead.py --runs 256 --json overhead.json   # about 7 minutes
    python benchmarks/metric_overhead.py --runs 64 --sharpness-accuracy    # about 1 minute
    python benchmarks/metric_overhead.py --runs 256 --only none default --progress on steps
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

import gradlab as gl

CURVATURE = dict(sharpness_every=10, sharpness_iters=20)
VARIANTS = {
    "none": dict(metrics=("none",)),
    "default": dict(metrics=("default",)),
    "default+sharpness": dict(metrics=("default", "sharpness"), **CURVATURE),
    "default+sharpness, 10 iters": dict(
        metrics=("default", "sharpness"), sharpness_every=10, sharpness_iters=10
    ),
    "default+hessian_trace": dict(metrics=("default", "hessian_trace"), **CURVATURE),
    "default+per_example": dict(metrics=("default", "per_example"), **CURVATURE),
    "default, log_every=10": dict(metrics=("default",), log_every=10),
    "none, log_every=10": dict(metrics=("none",), log_every=10),
}


def sharpness_accuracy(runs: int, epochs: int) -> None:
    """Relative error of ``sharpness`` with 10 and 20 Lanczos steps against 40 steps, over every
    measurement of a sweep (every 10 steps, warm-started from the previous eigenvector)."""
    values = {}
    for iters in (10, 20, 40):
        spec = common.article_spec(
            runs, epochs=epochs, metrics=("default", "sharpness"), sharpness_iters=iters
        )
        values[iters] = gl.run(spec, progress=False).sharpness.values
    reference = values[40]
    rows = []
    for iters in (10, 20):
        ok = np.isfinite(values[iters]) & np.isfinite(reference) & (reference != 0)
        err = np.abs(values[iters][ok] - reference[ok]) / np.abs(reference[ok])
        median, p90 = np.median(err), np.quantile(err, 0.9)
        rows.append(
            [iters, int(ok.sum()), f"{median:.2g}", f"{p90:.2g}", f"{np.mean(err < 0.01):.1%}"]
        )
    print(f"sharpness every 10 steps, {runs} runs x {epochs} epoch(s), error relative to 40 steps")
    headers = ["Lanczos steps", "measurements", "median error", "90th pct", "within 1 %"]
    print(common.table(headers, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=common.EPOCHS)
    parser.add_argument("--repeats", type=int, default=3, help="steady-state calls (median)")
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--only", nargs="*", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--progress",
        nargs="+",
        choices=("on", "steps"),
        default=[],
        help="also time each variant with gl.run(progress=True) (on: the bar, per chunk) and/or "
        "progress='steps' (the bar and the program's reports within a chunk), in the same "
        "rounds as the variant without (progress=False)",
    )
    parser.add_argument(
        "--sharpness-accuracy",
        action="store_true",
        help="instead: how closely 10 and 20 Lanczos steps agree with 40 (warm-started)",
    )
    args = parser.parse_args()
    if args.sharpness_accuracy:
        sharpness_accuracy(args.runs, args.epochs)
        return
    if "none" not in args.only:
        args.only.insert(0, "none")

    info = common.machine()
    print(common.describe_machine(info))
    print(
        f"article workload, {args.runs} runs x {args.epochs} epoch(s), Adam, {args.repeats} repeats"
    )
    sweeps = {}
    for name in args.only:  # first calls: compile every variant (the programs stay cached)
        spec = common.article_spec(args.runs, epochs=args.epochs, **VARIANTS[name])
        sweeps[name] = common.GradlabSweep(spec, args.chunk_size, fresh=False)
        print(f"{name}: compiled in {sweeps[name].compile_s:.1f} s", flush=True)
        for mode in args.progress:
            label = f"{name}, progress={mode}"
            sweeps[label] = common.GradlabSweep(
                spec, args.chunk_size, fresh=False, progress={"on": True, "steps": "steps"}[mode]
            )
            print(f"{label}: compiled in {sweeps[label].compile_s:.1f} s", flush=True)
    samples = common.rounds({name: g.once for name, g in sweeps.items()}, args.repeats)
    measured = {}
    for name, g in sweeps.items():
        measured[name] = {
            "steady_s": common.median(samples[name]),
            "steady_all_s": samples[name],
            "compile_s": g.compile_s,
            "first_s": g.first_s,
            "recompiled": g.recompiled,
        }
    base = measured["none"]["steady_s"]
    rows, records = [], []
    for name, g in measured.items():
        ms = g["steady_s"] / args.runs / args.epochs * 1e3
        spread = f"{min(g['steady_all_s']):.2f}-{max(g['steady_all_s']):.2f}"
        note = "RECOMPILED" if g["recompiled"] else ""
        rows.append([name, g["steady_s"], spread, ms, g["steady_s"] / base, g["compile_s"], note])
        records.append(
            dict(
                variant=name,
                steady_s=g["steady_s"],
                steady_all_s=g["steady_all_s"],
                ms_per_run_epoch=ms,
                ratio_vs_none=g["steady_s"] / base,
                compile_s=g["compile_s"],
                first_call_s=g["first_s"],
            )
        )
    headers = ["metrics", "median s", "range s", "ms/run-epoch", "x none", "compile s", "note"]
    print()
    print(common.table(headers, rows))
    print(common.load_line())
    common.write_json(
        args.json, {"machine": info, "runs": args.runs, "epochs": args.epochs, "results": records}
    )


if __name__ == "__main__":
    main()
