# shellcheck shell=bash
# shellcheck disable=SC2034  # globals used by restore.sh and list.sh
#
# common.sh - shared functions of the s3backup restore kit (see README.md and FORMAT.md).
# Sourced by restore.sh and list.sh, never run on its own.
#
# Only bash (3.2 or later), coreutils, openssl and (for S3) the aws CLI are used.

# ---------------------------------------------------------------------------------------------
# Messages, exit codes
# ---------------------------------------------------------------------------------------------

# Exit codes (README.md): 0 ok, 1 error, 2 usage, 3 partial restore, 4 wrong password.
EXIT_ERROR=1
EXIT_USAGE=2
EXIT_PARTIAL=3
EXIT_PASSWORD=4

KIT_PROG=${KIT_PROG:-s3backup-kit}
TAB=$'\t'
NL=$'\n'
CR=$'\r'

warn() {
  printf '%s: %s\n' "$KIT_PROG" "$1" >&2
}

# die MESSAGE [EXIT_CODE]: (when the kit's temporary folder has no room left, that is said too,
# as the likely cause)
die() {
  case "$1" in
  *"no space left in the temporary folder"*) ;;
  *) if tmp_full; then set -- "$1; $(tmp_full_said)" "$EXIT_ERROR"; fi ;;
  esac
  warn "$1"
  exit "${2:-$EXIT_ERROR}"
}

# fs_full DIR: whether the file system of DIR has (almost) no space left (under 64 KiB).
fs_full() {
  local avail=""
  read -r _ _ _ avail _ <<<"$(df -Pk -- "$1" 2>/dev/null | tail -n 1)" || true
  is_uint "$avail" && [ "$avail" -lt 64 ]
}

# tmp_full: whether the file system of the kit's temporary folder (KIT_TMP, in TMPDIR) is full:
# the packs, the meta and the kit's work are there.
tmp_full() {
  [ -n "${KIT_TMP:-}" ] && [ -d "$KIT_TMP" ] && fs_full "$KIT_TMP"
}

tmp_full_said() {
  printf 'no space left in the temporary folder %s: set TMPDIR to a folder with room, then run the same command again' "${KIT_TMP%/*}"
}

# need PROGRAM...: die unless every program is on PATH.
need() {
  local c
  for c in "$@"; do
    if ! command -v "$c" >/dev/null 2>&1; then
      die "'$c' is required but was not found on PATH"
    fi
  done
}

# ---------------------------------------------------------------------------------------------
# Temporary files: everything lives in KIT_TMP (mktemp -d), removed by the EXIT trap, together
# with the work directory inside the restore target (KIT_WORK) and the one file being written
# (KIT_CUR_TMP).
# ---------------------------------------------------------------------------------------------

KIT_TMP=""
KIT_WORK=""
KIT_CUR_TMP=""
KIT_PROMPTING=0
KIT_LOCK=""
KIT_MADE="" # a target this run made, removed again (empty) when it ends before the meta opened
KIT_HOST=""
KIT_PIDS=""
KIT_FETCH_PID=""
KIT_AWS_PID=""
KIT_EARLY=""

kit_cleanup() {
  local p
  if [ "$KIT_PROMPTING" = 1 ]; then stty echo </dev/tty 2>/dev/null || true; fi
  # Workers first (background subshells ignore SIGINT): nothing may write after this.
  for p in $KIT_PIDS $KIT_FETCH_PID $KIT_AWS_PID $KIT_EARLY; do kill -TERM "$p" 2>/dev/null || true; done
  for p in $KIT_PIDS $KIT_FETCH_PID $KIT_AWS_PID $KIT_EARLY; do wait "$p" 2>/dev/null || true; done
  if [ -n "$KIT_CUR_TMP" ]; then rm -f -- "$KIT_CUR_TMP" 2>/dev/null || true; fi
  # (Once more a second later: an aws download stopped mid-way may still be closing its file;
  # early_batch's download into KIT_TMP too.)
  if [ -n "$KIT_WORK" ]; then
    rm -rf -- "$KIT_WORK" 2>/dev/null || { sleep 1 && rm -rf -- "$KIT_WORK" 2>/dev/null; } || true
  fi
  if [ -n "$KIT_TMP" ]; then
    rm -rf -- "$KIT_TMP" 2>/dev/null || { sleep 1 && rm -rf -- "$KIT_TMP" 2>/dev/null; } || true
  fi
  if [ -n "$KIT_LOCK" ]; then rm -f -- "$KIT_LOCK" 2>/dev/null || true; fi
  if [ -n "$KIT_MADE" ]; then rmdir -- "$KIT_MADE" 2>/dev/null || true; fi
}

# pid_gone PID: no process PID runs on this host.
pid_gone() {
  is_uint "$1" && ! kill -0 "$1" 2>/dev/null
}

# clean_stale_tmp: temporary folders of earlier runs of the kit that were killed (SIGKILL leaves
# them, with decrypted file lists inside): those of this user whose process is gone.
clean_stale_tmp() {
  local d pid
  for d in "${TMPDIR:-/tmp}"/s3backup-kit.*; do
    if [ ! -d "$d" ] || [ -L "$d" ] || [ ! -O "$d" ] || [ "$d" = "$KIT_TMP" ]; then continue; fi
    pid=""
    if [ -f "$d/pid" ]; then IFS= read -r pid <"$d/pid" || true; fi
    if pid_gone "$pid"; then rm -rf -- "$d" 2>/dev/null || true; fi
  done
}

