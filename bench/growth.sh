#!/usr/bin/env bash
# Measures what a replica costs and how the stack grows: a consul-dns stack (project
# bench-growth; host ports lb 18080, stats 18404, consul 18500) from the offline rig images, with
# `web.workers: 1` and `lb.max_replicas: 64`.
#
# (a) Idle cost. With web at 0, 10, 20 and 50 replicas and no traffic, after a settle time, it
#     measures one window (default 30 s) of:
#       machine %   the whole machine's busy CPU (/proc/stat deltas), in % of one core. Other
#                   work on the machine lands here too: read it next to the load average
#       stack %     the sum of the project's containers' cgroup CPU (cpuacct.usage deltas)
#       shims %     the containerd-shim of each container, with the children it waited for
#                   (runc runs every `docker exec` of a health check from there)
#       web %       the web replicas' cgroups alone
#       load1       the 1-minute load average at the end of the window
#     and per idle replica, against the 0-replica row: (stack + shims)(N) minus the same at 0,
#     divided by N ("per replica"), and the same from the machine-wide number ("machine/replica",
#     noisy when other work runs).
# (b) Growth under load. Steps 1 -> 10 -> 50 -> 2 (`provision verify --scale N --json`, batches
#     as verify chooses them), each under its own `hey` run at 100 req/s (10 workers, 5 s timeout)
#     to the load balancer on 127.0.0.1, from HOLD s before the step to HOLD s after it. Per step:
#       verify s     wall time of `verify --scale N`; batches and passed come from its JSON
#       sent, failed what hey sent, and how many got no 2xx (non-2xx answers + no answer)
#       p50/p99/max  hey's latencies in ms. hey is closed-loop (10 workers, each rate-limited):
#                    a stall delays the next requests instead of counting against them, so read
#                    "req/s" too: below the rate means requests were held back
#       UP s         from the start of `verify` until HAProxy's stats showed N servers UP
#       up>1st s     for each new replica, from HAProxy marking it UP (its health check passed)
#                    to the first request HAProxy sent it (its `stot` grew): median / max over
#                    the step's new replicas. The stats are polled every 0.2 s, so this is
#                    known to about 0.2 s
#       start>1st s  for each new replica, from its container starting (StartedAt) to that first
#                    request: median / max. An upper bound on "healthy to first answer": it also
#                    holds gunicorn's start, consul's check and HAProxy's DNS refresh
# The idle counts that are also steps (10 and 50) are measured right after those steps, once
# their load has stopped, so 50 replicas start only once.
#
# Usage: bench/growth.sh [--idle "0 10 20 50"] [--steps "1 10 50 2"] [--window S] [--settle S]
#                        [--rate R] [--hold S] [--max-load S]
#   --max-load  upper bound on each hey run in seconds (default 240); hey is stopped earlier,
#               as soon as its step and hold are done
# Installs Debian's `hey` when missing. PROVISION_BIN=path skips the cargo build. Needs root (it
# reads the containers' cgroups and the shims' /proc entries).
set -euo pipefail

BENCH_NAME=growth
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IDLE="0 10 20 50"
STEPS="1 10 50 2"
WINDOW=30
SETTLE=15
RATE=100
HOLD=5
MAX_LOAD=240
WORKERS=10
usage() { die "usage: bench/growth.sh [--idle \"0 10 20 50\"] [--steps \"1 10 50 2\"] [--window S] [--settle S] [--rate R] [--hold S] [--max-load S]"; }
while [ $# -gt 0 ]; do
  case $1 in
    --idle) IDLE=${2:-} && shift 2 ;;
    --steps) STEPS=${2:-} && shift 2 ;;
    --window) WINDOW=${2:-} && shift 2 ;;
    --settle) SETTLE=${2:-} && shift 2 ;;
    --rate) RATE=${2:-} && shift 2 ;;
    --hold) HOLD=${2:-} && shift 2 ;;
    --max-load) MAX_LOAD=${2:-} && shift 2 ;;
    *) usage ;;
  esac
done
for n in "$WINDOW" "$SETTLE" "$RATE" "$HOLD" "$MAX_LOAD" $IDLE $STEPS; do
  [[ $n =~ ^[0-9]+$ ]] || usage
done
((RATE >= 1 && WINDOW >= 1)) || usage
((RATE < WORKERS)) && WORKERS=$RATE
PROJECT=bench-growth
MAX_REPLICAS=64
LB_URL=http://127.0.0.1:$BENCH_LB_PORT/
STATS_CSV="http://127.0.0.1:$BENCH_STATS_PORT/stats;csv"
CLK_TCK=$(getconf CLK_TCK)
CORES=$(nproc)

install_hey
require_engine_and_rig
require_free_ports
build_provision

