#!/usr/bin/env bash
# ceph-rgw-down.sh - stop the cluster started by ceph-rgw-up.sh.
#   ./ceph-rgw-down.sh          # stop daemons and delete all data
#   ./ceph-rgw-down.sh --keep   # stop daemons, keep data (restart with ceph-rgw-up.sh)
# Only kills the PIDs recorded in $BASE/run/*.pid (never by name).
set -u
BASE=${CEPH_S3_DIR:-${TMPDIR:-/tmp}/s3backup-ceph}
KEEP=0; [ "${1:-}" = --keep ] && KEEP=1

# is_running PID NAME: PID exists, is not a zombie, and its comm is NAME (PID-reuse guard)
is_running() {
  local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  local comm=${s#*(}; comm=${comm%%)*}
  local state=${s##*) }; state=${state%% *}
  [ "$comm" = "$2" ] && [ "$state" != Z ] && [ "$state" != X ]
}
stop() {  # $1 = daemon name (pid file stem), $2 = process name; SIGTERM, SIGKILL after 30s
  local pf=$BASE/run/$1.pid pid
  [ -s "$pf" ] || return 0
  pid=$(cat "$pf")
  # only signal the PID if it still is the ceph daemon we started (PID reuse guard)
  if is_running "$pid" "$2"; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 300); do is_running "$pid" "$2" || break; sleep 0.1; done
    if is_running "$pid" "$2"; then
      echo "ceph-rgw-down: $1 ($pid) did not exit, SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null; sleep 0.5
    fi
  fi
  rm -f "$pf"
}
[ -d "$BASE/run" ] && {
  stop client.rgw.a radosgw   # S3 gateway first, then OSD (flushes memstore/bluestore), then mgr, mon last
  stop osd.0 ceph-osd
  stop mgr.x ceph-mgr
  stop mon.a ceph-mon
}
if [ "$KEEP" = 0 ]; then rm -rf "$BASE"; echo "ceph-rgw-down: stopped, $BASE removed" >&2
else echo "ceph-rgw-down: stopped, data kept in $BASE" >&2; fi
