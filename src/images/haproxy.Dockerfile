# Debian 13's HAProxy (3.0 LTS), for checking generated configs with `haproxy -c` as the lb image
# of a trixie base will run them (the host may have an older one: bookworm's 2.6). Built FROM the
# local Debian base image with Debian's package; tagged under localhost/provision-rig/, never with
# a public image name. Built by `provision images build` (src/images/).
ARG BASE=localhost/provision-rig/debian:trixie
# hadolint ignore=DL3006
FROM ${BASE}

# The suite's package is the point, whatever its point release: not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends haproxy \
 && rm -rf /var/lib/apt/lists/*

# Only ever run as `docker run --rm -i ... -c -f /dev/stdin`: nobody (65534 on every Debian)
# is enough to read a config from stdin.
USER 65534:65534
ENTRYPOINT ["haproxy"]
CMD ["-v"]
