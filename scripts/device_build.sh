#!/usr/bin/env bash
# scripts/device_build.sh [--configure-only] [--allow-cpu-torch] — on the lent GPU machine: build
# fedvlm-sim, its tests and the benchmarks against that machine's CUDA LibTorch (the one inside
# its PyTorch) and check them, each step under a timeout, the whole within about 8 minutes.
#
# That machine has no network and no Debian packages: first, on the Debian machine, run
# scripts/gather_device_deps.sh (fills the ignored device_deps/ and device_data/), then
#   run(command="scripts/device_build.sh", carry=["device_deps", "device_data"], timeout_s=540)
#
# Steps: configure build-device/ (CMAKE_PREFIX_PATH = device_deps + torch.utils.cmake_prefix_path,
# FEDVLM_REQUIRE_CUDA=ON); build fedvlm-sim, fedvlm_tests and bench/* with -j16; run the tests
# named *Cuda*/*CUDA*, then a CPU subset (parity fixtures, LoRA, aggregation); run fedvlm-sim for
# one round with device = "cuda" to see that the C++ build finds the GPU; compare transformers'
# CLIP on CUDA and CPU with the parity fixture (scripts/clip_transformers_parity.py); run the
# benchmarks (the README's arguments; fedavg_fmnist_bench for 2 rounds) and print their figures.
# A failed configure or build ends the script; a later step that fails or runs out of time is
# reported and the next one runs. Exit status: 0 all passed, 1 a step failed, 2 device_deps/ is
# missing or the machine does not fit (no torch, old C++ ABI, older glibc).
#
# Logs go to $OUT when it is set (the device tool brings back at most 8 files from there):
# device_build.log (everything below), summary.txt, env.txt, build.log, tests.log,
# clip_parity.txt, bench.txt; otherwise to build-device/logs/.
#   --configure-only    stop after configuring (quick check of the toolchain and the deps)
#   --allow-cpu-torch   accept a LibTorch without CUDA (to try this script on a CPU machine)
# Environment: PYTHON (python3: the one with torch), JOBS (16), BUDGET_S (470: seconds for all
# steps; later steps are skipped when it is spent), TORCH_CMAKE_PREFIX (instead of
# torch.utils.cmake_prefix_path), EXTRA_CMAKE_ARGS.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
start=$SECONDS
budget="${BUDGET_S:-470}"
jobs="${JOBS:-16}"
python="${PYTHON:-python3}"
build="$root/build-device"
deps="$root/device_deps"
configure_only=0
require_cuda=ON
for a in "$@"; do
  case "$a" in
    --configure-only) configure_only=1 ;;
    --allow-cpu-torch) require_cuda=OFF ;;
    *) echo "usage: scripts/device_build.sh [--configure-only] [--allow-cpu-torch]" >&2; exit 2 ;;
  esac
done

if [ ! -f "$deps/MANIFEST.txt" ]; then
  echo "device_build: $deps is missing: run scripts/gather_device_deps.sh on the Debian machine and" \
       "carry device_deps (run(..., carry=[\"device_deps\", \"device_data\"]))" >&2
  exit 2
fi

logs="${OUT:-$build/logs}"
mkdir -p "$logs" "$build"
: >"$logs/summary.txt"
exec > >(tee -a "$logs/device_build.log") 2>&1
tee_pid=$!
# shellcheck disable=SC2317  # run by the EXIT trap
finish() {
  local rc=$?
  exec 1>&- 2>&-
  wait "$tee_pid" 2>/dev/null || true
  return "$rc"
}
trap finish EXIT

failed=0
record() { # record STEP STATUS SECONDS NOTE
  printf '%-26s %-8s %5ss  %s\n' "$1" "$2" "$3" "${4:-}" | tee -a "$logs/summary.txt"
  case "$2" in FAIL | TIMEOUT) failed=1 ;; esac
}
left() { echo $((budget - (SECONDS - start))); }
# step NAME LIMIT_S LOG QUIET CMD... — CMD under `timeout`, output appended to LOG (and shown,
# unless QUIET=1: then only its last lines); the limit shrinks to what is left of the budget.
step() {
  local name=$1 limit=$2 log=$3 quiet=$4 rc=0 t0=$SECONDS
  shift 4
  local remaining
  remaining="$(left)"
  if [ "$remaining" -lt 20 ]; then record "$name" SKIP 0 "out of time (BUDGET_S=$budget)"; return 1; fi
  [ "$limit" -gt "$remaining" ] && limit=$remaining
  echo
  echo "== $name (at most ${limit}s): $*"
  echo "== $name: $*" >>"$log"
  if [ "$quiet" = 1 ]; then
    timeout -k 10 "$limit" "$@" >>"$log" 2>&1 || rc=$?
    tail -n 15 "$log"
  else
    timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$log" || rc=$?
  fi
  if [ "$rc" = 0 ]; then record "$name" ok $((SECONDS - t0))
  elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then record "$name" TIMEOUT $((SECONDS - t0)) "after ${limit}s"
  else record "$name" FAIL $((SECONDS - t0)) "exit $rc"; fi
  return "$rc"
}

