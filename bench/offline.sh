#!/usr/bin/env bash
# Times the offline quick start (docs/offline.md), step by step, on this machine's engine and apt
# mirror. Per run, in a fresh temporary directory:
#   doctor        `provision doctor` outside any project (so it also asks whether Docker Hub answers)
#   images cold   `provision images build --prefix P` with none of P's images present: mmdebstrap,
#                 docker import, consul from Debian bullseye, HAProxy. The three "cold: …" rows
#                 split it per image, from the command's own `built IMAGE in N s` lines
#   images warm   the same command again: every image present and up to date, so all are kept
#   init          `provision init --offline` (PROVISION_RIG_PREFIX=P, project bench-offline)
#   apply first   the first `provision apply`: builds web, redis and lb FROM P's base, starts the
#                 stack and waits until the load balancer routes. "apply: building images" is the
#                 `docker compose build` part of it, from apply's own progress line
#   verify 5      `provision verify --scale 5`
#   destroy       `provision destroy --volumes` of that 5-replica stack
#   apply again   `provision apply` once more, its images now present (a restart after destroy);
#                 then the stack and the bench-offline-* images are removed before the next run
# N runs (default 3); each row is wall seconds as min / median / max over the runs.
#
# P is a throw-away prefix (default localhost/provision-bench-offline, BENCH_OFFLINE_PREFIX to
# change it; the real localhost/provision-rig is refused): its images are removed before every cold
# build and when the script exits, so the end-to-end tests' rig images are never touched. The stack
# uses the bench ports (lb 18080, stats 18404, consul 18500) and is destroyed on exit.
#
# How to read it: the cold build and the first apply download packages, so they depend on the
# mirror as much as on the machine. A new base image has a new ID, so each run's first apply builds
# with an empty cache; with --skip-cold the base is kept and Docker's build cache may serve the
# later runs' first apply (the output says so). Every command is bounded by `timeout`.
#
# Usage: bench/offline.sh [--runs N] [--skip-cold]
#        (PROVISION_BIN=path skips `cargo build --release`)
# Needs root (images build runs mmdebstrap), mmdebstrap, and Debian archives in the apt sources.
set -euo pipefail

BENCH_NAME=offline
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { die "usage: bench/offline.sh [--runs N] [--skip-cold]"; }
RUNS=3
SKIP_COLD=false
while [ $# -gt 0 ]; do
  case $1 in
    --runs)
      [ $# -ge 2 ] || usage
      RUNS=$2
      shift 2
      ;;
    --skip-cold)
      SKIP_COLD=true
      shift
      ;;
    *) usage ;;
  esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs: a positive whole number, not '$RUNS'"

PREFIX=${BENCH_OFFLINE_PREFIX:-localhost/provision-bench-offline}
PREFIX=${PREFIX%/}
case $PREFIX in
  "" | localhost/provision-rig) die "BENCH_OFFLINE_PREFIX must not be empty nor the rig's own prefix" ;;
esac
PROJECT=bench-offline
# Upper bounds per command, in seconds: a hung step stops the script instead of the machine.
COLD_LIMIT=900
APPLY_LIMIT=600
STEP_LIMIT=180

docker info >/dev/null 2>&1 || die "no Docker daemon answers: start one (.ci/engine.sh start)"
docker compose version >/dev/null 2>&1 || die "Compose v2 is missing: run .ci/install-tools.sh"
[ "$(id -u)" = 0 ] || die "run as root: provision images build runs mmdebstrap"
require_free_ports
build_provision

WORK=$(mktemp -d /tmp/bench-offline.XXXXXX)

# The images under the bench prefix, one reference per line.
bench_images() {
  docker images --format '{{.Repository}}:{{.Tag}}' | grep "^$PREFIX/" || true
}
remove_bench_images() {
  local images
  images=$(bench_images)
  if [ -n "$images" ]; then
    # shellcheck disable=SC2086 # one image reference per word
    docker image rm $images >/dev/null
  fi
}
cleanup() {
  local dir
  log "tearing down $PROJECT and the $PREFIX images"
  for dir in "$WORK"/run-*; do
    [ -d "$dir" ] || continue
    # teardown_stack removes the directory with the rest; keep WORK's own removal below.
    teardown_stack "$dir" "$PROJECT"
  done
  remove_bench_images || log "could not remove every $PREFIX image: $(bench_images | paste -sd' ' -)"
  rm -rf "$WORK"
}
trap cleanup EXIT

# timed ROW LIMIT COMMAND...: runs the command under `timeout LIMIT` in the current directory
# (output to $WORK/last.out and .err), appends its wall seconds to $WORK/t-ROW; a failure stops
# the script with the command's output.
timed() {
  local row=$1 limit=$2 t0 t1
  shift 2
  t0=$(now_ns)
  if ! timeout "$limit" "$@" >"$WORK/last.out" 2>"$WORK/last.err"; then
    cat "$WORK/last.out" "$WORK/last.err" >&2
    die "failed (or over ${limit} s): $*"
  fi
  t1=$(now_ns)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) / 1e9 }' >>"$WORK/t-$row"
}

