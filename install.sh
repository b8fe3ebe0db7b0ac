#!/usr/bin/env bash
# install.sh - install the s3backup binary for this machine from a release, checksum verified.
#
#   curl -fsSL https://github.com/s3backup/s3backup/releases/latest/download/install.sh | bash
#   bash install.sh [--version 0.3.0] [--prefix DIR] [--url BASE] [--sudo]
#
# Detects the OS and architecture, downloads s3backup-<version>-<target>[.exe] and SHA256SUMS
# from the release (BASE, default the project's GitHub releases; S3BACKUP_RELEASE_URL too; a
# file:// URL serves a local folder), checks the binary's SHA-256 against SHA256SUMS, and
# installs it as DIR/s3backup (default ~/.local/bin). It never uses sudo unless --sudo is
# given. Exit codes: 0 installed, 1 error (nothing installed), 2 usage.
set -euo pipefail
umask 022

PROG=install.sh
INSTALL_TMP=""
REPO_URL=https://github.com/s3backup/s3backup/releases

die() {
  printf '%s: %s\n' "$PROG" "$1" >&2
  exit "${2:-1}"
}
say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is required but was not found on PATH"; }

usage() {
  cat <<'EOF'
usage: install.sh [--version V] [--prefix DIR] [--url BASE] [--sudo]

Installs s3backup for this machine into DIR (default ~/.local/bin) from a release: the binary
and SHA256SUMS from BASE (default the latest release; --version V picks one), the binary's
SHA-256 checked before anything is installed. --sudo runs the install step with sudo (for a
DIR you cannot write to); without it sudo is never used.
EOF
}

# target: the release's name for this machine (uname, or S3BACKUP_INSTALL_OS / _ARCH).
target() {
  local os arch
  os=${S3BACKUP_INSTALL_OS:-$(uname -s)}
  arch=${S3BACKUP_INSTALL_ARCH:-$(uname -m)}
  case "$arch" in
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64) arch=aarch64 ;;
  *) die "unsupported platform: $os/$arch (releases are for x86_64 and aarch64; README: build from source)" ;;
  esac
  case "$os" in
  Linux) TARGET=$arch-unknown-linux-gnu EXT="" ;;
  Darwin) TARGET=$arch-apple-darwin EXT="" ;;
  MINGW* | MSYS* | CYGWIN* | Windows_NT)
    [ "$arch" = x86_64 ] || die "unsupported platform: $os/$arch (Windows releases are x86_64)"
    TARGET=x86_64-pc-windows-msvc EXT=.exe
    ;;
  *) die "unsupported platform: $os/$arch (releases are for Linux, macOS and Windows; README: build from source)" ;;
  esac
}

# fetch URL FILE: download (curl, else wget; file:// is copied).
fetch() {
  case "$1" in
  file://*) cp -- "${1#file://}" "$2" 2>/dev/null || die "cannot read ${1#file://}" ;;
  *)
    if command -v curl >/dev/null 2>&1; then
      curl -fsSL --proto '=https' --tlsv1.2 -o "$2" "$1" || die "cannot download $1"
    elif command -v wget >/dev/null 2>&1; then
      wget -q -O "$2" "$1" || die "cannot download $1"
    else
      die "curl or wget is required to download $1"
    fi
    ;;
  esac
}

# sha256 FILE: its SHA-256 in hex. Read from standard input: a file name holding "\" makes
# sha256sum escape its line (a leading "\" before the hash).
sha256() {
  local out
  if command -v sha256sum >/dev/null 2>&1; then
    out=$(sha256sum <"$1")
  elif command -v shasum >/dev/null 2>&1; then
    out=$(shasum -a 256 <"$1")
  elif command -v openssl >/dev/null 2>&1; then
    out=$(openssl dgst -sha256 -r <"$1")
  else
    die "sha256sum, shasum or openssl is required to check the download"
  fi
  printf '%s\n' "${out%% *}"
}

# newer A B: whether version A is newer than B (dotted numbers, compared field by field).
newer() {
  local a=$1 b=$2 x y
  while [ -n "$a" ] || [ -n "$b" ]; do
    x=${a%%.*} y=${b%%.*}
    case "$x" in "" | *[!0-9]*) x=0 ;; esac
    case "$y" in "" | *[!0-9]*) y=0 ;; esac
    if [ "$((10#$x))" -ne "$((10#$y))" ]; then [ "$((10#$x))" -gt "$((10#$y))" ]; return; fi
    case "$a" in *.*) a=${a#*.} ;; *) a="" ;; esac
    case "$b" in *.*) b=${b#*.} ;; *) b="" ;; esac
  done
  return 1
}

