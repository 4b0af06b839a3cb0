#!/usr/bin/env bash
# Smoke test of the swarm rig (.ci/swarm-rig.sh, which must be up): what provision's Swarm target
# needs from it, end to end, with no provision involved.
#   1. build a small image FROM the rig base (python3 and HAProxy from Debian) and push it to the
#      rig's registry as 127.0.0.1:PORT/provision-swarm-smoke
#   2. `docker stack deploy` on the manager: `web`, 4 replicas answering their hostname
#      (endpoint_mode dnsrr), and `lb`, HAProxy on every node (mode global) finding the web tasks
#      through Docker's DNS (tasks.web), its port published with mode host
#   3. from this machine, through each node's published port: the lb answers, and the answers come
#      from all 4 replicas, on at least 2 nodes
#   4. `docker stack rm`, waiting until no task container is left on any node
# Prints the time of each step. Exits non-zero when a check fails; removes the stack and the
# image's registry name either way (what was pushed goes with the registry: `swarm-rig.sh down`).
# The image stays as localhost/provision-rig/swarm-smoke:trixie, the build cache of the next run.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RIG="$HERE/swarm-rig.sh"
PREFIX=${PROVISION_RIG_PREFIX:-localhost/provision-rig}
BASE_IMAGE="$PREFIX/debian:trixie"
# Kept after the run, like the rig's other images, so the next run's build comes from the cache;
# only its registry name (IMAGE) is removed.
LOCAL_IMAGE="$PREFIX/swarm-smoke:trixie"
STACK=provision-swarm-smoke
REPLICAS=4
TIMEOUT=90

