#!/bin/bash
# Entrypoint of a Docker Swarm test node (.ci/rig/swarm-node.Dockerfile, started by
# .ci/swarm-rig.sh): a Docker engine inside a container, made usable without --privileged.
#   1. cgroup v1 controllers arrive mounted read-only, and dockerd then starts but no container can
#      run inside it ("mkdir /sys/fs/cgroup/cpuset/docker: read-only file system"). A plain
#      `remount,rw` fails as "busy"; `remount,bind,rw` of each mount point works. (Checked on a
#      cgroup v1 host only; a cgroup v2 host would need more than this.)
#   2. socat forwards 127.0.0.1:PORT inside the node to the rig's registry, so an image pushed from
#      the outer machine as 127.0.0.1:PORT/name:tag is pulled by this node under the same name
#      (127.0.0.0/8 is an insecure registry by default: no daemon configuration needed).
#   3. /proc/sys stays read-only (making it writable would hand the node the host's kernel-wide
#      settings too). Docker 26 then fails every task on an overlay network ("failed to disable
#      IPv6 on container's interface br0"); its documented switch lets it go on without that.
#   4. dockerd listens on its usual socket and on a second one in /provision-swarm, a directory
#      bind-mounted from the outer machine, so the outer docker CLI can drive this node.
# Arguments are passed on to dockerd.
set -euo pipefail

REGISTRY_PORT=${PROVISION_SWARM_REGISTRY_PORT:-5000}
REGISTRY_UPSTREAM=${PROVISION_SWARM_REGISTRY_UPSTREAM:-provision-swarm-registry:5000}
OUTER_SOCKET=unix:///provision-swarm/docker.sock

# Collected first: remounting while reading /proc/self/mounts would change what is being read.
readonly_cgroups=()
while read -r _ target fstype options _; do
  case "$fstype" in cgroup | cgroup2) ;; *) continue ;; esac
  case ",$options," in *,ro,*) readonly_cgroups+=("$target") ;; esac
done </proc/self/mounts
for target in "${readonly_cgroups[@]}"; do
  mount -o remount,bind,rw "$target"
done

# fork: one child per connection; the registry's name is resolved per connection, so this
# starts even before the registry answers.
socat "TCP-LISTEN:$REGISTRY_PORT,bind=127.0.0.1,fork,reuseaddr" "TCP:$REGISTRY_UPSTREAM" &

export DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1
exec dockerd --host unix:///var/run/docker.sock --host "$OUTER_SOCKET" "$@"
