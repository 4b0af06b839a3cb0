# Offline test rig: one node of a multi-node Docker Swarm, a Docker engine in a container, built
# from the local Debian base and Debian's packages only. Started by .ci/swarm-rig.sh (which gives
# it the capabilities it needs, a volume for /var/lib/docker and a directory for its second
# socket); see swarm-node-entrypoint.sh for what happens at start.
ARG BASE=localhost/provision-rig/debian:trixie
# hadolint ignore=DL3006
FROM ${BASE}

# Debian's versions, not pinned: they come from the base image's suite (as in the blueprints).
# docker-cli (only recommended by docker.io) so `docker exec NODE docker ...` works too.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      docker.io docker-cli iptables ca-certificates curl procps socat \
 && rm -rf /var/lib/apt/lists/*

COPY swarm-node-entrypoint.sh /usr/local/bin/swarm-node-entrypoint

# 2377: swarm management, 7946: node gossip, 4789/udp: overlay (VXLAN) traffic.
EXPOSE 2377 7946 7946/udp 4789/udp
ENTRYPOINT ["/usr/local/bin/swarm-node-entrypoint"]
