#!/bin/sh
# consul's entrypoint in a provision stack: consul with ACLs, `default_policy = deny`, whose
# tokens are the stack's secrets (provision's secret store, mounted at /run/secrets).
#
# 1. Writes the ACL configuration, tokens included, to a file on the container's tmpfs (never
#    into an image, generated/ or the environment) and starts the agent with it and "$@".
# 2. Once consul answers with a leader, makes sure two policies exist and two tokens whose
#    SecretIDs are the secrets' values: the writer may register the web service and nothing
#    else ($PROVISION_WRITER_SERVICE: web's self-registration, or registrator), the reader may
#    read services and nodes (consul-template, provision's probes). It does so on every start:
#    a consul that keeps no state starts without them, and a rotated secret replaces its token.
# 3. Passes SIGTERM/SIGINT on to the agent and exits with the agent's status.
#
# With PROVISION_READER_IS_DEFAULT=true the reader is also the agent's default token: HAProxy's
# DNS queries carry no token (consul-dns mode), and consul answers them with the default's
# rights. Otherwise a request without a token may do nothing at all.
set -eu
umask 077
secrets=${PROVISION_SECRETS_DIR:-/run/secrets}
master=$(cat "$secrets/consul_master_token")
reader=$(cat "$secrets/consul_reader_token")
default_token=""
if [ "${PROVISION_READER_IS_DEFAULT:-false}" = true ]; then
  default_token=", \"default\": \"$reader\""
fi
# A server of a cluster talks to the others over the stack's network: gossip encrypted with the
# stack's key, Raft and RPC over TLS both ways with the stack's server certificate, and no
# connection taken from a peer without a certificate of the same authority. (The certificate
# is the same on every server, so host names are not checked: only servers hold it.)
# Upstream: the options and the flags below (-encrypt, -bind, -node-id, -bootstrap-expect,
# -retry-join) as agent/config/runtime_test.go in HashiCorp's consul repository reads them (the stored
# snapshot; the v1.8.7 tag could not be fetched here, its repository is over the size limit).
# What this relies on is checked with the consul that runs here, Debian's 1.8.7 (the default
# image runs consul 1.22), by tests/it/consul_cluster.rs: a cluster forms, a server
# without the key or the certificate is kept out.
cluster=""
if [ -f "$secrets/consul_gossip_key" ] && [ -f "$secrets/consul_server_tls" ]; then
  tls=${TMPDIR:-/tmp}/provision-tls
  mkdir -p "$tls"
  # The secret holds three PEM blocks: the certificate, its key, the authority's certificate.
  awk -v dir="$tls" '
    /-----BEGIN/ { n++ }
    { print > (dir "/" (n == 1 ? "server.pem" : n == 2 ? "server-key.pem" : "ca.pem")) }
  ' "$secrets/consul_server_tls"
  cluster=$(printf ', "encrypt": "%s", "ca_file": "%s", "cert_file": "%s", "key_file": "%s", "verify_incoming_rpc": true, "verify_outgoing": true, "verify_server_hostname": false' \
    "$(cat "$secrets/consul_gossip_key")" "$tls/ca.pem" "$tls/server.pem" "$tls/server-key.pem")
fi
# A server of a cluster also gets an agent master token: the one token its agent accepts with
# no leader in reach (the master token is looked up in the catalog: "ACL not found" until the
# server has one), which the rejoin below needs (checked with consul 1.8.7: `consul join`
# answered 403 with the master token and joined with this one). It may act on this agent
# only; it is made from the master token, so it is as secret, and it is written only to this
# container's tmpfs (the configuration, and the file the rejoin reads).
agent_master=""
agent_master_file=${TMPDIR:-/tmp}/provision-agent-master
if [ -n "${PROVISION_CONSUL_NODE:-}" ]; then
  printf 'provision agent master %s' "$master" | sha256sum \
    | sed 's/^\(.\{8\}\)\(.\{4\}\)\(.\{4\}\)\(.\{4\}\)\(.\{12\}\).*/\1-\2-\3-\4-\5/' \
    >"$agent_master_file"
  agent_master=", \"agent_master\": \"$(cat "$agent_master_file")\""
fi
config=${TMPDIR:-/tmp}/provision-acl.json
cat >"$config" <<JSON
{"acl": {"enabled": true, "default_policy": "deny", "down_policy": "extend-cache",
  "enable_token_persistence": false,
  "tokens": {"master": "$master", "agent": "$master"$default_token$agent_master}}$cluster}
JSON

# A server of a cluster (PROVISION_CONSUL_NODE, its Swarm task's ID, is set): it is a new
# server in gossip and in Raft, named after the container's host name and the task, with a node
# ID made from the task's. Not the node's identity: a server that comes back under the name of
# one that died is refused by the others until 30 s after they saw it die (below), so a
# server whose node was lost ran again about 30 s after its node was back (e2e_swarm_nodes:
# 30.0-32.0 s). A new name joins at once; the dead server's entry is removed by autopilot, which
# takes a failed server out of Raft while a majority is left (agent/consul/autopilot/
# autopilot.go, `pruneDeadServers`, in HashiCorp's consul repository, the stored snapshot) and
# looks again when it promotes a server. It binds its address on the stack's network (a Swarm
# task has another on docker_gwbridge, and consul refuses to choose between two private
# addresses). Docker writes that address for the container's hostname in /etc/hosts.
set -- "$@" -config-file "$config"
if [ -n "${PROVISION_CONSUL_NODE:-}" ]; then
  node_id=$(printf '%s' "$PROVISION_CONSUL_NODE" | md5sum \
    | sed 's/^\(.\{8\}\)\(.\{4\}\)\(.\{4\}\)\(.\{4\}\)\(.\{12\}\).*/\1-\2-\3-\4-\5/')
  node_name="$(hostname)-$(printf '%s' "$PROVISION_CONSUL_NODE" | cut -c1-6)"
  address=$(getent hosts "$(hostname)" | awk '{ print $1; exit }')
  set -- "$@" -node "$node_name" -node-id "$node_id" -bind "$address"
