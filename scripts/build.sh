#!/usr/bin/env bash
# Installs moka's Debian packages (idempotent) and builds moka into build/
# (MOKA_BUILD_DIR overrides; MOKA_SANITIZE and MOKA_FUZZ configure a new
# build directory for scripts/sanitize.sh and scripts/fuzz.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${MOKA_BUILD_DIR:-$ROOT/build}"

"$ROOT/scripts/deps.sh"

if [[ ! -f "$BUILD/build.ninja" ]]; then
  cmake -G Ninja -S "$ROOT" -B "$BUILD" \
    -DCMAKE_BUILD_TYPE=Release \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DMOKA_WERROR=ON \
    -DMOKA_SANITIZE="${MOKA_SANITIZE:-}" \
    -DMOKA_FUZZ="${MOKA_FUZZ:-OFF}"
fi
cmake --build "$BUILD"
