#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan+coverage, a dedicated build dir) and runs
# each for FUZZ_SECONDS, starting from the committed seeds (tests/fuzz/corpus/<target>) and the
# corpus grown by earlier runs (tests/fuzz/corpus-run/<target>, not committed).
#
#   scripts/fuzz.sh                          # every target, 5 minutes each (`make fuzz`)
#   FUZZ_SECONDS=10 FUZZ_SEED=1 scripts/fuzz.sh  # the short CI pass (ctest -L fuzz does this)
#   scripts/fuzz.sh notify_stream kubeconfig # some targets
#   scripts/fuzz.sh --build-only | --no-build
#
# Environment: FUZZ_SECONDS (300), FUZZ_SEED (libFuzzer's random seed; unset: a new one per run),
# FUZZ_BUILD_DIR (build-fuzz), FUZZ_RSS_MB (2048), JOBS. The CI pass fixes the seed so that a
# finding there replays the same way on a laptop; `make fuzz` explores with fresh seeds.
# A target that crashes or fails a check leaves its input under <build dir>/artifacts/<target>/
# and the script prints how to reproduce it and how to keep it as a regression test.
# Exit status: 0 when every target ran clean, 1 otherwise (including a missing clang).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-300}"
SEED_ARGS=()
if [[ -n "${FUZZ_SEED:-}" ]]; then
  [[ "$FUZZ_SEED" =~ ^[0-9]+$ ]] || { echo "fuzz.sh: error: FUZZ_SEED must be a number, got '$FUZZ_SEED'" >&2; exit 1; }
  SEED_ARGS=(-seed="$FUZZ_SEED")
fi
BUILD_DIR="${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
RSS_MB="${FUZZ_RSS_MB:-2048}"
JOBS="${JOBS:-$(nproc)}"
ALL_TARGETS=(notify_stream chunked_body kubeconfig k8s_responses agent_config)

die() {
  echo "fuzz.sh: error: $*" >&2
  exit 1
}

build=1
run=1
targets=()
for arg in "$@"; do
  case "$arg" in
    --build-only) run=0 ;;
    --no-build) build=0 ;;
    -h | --help)
      sed -n '2,16p' "$0"
      exit 0
      ;;
    -*) die "unknown option $arg (see --help)" ;;
    *) targets+=("$arg") ;;
  esac
done

check_toolchain() {
  if ! command -v clang >/dev/null || ! command -v clang++ >/dev/null; then
    die "clang not found: the fuzz targets need clang 14 with libFuzzer" \
      "(apt-get install clang-14 libclang-rt-14-dev; scripts/install-deps.sh installs them)"
  fi
  local probe
  probe="$(mktemp -d)"
  echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' \
    >"$probe/probe.cc"
  if ! clang++ -fsanitize=fuzzer,address "$probe/probe.cc" -o "$probe/probe" 2>"$probe/err"; then
    cat "$probe/err" >&2
    rm -rf "$probe"
    die "clang cannot link -fsanitize=fuzzer: install the libFuzzer runtime" \
      "(apt-get install libclang-rt-14-dev)"
  fi
  rm -rf "$probe"
}

# The fuzz targets this checkout defines (a module that has not landed has no target).
defined_targets() {
  local t help
  help="$(cmake --build "$BUILD_DIR" --target help 2>/dev/null || true)"
  for t in "${ALL_TARGETS[@]}"; do
    if grep -qE "(^|[ .])fuzz_$t\$" <<<"$help"; then
      echo "$t"
    fi
  done
}

if ((build)); then
  check_toolchain
  if [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
    echo "fuzz.sh: configuring $BUILD_DIR (clang, -DTSK_FUZZ=ON)"
  fi
  CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD_DIR" -DTSK_FUZZ=ON -DTSK_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  mapfile -t defined < <(defined_targets)
  ((${#defined[@]} > 0)) || die "no fuzz targets are defined in $BUILD_DIR"
  echo "fuzz.sh: building ${defined[*]/#/fuzz_} in $BUILD_DIR"
  cmake --build "$BUILD_DIR" -j"$JOBS" --target "${defined[@]/#/fuzz_}"
fi
((run)) || exit 0

[[ -f "$BUILD_DIR/CMakeCache.txt" ]] || die "$BUILD_DIR is not configured; run without --no-build"
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(defined_targets)
fi

dict_for() {
  case "$1" in
    kubeconfig | agent_config) echo "$ROOT/tests/fuzz/dict/yaml.dict" ;;
    *) echo "$ROOT/tests/fuzz/dict/json.dict" ;;
  esac
}

max_len_for() {
  case "$1" in
    notify_stream) echo 16384 ;;
    *) echo 8192 ;;
  esac
}

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=()
summary=()
for t in "${targets[@]}"; do
  bin="$BUILD_DIR/tests/fuzz/targets/fuzz_$t"
  [[ -x "$bin" ]] || die "fuzz target $t is not built ($bin); known: ${ALL_TARGETS[*]}"
  seeds="$ROOT/tests/fuzz/corpus/$t"
  grown="$ROOT/tests/fuzz/corpus-run/$t"
  artifacts="$BUILD_DIR/artifacts/$t"
  log="$BUILD_DIR/fuzz-$t.log"
  mkdir -p "$grown" "$artifacts"
  echo "fuzz.sh: $t for ${SECONDS_PER_TARGET}s (seeds: $(find "$seeds" -type f | wc -l), log: $log)"
  set +e
  (cd "$BUILD_DIR" && "$bin" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 "${SEED_ARGS[@]}" \
    -rss_limit_mb="$RSS_MB" -max_len="$(max_len_for "$t")" -dict="$(dict_for "$t")" \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$grown" "$seeds") >"$log" 2>&1
  status=$?
  set -e
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  rss="$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)"
  corpus="$(find "$grown" -type f | wc -l)"
  line="$t: ${runs:-?} runs in ${SECONDS_PER_TARGET}s, coverage ${cov:-?} edges, corpus $corpus, peak RSS ${rss:-?} MB"
  if ((status == 0)); then
    summary+=("$line: clean")
  else
    failed+=("$t")
    summary+=("$line: FAILED (exit $status; the run stopped at the finding)")
    echo "---- fuzz target $t failed; the end of its log:" >&2
    tail -40 "$log" >&2
    artifact="$(grep -o "$artifacts/[^ ]*" "$log" | tail -1 || true)"
    if [[ -n "$artifact" ]]; then
      echo "reproduce:        $bin $artifact" >&2
      echo "keep as a test:   cp $artifact $ROOT/tests/fuzz/regressions/$t/<what-it-found>" >&2
      echo "                  (fuzz_replay_tests replays every file there)" >&2
    fi
  fi
done

echo "fuzz.sh summary:"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]} > 0)); then
  echo "fuzz.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
