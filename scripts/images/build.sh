#!/usr/bin/env bash
# Builds ts-kube-agent's container images with a local Docker Engine and no registry: nothing is
# pulled. Four images, each tagged with a key of its inputs and rebuilt only when that changes:
#
#   tsk-bookworm:<key>     Debian bookworm (debootstrap --variant=minbase, `docker import`); the
#                          base of the agent's builder stage. Key: suite, mirror, this script.
#   ts-kube-agent:<ver>    the repository's Dockerfile, `docker build --build-arg
#                          BASE_IMAGE=tsk-bookworm:<key>`: a builder stage with the -dev packages
#                          and a FROM-scratch runtime stage (the binary, the libraries `ldd` lists,
#                          /etc/passwd with uid 65532, CA certificates). Docker's layer cache
#                          decides what is rebuilt.
#   tsk-tailscaled:<ver>   FROM scratch: tailscaled, tailscale and containerboot (static Go builds
#                          of tailscale.com v1.102.5, scripts/real-tailscale) and CA certificates.
#   tsk-pause:<key>        FROM scratch: scripts/images/pause.c, gcc -static; sleeps until
#                          SIGTERM/SIGINT, reaps children.
#
# Usage: scripts/images/build.sh [--only base|agent|tailscaled|pause]... [--print-env FILE]
#   --only X          build only X (and what it needs); may repeat. Default: all four.
#   --print-env FILE  write TSK_IMAGE_BASE=, TSK_IMAGE_AGENT=, TSK_IMAGE_TAILSCALED=,
#                     TSK_IMAGE_PAUSE= (the references built) into FILE.
# Environment:
#   TSK_IMAGES_CACHE   work dir for the debootstrap root (default /var/cache/ts-kube-agent/images)
#   TSK_DEBIAN_MIRROR  debootstrap's mirror (default http://deb.debian.org/debian)
#   DOCKER             the docker command (default docker)
# Exit 77 (with the reason) when there is no usable Docker Engine or no debootstrap; 1 on failure.
# See docs/E2E-NODE.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE="${TSK_IMAGES_CACHE:-/var/cache/ts-kube-agent/images}"
MIRROR="${TSK_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
DOCKER="${DOCKER:-docker}"
VERSION=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$ROOT/deploy/helm/ts-kube-agent/Chart.yaml")

log() { echo "images/build: $*" >&2; }
die() {
  echo "images/build: ERROR: $*" >&2
  exit 1
}
skip() {
  echo "images/build: SKIP: $*" >&2
  exit 77
}

