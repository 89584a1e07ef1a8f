#!/usr/bin/env bash
# Starts a control plane on 127.0.0.1: etcd, kube-apiserver and kube-controller-manager (built
# and cached by build.sh), with certificates, tokens and kubeconfigs generated into DIR. Returns
# once the API server's /readyz answers 200, the controller-manager's /healthz answers 200 and
# its service-account controller has created the `default` ServiceAccount; the three processes
# keep running in the background until `stop.sh DIR`. No kubelet and no scheduler: Pods are
# admitted and stay Pending.
#
# Usage: scripts/real-apiserver/start.sh DIR
# Environment:
#   TSK_APISERVER_CACHE          build.sh's cache dir (default /var/cache/ts-kube-agent/control-plane)
#   TSK_CONTROL_PLANE_BIN_DIR    a bin dir with the binaries build.sh makes (default: its cache)
#   TSK_APISERVER_BIN            kube-apiserver binary (default: build.sh's cached one)
#   TSK_CONTROLLER_MANAGER_BIN   kube-controller-manager binary (default: build.sh's cached one)
#   TSK_ETCD_BIN                 etcd binary (default: build.sh's cached one)
#   TSK_APISERVER_READY_TIMEOUT  seconds to wait for each component (default 90)
#   TSK_APISERVER_EXTRA_ARGS     more kube-apiserver flags, space-separated (e.g. a small
#                                --max-mutating-requests-inflight for scripts/bench/fleet.py)
# Writes DIR/env (KEY=VALUE lines: URL, ports, pids, CA, token and kubeconfig paths, the tool
# paths), DIR/admin.kubeconfig (token auth), DIR/admin-cert.kubeconfig (client-certificate
# auth), DIR/pki/, DIR/etcd-data/ and the logs DIR/etcd.log, DIR/kube-apiserver.log and
# DIR/kube-controller-manager.log.
# If DIR holds a running instance it is stopped first. See scripts/real-apiserver/README.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
READY_TIMEOUT="${TSK_APISERVER_READY_TIMEOUT:-90}"
read -r -a APISERVER_EXTRA_ARGS <<<"${TSK_APISERVER_EXTRA_ARGS:-}"
SA_ISSUER="https://kubernetes.default.svc.cluster.local"

log() { echo "real-apiserver/start: $*" >&2; }
die() {
  echo "real-apiserver/start: ERROR: $*" >&2
  exit 1
}

