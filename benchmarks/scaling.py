"""How gradlab's cost per run, compile time and peak memory scale with the number of runs.

Workload: ``common.article_spec`` (MLP 784-10-10-10 ReLU, MNIST subset, batch 32, one epoch =
125 steps of Adam, default metrics) at R = 64, 256, 1024, ... (x4 each time) up to
``--max-runs`` (default 16,384; up to 100,000 when asked for), or at the sizes ``--sizes``
lists. Chunking is gradlab's own by default (``chunk_size=None``: as many runs as its memory
budget allows, at most ``engine.platform.MAX_CHUNK`` = 512 per CPU device), which bounds the
compiled program's working set; ``--chunk-size`` takes one or more explicit chunk sizes instead, and
every size is then measured with each (a chunk-size sweep: ``--sizes 4096 --chunk-size 256 512
1024 2048 4096``).

Each (size, chunk size) runs in a fresh Python subprocess, so nothing (compiled programs, XLA
buffers, memory high-water marks) carries over. The child loads the data, records its peak RSS
so far (``resource.getrusage(RUSAGE_SELF).ru_maxrss``: imports, JAX runtime, data), calls
``gl.run`` once, and records its peak RSS again; tracemalloc would not see XLA's allocations.
The run time of that call is its wall time less its compile time (``compile_time_s``);
``--steady`` makes the child call ``gl.run`` a second time (reusing the compiled program) and
report that call instead. Results are kept in memory (no ``out=``), as ``gl.run`` returns them,
so the peak includes the assembled Dataset.

    python benchmarks/scaling.py                    # 64 ... 16,384 runs (about 4.5 minutes here)
    python benchmarks/scaling.py --max-runs 4096    # quicker (about 2 minutes)
    python benchmarks/scaling.py --max-runs 100000 --json scaling.json
    python benchmarks/scaling.py --sizes 4096 --chunk-size 256 512 1024 2048 4096
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(runs: int, chunk: int | None, epochs: int, steady: bool) -> None:
    """Run one size and print its measurements as one JSON line."""
    import jax

    import gradlab as gl

    spec = common.article_spec(runs, epochs=epochs)
    dataset = gl.data.load("mnist")
    chunk = None if chunk is None else min(chunk, runs)
    used = gl.engine.make_plan(spec, dataset, chunk).chunk_size  # what gl.run will use
    jax.block_until_ready(jax.numpy.zeros(1) + 1)  # start the runtime before measuring
    before = peak_rss_mb()
    t0 = time.perf_counter()
    ds = gl.run(spec, chunk_size=chunk, progress=False)
    first = time.perf_counter() - t0
    compile_s = float(ds.attrs["compile_time_s"])
    run_s = first - compile_s
    if steady:
        del ds
        run_s, ds = common.timed(lambda: gl.run(spec, chunk_size=chunk, progress=False))
    result = dict(
        runs=runs,
        chunk=used,
        chunk_given=chunk is not None,
        first_s=first,
        compile_s=compile_s,
        run_s=run_s,
        steady_call=steady,
        rss_before_mb=before,
        peak_rss_mb=peak_rss_mb(),
        dataset_mb=ds.nbytes / 2**20,
    )
    print("RESULT " + json.dumps(result), flush=True)


def sizes(max_runs: int) -> list[int]:
    out, r = [], 64
    while r <= max_runs:
        out.append(r)
        r *= 4
    if out[-1] != max_runs:
        out.append(max_runs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-runs", type=int, default=16384)
    parser.add_argument("--sizes", type=int, nargs="*", help="explicit sizes (overrides x4 steps)")
    parser.add_argument(
        "--chunk-size", type=int, nargs="*", default=None, help="chunk sizes (default: gradlab's)"
    )
    parser.add_argument("--epochs", type=int, default=common.EPOCHS)
    parser.add_argument("--steady", action="store_true", help="time a second gl.run call")
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    chunks = args.chunk_size or [None]
    if args.child is not None:
        child(args.child, chunks[0], args.epochs, args.steady)
        return

    info = common.machine()
    print(common.describe_machine(info))
    how = "gradlab's default chunking" if chunks == [None] else f"chunk sizes {chunks}"
    print(f"article workload, {args.epochs} epoch(s), {how}, one subprocess per row")
    rows, records = [], []
    for runs in args.sizes or sizes(args.max_runs):
        for chunk in chunks:
            cmd = [sys.executable, os.path.abspath(__file__), "--child", str(runs)]
            cmd += ["--epochs", str(args.epochs)]
            cmd += [] if chunk is None else ["--chunk-size", str(chunk)]
            cmd += ["--steady"] if args.steady else []
            proc = subprocess.run(cmd, capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not lines:
                print(f"R={runs}: child failed (exit {proc.returncode})\n{proc.stderr[-3000:]}")
                continue
            r = json.loads(lines[-1].removeprefix("RESULT "))
            r["ms_per_run_epoch"] = r["run_s"] / runs / args.epochs * 1e3
            r["rss_growth_mb"] = r["peak_rss_mb"] - r["rss_before_mb"]
            records.append(r)
            rows.append(
                [
                    runs,
                    r["chunk"],
                    r["compile_s"],
                    r["run_s"],
                    r["ms_per_run_epoch"],
                    r["rss_before_mb"],
                    r["peak_rss_mb"],
                    r["rss_growth_mb"],
                    r["dataset_mb"],
                ]
            )
            print(
                f"R={runs} chunk {r['chunk']}: {r['run_s']:.1f} s, "
                f"peak RSS {r['peak_rss_mb']:.0f} MB",
                flush=True,
            )
    headers = [
        "runs",
        "chunk",
        "compile s",
        "run s",
        "ms/run-epoch",
        "RSS before MB",
        "peak RSS MB",
        "growth MB",
        "Dataset MB",
    ]
    print()
    print(common.table(headers, rows))
    print(
        "run s: wall time of gl.run less its compile time"
        + (" (a second call)" if args.steady else "")
        + ";\ngrowth: peak RSS - RSS before gl.run (compilation included); "
        "Dataset: the result's size"
    )
    print(common.load_line())
    common.write_json(args.json, {"machine": info, "epochs": args.epochs, "results": records})


if __name__ == "__main__":
    main()
