#!/usr/bin/env bash
# Fills this engine's build cache with the Debian packages of the images a stack on the rig
# images builds (web: Flask, redis' client and gunicorn; lb: HAProxy and socat; redis), by
# building once the images of a consul-dns spec on the rig's base. Every end-to-end test
# builds its own images (its project's names) FROM the same base with the same RUN steps, and
# Docker takes those steps from its cache: the first test no longer spends about 25 s in apt
# (issue 22: CI time). The same `docker compose build` that `provision apply` runs, so the
# same builder and cache. Needs the rig images (.ci/rig-images.sh).
#
# Environment: PROVISION_RIG_PREFIX (default localhost/provision-rig).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=${PROVISION_RIG_PREFIX:-localhost/provision-rig}
WORK=$(mktemp -d /tmp/provision-warm.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

t0=$(date +%s.%N)
cat >"$WORK/provision.yaml" <<SPEC
# CI: the build cache's warm-up (.ci/warm-images.sh); never applied
project: provision-ci-warm
discovery: consul-dns
images:
  base: $PREFIX/debian:trixie
  consul: $PREFIX/consul:1.8.7
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
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^provision-ci-warm-'
printf '[warm] the stack images'"'"' packages in the build cache after %s s\n' \
  "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
