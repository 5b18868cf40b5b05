#!/usr/bin/env bash
# The sanitizer build: moka built with AddressSanitizer and
# UndefinedBehaviorSanitizer into build-san/ (MOKA_BUILD_DIR overrides), its
# tools instrumenting the code they generate with AddressSanitizer, then the
# whole test suite (lit, C++ unit tests, pytest) on it. Any report fails the
# test that triggered it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/deps.sh"
dpkg-query -W -f='${Status}' libclang-rt-22-dev 2>/dev/null | grep -q "ok installed" || {
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends libclang-rt-22-dev
}
export MOKA_SANITIZE="address;undefined"
export MOKA_BUILD_DIR="${MOKA_BUILD_DIR:-$ROOT/build-san}"
# Reports end the process with an error; UBSan prints a stack too.
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_stack_use_after_return=0}"
exec "$ROOT/scripts/test.sh"
