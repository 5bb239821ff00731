"""Time to first answer from Python: compile time of the same ``gl.run`` in fresh processes.

Each row is a new Python process running one ``gl.run`` of the article workload (64 runs, one
epoch, every default metric, five optimizer chains: five programs), as a notebook kernel or a
script would. With gradlab's default persistent compilation cache (``<data dir>/jax-cache``,
see ``gradlab.engine.cache``) the second process loads the programs the first one compiled;
with ``GRADLAB_COMPILE_CACHE=off`` every process compiles everything again. Each row reports
``compile_time_s`` (compiling or loading) and ``run_time_s`` (training) from the Dataset's
attrs, and the process's wall time. ``--progress steps`` runs ``gl.run(progress="steps")``,
whose programs hold the progress callback (``gradlab.engine.progress``) that JAX does not
write to its persistent cache.

    python benchmarks/compile_cache.py [--progress off|on|steps] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import common

_CHILD = """
import json, gradlab as gl, sys
sys.path.insert(0, {bench!r})
import common
spec = common.article_spec(64).replace(
    optimizers=("sgd", "momentum", "adam", "clip_by_global_norm|sgd", "clip_by_global_norm|adam"))
ds = gl.run(spec, progress={progress!r})
print(json.dumps({{k: ds.attrs[k] for k in ("compile_time_s", "run_time_s", "wall_time_s")}}))
"""


def one_process(env: dict[str, str], progress: bool | str = False) -> dict[str, float]:
    """Run the sweep in a fresh process; its attrs' times and its wall time."""
    t0 = time.perf_counter()
    code = _CHILD.format(bench=os.path.dirname(os.path.abspath(__file__)), progress=progress)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    times = json.loads(out.stdout.strip().splitlines()[-1])
    return {**times, "process_s": time.perf_counter() - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="write the numbers to this file")
    parser.add_argument(
        "--progress",
        choices=("off", "on", "steps"),
        default="off",
        help="gl.run's progress: off (the default here), on (progress=True) or steps "
        "(progress='steps': the bar moves within a chunk, the programs hold a host callback)",
    )
    args = parser.parse_args()
    progress = {"off": False, "on": True, "steps": "steps"}[args.progress]
    print(common.describe_machine(common.machine()))
    rows, numbers = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        base = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
        cases = [
            ("first process, cache on", {"GRADLAB_COMPILE_CACHE": f"{tmp}/cache"}),
            ("second process, cache on", {"GRADLAB_COMPILE_CACHE": f"{tmp}/cache"}),
            ("a process with the cache off", {"GRADLAB_COMPILE_CACHE": "off"}),
        ]
        for name, env in cases:
            t = one_process(base | env, progress)
            numbers[name] = t
            rows.append([name, t["compile_time_s"], t["run_time_s"], t["process_s"]])
            print(f"{name}: {t['compile_time_s']:.2f} s compiling", flush=True)
    print()
    print(common.table(["process", "compile s", "run s", "process wall s"], rows))
    print(common.load_line())
    common.write_json(args.json, {"machine": common.machine(), "rows": numbers})


if __name__ == "__main__":
    main()
