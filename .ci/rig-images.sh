#!/usr/bin/env bash
# Builds the images the offline end-to-end tests need, from nothing but Debian's mirror:
#   localhost/provision-rig/debian:trixie    mmdebstrap minbase of Debian 13, imported (the base of
#                                            every image provision builds in the tests)
#   localhost/provision-rig/consul:1.8.7     FROM that base + Debian bullseye's static consul binary
#                                            (.ci/rig/consul.Dockerfile)
#   localhost/provision-rig/haproxy:trixie   FROM that base + Debian 13's haproxy package (3.0 LTS):
#                                            the static checks run `haproxy -c` with it, as the host
#                                            may have an older HAProxy (.ci/rig/haproxy.Dockerfile)
# Idempotent: an image that exists (the base) or whose inputs did not change (the others: a hash of
# their Dockerfile, their files and the base image id, kept in a label) is left alone. Local builds
# are never tagged with public image names: everything lives under localhost/provision-rig/.
#
# Environment: PROVISION_RIG_PREFIX (default localhost/provision-rig), PROVISION_TOOLS_DIR (where
# install-tools.sh put the consul binary, default /var/tmp/provision-tools).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PREFIX=${PROVISION_RIG_PREFIX:-localhost/provision-rig}
TOOLS_DIR=${PROVISION_TOOLS_DIR:-/var/tmp/provision-tools}
SUITE=trixie
BASE_IMAGE="$PREFIX/debian:$SUITE"
CONSUL_IMAGE="$PREFIX/consul:1.8.7"
HAPROXY_IMAGE="$PREFIX/haproxy:$SUITE"
CONSUL_BIN="$TOOLS_DIR/consul/consul"
HASH_LABEL=org.provision.rig.inputs

log() { printf '[rig] %s\n' "$*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

build_base() {
  if image_exists "$BASE_IMAGE"; then
    log "base image $BASE_IMAGE present: kept ($(docker image inspect -f '{{.Id}}' "$BASE_IMAGE" | cut -c8-19))"
    return
  fi
  local t0
  t0=$(now)
  # The host's own apt sources, with their suite names changed to $SUITE, are handed to
  # mmdebstrap, so the image uses whatever mirror this machine is configured for (and no host name
  # is written anywhere); without them mmdebstrap falls back to deb.debian.org. The host may run an
  # older release: bookworm's debian-archive-keyring already holds trixie's key.
  local sources=()
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    local host_suite
    host_suite=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
    sources=("$(mktemp --suffix=.sources)")
    # shellcheck disable=SC2064  # expand now: the array is local
    trap "rm -f '${sources[0]}'" RETURN
    sed -e "/^Suites:/s/\b${host_suite:-bookworm}\b/$SUITE/g" /etc/apt/sources.list.d/debian.sources >"${sources[0]}"
  fi
  log "building base image $BASE_IMAGE with mmdebstrap (minbase, $SUITE)"
  mmdebstrap --quiet --variant=minbase "$SUITE" - "${sources[@]}" | docker import - "$BASE_IMAGE" >/dev/null
  log "base image built in $(since "$t0"): $(docker image inspect -f '{{.Size}}' "$BASE_IMAGE" | awk '{ printf "%d MB", $1 / 1e6 }')"
}

# build_from_base IMAGE DOCKERFILE [FILE...]: builds IMAGE from DOCKERFILE on the base image, with
# the FILEs in its context, unless the image carries the hash of exactly these inputs already.
build_from_base() {
  local image=$1 dockerfile=$2
  shift 2
  local base_id inputs current
  base_id=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")
  inputs=$({ sha256sum <"$dockerfile"; for f in "$@"; do sha256sum <"$f"; done; echo "$base_id"; } | sha256sum | cut -c1-16)
  current=$(docker image inspect -f "{{index .Config.Labels \"$HASH_LABEL\"}}" "$image" 2>/dev/null || true)
  if [ "$current" = "$inputs" ]; then
    log "image $image up to date (inputs $inputs): kept"
    return
  fi
  local t0 ctx
  t0=$(now)
  log "building image $image (inputs $inputs${current:+, was $current})"
  ctx=$(mktemp -d)
  # shellcheck disable=SC2064  # expand now: ctx is local and gone by the time the trap runs
  trap "rm -rf '$ctx'" RETURN
  cp "$dockerfile" "$ctx/Dockerfile"
  for f in "$@"; do cp "$f" "$ctx/"; done
  # The classic builder: it is what a CLI without the buildx plugin has, said out loud so it does not warn.
  # Its output is shown only when it fails (the classic builder's deprecation notice is noise here).
  local out
  if ! out=$(DOCKER_BUILDKIT=0 docker build --build-arg "BASE=$BASE_IMAGE" --label "$HASH_LABEL=$inputs" \
    --tag "$image" "$ctx" 2>&1); then
    printf '%s\n' "$out" >&2
    log "docker build of $image failed"
    exit 1
  fi
  log "image $image built in $(since "$t0")"
}

build_consul() {
  if [ ! -x "$CONSUL_BIN" ]; then
    log "no consul binary at $CONSUL_BIN: run .ci/install-tools.sh first"
    exit 1
  fi
  build_from_base "$CONSUL_IMAGE" "$HERE/rig/consul.Dockerfile" "$CONSUL_BIN"
  # Prove the image works before anyone relies on it: the binary runs as the image's user.
  docker run --rm "$CONSUL_IMAGE" version | sed -n '1s/^/[rig]   /p' >&2
}

build_haproxy() {
  build_from_base "$HAPROXY_IMAGE" "$HERE/rig/haproxy.Dockerfile"
  docker run --rm "$HAPROXY_IMAGE" -v | sed -n '1s/^/[rig]   /p' >&2
}

main() {
  local t0
  t0=$(now)
  docker info >/dev/null 2>&1 || { log "no Docker daemon answers: start one first (.ci/engine.sh start)"; exit 1; }
  build_base
  build_consul
  build_haproxy
  log "rig images ready in $(since "$t0"): $BASE_IMAGE, $CONSUL_IMAGE, $HAPROXY_IMAGE"
}

main "$@"