[[ $# -eq 1 ]] || die "usage: start.sh DIR (DIR receives certificates, data, logs and env)"
mkdir -p "$1"
DIR="$(cd "$1" && pwd)"
[[ "$DIR" =~ ^[A-Za-z0-9._/+-]+$ ]] ||
  die "DIR '$DIR' has characters other than letters, digits and ._/+-; pick a plainer path"

# start.sh never builds: build.sh --check prints the cached bin dir or says how to fill it.
BIN_DIR="${TSK_CONTROL_PLANE_BIN_DIR:-}"
if [[ -z "$BIN_DIR" ]]; then
  BIN_DIR=$("$HERE/build.sh" --check) || die "the control plane is not built; run \
scripts/real-apiserver/build.sh first (once; cached afterwards)"
fi
APISERVER_BIN="${TSK_APISERVER_BIN:-$BIN_DIR/kube-apiserver}"
CONTROLLER_MANAGER_BIN="${TSK_CONTROLLER_MANAGER_BIN:-$BIN_DIR/kube-controller-manager}"
ETCD_BIN="${TSK_ETCD_BIN:-$BIN_DIR/etcd}"
for b in "$APISERVER_BIN" "$CONTROLLER_MANAGER_BIN" "$ETCD_BIN"; do
  [[ -x "$b" ]] || die "$b is not an executable; unset TSK_*_BIN to use build.sh's cache"
done
for tool in openssl curl; do
  command -v "$tool" >/dev/null || die "$tool not found; install it (scripts/install-deps.sh)"
done

if [[ -f "$DIR/env" ]]; then
  log "stopping the instance already recorded in $DIR/env"
  "$HERE/stop.sh" "$DIR"
fi
rm -rf "$DIR/pki" "$DIR/etcd-data" "$DIR/env" "$DIR/pids" "$DIR"/*.kubeconfig "$DIR"/*.log

started_at=$(date +%s.%N)
ETCD_PID=""
APISERVER_PID=""
CONTROLLER_MANAGER_PID=""
cleanup_on_failure() {
  local pid
  for pid in $CONTROLLER_MANAGER_PID $APISERVER_PID $ETCD_PID; do kill -KILL "$pid" 2>/dev/null || true; done
}
on_exit() {
  local status=$?
  if [[ $status -ne 0 ]]; then cleanup_on_failure; fi
}
trap on_exit EXIT

# --- certificates and tokens ------------------------------------------------------------------
PKI="$DIR/pki"
make_pki() {
  mkdir -p "$PKI"
  chmod 0700 "$PKI"
  (
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
      -subj "/CN=ts-kube-agent-test-ca" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    cat >server.ext <<'EOF'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:::1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
      -subj "/CN=kube-apiserver" 2>/dev/null
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out server.crt 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >client.ext
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr \
      -subj "/O=system:masters/CN=tsk-admin-cert" 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile client.ext -out admin.crt 2>/dev/null
    # The controller-manager's own identity: the built-in ClusterRoleBinding
    # system:kube-controller-manager binds this user name.
    openssl req -newkey rsa:2048 -nodes -keyout controller-manager.key -out cm.csr \
      -subj "/CN=system:kube-controller-manager" 2>/dev/null
    openssl x509 -req -in cm.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile client.ext -out controller-manager.crt 2>/dev/null
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
    openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
    openssl rand -hex 32 >admin.token
    printf '%s,tsk-admin,tsk-admin-uid,"system:masters"\n' "$(cat admin.token)" >tokens.csv
    rm -f server.csr admin.csr cm.csr server.ext client.ext ca.srl
  ) || die "openssl failed to generate the certificates in $PKI"
}

# --- ports ---------------------------------------------------------------------------------------
port_is_free() {
  if command -v ss >/dev/null; then
    [[ -z "$(ss -Htan "sport = :$1" 2>/dev/null)" ]]
  else
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 1; fi
  fi
}
pick_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    if port_is_free "$p"; then
      echo "$p"
      return 0
    fi
  done
  die "found no free TCP port on 127.0.0.1 after 200 tries"
}

proc_rss_mib() { awk '/^VmRSS:/ {printf "%d", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }

# Polls `probe` until it succeeds; fails early if the process died. $1 pid, $2 name, $3 log, $4..
wait_until() {
  local pid=$1 name=$2 logfile=$3 deadline=$(($(date +%s) + READY_TIMEOUT))
  shift 3
  until "$@"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      return 2
    fi
    if (($(date +%s) >= deadline)); then
      echo "real-apiserver/start: ERROR: $name not ready after ${READY_TIMEOUT} s; last lines of $logfile:" >&2
      tail -n 30 "$logfile" >&2
      exit 1
    fi
    sleep 0.2
  done
}

etcd_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_CLIENT_PORT/health" 2>/dev/null | grep -q '"health":"true"'; }

start_etcd() {
  local attempt
  for attempt in 1 2 3; do
    ETCD_CLIENT_PORT=$(pick_port)
    ETCD_PEER_PORT=$(pick_port)
    while [[ $ETCD_PEER_PORT == "$ETCD_CLIENT_PORT" ]]; do ETCD_PEER_PORT=$(pick_port); done
    rm -rf "$DIR/etcd-data"
    setsid "$ETCD_BIN" --name tsk-etcd --data-dir "$DIR/etcd-data" \
      --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
      --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
      --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
      --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
      --initial-cluster "tsk-etcd=http://127.0.0.1:$ETCD_PEER_PORT" \
      --initial-cluster-state new --log-outputs stderr --logger zap \
      --quota-backend-bytes $((512 * 1024 * 1024)) \
      >"$DIR/etcd.log" 2>&1 </dev/null &
    ETCD_PID=$!
    echo "etcd $ETCD_PID" >>"$DIR/pids"
    local rc=0
    wait_until "$ETCD_PID" etcd "$DIR/etcd.log" etcd_healthy || rc=$?
    [[ $rc -eq 0 ]] && return 0
    if grep -q "address already in use" "$DIR/etcd.log"; then
      log "etcd port taken by someone else (attempt $attempt); trying other ports"
      continue
    fi
    echo "real-apiserver/start: ERROR: etcd exited during start; last lines of $DIR/etcd.log:" >&2
    tail -n 30 "$DIR/etcd.log" >&2
    exit 1
  done
  die "etcd could not bind free ports after 3 attempts"
}

apiserver_ready() {
  [[ "$(curl -sS --max-time 2 -o /dev/null -w '%{http_code}' --cacert "$PKI/ca.crt" \
    -H "Authorization: Bearer $(cat "$PKI/admin.token")" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" 2>/dev/null)" == 200 ]]
}

start_apiserver() {
  local attempt
  for attempt in 1 2 3; do
    APISERVER_PORT=$(pick_port)
    setsid "$APISERVER_BIN" \
      --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" \
      --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
      --secure-port="$APISERVER_PORT" \
      --cert-dir="$PKI" \
      --tls-cert-file="$PKI/server.crt" --tls-private-key-file="$PKI/server.key" \
      --client-ca-file="$PKI/ca.crt" \
      --token-auth-file="$PKI/tokens.csv" \
      --service-account-issuer="$SA_ISSUER" \
      --service-account-key-file="$PKI/sa.pub" \
      --service-account-signing-key-file="$PKI/sa.key" \
      --api-audiences="$SA_ISSUER" \
      --authorization-mode=RBAC \
      --service-cluster-ip-range=10.96.0.0/12 \
      --endpoint-reconciler-type=none \
      --profiling=false \
      "${APISERVER_EXTRA_ARGS[@]}" \
      >"$DIR/kube-apiserver.log" 2>&1 </dev/null &
    APISERVER_PID=$!
    echo "kube-apiserver $APISERVER_PID" >>"$DIR/pids"
    local rc=0
    wait_until "$APISERVER_PID" kube-apiserver "$DIR/kube-apiserver.log" apiserver_ready || rc=$?
    [[ $rc -eq 0 ]] && return 0
    if grep -q "address already in use" "$DIR/kube-apiserver.log"; then
      log "API server port taken by someone else (attempt $attempt); trying another"
      continue
    fi
    echo "real-apiserver/start: ERROR: kube-apiserver exited during start; last lines of $DIR/kube-apiserver.log:" >&2
    tail -n 30 "$DIR/kube-apiserver.log" >&2
    exit 1
  done
  die "kube-apiserver could not bind a free port after 3 attempts"
}

# kubeconfig FILE USER NAMESPACE CREDENTIALS: one cluster (this API server, our CA), one user with
# the given credential lines (already indented), one context; NAMESPACE may be empty.
kubeconfig() {
  local file=$1 user=$2 namespace=$3 credentials=$4
  {
    cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: tsk-real
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $user
  user:
$credentials
contexts:
- name: tsk-real
  context:
    cluster: tsk-real
    user: $user
EOF
    [[ -z $namespace ]] || echo "    namespace: $namespace"
    echo "current-context: tsk-real"
  } >"$file"
}

write_kubeconfigs() {
  kubeconfig "$DIR/admin.kubeconfig" tsk-admin default "    token: $(cat "$PKI/admin.token")"
  kubeconfig "$DIR/admin-cert.kubeconfig" tsk-admin-cert default \
    "    client-certificate: $PKI/admin.crt
    client-key: $PKI/admin.key"
  kubeconfig "$DIR/controller-manager.kubeconfig" system:kube-controller-manager "" \
    "    client-certificate: $PKI/controller-manager.crt
    client-key: $PKI/controller-manager.key"
  chmod 0600 "$DIR"/*.kubeconfig
}

controller_manager_healthy() {
  [[ "$(curl -sS -k --max-time 2 -o /dev/null -w '%{http_code}' \
    "https://127.0.0.1:$CONTROLLER_MANAGER_PORT/healthz" 2>/dev/null)" == 200 ]]
}

# The service-account controller has run once the namespace `default` has its ServiceAccount:
# from then on new namespaces get theirs, TokenRequest works for them and Pods are admitted.
default_service_account_exists() {
  [[ "$(curl -sS --max-time 2 -o /dev/null -w '%{http_code}' --cacert "$PKI/ca.crt" \
    -H "Authorization: Bearer $(cat "$PKI/admin.token")" \
    "https://127.0.0.1:$APISERVER_PORT/api/v1/namespaces/default/serviceaccounts/default" \
    2>/dev/null)" == 200 ]]
}

# Service-account tokens (the token controller signs with sa.key, the API server verifies with
# sa.pub), the kube-root-ca.crt ConfigMap in every namespace, namespace deletion and garbage
# collection all come from here.
start_controller_manager() {
  local attempt
  for attempt in 1 2 3; do
    CONTROLLER_MANAGER_PORT=$(pick_port)
    while [[ $CONTROLLER_MANAGER_PORT == "$APISERVER_PORT" ]]; do CONTROLLER_MANAGER_PORT=$(pick_port); done
    setsid "$CONTROLLER_MANAGER_BIN" \
      --kubeconfig="$DIR/controller-manager.kubeconfig" \
      --authentication-kubeconfig="$DIR/controller-manager.kubeconfig" \
      --authorization-kubeconfig="$DIR/controller-manager.kubeconfig" \
      --bind-address=127.0.0.1 --secure-port="$CONTROLLER_MANAGER_PORT" \
      --cert-dir="$PKI/controller-manager-serving" \
      --service-account-private-key-file="$PKI/sa.key" \
      --root-ca-file="$PKI/ca.crt" \
      --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
      --use-service-account-credentials=true \
      --leader-elect=false \
      --profiling=false \
      >"$DIR/kube-controller-manager.log" 2>&1 </dev/null &
    CONTROLLER_MANAGER_PID=$!
    echo "kube-controller-manager $CONTROLLER_MANAGER_PID" >>"$DIR/pids"
    local rc=0
    wait_until "$CONTROLLER_MANAGER_PID" kube-controller-manager "$DIR/kube-controller-manager.log" \
      controller_manager_healthy || rc=$?
    if [[ $rc -eq 0 ]]; then
      wait_until "$CONTROLLER_MANAGER_PID" kube-controller-manager "$DIR/kube-controller-manager.log" \
        default_service_account_exists || rc=$?
    fi
    [[ $rc -eq 0 ]] && return 0
    if grep -q "address already in use" "$DIR/kube-controller-manager.log"; then
      log "controller-manager port taken by someone else (attempt $attempt); trying another"
      continue
    fi
    echo "real-apiserver/start: ERROR: kube-controller-manager exited during start; last lines of $DIR/kube-controller-manager.log:" >&2
    tail -n 30 "$DIR/kube-controller-manager.log" >&2
    exit 1
  done
  die "kube-controller-manager could not bind a free port after 3 attempts"
}

write_env() {
  cat >"$DIR/env.tmp" <<EOF
TSK_APISERVER_DIR=$DIR
TSK_APISERVER_URL=https://127.0.0.1:$APISERVER_PORT
TSK_APISERVER_HOST=127.0.0.1
TSK_APISERVER_PORT=$APISERVER_PORT
TSK_APISERVER_PID=$APISERVER_PID
TSK_APISERVER_CA=$PKI/ca.crt
TSK_APISERVER_ADMIN_TOKEN_FILE=$PKI/admin.token
TSK_APISERVER_KUBECONFIG=$DIR/admin.kubeconfig
TSK_APISERVER_CERT_KUBECONFIG=$DIR/admin-cert.kubeconfig
TSK_APISERVER_SA_ISSUER=$SA_ISSUER
TSK_APISERVER_LOG=$DIR/kube-apiserver.log
TSK_ETCD_URL=http://127.0.0.1:$ETCD_CLIENT_PORT
TSK_ETCD_CLIENT_PORT=$ETCD_CLIENT_PORT
TSK_ETCD_PEER_PORT=$ETCD_PEER_PORT
TSK_ETCD_PID=$ETCD_PID
TSK_ETCD_LOG=$DIR/etcd.log
TSK_CONTROLLER_MANAGER_PORT=$CONTROLLER_MANAGER_PORT
TSK_CONTROLLER_MANAGER_PID=$CONTROLLER_MANAGER_PID
TSK_CONTROLLER_MANAGER_LOG=$DIR/kube-controller-manager.log
TSK_CONTROL_PLANE_BIN_DIR=$BIN_DIR
TSK_KUBECTL=$BIN_DIR/kubectl
TSK_HELM=$BIN_DIR/helm
EOF
  mv "$DIR/env.tmp" "$DIR/env"
}

make_pki
start_etcd
start_apiserver
write_kubeconfigs
start_controller_manager
write_env
elapsed=$(awk -v a="$started_at" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
log "ready in ${elapsed} s at https://127.0.0.1:$APISERVER_PORT ($("$APISERVER_BIN" --version); \
kube-apiserver pid $APISERVER_PID $(proc_rss_mib "$APISERVER_PID") MiB RSS, etcd pid $ETCD_PID \
$(proc_rss_mib "$ETCD_PID") MiB RSS, kube-controller-manager pid $CONTROLLER_MANAGER_PID \
$(proc_rss_mib "$CONTROLLER_MANAGER_PID") MiB RSS); env in $DIR/env, kubeconfig $DIR/admin.kubeconfig"
