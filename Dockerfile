# syntax=docker/dockerfile:1
# ts-kube-agent's container image.
#   builder  debian:bookworm: the dependencies from scripts/install-deps.sh (the script
#            `make test` uses), then a Release build of the ts-kube-agent target only.
#   runtime  debian:bookworm-slim with only the shared libraries the binary needs (a test,
#            tests/integration/deploy/test_docker.py, compares them with `ldd` of the build),
#            running as uid/gid 65532 with the agent as PID 1.
#
#   docker build -t ts-kube-agent:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#
# The agent handles SIGTERM and SIGINT itself (it is PID 1: no init, no shell): it stops
# watching, flushes the pending identity within --shutdown-timeout (default 10s) and exits 0.
# It writes nothing to disk, so the root filesystem can be read-only.

ARG DEBIAN_SUITE=bookworm

FROM debian:${DEBIAN_SUITE} AS builder
WORKDIR /src
# The dependency layer first, so that source changes reuse it.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh --build-only && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DTSK_BENCH=OFF \
      -DCMAKE_RUNTIME_OUTPUT_DIRECTORY=/out \
 && cmake --build /build --target ts-kube-agent -j"$(nproc)" \
 && strip /out/ts-kube-agent \
 && /out/ts-kube-agent --version

FROM debian:${DEBIAN_SUITE}-slim AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="ts-kube-agent" \
      org.opencontainers.image.description="Publishes a tailscaled node's tailnet identity into Kubernetes Secrets/ConfigMaps and exports Prometheus metrics; a sidecar beside tailscaled." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"
# Runtime libraries: cpp-httplib, OpenSSL, yaml-cpp and prometheus-cpp (the binary's direct
# NEEDED entries) and what they load in turn (brotli, zlib, the C/C++ runtime).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libcpp-httplib0.11 libssl3 libyaml-cpp0.7 libprometheus-cpp-core1.0 \
      libbrotli1 zlib1g libstdc++6 libgcc-s1 libc6 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=builder /out/ts-kube-agent /usr/local/bin/ts-kube-agent
USER 65532:65532
# The admin server: /metrics /livez /readyz /healthz (--admin-addr, TS_LOCAL_ADDR_PORT).
EXPOSE 9002
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ts-kube-agent"]
