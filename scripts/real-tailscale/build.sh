#!/usr/bin/env bash
# Builds tailscaled, tailscale and realts-control (the test control server) from the Go module
# tools/realts (tailscale.com pinned at v1.102.5, go.sum committed) and caches them. When the
# cache for the current go.mod + go.sum + control sources + Go version is complete, it builds
# nothing and prints the bin dir.
#
# Usage: scripts/real-tailscale/build.sh [--rebuild] [--bindir-file FILE]
#   --rebuild          build again into the same cache key (Go's build cache makes it quick)
#   --bindir-file FILE also write the bin dir into FILE; on a skip (exit 77) write the reason
#                      into FILE.skip instead (the ctest fixture and the suite read them)
# Environment:
#   TSK_REALTS_CACHE  cache root (default /var/cache/ts-kube-agent/real-tailscale)
#   TSK_GO            the go binary (default: /usr/local/go/bin/go, else `go` on PATH)
# Output: the last line on stdout is the absolute bin dir (tailscaled, tailscale, realts-control);
# progress on stderr, the build log in $CACHE/build.log. Exit 77 when no Go toolchain new enough
# is installed (the ctest fixture reports the test suite as skipped with this message); exit 1
# with what went wrong on any other failure. See scripts/real-tailscale/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MODULE=$(cd "$HERE/../../tools/realts" && pwd)
ROOT="${TSK_REALTS_CACHE:-/var/cache/ts-kube-agent/real-tailscale}"
TS_VERSION=1.102.5
GO_MIN=1.26

rebuild=0
bindir_file=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rebuild) rebuild=1 ;;
    --bindir-file)
      [[ $# -ge 2 ]] || {
        echo "build.sh: --bindir-file needs a file name" >&2
        exit 2
      }
      bindir_file="$2"
      shift
      ;;
    -h | --help)
      sed -n '2,19p' "$0"
      exit 0
      ;;
    *)
      echo "build.sh: unknown argument '$1' (try --help)" >&2
      exit 2
      ;;
  esac
  shift
done
if [[ -n "$bindir_file" ]]; then
  mkdir -p "$(dirname "$bindir_file")"
  rm -f "$bindir_file" "$bindir_file.skip"
fi
# The bin dir on stdout (and into --bindir-file).
done_with() {
  [[ -n "$bindir_file" ]] && echo "$1" >"$bindir_file"
  echo "$1"
  exit 0
}

log() { echo "real-tailscale/build: $*" >&2; }
die() {
  echo "real-tailscale/build: ERROR: $*" >&2
  exit 1
}

# The Go toolchain: go.mod needs Go >= $GO_MIN (Debian bookworm's golang-go 1.19 is too old).
go_ok() { "$1" version 2>/dev/null | grep -qE "go(1\.(2[6-9]|[3-9][0-9])|[2-9]\.)"; }
GO=""
for cand in "${TSK_GO:-}" /usr/local/go/bin/go "$(command -v go || true)"; do
  if [[ -n "$cand" && -x "$cand" ]] && go_ok "$cand"; then
    GO="$cand"
    break
  fi
done

if [[ -z "$GO" ]]; then
  reason="no Go toolchain >= $GO_MIN found (looked at \$TSK_GO, /usr/local/go/bin/go and \`go\` on PATH: $(command -v go >/dev/null && go version || echo 'no go on PATH')); install Go >= $GO_MIN (https://go.dev/dl) into /usr/local/go to build tailscaled $TS_VERSION for the real_tailscaled suite"
  echo "real-tailscale/build: SKIP: $reason" >&2
  [[ -n "$bindir_file" ]] && echo "$reason" >"$bindir_file.skip"
  exit 77
fi

# The cache key: everything that decides the binaries (this script holds the build flags).
key_inputs() {
  cat "$MODULE/go.mod" "$MODULE/go.sum" "$HERE/build.sh"
  find "$MODULE/cmd" -type f -name '*.go' | LC_ALL=C sort | xargs cat
  "$GO" version
}
KEY=$(key_inputs | sha256sum | cut -c1-16)
CACHE="$ROOT/v$TS_VERSION-$KEY"
BIN="$CACHE/bin"

bins_good() {
  [[ -x "$BIN/tailscaled" && -x "$BIN/tailscale" && -x "$BIN/realts-control" ]] &&
    "$BIN/tailscale" version 2>/dev/null | head -n1 | grep -qx "$TS_VERSION"
}


if [[ $rebuild -eq 0 ]] && bins_good; then
  done_with "$BIN"
fi

mkdir -p "$ROOT" 2>/dev/null || die "cannot create the cache dir $ROOT; set TSK_REALTS_CACHE to a writable dir"
[[ -w "$ROOT" ]] || die "cache dir $ROOT is not writable; set TSK_REALTS_CACHE to a writable dir"

# One build at a time (ctest and a developer may start it together).
exec 9>"$ROOT/.build.lock"
if ! flock -n 9; then
  log "another build holds $ROOT/.build.lock; waiting for it"
  flock 9
fi
if [[ $rebuild -eq 0 ]] && bins_good; then
  done_with "$BIN"
fi

mkdir -p "$CACHE"
started=$(date +%s)
log "building tailscaled/tailscale $TS_VERSION and realts-control with $("$GO" version) (first build: a few minutes on 2 cores; log: $CACHE/build.log)"
rm -rf "$BIN.partial"
mkdir -p "$BIN.partial"
(
  cd "$MODULE"
  # -mod=readonly: go.sum is the committed one; the module proxy is asked only for missing modules.
  export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0 GOCACHE="$ROOT/gocache"
  nice -n 10 "$GO" mod download
  # The version stamps a release build gets from upstream's build_dist.sh; a plain `go build`
  # would report "1.102.5-ERR-BuildInfo" on the bus and in `tailscale version`.
  nice -n 10 "$GO" build -trimpath -o "$BIN.partial/" \
    -ldflags "-X tailscale.com/version.longStamp=$TS_VERSION-realts -X tailscale.com/version.shortStamp=$TS_VERSION" \
    tailscale.com/cmd/tailscaled tailscale.com/cmd/tailscale ./cmd/realts-control
) >"$CACHE/build.log" 2>&1 || die "go build failed; last lines of $CACHE/build.log:
$(tail -n 25 "$CACHE/build.log")
(The first build downloads modules through GOPROXY=$("$GO" env GOPROXY); check it is reachable.)"
rm -rf "$BIN"
mv "$BIN.partial" "$BIN"
bins_good || die "$BIN/tailscale does not report version $TS_VERSION: $("$BIN/tailscale" version 2>&1 | head -n1)"
log "built in $(($(date +%s) - started)) s: $(cd "$BIN" && du -h tailscaled tailscale realts-control | tr '\t\n' ': ' | sed 's/ $//')"
done_with "$BIN"
