#!/usr/bin/env bash
# scripts/setup.sh TARGET — install the Debian packages fedvlm-sim needs (only the missing ones),
# configure with CMake and build TARGET ("fedvlm-sim", or "all" for the tests and benchmarks too).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${1:-fedvlm-sim}"

packages=(
  build-essential cmake ninja-build
  libcaf-dev libtorch-dev libtomlplusplus-dev prometheus-cpp-dev libspdlog-dev libfmt-dev
  nlohmann-json3-dev zlib1g-dev libpcre2-dev libstb-dev libjpeg-dev libgtest-dev
  libjemalloc2  # run time only: fedvlm-sim re-execs itself with it preloaded (support/allocator.hpp)
  libopenblas0-openmp  # Debian's LibTorch otherwise runs on the reference BLAS: ~10x slower
  dataset-fashion-mnist gnuplot-nox curl
)
if [ "$target" = all ]; then
  # Real peers for the tests: a Prometheus server and Pushgateway, torchvision as the
  # reference MobileNetV3, and scipy for the independent privacy-accountant reference.
  packages+=(prometheus prometheus-pushgateway python3-torch python3-torchvision python3-scipy
             openssl)  # the TLS tests make their own CAs and certificates
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -q
  # policy-rc.d-free containers would start the prometheus service; the tests never use it.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

build="$root/build"
launcher=()
if command -v ccache > /dev/null; then
  # Where ccache is installed, checkouts anywhere (worktrees, fresh clones) share its cache:
  # paths are hashed relative to the checkout.
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$root}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}"
fi
echo "== building $target"
cmake --build "$build" --target "$target" -j 2
