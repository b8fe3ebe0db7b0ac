#!/usr/bin/env bash
# demo.sh - a real backup, list and restore on this machine, no cloud account needed.
#
#   bash scripts/demo.sh
#
# Installs the pinned Deno into .tools/ if needed, makes a small tree with awkward names in
# demo/source, backs it up (twice: the second run uploads nothing) into the local-directory
# bucket demo/bucket, lists the backups, restores the latest one with the restore kit kept in
# the bucket (bash + openssl only) and with the program, and compares both with the source.
set -euo pipefail
umask 077
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DENO=$(bash scripts/ensure-deno.sh)
export DENO_NO_UPDATE_CHECK=1   # no question to Deno's download site about a newer release
demo=$PWD/demo
rm -rf "$demo"
mkdir -p "$demo/source/docs/empty folder" "$demo/bucket"

printf 'hello from s3backup\n' >"$demo/source/docs/hello.txt"
printf 'same bytes\n' >"$demo/source/docs/copy 1.txt"
printf 'same bytes\n' >"$demo/source/copy 2.txt"
printf 'spaces at both ends\n' >"$demo/source/ spaced name "
printf 'a newline in the name\n' >"$demo/source/line"$'\n'"break"
printf 'unicode\n' >"$demo/source/ünïcödé 日本.txt"
chmod 0600 "$demo/source/docs/hello.txt"
ln -s docs/hello.txt "$demo/source/link to hello"
head -c 3000000 /dev/urandom >"$demo/source/random.bin"

# The demo's password; real use: s3backup.ini ([main] password=), --password-file or a prompt.
export S3BACKUP_PASSWORD=demo-password-not-secret
# The permissions the compiled binary has (scripts/permissions.ts).
read -r -a perms <<<"$("$DENO" run --quiet scripts/permissions.ts)"
# The demo's own cache, gone with demo/: s3backup remembers the repositories this machine backed
# up to, and would refuse the next demo's new bucket at the same place as a repository gone.
run() { (set -x; "$DENO" run "${perms[@]}" --quiet src/main.ts "$@" --cache-dir "$demo/cache"); }

echo "== backup (the original usage)"
run -f "$demo/source" -b "$demo/bucket" -a backup -c -n demo
echo "== backup again: nothing new to upload"
run -f "$demo/source" -b "$demo/bucket" -a backup -c -n demo
echo "== list"
run -a list -b "$demo/bucket"
echo "== restore with the kit kept in the bucket (bash, coreutils, openssl)"
(set -x; bash "$demo/bucket/restore-kit/restore.sh" "$demo/bucket" latest "$demo/restored")
echo "== restore with the program itself"
run restore -b "$demo/bucket" -m latest -f "$demo/restored-by-s3backup" -c
echo "== compare"
diff -r --no-dereference "$demo/source" "$demo/restored"
diff -r --no-dereference "$demo/source" "$demo/restored-by-s3backup"
echo "demo: both restored trees are identical to the source (demo/source, demo/restored*)"
