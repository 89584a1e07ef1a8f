#!/usr/bin/env bash
# deploy.live_metrics: runs the demo (the real agent between tsbus-sim and kube-emu over HTTPS),
# keeps the live agent's /metrics page, and checks it: promtool finds no problem, and every
# PromQL expression of the Grafana dashboard and the alert rules uses only metric and label
# names that page really has. The README's `make demo` is exercised on the way.
#
#   live_metrics.sh BUILD_DIR     (environment: TSK_SOURCE_DIR, TSK_PROMTOOL)
set -euo pipefail
build=${1:?usage: live_metrics.sh BUILD_DIR}
src=${TSK_SOURCE_DIR:?TSK_SOURCE_DIR is not set}
promtool=${TSK_PROMTOOL:-}
if [[ -z "$promtool" ]]; then
  echo "live_metrics: promtool is missing (Debian package prometheus; scripts/install-deps.sh installs it)" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! BUILD="$build" DEMO_METRICS_OUT="$work/metrics.txt" "$src/scripts/demo.sh" >"$work/demo.out" 2>&1; then
  echo "live_metrics: the demo failed; its output:" >&2
  cat "$work/demo.out" >&2
  exit 1
fi
[[ -s "$work/metrics.txt" ]] || { echo "live_metrics: the demo saved no /metrics page" >&2; exit 1; }
echo "live_metrics: $(grep -c '^ts_kube_agent_' "$work/metrics.txt") ts_kube_agent_ samples from the live agent"

"$promtool" check metrics <"$work/metrics.txt"
python3 "$src/tests/integration/deploy/check_metric_names.py" --metrics "$work/metrics.txt" --allow up \
  "$src/deploy/grafana/ts-kube-agent-dashboard.json" \
  "$src/deploy/prometheus/ts-kube-agent.rules.yaml"
echo "live_metrics: dashboard and rules use only what the live agent exports"
