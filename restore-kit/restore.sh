#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# restore.sh - restore one s3backup backup with bash, coreutils, openssl and the aws CLI only.
# See README.md next to this script, and FORMAT.md (section 5.3) for the algorithm.
#
# usage: restore.sh [--only PATH]... [--endpoint-url URL] [--password-file FILE] [--region R]
#                   [--restore-tier Bulk|Standard|Expedited] [--restore-days N] [--wait]
#                   [--as-of TIME] <s3://bucket[/prefix] | DIR> <meta-name | latest | backup-name> <target-dir>

set -euo pipefail

KIT_PROG=restore.sh
KIT_DIR=${BASH_SOURCE[0]%/*}
if [ "$KIT_DIR" = "${BASH_SOURCE[0]}" ]; then KIT_DIR=.; fi
# shellcheck source=common.sh
. "$KIT_DIR/common.sh"

# Distinct objects fetched by one "aws s3 cp --recursive", and their total plaintext size.
BATCH_MAX=${S3BACKUP_KIT_BATCH:-300}
BS2=$'\\\\' # two backslashes
BATCH_MAX_BYTES=${S3BACKUP_KIT_BATCH_BYTES:-2147483648}

usage() {
  cat <<'EOF'
usage: restore.sh [--only PATH]... [--endpoint-url URL] [--password-file FILE] [--region R]
                  [--restore-tier Bulk|Standard|Expedited] [--restore-days N] [--wait]
                  [--as-of TIME] <s3://bucket[/prefix] | DIR> <meta-name | latest | backup-name> <target-dir>

Restores one backup into target-dir (created if needed). "latest" is the newest backup; a
backup name (e.g. "nightly") is the newest backup of that name. --only PATH (repeatable)
restores only PATH and what is under it. The password comes from --password-file FILE (first
line), else $S3BACKUP_PASSWORD, else a prompt on the terminal. Objects in GLACIER or
DEEP_ARCHIVE are asked to be restored (--restore-tier, default Standard; --restore-days,
default 3); --wait polls until they are readable, else the rest is restored and the exit code
is 7: run the same command again later. --as-of 2026-11-30T14:00:00Z reads a versioned
bucket as it was then (older versions, later delete markers and overwrites ignored).

Exit codes: 0 ok, 1 error, 2 usage, 3 partial (some entries failed), 4 wrong password,
7 archived objects requested (run again later).
EOF
}

# ---------------------------------------------------------------------------------------------
# Entries
# ---------------------------------------------------------------------------------------------

TARGET=""
WORK_NAME=""
N_FILES=0
N_DIRS=0
N_LINKS=0
TOUCH_MODE=""

# split_entry LINE: an entry line (FORMAT.md 5.1: eight fields without a space, then the path)
# into E_* variables and its path decoded, nothing checked: for the lines phase 1 accepted
# (parse_entry), read again by the later phases. Split by the shell's word splitting (a regex
# match costs more than all the rest: bash compiles it each time), then the eight fields
# joined by single spaces must be how the line begins: the path is the rest, spaces and all.
# (Each command here costs a few microseconds a file: escapes are decoded only where there are.)
split_entry() {
  local IFS=' ' line=$1 head
  set -f
  # shellcheck disable=SC2086 # split on purpose, without globbing
  set -- $1 ''
  set +f
  if [ "$#" -lt 9 ]; then return 1; fi
  head="$1 $2 $3 $4 $5 $6 $7 $8 "
  if [ "${line:0:${#head}}" != "$head" ]; then return 1; fi
  E_MD5=$1 E_TYPE=$2 E_MODE=$3 E_UID=$4 E_GID=$5 E_SIZE=$6 E_MTIME=$7 E_ETARGET=$8
  E_EPATH=${line:${#head}} E_PATH=${line:${#head}}
  case "$E_EPATH" in *\\*) printf -v E_PATH '%b' "$E_EPATH" ;; esac
  if [ "${#E_MODE}" = 3 ]; then E_MODE=0$E_MODE; fi
  E_LINK="" E_ELINK=""
  case "$E_TYPE" in
  f) if [ "$META_VERSION" != 3 ]; then E_ETARGET=-; fi ;;
  l) printf -v E_TARGET '%b' "$E_ETARGET" ;;
  h)
    # A hard link (version 3): a file whose target field is <where>/<first path>.
    if [ "$META_VERSION" = 3 ] && [ "${E_ETARGET#*/}" != "$E_ETARGET" ]; then
      E_TYPE=f E_ELINK=${E_ETARGET#*/} E_ETARGET=${E_ETARGET%%/*}
      printf -v E_LINK '%b' "$E_ELINK"
    fi
    ;;
  esac
}

