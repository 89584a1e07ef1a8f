#!/usr/bin/env bash
# The giant-tailnet benchmark: runs ts-kube-agent, the DOM baseline, the raw drain and
# the Python sidecar against tsbus-sim (unix socket) and kube-emu (HTTPS) for N = 10k..250k
# peers, then writes docs/BENCHMARKS.md and docs/bench/*.png. `make bench` runs it after the
# build; it takes about 13 minutes on a 2-core machine.
#
# Environment:
#   BUILD=build            build directory holding the binaries (make's default)
#   BENCH_QUICK=1          smoke mode: N=1000 (or BENCH_N), 2 runs, small batches, < 1 minute
#   BENCH_N="10000 50000"  the tailnet sizes (default: 10000 50000 100000 250000 500000)
#   BENCH_RUNS=5           runs per figure (Python and DOM: 3 at N >= 100k, none above 250k)
#   BENCH_IMPLS="agent dom drain python"   which consumers to run
#   BENCH_LADDER_N="10000 250000"   where to run the rate ladders ("all" = every N, "none")
#   BENCH_MODES="default track"     which sessions: default mode and/or --track-peers
#   BENCH_K_SELFCHANGE=20000 BENCH_K_BLANK=100000 BENCH_K_PAIRS=20000   batch sizes
#   BENCH_BUDGET_SECONDS=1680   stop starting new sessions after this long (notes it)
#   BENCH_OUT=docs/BENCHMARKS.md, BENCH_PLOTS=docs/bench   where the report goes
#   BENCH_WORK=<dir>       keep logs and results.json there (default: a temp dir, removed)
#   BENCH_PACED=0          skip the paced runs (one line per write at fixed rates)
#   BENCH_PACED_RATES="100 1000 10000 50000" BENCH_PACED_KINDS="selfchange blank"
#   BENCH_PACED_MODES="default track" BENCH_PACED_IMPLS="agent dom drain python"
#   BENCH_PACED_RUNS=3 BENCH_PACED_N=1000 BENCH_PACED_SECONDS=1   the paced runs
#   BENCH_AGENT_BEFORE=<path>   another ts-kube-agent binary; add "agent_before" to
#                          BENCH_IMPLS/BENCH_PACED_IMPLS to measure it beside the built one
# --paced-only: only the paced runs (about 2 minutes per run); the paced section goes to
#   stdout and to $BENCH_WORK/paced.md (or a temp file), never over docs/BENCHMARKS.md.
# Related, not run by this script: python3 scripts/bench/curl_compare.py --build build [--strace]
#   [--callgrind]: the hand-written bus client vs. libcurl (tools/bench-baselines/curl-drain, built
#   when libcurl4-openssl-dev is installed; the decision is in watcher/bus_client.h).
# The measured processes run at nice -10 when permitted; the consumer is pinned to CPU 1.
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

if [[ "${1:-}" == "--paced-only" ]]; then
  export BENCH_PACED_ONLY=1
  out=${BENCH_WORK:-$(mktemp -d)}/paced.md
  exec python3 scripts/bench/run_bench.py --build "$BUILD" --out "$out" --plots "$(dirname "$out")" \
    ${BENCH_WORK:+--work "$BENCH_WORK"}
fi

exec python3 scripts/bench/run_bench.py --build "$BUILD" \
  --out "${BENCH_OUT:-docs/BENCHMARKS.md}" --plots "${BENCH_PLOTS:-docs/bench}" \
  ${BENCH_WORK:+--work "$BENCH_WORK"}
