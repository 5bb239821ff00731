#!/usr/bin/env bash
# The article-workload benchmarks on one GPU: the throughput table of
# benchmarks/sweep_throughput.py at 1k-64k runs x 10 epochs (same side-by-side baselines),
# the check of the target (16,384 runs x 10 epochs in under 60 s, gradlab steady state, on an
# H100), then benchmarks/metric_overhead.py's curvature rows at METRIC_RUNS runs, then one
# fractal trainability image of FRACTAL_SIZE x FRACTAL_SIZE runs (benchmarks/fractal_boundary.py,
# 1024 x 1024 = 1,048,576 runs by default; FRACTAL_SIZE=0 skips it; not yet timed on a GPU), then
# the width sweep of benchmarks/width_sweep.py (widths WIDTHS, WIDTH_SEEDS x WIDTH_LRS runs each).
#
# Assumes jax with CUDA is installed in the Python it runs ($PYTHON; default: python, else
# python3). torch (a CUDA build) is optional, as on the CPU; Keras is skipped (100x slower).
#
#   bash benchmarks/gpu.sh                                  # 1024 4096 16384 65536 runs
#   RUNS="16384" REPEATS=1 METRIC_RUNS=0 WIDTHS="" bash benchmarks/gpu.sh  # just the target
#   TORCH_LOOP=1 TORCH_FUNC_MAX_RUNS=16384 bash benchmarks/gpu.sh  # every torch baseline
#   OUT=/tmp bash benchmarks/gpu.sh --loop-configs 8        # extra flags go to the script
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python || command -v python3)}
RUNS=${RUNS:-"1024 4096 16384 65536"}
EPOCHS=${EPOCHS:-10}
REPEATS=${REPEATS:-2}  # a GPU of one's own is quiet: two rounds agree
CHUNK=${CHUNK:-16384}
# torch.func builds one nn.Module per run in Python (16 s of its 24 s at 16,384 runs on an
# H200), so above this many runs it is left out. The eager torch loop (2.2 s per 10-epoch run
# on an H200, 60x the jax loop) runs only with TORCH_LOOP=1. With these defaults the whole
# script takes about 4.5 minutes on an H200 (by the timings in benchmarks/README.md), before
# the width sweep (64 runs per width up to 4096: about 21 GB of parameters and Adam state at
# the widest; not yet timed on a GPU).
TORCH_FUNC_MAX_RUNS=${TORCH_FUNC_MAX_RUNS:-4096}
TORCH_LOOP=${TORCH_LOOP:-0}
METRIC_RUNS=${METRIC_RUNS:-4096}
FRACTAL_SIZE=${FRACTAL_SIZE:-1024}
WIDTHS=${WIDTHS-"64 128 256 512 1024 2048 4096"}  # empty: no width sweep
WIDTH_SEEDS=${WIDTH_SEEDS:-8}
WIDTH_LRS=${WIDTH_LRS:-8}
OUT=${OUT:-.}
JSON="$OUT/gpu_throughput.json"

# JAX would otherwise take 75% of the GPU's memory up front and leave little to torch.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

"$PYTHON" - <<'PY'
import jax, sys
if jax.default_backend() != "gpu":
    sys.exit(f"gpu.sh: jax's default backend is {jax.default_backend()!r}, not a GPU")
print("jax", jax.__version__, "devices:", jax.devices())
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

# A CPU-only torch would train the torch.func ensemble on the host: hours at 64k runs x 10
# epochs. Its CPU numbers are in the CPU table; here torch runs only where it has CUDA.
SKIP=(--skip keras)
if ! "$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
  SKIP+=(torch-func torch-loop)
  echo "torch with CUDA is not installed: the torch baselines are skipped"
elif [ "$TORCH_LOOP" != 1 ]; then
  SKIP+=(torch-loop)
fi

# shellcheck disable=SC2086  # RUNS is a list of sizes
"$PYTHON" benchmarks/sweep_throughput.py --runs $RUNS --epochs "$EPOCHS" \
  --repeats "$REPEATS" --chunk-size "$CHUNK" --torch-configs 4 \
  --torch-func-max-runs "$TORCH_FUNC_MAX_RUNS" --json "$JSON" "${SKIP[@]}" "$@"

"$PYTHON" - "$JSON" "$EPOCHS" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
epochs = int(sys.argv[2])
hits = [r for r in results if r["runs"] == 16384 and r["method"] == "gradlab steady"]
if not hits or epochs != 10:
    print("target (16,384 runs x 10 epochs < 60 s): not measured in this run")
else:
    t = hits[0]["total_s"]
    print(f"target: 16,384 runs x 10 epochs in {t:.1f} s (goal < 60 s): "
          f"{'met' if t < 60 else 'NOT met'}")
PY

if [ "$METRIC_RUNS" -gt 0 ]; then
  "$PYTHON" benchmarks/metric_overhead.py --runs "$METRIC_RUNS" --repeats "$REPEATS" \
    --only none default "default+sharpness" "default+sharpness, 10 iters" \
    "default+hessian_trace" "default+per_example" --json "$OUT/gpu_metric_overhead.json"
fi

if [ "$FRACTAL_SIZE" -gt 0 ]; then
  # gradlab and the hand-written jit(vmap) side by side, memory-budgeted chunks (up to 65,536
  # runs each on a GPU), the box-counting dimension of the image beside the paper's 1.2-2.0.
  "$PYTHON" benchmarks/fractal_boundary.py --size "$FRACTAL_SIZE" --repeats 1 \
    --json "$OUT/gpu_fractal.json" --png "$OUT/gpu_fractal.png"
fi

if [ -n "$WIDTHS" ]; then
  # shellcheck disable=SC2086  # WIDTHS is a list of widths
  "$PYTHON" benchmarks/width_sweep.py --widths $WIDTHS --seeds "$WIDTH_SEEDS" \
    --lrs "$WIDTH_LRS" --repeats "$REPEATS" --json "$OUT/gpu_width_sweep.json"
fi
