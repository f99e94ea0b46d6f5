#!/usr/bin/env bash
# scripts/fuzz.sh — build the libFuzzer harnesses (ASan + UBSan) in build-fuzz/ and run them on tests/fuzz/corpus/.
#
#   scripts/fuzz.sh [TARGET|all] [SECONDS]   build, then fuzz TARGET (default all, one after
#                                            another) for SECONDS each (default 600)
#   scripts/fuzz.sh build                    build every harness, run nothing
#   scripts/fuzz.sh seeds                    rewrite the generated seed inputs (make_seeds)
#
# Targets: experiment_toml safetensors image_dataset vqa_metadata image_decode bart_tokenizer.
# New inputs that add coverage go to build-fuzz/corpus/TARGET (scratch, not committed); a
# crash, timeout or out-of-memory input lands in tests/fuzz/corpus/TARGET as crash-*,
# timeout-*, oom-* and is then replayed by build/fedvlm_tests --gtest_filter='FuzzCorpus*'.
# Needs clang with the libFuzzer runtime (Debian: clang-14 ships libclang_rt.fuzzer). Runs
# niced and single-process: the machine is shared.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/build-fuzz"
CXX="${CXX_FUZZ:-clang++}"
NICE=(nice -n 15)
TARGETS=(experiment_toml safetensors image_dataset vqa_metadata image_decode bart_tokenizer)

SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
# toml++ and nlohmann::json compiled from their headers, so their parsers are instrumented too
# (the Debian toml++ library would be a blind spot for coverage and ASan).
CXXFLAGS=(-std=c++17 -O1 -g -fno-omit-frame-pointer $SANITIZE -D_GLIBCXX_USE_CXX11_ABI=1
          -DTOML_HEADER_ONLY=1 -I"$ROOT" -isystem /usr/include/torch/csrc/api/include)
LIBDIR=/usr/lib/x86_64-linux-gnu
LIBS=(-Wl,--no-as-needed "$LIBDIR/libtorch_cpu.so" "$LIBDIR/libtorch.so" -Wl,--as-needed
      "$LIBDIR/libc10.so" -lz -ljpeg -lpcre2-8 -lpthread)
# Only the parsers' units and what they call, not the whole library.
SOURCES=(fl/experiment_toml.cpp fl/partition.cpp fl/strategy.cpp model/safetensors.cpp
         fl/atomic_file.cpp fl/image_dataset.cpp
         fl/vqa_dataset.cpp model/image_processor.cpp model/bart_tokenizer.cpp
         tests/fuzz/fuzz_targets.cpp)

# Per format: the largest useful input (-max_len), and extra libFuzzer flags.
max_len() {
  case "$1" in
    experiment_toml) echo 8192 ;;
    safetensors) echo 4096 ;;
    image_dataset) echo 8192 ;;   # two 28×28 IDX images or two 3073-byte CIFAR records
    vqa_metadata) echo 4096 ;;
    image_decode) echo 16384 ;;
    bart_tokenizer) echo 16384 ;; # a tiny but complete tokenizer.json is ~8 KB
    *) echo "unknown target '$1' (known: ${TARGETS[*]})" >&2; exit 2 ;;
  esac
}
extra_flags() {
  case "$1" in
    # A JPEG header may claim 65000×65000; libFuzzer's malloc limit turns that into a
    # reported OOM instead of the machine swapping (the dimension check is being fixed).
    image_decode) echo "-malloc_limit_mb=2048" ;;
  esac
}

# Compiles `src` into build-fuzz/obj unless the object is newer than it and every project
# header it included (from the -MMD dependency file).
compile() {
  local src="$1" flags="$2"
  local obj="$OUT/obj/${src//\//_}.o"
  local dep="${obj%.o}.d"
  if [[ -f "$obj" && -f "$dep" ]]; then
    local newer
    newer=$(sed -e 's/^[^:]*://' -e 's/\\$//' "$dep" | tr ' ' '\n' | grep -v '^$' |
            while read -r f; do [[ "$f" -nt "$obj" ]] && echo "$f"; done || true)
    [[ -z "$newer" ]] && { echo "$obj"; return; }
  fi
  echo "compiling $src" >&2
  "${NICE[@]}" "$CXX" "${CXXFLAGS[@]}" $flags -MMD -MF "$dep" -c "$ROOT/$src" -o "$obj" >&2
  echo "$obj"
}

build() {
  mkdir -p "$OUT/obj"
  local objs=() src
  for src in "${SOURCES[@]}"; do objs+=("$(compile "$src" -fsanitize=fuzzer-no-link)"); done
  for t in "${TARGETS[@]}"; do
    local main
    main=$(compile "tests/fuzz/${t}_fuzzer.cpp" -fsanitize=fuzzer-no-link)
    if [[ ! -x "$OUT/${t}_fuzzer" || -n "$(find "$main" "${objs[@]}" -newer "$OUT/${t}_fuzzer")" ]]; then
      echo "linking ${t}_fuzzer" >&2
      "${NICE[@]}" "$CXX" $SANITIZE -fsanitize=fuzzer "$main" "${objs[@]}" "${LIBS[@]}" \
        -o "$OUT/${t}_fuzzer"
    fi
  done
  local seeds
  seeds=$(compile tests/fuzz/make_seeds.cpp -fsanitize=fuzzer-no-link)
  if [[ ! -x "$OUT/make_seeds" || -n "$(find "$seeds" "${objs[@]}" -newer "$OUT/make_seeds")" ]]; then
    echo "linking make_seeds" >&2
    "${NICE[@]}" "$CXX" $SANITIZE -fsanitize=fuzzer-no-link "$seeds" "${objs[@]}" "${LIBS[@]}" \
      -o "$OUT/make_seeds"
  fi
}

run_target() {
  local t="$1" seconds="$2"
  local regress="$ROOT/tests/fuzz/corpus/$t" work="$OUT/corpus/$t" logs="$OUT/logs/$t"
  mkdir -p "$regress" "$work" "$logs"
  echo "== $t: ${seconds}s, max_len $(max_len "$t"), log $logs/fuzz-0.log" >&2
  # Corpus dirs: the first receives new coverage (scratch), the rest are read as seeds.
  # -artifact_prefix puts crash-/timeout-/oom- files straight into the committed corpus.
  # With -jobs=1 libFuzzer runs one child that logs to ./fuzz-0.log, hence the cd.
  local rc=0
  (cd "$logs" && "${NICE[@]}" "$OUT/${t}_fuzzer" "$work" "$regress" \
      -max_total_time="$seconds" -max_len="$(max_len "$t")" -rss_limit_mb=4096 -timeout=10 \
      -jobs=1 -workers=1 -print_final_stats=1 -artifact_prefix="$regress/" \
      $(extra_flags "$t") >"$logs/driver.log" 2>&1) || rc=$?
  tail -n 25 "$logs/fuzz-0.log" >&2
  return "$rc"
}

cmd="${1:-all}"
seconds="${2:-600}"
build
case "$cmd" in
  build) ;;
  seeds) "$OUT/make_seeds" "$ROOT/tests/fuzz" ;;
  all)
    status=0
    for t in "${TARGETS[@]}"; do run_target "$t" "$seconds" || status=1; done
    exit "$status" ;;
  *) max_len "$cmd" >/dev/null; run_target "$cmd" "$seconds" ;;
esac
