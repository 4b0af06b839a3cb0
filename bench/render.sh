#!/usr/bin/env bash
# Measures `provision render` on the example spec (examples/provision.yaml), no Docker involved:
#   fresh   render into an empty temporary out dir (parse, validate, expand every blueprint, write
#           atomically)
#   again   render into that same dir once it is up to date (nothing to write)
#   check   `render --check` against it (render in memory, compare, write nothing)
# Each is run N times (default 20). For each it prints the wall time in milliseconds and the peak
# resident set size (max RSS) in MiB, as min / median / max over the N runs.
#
# How to read it: wall time is taken with `date +%s%N` around `/usr/bin/time`, so it includes
# starting /usr/bin/time itself; the `baseline` row (`/usr/bin/time true`) is that overhead, to
# subtract. Max RSS comes from /usr/bin/time's %M (GNU time: Debian's `time` package; the script
# installs it with apt-get when missing). Medians matter; a max far above the median is the
# machine being busy, not provision.
#
# Usage: bench/render.sh [N]        (PROVISION_BIN=path skips `cargo build --release`)
set -euo pipefail

BENCH_NAME=render
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${1:-20}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "usage: bench/render.sh [RUNS], RUNS a positive whole number"
SPEC=$BENCH_ROOT/examples/provision.yaml

if [ ! -x /usr/bin/time ]; then
  log "/usr/bin/time missing: installing Debian's time package"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends time >/dev/null
fi
build_provision

WORK=$(mktemp -d /tmp/bench-render.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# measure NAME COMMAND...: appends "ms kib" for one run to $WORK/NAME; the command's own output is
# discarded, and a non-zero exit stops the script (except the expected exit 1 of a stale --check).
measure() {
  local name=$1 t0 t1 status=0
  shift
  t0=$(now_ns)
  /usr/bin/time -f '%M' -o "$WORK/rss" "$@" >/dev/null 2>"$WORK/stderr" || status=$?
  t1=$(now_ns)
  if [ "$status" != 0 ]; then
    cat "$WORK/stderr" >&2
    die "$name: $* exited $status"
  fi
  # GNU time appends a "Command exited with non-zero status" line on failure; %M is the last line.
  printf '%s %s\n' "$(ms_between "$t0" "$t1")" "$(tail -n1 "$WORK/rss")" >>"$WORK/$name"
}

log "$RUNS runs each; spec $SPEC"
for i in $(seq 1 "$RUNS"); do
  out=$WORK/out-$i
  measure baseline true
  measure fresh "$PROVISION" -q -f "$SPEC" render --out "$out"
  measure again "$PROVISION" -q -f "$SPEC" render --out "$out"
  measure check "$PROVISION" -q -f "$SPEC" render --check --out "$out"
done
files=$(find "$WORK/out-1" -type f | wc -l)

printf 'provision render, %s runs each (example spec, %s files rendered), %s\n' "$RUNS" "$files" "$("$PROVISION" --version)"
printf '%-10s %28s   %28s\n' "" "wall ms: min / median / max" "max RSS MiB: min / median / max"
for name in baseline fresh again check; do
  read -r tmin tmed tmax < <(cut -d' ' -f1 "$WORK/$name" | min_median_max)
  read -r rmin rmed rmax < <(cut -d' ' -f2 "$WORK/$name" | min_median_max)
  printf '%-10s %8.1f / %7.1f / %7.1f   %8.1f / %7.1f / %7.1f\n' "$name" \
    "$tmin" "$tmed" "$tmax" \
    "$(awk -v k="$rmin" 'BEGIN { print k / 1024 }')" \
    "$(awk -v k="$rmed" 'BEGIN { print k / 1024 }')" \
    "$(awk -v k="$rmax" 'BEGIN { print k / 1024 }')"
done
