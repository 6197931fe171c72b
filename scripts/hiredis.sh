#!/usr/bin/env bash
# scripts/hiredis.sh - build the hiredis casestream links against.
#
# Debian 12 ships hiredis 0.14, which has no TLS. This builds hiredis and
# its TLS library (libhiredis_ssl, for rediss:// URLs) from Debian's own
# source package of a current release, fetched with apt from the suite that
# has it, with the build dependency Debian 12 has (libssl-dev), into
# <stack dir>/hiredis/<Debian version>: built once per clone and version,
# then reused. The Makefile links every program and test against it
# (include path, library path and rpath); `make SYSTEM_HIREDIS=1` uses the
# distribution's libhiredis-dev instead (README).
#
# Usage: scripts/hiredis.sh build    build unless already built (needs root)
#        scripts/hiredis.sh prefix   print the install prefix
#        scripts/hiredis.sh version  print the Debian version it builds
#
# Environment:
#   CASESTREAM_STACK_DIR          <repo>/.stack
#   CASESTREAM_HIREDIS_VERSION    1.2.0-6 (the Debian source version). When it is not set and
#                                 the suite no longer has 1.2.0-6 (sid keeps only its newest),
#                                 the suite's newest version (1.0 or later) is built in its place,
#                                 under the same directory; .built there names what was built
#   CASESTREAM_HIREDIS_SUITE      sid (the Debian suite whose sources have it)
#   CASESTREAM_DEBIAN_MIRROR      the Debian mirror of the system's apt sources
set -euo pipefail
umask 022

