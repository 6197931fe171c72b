#!/usr/bin/env bash
# scripts/librdkafka.sh - build the librdkafka casestream links against.
#
# Debian 12 ships librdkafka 2.0.2, which lacks fixes the worker depends on
# and the consumer group protocol of KIP-848 (GA in 2.12.0). This builds the
# C library from Debian's own source package of a current release, fetched
# with apt from the suite that has it, using the build dependencies Debian 12
# has, into <stack dir>/librdkafka/<Debian version>: built once per clone and
# version, then reused. The Makefile links every program and test against it
# (include path, library path and rpath); `make SYSTEM_RDKAFKA=1` uses the
# distribution's librdkafka-dev instead (README).
#
# Usage: scripts/librdkafka.sh build    build unless already built (needs root)
#        scripts/librdkafka.sh prefix   print the install prefix
#        scripts/librdkafka.sh version  print the Debian version it builds
#
# Environment:
#   CASESTREAM_STACK_DIR          <repo>/.stack
#   CASESTREAM_RDKAFKA_VERSION    2.14.2-1 (the Debian source version). When it is not set and
#                                 the suite no longer has 2.14.2-1 (sid keeps only its newest),
#                                 the suite's newest version (2.12 or later) is built in its place,
#                                 under the same directory; .built there names what was built
#   CASESTREAM_RDKAFKA_SUITE      sid (the Debian suite whose sources have it)
#   CASESTREAM_DEBIAN_MIRROR      the Debian mirror of the system's apt sources
NAME=librdkafka
DEB_VERSION=${CASESTREAM_RDKAFKA_VERSION:-2.14.2-1}
VERSION_PINNED=${CASESTREAM_RDKAFKA_VERSION:-}
MIN_VERSION=2.12
SUITE=${CASESTREAM_RDKAFKA_SUITE:-sid}
PC=rdkafka.pc
SYSTEM_SWITCH=SYSTEM_RDKAFKA
HELP_LINES=13,24
# shellcheck source=scripts/debsrc.sh
. "$(dirname "${BASH_SOURCE[0]}")/debsrc.sh"

# Debian's Build-Depends as Debian 12 has them, less debhelper (the library
# is built with its own configure, not dpkg-buildpackage). libnanopb-dev is
# not among them: Debian 12's has neither a pkg-config file nor the
# nanopb/ header directory librdkafka includes, so the copy of nanopb in
# librdkafka's source is used (configure --disable-nanopb-ext). nanopb is
# only its generator. opentelemetry-proto (the .proto files the telemetry
# code is generated from) is not in Debian 12: its package is taken from
# the same suite and only unpacked into the work directory.
BUILD_DEPS=(dpkg-dev pkg-config python3 nanopb libcjson-dev libcurl4-openssl-dev
  liblz4-dev libsasl2-dev libssl-dev libzstd-dev rapidjson-dev zlib1g-dev)

# The source package, and opentelemetry-proto from the same suite (a binary package: "deb").
fetch_sources() {
  debsrc_fetch_source deb
  (cd "$WORK/src" && private_apt apt-get download -q opentelemetry-proto) ||
    die "could not download opentelemetry-proto from $SUITE"
  dpkg-deb -x "$WORK"/src/opentelemetry-proto_*_all.deb "$WORK/otel"
  say "opentelemetry-proto $(dpkg-deb -f "$WORK"/src/opentelemetry-proto_*_all.deb Version)"
}

# The steps of debian/rules, with Debian 12's tools and an install prefix
# under the stack directory; only the C library (no C++, examples or tests).
compile() {
  local src otel=$WORK/otel/usr/include
  src=$(debsrc_dir) || exit 1
  cd "$src"
  mv src/opentelemetry src/opentelemetry.vendor
  nanopb_generator.py --options-file=src/opentelemetry.vendor/metrics.options --output-dir=src/ \
    -L '#include <nanopb/%s>' -I"$otel" \
    "$otel"/opentelemetry/proto/common/v1/common.proto \
    "$otel"/opentelemetry/proto/resource/v1/resource.proto \
    "$otel"/opentelemetry/proto/metrics/v1/metrics.proto
  ./configure --prefix="$PREFIX" --enable-c11threads --enable-cjson-ext --disable-nanopb-ext
  make -C src -j"$(nproc)"
  make -C src install
}

debsrc_main "$@"
