#!/usr/bin/env bash
# Set-up, build, then compile every bundled example to native code, run it on
# generated inputs and check it against a float64 reference.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export MOKA_BUILD_DIR="${MOKA_BUILD_DIR:-$ROOT/build}"

"$ROOT/scripts/build.sh"
PYTHONPATH="$ROOT/python" /usr/bin/python3 "$ROOT/examples/run_examples.py" "$@"
