#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# list.sh - list the backups of an s3backup repository (bash, coreutils, openssl, aws only).
#
# usage: list.sh [--count] [--endpoint-url URL] [--password-file FILE] [--region R]
#                <s3://bucket[/prefix] | DIR>
#
# Without a password: meta name, backup name, time (UTC), meta size in bytes. With a password
# (S3BACKUP_PASSWORD or --password-file; --count also prompts for one) also the number of
# entries of each backup. It never prompts without --count.

set -euo pipefail

KIT_PROG=list.sh
KIT_DIR=${BASH_SOURCE[0]%/*}
if [ "$KIT_DIR" = "${BASH_SOURCE[0]}" ]; then KIT_DIR=.; fi
# shellcheck source=common.sh
. "$KIT_DIR/common.sh"

usage() {
  cat <<'EOF'
usage: list.sh [--count] [--endpoint-url URL] [--password-file FILE] [--region R]
               <s3://bucket[/prefix] | DIR>

Lists the backups, oldest first: meta name, backup name, time (UTC), meta size in bytes, and
with a password (S3BACKUP_PASSWORD, --password-file FILE, or --count to be prompted) the
number of entries (files, directories, links) of each backup.

Exit codes: 0 ok, 1 error, 2 usage, 4 wrong password.
EOF
}

# meta_count META: open a meta (or its copy left by an interrupted password change) and set
# COUNT to its number of entries. Returns 1 (with COUNT_ERR) when it does not open.
meta_count() {
  COUNT=""
  COUNT_ERR="" COUNT_CODE=0
  if ! meta_open "$1"; then
    COUNT_ERR=$META_ERR COUNT_CODE=$META_ERR_CODE
    return 1
  fi
  rm -f -- "$META_PLAIN"
  COUNT=$META_ENTRIES
  return 0
}

# From S3 (not --as-of) each meta is fetched while the one before it is decrypted (an aws call
# and a key derivation, about half a second each): next_init lists the metas in NEXT_METAS,
# next_start ROW waits for the fetch of row ROW's meta (1 the first) and starts the next one's,
# into GOT_DIR, where store_get takes it. A fetch that fails leaves nothing there: store_get then
# fetches that meta itself, and says why.
NEXT_METAS=()
NEXT_META=""
next_init() {
  local m
  if [ "$STORE_KIND" != s3 ] || [ -n "$AS_OF" ]; then return 0; fi
  GOT_DIR=$KIT_TMP/got
  mkdir -p -- "$GOT_DIR" || die "cannot create $GOT_DIR"
  while IFS=' ' read -r _ _ m _; do NEXT_METAS+=("$m"); done <"$KIT_TMP/metas"
}
next_start() {
  if [ -n "${KIT_EARLY_next_meta:-}" ]; then answer next_meta || true; fi
  if [ "$1" -lt "${#NEXT_METAS[@]}" ]; then
    NEXT_META=${NEXT_METAS[$1]}
    early next_meta
  fi
}
next_meta() {
  aws_run s3api get-object --bucket "$STORE_BUCKET" --key "$STORE_PREFIX$NEXT_META" \
    "$GOT_DIR/$NEXT_META" >/dev/null 2>"$KIT_TMP/next.err" || rm -f -- "$GOT_DIR/$NEXT_META"
}

main() {
  local endpoint="" region="" pwfile="" count=0 have_pw=0 ts name meta size t failed=0 refused=0 rows=0 copies=0
  parse_kit_args 1 count "$@"
  count=$ARG_COUNT endpoint=$ARG_ENDPOINT region=$ARG_REGION pwfile=$ARG_PWFILE

  need cat cp cut id mktemp rm sort tail wc
  kit_init
  LS_EARLY=1 # (the metas' listing beside the first request)
  store_init "$ARG_STORE" "$endpoint" "$region"
  if [ "$count" = 1 ] || [ -n "$pwfile" ] || [ -n "${S3BACKUP_PASSWORD:-}" ]; then check_openssl; fi
  if get_password "$pwfile" "$count"; then have_pw=1; fi
  load_repo_conf
  store_list_metas "$KIT_TMP/metas"
  if [ ! -s "$KIT_TMP/metas" ]; then
    die "no backups found in $(store_desc)"
  fi
  if [ "$have_pw" = 1 ]; then
    # Check the password once on the repository key, when there is one (s3backup.key, or
    # after an interrupted password change s3backup.key.next / .prev).
    if load_repo_key; then
      DATA_KEY=""
    elif [ "$KEY_SEEN" -gt 0 ]; then
      die "wrong password (it opens neither s3backup.key nor s3backup.key.next / .prev)" "$EXIT_PASSWORD"
    fi
    printf '%-48s  %-24s  %-20s  %12s  %9s\n' META NAME "TIME (UTC)" SIZE ENTRIES
  else
    printf '%-48s  %-24s  %-20s  %12s\n' META NAME "TIME (UTC)" SIZE
  fi
  if [ "$have_pw" = 1 ]; then next_init; fi
  while IFS=' ' read -r ts name meta size; do
    t="${ts:0:4}-${ts:4:2}-${ts:6:2} ${ts:9:2}:${ts:11:2}:${ts:13:2}"
    rows=$((rows + 1))
    if [ "$have_pw" = 1 ]; then
      next_start "$rows"
      if ! meta_count "$meta"; then
        warn "$COUNT_ERR"
        COUNT="?"
        failed=$((failed + 1))
        if [ "$COUNT_CODE" = "$EXIT_PASSWORD" ]; then refused=$((refused + 1)); fi
      elif [ "$META_FROM" != "$meta" ]; then
        copies=$((copies + 1))
      fi
      printf '%-48s  %-24s  %-20s  %12s  %9s\n' "$meta" "$name" "$t" "$size" "$COUNT"
    else
      printf '%-48s  %-24s  %-20s  %12s\n' "$meta" "$name" "$t" "$size"
    fi
  done <"$KIT_TMP/metas"
  if [ "$copies" -gt 0 ]; then
    warn "$copies backup(s) opened only through their copies under passwd/ (a password change was interrupted: run 's3backup passwd' to finish it)"
  fi
  if [ "$failed" -gt 0 ]; then
    if [ "$refused" -eq "$rows" ]; then exit "$EXIT_PASSWORD"; fi
    exit "$EXIT_ERROR"
  fi
  exit 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
