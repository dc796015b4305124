#!/usr/bin/env bash
# One pass of the GPU work on a machine with an NVIDIA GPU, everything written under $OUT:
# the CUDA tests at full size, the GPU benchmark (JSON, figure, table) and an Nsight Compute
# profile of the 1-D SGD kernel. Each step is time-limited so that one slow step cannot eat
# the others' time; a failing step is logged and the next one still runs.
#
#   OUT=/tmp/gpu_out bash benchmarks/gpu_session.sh
#
# On an image that already has numba, numba-cuda, CuPy and PyTorch, the project is installed
# without dependencies (pip install --no-deps -e .).
set -uo pipefail
OUT=${OUT:-/tmp/gibbs_sgd_gpu}
mkdir -p "$OUT"
export GIBBS_SGD_CACHE_DIR="$OUT/cache"
step() {  # step NAME SECONDS COMMAND...
  local name=$1 secs=$2; shift 2
  echo "== $name ($(date -u +%T))"
  timeout "$secs" "$@" > "$OUT/$name.log" 2>&1
  echo "   exit $? ($(date -u +%T))"
}
step install 120 pip install --no-deps -e .
step device 30 bash -c "nvidia-smi; python -c 'import numba, numba_cuda, cupy, torch; print(numba.__version__, numba_cuda.__version__, cupy.__version__, torch.__version__)'"
step test_cuda 420 python -m pytest -q tests/test_cuda.py
step bench_cuda 420 gibbs-sgd bench --backend cuda --json "$OUT/bench_cuda.json" --figure "$OUT/bench_cuda.png"
step profile 300 ncu --set full --launch-count 1 --kernel-name regex:run_segment -o "$OUT/sgd_quadratic" \
  gibbs-sgd bench --backend cuda --cases sgd-quadratic --chains 4194304 --steps 64 --repeat 1 --quiet
ls -la "$OUT"
