#!/usr/bin/env bash
# Builds the offline images the end-to-end tests need with the product's own command,
# `provision images build` (src/images/), so CI and a user's offline machine share one recipe:
#   localhost/provision-rig/debian:trixie    mmdebstrap minbase of Debian 13 from the host's own
#                                            apt sources, imported (the base of every image
#                                            provision builds in the tests)
#   localhost/provision-rig/consul:1.8.7     FROM that base + Debian bullseye's static consul
#                                            binary, downloaded through the same mirror
#   localhost/provision-rig/haproxy:trixie   FROM that base + Debian 13's haproxy package (3.0 LTS):
#                                            the static checks run `haproxy -c` with it
# Idempotent: an image that is present with the same inputs (a hash kept in a label) is kept, in
# well under a second. Needs root and mmdebstrap only when something must be built.
#
# Environment: PROVISION_RIG_PREFIX (default localhost/provision-rig). Arguments are passed on
# (`--force` rebuilds everything).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

docker info >/dev/null 2>&1 || {
  printf '[rig] no Docker daemon answers: start one first (.ci/engine.sh start)\n' >&2
  exit 1
}
# The same debug build the tests use, so this costs no extra compilation in CI.
exec cargo run --locked --quiet --manifest-path "$ROOT/Cargo.toml" --bin provision -- images build "$@"
