#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# restore-legacy.sh - restore a backup written by the original s3backup.py (repository
# format 1, FORMAT.md section 7) with bash, coreutils, openssl and the aws CLI only.
#
# usage: restore-legacy.sh [--only PATH]... [--overwrite] [--endpoint-url URL]
#                          [--password-file FILE] [--region R]
#                          <s3://bucket[/prefix] | DIR> <meta-name | latest | backup-name> <target-dir>
#
# Format 1, as s3backup.py wrote it:
#   - no s3backup.conf, no s3backup.key;
#   - every object is "openssl enc -aes-256-cbc -md md5" with the password (no -pbkdf2);
#   - data objects are named by the MD5 of their content;
#   - metas are meta_[<name>_]<YYYY-MM-DD>_<milliseconds>, one "<md5> <path>" line per file,
#     the path unescaped (a line that does not start with "<md5> " continues the previous
#     path: a file name holding a newline).
# Files are restored with mode 0644, the directories they need are created with mode 0755,
# times are the time of the restore. Leading "/", "./" and "../" are removed from paths (as
# tar does); any other ".." or empty component is refused; nothing is written through a
# symbolic link. A file already there with the same MD5 is kept; one with other content is
# left alone and reported (exit 3) unless --overwrite.

set -euo pipefail

KIT_PROG=restore-legacy.sh
KIT_DIR=${BASH_SOURCE[0]%/*}
if [ "$KIT_DIR" = "${BASH_SOURCE[0]}" ]; then KIT_DIR=.; fi
# shellcheck source=common.sh
. "$KIT_DIR/common.sh"

BS=$'\\' # one backslash

usage() {
  cat <<'EOF'
usage: restore-legacy.sh [--only PATH]... [--overwrite] [--endpoint-url URL]
                         [--password-file FILE] [--region R]
                         <s3://bucket[/prefix] | DIR> <meta-name | latest | backup-name> <target-dir>

Restores one backup written by the original s3backup.py (meta_[name_]YYYY-MM-DD_millis) into
target-dir (created if needed). "latest" is the newest backup; a backup name the newest of
that name. --only PATH (repeatable) restores only PATH and what is under it. --overwrite
replaces files that differ (otherwise they are left alone and reported). The password comes
from --password-file FILE (first line), else $S3BACKUP_PASSWORD, else a prompt.

Exit codes: 0 ok, 1 error, 2 usage, 3 partial (some files failed), 4 wrong password.
EOF
}

TARGET=""
OVERWRITE=0
N_FILES=0
N_SAME=0
NOTED=0

# decrypt_legacy IN OUT: openssl enc -d with the password and the old MD5 key derivation.
decrypt_legacy() {
  KIT_PW_ENV="$KIT_PASSWORD" openssl enc -d -aes-256-cbc -md md5 -pass env:KIT_PW_ENV \
    -in "$1" -out "$2" 2>"$KIT_TMP/openssl.err" </dev/null
}

# is_legacy_meta NAME: meta_[<name>_]<YYYY-MM-DD>_<digits>
is_legacy_meta() {
  local rest ms date
  case "$1" in meta_*_*) ;; *) return 1 ;; esac
  ms=${1##*_}
  rest=${1%_*}
  date=${rest##*_}
  if ! is_uint "$ms"; then return 1; fi
  case "$date" in
  [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]) ;;
  *) return 1 ;;
  esac
  return 0
}

# legacy_name META: set LNAME to the backup name part ("" when there is none).
legacy_name() {
  local rest=${1%_*}
  rest=${rest%_*}
  if [ "$rest" = meta ]; then LNAME=""; else LNAME=${rest#meta_}; fi
}

# legacy_pairs FILE: "<meta> <backup name>" lines of the format 1 metas, oldest first.
legacy_pairs() {
  local n raw="$KIT_TMP/metas" f d rest ms
  : >"$raw"
  if [ "$STORE_KIND" = dir ]; then
    for f in "$STORE_DIR"/meta_*; do
      if [ ! -f "$f" ] || [ -L "$f" ]; then continue; fi
      n=${f##*/}
      if is_legacy_meta "$n"; then printf '%s %s\n' "${n##*_}" "$n" >>"$raw"; fi
    done
  else
    if ! aws_run s3 ls "s3://$STORE_BUCKET/${STORE_PREFIX}meta_" >"$KIT_TMP/ls.out" 2>"$KIT_TMP/ls.err"; then
      if [ -s "$KIT_TMP/ls.err" ]; then die "cannot list $(store_desc): $(first_line "$KIT_TMP/ls.err")"; fi
    fi
    while IFS=' ' read -r d _ _ n rest || [ -n "$d" ]; do
      if [ "$d" = PRE ] || [ -z "$n" ] || [ -n "$rest" ]; then d=""; continue; fi
      if is_legacy_meta "$n"; then printf '%s %s\n' "${n##*_}" "$n" >>"$raw"; fi
      d=""
    done <"$KIT_TMP/ls.out"
  fi
  LC_ALL=C sort -n -o "$raw" "$raw"
  while IFS=' ' read -r ms n; do
    legacy_name "$n"
    printf '%s %s\n' "$n" "$LNAME"
  done <"$raw" >"$1"
}

