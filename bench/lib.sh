# shellcheck shell=bash
# Helpers shared by the bench/ scripts (sourced, not run): logging, the release binary, timing,
# min/median/max, the offline rig images, and a throw-away stack spec.
#
# Everything a script starts is named `bench-*` (compose projects, the images provision builds)
# and listens on the bench ports below, so it never collides with the end-to-end tests or with
# another stack on the same engine.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_LB_PORT=${BENCH_LB_PORT:-18080}
BENCH_STATS_PORT=${BENCH_STATS_PORT:-18404}
BENCH_CONSUL_PORT=${BENCH_CONSUL_PORT:-18500}
RIG_BASE=localhost/provision-rig/debian:trixie
RIG_CONSUL=localhost/provision-rig/consul:1.8.7

log() { printf '[%s] %s\n' "$BENCH_NAME" "$*" >&2; }
die() {
  log "$*"
  exit 1
}

# Nanoseconds since the epoch (GNU date).
now_ns() { date +%s%N; }

# Milliseconds between two now_ns values, with one decimal.
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; }

# Reads one number per line; prints "min median max" (median of an even count: mean of the two
# middle values).
min_median_max() {
  sort -g | awk '
    { v[NR] = $1 }
    END {
      if (NR == 0) { print "- - -"; exit }
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%s %s %s\n", v[1], m, v[NR]
    }'
}

# Builds the release binary of this checkout (cargo prints to stderr) and sets PROVISION to it.
# PROVISION_BIN, when set, is used instead and nothing is built.
build_provision() {
  if [ -n "${PROVISION_BIN:-}" ]; then
    PROVISION=$PROVISION_BIN
  else
    log "cargo build --release (in $BENCH_ROOT)"
    (cd "$BENCH_ROOT" && cargo build --release --quiet)
    PROVISION=$BENCH_ROOT/target/release/provision
  fi
  [ -x "$PROVISION" ] || die "no provision binary at $PROVISION"
  log "binary: $PROVISION ($("$PROVISION" --version))"
}

# Docker, Compose v2 and the offline rig images; installs or builds what is missing with the
# project's own CI scripts (they need root and Debian's mirror).
require_engine_and_rig() {
  if ! docker compose version >/dev/null 2>&1; then
    log "docker or the Compose v2 plugin is missing: running .ci/install-tools.sh"
    "$BENCH_ROOT/.ci/install-tools.sh"
  fi
  docker info >/dev/null 2>&1 || die "no Docker daemon answers: start one (.ci/engine.sh start)"
  if ! docker image inspect "$RIG_BASE" "$RIG_CONSUL" >/dev/null 2>&1; then
    [ -x "$BENCH_ROOT/.ci/rig-images.sh" ] ||
      die "rig images $RIG_BASE / $RIG_CONSUL are missing and .ci/rig-images.sh is not in this checkout"
    log "rig images missing: running .ci/install-tools.sh and .ci/rig-images.sh"
    "$BENCH_ROOT/.ci/install-tools.sh"
    "$BENCH_ROOT/.ci/rig-images.sh"
  fi
}

# Refuses to start when a bench port is already taken (a leftover stack, or someone else's).
require_free_ports() {
  local port
  for port in "$BENCH_LB_PORT" "$BENCH_STATS_PORT" "$BENCH_CONSUL_PORT"; do
    if ss -Htln "sport = :$port" | grep -q .; then
      die "port $port is already in use; is another bench script running?"
    fi
  done
}

# write_spec DIR PROJECT DISCOVERY [MAX_REPLICAS [WEB_WORKERS]]: a spec for the offline rig, on
# the bench ports; lb.max_replicas and web.workers keep the spec's defaults unless given.
write_spec() {
  cat >"$1/provision.yaml" <<EOF
# Written by bench/$BENCH_NAME.sh; removed when it exits.
project: $2
discovery: $3
images:
  base: $RIG_BASE
  consul: $RIG_CONSUL
consul:
  http_port: $BENCH_CONSUL_PORT
lb:
  port: $BENCH_LB_PORT
  stats_port: $BENCH_STATS_PORT
EOF
  if [ -n "${4:-}" ]; then
    printf '  max_replicas: %s\n' "$4" >>"$1/provision.yaml"
  fi
  if [ -n "${5:-}" ]; then
    printf 'web:\n  workers: %s\n' "$5" >>"$1/provision.yaml"
  fi
}

# teardown_stack DIR PROJECT: removes the stack with its volumes, then the images provision built
# for it (tagged PROJECT-SERVICE:HASH). Falls back to compose when provision cannot do it.
teardown_stack() {
  local dir=$1 project=$2 images
  if [ -f "$dir/provision.yaml" ] && [ -n "${PROVISION:-}" ]; then
    "$PROVISION" -q -f "$dir/provision.yaml" destroy --volumes >/dev/null 2>&1 ||
      docker compose -p "$project" -f "$dir/generated/compose.yaml" down --volumes --remove-orphans >/dev/null 2>&1 ||
      true
  fi
  images=$(docker images --format '{{.Repository}}:{{.Tag}}' | grep "^$project-" || true)
  if [ -n "$images" ]; then
    # shellcheck disable=SC2086 # one image reference per word
    docker image rm $images >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

# StartedAt of every container of a compose project, one "name started-at" line each, sorted.
started_at() {
  docker ps -aq --filter "label=com.docker.compose.project=$1" |
    xargs -r docker inspect -f '{{.Name}} {{.State.StartedAt}}' | sort
}

# hey_summary FILE: hey's report reduced to one line of numbers, "sent 2xx non-2xx errors p50 p99
# max req/s" (latencies in ms; "-" when hey answered nothing). Errors are requests with no HTTP
# answer (timeouts, refused or reset connections).
hey_summary() {
  awk '
    /^Status code distribution:/ { section = "status"; next }
    /^Error distribution:/ { section = "error"; next }
    /^[A-Z]/ { section = "" }
    /Requests\/sec:/ { rps = $2 }
    /Slowest:/ { max = $2 * 1000 }
    / 50% in / { p50 = $3 * 1000 }
    / 99% in / { p99 = $3 * 1000 }
    section == "status" && /\[[0-9]+\]/ {
      code = $1; gsub(/[][]/, "", code)
      if (code ~ /^2/) ok += $2; else bad += $2
    }
    section == "error" && /\[[0-9]+\]/ { n = $1; gsub(/[][]/, "", n); err += n }
    function ms(v) { return v == "" ? "-" : sprintf("%.1f", v) }
    END {
      printf "%d %d %d %d %s %s %s %s\n", ok + bad + err, ok, bad, err, ms(p50), ms(p99), ms(max),
        (rps == "" ? "-" : sprintf("%.1f", rps))
    }' "$1"
}

# install_hey: Debian's hey, with apt-get when it is missing.
install_hey() {
  if ! command -v hey >/dev/null 2>&1; then
    log "hey missing: installing Debian's hey package"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends hey >/dev/null
  fi
}
