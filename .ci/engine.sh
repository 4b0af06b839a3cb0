#!/usr/bin/env bash
# Starts (or stops) a Docker engine for the end-to-end tests when none is reachable.
#   engine.sh start   start dockerd in the background unless a daemon already answers
#   engine.sh stop    stop the dockerd that `start` started (and nothing else)
set -euo pipefail

STATE_DIR=${PROVISION_TOOLS_DIR:-/var/tmp/provision-tools}
PIDFILE="$STATE_DIR/dockerd.pid"
LOGFILE="$STATE_DIR/dockerd.log"
mkdir -p "$STATE_DIR"

case "${1:-}" in
  start)
    if docker info >/dev/null 2>&1; then
      echo "[engine] a Docker daemon already answers; using it" >&2
      exit 0
    fi
    command -v dockerd >/dev/null || { echo "[engine] dockerd is not installed" >&2; exit 1; }
    echo "[engine] starting dockerd (log: $LOGFILE)" >&2
    # containerd is started by dockerd itself when no system containerd runs.
    nohup dockerd --host unix:///var/run/docker.sock >"$LOGFILE" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 60); do
      if docker info >/dev/null 2>&1; then
        echo "[engine] dockerd is up: $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')" >&2
        exit 0
      fi
      sleep 1
    done
    echo "[engine] dockerd did not answer within 60 s; last log lines:" >&2
    tail -n 30 "$LOGFILE" >&2
    exit 1
    ;;
  stop)
    if [ -f "$PIDFILE" ]; then
      pid=$(cat "$PIDFILE")
      if kill -0 "$pid" 2>/dev/null; then
        echo "[engine] stopping dockerd ($pid)" >&2
        kill "$pid"
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      fi
      rm -f "$PIDFILE"
    fi
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
