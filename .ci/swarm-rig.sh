#!/usr/bin/env bash
# A multi-node Docker Swarm on this one machine, offline, for the end-to-end tests of provision's
# Swarm target. Each node is a Docker engine in a container (.ci/rig/swarm-node.Dockerfile); a
# registry (.ci/rig/registry.Dockerfile) lets images built here be pulled by every node.
#
#   swarm-rig.sh up       build the two images (kept when their inputs did not change), then create
#                         what is missing: network, registry, N nodes, the swarm (node1 manager)
#   swarm-rig.sh env      print the exports that point the docker CLI at the manager:
#                           eval "$(.ci/swarm-rig.sh env)"
#   swarm-rig.sh status   the nodes and whether the swarm is ready (exit 1 when it is not)
#   swarm-rig.sh down     remove the nodes, their volumes, the registry and the network, even
#                         half-created ones (only names starting with provision-swarm-)
#
# What `up` creates (all names start with provision-swarm-):
#   network   provision-swarm-net (a user bridge: the nodes reach each other and the registry by name)
#   registry  provision-swarm-registry, published on 127.0.0.1:$REGISTRY_PORT. Tag images as
#             127.0.0.1:$REGISTRY_PORT/name:tag: the outer engine pushes there and every node pulls
#             the same name (a socat forward inside each node).
#   nodes     provision-swarm-node1..N, node1 the manager. Volume provision-swarm-nodeK-docker at
#             /var/lib/docker (so the node's engine uses overlay2); its second socket at
#             $STATE_DIR/nodeK/docker.sock on this machine.
#   ports     node K publishes its ports 28180-28189 on 127.0.0.1:(28080+100K)..(28089+100K):
#             node1 28180-28189, node2 28280-28289, node3 28380-28389. A stack that publishes a port
#             in 28180-28189 with `mode: host` is reachable from here at that port plus 100(K-1)
#             on whichever node K runs the task. (No routing mesh: the kernel has no IPVS.)
#
# Environment: PROVISION_SWARM_NODES (1-9; default 3, or 2 with less than 3 GiB of free memory),
# PROVISION_SWARM_REGISTRY_PORT (default 5000), PROVISION_SWARM_DIR (sockets, default
# /var/tmp/provision-swarm), PROVISION_RIG_PREFIX (images, default localhost/provision-rig).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PREFIX=${PROVISION_RIG_PREFIX:-localhost/provision-rig}
BASE_IMAGE="$PREFIX/debian:trixie"
NODE_IMAGE="$PREFIX/swarm-node:trixie"
REGISTRY_IMAGE="$PREFIX/swarm-registry:trixie"
HASH_LABEL=org.provision.rig.inputs
# Every container, volume and network of the rig carries this label and the name prefix.
RIG_LABEL=org.provision.swarm-rig
NAME=provision-swarm
NETWORK="$NAME-net"
REGISTRY="$NAME-registry"
REGISTRY_PORT=${PROVISION_SWARM_REGISTRY_PORT:-5000}
STATE_DIR=${PROVISION_SWARM_DIR:-/var/tmp/provision-swarm}
# The ports a stack may publish (mode: host), and where node K's appear on this machine.
PORT_FIRST=28180
PORT_LAST=28189
HOST_PORT_STEP=100
READY_TIMEOUT=60
# How often each node tells the manager it is alive. The manager takes a node for down after 3
# periods without one (moby/swarmkit, manager/dispatcher/dispatcher.go: DefaultHeartBeatPeriod
# 5 s, defaultGracePeriodMultiplier 3): with Swarm's 5 s a killed node was down 11.4-12.9 s
# after the kill in CI runs, and each node scenario waited that long. 2 s: about 6 s. An
# operator may set the same (`docker swarm update --dispatcher-heartbeat`); docs/swarm.md says
# what the default costs.
HEARTBEAT=2s

