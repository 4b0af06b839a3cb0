#!/usr/bin/env bash
# Measures each DNS discovery mode's replica ceiling: with N instances of `web` known to the
# discovery source, how many of HAProxy's `server-template` slots get an address. No provision
# binary is involved; the HAProxy configuration has the shape the consul-dns and docker-dns
# blueprints render (same `resolvers` timings, `init-addr none`, `resolve-prefer ipv4`), with
# more slots than the largest N so the slot count is never the limit, and without `check`
# (nothing listens at the fake addresses, and health checks do not decide which slots DNS fills).
#
# Two setups, each with one HAProxy lane per `accepted_payload_size` (--payloads):
#   A. consul-dns on the host: the consul 1.8.7 binary (-dev, loopback, ports 18650-18654, with
#      the stack's dns_config.only_passing) and the host's HAProxy (Debian bookworm: 2.6). The
#      fake instances are registered through consul's HTTP API with addresses in 127.1.0.0/16.
#      Run twice: datacenter `dc1`, and a 63-character datacenter (the longest the spec allows:
#      the datacenter is part of every SRV target name, so it changes how many fit).
#   B. On a user-defined Docker network (the stack's topology): a consul container (rig image,
#      1.8.7, HTTP published on 127.0.0.1:18660), N containers `sleep infinity` with the network
#      alias `web`, and HAProxy containers, each with both a consul-dns backend (SRV from
#      consul:8600) and a docker-dns backend (A records of `web` from Docker's embedded DNS at
#      127.0.0.11): Debian trixie's HAProxy 3.0 (image localhost/provision-bench/haproxy:trixie)
#      and, when the rig has a bookworm base image, bookworm's 2.6 (…/haproxy:bookworm), the one
#      the default `images.base` gets. The images are built here when missing.
#
# For each N in --counts, after the instances are there, the script waits --settle seconds (the
# blueprints re-resolve every second), then reads `show servers state` --samples times, 2 s
# apart. Columns:
#   filled      servers with an address: min-max over the samples
#   distinct    distinct addresses seen over all samples (above `filled` when the answer is a
#               different subset each time: consul shuffles, then trims to the payload size)
#   dig         answers `dig` gets for the same query with the same EDNS size
#   tc          whether that answer had the truncation flag
#
# Usage: bench/ceilings.sh [--counts "50 100 128 135 150 200 256"] [--payloads "8192 32767"]
#                          [--setups "host docker"] [--settle S] [--samples K]
# Needs: root (apt-get for dig and socat when missing), the consul binary from
# .ci/install-tools.sh, Docker and the rig images for setup B. Everything it creates is named
# provision-ceil-*; on exit it stops the processes it started (by pid) and removes its containers,
# network and temporary directory. It keeps the HAProxy image (rebuilding it means an apt run).
set -euo pipefail

BENCH_NAME=ceilings
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

COUNTS="50 100 128 135 150 200 256"
PAYLOADS="8192 32767"
SETUPS="host docker"
SETTLE=5
SAMPLES=3
usage() { die "usage: bench/ceilings.sh [--counts \"50 100 ...\"] [--payloads \"8192 32767\"] [--setups \"host docker\"] [--settle S] [--samples K]"; }
while [ $# -gt 0 ]; do
  case $1 in
    --counts) COUNTS=${2:-} && shift 2 ;;
    --payloads) PAYLOADS=${2:-} && shift 2 ;;
    --setups) SETUPS=${2:-} && shift 2 ;;
    --settle) SETTLE=${2:-} && shift 2 ;;
    --samples) SAMPLES=${2:-} && shift 2 ;;
    *) usage ;;
  esac
done
for n in $COUNTS $PAYLOADS "$SETTLE" "$SAMPLES"; do
  [[ $n =~ ^[0-9]+$ ]] || usage
done
for s in $SETUPS; do
  case $s in host | docker) ;; *) usage ;; esac
done
MAX_N=0
for n in $COUNTS; do
  if ((n > MAX_N)); then MAX_N=$n; fi
done
SLOTS=$((MAX_N + 50))

PREFIX=provision-ceil
CONSUL_BIN=${PROVISION_TOOLS_DIR:-/var/tmp/provision-tools}/consul/consul
HAPROXY_IMAGE=localhost/provision-bench/haproxy
HOST_HTTP=18650
HOST_DNS=18653
DOCKER_HTTP=18660
NETWORK=$PREFIX-net
LONG_DC=$(printf 'd%.0s' $(seq 1 63))

