#!/usr/bin/env bash
# The giant-tailnet benchmark (issue 6): runs ts-kube-agent, the DOM baseline, the raw drain and
# the Python sidecar against tsbus-sim (unix socket) and kube-emu (HTTPS) for N = 10k..250k
# peers, then writes docs/BENCHMARKS.md and docs/bench/*.png. `make bench` runs it after the
# build; it takes about 20-25 minutes on a 2-core machine.
#
# Environment:
#   BUILD=build            build directory holding the binaries (make's default)
#   BENCH_QUICK=1          smoke mode: N=1000 (or BENCH_N), 2 runs, small batches, < 1 minute
#   BENCH_N="10000 50000"  the tailnet sizes (default: 10000 50000 100000 250000 500000)
#   BENCH_RUNS=5           runs per figure (the Python sidecar may get fewer at large N)
#   BENCH_OUT=docs/BENCHMARKS.md, BENCH_PLOTS=docs/bench   where the report goes
#   BENCH_WORK=<dir>       keep logs and results.json there (default: a temp dir, removed)
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
missing=()
for bin in agent/ts-kube-agent tools/tsbus-sim/tsbus-sim tools/kube-emu/kube-emu \
           tools/bench-baselines/dom-agent tools/bench-baselines/bus-drain; do
  [[ -x "$BUILD/$bin" ]] || missing+=("$BUILD/$bin")
done
if (( ${#missing[@]} )); then
  echo "bench: missing binaries: ${missing[*]}" >&2
  echo "bench: build them first (make build, or cmake --build $BUILD)" >&2
  exit 1
fi
command -v gnuplot >/dev/null || { echo "bench: gnuplot not found: apt-get install gnuplot-nox" >&2; exit 1; }

exec python3 scripts/bench/run_bench.py --build "$BUILD" \
  --out "${BENCH_OUT:-docs/BENCHMARKS.md}" --plots "${BENCH_PLOTS:-docs/bench}" \
  ${BENCH_WORK:+--work "$BENCH_WORK"}
