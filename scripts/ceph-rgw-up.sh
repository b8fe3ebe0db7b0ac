#!/usr/bin/env bash
# ceph-rgw-up.sh - (copied from shared/s3, adapted for s3backup) bring up a single-host, loopback-only Ceph cluster
# (1 mon, 1 OSD on a file-backed BlueStore "disk", 1 radosgw/beast) for S3
# integration tests. Debian 12 (bookworm), Ceph 16.2.x (pacific), no systemd,
# no kernel modules, no block devices, no network beyond 127.0.0.1.
#
# Idempotent: safe to re-run. If the cluster exists it is (re)started; if the
# daemons already run it only re-checks health and the S3 user.
#
#   ./ceph-rgw-up.sh              # create/start, print S3 credentials
#   RESET=1 ./ceph-rgw-up.sh      # wipe the data dir first (fresh cluster)
#   OBJECTSTORE=memstore ./ceph-rgw-up.sh   # RAM-only OSD instead of bluestore
#   WITH_MGR=1 ./ceph-rgw-up.sh   # also start ceph-mgr (not needed for S3)
#
# Ports (all on 127.0.0.1): 7480 radosgw (S3/HTTP), 7481 mon (msgr2),
# 7482-7499 OSD/mgr messenger ports.
# Stop with ceph-rgw-down.sh (add --keep to keep the data for a restart).
set -euo pipefail

BASE=${CEPH_S3_DIR:-${TMPDIR:-/tmp}/s3backup-ceph}
RGW_PORT=${RGW_PORT:-7480}
MON_PORT=${MON_PORT:-7481}
PORT_MIN=${PORT_MIN:-7482}
PORT_MAX=${PORT_MAX:-7499}
OBJECTSTORE=${OBJECTSTORE:-bluestore}        # bluestore | memstore
OSD_SIZE_GB=${OSD_SIZE_GB:-20}               # sparse file / memstore cap
S3_UID=${S3_UID:-ci}
S3_ACCESS_KEY=${S3_ACCESS_KEY:-CIACCESSKEY0000000001}
S3_SECRET_KEY=${S3_SECRET_KEY:-cisecretkey0000000000000000000000000000001}
WITH_MGR=${WITH_MGR:-0}
TIMEOUT=${TIMEOUT:-120}                      # seconds per wait step

CONF=$BASE/ceph.conf
export CEPH_CONF=$CONF
# The ceph CLI is a python3 script: make sure Debian's python3 is used even
# when pyenv/venv shims are first on PATH.
CEPH=(/usr/bin/python3 /usr/bin/ceph -c "$CONF" --connect-timeout 10)

