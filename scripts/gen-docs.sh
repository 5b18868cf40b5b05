#!/usr/bin/env bash
# Regenerates docs/generated/ (dialect and pass references) from ODS.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${MOKA_BUILD_DIR:-$ROOT/build}"
cmake --build "$BUILD" --target mlir-doc
mkdir -p "$ROOT/docs/generated"
cp "$BUILD"/docs/Dialects/*.md "$BUILD"/docs/*.md "$ROOT/docs/generated/"
