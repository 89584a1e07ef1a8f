#!/usr/bin/env bash
# Runs the chart's pod on this machine, for real: a one-node cluster (the control plane of
# scripts/real-apiserver plus kube-scheduler, containerd v2.4.2 with Debian's runc and CNI
# plugins, and the kubelet v1.37.2 of scripts/real-node/build.sh), the images of
# scripts/images/build.sh imported into containerd (nothing is pulled), realts-control as the
# tailnet's control server, then `helm install` of deploy/helm/ts-kube-agent. Passes when the
# pod is Ready (tailscaled logged in through containerboot, the agent's /readyz) and the agent
# has written the node's identity (device_id, device_fqdn, device_ips) into the Secret.
#
# Every step is logged; a failing step prints `FAILED: <step>`, the exact command, its exit
# status and the last lines of its output or of the component's log, and the script exits 1.
# A missing prerequisite (not root, no Docker Engine, a Go cache not built yet) exits 77.
#
# Usage: scripts/real-node/e2e.sh [--keep] [DIR]
#   DIR     work dir: configs, logs, the kubelet and containerd roots (default /tmp/tsk-e2e-node)
#   --keep  leave the cluster running (stop it later with scripts/real-node/e2e.sh --stop DIR)
#   --stop  stop what a --keep run left running in DIR and exit
# Environment: TSK_E2E_NODE_TIMEOUT seconds to wait for each condition (default 180).
# See docs/E2E-NODE.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TIMEOUT="${TSK_E2E_NODE_TIMEOUT:-180}"
START=$(date +%s)
NODE=tsk-node
NS=tsk-e2e
RELEASE=e2e
SECRET=e2e-identity # the agent's Secret target, which also holds tailscaled's state
BRIDGE=tsk0
POD_SUBNET=10.244.0.0/24
GATEWAY=10.244.0.1
SERVICE_IP=10.96.0.1 # the `kubernetes` Service (start.sh: --service-cluster-ip-range=10.96.0.0/12)

keep=0
stop_only=0
DIR=/tmp/tsk-e2e-node
while [[ $# -gt 0 ]]; do
  case "$1" in
    --keep) keep=1 ;;
    --stop) stop_only=1 ;;
    -h | --help)
      sed -n '2,20p' "$0"
      exit 0
      ;;
    -*)
      echo "e2e.sh: unknown option $1" >&2
      exit 2
      ;;
    *) DIR="$1" ;;
  esac
  shift
done
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
LOGS="$DIR/logs"
mkdir -p "$LOGS"

