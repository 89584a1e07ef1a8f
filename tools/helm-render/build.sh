#!/bin/sh
# Builds (or tests) helm-render with Debian's Go, offline, in GOPATH mode against the Go
# packages Debian installs under /usr/share/gocode (golang-github-masterminds-sprig-dev and its
# dependencies, gopkg.in/yaml.v2). Nothing is fetched; the build cache lives beside OUT.
#
#   build.sh GO OUT          build the binary OUT
#   build.sh GO OUT test     run the Go unit tests (go vet first)
set -eu
if [ $# -lt 2 ]; then
  echo "usage: build.sh GO OUT [test]" >&2
  exit 2
fi
GO_BIN=$1
OUT=$2
MODE=${3:-build}
SRC=$(cd "$(dirname "$0")" && pwd)
if [ ! -x "$GO_BIN" ]; then
  echo "helm-render: Go not found at '$GO_BIN'; install golang-1.19-go (scripts/install-deps.sh)" >&2
  exit 1
fi
if [ ! -d /usr/share/gocode/src/github.com/Masterminds/sprig ]; then
  echo "helm-render: sprig not found; install golang-github-masterminds-sprig-dev (scripts/install-deps.sh)" >&2
  exit 1
fi
OUT_DIR=$(dirname "$OUT")
mkdir -p "$OUT_DIR"
export GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOFLAGS= CGO_ENABLED=0 \
  GOCACHE="$OUT_DIR/go-cache" HOME="$OUT_DIR" GOTOOLCHAIN=local
cd "$SRC"
case "$MODE" in
  build) exec "$GO_BIN" build -o "$OUT" . ;;
  test)
    "$GO_BIN" vet .
    exec "$GO_BIN" test -count=1 . ;;
  *)
    echo "build.sh: unknown mode '$MODE' (build or test)" >&2
    exit 2 ;;
esac
