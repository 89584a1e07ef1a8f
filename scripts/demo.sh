#!/usr/bin/env bash
# The ts-kube-agent demo (`make demo`): a simulated tailscaled (tsbus-sim), an emulated
# Kubernetes API server over HTTPS (kube-emu), and the real agent between them. It triggers a few
# identity changes and one tailscaled restart, and shows the Secret through kubectl and a few
# metric lines, explaining each step.
#
#   scripts/demo.sh              run the story, then shut everything down
#   DEMO_KEEP=1 scripts/demo.sh  keep everything running afterwards, until Ctrl-C
#   BUILD=build-foo scripts/demo.sh   binaries from another build directory
#   DEMO_METRICS_OUT=FILE scripts/demo.sh   also saves the live agent's whole /metrics after step 7
#                                           (the deploy.live_metrics test checks the dashboard
#                                           and alert rules against it)
#
# wait_for takes its condition in single quotes on purpose: it is evaluated again on each poll.
# shellcheck disable=SC2016
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
[[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
AGENT="$BUILD/agent/ts-kube-agent"
SIM="$BUILD/tools/tsbus-sim/tsbus-sim"
EMU="$BUILD/tools/kube-emu/kube-emu"
NS=tailscale
SECRET=ts-demo-0

for bin in "$AGENT" "$SIM" "$EMU"; do
  if [[ ! -x "$bin" ]]; then
    echo "demo: $bin is missing; run 'make build' first (or set BUILD=<dir>)" >&2
    exit 1
  fi
done
for tool in kubectl curl python3; do
  command -v "$tool" >/dev/null || { echo "demo: needs $tool; run 'make deps'" >&2; exit 1; }
done

if [[ -t 1 ]]; then BOLD=$'\e[1m'; DIM=$'\e[2m'; OFF=$'\e[0m'; else BOLD=; DIM=; OFF=; fi
step() { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$OFF"; }
say() { printf '    %s\n' "$*"; }
show() { sed 's/^/      /'; }

WORK=$(mktemp -d /tmp/ts-kube-agent-demo.XXXXXX)
PIDS=()
cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for DESCRIPTION 'SHELL CONDITION': evaluates the condition every 50 ms, for up to 20 s.
wait_for() {
  local what=$1 cond=$2
  for _ in $(seq 1 400); do
    if eval "$cond" >/dev/null 2>&1; then return 0; fi
    sleep 0.05
  done
  echo "demo: timed out waiting for $what" >&2
  echo "--- agent log ---" >&2; cat "$WORK/agent.log" >&2 || true
  return 1
}

kc() { kubectl --kubeconfig "$WORK/admin.kubeconfig" -n "$NS" "$@"; }
secret_key() { kc get secret "$SECRET" -o "jsonpath={.data.$1}" 2>/dev/null | base64 -d; }
show_secret() {
  for key in device_id device_fqdn device_ips pod_uid; do
    printf '      %-12s %s\n' "$key" "$(secret_key "$key")"
  done
}
sim_post() { curl -fsS -X POST "http://127.0.0.1:$SIM_PORT$1" "${@:2}" >/dev/null; }
metrics() { curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics"; }
metric() { metrics | awk -v s="$1" '$1 == s { print $2 }'; }
readyz() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN_PORT/readyz"; }
# Writes (2xx PATCH/POST/PUT) kube-emu logged after sequence $1, as "METHOD keys..." lines.
writes_after() {
  curl -fsS "http://127.0.0.1:$EMU_CONTROL/log?after=$1" | python3 -c '
import json, sys
for e in json.load(sys.stdin)["entries"]:
    if e["method"] in ("PATCH", "POST", "PUT") and 200 <= e["status"] < 300:
        keys = sorted((json.loads(e["body"] or "{}").get("data") or {}).keys())
        print(e["method"], e["path"], "keys:", ", ".join(keys))'
}
last_seq() {
  curl -fsS "http://127.0.0.1:$EMU_CONTROL/log" |
    python3 -c 'import json,sys; e=json.load(sys.stdin)["entries"]; print(e[-1]["seq"] if e else 0)'
}

step "1. An emulated Kubernetes API server (kube-emu) over HTTPS"
say "It generates a CA and a server certificate, accepts a bearer token for the agent's"
say "service account, and allows it only get/create/patch on Secrets in namespace $NS."
cat >"$WORK/rbac.yaml" <<EOF
adminUsers: [admin]
rules:
- users: ["system:serviceaccount:$NS:ts-kube-agent"]
  verbs: [get, create, patch]
  resources: [secrets]
  namespaces: [$NS]
EOF
"$EMU" --gen-certs "$WORK/certs" --token admin-token=admin --allow-all-user admin \
  --token "agent-token=system:serviceaccount:$NS:ts-kube-agent" --rbac "$WORK/rbac.yaml" \
  --control-addr 127.0.0.1:0 --port-file "$WORK/emu.port" \
  --control-port-file "$WORK/emu.control" --kubeconfig-out "$WORK/admin.kubeconfig" \
  >"$WORK/emu.out" 2>"$WORK/emu.log" &
PIDS+=($!)
wait_for "kube-emu" 'test -s "$WORK/emu.control"'
EMU_PORT=$(cat "$WORK/emu.port")
EMU_CONTROL=$(cat "$WORK/emu.control")
say "API at https://127.0.0.1:$EMU_PORT (kubectl uses an admin kubeconfig)."

cat >"$WORK/agent.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kube-emu
  cluster:
    server: https://127.0.0.1:$EMU_PORT
    certificate-authority: $WORK/certs/ca.crt
users:
- name: ts-kube-agent
  user:
    token: agent-token
contexts:
- name: demo
  context: {cluster: kube-emu, user: ts-kube-agent, namespace: $NS}
current-context: demo
EOF

step "2. A simulated tailscaled (tsbus-sim) with 50 peers"
say "It serves the LocalAPI IPN bus on a unix socket, like tailscaled, and has a small HTTP"
say "control API this demo uses to change the node's identity and to restart it."
# Node keys expire after 180 days unless expiry is disabled for the device.
KEY_EXPIRY=$(date -u -d '+180 days' +%Y-%m-%dT%H:%M:%SZ)
"$SIM" --socket "$WORK/tailscaled.sock" --peers 50 --control-port-file "$WORK/sim.port" \
  --self-name demo-sidecar-0.tail3f9a2c.ts.net. --self-key-expiry "$KEY_EXPIRY" --quiet >"$WORK/sim.out" 2>&1 &
PIDS+=($!)
wait_for "tsbus-sim" 'test -s "$WORK/sim.port"'
SIM_PORT=$(cat "$WORK/sim.port")

step "3. The agent: ts-kube-agent, speaking HTTPS to kube-emu through a kubeconfig"
"$AGENT" --socket "$WORK/tailscaled.sock" --kubeconfig "$WORK/agent.kubeconfig" \
  --secret "$SECRET" --pod-uid 7f3c2a9e-demo --admin-addr 127.0.0.1:0 --track-peers \
  2>"$WORK/agent.log" &
AGENT_PID=$!
PIDS+=("$AGENT_PID")
wait_for "the agent's admin server" 'grep -q "admin server listening" "$WORK/agent.log"'
ADMIN_PORT=$(sed -n 's/.*admin server listening addr=[^ ]*:\([0-9]*\).*/\1/p' "$WORK/agent.log" | head -1)
say "Admin server: http://127.0.0.1:$ADMIN_PORT (/metrics /livez /readyz /healthz)"
wait_for "/readyz to be 200" '[[ $(readyz) == 200 ]]'
say "/readyz is 200: connected to the bus, tailscaled is Running, the Secret is in sync."
say "The agent read the identity from the bus and created the Secret. Through kubectl:"
show_secret
say "${DIM}(kubectl -n $NS get secret $SECRET -o jsonpath='{.data.device_ips}' | base64 -d)$OFF"

step "4. tailscaled reports new addresses (a SelfChange on the bus)"
SEQ=$(last_seq)
sim_post /selfchange -d '{"addresses":["100.90.12.35","fd7a:115c:a1e0::6a01:c23"]}'
wait_for "the new addresses in the Secret" '[[ $(secret_key device_ips) == *100.90.12.35* ]]'
say "The agent wrote only what changed, in one strategic-merge PATCH:"
writes_after "$SEQ" | show
show_secret

step "5. The same identity 100 times, and peer churn: nothing to write"
say "tailscaled repeats SelfChange on every netmap; the agent compares values and stays quiet."
SEQ=$(last_seq)
BEFORE=$(metric 'ts_kube_agent_notifies_total{kind="self_change"}')  # read by wait_for's eval
export BEFORE
sim_post "/selfchange-same?count=100"
sim_post "/churn?count=20"
wait_for "the agent to read them" \
  '(( $(metric "ts_kube_agent_notifies_total{kind=\"self_change\"}") >= BEFORE + 100 ))'
say "SelfChange notifications read: $(metric 'ts_kube_agent_notifies_total{kind="self_change"}')," \
  "API writes since: $(writes_after "$SEQ" | wc -l)"

step "6. A new host name, then tailscaled restarts"
sim_post /selfchange -d '{"name":"demo-sidecar-1.tail3f9a2c.ts.net."}'
wait_for "the new name in the Secret" '[[ $(secret_key device_fqdn) == demo-sidecar-1* ]]'
say "device_fqdn is now $(secret_key device_fqdn)"
SEQ=$(last_seq)
say "Now tailscaled goes away for a second (its socket disappears) and comes back..."
sim_post "/restart?down_ms=1000&remove_socket=1"
wait_for "the bus to drop" '[[ $(metric ts_kube_agent_bus_connected) == 0 ]]'
say "/readyz while it is down: $(curl -s "http://127.0.0.1:$ADMIN_PORT/readyz")"
wait_for "the agent to reconnect" '[[ $(metric ts_kube_agent_bus_reconnects_total) == 1 ]]'
wait_for "/readyz to be 200 again" '[[ $(readyz) == 200 ]]'
say "The agent reconnected and re-read the full state; the identity is unchanged, so:"
say "API writes since the restart: $(writes_after "$SEQ" | wc -l)"
say "From the agent's log:"
grep -E "bus (dis)?connected|reconnect" "$WORK/agent.log" | tail -3 | show

step "7. A few metric lines (GET /metrics, Prometheus text format)"
metrics | grep -E '^ts_kube_agent_(bus_connected|bus_reconnects_total|peers|peers_online|self_changes_total|publishes_total|identity_in_sync|api_requests_total|backend_state\{state="Running"\}|notifies_total\{kind="(self_change|initial_status|peers_changed)"\})' | show

if [[ -n "${DEMO_METRICS_OUT:-}" ]]; then
  metrics >"$DEMO_METRICS_OUT"
  say "(the whole /metrics page is saved in $DEMO_METRICS_OUT)"
fi

if [[ "${DEMO_KEEP:-}" == 1 ]]; then
  step "Still running (DEMO_KEEP=1). Press Ctrl-C to stop everything."
  say "kubectl --kubeconfig $WORK/admin.kubeconfig -n $NS get secret $SECRET -o yaml"
  say "curl http://127.0.0.1:$ADMIN_PORT/metrics"
  say "curl -XPOST http://127.0.0.1:$SIM_PORT/selfchange -d '{\"addresses\":[\"100.90.12.99\"]}'"
  say "tail -f $WORK/agent.log"
  wait "$AGENT_PID" || true
  exit 0
fi

step "8. SIGTERM: the agent flushes anything pending and exits"
kill -TERM "$AGENT_PID"
wait "$AGENT_PID" && status=0 || status=$?
grep -E "signal received|shutdown complete" "$WORK/agent.log" | show
say "The agent exited with status $status. Done: everything is cleaned up on exit."
