#!/usr/bin/env bash
# Set-up, build, then every test: lit (check-moka), C++ unit tests (ctest),
# Python tests (pytest). Ends with one summary line.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export MOKA_BUILD_DIR="${MOKA_BUILD_DIR:-$ROOT/build}"

"$ROOT/scripts/build.sh" || { echo "moka: build failed"; exit 1; }

declare -A status
/usr/lib/llvm-22/bin/lit -sv "$MOKA_BUILD_DIR/test"
status[lit]=$?
(cd "$MOKA_BUILD_DIR" && ctest --output-on-failure)
status[ctest]=$?
PRELOAD=()
if [[ -n "${MOKA_SANITIZE:-}" ]]; then
  # Model libraries of a sanitizer build need the ASan runtime first in the
  # process; Python's own allocations are not checked for leaks.
  PRELOAD=(env "LD_PRELOAD=$(clang++-22 -print-file-name=libclang_rt.asan-x86_64.so)"
    "ASAN_OPTIONS=detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}")
fi
(cd "$ROOT/python" && PYTHONPATH="$ROOT/python" "${PRELOAD[@]}" /usr/bin/python3 -m pytest -q -rs tests)
status[pytest]=$?

failed=0
passed=0
for suite in lit ctest pytest; do
  if [[ ${status[$suite]} -eq 0 ]]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "moka: $suite failed"
  fi
done
echo "suites: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
