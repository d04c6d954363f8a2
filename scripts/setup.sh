#!/usr/bin/env bash
# Installs exactly the Debian packages ipex-tune needs to build, run and test (only those
# missing; quick when all are there), then configures and builds. Idempotent.
#   scripts/setup.sh            packages + configure + build
#   scripts/setup.sh --deps     packages only
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  # build
  cmake g++ make pkg-config ccache clang-format
  # libraries
  libtorch-dev libdnnl-dev libyaml-cpp-dev libfmt-dev libcli11-dev nlohmann-json3-dev
  libspdlog-dev libhwloc-dev libsqlite3-dev sqlite3
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  python3-torch  # reference implementation for tests only (a traced model, observers)
  # runtime: allocators and a real BLAS for the stock baselines (the pthread build is the
  # system's; the OpenMP build is one of the environments stock is measured in)
  libjemalloc2 libtcmalloc-minimal4 libopenblas0-pthread libopenblas0-openmp
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
[ "${1:-}" = "--deps" ] && exit 0

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-2}
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$BUILD_DIR" -j"$JOBS"
