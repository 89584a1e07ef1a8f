# ts-kube-agent's container image.
#   builder  Debian bookworm (BASE_IMAGE: debian:bookworm, or the registry-free base that
#            scripts/images/build.sh makes with debootstrap + `docker import`): the dependencies
#            from scripts/install-deps.sh (the script `make test` uses), then a Release build of
#            the ts-kube-agent target only, and the runtime root filesystem assembled by
#            scripts/images/runtime-rootfs.sh: the binary, every shared library `ldd` lists for
#            it, /etc/passwd with uid 65532 and the CA certificates.
#   runtime  FROM scratch with only that root filesystem (no shell, no package manager),
#            running as uid/gid 65532 with the agent as PID 1.
#
#   docker build -t ts-kube-agent:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#   scripts/images/build.sh --only agent    # the same with a local base; nothing is pulled
#
# The agent handles SIGTERM and SIGINT itself (it is PID 1: no init, no shell): it stops
# watching, flushes the pending identity within --shutdown-timeout (default 10s) and exits 0.
# It writes nothing to disk, so the root filesystem can be read-only.

ARG BASE_IMAGE=debian:bookworm

FROM ${BASE_IMAGE} AS builder
WORKDIR /src
# The dependency layer first, so that source changes reuse it. ca-certificates: the bundle
# the runtime stage carries.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh --build-only \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/*
# Only what the build reads, so that a change elsewhere (deploy/, scripts/, docs/) keeps the
# build layer cached.
COPY CMakeLists.txt ./
COPY common common/
COPY watcher watcher/
COPY k8s k8s/
COPY agent agent/
COPY tools tools/
COPY tests tests/
COPY scripts/images/runtime-rootfs.sh scripts/images/
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DTSK_BENCH=OFF \
      -DCMAKE_RUNTIME_OUTPUT_DIRECTORY=/out \
 && cmake --build /build --target ts-kube-agent -j"$(nproc)" \
 && strip /out/ts-kube-agent \
 && /out/ts-kube-agent --version \
 && scripts/images/runtime-rootfs.sh /out/ts-kube-agent /rootfs

FROM scratch AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="ts-kube-agent" \
      org.opencontainers.image.description="Publishes a tailscaled node's tailnet identity into Kubernetes Secrets/ConfigMaps and exports Prometheus metrics; a sidecar beside tailscaled." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="scratch"
COPY --from=builder /rootfs/ /
USER 65532:65532
# The admin server: /metrics /livez /readyz /healthz (--admin-addr, TS_LOCAL_ADDR_PORT).
EXPOSE 9002
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ts-kube-agent"]