# The stack directory, as scripts/stack.sh resolves it.
STACK_DIR=${CASESTREAM_STACK_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)/.stack}
[[ $STACK_DIR == /* ]] || STACK_DIR=$PWD/$STACK_DIR

DEB_VERSION=${CASESTREAM_HIREDIS_VERSION:-1.2.0-6}
SUITE=${CASESTREAM_HIREDIS_SUITE:-sid}
MIRROR=${CASESTREAM_DEBIAN_MIRROR:-}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

BASE=$STACK_DIR/hiredis
PREFIX=$BASE/$DEB_VERSION
WORK=$BASE/work-$DEB_VERSION
LOG=$STACK_DIR/log/hiredis-build.log

# Debian's Build-Depends, less debhelper (the library is built with its own
# Makefile, as debian/rules does, not dpkg-buildpackage) and what only its
# tests need (procps, redis-server).
BUILD_DEPS=(dpkg-dev make gcc libssl-dev pkg-config)

say() { printf 'hiredis: %s\n' "$*"; }
die() {
  printf 'hiredis: error: %s\n' "$*" >&2
  exit 1
}

built() { [[ -s $PREFIX/.built && -s $PREFIX/lib/pkgconfig/hiredis_ssl.pc ]]; }

is_installed() {
  [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

install_build_deps() {
  local missing=() p
  for p in "${BUILD_DEPS[@]}"; do
    is_installed "$p" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  say "installing build dependencies: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
}

# apt with a source list, package lists and cache of its own under $WORK:
# the system's sources and lists stay as they are.
private_apt() { # apt-get|apt-cache args...
  local tool=$1
  shift
  "$tool" -o Dir::Etc::SourceList="$WORK/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent \
    -o Dir::State::Lists="$WORK/apt/lists" -o Dir::Cache="$WORK/apt/cache" \
    -o APT::Sandbox::User=root "$@"
}

# The mirror the system's apt sources take Debian 12 (its main suite) from.
system_mirror() {
  apt-get indextargets --format '$(REPO_URI) $(CODENAME) $(COMPONENT)' 2>/dev/null |
    awk '$2 == "bookworm" && $3 == "main" { sub(/\/$/, "", $1); print $1; exit }'
}

fetch_sources() {
  [[ -n $MIRROR ]] || MIRROR=$(system_mirror)
  [[ -n $MIRROR ]] || die "no Debian 12 mirror in the system's apt sources; set CASESTREAM_DEBIAN_MIRROR"
  mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/cache/archives/partial" "$WORK/src"
  # Sources only: nothing else is taken from the suite.
  cat >"$WORK/apt/sources.list" <<EOF
deb-src [signed-by=$KEYRING] $MIRROR $SUITE main
EOF
  say "fetching source package hiredis $DEB_VERSION from $SUITE"
  private_apt apt-get update -q || die "apt-get update of $SUITE failed"
  if ! (cd "$WORK/src" && private_apt apt-get source -q --only-source "hiredis=$DEB_VERSION"); then
    local newest
    [[ -z ${CASESTREAM_HIREDIS_VERSION:-} ]] ||
      die "$SUITE has no source package hiredis $DEB_VERSION (apt-cache showsrc hiredis there lists what it has)"
    newest=$(private_apt apt-cache showsrc hiredis 2>/dev/null |
      awk '/^Version:/ { print $2 }' | sort -V | tail -n1)
    [[ -n $newest ]] && dpkg --compare-versions "$newest" ge 1.0 ||
      die "$SUITE has neither hiredis $DEB_VERSION nor any 1.0 or later (newest: ${newest:-none})"
    say "$SUITE no longer has $DEB_VERSION: building its newest, $newest, in its place"
    echo "$newest" >"$WORK/built-version"
    (cd "$WORK/src" && private_apt apt-get source -q --only-source "hiredis=$newest") ||
      die "could not fetch hiredis $newest from $SUITE"
  fi
}

# The steps of debian/rules (USE_SSL=1, hardening flags from dpkg-buildflags),
# with an install prefix under the stack directory. PREFIX is given to the
# build too: the pkg-config files are written then.
compile() {
  local src flags
  src=$(find "$WORK/src" -mindepth 1 -maxdepth 1 -type d -name 'hiredis-*' | head -n1)
  [[ -n $src ]] || die "apt-get source unpacked nothing under $WORK/src"
  cd "$src"
  flags=(PREFIX="$PREFIX" LIBRARY_PATH=lib USE_SSL=1 DEBUG=-g ARCH=)
  # In the environment, as dpkg-buildpackage exports them: the Makefile adds to them.
  CFLAGS=$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CFLAGS)
  LDFLAGS=$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get LDFLAGS)
  export CFLAGS LDFLAGS
  make -j"$(nproc)" "${flags[@]}" dynamic static pkgconfig
  make "${flags[@]}" install
}

cmd_build() {
  local t0=$SECONDS lock
  built && return 0
  [[ $(id -u) -eq 0 ]] || die "$PREFIX is not built yet and building it needs root (apt); or build with SYSTEM_HIREDIS=1 (README)"
  mkdir -p "$BASE" "$(dirname "$LOG")"
  exec {lock}>"$BASE/.lock"
  flock "$lock"
  built && return 0 # another build finished while we waited
  install_build_deps
  rm -rf "$WORK" "$PREFIX"
  say "building $DEB_VERSION into $PREFIX (log $LOG)"
  if ! (fetch_sources && compile) >"$LOG" 2>&1; then
    tail -n 40 "$LOG" >&2
    die "build of $DEB_VERSION failed (log $LOG)"
  fi
  printf 'hiredis %s from Debian %s source package, built %s in %ss\n' \
    "$(pkg-config --modversion "$PREFIX/lib/pkgconfig/hiredis.pc")" \
    "$(cat "$WORK/built-version" 2>/dev/null || echo "$DEB_VERSION")" \
    "$(date -u +%FT%TZ)" "$((SECONDS - t0))" >"$PREFIX/.built"
  rm -rf "$WORK"
  say "built $DEB_VERSION in $((SECONDS - t0))s"
}

case ${1:-} in
build) cmd_build ;;
prefix) printf '%s\n' "$PREFIX" ;;
version) printf '%s\n' "$DEB_VERSION" ;;
-h | --help | help) sed -n '13,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
*)
  sed -n '13,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
  ;;
esac
