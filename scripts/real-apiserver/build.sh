#!/usr/bin/env bash
# Builds a real kube-apiserver (upstream v1.20.2 from Debian bookworm's `kubernetes` source
# package, compiled with Debian's Go 1.19) and caches it. When the cached binary exists this
# script downloads nothing and builds nothing; it prints the binary's path and exits.
#
# Usage: scripts/real-apiserver/build.sh [--rebuild]
#   --rebuild   run `make` again on the kept source tree (about 10 s when nothing changed)
# Environment:
#   TSK_APISERVER_CACHE  cache dir (default /var/cache/ts-kube-agent/kube-apiserver)
# Output: the last line on stdout is the absolute path of the binary; progress goes to stderr
# and the full build log to $CACHE/build.log. Exits non-zero with a message saying what is
# missing when it cannot build. See scripts/real-apiserver/README.md.
set -euo pipefail

CACHE="${TSK_APISERVER_CACHE:-/var/cache/ts-kube-agent/kube-apiserver}"
BIN="$CACHE/bin/kube-apiserver"
GO_BIN_DIR=/usr/lib/go-1.19/bin
REFLECT2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2
SRC_LIST=/etc/apt/sources.list.d/ts-kube-agent-deb-src.sources
BUILD_PKGS=(dpkg-dev golang-1.19-go make rsync golang-github-modern-go-reflect2-dev etcd-server)

rebuild=0
for arg in "$@"; do
  case "$arg" in
    --rebuild) rebuild=1 ;;
    -h | --help)
      sed -n '2,12p' "$0"
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

binary_is_good() { [[ -x "$BIN" ]] && "$BIN" --version 2>/dev/null | grep -q 'Kubernetes v1\.20'; }

if [[ $rebuild -eq 0 ]] && binary_is_good; then
  echo "$BIN"
  exit 0
fi

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    die "'$*' needs root and sudo is not installed; run this script as root once to fill the cache $CACHE"
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
if [[ $rebuild -eq 0 ]] && binary_is_good; then
  echo "$BIN"
  exit 0
fi

install_build_packages() {
  local missing=() p
  for p in "${BUILD_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
    die "apt-get update failed; cannot install ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
}

# The archive URI of the machine's own Debian sources (deb822 or one-line format).
debian_archive_uri() {
  local uri=""
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    uri=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) if ($i !~ /security/) {print $i; exit}}' \
      /etc/apt/sources.list.d/debian.sources)
  fi
  if [[ -z "$uri" && -f /etc/apt/sources.list ]]; then
    uri=$(awk '$1 == "deb" && $0 ~ /bookworm/ && $0 !~ /security/ {
      for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file|mirror):/) {print $i; exit}}' /etc/apt/sources.list)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

ensure_deb_src() {
  if grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/ &&
    apt-cache showsrc kubernetes >/dev/null 2>&1; then
    return 0
  fi
  local uri
  uri=$(debian_archive_uri)
  log "adding deb-src for bookworm main ($uri) as $SRC_LIST"
  as_root tee "$SRC_LIST" >/dev/null <<EOF
# Added by ts-kube-agent scripts/real-apiserver/build.sh: source packages to build kube-apiserver.
Types: deb-src
URIs: $uri
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
    die "apt-get update failed after adding $SRC_LIST"
}

fetch_source() {
  local dl="$CACHE/download" tree="$CACHE/src/kubernetes"
  if [[ -f "$tree/hack/lib/golang.sh" ]]; then
    return 0
  fi
  ensure_deb_src
  mkdir -p "$dl"
  if ! compgen -G "$dl/kubernetes_*.dsc" >/dev/null; then
    log "downloading the kubernetes source package"
    (cd "$dl" && apt-get source --download-only kubernetes >>"$CACHE/build.log" 2>&1) ||
      die "apt-get source --download-only kubernetes failed (see $CACHE/build.log)"
  fi
  log "unpacking the source package"
  rm -rf "$CACHE/src"
  mkdir -p "$CACHE/src"
  local dscs=("$dl"/kubernetes_*.dsc)
  local dsc="${dscs[0]}"
  dpkg-source -x "$dsc" "$tree.partial" >>"$CACHE/build.log" 2>&1 ||
    die "dpkg-source -x $dsc failed (see $CACHE/build.log)"
  mv "$tree.partial" "$tree"
}

# The vendored reflect2 v1.0.1 breaks at run time with Go >= 1.18; Debian's 1.0.2 is compatible.
swap_reflect2() {
  local tree="$CACHE/src/kubernetes" dst
  dst="$tree/vendor/github.com/modern-go/reflect2"
  [[ -d "$REFLECT2_SRC" ]] || die "$REFLECT2_SRC missing: install golang-github-modern-go-reflect2-dev"
  rm -rf "$dst"
  mkdir -p "$dst"
  cp -a "$REFLECT2_SRC"/. "$dst"/
}

run_make() {
  local tree="$CACHE/src/kubernetes"
  [[ -x "$GO_BIN_DIR/go" ]] || die "$GO_BIN_DIR/go missing: install golang-1.19-go"
  log "make WHAT=cmd/kube-apiserver (first build takes about 3 minutes on 2 cores)"
  (
    cd "$tree"
    export PATH="$GO_BIN_DIR:$PATH" CGO_ENABLED=0 GO111MODULE=off GOFLAGS="" GOPROXY=off
    export GOCACHE="$CACHE/gocache" GOTOOLCHAIN=local
    export KUBE_GIT_VERSION=v1.20.2 KUBE_GIT_TREE_STATE=clean KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20
    make WHAT=cmd/kube-apiserver
  ) >>"$CACHE/build.log" 2>&1 || die "make WHAT=cmd/kube-apiserver failed; last lines of $CACHE/build.log:
$(tail -n 25 "$CACHE/build.log")"
  local out="$tree/_output/bin/kube-apiserver"
  [[ -x "$out" ]] || die "make succeeded but $out is missing"
  mkdir -p "$CACHE/bin"
  cp "$out" "$BIN.tmp"
  mv -f "$BIN.tmp" "$BIN"
  binary_is_good || die "$BIN does not report Kubernetes v1.20: $("$BIN" --version 2>&1 | head -n1)"
}

started=$(date +%s)
: >"$CACHE/build.log"
install_build_packages
fetch_source
swap_reflect2
run_make
log "built $("$BIN" --version) in $(($(date +%s) - started)) s"
echo "$BIN"
