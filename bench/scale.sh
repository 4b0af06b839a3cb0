#!/usr/bin/env bash
# Measures the reference scenario, web scaled 1 -> 2 -> 5 -> 2, under steady load, on a real
# engine: a stack (project bench-scale; host ports lb 18080, stats 18404, consul 18500) built from
# the offline rig images, in consul-dns (default) or docker-dns mode.
#
# While `hey` sends a bounded, rate-limited load (default 100 req/s, 10 workers) to the load
# balancer on 127.0.0.1 only, each step runs `provision verify --scale N --json`, and a poller
# reads HAProxy's stats CSV every 0.2 s. Per step it prints:
#   verify s     wall time of the whole `verify --scale N` command
#   scale s      the scale action inside it (drain, compose up --scale --wait), from its JSON
#   converge s   verify's own wait for HAProxy (and consul) to match the running replicas, after
#                the scale action
#   lb=N s       from the start of the step until the stats poller first saw exactly N servers UP
#                (an outside view of convergence; on scale-down the drained servers leave at once)
#   hosts        replicas that answered verify's probes, as HAProxy named them (must be N)
#   lb 5xx       5xx answers HAProxy's frontend counted during the step (stats CSV, before/after)
#   passed       whether every verify check passed
# then HAProxy's UP servers (svname,status,addr from /stats;csv), so the change is visible.
# At the end, hey's totals over the whole run: requests sent, 2xx, non-2xx, failed (transport
# errors: no HTTP answer), p50 and p99 latency of the answered requests, and the achieved rate.
#
# How to read it: non-2xx + failed is what users would have seen go wrong while replicas came and
# went; 0 is the goal. p99 shows the worst waits. The script exits 1 if any step failed verify.
#
# Usage: bench/scale.sh [--discovery consul-dns|docker-dns] [--rate R] [--steps "1 2 5 2"]
#                       [--hold S] [--max-load S]
#   --rate      total requests per second (default 100; the machine has 2 cores, keep it modest)
#   --hold      seconds of steady load before the first step and after each step (default 5)
#   --max-load  hard upper bound on hey's run time in seconds (default 300); the script stops hey
#               earlier, as soon as the last step and its hold are done
# Installs Debian's `hey` with apt-get when missing. PROVISION_BIN=path skips the cargo build.
set -euo pipefail

BENCH_NAME=scale
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DISCOVERY=consul-dns
RATE=100
STEPS="1 2 5 2"
HOLD=5
MAX_LOAD=300
WORKERS=10
usage() { die "usage: bench/scale.sh [--discovery consul-dns|docker-dns] [--rate R] [--steps \"1 2 5 2\"] [--hold S] [--max-load S]"; }
while [ $# -gt 0 ]; do
  case $1 in
    --discovery) DISCOVERY=${2:-} && shift 2 ;;
    --rate) RATE=${2:-} && shift 2 ;;
    --steps) STEPS=${2:-} && shift 2 ;;
    --hold) HOLD=${2:-} && shift 2 ;;
    --max-load) MAX_LOAD=${2:-} && shift 2 ;;
    *) usage ;;
  esac
done
case $DISCOVERY in consul-dns | docker-dns) ;; *) usage ;; esac
for n in "$RATE" "$HOLD" "$MAX_LOAD" $STEPS; do
  [[ $n =~ ^[0-9]+$ ]] || usage
done
((RATE >= 1)) || usage
((RATE < WORKERS)) && WORKERS=$RATE
PROJECT=bench-scale
# Loopback only: the load never leaves this machine.
LB_URL=http://127.0.0.1:$BENCH_LB_PORT/
STATS_CSV="http://127.0.0.1:$BENCH_STATS_PORT/stats;csv"

if ! command -v hey >/dev/null 2>&1; then
  log "hey missing: installing Debian's hey package"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends hey >/dev/null
fi
require_engine_and_rig
require_free_ports
build_provision

WORK=$(mktemp -d /tmp/bench-scale.XXXXXX)
HEY_PID=""
POLL_PID=""
cleanup() {
  # Only the two processes this script started, by their ids.
  local pid
  for pid in "$HEY_PID" "$POLL_PID"; do
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  done
  log "tearing down $PROJECT"
  teardown_stack "$WORK" "$PROJECT"
}
trap cleanup EXIT
write_spec "$WORK" "$PROJECT" "$DISCOVERY"
SPEC=$WORK/provision.yaml

