#!/usr/bin/env bash
# Measures a rolling `provision apply` on a real engine: a consul-dns stack of 3 web replicas
# (project bench-rollout; host ports lb 18080, stats 18404, consul 18500) from the offline rig
# images, then N rounds (default 3) of: change web.env (a new configuration, so every replica is
# replaced, one at a time: apply's default --batch 1), `provision apply --load 50`.
#
# Per round it prints apply's own figures: the rollout's seconds ("web replaced rolling: 3
# replicas in S s"), the wall seconds of the whole apply, and what its --load saw (requests sent,
# failed, p99). Then min / median / max of the rollout seconds over the rounds. The load is
# provision's own open-loop load (50 req/s through the lb from 127.0.0.1, only while apply runs).
#
# How to read it: "failed" must be 0 in every round (a request failed while a replica was
# replaced); the rollout seconds are what issue 22 ("faster rollouts") is about. Each round's
# phases (start, routed, stop) are in $WORK/round-N.err while the script runs; the script prints
# them per batch.
#
# Usage: bench/rollout.sh [N]          (PROVISION_BIN=path skips `cargo build --release`)
set -euo pipefail

BENCH_NAME=rollout
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${1:-3}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "usage: bench/rollout.sh [ROUNDS], ROUNDS a positive whole number"
PROJECT=bench-rollout
RATE=50

require_engine_and_rig
require_free_ports
build_provision

WORK=$(mktemp -d /tmp/bench-rollout.XXXXXX)
# The copy of the last applied Compose file stays with the stack, not in the user's state.
export XDG_STATE_HOME=$WORK/state
trap 'log "tearing down $PROJECT"; teardown_stack "$WORK" "$PROJECT"' EXIT
write_spec "$WORK" "$PROJECT" consul-dns
printf 'web:\n  replicas: 3\n  env:\n    ROUND: "0"\n' >>"$WORK/provision.yaml"
SPEC=$WORK/provision.yaml

log "first apply of $PROJECT"
"$PROVISION" -f "$SPEC" apply >"$WORK/first.out" 2>"$WORK/first.err" ||
  { cat "$WORK/first.err" >&2; die "the first apply failed"; }

printf '%-6s %10s %8s %8s %8s %8s\n' round rollout_s wall_s sent failed p99
for round in $(seq 1 "$ROUNDS"); do
  sed -i "s/^    ROUND: .*/    ROUND: \"$round\"/" "$SPEC"
  err=$WORK/round-$round.err
  t0=$(now_ns)
  "$PROVISION" -f "$SPEC" apply --load "$RATE" >"$WORK/round-$round.out" 2>"$err" ||
    { cat "$err" >&2; die "round $round: apply failed"; }
  t1=$(now_ns)
  rollout=$(sed -nE 's/^web replaced rolling: [0-9]+ replicas? in ([0-9.]+) s.*/\1/p' "$err")
  [ -n "$rollout" ] || { cat "$err" >&2; die "round $round: apply did not replace web rolling"; }
  load=$(grep -E '^load: ' "$err" | head -1)
  sent=$(sed -nE 's/^load: ([0-9,]+) sent.*/\1/p' <<<"$load" | tr -d ,)
  failed=$(sed -nE 's/.* ([0-9,]+) failed.*/\1/p' <<<"$load" | tr -d ,)
  p99=$(sed -nE 's/.*p99 ([0-9.]+ ?[a-z]+).*/\1/p' <<<"$load")
  printf '%-6s %10s %8s %8s %8s %8s\n' "$round" "$rollout" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')" \
    "${sent:-?}" "${failed:-?}" "${p99:-?}"
  echo "$rollout" >>"$WORK/rollouts"
  grep -E '^(replacing web: .*starting .*|waiting for the load balancer .*|stopping .*|settling web .*): done after' "$err" |
    sed 's/^/         /'
done
printf 'rollout seconds, min / median / max over %s rounds: %s\n' "$ROUNDS" "$(min_median_max <"$WORK/rollouts")"
