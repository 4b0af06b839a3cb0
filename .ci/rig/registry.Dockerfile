# Offline test rig: an image registry for the swarm rig (.ci/swarm-rig.sh), so images built on the
# outer machine can be pulled by every swarm node. Debian's docker-registry (distribution 2.8) on
# the local Debian base, configured without authentication (registry-config.yml).
ARG BASE=localhost/provision-rig/debian:trixie
# hadolint ignore=DL3006
FROM ${BASE}

# The package's system user, made first with a fixed uid (the package keeps an existing one), so
# USER can be numeric. Debian's versions, not pinned (as in the blueprints).
# hadolint ignore=DL3008
RUN groupadd --system --gid 1101 docker-registry \
 && useradd --system --uid 1101 --gid docker-registry --home-dir /var/lib/docker-registry \
      --no-create-home --shell /usr/sbin/nologin docker-registry \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker-registry \
 && rm -rf /var/lib/apt/lists/*

COPY registry-config.yml /etc/docker/registry/config.yml

# Its storage directory (/var/lib/docker-registry) belongs to that user.
USER 1101:1101
EXPOSE 5000
ENTRYPOINT ["docker-registry"]
CMD ["serve", "/etc/docker/registry/config.yml"]