# The stats CSV, reduced to columns by name: `stats_rows` prints pxname,svname,status,addr and the
# frontend's hrsp_5xx for every row (the header is the first line, starting with "# ").
stats_rows() {
  curl -fsS --max-time 2 "$STATS_CSV" | awk -F, '
    NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
    { print $col["pxname"] "," $col["svname"] "," $col["status"] "," $col["addr"] "," $col["hrsp_5xx"] }'
}
# "UP 1/2" (up, checks still settling) takes traffic too; verify counts it the same way.
up_servers() { stats_rows | awk -F, '$1 == "web" && $2 != "BACKEND" && ($3 == "UP" || $3 ~ /^UP /) { print $2 "," $3 "," $4 }'; }
frontend_5xx() { stats_rows | awk -F, '$1 == "http-in" && $2 == "FRONTEND" { print $5 + 0 }'; }

log "apply $PROJECT ($DISCOVERY)"
"$PROVISION" -q -f "$SPEC" apply >/dev/null

# The outside view of convergence: "ns-timestamp count-of-UP-servers", every 0.2 s.
(
  while :; do
    printf '%s %s\n' "$(now_ns)" "$(up_servers 2>/dev/null | wc -l)"
    sleep 0.2
  done
) >"$WORK/poll.log" &
POLL_PID=$!

rate_per_worker=$(awk -v r="$RATE" -v w="$WORKERS" 'BEGIN { printf "%g", r / w }')
log "load: hey -z ${MAX_LOAD}s -c $WORKERS -q $rate_per_worker (= $RATE req/s) $LB_URL"
hey -z "${MAX_LOAD}s" -c "$WORKERS" -q "$rate_per_worker" -t 5 "$LB_URL" >"$WORK/hey.out" 2>&1 &
HEY_PID=$!
sleep "$HOLD"

printf 'provision verify --scale under %s req/s (hey, %s workers), %s, %s\n' \
  "$RATE" "$WORKERS" "$DISCOVERY" "$("$PROVISION" --version)"
printf '%-10s %9s %8s %11s %7s %6s %7s %7s\n' step "verify s" "scale s" "converge s" "lb=N s" hosts "lb 5xx" passed
failed_steps=0
from=1
for n in $STEPS; do
  f5xx_before=$(frontend_5xx || echo 0)
  t0=$(now_ns)
  status=0
  "$PROVISION" -f "$SPEC" verify --scale "$n" --json >"$WORK/step.json" 2>"$WORK/step.err" || status=$?
  t1=$(now_ns)
  f5xx_after=$(frontend_5xx || echo 0)
  if [ "$status" != 0 ]; then
    failed_steps=$((failed_steps + 1))
    log "verify --scale $n exited $status:"
    sed 's/^/    /' "$WORK/step.err" >&2
  fi
  lb_at_n=$(awk -v t0="$t0" -v n="$n" '$1 >= t0 && $2 == n { printf "%.1f", ($1 - t0) / 1e9; found = 1; exit }
    END { if (!found) print "never" }' "$WORK/poll.log")
  # A report has checks; an error envelope (docs/json.md) has not.
  if [ -s "$WORK/step.json" ] && jq -e .checks "$WORK/step.json" >/dev/null 2>&1; then
    read -r scale_s converge_s hosts passed < <(jq -r '[
        (.scale.seconds // "-"),
        ((.checks[] | select(.name == "converged") | .numbers.seconds) // "-"),
        ((.checks[] | select(.name == "replicas answered") | .numbers.answers_per_replica | length) // "-"),
        .passed] | map(tostring) | join(" ")' "$WORK/step.json")
  else
    scale_s=- converge_s=- hosts=- passed=false
  fi
  printf '%-10s %9s %8s %11s %7s %6s %7s %7s\n' "$from -> $n" "$(ms_between "$t0" "$t1" | awk '{ printf "%.1f", $1 / 1000 }')" \
    "$scale_s" "$converge_s" "$lb_at_n" "$hosts" "$((f5xx_after - f5xx_before))" "$passed"
  up_servers | sed 's/^/             UP  /'
  from=$n
  sleep "$HOLD"
done

# hey prints its report when interrupted; wait for it, but never longer than 15 s.
kill -INT "$HEY_PID"
for _ in $(seq 1 75); do kill -0 "$HEY_PID" 2>/dev/null || break; sleep 0.2; done
wait "$HEY_PID" || true
HEY_PID=""
read -r sent ok bad err p50 p99 _ rps < <(hey_summary "$WORK/hey.out")
printf 'load: %s requests sent, %s 2xx, %s non-2xx, %s failed (no answer); latency p50 %s ms, p99 %s ms; %s req/s achieved\n' \
  "$sent" "$ok" "$bad" "$err" "$p50" "$p99" "$rps"
if grep -q '^Error distribution:' "$WORK/hey.out"; then
  sed -n '/^Error distribution:/,$p' "$WORK/hey.out" | sed 's/^/  /'
fi
((failed_steps == 0)) || exit 1
