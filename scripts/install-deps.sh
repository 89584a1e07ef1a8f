#!/usr/bin/env bash
# Installs every Debian bookworm package the build, the tests, the demo and the benchmarks need.
# Idempotent and quick when everything is present. Used by `make deps`, CI and the Dockerfile's
# builder stage (`--build-only` there).
set -euo pipefail

BUILD_PKGS=(
  g++ cmake make pkg-config
  libcpp-httplib-dev libssl-dev zlib1g-dev libbrotli-dev
  nlohmann-json3-dev libyaml-cpp-dev prometheus-cpp-dev libsimdjson-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)
TEST_PKGS=(
  openssl kubectl prometheus yamllint python3 curl time procps iproute2
  clang libclang-rt-14-dev gnuplot-nox clang-format python3-yaml ccache
)
# Not Debian packages: Go >= 1.26 at /usr/local/go and the Go module proxy, for the pinned
# control plane and Helm that scripts/real-apiserver/build.sh builds once and caches.

pkgs=("${BUILD_PKGS[@]}")
if [[ "${1:-}" != "--build-only" ]]; then
  pkgs+=("${TEST_PKGS[@]}")
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
