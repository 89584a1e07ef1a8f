#!/usr/bin/env bash
# Builds the control plane and the tools the real-API-server and chart suites run, from the pinned
# Go wrapper modules in tools/go/ (kube: kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl; etcd; helm), with Go >= 1.26 and the Go module proxy, and caches the binaries under a
# key made of those modules' go.mod/go.sum/sources, the Go version and the build flags. When the
# cache holds that key this script builds nothing, needs no network and prints the bin dir.
#
# Usage: scripts/real-apiserver/build.sh [--check]
#   --check   print the bin dir if the cache is good, else exit 1 saying what is missing (no build)
# Environment:
#   TSK_APISERVER_CACHE  cache dir (default /var/cache/ts-kube-agent/control-plane)
#   TSK_GO               the go command (default /usr/local/go/bin/go, else `go` on PATH)
# Output: the last line on stdout is the absolute bin dir; progress goes to stderr and the full
# build log to $CACHE/build.log. Exits non-zero with a message saying what is missing when it
# cannot build. See scripts/real-apiserver/README.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
MODS="$ROOT/tools/go"
CACHE="${TSK_APISERVER_CACHE:-/var/cache/ts-kube-agent/control-plane}"
GO_MIN_MINOR=26 # k8s.io/kubernetes v1.37.2's go.mod says `go 1.26.0`

# What is built, and how. Part of the cache key: changing a line here rebuilds.
KUBE_VERSION=v1.37.2
HELM_VERSION=v4.3.2
KUBE_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
KUBE_LDFLAGS="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION \
-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 \
-X k8s.io/component-base/version.gitTreeState=clean"
HELM_LDFLAGS="-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION \
-X helm.sh/helm/v4/internal/version.gitTreeState=clean"
ETCD_LDFLAGS="-s -w"

check_only=0
for arg in "$@"; do
  case "$arg" in
    --check) check_only=1 ;;
    -h | --help)
      sed -n '2,15p' "$0"
      exit 0
      ;;
    *)
      echo "build.sh: unknown argument '$arg' (try --help)" >&2
      exit 2
      ;;
  esac
done

log() { echo "real-apiserver/build: $*" >&2; }
die() {
  echo "real-apiserver/build: ERROR: $*" >&2
  exit 1
}

find_go() {
  local go="${TSK_GO:-}"
  if [[ -z "$go" ]]; then
    if [[ -x /usr/local/go/bin/go ]]; then go=/usr/local/go/bin/go; else go=$(command -v go || true); fi
  fi
  [[ -n "$go" && -x "$go" ]] || die "no Go toolchain found (looked at \$TSK_GO, /usr/local/go/bin/go, \
PATH); install Go >= 1.$GO_MIN_MINOR at /usr/local/go or set TSK_GO"
  local v
  v=$(GOTOOLCHAIN=local "$go" env GOVERSION 2>/dev/null) || die "'$go env GOVERSION' failed"
  local minor
  minor=$(sed -E 's/^go1\.([0-9]+).*/\1/' <<<"$v")
  [[ "$minor" =~ ^[0-9]+$ && "$minor" -ge $GO_MIN_MINOR ]] ||
    die "$go is $v; k8s.io/kubernetes $KUBE_VERSION needs Go >= 1.$GO_MIN_MINOR (Debian's golang-1.19 \
is too old): install it at /usr/local/go or set TSK_GO"
  GO="$go"
  GO_VERSION="$v"
}

# The cache key: every input of the build. sha256 of the module files, the Go version and the
# flags above, so a changed pin, Go or flag gets its own directory.
cache_key() {
  {
    (cd "$MODS" && find kube etcd helm -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) |
      LC_ALL=C sort | xargs sha256sum)
    echo "$GO_VERSION"
    printf '%s\n' "$KUBE_VERSION" "$HELM_VERSION" "${KUBE_CMDS[@]}" "$KUBE_LDFLAGS" "$HELM_LDFLAGS" \
      "$ETCD_LDFLAGS"
  } | sha256sum | cut -c1-16
}