WORK=$(mktemp -d /tmp/bench-growth.XXXXXX)
HEY_PID=""
POLL_PID=""
# Stops the load and the stats poller this script started, by their ids.
stop_helpers() {
  local pid
  for pid in "$HEY_PID" "$POLL_PID"; do
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  done
  HEY_PID="" POLL_PID=""
}
cleanup() {
  stop_helpers
  log "tearing down $PROJECT"
  teardown_stack "$WORK" "$PROJECT"
}
trap cleanup EXIT
write_spec "$WORK" "$PROJECT" consul-dns "$MAX_REPLICAS" 1
SPEC=$WORK/provision.yaml

web_ids() { docker ps -q --no-trunc --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=web"; }
all_ids() { docker ps -q --no-trunc --filter "label=com.docker.compose.project=$PROJECT"; }

# cgroup v1 (this engine's layout) or v2 with the systemd driver: the container's CPU in ns.
cgroup_ns() {
  local id=$1 f
  for f in "/sys/fs/cgroup/cpuacct/docker/$id/cpuacct.usage" \
    "/sys/fs/cgroup/cpu,cpuacct/docker/$id/cpuacct.usage"; do
    if [ -r "$f" ]; then
      cat "$f"
      return
    fi
  done
  f=/sys/fs/cgroup/system.slice/docker-$id.scope/cpu.stat
  if [ -r "$f" ]; then
    awk '$1 == "usage_usec" { print $2 * 1000 }' "$f"
    return
  fi
  echo 0
}

# Clock ticks of a process and of the children it waited for (utime stime cutime cstime).
proc_ticks() {
  # The command name (field 2) may hold spaces; the fields after its ")" are fixed.
  sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 + $14 + $15 }' || echo 0
}

# The containerd-shim of each running container: the parent of the container's first process.
shim_pids() {
  local id pid
  for id in $(all_ids); do
    pid=$(docker inspect -f '{{.State.Pid}}' "$id" 2>/dev/null || echo 0)
    if [ "$pid" != 0 ] && [ -r "/proc/$pid/stat" ]; then
      sed 's/^.*) //' "/proc/$pid/stat" | awk '{ print $2 }'
    fi
  done | sort -u
}

# snapshot FILE: "key value" lines of every counter the idle window compares.
snapshot() {
  local id web shim
  web=" $(web_ids | tr '\n' ' ') "
  {
    printf 'ns %s\n' "$(now_ns)"
    awk '$1 == "cpu" { print "busy", $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
    for id in $(all_ids); do
      if [[ $web == *" $id "* ]]; then
        printf 'web %s\n' "$(cgroup_ns "$id")"
      else
        printf 'other %s\n' "$(cgroup_ns "$id")"
      fi
    done
    for shim in $SHIMS; do printf 'shim %s\n' "$(proc_ticks "$shim")"; done
  } >"$1"
}

# measure_idle N: settle, then one window of CPU counters with N web replicas and no load.
# Appends "N machine% stack% shims% web% load1" to $WORK/idle.
measure_idle() {
  local n=$1 running
  running=$(web_ids | wc -l)
  [ "$running" = "$n" ] || log "warning: $running web replicas run, $n expected"
  log "idle at $n replicas: settle ${SETTLE}s, then a ${WINDOW}s window"
  sleep "$SETTLE"
  SHIMS=$(shim_pids)
  snapshot "$WORK/snap-a"
  sleep "$WINDOW"
  snapshot "$WORK/snap-b"
  awk -v n="$n" -v hz="$CLK_TCK" -v load1="$(cut -d' ' -f1 /proc/loadavg)" '
    FNR == NR { a[$1] += $2; next }
    { b[$1] += $2 }
    END {
      s = (b["ns"] - a["ns"]) / 1e9
      machine = (b["busy"] - a["busy"]) / hz / s * 100
      web = (b["web"] - a["web"]) / 1e9 / s * 100
      other = (b["other"] - a["other"]) / 1e9 / s * 100
      shims = (b["shim"] - a["shim"]) / hz / s * 100
      printf "%d %.2f %.2f %.2f %.2f %s\n", n, machine, web + other, shims, web, load1
    }' "$WORK/snap-a" "$WORK/snap-b" >>"$WORK/idle"
}

# scale_quietly N: `verify --scale N` without load, for the idle rows. verify takes 1 and up, so
# 0 replicas is Compose stopping and removing web (each replica deregisters on SIGTERM).
scale_quietly() {
  if [ "$1" = 0 ]; then
    log "docker compose rm --stop --force web (0 replicas, no load)"
    docker compose -p "$PROJECT" -f "$WORK/generated/compose.yaml" rm --stop --force web >/dev/null 2>&1
    return
  fi
  if [ "$(web_ids | wc -l)" = 0 ]; then
    # verify needs a web container to start from; apply brings back the spec's one replica.
    log "apply (web back at 1 replica)"
    "$PROVISION" -q -f "$SPEC" apply >/dev/null
  fi
  log "verify --scale $1 (no load)"
  "$PROVISION" -q -f "$SPEC" verify --scale "$1" >"$WORK/quiet.out" 2>&1 ||
    log "verify --scale $1 did not pass: $(tail -n 3 "$WORK/quiet.out" | tr '\n' ' ')"
}