WORK=$(mktemp -d "/tmp/$PREFIX.XXXXXX")
PIDS=()
cleanup() {
  local pid _
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  docker ps -aq --filter "name=^$PREFIX-" 2>/dev/null | xargs -r -n 32 docker rm -f >/dev/null 2>&1 || true
  if docker network inspect "$NETWORK" >/dev/null 2>&1; then
    for _ in 1 2 3 4 5; do
      docker network rm "$NETWORK" >/dev/null 2>&1 && break
      sleep 2
    done
    # Engine 20.10 sometimes keeps a stale endpoint after hundreds of containers are removed;
    # only a daemon restart clears it. The next run reuses the empty network.
    if docker network inspect "$NETWORK" >/dev/null 2>&1; then
      log "could not remove network $NETWORK (the engine reports active endpoints, yet no container is attached)"
    fi
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

need_tools() {
  local missing=()
  command -v dig >/dev/null || missing+=(bind9-dnsutils)
  command -v socat >/dev/null || missing+=(socat)
  command -v curl >/dev/null || missing+=(curl)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} with apt-get"
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# register HTTP_PORT FROM TO: instances web-FROM .. web-TO, each at its own fake address.
register() {
  local port=$1 i
  for ((i = $2; i <= $3; i++)); do
    printf '{"ID":"web-%d","Name":"web","Address":"127.1.%d.%d","Port":5000}' \
      "$i" $((i / 250)) $((i % 250 + 1)) |
      curl -sf -X PUT --data-binary @- "http://127.0.0.1:$port/v1/agent/service/register" ||
      die "registering web-$i in consul on port $port failed"
  done
}

wait_for_consul() {
  local _
  for _ in $(seq 1 60); do
    if [ -n "$(curl -sf "http://127.0.0.1:$1/v1/status/leader" | tr -d '"')" ]; then return; fi
    sleep 0.5
  done
  die "consul on port $1 did not elect a leader"
}

# haproxy_cfg SOCKET LANE...: a configuration with one resolvers section and one backend per
# lane. A lane is NAME:NAMESERVER:PORT:PAYLOAD:TARGET (TARGET, the server-template's name, may
# hold a colon).
haproxy_cfg() {
  local socket=$1 lane name ns port payload target
  shift
  cat <<EOF
global
    stats socket $socket mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
EOF
  for lane in "$@"; do
    IFS=: read -r name ns port payload target <<<"$lane"
    cat <<EOF

resolvers r_$name
    nameserver ns $ns:$port
    accepted_payload_size $payload
    resolve_retries 3
    timeout resolve 1s
    timeout retry 1s
    hold valid 10s
    hold obsolete 0s

backend $name
    server-template web $SLOTS $target resolvers r_$name resolve-prefer ipv4 init-addr none
EOF
  done
}
# The addresses of the filled servers of backend $2, one per line; $1 is the command that
# talks to the runtime API (reads a command on stdin).
filled_addresses() {
  echo "show servers state $2" | $1 | awk 'NR > 2 && NF > 5 && $5 != "-" && $5 != "0.0.0.0" { print $5 }'
}

host_api() { socat stdio "UNIX-CONNECT:$WORK/admin.sock"; }
# docker_api SUITE: the runtime API of the HAProxy container built on that Debian suite.
docker_api() { docker exec -i "$PREFIX-lb-$1" socat stdio UNIX-CONNECT:/tmp/admin.sock; }

# dig_count DIG_CMD... : prints "answers tc" for the query given.
dig_count() {
  local out answers tc=no
  out=$("$@" +noall +comments 2>/dev/null || true)
  answers=$(sed -n 's/.*ANSWER: \([0-9]*\),.*/\1/p' <<<"$out")
  grep -q '^;; flags:[^;]* tc' <<<"$out" && tc=yes
  echo "${answers:--} $tc"
}

# sample API BACKEND...: after the settle time, prints per backend "min-max distinct".
sample() {
  local api=$1 b k
  shift
  sleep "$SETTLE"
  for ((k = 1; k <= SAMPLES; k++)); do
    for b in "$@"; do
      filled_addresses "$api" "$b" >"$WORK/$b.$k"
    done
    if ((k < SAMPLES)); then sleep 2; fi
  done
  for b in "$@"; do
    local counts
    counts=$(for ((k = 1; k <= SAMPLES; k++)); do wc -l <"$WORK/$b.$k"; done | sort -n)
    printf '%s-%s %s\n' "$(head -n1 <<<"$counts")" "$(tail -n1 <<<"$counts")" \
      "$(cat "$WORK/$b".* | sort -u | wc -l)"
    rm -f "$WORK/$b".*
  done
}

# row N LANE "min-max distinct" "answers tc"
row() {
  local filled distinct answers tc
  read -r filled distinct <<<"$3"
  read -r answers tc <<<"$4"
  printf '%10s  %-22s  %8s  %8s  %6s  %3s\n' "$1" "$2" "$filled" "$distinct" "$answers" "$tc"
}

header() {
  printf '\n%s\n' "$1"
  printf '%10s  %-22s  %8s  %8s  %6s  %3s\n' registered "mode, HAProxy, payload" filled distinct dig tc
}

# Setup A: consul binary and HAProxy on the host. $1 is the datacenter.
run_host() {
  local dc=$1 lanes=() names=() p n prev=0 results i
  cat >"$WORK/consul.hcl" <<EOF
ports { http = $HOST_HTTP, dns = $HOST_DNS, serf_lan = 18651, serf_wan = 18652, server = 18654, grpc = -1 }
dns_config { only_passing = true }
EOF
  "$CONSUL_BIN" agent -dev -bind 127.0.0.1 -client 127.0.0.1 -datacenter "$dc" \
    -config-file "$WORK/consul.hcl" -log-level warn >"$WORK/consul.log" 2>&1 &
  local consul_pid=$!
  PIDS+=("$consul_pid")
  wait_for_consul "$HOST_HTTP"
  for p in $PAYLOADS; do
    lanes+=("consul_$p:127.0.0.1:$HOST_DNS:$p:_web._tcp.service.consul")
    names+=("consul_$p")
  done
  haproxy_cfg "$WORK/admin.sock" "${lanes[@]}" >"$WORK/haproxy.cfg"
  haproxy -D -p "$WORK/haproxy.pid" -f "$WORK/haproxy.cfg"
  local haproxy_pid
  haproxy_pid=$(cat "$WORK/haproxy.pid")
  PIDS+=("$haproxy_pid")
  local version
  version=$(haproxy -v | sed -n 's/^HAProxy version \([0-9]*\.[0-9]*\).*/\1/p')
  header "consul-dns on the host: consul $("$CONSUL_BIN" version | sed -n 's/^Consul v//p') (-dev), HAProxy $(haproxy -v | sed -n 's/^HAProxy version \([^ ]*\).*/\1/p'), datacenter of ${#dc} characters ($dc)"
  for n in $COUNTS; do
    if ((n > prev)); then register "$HOST_HTTP" $((prev + 1)) "$n"; fi
    prev=$n
    mapfile -t results < <(sample host_api "${names[@]}")
    i=0
    for p in $PAYLOADS; do
      row "$n" "consul-dns $version, $p" "${results[$i]}" \
        "$(dig_count dig @127.0.0.1 -p "$HOST_DNS" _web._tcp.service.consul SRV +bufsize="$p")"
      i=$((i + 1))
    done
  done
  kill "$haproxy_pid" "$consul_pid"
  wait "$consul_pid" 2>/dev/null || true
}

# build_haproxy_image SUITE: Debian's HAProxy of that suite (trixie: 3.0, bookworm: 2.6), on the
# rig's base image of the suite.
build_haproxy_image() {
  local base=${RIG_BASE%:*}:$1
  if docker image inspect "$HAPROXY_IMAGE:$1" >/dev/null 2>&1; then return; fi
  log "building $HAPROXY_IMAGE:$1 (apt-get install haproxy socat bind9-dnsutils on $base)"
  # The classic builder, as .ci/rig-images.sh uses: a CLI without buildx has nothing else.
  DOCKER_BUILDKIT=0 docker build --quiet --build-arg "BASE=$base" --tag "$HAPROXY_IMAGE:$1" - >/dev/null <<'EOF'
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends haproxy socat bind9-dnsutils \
 && rm -rf /var/lib/apt/lists/*
EOF
}

# start_web FROM TO: the web containers FROM .. TO, 16 at a time.
start_web() {
  seq "$1" "$2" | xargs -P 16 -I{} docker run -d --name "$PREFIX-web-{}" --network "$NETWORK" \
    --network-alias web --memory 16m "$RIG_BASE" sleep infinity >/dev/null
}

# Setup B: consul, web containers and HAProxy 3.0 on one user-defined Docker network.
run_docker() {
  local lanes=() names=() suites=() suite p n prev=0 results i kind versions=()
  require_engine_and_rig
  # trixie's base is the rig's own; bookworm's only exists where an older rig built it.
  for suite in trixie bookworm; do
    if docker image inspect "${RIG_BASE%:*}:$suite" >/dev/null 2>&1; then
      suites+=("$suite")
    else
      log "no ${RIG_BASE%:*}:$suite image: no HAProxy from $suite in this run"
    fi
  done
  docker network inspect "$NETWORK" >/dev/null 2>&1 || docker network create "$NETWORK" >/dev/null
  docker run -d --name "$PREFIX-consul" --network "$NETWORK" -p "127.0.0.1:$DOCKER_HTTP:8500" \
    "$RIG_CONSUL" agent -dev -client 0.0.0.0 -hcl 'dns_config { only_passing = true }' >/dev/null
  wait_for_consul "$DOCKER_HTTP"
  for p in $PAYLOADS; do
    lanes+=("consul_$p:$PREFIX-consul:8600:$p:_web._tcp.service.consul" "docker_$p:127.0.0.11:53:$p:web:5000")
    names+=("consul_$p" "docker_$p")
  done
  haproxy_cfg /tmp/admin.sock "${lanes[@]}" >"$WORK/haproxy-docker.cfg"
  chmod 644 "$WORK/haproxy-docker.cfg"
  for suite in "${suites[@]}"; do
    build_haproxy_image "$suite"
    docker run -d --name "$PREFIX-lb-$suite" --network "$NETWORK" \
      -v "$WORK/haproxy-docker.cfg:/etc/haproxy/ceil.cfg:ro" \
      "$HAPROXY_IMAGE:$suite" haproxy -W -db -f /etc/haproxy/ceil.cfg >/dev/null
    versions+=("$(docker exec "$PREFIX-lb-$suite" haproxy -v | sed -n 's/^HAProxy version \([^ ]*\).*/\1/p') ($suite)")
  done
  header "on a Docker network: consul 1.8.7 (rig image, datacenter dc1), HAProxy ${versions[*]}, Docker engine $(docker version -f '{{.Server.Version}}')"
  for n in $COUNTS; do
    if ((n > prev)); then
      register "$DOCKER_HTTP" $((prev + 1)) "$n"
      start_web $((prev + 1)) "$n"
    fi
    prev=$n
    for suite in "${suites[@]}"; do
      local version
      version=$(docker exec "$PREFIX-lb-$suite" haproxy -v | sed -n 's/^HAProxy version \([0-9]*\.[0-9]*\).*/\1/p')
      mapfile -t results < <(sample "docker_api $suite" "${names[@]}")
      i=0
      for p in $PAYLOADS; do
        for kind in consul docker; do
          local query
          if [ "$kind" = consul ]; then
            query=(dig @"$PREFIX-consul" -p 8600 _web._tcp.service.consul SRV +bufsize="$p")
          else
            query=(dig @127.0.0.11 web A +bufsize="$p")
          fi
          row "$n" "$kind-dns $version, $p" "${results[$i]}" \
            "$(dig_count docker exec "$PREFIX-lb-$suite" "${query[@]}")"
          i=$((i + 1))
        done
      done
    done
  done
}

need_tools
log "counts: $COUNTS; payloads: $PAYLOADS; $SLOTS slots; settle ${SETTLE}s, $SAMPLES samples"
for setup in $SETUPS; do
  case $setup in
    host)
      [ -x "$CONSUL_BIN" ] || die "no consul binary at $CONSUL_BIN: run .ci/install-tools.sh"
      command -v haproxy >/dev/null || die "no haproxy on the host: apt-get install haproxy"
      run_host dc1
      run_host "$LONG_DC"
      ;;
    docker) run_docker ;;
  esac
done
