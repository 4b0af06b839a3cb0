#!/usr/bin/env bash
# Measures `provision apply` on a real engine: a consul-dns stack (project bench-apply; host
# ports lb 18080, stats 18404, consul 18500) built from the offline rig images.
#   first        the first apply: render, preflight, build the images, start, wait until healthy.
#                Docker's build cache is left as it is, so "first" may reuse cached layers; the
#                line after it says which images were built.
#   apply        N no-change `provision apply` runs (default 10)
#   compose      N bare `docker compose -p bench-apply -f generated/compose.yaml up -d` on the
#                same files (what apply wraps, without render, preflight or --wait)
#   compose+wait N of the same with `--wait`, as apply runs it (the fair comparison)
# The three no-change kinds are interleaved, one of each per round, so a busy moment of the
# machine does not land on one kind only. Wall times (seconds) as min / median / max.
#
# How to read it: the no-change rows are what a re-run costs; apply minus compose+wait is
# provision's own overhead (render check, preflight, reading the project's containers). The
# "restarts" line compares every container's StartedAt before and after all the no-change runs:
# it must say 0, or the idempotence promise is broken (the script then exits 1). Each no-change
# row also says how many container starts followed that kind of command, over all its runs.
#
# Usage: bench/apply.sh [N]          (PROVISION_BIN=path skips `cargo build --release`)
# Needs root for the tool install and the rig images when they are missing.
set -euo pipefail

BENCH_NAME=apply
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${1:-10}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "usage: bench/apply.sh [RUNS], RUNS a positive whole number"
PROJECT=bench-apply

require_engine_and_rig
require_free_ports
build_provision

WORK=$(mktemp -d /tmp/bench-apply.XXXXXX)
trap 'log "tearing down $PROJECT"; teardown_stack "$WORK" "$PROJECT"' EXIT
write_spec "$WORK" "$PROJECT" consul-dns
SPEC=$WORK/provision.yaml
COMPOSE_FILE=$WORK/generated/compose.yaml

# timed FILE COMMAND...: runs the command (output to $WORK/last.out and .err), appends its wall
# time in seconds to FILE; a failure stops the script with the command's stderr.
timed() {
  local file=$1 t0 t1
  shift
  t0=$(now_ns)
  if ! "$@" >"$WORK/last.out" 2>"$WORK/last.err"; then
    cat "$WORK/last.out" "$WORK/last.err" >&2
    die "failed: $*"
  fi
  t1=$(now_ns)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) / 1e9 }' >>"$file"
}

log "first apply of $PROJECT"
timed "$WORK/t-first" "$PROVISION" -f "$SPEC" apply
first_summary=$({
  grep -E '^ +(images built|containers):' "$WORK/last.out"
  grep -E '^(building images|starting the stack).*: done after' "$WORK/last.err"
} | sed -E 's/^ +//; s/  +/ /g' | paste -sd';' - | sed 's/;/; /g')
before=$(started_at "$PROJECT")
containers=$(printf '%s\n' "$before" | wc -l)

# note_restarts KIND: counts the containers whose StartedAt changed since the previous command into
# $WORK/r-KIND, so a restart is put on the command that caused it.
last=$before
note_restarts() {
  local now
  now=$(started_at "$PROJECT")
  diff <(printf '%s\n' "$last") <(printf '%s\n' "$now") | grep -c '^>' >>"$WORK/r-$1" || true
  last=$now
}
log "$RUNS rounds of: provision apply, compose up -d, compose up -d --wait (no change)"
for _ in $(seq 1 "$RUNS"); do
  timed "$WORK/t-apply" "$PROVISION" -f "$SPEC" apply
  note_restarts apply
  timed "$WORK/t-compose" docker compose -p "$PROJECT" -f "$COMPOSE_FILE" up -d
  note_restarts compose
  timed "$WORK/t-compose-wait" docker compose -p "$PROJECT" -f "$COMPOSE_FILE" up -d --wait
  note_restarts compose-wait
done
after=$(started_at "$PROJECT")
restarted=$(diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") | grep -c '^>' || true)

printf 'provision apply, consul-dns stack on the offline rig images (%s containers), %s\n' "$containers" "$("$PROVISION" --version)"
printf 'first apply:  %.1f s  (%s)\n' "$(cat "$WORK/t-first")" "$first_summary"
printf 'no change, %s runs each, wall s:   min / median / max\n' "$RUNS"
for kind in apply compose compose-wait; do
  read -r tmin tmed tmax < <(min_median_max <"$WORK/t-$kind")
  case $kind in
    apply) label="provision apply" ;;
    compose) label="compose up -d" ;;
    compose-wait) label="compose up -d --wait" ;;
  esac
  printf '  %-22s %8.2f / %6.2f / %6.2f   restarted %s\n' "$label" "$tmin" "$tmed" "$tmax" \
    "$(awk '{ s += $1 } END { print s + 0 }' "$WORK/r-$kind")"
done
printf 'restarts: %s of %s containers have a new StartedAt after %s no-change runs of each kind\n' \
  "$restarted" "$containers" "$RUNS"
if [ "$restarted" != 0 ]; then
  diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") >&2 || true
  exit 1
fi