log() { echo "e2e-node: $*" >&2; }
skip() {
  echo "e2e-node: SKIP: $*" >&2
  exit 77
}
# fail STEP COMMAND REASON [LOGFILE]
fail() {
  {
    echo "e2e-node: FAILED: $1"
    echo "  command: $2"
    echo "  why:     $3"
    if [[ -n "${4:-}" && -f "$4" ]]; then
      echo "  last lines of $4:"
      tail -n "${TAIL_LINES:-25}" "$4" | sed 's/^/    /'
    fi
  } >&2
  exit 1
}
# step NAME CMD...: runs CMD with its output in $LOGS/NAME.log; on failure: fail with it.
step() {
  local name=$1
  shift
  log "$name: $*"
  local rc=0
  "$@" >"$LOGS/$name.log" 2>&1 || rc=$?
  [[ $rc -eq 0 ]] || fail "$name" "$*" "exit status $rc" "$LOGS/$name.log"
}
# await WHAT PID LOGFILE CMD...: polls CMD until it succeeds; fails when PID died or on timeout.
await() {
  local what=$1 pid=$2 logfile=$3
  shift 3
  local deadline=$(($(date +%s) + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      fail "$what" "$*" "the process (pid $pid) exited" "$logfile"
    fi
    (($(date +%s) < deadline)) || fail "$what" "$*" "not true after ${TIMEOUT} s" "$logfile"
    sleep 0.5
  done
}

port_is_free() { [[ -z "$(ss -Htan "sport = :$1" 2>/dev/null)" ]]; }
pick_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    port_is_free "$p" && {
      echo "$p"
      return
    }
  done
  fail "pick a port" "ss -Htan" "no free TCP port found"
}

# ---- teardown: only what this script started, by the pids it recorded ----------------------
ours() { [[ -r "/proc/$1/cmdline" ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF "$DIR/"; }
stop_pid() {
  local pid=$1
  ours "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}
teardown() {
  log "stopping the node in $DIR"
  local name pid
  if [[ -f "$DIR/pids" ]]; then
    # kubelet first (so it restarts nothing), then every container containerd runs, then
    # containerd, scheduler and realts-control.
    pid=$(awk '$1 == "kubelet" {print $2}' "$DIR/pids")
    [[ -n "$pid" ]] && stop_pid "$pid"
    if [[ -S "$DIR/containerd/containerd.sock" && -x "${NODE_BIN:-}/ctr" ]]; then
      local ctr=("$NODE_BIN/ctr" --address "$DIR/containerd/containerd.sock" -n k8s.io)
      for task in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
        "${ctr[@]}" tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
      done
      for task in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
        "${ctr[@]}" tasks delete -f "$task" >/dev/null 2>&1 || true
      done
    fi
    while read -r name pid; do
      [[ "$name" == kubelet ]] || stop_pid "$pid"
    done < <(tac "$DIR/pids")
    rm -f "$DIR/pids"
  fi
  # The shims outlive containerd by design; ours are the ones whose command line names DIR.
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $DIR/" || true); do stop_pid "$pid"; done
  if [[ -f "$DIR/cp/env" ]]; then "$ROOT/scripts/real-apiserver/stop.sh" "$DIR/cp" || true; fi
  # Mounts under DIR (the kubelet's pod volumes, containerd's snapshots and netns), deepest first.
  awk -v d="$DIR/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  if [[ -f "$DIR/iptables.rules" ]]; then
    while read -r table rule; do
      # shellcheck disable=SC2086
      iptables -t "$table" -D $rule 2>/dev/null || true
    done <"$DIR/iptables.rules"
    rm -f "$DIR/iptables.rules"
  fi
  # The kubelet's own iptables chains (pkg/kubelet/kubelet_network_linux.go: KUBE-FIREWALL
  # against martian localnet traffic, the canary and hint chains), when this run started it.
  if [[ -f "$DIR/kubelet.started" ]]; then
    local ipt6 tbl chain
    for ipt6 in iptables ip6tables; do
      for chain in INPUT OUTPUT; do
        while "$ipt6" -t filter -D "$chain" -j KUBE-FIREWALL 2>/dev/null; do :; done
      done
      for tbl in filter nat mangle; do
        for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
          "$ipt6" -t "$tbl" -F "$chain" 2>/dev/null && "$ipt6" -t "$tbl" -X "$chain" 2>/dev/null || true
        done
      done
    done
    rm -f "$DIR/kubelet.started"
  fi
  if [[ -f "$DIR/bridge.created" ]]; then
    ip link del "$BRIDGE" 2>/dev/null || true
    rm -f "$DIR/bridge.created"
  fi
}
NODE_BIN=""
if [[ $stop_only -eq 1 ]]; then
  NODE_BIN=$("$HERE/build.sh" --check 2>/dev/null) || true
  teardown
  exit 0
fi

# ---- prerequisites ----------------------------------------------------------------------------
[[ $(id -u) -eq 0 ]] || skip "needs root (containerd, kubelet, mounts, iptables, a bridge)"
for c in docker iptables ip ss mount umount openssl curl runc; do
  command -v "$c" >/dev/null || skip "$c not found (runc: apt-get install runc)"
done
for p in bridge host-local loopback; do
  [[ -x "/usr/lib/cni/$p" ]] || skip "/usr/lib/cni/$p missing: apt-get install containernetworking-plugins"
done
CP_BIN=$("$ROOT/scripts/real-apiserver/build.sh" --check 2>/dev/null) ||
  skip "the control plane is not built: scripts/real-apiserver/build.sh (cached afterwards)"
NODE_BIN=$("$HERE/build.sh" --check 2>/dev/null) ||
  skip "the kubelet and containerd are not built: scripts/real-node/build.sh (cached afterwards)"
# Prometheus with Kubernetes discovery (scripts/real-node/build.sh --prometheus). Without it,
# Debian's prometheus (no kubernetes_sd_configs) with the file_sd imitation of step 3, logged.
PROM_BIN=$("$HERE/build.sh" --check --prometheus 2>"$LOGS/prometheus-build-check.log") || PROM_BIN=""
if [[ -z "$PROM_BIN" ]]; then
  command -v prometheus >/dev/null && command -v promtool >/dev/null ||
    skip "no Prometheus: scripts/real-node/build.sh --prometheus (cached afterwards), or apt-get install prometheus"
  log "WARNING: $(tail -n1 "$LOGS/prometheus-build-check.log" | sed 's/^real-node\/build: ERROR: //')"
  log "WARNING: falling back to Debian's prometheus without Kubernetes discovery: step 3 imitates the pod role with file_sd"
fi
# scripts/real-tailscale/build.sh has no --check: it prints the cached bin dir or builds. Skip
# while another run holds its lock (a build in progress) rather than wait for it.
TS_LOCK="${TSK_REALTS_CACHE:-/var/cache/ts-kube-agent/real-tailscale}/.build.lock"
if [[ -e "$TS_LOCK" ]] && ! flock -n "$TS_LOCK" true; then
  skip "tailscaled is being built (scripts/real-tailscale/build.sh holds $TS_LOCK)"
fi
TS_BIN=$("$ROOT/scripts/real-tailscale/build.sh" 2>"$LOGS/real-tailscale.log" | tail -n1) || true
[[ -x "$TS_BIN/realts-control" ]] ||
  fail "tailscaled build" "scripts/real-tailscale/build.sh" "no bin dir" "$LOGS/real-tailscale.log"
KUBECTL="$CP_BIN/kubectl"
HELM="$CP_BIN/helm"

rc=0
"$ROOT/scripts/images/build.sh" --print-env "$DIR/images.env" 2>"$LOGS/images.log" || rc=$?
[[ $rc -eq 77 ]] && skip "images: $(grep -o 'SKIP: .*' "$LOGS/images.log" | tail -n1)"
[[ $rc -eq 0 ]] || fail "build the images" "scripts/images/build.sh --print-env $DIR/images.env" \
  "exit status $rc" "$LOGS/images.log"
# shellcheck disable=SC1091
source "$DIR/images.env"

teardown # whatever an earlier run left
# A fresh node each run: no pods, images or IP leases of an earlier one (teardown unmounted all).
rm -rf "$DIR/kubelet" "$DIR/kubelet-pki" "$DIR/containerd" "$DIR/cni" "$DIR/pod-logs" \
  "$DIR/scheduler-pki" "$DIR/realts.env"
if [[ $keep -eq 0 ]]; then trap teardown EXIT; fi
: >"$DIR/pids"
record() { echo "$1 $2" >>"$DIR/pids"; }
: >"$DIR/iptables.rules"
ipt() { # TABLE RULE...: iptables -t TABLE -I RULE, remembered for teardown
  local table=$1
  shift
  iptables -t "$table" -C "$@" 2>/dev/null || iptables -t "$table" -I "$@" ||
    fail "iptables rule" "iptables -t $table -I $*" "iptables refused the rule"
  echo "$table $*" >>"$DIR/iptables.rules"
}

# ---- the pod network: a bridge the CNI bridge plugin adopts -----------------------------------
if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
  step bridge ip link add "$BRIDGE" type bridge
  touch "$DIR/bridge.created"
fi
ip addr show dev "$BRIDGE" | grep -qF "inet $GATEWAY/" || step bridge-addr ip addr add "$GATEWAY/24" dev "$BRIDGE"
step bridge-up ip link set "$BRIDGE" up
mkdir -p "$DIR/cni/net.d"
cat >"$DIR/cni/net.d/10-tsk.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "tsk",
  "plugins": [
    {
      "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "mtu": 1400,
      "ipam": {
        "type": "host-local", "dataDir": "$DIR/cni/ipam",
        "ranges": [[{"subnet": "$POD_SUBNET", "gateway": "$GATEWAY"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
EOF

# ---- control plane: scripts/real-apiserver/start.sh, reachable from the pods -----------------
# The API server listens on every address (start.sh binds 127.0.0.1; the last flag wins) and
# the pods reach it as the `kubernetes` Service, 10.96.0.1:443, through a DNAT rule (what
# kube-proxy would do). Its certificate names 10.96.0.1, so in-cluster TLS verifies. For
# `kubectl logs` it reaches the kubelet at the node's InternalIP (no DNS knows the node's name)
# with the admin client certificate (start.sh writes it before starting the API server).
TSK_APISERVER_EXTRA_ARGS="--bind-address=0.0.0.0 --kubelet-preferred-address-types=InternalIP \
--kubelet-client-certificate=$DIR/cp/pki/admin.crt --kubelet-client-key=$DIR/cp/pki/admin.key" \
  step control-plane "$ROOT/scripts/real-apiserver/start.sh" "$DIR/cp"
# shellcheck disable=SC1091
source "$DIR/cp/env"
ADMIN_KC="$DIR/cp/admin-cert.kubeconfig"
kc() { "$KUBECTL" --kubeconfig "$ADMIN_KC" "$@"; }
ipt nat PREROUTING -s "$POD_SUBNET" -d "$SERVICE_IP/32" -p tcp --dport 443 -j DNAT \
  --to-destination "$GATEWAY:$TSK_APISERVER_PORT"
ipt filter INPUT -i "$BRIDGE" -j ACCEPT

SCHED_PORT=$(pick_port)
log "kube-scheduler on 127.0.0.1:$SCHED_PORT"
setsid "$CP_BIN/kube-scheduler" --kubeconfig "$ADMIN_KC" --authentication-kubeconfig "$ADMIN_KC" \
  --authorization-kubeconfig "$ADMIN_KC" --leader-elect=false --bind-address=127.0.0.1 \
  --secure-port "$SCHED_PORT" --cert-dir "$DIR/scheduler-pki" >"$LOGS/kube-scheduler.log" 2>&1 </dev/null &
record kube-scheduler $!
await "kube-scheduler /healthz" $! "$LOGS/kube-scheduler.log" \
  curl -fsSk --max-time 2 "https://127.0.0.1:$SCHED_PORT/healthz"

# ---- containerd ----------------------------------------------------------------------------------
CTRD="$DIR/containerd"
mkdir -p "$CTRD"
# The kubelet asks for oom_score_adj -998 for every pod sandbox; lowering it needs
# CAP_SYS_RESOURCE. Where this process's bounding set lacks it (a container-like sandbox), runc
# init fails with "failed to update /proc/self/oom_score_adj: Permission denied" (seen as
# "can't get final child's PID from pipe: EOF"); containerd's restrict_oom_score_adj then clamps
# the value to its own.
restrict_oom=false
if ((((16#$(awk '/^CapBnd:/ {print $2}' /proc/self/status)) >> 24) & 1)); then :; else
  restrict_oom=true
  log "CAP_SYS_RESOURCE is not in this process's bounding set: containerd restrict_oom_score_adj = true"
fi
cat >"$CTRD/config.toml" <<EOF
version = 3
root = "$CTRD/root"
state = "$CTRD/state"
[grpc]
  address = "$CTRD/containerd.sock"
[ttrpc]
  address = "$CTRD/containerd.sock.ttrpc"
[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = 'docker.io/library/$TSK_IMAGE_PAUSE'
  [plugins.'io.containerd.cri.v1.runtime']
    tolerate_missing_hugetlb_controller = true
    disable_hugetlb_controller = true
    restrict_oom_score_adj = $restrict_oom
    # The pods' network namespaces under DIR too (teardown unmounts everything below DIR).
    netns_mounts_under_state_dir = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '$(command -v runc)'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['/usr/lib/cni']
      conf_dir = '$DIR/cni/net.d'
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'
EOF
log "containerd ($("$NODE_BIN/containerd" --version)), runc $(runc --version | head -n1)"
# Its shim is looked up on PATH: ours first (Docker's containerd 1.6 has its own in /usr/bin).
PATH="$NODE_BIN:$PATH" setsid "$NODE_BIN/containerd" --config "$CTRD/config.toml" \
  >"$LOGS/containerd.log" 2>&1 </dev/null &
record containerd $!
CTR=("$NODE_BIN/ctr" --address "$CTRD/containerd.sock" -n k8s.io)
await "containerd answers" $! "$LOGS/containerd.log" "${CTR[@]}" version
if grep -q 'failed to load plugin.*io.containerd.grpc.v1.cri' "$LOGS/containerd.log"; then
  fail "containerd's CRI plugin" "containerd --config $CTRD/config.toml" \
    "the CRI plugin did not load" "$LOGS/containerd.log"
fi

# Images: docker save | ctr import (Docker names `x:t` become docker.io/library/x:t, which is
# what the kubelet asks for; pullPolicy Never below makes any pull attempt an error).
step images-import bash -c "docker save $TSK_IMAGE_AGENT $TSK_IMAGE_TAILSCALED $TSK_IMAGE_PAUSE | \
  ${CTR[*]} images import --local -"
step images-list "${CTR[@]}" images ls -q
for img in "$TSK_IMAGE_AGENT" "$TSK_IMAGE_TAILSCALED" "$TSK_IMAGE_PAUSE"; do
  grep -qx "docker.io/library/$img" "$LOGS/images-list.log" ||
    fail "images in containerd" "ctr -n k8s.io images ls -q" "docker.io/library/$img is missing" \
      "$LOGS/images-list.log"
done

# ---- kubelet ----------------------------------------------------------------------------------
KUBELET_ROOT="$DIR/kubelet"
mkdir -p "$KUBELET_ROOT"
# Mount propagation for the pods' volumes: the kubelet's root must be a shared mount.
mountpoint -q "$KUBELET_ROOT" || step kubelet-root-bind mount --bind "$KUBELET_ROOT" "$KUBELET_ROOT"
step kubelet-root-shared mount --make-rshared "$KUBELET_ROOT"
KUBELET_PORT=$(pick_port)
HEALTHZ_PORT=$(pick_port)
cat >"$DIR/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1 with the cgroupfs driver (no systemd) and no swap.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://$CTRD/containerd.sock
address: $GATEWAY
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $TSK_APISERVER_CA}
authorization: {mode: AlwaysAllow}
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
maxPods: 20
podLogsDir: $DIR/pod-logs
serializeImagePulls: false
# A shared build machine: never evict for disk or memory pressure during a test run.
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF
log "kubelet ($("$NODE_BIN/kubelet" --version)) on $GATEWAY:$KUBELET_PORT, root $KUBELET_ROOT"
setsid "$NODE_BIN/kubelet" --config "$DIR/kubelet-config.yaml" --kubeconfig "$ADMIN_KC" \
  --root-dir "$KUBELET_ROOT" --cert-dir "$DIR/kubelet-pki" --hostname-override "$NODE" \
  --node-ip "$GATEWAY" --v=2 >"$LOGS/kubelet.log" 2>&1 </dev/null &
KUBELET_PID=$!
record kubelet $KUBELET_PID
touch "$DIR/kubelet.started"
TAIL_LINES=40 await "kubelet /healthz" $KUBELET_PID "$LOGS/kubelet.log" \
  curl -fsS --max-time 2 "http://127.0.0.1:$HEALTHZ_PORT/healthz"
node_ready() {
  [[ "$(kc get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}
TAIL_LINES=40 await "node $NODE Ready" $KUBELET_PID "$LOGS/kubelet.log" node_ready
log "node $NODE is Ready"

# ---- the tailnet: realts-control, reachable from the pods ----------------------------------------
# realts-control listens on loopback only (its --host must be a loopback address). The pods
# reach its control port at the bridge address through a DNAT to 127.0.0.1, which the kernel
# routes only with route_localnet on the bridge. Its DERP and STUN servers stay unreachable
# from the pods (the DERP map names 127.0.0.1): logging in and the netmap need only control.
setsid "$TS_BIN/realts-control" --env-file "$DIR/realts.env" \
  >"$LOGS/realts-control.log" 2>&1 </dev/null &
record realts-control $!
await "realts-control" $! "$LOGS/realts-control.log" test -s "$DIR/realts.env"
# shellcheck disable=SC1091
source "$DIR/realts.env"
CONTROL_PORT=${REALTS_CONTROL_URL##*:}
CONTROL_PORT=${CONTROL_PORT%%/*}
step route-localnet sysctl -w "net.ipv4.conf.$BRIDGE.route_localnet=1"
ipt nat PREROUTING -s "$POD_SUBNET" -d "$GATEWAY/32" -p tcp --dport "$CONTROL_PORT" -j DNAT \
  --to-destination "127.0.0.1:$CONTROL_PORT"
POD_CONTROL_URL="http://$GATEWAY:$CONTROL_PORT"

# ---- helm install the chart ---------------------------------------------------------------------
step namespace kc create namespace "$NS"
# Pod Security `restricted`, enforced: the API server's PodSecurity admission refuses any pod of
# the chart that asks for more (tailscaled runs in userspace mode, the chart's default, as
# non-root with no capabilities; kernel mode would need NET_ADMIN and root).
step namespace-restricted kc label namespace "$NS" pod-security.kubernetes.io/enforce=restricted \
  pod-security.kubernetes.io/enforce-version=latest
repo_of() { echo "${1%%:*}"; }
tag_of() { echo "${1##*:}"; }
cat >"$DIR/values.yaml" <<EOF
targets:
  secret:
    name: $SECRET
image:
  repository: $(repo_of "$TSK_IMAGE_AGENT")
  tag: "$(tag_of "$TSK_IMAGE_AGENT")"
  pullPolicy: Never
deployment:
  tailscaled:
    image:
      repository: $(repo_of "$TSK_IMAGE_TAILSCALED")
      tag: "$(tag_of "$TSK_IMAGE_TAILSCALED")"
      pullPolicy: Never
    hostname: e2e-node
    # realts-control registers every node itself: no auth key.
    authKeySecret: {name: ""}
    extraArgs: "--login-server=$POD_CONTROL_URL"
    extraEnv:
      - {name: TS_ASSUME_NETWORK_UP_FOR_TEST, value: "1"}
      - {name: TS_DISABLE_PORTMAPPER, value: "1"}
      - {name: TS_NO_LOGS_NO_SUPPORT, value: "true"}
      # containerboot's API client defaults to https://kubernetes.default.svc (kube/kubeclient
      # client.go defaultURL); there is no cluster DNS here: the Service's env address instead.
      - {name: TS_KUBERNETES_READ_API_SERVER_ADDRESS_FROM_ENV, value: "true"}
  app:
    image: docker.io/library/$TSK_IMAGE_PAUSE
EOF
step helm-install "$HELM" --kubeconfig "$ADMIN_KC" install "$RELEASE" "$ROOT/deploy/helm/ts-kube-agent" \
  --namespace "$NS" -f "$DIR/values.yaml"
pod_ready() {
  [[ "$(kc -n "$NS" get pods -l app.kubernetes.io/instance="$RELEASE" \
    -o jsonpath='{.items[0].status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}
pod_report() {
  {
    kc -n "$NS" get pods -o wide
    kc -n "$NS" describe pods
    for c in tailscaled ts-kube-agent app; do
      echo "--- logs $c"
      kc -n "$NS" logs -l app.kubernetes.io/instance="$RELEASE" -c "$c" --tail=40 2>&1 || true
    done
  } >"$LOGS/pod-report.log" 2>&1
}
deadline=$(($(date +%s) + TIMEOUT))
until pod_ready; do
  if (($(date +%s) >= deadline)) || ! kill -0 $KUBELET_PID 2>/dev/null; then
    pod_report
    TAIL_LINES=80 fail "pod Ready" "kubectl -n $NS get pods -l app.kubernetes.io/instance=$RELEASE" \
      "the pod is not Ready after ${TIMEOUT} s (describe + container logs below; kubelet log: $LOGS/kubelet.log)" \
      "$LOGS/pod-report.log"
  fi
  sleep 1
done
pod_report
POD=$(kc -n "$NS" get pods -l app.kubernetes.io/instance="$RELEASE" -o jsonpath='{.items[0].metadata.name}')
log "pod $NS/$POD is Ready"

# ---- the identity in the Secret -----------------------------------------------------------------
secret_has_identity() {
  kc -n "$NS" get secret "$SECRET" -o jsonpath='{.data.device_fqdn}' 2>/dev/null | grep -q .
}
await "Secret $SECRET holds device_fqdn" "" "$LOGS/pod-report.log" secret_has_identity
decode() { kc -n "$NS" get secret "$SECRET" -o jsonpath="{.data.$1}" | base64 -d; }
FQDN=$(decode device_fqdn)
ID=$(decode device_id)
IPS=$(decode device_ips)
log "Secret $NS/$SECRET: device_id=$ID device_fqdn=$FQDN device_ips=$IPS"
[[ "$FQDN" == e2e-node.* ]] || fail "identity" "kubectl get secret $SECRET" "device_fqdn '$FQDN' is not e2e-node.<tailnet>"
# The agent wrote them (containerboot may write the same keys): the API server records the
# field manager of each key, and the agent's is ts-kube-agent (k8s/client.h).
kc -n "$NS" get secret "$SECRET" -o json --show-managed-fields >"$LOGS/secret.json"
agent_keys=$(python3 -c '
import json, sys
obj = json.load(open(sys.argv[1]))
keys = set()
for m in obj["metadata"].get("managedFields", []):
    if m.get("manager") == "ts-kube-agent":
        keys |= {k[2:] for k in m.get("fieldsV1", {}).get("f:data", {})}
print(" ".join(sorted(keys)))' "$LOGS/secret.json")
for k in device_id device_fqdn device_ips; do
  [[ " $agent_keys " == *" $k "* ]] || fail "identity written by the agent" \
    "kubectl get secret $SECRET -o json (managedFields)" \
    "key $k is not managed by ts-kube-agent (its keys: '$agent_keys')" "$LOGS/secret.json"
done
# realts-control's view of the same node: its StableID and addresses.
curl -fsS "$REALTS_ADMIN_URL/nodes" >"$LOGS/realts-nodes.json" ||
  fail "realts-control /nodes" "curl $REALTS_ADMIN_URL/nodes" "the admin API did not answer"
grep -qF "\"$ID\"" "$LOGS/realts-nodes.json" ||
  fail "identity" "curl $REALTS_ADMIN_URL/nodes" "device_id $ID is not a node of realts-control" \
    "$LOGS/realts-nodes.json"

# ---- 1. the Secret holds exactly what `tailscale status --json` says inside the pod ------------
# The tailscaled image is FROM scratch: exec the CLI itself, against the socket the agent reads.
# The agent formats the identity as containerboot does (tests/integration/real_tailscaled
# identityOf): Self.ID, Self.DNSName, Self.TailscaleIPs as compact JSON.
step status-in-pod kc -n "$NS" exec "$POD" -c tailscaled -- tailscale --socket=/var/run/tailscale/tailscaled.sock status --json
python3 - "$LOGS/status-in-pod.log" "$ID" "$FQDN" "$IPS" >"$LOGS/status-compare.log" 2>&1 <<'PY' ||
import json, sys
st = json.load(open(sys.argv[1]))
self = st["Self"]
want = {"device_id": self["ID"], "device_fqdn": self["DNSName"],
        "device_ips": json.dumps(self["TailscaleIPs"], separators=(",", ":"))}
got = {"device_id": sys.argv[2], "device_fqdn": sys.argv[3], "device_ips": sys.argv[4]}
bad = [f"{k}: Secret '{got[k]}' != tailscale status '{want[k]}'" for k in want if want[k] != got[k]]
print("\n".join(bad) if bad else f"equal: {want}")
sys.exit(1 if bad else 0)
PY
  fail "Secret == tailscale status --json" "kubectl exec $POD -c tailscaled -- tailscale status --json" \
    "the Secret differs from tailscaled's own view" "$LOGS/status-compare.log"
log "the Secret equals tailscale status --json in the pod: $(cat "$LOGS/status-compare.log")"

# ---- 2. probes, restarts, the agent's uid and read-only root, Pod Security restricted -------------
kc -n "$NS" get pod "$POD" -o json >"$LOGS/pod.json"
python3 - "$LOGS/pod.json" >"$LOGS/pod-checks.log" 2>&1 <<'PY' ||
import json, sys
pod = json.load(open(sys.argv[1]))
bad = []
statuses = pod["status"].get("initContainerStatuses", []) + pod["status"].get("containerStatuses", [])
for c in statuses:
    if not c.get("ready"):
        bad.append(f"container {c['name']} not ready: {c.get('state')}")
    if c.get("restartCount", 0) != 0:
        bad.append(f"container {c['name']} restartCount {c['restartCount']}")
names = {c["name"] for c in statuses}
for n in ("tailscaled", "ts-kube-agent", "app"):
    if n not in names:
        bad.append(f"no status for container {n} (have {sorted(names)})")
spec = {c["name"]: c for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]}
agent = spec.get("ts-kube-agent", {})
sc = agent.get("securityContext", {})
psc = pod["spec"].get("securityContext", {})
if sc.get("runAsUser", psc.get("runAsUser")) != 65532:
    bad.append(f"agent runAsUser {sc.get('runAsUser', psc.get('runAsUser'))} != 65532")
if sc.get("readOnlyRootFilesystem") is not True:
    bad.append(f"agent readOnlyRootFilesystem {sc.get('readOnlyRootFilesystem')}")
for probe in ("livenessProbe", "readinessProbe"):
    if probe not in agent:
        bad.append(f"agent has no {probe}")
ts_env = {e["name"]: e.get("value") for e in spec.get("tailscaled", {}).get("env", [])}
if ts_env.get("TS_USERSPACE") != "true":
    bad.append(f"tailscaled TS_USERSPACE={ts_env.get('TS_USERSPACE')} (restricted needs userspace mode)")
agent_id = next((c.get("containerID", "") for c in statuses if c["name"] == "ts-kube-agent"), "")
print("\n".join(bad) if bad else "ok")
print("AGENT_CONTAINER_ID=" + agent_id.split("://")[-1])
sys.exit(1 if bad else 0)
PY
  fail "probes, restarts, security context" "kubectl get pod $POD -o json" "see below" "$LOGS/pod-checks.log"
[[ "$(kc get namespace "$NS" -o jsonpath='{.metadata.labels.pod-security\.kubernetes\.io/enforce}')" == restricted ]] ||
  fail "namespace restricted" "kubectl get namespace $NS" "label pod-security.kubernetes.io/enforce is not restricted"
# What the kernel says about the agent's process (the image is FROM scratch: no `id` to exec):
# its task pid from containerd, then /proc/<pid>/status and the mount flags of its root.
AGENT_CID=$(sed -n 's/^AGENT_CONTAINER_ID=//p' "$LOGS/pod-checks.log")
step agent-task "${CTR[@]}" tasks ls
AGENT_PID=$(awk -v id="$AGENT_CID" '$1 == id {print $2}' "$LOGS/agent-task.log")
[[ -n "$AGENT_PID" && -r "/proc/$AGENT_PID/status" ]] ||
  fail "agent process" "ctr -n k8s.io tasks ls" "no running task for container '$AGENT_CID'" "$LOGS/agent-task.log"
uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$AGENT_PID/status")
[[ "$uids" == "65532 65532 65532 65532" ]] ||
  fail "agent uid" "grep Uid /proc/$AGENT_PID/status" "real/effective/saved/fs uid '$uids', not 65532"
root_opts=$(awk '$5 == "/" {print $6}' "/proc/$AGENT_PID/mountinfo" | head -n1)
[[ ",$root_opts," == *",ro,"* ]] ||
  fail "agent read-only root" "/proc/$AGENT_PID/mountinfo" "the root mount's options are '$root_opts'"
log "pod checks: $(head -n1 "$LOGS/pod-checks.log"); agent pid $AGENT_PID uid $uids, root $root_opts; namespace enforce=restricted"

# ---- 3. Prometheus: kubernetes_sd_configs (the chart README's job), the shipped rules ------------
# The job is taken verbatim from deploy/helm/ts-kube-agent/README.md; only the connection to
# the API server (this machine's: address, CA, the admin client certificate) is added.
PROM_DIR="$DIR/prometheus"
rm -rf "$PROM_DIR"
mkdir -p "$PROM_DIR"
PROM_PORT=$(pick_port)
python3 - "$ROOT/deploy/helm/ts-kube-agent/README.md" "$PROM_DIR/prometheus.yml" \
  "https://127.0.0.1:$TSK_APISERVER_PORT" "$TSK_APISERVER_CA" "$DIR/cp/pki/admin.crt" \
  "$DIR/cp/pki/admin.key" "$ROOT/deploy/prometheus/ts-kube-agent.rules.yaml" \
  >"$LOGS/prometheus-config.log" 2>&1 <<'PY' ||
import re, sys, textwrap, yaml
readme, out, api, ca, crt, key, rules = sys.argv[1:]
blocks = re.findall(r"```yaml\n(.*?)```", open(readme).read(), re.S)
jobs = [b for b in blocks if "kubernetes_sd_configs" in b]
if len(jobs) != 1:
    sys.exit(f"expected one yaml block with kubernetes_sd_configs in {readme}, found {len(jobs)}")
doc = yaml.safe_load(textwrap.dedent(jobs[0]))
job = doc["scrape_configs"][0]
for sd in job["kubernetes_sd_configs"]:
    sd["api_server"] = api
    sd["tls_config"] = {"ca_file": ca, "cert_file": crt, "key_file": key}
cfg = {"global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
       "rule_files": [rules], "scrape_configs": [job]}
yaml.safe_dump(cfg, open(out, "w"), sort_keys=False)
print(open(out).read())
PY
  fail "Prometheus config from the chart README" "python3 (extract the scrape job)" "see below" "$LOGS/prometheus-config.log"
# The Prometheus of scripts/real-node/build.sh --prometheus discovers the pod itself: the pod
# role against the API server, the README's relabelling picks the agent's port. Only where that
# build is missing (a warning above), Debian's prometheus 2.42 runs instead; it is built without
# Kubernetes discovery (its promtool: "field kubernetes_sd_configs not found in type
# config.ScrapeConfig"), so the same job runs with file_sd_configs fed from `kubectl get pods
# -A -o json` in the shape the pod role gives (one target per container port, init containers
# included, the __meta_kubernetes_pod_* labels the README's relabel_configs read); the
# discovery is then this script's, not Prometheus's.
if [[ -n "$PROM_BIN" ]]; then
  PROMETHEUS="$PROM_BIN/prometheus"
  PROMTOOL="$PROM_BIN/promtool"
  PROM_SD=kubernetes
else
  PROMETHEUS=$(command -v prometheus)
  PROMTOOL=$(command -v promtool)
  PROM_SD=file
  python3 - "$PROM_DIR/prometheus.yml" "$PROM_DIR/pods.json" <<'PY' ||
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
for job in cfg["scrape_configs"]:
    if job.pop("kubernetes_sd_configs", None) is not None:
        job["file_sd_configs"] = [{"files": [sys.argv[2]], "refresh_interval": "2s"}]
yaml.safe_dump(cfg, open(sys.argv[1], "w"), sort_keys=False)
PY
    fail "Prometheus file_sd config" "python3 (rewrite $PROM_DIR/prometheus.yml)" "see above"
fi
log "Prometheus: $("$PROMETHEUS" --version 2>&1 | head -n1) ($PROMETHEUS), ${PROM_SD}_sd_configs"
# pod_sd (the fallback only): the pod role's targets, written atomically for file_sd (Prometheus
# discovery/kubernetes/pod.go: a target per declared container port, podIP:port).
pod_sd() {
  [[ "$PROM_SD" == file ]] || return 0
  kc get pods -A -o json >"$PROM_DIR/pods-list.json" || return 1
  python3 - "$PROM_DIR/pods-list.json" "$PROM_DIR/pods.json" <<'PY'
import json, os, sys
out = []
for p in json.load(open(sys.argv[1]))["items"]:
    ip = p["status"].get("podIP")
    if not ip:
        continue
    base = {"__meta_kubernetes_namespace": p["metadata"]["namespace"],
            "__meta_kubernetes_pod_name": p["metadata"]["name"],
            "__meta_kubernetes_pod_ip": ip,
            "__meta_kubernetes_pod_uid": p["metadata"]["uid"],
            "__meta_kubernetes_pod_node_name": p["spec"].get("nodeName", "")}
    for init, key in (("true", "initContainers"), ("false", "containers")):
        for c in p["spec"].get(key, []):
            for port in c.get("ports", []):
                labels = dict(base, __meta_kubernetes_pod_container_name=c["name"],
                              __meta_kubernetes_pod_container_init=init,
                              __meta_kubernetes_pod_container_port_name=port.get("name", ""),
                              __meta_kubernetes_pod_container_port_number=str(port["containerPort"]),
                              __meta_kubernetes_pod_container_port_protocol=port.get("protocol", "TCP"))
                out.append({"targets": [f"{ip}:{port['containerPort']}"], "labels": labels})
tmp = sys.argv[2] + ".tmp"
json.dump(out, open(tmp, "w"), indent=1)
os.rename(tmp, sys.argv[2])
PY
}
pod_sd || fail "pod list for file_sd" "kubectl get pods -A -o json" "see $PROM_DIR/pods-list.json"
step promtool-check "$PROMTOOL" check config "$PROM_DIR/prometheus.yml"
setsid "$PROMETHEUS" --config.file "$PROM_DIR/prometheus.yml" --storage.tsdb.path "$PROM_DIR/data" \
  --web.listen-address "127.0.0.1:$PROM_PORT" >"$LOGS/prometheus.log" 2>&1 </dev/null &
PROM_PID=$!
record prometheus $PROM_PID
PROM="http://127.0.0.1:$PROM_PORT"
await "Prometheus ready" $PROM_PID "$LOGS/prometheus.log" curl -fsS --max-time 2 "$PROM/-/ready"
# prom_check NAME: one look at targets, rules and alerts; prints what it saw, fails when the
# agent's pod is not an `up` target, a rule group has not evaluated since its first good
# scrape, or an alert is pending/firing (or, with WANT_ALERT, that alert is not).
prom_check() {
  curl -fsS --max-time 5 "$PROM/api/v1/targets?state=active" >"$PROM_DIR/targets.json" &&
    curl -fsS --max-time 5 "$PROM/api/v1/rules" >"$PROM_DIR/rules.json" &&
    curl -fsS --max-time 5 "$PROM/api/v1/alerts" >"$PROM_DIR/alerts.json" || return 1
  python3 - "$PROM_DIR" "$1" "${WANT_ALERT:-}" <<'PY'
import json, sys
from datetime import datetime
d, pod, want = sys.argv[1:]
def ts(s):  # RFC 3339 with nanoseconds
    s = s.replace("Z", "+00:00")
    head, _, tz = s.partition("+")
    if "." in head:
        a, b = head.split(".")
        head = a + "." + b[:6]
    return datetime.fromisoformat(head + "+" + tz).timestamp()
targets = json.load(open(f"{d}/targets.json"))["data"]["activeTargets"]
mine = [t for t in targets if t["labels"].get("pod") == pod and t["labels"].get("job") == "ts-kube-agent"]
print("targets:", [(t["labels"].get("pod"), t["scrapeUrl"], t["health"], t.get("lastError")) for t in targets])
if len(mine) != 1 or mine[0]["health"] != "up":
    sys.exit(1)
# How the pod role listed the agent's port (container_init=true: a native sidecar, an init
# container with restartPolicy Always).
dl = mine[0].get("discoveredLabels", {})
print("agent target discovered:", ", ".join(f"{k[len('__meta_kubernetes_pod_'):]}={dl.get(k)}" for k in (
    "__meta_kubernetes_pod_container_name", "__meta_kubernetes_pod_container_port_name",
    "__meta_kubernetes_pod_container_port_number", "__meta_kubernetes_pod_container_init")))
# The first good scrape this check saw (kept across polls: lastScrape moves on every scrape).
first = f"{d}/first-up-{pod}"
if not __import__("os").path.exists(first):
    open(first, "w").write(str(ts(mine[0]["lastScrape"])))
scraped = float(open(first).read())
groups = json.load(open(f"{d}/rules.json"))["data"]["groups"]
print("rule groups:", [(g["name"], len(g["rules"]), g.get("lastEvaluation")) for g in groups])
# Two evaluations after a good scrape: the rules have seen the agent's series.
if not groups or any(ts(g["lastEvaluation"]) < scraped + 2 * g["interval"] for g in groups):
    sys.exit(1)
alerts = [(a["labels"]["alertname"], a["state"]) for a in json.load(open(f"{d}/alerts.json"))["data"]["alerts"]]
print("alerts:", alerts)
if want:
    sys.exit(0 if any(n == want and s in ("pending", "firing") for n, s in alerts) else 1)
sys.exit(1 if alerts else 0)
PY
}
prom_steady() { pod_sd && prom_check "$POD" >"$LOGS/prometheus-check.log" 2>&1; }
await "Prometheus: agent target up, rules evaluated, no alert pending or firing" $PROM_PID \
  "$LOGS/prometheus-check.log" prom_steady
# The query API agrees: the agent's own series arrive through the discovered target.
curl -fsS "$PROM/api/v1/query" --data-urlencode "query=ts_kube_agent_identity_in_sync{pod=\"$POD\"}" \
  >"$LOGS/prometheus-query.log" || fail "Prometheus query" "curl $PROM/api/v1/query" "no answer"
grep -q '"value":\[[0-9.]*,"1"\]' "$LOGS/prometheus-query.log" ||
  fail "Prometheus: identity_in_sync == 1" "query ts_kube_agent_identity_in_sync{pod=\"$POD\"}" \
    "not 1" "$LOGS/prometheus-query.log"
log "Prometheus: $(grep -o "targets: .*" "$LOGS/prometheus-check.log" | cut -c1-200); $(grep alerts: "$LOGS/prometheus-check.log")"
# The agent is a native sidecar (an init container with restartPolicy Always) where the chart
# renders one: the pod role must list its port as an init container's.
AGENT_INIT=false
[[ " $(kc -n "$NS" get pod "$POD" -o jsonpath='{.spec.initContainers[*].name}') " == *" ts-kube-agent "* ]] &&
  AGENT_INIT=true
grep -q "agent target discovered: container_name=ts-kube-agent, container_port_name=metrics, .*container_init=$AGENT_INIT$" \
  "$LOGS/prometheus-check.log" ||
  fail "Prometheus: the agent's target as the pod role lists it" "GET $PROM/api/v1/targets (discoveredLabels)" \
    "want container_init=$AGENT_INIT (the agent in the pod's initContainers: $AGENT_INIT)" "$LOGS/prometheus-check.log"
log "Prometheus (${PROM_SD}_sd_configs): $(grep "agent target discovered:" "$LOGS/prometheus-check.log")"

# ---- 3b. the identity-out-of-sync alert: RBAC removed, the node renamed, RBAC restored -------
# Both RoleBindings go (the agent's and tailscaled's: tailscaled's Role also grants the same
# Secret to the pod's service account), realts-control renames the node, the agent's writes get
# 403: TsKubeAgentIdentityOutOfSync must become pending or firing. With the bindings back the
# agent writes the new name and the alert goes.
FULLNAME="$RELEASE-ts-kube-agent"
for rb in "$FULLNAME" "$FULLNAME-tailscaled"; do
  kc -n "$NS" get rolebinding "$rb" -o json >"$PROM_DIR/rolebinding-$rb.json" ||
    fail "save RoleBinding $rb" "kubectl get rolebinding $rb" "not found"
  step "delete-rolebinding-$rb" kc -n "$NS" delete rolebinding "$rb"
done
step rename-node curl -fsS -X POST -H 'Content-Type: application/json' \
  -d "{\"node\":\"$ID\",\"name\":\"e2e-renamed\"}" "$REALTS_ADMIN_URL/rename"
out_of_sync_alert() { pod_sd && WANT_ALERT=TsKubeAgentIdentityOutOfSync prom_check "$POD" >"$LOGS/prometheus-alert.log" 2>&1; }
await "Prometheus: TsKubeAgentIdentityOutOfSync pending or firing (RBAC removed, node renamed)" $PROM_PID \
  "$LOGS/prometheus-alert.log" out_of_sync_alert
log "RBAC removed + rename: $(grep alerts: "$LOGS/prometheus-alert.log")"
for rb in "$FULLNAME" "$FULLNAME-tailscaled"; do
  python3 -c 'import json,sys
o = json.load(open(sys.argv[1]))
for k in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
    o["metadata"].pop(k, None)
json.dump(o, open(sys.argv[1], "w"))' "$PROM_DIR/rolebinding-$rb.json"
  step "restore-rolebinding-$rb" kc -n "$NS" create -f "$PROM_DIR/rolebinding-$rb.json"
done
renamed_in_secret() { [[ "$(decode device_fqdn)" == e2e-renamed.* ]]; }
await "the renamed node in the Secret after RBAC is back" "" "$LOGS/pod-report.log" renamed_in_secret
alert_resolved() {
  curl -fsS --max-time 5 "$PROM/api/v1/alerts" >"$PROM_DIR/alerts.json" &&
    ! grep -q '"alertname":"TsKubeAgentIdentityOutOfSync"' "$PROM_DIR/alerts.json"
}
await "Prometheus: TsKubeAgentIdentityOutOfSync resolved" $PROM_PID "$PROM_DIR/alerts.json" alert_resolved
FQDN=$(decode device_fqdn)
log "RBAC restored: Secret device_fqdn=$FQDN, TsKubeAgentIdentityOutOfSync gone"

# ---- 4. kubectl delete pod: SIGTERM, exit 0; the replacement writes nothing new -----------------
RV_BEFORE=$(kc -n "$NS" get secret "$SECRET" -o jsonpath='{.metadata.resourceVersion}')
kc -n "$NS" get secret "$SECRET" -o json >"$LOGS/secret-before-delete.json"
# Every status the kubelet reports while the pod terminates (the container's exit code is in
# the last ones, before the object is gone).
kc -n "$NS" get pod "$POD" -w -o json >"$LOGS/pod-watch.json" 2>&1 &
WATCH_PID=$!
# The agent's log until its container exits (the kubelet deletes the pod's log files with it).
kc -n "$NS" logs -f "$POD" -c ts-kube-agent >"$LOGS/agent-shutdown.log" 2>&1 &
LOGS_PID=$!
step delete-pod kc -n "$NS" delete pod "$POD" --wait=true --timeout="${TIMEOUT}s"
kill "$WATCH_PID" "$LOGS_PID" 2>/dev/null || true
wait "$WATCH_PID" "$LOGS_PID" 2>/dev/null || true
python3 - "$LOGS/pod-watch.json" >"$LOGS/pod-exit.log" 2>&1 <<'PY' ||
import json, sys
text, dec, i, codes = open(sys.argv[1]).read(), json.JSONDecoder(), 0, {}
while True:
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text):
        break
    obj, i = dec.raw_decode(text, i)
    st = obj.get("status", {})
    for c in st.get("initContainerStatuses", []) + st.get("containerStatuses", []):
        # state, not lastState: an earlier restart's exit must not count.
        t = c.get("state", {}).get("terminated")
        if t:
            codes[c["name"]] = (t.get("exitCode"), t.get("reason"))
print("terminated:", codes)
sys.exit(0 if codes.get("ts-kube-agent", (None,))[0] == 0 else 1)
PY
  fail "agent exits 0 on SIGTERM" "kubectl get pod $POD -w -o json; kubectl delete pod $POD" \
    "the agent's terminated exit code is not 0 (or never reported)" "$LOGS/pod-exit.log"
log "deleted $POD: $(cat "$LOGS/pod-exit.log")"
for line in 'signal received; shutting down' SIGTERM 'shutdown complete: identity in sync'; do
  grep -qF "$line" "$LOGS/agent-shutdown.log" || fail "agent shutdown log" "kubectl logs -f $POD -c ts-kube-agent" \
    "no line with $line" "$LOGS/agent-shutdown.log"
done
new_pod_ready() { # OLD: a Ready pod of the release other than OLD, its name into DIR/new-pod
  kc -n "$NS" get pods -l app.kubernetes.io/instance="$RELEASE" -o json >"$DIR/pods-now.json" 2>/dev/null &&
    python3 - "$DIR/pods-now.json" "$1" >"$DIR/new-pod" <<'PY'
import json, sys
ready = [p["metadata"]["name"] for p in json.load(open(sys.argv[1]))["items"]
         if p["metadata"]["name"] != sys.argv[2] and not p["metadata"].get("deletionTimestamp")
         and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]
print(ready[0] if ready else "", end="")
sys.exit(0 if ready else 1)
PY
}
await "replacement pod Ready" $KUBELET_PID "$LOGS/kubelet.log" new_pod_ready "$POD"
POD2=$(cat "$DIR/new-pod")
# Its agent found the device's identity already published. The pod's UID is part of what the
# agent publishes (`pod_uid`, as containerboot does), and a new pod has a new UID: exactly one
# write, which changes pod_uid to the new pod's and leaves device_id, device_fqdn and device_ips
# as they were (its metrics port, read from the host over the bridge).
POD2_IP=$(kc -n "$NS" get pod "$POD2" -o jsonpath='{.status.podIP}')
POD2_UID=$(kc -n "$NS" get pod "$POD2" -o jsonpath='{.metadata.uid}')
agent_settled() {
  curl -fsS --max-time 2 "http://$POD2_IP:9002/metrics" >"$LOGS/pod2-metrics.txt" &&
    grep -q '^ts_kube_agent_identity_in_sync{.*} 1' "$LOGS/pod2-metrics.txt" &&
    [[ "$(decode pod_uid)" == "$POD2_UID" ]]
}
await "replacement agent in sync, pod_uid = the new pod's" "" "$LOGS/pod2-metrics.txt" agent_settled
written=$(awk '/^ts_kube_agent_publishes_total\{.*result="written"/ {s += $2} END {print s + 0}' "$LOGS/pod2-metrics.txt")
failed=$(awk '/^ts_kube_agent_publishes_total\{.*result="failed"/ {s += $2} END {print s + 0}' "$LOGS/pod2-metrics.txt")
kc -n "$NS" get secret "$SECRET" -o json >"$LOGS/secret-after-delete.json"
[[ "$written" == 1 && "$failed" == 0 ]] || fail "replacement pod writes once (pod_uid)" \
  "curl http://$POD2_IP:9002/metrics" "ts_kube_agent_publishes_total written=$written failed=$failed, want 1 and 0" \
  "$LOGS/pod2-metrics.txt"
python3 - "$LOGS/secret-before-delete.json" "$LOGS/secret-after-delete.json" "$POD2_UID" \
  >"$LOGS/secret-diff.log" 2>&1 <<'PY' ||
import base64, json, sys
before, after = (json.load(open(f))["data"] for f in sys.argv[1:3])
dec = lambda d, k: base64.b64decode(d.get(k, "")).decode()
bad = [f"{k}: '{dec(before, k)}' -> '{dec(after, k)}'" for k in ("device_id", "device_fqdn", "device_ips")
       if dec(before, k) != dec(after, k)]
if dec(after, "pod_uid") != sys.argv[3]:
    bad.append(f"pod_uid '{dec(after, 'pod_uid')}' is not the new pod's {sys.argv[3]}")
print("\n".join(bad) if bad else "device_* unchanged; pod_uid -> " + sys.argv[3])
sys.exit(1 if bad else 0)
PY
  fail "replacement pod keeps the identity" "kubectl get secret $SECRET -o json (before/after)" \
    "see below" "$LOGS/secret-diff.log"
log "replacement $POD2: one write ($(cat "$LOGS/secret-diff.log")); Secret resourceVersion $RV_BEFORE -> $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["metadata"]["resourceVersion"])' "$LOGS/secret-after-delete.json")"

# ---- 5. helm upgrade with a changed value rolls the pod ---------------------------------------
step helm-upgrade "$HELM" --kubeconfig "$ADMIN_KC" upgrade "$RELEASE" "$ROOT/deploy/helm/ts-kube-agent" \
  --namespace "$NS" -f "$DIR/values.yaml" --set-string deployment.podAnnotations.e2e/rollout=2 \
  --set logLevel=debug --wait --timeout "${TIMEOUT}s"
upgraded_ready() {
  kc -n "$NS" get pods -l app.kubernetes.io/instance="$RELEASE" -o json >"$LOGS/pods-after-upgrade.json" 2>/dev/null &&
    python3 - "$LOGS/pods-after-upgrade.json" "$POD2" <<'PY'
import json, sys
pods = json.load(open(sys.argv[1]))["items"]
ok = [p["metadata"]["name"] for p in pods
      if p["metadata"]["name"] != sys.argv[2]
      and p["metadata"].get("annotations", {}).get("e2e/rollout") == "2"
      and not p["metadata"].get("deletionTimestamp")
      and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]
gone = all(p["metadata"]["name"] != sys.argv[2] for p in pods)
print(ok[0] if ok and gone and len(pods) == 1 else "", end="")
sys.exit(0 if ok and gone and len(pods) == 1 else 1)
PY
}
await "helm upgrade: one new pod Ready, the old one gone" "" "$LOGS/pods-after-upgrade.json" upgraded_ready
POD3=$(upgraded_ready)
log "helm upgrade rolled $POD2 -> $POD3 (Ready)"

echo "e2e-node: PASS: pod $NS/$POD Ready on node $NODE; Secret $SECRET: $ID $FQDN [$IPS]; \
Secret == tailscale status; restricted, uid 65532, read-only root; Prometheus ($PROM_SD discovery) target up, no alert; out-of-sync alert with RBAC removed, resolved when restored; \
SIGTERM exit 0, replacement wrote only pod_uid; helm upgrade rolled to $POD3 ($(($(date +%s) - START)) s)"
if [[ $keep -eq 1 ]]; then
  echo "e2e-node: left running (--keep): KUBECONFIG=$ADMIN_KC; stop with $0 --stop $DIR"
fi
