#!/usr/bin/env bash
# Runs moka's libFuzzer harnesses: moka-fuzz-ir (bytes parsed as a moka
# module, verified, lowered through the CPU pipeline) and moka-fuzz-inputs
# (.npy and safetensors readers), each for SECONDS (default 1800), one after
# the other, from seed corpora made of the lit tests and examples.
#
#   scripts/fuzz.sh [SECONDS] [ir|inputs|all]
#
# Builds build-san/ (the sanitizer build, MOKA_BUILD_DIR overrides) with the
# harnesses first. Corpora and any crash inputs go to build-san/fuzz/; the
# last lines of each run (executions, coverage) are printed. Exits non-zero
# if a harness found a crash, a leak, an input that runs longer than 5
# minutes (a hang) or an out-of-memory input.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_PER_HARNESS="${1:-1800}"
WHICH="${2:-all}"
export MOKA_SANITIZE="address;undefined" MOKA_FUZZ=ON
export MOKA_BUILD_DIR="${MOKA_BUILD_DIR:-$ROOT/build-san}"
"$ROOT/scripts/deps.sh"
dpkg-query -W -f='${Status}' libclang-rt-22-dev 2>/dev/null | grep -q "ok installed" || {
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends libclang-rt-22-dev
}
"$ROOT/scripts/build.sh"
cmake --build "$MOKA_BUILD_DIR" --target moka-fuzz-ir moka-fuzz-inputs

WORK="$MOKA_BUILD_DIR/fuzz"
mkdir -p "$WORK"
/usr/bin/python3 "$ROOT/scripts/fuzz/seeds.py" "$ROOT" "$WORK/seeds"

export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
run() {
  local name=$1 dict=$2
  local dir="$WORK/$name"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  echo "== moka-fuzz-$name: ${SECONDS_PER_HARNESS} s"
  local args=(-max_total_time="$SECONDS_PER_HARNESS" -timeout=300
    -rss_limit_mb=4096 -max_len=16384 -print_final_stats=1
    -artifact_prefix="$dir/artifacts/")
  [[ -n "$dict" ]] && args+=(-dict="$dict")
  # The IR harness leaves the parser by longjmp at its first error (as the
  # tools stop there), which leaks the parser's state by design: no leak
  # checks there, per input or at exit.
  local asan="$ASAN_OPTIONS"
  if [[ "$name" == ir ]]; then
    args+=(-detect_leaks=0)
    asan="${asan/detect_leaks=1/detect_leaks=0}"
  fi
  if ASAN_OPTIONS="$asan" "$MOKA_BUILD_DIR/bin/moka-fuzz-$name" "${args[@]}" \
      "$dir/corpus" "$WORK/seeds/$name" >"$dir/log" 2>&1; then
    echo "moka-fuzz-$name: no crash"
  else
    echo "moka-fuzz-$name: FOUND A PROBLEM (see $dir/log, inputs in $dir/artifacts)"
    status=1
  fi
  grep -E "^#[0-9]+.*(DONE|pulse)|stat::" "$dir/log" | tail -8
}
[[ "$WHICH" == all || "$WHICH" == ir ]] && run ir "$ROOT/scripts/fuzz/mlir.dict"
[[ "$WHICH" == all || "$WHICH" == inputs ]] && run inputs ""
exit $status
