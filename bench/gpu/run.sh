#!/usr/bin/env bash
# The GPU benchmark, one command from a fresh checkout on a machine with an
# NVIDIA GPU: builds moka, checks its GPU results against float64 (lit GPU
# tests and python/tests/test_gpu.py), then times moka against PyTorch
# (bench/gpu/bench.py) and prints the table.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export MOKA_BUILD_DIR="${MOKA_BUILD_DIR:-$ROOT/build}"
PYTHON="${PYTHON:-/usr/bin/python3}"

"$ROOT/scripts/build.sh"
/usr/lib/llvm-22/bin/lit -sv "$MOKA_BUILD_DIR/test/GPU"
(cd "$ROOT/python" && PYTHONPATH="$ROOT/python" "$PYTHON" -m pytest -q -rs tests/test_gpu.py)
PYTHONPATH="$ROOT/python" "$PYTHON" "$ROOT/bench/gpu/bench.py" "$@"
