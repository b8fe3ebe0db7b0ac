#!/usr/bin/env bash
# test.sh - run the whole test suite (what CI runs, and what README calls "run the whole suite").
#
#   bash scripts/test.sh                       # unit + integration tests, against moto
#   bash scripts/test.sh --filter=store        # extra arguments go to `deno test`
#   bash scripts/test.sh test/store_contract_test.ts   # only these files
#   WITH_CEPH=1 bash scripts/test.sh           # also against a real Ceph RADOS Gateway
#
# It installs what the tests need (pinned Deno in .tools/; shellcheck, Debian's AWS CLI v2,
# bsdtar, faketime, zsh and fish when root), starts moto_server on a free loopback port (and Ceph RGW with
# WITH_CEPH=1), runs `deno test --allow-all --parallel` over src/ and test/, stops what it
# started, and exits with deno test's code.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[test.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

DENO=$(bash scripts/ensure-deno.sh)
PATH="$(dirname "$DENO"):$PATH"
export PATH
# `deno run` asks its download site for a newer release: not from here (loopback only).
export DENO_NO_UPDATE_CHECK=1

# ---------------------------------------------------------------- tools the tests use
need=()
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
[ -x /usr/bin/aws ] || need+=(awscli)   # Debian's AWS CLI v2, used by the restore kit's tests
command -v bsdtar >/dev/null 2>&1 || need+=(libarchive-tools)   # bsdtar: macOS's tar, for the pack tests
command -v faketime >/dev/null 2>&1 || need+=(faketime)   # a prune with its clock hours fast (worst day 3)
for sh in zsh fish; do command -v "$sh" >/dev/null 2>&1 || need+=("$sh"); done   # completion tests
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing ${need[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq || true
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    log "WARNING: not root, cannot install ${need[*]}: tests that need them may fail"
  fi
fi

# ---------------------------------------------------------------- S3 servers
moto_dir=""
ceph_started=0
out=""
# Deno's own cache (compiled modules, npm packages) stays where this Deno keeps it; the
# program's local cache (files cache) goes to a folder of this run, never the user's.
if [ -z "${DENO_DIR:-}" ]; then
  DENO_DIR=$("$DENO" info --json | sed -n 's/^ *"denoDir": "\(.*\)",$/\1/p')
  if [ -n "$DENO_DIR" ]; then export DENO_DIR; else unset DENO_DIR; fi
fi
XDG_CACHE_HOME=$(mktemp -d "${TMPDIR:-/tmp}/s3backup-test-cache.XXXXXX")
export XDG_CACHE_HOME
# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
  local rc=$?
  if [ -n "$out" ]; then rm -f "$out"; fi
  rm -rf "$XDG_CACHE_HOME"
  if [ -n "$moto_dir" ]; then bash scripts/moto.sh stop "$moto_dir" || true; fi
  if [ "$ceph_started" = 1 ]; then bash scripts/ceph-rgw-down.sh || true; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

moto_env=$(bash scripts/moto.sh start)
eval "$moto_env"
moto_dir=$S3BACKUP_MOTO_DIR
export S3BACKUP_TEST_S3_ENDPOINT

# Ambient credentials are moto's (any value works there); tests pass explicit ones anyway.
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

if [ "${WITH_CEPH:-0}" = 1 ]; then
  rgw_port=${RGW_PORT:-7480}
  # A gateway already running (started by hand) is used and left running.
  if curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$rgw_port/"; then
    log "Ceph RGW already answers on 127.0.0.1:$rgw_port: using it"
  else
    ceph_started=1
  fi
  log "starting Ceph RGW (first start installs packages)"
  ceph_env=$(bash scripts/ceph-rgw-up.sh)
  S3BACKUP_TEST_CEPH_ENDPOINT=$(eval "$ceph_env"; echo "$S3_ENDPOINT")
  S3BACKUP_TEST_CEPH_ACCESS_KEY_ID=$(eval "$ceph_env"; echo "$AWS_ACCESS_KEY_ID")
  S3BACKUP_TEST_CEPH_SECRET_ACCESS_KEY=$(eval "$ceph_env"; echo "$AWS_SECRET_ACCESS_KEY")
  S3BACKUP_TEST_CEPH_APPEND_ACCESS_KEY_ID=$(eval "$ceph_env"; echo "$S3_APPEND_ACCESS_KEY_ID")
  S3BACKUP_TEST_CEPH_APPEND_SECRET_ACCESS_KEY=$(eval "$ceph_env"; echo "$S3_APPEND_SECRET_ACCESS_KEY")
  export S3BACKUP_TEST_CEPH_ENDPOINT S3BACKUP_TEST_CEPH_ACCESS_KEY_ID S3BACKUP_TEST_CEPH_SECRET_ACCESS_KEY
  export S3BACKUP_TEST_CEPH_APPEND_ACCESS_KEY_ID S3BACKUP_TEST_CEPH_APPEND_SECRET_ACCESS_KEY
fi

# ---------------------------------------------------------------- run
log "deno test (moto at $S3BACKUP_TEST_S3_ENDPOINT${S3BACKUP_TEST_CEPH_ENDPOINT:+, ceph at $S3BACKUP_TEST_CEPH_ENDPOINT})"
out=$(mktemp "${TMPDIR:-/tmp}/s3backup-test.XXXXXX")
set +e
# Extra arguments go to deno test; when one of them is an existing file or folder, only the
# given paths are tested, else all of src/ and test/.
paths=(src/ test/)
for a in "$@"; do
  if [ -e "$a" ]; then paths=(); break; fi
done
# A hang anywhere fails the run with a clear line instead of eating CI's time (every test's own
# waits have deadlines too: test/faults/harness.ts).
timeout --signal=TERM --kill-after=30 "${S3BACKUP_TEST_TIMEOUT:-3000}" \
  deno test --allow-all --parallel "$@" "${paths[@]}" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
  log "deno test did not finish within ${S3BACKUP_TEST_TIMEOUT:-3000} s: killed"
fi
set -e
# One plain summary line: "tests: N passed, N failed[, N skipped]".
summary=$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -E '^(ok|FAILED) \| [0-9]+ passed' | tail -n 1 || true)
if [ -n "$summary" ]; then
  passed=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$summary")
  failed=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$summary")
  ignored=$(grep -oE '[0-9]+ ignored' <<<"$summary" | grep -oE '[0-9]+' || true)
  echo "tests: $passed passed, $failed failed${ignored:+, $ignored skipped}"
fi
exit "$rc"
