#!/usr/bin/env bash
# compile.sh - build standalone s3backup binaries with `deno compile` (deno task compile).
#
#   bash scripts/compile.sh                     # this machine's target
#   bash scripts/compile.sh all                 # the five release targets
#   bash scripts/compile.sh aarch64-apple-darwin x86_64-pc-windows-msvc
#
# Writes dist/s3backup-<version>-<target>[.exe] and dist/SHA256SUMS (of every binary in dist/).
# The version is deno.json's (the binary's --version shows it); on a tag (GITHUB_REF_NAME or
# `git describe --exact-match`) of the form v<version> the two must agree. Built from the lock
# file (--frozen) with the permissions of scripts/permissions.ts baked in.
#
# `deno compile` needs Deno's runtime for each target (denort). Deno downloads it unless
# DENORT_BIN names a local denort binary (one target at a time, matching that binary). Without
# either this script fails with one line: it never pretends to have built anything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { echo "compile.sh: $*" >&2; exit 1; }

ALL=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-apple-darwin aarch64-apple-darwin
  x86_64-pc-windows-msvc)
DENO=$(bash scripts/ensure-deno.sh)
export DENO_NO_UPDATE_CHECK=1   # no question to Deno's download site about a newer release
host=$("$DENO" eval --quiet 'console.log(Deno.build.target)')

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("$host")
[ "${targets[0]}" != all ] || targets=("${ALL[@]}")
for t in "${targets[@]}"; do
  case " ${ALL[*]} " in *" $t "*) ;; *) die "unknown target $t (one of: ${ALL[*]})" ;; esac
done

if [ -n "${DENORT_BIN:-}" ]; then
  [ -x "$DENORT_BIN" ] || die "DENORT_BIN=$DENORT_BIN is not an executable"
  export DENORT_BIN
  [ ${#targets[@]} -eq 1 ] || { echo "compile.sh: with DENORT_BIN, build one target at a time (the one it was built for)" >&2; exit 2; }
fi

version=$("$DENO" eval --quiet 'import c from "./deno.json" with { type: "json" }; console.log(c.version)')
tag=${GITHUB_REF_NAME:-$(git describe --exact-match --tags 2>/dev/null || true)}
if [[ $tag == v[0-9]* ]] && [ "$tag" != "v$version" ]; then
  die "tag $tag does not match deno.json's version $version"
fi
read -r -a perms <<<"$("$DENO" run --quiet scripts/permissions.ts)"

mkdir -p dist
for t in "${targets[@]}"; do
  out=dist/s3backup-$version-$t
  [[ $t == *windows* ]] && out=$out.exe
  echo "compile.sh: $t -> $out" >&2
  # (The Worker of src/util/deflate_pool.ts is not found by deno compile on its own.)
  if ! NO_COLOR=1 "$DENO" compile --frozen "${perms[@]}" --no-prompt --quiet --target "$t" --output "$out" \
    --include src/util/deflate_worker.ts src/main.ts 2>"dist/.compile.err"; then
    # The last "Caused by" line is the root cause (no network: a DNS or connect error).
    why=$(sed -n '/^Caused by:/,/^$/p' dist/.compile.err | grep -E '^ +[0-9]+: ' | tail -n 1 || true)
    why=${why#*: }
    [ -n "$why" ] || why=$(head -n 1 dist/.compile.err)
    rm -f dist/.compile.err "$out"
    die "cannot build $t: deno compile failed or could not download its runtime (${why:-no message}); set DENORT_BIN to a local denort binary, or build where it can be downloaded"
  fi
  rm -f dist/.compile.err
  if [ "$t" = "$host" ]; then
    got=$("./$out" --version 2>&1 | head -n 1 || true)
    if [ "$got" != "s3backup $version" ]; then
      rm -f "$out"
      die "the binary built for $t does not run s3backup (its --version says: ${got:-nothing}); is DENORT_BIN the denort of Deno $("$DENO" eval --quiet 'console.log(Deno.version.deno)')?"
    fi
    echo "compile.sh: $out --version: $got" >&2
  fi
done
sum256() { if command -v sha256sum >/dev/null 2>&1; then sha256sum "$@"; else shasum -a 256 "$@"; fi; }
(
  cd dist
  set -- s3backup-*
  [ -e "$1" ] || die "nothing in dist/ to checksum"
  sum256 "$@" >SHA256SUMS
)
echo "compile.sh: dist/SHA256SUMS" >&2
