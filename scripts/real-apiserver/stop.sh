#!/usr/bin/env bash
# Stops the kube-controller-manager, kube-apiserver and etcd that `start.sh DIR` started, by the pids it recorded in
# DIR/pids. A pid is only signalled while its command line still names DIR (so a recycled pid
# is never touched). SIGTERM, then SIGKILL after 10 s. Idempotent: nothing running is success.
# Keeps DIR's logs; removes DIR/env and DIR/pids.
#
# Usage: scripts/real-apiserver/stop.sh DIR
set -euo pipefail

die() {
  echo "real-apiserver/stop: ERROR: $*" >&2
  exit 1
}
[[ $# -eq 1 ]] || die "usage: stop.sh DIR (the DIR given to start.sh)"
[[ -d "$1" ]] || exit 0
DIR="$(cd "$1" && pwd)"

# True while pid $1 is alive and was started by start.sh for this DIR.
ours() { [[ -r "/proc/$1/cmdline" ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF "$DIR/"; }

pids=()
if [[ -f "$DIR/pids" ]]; then
  # Reverse start order: the controller-manager, the API server, then etcd.
  while read -r _ pid; do
    [[ "$pid" =~ ^[0-9]+$ ]] && pids=("$pid" "${pids[@]}")
  done <"$DIR/pids"
fi

for pid in "${pids[@]}"; do
  ours "$pid" || continue
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    ours "$pid" || break
    sleep 0.1
  done
  if ours "$pid"; then
    echo "real-apiserver/stop: pid $pid ignored SIGTERM for 10 s; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
done
rm -f "$DIR/env" "$DIR/pids"