log() { printf '[swarm-rig] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# The outer engine, even when the caller's environment already points at the manager (after
# `eval "$(swarm-rig.sh env)"`): the rig's own containers live on the outer engine.
if [ "${DOCKER_HOST:-}" = "unix://$STATE_DIR/node1/docker.sock" ]; then
  unset DOCKER_HOST
fi

node_name() { printf '%s-node%s' "$NAME" "$1"; }
node_socket() { printf 'unix://%s/node%s/docker.sock' "$STATE_DIR" "$1"; }
# The docker CLI against node K's own engine.
node_docker() {
  local k=$1
  shift
  DOCKER_HOST=$(node_socket "$k") docker "$@"
}
node_ip() { docker inspect -f "{{(index .NetworkSettings.Networks \"$NETWORK\").IPAddress}}" "$(node_name "$1")"; }
node_host_ports() {
  local offset=$((HOST_PORT_STEP * ($1 - 1)))
  printf '%s-%s' "$((PORT_FIRST + offset))" "$((PORT_LAST + offset))"
}

node_count() {
  local n=${PROVISION_SWARM_NODES:-}
  if [ -z "$n" ]; then
    local avail_kib
    avail_kib=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
    if [ "${avail_kib:-0}" -lt $((3 * 1024 * 1024)) ]; then n=2; else n=3; fi
  fi
  case "$n" in
    [1-9]) printf '%s' "$n" ;;
    *) die "PROVISION_SWARM_NODES must be 1-9 (each node gets its own block of 10 host ports), got '$n'" ;;
  esac
}

# The rig's containers on the outer engine, by name prefix (and label, so nothing of anyone
# else's that happens to share the prefix is touched).
rig_containers() {
  docker ps -a --filter "label=$RIG_LABEL" --format '{{.Names}}' | grep "^$NAME-" | sort || true
}
rig_volumes() {
  docker volume ls --filter "label=$RIG_LABEL" --format '{{.Name}}' | grep "^$NAME-" || true
}

# Builds IMAGE from .ci/rig/DOCKERFILE unless its label holds the same hash of its inputs (the
# Dockerfile, the files it copies and the base image id), as .ci/rig-images.sh does.
build_image() {
  local image=$1 dockerfile=$2
  shift 2
  local base_id inputs current
  base_id=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")
  inputs=$({ for f in "$dockerfile" "$@"; do sha256sum <"$HERE/rig/$f"; done; echo "$base_id"; } | sha256sum | cut -c1-16)
  current=$(docker image inspect -f "{{index .Config.Labels \"$HASH_LABEL\"}}" "$image" 2>/dev/null || true)
  if [ "$current" = "$inputs" ]; then
    log "image $image up to date (inputs $inputs): kept"
    return
  fi
  local t0 ctx out
  t0=$(now)
  log "building $image (inputs $inputs${current:+, was $current})"
  ctx=$(mktemp -d)
  # shellcheck disable=SC2064  # expand now: ctx is local and gone by the time the trap runs
  trap "rm -rf '$ctx'" RETURN
  cp "$HERE/rig/$dockerfile" "$ctx/Dockerfile"
  for f in "$@"; do cp -p "$HERE/rig/$f" "$ctx/$f"; done
  # The classic builder, said out loud (as in rig-images.sh); its output only when it fails.
  if ! out=$(DOCKER_BUILDKIT=0 docker build --build-arg "BASE=$BASE_IMAGE" --label "$HASH_LABEL=$inputs" \
    --tag "$image" "$ctx" 2>&1); then
    printf '%s\n' "$out" >&2
    die "docker build of $image failed"
  fi
  log "built $image in $(since "$t0")"
}

# Keeps a running container created from the current image; removes any other of that name
# (stopped, or from an older image) so it is created again. Returns 0 when it was kept.
keep_container() {
  local name=$1 image=$2 state
  state=$(docker inspect -f '{{.State.Running}} {{.Image}}' "$name" 2>/dev/null || true)
  [ -z "$state" ] && return 1
  if [ "$state" = "true $(docker image inspect -f '{{.Id}}' "$image")" ]; then
    return 0
  fi
  log "$name is stopped or from an older image: created again"
  docker rm -f "$name" >/dev/null
  return 1
}