# lock_target: take TARGET/.s3backup-restore.lock ("<pid> <host>", created exclusively), the
# lock the binary takes too. One left by a process gone from this host is taken over; one of a
# running process stops this restore. Holding it, the leftovers of an interrupted restore in
# TARGET (work folders, temporary files) can only be that restore's, and are removed.
lock_target() {
  local lock="$TARGET/.s3backup-restore.lock" held="" pid="" host="" i=0 d
  KIT_HOST=$(uname -n 2>/dev/null || echo "?")
  while [ "$i" -lt 3 ]; do
    if (set -o noclobber; printf '%s %s\n' "$$" "$KIT_HOST" >"$lock") 2>/dev/null; then
      KIT_LOCK=$lock
      for d in "$TARGET"/.s3backup-work.*; do
        if [ -d "$d" ] && [ ! -L "$d" ]; then rm -rf -- "$d" 2>/dev/null || true; fi
      done
      return 0
    fi
    if [ ! -e "$lock" ] && [ ! -L "$lock" ]; then
      # Not there, yet not made: the target is not ours to write.
      die "cannot write into $TARGET: permission denied (the restore takes a lock file there first)"
    fi
    IFS= read -r held <"$lock" 2>/dev/null || true
    pid=${held%% *} host=${held#* }
    if [ "$host" != "$KIT_HOST" ] || ! pid_gone "$pid"; then
      die "another restore is writing into $TARGET (pid ${pid:-?} on ${host:-?}, .s3backup-restore.lock): wait for it, or remove that file if it is not running"
    fi
    rm -f -- "$lock"
    i=$((i + 1))
  done
  die "cannot take $lock"
}

# kit_init: umask, traps, temp dir, environment for the aws CLI.
kit_init() {
  umask 077
  # A character is a byte: names are bytes (FORMAT.md 5.2), lengths are counted in bytes, and
  # bash runs about twice as fast (in a UTF-8 locale each string operation decodes characters).
  LC_ALL=C
  trap kit_cleanup EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  KIT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/s3backup-kit.XXXXXX") || die "cannot create a temporary directory"
  # File descriptor 9: the user's stderr, for what is told while a command's stderr is caught
  # in a file (aws_run's retries).
  exec 9>&2
  printf '%s\n' "$$" >"$KIT_TMP/pid"
  KIT_FULL=$KIT_TMP/full KIT_DOWN=$KIT_TMP/down
  clean_stale_tmp
  # The aws CLI: no pager, and no new-style checksums (S3-compatible stores reject them).
  export AWS_PAGER=""
  export AWS_REQUEST_CHECKSUM_CALCULATION=when_required
  export AWS_RESPONSE_CHECKSUM_VALIDATION=when_required
  if [ "$(id -u)" = 0 ]; then KIT_ROOT=1; else KIT_ROOT=0; fi
}

# ---------------------------------------------------------------------------------------------
# openssl
# ---------------------------------------------------------------------------------------------

# check_openssl: die unless openssl knows -pbkdf2 (OpenSSL >= 1.1.1, LibreSSL >= 3.3).
check_openssl() {
  need openssl
  if ! printf '' | openssl enc -aes-256-cbc -pbkdf2 -iter 1 -md sha256 -pass pass:probe \
    >/dev/null 2>&1; then
    local v
    v=$(openssl version 2>/dev/null) || v="unknown version"
    die "this openssl ($v) does not support -pbkdf2. Install OpenSSL >= 1.1.1 or LibreSSL >= 3.3 (macOS: 'brew install openssl' and put \$(brew --prefix openssl)/bin first in PATH)."
  fi
}

# decrypt_pw IN OUT ITER: decrypt with the password (KIT_PASSWORD), never in argv. openssl's
# message is kept in KIT_TMP/openssl.err (decrypt_error tells a full disk from a bad object).
decrypt_pw() {
  KIT_PW_ENV="$KIT_PASSWORD" openssl enc -d -aes-256-cbc -pbkdf2 -iter "$3" -md sha256 \
    -pass env:KIT_PW_ENV -in "$1" -out "$2" 2>"$KIT_TMP/openssl.err" </dev/null
}

# decrypt_data IN OUT: decrypt a data object with the data key (DATA_KEY).
decrypt_data() {
  KIT_KEY_ENV="$DATA_KEY" openssl enc -d -aes-256-cbc -pbkdf2 -iter "$DATA_ITER" -md sha256 \
    -pass env:KIT_KEY_ENV -in "$1" -out "$2" 2>"$KIT_TMP/openssl.err" </dev/null
}

# decrypt_gz IN OUT: decrypt a data object holding a gzip stream, and gunzip it (write_out).
decrypt_gz() {
  KIT_KEY_ENV="$DATA_KEY" openssl enc -d -aes-256-cbc -pbkdf2 -iter "$DATA_ITER" -md sha256 \
    -pass env:KIT_KEY_ENV -in "$1" 2>"$KIT_TMP/openssl.err" </dev/null | gzip -dc 2>/dev/null |
    write_out "$2"
}

# SPARSE: 1 when dd can seek over blocks of zeros instead of writing them (conv=sparse: GNU,
# BSD and macOS dd; not BusyBox's); set by probe_sparse, else unset (plain writes).
SPARSE=""

probe_sparse() {
  if dd if=/dev/null of="$KIT_TMP/sparse.probe" conv=sparse 2>/dev/null; then SPARSE=1; else SPARSE=0; fi
  rm -f -- "$KIT_TMP/sparse.probe"
}

# write_out OUT: standard input into OUT. Where dd can, 64 KiB blocks of zeros become holes
# (ibs/obs: dd gathers a pipe's short reads into whole output blocks), so that a sparse file
# (a VM image, a database file) takes about its data's space (a large content: a data object).
write_out() {
  if [ "${SPARSE:-0}" = 1 ]; then
    dd of="$1" ibs=65536 obs=65536 conv=sparse 2>/dev/null
  else
    cat >"$1"
  fi
}

# unpack_pack IN DIR ERR: decrypt pack IN, gunzip it and extract its members into DIR (one
# openssl, one gzip, one tar: FORMAT.md 4.1); gzip's and tar's complaints into ERR (off the
# target's file system, which may be full).
unpack_pack() {
  local rc=0
  mkdir -p -- "$2" || return 1
  KIT_KEY_ENV="$DATA_KEY" openssl enc -d -aes-256-cbc -pbkdf2 -iter "$DATA_ITER" -md sha256 \
    -pass env:KIT_KEY_ENV -in "$1" 2>/dev/null </dev/null | gzip -dc 2>"$3.gz" |
    (cd -- "$2" && tar -xf - 2>"$3") || rc=$?
  cat -- "$3.gz" >>"$3" 2>/dev/null || true
  rm -f -- "$3.gz"
  return "$rc"
}

# decrypt_error OUT MD5: P_ERR for a decryption into OUT that failed. openssl says "error writing
# output file" when the target cannot take the bytes (df then says whether its file system is
# full); anything else is the object's fault.
decrypt_error() {
  local line="" said=""
  # (Any line: with format 1's key derivation openssl warns first.)
  if [ -f "$KIT_TMP/openssl.err" ]; then
    while IFS= read -r line || [ -n "$line" ]; do
      case "$line" in *"error writing"*) said=$line && break ;; esac
    done <"$KIT_TMP/openssl.err"
  fi
  if [ -z "$said" ]; then
    P_ERR="object $2 does not decrypt (corrupt object)"
  elif target_full "${1%/*}"; then
    P_ERR="cannot write: no space left on the file system of ${1%/*} (openssl: $said)"
  else
    P_ERR="cannot write into ${1%/*} (openssl: $said)"
  fi
}

# target_full DIR: whether the file system of DIR has (almost) no space left; then P_ERR says so
# (an unpacked pack member or a gunzip that could not be written), and note_full.
target_full() {
  if fs_full "$1"; then
    P_ERR="cannot write: no space left on the file system of $1 (error writing output file)"
    note_full
    return 0
  fi
  return 1
}

# note_full: the target's file system is full: from now on no file is written, no pack fetched
# (KIT_FULL, a file in the kit's temporary folder, tells every worker; fail names only the
# first entry that failed so).
KIT_FULL=""
NOT_WRITTEN="not written: no space left on the file system of the target"
note_full() {
  if [ -n "$KIT_FULL" ]; then : >"$KIT_FULL" 2>/dev/null || true; fi
}

# fail ESCAPED_PATH REASON: an entry not restored (restore.sh, restore-legacy.sh), named on
# stderr; once one failed because the target's file system is full, those that fail after it
# are counted, not named (full_note says why); one that failed for want of room in the kit's
# temporary folder stops the restore (die says why).
FAILED=0 FULL_SAID="" TMP_ASKED=0
fail() {
  FAILED=$((FAILED + 1))
  if [ -n "$FULL_SAID" ]; then return 0; fi
  case "$2" in
  "cannot write: no space left"* | "$NOT_WRITTEN"*) FULL_SAID=1 ;;
  "missing object"* | *"corrupt"* | *"(use --overwrite)"*) ;;
  *)
    # (a df each of the first 20 such failures: a failure for want of room in the kit's
    # temporary folder comes early and stops the restore)
    if [ "$TMP_ASKED" -lt 20 ]; then
      TMP_ASKED=$((TMP_ASKED + 1))
      if tmp_full; then die "$1: $2; the restore stopped (what is in place is kept)"; fi
    fi
    ;;
  esac
  warn "$1: $2"
}

# full_note: for the summary line, why so many failed when the target's file system filled.
full_note() {
  if [ -n "$FULL_SAID" ]; then
    printf ' (the target'"'"'s file system is full: free space and run the same command again)'
  fi
}

# MD5: md5sum (GNU), md5 -q (BSD) or openssl dgst, chosen at runtime.
KIT_MD5_TOOL=""
pick_md5() {
  if command -v md5sum >/dev/null 2>&1; then
    KIT_MD5_TOOL=md5sum
  elif command -v md5 >/dev/null 2>&1; then
    KIT_MD5_TOOL=md5
  else
    KIT_MD5_TOOL=openssl
  fi
}

# file_md5 FILE: set MD5_OUT to the lowercase hex MD5 of FILE; return 1 on failure.
file_md5() {
  local out
  MD5_OUT=""
  # Through a file rather than $(...): one process less per restored file.
  case "$KIT_MD5_TOOL" in
  md5sum) md5sum <"$1" >"$KIT_TMP/md5.out" || return 1 ;;
  md5) md5 -q <"$1" >"$KIT_TMP/md5.out" || return 1 ;;
  *) openssl dgst -md5 <"$1" >"$KIT_TMP/md5.out" || return 1 ;;
  esac
  out=""
  IFS= read -r out <"$KIT_TMP/md5.out" || true
  case "$KIT_MD5_TOOL" in
  md5sum) out=${out%% *} ;;
  openssl) out=${out##* } ;;
  esac
  if ! is_hex "$out" 32; then return 1; fi
  MD5_OUT=$out
}

# md5_many: "<md5> <name>" for every file of the current folder (plain names: no space or
# newline), with one process.
md5_many() {
  local out name
  set -- *
  if [ "$1" = "*" ] && [ ! -e "$1" ]; then return 0; fi
  # Straight out (the callers read it with IFS=' ', blanks between the fields are one): a
  # pipe into a read loop costs a system call a byte.
  case "$KIT_MD5_TOOL" in
  md5sum) md5sum -- "$@" ;;
  md5) md5 -r -- "$@" ;;
  *)
    # (A fallback where neither is found: its speed matters less than its working in any
    # folder, so no file of its own.)
    openssl dgst -md5 -- "$@" | while IFS= read -r out; do
      name=${out#*\(} name=${name%%)=*}
      printf '%s %s\n' "${out##* }" "$name"
    done
    ;;
  esac
}

