#!/usr/bin/env bash
# compile.sh - build standalone s3backup binaries with `deno compile`.
#
#   bash scripts/compile.sh                     # this machine's target
#   bash scripts/compile.sh all                 # the five release targets
#   bash scripts/compile.sh aarch64-apple-darwin x86_64-pc-windows-msvc
#
# `deno compile` needs Deno's runtime for each target (denort). Deno downloads it unless
# DENORT_BIN names a local denort binary (one target at a time, matching that binary). On a
# machine without that download and without DENORT_BIN, this script fails and says so: it
# never pretends to have built anything. Binaries go to dist/ (git-ignored).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ALL=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-apple-darwin aarch64-apple-darwin
  x86_64-pc-windows-msvc)
DENO=$(bash scripts/ensure-deno.sh)
host=$("$DENO" eval --quiet 'console.log(Deno.build.target)')

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("$host")
[ "${targets[0]}" != all ] || targets=("${ALL[@]}")

if [ -n "${DENORT_BIN:-}" ]; then
  [ -x "$DENORT_BIN" ] || { echo "compile.sh: DENORT_BIN=$DENORT_BIN is not an executable" >&2; exit 1; }
  export DENORT_BIN
  if [ ${#targets[@]} -ne 1 ]; then
    echo "compile.sh: with DENORT_BIN, build one target at a time (the one it was built for)" >&2
    exit 2
  fi
fi

mkdir -p dist
version=$("$DENO" eval --quiet 'import c from "./deno.json" with { type: "json" }; console.log(c.version)')
for t in "${targets[@]}"; do
  out=dist/s3backup-$version-$t
  [[ $t == *windows* ]] && out=$out.exe
  echo "compile.sh: $t -> $out" >&2
  if ! "$DENO" compile --allow-all --quiet --target "$t" --output "$out" src/main.ts; then
    echo "compile.sh: deno compile failed for $t (no network for denort? set DENORT_BIN)" >&2
    exit 1
  fi
  if [ "$t" = "$host" ]; then "./$out" --version; fi
done