wait_for() {
  local what=$1
  shift
  local deadline=$((SECONDS + READY_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "$what: not ready after ${READY_TIMEOUT} s"
    sleep 0.2
  done
}

up_network() {
  if docker network inspect "$NETWORK" >/dev/null 2>&1; then return; fi
  docker network create --label "$RIG_LABEL=net" "$NETWORK" >/dev/null
  log "network $NETWORK created"
}

up_registry() {
  local t0
  t0=$(now)
  if keep_container "$REGISTRY" "$REGISTRY_IMAGE"; then
    log "registry $REGISTRY running: kept"
  else
    docker run --detach --name "$REGISTRY" --label "$RIG_LABEL=registry" --network "$NETWORK" \
      --publish "127.0.0.1:$REGISTRY_PORT:5000" "$REGISTRY_IMAGE" >/dev/null
  fi
  wait_for "registry on 127.0.0.1:$REGISTRY_PORT" curl -fsS "http://127.0.0.1:$REGISTRY_PORT/v2/"
  log "registry answers on 127.0.0.1:$REGISTRY_PORT after $(since "$t0")"
}

# The rig's base and consul images, pushed as 127.0.0.1:PORT/provision-rig/NAME:TAG so that a
# spec for the swarm can build FROM the base on any node (`images.base`) and run consul there.
# Only what the registry lacks is pushed (asked through its HTTP API).
push_rig_images() {
  local image path tag t0
  for image in "$BASE_IMAGE" "$PREFIX/consul:1.8.7"; do
    docker image inspect "$image" >/dev/null 2>&1 || { log "no $image here: not pushed"; continue; }
    path=${image#*/}
    tag=${path##*:}
    path=${path%:*}
    if curl -fs -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
      "http://127.0.0.1:$REGISTRY_PORT/v2/$path/manifests/$tag"; then
      continue
    fi
    t0=$(now)
    docker tag "$image" "127.0.0.1:$REGISTRY_PORT/$path:$tag"
    docker push --quiet "127.0.0.1:$REGISTRY_PORT/$path:$tag" >/dev/null
    log "pushed 127.0.0.1:$REGISTRY_PORT/$path:$tag in $(since "$t0")"
  done
}

# Returns 0 when node K was created (its engine, and any swarm membership, is new).
up_node() {
  local k=$1 name
  name=$(node_name "$k")
  if keep_container "$name" "$NODE_IMAGE"; then
    return 1
  fi
  # A new engine starts from an empty /var/lib/docker: a volume left by a removed node is dropped.
  docker volume rm "$name-docker" >/dev/null 2>&1 || true
  mkdir -p "$STATE_DIR/node$k"
  # The published ports (28180-28389) lie below the kernel's ephemeral range (32768-60999 by
  # default), so no client connection takes one; a port another program listens on for a moment
  # frees up within seconds, so that one failure is retried.
  local try err
  for try in 1 2 3 4 5; do
    if err=$(run_node "$k" 2>&1 >/dev/null); then
      return 0
    fi
    case "$err" in
      *"address already in use"*)
        log "$name: a published port is taken (try $try of 5): retrying"
        docker rm -f "$name" >/dev/null 2>&1 || true
        sleep 2
        ;;
      *) die "starting $name: $err" ;;
    esac
  done
  die "starting $name: $err"
}

run_node() {
  local k=$1 name
  name=$(node_name "$k")
  # Not --privileged: it fails in this sandbox (no CAP_SYS_RESOURCE to grant). All capabilities but
  # that one, no seccomp or AppArmor profile, and a tmpfs /run for containerd's state.
  docker run --detach --name "$name" --hostname "$name" --label "$RIG_LABEL=node" \
    --network "$NETWORK" \
    --cap-add ALL --cap-drop SYS_RESOURCE \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --tmpfs /run \
    --mount "type=volume,source=$name-docker,target=/var/lib/docker,volume-label=$RIG_LABEL=node" \
    --mount "type=bind,source=$STATE_DIR/node$k,target=/provision-swarm" \
    --env "PROVISION_SWARM_REGISTRY_PORT=$REGISTRY_PORT" \
    --env "PROVISION_SWARM_REGISTRY_UPSTREAM=$REGISTRY:5000" \
    --publish "127.0.0.1:$(node_host_ports "$k"):$PORT_FIRST-$PORT_LAST" \
    "$NODE_IMAGE"
}

# Drops the manager's entry for node K (left by an engine that was removed), if it has one.
forget_node() {
  local id
  for id in $(node_docker 1 node ls --quiet --filter "name=$(node_name "$1")" 2>/dev/null); do
    node_docker 1 node rm --force "$id" >/dev/null
  done
}

swarm_state() { node_docker "$1" info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}' 2>/dev/null; }

ready_count() {
  node_docker 1 node ls --format '{{.Status}} {{.Availability}}' 2>/dev/null | grep -c '^Ready Active$' || true
}

cmd_up() {
  local t_all n
  t_all=$(now)
  n=$(node_count)
  docker info >/dev/null 2>&1 || die "no Docker daemon answers: start one first (.ci/engine.sh start)"
  docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || die "no base image $BASE_IMAGE: run .ci/rig-images.sh first"

  build_image "$NODE_IMAGE" swarm-node.Dockerfile swarm-node-entrypoint.sh
  build_image "$REGISTRY_IMAGE" registry.Dockerfile registry-config.yml
  up_network
  up_registry
  push_rig_images

  # Nodes beyond N, left by an earlier `up` with more nodes: off the manager's list, then removed.
  local name k
  for name in $(rig_containers); do
    case "$name" in
      "$NAME"-node*)
        k=${name#"$NAME"-node}
        if [ "$k" -gt "$n" ]; then
          log "$name is beyond PROVISION_SWARM_NODES=$n: removed"
          forget_node "$k"
          docker rm -f --volumes "$name" >/dev/null
          docker volume rm "$name-docker" >/dev/null 2>&1 || true
        fi
        ;;
    esac
  done

  local t0 created=()
  t0=$(now)
  for k in $(seq 1 "$n"); do
    if up_node "$k"; then created+=("$k"); fi
  done
  for k in $(seq 1 "$n"); do
    wait_for "engine of $(node_name "$k")" node_docker "$k" version
  done
  if [ "${#created[@]}" -gt 0 ]; then
    log "nodes started (${created[*]}; engines answering) in $(since "$t0")"
  else
    log "all $n nodes running: kept"
  fi

  t0=$(now)
  local manager_new=0
  if [ "$(swarm_state 1)" != "active true" ]; then
    node_docker 1 swarm init --advertise-addr "$(node_ip 1)" \
      --dispatcher-heartbeat "$HEARTBEAT" >/dev/null
    manager_new=1
    log "swarm initialised on $(node_name 1) ($(node_ip 1)) in $(since "$t0")"
  else
    node_docker 1 swarm update --dispatcher-heartbeat "$HEARTBEAT" >/dev/null
  fi

  t0=$(now)
  local token manager_addr joined=()
  token=$(node_docker 1 swarm join-token --quiet worker)
  manager_addr="$(node_ip 1):2377"
  for k in $(seq 2 "$n"); do
    local state
    state=$(swarm_state "$k")
    # A worker of an older swarm (the manager was created again) leaves it first.
    if [ "${state%% *}" = active ] && [ "$manager_new" = 1 ]; then
      node_docker "$k" swarm leave --force >/dev/null
      state=inactive
    fi
    if [ "${state%% *}" != active ]; then
      forget_node "$k"
      # An explicit address: once the node's engine has its docker0 bridge it has two, and join
      # refuses to choose.
      node_docker "$k" swarm join --token "$token" --advertise-addr "$(node_ip "$k")" "$manager_addr" >/dev/null
      joined+=("$k")
    fi
  done
  if [ "${#joined[@]}" -gt 0 ]; then
    log "nodes ${joined[*]} joined in $(since "$t0")"
  fi

  t0=$(now)
  local deadline=$((SECONDS + READY_TIMEOUT))
  until [ "$(ready_count)" -eq "$n" ]; do
    [ "$SECONDS" -lt "$deadline" ] || { cmd_status >&2 || true; die "not all $n nodes Ready after ${READY_TIMEOUT} s"; }
    sleep 0.2
  done
  log "all $n nodes Ready (waited $(since "$t0"))"
  log "swarm rig up in $(since "$t_all"): eval \"\$($0 env)\" points docker at the manager"
}

# PROVISION_SWARM_DOCKER_HOST is the manager too, for a caller (CI) that keeps DOCKER_HOST on the
# outer engine: drop the DOCKER_HOST line and hand the other to the Swarm tests.
cmd_env() {
  printf 'export PROVISION_SWARM_DOCKER_HOST=%s\n' "$(node_socket 1)"
  printf 'export DOCKER_HOST=%s\n' "$(node_socket 1)"
  printf 'export PROVISION_SWARM_REGISTRY=127.0.0.1:%s\n' "$REGISTRY_PORT"
  printf 'export PROVISION_SWARM_PORTS=%s-%s\n' "$PORT_FIRST" "$PORT_LAST"
}

cmd_status() {
  local name nodes=0 k
  for name in $(rig_containers); do
    printf '%-28s %s\n' "$name" "$(docker inspect -f '{{.State.Status}}' "$name")"
  done
  if ! node_docker 1 node ls >/dev/null 2>&1; then
    echo "no swarm manager answers on $(node_socket 1)"
    return 1
  fi
  node_docker 1 node ls --format 'table {{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}\t{{.EngineVersion}}'
  for name in $(rig_containers); do
    case "$name" in
      "$NAME"-node*)
        k=${name#"$NAME"-node}
        printf '%s: ports %s-%s on 127.0.0.1:%s\n' "$name" "$PORT_FIRST" "$PORT_LAST" "$(node_host_ports "$k")"
        nodes=$((nodes + 1))
        ;;
    esac
  done
  [ "$(ready_count)" -eq "$nodes" ]
}

cmd_down() {
  local t0 containers volumes
  t0=$(now)
  mapfile -t containers < <(rig_containers)
  if [ "${#containers[@]}" -gt 0 ]; then
    docker rm -f --volumes "${containers[@]}" >/dev/null
    log "removed containers ${containers[*]}"
  fi
  # In parallel: a node's volume that holds a few pulled images takes 5-7 s to delete, and
  # `docker volume rm a b c` deletes one after the other.
  local pids=() volume failed=0
  mapfile -t volumes < <(rig_volumes)
  for volume in "${volumes[@]}"; do
    docker volume rm "$volume" >/dev/null &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  [ "$failed" = 0 ] || die "some volumes could not be removed: $(rig_volumes | tr '\n' ' ')"
  if [ "${#volumes[@]}" -gt 0 ]; then log "removed volumes ${volumes[*]}"; fi
  if docker network inspect "$NETWORK" >/dev/null 2>&1; then
    docker network rm "$NETWORK" >/dev/null
    log "removed network $NETWORK"
  fi
  # Only the rig's socket directories (the engines that made them are gone).
  rm -rf "$STATE_DIR"/node[1-9]
  rmdir "$STATE_DIR" 2>/dev/null || true
  log "swarm rig down in $(since "$t0")"
}

case "${1:-}" in
  up) cmd_up ;;
  env) cmd_env ;;
  status) cmd_status ;;
  down) cmd_down ;;
  *)
    echo "usage: $0 up|down|env|status" >&2
    exit 2
    ;;
esac