echo "== device_build: $(date -u +%Y-%m-%dT%H:%M:%SZ), budget ${budget}s"
# -- the machine ---------------------------------------------------------------------------------
orig_ld="${LD_LIBRARY_PATH:-}"
torch_facts="$("$python" - <<'PY' 2>&1
import os, torch
print(torch.__version__, torch.version.cuda, int(torch._C._GLIBCXX_USE_CXX11_ABI), int(torch.cuda.is_available()),
      torch.utils.cmake_prefix_path, os.path.join(os.path.dirname(torch.__file__), "lib"))
PY
)" || { echo "device_build: $python cannot import torch: $torch_facts" >&2; exit 2; }
read -r torch_version torch_cuda torch_abi cuda_available torch_prefix torch_lib <<<"$(tail -n 1 <<<"$torch_facts")"
torch_prefix="${TORCH_CMAKE_PREFIX:-$torch_prefix}"
if [ "$torch_abi" != 1 ]; then
  echo "device_build: this torch ($torch_version) was built with _GLIBCXX_USE_CXX11_ABI=0; the Debian" \
       "libraries in device_deps use the C++11 ABI and cannot link with it" >&2
  exit 2
fi
nvcc="$(command -v nvcc || true)"
[ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
for tool in cmake c++; do
  command -v "$tool" >/dev/null || { echo "device_build: no $tool on PATH" >&2; exit 2; }
done
generator=Ninja
command -v ninja >/dev/null || generator="Unix Makefiles"

need_glibc="$(sed -n 's/^GLIBC_MAX=GLIBC_//p' "$deps/MANIFEST.txt")"
need_glibcxx="$(sed -n 's/^GLIBCXX_MAX=//p' "$deps/MANIFEST.txt")"
have_glibc="$(getconf GNU_LIBC_VERSION | awk '{print $2}')"
if [ "$(printf '%s\n%s\n' "$need_glibc" "$have_glibc" | sort -V | head -1)" != "$need_glibc" ]; then
  echo "device_build: glibc $have_glibc here, the carried libraries need $need_glibc" >&2
  exit 2
fi
# Carried run-time libraries only where this machine lacks that SONAME; Debian's libstdc++ only
# if this one lacks the newest GLIBCXX version the carried libraries use.
ldcache="$(ldconfig -p 2>/dev/null || true)"
sys_has() {
  grep -q "^[[:space:]]*$1 (.*x86-64" <<<"$ldcache" && return 0
  local d
  for d in /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu /usr/lib64 /lib64; do [ -e "$d/$1" ] && return 0; done
  return 1
}
fallback="$build/fallback-libs"
rm -rf "$fallback"
mkdir -p "$fallback"
carried=()
for f in "$deps"/runtime/*.so*; do
  soname="$(basename "$f")"
  sys_has "$soname" || { ln -s "$f" "$fallback/$soname"; carried+=("$soname"); }
done
sys_stdcxx="$(awk '/libstdc\+\+\.so\.6 .*x86-64/ && !found {print $NF; found = 1}' <<<"$ldcache")"
ld_path="$deps/lib"
[ ${#carried[@]} -gt 0 ] && ld_path="$ld_path:$fallback"
ld_path="$ld_path:$torch_lib"
link_flags=""
if [ -n "$sys_stdcxx" ] && grep -aq "$need_glibcxx" "$sys_stdcxx"; then
  stdcxx_note="system libstdc++ ($sys_stdcxx) has $need_glibcxx"
else
  ld_path="$deps/runtime/libstdcxx:$ld_path"
  # The compiler links against its own, older libstdc++: let the carried libraries' newer
  # symbols be resolved at run time, by the carried libstdc++ first on LD_LIBRARY_PATH.
  link_flags="-Wl,--allow-shlib-undefined"
  stdcxx_note="system libstdc++ (${sys_stdcxx:-none}) lacks $need_glibcxx: Debian's carried one goes first"
fi
export LD_LIBRARY_PATH="$ld_path${orig_ld:+:$orig_ld}"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"

{
  echo "machine: $(uname -srm), $(nproc) cores, glibc $have_glibc"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  echo "compiler: $(c++ --version | head -1)"
  echo "cmake: $(cmake --version | head -1); generator: $generator"
  echo "nvcc: ${nvcc:-none}${nvcc:+ ($("$nvcc" --version | tail -1))}"
  echo "python: $(command -v "$python"); torch $torch_version, CUDA $torch_cuda, cxx11 ABI $torch_abi, cuda.is_available $cuda_available"
  echo "torch cmake prefix: $torch_prefix"
  echo "$stdcxx_note"
  echo "carried run-time libraries used (missing here): ${carried[*]:-none}"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  grep -E '^(libcaf|libspdlog|prometheus|libtomlplusplus)' "$deps/MANIFEST.txt" || true
} | tee "$logs/env.txt"
if [ "$require_cuda" = ON ] && [ "$cuda_available" != 1 ]; then
  echo "device_build: torch.cuda.is_available() is False here" >&2
fi

# -- configure and build -------------------------------------------------------------------------
# device_deps first: nothing in the torch prefix (a fmt config, say) may stand in for its packages.
cmake_args=(-S "$root" -B "$build" -G "$generator" -DCMAKE_BUILD_TYPE=RelWithDebInfo
            "-DCMAKE_PREFIX_PATH=$deps;$torch_prefix" "-DFEDVLM_REQUIRE_CUDA=$require_cuda"
            "-DPython_EXECUTABLE=$(command -v "$python")" "-DPYTHON_EXECUTABLE=$(command -v "$python")")
if [ -n "$nvcc" ]; then
  export CUDA_HOME="${CUDA_HOME:-$(dirname "$(dirname "$nvcc")")}"
  cmake_args+=("-DCMAKE_CUDA_COMPILER=$nvcc" "-DCUDAToolkit_ROOT=$CUDA_HOME" -DCMAKE_CUDA_ARCHITECTURES=90)
fi
[ -n "$link_flags" ] && cmake_args+=("-DCMAKE_EXE_LINKER_FLAGS=$link_flags")
# GCC 13's libstdc++ headers stopped including <cstdint> in passing; headers of Debian 12's
# libraries (built with GCC 12) may lean on that.
cxx_v="$(c++ -v 2>&1 || true)"
gcc_major="$(sed -n 's/^gcc version \([0-9]*\).*/\1/p' <<<"$cxx_v")"
if [ "${gcc_major:-0}" -ge 13 ]; then
  cmake_args+=("-DCMAKE_CXX_FLAGS=-include cstdint")
fi
# shellcheck disable=SC2206
[ -n "${EXTRA_CMAKE_ARGS:-}" ] && cmake_args+=($EXTRA_CMAKE_ARGS)
rm -f "$build/CMakeCache.txt"
if ! step configure 150 "$logs/build.log" 1 cmake "${cmake_args[@]}"; then
  grep -n -B2 -A12 'CMake Error' "$logs/build.log" | head -60 || true
  exit 1
fi
grep -E 'LibTorch .*(CUDA|CPU)' "$logs/build.log" | tail -1 || true
grep -E '^(Torch_DIR|CAF_CORE|spdlog_DIR|prometheus-cpp_DIR|GTest_DIR|CAF_INCLUDE_DIR):' "$build/CMakeCache.txt" || true
[ "$configure_only" = 1 ] && { echo "== --configure-only: done"; exit 0; }

benches=()
for f in bench/*.cpp; do benches+=("$(basename "$f" .cpp)"); done
if ! step build 330 "$logs/build.log" 1 cmake --build "$build" -j "$jobs" --target fedvlm-sim fedvlm_tests "${benches[@]}"; then
  grep -n -m 20 -E 'error|undefined reference|cannot find' "$logs/build.log" || true
  exit 1
fi

# -- data for the Fashion-MNIST steps -------------------------------------------------------------
fmnist=""
if [ -d /usr/share/datasets/fashion-mnist ]; then
  fmnist=/usr/share/datasets/fashion-mnist
elif [ -d "$root/device_data/fashion-mnist" ]; then
  fmnist="$root/device_data/fashion-mnist"
  # scaling_bench reads the default path; root may link it there (the machine is given back after).
  { mkdir -p /usr/share/datasets && ln -s "$fmnist" /usr/share/datasets/fashion-mnist; } 2>/dev/null || true
fi
[ -n "$fmnist" ] && echo "Fashion-MNIST: $fmnist ($(zcat "$fmnist/train-labels-idx1-ubyte.gz" | wc -c | awk '{print $1 - 8}') training images)"

# -- tests -----------------------------------------------------------------------------------------
tests="$build/fedvlm_tests"
step "tests: *Cuda*/*CUDA*" 90 "$logs/tests.log" 0 "$tests" --gtest_filter='*Cuda*:*CUDA*' --gtest_brief=1 || true
if grep -q '^\[==========\] 0 tests' "$logs/tests.log"; then echo "(no test is named *Cuda*/*CUDA* yet)"; fi
cpu_filter='ClipParity*:Florence2Parity*:ClipForward*:ClipWeights*:Bart*:BeamSearch*:DaViT*:Lora*:Aggregate*:RoundAggregation*'
step "tests: CPU subset" 120 "$logs/tests.log" 0 "$tests" --gtest_filter="$cpu_filter" --gtest_brief=1 || true

if [ -n "$fmnist" ]; then
  step "fedvlm-sim device=cuda" 90 "$logs/tests.log" 0 "$build/fedvlm-sim" experiments/quickstart.toml --quiet \
    --set device=cuda --set pretrain.enabled=false --set federation.rounds=1 --set data.max_samples=600 \
    --set "data.path=$fmnist" --output-dir "$build/cuda-check" || true
  if grep -q 'a GPU is visible' "$logs/tests.log"; then
    echo "C++ side: at::hasCUDA() is true (LibTorch's CUDA backend is loaded in fedvlm-sim)"
  else
    record "C++ sees the GPU" FAIL 0 "fedvlm-sim did not report a visible GPU (see tests.log)"
  fi
else
  record "fedvlm-sim device=cuda" SKIP 0 "no Fashion-MNIST (carry device_data)"
fi

# -- CLIP against transformers (Python, the machine's own libraries) ------------------------------
parity_args=""
[ "$require_cuda" = ON ] && parity_args=--require-cuda
step "CLIP parity (transformers)" 150 "$logs/clip_parity.txt" 0 \
  env LD_LIBRARY_PATH="$orig_ld" PYTHONUNBUFFERED=1 "$python" scripts/clip_transformers_parity.py $parity_args || true

# -- benchmarks (CPU work in the C++ engine: models do not run on CUDA yet) ------------------------
# The README's arguments, except fedavg_fmnist_bench: 2 of its 10 rounds, on device_data's subset
# (12,000 training images unless gathered with FMNIST_TRAIN=0), so its seconds are not the README's.
bench_log="$logs/bench.txt"
step "generation_bench 16 4 3" 90 "$bench_log" 0 "$build/generation_bench" 16 4 3 || true
step "flora_speed_memory_bench 64 8" 120 "$bench_log" 0 "$build/flora_speed_memory_bench" 64 8 || true
if [ -n "$fmnist" ] && [ -d /usr/share/datasets/fashion-mnist ]; then
  step "scaling_bench 2,8,40 150" 90 "$bench_log" 0 "$build/scaling_bench" 2,8,40 150 2 || true
else
  record scaling_bench SKIP 0 "needs /usr/share/datasets/fashion-mnist"
fi
if [ -n "$fmnist" ]; then
  sed "s#^path = .*#path = \"$fmnist\"#" experiments/fedavg_fmnist.toml >"$build/fedavg_fmnist.toml"
  step "fedavg_fmnist_bench (2 rounds)" 120 "$bench_log" 0 "$build/fedavg_fmnist_bench" "$build/fedavg_fmnist.toml" 2 || true
else
  record fedavg_fmnist_bench SKIP 0 "no Fashion-MNIST (carry device_data)"
fi

echo
echo "== summary ($((SECONDS - start))s of ${budget}s)"
cat "$logs/summary.txt"
exit "$failed"