# split_cold: the per-image seconds of the cold build just run, from its `built IMAGE in N s` lines.
split_cold() {
  local kind seconds
  for kind in debian consul haproxy; do
    seconds=$(sed -nE "s|^built +$PREFIX/$kind:[^ ]+ in ([0-9.]+) s.*|\1|p" "$WORK/last.out")
    [ -n "$seconds" ] || die "the cold build printed no 'built $PREFIX/$kind' line"
    printf '%s\n' "$seconds" >>"$WORK/t-cold-$kind"
  done
}

# apply_build_seconds: the `docker compose build` part of the apply just run, from its progress line
# ("building images (…): done after N s"); nothing when apply built nothing.
apply_build_seconds() {
  sed -nE 's/^building images .*done after ([0-9.]+) ?s.*/\1/p' "$WORK/last.err" | tail -n1
}

if $SKIP_COLD && [ -z "$(bench_images)" ]; then
  log "--skip-cold, but no $PREFIX image exists: building them once, untimed"
  timeout "$COLD_LIMIT" "$PROVISION" -q images build --prefix "$PREFIX" >/dev/null
fi

log "$RUNS runs; prefix $PREFIX; project $PROJECT"
for i in $(seq 1 "$RUNS"); do
  run=$WORK/run-$i
  mkdir -p "$run" "$WORK/doctor-$i"
  log "run $i: doctor"
  (cd "$WORK/doctor-$i" && timed doctor "$STEP_LIMIT" "$PROVISION" doctor)
  if ! $SKIP_COLD; then
    log "run $i: images build, cold"
    remove_bench_images
    timed cold "$COLD_LIMIT" "$PROVISION" images build --prefix "$PREFIX"
    split_cold
    cp "$WORK/last.out" "$WORK/cold-said"
  fi
  log "run $i: images build, warm"
  timed warm "$STEP_LIMIT" "$PROVISION" images build --prefix "$PREFIX"
  kept=$(grep -c '^kept ' "$WORK/last.out" || true)
  [ "$kept" = 3 ] || die "the warm build kept $kept of 3 images"

  log "run $i: init --offline, apply, verify --scale 5, destroy, apply again"
  cd "$run"
  timed init "$STEP_LIMIT" env PROVISION_RIG_PREFIX="$PREFIX" \
    "$PROVISION" init --offline -y --project "$PROJECT" --lb-port "$BENCH_LB_PORT"
  # init has no flags for these two ports: uncomment them from its template onto the bench ports.
  sed -i -E \
    -e "s|^  # stats_port: [0-9]+ .*|  stats_port: $BENCH_STATS_PORT|" \
    -e 's|^# consul:$|consul:|' \
    -e "s|^#   http_port: [0-9]+ .*|  http_port: $BENCH_CONSUL_PORT|" provision.yaml
  if ! grep -q "^  stats_port: $BENCH_STATS_PORT\$" provision.yaml ||
    ! grep -q "^  http_port: $BENCH_CONSUL_PORT\$" provision.yaml ||
    ! grep -q "base: $PREFIX/debian:trixie" provision.yaml; then
    die "init --offline wrote a spec this script cannot point at the bench ports and prefix"
  fi
  timed apply-first "$APPLY_LIMIT" "$PROVISION" apply
  apply_build_seconds >>"$WORK/t-apply-build"
  timed verify "$STEP_LIMIT" "$PROVISION" verify --scale 5
  grep -q 'result: PASS' "$WORK/last.out" || die "verify --scale 5 did not print PASS"
  timed destroy "$STEP_LIMIT" "$PROVISION" destroy --volumes
  timed apply-again "$APPLY_LIMIT" "$PROVISION" apply
  cd "$WORK"
  # The stack, its volumes and the bench-offline-* images go, so the next run's first apply
  # builds again.
  teardown_stack "$run" "$PROJECT"
done

printf 'offline quick start, %s runs, prefix %s, %s\n' "$RUNS" "$PREFIX" "$("$PROVISION" --version)"
printf 'machine: %s cores, %s\n' "$(nproc)" "$(uptime | sed -E 's/^ +//')"
if $SKIP_COLD; then
  printf 'cold builds skipped: the base was kept, so Docker'"'"'s build cache may serve "apply first"\n'
fi
printf '%-28s %26s\n' "" "wall s: min / median / max"
row() {
  local file=$WORK/t-$1 tmin tmed tmax
  [ -s "$file" ] || return 0
  read -r tmin tmed tmax < <(min_median_max <"$file")
  printf '%-28s %8.1f / %6.1f / %6.1f\n' "$2" "$tmin" "$tmed" "$tmax"
}
row doctor "doctor"
row cold "images build, cold"
row cold-debian "  cold: base (mmdebstrap)"
row cold-consul "  cold: consul"
row cold-haproxy "  cold: haproxy"
row warm "images build, warm"
row init "init --offline"
row apply-first "apply, first time"
row apply-build "  apply: building images"
row verify "verify --scale 5"
row destroy "destroy --volumes (5 web)"
row apply-again "apply again (images built)"
if [ -s "$WORK/cold-said" ]; then
  printf 'the last cold build said:\n'
  sed 's/^/  /' "$WORK/cold-said"
fi