log() { printf '[ceph-rgw-up %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
t0=$(date +%s.%N)

# ---------------------------------------------------------------- packages
need_pkgs=()
for b in ceph-mon:ceph-mon ceph-osd:ceph-osd radosgw:radosgw ceph:ceph-common uuidgen:uuid-runtime curl:curl; do
  command -v "${b%%:*}" >/dev/null 2>&1 || need_pkgs+=("${b#*:}")
done
[ "$WITH_MGR" = 1 ] && ! command -v ceph-mgr >/dev/null && need_pkgs+=(ceph-mgr)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq || true
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
    "${need_pkgs[@]}" >/dev/null
fi

# ---------------------------------------------------------------- helpers
# is_running PID NAME: PID exists, is not a zombie, and its comm is NAME (PID-reuse guard)
is_running() {
  local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  local comm=${s#*(}; comm=${comm%%)*}
  local state=${s##*) }; state=${state%% *}
  [ "$comm" = "$2" ] && [ "$state" != Z ] && [ "$state" != X ]
}
pid_alive() {  # $1 = pid file, $2 = expected process name
  [ -s "$1" ] && is_running "$(cat "$1")" "$2"
}
wait_for() {   # $1 = description, rest = command
  local what=$1; shift
  local end=$(( $(date +%s) + TIMEOUT ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || die "timed out after ${TIMEOUT}s waiting for $what (logs: $BASE/log)"
    sleep 0.5
  done
}

if [ "${RESET:-0}" = 1 ] && [ -d "$BASE" ]; then
  log "RESET=1: stopping daemons and wiping $BASE"
  "$(dirname "$0")/ceph-rgw-down.sh" >/dev/null 2>&1 || true
  rm -rf "$BASE"
fi
mkdir -p "$BASE"/{run,log,crash,mon,osd}

# ---------------------------------------------------------------- config
[ -s "$BASE/fsid" ] || uuidgen > "$BASE/fsid"
FSID=$(cat "$BASE/fsid")
# the object store type is fixed at OSD mkfs time; remember it
if [ -s "$BASE/objectstore" ]; then OBJECTSTORE=$(cat "$BASE/objectstore"); else echo "$OBJECTSTORE" > "$BASE/objectstore"; fi

cat > "$CONF.tmp" <<EOF
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MON_PORT]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
ms bind port min = $PORT_MIN
ms bind port max = $PORT_MAX
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $BASE/keyring
run dir = $BASE/run
admin socket = $BASE/run/\$name.asok
pid file = $BASE/run/\$name.pid
log file = $BASE/log/\$name.log
crash dir = $BASE/crash
mon cluster log file = $BASE/log/cluster.log
# single host, single replica
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon warn on insecure global id reclaim allowed = false
# faster map commits (pool creation by rgw) on a 1-mon test cluster
paxos propose interval = 0.1
paxos min wait = 0.01
mon data avail warn = 2
mon data avail crit = 1

[mon]
mon data = $BASE/mon/\$cluster-\$id
keyring = \$mon_data/keyring
mon initial members = a

[osd]
osd data = $BASE/osd/\$cluster-\$id
keyring = \$osd_data/keyring
osd objectstore = $OBJECTSTORE
bluestore block create = true
bluestore block size = $((OSD_SIZE_GB * 1024 * 1024 * 1024))
bluestore fsck on mount = false
bluestore fsck on mkfs = false
memstore device bytes = $((OSD_SIZE_GB * 1024 * 1024 * 1024))
# memstore only writes its RAM image to osd data at a clean umount
$( [ "$OBJECTSTORE" = memstore ] && echo "osd fast shutdown = false" )
osd memory target = 1073741824
osd max object name len = 460
osd max object namespace len = 64

[mgr]
mgr data = $BASE/mgr/\$cluster-\$id
keyring = \$mgr_data/keyring

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw thread pool size = 64
rgw dns name = localhost
rgw enable usage log = false
rgw data = $BASE/rgw
EOF
mv "$CONF.tmp" "$CONF"

# ---------------------------------------------------------------- keys
if [ ! -s "$BASE/keyring" ]; then
  log "creating keyrings"
  ceph-authtool --create-keyring "$BASE/mon.keyring.tmp" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool --create-keyring "$BASE/keyring.tmp" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
  ceph-authtool "$BASE/keyring.tmp" --gen-key -n client.rgw.a \
    --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null
  ceph-authtool "$BASE/mon.keyring.tmp" --import-keyring "$BASE/keyring.tmp" >/dev/null
  mv "$BASE/mon.keyring.tmp" "$BASE/mon.keyring"
  mv "$BASE/keyring.tmp" "$BASE/keyring"
fi

# ---------------------------------------------------------------- mon
MON_DATA=$BASE/mon/ceph-a
if [ ! -e "$MON_DATA/done" ]; then
  log "mkfs mon.a"
  rm -rf "$MON_DATA"; mkdir -p "$MON_DATA"
  monmaptool --create --clobber --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" "$BASE/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$BASE/monmap" --keyring "$BASE/mon.keyring"
  touch "$MON_DATA/done"
fi
if ! pid_alive "$BASE/run/mon.a.pid" ceph-mon; then
  log "starting ceph-mon"
  ceph-mon -c "$CONF" -i a
fi
wait_for "mon quorum" "${CEPH[@]}" mon stat

# ---------------------------------------------------------------- mgr (optional)
if [ "$WITH_MGR" = 1 ]; then
  MGR_DATA=$BASE/mgr/ceph-x
  if [ ! -s "$MGR_DATA/keyring" ]; then
    mkdir -p "$MGR_DATA"
    "${CEPH[@]}" auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' -o "$MGR_DATA/keyring"
  fi
  pid_alive "$BASE/run/mgr.x.pid" ceph-mgr || { log "starting ceph-mgr"; ceph-mgr -c "$CONF" -i x; }
fi

# ---------------------------------------------------------------- osd
OSD_DATA=$BASE/osd/ceph-0
if [ ! -e "$OSD_DATA/ready" ]; then
  log "creating osd.0 ($OBJECTSTORE)"
  rm -rf "$OSD_DATA"; mkdir -p "$OSD_DATA"
  [ -s "$BASE/osd.uuid" ] || uuidgen > "$BASE/osd.uuid"
  OSD_UUID=$(cat "$BASE/osd.uuid")
  id=$("${CEPH[@]}" osd new "$OSD_UUID")           # idempotent for the same uuid
  [ "$id" = 0 ] || die "expected osd id 0, got '$id'"
  "${CEPH[@]}" auth get-or-create osd.0 mon 'allow profile osd' mgr 'allow profile osd' osd 'allow *' \
    -o "$OSD_DATA/keyring"
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" 2>>"$BASE/log/osd-mkfs.log"
  touch "$OSD_DATA/ready"
fi
if ! pid_alive "$BASE/run/osd.0.pid" ceph-osd; then
  log "starting ceph-osd"
  ceph-osd -c "$CONF" -i 0
fi
osd_up() { "${CEPH[@]}" osd stat -f json | grep -q '"num_up_osds":1'; }
wait_for "osd.0 up" osd_up

# ---------------------------------------------------------------- rgw
mkdir -p "$BASE/rgw"
if ! pid_alive "$BASE/run/client.rgw.a.pid" radosgw; then
  log "starting radosgw on 127.0.0.1:$RGW_PORT"
  radosgw -c "$CONF" -n client.rgw.a
fi
wait_for "radosgw http on :$RGW_PORT" curl -fsS -o /dev/null "http://127.0.0.1:$RGW_PORT/"

# ---------------------------------------------------------------- S3 user
if ! radosgw-admin -c "$CONF" user info --uid="$S3_UID" >/dev/null 2>&1; then
  log "creating S3 user $S3_UID"
  radosgw-admin -c "$CONF" user create --uid="$S3_UID" --display-name="CI user" \
    --access-key="$S3_ACCESS_KEY" --secret-key="$S3_SECRET_KEY" >/dev/null
fi

# A second user for the append-only test: the CI user may give it IAM user policies.
APPEND_UID=${APPEND_UID:-appendonly}
APPEND_ACCESS_KEY=${APPEND_ACCESS_KEY:-APPENDONLYKEY0000001}
APPEND_SECRET_KEY=${APPEND_SECRET_KEY:-appendonlysecret000000000000000000000001}
if ! radosgw-admin -c "$CONF" user info --uid="$APPEND_UID" >/dev/null 2>&1; then
  log "creating S3 user $APPEND_UID (append-only test)"
  radosgw-admin -c "$CONF" user create --uid="$APPEND_UID" --display-name="append-only host" \
    --access-key="$APPEND_ACCESS_KEY" --secret-key="$APPEND_SECRET_KEY" >/dev/null
fi
radosgw-admin -c "$CONF" caps add --uid="$S3_UID" --caps="user-policy=*" >/dev/null

t1=$(date +%s.%N)
log "ready in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')s"
cat <<EOF
export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
export AWS_DEFAULT_REGION=us-east-1
export S3_ENDPOINT=http://127.0.0.1:$RGW_PORT
export S3_APPEND_ACCESS_KEY_ID=$APPEND_ACCESS_KEY
export S3_APPEND_SECRET_ACCESS_KEY=$APPEND_SECRET_KEY
EOF