# True when every binary in $1 is there and reports the pinned version. Each output is read
# whole before matching: `cmd | grep -q` under pipefail fails at random when grep exits first
# and cmd gets SIGPIPE.
bin_dir_is_good() {
  local d=$1 out
  [[ -f "$d/.complete" ]] || return 1
  out=$("$d/kube-apiserver" --version 2>/dev/null) && [[ "$out" == "Kubernetes $KUBE_VERSION" ]] ||
    return 1
  out=$("$d/kubectl" version --client 2>/dev/null) && [[ "$out" == *"Client Version: $KUBE_VERSION"* ]] ||
    return 1
  out=$("$d/etcd" --version 2>/dev/null) && [[ "$out" == *"etcd Version: 3.6."* ]] || return 1
  out=$("$d/helm" version --short 2>/dev/null) && [[ "$out" == "$HELM_VERSION"* ]] || return 1
  local c
  for c in kube-controller-manager kube-scheduler; do [[ -x "$d/$c" ]] || return 1; done
}

for m in kube etcd helm; do
  [[ -f "$MODS/$m/go.mod" && -f "$MODS/$m/go.sum" ]] || die "$MODS/$m/go.mod or go.sum missing"
done
find_go
KEY=$(cache_key)
BIN="$CACHE/$KEY/bin"

if bin_dir_is_good "$BIN"; then
  echo "$BIN"
  exit 0
fi
if [[ $check_only -eq 1 ]]; then
  die "no good build in $BIN (key $KEY); run scripts/real-apiserver/build.sh (once: \
a cold build takes 10+ min on 2 cores, then it is cached)"
fi

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    die "'$*' needs root and sudo is not installed; create $CACHE writable by you or set TSK_APISERVER_CACHE"
  fi
}
mkdir -p "$CACHE" 2>/dev/null || as_root install -d -m 0755 -o "$(id -u)" -g "$(id -g)" "$CACHE" ||
  die "cannot create the cache dir $CACHE; set TSK_APISERVER_CACHE to a writable dir"
[[ -w "$CACHE" ]] || die "cache dir $CACHE is not writable; set TSK_APISERVER_CACHE to a writable dir"

# One build at a time per cache dir (ctest and a developer may start it together).
exec 9>"$CACHE/.build.lock"
if ! flock -n 9; then
  log "another build holds $CACHE/.build.lock; waiting for it"
  flock 9
fi
if bin_dir_is_good "$BIN"; then
  echo "$BIN"
  exit 0
fi

started=$(date +%s)
: >"$CACHE/build.log"
PARTIAL="$CACHE/$KEY/bin.partial"
rm -rf "$PARTIAL"
mkdir -p "$PARTIAL"

# $1 module dir, $2 ldflags, $3.. packages. GOFLAGS=-mod=readonly: the committed go.sum is the
# pin; a module missing from it is an error, never a silent upgrade.
go_build() {
  local mod=$1 ldflags=$2
  shift 2
  log "go build in tools/go/$(basename "$mod"): $* (progress in $CACHE/build.log)"
  (
    cd "$mod"
    export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0
    nice -n 10 "$GO" build -trimpath -ldflags "$ldflags" -o "$PARTIAL/" "$@"
  ) >>"$CACHE/build.log" 2>&1 || die "go build of $* failed (Go $GO_VERSION, \
GOPROXY=$("$GO" env GOPROXY)); the first build needs the Go module proxy to download the modules \
pinned in $mod/go.sum. Last lines of $CACHE/build.log:
$(tail -n 25 "$CACHE/build.log")"
}

pkgs=()
for c in "${KUBE_CMDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
go_build "$MODS/kube" "$KUBE_LDFLAGS" "${pkgs[@]}"
go_build "$MODS/etcd" "$ETCD_LDFLAGS" .
[[ -x "$PARTIAL/etcd" ]] || die "the etcd build left no binary at $PARTIAL/etcd"
go_build "$MODS/helm" "$HELM_LDFLAGS" helm.sh/helm/v4/cmd/helm
touch "$PARTIAL/.complete"
bin_dir_is_good "$PARTIAL" || die "built binaries in $PARTIAL do not report the pinned versions: \
$("$PARTIAL/kube-apiserver" --version 2>&1 | head -n1), $("$PARTIAL/etcd" --version 2>&1 | head -n1), \
$("$PARTIAL/helm" version --short 2>&1 | head -n1)"
rm -rf "$BIN"
mv "$PARTIAL" "$BIN"
log "built in $(($(date +%s) - started)) s: $(cd "$BIN" && du -sh --apparent-size -- * | tr '\t' ' ' | paste -sd, -)"
echo "$BIN"
