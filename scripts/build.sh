#!/usr/bin/env bash
# Installs moka's Debian packages (idempotent) and builds moka into build/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${MOKA_BUILD_DIR:-$ROOT/build}"

"$ROOT/scripts/deps.sh"

if [[ ! -f "$BUILD/build.ninja" ]]; then
  cmake -G Ninja -S "$ROOT" -B "$BUILD" \
    -DCMAKE_BUILD_TYPE=Release \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DMOKA_WERROR=ON
fi
cmake --build "$BUILD"
