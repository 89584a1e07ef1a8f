#!/usr/bin/env bash
# The long soak under faults (`make soak`): the real ts-kube-agent between tsbus-sim and
# kube-emu with random faults for SOAK_SECONDS, then the convergence, crash, write-storm and RSS
# checks and the leak scan of everything the agent printed. The figures are printed and kept in
# <output dir>/soak-report.json. The same test runs for 75 s in `make test` (ctest -L soak).
#
#   scripts/soak.sh                      # 30 minutes
#   SOAK_SECONDS=600 SOAK_SEED=7 scripts/soak.sh
#
# Environment: SOAK_SECONDS (1800), SOAK_SEED (20251126), SOAK_LOG_LEVEL (debug),
# BUILD (build), SOAK_OUTPUT_DIR (<BUILD>/soak-long), JOBS.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD:-build}"
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$ROOT/$BUILD_DIR"
export SOAK_SECONDS="${SOAK_SECONDS:-1800}"
export SOAK_OUTPUT_DIR="${SOAK_OUTPUT_DIR:-$BUILD_DIR/soak-long}"

[[ -f "$BUILD_DIR/CMakeCache.txt" ]] ||
  cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j"${JOBS:-$(nproc)}" --target soak_tests ts-kube-agent
bin="$BUILD_DIR/tests/integration/soak/soak_tests"
[[ -x "$bin" ]] || {
  echo "soak.sh: $bin was not built (the agent, kube-emu or tsbus-sim is missing)" >&2
  exit 1
}

echo "soak.sh: ${SOAK_SECONDS}s soak, seed ${SOAK_SEED:-20251126}, output in $SOAK_OUTPUT_DIR"
status=0
"$bin" --gtest_filter=Soak.AgentSurvivesFaultsAndConvergesToTheLastIdentity || status=1
"$bin" --gtest_filter=Soak.AgentPrintedNoTokenOrSecretValue || status=1
if ((status != 0)); then
  echo "soak.sh: FAILED (agent log: $SOAK_OUTPUT_DIR/agent.log)" >&2
fi
exit "$status"