# pick SUMS: NAME and SUM of this target's binary in SHA256SUMS (the version asked, else the
# newest it lists). Lines may end in CRLF.
pick() {
  local sum file v best=""
  NAME="" SUM=""
  while read -r sum file || [ -n "$sum" ]; do
    file=${file%$'\r'}
    file=${file#\*}
    case "$file" in
    "s3backup-"*"-$TARGET$EXT")
      if [ -n "$VERSION" ] && [ "$file" != "s3backup-$VERSION-$TARGET$EXT" ]; then continue; fi
      v=${file#s3backup-}
      v=${v%"-$TARGET$EXT"}
      if [ -n "$best" ] && ! newer "$v" "$best"; then continue; fi
      NAME=$file SUM=$sum best=$v
      ;;
    esac
  done <"$1"
  [ -n "$NAME" ] || die "the release has no binary for $TARGET${VERSION:+ at version $VERSION} (SHA256SUMS names none)"
  case "$SUM" in *[!0-9a-f]* | "") die "SHA256SUMS is malformed for $NAME" ;; esac
  [ "${#SUM}" -eq 64 ] || die "SHA256SUMS is malformed for $NAME"
}

main() {
  local prefix="${HOME:-}/.local/bin" base="${S3BACKUP_RELEASE_URL:-}" use_sudo=0 tmp dest run
  VERSION=""
  while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --version) [ $# -ge 2 ] || die "--version needs a version" 2; VERSION=${2#v}; shift 2 ;;
    --prefix) [ $# -ge 2 ] || die "--prefix needs a DIR" 2; prefix=$2; shift 2 ;;
    --url) [ $# -ge 2 ] || die "--url needs a URL" 2; base=$2; shift 2 ;;
    --sudo) use_sudo=1; shift ;;
    *) usage >&2; die "unknown argument: $1" 2 ;;
    esac
  done
  if [ -z "$base" ]; then
    if [ -n "$VERSION" ]; then base=$REPO_URL/download/v$VERSION; else base=$REPO_URL/latest/download; fi
  fi
  base=${base%/}
  [ -n "$prefix" ] || die "no HOME: give --prefix DIR" 2
  need uname
  need mktemp
  target
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/s3backup-install.XXXXXX") || die "cannot create a temporary folder"
  INSTALL_TMP=$tmp
  trap 'rm -rf -- "$INSTALL_TMP"' EXIT
  fetch "$base/SHA256SUMS" "$tmp/SHA256SUMS"
  pick "$tmp/SHA256SUMS"
  say "downloading $NAME"
  fetch "$base/$NAME" "$tmp/s3backup$EXT"
  [ "$(sha256 "$tmp/s3backup$EXT")" = "$SUM" ] ||
    die "checksum mismatch for $NAME: the download is not the released binary; nothing was installed"
  chmod 0755 "$tmp/s3backup$EXT"
  dest=$prefix/s3backup$EXT
  if [ -e "$dest" ] && [ ! -f "$dest" ]; then
    die "$dest is not a file (a folder?): nothing was installed; remove it or choose another --prefix"
  fi
  run=()
  if [ "$use_sudo" = 1 ]; then need sudo; run=(sudo); fi
  "${run[@]+"${run[@]}"}" mkdir -p -- "$prefix" 2>/dev/null ||
    die "cannot create $prefix (choose another --prefix, or --sudo)"
  # Beside the old one first, then renamed over it: a running s3backup keeps its file.
  if ! "${run[@]+"${run[@]}"}" cp -- "$tmp/s3backup$EXT" "$dest.new" 2>/dev/null ||
    ! "${run[@]+"${run[@]}"}" mv -f -- "$dest.new" "$dest"; then
    die "cannot write to $prefix (choose another --prefix, or --sudo)"
  fi
  say "installed $dest ($("$dest" --version 2>/dev/null || echo "$NAME"))"
  case ":${PATH:-}:" in
  *":$prefix:"*) ;;
  *) say "$prefix is not on your PATH: add it (export PATH=\"$prefix:\$PATH\")" ;;
  esac
}

if [ "${BASH_SOURCE[0]:-$0}" = "$0" ]; then
  main "$@"
fi
