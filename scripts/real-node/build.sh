#!/usr/bin/env bash
# Builds a node's Go programs from the pinned wrapper modules in tools/go/node/: the kubelet
# (k8s.io/kubernetes v1.37.2, the control plane's version and build flags) and containerd v2.4.2
# with its runc shim and ctr (runc itself is Debian's package). Caches the binaries under a key
# of those modules' go.mod/go.sum, the Go version and the flags; when the cache holds the key it
# builds nothing, needs no network and prints the bin dir. A cache of its own: the control plane
# of scripts/real-apiserver/build.sh is not touched (Go's build cache is shared, so the
# kubelet's packages that kube-apiserver also uses are compiled once).
#
# With --prometheus it builds Prometheus v3.16.0 and promtool instead, from tools/go/prometheus,
# under a cache key of its own (a Prometheus change does not rebuild the node, nor the reverse):
# Debian's prometheus is built without Kubernetes service discovery, and the e2e-node run
# scrapes the agent through the chart README's kubernetes_sd_configs job. Built with the
# upstream tags remove_all_sd,enable_kubernetes_sd (the kubernetes, file and http discoveries;
# no cloud SDKs) and without builtinassets (no web UI; the HTTP API is all the run uses).
#
# Usage: scripts/real-node/build.sh [--check] [--prometheus]
#   --check       print the bin dir if the cache is good, else exit 1 saying what is missing (no build)
#   --prometheus  Prometheus (bin dir with prometheus, promtool) instead of the node's programs
# Environment:
#   TSK_NODE_CACHE  cache dir (default /var/cache/ts-kube-agent/node)
#   TSK_GO          the go command (default /usr/local/go/bin/go, else `go` on PATH)
# Output: the last line on stdout is the absolute bin dir (kubelet, containerd,
# containerd-shim-runc-v2, ctr), or with --prometheus Prometheus's (prometheus, promtool);
# progress on stderr, the build log in $CACHE/build.log ($CACHE/prometheus-build.log).
# See docs/E2E-NODE.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
MODS="$ROOT/tools/go/node"
CACHE="${TSK_NODE_CACHE:-/var/cache/ts-kube-agent/node}"
GO_MIN_MINOR=26

# What is built, and how. Part of the cache key. KUBE_LDFLAGS are scripts/real-apiserver's, so
# that the kubelet reports the same version as the control plane.
KUBE_VERSION=v1.37.2
CONTAINERD_VERSION=v2.4.2
KUBE_LDFLAGS="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION \
-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 \
-X k8s.io/component-base/version.gitTreeState=clean"
CONTAINERD_LDFLAGS="-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION \
-X github.com/containerd/containerd/v2/version.Revision=tsk-pinned"
CONTAINERD_CMDS=(containerd containerd-shim-runc-v2 ctr)
PROM_MOD="$ROOT/tools/go/prometheus"
PROM_VERSION=3.16.0 # github.com/prometheus/prometheus v0.316.0 (its VERSION file)
PROM_TAGS=remove_all_sd,enable_kubernetes_sd
PROM_LDFLAGS="-s -w -X github.com/prometheus/common/version.Version=$PROM_VERSION \
-X github.com/prometheus/common/version.Revision=tsk-pinned -X github.com/prometheus/common/version.Branch=v$PROM_VERSION"

check_only=0
prometheus=0
for arg in "$@"; do
  case "$arg" in
    --check) check_only=1 ;;
    --prometheus) prometheus=1 ;;
    -h | --help)
      sed -n '2,27p' "$0"
      exit 0
      ;;
    *)
      echo "build.sh: unknown argument '$arg' (try --help)" >&2
      exit 2
      ;;
  esac
done

log() { echo "real-node/build: $*" >&2; }
die() {
  echo "real-node/build: ERROR: $*" >&2
  exit 1
}

