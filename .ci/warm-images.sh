#!/usr/bin/env bash
# Fills a build cache with the Debian packages of the images a stack on the rig images builds
# (web: Flask, redis' client and gunicorn; lb: HAProxy and socat; redis), by building once the
# images of a consul-dns spec on the rig's base. Every end-to-end test builds its own images
# (its project's names) FROM the same base with the same RUN steps, and Docker takes those
# steps from its cache: the first test no longer spends 20-30 s in apt (issue 22: CI time).
# The same `docker compose build` that `provision apply` runs, so the same builder and cache.
#
#   .ci/warm-images.sh          this machine's engine (needs .ci/rig-images.sh first)
#   .ci/warm-images.sh swarm    the swarm rig's manager, which builds a swarm stack's images,
#                               and its registry, which then holds their layers (needs
#                               .ci/swarm-rig.sh up first)
#
# Environment: PROVISION_RIG_PREFIX (default localhost/provision-rig).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WHERE=${1:-local}
WORK=$(mktemp -d /tmp/provision-warm.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

t0=$(date +%s.%N)
case "$WHERE" in
  local)
    prefix=${PROVISION_RIG_PREFIX:-localhost/provision-rig}
    target=""
    ;;
  swarm)
    eval "$("$ROOT/.ci/swarm-rig.sh" env)"
    prefix=$PROVISION_SWARM_REGISTRY/provision-rig
    target=$(printf 'target:\n  kind: swarm\n  registry: %s\n' "$PROVISION_SWARM_REGISTRY")
    ;;
  *)
    echo "usage: $0 [local|swarm]" >&2
    exit 2
    ;;
esac
cat >"$WORK/provision.yaml" <<SPEC
# CI: a build cache's warm-up (.ci/warm-images.sh); never applied
project: provision-ci-warm
$target
discovery: consul-dns
images:
  base: $prefix/debian:trixie
  consul: $prefix/consul:1.8.7
SPEC
cargo run --locked --quiet --manifest-path "$ROOT/Cargo.toml" --bin provision -- \
  -f "$WORK/provision.yaml" --quiet render --out "$WORK/generated"
if ! docker compose -f "$WORK/generated/compose.yaml" --project-directory "$WORK/generated" \
  --progress plain build web lb redis >"$WORK/build.log" 2>&1; then
  cat "$WORK/build.log" >&2
  echo "[warm] building the stack images failed (above)" >&2
  exit 1
fi
# The images stay: the classic builder's cache is their layers (BuildKit keeps its own).
mapfile -t built < <(docker image ls --format '{{.Repository}}:{{.Tag}}' | grep '^provision-ci-warm-')
[ "${#built[@]}" = 3 ] || {
  echo "[warm] expected the 3 images of provision-ci-warm, found: ${built[*]}" >&2
  exit 1
}
if [ "$WHERE" = swarm ]; then
  # In the registry, a stack's own push finds these layers there already.
  for image in "${built[@]}"; do
    docker tag "$image" "$PROVISION_SWARM_REGISTRY/$image"
    docker push --quiet "$PROVISION_SWARM_REGISTRY/$image" >/dev/null
  done
fi
printf '[warm] %s: the stack images'"'"' packages in the build cache after %s s (%s)\n' "$WHERE" \
  "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')" "${built[*]}"
