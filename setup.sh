#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine:
#   ./setup.sh deps    install every Debian package the project needs (idempotent)
#   ./setup.sh build   deps, then configure and build into build/
#   ./setup.sh demo    build, then run the default search on the shipped models and evaluate it
#   ./setup.sh test    build, then run the whole test suite (ctest)
# Needs root (or sudo) only to install packages that are missing.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(
  build-essential cmake pkg-config
  libopenmpi-dev openmpi-bin            # MPI
  libhdf5-openmpi-dev hdf5-tools        # parallel HDF5 + h5dump/h5clear
  libblis-dev                           # GEMM (OpenMP variant)
  libyaml-dev                           # configs
  librandom123-dev                      # counter-based RNG (Philox)
  liblapacke-dev                        # FID's matrix square root
  libpng-dev zlib1g-dev                 # PNG grids, gzipped datasets
  dataset-fashion-mnist                 # training/evaluation data
  gnuplot-nox                           # scaling-curve plots
  slurm-wlm munge                       # a one-node Slurm for the slurm tests (tests/slurm/)
  python3-torch python3-h5py python3-numpy  # reference tests only
)

deps() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all ${#PACKAGES[@]} packages present"
    return
  fi
  echo "setup: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

build() {
  deps
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j "$(nproc)"
}

case "${1:-build}" in
  deps) deps ;;
  build) build ;;
  demo)
    build
    # The default search (configs/default.yaml) on the shipped models, then its
    # metrics from the evaluator; the log, a PNG grid and the table in runs/.
    mkdir -p runs
    ./build/noisesearch search configs/default.yaml --overwrite
    ./build/noisesearch eval runs/default.h5 --evaluator weights/evaluator.h5 \
      --reference weights/fmnist-test-reference.h5
    ;;
  test)
    build
    ctest --test-dir build --output-on-failure -j 2
    ;;
  *) echo "usage: $0 [deps|build|demo|test]" >&2; exit 2 ;;
esac