# is_where STRING: a where of FORMAT.md 4: <pack>, <pack>.gz, data, data.gz or -.
is_where() {
  case "${1%.gz}" in
  ????????????????????????????????) case "${1%.gz}" in *[!0123456789abcdef]*) return 1 ;; esac ;;
  *) case "$1" in - | data | data.gz) ;; *) return 1 ;; esac ;;
  esac
}

# content_key MD5 WHERE: C_KEY, the object holding the content (FORMAT.md 4), and C_MEMBER, its
# member in a pack (empty for an object of its own).
content_key() {
  C_MEMBER=""
  case "$2" in
  - | "") C_KEY=$1 ;;
  data) C_KEY=data/$1 ;;
  data.gz) C_KEY=data/$1.gz ;;
  *.gz) C_KEY=packs/${2%.gz} C_MEMBER=$1.gz ;;
  *) C_KEY=packs/$2 C_MEMBER=$1 ;;
  esac
}

# is_hex STRING LENGTH: STRING is LENGTH lowercase hex digits.
is_hex() {
  if [ "${#1}" -ne "$2" ]; then return 1; fi
  case "$1" in *[!0123456789abcdef]*) return 1 ;; esac
  return 0
}

# is_uint STRING: one or more decimal digits.
is_uint() {
  case "$1" in '' | *[!0123456789]*) return 1 ;; esac
  return 0
}

# ---------------------------------------------------------------------------------------------
# Password
# ---------------------------------------------------------------------------------------------

KIT_PASSWORD=""

# get_password FILE PROMPT: FILE (first line, without \n or \r\n) if given, else
# $S3BACKUP_PASSWORD, else a prompt on /dev/tty when PROMPT is 1. Returns 1 when no password is
# available and PROMPT is 0.
get_password() {
  local file=$1 prompt=$2
  KIT_PASSWORD=""
  if [ -n "$file" ]; then
    if [ ! -r "$file" ] || [ -d "$file" ]; then die "cannot read password file: $file" "$EXIT_USAGE"; fi
    IFS= read -r KIT_PASSWORD <"$file" || true
    KIT_PASSWORD=${KIT_PASSWORD%"$CR"}
    if [ -z "$KIT_PASSWORD" ]; then die "the password file's first line is empty: $file" "$EXIT_USAGE"; fi
  elif [ -n "${S3BACKUP_PASSWORD:-}" ]; then
    KIT_PASSWORD=$S3BACKUP_PASSWORD
  elif [ "$prompt" = 1 ]; then
    if ! { : </dev/tty; } 2>/dev/null; then
      die "no password: set S3BACKUP_PASSWORD, use --password-file FILE, or run in a terminal" "$EXIT_USAGE"
    fi
    printf 'Repository password: ' >/dev/tty
    KIT_PROMPTING=1
    IFS= read -rs KIT_PASSWORD </dev/tty || true
    KIT_PROMPTING=0
    printf '\n' >/dev/tty
    if [ -z "$KIT_PASSWORD" ]; then die "empty password" "$EXIT_USAGE"; fi
  else
    return 1
  fi
  # Child processes (aws, cp...) need not see it; openssl gets it through its own variable.
  export -n S3BACKUP_PASSWORD 2>/dev/null || true
  return 0
}

# ---------------------------------------------------------------------------------------------
# kit.conf (written by s3backup next to the scripts): endpoint_url=..., region=...
# Read line by line, never sourced.
# ---------------------------------------------------------------------------------------------

CONF_ENDPOINT=""
CONF_REGION=""

# conf_each FILE HANDLER: calls HANDLER KEY VALUE for every key=value line of FILE (blank lines,
# '#' comments and other lines skipped, CRLF tolerated). The file is read, never sourced.
conf_each() {
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%"$CR"}
    case "$line" in '' | '#'*) continue ;; *=*) ;; *) continue ;; esac
    "$2" "${line%%=*}" "${line#*=}"
  done <"$1"
}

kit_conf_key() {
  case "$1" in
  endpoint_url) CONF_ENDPOINT=$2 ;;
  region) CONF_REGION=$2 ;;
  esac
}

read_kit_conf() {
  if [ -f "$KIT_DIR/kit.conf" ]; then conf_each "$KIT_DIR/kit.conf" kit_conf_key; fi
}

# ---------------------------------------------------------------------------------------------
# Store: s3://bucket[/prefix] or a local directory
# ---------------------------------------------------------------------------------------------

STORE_KIND=""
STORE_DIR=""
STORE_BUCKET=""
STORE_PREFIX=""
STORE_ERR=""
GOT_DIR="" # objects fetched ahead (restore.sh: early_batch)
AWS_OPTS=()

# store_init SPEC ENDPOINT_FLAG REGION_FLAG
store_init() {
  local spec=$1 rest endpoint region
  case "$spec" in
  s3://*)
    STORE_KIND=s3
    rest=${spec#s3://}
    STORE_BUCKET=${rest%%/*}
    if [ "$STORE_BUCKET" = "$rest" ]; then STORE_PREFIX=""; else STORE_PREFIX=${rest#*/}; fi
    while [ -n "$STORE_PREFIX" ] && [ "${STORE_PREFIX%/}" != "$STORE_PREFIX" ]; do
      STORE_PREFIX=${STORE_PREFIX%/}
    done
    if [ -n "$STORE_PREFIX" ]; then STORE_PREFIX="$STORE_PREFIX/"; fi
    if [ -z "$STORE_BUCKET" ]; then die "bad store URL: $spec (expected s3://bucket[/prefix])" "$EXIT_USAGE"; fi
    need aws
    read_kit_conf
    # endpoint: flag > AWS_ENDPOINT_URL_S3 > AWS_ENDPOINT_URL > kit.conf
    endpoint=$2
    if [ -z "$endpoint" ]; then endpoint=${AWS_ENDPOINT_URL_S3:-}; fi
    if [ -z "$endpoint" ]; then endpoint=${AWS_ENDPOINT_URL:-}; fi
    if [ -z "$endpoint" ]; then endpoint=$CONF_ENDPOINT; fi
    # region: flag > AWS_REGION / AWS_DEFAULT_REGION (read by aws itself) > kit.conf
    region=$3
    if [ -z "$region" ] && [ -z "${AWS_REGION:-}" ] && [ -z "${AWS_DEFAULT_REGION:-}" ]; then
      region=$CONF_REGION
    fi
    AWS_OPTS=()
    if [ -n "$endpoint" ] && [ -n "$region" ]; then
      AWS_OPTS=(--endpoint-url "$endpoint" --region "$region")
    elif [ -n "$endpoint" ]; then
      AWS_OPTS=(--endpoint-url "$endpoint")
    elif [ -n "$region" ]; then
      AWS_OPTS=(--region "$region")
    fi
    KIT_ENDPOINT=${endpoint:-the S3 endpoint}
    if [ "$LS_EARLY" = 1 ] && [ -z "$AS_OF" ]; then early objects_ls; fi
    first_contact
    ;;
  *)
    STORE_KIND=dir
    if [ ! -d "$spec" ]; then
      die "$spec: no such directory (a store is s3://bucket[/prefix] or a local directory)"
    fi
    STORE_DIR=$(cd -- "$spec" && pwd -P) || die "cannot enter $spec"
    ;;
  esac
  if [ -n "$AS_OF" ]; then as_of_index; fi
}

store_desc() {
  if [ "$STORE_KIND" = s3 ]; then
    printf 's3://%s/%s' "$STORE_BUCKET" "$STORE_PREFIX"
  else
    printf '%s' "$STORE_DIR"
  fi
}

