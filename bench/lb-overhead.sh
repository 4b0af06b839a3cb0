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
# CPU per request, saturated runs: the lb container's cgroup (HAProxy alone) and the engine's
# log path (dockerd, containerd and the lb container's shim, from /proc), CPU µs divided by the
# requests hey got an answer to; for direct runs the lb figure is the baseline HAProxy burns on
# health checks while the load bypasses it.
#
# --access-log MODE sets the spec's lb.access_log (off | sampled | full; the spec's default
# when not given), to measure what HAProxy's request log costs.
#
# Usage: bench/lb-overhead.sh [--rounds N] [--duration S] [--rate R] [--workers W] [--access-log MODE]
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
ACCESS_LOG=
usage() { die "usage: bench/lb-overhead.sh [--rounds N] [--duration S] [--rate R] [--workers W] [--access-log off|sampled|full]"; }
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) ROUNDS=${2:-} && shift 2 ;;
    --duration) DURATION=${2:-} && shift 2 ;;
    --rate) RATE=${2:-} && shift 2 ;;
    --workers) WORKERS=${2:-} && shift 2 ;;
    --access-log) ACCESS_LOG=${2:-} && shift 2 ;;
    *) usage ;;
  esac
done
for n in "$ROUNDS" "$DURATION" "$RATE" "$WORKERS"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || usage
done
case $ACCESS_LOG in '' | off | sampled | full) ;; *) usage ;; esac
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
if [ -n "$ACCESS_LOG" ]; then
  # write_spec leaves lb last but for web: put the key under lb, before any web section.
  sed -i "s/^  stats_port: .*/&\n  access_log: $ACCESS_LOG/" "$SPEC"
fi

log "apply $PROJECT (consul-dns, 1 web replica, web.workers $WORKERS, lb.access_log ${ACCESS_LOG:-default})"
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

# cgroup_cpu_us PID: CPU µs used so far by the cgroup PID is in (cgroup v1 cpuacct or v2 cpu.stat).
cgroup_cpu_us() {
  local path
  if path=$(awk -F: '$2 ~ /(^|,)cpuacct(,|$)/ { print $3 }' "/proc/$1/cgroup") && [ -n "$path" ]; then
    echo $(($(cat "/sys/fs/cgroup/cpuacct$path/cpuacct.usage") / 1000))
  else
    path=$(awk -F: '$1 == 0 { print $3 }' "/proc/$1/cgroup")
    awk '$1 == "usage_usec" { print $2 }' "/sys/fs/cgroup$path/cpu.stat"
  fi
}
# procs_cpu_us PID...: CPU µs (user + system) used so far by these processes.
procs_cpu_us() {
  local tick
  tick=$(getconf CLK_TCK)
  for pid in "$@"; do cat "/proc/$pid/stat"; done |
    sed 's/^.*) //' | awk -v t="$tick" '{ s += $12 + $13 } END { printf "%d\n", s * 1e6 / t }'
}
# The engine's part of the request log: the daemon, containerd, and the lb container's shim
# (it copies the container's stdout to dockerd, which writes the json-file log).
ENGINE_PIDS="$(pidof dockerd) $(pidof containerd) $(ps -o ppid= -p "$LB_PID" | tr -d ' ')"
# cpu_snapshot: "lb-cgroup-µs engine-µs" now.
cpu_snapshot() {
  # shellcheck disable=SC2086 # one pid per word
  printf '%s %s\n' "$(cgroup_cpu_us "$LB_PID")" "$(procs_cpu_us $ENGINE_PIDS)"
}

# A warm-up, so neither side pays for the first connections and imports.
in_lb_netns hey -n 200 -c 5 "$DIRECT_URL" >/dev/null
in_lb_netns hey -n 200 -c 5 "$LB_URL" >/dev/null

for round in $(seq 1 "$ROUNDS"); do
  for target in direct lb; do
    if [ "$target" = direct ]; then url=$DIRECT_URL; else url=$LB_URL; fi
    log "round $round: $target, saturated then $RATE req/s, ${DURATION}s each"
    read -r lb0 eng0 < <(cpu_snapshot)
    in_lb_netns hey -z "${DURATION}s" -c "$CONCURRENCY" -t 5 "$url" >"$WORK/sat.out"
    read -r lb1 eng1 < <(cpu_snapshot)
    read -r _ ok bad err p50 _ _ rps < <(hey_summary "$WORK/sat.out")
    answered=$((ok + bad))
    ((answered > 0)) || answered=1
    printf '%s %s %s %s %s\n' "$rps" "$p50" "$((bad + err))" \
      "$(((lb1 - lb0) / answered))" "$(((eng1 - eng0) / answered))" >>"$WORK/sat-$target"
    in_lb_netns hey -z "${DURATION}s" -c "$CONCURRENCY" -q "$per_worker" -t 5 "$url" >"$WORK/rate.out"
    read -r sent _ bad2 err2 p50 p99 _ _ < <(hey_summary "$WORK/rate.out")
    printf '%s %s %s %s\n' "$p50" "$p99" "$((bad2 + err2))" "$sent" >>"$WORK/rate-$target"
  done
done

# median FILE COLUMN
median() { awk -v c="$2" '{ print $c }' "$1" | min_median_max | awk '{ print $2 }'; }
failed() { awk -v c="$2" '{ s += $c } END { print s + 0 }' "$1"; }

printf 'load-balancer overhead, consul-dns, 1 web replica (gunicorn, %s workers), lb.access_log %s, %s\n' \
  "$WORKERS" "${ACCESS_LOG:-default}" "$("$PROVISION" --version)"
printf 'client: hey on the host in the lb container'"'"'s network namespace, %s connections, %s s per run, median of %s rounds\n' \
  "$CONCURRENCY" "$DURATION" "$ROUNDS"
printf 'machine: %s cores, %s\n' "$(nproc)" "$(uptime | sed 's/^ *//')"
printf '%-8s %14s %14s %12s %16s %16s %7s %14s %14s\n' target "saturated req/s" "sat. p50 ms" "failed" \
  "p50 @ $RATE/s ms" "p99 @ $RATE/s ms" failed "lb µs/req" "engine µs/req"
for target in direct lb; do
  printf '%-8s %14s %14s %12s %16s %16s %7s %14s %14s\n' "$target" \
    "$(median "$WORK/sat-$target" 1)" "$(median "$WORK/sat-$target" 2)" "$(failed "$WORK/sat-$target" 3)" \
    "$(median "$WORK/rate-$target" 1)" "$(median "$WORK/rate-$target" 2)" "$(failed "$WORK/rate-$target" 3)" \
    "$(median "$WORK/sat-$target" 4)" "$(median "$WORK/sat-$target" 5)"
done
awk -v dr="$(median "$WORK/sat-direct" 1)" -v lr="$(median "$WORK/sat-lb" 1)" \
  -v dp="$(median "$WORK/rate-direct" 1)" -v lp="$(median "$WORK/rate-lb" 1)" \
  -v dps="$(median "$WORK/sat-direct" 2)" -v lps="$(median "$WORK/sat-lb" 2)" -v rate="$RATE" 'BEGIN {
    printf "lb / direct throughput: %.2fx; p50 overhead: %+.1f ms at %s req/s, %+.1f ms saturated\n",
      lr / dr, lp - dp, rate, lps - dps
  }'
