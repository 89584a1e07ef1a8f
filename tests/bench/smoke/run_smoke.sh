#!/usr/bin/env bash
# Runs the benchmark in quick mode into a temp dir and checks the report has its tables.
# usage: run_smoke.sh <source dir> <build dir>
set -euo pipefail
src=$1
build=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cd "$src"
BUILD="$build" BENCH_QUICK=1 BENCH_N=1000 BENCH_RUNS=1 BENCH_OUT="$out/BENCHMARKS.md" \
  BENCH_PLOTS="$out/bench" BENCH_WORK="$out/work" scripts/bench.sh
report="$out/BENCHMARKS.md"
fail() {
  echo "bench smoke: $1" >&2
  for f in "$out"/work/logs/*.log; do echo "== $f" >&2; tail -n 20 "$f" >&2; done
  exit 1
}
[[ -s "$report" ]] || fail "no report written"
grep -q '^| 1k | ' "$report" || fail "no table row for N = 1k in the report"
for metric in "CPU per SelfChange" "CPU per blank message" "CPU per peer add+remove pair" \
              "start-up, connect to identity written"; do
  grep -q "$metric" "$report" || fail "the report has no '$metric' table"
done
grep -q 'A session failed' "$report" && fail "a benchmark session failed: $(grep 'A session failed' "$report")"
for png in cost-per-event.png peak-rss.png; do
  [[ -s "$out/bench/$png" ]] || fail "plot $png missing"
done
echo "bench smoke: report OK"