# aws_run ARGS...: the aws CLI with the store's options and bounded waits: an attempt without
# an answer gives up after S3BACKUP_KIT_CONNECT_TIMEOUT / S3BACKUP_KIT_READ_TIMEOUT seconds
# (15, 120), or 10 s and 2 attempts until the endpoint has answered once (KIT_ANSWERED=0:
# store_init's first request), instead of hanging. The kit makes the attempts itself
# (AWS_MAX_ATTEMPTS, default 5; one CLI attempt each) so that each retry of a request without
# an answer is told on the user's stderr (descriptor 9: the caller may catch aws's in a file;
# not from a request made early, KIT_TELL_RETRIES=0); throttling, 5xx answers and dropped
# connections are tried again the same way, silently, after a growing pause.
KIT_TELL_RETRIES=1
aws_run() {
  local attempt=1 rc err text max=${AWS_MAX_ATTEMPTS:-5}
  local connect=${S3BACKUP_KIT_CONNECT_TIMEOUT:-15} read=${S3BACKUP_KIT_READ_TIMEOUT:-120}
  if [ "${KIT_ANSWERED:-1}" != 1 ]; then
    if [ "$connect" -gt 10 ]; then connect=10; fi
    if [ "$read" -gt 10 ]; then read=10; fi
    if [ "$max" -gt 2 ]; then max=2; fi
  fi
  err=$(mktemp "$KIT_TMP/aws-err.XXXXXX") || die "mktemp failed in $KIT_TMP"
  while :; do
    rc=0
    # In the background, waited for: a signal then stops the kit at once (a trapped signal
    # ends `wait`; the EXIT trap stops this aws), not once the attempt has timed out.
    AWS_MAX_ATTEMPTS=1 aws --cli-connect-timeout "$connect" --cli-read-timeout "$read" \
      ${AWS_OPTS[@]+"${AWS_OPTS[@]}"} "$@" </dev/null 2>"$err" &
    KIT_AWS_PID=$!
    wait "$KIT_AWS_PID" || rc=$?
    KIT_AWS_PID=""
    if [ "$rc" -eq 0 ] || [ "$attempt" -ge "$max" ]; then break; fi
    text=$(cat -- "$err")
    case "$text" in
    *"Read timeout"* | *"Connect timeout"* | *"timed out"*)
      if [ "$KIT_TELL_RETRIES" = 1 ]; then
        warn "no answer from ${KIT_ENDPOINT:-the S3 endpoint} within $read s (attempt $attempt of $max): trying again" 2>&9
      fi
      ;;
    *"(SlowDown)"* | *"(InternalError)"* | *"(ServiceUnavailable)"* | *"(RequestTimeout)"* | \
      *"(Throttling"* | *"(50"[0-9]")"* | *"Could not connect"* | *"Connection was closed"*) ;;
    *) break ;;
    esac
    sleep "$attempt"
    attempt=$((attempt + 1))
  done
  if [ "$rc" -ne 0 ]; then store_down "$err"; fi
  cat -- "$err" >&2
  rm -f -- "$err"
  return "$rc"
}

# store_down ERRFILE: when the aws CLI's last attempt failed because the store did not answer,
# could not be reached or refused the credentials, KIT_DOWN (a file in the kit's temporary
# folder, for every job) gets that error's first line: any other request would fail alike
# (restore.sh's stop_if_down then stops the restore).
KIT_DOWN=""
store_down() {
  local said
  said=$(cat -- "$1")
  case "$said" in
  *"Read timeout"* | *"Connect timeout"* | *"timed out"* | *"Could not connect"*) ;;
  *) credentials_refused "$said" || return 0 ;;
  esac
  if [ -n "$KIT_DOWN" ] && [ ! -s "$KIT_DOWN" ]; then
    first_line "$1" >"$KIT_DOWN" 2>/dev/null || true
  fi
}

# credentials_refused TEXT: the aws CLI's error TEXT says the store refused the credentials.
credentials_refused() {
  case "$1" in
  *"(InvalidAccessKeyId)"* | *"(SignatureDoesNotMatch)"* | *"(ExpiredToken)"* | \
    *"(InvalidToken)"* | *"Unable to locate credentials"*) return 0 ;;
  esac
  return 1
}

# stop_if_down: (an object or a batch fetched) the restore stops when the store stopped
# answering or refused the credentials (KIT_DOWN, store_down): every fetch after it would fail
# alike, after as long a wait, and its files be named one by one.
stop_if_down() {
  if [ -s "$KIT_DOWN" ]; then
    local said when="once the store answers"
    said=$(first_line "$KIT_DOWN")
    if credentials_refused "$said"; then when="with credentials the store accepts"; fi
    die "$said; the restore stopped (what is in place is kept): run the same command again $when"
  fi
}

# Requests made early (an aws call takes about half a second, most of it its start-up): `early
# REQ` runs the function REQ (a request, its answer into files of KIT_TMP) in the background;
# `answer REQ` waits for it and returns its exit code, or runs REQ now when it was not started.
early() {
  (
    # Stopped (kit_cleanup), it stops its aws too (a trapped signal ends aws_run's wait).
    trap 'if [ -n "$KIT_AWS_PID" ]; then kill -TERM "$KIT_AWS_PID" 2>/dev/null; fi; exit 143' TERM
    rc=0 KIT_TELL_RETRIES=0 # (what waits for it tells its own)
    "$1" || rc=$?
    printf '%s\n' "$rc" >"$KIT_TMP/$1.rc" 2>/dev/null # (none: answer says 1; die tells a full disk)
  ) &
  printf -v "KIT_EARLY_$1" '%s' "$!"
  KIT_EARLY="$KIT_EARLY $!"
}

answer() {
  local var=KIT_EARLY_$1 rc=1
  if [ -z "${!var:-}" ]; then
    "$1"
    return
  fi
  wait "${!var}" 2>/dev/null || true
  printf -v "$var" '%s' ""
  IFS= read -r rc <"$KIT_TMP/$1.rc" || rc=1
  return "$rc"
}

# first_contact: the first request, which an endpoint that never answers fails within about 20 s,
# with one line; any answer (403 included) is enough to go on. It fetches s3backup.conf, which
# load_repo_conf then reads (CONF_FIRST: "got", "missing", or empty to fetch it again); with
# KEY_FIRST=1 (restore.sh) s3backup.key instead, into GOT_DIR, where load_repo_key takes it
# (its key derivation then runs while the next aws call does: key_early); with --as-of a
# HeadBucket (the descriptor is read at its version later).
CONF_FIRST=""
KEY_FIRST=0
first_contact() {
  local rc=0 t=${S3BACKUP_KIT_READ_TIMEOUT:-120} n=${AWS_MAX_ATTEMPTS:-5}
  if [ "$t" -gt 10 ]; then t=10; fi
  if [ "$n" -gt 2 ]; then n=2; fi
  KIT_ANSWERED=0
  if [ -n "$AS_OF" ]; then
    aws_run s3api head-bucket --bucket "$STORE_BUCKET" >/dev/null 2>"$KIT_TMP/first.err" || rc=$?
  elif [ "$KEY_FIRST" = 1 ]; then
    GOT_DIR=$KIT_TMP/got
    mkdir -p -- "$GOT_DIR" || die "cannot create $GOT_DIR"
    if ! aws_run s3api get-object --bucket "$STORE_BUCKET" --key "${STORE_PREFIX}s3backup.key" \
      "$GOT_DIR/s3backup.key" >/dev/null 2>"$KIT_TMP/first.err"; then
      rc=1
      rm -f -- "$GOT_DIR/s3backup.key" # (load_repo_key asks again, and tells why)
    fi
  elif aws_run s3api get-object --bucket "$STORE_BUCKET" --key "${STORE_PREFIX}s3backup.conf" \
    "$KIT_TMP/s3backup.conf" >/dev/null 2>"$KIT_TMP/first.err"; then
    CONF_FIRST=got
  else
    rc=1
    rm -f -- "$KIT_TMP/s3backup.conf"
    if said_missing "$KIT_TMP/first.err"; then CONF_FIRST=missing; fi
  fi
  KIT_ANSWERED=1
  if [ "$rc" -eq 0 ]; then return 0; fi
  case "$(cat -- "$KIT_TMP/first.err")" in
  *"Read timeout"* | *"Connect timeout"* | *"timed out"*)
    die "no answer from $KIT_ENDPOINT within $t s ($n attempts, the first request to it): check the endpoint and the network" ;;
  esac
}

# first_line FILE: print the first non-empty line of FILE (for error messages).
first_line() {
  local l=""
  if [ -f "$1" ]; then
    while IFS= read -r l || [ -n "$l" ]; do
      if [ -n "$l" ]; then break; fi
    done <"$1"
  fi
  printf '%s' "$l"
}

# said_missing ERRFILE: the aws CLI's complaints in ERRFILE say the object is not there.
said_missing() {
  case "$(cat -- "$1")" in *NoSuchKey* | *"(404)"* | *"Not Found"*) return 0 ;; esac
  return 1
}

