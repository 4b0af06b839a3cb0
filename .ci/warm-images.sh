#!/usr/bin/env bash
# Warms what the end-to-end tests would otherwise wait for under the engine lock, while CI's
# build still runs (.ci/run starts it in the background once the rigs are up):
#   1. builds the built-in web, lb and redis images of a consul-dns swarm spec on the rig's
#      base image: their apt layers (most of each image) come FROM that base with the same
#      RUN lines in every test project, so each test's first build finds them in the cache;
#   2. builds them again on the swarm's manager (a swarm stack's images are built on the engine
#      provision talks to, and a new rig's manager has no cache), pushes them from there to the
#      rig's registry, and pulls them and consul's image on every node: the first consul-dns
#      apply on a fresh rig otherwise spent 16 s building, 15 s pushing and the rest waiting
#      for the nodes to pull (bench/runs/2026-12-07-stops-and-restarts.md).
# The images it tags are named provision-ci-warm-*; nothing runs from them. A failure here only
# costs the tests that time: .ci/run goes on.
#
# Environment: PROVISION_SWARM_REGISTRY (default 127.0.0.1:5000) and PROVISION_SWARM_DIR (where
# the rig keeps its nodes' sockets, default /var/tmp/provision-swarm), as for .ci/swarm-rig.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REGISTRY=${PROVISION_SWARM_REGISTRY:-127.0.0.1:5000}
STATE_DIR=${PROVISION_SWARM_DIR:-/var/tmp/provision-swarm}

log() { printf '[warm] %s\n' "$*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

work=$(mktemp -d /tmp/provision-ci-warm.XXXXXX)
trap 'rm -rf "$work"' EXIT
cat >"$work/provision.yaml" <<YAML
project: provision-ci-warm
target:
  kind: swarm
  registry: $REGISTRY
discovery: consul-dns
images:
  base: $REGISTRY/provision-rig/debian:trixie
  consul: $REGISTRY/provision-rig/consul:1.8.7
YAML

t=$(now)
# The debug binary rig-images.sh built with `cargo run`. Not `cargo run` here: CI's foreground
# build holds cargo's lock on the target directory by now, and this would wait for all of it.
provision=${CARGO_TARGET_DIR:-$ROOT/target}/debug/provision
[ -x "$provision" ] || { log "no $provision: run .ci/rig-images.sh first"; exit 1; }
"$provision" -q -f "$work/provision.yaml" render --out "$work/generated" >/dev/null
compose=(docker compose -f "$work/generated/compose.yaml")
# compose.yaml names them locally; a deploy pushes them under the registry's name, as here.
mapfile -t built < <("${compose[@]}" config --images | sort -u | grep '^provision-ci-warm-')
[ "${#built[@]}" = 3 ] || { log "expected 3 images to build, found: ${built[*]}"; exit 1; }

# This machine's engine: the Compose tests build there.
"${compose[@]}" build --quiet web lb redis
log "built ${built[*]} on this machine's engine in $(since "$t")"

# The manager's engine: a swarm stack's images are built there, pushed from there, and pulled
# by the other nodes.
sockets=("$STATE_DIR"/node*/docker.sock)
# node1 is the manager (.ci/swarm-rig.sh).
manager="unix://$STATE_DIR/node1/docker.sock"
t=$(now)
DOCKER_HOST=$manager "${compose[@]}" build --quiet web lb redis
log "built them on the swarm's manager in $(since "$t")"
t=$(now)
images=()
for image in "${built[@]}"; do
  DOCKER_HOST=$manager docker tag "$image" "$REGISTRY/$image"
  DOCKER_HOST=$manager docker push --quiet "$REGISTRY/$image" >/dev/null
  images+=("$REGISTRY/$image")
done
log "pushed them to $REGISTRY in $(since "$t")"
# consul's image is in the registry already (.ci/swarm-rig.sh pushes it); the nodes pull it too.
images+=("$REGISTRY/provision-rig/consul:1.8.7")

t=$(now)
pids=()
for socket in "${sockets[@]}"; do
  (
    for image in "${images[@]}"; do
      DOCKER_HOST="unix://$socket" docker pull --quiet "$image" >/dev/null
    done
  ) &
  pids+=($!)
done
for pid in "${pids[@]}"; do
  wait "$pid"
done
log "pulled them and consul's on ${#pids[@]} nodes in $(since "$t")"
