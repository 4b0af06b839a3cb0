#!/usr/bin/env bash
# Measures what each HAProxy setting issue 20 chose does when a node dies: per variant, a fresh
# shared stack of tests/it/e2e_swarm_nodes.rs (consul-dns, 3 consul servers, an lb on node1 and
# node2, 6 web tasks, 100 requests per second through node1's lb) and two of its scenarios, node3
# killed (a worker with 2 web tasks) and node2 killed (an lb and 2 web tasks). A variant puts one
# setting back to what it was before issue 20 (or tries another): the script copies the shipped
# blueprint into a directory, changes one line with sed (and fails if the line is not there), and
# hands the directory to the test as PROVISION_E2E_NODES_LB_BLUEPRINTS; `shipped` changes nothing.
#
#   connect2s      _haproxy-common.j2  timeout connect 500ms -> 2s
#   server30s      _haproxy-common.j2  timeout server lb.server_timeout (2 s in the test) -> 30s
#   noresptimeout  _haproxy-common.j2  retry-on without response-timeout
#   noobserve      haproxy.cfg.j2      without observe layer4 error-limit 1 on-error mark-down
#   layer7         haproxy.cfg.j2      observe layer7 instead of layer4
#
# It prints one row per variant and scenario: failed / sent, the latency p99 and max over the
# whole load, and for node3 when HAProxy had its servers out (from the kill). Each variant takes
# about 2.5 minutes. Needs the swarm rig up (.ci/swarm-rig.sh up) and nothing else on the engine.
#
# Usage: bench/node-loss-settings.sh [VARIANT ...]     (default: all six)
set -euo pipefail

BENCH_NAME=node-loss-settings
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VARIANTS=("$@")
[ ${#VARIANTS[@]} -gt 0 ] || VARIANTS=(shipped connect2s server30s noresptimeout noobserve layer7)

WORK=$(mktemp -d /tmp/bench-node-loss.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# change FILE OLD NEW: the shipped blueprint FILE with the line OLD replaced by NEW, in $dir.
change() {
    local file=$1 old=$2 new=$3
    grep -qxF -- "$old" "$ROOT/blueprints/lb/$file" || die "blueprints/lb/$file has no line '$old'"
    awk -v old="$old" -v new="$new" '$0 == old { print new; next } { print }' \
        "$ROOT/blueprints/lb/$file" >"$dir/$file"
}

OBSERVE_LINE=$(grep -x '    default-server inter .* observe layer4 error-limit 1 on-error mark-down' \
    "$ROOT/blueprints/lb/haproxy.cfg.j2") || die "haproxy.cfg.j2 has no default-server line with observe layer4"

# variant NAME: the blueprint directory for NAME in $dir (empty for shipped).
variant() {
    dir=$WORK/$1
    mkdir -p "$dir"
    case $1 in
        shipped) ;;
        connect2s) change _haproxy-common.j2 '    timeout connect 500ms' '    timeout connect 2s' ;;
        server30s)
            change _haproxy-common.j2 '    timeout server {{ plan.lb.server_timeout | haproxy }}' \
                '    timeout server 30s'
            ;;
        noresptimeout)
            change _haproxy-common.j2 '    retry-on conn-failure empty-response response-timeout' \
                '    retry-on conn-failure empty-response'
            ;;
        noobserve) change haproxy.cfg.j2 "$OBSERVE_LINE" "${OBSERVE_LINE% observe layer4 *}" ;;
        layer7) change haproxy.cfg.j2 "$OBSERVE_LINE" "${OBSERVE_LINE/observe layer4/observe layer7}" ;;
        *) die "unknown variant '$1' (shipped connect2s server30s noresptimeout noobserve layer7)" ;;
    esac
}

eval "$("$ROOT/.ci/swarm-rig.sh" env | sed '/^export DOCKER_HOST=/d')"
export PROVISION_SWARM=require PROVISION_E2E=require

printf '%-14s %-18s %-14s %-22s %s\n' variant scenario "failed/sent" "p99 / max ms" "servers out"
for name in "${VARIANTS[@]}"; do
    variant "$name"
    if [ "$name" = shipped ]; then
        unset PROVISION_E2E_NODES_LB_BLUEPRINTS
    else
        export PROVISION_E2E_NODES_LB_BLUEPRINTS=$dir
    fi
    log "variant $name: running the worker and lb node scenarios (output: $WORK/$name.log)"
    (cd "$ROOT" && cargo test --locked --test it -- swarm_consul_server_node_killed swarm_lb_node_killed \
        --nocapture --test-threads 1) >"$WORK/$name.log" 2>&1 \
        || log "variant $name: the tests failed; their output follows"
    grep -q '^test result: ok' "$WORK/$name.log" || sed 's/^/    /' "$WORK/$name.log" >&2
    # The test's own lines: "<scenario>: N requests sent ..., F failed, ...; latency p99 P ms,
    # max M ms" and "node3 killed: HAProxy had its 2 servers out after S s, ...".
    awk -v variant="$name" '
        /\] (worker|lb) node killed.*requests sent/ {
            scenario = ($0 ~ /worker node killed/) ? "node3 killed" : "node2 killed (lb)"
            match($0, /: [0-9]+ requests sent/); sent = substr($0, RSTART + 2, RLENGTH - 16)
            match($0, /, [0-9]+ failed/); failed = substr($0, RSTART + 2, RLENGTH - 9)
            match($0, /p99 [0-9.]+ ms, max [0-9.]+ ms/)
            split(substr($0, RSTART, RLENGTH), l, " ")
            row[scenario] = sprintf("%-14s %-18s %-14s %-22s", variant, scenario,
                failed "/" sent, l[2] " / " l[5])
        }
        /node3 killed: HAProxy had its/ {
            match($0, /servers out after [0-9.]+ s/); out["node3 killed"] = substr($0, RSTART + 18, RLENGTH - 18)
        }
        END {
            n = 0
            for (s in row) { print row[s] " " (s in out ? out[s] : "-"); n++ }
            if (n == 0) printf "%-14s (no figures: see the output above)\n", variant
        }' "$WORK/$name.log"
done
