#!/usr/bin/env bash
# Installs the Debian packages moka needs (idempotent). Run as root or with sudo.
set -euo pipefail

PKGS=(
  cmake ninja-build g++
  llvm-22-dev llvm-22-tools libmlir-22-dev libmlir-22 mlir-22-tools
  clang-22 libomp-22-dev libgtest-dev
  python3 python3-numpy python3-pytest python3-torch
  # The BLAS the benchmarks compare against (numpy and PyTorch pick it up).
  libopenblas0-pthread
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
  echo "moka: installing ${missing[*]}"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
