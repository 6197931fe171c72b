# shellcheck shell=bash
# scripts/debsrc.sh - sourced by scripts/librdkafka.sh and scripts/hiredis.sh: build a library
# from Debian's own source package of a current release, fetched with apt from the suite that
# has it, into <stack dir>/<name>/<Debian version>, once per clone and version.
#
# The sourcing script sets NAME (the source package), DEB_VERSION, VERSION_PINNED (non-empty
# when the user chose DEB_VERSION), MIN_VERSION (the oldest release the fallback may build),
# SUITE, PC (the pkg-config file the build installs, under lib/pkgconfig), SYSTEM_SWITCH (the
# make variable that uses the distribution's package instead), BUILD_DEPS (Debian 12
# packages), HELP_LINES (the lines of its header comment that --help prints), and defines
# fetch_sources (calling debsrc_fetch_source) and compile; then it calls debsrc_main "$@".
set -euo pipefail
umask 022

# The stack directory, as scripts/stack.sh resolves it.
STACK_DIR=${CASESTREAM_STACK_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)/.stack}
[[ $STACK_DIR == /* ]] || STACK_DIR=$PWD/$STACK_DIR

MIRROR=${CASESTREAM_DEBIAN_MIRROR:-}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

debsrc_init() {
  BASE=$STACK_DIR/$NAME
  PREFIX=$BASE/$DEB_VERSION
  WORK=$BASE/work-$DEB_VERSION
  LOG=$STACK_DIR/log/$NAME-build.log
}

say() { printf '%s: %s\n' "$NAME" "$*"; }
die() {
  printf '%s: error: %s\n' "$NAME" "$*" >&2
  exit 1
}

built() { [[ -s $PREFIX/.built && -s $PREFIX/lib/pkgconfig/$PC ]]; }

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

# Unpacks source package $NAME $DEB_VERSION from $SUITE under $WORK/src, with the given lines
# (deb-src for the suite, and whatever else the caller needs from it) as the private apt's
# source list. When the suite no longer has $DEB_VERSION and the user did not choose it, the
# suite's newest version ($MIN_VERSION or later) is unpacked in its place and named in
# $WORK/built-version.
debsrc_fetch_source() { # extra source lines (e.g. "deb"), each given the suite's mirror
  local newest kind
  [[ -n $MIRROR ]] || MIRROR=$(system_mirror)
  [[ -n $MIRROR ]] || die "no Debian 12 mirror in the system's apt sources; set CASESTREAM_DEBIAN_MIRROR"
  mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/cache/archives/partial" "$WORK/src"
  for kind in deb-src "$@"; do
    echo "$kind [signed-by=$KEYRING] $MIRROR $SUITE main"
  done >"$WORK/apt/sources.list"
  say "fetching source package $NAME $DEB_VERSION from $SUITE"
  private_apt apt-get update -q || die "apt-get update of $SUITE failed"
  if (cd "$WORK/src" && private_apt apt-get source -q --only-source "$NAME=$DEB_VERSION"); then
    return 0
  fi
  [[ -z $VERSION_PINNED ]] ||
    die "$SUITE has no source package $NAME $DEB_VERSION (apt-cache showsrc $NAME there lists what it has)"
  newest=$(private_apt apt-cache showsrc "$NAME" 2>/dev/null |
    awk '/^Version:/ { print $2 }' | sort -V | tail -n1)
  [[ -n $newest ]] && dpkg --compare-versions "$newest" ge "$MIN_VERSION" ||
    die "$SUITE has neither $NAME $DEB_VERSION nor any $MIN_VERSION or later (newest: ${newest:-none})"
  say "$SUITE no longer has $DEB_VERSION: building its newest, $newest, in its place"
  echo "$newest" >"$WORK/built-version"
  (cd "$WORK/src" && private_apt apt-get source -q --only-source "$NAME=$newest") ||
    die "could not fetch $NAME $newest from $SUITE"
}

# The unpacked source directory (compile's: fails it when there is none).
debsrc_dir() {
  local src
  src=$(find "$WORK/src" -mindepth 1 -maxdepth 1 -type d -name "$NAME-*" | head -n1)
  [[ -n $src ]] || die "apt-get source unpacked nothing under $WORK/src"
  printf '%s\n' "$src"
}

cmd_build() {
  local t0=$SECONDS lock
  built && return 0
  [[ $(id -u) -eq 0 ]] || die "$PREFIX is not built yet and building it needs root (apt); or build with $SYSTEM_SWITCH=1 (README)"
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
  printf '%s %s from Debian %s source package, built %s in %ss\n' "$NAME" \
    "$(pkg-config --modversion "$PREFIX/lib/pkgconfig/$PC")" \
    "$(cat "$WORK/built-version" 2>/dev/null || echo "$DEB_VERSION")" \
    "$(date -u +%FT%TZ)" "$((SECONDS - t0))" >"$PREFIX/.built"
  rm -rf "$WORK"
  say "built $DEB_VERSION in $((SECONDS - t0))s"
}

debsrc_main() {
  debsrc_init
  case ${1:-} in
  build) cmd_build ;;
  prefix) printf '%s\n' "$PREFIX" ;;
  version) printf '%s\n' "$DEB_VERSION" ;;
  -h | --help | help) sed -n "${HELP_LINES}p" "$0" | sed 's/^# \{0,1\}//' ;;
  *)
    sed -n "${HELP_LINES}p" "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
  esac
}
