#!/usr/bin/env bash
# ensure-deno.sh - make sure the pinned Deno is installed in .tools/ and print its path.
#
#   DENO=$(bash scripts/ensure-deno.sh)
#
# Deno comes from the npm registry (the `deno` package ships the binary for this platform),
# installed with npm into .tools/ (git-ignored). Nothing is downloaded when the right version
# is already there.
set -euo pipefail

DENO_VERSION=2.9.6
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
deno=$root/.tools/node_modules/.bin/deno

installed_version() {
  [ -x "$deno" ] || return 0
  "$deno" --version 2>/dev/null | awk 'NR == 1 { print $2 }'
}

if [ "$(installed_version)" != "$DENO_VERSION" ]; then
  command -v npm >/dev/null 2>&1 || { echo "ensure-deno: npm is needed to install Deno" >&2; exit 1; }
  echo "ensure-deno: installing deno@$DENO_VERSION into .tools/" >&2
  mkdir -p "$root/.tools"
  npm install --prefix "$root/.tools" --no-save --no-package-lock --no-audit --no-fund \
    "deno@$DENO_VERSION" >&2
  if [ "$(installed_version)" != "$DENO_VERSION" ]; then
    echo "ensure-deno: $deno is not Deno $DENO_VERSION after npm install" >&2
    exit 1
  fi
fi
echo "$deno"