# The stats CSV of the web backend, one "ns addr status stot" line per server, every 0.2 s.
poll_stats() {
  while :; do
    curl -fsS --max-time 2 "$STATS_CSV" 2>/dev/null | awk -v ns="$(now_ns)" -F, '
      NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
      $col["pxname"] == "web" && $col["svname"] != "BACKEND" && $col["addr"] != "" {
        status = $col["status"]; gsub(/ /, "_", status)
        addr = $col["addr"]; sub(/:[0-9]+$/, "", addr)
        print ns, addr, status, $col["stot"] + 0
      }'
    sleep 0.2
  done
}

# load_step FROM N: one step of (b) under its own hey run; appends a table row to $WORK/steps.
load_step() {
  local from=$1 n=$2 before status t0 t1 verify_s batches passed up_s new_ips conv
  before=" $(web_ids | tr '\n' ' ') "
  poll_stats >"$WORK/poll-$n.log" &
  POLL_PID=$!
  local per_worker
  per_worker=$(awk -v r="$RATE" -v w="$WORKERS" 'BEGIN { printf "%g", r / w }')
  hey -z "${MAX_LOAD}s" -c "$WORKERS" -q "$per_worker" -t 5 "$LB_URL" >"$WORK/hey-$n.out" 2>&1 &
  HEY_PID=$!
  sleep "$HOLD"
  log "verify --scale $n under $RATE req/s"
  t0=$(now_ns)
  status=0
  "$PROVISION" -f "$SPEC" verify --scale "$n" --json >"$WORK/step-$n.json" 2>"$WORK/step-$n.err" || status=$?
  t1=$(now_ns)
  sleep "$HOLD"
  kill -INT "$HEY_PID" 2>/dev/null || true
  for _ in $(seq 1 75); do kill -0 "$HEY_PID" 2>/dev/null || break; sleep 0.2; done
  wait "$HEY_PID" || true
  HEY_PID=""
  kill "$POLL_PID" 2>/dev/null || true
  wait "$POLL_PID" 2>/dev/null || true
  POLL_PID=""

  verify_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
  # A report has checks; an error envelope (docs/json.md) has not.
  if [ -s "$WORK/step-$n.json" ] && jq -e .checks "$WORK/step-$n.json" >/dev/null 2>&1; then
    read -r batches passed < <(jq -r '"\(.scale.batches // "-") \(.passed)"' "$WORK/step-$n.json")
    jq -r '.checks[] | select(.outcome == "fail") | "  \(.name): \(.message)"' "$WORK/step-$n.json" |
      sed "s/^/verify --scale $n failed: /" >>"$WORK/notes"
  else
    batches=- passed=false
  fi
  if [ "$status" != 0 ]; then
    log "verify --scale $n exited $status"
    sed 's/^/    /' "$WORK/step-$n.err" | tail -n 20 >&2
  fi
  # Seconds from t0 until the poller first saw exactly n servers UP.
  up_s=$(awk -v t0="$t0" -v n="$n" '
      { if ($1 != cur) { flush(); cur = $1 } if ($3 ~ /^UP/) up++ }
      function flush() { if (cur != "" && cur >= t0 && up == n && !found) { printf "%.1f", (cur - t0) / 1e9; found = 1 } up = 0 }
      END { flush(); if (!found) print "never" }' "$WORK/poll-$n.log")
  # The new replicas as "address started-ns", then per address: first poll UP, first poll where
  # stot grew past its value when the address first appeared.
  new_ips=$(for id in $(web_ids); do
    [[ $before == *" $id "* ]] && continue
    docker inspect -f '{{.State.StartedAt}} {{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$id" |
      while read -r started ip _; do printf '%s %s\n' "$ip" "$(date -d "$started" +%s%N)"; done
  done)
  conv=- start_conv=-
  if [ -n "$new_ips" ]; then
    printf '%s\n' "$new_ips" >"$WORK/new-$n"
    awk '
        FNR == NR { want[$1] = $2; next }
        !($2 in want) { next }
        !($2 in base) { base[$2] = $4 }
        $3 ~ /^UP/ && !($2 in up) { up[$2] = $1 }
        $4 > base[$2] && !($2 in first) { first[$2] = $1 }
        END {
          for (ip in want) {
            if ((ip in up) && (ip in first)) {
              d = (first[ip] - up[ip]) / 1e9
              print (d < 0 ? 0 : d), (first[ip] - want[ip]) / 1e9
            } else missing++
          }
          if (missing) print "missing " missing > "/dev/stderr"
        }' "$WORK/new-$n" "$WORK/poll-$n.log" >"$WORK/conv-$n" 2>"$WORK/conv-missing"
    if [ -s "$WORK/conv-$n" ]; then
      conv=$(awk '{ print $1 }' "$WORK/conv-$n" | min_median_max | awk '{ printf "%.1f/%.1f", $2, $3 }')
      start_conv=$(awk '{ print $2 }' "$WORK/conv-$n" | min_median_max | awk '{ printf "%.1f/%.1f", $2, $3 }')
    fi
    if [ -s "$WORK/conv-missing" ]; then
      printf 'step %s -> %s: %s new replicas never seen both UP and answering in the stats polls\n' \
        "$from" "$n" "$(awk '{ print $2 }' "$WORK/conv-missing")" >>"$WORK/notes"
    fi
  fi
  read -r sent _ bad err p50 p99 max rps < <(hey_summary "$WORK/hey-$n.out")
  printf '%-9s %8s %7s %6s %6s %6s %7s %7s %7s %6s %5s %9s %11s\n' "$from -> $n" "$verify_s" "$batches" \
    "$passed" "$sent" "$((bad + err))" "$p50" "$p99" "$max" "$rps" "$up_s" "$conv" "$start_conv" >>"$WORK/steps"
  if grep -q '^Error distribution:' "$WORK/hey-$n.out"; then
    sed -n '/^Error distribution:/,$p' "$WORK/hey-$n.out" | head -n 6 | sed "s/^/step $from -> $n hey: /" >>"$WORK/notes"
  fi
}

log "apply $PROJECT (consul-dns, web.workers 1, lb.max_replicas $MAX_REPLICAS)"
"$PROVISION" -q -f "$SPEC" apply >/dev/null
: >"$WORK/idle"
: >"$WORK/steps"
: >"$WORK/notes"

# (a) before (b): the idle counts that are not step targets, lowest first.
targets=" $STEPS "
first_step=${STEPS%% *}
# shellcheck disable=SC2086 # one count per word
for n in $(printf '%s\n' $IDLE | sort -n); do
  [ -n "$n" ] || continue
  [[ $targets == *" $n "* ]] && continue
  scale_quietly "$n"
  measure_idle "$n"
done
if [ -n "$first_step" ]; then
  [ "$(web_ids | wc -l)" = "$first_step" ] || scale_quietly "$first_step"
fi

# (b), with the idle counts that are step targets measured after their step.
from=$first_step
idle=" $IDLE "
# One count (or none) in STEPS: nothing to step through.
[ "${STEPS#* }" = "$STEPS" ] && STEPS=""
for n in ${STEPS#* }; do
  load_step "$from" "$n"
  [[ $idle == *" $n "* ]] && measure_idle "$n"
  from=$n
done

printf 'growth of a consul-dns stack (web.workers 1, lb.max_replicas %s) on the offline rig images, %s\n' \
  "$MAX_REPLICAS" "$("$PROVISION" --version)"
printf 'machine: %s cores, %s\n' "$CORES" "$(uptime | sed 's/^ *//')"
if [ -s "$WORK/idle" ]; then
  printf '\n(a) idle, no traffic, %s s window after %s s settle; %% of one core\n' "$WINDOW" "$SETTLE"
  printf '%8s %9s %7s %7s %7s %6s %12s %16s\n' replicas "machine %" "stack %" "shims %" "web %" load1 "per replica" "machine/replica"
  sort -n "$WORK/idle" | awk '
    NR == 1 { base = $3 + $4; mbase = $2; b = ($1 == 0) }
    {
      per = ($1 > 0 && b) ? sprintf("%.3f", ($3 + $4 - base) / $1) : "-"
      mper = ($1 > 0 && b) ? sprintf("%.2f", ($2 - mbase) / $1) : "-"
      printf "%8d %9.1f %7.2f %7.2f %7.2f %6s %12s %16s\n", $1, $2, $3, $4, $5, $6, per, mper
    }'
fi
printf '\n(b) verify --scale under %s req/s (hey, %s workers, 5 s timeout), each step its own hey run from %s s before to %s s after\n' \
  "$RATE" "$WORKERS" "$HOLD" "$HOLD"
printf '%-9s %8s %7s %6s %6s %6s %7s %7s %7s %6s %5s %9s %11s\n' step "verify s" batches passed sent failed "p50 ms" "p99 ms" "max ms" "req/s" "UP s" "up>1st s" "start>1st s"
cat "$WORK/steps"
if [ -s "$WORK/notes" ]; then
  printf '\nnotes:\n'
  sed 's/^/  /' "$WORK/notes"
fi
