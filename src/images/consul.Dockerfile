# The offline consul image: the local Debian base image and the static consul binary of Debian
# bullseye's package (1.8.7), downloaded through the host's own apt mirror. It stands in for
# hashicorp/consul where no registry is reachable; it is tagged under localhost/provision-rig/,
# never with a public image name. Built by `provision images build` (src/images/).
ARG BASE=localhost/provision-rig/debian:trixie
# hadolint ignore=DL3006
FROM ${BASE}

COPY consul /usr/local/bin/consul

# A fixed uid so files written to a mounted data dir keep one owner across rebuilds.
RUN groupadd --system --gid 1100 consul \
 && useradd --system --uid 1100 --gid consul --home-dir /consul --create-home --shell /usr/sbin/nologin consul \
 && mkdir -p /consul/data /consul/config \
 && chown -R consul:consul /consul

USER 1100:1100
WORKDIR /consul
EXPOSE 8300 8301 8301/udp 8500 8600 8600/udp

# `consul members` asks the local agent over HTTP (127.0.0.1:8500): it fails until the agent
# serves its API, which is what dependants wait for.
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=5 CMD ["consul", "members"]

# Same shape as hashicorp/consul: the arguments are consul's (`agent -dev -client 0.0.0.0`).
ENTRYPOINT ["consul"]
CMD ["agent", "-dev", "-client", "0.0.0.0"]