# store_get NAME DEST: fetch one object. On failure returns 1 with STORE_ERR = "missing" when
# the object does not exist, else a message.
store_get() {
  local name=$1 dest=$2 version=()
  STORE_ERR=""
  if [ "$STORE_KIND" = dir ]; then
    if [ ! -f "$STORE_DIR/$name" ]; then
      STORE_ERR=missing
      return 1
    fi
    if ! cp -- "$STORE_DIR/$name" "$dest" 2>"$KIT_TMP/cp.err"; then
      STORE_ERR=$(first_line "$KIT_TMP/cp.err")
      STORE_ERR="cannot copy${STORE_ERR:+: $STORE_ERR}"
      return 1
    fi
    return 0
  fi
  if [ -n "$GOT_DIR" ] && [ -f "$GOT_DIR/$name" ]; then # (restore.sh's early_batch)
    if mv -- "$GOT_DIR/$name" "$dest" 2>/dev/null; then return 0; fi
    rm -f -- "$dest"
  fi
  if [ -n "$AS_OF" ]; then
    if ! as_of_version "$name"; then
      STORE_ERR=missing
      return 1
    fi
    # The = form: a version id may begin with "-" (Ceph RGW), which the CLI would take for an option.
    version=("--version-id=$AS_OF_VID")
  fi
  if aws_run s3api get-object --bucket "$STORE_BUCKET" --key "$STORE_PREFIX$name" \
    ${version[@]+"${version[@]}"} "$dest" >/dev/null 2>"$KIT_TMP/aws.err"; then
    return 0
  fi
  if said_missing "$KIT_TMP/aws.err"; then
    STORE_ERR=missing
  else
    # Some servers' 404 bodies trip the CLI up (Ceph RGW: "argument of type 'NoneType' is not
    # iterable"): a HEAD, which has no body, tells whether the object is there.
    STORE_ERR="download failed: $(first_line "$KIT_TMP/aws.err")"
    if ! aws_run s3api head-object --bucket "$STORE_BUCKET" --key "$STORE_PREFIX$name" \
      ${version[@]+"${version[@]}"} >/dev/null 2>"$KIT_TMP/aws.err" && said_missing "$KIT_TMP/aws.err"; then
      STORE_ERR=missing
    fi
  fi
  rm -f -- "$dest"
  return 1
}

# Bounds of FORMAT.md 2 and 5: the most work a hostile repository can ask of a reader.
MAX_ITER=10000000
MAX_LINE=40000
MAX_PATH_BYTES=4096
MAX_COMPONENTS=256

# iter_ok N: an iteration count from 1 to MAX_ITER (no arithmetic on a huge number).
iter_ok() {
  is_uint "$1" && [ "${#1}" -le 8 ] && [ "$((10#$1))" -ge 1 ] && [ "$((10#$1))" -le "$MAX_ITER" ]
}

# lines_bounded FILE: no line of FILE is longer than MAX_LINE bytes (bash reads a line byte by
# byte: a 10 MB one would take minutes). cut adds a final newline a file may lack.
lines_bounded() {
  local whole cut_size
  whole=$(wc -c <"$1") || return 1
  cut_size=$(cut -b "1-$MAX_LINE" "$1" | wc -c) || return 1
  if [ -n "$(tail -c 1 "$1")" ]; then whole=$((whole + 1)); fi
  [ "$((cut_size))" -eq "$((whole))" ]
}

# Repository descriptor s3backup.conf: sets KEY_ITER and DATA_ITER (format 2 defaults when it
# is missing). Refuses an unknown format or cipher.
KEY_ITER=600000
DATA_ITER=1

load_repo_conf() {
  local f="$KIT_TMP/s3backup.conf"
  if [ "$CONF_FIRST" = missing ]; then
    return 0
  elif [ "$CONF_FIRST" != got ] && ! store_get s3backup.conf "$f"; then
    # Missing: the format 2 defaults (FORMAT.md 2). Without s3:ListBucket permission S3 says
    # AccessDenied for a missing key: go on with the defaults too.
    case "$STORE_ERR" in
    missing) ;;
    *AccessDenied* | *Forbidden* | *"(403)"*) warn "cannot read s3backup.conf ($STORE_ERR); using the format 2 defaults" ;;
    *) die "cannot read s3backup.conf in $(store_desc): $STORE_ERR" ;;
    esac
    return 0
  fi
  conf_each "$f" repo_conf_key
  rm -f -- "$f"
}

repo_conf_key() {
  local k=$1 v=$2
  case "$k" in
  format) case "$v" in 2 | 3) ;; *) die "repository format '$v' is not supported by this kit (it reads formats 2 and 3)" ;; esac ;;
  cipher) if [ "$v" != aes-256-cbc ]; then die "unsupported cipher '$v' in s3backup.conf"; fi ;;
  kdf) if [ "$v" != pbkdf2 ]; then die "unsupported kdf '$v' in s3backup.conf"; fi ;;
  digest) if [ "$v" != sha256 ]; then die "unsupported digest '$v' in s3backup.conf"; fi ;;
  key-iter) if iter_ok "$v"; then KEY_ITER=$v; else die "bad key-iter '$v' in s3backup.conf (1 to $MAX_ITER)"; fi ;;
  data-iter) if iter_ok "$v"; then DATA_ITER=$v; else die "bad data-iter '$v' in s3backup.conf (1 to $MAX_ITER)"; fi ;;
  esac
}

# objects_ls: the store's listing (S3, no --as-of): a line "<key> TAB <size> TAB <class>" for each
# object whose name begins with LS_FROM ("meta_": the metas; restore.sh: "", every object, the
# metas and the archived ones in one listing; "None" for an empty page), into KIT_TMP/ls.out and
# ls.err. LS_EARLY=1: store_init starts it in the background beside the first request.
LS_FROM=meta_
LS_EARLY=0
objects_ls() {
  aws_run s3api list-objects-v2 --bucket "$STORE_BUCKET" --prefix "$STORE_PREFIX$LS_FROM" \
    --query 'Contents[].[Key,Size,StorageClass]' --output text >"$KIT_TMP/ls.out" 2>"$KIT_TMP/ls.err"
}

# objects_list: objects_ls's answer in KIT_TMP/ls.out (waited for, or made now, once).
objects_list() {
  local rc=0
  if [ -f "$KIT_TMP/ls.done" ]; then return 0; fi
  answer objects_ls || rc=$?
  if [ "$rc" -ne 0 ]; then die "cannot list $(store_desc): $(first_line "$KIT_TMP/ls.err")"; fi
  : >"$KIT_TMP/ls.done"
}

# is_meta_name NAME: meta_<name>_<YYYYMMDDTHHMMSSZ>, <name> 1 to 64 of A-Z a-z 0-9 . _ -, not
# "latest" (FORMAT.md 1): exactly the binary's grammar.
is_meta_name() {
  local ts=${1##*_} name
  case "$1" in meta_?*_*) ;; *) return 1 ;; esac
  case "$ts" in
  [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z) ;;
  *) return 1 ;;
  esac
  name=${1#meta_}
  name=${name%_*}
  case "$name" in '' | latest | *[!A-Za-z0-9._-]*) return 1 ;; esac
  [ "${#name}" -le 64 ]
}

