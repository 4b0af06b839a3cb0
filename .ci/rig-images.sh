#!/usr/bin/env bash
# Builds the images the offline end-to-end tests need, from nothing but Debian's mirror:
#   localhost/provision-rig/debian:trixie    mmdebstrap minbase of Debian 13, imported (the base of
#                                            every image provision builds in the tests)
#   localhost/provision-rig/consul:1.8.7     FROM that base + Debian bullseye's static consul binary
#                                            (.ci/rig/consul.Dockerfile)
# Idempotent: an image that exists (the base) or whose inputs did not change (consul: a hash of its
# Dockerfile, the binary and the base image id, kept in a label) is left alone. Local builds are
# never tagged with public image names: everything lives under localhost/provision-rig/.
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

build_consul() {
  if [ ! -x "$CONSUL_BIN" ]; then
    log "no consul binary at $CONSUL_BIN: run .ci/install-tools.sh first"
    exit 1
  fi
  local base_id inputs current
  base_id=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")
  inputs=$({ sha256sum <"$HERE/rig/consul.Dockerfile"; sha256sum <"$CONSUL_BIN"; echo "$base_id"; } | sha256sum | cut -c1-16)
  current=$(docker image inspect -f "{{index .Config.Labels \"$HASH_LABEL\"}}" "$CONSUL_IMAGE" 2>/dev/null || true)
  if [ "$current" = "$inputs" ]; then
    log "consul image $CONSUL_IMAGE up to date (inputs $inputs): kept"
    return
  fi
  local t0 ctx
  t0=$(now)
  log "building consul image $CONSUL_IMAGE (inputs $inputs${current:+, was $current})"
  ctx=$(mktemp -d)
  # shellcheck disable=SC2064  # expand now: ctx is local and gone by the time the trap runs
  trap "rm -rf '$ctx'" RETURN
  cp "$HERE/rig/consul.Dockerfile" "$ctx/Dockerfile"
  cp "$CONSUL_BIN" "$ctx/consul"
  # The classic builder: it is what a CLI without the buildx plugin has, said out loud so it does not warn.
  # Its output is shown only when it fails (the classic builder's deprecation notice is noise here).
  local out
  if ! out=$(DOCKER_BUILDKIT=0 docker build --build-arg "BASE=$BASE_IMAGE" --label "$HASH_LABEL=$inputs" \
    --tag "$CONSUL_IMAGE" "$ctx" 2>&1); then
    printf '%s\n' "$out" >&2
    log "docker build of $CONSUL_IMAGE failed"
    exit 1
  fi
  # Prove the image works before anyone relies on it: the binary runs as the image's user.
  docker run --rm "$CONSUL_IMAGE" version | head -n1 | sed 's/^/[rig]   /' >&2
  log "consul image built in $(since "$t0")"
}

main() {
  local t0
  t0=$(now)
  docker info >/dev/null 2>&1 || { log "no Docker daemon answers: start one first (.ci/engine.sh start)"; exit 1; }
  build_base
  build_consul
  log "rig images ready in $(since "$t0"): $BASE_IMAGE, $CONSUL_IMAGE"
}

main "$@"