log() { printf '[swarm-smoke] %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# The outer engine for the build and push; the manager (MANAGER) for the stack.
unset DOCKER_HOST
eval "$("$RIG" env | sed '/^export DOCKER_HOST=/d')"
MANAGER=$PROVISION_SWARM_DOCKER_HOST
IMAGE="$PROVISION_SWARM_REGISTRY/$STACK:1"
LB_PORT=${PROVISION_SWARM_PORTS%-*}
STATS_PORT=$((LB_PORT + 1))
manager() { DOCKER_HOST=$MANAGER docker "$@"; }

"$RIG" status >/dev/null || die "the swarm rig is not up (.ci/swarm-rig.sh up)"
mapfile -t NODES < <(manager node ls --format '{{.Hostname}}' | sort)

WORK=$(mktemp -d)
cleanup() {
  local status=$?
  if [ "$status" != 0 ]; then
    log "the stack's tasks at the failure:"
    manager stack ps --no-trunc --format '{{.Name}} {{.Node}} {{.CurrentState}} {{.Error}}' "$STACK" >&2 || true
  fi
  manager stack rm "$STACK" >/dev/null 2>&1 || true
  docker image rm "$IMAGE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT

# --- 1. image --------------------------------------------------------------------------------
cat >"$WORK/Dockerfile" <<'EOF'
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 haproxy \
 && rm -rf /var/lib/apt/lists/*
COPY hostname.py /hostname.py
COPY haproxy.cfg /etc/haproxy/haproxy.cfg
EOF
cat >"$WORK/hostname.py" <<'EOF'
"""Answers every GET with this container's hostname."""
import http.server
import signal
import socket
import sys

# PID 1 gets no default action for SIGTERM: without this, `stack rm` waits 10 s for each task.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (socket.gethostname() + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("", 8000), Handler).serve_forever()
EOF
# No IPVS on these machines, so no service VIPs: HAProxy resolves the tasks themselves
# (tasks.web, endpoint_mode dnsrr) through Docker's DNS, and keeps re-resolving.
cat >"$WORK/haproxy.cfg" <<EOF
global
  log stdout format raw local0 warning
defaults
  mode http
  log global
  timeout connect 2s
  timeout client 10s
  timeout server 10s
resolvers docker
  nameserver dns 127.0.0.11:53
  accepted_payload_size 8192
  hold valid 1s
frontend web
  bind :$LB_PORT
  default_backend web
backend web
  balance roundrobin
  server-template web 10 tasks.web:8000 check inter 1s resolvers docker init-addr none
frontend stats
  bind :$STATS_PORT
  stats enable
  stats uri /stats
EOF
cat >"$WORK/stack.yml" <<EOF
version: "3.8"
services:
  web:
    image: $IMAGE
    command: ["python3", "/hostname.py"]
    hostname: "{{.Node.Hostname}}-web{{.Task.Slot}}"
    networks: [net]
    deploy:
      replicas: $REPLICAS
      endpoint_mode: dnsrr
  lb:
    image: $IMAGE
    command: ["haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
    networks: [net]
    ports:
      - {target: $LB_PORT, published: $LB_PORT, protocol: tcp, mode: host}
      - {target: $STATS_PORT, published: $STATS_PORT, protocol: tcp, mode: host}
    deploy:
      mode: global
      endpoint_mode: dnsrr
networks:
  net:
    driver: overlay
EOF

T_ALL=$(now)
t0=$(now)
out=$(DOCKER_BUILDKIT=0 docker build --build-arg "BASE=$BASE_IMAGE" --tag "$LOCAL_IMAGE" "$WORK" 2>&1) \
  || { printf '%s\n' "$out" >&2; die "docker build of $LOCAL_IMAGE"; }
docker tag "$LOCAL_IMAGE" "$IMAGE"
log "image built in $(since "$t0")"
t0=$(now)
docker push --quiet "$IMAGE" >/dev/null
log "image pushed to $PROVISION_SWARM_REGISTRY in $(since "$t0")"

# --- 2. deploy -------------------------------------------------------------------------------
t0=$(now)
manager stack deploy --detach=true --compose-file "$WORK/stack.yml" "$STACK" >/dev/null
log "stack deployed (accepted) in $(since "$t0")"

# --- 3. answers --------------------------------------------------------------------------------
# Node k's port P is published on this machine as P + 100(k-1) (see swarm-rig.sh).
node_port() { echo $((LB_PORT + 100 * ($1 - 1))); }
deadline=$((SECONDS + TIMEOUT))
until curl -fsS --max-time 1 "http://127.0.0.1:$LB_PORT/" >/dev/null 2>&1; do
  [ "$SECONDS" -lt "$deadline" ] || die "no answer on 127.0.0.1:$LB_PORT within $TIMEOUT s"
  sleep 0.2
done
log "first answer on 127.0.0.1:$LB_PORT (lb on ${NODES[0]}) $(since "$t0") after deploy"

hosts() {
  local port=$1
  for _ in $(seq 1 40); do curl -fsS --max-time 1 "http://127.0.0.1:$port/" || true; done | sort -u
}
seen=""
until [ "$(printf '%s\n' "$seen" | grep -c .)" -ge "$REPLICAS" ]; do
  [ "$SECONDS" -lt "$deadline" ] || die "only these replicas answered within $TIMEOUT s: $seen"
  seen=$(hosts "$LB_PORT")
done
log "all $REPLICAS replicas answer through the lb $(since "$t0") after deploy:"
printf '%s\n' "$seen" | sed 's/^/[swarm-smoke]   /' >&2
web_nodes=$(printf '%s\n' "$seen" | sed 's/-web[0-9]*$//' | sort -u | grep -c .)
if [ "${#NODES[@]}" -ge 2 ] && [ "$web_nodes" -lt 2 ]; then
  die "the replicas run on $web_nodes node(s) only"
fi
log "replicas on $web_nodes of ${#NODES[@]} nodes"

for k in $(seq 1 "${#NODES[@]}"); do
  port=$(node_port "$k")
  until curl -fsS --max-time 1 "http://127.0.0.1:$port/" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "no answer from the lb on node $k (127.0.0.1:$port)"
    sleep 0.2
  done
  up=$(curl -fsS --max-time 1 "http://127.0.0.1:$((port + 1))/stats;csv" | grep -c '^web,web[0-9]*,.*,UP' || true)
  log "node $k: lb answers on 127.0.0.1:$port; its HAProxy has $up web servers UP (stats: 127.0.0.1:$((port + 1))/stats)"
done
log "every node's lb answers $(since "$t0") after deploy"

# --- 4. remove -------------------------------------------------------------------------------
t0=$(now)
deadline=$((SECONDS + TIMEOUT))
manager stack rm "$STACK" >/dev/null
for k in $(seq 1 "${#NODES[@]}"); do
  socket=${MANAGER/node1/node$k}
  until [ -z "$(DOCKER_HOST=$socket docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] \
    && ! DOCKER_HOST=$socket docker network inspect "${STACK}_net" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "the stack's containers are still on node $k"
    sleep 0.2
  done
done
log "stack removed from every node in $(since "$t0")"
log "smoke test passed in $(since "$T_ALL")"
