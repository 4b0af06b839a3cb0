#!/usr/bin/env bash
# Measures what a change of HAProxy's configuration costs the requests in flight, three ways, on a
# stack from the offline rig images (project bench-reload; host ports lb 18080, stats 18404,
# consul 18500), web at 3 replicas, for each DNS discovery mode:
#
#   in-place   what `provision apply` does: the file copied in, `haproxy-reload` (checks it, saves
#              the servers' state for the new worker, SIGUSR2, waits for the new worker)
#   no-state   a bare SIGUSR2 with an empty server-state file: the new worker's server slots start
#              without addresses (init-addr none) until DNS answers
#   recreate   `docker compose up --force-recreate lb`: what a changed lb image costs
#
# hey sends RATE requests per second through the lb from the host for the whole run while the lb
# is reloaded (or recreated) RELOADS times, GAP s apart. Printed per mode and way: requests sent,
# answered 2xx, answered otherwise (503: no server), unanswered (reset or refused connections).
#
# Usage: bench/reload.sh [--reloads N] [--gap S] [--rate R]
# Installs Debian's `hey` when missing. PROVISION_BIN=path skips the cargo build.
set -euo pipefail

BENCH_NAME=reload
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RELOADS=5
GAP=3
RATE=100
CONCURRENCY=10
usage() { die "usage: bench/reload.sh [--reloads N] [--gap S] [--rate R]"; }
while [ $# -gt 0 ]; do
  case $1 in
    --reloads) RELOADS=${2:-} && shift 2 ;;
    --gap) GAP=${2:-} && shift 2 ;;
    --rate) RATE=${2:-} && shift 2 ;;
    *) usage ;;
  esac
done
for n in "$RELOADS" "$GAP" "$RATE"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || usage
done
((RATE < CONCURRENCY)) && CONCURRENCY=$RATE
PROJECT=bench-reload
LB_URL=http://127.0.0.1:$BENCH_LB_PORT/
per_worker=$(awk -v r="$RATE" -v w="$CONCURRENCY" 'BEGIN { printf "%g", r / w }')
duration=$((2 + RELOADS * GAP + 2))

install_hey
require_engine_and_rig
require_free_ports
build_provision

WORK=$(mktemp -d /tmp/bench-reload.XXXXXX)
trap 'log "tearing down $PROJECT"; teardown_stack "$WORK/stack" "$PROJECT"; rm -rf "$WORK"' EXIT

lb_container() {
  docker ps -q --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=lb" | head -n 1
}

# reload_once WAY: one change of the lb's configuration, the WAY way.
reload_once() {
  local lb
  lb=$(lb_container)
  case $1 in
    in-place)
      docker cp "$WORK/stack/generated/lb/haproxy.cfg" "$lb:/etc/haproxy/haproxy.cfg.next"
      docker exec -u 0 "$lb" haproxy-reload >/dev/null
      ;;
    no-state)
      docker exec -u 0 "$lb" sh -c 'echo 1 >/run/haproxy/server-state && kill -USR2 1'
      ;;
    recreate)
      docker compose -p "$PROJECT" -f "$WORK/stack/generated/compose.yaml" \
        up -d --force-recreate --no-deps lb >/dev/null 2>&1
      ;;
  esac
}

printf 'HAProxy configuration changes under load, 3 web replicas, %s\n' "$("$PROVISION" --version)"
printf 'client: hey on the host, %s req/s over %s connections for %s s; %s changes %s s apart\n' \
  "$RATE" "$CONCURRENCY" "$duration" "$RELOADS" "$GAP"
printf 'machine: %s cores, %s\n' "$(nproc)" "$(uptime | sed 's/^ *//')"
printf '%-11s %-9s %8s %8s %10s %11s %8s\n' mode way sent 2xx "non-2xx" unanswered "p99 ms"
for mode in docker-dns consul-dns; do
  mkdir -p "$WORK/stack"
  write_spec "$WORK/stack" "$PROJECT" "$mode"
  printf 'web:\n  replicas: 3\n' >>"$WORK/stack/provision.yaml"
  log "apply $PROJECT ($mode, 3 web replicas)"
  "$PROVISION" -q -f "$WORK/stack/provision.yaml" apply >/dev/null
  for way in in-place no-state recreate; do
    log "$mode, $way: $RELOADS changes under $RATE req/s"
    hey -z "${duration}s" -c "$CONCURRENCY" -q "$per_worker" -t 5 "$LB_URL" >"$WORK/hey.out" &
    hey_pid=$!
    sleep 2
    for _ in $(seq 1 "$RELOADS"); do
      reload_once "$way"
      sleep "$GAP"
    done
    wait "$hey_pid"
    read -r sent ok bad err _ p99 _ _ < <(hey_summary "$WORK/hey.out")
    printf '%-11s %-9s %8s %8s %10s %11s %8s\n' "$mode" "$way" "$sent" "$ok" "$bad" "$err" "$p99"
  done
  teardown_stack "$WORK/stack" "$PROJECT"
done
