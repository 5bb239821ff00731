#!/usr/bin/env bash
# The article-workload throughput benchmark (benchmarks/sweep_throughput.py) on one GPU:
# 1k-64k runs x 10 epochs, with the same side-by-side baselines and table, then the check of
# the target: 16,384 runs x 10 epochs in under 60 s (gradlab, steady state) on an H100.
#
# Assumes jax with CUDA is installed in the Python it runs ($PYTHON, default: python).
# torch (a CUDA build) and keras are optional, as on the CPU.
#
#   bash benchmarks/gpu.sh                                  # 1024 4096 16384 65536 runs
#   RUNS="16384" REPEATS=1 bash benchmarks/gpu.sh            # just the target, quickly
#   OUT=/tmp bash benchmarks/gpu.sh --skip keras torch-loop  # extra flags go to the script
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
RUNS=${RUNS:-"1024 4096 16384 65536"}
EPOCHS=${EPOCHS:-10}
REPEATS=${REPEATS:-3}
CHUNK=${CHUNK:-16384}
OUT=${OUT:-.}
JSON="$OUT/gpu_throughput.json"

# JAX would otherwise take 75% of the GPU's memory up front and leave little to torch.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

"$PYTHON" - <<'EOF'
import jax, sys
if jax.default_backend() != "gpu":
    sys.exit(f"gpu.sh: jax's default backend is {jax.default_backend()!r}, not a GPU")
print("devices:", jax.devices())
EOF
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

# A CPU-only torch would train the torch.func ensemble on the host: hours at 64k runs x 10
# epochs. Its CPU numbers are in the CPU table; here torch runs only where it has CUDA.
SKIP=()
if ! "$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
  SKIP=(--skip torch-func torch-loop)
  echo "torch with CUDA is not installed: the torch baselines are skipped"
fi

# shellcheck disable=SC2086  # RUNS is a list of sizes
"$PYTHON" benchmarks/sweep_throughput.py --runs $RUNS --epochs "$EPOCHS" \
  --repeats "$REPEATS" --chunk-size "$CHUNK" --json "$JSON" "${SKIP[@]}" "$@"

"$PYTHON" - "$JSON" "$EPOCHS" <<'EOF'
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
EOF