# refuse_kernel_target DIR: dies when DIR, as it will be (its longest existing part resolved
# through symlinks), is /proc, /sys or /dev or inside one (FORMAT.md 5.3.9), before anything is
# made there.
refuse_kernel_target() {
  local d=$1 rest="" real
  case "$d" in /*) ;; *) d=$(pwd -P)/$d ;; esac
  while [ ! -d "$d" ]; do
    rest=/${d##*/}$rest d=${d%/*}
    if [ -z "$d" ]; then d=/; fi
  done
  real=$(cd -- "$d" && pwd -P) || return 0
  real=${real%/}$rest/
  case "$real" in
  /proc/* | /sys/* | /dev/*)
    real=${real#/}
    die "cannot restore into $1: /${real%%/*} is a kernel file system: nothing is written there" "$EXIT_USAGE"
    ;;
  esac
}

# parse_entry LINE: split an entry line (FORMAT.md 5.1) into E_* variables, decode and check
# the path. Returns 1 with E_ERR set when the entry is refused. (Checks inline, not by is_uint
# and friends: a function call costs as much as the check; workers run this for every file.)
parse_entry() {
  local f nonul
  E_ERR=""
  E_EPATH=""
  if ! split_entry "$1"; then
    E_EPATH=$1
    E_ERR="malformed entry line"
    return 1
  fi
  # Control characters are always escaped (FORMAT.md 5.2).
  case "$E_EPATH$E_ETARGET" in *"$TAB"* | *"$CR"*) E_ERR="unescaped control character: refused"; return 1 ;; esac
  # A NUL byte cannot be in a name; a "\x00" escape would cut the decoded string.
  case "$E_EPATH" in
  *\\*)
    nonul=${E_EPATH//"$BS2"/}
    case "$nonul" in *'\x00'*) E_ERR="path holds a NUL byte: refused"; return 1 ;; esac
    ;;
  esac
  if [ -z "$E_PATH" ]; then E_ERR="empty path: refused"; return 1; fi
  if [ "${#E_PATH}" -ge "$MAX_COMPONENTS" ]; then # (fewer bytes, fewer slashes: most paths)
    if [ "${#E_PATH}" -gt "$MAX_PATH_BYTES" ]; then E_ERR="path longer than $MAX_PATH_BYTES bytes: refused"; return 1; fi
    f=${E_PATH//[!\/]/}
    if [ "${#f}" -ge "$MAX_COMPONENTS" ]; then E_ERR="path deeper than $MAX_COMPONENTS components: refused"; return 1; fi
  fi
  case "/$E_PATH/" in
  //*) E_ERR="absolute path: refused"; return 1 ;;
  *//* | */./* | */../*) E_ERR="path with an empty, '.' or '..' component: refused"; return 1 ;;
  esac
  if [ "${E_PATH%%/*}" = "$WORK_NAME" ]; then E_ERR="path clashes with the kit's work directory: skipped"; return 1; fi
  # Into /, nothing in the kernel's file systems (FORMAT.md 5.3.9; restore_dir leaves the folders).
  if [ "$TARGET" = / ]; then
    case "$E_TYPE:$E_PATH" in
    d:proc | d:sys | d:dev) ;;
    *:proc | *:sys | *:dev | *:proc/* | *:sys/* | *:dev/*)
      E_ERR="in /${E_PATH%%/*}, a kernel file system: not written"
      return 1
      ;;
    esac
    case "$E_LINK" in # (a hard link of a file there: that one is not restored, nor read)
    proc | sys | dev | proc/* | sys/* | dev/*)
      E_ERR="not restored: $E_ELINK, the file it is a hard link of, was not"
      return 1
      ;;
    esac
  fi
  case "$E_TYPE" in
  f)
    case "$E_MD5" in
    *[!0123456789abcdef]*) E_ERR="bad md5 field '$E_MD5'"; return 1 ;;
    ????????????????????????????????) ;;
    *) E_ERR="bad md5 field '$E_MD5'"; return 1 ;;
    esac
    # A first path that no entry could have (absolute, '..'): the file is restored as a copy.
    if [ -n "$E_ELINK" ]; then
      nonul=${E_ELINK//"$BS2"/}
      case "/$E_LINK/:$nonul" in
      //* | *//*:* | */./*:* | */../*:* | *'\x00'*) E_LINK="" ;;
      esac
    fi
    if [ "$META_VERSION" = 3 ] && ! is_where "$E_ETARGET"; then
      E_ERR="bad where field '$E_ETARGET'"
      return 1
    fi
    ;;
  d) ;;
  l)
    nonul=${E_ETARGET//"$BS2"/}
    case "$nonul" in *'\x00'*) E_ERR="link target holds a NUL byte: refused"; return 1 ;; esac
    if [ -z "$E_TARGET" ]; then E_ERR="empty link target"; return 1; fi
    if [ "${#E_TARGET}" -gt "$MAX_PATH_BYTES" ]; then E_ERR="link target longer than $MAX_PATH_BYTES bytes: refused"; return 1; fi
    ;;
  *) E_ERR="unknown entry type '$E_TYPE': skipped"; return 1 ;;
  esac
  case "$E_MODE" in
  [0-7][0-7][0-7][0-7]) ;;
  *) E_ERR="bad mode '$E_MODE'"; return 1 ;;
  esac
  case "$E_UID" in - | [0-9]*) ;; *) E_ERR="bad uid '$E_UID'"; return 1 ;; esac
  case "$E_UID" in ?*[!0123456789]*) E_ERR="bad uid '$E_UID'"; return 1 ;; esac
  case "$E_GID" in - | [0-9]*) ;; *) E_ERR="bad gid '$E_GID'"; return 1 ;; esac
  case "$E_GID" in ?*[!0123456789]*) E_ERR="bad gid '$E_GID'"; return 1 ;; esac
  case "$E_SIZE" in '' | *[!0123456789]*) E_ERR="bad size '$E_SIZE'"; return 1 ;; esac
  # Digits, with a '-' first and one '.' between digits at most.
  case "$E_MTIME" in '' | - | *[!0123456789.-]* | ?*-* | *.*.* | *. | .* | -.*) E_ERR="bad mtime '$E_MTIME'"; return 1 ;; esac
  return 0
}

# selected: is the parsed entry selected by --only? Directories above a selected path are
# selected too (so that they get their mode and mtime).
selected() {
  local i=0 o hit=0
  if [ "$ONLY_N" -eq 0 ]; then return 0; fi
  while [ "$i" -lt "$ONLY_N" ]; do
    o=${ONLY[i]}
    if [ "$E_PATH" = "$o" ]; then hit=1; fi
    case "$E_PATH" in "$o"/*) hit=1 ;; esac
    if [ "$hit" = 1 ]; then
      ONLY_HIT[i]=1
      return 0
    fi
    if [ "$E_TYPE" = d ]; then
      case "$o" in "$E_PATH"/*) return 0 ;; esac
    fi
    i=$((i + 1))
  done
  return 1
}

# probe_touch: how to set an mtime (GNU touch -d @SEC.FRAC, else BSD date -r + touch -t).
probe_touch() {
  local p="$KIT_TMP/touch.probe" s
  : >"$p"
  if touch -h -d "@1.5" -- "$p" 2>/dev/null; then
    TOUCH_MODE=gnu
  elif s=$(date -u -r 0 +%Y%m%d%H%M.%S 2>/dev/null) && [ "$s" = 197001010000.00 ] &&
    TZ=UTC0 touch -h -t "$s" -- "$p" 2>/dev/null; then
    TOUCH_MODE=bsd
  else
    TOUCH_MODE=none
    warn "cannot set modification times with this touch/date: they are not restored"
  fi
  rm -f -- "$p"
}

# set_mtime PATH MTIME (never follows a symlink)
set_mtime() {
  local s
  case "$TOUCH_MODE" in
  gnu) touch -h -d "@$2" -- "$1" ;;
  bsd) s=$(date -u -r "${2%%.*}" +%Y%m%d%H%M.%S) && TZ=UTC0 touch -h -t "$s" -- "$1" ;;
  *) return 0 ;;
  esac
}

# owner_spec UID GID: O_SPEC, chown's argument for them (uid:gid, uid or :gid), or empty
# (not root, or neither known).
owner_spec() {
  O_SPEC=""
  if [ "$KIT_ROOT" != 1 ]; then return 0; fi
  if [ "$1" != - ] && [ "$2" != - ]; then
    O_SPEC=$1:$2
  elif [ "$1" != - ]; then
    O_SPEC=$1
  elif [ "$2" != - ]; then
    O_SPEC=:$2
  fi
}

# set_mtimes MTIME PATH...: one touch for them all (GNU), else one set_mtime each.
set_mtimes() {
  local t=$1 p rc=0
  shift
  case "$TOUCH_MODE" in
  gnu) touch -h -d "@$t" -- "$@" ;;
  *)
    for p in "$@"; do set_mtime "$p" "$t" || rc=1; done
    return "$rc"
    ;;
  esac
}

# set_owner PATH UID GID (only as root; never follows a symlink)
set_owner() {
  owner_spec "$2" "$3"
  if [ -z "$O_SPEC" ]; then return 0; fi
  chown -h -- "$O_SPEC" "$1"
}

# restore_dir: phase 1, for a parsed directory entry. A folder to make waits in D_NEW (with
# its entry in D_LINE) to be made by one mkdir with the others (dirs_made), before the first
# entry whose parent is missing (it may be waiting) and at the end of phase 1.
D_NEW=() D_LINE=() D_BYTES=0
restore_dir() {
  local dest="$TARGET/$E_PATH"
  if [ "$TARGET" = / ]; then # /proc, /sys, /dev: left as they are (FORMAT.md 5.3.9)
    case "$E_PATH" in proc | sys | dev) N_DIRS=$((N_DIRS + 1)); return 0 ;; esac
  fi
  case "$E_PATH" in
  */*) if [ "${#D_NEW[@]}" -gt 0 ] && [ ! -d "$TARGET/${E_PATH%/*}" ]; then dirs_made; fi ;;
  esac
  if ! ensure_parents "$E_PATH" create; then fail "$E_EPATH" "$P_ERR"; return 0; fi
  if [ -L "$dest" ] || { [ -e "$dest" ] && [ ! -d "$dest" ]; }; then
    rm -f -- "$dest"
    OK_PARENT=""
  fi
  if [ -d "$dest" ]; then
    if [ ! -w "$dest" ] || [ ! -x "$dest" ]; then chmod u+rwx -- "$dest" || true; fi
  else
    D_NEW+=("$dest")
    D_LINE+=("$E_EPATH$TAB$E_MODE $E_UID $E_GID $E_MTIME")
    D_BYTES=$((D_BYTES + ${#dest} + 1))
    # (bounded: macOS passes 256 KiB of arguments at most)
    if [ "${#D_NEW[@]}" -ge 256 ] || [ "$D_BYTES" -ge 65536 ]; then dirs_made; fi
    return 0
  fi
  printf '%s\t%s %s %s %s\n' "$E_EPATH" "$E_MODE" "$E_UID" "$E_GID" "$E_MTIME" >>"$KIT_TMP/dirs"
  N_DIRS=$((N_DIRS + 1))
}

# dirs_made: the folders waiting in D_NEW made by one mkdir; when it fails, each one not there
# (or not a folder) fails its entry.
dirs_made() {
  local i=0 ok=1
  if [ "${#D_NEW[@]}" -eq 0 ]; then return 0; fi
  mkdir -- "${D_NEW[@]}" 2>/dev/null || ok=0
  while [ "$i" -lt "${#D_NEW[@]}" ]; do
    if [ "$ok" = 1 ] || { [ -d "${D_NEW[i]}" ] && [ ! -L "${D_NEW[i]}" ]; }; then
      printf '%s\n' "${D_LINE[i]}" >>"$KIT_TMP/dirs"
      N_DIRS=$((N_DIRS + 1))
    else
      fail "${D_LINE[i]%%"$TAB"*}" "cannot create directory"
    fi
    i=$((i + 1))
  done
  D_NEW=() D_LINE=() D_BYTES=0
}

# ---------------------------------------------------------------------------------------------
# Phase 2, files: the list cut into chunks of CHUNK_MAX entries (one split), restored by
# KIT_JOBS workers at once (background subshells, chunk c to worker c mod KIT_JOBS). A worker
# checks each entry as phase 1 checks the others (parse_entry: phase 1 passed plain file lines
# on unchecked, fast_file) and makes its parents, decrypts each entry's object of its own into
# the chunk's folder in the work directory, checks every MD5 with one md5 run, sets modes,
# owners and mtimes with one call per distinct value, and moves each checked file into place
# (openssl and mv per file, and touch per distinct mtime); format 3's pack members, unpacked
# and checked already, go into place by one tar per chunk and one mv per folder
# (place_by_tar). bash is what costs here (a command takes microseconds, a file about a
# hundred of them over the phases): every command a file does is counted.
# ---------------------------------------------------------------------------------------------

CHUNK_MAX=${S3BACKUP_KIT_CHUNK:-64}
KIT_JOBS=""

# kit_jobs: KIT_JOBS, the workers at once: S3BACKUP_KIT_JOBS, else one more than the CPUs.
kit_jobs() {
  local n=""
  if is_uint "${S3BACKUP_KIT_JOBS:-}" && [ "${S3BACKUP_KIT_JOBS:-0}" -ge 1 ]; then
    KIT_JOBS=$S3BACKUP_KIT_JOBS
    return 0
  fi
  if command -v nproc >/dev/null 2>&1; then n=$(nproc 2>/dev/null) || n=""; fi
  if ! is_uint "$n" && command -v getconf >/dev/null 2>&1; then
    n=$(getconf _NPROCESSORS_ONLN 2>/dev/null) || n=""
  fi
  if ! is_uint "$n" || [ "$n" -lt 1 ]; then n=1; fi
  KIT_JOBS=$((n + 1))
}

# restore_files LIST OBJDIR: restore the file entries of LIST (meta lines) from the objects in
# OBJDIR (named by MD5; a missing one fails its entries with MISSING_WHY), LIST cut into chunks
# by one split (CHUNKS, their names; the workers check each entry: worker_decrypt).
MISSING_WHY=""
CHUNKS=()
restore_files() {
  local first=0 last wave=$((KIT_JOBS * 16))
  rm -f -- "$KIT_TMP"/chunk.*
  if [ ! -s "$1" ]; then return 0; fi
  split -l "$CHUNK_MAX" -a 5 -- "$1" "$KIT_TMP/chunk." || die "cannot split $1 into chunks"
  CHUNKS=("$KIT_TMP"/chunk.*)
  # In waves of 16 chunks a worker, each followed by its count (progress, and early failures).
  while [ "$first" -lt "${#CHUNKS[@]}" ]; do
    last=$((first + wave - 1))
    if [ "$last" -ge "${#CHUNKS[@]}" ]; then last=$((${#CHUNKS[@]} - 1)); fi
    run_workers "$first" "$last" "$2"
    collect_results "$first" "$last"
    first=$((last + 1))
  done
}

# run_workers FIRST LAST OBJDIR: KIT_JOBS workers over chunk.FIRST .. chunk.LAST, and wait for
# them (kit_cleanup stops them if this script is interrupted).
run_workers() {
  local w=0
  KIT_PIDS=""
  while [ "$w" -lt "$KIT_JOBS" ] && [ $(($1 + w)) -le "$2" ]; do
    worker_lane $(($1 + w)) "$2" "$3" &
    KIT_PIDS="$KIT_PIDS $!"
    w=$((w + 1))
  done
  # Each worker by its pid: a plain `wait` would wait for the next batch's download too.
  for w in $KIT_PIDS; do wait "$w" || true; done
  KIT_PIDS=""
}

# collect_results FIRST LAST: count the outcomes of CHUNKS[FIRST..LAST] (collect_chunk).
collect_results() {
  local n=$1 chunk
  local -a finished
  finished=()
  while [ "$n" -le "$2" ]; do
    chunk=${CHUNKS[n]##*/}
    n=$((n + 1))
    collect_chunk "$chunk"
    finished+=("$KIT_TMP/$chunk" "$KIT_TMP/$chunk.out" "$KIT_WORK/$chunk.d" "$KIT_WORK/$chunk.s")
  done
  rm -rf -- "${finished[@]}"
  warn "$N_FILES/$FILES_TOTAL files"
}

# collect_chunk CHUNK: count its outcomes (CHUNK.out, of worker_outcomes: the entries that
# failed, then "end"; without it, moved there whole when the worker is done, the worker died:
# every entry fails).
collect_chunk() {
  local line i=0 res=""
  if [ -f "$KIT_TMP/$1.out" ]; then
    exec 4<"$KIT_TMP/$1.out"
    IFS= read -r -u 4 res || res=""
  else exec 4</dev/null; fi
  if [ "${res%%"$TAB"*}" = end ]; then # none failed
    N_FILES=$((N_FILES + ${res#*"$TAB"}))
  else
    while IFS= read -r -u 3 line; do
      i=$((i + 1))
      case "$res" in
      "$i$TAB"*) ;;
      "") res="$i${TAB}not restored (its worker failed)" ;;
      *)
        N_FILES=$((N_FILES + 1))
        continue
        ;;
      esac
      if [ -n "$FULL_SAID" ]; then
        FAILED=$((FAILED + 1)) # (fail would not name it: its path is not needed)
      else
        split_entry "$line" || E_EPATH=$line
        fail "$E_EPATH" "${res#*"$TAB"}"
      fi
      if [ "${res%%"$TAB"*}" = "$i" ]; then IFS= read -r -u 4 res || res=""; fi
    done 3<"$KIT_TMP/$1"
  fi
  exec 4<&-
}

# worker_lane C LAST OBJDIR: a worker (in the background) restores CHUNKS[C], CHUNKS[C+JOBS], ...
# up to CHUNKS[LAST].
worker_lane() {
  local c=$1 KIT_LISTS=$KIT_TMP
  # Its own openssl.err, sums and attrs, never on the target's file system (which may be full).
  local KIT_TMP=$KIT_TMP/w.$(($1 % KIT_JOBS)) # one per lane: tar_add's files are written over
  LC_ALL=C # a character is a byte (tar_add counts bytes); a subshell: the kit's own is kept
  mkdir -p -- "$KIT_TMP/tar" || exit 1
  while [ "$c" -le "$2" ]; do
    worker_main "${CHUNKS[c]##*/}" "$3"
    c=$((c + KIT_JOBS))
  done
}

# worker_main CHUNK OBJDIR: restore the entries of KIT_LISTS/CHUNK; write KIT_LISTS/CHUNK.out.
# Only the decrypted files are on the target's file system.
worker_main() {
  local d=$KIT_WORK/$1.d
  W_N=0 W_OWN=0 M_AT=() M_I=() W_ERR=() W_PATH=() W_MD5=() W_MODE=() W_MTIME=() W_OWNER=() W_SUM=() W_AT=() W_SIZE=() W_TAR=()
  worker_decrypt "$KIT_LISTS/$1" "$d" "$2" "$1.d"
  if [ "$W_OWN" -gt 0 ]; then
    worker_check "$d"
    worker_attrs
    worker_place
  fi
  place_by_tar "$KIT_WORK/$1.s"
  worker_outcomes >"$KIT_TMP/out"
  mv -f -- "$KIT_TMP/out" "$KIT_LISTS/$1.out"
}

# worker_decrypt CHUNK DIR OBJDIR DIRNAME: each entry checked (parse_entry: phase 1 let it
# through unchecked) and its parents made, then entry i (from 1) into DIR/i (DIRNAME: DIR
# relative to KIT_WORK), or, a pack member, left where it was unpacked (checked already; several
# entries may read it: tar copies it into place); W_AT[i] is where its file is (relative to
# KIT_WORK), the other W_* arrays hold its facts, W_ERR[i] why it failed; W_OWN counts the
# objects of their own (checked, given their attributes and moved into place by worker_main).
worker_decrypt() {
  local line i
  while IFS= read -r -u 3 line; do
    W_N=$((W_N + 1))
    i=$W_N
    W_ERR[i]="" W_AT[i]=""
    if [ -e "$KIT_FULL" ]; then W_ERR[i]=$NOT_WRITTEN && continue; fi
    if ! parse_entry "$line"; then W_ERR[i]=$E_ERR; continue; fi
    W_PATH[i]=$E_PATH W_MD5[i]=$E_MD5 W_MODE[i]=$E_MODE W_MTIME[i]=$E_MTIME
    W_OWNER[i]=$E_UID:$E_GID W_AT[i]=$4/$i W_SIZE[i]=$E_SIZE
    content_src "$3"
    if [ -n "$C_MEMBER" ] && [ -L "$C_SRC" ]; then # a pack holds regular files only (FORMAT.md 4.1)
      W_ERR[i]="member $C_MEMBER of $C_KEY is not a regular file: refused"
    elif [ ! -f "$C_SRC" ]; then
      content_missing
      W_ERR[i]=$C_MISSING$MISSING_WHY
    elif ! ensure_parents "$E_PATH" create; then
      W_ERR[i]=$P_ERR
    elif [ -n "$C_MEMBER" ]; then
      W_AT[i]=${C_SRC#"$KIT_WORK/"} W_SUM[i]=$E_MD5 W_TAR[i]=1
      M_AT+=("${W_AT[i]}") M_I+=("$i")
    elif [ "$W_OWN" -eq 0 ] && ! mkdir -- "$2"; then
      W_ERR[i]="cannot create the folder $2"
    else
      W_OWN=$((W_OWN + 1))
      if ! content_out "$2/$i"; then
        decrypt_error "$2/$i" "$C_KEY"
        W_ERR[i]=$P_ERR
        rm -f -- "$2/$i"
      fi
    fi
  done 3<"$1"
}

# content_src OBJDIR: C_SRC, where the parsed entry's content is on disk: its object in OBJDIR,
# or (format 3) its member in the unpacked pack, gunzipped and MD5-checked by flush_v3
# (UNPACKED/<pack>/<md5>). content_missing says why it is not there.
UNPACKED=""
content_src() {
  content_key "$E_MD5" "$E_ETARGET"
  if [ -z "$C_MEMBER" ]; then
    C_SRC=$1/$C_KEY
  else
    C_SRC=$UNPACKED/${C_KEY#packs/}/$E_MD5
  fi
}

# content_missing: C_MISSING, why the parsed entry's content is not at C_SRC (content_src).
content_missing() {
  local dir=${C_SRC%/*}
  if [ -z "$C_MEMBER" ]; then
    C_MISSING="missing object $C_KEY"
    return 0
  fi
  if [ -e "$dir/.bad.$E_MD5" ]; then
    C_MISSING="MD5 mismatch for member $C_MEMBER of $C_KEY (corrupt pack)"
  elif [ -e "$dir/$E_MD5.gz" ]; then
    C_MISSING="member $C_MEMBER of $C_KEY does not gunzip (corrupt pack)"
  else
    C_MISSING="missing member $C_MEMBER in $C_KEY"
  fi
  # A full target cuts members short too: that is not the pack's fault.
  if [ -e "$dir/.full" ] || target_full "$dir"; then
    C_MISSING="cannot write: no space left on the file system of $dir (error writing output file)"
  fi
}

# content_out OUT: the parsed entry's content, an object of its own at C_SRC (content_src), into
# OUT (decrypted, gunzipped). (Pack members are placed from where they were unpacked:
# worker_decrypt.)
content_out() {
  case "$E_ETARGET" in
  data.gz) decrypt_gz "$C_SRC" "$1" ;;
  *) decrypt_data "$C_SRC" "$1" ;;
  esac
}

# worker_check DIR: one MD5 run over the decrypted files; a mismatch fails its entry.
worker_check() {
  local i=1 sum name
  (cd -- "$1" && md5_many) >"$KIT_TMP/sums" 2>/dev/null || true
  while [ "$i" -le "$W_N" ]; do
    if [ "${W_AT[i]:-}" != "${W_AT[i]#u/}" ]; then :; else W_SUM[i]=""; fi # u/: checked
    i=$((i + 1))
  done
  while IFS=' ' read -r sum name; do
    if is_uint "$name"; then W_SUM[name]=$sum; fi
  done <"$KIT_TMP/sums"
  i=1
  while [ "$i" -le "$W_N" ]; do
    if [ -z "${W_ERR[i]}" ] && [ "${W_SUM[i]:-}" != "${W_MD5[i]}" ]; then
      W_ERR[i]="MD5 mismatch for content ${W_MD5[i]} (corrupt object)"
      rm -f -- "$KIT_WORK/${W_AT[i]}"
    fi
    i=$((i + 1))
  done
}

# worker_attrs: mode, owner (as root) and mtime of the checked files that are not pack members
# (those go by tar), one call for each distinct value (W_AT: plain names relative to KIT_WORK,
# no space or newline).
worker_attrs() {
  local i=1
  : >"$KIT_TMP/attrs"
  while [ "$i" -le "$W_N" ]; do
    if [ -z "${W_ERR[i]}" ] && [ -z "${W_TAR[i]:-}" ]; then
      printf 'a %s %s\nb %s %s\nc %s %s\n' "${W_OWNER[i]}" "${W_AT[i]}" "${W_MODE[i]}" \
        "${W_AT[i]}" "${W_MTIME[i]}" "${W_AT[i]}" >>"$KIT_TMP/attrs"
    fi
    i=$((i + 1))
  done
  LC_ALL=C sort -o "$KIT_TMP/attrs" "$KIT_TMP/attrs"
  (cd -- "$KIT_WORK" && apply_attrs) <"$KIT_TMP/attrs"
}

# apply_attrs: "KIND VALUE NAME" lines, sorted: chown (a), then chmod (b: after the chown,
# which clears set-id bits), then touch (c), each once per run of one value.
apply_attrs() {
  local kind value name cur=""
  local -a names
  names=()
  while IFS=' ' read -r kind value name; do
    if [ "$kind $value" != "$cur" ]; then
      if [ "${#names[@]}" -gt 0 ]; then set_attr "$cur" "${names[@]}"; fi
      cur="$kind $value"
      names=()
    fi
    names[${#names[@]}]=$name
  done
  if [ "${#names[@]}" -gt 0 ]; then set_attr "$cur" "${names[@]}"; fi
}

# set_attr "KIND VALUE" NAME...: failures leave the default (warned about by the kit's run).
set_attr() {
  local kv=$1
  shift
  case "${kv%% *}" in
  a) set_owners "${kv#* }" "$@" ;;
  b) chmod -- "0${kv#* }" "$@" 2>/dev/null || true ;;
  c) set_mtimes "${kv#* }" "$@" 2>/dev/null || true ;;
  esac
}

# set_owners UID:GID NAME...: as root only.
set_owners() {
  owner_spec "${1%%:*}" "${1#*:}"
  shift
  if [ -n "$O_SPEC" ]; then chown -h -- "$O_SPEC" "$@" 2>/dev/null || true; fi
}

# worker_place: move each checked file that is not a pack member (an object of its own: large,
# or formats 1 and 2) into place, one process each (worker_attrs set its attributes first).
worker_place() {
  local i=1 dest src
  while [ "$i" -le "$W_N" ]; do
    if [ -z "${W_ERR[i]}" ] && [ -z "${W_TAR[i]:-}" ]; then
      dest=$TARGET/${W_PATH[i]} src=$KIT_WORK/${W_AT[i]}
      if ! make_room "$dest"; then
        W_ERR[i]="exists and is a non-empty directory: not replaced"
        rm -f -- "$src"
      elif ! mv -f -- "$src" "$dest"; then
        W_ERR[i]="cannot move the file into place"
        rm -f -- "$src"
      fi
    fi
    i=$((i + 1))
  done
}

# worker_outcomes: a line "I<TAB>REASON" for each entry I that failed, in order, then
# "end<TAB>N", N the chunk's entries (the others are in place).
worker_outcomes() {
  local i=1
  while [ "$i" -le "$W_N" ]; do
    if [ -n "${W_ERR[i]}" ]; then printf '%s\t%s\n' "$i" "${W_ERR[i]}"; fi
    i=$((i + 1))
  done
  printf 'end\t%s\n' "$W_N"
}

# ---------------------------------------------------------------------------------------------
# Placing by tar: a chunk's checked files become one pax tar stream (headers written here by
# printf, contents as they are, joined by one cat), unpacked by one tar into a staging folder
# in the work directory, then moved into place by one mv per folder (a rename: a file is never
# seen half-written). tar sets each mode, mtime and, as root, owner. The stream's headers: a
# pax header ("x") whose records (path, size, mtime, uid, gid) fill whole blocks (a comment
# record pads them), then a ustar header ("0") that carries only the mode, so that both kinds
# of header are one of a few, each written once into a file of its own (TAR_DIR).
# ---------------------------------------------------------------------------------------------

TAR_Z="" TAR_X="" KIT_UID="" KIT_GID=""
TAR_OPTS=() T_HAVE=() TAR_JOIN=(cat --)
# tar_init: for format 3 (which needs tar): TAR_Z, 512 NUL bytes as printf escapes; TAR_X, 512
# filler characters; the user's ids (an owner the meta does not know: the restoring user's).
tar_init() {
  local z='\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'
  local x=xxxxxxxxxxxxxxxx
  z=$z$z$z$z z=$z$z$z$z z=$z$z
  x=$x$x$x$x x=$x$x$x$x x=$x$x
  TAR_Z=$z$z$z$z TAR_X=$x
  KIT_UID=$(id -u) KIT_GID=$(id -g)
  # What joins the pieces of a tar stream: GNU head, when it is there, opens a file a quarter as
  # dear as cat (which maps a buffer for each); elsewhere cat.
  case "$(head --version 2>/dev/null)" in
  *"GNU coreutils"*) TAR_JOIN=(head -q -c 999999999999999999 --) ;;
  *) TAR_JOIN=(cat --) ;;
  esac
  # GNU tar does not know hdrcharset (it takes names as bytes anyway): not a warning each file.
  case "$(tar --version 2>/dev/null)" in *"GNU tar"*) TAR_OPTS=(--warning=no-unknown-keyword) ;; esac
}

# tar_header FILE NAME TYPE SIZE MODE: a 512-byte ustar header into FILE, or onto the standard
# output when FILE is - (uid, gid and mtime 0; LC_ALL=C: one character, one byte). Its checksum
# is counted once (a loop over its characters) and kept in a variable named after it.
tar_header() {
  local size mode sum key=TAR_SUM_$2_$3_$4_$5 f
  printf -v size '%011o' "$4"
  printf -v mode '%07o' "0$5"
  if [ -n "${!key:-}" ]; then
    sum=${!key}
  else
    byte_sum "$2${mode}00000000000000${size}00000000000${3}ustar00        "
    printf -v sum '%06o' "$BYTE_SUM"
    printf -v "$key" '%s' "$sum"
  fi
  f="%s${TAR_Z:0:4*(100-${#2})}%s\\x000000000\\x000000000\\x00%s\\x0000000000000\\x00%s\\x00 %s${TAR_Z:0:400}ustar\\x0000${TAR_Z:0:988}"
  # shellcheck disable=SC2059 # the format holds the NUL bytes
  if [ "$1" = - ]; then
    printf "$f" "$2" "$mode" "$size" "$sum" "$3"
  else printf "$f" "$2" "$mode" "$size" "$sum" "$3" >"$1"; fi
}

# byte_sum STRING: BYTE_SUM, the sum of STRING's bytes (a tar header's checksum; LC_ALL=C).
BYTE_SUM=0
byte_sum() {
  local j=0 c
  BYTE_SUM=0
  while [ "$j" -lt "${#1}" ]; do
    printf -v c '%d' "'${1:j:1}"
    BYTE_SUM=$((BYTE_SUM + c)) j=$((j + 1))
  done
}

# tar_add I: entry I's headers and content onto T_ARGS (the files cat joins); T_PAD: the NUL
# bytes its content needs to end on a block, written before the next header.
tar_add() {
  local p r k t m u=${W_OWNER[$1]%%:*} g=${W_OWNER[$1]#*:}
  if [ "$T_PAD" -gt 0 ]; then
    if [ -z "${T_HAVE[T_PAD]:-}" ]; then
      printf '%b' "${TAR_Z:0:4*T_PAD}" >"$TAR_DIR/p.$T_PAD"
      T_HAVE[T_PAD]=1
    fi
    T_ARGS+=("$TAR_DIR/p.$T_PAD")
  fi
  # A record is "<length> <key>=<value>\n", the length counting its own digits. Names are
  # bytes (hdrcharset=BINARY): bsdtar would refuse one that is not UTF-8; and begin with ./
  # (bsdtar strips a leading backslash). A size record (of wc) is 10-99 bytes long.
  p=" path=./$T_STAGE/${W_PATH[$1]}$NL" r=" size=${W_SIZE[$1]}$NL" t=" mtime=${W_MTIME[$1]}$NL"
  k=${#p} m=${#t}
  r="21 hdrcharset=BINARY$NL$((k < 9 ? k + 1 : k < 98 ? k + 2 : k < 997 ? k + 3 : k + 4))$p$((${#r} + 2))$r$((m < 98 ? m + 2 : m < 997 ? m + 3 : m + 4))$t"
  if [ "$KIT_ROOT" = 1 ]; then
    p=OWNER_REC_${u/-/x}_${g/-/x}
    if [ -z "${!p:-}" ]; then owner_records "$u" "$g" "$p"; fi
    r=$r${!p}
  fi
  m=${W_MODE[$1]}
  # Whole blocks: a comment record pads them.
  k=$(((${#r} + 523) / 512))
  t=$((k * 512 - ${#r}))
  # Written over in place, never truncated (r.I.K is always K blocks): on some file systems
  # truncating a file and growing it again costs ten times the write.
  printf '%s%s comment=%s\n' "$r" "$t" "${TAR_X:0:t-${#t}-10}" 1<>"$TAR_DIR/r.$1.$k"
  # Written once each (T_HAVE: 1-511 pads, 1000+k pax headers, 10000+mode file headers).
  if [ -z "${T_HAVE[1000 + k]:-}" ]; then
    tar_header "$TAR_DIR/x.$k" PaxHeader x $((k * 512)) 0644
    T_HAVE[1000 + k]=1
  fi
  if [ -z "${T_HAVE[10000 + 8#$m]:-}" ]; then
    tar_header "$TAR_DIR/f.$m" f 0 0 "$m"
    T_HAVE[10000 + 8#$m]=1
  fi
  T_ARGS+=("$TAR_DIR/x.$k" "$TAR_DIR/r.$1.$k" "$TAR_DIR/f.$m" "$KIT_WORK/${W_AT[$1]}")
  T_PAD=$(((512 - W_SIZE[$1] % 512) % 512))
}

# tar_unpack ERR DIR [OPTION...] -- FILE...: the FILEs joined (TAR_JOIN) into one tar stream,
# unpacked by tar in DIR (with the OPTIONs), its complaints into ERR. tar may stop reading at the
# stream's end blocks, the last FILE: the joiner's SIGPIPE then is no failure (the stream's sizes
# are the files', so no end blocks come earlier).
tar_unpack() {
  local err=$1 dir=$2 st
  local -a opts
  opts=()
  shift 2
  while [ "$#" -gt 0 ] && [ "$1" != -- ]; do
    opts+=("$1")
    shift
  done
  shift
  if "${TAR_JOIN[@]}" "$@" 2>/dev/null |
    LC_ALL=C tar ${TAR_OPTS[@]+"${TAR_OPTS[@]}"} ${opts[@]+"${opts[@]}"} -C "$dir" -xpf - 2>"$err"; then
    return 0
  fi
  st=("${PIPESTATUS[@]}")
  if [ "${st[0]}" = 141 ] && [ "${st[1]}" = 0 ]; then return 0; fi
  return 1
}

# tar_fail REASON: every pack member of the chunk not placed yet fails with REASON.
tar_fail() {
  local i=1
  while [ "$i" -le "$W_N" ]; do
    if [ -n "${W_TAR[i]:-}" ] && [ -z "${W_ERR[i]}" ]; then W_ERR[i]=$1; fi
    i=$((i + 1))
  done
}

# tar_sizes: W_SIZE of each pack member to place (M_AT, M_I: their files relative to KIT_WORK,
# no blanks, and entries), as the file is (one wc -c), not as the meta says: a size field that
# lies cannot put the tar stream out of step (the MD5 was checked: the content is the meta's).
# One wc does not list: failed.
tar_sizes() {
  local k=0 n name
  if [ "${#M_AT[@]}" -eq 0 ]; then return 0; fi
  (cd -- "$KIT_WORK" && LC_ALL=C wc -c -- "${M_AT[@]}") >"$KIT_TMP/sizes" 2>/dev/null || true
  while read -r n name; do
    case "$n" in '' | *[!0123456789]*) continue ;; esac
    if [ "$name" = "${M_AT[k]:-}" ]; then
      W_SIZE[M_I[k]]=$n
      k=$((k + 1))
    fi
  done <"$KIT_TMP/sizes"
  while [ "$k" -lt "${#M_AT[@]}" ]; do
    W_ERR[M_I[k]]="cannot read member ${M_AT[k]##*/}"
    k=$((k + 1))
  done
}

# place_by_tar STAGE: the chunk's pack members (W_TAR) into place through STAGE (see above);
# an entry that does not get there gets W_ERR.
place_by_tar() {
  local i=1 rc=0 why p dir=""
  T_ARGS=() T_PAD=0 TAR_DIR=$KIT_TMP/tar T_STAGE=${1##*/}
  # (T_HAVE, the header files written, lives as long as the worker: its TAR_DIR does.)
  G_FILES=() G_DIRS=() G_STARTS=() G_NEG=()
  tar_sizes
  while [ "$i" -le "$W_N" ]; do
    if [ -n "${W_TAR[i]:-}" ] && [ -z "${W_ERR[i]}" ]; then
      p=$TARGET/${W_PATH[i]}
      if { [ ! -e "$p" ] && [ ! -L "$p" ]; } || make_room "$p"; then
        tar_add "$i"
        # Its mv (move_staged): one per run of entries in one folder (the chunk is by path).
        case "${W_PATH[i]}" in */*) p=/${W_PATH[i]%/*} ;; *) p=/ ;; esac
        if [ "$p" != "$dir" ]; then G_DIRS+=("$p") G_STARTS+=("${#G_FILES[@]}") dir=$p; fi
        G_FILES+=("$1/${W_PATH[i]}")
        case "${W_MTIME[i]}" in -*) G_NEG+=("$i") ;; esac
      else W_ERR[i]="exists and is a non-empty directory: not replaced"; fi
    fi
    i=$((i + 1))
  done
  if [ "${#T_ARGS[@]}" -eq 0 ]; then return 0; fi
  if [ ! -f "$TAR_DIR/end.$T_PAD" ]; then
    printf '%b' "${TAR_Z:0:4*T_PAD}$TAR_Z$TAR_Z" >"$TAR_DIR/end.$T_PAD"
  fi
  # The stream's paths begin with STAGE's name (tar_add): tar makes STAGE in KIT_WORK.
  tar_unpack "$KIT_TMP/tar.err" "$KIT_WORK" -- "${T_ARGS[@]}" "$TAR_DIR/end.$T_PAD" || rc=$?
  if [ "$rc" -ne 0 ]; then
    # A file tar was writing may be cut short: nothing of this stream is placed.
    why="cannot unpack into place: $(first_line "$KIT_TMP/tar.err")"
    if target_full "$KIT_WORK"; then why=$P_ERR; fi
    tar_fail "$why"
    rm -rf -- "$1"
    return 0
  fi
  # (What is left in STAGE, its empty folders, goes at the end of the wave: collect_results.)
  move_staged "$1"
}

# move_staged STAGE: the chunk's pack members, unpacked by tar into STAGE, into place by one mv
# a folder (G_DIRS; G_STARTS, where each one's files begin in G_FILES). When every mv succeeds,
# every file was there and went; else each entry is looked for (still in STAGE, or never
# there). tar sets no mtime before 1970 (G_NEG): set_mtime does, once the file is in place.
move_staged() {
  local g=0 n rc=0 i
  while [ "$g" -lt "${#G_DIRS[@]}" ]; do
    n=${G_STARTS[g + 1]:-${#G_FILES[@]}}
    n=$((n - G_STARTS[g]))
    mv -f -- "${G_FILES[@]:G_STARTS[g]:n}" "$TARGET${G_DIRS[g]%/}/" 2>/dev/null || rc=1
    g=$((g + 1))
  done
  if [ "$rc" -ne 0 ]; then
    staged_left "$1"
    rm -rf -- "$1"
  fi
  for i in ${G_NEG[@]+"${G_NEG[@]}"}; do
    if [ -z "${W_ERR[i]}" ]; then set_mtime "$TARGET/${W_PATH[i]}" "${W_MTIME[i]}" || true; fi
  done
}

# staged_left STAGE: after an mv failed, each pack member still in STAGE, or not in place as a
# regular file (tar did not unpack it), fails.
staged_left() {
  local i=1 p
  while [ "$i" -le "$W_N" ]; do
    if [ -n "${W_TAR[i]:-}" ] && [ -z "${W_ERR[i]}" ]; then
      p=${W_PATH[i]}
      if [ -e "$1/$p" ] || [ -L "$1/$p" ]; then
        W_ERR[i]="cannot move the file into place"
      elif [ -L "$TARGET/$p" ] || [ ! -f "$TARGET/$p" ]; then
        W_ERR[i]="tar did not unpack it"
      fi
    fi
    i=$((i + 1))
  done
}

# restore_link LINE: phase 3.
restore_link() {
  local dest
  if ! split_entry "$1"; then fail "$1" "malformed entry line"; return 0; fi # phase 1 took it
  OK_PARENT=""
  if ! ensure_parents "$E_PATH" create; then fail "$E_EPATH" "$P_ERR"; return 0; fi
  dest="$TARGET/$E_PATH"
  if ! make_room "$dest"; then fail "$E_EPATH" "exists and is a non-empty directory: not replaced"; return 0; fi
  if ! ln -s -- "$E_TARGET" "$dest"; then fail "$E_EPATH" "cannot create the symbolic link"; return 0; fi
  if ! set_owner "$dest" "$E_UID" "$E_GID"; then warn "$E_EPATH: cannot set the owner"; fi
  if ! set_mtime "$dest" "$E_MTIME"; then warn "$E_EPATH: cannot set the mtime"; fi
  N_LINKS=$((N_LINKS + 1))
}

# link_first_selected: is the parsed hard link's first path (E_LINK) restored by this run too
# (a file entry: --only selects it)? It comes before the link in the meta.
link_first_selected() {
  local path=$E_PATH rc=0
  E_PATH=$E_LINK
  selected || rc=1
  E_PATH=$path
  return "$rc"
}

# HL_CHECKED: the last first path found to hold its content (its other names skip the MD5).
HL_CHECKED=""

# restore_hardlink LINE: phase 2b (FORMAT.md 5.3): a hard link of a file restored in phase 2,
# made under a work name and moved into place (a copy where the file system refuses links); one
# whose first path is not a file in the target now (it failed) fails too.
restore_hardlink() {
  local dest first tmp
  if ! split_entry "$1"; then fail "$1" "malformed entry line"; return 0; fi # phase 1 took it
  OK_PARENT=""
  # The first must hold the content: a first that failed may have left an older file there.
  if ! ensure_parents "$E_LINK" check || [ -L "$TARGET/$E_LINK" ] || [ ! -f "$TARGET/$E_LINK" ] ||
    { [ "$HL_CHECKED" != "$E_LINK" ] && { ! file_md5 "$TARGET/$E_LINK" || [ "$MD5_OUT" != "$E_MD5" ]; }; }; then
    fail "$E_EPATH" "not restored: $E_ELINK, the file it is a hard link of, was not"
    return 0
  fi
  HL_CHECKED=$E_LINK
  OK_PARENT=""
  if ! ensure_parents "$E_PATH" create; then fail "$E_EPATH" "$P_ERR"; return 0; fi
  first="$TARGET/$E_LINK" dest="$TARGET/$E_PATH" tmp="$KIT_WORK/hardlink"
  if [ "$first" -ef "$dest" ] && [ ! -L "$dest" ]; then N_FILES=$((N_FILES + 1)); return 0; fi
  if ! make_room "$dest"; then fail "$E_EPATH" "exists and is a non-empty directory: not replaced"; return 0; fi
  rm -f -- "$tmp"
  if ! ln -- "$first" "$tmp" 2>/dev/null && ! cp -p -- "$first" "$tmp" 2>/dev/null; then
    rm -f -- "$tmp"
    fail "$E_EPATH" "cannot link or copy $E_ELINK"
    return 0
  fi
  if ! mv -f -- "$tmp" "$dest"; then
    rm -f -- "$tmp"
    fail "$E_EPATH" "cannot move the file into place"
    return 0
  fi
  N_FILES=$((N_FILES + 1))
}

# finish_dirs: phase 4, the directories' owner, mode and mtime, deepest first (by one call for
# each run of folders that share a value: dir_call). Format 3 (tar is there): the mtimes by one
# tar first (dirs_by_tar), the others by touch.
finish_dirs() {
  local line ep attrs mode uid gid mtime p i=0
  local -a DP DE DM DU DG DT DD
  if [ ! -s "$KIT_TMP/dirs" ]; then return 0; fi
  LC_ALL=C sort -r -o "$KIT_TMP/dirs" "$KIT_TMP/dirs"
  OK_PARENT=""
  DP=() DE=() DM=() DU=() DG=() DT=() DD=()
  while IFS= read -r -u 3 line; do
    ep=${line%%"$TAB"*}
    attrs=${line#*"$TAB"}
    mode=${attrs%% *}
    attrs=${attrs#* }
    uid=${attrs%% *}
    attrs=${attrs#* }
    gid=${attrs%% *}
    mtime=${attrs#* }
    printf -v p '%b' "$ep"
    if ! ensure_parents "$p" check; then fail "$ep" "$P_ERR"; continue; fi
    if [ -L "$TARGET/$p" ] || [ ! -d "$TARGET/$p" ]; then
      fail "$ep" "no longer a directory: mode and mtime not set"
      continue
    fi
    DP+=("$p") DE+=("$ep") DM+=("$mode") DU+=("$uid") DG+=("$gid") DT+=("$mtime")
  done 3<"$KIT_TMP/dirs"
  if [ "$META_VERSION" = 3 ]; then dirs_by_tar; fi
  while [ "$i" -lt "${#DP[@]}" ]; do
    owner_spec "${DU[i]}" "${DG[i]}"
    dir_call o "$O_SPEC" "$TARGET/${DP[i]}" "${DE[i]}"
    if [ -z "${DD[i]:-}" ]; then dir_call t "${DT[i]}" "$TARGET/${DP[i]}" "${DE[i]}"; fi
    dir_call m "${DM[i]}" "$TARGET/${DP[i]}" "${DE[i]}"
    i=$((i + 1))
  done
  dir_flush m
}

# dirs_by_tar: (finish_dirs, its DP and DT: the folders checked, deepest first) their mtimes set
# by one tar of folder entries, a pax record each (path, mtime: tar_add's), before any owner or
# mode is (mode 0700 in the meantime, the owners kept); DD[i]=1 for each one it set. Not a
# mtime before 1970, nor a record of more than two blocks (touch sets those), nor anything
# when tar fails (touch then sets them all).
dirs_by_tar() {
  local i=0 r k m t d=$KIT_TMP/dirtar rc=0
  local -a A
  A=()
  fast_pieces
  rm -rf -- "$d"
  mkdir -- "$d" || return 0
  tar_header "$d/h" d 5 0 0700 || return 0
  while [ "$i" -lt "${#DP[@]}" ]; do
    case "${DT[i]}" in -*) i=$((i + 1)) && continue ;; esac
    r=" path=./${DP[i]}/$NL" t=" mtime=${DT[i]}$NL" k=${#r} m=${#t}
    r="21 hdrcharset=BINARY$NL$((k < 98 ? k + 2 : k < 997 ? k + 3 : k + 4))$r$((m < 98 ? m + 2 : m + 3))$t"
    k=$(((${#r} + 523) / 512)) t=$((((${#r} + 523) / 512) * 512 - ${#r}))
    if [ "$k" -le 2 ] && printf '%s' "$r" >"$d/r.$i"; then
      A+=("$FAST_PIECES/x.$k" "$d/r.$i" "$FAST_PIECES/c.$t" "$d/h")
      DD[i]=1
    fi
    i=$((i + 1))
  done
  if [ "${#A[@]}" -gt 0 ]; then
    printf '%b' "$TAR_Z$TAR_Z" >"$d/end" || rc=1
    if [ "$rc" -eq 0 ]; then
      tar_unpack /dev/null "$TARGET" --no-same-owner -- "${A[@]}" "$d/end" || rc=1
    fi
    if [ "$rc" -ne 0 ]; then DD=(); fi
  fi
  rm -rf -- "$d"
}

# Phase 4's calls, one for a run of folders (in finish_dirs' order, deepest first) that share
# the value: chown (o, as root), touch (t), chmod (m). A run of modes goes only after the
# owners and mtimes queued before it (a mode may shut the owner out of the folders below), and
# a chown before the chmod of the same folder (it clears set-id bits). A call that fails is
# made again for each folder of its run, to warn about the ones that fail.
DQ_O="" DQ_T="" DQ_M="" # each kind's value
DQO_P=() DQO_E=() DQT_P=() DQT_E=() DQM_P=() DQM_E=()

# dir_call KIND VALUE PATH EP: queue it (EP, the escaped path the warnings name); an empty
# VALUE (no owner to set) queues nothing.
dir_call() {
  if [ -z "$2" ]; then return 0; fi
  case "$1" in
  o)
    if [ "$2" != "$DQ_O" ]; then dir_flush o; fi
    DQ_O=$2 DQO_P+=("$3") DQO_E+=("$4")
    ;;
  t)
    if [ "$2" != "$DQ_T" ]; then dir_flush t; fi
    DQ_T=$2 DQT_P+=("$3") DQT_E+=("$4")
    ;;
  m)
    if [ "$2" != "$DQ_M" ]; then dir_flush m; fi
    DQ_M=$2 DQM_P+=("$3") DQM_E+=("$4")
    ;;
  esac
  # (bounded: macOS passes 256 KiB of arguments at most)
  if [ "${#DQT_P[@]}" -ge 128 ] || [ "${#DQM_P[@]}" -ge 128 ] || [ "${#DQO_P[@]}" -ge 128 ]; then
    dir_flush m
  fi
}

# dir_flush KIND: make KIND's queued call (for m: the owners and mtimes first).
dir_flush() {
  local i=0
  case "$1" in
  o)
    if [ "${#DQO_P[@]}" -eq 0 ]; then return 0; fi
    if ! chown -h -- "$DQ_O" "${DQO_P[@]}" 2>/dev/null; then
      while [ "$i" -lt "${#DQO_P[@]}" ]; do
        chown -h -- "$DQ_O" "${DQO_P[i]}" 2>/dev/null || warn "${DQO_E[i]}: cannot set the owner"
        i=$((i + 1))
      done
    fi
    DQ_O="" DQO_P=() DQO_E=()
    ;;
  t)
    if [ "${#DQT_P[@]}" -eq 0 ]; then return 0; fi
    if ! set_mtimes "$DQ_T" "${DQT_P[@]}" 2>/dev/null; then
      while [ "$i" -lt "${#DQT_P[@]}" ]; do
        set_mtime "${DQT_P[i]}" "$DQ_T" 2>/dev/null || warn "${DQT_E[i]}: cannot set the mtime"
        i=$((i + 1))
      done
    fi
    DQ_T="" DQT_P=() DQT_E=()
    ;;
  m)
    dir_flush o
    dir_flush t
    if [ "${#DQM_P[@]}" -eq 0 ]; then return 0; fi
    if ! chmod -- "0$DQ_M" "${DQM_P[@]}" 2>/dev/null; then
      while [ "$i" -lt "${#DQM_P[@]}" ]; do
        chmod -- "0$DQ_M" "${DQM_P[i]}" 2>/dev/null || warn "${DQM_E[i]}: cannot set the mode"
        i=$((i + 1))
      done
    fi
    DQ_M="" DQM_P=() DQM_E=()
    ;;
  esac
}

# finish_root: last, once the target's lock is removed (its removal would change the mtime, a
# read-only mode would refuse it), the target's own owner (as root), mode and mtime: the
# backed-up folder's (the meta's "root" line, FORMAT.md 5: "<mode> <uid> <gid> <mtime>");
# not with --only.
finish_root() {
  local mode uid gid mtime rest=$META_ROOT
  if [ -z "$rest" ] || [ "$ONLY_N" -gt 0 ]; then return 0; fi
  mode=${rest%% *} rest=${rest#* }
  uid=${rest%% *} rest=${rest#* }
  gid=${rest%% *} mtime=${rest#* }
  case "$mode" in [0-7][0-7][0-7][0-7]) ;; *) warn "bad root line in $META: '$META_ROOT'"; return 0 ;; esac
  case "$mtime" in '' | *[!0-9.-]*) warn "bad root line in $META: '$META_ROOT'"; return 0 ;; esac
  if [ -n "$KIT_LOCK" ]; then
    rm -f -- "$KIT_LOCK"
    KIT_LOCK=""
  fi
  if ! set_owner "$TARGET" "$uid" "$gid"; then warn "$TARGET: cannot set the owner"; fi
  if ! chmod -- "$mode" "$TARGET"; then warn "$TARGET: cannot set the mode"; fi
  if ! set_mtime "$TARGET" "$mtime"; then warn "$TARGET: cannot set the mtime"; fi
}

# ---------------------------------------------------------------------------------------------
# Files: from a local directory, or from S3 in batches
# ---------------------------------------------------------------------------------------------

FILES_TOTAL=0

files_from_dir() {
  restore_files "$KIT_TMP/files" "$STORE_DIR"
}

BATCH_MD5S=()
BATCH_N=0
BATCH_BYTES=0

# cp_many SUB OUT NAME...: the objects SUB<NAME> (names without glob characters) into OUT/<NAME>
# by one aws s3 cp --recursive (a process for them all; its listing reads every key under SUB);
# aws's exit code, its complaints in KIT_TMP/aws.err.
cp_many() {
  local sub=$1 out=$2 n
  local -a args
  args=(--exclude '*')
  shift 2
  for n in "$@"; do args+=(--include "$n"); done
  aws_run s3 cp "s3://$STORE_BUCKET/$STORE_PREFIX$sub" "$out/" --recursive --only-show-errors \
    ${AWS_CP_EXTRA[@]+"${AWS_CP_EXTRA[@]}"} "${args[@]}" >/dev/null 2>"$KIT_TMP/aws.err"
}

# flush_batch: fetch the batch's objects into KIT_WORK/obj, restore its entries, delete them.
flush_batch() {
  local i=0 m line rc obj=$KIT_WORK/obj
  if [ "$BATCH_N" -eq 0 ]; then return 0; fi
  : >"$KIT_TMP/batch.err"
  mkdir -p -- "$obj"
  if [ -n "$AS_OF" ]; then
    fetch_versions "$obj"
  elif [ "$BATCH_N" -le 2 ]; then
    while [ "$i" -lt "$BATCH_N" ]; do
      m=${BATCH_MD5S[i]}
      i=$((i + 1))
      if ! store_get "$m" "$obj/$m"; then
        if [ "$STORE_ERR" != missing ]; then printf '%s\n' "$m $STORE_ERR" >>"$KIT_TMP/batch.err"; fi
      fi
    done
  else
    rc=0
    cp_many "" "$obj" "${BATCH_MD5S[@]:0:BATCH_N}" || rc=$?
    if [ "$rc" -ne 0 ]; then
      warn "aws s3 cp failed (exit $rc): $(first_line "$KIT_TMP/aws.err")"
      printf '%s\n' "* download failed: $(first_line "$KIT_TMP/aws.err")" >>"$KIT_TMP/batch.err"
    fi
  fi
  if [ -s "$KIT_TMP/batch.err" ] && { [ "$BATCH_N" -le 2 ] || [ -n "$AS_OF" ]; }; then
    while IFS= read -r line; do warn "object ${line%% *}: ${line#* }"; done <"$KIT_TMP/batch.err"
  fi
  stop_if_down
  MISSING_WHY=""
  if [ -s "$KIT_TMP/batch.err" ]; then MISSING_WHY=" (or download failed, see above)"; fi
  restore_files "$KIT_TMP/batch" "$obj"
  rm -rf -- "$obj"
  : >"$KIT_TMP/batch"
  BATCH_MD5S=()
  BATCH_N=0
  BATCH_BYTES=0
}

# fetch_versions OBJDIR: the batch's objects as they were at AS_OF, a get-object --version-id
# each (aws s3 cp reads only current versions), KIT_JOBS at a time.
fetch_versions() {
  local i=0 m
  while [ "$i" -lt "$BATCH_N" ]; do
    m=${BATCH_MD5S[i]}
    i=$((i + 1))
    fetch_version "$i" "$m" "$1" &
    if [ $((i % KIT_JOBS)) -eq 0 ]; then wait; fi
  done
  wait
  for m in "$KIT_TMP"/fv.*/err; do
    if [ -f "$m" ]; then cat -- "$m" >>"$KIT_TMP/batch.err"; fi
  done
  rm -rf -- "$KIT_TMP"/fv.*
}

# fetch_version I MD5 OBJDIR: one object of fetch_versions (in the background), with its own
# temporary folder; a failure other than "missing" in it, as err.
fetch_version() {
  local KIT_TMP=$KIT_TMP/fv.$1
  if [ -s "$KIT_DOWN" ]; then return 0; fi # (stop_if_down stops the restore)
  mkdir -p -- "$KIT_TMP" || exit 1
  if store_get "$2" "$3/$2" || [ "$STORE_ERR" = missing ] || [ -s "$KIT_DOWN" ]; then return 0; fi
  # Once more: KIT_JOBS requests at once may meet a busy server.
  if ! store_get "$2" "$3/$2" && [ "$STORE_ERR" != missing ]; then
    printf '%s\n' "$2 $STORE_ERR" >"$KIT_TMP/err"
  fi
}

# files_from_s3: the files, from batches of up to BATCH_MAX objects (and BATCH_MAX_BYTES),
# each named to aws s3 cp; with more objects than that in all, files_by_prefix.
files_from_s3() {
  local line md5 last="" rest size distinct
  LC_ALL=C sort -o "$KIT_TMP/files" "$KIT_TMP/files"
  distinct=$(cut -d ' ' -f 1 "$KIT_TMP/files" | uniq | wc -l)
  distinct=${distinct//[!0-9]/}
  if [ -z "$AS_OF" ] && [ "${distinct:-0}" -gt "$BATCH_MAX" ]; then files_by_prefix; return 0; fi
  : >"$KIT_TMP/batch"
  while IFS= read -r -u 3 line; do
    md5=${line%% *}
    if [ "$md5" != "$last" ]; then
      # size: the 6th field
      rest=${line#* * * * * }
      size=${rest%% *}
      if ! is_uint "$size"; then size=0; fi
      if [ "$BATCH_N" -gt 0 ] && { [ "$BATCH_N" -ge "$BATCH_MAX" ] ||
        [ $((BATCH_BYTES + size)) -gt "$BATCH_MAX_BYTES" ]; }; then
        flush_batch
      fi
      BATCH_MD5S[BATCH_N]=$md5
      BATCH_N=$((BATCH_N + 1))
      BATCH_BYTES=$((BATCH_BYTES + size))
      last=$md5
    fi
    printf '%s\n' "$line" >>"$KIT_TMP/batch"
  done 3<"$KIT_TMP/files"
  flush_batch
}

# files_by_prefix: the objects in 16 batches, by the first hex digit of their names, one
# filter each (the aws CLI's work with a filter per object grows with the square of their
# number); the next batch downloads while this one is restored. The objects of other backups
# that share the digit come along and go with the rest.
files_by_prefix() {
  local line h next digits="" rc
  while IFS= read -r -u 3 line; do
    h=${line:0:1}
    if [ ! -f "$KIT_TMP/p.$h" ]; then digits="$digits $h"; fi
    printf '%s\n' "$line" >>"$KIT_TMP/p.$h"
  done 3<"$KIT_TMP/files"
  # shellcheck disable=SC2086 # the digits, one word each
  set -- $digits
  fetch_prefix "$1" &
  KIT_FETCH_PID=$!
  while [ "$#" -gt 0 ]; do
    h=$1
    shift
    rc=0
    wait "$KIT_FETCH_PID" || rc=$?
    KIT_FETCH_PID=""
    if [ "$#" -gt 0 ]; then
      next=$1
      fetch_prefix "$next" &
      KIT_FETCH_PID=$!
    fi
    stop_if_down
    MISSING_WHY=""
    if [ "$rc" -ne 0 ]; then
      warn "aws s3 cp failed (exit $rc): $(first_line "$KIT_TMP/aws.$h.err")"
      MISSING_WHY=" (or download failed, see above)"
    fi
    restore_files "$KIT_TMP/p.$h" "$KIT_WORK/obj.$h"
    rm -rf -- "${KIT_WORK:?}/obj.$h" "$KIT_TMP/p.$h"
  done
}

# fetch_prefix H: every object whose name starts with hex digit H, into KIT_WORK/obj.H.
fetch_prefix() {
  # 32 characters: an object's name, not some other key that starts with the digit
  aws_run s3 cp "s3://$STORE_BUCKET/$STORE_PREFIX" "$KIT_WORK/obj.$1/" --recursive \
    --only-show-errors ${AWS_CP_EXTRA[@]+"${AWS_CP_EXTRA[@]}"} \
    --exclude '*' --include "$1???????????????????????????????" \
    >/dev/null 2>"$KIT_TMP/aws.$1.err"
}

# files_v3: a version 3 meta (FORMAT.md 4): the files in batches of the objects holding them
# (at most BATCH_V3 objects, BATCH_MAX_BYTES of content); each pack fetched once and unpacked
# with one openssl | tar, then its files placed by the workers, a process each at most.
BATCH_V3=${S3BACKUP_KIT_BATCH_OBJECTS:-16}
files_v3() {
  local line key last="" nkeys=0 bytes=0 size rest
  LC_ALL=C sort -o "$KIT_TMP/files.k" "$KIT_TMP/files" # keyed by main's first phase
  if [ "$STORE_KIND" = s3 ]; then thaw_needed "$KIT_TMP/files.k"; fi
  : >"$KIT_TMP/batch.keys"
  exec 6>"$KIT_TMP/batch" # (open once: a file opened for each line costs more than the line)
  while IFS= read -r -u 3 line; do
    key=${line%% *}
    line=${line#* }
    if [ "$key" != "$last" ]; then
      if [ "$nkeys" -ge "$BATCH_V3" ] || [ "$bytes" -ge "$BATCH_MAX_BYTES" ]; then
        exec 6>&-
        flush_v3
        exec 6>"$KIT_TMP/batch"
        nkeys=0 bytes=0
      fi
      printf '%s\n' "$key" >>"$KIT_TMP/batch.keys"
      nkeys=$((nkeys + 1)) last=$key
      rest=${line#* * * * * } size=${rest%% *} # the 6th field
      if is_uint "$size" && [ "${#size}" -le 15 ]; then bytes=$((bytes + size)); fi
    fi
    printf '%s\n' "$line" >&6
  done 3<"$KIT_TMP/files.k"
  exec 6>&-
  flush_v3
}

# flush_v3: fetch (S3) and unpack the batch's objects, restore its files, remove them.
flush_v3() {
  prefetch_wait # the first batch's packs, ready already or soon
  if [ ! -s "$KIT_TMP/batch" ]; then return 0; fi
  fetch_unpack
  # By path: a chunk's files then share a few folders (one mv each, place_by_tar).
  LC_ALL=C sort -t ' ' -k 9 -o "$KIT_TMP/batch" "$KIT_TMP/batch"
  restore_files "$KIT_TMP/batch" "$SRC"
  rm -rf -- "$KIT_WORK/obj" "$UNPACKED"
  : >"$KIT_TMP/batch"
  : >"$KIT_TMP/batch.keys"
}

# fetch_unpack: the objects named in KIT_TMP/batch.keys fetched (S3) into KIT_WORK/obj, the
# packs among them unpacked into UNPACKED (then their downloads removed); SRC, where the
# objects of their own are; failures warned about, MISSING_WHY then says so.
SRC=""
fetch_unpack() {
  local line obj=$KIT_WORK/obj
  prefetch_wait
  UNPACKED=$KIT_WORK/u
  mkdir -p -- "$obj/packs" "$obj/data" "$UNPACKED"
  : >"$KIT_TMP/batch.err"
  if [ -e "$KIT_FULL" ]; then return 0; fi # (nothing more is written: worker_decrypt)
  SRC=$STORE_DIR
  if [ "$STORE_KIND" = s3 ]; then
    SRC=$obj
    fetch_keys "$KIT_TMP/batch.keys" "$obj"
  fi
  unpack_keys "$KIT_TMP/batch.keys" "$SRC"
  rm -rf -- "${obj:?}/packs"
  stop_if_down
  MISSING_WHY=""
  if [ -s "$KIT_TMP/batch.err" ]; then
    while IFS= read -r line; do warn "object ${line%% *}: ${line#* }"; done <"$KIT_TMP/batch.err"
    MISSING_WHY=" (or download failed, see above)"
  fi
}

# ---------------------------------------------------------------------------------------------
# The fast lane: format 3, no --only, a target that was empty (FAST=1). Phase 1 sorts the
# entries by type and where with one sort (read_bulk): the plain files held in packs are then
# runs of lines no bash loop reads in phase 1. Phase 2 fetches and unpacks their packs in
# batches as files_v3 does (files_fast), keeps the lines whose member is there, checked, with
# the size the line says (one join: fast_lines), and the workers place them a chunk at a time
# by one head (or cat) | tar (fast_chunk). A line the fast lane does not take (an escape, a
# field out of the common shape, a member missing or damaged, a negative mtime) and every line
# of a chunk whose tar failed go to the workers of restore_files, which check each entry and say
# what failed. The target was empty: phases 1 and 2 build the tree in the work folder instead
# (mirror_begin: its folders, then its files, each where it belongs), and one mv a few hundred
# of its top entries renames it into the target (mirror_end): every file reaches its path by a
# rename, whole and checked (FORMAT.md 5.3), and a folder of files costs no process of its own.
# Every folder in the tree is one this restore made (none is a symbolic link) and no file is in
# the way of another, so nothing needs looking at before a file is placed.
# ---------------------------------------------------------------------------------------------

FAST=0 FAST_REST=0 FAST_LAST=0 MIRROR_OF=""
CHUNK_FAST=${S3BACKUP_KIT_CHUNK_FAST:-512}

# mirror_begin: (FAST=1, the work folder made) TARGET becomes the work folder's "m", empty,
# where phases 1 and 2 build the tree; MIRROR_OF, the target.
mirror_begin() {
  if [ "$FAST" != 1 ]; then return 0; fi
  mkdir -- "$KIT_WORK/m" || die "cannot create $KIT_WORK/m"
  MIRROR_OF=$TARGET TARGET=$KIT_WORK/m OK_PARENT=""
}

# mirror_end: (after the fast lane) the tree built in KIT_WORK/m renamed into the target, its top
# entries by one mv for up to 256 of them (named from inside the tree: 64 KiB of arguments at
# most); TARGET the target again. An entry that cannot be moved (something of that name came
# into the target meanwhile) stops the restore: what was built goes with the work folder,
# nothing of it is left half in place, and the repository is as it was (a rerun restores it).
mirror_end() {
  local m=$KIT_WORK/m
  if [ -z "$MIRROR_OF" ]; then return 0; fi
  TARGET=$MIRROR_OF MIRROR_OF="" OK_PARENT=""
  if ! (cd -- "$m" && shopt -s nullglob && set -- * .[!.]* ..?* && while [ "$#" -gt 0 ]; do
    n=$(($# < 256 ? $# : 256))
    mv -f -- "${@:1:n}" "$TARGET/" && shift "$n" || exit 1
  done) || ! rmdir -- "$m" 2>/dev/null; then
    die "cannot move what was restored from $m into $TARGET"
  fi
}

# fast_init: FAST=1 when the fast lane may run (S3BACKUP_KIT_FAST=0 turns it off): a format 3
# meta, no --only, nothing archived in the store, and a target that was empty (TARGET_EMPTY:
# target_open).
fast_init() {
  FAST=0
  if [ "$META_VERSION" != 3 ] || [ "$ONLY_N" -ne 0 ] || [ "${S3BACKUP_KIT_FAST:-1}" = 0 ] ||
    [ "$TARGET_EMPTY" != 1 ]; then
    return 0
  fi
  if [ "$STORE_KIND" = s3 ] && [ -z "$AS_OF" ]; then
    archived_list "$KIT_TMP/arch"
    if [ -s "$KIT_TMP/arch" ]; then return 0; fi
  fi
  FAST=1
}

# read_bulk: (phase 1) the meta's entries sorted by type, then where (stable: in the meta's
# order within a type): the plain files held in packs, a run of lines a pack, to KIT_TMP/fast
# (counted in FILES_TOTAL); every other line to KIT_TMP/slow (FAST_REST of them) for
# read_entries. (One uniq -c of the two fields gives the runs.)
read_bulk() {
  local n t w at=1 start=1 run="" cls
  : >"$KIT_TMP/fast"
  : >"$KIT_TMP/slow"
  # (head first: a tail cut short by head would fail the pipeline, SIGPIPE)
  head -n "$((META_HDR_LINES + META_ENTRIES))" -- "$META_PLAIN" | tail -n "+$((META_HDR_LINES + 1))" |
    LC_ALL=C sort -s -t ' ' -k 2,2 -k 8,8 >"$KIT_TMP/sorted" || die "cannot sort the entries of $META"
  cut -d ' ' -f 2,8 -- "$KIT_TMP/sorted" | uniq -c >"$KIT_TMP/groups"
  while read -r n t w; do
    cls=slow
    case "$t:${w%.gz}" in
    *:*[!0123456789abcdef]*) ;;
    f:????????????????????????????????) cls=fast ;;
    esac
    if [ -n "$run" ] && [ "$cls" != "$run" ]; then
      bulk_range "$run" "$start" $((at - start))
      start=$at
    fi
    run=$cls at=$((at + n))
  done <"$KIT_TMP/groups"
  if [ -n "$run" ]; then bulk_range "$run" "$start" $((at - start)); fi
  rm -f -- "$KIT_TMP/sorted" "$KIT_TMP/groups"
}

# bulk_range CLASS FIRST COUNT: COUNT lines of KIT_TMP/sorted from line FIRST onto KIT_TMP/CLASS.
bulk_range() {
  head -n "$(($2 + $3 - 1))" -- "$KIT_TMP/sorted" | tail -n "+$2" >>"$KIT_TMP/$1"
  if [ "$1" = fast ]; then FILES_TOTAL=$((FILES_TOTAL + $3)); else FAST_REST=$((FAST_REST + $3)); fi
}

# files_fast: (phase 2) the fast lane's lines (KIT_TMP/fast, a run a pack) in batches of
# BATCH_V3 packs (flush_fast), made first (one uniq -c tells how many lines each pack has): the
# next batch's packs are fetched and unpacked while a batch's files are placed.
files_fast() {
  local n w nk=0 b=0 first=1 count=0 fb=$KIT_TMP/fast.b
  if [ ! -s "$KIT_TMP/fast" ]; then return 0; fi
  cut -d ' ' -f 8 -- "$KIT_TMP/fast" | cut -c 1-32 | uniq -c >"$KIT_TMP/fast.packs"
  # fast.b.B: batch B's packs; fast.b.B.lines: "FIRST COUNT", its lines of KIT_TMP/fast.
  : >"$fb.0"
  while read -r n w <&3; do
    if [ "$nk" -ge "$BATCH_V3" ]; then
      printf '%s %s\n' "$first" "$count" >"$fb.$b.lines"
      b=$((b + 1)) first=$((first + count)) count=0 nk=0
      : >"$fb.$b"
    fi
    printf 'packs/%s\n' "$w" >>"$fb.$b"
    nk=$((nk + 1)) count=$((count + n))
  done 3<"$KIT_TMP/fast.packs"
  printf '%s %s\n' "$first" "$count" >"$fb.$b.lines"
  n=0
  while [ "$n" -le "$b" ]; do
    read -r first count <"$fb.$n.lines" || die "cannot read $fb.$n.lines"
    cp -- "$fb.$n" "$KIT_TMP/batch.keys" || die "cannot copy $fb.$n in $KIT_TMP"
    w=""
    if [ "$n" -lt "$b" ]; then w=$fb.$((n + 1)); else FAST_LAST=1; fi
    flush_fast "$first" "$count" "$w"
    n=$((n + 1))
  done
  : >"$KIT_TMP/batch.keys"
}

# flush_fast FIRST COUNT NEXT: lines FIRST.. of the fast lane (COUNT of them) restored from their
# packs (batch.keys), fetched and unpacked, while the packs listed in NEXT (if any) are fetched
# and unpacked in the background (prefetch_start); the lines the fast lane did not place go
# through restore_files while the packs are still unpacked; then the batch's packs are removed.
flush_fast() {
  local f=$KIT_TMP/fbatch k
  local -a gone
  head -n "$(($1 + $2 - 1))" -- "$KIT_TMP/fast" | tail -n "+$1" >"$f"
  fetch_unpack
  if [ -n "$3" ] && [ -z "$AS_OF" ]; then prefetch_start "$3"; fi # (as prefetch_v3)
  fast_lines "$f"
  fast_trust "$f.ok"
  fast_place "$f"
  if [ -s "$f.rej" ]; then
    LC_ALL=C sort -t ' ' -k 9 -o "$f.rej" "$f.rej"
    restore_files "$f.rej" "$SRC"
  fi
  rm -f -- "$f" "$f".*
  # The batch's unpacked packs: after the last batch, with the work folder (phase 4 meanwhile)
  # unless files_v3 needs it first.
  if [ "$FAST_LAST" != 1 ] || [ -s "$KIT_TMP/files" ]; then
    gone=()
    while IFS= read -r k; do gone+=("$UNPACKED/${k#packs/}"); done <"$KIT_TMP/batch.keys"
    rm -rf -- ${gone[@]+"${gone[@]}"}
  fi
}

# fast_lines LIST: LIST.ok, its lines whose member (<pack>/<size>/<md5>, from the where, size and
# md5 fields) is unpacked and checked, with that size (member_keys: the batch's packs'), by path;
# LIST.rej the others. (A line whose fields are not what cut takes them for is refused by
# fast_chunk.)
fast_lines() {
  local k
  while IFS= read -r k; do
    if [ -f "$UNPACKED/${k#packs/}/.keys" ]; then cat -- "$UNPACKED/${k#packs/}/.keys"; fi
  done <"$KIT_TMP/batch.keys" | LC_ALL=C sort -u >"$1.have"
  cut -d ' ' -f 8 -- "$1" | cut -c 1-32 >"$1.p"
  cut -c 1-32 -- "$1" >"$1.m"
  cut -d ' ' -f 6 -- "$1" >"$1.s"
  paste -d / "$1.p" "$1.s" "$1.m" | paste -d ' ' - "$1" | LC_ALL=C sort -t ' ' -k 1,1 >"$1.k"
  LC_ALL=C join -t ' ' "$1.have" "$1.k" | cut -d ' ' -f 2- |
    LC_ALL=C sort -t ' ' -k 9 >"$1.ok"
  LC_ALL=C join -t ' ' -v 2 "$1.have" "$1.k" | cut -d ' ' -f 2- >"$1.rej"
  rm -f -- "$1.have" "$1.p" "$1.m" "$1.s" "$1.k"
}

# fast_place LIST: LIST.ok cut into chunks of CHUNK_FAST lines (one split), placed by KIT_JOBS
# workers (fast_lane); the lines of a chunk not placed are added to LIST.rej, the others counted.
fast_place() {
  local c=0 w=0 n
  rm -f -- "$1".c.*
  if [ ! -s "$1.ok" ]; then return 0; fi
  split -l "$CHUNK_FAST" -a 4 -- "$1.ok" "$1.c." || die "cannot split $1.ok into chunks"
  fast_pieces
  fast_bulk "$1" || FAST_BULK=""
  CHUNKS=("$1".c.*)
  KIT_PIDS=""
  while [ "$w" -lt "$KIT_JOBS" ] && [ "$w" -lt "${#CHUNKS[@]}" ]; do
    fast_lane "$w" &
    KIT_PIDS="$KIT_PIDS $!"
    w=$((w + 1))
  done
  for w in $KIT_PIDS; do wait "$w" || true; done
  KIT_PIDS=""
  while [ "$c" -lt "${#CHUNKS[@]}" ]; do
    n=""
    if [ -f "${CHUNKS[c]}.n" ]; then IFS= read -r n <"${CHUNKS[c]}.n" || n=""; fi
    if is_uint "$n"; then
      N_FILES=$((N_FILES + n))
      cat -- "${CHUNKS[c]}.rej" >>"$1.rej"
    else cat -- "${CHUNKS[c]}" >>"$1.rej"; fi # (its worker died: all again)
    c=$((c + 1))
  done
  rm -f -- "$1".[acl].*
  warn "$N_FILES/$FILES_TOTAL files"
}

# fast_bulk LIST: (fast_place; FAST_TRUSTED=1, LIST.ok cut into chunks LIST.c.X) what
# fast_chunk would make of each line, made for every line at once by a few cut, paste and tr:
# each chunk's words (LIST.a.X: bulk_words), of which one printf of the format FAST_BULK makes
# the chunk's headers (fast_chunk_bulk), and the pieces of its tar stream (LIST.l.X:
# bulk_pieces). Every header is as long as the others (numbers with leading zeros, 12 digits; a
# fraction of 9; each path behind slashes to 426 bytes, 386 as root), so that its records fill
# their block with no line's arithmetic; the pad that ends a content on a block is written by the
# printf after its file's records (split puts it before the next file's header; tar skips it).
# Returns 1, and fast_chunk makes each line's records itself, when a field is wider than that, a
# number has a leading zero (printf would read it as octal) or an owner is - (as root).
FAST_BULK=""
fast_bulk() {
  local t=$KIT_TMP/bulk n m w=426 pid rc=0 IFS=$'\n'
  local -x LC_ALL=C
  FAST_BULK=""
  if [ "$FAST_TRUSTED" != 1 ] || [ "${S3BACKUP_KIT_BULK:-1}" = 0 ]; then return 1; fi
  if [ "$KIT_ROOT" = 1 ]; then w=386; fi
  n=$(wc -l <"$1.ok") && n=${n//[!0-9]/} && [ "${n:-0}" -gt 0 ] || return 1
  # The numbers: 12 digits at most, no leading zero; a fraction (0 when there is none) of 9
  # digits at most.
  bulk_lines 0 "$n" >"$t.0" && bulk_lines 000000000 "$n" >"$t.9" || return 1
  cut -d ' ' -f 6,7 -- "$1.ok" | cut -d . -f 1 >"$t.si" || return 1
  cut -d ' ' -f 7 -- "$1.ok" | paste -d . - "$t.0" | cut -d . -f 2 >"$t.f" || return 1
  if [ "$KIT_ROOT" = 1 ]; then cut -d ' ' -f 4,5 -- "$1.ok" >"$t.ui" || return 1; else : >"$t.ui"; fi
  cat -- "$t.si" "$t.ui" | tr ' ' '\n' >"$t.n" || return 1
  m=$(cut -c 1-2 -- "$t.n" | sort -u | tr '\n' ' ') || return 1
  case " $m" in *" 0"[0-9]*) return 1 ;; esac
  if [ -n "$(tr -d '\n0123456789' <"$t.n")" ] || [ -n "$(cut -c 13- -- "$t.n" | tr -d '\n')" ] ||
    [ -n "$(cut -c 10- -- "$t.f" | tr -d '\n')" ]; then
    return 1
  fi
  # The paths, their blanks as \001 (no path holds a control character: fast_trust), none
  # longer than the width they are written in.
  cut -d ' ' -f 9- -- "$1.ok" | tr ' ' '\001' >"$t.p" || return 1
  if [ -n "$(cut -c "$((w + 1))-" -- "$t.p" | tr -d '\n')" ]; then return 1; fi
  cut -c 1-32 -- "$1.ok" >"$t.h" || return 1
  bulk_pieces "$1" "$n" "$t.l" "$t" &
  pid=$!
  bulk_words "$1" "$n" "$t" || rc=1
  wait "$pid" || rc=1
  rm -f -- "$t".*
  if [ "$rc" -ne 0 ]; then return 1; fi
  # The format: the pax header's file header, the records (blanks as \002) filling its block
  # (the path behind slashes: 426 bytes, 386 as root), the pad.
  FAST_BULK="$(bulk_xheader)21\002hdrcharset=BINARY\n"
  if [ "$KIT_ROOT" = 1 ]; then
    FAST_BULK="${FAST_BULK}20\002uid=%012d\n20\002gid=%012d\n"
  fi
  FAST_BULK="${FAST_BULK}21\002size=%012d\n32\002mtime=%012d.%s\n$((w + 12))\002path=./%${w}s\n%*.0s"
}

# bulk_words LIST N T: (fast_bulk) the words of LIST.ok's N lines, a line each, cut into chunks
# (LIST.a.X): [uid gid] size int frac path pad md5, from fast_bulk's columns T.* (T.0 and T.9:
# N lines of 0 and of 000000000).
bulk_words() {
  local t=$3
  local -a S
  # Each line's pad (its content to a whole block: (-size) mod 512) in octal, which printf's
  # %*s reads with its leading 0: the last 3 of the 22 octal digits of -size.
  cut -d ' ' -f 6 -- "$1.ok" >"$t.s" || return 1
  # (Word splitting, not read -d '', which reads a byte a system call.)
  set -f
  # shellcheck disable=SC2207 # split on purpose (a line a size), not globbed
  S=($(cat -- "$t.s")) || S=()
  set +f
  if [ "${#S[@]}" -ne "$2" ]; then return 1; fi
  printf '%022o\n' "${S[@]/#/-}" | cut -c 20-22 | paste -d '\0' "$t.0" - >"$t.pad" || return 1
  paste -d '\0' "$t.f" "$t.9" | cut -c 1-9 >"$t.f9" || return 1
  if [ "$KIT_ROOT" = 1 ]; then
    paste -d ' ' "$t.ui" "$t.si" "$t.f9" "$t.p" "$t.pad" "$t.h"
  else paste -d ' ' "$t.si" "$t.f9" "$t.p" "$t.pad" "$t.h"; fi >"$t.a" || return 1
  split -l "$CHUNK_FAST" -a 4 -- "$t.a" "$1.a."
}

# bulk_pieces LIST N T C: (fast_bulk, in the background) the pieces of the tar streams of
# LIST.ok's N lines, 3 lines a file: r.<name> (split's names, a chunk's from aaa),
# ../../pieces/f.<mode> (made here), u/<pack>/<md5> (C.h: the MD5s); cut into chunks (LIST.l.X).
# Its temporary files begin with T. Exits 1 when one could not be made.
bulk_pieces() {
  local t=$3 c=$(($2 / CHUNK_FAST)) x=$(($2 % CHUNK_FAST)) m
  printf 'r.%s\n' "${FAST_NAMES[@]:0:CHUNK_FAST}" >"$t.one"
  {
    while [ "$c" -gt 0 ]; do cat -- "$t.one" && c=$((c - 1)); done
    if [ "$x" -gt 0 ]; then printf 'r.%s\n' "${FAST_NAMES[@]:0:x}"; fi
  } >"$t.r" || exit 1
  cut -d ' ' -f 3 -- "$1.ok" >"$t.m" && sort -u -o "$t.mu" -- "$t.m" || exit 1
  while IFS= read -r m; do
    if [ ! -f "$FAST_PIECES/f.$m" ]; then tar_header "$FAST_PIECES/f.$m" f 0 0 "$m" || exit 1; fi
  done <"$t.mu"
  bulk_lines ../../pieces/f. "$2" | paste -d '\0' - "$t.m" >"$t.fm" || exit 1
  cut -d ' ' -f 8 -- "$1.ok" | cut -c 1-32 >"$t.w" || exit 1
  bulk_lines u "$2" | paste -d '/' - "$t.w" "$4.h" >"$t.u" || exit 1
  paste -d '\n' "$t.r" "$t.fm" "$t.u" >"$t.l" || exit 1
  split -l "$((3 * CHUNK_FAST))" -a 4 -- "$t.l" "$1.l." || exit 1
}

# bulk_lines STRING N: N lines of STRING (which does not begin with -).
bulk_lines() {
  { yes "$1" || :; } | head -n "$2"
}

# bulk_xheader: the ustar header of a pax header of 512 bytes, as a printf format with one NUL
# byte (\x00, the magic's): its text fields filled with dots, its numbers with digits (the
# checksum's too: no blank, which tr makes a slash).
bulk_xheader() {
  local d=........................................................................................ h sum
  d=$d$d
  h="PaxHeader${d:0:91}000006440000000000000000000000001000000000000000        x${d:0:100}"
  h="${h}ustar_00${d:0:64}0000000000000000${d:0:167}"
  byte_sum "$h"
  printf -v sum '%08o' "$((BYTE_SUM - 95))" # (the magic's NUL, written _ here)
  h=${h/        x/${sum}x}
  printf '%s' "${h/ustar_/ustar\\x00}"
}

# fast_lane W: (a worker, in the background) fast_chunk of CHUNKS[W], CHUNKS[W+JOBS], ...
fast_lane() {
  local c=$1
  local KIT_TMP=$KIT_TMP/w.$1 # its own file headers and end blocks
  LC_ALL=C
  mkdir -p -- "$KIT_TMP/tar" || exit 1
  if [ -n "$FAST_BULK" ]; then
    # (fast_bulk's pieces are named from there: its records, u/<pack>/<md5>, ../../pieces/)
    mkdir -p -- "$KIT_TMP/rec" && ln -sfn -- "$UNPACKED" "$KIT_TMP/rec/u" && cd -- "$KIT_TMP/rec" || exit 1
    if [ ! -f "$KIT_TMP/tar/end.0" ]; then printf '%b' "$TAR_Z$TAR_Z" >"$KIT_TMP/tar/end.0" || exit 1; fi
  fi
  while [ "$c" -lt "${#CHUNKS[@]}" ]; do
    if [ -n "$FAST_BULK" ]; then
      fast_chunk_bulk "${CHUNKS[c]}"
    else fast_chunk "${CHUNKS[c]}"; fi
    c=$((c + KIT_JOBS))
  done
}

# fast_chunk_bulk CHUNK: (fast_lane, in the records' folder) fast_chunk's work from fast_bulk's:
# the records of CHUNK's lines by one printf of its words (CHUNK's .a.), cut into a file each by
# split, and one tar_unpack of its pieces (CHUNK's .l.); when tar fails, the files it may have
# written are removed (every line's path: a batch fast_trust passed) and every line of CHUNK goes
# onto CHUNK.rej. CHUNK.n: how many were placed.
fast_chunk_bulk() {
  local chunk=$1 b=${1%.c.*} x=${1##*.c.} line n rc=0 lines=4 IFS=$'\n'
  local -a A W
  if [ "$KIT_ROOT" = 1 ]; then lines=6; fi
  if fast_full "$chunk"; then return 0; fi
  : >"$chunk.rej"
  set -f
  # shellcheck disable=SC2207 # split on purpose (a line a piece; words), not globbed
  A=($(<"$b.l.$x")) && IFS=$' \n' && W=($(<"$b.a.$x")) || A=()
  set +f
  n=$((${#A[@]} / 3))
  if [ "$n" -gt 0 ] && [ "${#W[@]}" -eq $((n * (lines + 2))) ]; then
    # The last file's pad, after its records: a piece of its own before the end blocks.
    if [ $((${W[${#W[@]} - 2]})) -ne 0 ]; then A+=("r.${FAST_NAMES[n]}"); fi
    # shellcheck disable=SC2059 # the format is fast_bulk's
    { printf "$FAST_BULK" "${W[@]}" | tr ' \001\002' '/  ' >all && split -l "$lines" -a 3 -- all r. &&
      tar_unpack /dev/null "$TARGET" -- "${A[@]}" "$KIT_TMP/tar/end.0"; } || rc=$?
  else rc=1; fi
  if [ "$rc" -ne 0 ]; then
    # (A file tar was writing may be cut short: none of the chunk's stays.)
    while IFS= read -r line; do rm -f -- "$TARGET/${line#* * * * * * * * }" || exit 1; done <"$chunk"
    cp -- "$chunk" "$chunk.rej" || exit 1
    n=0
    target_full "$TARGET" || true
  fi
  printf '%s\n' "$n" >"$chunk.n"
}

# fast_chunk CHUNK: (fast_lane) the lines of CHUNK (by path) placed as place_by_tar places
# pack members, without its looks at the target (it was empty): each line's fields checked
# against the common shape (else onto CHUNK.rej), its pax record (tar_add's) kept; the records
# written onto one file that one split cuts into a file each (4 lines, 6 as root), one
# tar_unpack into the tree being built (TARGET, the work folder's "m": mirror_begin). When tar
# fails, the files it may have written are removed and every line of CHUNK goes onto CHUNK.rej.
# CHUNK.n: how many were placed.
fast_chunk() {
  local chunk=$1 rec=$KIT_TMP/rec line h p r k t m w n=0 rc=0 lines=4
  local -a A F R
  local IFS=' '
  A=() F=() R=() T_PAD=0 TAR_DIR=$KIT_TMP/tar
  if [ "$KIT_ROOT" = 1 ]; then lines=6; fi
  if fast_full "$chunk"; then return 0; fi
  mkdir -p -- "$rec" || exit 1 # (its files written over: rec/r.* a chunk, never removed)
  set -f
  exec 8>"$chunk.rej"
  while IFS= read -r -u 3 line; do
    # shellcheck disable=SC2086 # split on purpose (set -f: not globbed)
    set -- $line
    h="$1 $2 $3 $4 $5 $6 $7 $8 " p=${line:${#h}} w=${8%.gz}
    if [ "$FAST_TRUSTED" != 1 ] && ! fast_shape "$@"; then
      printf '%s\n' "$line" >&8
      continue
    fi
    r=" path=./$p$NL" t=" mtime=$7$NL" k=${#r} m=${#t}
    r="21 hdrcharset=BINARY$NL$((k < 98 ? k + 2 : k + 3))$r$((${#6} + 9)) size=$6$NL$((m < 98 ? m + 2 : m + 3))$t"
    if [ "$KIT_ROOT" = 1 ]; then
      h=OWNER_REC_${4/-/x}_${5/-/x}
      if [ -z "${!h:-}" ]; then owner_records "$4" "$5" "$h"; fi
      r=$r${!h}
    fi
    k=$(((${#r} + 523) / 512)) t=$((((${#r} + 523) / 512) * 512 - ${#r})) h=FAST_F_$3
    R+=("$r")
    if [ -z "${!h:-}" ]; then fast_mode "$3"; fi
    if [ "$T_PAD" -gt 0 ]; then A+=("$FAST_PIECES/p.$T_PAD"); fi
    A+=("$FAST_PIECES/x.$k" "$rec/r.${FAST_NAMES[n]}" "$FAST_PIECES/c.$t" "${!h}" "$UNPACKED/$w/$1")
    T_PAD=$(((512 - 10#$6 % 512) % 512)) n=$((n + 1))
    F+=("$TARGET/$p")
  done 3<"$chunk"
  exec 8>&-
  set +f
  if [ "$n" -gt 0 ]; then
    if [ ! -f "$TAR_DIR/end.$T_PAD" ]; then
      printf '%b' "${TAR_Z:0:4*T_PAD}$TAR_Z$TAR_Z" >"$TAR_DIR/end.$T_PAD"
    fi
    # The records onto one file (one printf), cut into a file each.
    { printf '%s' "${R[@]}" >"$rec/all" && (cd -- "$rec" && split -l "$lines" -a 3 -- all r.) &&
      tar_unpack /dev/null "$TARGET" -- "${A[@]}" "$TAR_DIR/end.$T_PAD"; } || rc=$?
    if [ "$rc" -ne 0 ]; then
      # (A file tar was writing may be cut short: none of the chunk's stays.)
      rm -f -- "${F[@]}" || exit 1
      cp -- "$chunk" "$chunk.rej" || exit 1
      n=0
      target_full "$TARGET" || true
    fi
  fi
  printf '%s\n' "$n" >"$chunk.n"
}

# fast_full CHUNK: once the target's file system is full (note_full), CHUNK is left to the
# workers (which write none of it: worker_decrypt) and placed none.
fast_full() {
  if [ ! -e "$KIT_FULL" ]; then return 1; fi
  cp -- "$1" "$1.rej" || exit 1
  printf '0\n' >"$1.n"
}

# fast_shape FIELD...: (fast_chunk, a line's words; h, p, w and line its own) whether the line
# has the common shape the fast lane takes: 32 hex digits, f, a mode, uid and gid (- or digits),
# the size (digits: fast_lines), a mtime not before 1970, a pack; a path of fewer than
# MAX_COMPONENTS bytes with no empty, '.' or '..' component, no escape, no control character,
# not the kit's own.
fast_shape() {
  if [ "$#" -lt 9 ] || [ "${line:0:${#h}}" != "$h" ]; then return 1; fi
  case "$1$w" in *[!0123456789abcdef]*) return 1 ;; esac
  case "$2:$3:${#1}:${#w}" in f:[0-7][0-7][0-7]:32:32 | f:[0-7][0-7][0-7][0-7]:32:32) ;; *) return 1 ;; esac
  case ":$4:$5:" in *:-[!:]* | *[!:]-* | *::* | *[!0123456789:-]*) return 1 ;; esac
  case "$7" in '' | *[!0123456789.]* | *.*.* | *. | .*) return 1 ;; esac
  case "/$p/" in *//* | */./* | */../* | *\\* | *[[:cntrl:]]* | /.s3backup-*) return 1 ;; esac
  [ "${#p}" -lt "$MAX_COMPONENTS" ]
}

# fast_trust LIST: FAST_TRUSTED=1 when every line of LIST has the common shape (fast_shape's),
# as a few cut, sort and tr over the whole list find (a field's distinct values, or its
# shapes: digits made 0, are few); fast_chunk then checks no line on its own.
FAST_TRUSTED=0
fast_trust() {
  local v j w t=$KIT_TMP/trust
  FAST_TRUSTED=0
  if [ ! -s "$1" ]; then return 0; fi
  # 32 hex digits, then " f ".
  if [ "$(cut -c 33-35 -- "$1" | LC_ALL=C sort -u)" != " f " ]; then return 0; fi
  if [ "$(cut -c 1-32 -- "$1" | LC_ALL=C tr -d '0-9a-f\n' | wc -c)" -ne 0 ]; then return 0; fi
  cut -d ' ' -f 3,4,5 -- "$1" | LC_ALL=C sort -u >"$t"
  while IFS=' ' read -r j v w; do
    case "$j" in [0-7][0-7][0-7] | [0-7][0-7][0-7][0-7]) ;; *) return 0 ;; esac
    case ":$v:$w:" in *:-[!:]* | *[!:]-* | *::* | *[!0123456789:-]*) return 0 ;; esac
  done <"$t"
  cut -d ' ' -f 7 -- "$1" | LC_ALL=C tr 0-9 0 | LC_ALL=C sort -u >"$t"
  while IFS= read -r v; do
    case "$v" in '' | *[!0.]* | *.*.* | *. | .*) return 0 ;; esac
  done <"$t"
  cut -d ' ' -f 8 -- "$1" | LC_ALL=C sort -u >"$t"
  while IFS= read -r v; do
    case "${v%.gz}" in *[!0123456789abcdef]*) return 0 ;; esac
    case "$v" in *.gz) j=35 ;; *) j=32 ;; esac
    if [ "${#v}" != "$j" ]; then return 0; fi
  done <"$t"
  # The paths (cut once): no control character nor backslash, none of MAX_COMPONENTS bytes or
  # more.
  cut -d ' ' -f 9- -- "$1" >"$t"
  # shellcheck disable=SC1003 # a backslash, in tr's set
  if [ "$(LC_ALL=C tr -dc '\000-\011\013-\037\177\\' <"$t" | wc -c)" -ne 0 ]; then return 0; fi
  if [ "$(cut -c "$MAX_COMPONENTS-" -- "$t" | LC_ALL=C tr -d '\n' | wc -c)" -ne 0 ]; then
    return 0
  fi
  j=$NL$(cat -- "$t")$NL
  case "$j" in
  *//* | */./* | */../* | *"$NL"/* | *"$NL"./* | *"$NL"../* | */"$NL"* | */."$NL"* | */.."$NL"* | \
    *"$NL.$NL"* | *"$NL..$NL"* | *"$NL$NL"* | *"$NL".s3backup-*) return 0 ;;
  esac
  FAST_TRUSTED=1
}

# owner_records UID GID VAR: (tar_add, fast_chunk: as root) the variable VAR, the pax records
# of UID and GID (- for the restoring user's), kept by value (OWNER_REC_<uid>_<gid>, x for -).
owner_records() {
  local u=$1 g=$2 p t k m
  if [ "$u" = - ]; then u=$KIT_UID; fi
  if [ "$g" = - ]; then g=$KIT_GID; fi
  p=" uid=$u$NL" t=" gid=$g$NL" k=$((6 + ${#u})) m=$((6 + ${#g}))
  printf -v "$3" '%s' "$((k < 9 ? k + 1 : k < 98 ? k + 2 : k + 3))$p$((m < 9 ? m + 1 : m < 98 ? m + 2 : m + 3))$t"
}

# fast_mode MODE: (fast_chunk) TAR_DIR/f.MODE, the header of a file of MODE, made once a
# worker; the variable named h, its name.
fast_mode() {
  tar_header "$TAR_DIR/f.$1" f 0 0 "$1" || exit 1
  printf -v "$h" '%s' "$TAR_DIR/f.$1"
}

# fast_pieces: (once a run, before the first fast lane or folder tar) the pieces of the fast
# lane's streams that are the same for every file, in FAST_PIECES: p.N, the N NUL bytes (1-511)
# that end a content on a block; x.K, the pax header of a record of K blocks (1 or 2: a path is
# shorter than MAX_COMPONENTS); c.T, the comment record of T bytes (12-523) that fills its
# blocks; FAST_NAMES, the names of split's pieces. Made by pieces_made, or taken from its early
# run (`early pieces_made`, tar_init's values: main, during an aws call).
FAST_PIECES="" FAST_NAMES=()
fast_pieces() {
  if [ -n "$FAST_PIECES" ]; then return 0; fi
  if ! answer pieces_made; then die "cannot create $KIT_TMP/pieces"; fi
  # The names split -a 3 gives its pieces, in order (fast_chunk's records).
  FAST_NAMES=({a..z}{a..z}{a..z})
  FAST_PIECES=$KIT_TMP/pieces
}

pieces_made() {
  local n=1 d=$KIT_TMP/pieces
  mkdir -p -- "$d" || return 1
  while [ "$n" -le 523 ]; do
    if [ "$n" -le 511 ]; then printf '%b' "${TAR_Z:0:4*n}" >"$d/p.$n" 2>/dev/null || return 1; fi
    if [ "$n" -ge 12 ]; then
      printf '%s comment=%s\n' "$n" "${TAR_X:0:n-${#n}-10}" >"$d/c.$n" 2>/dev/null || return 1
    fi
    n=$((n + 1))
  done
  tar_header "$d/x.1" PaxHeader x 512 0644
  tar_header "$d/x.2" PaxHeader x 1024 0644
  return 0 # (a piece not made fails its tar, which the callers tell)
}

# unpack_keys LIST SRC: the packs named in LIST (other keys: skipped) that are in SRC and not
# unpacked yet, each by unpack_ready, twice KIT_JOBS at a time (a pack's pipeline waits on its
# reads and writes too; waves of KIT_JOBS left a core idle while the last pack unpacked alone).
# Their pids in KIT_PIDS meanwhile.
unpack_keys() {
  local key n=0
  while IFS= read -r -u 3 key; do
    case "$key" in packs/*) ;; *) continue ;; esac
    if [ -e "$UNPACKED/${key#packs/}" ] || [ ! -f "$2/$key" ]; then continue; fi
    unpack_ready "$2/$key" "${key#packs/}" &
    KIT_PIDS="$KIT_PIDS $!"
    n=$((n + 1))
    if [ $((n % (2 * KIT_JOBS))) -eq 0 ]; then wait; fi
  done 3<"$1"
  wait
  KIT_PIDS=""
}

# unpack_ready PACKFILE PACK: (in the background: unpack_keys) the pack unpacked into
# UNPACKED/PACK and its members made ready there (ready_members), with temporary files of its
# own.
unpack_ready() {
  local KIT_TMP=$KIT_TMP/ready.$2
  trap 'exit 143' TERM # stopped (kit_cleanup): once its pipeline is done, nothing more
  mkdir -p -- "$KIT_TMP" || exit 1
  unpack_pack "$1" "$UNPACKED/$2" "$KIT_TMP/tar.err" || true
  if [ -d "$UNPACKED/$2" ]; then ready_members "$UNPACKED/$2" "$KIT_TMP/tar.err"; fi
  rm -rf -- "$KIT_TMP"
}

# prefetch_v3: (format 3, the whole backup, no --as-of, nothing archived) the packs of the
# first batch files_v3 makes (the first BATCH_V3 pack keys in its order), fetched and unpacked
# in the background while phase 1 reads the entries; flush_v3 waits for them and does what is
# left (a pack that failed here is fetched again there, its failure said there). A where field
# read from a line that is no file's names no pack the first batch needs, or one that is not
# there: a GET that fails, and nothing else.
PREFETCH_PID=""
prefetch_v3() {
  local t w n=0
  if [ "$META_VERSION" != 3 ] || [ "$ONLY_N" -ne 0 ] || [ -n "$AS_OF" ]; then return 0; fi
  if [ "$STORE_KIND" = s3 ]; then
    if [ ! -f "$KIT_TMP/arch" ]; then archived_list "$KIT_TMP/arch"; fi # (fast_init's)
    if [ -s "$KIT_TMP/arch" ]; then return 0; fi
  fi
  : >"$KIT_TMP/pre.keys"
  # The type and where fields of every line (the header's and the trailer's are no file's).
  cut -d ' ' -f 2,8 <"$META_PLAIN" | LC_ALL=C sort -u >"$KIT_TMP/pre.where"
  while IFS=' ' read -r t w; do
    case "$t:$w" in
    # An object of its own sorts before the packs (files_v3's first batch): none prefetched,
    # unless the fast lane's batches come first (files_fast).
    f:data | f:data.gz | f:- | h:data/* | h:data.gz/* | h:-/*) if [ "$FAST" != 1 ]; then return 0; fi ;;
    f:*) ;;
    *) continue ;;
    esac
    case "${w%.gz}" in
    *[!0123456789abcdef]*) ;;
    ????????????????????????????????)
      if [ "$n" -lt "$BATCH_V3" ]; then printf 'packs/%s\n' "${w%.gz}" >>"$KIT_TMP/pre.keys"; fi
      n=$((n + 1))
      ;;
    esac
  done <"$KIT_TMP/pre.where"
  LC_ALL=C sort -u -o "$KIT_TMP/pre.keys" "$KIT_TMP/pre.keys" # (<pack> and <pack>.gz: one)
  if [ ! -s "$KIT_TMP/pre.keys" ]; then return 0; fi
  prefetch_start "$KIT_TMP/pre.keys"
}

# prefetch_start LIST: the packs named in LIST (a file left as it is until prefetch_wait) fetched
# (S3) and unpacked in the background (prefetch_job), once the one before is done.
prefetch_start() {
  prefetch_wait
  if [ -e "$KIT_FULL" ]; then return 0; fi
  UNPACKED=$KIT_WORK/u
  mkdir -p -- "$KIT_WORK/obj/packs" "$UNPACKED" || return 0
  prefetch_job "$1" &
  PREFETCH_PID=$!
  KIT_EARLY="$KIT_EARLY $!"
}

# prefetch_wait: prefetch_v3's work done (before its packs are used, or the work folder goes).
prefetch_wait() {
  if [ -n "$PREFETCH_PID" ]; then wait "$PREFETCH_PID" 2>/dev/null || true; fi
  PREFETCH_PID=""
}

# prefetch_job LIST: prefetch_start's work, in the background (its temporary files of its own).
# Stopped (kit_cleanup), it stops its own jobs first: none may write once the work folder is gone.
prefetch_job() {
  local src=$STORE_DIR KIT_TMP=$KIT_TMP/pre
  trap 'kill $(jobs -p) 2>/dev/null; wait; exit 143' TERM
  mkdir -p -- "$KIT_TMP" || exit 0
  if [ "$STORE_KIND" = s3 ]; then
    src=$KIT_WORK/obj
    fetch_keys "$1" "$src"
  fi
  unpack_keys "$1" "$src"
}

# ready_members DIR TARERR: the members of an unpacked pack, gunzipped (a gzip per 200 of them)
# and MD5-checked (one run over the folder): a member whose MD5 is not its name is removed and
# marked .bad.<md5>; one that does not gunzip stays <md5>.gz. When tar (its complaints in
# TARERR) or gzip could not write, DIR/.full says so (content_src tells it from a bad pack).
ready_members() {
  local n=0 f sum name
  local -a batch
  if [ -e "$KIT_FULL" ]; then return 0; fi # (none is placed: worker_decrypt)
  batch=()
  : >"$KIT_TMP/gzip.err"
  for f in "$1"/*.gz; do
    if [ ! -f "$f" ]; then continue; fi
    batch[n]=$f
    n=$((n + 1))
    if [ "$n" -ge 200 ]; then
      gzip -d -- "${batch[@]}" 2>>"$KIT_TMP/gzip.err" || true
      batch=()
      n=0
    fi
  done
  if [ "$n" -gt 0 ]; then gzip -d -- "${batch[@]}" 2>>"$KIT_TMP/gzip.err" || true; fi
  case "$(cat -- "$2" "$KIT_TMP/gzip.err" 2>/dev/null)" in
  *"No space left"* | *"Wrote only"* | *"Disk quota"* | *"Cannot write"*)
    : >"$1/.full" 2>/dev/null || true
    note_full
    return 0
    ;;
  esac
  (cd -- "$1" && md5_many) >"$KIT_TMP/member.sums" 2>/dev/null || true
  # Every member's MD5 its name (the usual case) is told in bulk: the lines' first words and the
  # rest (blanks squeezed: a name with a blank is no MD5) as two files, the same bytes; else it
  # is told line by line.
  if ! sums_are_names "$KIT_TMP/member.sums"; then
    while IFS=' ' read -r sum name; do
      if [ "$sum" != "$name" ] && is_hex "$name" 32; then
        rm -f -- "${1:?}/$name"
        : >"$1/.bad.$name" 2>/dev/null || true
      fi
    done <"$KIT_TMP/member.sums"
  fi
  if [ "$FAST" = 1 ]; then member_keys "$1"; fi
}

# sums_are_names SUMS: whether each line of SUMS (md5_many's) has its MD5 and its name the same.
sums_are_names() {
  local a
  tr -s ' ' <"$1" >"$1.t" && cut -d ' ' -f 1 -- "$1.t" >"$1.a" && cut -s -d ' ' -f 2- -- "$1.t" >"$1.b" &&
    file_md5 "$1.a" && a=$MD5_OUT && file_md5 "$1.b" && [ "$a" = "$MD5_OUT" ]
}

# member_keys DIR: DIR/.keys, a line "<pack>/<size>/<md5>" for each checked member in DIR
# (UNPACKED/<pack>), its size as the file is: what the fast lane may place (fast_lines). One wc;
# its words are sizes and names in pairs (a name that is no MD5 makes keys no line has).
member_keys() {
  local n
  local -a w
  : >"$1/.keys"
  # Regular files only: a pack holding anything else (a symbolic link, a folder: tar makes what
  # it holds) gets no keys, and its lines go to the checked lane, which refuses those members.
  # (ls -F marks each entry that is no regular file, by a character no MD5 holds: one of the
  # six counted; and an executable file, which no pack holds, by *.)
  # shellcheck disable=SC2012 # only the marks are read
  n=$(LC_ALL=C ls -AF -- "$1" 2>/dev/null | LC_ALL=C tr -dc '/*@=%|' | wc -c) || return 0
  if [ "$n" -ne 0 ]; then return 0; fi
  set -f
  # shellcheck disable=SC2207 # split on purpose, not globbed
  w=($(cd -- "$1" && set +f && set -- * && if [ -f "$1" ]; then LC_ALL=C wc -c -- "$@"; fi)) 2>/dev/null || w=()
  set +f
  # shellcheck disable=SC2059 # the pack's name, hex digits, in the format
  if [ "${#w[@]}" -gt 0 ]; then
    { printf "${1##*/}/%s/%s\n" "${w[@]}" >"$1/.keys"; } 2>/dev/null || : >"$1/.keys"
  fi
}

# fetch_keys LIST OBJDIR: the objects named in LIST into OBJDIR (same names), as of AS_OF when
# given; failures other than "missing" into KIT_TMP/batch.err. More packs than KIT_JOBS: by one
# aws process (cp_many: an aws call costs ~0.5 s of CPU before its first request) when listing
# the store's packs takes fewer requests (a page of 1,000: STORE_PACKS) than that saves calls;
# then what is left (other objects, packs that failed, which tells why), a GET each, KIT_JOBS at
# once.
fetch_keys() {
  local key i=0 left=$KIT_TMP/fetch.keys
  local -a packs
  packs=()
  : >"$left"
  while IFS= read -r -u 3 key; do
    if [ -e "$UNPACKED/${key#packs/}" ] || [ -f "$2/$key" ]; then continue; fi # prefetch_v3's
    if [ -n "$GOT_DIR" ] && [ "${key:0:6}" = packs/ ] && [ -f "$GOT_DIR/$key" ]; then # (early_batch's)
      if mkdir -p -- "$2/packs" && mv -- "$GOT_DIR/$key" "$2/$key" 2>/dev/null; then continue; fi
      rm -f -- "$2/$key"
    fi
    printf '%s\n' "$key" >>"$left"
    if [ "${key:0:6}" = packs/ ] && is_hex "${key#packs/}" 32; then packs+=("${key#packs/}"); fi
  done 3<"$1"
  if [ "${#packs[@]}" -gt "$KIT_JOBS" ] && [ -z "$AS_OF" ] && is_uint "$STORE_PACKS" &&
    [ "$((STORE_PACKS / 1000))" -lt "${#packs[@]}" ]; then
    # (what it could not fetch is fetched below, a GET each, which tells why)
    if mkdir -p -- "$2/packs"; then cp_many packs/ "$2/packs" "${packs[@]}" || true; fi
  fi
  while IFS= read -r -u 3 key; do
    if [ -f "$2/$key" ]; then continue; fi
    i=$((i + 1))
    fetch_version "$i" "$key" "$2" &
    if [ $((i % KIT_JOBS)) -eq 0 ]; then wait; fi
  done 3<"$left"
  wait
  for key in "$KIT_TMP"/fv.*/err; do
    if [ -f "$key" ]; then cat -- "$key" >>"$KIT_TMP/batch.err"; fi
  done
  rm -rf -- "$KIT_TMP"/fv.*
}

# ---------------------------------------------------------------------------------------------
# Archived objects (GLACIER, DEEP_ARCHIVE): a readable copy must be asked for (restore-object)
# and waited for before a GET. Only the objects of the files to restore are asked for.
# ---------------------------------------------------------------------------------------------

ARCHIVED=0          # files left for a rerun: their objects' copies are not ready
EXIT_ARCHIVED=7
AWS_CP_EXTRA=()     # --force-glacier-transfer once archived objects are about

# archived_list OUT: the store's data objects in an archive class, sorted (from objects_ls, the
# store's listing: the keys of the archive classes by one join, not a bash loop over every key);
# STORE_PACKS, how many packs it lists (format 3).
STORE_PACKS="" # how many packs the listing holds (fetch_keys)
archived_list() {
  local k n a=$((${#STORE_PREFIX} + 1))
  objects_list
  if [ "$META_VERSION" = 3 ]; then
    printf 'packs/\n' >"$KIT_TMP/packs.word"
    STORE_PACKS=$(cut -f 1 -- "$KIT_TMP/ls.out" | cut -c "$a-$((a + 5))" | LC_ALL=C sort |
      LC_ALL=C join - "$KIT_TMP/packs.word" | wc -l) || STORE_PACKS=""
    STORE_PACKS=${STORE_PACKS//[!0-9]/}
  fi
  tr -d '\r' <"$KIT_TMP/ls.out" | LC_ALL=C sort -t "$TAB" -k3,3 >"$KIT_TMP/ls.by-class" ||
    die "cannot sort the listing of $(store_desc) in $KIT_TMP"
  printf 'DEEP_ARCHIVE\nGLACIER\n' | LC_ALL=C join -t "$TAB" -1 3 -2 1 -o 1.1 "$KIT_TMP/ls.by-class" - |
    while IFS= read -r k || [ -n "$k" ]; do
      n=${k#"$STORE_PREFIX"}
      case "$n" in
      packs/* | data/*) printf '%s\n' "$n" ;;
      *) if is_hex "$n" 32; then printf '%s\n' "$n"; fi ;;
      esac
    done | LC_ALL=C sort -u >"$1"
}

# thaw_state NAME: "ready" (readable, or no longer archived), "ongoing" or "none" (no copy).
thaw_state() {
  local out
  if ! out=$(aws_run s3api head-object --bucket "$STORE_BUCKET" --key "$STORE_PREFIX$1" \
    --query '[StorageClass,Restore]' --output text 2>&1); then
    echo none
    return 0
  fi
  case "$out" in
  *'ongoing-request="true"'*) echo ongoing ;;
  *'ongoing-request="false"'*) echo ready ;;
  GLACIER* | DEEP_ARCHIVE*) echo none ;;
  *) echo ready ;;
  esac
}

# thaw_request NAME: asks for a readable copy; "requested", "ongoing", or "error MESSAGE".
thaw_request() {
  local out
  if out=$(aws_run s3api restore-object --bucket "$STORE_BUCKET" --key "$STORE_PREFIX$1" \
    --restore-request "{\"Days\":$ARG_RESTORE_DAYS,\"GlacierJobParameters\":{\"Tier\":\"$ARG_RESTORE_TIER\"}}" 2>&1); then
    echo requested
  else
    case "$out" in
    *RestoreAlreadyInProgress*) echo ongoing ;;
    *) printf 'error %s\n' "${out%%$'\n'*}" ;;
    esac
  fi
}

# thaw_each FUNC LIST DIR: FUNC NAME >DIR/NAME for each name of LIST, KIT_JOBS at a time.
thaw_each() {
  local name n=0
  rm -rf -- "$3"
  mkdir -p -- "$3"
  while IFS= read -r -u 3 name; do
    "$1" "$name" >"$3/${name//\//_}" &
    n=$((n + 1))
    if [ $((n % KIT_JOBS)) -eq 0 ]; then wait; fi
  done 3<"$2"
  wait
}

# thaw_pick LIST DIR WORD OUT: the names of LIST whose DIR/NAME says WORD (first word), into OUT.
thaw_pick() {
  local name w
  : >"$4"
  while IFS= read -r -u 3 name; do
    w=$(cat -- "$2/${name//\//_}" 2>/dev/null) || w=""
    if [ "${w%% *}" = "$3" ]; then printf '%s\n' "$name" >>"$4"; fi
  done 3<"$1"
}

count_lines() {
  local n
  n=$(wc -l <"$1")
  printf '%s\n' "${n//[!0-9]/}"
}

# thaw_needed [FILES]: ask for the archived objects of FILES (default KIT_TMP/files: lines whose
# first field is the object's name); with --wait poll until they are readable, else take their
# files out of FILES (ARCHIVED counts them).
thaw_needed() {
  local name line step=2 d=$KIT_TMP/thaw files=${1:-$KIT_TMP/files}
  if [ "$STORE_KIND" != s3 ] || [ -n "$AS_OF" ]; then return 0; fi
  if [ ! -f "$KIT_TMP/arch" ]; then archived_list "$KIT_TMP/arch"; fi # (prefetch_v3's)
  if [ ! -s "$KIT_TMP/arch" ]; then return 0; fi
  AWS_CP_EXTRA=(--force-glacier-transfer --ignore-glacier-warnings)
  cut -d ' ' -f 1 "$files" | LC_ALL=C sort -u | LC_ALL=C comm -12 - "$KIT_TMP/arch" >"$KIT_TMP/arch.need"
  if [ ! -s "$KIT_TMP/arch.need" ]; then return 0; fi
  thaw_each thaw_state "$KIT_TMP/arch.need" "$d"
  thaw_pick "$KIT_TMP/arch.need" "$d" none "$KIT_TMP/arch.cold"
  thaw_pick "$KIT_TMP/arch.need" "$d" ongoing "$KIT_TMP/arch.ongoing"
  thaw_pick "$KIT_TMP/arch.need" "$d" ready "$KIT_TMP/arch.ready"
  warn "$(count_lines "$KIT_TMP/arch.need") objects needed are in an archive storage class: $(count_lines "$KIT_TMP/arch.ready") readable, $(count_lines "$KIT_TMP/arch.ongoing") being restored, $(count_lines "$KIT_TMP/arch.cold") to request now (tier $ARG_RESTORE_TIER, $ARG_RESTORE_DAYS days; AWS charges the retrieval per GB and per request, and the copies as standard storage)"
  thaw_each thaw_request "$KIT_TMP/arch.cold" "$d"
  while IFS= read -r -u 3 name; do
    line=$(cat -- "$d/${name//\//_}" 2>/dev/null) || line="error no answer"
    case "$line" in error*) warn "object $name: cannot request its restore: ${line#error }" ;; esac
  done 3<"$KIT_TMP/arch.cold"
  LC_ALL=C sort -m "$KIT_TMP/arch.cold" "$KIT_TMP/arch.ongoing" >"$KIT_TMP/arch.pending"
  while [ "$ARG_WAIT" = 1 ] && [ -s "$KIT_TMP/arch.pending" ]; do
    warn "waiting for $(count_lines "$KIT_TMP/arch.pending") archived objects (next look in ${step}s)"
    sleep "$step"
    if [ "$step" -lt 600 ]; then step=$((step * 2)); fi
    thaw_each thaw_state "$KIT_TMP/arch.pending" "$d"
    thaw_pick "$KIT_TMP/arch.pending" "$d" ongoing "$KIT_TMP/arch.still"
    thaw_pick "$KIT_TMP/arch.pending" "$d" none "$KIT_TMP/arch.cold"
    LC_ALL=C sort -m "$KIT_TMP/arch.still" "$KIT_TMP/arch.cold" >"$KIT_TMP/arch.pending"
  done
  drop_pending "$files" "$KIT_TMP/arch.pending"
}

# drop_pending FILES PENDING: the lines of FILES (sorted) whose object is in PENDING (sorted)
# are taken out and counted in ARCHIVED.
drop_pending() {
  local line md5 p=""
  if [ ! -s "$2" ]; then return 0; fi
  : >"$1.keep"
  exec 4<"$2"
  IFS= read -r -u 4 p || p=""
  while IFS= read -r -u 3 line; do
    md5=${line%% *}
    while [ -n "$p" ] && [[ "$p" < "$md5" ]]; do IFS= read -r -u 4 p || p=""; done
    if [ "$md5" = "$p" ]; then ARCHIVED=$((ARCHIVED + 1)); else printf '%s\n' "$line" >>"$1.keep"; fi
  done 3<"$1"
  exec 4<&-
  mv -f -- "$1.keep" "$1"
}

# read_entries: phase 1, the meta's entries (META_PLAIN): directories made, files, hard links
# and symbolic links sorted out into lists (KIT_TMP/files, hardlinks, links), refused entries
# failed. Without --only, a plain file line goes to the list unchecked (a pack member's inline,
# else fast_file): the worker that restores it checks it as phase 1 checks the others
# (parse_entry, worker_decrypt). Folders are made by one mkdir a batch (restore_dir).
read_entries() {
  local line n=0 skip=$META_HDR_LINES fast=0 src=$META_PLAIN entries=$META_ENTRIES
  : >"$KIT_TMP/dirs"
  : >"$KIT_TMP/links"
  : >"$KIT_TMP/hardlinks"
  : >"$KIT_TMP/orphans"
  if [ "$ONLY_N" -eq 0 ]; then fast=1; fi
  if [ "$FAST" = 1 ]; then
    read_bulk
    src=$KIT_TMP/slow skip=0 entries=$FAST_REST
  fi
  exec 3<"$src" 5>"$KIT_TMP/files"
  while [ "$skip" -gt 0 ] && IFS= read -r -u 3 line; do skip=$((skip - 1)); done
  while [ "$n" -lt "$entries" ] && IFS= read -r -u 3 line; do
    n=$((n + 1))
    case "$fast$line" in
    1????????????????????????????????' f '*)
      # The commonest line first, inline (a call costs as much as a check): a pack member's,
      # keyed by its pack. Split into words, not globbed (a well-formed line has single
      # spaces and no control character: FORMAT.md 5.2); a malformed line keyed by a wrong
      # word is refused by its worker all the same.
      set -f
      # shellcheck disable=SC2086 # split on purpose
      set -- $line
      set +f
      case "$META_VERSION:$1:${8%.gz}" in
      *[!0123456789abcdef:]* | *::*) ;;
      3:????????????????????????????????:????????????????????????????????)
        printf 'packs/%s %s\n' "${8%.gz}" "$line" >&5
        FILES_TOTAL=$((FILES_TOTAL + 1))
        continue
        ;;
      esac
      if fast_file "$line"; then
        FILES_TOTAL=$((FILES_TOTAL + 1))
        continue
      fi
      ;;
    esac
    if ! parse_entry "$line"; then fail "$E_EPATH" "$E_ERR"; continue; fi
    if ! selected; then continue; fi
    case "$E_TYPE" in
    d) restore_dir ;;
    f)
      # A hard link whose first path is restored too: linked after the files (restore_hardlink).
      if [ -n "$E_LINK" ] && link_first_selected; then
        printf '%s\n' "$line" >>"$KIT_TMP/hardlinks"
        FILES_TOTAL=$((FILES_TOTAL + 1)) # counted when linked: N_FILES
        continue
      fi
      # One whose first path is not: a file, or a link of another such one (stand_ins).
      if [ -n "$E_LINK" ]; then
        printf '%s\t%s\n' "$E_ELINK" "$line" >>"$KIT_TMP/orphans"
        FILES_TOTAL=$((FILES_TOTAL + 1))
        continue
      fi
      # Format 3: each line keyed by the object holding its content (files_v3 sorts by it).
      if [ "$META_VERSION" = 3 ]; then
        content_key "$E_MD5" "$E_ETARGET"
        printf '%s %s\n' "$C_KEY" "$line" >&5
      else printf '%s\n' "$line" >&5; fi
      FILES_TOTAL=$((FILES_TOTAL + 1))
      ;;
    l) printf '%s\n' "$line" >>"$KIT_TMP/links" ;;
    esac
  done
  stand_ins
  exec 3<&- 5>&-
  dirs_made
}

# stand_ins: (read_entries, fd 5 the files list) the hard links whose first path this run does
# not restore (--only), "<first, escaped> <TAB> <line>" in KIT_TMP/orphans: for each first path,
# the first of its links (in the meta's order: a stable sort) goes onto the files list, and the
# others onto the hard links', their target field naming that one (FORMAT.md 5.3).
stand_ins() {
  local key line prev="" sub="" rest pre i
  if [ ! -s "$KIT_TMP/orphans" ]; then return 0; fi
  LC_ALL=C sort -s -t "$TAB" -k 1,1 -o "$KIT_TMP/orphans" -- "$KIT_TMP/orphans" ||
    die "cannot sort $KIT_TMP/orphans"
  while IFS= read -r line; do
    key=${line%%"$TAB"*} line=${line#*"$TAB"}
    split_entry "$line" || continue # (parse_entry took it)
    if [ "$key" != "$prev" ]; then
      prev=$key sub=${E_EPATH// /\\x20} # (the path in field mode: FORMAT.md 5.2)
      if [ "$META_VERSION" = 3 ]; then
        content_key "$E_MD5" "$E_ETARGET"
        printf '%s %s\n' "$C_KEY" "$line" >&5
      else printf '%s\n' "$line" >&5; fi
      continue
    fi
    # Seven fields without a space, then the target field <where>/<first>, then the path.
    rest=$line pre="" i=0
    while [ "$i" -lt 7 ]; do
      pre="$pre${rest%% *} " rest=${rest#* } i=$((i + 1))
    done
    printf '%s%s/%s %s\n' "$pre" "$E_ETARGET" "$sub" "${rest#* }" >>"$KIT_TMP/hardlinks"
  done <"$KIT_TMP/orphans"
}

# fast_file LINE: LINE, if it is a plain file's (an MD5, type f and, format 3, a where field),
# onto the files list (fd 5), keyed as read_entries keys it; else returns 1. Only the fields that
# name the object to fetch are checked here (a where field can name no other object); the
# rest is checked by the worker.
fast_file() {
  local w=${1#* * * * * * * } # the 8th field
  case "${1:0:32}" in *[!0123456789abcdef]*) return 1 ;; esac
  if [ "$META_VERSION" != 3 ]; then
    printf '%s\n' "$1" >&5
    return 0
  fi
  w=${w%% *}
  if ! is_where "$w"; then return 1; fi
  content_key "${1:0:32}" "$w"
  printf '%s %s\n' "$C_KEY" "$1" >&5
}

# early_batch: (KEY_FIRST: S3, no --as-of; the repository's key came first) the descriptor and
# the picked meta fetched before the meta is opened. In a small store (no --only, its listing one
# page, nothing in it archived, its packs at most BATCH_V3 and EARLY_BYTES in all) they come with
# every pack by one aws call (cp_many) into GOT_DIR (EARLY_PACKS=1): an aws call costs ~0.5 s of
# CPU before its first request, and the backup restored from a small store most likely needs most
# of its packs (the most it fetches for nothing: EARLY_BYTES, in KIT_TMP); the meta is decrypted
# as soon as it is there (meta_ahead). Elsewhere by a GET each, side by side (got_conf,
# got_meta). store_get and fetch_keys take what it got; what it did not get is fetched as
# before, which says why. S3BACKUP_KIT_EARLY_BYTES=0 turns the one call off.
EARLY_BYTES=${S3BACKUP_KIT_EARLY_BYTES:-67108864}
EARLY_PACKS=0
early_batch() {
  objects_list
  if [ "$ONLY_N" -eq 0 ] && small_store; then
    early got_all
    if is_uint "$SMALL_META_SIZE"; then early meta_ahead; fi
    EARLY_PACKS=1
    return 0
  fi
  early got_conf
  early got_meta
}

# small_store: whether the store's listing (one page) names no archived object and at least one
# and at most BATCH_V3 packs, of EARLY_BYTES at most in all: their keys in SMALL_PACKS; the sizes
# the listing gives the meta (META) and the descriptor in SMALL_META_SIZE, SMALL_CONF_SIZE.
SMALL_PACKS=()
SMALL_META_SIZE="" SMALL_CONF_SIZE=""
small_store() {
  local n sz c lines=0 total=0
  SMALL_PACKS=()
  if ! is_uint "$EARLY_BYTES" || [ "${#EARLY_BYTES}" -gt 12 ]; then return 1; fi
  while IFS="$TAB" read -r n sz c || [ -n "$n" ]; do
    lines=$((lines + 1)) n=${n#"$STORE_PREFIX"}
    if [ "$lines" -gt 1000 ]; then return 1; fi
    case "${c%$'\r'}" in GLACIER | DEEP_ARCHIVE) return 1 ;; esac
    if [ "$n" = "$META" ]; then SMALL_META_SIZE=$sz; fi
    if [ "$n" = s3backup.conf ]; then SMALL_CONF_SIZE=$sz; fi
    case "$n" in packs/*) ;; *) continue ;; esac
    if ! is_hex "${n#packs/}" 32 || ! is_uint "$sz" || [ "${#sz}" -gt 12 ]; then return 1; fi
    total=$((total + 10#$sz))
    SMALL_PACKS+=("$n")
    if [ "${#SMALL_PACKS[@]}" -gt "$BATCH_V3" ] || [ "$total" -gt "$((10#$EARLY_BYTES))" ]; then
      return 1
    fi
  done <"$KIT_TMP/ls.out"
  [ "${#SMALL_PACKS[@]}" -gt 0 ]
}

# got_all: (early_batch, in the background) the descriptor, the meta and every pack by one call.
got_all() {
  cp_many "" "$GOT_DIR" s3backup.conf "$META" "${SMALL_PACKS[@]}" || true
}

# meta_ahead: (early_batch, in the background beside got_all) the meta decrypted as soon as it
# and the descriptor are in GOT_DIR at the sizes the listing gave (the aws CLI writes each under
# another name first and renames it whole): its key derivation, ~0.45 s of one core, then runs
# while the rest is fetched. Into KIT_TMP/ahead: the ciphertext as it was copied ("enc"), the
# iteration count used ("iter", the descriptor's key-iter), the plaintext. meta_check takes that
# plaintext only for this very ciphertext at that count (ahead_plain); else it decrypts.
meta_ahead() {
  local d=$KIT_TMP/ahead
  mkdir -- "$d" || return 1
  until has_size "$GOT_DIR/$META" "$SMALL_META_SIZE" &&
    { [ -z "$SMALL_CONF_SIZE" ] || has_size "$GOT_DIR/s3backup.conf" "$SMALL_CONF_SIZE"; }; do
    if [ -f "$KIT_TMP/got_all.rc" ]; then return 1; fi # (fetched, or not: meta_open decrypts)
    sleep 0.02 2>/dev/null || sleep 1
  done
  # (load_repo_conf's reading: a descriptor it refuses ends the job, silently; the main shell
  # refuses it with its message)
  if [ -n "$SMALL_CONF_SIZE" ]; then
    KEY_ITER=$(conf_each "$GOT_DIR/s3backup.conf" repo_conf_key 2>/dev/null && printf '%s' "$KEY_ITER") ||
      return 1
  fi
  cp -- "$GOT_DIR/$META" "$d/enc" && printf '%s\n' "$KEY_ITER" >"$d/iter" &&
    decrypt_pw "$d/enc" "$d/plain" "$KEY_ITER" 2>/dev/null
}

# has_size FILE N: FILE is there and holds N bytes.
has_size() {
  [ -f "$1" ] && file_size "$1" 2>/dev/null && [ "$FILE_SIZE" = "$2" ]
}

# got_conf, got_meta: (early_batch, in the background) the descriptor, the meta, by a GET each into
# GOT_DIR; got_conf says in got_conf.missing that there is none (load_repo_conf: CONF_FIRST).
got_conf() {
  if ! store_get s3backup.conf "$GOT_DIR/s3backup.conf" && [ "$STORE_ERR" = missing ]; then
    : >"$KIT_TMP/got_conf.missing"
  fi
}
got_meta() {
  store_get "$META" "$GOT_DIR/$META" || true
}

# early_conf: (KEY_FIRST) the descriptor early_batch fetched, read (load_repo_conf).
early_conf() {
  if [ -n "${KIT_EARLY_got_all:-}" ]; then answer got_all || true; fi
  if [ -n "${KIT_EARLY_got_conf:-}" ]; then answer got_conf || true; fi
  if [ -f "$KIT_TMP/got_conf.missing" ]; then CONF_FIRST=missing; fi
  load_repo_conf
  if [ -n "${KIT_EARLY_got_meta:-}" ]; then answer got_meta || true; fi
}

# early_target TARGET: (EARLY_PACKS) once the password has opened the repository's key (key_early),
# the target opened (target_open) and the packs early_batch fetched unpacked in the background
# (prefetch_start) while the meta's key is derived. Before the meta is checked nothing is written
# in the target but its lock and the work folder, and a target this run made is removed again
# when the meta does not open (KIT_MADE).
EARLY_TARGET=0 EARLY_KEY=""
early_target() {
  local f
  if [ "$EARLY_PACKS" != 1 ] || ! key_opened; then return 0; fi
  EARLY_KEY=$DATA_KEY
  target_open "$1"
  EARLY_TARGET=1
  if [ "$TARGET_EMPTY" = 1 ] && [ "${S3BACKUP_KIT_FAST:-1}" != 0 ]; then FAST=1; fi # (member_keys)
  : >"$KIT_TMP/early.keys"
  for f in "$GOT_DIR"/packs/*; do
    if [ -f "$f" ]; then printf 'packs/%s\n' "${f##*/}" >>"$KIT_TMP/early.keys"; fi
  done
  if [ -s "$KIT_TMP/early.keys" ]; then prefetch_start "$KIT_TMP/early.keys"; fi
}

# target_open DIR: TARGET, DIR made when missing (KIT_MADE) and refused when it is a kernel file
# system; TARGET_EMPTY; the target locked, the work folder made in it (KIT_WORK); KIT_JOBS.
TARGET_EMPTY=0
target_open() {
  local f made=0
  refuse_kernel_target "$1"
  if [ ! -d "$1" ]; then
    mkdir -p -- "$1" || die "cannot create $1"
    made=1
  fi
  TARGET=$(cd -- "$1" && pwd -P) || die "cannot enter $1"
  if [ "$made" = 1 ]; then KIT_MADE=$TARGET; fi
  TARGET_EMPTY=1
  for f in "$TARGET"/* "$TARGET"/.[!.]* "$TARGET"/..?*; do
    if [ -e "$f" ] || [ -L "$f" ]; then TARGET_EMPTY=0; fi
  done
  lock_target
  KIT_WORK=$(mktemp -d "$TARGET/.s3backup-work.XXXXXX") || die "cannot create a work directory in $TARGET"
  WORK_NAME=${KIT_WORK##*/}
  kit_jobs
}

# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------

# meta_pairs FILE: "<meta> <backup name>" lines, oldest first (for resolve_meta).
meta_pairs() {
  local n m
  store_list_metas "$KIT_TMP/metas"
  while IFS=' ' read -r _ n m _; do printf '%s %s\n' "$m" "$n"; done <"$KIT_TMP/metas" >"$1"
}

main() {
  local endpoint="" region="" pwfile="" store spec target line KIT_RM=""
  parse_kit_args 3 "only thaw" "$@"
  store=$ARG_STORE spec=$ARG_SPEC target=$ARG_TARGET
  endpoint=$ARG_ENDPOINT region=$ARG_REGION pwfile=$ARG_PWFILE

  need cat chmod chown comm cp cut date df id join ln mkdir mktemp mv rm rmdir sleep sort split tail touch tr uname uniq wc
  check_openssl
  kit_init
  pick_md5
  # The store's listing, made beside the first request (S3): the metas, to pick the backup, and
  # the archived objects, for phase 2. That request fetches the repository's key (S3, no
  # --as-of: KEY_FIRST), whose key derivation then runs while the next call fetches the
  # descriptor, the meta and, from a small store, the packs (early_batch); once the key opens,
  # the packs are unpacked while the meta's key is derived (early_target).
  LS_FROM="" LS_EARLY=1
  if [ -z "$AS_OF" ]; then KEY_FIRST=1; fi
  store_init "$store" "$endpoint" "$region"
  if [ "$STORE_KIND" != s3 ]; then KEY_FIRST=0; fi
  get_password "$pwfile" 1
  if [ "$KEY_FIRST" = 1 ]; then early key_early; else load_repo_conf; fi
  resolve_meta "$spec" is_meta_name meta_pairs backup " (list them with list.sh)"
  if [ "$KEY_FIRST" = 1 ]; then
    tar_init
    early pieces_made # (format 3's, made while aws runs: fast_pieces)
    early_batch
    early_conf
    early_target "$target"
  elif [ -z "$AS_OF" ]; then
    early key_early # (the key fetched and unwrapped while the meta is)
  fi

  # Everything is checked before an entry is written: password, meta, data key (the target is
  # touched before the meta is checked only by early_target, once the password opened the key).
  # The meta, or its copy left by an interrupted password change (passwd/next/, passwd/prev/).
  if ! meta_open "$META"; then
    if [ "$META_MISSING" = 1 ]; then die "no backup $META in $(store_desc)"; fi
    die "$META_ERR" "$META_ERR_CODE"
  fi
  if [ "$META_FROM" != "$META" ]; then
    warn "$META does not open with this password: reading its copy $META_FROM (a password change was interrupted: run 's3backup passwd' to finish it)"
  fi
  if [ -n "$META_WRAPPED" ] && key_same "$META_WRAPPED"; then
    key_discard # (the repository's key, opened meanwhile, is the meta's copy byte for byte)
  elif [ -n "$META_WRAPPED" ]; then
    # The copy that opened carries its own wrapped key, wrapped with the same password.
    printf '%s' "$META_WRAPPED" | openssl base64 -d -A >"$KIT_TMP/key.enc" 2>/dev/null ||
      die "$META_FROM: bad wrapped-key header (not base64)"
    key_discard
    if ! unwrap_key "$KIT_TMP/key.enc"; then
      die "the data key in $META_FROM does not open with this password (corrupt meta?)" "$EXIT_PASSWORD"
    fi
    rm -f -- "$KIT_TMP/key.enc"
  elif ! key_answer; then
    if [ "$KEY_SEEN" -eq 0 ]; then
      die "$META_FROM has no wrapped-key header and s3backup.key cannot be read ($KEY_ERR)"
    fi
    die "$META_FROM has no wrapped-key header and the password opens neither s3backup.key nor s3backup.key.next / .prev" "$EXIT_PASSWORD"
  fi
  if [ "$META_VERSION" = 3 ]; then
    need gzip tar
    if [ -z "$TAR_Z" ]; then tar_init; fi
  fi
  warn "restoring $META (host ${META_HOST:-?}, source ${META_SOURCE:-?}, $META_ENTRIES entries) into $target"

  # Now the target (early_target may have opened it).
  if [ "$EARLY_TARGET" != 1 ]; then
    target_open "$target"
  elif [ "$DATA_KEY" != "$EARLY_KEY" ]; then
    prefetch_wait # (its packs unpacked with another key: unpacked again when a batch needs them)
    rm -rf -- "${UNPACKED:?}"/*
  fi
  KIT_MADE="" # (the meta opened: from here the target stays, whatever happens)
  fast_init
  probe_touch
  probe_sparse
  if [ "$SPARSE" != 1 ]; then warn "this dd cannot write holes (conv=sparse): sparse files are restored written out"; fi
  mirror_begin

  # Phase 1: read the entries, create the directories, sort out files and links (format 3: the
  # first packs fetched and unpacked meanwhile, or every pack: early_target).
  if [ "$EARLY_TARGET" != 1 ]; then prefetch_v3; fi
  read_entries
  rm -f -- "$META_PLAIN"
  only_misses "$META"

  # Phase 2: files. Phase 3: symbolic links. Phase 4: directories, deepest first.
  OK_PARENT=""
  if [ "$META_VERSION" = 3 ]; then
    files_fast
    mirror_end
    FAST=0 # (the packs files_v3 unpacks need no member keys: member_keys)
    files_v3
  elif [ "$STORE_KIND" = s3 ]; then
    LC_ALL=C sort -o "$KIT_TMP/files" "$KIT_TMP/files"
    thaw_needed
    files_from_s3
  else files_from_dir; fi
  while IFS= read -r -u 3 line; do restore_hardlink "$line"; done 3<"$KIT_TMP/hardlinks"
  while IFS= read -r -u 3 line; do restore_link "$line"; done 3<"$KIT_TMP/links"
  prefetch_wait
  # The work folder goes while phase 4 runs (its removal is a process of its own, phase 4 mostly
  # bash); the target's own mtime is set after (finish_root).
  if [ -n "$KIT_WORK" ]; then
    rm -rf -- "$KIT_WORK" &
    KIT_RM=$!
    KIT_EARLY="$KIT_EARLY $KIT_RM"
  fi
  finish_dirs
  if [ -n "$KIT_WORK" ]; then
    wait "$KIT_RM" || true
    if [ -e "$KIT_WORK" ]; then rm -rf -- "$KIT_WORK"; fi
    KIT_WORK=""
  fi
  finish_root

  warn "restored $N_FILES files, $N_DIRS dirs, $N_LINKS links, $FAILED failed$(full_note)"
  if [ "$ARCHIVED" -gt 0 ]; then
    warn "$ARCHIVED files not restored yet: their objects are being restored from the archive; run the same command again later, or use --wait"
    exit "$EXIT_ARCHIVED"
  fi
  if [ "$FAILED" -gt 0 ]; then exit "$EXIT_PARTIAL"; fi
  exit 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
