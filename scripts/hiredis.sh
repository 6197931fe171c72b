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
NAME=hiredis
DEB_VERSION=${CASESTREAM_HIREDIS_VERSION:-1.2.0-6}
VERSION_PINNED=${CASESTREAM_HIREDIS_VERSION:-}
MIN_VERSION=1.0
SUITE=${CASESTREAM_HIREDIS_SUITE:-sid}
PC=hiredis_ssl.pc
SYSTEM_SWITCH=SYSTEM_HIREDIS
HELP_LINES=13,24
# shellcheck source=scripts/debsrc.sh
. "$(dirname "${BASH_SOURCE[0]}")/debsrc.sh"

# Debian's Build-Depends, less debhelper (the library is built with its own
# Makefile, as debian/rules does, not dpkg-buildpackage) and what only its
# tests need (procps, redis-server).
BUILD_DEPS=(dpkg-dev make gcc libssl-dev pkg-config)

# The source package only: nothing else is taken from the suite.
# shellcheck disable=SC2119 # no extra source lines
fetch_sources() { debsrc_fetch_source; }

# The steps of debian/rules (USE_SSL=1, hardening flags from dpkg-buildflags),
# with an install prefix under the stack directory. PREFIX is given to the
# build too: the pkg-config files are written then.
compile() {
  local src flags
  src=$(debsrc_dir) || exit 1
  cd "$src"
  flags=(PREFIX="$PREFIX" LIBRARY_PATH=lib USE_SSL=1 DEBUG=-g ARCH=)
  # In the environment, as dpkg-buildpackage exports them: the Makefile adds to them.
  CFLAGS=$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CFLAGS)
  LDFLAGS=$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get LDFLAGS)
  export CFLAGS LDFLAGS
  make -j"$(nproc)" "${flags[@]}" dynamic static pkgconfig
  make "${flags[@]}" install
}

debsrc_main "$@"