GO="${TSK_GO:-}"
if [[ -z "$GO" ]]; then
  if [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go; else GO=$(command -v go || true); fi
fi
[[ -n "$GO" && -x "$GO" ]] || die "no Go toolchain (\$TSK_GO, /usr/local/go/bin/go, PATH); install Go >= 1.$GO_MIN_MINOR"
GO_VERSION=$(GOTOOLCHAIN=local "$GO" env GOVERSION)
minor=$(sed -E 's/^go1\.([0-9]+).*/\1/' <<<"$GO_VERSION")
[[ "$minor" =~ ^[0-9]+$ && "$minor" -ge $GO_MIN_MINOR ]] || die "$GO is $GO_VERSION; need Go >= 1.$GO_MIN_MINOR"

cache_key() {
  {
    (cd "$MODS" && find kubelet containerd -type f \( -name go.mod -o -name go.sum \) |
      LC_ALL=C sort | xargs sha256sum)
    echo "$GO_VERSION"
    printf '%s\n' "$KUBE_VERSION" "$CONTAINERD_VERSION" "$KUBE_LDFLAGS" "$CONTAINERD_LDFLAGS" \
      "${CONTAINERD_CMDS[@]}"
  } | sha256sum | cut -c1-16
}
prom_cache_key() {
  {
    (cd "$PROM_MOD" && sha256sum go.mod go.sum)
    echo "$GO_VERSION"
    printf '%s\n' "$PROM_VERSION" "$PROM_TAGS" "$PROM_LDFLAGS"
  } | sha256sum | cut -c1-16
}

bin_dir_is_good() {
  local d=$1 out
  [[ -f "$d/.complete" ]] || return 1
  out=$("$d/kubelet" --version 2>/dev/null) && [[ "$out" == "Kubernetes $KUBE_VERSION" ]] || return 1
  out=$("$d/containerd" --version 2>/dev/null) && [[ "$out" == *" $CONTAINERD_VERSION "* ]] || return 1
  out=$("$d/ctr" --version 2>/dev/null) && [[ "$out" == *"$CONTAINERD_VERSION"* ]] || return 1
  [[ -x "$d/containerd-shim-runc-v2" ]]
}
prom_bin_dir_is_good() {
  local d=$1 out
  [[ -f "$d/.complete" ]] || return 1
  out=$("$d/prometheus" --version 2>/dev/null) && [[ "$out" == "prometheus, version $PROM_VERSION "* ]] || return 1
  out=$("$d/promtool" --version 2>/dev/null) && [[ "$out" == "promtool, version $PROM_VERSION "* ]]
}

if [[ $prometheus -eq 1 ]]; then
  KEY=$(prom_cache_key)
  BIN="$CACHE/prometheus-$KEY/bin"
  LOG="$CACHE/prometheus-build.log"
  GOOD=prom_bin_dir_is_good
  WHAT="Prometheus $PROM_VERSION"
  HINT="scripts/real-node/build.sh --prometheus (once: a cold build takes 10+ min on 2 cores)"
else
  KEY=$(cache_key)
  BIN="$CACHE/$KEY/bin"
  LOG="$CACHE/build.log"
  GOOD=bin_dir_is_good
  WHAT="the kubelet and containerd"
  HINT="scripts/real-node/build.sh (once: a cold build takes 10+ min on 2 cores, much less after \
scripts/real-apiserver/build.sh)"
fi
if $GOOD "$BIN"; then
  echo "$BIN"
  exit 0
fi
[[ $check_only -eq 0 ]] || die "no good build of $WHAT in $BIN (key $KEY); run $HINT"

mkdir -p "$CACHE" || die "cannot create $CACHE; set TSK_NODE_CACHE"
exec 9>"$CACHE/.build.lock"
if ! flock -n 9; then
  log "another build holds $CACHE/.build.lock; waiting for it"
  flock 9
fi
if $GOOD "$BIN"; then
  echo "$BIN"
  exit 0
fi

started=$(date +%s)
: >"$LOG"
PARTIAL="$(dirname "$BIN")/bin.partial"
rm -rf "$PARTIAL"
mkdir -p "$PARTIAL"
# go_build MODDIR LDFLAGS TAGS PKG...
go_build() {
  local mod=$1 ldflags=$2 tags=$3
  shift 3
  log "go build in ${mod#"$ROOT"/}: $* (progress in $LOG)"
  (
    cd "$mod"
    export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0
    nice -n 10 "$GO" build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$PARTIAL/" "$@"
  ) >>"$LOG" 2>&1 || die "go build of $* failed (Go $GO_VERSION, \
GOPROXY=$("$GO" env GOPROXY)). Last lines of $LOG:
$(tail -n 25 "$LOG")"
}
if [[ $prometheus -eq 1 ]]; then
  go_build "$PROM_MOD" "$PROM_LDFLAGS" "$PROM_TAGS" github.com/prometheus/prometheus/cmd/prometheus \
    github.com/prometheus/prometheus/cmd/promtool
else
  go_build "$MODS/kubelet" "$KUBE_LDFLAGS" "" k8s.io/kubernetes/cmd/kubelet
  pkgs=()
  for c in "${CONTAINERD_CMDS[@]}"; do pkgs+=("github.com/containerd/containerd/v2/cmd/$c"); done
  go_build "$MODS/containerd" "$CONTAINERD_LDFLAGS" "" "${pkgs[@]}"
fi
touch "$PARTIAL/.complete"
$GOOD "$PARTIAL" || die "built binaries in $PARTIAL do not report the pinned versions: \
$(for b in "$PARTIAL"/*; do "$b" --version 2>&1 | head -n1; done | paste -sd, -)"
rm -rf "$BIN"
mv "$PARTIAL" "$BIN"
log "built in $(($(date +%s) - started)) s: $(cd "$BIN" && du -sh --apparent-size -- * | tr '\t' ' ' | paste -sd, -)"
echo "$BIN"