# escape PATH: set ESC to PATH with "\" doubled and newlines as "\n" (printf %b undoes it).
escape() {
  ESC=${1//"$BS"/"$BS$BS"}
  ESC=${ESC//"$NL"/"${BS}n"}
}

# relativize PATH: set REL to PATH without leading "/", "./" and "../" (as tar does).
relativize() {
  local before
  REL=$1
  while :; do
    before=$REL
    while [ "${REL#/}" != "$REL" ]; do REL=${REL#/}; done
    case "$REL" in ./* | ../*) REL=${REL#*/} ;; esac
    if [ "$REL" = "$before" ]; then break; fi
  done
}

# safe_path REL: no empty, "." or ".." component.
safe_path() {
  local rest=$1 c
  if [ -z "$rest" ]; then return 1; fi
  while :; do
    c=${rest%%/*}
    case "$c" in '' | . | ..) return 1 ;; esac
    if [ "$rest" = "$c" ]; then return 0; fi
    rest=${rest#*/}
  done
}

# selected REL: is REL selected by --only?
selected() {
  local i=0 o
  if [ "$ONLY_N" -eq 0 ]; then return 0; fi
  while [ "$i" -lt "$ONLY_N" ]; do
    o=${ONLY[i]}
    if [ "$1" = "$o" ]; then ONLY_HIT[i]=1; return 0; fi
    case "$1" in "$o"/*) ONLY_HIT[i]=1; return 0 ;; esac
    i=$((i + 1))
  done
  return 1
}

# The previous entry's content (entries come sorted by MD5): where it was restored, or why it
# could not be.
PREV_MD5=""
PREV_DEST=""
PREV_ERR=""

# restore_one MD5 ESCAPED_PATH: one file, through a temporary name next to it, MD5 checked.
restore_one() {
  local md5=$1 ep=$2 path dest got=0
  printf -v path '%b' "$ep"
  relativize "$path"
  if [ "$REL" != "$path" ] && [ "$NOTED" = 0 ]; then
    NOTED=1
    warn "some paths are absolute or start with '..': restored under the target without their leading '/', './' and '../'"
  fi
  escape "$REL"
  ep=$ESC
  if ! safe_path "$REL"; then fail "$ep" "path with an empty, '.' or '..' component: refused"; return 0; fi
  if ! selected "$REL"; then return 0; fi
  OK_PARENT="" # every file checks its parents afresh
  if ! ensure_parents "$REL" create 0755; then fail "$ep" "$P_ERR"; return 0; fi
  dest="$TARGET/$REL"
  if [ -f "$dest" ] && [ ! -L "$dest" ]; then
    if file_md5 "$dest" && [ "$MD5_OUT" = "$md5" ]; then
      N_SAME=$((N_SAME + 1))
      PREV_MD5=$md5 PREV_DEST=$dest PREV_ERR=""
      return 0
    fi
  fi
  if [ -e "$dest" ] || [ -L "$dest" ]; then
    if [ "$OVERWRITE" != 1 ]; then
      if [ -L "$dest" ]; then
        fail "$ep" "exists and is a symbolic link: not replaced (use --overwrite)"
      elif [ -d "$dest" ]; then
        fail "$ep" "exists and is a directory: not replaced (use --overwrite)"
      else
        fail "$ep" "exists with other content: not replaced (use --overwrite)"
      fi
      return 0
    fi
  fi
  if [ "$md5" = "$PREV_MD5" ] && [ -n "$PREV_ERR" ]; then fail "$ep" "$PREV_ERR"; return 0; fi
  if ! temp_beside "$REL"; then fail "$ep" "$P_ERR"; return 0; fi
  # The same content as the previous file: copy it (and check it again).
  if [ "$md5" = "$PREV_MD5" ] && [ -n "$PREV_DEST" ] && cp -- "$PREV_DEST" "$TMP_FILE" 2>/dev/null &&
    file_md5 "$TMP_FILE" && [ "$MD5_OUT" = "$md5" ]; then
    got=1
  fi
  if [ "$got" = 0 ]; then
    PREV_MD5=$md5 PREV_DEST="" PREV_ERR=""
    if ! store_get "$md5" "$KIT_TMP/obj"; then
      drop_temp
      stop_if_down # (no file named for a store that stopped answering)
      if [ "$STORE_ERR" = missing ]; then PREV_ERR="missing object $md5"; else PREV_ERR="object $md5: $STORE_ERR"; fi
    elif ! decrypt_into_temp decrypt_legacy "$KIT_TMP/obj" "$md5"; then
      PREV_ERR=$P_ERR
    fi
    rm -f -- "$KIT_TMP/obj"
    if [ -n "$PREV_ERR" ]; then
      fail "$ep" "$PREV_ERR"
      return 0
    fi
  fi
  chmod 0644 -- "$TMP_FILE" || warn "$ep: cannot set the mode"
  if ! commit_temp "$dest"; then
    fail "$ep" "$P_ERR"
    return 0
  fi
  PREV_DEST=$dest
  N_FILES=$((N_FILES + 1))
}

main() {
  local endpoint="" region="" pwfile="" store spec target line first=1 md5 ep n
  parse_kit_args 3 "only overwrite" "$@"
  store=$ARG_STORE spec=$ARG_SPEC target=$ARG_TARGET
  endpoint=$ARG_ENDPOINT region=$ARG_REGION pwfile=$ARG_PWFILE
  OVERWRITE=$ARG_OVERWRITE

  need cat chmod cp cut df mkdir mktemp mv rm rmdir sort tail uname wc
  need openssl
  kit_init
  pick_md5
  store_init "$store" "$endpoint" "$region"
  get_password "$pwfile" 1
  resolve_meta "$spec" is_legacy_meta legacy_pairs "s3backup.py backup"

  # The password is checked (the meta decrypts to "<md5> <path>" lines) before the target.
  if ! store_get "$META" "$KIT_TMP/meta.enc"; then
    if [ "$STORE_ERR" = missing ]; then die "no backup $META in $(store_desc)"; fi
    die "$META: $STORE_ERR"
  fi
  if ! decrypt_legacy "$KIT_TMP/meta.enc" "$KIT_TMP/meta.plain"; then
    die "$META: wrong password (the meta does not decrypt)" "$EXIT_PASSWORD"
  fi
  rm -f -- "$KIT_TMP/meta.enc"
  if ! lines_bounded "$KIT_TMP/meta.plain"; then
    die "$META: a line is longer than $MAX_LINE bytes: refused"
  fi
  line=""
  IFS= read -r line <"$KIT_TMP/meta.plain" || true
  if [ -s "$KIT_TMP/meta.plain" ] && ! is_hex "${line%% *}" 32; then
    die "$META: wrong password (or not an s3backup.py meta)" "$EXIT_PASSWORD"
  fi

  # Entries, one per line "<md5> <escaped path>", continuation lines joined, sorted by MD5.
  : >"$KIT_TMP/entries"
  md5="" ep=""
  while IFS= read -r line || [ -n "$line" ]; do
    n=${line%% *}
    if [ "$n" != "$line" ] && is_hex "$n" 32; then
      if [ -n "$md5" ]; then printf '%s %s\n' "$md5" "$ep" >>"$KIT_TMP/entries"; fi
      md5=$n
      escape "${line#* }"
      ep=$ESC
    elif [ "$first" = 1 ]; then
      die "$META: wrong password (or not an s3backup.py meta)" "$EXIT_PASSWORD"
    else
      escape "$line"
      ep="$ep${BS}n$ESC"
    fi
    first=0
  done <"$KIT_TMP/meta.plain"
  if [ -n "$md5" ]; then printf '%s %s\n' "$md5" "$ep" >>"$KIT_TMP/entries"; fi
  rm -f -- "$KIT_TMP/meta.plain"
  LC_ALL=C sort -o "$KIT_TMP/entries" "$KIT_TMP/entries"
  warn "restoring $META (s3backup.py format) into $target"

  if [ ! -d "$target" ]; then mkdir -p -- "$target" || die "cannot create $target"; fi
  TARGET=$(cd -- "$target" && pwd -P) || die "cannot enter $target"
  lock_target

  while IFS= read -r -u 3 line; do
    stop_if_down
    if [ -e "$KIT_FULL" ]; then # (nothing more fetched: note_full)
      fail "${line#* }" "$NOT_WRITTEN"
      continue
    fi
    restore_one "${line%% *}" "${line#* }"
  done 3<"$KIT_TMP/entries"
  only_misses "$META"

  warn "restored $N_FILES files, $N_SAME already there, $FAILED failed$(full_note)"
  if [ "$FAILED" -gt 0 ]; then exit "$EXIT_PARTIAL"; fi
  exit 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