fi

consul "$@" &
agent=$!
trap 'kill -TERM "$agent" 2>/dev/null || true' TERM INT

log() { echo "[consul-entrypoint] $*" >&2; }

# The CLI below reads the master token from its file: no token in the environment.
export CONSUL_HTTP_TOKEN_FILE="$secrets/consul_master_token"

# Why servers are named by task: a server restarted under its old name at a new address was
# refused by the others for 30 s after they saw the old one die. memberlist takes a new address
# for a name only from a node that left, or died longer ago than its DeadNodeReclaimTime
# (state.go, `aliveNode`, in HashiCorp's memberlist repository at 1f5ed72; consul sets 30 s),
# and logs "Conflicting address ... Old state: 2". A join answered by the others is not tried
# again by -retry-join, so the next try was memberlist's own push/pull, 30 s later again
# (measured with consul 1.8.7 on the swarm rig: joined 37 s after it started). So until the
# server is in Raft's configuration (the leader has added it and replicated to it), it joins
# again every 2 s with the agent master token: a join lost to a busy or electing cluster is
# not left to that push/pull either.
#
# The same loop says when this server counts: it writes $member_file, which the health check
# wants, once the server is a voter in Raft's configuration. Swarm names a task in DNS, and
# moves on to the next server of a rolling update, only once it is healthy: so the next server
# stops only after this one counts for the majority (a fixed pause guessed at that before), and
# the lbs and the replicas never find a server that is not in the cluster yet. With no other
# server healthy (the name `consul` resolves to no other address: a new cluster, or every
# server restarted at once) there is no cluster to be a voter of: the file is written at once,
# or the servers, which find each other by that name, would never form one.
member_file=${TMPDIR:-/tmp}/provision-consul-member
if [ -n "${PROVISION_CONSUL_NODE:-}" ]; then
  (
    while kill -0 "$agent" 2>/dev/null; do
      sleep 2
      # Node, ID, Address, State, Voter, RaftProtocol
      voter=$(consul operator raft list-peers -stale 2>/dev/null \
        | awk -v at="$address:8300" '$3 == at { print $5 }')
      if [ "$voter" = true ]; then
        touch "$member_file"
        log "a voter in Raft's configuration at $address"
        exit 0
      fi
      if [ ! -f "$member_file" ] \
        && ! getent ahosts consul | awk '{ print $1 }' | grep -qvx "$address"; then
        touch "$member_file"
        log "no other server is healthy: this one counts before it is a voter"
      fi
      # Not in the configuration yet (a voter-to-be is in it already: autopilot promotes it).
      if [ -z "$voter" ]; then
        CONSUL_HTTP_TOKEN_FILE=$agent_master_file consul join consul >/dev/null 2>&1 || true
      fi
    done
  ) &
fi
until consul acl policy list >/dev/null 2>&1; do
  if ! kill -0 "$agent" 2>/dev/null; then
    wait "$agent" && status=0 || status=$?
    log "consul exited ($status) before it had a leader"
    exit "$status"
  fi
  sleep 0.2
done

# Servers of a cluster run this at once: each create may lose to another server's, and is
# then checked again rather than taken as a failure.
ensure_policy() { # <name> <rules>
  consul acl policy read -name "$1" >/dev/null 2>&1 \
    || consul acl policy create -name "$1" -rules "$2" >/dev/null 2>&1 \
    || consul acl policy read -name "$1" >/dev/null
}

# A token with a fixed AccessorID whose SecretID is the file's value: kept when it already is,
# replaced otherwise (a rotated secret). consul 1.8's CLI takes the SecretID as an argument only,
# so it is visible to the processes of this container, which all run as consul anyway.
token_in_place() { # <accessor> <secret>
  consul acl token read -id "$1" 2>/dev/null | grep -q "^SecretID: *$2\$"
}
ensure_token() { # <accessor> <policy> <secret file>
  secret=$(cat "$3")
  tries=0
  until token_in_place "$1" "$secret"; do
    tries=$((tries + 1))
    if [ "$tries" -gt 5 ]; then
      log "token $1 ($2) not in place after 5 tries"
      return 1
    fi
    consul acl token delete -id "$1" >/dev/null 2>&1 || true
    consul acl token create -accessor "$1" -secret "$secret" -policy-name "$2" \
      -description "provision: $2" >/dev/null 2>&1 || sleep 0.5
  done
}

ensure_policy provision-writer \
  "service \"$PROVISION_WRITER_SERVICE\" { policy = \"write\" }
node_prefix \"\" { policy = \"read\" }"
ensure_policy provision-reader \
  'service_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }'
ensure_token 6f3a1c52-0c36-4f57-9a57-7e0a8c3b1a01 provision-writer "$secrets/consul_writer_token"
ensure_token 6f3a1c52-0c36-4f57-9a57-7e0a8c3b1a02 provision-reader "$secrets/consul_reader_token"
log "ACLs in place: default deny, a writer for service $PROVISION_WRITER_SERVICE, a reader"

# `wait` returns early when a trapped signal arrives: wait again until the agent has exited.
status=0
while kill -0 "$agent" 2>/dev/null; do
  wait "$agent" && status=0 || status=$?
done
exit "$status"
