#!/usr/bin/env bash
# Measures what the load balancer costs: the same client, in the same place, sends the same
# requests once straight to the one web replica and once through HAProxy. A consul-dns stack
# (project bench-lbo; host ports lb 18080, stats 18404, consul 18500) from the offline rig images,
# web at 1 replica (`web.workers` as given, default 2).
#
# The replicas publish no port, so `hey` runs on the host inside the lb container's network
# namespace (`nsenter -n -t <lb pid>`): the direct target is the replica's address on the
# project network (http://IP:5000/), the balanced one is HAProxy's frontend on that namespace's
# loopback (http://127.0.0.1:8080/). Both answer the same hit-counter page (one redis INCR).
#
# Per round, interleaved direct / lb so a busy moment of the machine hits both:
#   saturated   hey -c 10 for DUR s, as fast as the replica answers: req/s and p50 ms
#   at R req/s  hey -c 10 at R req/s in all (default 100) for DUR s: p50 and p99 ms, the latency
#               a request sees when nothing queues
# Printed: the median over the rounds of each number, then the ratio of the saturated req/s
# (lb / direct, the throughput target is >= 0.9) and the p50 overhead (lb minus direct, ms).
#
# Usage: bench/lb-overhead.sh [--rounds N] [--duration S] [--rate R] [--workers W]
# Installs Debian's `hey` when missing. PROVISION_BIN=path skips the cargo build. Needs root
# (nsenter).
set -euo pipefail

BENCH_NAME=lb-overhead
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=3
DURATION=10
RATE=100
WORKERS=2
CONCURRENCY=10
usage() { die "usage: bench/lb-overhead.sh [--rounds N] [--duration S] [--rate R] [--workers W]"; }
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) ROUNDS=${2:-} && shift 2 ;;
    --duration) DURATION=${2:-} && shift 2 ;;
    --rate) RATE=${2:-} && shift 2 ;;
    --workers) WORKERS=${2:-} && shift 2 ;;
    *) usage ;;
  esac
done
for n in "$ROUNDS" "$DURATION" "$RATE" "$WORKERS"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || usage
done
((RATE < CONCURRENCY)) && CONCURRENCY=$RATE
PROJECT=bench-lbo

install_hey
command -v nsenter >/dev/null 2>&1 || die "nsenter (util-linux) is missing"
require_engine_and_rig
require_free_ports
build_provision

WORK=$(mktemp -d /tmp/bench-lbo.XXXXXX)
trap 'log "tearing down $PROJECT"; teardown_stack "$WORK" "$PROJECT"' EXIT
write_spec "$WORK" "$PROJECT" consul-dns "" "$WORKERS"
SPEC=$WORK/provision.yaml

log "apply $PROJECT (consul-dns, 1 web replica, web.workers $WORKERS)"
"$PROVISION" -q -f "$SPEC" apply >/dev/null

container_of() {
  docker ps -q --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=$1" | head -n 1
}
LB_PID=$(docker inspect -f '{{.State.Pid}}' "$(container_of lb)")
WEB_IP=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$(container_of web)" | awk '{ print $1 }')
if [ -z "$WEB_IP" ] || [ "$LB_PID" = 0 ]; then die "no lb process or no web address"; fi
DIRECT_URL=http://$WEB_IP:5000/
LB_URL=http://127.0.0.1:8080/
per_worker=$(awk -v r="$RATE" -v w="$CONCURRENCY" 'BEGIN { printf "%g", r / w }')

# in_lb_netns ARGS...: runs a command on the host inside the lb container's network namespace.
in_lb_netns() { nsenter -n -t "$LB_PID" "$@"; }

# A warm-up, so neither side pays for the first connections and imports.
in_lb_netns hey -n 200 -c 5 "$DIRECT_URL" >/dev/null
in_lb_netns hey -n 200 -c 5 "$LB_URL" >/dev/null

for round in $(seq 1 "$ROUNDS"); do
  for target in direct lb; do
    if [ "$target" = direct ]; then url=$DIRECT_URL; else url=$LB_URL; fi
    log "round $round: $target, saturated then $RATE req/s, ${DURATION}s each"
    in_lb_netns hey -z "${DURATION}s" -c "$CONCURRENCY" -t 5 "$url" >"$WORK/sat.out"
    read -r _ _ bad err p50 _ _ rps < <(hey_summary "$WORK/sat.out")
    printf '%s %s %s\n' "$rps" "$p50" "$((bad + err))" >>"$WORK/sat-$target"
    in_lb_netns hey -z "${DURATION}s" -c "$CONCURRENCY" -q "$per_worker" -t 5 "$url" >"$WORK/rate.out"
    read -r sent _ bad2 err2 p50 p99 _ _ < <(hey_summary "$WORK/rate.out")
    printf '%s %s %s %s\n' "$p50" "$p99" "$((bad2 + err2))" "$sent" >>"$WORK/rate-$target"
  done
done

# median FILE COLUMN
median() { awk -v c="$2" '{ print $c }' "$1" | min_median_max | awk '{ print $2 }'; }
failed() { awk -v c="$2" '{ s += $c } END { print s + 0 }' "$1"; }

printf 'load-balancer overhead, consul-dns, 1 web replica (gunicorn, %s workers), %s\n' "$WORKERS" "$("$PROVISION" --version)"
printf 'client: hey on the host in the lb container'"'"'s network namespace, %s connections, %s s per run, median of %s rounds\n' \
  "$CONCURRENCY" "$DURATION" "$ROUNDS"
printf 'machine: %s cores, %s\n' "$(nproc)" "$(uptime | sed 's/^ *//')"
printf '%-8s %14s %14s %12s %16s %16s %7s\n' target "saturated req/s" "sat. p50 ms" "failed" "p50 @ $RATE/s ms" "p99 @ $RATE/s ms" failed
for target in direct lb; do
  printf '%-8s %14s %14s %12s %16s %16s %7s\n' "$target" \
    "$(median "$WORK/sat-$target" 1)" "$(median "$WORK/sat-$target" 2)" "$(failed "$WORK/sat-$target" 3)" \
    "$(median "$WORK/rate-$target" 1)" "$(median "$WORK/rate-$target" 2)" "$(failed "$WORK/rate-$target" 3)"
done
awk -v dr="$(median "$WORK/sat-direct" 1)" -v lr="$(median "$WORK/sat-lb" 1)" \
  -v dp="$(median "$WORK/rate-direct" 1)" -v lp="$(median "$WORK/rate-lb" 1)" \
  -v dps="$(median "$WORK/sat-direct" 2)" -v lps="$(median "$WORK/sat-lb" 2)" -v rate="$RATE" 'BEGIN {
    printf "lb / direct throughput: %.2fx; p50 overhead: %+.1f ms at %s req/s, %+.1f ms saturated\n",
      lr / dr, lp - dp, rate, lps - dps
  }'