only=()
env_file=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --only)
      [[ $# -ge 2 ]] || die "--only needs base|agent|tailscaled|pause"
      only+=("$2")
      shift
      ;;
    --print-env)
      [[ $# -ge 2 ]] || die "--print-env needs a file name"
      env_file="$2"
      shift
      ;;
    -h | --help)
      sed -n '2,29p' "$0"
      exit 0
      ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
  shift
done
[[ ${#only[@]} -gt 0 ]] || only=(base agent tailscaled pause)
wanted() {
  local w
  for w in "${only[@]}"; do [[ "$w" == "$1" ]] && return 0; done
  return 1
}

command -v "$DOCKER" >/dev/null || skip "no docker command"
"$DOCKER" info >/dev/null 2>&1 || skip "the Docker Engine does not answer (\`$DOCKER info\`: $("$DOCKER" info 2>&1 | tail -n1))"
have_image() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }
size_of() { "$DOCKER" image inspect -f '{{.Size}}' "$1" | awk '{printf "%.1f MB", $1/1e6}'; }

mkdir -p "$CACHE" 2>/dev/null || die "cannot create $CACHE; set TSK_IMAGES_CACHE"
exec 9>"$CACHE/.build.lock"
flock -n 9 || {
  log "another build holds $CACHE/.build.lock; waiting"
  flock 9
}

# ---- base: debootstrap + docker import -------------------------------------------------------
BASE_KEY=$(printf '%s\n' "$SUITE" minbase "$MIRROR" "$(sed -n '/^# ---- base/,/^# ---- end base/p' "$0")" |
  sha256sum | cut -c1-16)
BASE_IMAGE="tsk-bookworm:$BASE_KEY"
build_base() {
  if have_image "$BASE_IMAGE"; then
    log "base $BASE_IMAGE present ($(size_of "$BASE_IMAGE")); not rebuilt"
    return
  fi
  command -v debootstrap >/dev/null || skip "no debootstrap (apt-get install debootstrap)"
  [[ $(id -u) -eq 0 ]] || skip "debootstrap needs root"
  local dir="$CACHE/rootfs-$BASE_KEY"
  rm -rf "$dir"
  log "debootstrap --variant=minbase $SUITE $dir $MIRROR (log: $CACHE/debootstrap.log)"
  debootstrap --variant=minbase "$SUITE" "$dir" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
    die "debootstrap failed; last lines of $CACHE/debootstrap.log:
$(tail -n 15 "$CACHE/debootstrap.log")"
  # What a container image does not need: the apt lists and archives (the builder stage runs
  # apt-get update itself), and no daemon may be started by a package's postinst.
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/archives/*.deb "$dir"/var/log/*.log
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod 755 "$dir/usr/sbin/policy-rc.d"
  log "docker import -> $BASE_IMAGE"
  tar --numeric-owner --xattrs -C "$dir" -c . |
    "$DOCKER" import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$BASE_IMAGE" >/dev/null
  "$DOCKER" tag "$BASE_IMAGE" tsk-bookworm:latest
  rm -rf "$dir"
  log "base $BASE_IMAGE: $(size_of "$BASE_IMAGE")"
}
# ---- end base

# ---- agent: the repository's Dockerfile -------------------------------------------------------
AGENT_IMAGE="ts-kube-agent:$VERSION"
build_agent() {
  build_base
  local rev
  rev=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
  log "docker build $AGENT_IMAGE from $ROOT/Dockerfile (BASE_IMAGE=$BASE_IMAGE; log: $CACHE/agent-build.log)"
  # The classic builder (this Engine has no buildx); --network host: the builder stage's
  # apt-get reaches the Debian mirror without relying on the bridge's NAT.
  DOCKER_BUILDKIT=0 "$DOCKER" build --network host --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --build-arg "VERSION=$VERSION" --build-arg "REVISION=$rev" \
    -t "$AGENT_IMAGE" "$ROOT" >"$CACHE/agent-build.log" 2>&1 ||
    die "docker build failed; last lines of $CACHE/agent-build.log:
$(tail -n 25 "$CACHE/agent-build.log")"
  # The builder stage's image stays (dangling) as the layer cache of the next build.
  log "agent $AGENT_IMAGE: $(size_of "$AGENT_IMAGE")"
}

# ---- pause: a static C program ----------------------------------------------------------------
PAUSE_KEY=$( (cat "$HERE/pause.c" && gcc --version | head -n1) | sha256sum | cut -c1-16)
PAUSE_IMAGE="tsk-pause:$PAUSE_KEY"
build_pause() {
  if have_image "$PAUSE_IMAGE"; then
    log "pause $PAUSE_IMAGE present ($(size_of "$PAUSE_IMAGE")); not rebuilt"
    return
  fi
  local ctx
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' RETURN
  gcc -static -O2 -Wall -Wextra -Werror -o "$ctx/pause" "$HERE/pause.c" || die "gcc -static pause.c failed (libc6-dev has libc.a)"
  strip "$ctx/pause"
  cat >"$ctx/Dockerfile" <<'DF'
FROM scratch
COPY pause /pause
USER 65532:65532
STOPSIGNAL SIGTERM
ENTRYPOINT ["/pause"]
DF
  DOCKER_BUILDKIT=0 "$DOCKER" build -q -t "$PAUSE_IMAGE" "$ctx" >"$CACHE/pause-build.log" 2>&1 || die "docker build of the pause image failed"
  "$DOCKER" tag "$PAUSE_IMAGE" tsk-pause:latest
  log "pause $PAUSE_IMAGE: $(size_of "$PAUSE_IMAGE")"
}

# ---- tailscaled: tailscaled, tailscale (scripts/real-tailscale) + containerboot ---------------
TS_VERSION=1.102.5
TS_IMAGE="tsk-tailscaled:v$TS_VERSION"
build_tailscaled() {
  local bin gobin go key
  # scripts/real-tailscale/build.sh prints the cached bin dir at once, or builds it (as the
  # real_tailscaled suite's fixture does); while another run holds its lock, skip instead of
  # waiting for that build.
  local lock="${TSK_REALTS_CACHE:-/var/cache/ts-kube-agent/real-tailscale}/.build.lock"
  if [[ -e "$lock" ]] && ! flock -n "$lock" true; then
    skip "scripts/real-tailscale/build.sh is building tailscaled now ($lock is held); try again when it is done"
  fi
  bin=$("$ROOT/scripts/real-tailscale/build.sh" 2>"$CACHE/real-tailscale.log" | tail -n1)
  [[ -x "$bin/tailscaled" ]] || skip "scripts/real-tailscale/build.sh gave no tailscaled: $(tail -n3 "$CACHE/real-tailscale.log")"
  go=${TSK_GO:-/usr/local/go/bin/go}
  # containerboot (the upstream image's entrypoint: it starts tailscaled, runs `tailscale up`
  # and keeps the node state in the TS_KUBE_SECRET Secret) from tools/go/containerboot, the same
  # tailscale.com as tools/realts plus the k8s.io modules it needs. Built with real-tailscale's
  # flags into a cache of its own; the Go build cache is real-tailscale's, so the packages it
  # shares with tailscaled are not compiled again.
  local mod="$ROOT/tools/go/containerboot"
  key=$( (cat "$mod/go.mod" "$mod/go.sum" && sed -n '/^# ---- tailscaled/,/^# ---- end tailscaled/p' "$0" &&
    "$go" version && sha256sum "$bin/tailscaled" "$bin/tailscale") | sha256sum | cut -c1-16)
  if have_image "$TS_IMAGE" && [[ "$("$DOCKER" image inspect -f '{{index .Config.Labels "tsk.key"}}' "$TS_IMAGE")" == "$key" ]]; then
    log "tailscaled $TS_IMAGE present ($(size_of "$TS_IMAGE")); not rebuilt"
    return
  fi
  gobin="$CACHE/containerboot-$key"
  if [[ ! -x "$gobin/containerboot" ]]; then
    log "go build tailscale.com/cmd/containerboot (log: $CACHE/containerboot-build.log)"
    rm -rf "$gobin.partial"
    mkdir -p "$gobin.partial"
    (
      cd "$mod"
      export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0 \
        GOCACHE="${TSK_REALTS_CACHE:-/var/cache/ts-kube-agent/real-tailscale}/gocache"
      nice -n 10 "$go" build -trimpath -o "$gobin.partial/" \
        -ldflags "-s -w -X tailscale.com/version.longStamp=$TS_VERSION-realts -X tailscale.com/version.shortStamp=$TS_VERSION" \
        tailscale.com/cmd/containerboot
    ) >"$CACHE/containerboot-build.log" 2>&1 || die "go build containerboot failed; last lines:
$(tail -n 20 "$CACHE/containerboot-build.log")"
    mv "$gobin.partial" "$gobin"
  fi
  local ctx
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' RETURN
  mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/tmp" "$ctx/rootfs/var/lib/tailscale"
  # The chart runs tailscaled as uid 1000 on a writable root (containerboot writes under /tmp
  # and /var/lib): both world-writable, /tmp sticky.
  chmod 1777 "$ctx/rootfs/tmp"
  chmod 0777 "$ctx/rootfs/var/lib/tailscale"
  cp "$bin/tailscaled" "$bin/tailscale" "$gobin/containerboot" "$ctx/rootfs/usr/local/bin/"
  # real-tailscale builds without -s -w; the image needs no symbol tables: 30 % smaller.
  strip "$ctx/rootfs/usr/local/bin/tailscaled" "$ctx/rootfs/usr/local/bin/tailscale"
  for b in tailscaled tailscale containerboot; do
    if ldd "$ctx/rootfs/usr/local/bin/$b" >/dev/null 2>&1; then
      die "$b is dynamically linked; the FROM-scratch image needs CGO_ENABLED=0 builds"
    fi
  done
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$ctx/rootfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$ctx/rootfs/etc/group"
  cat >"$ctx/Dockerfile" <<DF
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin
LABEL org.opencontainers.image.title="tailscaled" org.opencontainers.image.version="$TS_VERSION" tsk.key="$key"
ENTRYPOINT ["/usr/local/bin/containerboot"]
DF
  DOCKER_BUILDKIT=0 "$DOCKER" build -q -t "$TS_IMAGE" "$ctx" >"$CACHE/tailscaled-build.log" 2>&1 || die "docker build of the tailscaled image failed"
  log "tailscaled $TS_IMAGE: $(size_of "$TS_IMAGE")"
}
# ---- end tailscaled

for what in base agent tailscaled pause; do
  wanted "$what" && "build_$what"
done
if [[ -n "$env_file" ]]; then
  {
    echo "TSK_IMAGE_BASE=$BASE_IMAGE"
    echo "TSK_IMAGE_AGENT=$AGENT_IMAGE"
    echo "TSK_IMAGE_TAILSCALED=$TS_IMAGE"
    echo "TSK_IMAGE_PAUSE=$PAUSE_IMAGE"
  } >"$env_file"
fi
"$DOCKER" image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep -E '^(tsk-|ts-kube-agent:)' >&2 || true
