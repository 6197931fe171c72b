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
#   CASESTREAM_RDKAFKA_VERSION    2.14.2-1 (the Debian source version)
#   CASESTREAM_RDKAFKA_SUITE      sid (the Debian suite whose sources have it)
#   CASESTREAM_DEBIAN_MIRROR      the Debian mirror of the system's apt sources
set -euo pipefail
umask 022

# The stack directory, as scripts/stack.sh resolves it.
STACK_DIR=${CASESTREAM_STACK_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)/.stack}
[[ $STACK_DIR == /* ]] || STACK_DIR=$PWD/$STACK_DIR

DEB_VERSION=${CASESTREAM_RDKAFKA_VERSION:-2.14.2-1}
SUITE=${CASESTREAM_RDKAFKA_SUITE:-sid}
MIRROR=${CASESTREAM_DEBIAN_MIRROR:-}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

BASE=$STACK_DIR/librdkafka
PREFIX=$BASE/$DEB_VERSION
WORK=$BASE/work-$DEB_VERSION
LOG=$STACK_DIR/log/librdkafka-build.log

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

say() { printf 'librdkafka: %s\n' "$*"; }
die() {
  printf 'librdkafka: error: %s\n' "$*" >&2
  exit 1
}

built() { [[ -s $PREFIX/.built && -s $PREFIX/lib/pkgconfig/rdkafka.pc ]]; }

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
  cat >"$WORK/apt/sources.list" <<EOF
deb-src [signed-by=$KEYRING] $MIRROR $SUITE main
deb [signed-by=$KEYRING] $MIRROR $SUITE main
EOF
  say "fetching source package librdkafka $DEB_VERSION from $SUITE"
  private_apt apt-get update -q || die "apt-get update of $SUITE failed"
  (cd "$WORK/src" && private_apt apt-get source -q --only-source "librdkafka=$DEB_VERSION") ||
    die "$SUITE has no source package librdkafka $DEB_VERSION (apt-cache showsrc librdkafka there lists what it has); set CASESTREAM_RDKAFKA_VERSION"
  (cd "$WORK/src" && private_apt apt-get download -q opentelemetry-proto) ||
    die "could not download opentelemetry-proto from $SUITE"
  dpkg-deb -x "$WORK"/src/opentelemetry-proto_*_all.deb "$WORK/otel"
  say "opentelemetry-proto $(dpkg-deb -f "$WORK"/src/opentelemetry-proto_*_all.deb Version)"
}

# The steps of debian/rules, with Debian 12's tools and an install prefix
# under the stack directory; only the C library (no C++, examples or tests).
compile() {
  local src otel=$WORK/otel/usr/include
  src=$(find "$WORK/src" -mindepth 1 -maxdepth 1 -type d -name 'librdkafka-*' | head -n1)
  [[ -n $src ]] || die "apt-get source unpacked nothing under $WORK/src"
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

cmd_build() {
  local t0=$SECONDS lock
  built && return 0
  [[ $(id -u) -eq 0 ]] || die "$PREFIX is not built yet and building it needs root (apt); or build with SYSTEM_RDKAFKA=1 (README)"
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
  printf 'librdkafka %s from Debian %s source package, built %s in %ss\n' \
    "$(pkg-config --modversion "$PREFIX/lib/pkgconfig/rdkafka.pc")" "$DEB_VERSION" \
    "$(date -u +%FT%TZ)" "$((SECONDS - t0))" >"$PREFIX/.built"
  rm -rf "$WORK"
  say "built $DEB_VERSION in $((SECONDS - t0))s"
}

case ${1:-} in
build) cmd_build ;;
prefix) printf '%s\n' "$PREFIX" ;;
version) printf '%s\n' "$DEB_VERSION" ;;
-h | --help | help) sed -n '13,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
*)
  sed -n '13,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
  ;;
esac