# store_list_metas OUT: write "<time> <name> <meta> <size>" lines, sorted by time then name.
# Only top-level meta_* objects count: never the copies under passwd/ (a local glob does not
# descend into folders; a listed key with a "/" after the prefix is no meta name).
store_list_metas() {
  local out=$1 raw="$KIT_TMP/metas.raw" f n sz rest
  : >"$raw"
  if [ "$STORE_KIND" = dir ]; then
    for f in "$STORE_DIR"/meta_*; do
      if [ ! -f "$f" ] || [ -L "$f" ]; then continue; fi
      n=${f##*/}
      if ! is_meta_name "$n"; then continue; fi
      sz=$(wc -c <"$f") || sz=0
      sz=${sz##* }
      printf '%s\n' "$n $sz" >>"$raw"
    done
  elif [ -n "$AS_OF" ]; then
    while IFS=' ' read -r n _ sz; do
      if is_meta_name "$n"; then printf '%s\n' "$n $sz" >>"$raw"; fi
    done <"$AS_OF_INDEX"
  else
    objects_list
    while IFS="$TAB" read -r n sz _ || [ -n "$n" ]; do
      n=${n#"$STORE_PREFIX"}
      if is_meta_name "$n" && is_uint "$sz"; then printf '%s\n' "$n $sz" >>"$raw"; fi
    done <"$KIT_TMP/ls.out"
  fi
  : >"$out"
  while IFS=' ' read -r n sz; do
    rest=${n#meta_}
    printf '%s\n' "${n##*_} ${rest%_*} $n $sz" >>"$out"
  done <"$raw"
  LC_ALL=C sort -o "$out" "$out"
}

# ---------------------------------------------------------------------------------------------
# Keys and metas
# ---------------------------------------------------------------------------------------------

DATA_KEY=""

# unwrap_key FILE: decrypt a wrapped key (s3backup.key bytes) with the password into DATA_KEY.
unwrap_key() {
  local plain="$KIT_TMP/key.plain" l1="" l2=""
  DATA_KEY=""
  if ! decrypt_pw "$1" "$plain" "$KEY_ITER"; then rm -f -- "$plain"; return 1; fi
  { IFS= read -r l1 || true; IFS= read -r l2 || true; } <"$plain"
  rm -f -- "$plain"
  if [ "$l1" != "s3backup-key 2" ]; then return 1; fi
  if ! is_hex "$l2" 64; then return 1; fi
  DATA_KEY=$l2
}

# load_repo_key: unwrap the repository's key into DATA_KEY: s3backup.key, or when the password
# does not open it (an interrupted password change, FORMAT.md 7) s3backup.key.next, then
# s3backup.key.prev. Sets KEY_FROM to the one that opened. Returns 1 when none opens, with
# KEY_SEEN the number of them that could be fetched and KEY_ERR why the first could not be.
load_repo_key() {
  local c
  KEY_FROM="" KEY_SEEN=0 KEY_ERR=""
  for c in s3backup.key s3backup.key.next s3backup.key.prev; do
    if ! store_get "$c" "$KIT_TMP/key.enc"; then
      if [ -z "$KEY_ERR" ]; then KEY_ERR="$c: $STORE_ERR"; fi
      continue
    fi
    KEY_SEEN=$((KEY_SEEN + 1))
    if unwrap_key "$KIT_TMP/key.enc"; then
      # (key_early: its bytes, as a meta's wrapped-key header holds them: key_same)
      if [ -n "${KEY_B64:-}" ]; then openssl base64 -A -in "$KIT_TMP/key.enc" >"$KEY_B64" 2>/dev/null || true; fi
      rm -f -- "$KIT_TMP/key.enc"
      KEY_FROM=$c
      return 0
    fi
  done
  rm -f -- "$KIT_TMP/key.enc"
  return 1
}

# key_early: load_repo_key, meant to run in the background (`early key_early`) while the meta is
# fetched and opened: in a temporary folder of its own, silent (a failure is found again, and
# told, by key_answer), its result (where the key came from, the key, the key-iter it used) in
# its folder's `result`. Started before the descriptor is read (KEY_FIRST), it uses the format's
# key-iter, which key_opened checks against the descriptor's.
key_early() {
  local KIT_TMP="$KIT_TMP/key-early"
  local KEY_B64="$KIT_TMP/b64"
  mkdir -- "$KIT_TMP" || return 1
  load_repo_key || return 1
  printf '%s\n%s\n%s\n' "$KEY_FROM" "$DATA_KEY" "$KEY_ITER" >"$KIT_TMP/result"
} 2>/dev/null

# key_opened: KEY_FROM and DATA_KEY from key_early's result (waited for), when it opened a key
# with the descriptor's key-iter; else returns 1 with DATA_KEY empty.
key_opened() {
  local r="$KIT_TMP/key-early/result" iter=""
  DATA_KEY=""
  if [ -n "${KIT_EARLY_key_early:-}" ]; then answer key_early || true; fi
  if [ ! -f "$r" ]; then return 1; fi
  { IFS= read -r KEY_FROM && IFS= read -r DATA_KEY && IFS= read -r iter; } <"$r" || DATA_KEY=""
  if [ "$iter" != "$KEY_ITER" ] || ! is_hex "$DATA_KEY" 64; then
    DATA_KEY=""
    return 1
  fi
}

# key_answer: load_repo_key's outcome, from key_early when it opened a key (else load_repo_key
# now, which tells its errors).
key_answer() {
  if key_opened; then
    key_discard
    return 0
  fi
  key_discard
  load_repo_key
}

# key_same WRAPPED: whether the key key_early opened is the one WRAPPED (a meta's wrapped-key
# header: base64 of the exact bytes of s3backup.key, FORMAT.md 5) holds, byte for byte: then
# DATA_KEY is it (no second key derivation), else DATA_KEY is empty.
key_same() {
  local b=""
  key_opened || return 1
  IFS= read -r b 2>/dev/null <"$KIT_TMP/key-early/b64" || true # (one line, no newline)
  if [ -z "$b" ] || [ "$b" != "$1" ]; then
    DATA_KEY=""
    return 1
  fi
}

# key_discard: key_early's job (when it runs) waited for, and its folder removed (the key it may
# hold with it).
key_discard() {
  if [ -n "${KIT_EARLY_key_early:-}" ]; then answer key_early || true; fi
  rm -rf -- "$KIT_TMP/key-early"
}

META_PLAIN=""
META_HDR_LINES=0
META_ENTRIES=0
META_WRAPPED=""
META_TIME=""
META_HOST=""
META_SOURCE=""
META_ROOT=""
META_NAME=""
META_VERSION=2

# meta_check ENCRYPTED LABEL: decrypt and check a meta (magic line, header, trailer) into
# META_PLAIN. Returns 1, with META_PLAIN removed, META_ERR a message starting with LABEL and
# META_ERR_CODE EXIT_PASSWORD when it does not open, EXIT_ERROR when it is truncated or of
# another version.
meta_check() {
  local enc=$1 label=$2 line="" n=0 k v found=0 total last cnt
  META_PLAIN="$KIT_TMP/meta.plain"
  META_WRAPPED=""
  META_TIME="" META_HOST="" META_SOURCE="" META_NAME="" META_ROOT=""
  META_ERR="" META_ERR_CODE=$EXIT_ERROR
  if ! ahead_plain "$enc" && ! decrypt_pw "$enc" "$META_PLAIN" "$KEY_ITER"; then
    if tmp_full; then
      meta_bad "$label: cannot decrypt it: $(tmp_full_said)"
    elif ! container_whole "$enc"; then
      meta_bad "$label: damaged meta: not a whole openssl container (cut short or overwritten)"
    else
      meta_bad "$label: wrong password (the meta does not decrypt)" "$EXIT_PASSWORD"
    fi
    return 1
  fi
  if ! lines_bounded "$META_PLAIN"; then
    meta_bad "$label: a line is longer than $MAX_LINE bytes (FORMAT.md 5): refused"
    return 1
  fi
  IFS= read -r line <"$META_PLAIN" || true
  META_VERSION=${line#s3backup-meta }
  if [ "$line" != "s3backup-meta 2" ] && [ "$line" != "s3backup-meta 3" ]; then
    case "$line" in
    "s3backup-meta "[0-9]*) meta_bad "$label: meta version '${line#s3backup-meta }' is not supported by this kit" ;;
    *) meta_bad "$label: wrong password (or corrupt meta)" "$EXIT_PASSWORD" ;;
    esac
    return 1
  fi
  n=0
  while IFS= read -r line; do
    n=$((n + 1))
    if [ "$n" -eq 1 ]; then continue; fi
    if [ "$line" = entries ]; then
      found=1
      break
    fi
    k=${line%% *}
    if [ "$k" = "$line" ]; then v=""; else v=${line#* }; fi
    case "$k" in
    wrapped-key) printf -v META_WRAPPED '%b' "$v" ;;
    time) printf -v META_TIME '%b' "$v" ;;
    host) printf -v META_HOST '%b' "$v" ;;
    source) printf -v META_SOURCE '%b' "$v" ;;
    name) printf -v META_NAME '%b' "$v" ;;
    root) META_ROOT=$v ;;
    esac
  done <"$META_PLAIN"
  if [ "$found" != 1 ]; then meta_bad "$label: truncated meta (no 'entries' line)"; return 1; fi
  META_HDR_LINES=$n
  total=$(wc -l <"$META_PLAIN") || die "wc failed"
  total=${total##* }
  # A last line without its \n still counts.
  if [ -n "$(tail -c 1 "$META_PLAIN")" ]; then total=$((total + 1)); fi
  last=$(tail -n 1 "$META_PLAIN") || die "tail failed"
  case "$last" in
  "end "*) cnt=${last#end } ;;
  *) meta_bad "$label: truncated meta (no 'end' trailer)"; return 1 ;;
  esac
  if ! is_uint "$cnt"; then meta_bad "$label: truncated meta (bad trailer '$last')"; return 1; fi
  META_ENTRIES=$((total - n - 1))
  if [ "$META_ENTRIES" -lt 0 ] || [ "$((10#$cnt))" -ne "$META_ENTRIES" ]; then
    meta_bad "$label: truncated meta (trailer says $((10#$cnt)) entries, found $META_ENTRIES)"
    return 1
  fi
  return 0
}

# ahead_plain ENC: (restore.sh's meta_ahead, once) its plaintext into META_PLAIN when it
# decrypted ENC's very bytes (their MD5s) at KEY_ITER; else returns 1 (then decrypt_pw).
ahead_plain() {
  local d=$KIT_TMP/ahead iter="" sum
  if [ -z "${KIT_EARLY_meta_ahead:-}" ]; then return 1; fi
  if answer meta_ahead && [ -f "$d/iter" ] && IFS= read -r iter <"$d/iter" &&
    [ "$iter" = "$KEY_ITER" ] && file_md5 "$d/enc" && sum=$MD5_OUT && file_md5 "$1" &&
    [ "$MD5_OUT" = "$sum" ] &&
    mv -- "$d/plain" "$META_PLAIN"; then
    rm -rf -- "$d"
    return 0
  fi
  rm -rf -- "$d"
  return 1
}

