#!/usr/bin/env bash
# Installs every Debian package chaingrad needs to build, test and run its reference
# scripts. Idempotent: packages already present are left alone. Run as root (or with sudo).
set -euo pipefail

pkgs=(
  build-essential make pkg-config
  libopenblas-dev          # BLAS + LAPACK for the CPU backend
  libdnnl-dev              # oneDNN: the CPU backend's bf16 GEMMs (optional: the Makefile detects it)
  doctest-dev              # unit tests
  libbenchmark-dev         # microbenchmarks
  nlohmann-json3-dev       # JSON (safetensors headers, metrics)
  libcli11-dev             # command-line parsing for the tools
  libopenmpi-dev openmpi-bin   # data-parallel train/finetune under mpirun (optional: the Makefile detects it)
  libomp-dev clang libclang-rt-14-dev   # clang + the libFuzzer/sanitizer runtime for the fuzz harnesses
  clang-format-14          # make format-check and scripts/format.sh (the tree is formatted as version 14 does)
  python3 python3-numpy python3-torch python3-matplotlib   # reference scripts and plots only
  chromium                 # scripts/test-report.sh renders the run report headless
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
