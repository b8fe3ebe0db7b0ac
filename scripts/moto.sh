#!/usr/bin/env bash
# moto.sh - a throwaway moto_server (in-memory S3 mock) on 127.0.0.1 for the test suite.
#
#   eval "$(bash scripts/moto.sh start)"   # prints export lines: S3BACKUP_TEST_S3_ENDPOINT, S3BACKUP_MOTO_DIR
#   bash scripts/moto.sh stop [DIR]        # DIR defaults to $S3BACKUP_MOTO_DIR
#
# Each start gets its own temp dir (pid file, log) and a free port, so concurrent runs do not
# collide. stop only signals the pid recorded in that dir, and only if it still is moto.
set -euo pipefail

log() { printf '[moto %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# is_moto PID: the process exists, is not a zombie, and runs moto_server (PID-reuse guard)
is_moto() {
  local s state
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  state=${s##*) }; state=${state%% *}
  [ "$state" != Z ] && [ "$state" != X ] && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q moto_server
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

answers() {  # $1 = port
  if command -v curl >/dev/null 2>&1; then
    curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$1/moto-api/"
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

start() {
  if ! command -v moto_server >/dev/null 2>&1; then
    log "moto_server not found: pip install 'moto[server]'"
    python3 -m pip install --quiet 'moto[server]' >&2 ||
      python3 -m pip install --quiet --break-system-packages 'moto[server]' >&2 ||
      die "could not install moto[server] with pip"
    hash -r
    command -v moto_server >/dev/null 2>&1 || die "moto_server still not on PATH after pip install"
  fi
  local dir port pid attempt end
  dir=$(mktemp -d "${TMPDIR:-/tmp}/s3backup-moto.XXXXXX")
  for attempt in 1 2 3; do
    port=$(free_port)
    # setsid: its own process group, so a Ctrl-C in the caller's terminal does not reach it twice
    setsid moto_server -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/pid"
    end=$(($(date +%s) + 60))
    while ! answers "$port"; do
      if ! kill -0 "$pid" 2>/dev/null; then break; fi
      [ "$(date +%s)" -lt "$end" ] || { kill "$pid" 2>/dev/null || true; die "moto_server did not answer on port $port within 60s (log: $dir/moto.log)"; }
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "moto_server (pid $pid) answers on 127.0.0.1:$port"
      echo "export S3BACKUP_TEST_S3_ENDPOINT=http://127.0.0.1:$port"
      echo "export S3BACKUP_MOTO_DIR=$dir"
      return 0
    fi
    log "moto_server exited (attempt $attempt, port $port): $(tail -n 1 "$dir/moto.log" 2>/dev/null)"
  done
  die "moto_server would not start (log: $dir/moto.log)"
}

stop() {
  local dir=${1:-${S3BACKUP_MOTO_DIR:-}} pid
  [ -n "$dir" ] || die "stop: no directory given and S3BACKUP_MOTO_DIR is not set"
  [ -d "$dir" ] || return 0
  if [ -s "$dir/pid" ]; then
    pid=$(cat "$dir/pid")
    if is_moto "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do is_moto "$pid" || break; sleep 0.1; done
      if is_moto "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) shift; stop "${1:-}" ;;
  *) echo "usage: $0 start|stop [DIR]" >&2; exit 2 ;;
esac