# container_whole FILE: whether FILE is shaped as FORMAT.md 3.1's container: "Salted__", an
# 8-byte salt, then whole 16-byte blocks. One that is not was cut short or overwritten: no
# password opens it (the binary calls it corrupt too). Bash alone (read stops at a NUL byte).
container_whole() {
  local magic=""
  LC_ALL=C IFS= read -r -n 8 magic <"$1" || true
  file_size "$1" || return 1
  [ "$magic" = Salted__ ] && [ "$FILE_SIZE" -ge 32 ] && [ $((FILE_SIZE % 16)) -eq 0 ]
}

# file_size FILE: its bytes in FILE_SIZE (wc -c, BSD's padding stripped).
FILE_SIZE=""
file_size() {
  FILE_SIZE=$(wc -c <"$1") || return 1
  FILE_SIZE=${FILE_SIZE##* }
}

# meta_bad MESSAGE [EXIT_CODE]: meta_check's failure.
meta_bad() {
  rm -f -- "$META_PLAIN"
  META_ERR=$1
  META_ERR_CODE=${2:-$EXIT_ERROR}
}

# meta_open NAME: fetch meta NAME and open it (meta_check). When it does not open with the
# password, its copies left by an interrupted password change (FORMAT.md 7): passwd/next/NAME,
# then passwd/prev/NAME, each with its own wrapped-key header; absent ones are skipped. Sets
# META_FROM to the object that opened. Returns 1 when none opens, with META_ERR and
# META_ERR_CODE about NAME itself (EXIT_ERROR, and META_MISSING=1, when NAME does not exist;
# EXIT_ERROR when a copy could not be fetched).
meta_open() {
  local name=$1 c err code fetch_err="" denied=""
  META_FROM="" META_MISSING=0
  if ! store_get "$name" "$KIT_TMP/meta.enc"; then
    if [ "$STORE_ERR" = missing ]; then META_MISSING=1; fi
    META_ERR="$name: $STORE_ERR"
    META_ERR_CODE=$EXIT_ERROR
    return 1
  fi
  if meta_check "$KIT_TMP/meta.enc" "$name"; then
    rm -f -- "$KIT_TMP/meta.enc"
    META_FROM=$name
    return 0
  fi
  err=$META_ERR code=$META_ERR_CODE
  for c in "passwd/next/$name" "passwd/prev/$name"; do
    if ! store_get "$c" "$KIT_TMP/meta.enc"; then
      case "$STORE_ERR" in
      missing) ;;
      # Without s3:ListBucket S3 says AccessDenied for a missing key.
      *AccessDenied* | *Forbidden* | *"(403)"*) denied="$denied; $c: $STORE_ERR" ;;
      *) if [ -z "$fetch_err" ]; then fetch_err="$c: $STORE_ERR"; fi ;;
      esac
      continue
    fi
    if meta_check "$KIT_TMP/meta.enc" "$c"; then
      rm -f -- "$KIT_TMP/meta.enc"
      META_FROM=$c
      return 0
    fi
  done
  rm -f -- "$KIT_TMP/meta.enc"
  META_ERR=$err$denied
  META_ERR_CODE=$code
  if [ -n "$fetch_err" ]; then
    META_ERR="$err; and its copy $fetch_err"
    META_ERR_CODE=$EXIT_ERROR
  fi
  return 1
}

# ---------------------------------------------------------------------------------------------
# The kit's command line, one parser for every script:
#   [--only PATH]... [--overwrite] [--count] [--endpoint-url URL] [--region R]
#   [--password-file F] POSITIONAL...
# ---------------------------------------------------------------------------------------------
# --as-of TIME: a versioned bucket as it was then (FORMAT.md 9): each name's newest version
# written at or before TIME, unless that is a delete marker.
# ---------------------------------------------------------------------------------------------

AS_OF_INDEX=""
AS_OF_VID=""

# as_of_time TEXT: AS_OF (YYYY-MM-DDTHH:MM:SS, UTC) from 2026-11-30 or 2026-11-30T14:00[:00[.5]]Z.
as_of_time() {
  case "$1" in
  [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]) AS_OF="$1T00:00:00" ;;
  [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]Z) AS_OF="${1%Z}:00" ;;
  [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]Z | \
    [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].*Z) AS_OF=${1:0:19} ;;
  *) die "--as-of: use a UTC time such as 2026-11-30T14:00:00Z, or a date" "$EXIT_USAGE" ;;
  esac
}

# as_of_list QUERY OUT: the versions (or delete markers) QUERY selects, "name time id [size]".
as_of_list() {
  local k t v sz rc=0
  aws_run s3api list-object-versions --bucket "$STORE_BUCKET" --prefix "$STORE_PREFIX" \
    --query "$1" --output text >"$2.raw" 2>"$KIT_TMP/versions.err" || rc=$?
  if [ "$rc" -ne 0 ]; then die "cannot list the versions in $(store_desc): $(first_line "$KIT_TMP/versions.err")"; fi
  : >"$2"
  while IFS="$TAB" read -r k t v sz || [ -n "$k" ]; do
    if [ "$k" = None ] || [ -z "$v" ]; then continue; fi
    t=${t:0:19}
    if [[ "$t" > "$AS_OF" ]]; then continue; fi
    printf '%s %s %s %s\n' "${k#"$STORE_PREFIX"}" "$t" "${v%"$CR"}" "${sz%"$CR"}" >>"$2"
  done <"$2.raw"
}

# as_of_index: AS_OF_INDEX, "name version-id size" for each object there at AS_OF, by name.
as_of_index() {
  local n t v sz last="" lastline=""
  if [ "$STORE_KIND" != s3 ]; then die "--as-of needs a versioned S3 bucket" "$EXIT_USAGE"; fi
  as_of_list 'Versions[].[Key,LastModified,VersionId,Size]' "$KIT_TMP/v.versions"
  as_of_list 'DeleteMarkers[].[Key,LastModified,VersionId]' "$KIT_TMP/v.markers"
  while IFS=' ' read -r n t v _; do printf '%s %s %s -\n' "$n" "$t" "$v"; done \
    <"$KIT_TMP/v.markers" >>"$KIT_TMP/v.versions"
  AS_OF_INDEX=$KIT_TMP/v.index
  : >"$AS_OF_INDEX"
  # By name, then time: the last line of a name is its newest version (or marker) by then.
  LC_ALL=C sort -k1,1 -k2,2 "$KIT_TMP/v.versions" >"$KIT_TMP/v.sorted"
  while IFS=' ' read -r n t v sz; do
    if [ "$n" != "$last" ] && [ -n "$lastline" ]; then
      case "$lastline" in *" -") ;; *) printf '%s\n' "$lastline" >>"$AS_OF_INDEX" ;; esac
    fi
    last=$n
    lastline="$n $v $sz"
  done <"$KIT_TMP/v.sorted"
  if [ -n "$lastline" ]; then
    case "$lastline" in *" -") ;; *) printf '%s\n' "$lastline" >>"$AS_OF_INDEX" ;; esac
  fi
}

# as_of_version NAME: AS_OF_VID, its version at AS_OF; 1 when it was not there.
as_of_version() {
  local line
  line=$(printf '%s\n' "$1" | LC_ALL=C join -j 1 - "$AS_OF_INDEX") || line=""
  if [ -z "$line" ]; then return 1; fi
  line=${line#* }
  AS_OF_VID=${line%% *}
}

# parse_kit_args N OPTIONS "$@": N positionals (3: STORE SPEC TARGET, 1: STORE); OPTIONS lists
# the script's own options among "only overwrite count". Sets the ARG_* globals and ONLY /
# ONLY_HIT / ONLY_N; a bad command line exits with EXIT_USAGE (the script defines usage()).
# ---------------------------------------------------------------------------------------------

ONLY=()
ONLY_HIT=()
ONLY_N=0
ARG_ENDPOINT=""
ARG_REGION=""
ARG_PWFILE=""
ARG_OVERWRITE=0
ARG_COUNT=0
AS_OF=""
ARG_RESTORE_TIER=Standard
ARG_RESTORE_DAYS=3
ARG_WAIT=0
ARG_STORE=""
ARG_SPEC=""
ARG_TARGET=""

# kit_option_ok NAME OPTIONS: NAME is one of the words of OPTIONS.
kit_option_ok() {
  case " $2 " in *" $1 "*) return 0 ;; esac
  usage >&2
  die "unknown option: --$1" "$EXIT_USAGE"
}

parse_kit_args() {
  local npos=$1 options=$2 o
  shift 2
  while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --overwrite) kit_option_ok overwrite "$options"; ARG_OVERWRITE=1; shift; continue ;;
    --count) kit_option_ok count "$options"; ARG_COUNT=1; shift; continue ;;
    --wait) kit_option_ok thaw "$options"; ARG_WAIT=1; shift; continue ;;
    --as-of) if [ $# -lt 2 ]; then die "--as-of needs a TIME" "$EXIT_USAGE"; fi; as_of_time "$2"; shift 2; continue ;;
    --restore-tier | --restore-days)
      kit_option_ok thaw "$options"
      if [ $# -lt 2 ]; then die "$1 needs a value" "$EXIT_USAGE"; fi
      case "$1=$2" in
      --restore-tier=Bulk | --restore-tier=Standard | --restore-tier=Expedited) ARG_RESTORE_TIER=$2 ;;
      --restore-tier=*) die "--restore-tier: use Bulk, Standard or Expedited" "$EXIT_USAGE" ;;
      *) if ! is_uint "$2" || [ "$2" -lt 1 ] || [ "$2" -gt 365 ]; then die "--restore-days: use 1 to 365" "$EXIT_USAGE"; fi; ARG_RESTORE_DAYS=$2 ;;
      esac
      shift 2; continue ;;
    --only) kit_option_ok only "$options"; if [ $# -lt 2 ]; then die "--only needs a PATH" "$EXIT_USAGE"; fi; o=$2; shift 2 ;;
    --only=*) kit_option_ok only "$options"; o=${1#--only=}; shift ;;
    --endpoint-url) if [ $# -lt 2 ]; then die "--endpoint-url needs a URL" "$EXIT_USAGE"; fi; ARG_ENDPOINT=$2; shift 2; continue ;;
    --endpoint-url=*) ARG_ENDPOINT=${1#*=}; shift; continue ;;
    --password-file) if [ $# -lt 2 ]; then die "--password-file needs a FILE" "$EXIT_USAGE"; fi; ARG_PWFILE=$2; shift 2; continue ;;
    --password-file=*) ARG_PWFILE=${1#*=}; shift; continue ;;
    --region) if [ $# -lt 2 ]; then die "--region needs a region" "$EXIT_USAGE"; fi; ARG_REGION=$2; shift 2; continue ;;
    --region=*) ARG_REGION=${1#*=}; shift; continue ;;
    --) shift; break ;;
    -?*) usage >&2; die "unknown option: $1" "$EXIT_USAGE" ;;
    *) break ;;
    esac
    # --only PATH: strip "./" and trailing slashes
    while [ "${o#./}" != "$o" ]; do o=${o#./}; done
    while [ -n "$o" ] && [ "${o%/}" != "$o" ]; do o=${o%/}; done
    if [ -z "$o" ]; then die "--only needs a relative PATH" "$EXIT_USAGE"; fi
    ONLY[ONLY_N]=$o
    ONLY_HIT[ONLY_N]=0
    ONLY_N=$((ONLY_N + 1))
  done
  if [ $# -ne "$npos" ]; then usage >&2; exit "$EXIT_USAGE"; fi
  ARG_STORE=$1
  if [ "$npos" -lt 3 ]; then return 0; fi
  ARG_SPEC=$2 ARG_TARGET=$3
  if [ -z "$ARG_TARGET" ]; then die "empty target directory" "$EXIT_USAGE"; fi
  if [ -e "$ARG_TARGET" ] && [ ! -d "$ARG_TARGET" ]; then
    die "$ARG_TARGET exists and is not a directory" "$EXIT_USAGE"
  fi
}

# resolve_meta SPEC IS_NAME LIST WHAT [HINT]: set META to SPEC when `IS_NAME SPEC` says it is a
# meta name; else `LIST FILE` writes "<meta> <backup name>" lines, oldest first, and META is the
# newest that SPEC ("latest", or a backup name) selects. Dies when there is none: "no WHATs
# found" / "no WHAT named 'SPEC'", then HINT.
resolve_meta() {
  local spec=$1 m n
  if "$2" "$spec"; then
    META=$spec
    return 0
  fi
  "$3" "$KIT_TMP/metas.pick"
  META=""
  while IFS=' ' read -r m n || [ -n "$m" ]; do
    if [ "$spec" = latest ] || [ "$spec" = "$n" ]; then META=$m; fi
  done <"$KIT_TMP/metas.pick"
  if [ -n "$META" ]; then return 0; fi
  if [ "$spec" = latest ]; then die "no ${4}s found in $(store_desc)${5:-}"; fi
  die "no $4 named '$spec' in $(store_desc)${5:-}"
}

# ---------------------------------------------------------------------------------------------
# Placing a file: a temporary file next to its place in the target, filled and checked, then
# moved into place. KIT_CUR_TMP names it meanwhile (the EXIT trap removes it).
# ---------------------------------------------------------------------------------------------

# temp_beside REL: create TMP_FILE (mode 0600: umask 077) in the folder of REL inside TARGET.
# Sets P_ERR and returns 1 when it cannot.
temp_beside() {
  local pdir
  case "$1" in */*) pdir="$TARGET/${1%/*}" ;; *) pdir=$TARGET ;; esac
  if ! TMP_FILE=$(mktemp "$pdir/.s3backup-tmp.XXXXXX" 2>/dev/null); then
    P_ERR="cannot create a temporary file in its directory"
    return 1
  fi
  KIT_CUR_TMP=$TMP_FILE
}

# drop_temp: remove TMP_FILE.
drop_temp() {
  rm -f -- "$TMP_FILE"
  KIT_CUR_TMP=""
}

# decrypt_into_temp DECRYPT IN MD5: `DECRYPT IN TMP_FILE` (decrypt_data, decrypt_legacy), then
# check that the plaintext's MD5 is MD5. On failure TMP_FILE is removed and P_ERR says why.
decrypt_into_temp() {
  if ! "$1" "$2" "$TMP_FILE"; then
    decrypt_error "$TMP_FILE" "$3"
    drop_temp
    return 1
  fi
  if ! file_md5 "$TMP_FILE" || [ "$MD5_OUT" != "$3" ]; then
    drop_temp
    P_ERR="MD5 mismatch for object $3 (corrupt object)"
    return 1
  fi
}

# make_room DEST: remove what is at DEST unless it is a non-empty real directory. Never follows
# a symlink.
make_room() {
  if [ -L "$1" ]; then
    rm -f -- "$1"
  elif [ -d "$1" ]; then
    rmdir -- "$1" 2>/dev/null || return 1
  elif [ -e "$1" ]; then
    rm -f -- "$1"
  fi
  OK_PARENT=""
  return 0
}

# commit_temp DEST: move TMP_FILE to DEST, replacing what is there (never a non-empty
# directory). On failure TMP_FILE is removed and P_ERR says why.
commit_temp() {
  if ! make_room "$1"; then
    drop_temp
    P_ERR="exists and is a non-empty directory: not replaced"
    return 1
  fi
  if ! mv -f -- "$TMP_FILE" "$1"; then
    drop_temp
    P_ERR="cannot move the file into place"
    return 1
  fi
  KIT_CUR_TMP=""
}

# only_misses META: each --only PATH that matched nothing is a failure (fail() of the script).
only_misses() {
  local n=0
  while [ "$n" -lt "$ONLY_N" ]; do
    if [ "${ONLY_HIT[n]}" != 1 ]; then fail "${ONLY[n]}" "--only: no such path in $1"; fi
    n=$((n + 1))
  done
}

# ensure_parents REL MODE [DIR_MODE]: every parent of REL inside TARGET must be a real directory
# (never a symlink). MODE "create" makes missing ones (DIR_MODE, default 0700: their final mode
# comes later), "check" only checks. The last parent that passed is remembered in OK_PARENT:
# reset it whenever something may have changed the tree. Sets P_ERR on failure.
OK_PARENT=""

ensure_parents() {
  local rel=$1 pdir cur rest comp
  case "$rel" in */*) pdir=${rel%/*} ;; *) return 0 ;; esac
  if [ "$pdir" = "$OK_PARENT" ]; then return 0; fi
  cur=$TARGET
  rest=$pdir
  while :; do
    comp=${rest%%/*}
    cur=$cur/$comp
    if [ -L "$cur" ]; then
      P_ERR="a parent directory is a symbolic link: not written"
      return 1
    elif [ -d "$cur" ]; then
      :
    elif [ -e "$cur" ]; then
      P_ERR="a parent is not a directory: not written"
      return 1
    elif [ "$2" != create ]; then
      P_ERR="a parent directory is missing"
      return 1
    elif ! mkdir -m "${3:-0700}" -- "$cur" 2>/dev/null && { [ -L "$cur" ] || [ ! -d "$cur" ]; }; then
      # (A folder another worker made in the meantime will do.)
      P_ERR="cannot create a parent directory"
      return 1
    fi
    if [ "$rest" = "$comp" ]; then break; fi
    rest=${rest#*/}
  done
  OK_PARENT=$pdir
}
