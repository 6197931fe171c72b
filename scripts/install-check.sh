#!/usr/bin/env bash
# Installs casestream into a scratch DESTDIR and uses the tree as a user would:
#  - every program and manual page is there, and groff reads each page without a warning;
#  - the systemd units name the installed programs and systemd-analyze accepts them (when the
#    machine has systemd-analyze);
#  - `pkg-config --cflags --libs casestream` builds the docs/producer.md example, which then
#    refuses an invalid submission with the validator's reason (exit 65), before any broker;
#  - with the stack's CASESTREAM_PG set, the installed `casestream migrate`, run outside the
#    source tree, finds the installed migrations without --sql-dir.
# Exits non-zero, naming what failed, on the first problem.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=/usr/local
root=$tmp/root

fail() {
  echo "install-check: FAILED: $*" >&2
  exit 1
}

make --no-print-directory install DESTDIR="$root" PREFIX="$prefix" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log" >&2; fail "make install"; }

for prog in casestream casestream-produce casestream-worker casestream-indexer casestream-api; do
  [[ -x $root$prefix/bin/$prog ]] || fail "bin/$prog is missing"
  page=$root$prefix/share/man/man1/$prog.1
  [[ -s $page ]] || fail "man1/$prog.1 is missing"
  warnings=$(groff -man -ww -z "$page" 2>&1) || fail "groff on $prog.1"
  [[ -z $warnings ]] || fail "groff warns on $prog.1: $warnings"
  # Every flag --help lists is in the page (the page is made from the same table).
  for flag in $("$root$prefix/bin/$prog" --help | grep -oE '^  --[a-z-]+' | sort -u); do
    grep -qF -- "$(sed 's/-/\\-/g' <<<"$flag")" "$page" || fail "$prog.1 lacks $flag"
  done
done
ls "$root$prefix/share/casestream/sql/"*.sql >/dev/null || fail "no migrations installed"
[[ -f $root$prefix/include/casestream/producer.h ]] || fail "include/casestream/producer.h"

for unit in "$root$prefix"/lib/systemd/system/*.service; do
  exe=$(sed -n 's/^ExecStart=//p' "$unit")
  [[ $exe == "$prefix/bin/"* && -x $root$exe ]] || fail "$(basename "$unit"): ExecStart=$exe"
  if ! command -v systemd-analyze >/dev/null; then
    echo "install-check: no systemd-analyze on this machine: $(basename "$unit") checked for ExecStart only"
  else
    # Verified against the installed tree: ExecStart must exist where the unit says.
    sed "s|^ExecStart=|ExecStart=$root|" "$unit" >"$tmp/$(basename "$unit")"
    out=$(systemd-analyze verify --man=no "$tmp/$(basename "$unit")" 2>&1 |
      grep -v -e 'Cannot find unit' -e 'user.*casestream' -e 'group.*casestream' || true)
    [[ -z $out ]] || fail "systemd-analyze verify $(basename "$unit"): $out"
  fi
done

# The docs/producer.md example, built with the installed pkg-config file only.
awk '/^### From C:/ {c = 1} c && /^```c$/ {p = 1; next} p && /^```$/ {exit} p' \
  docs/producer.md >"$tmp/submit.c"
[[ -s $tmp/submit.c ]] || fail "no C example in docs/producer.md"
# The installed casestream.pc, moved to the scratch tree (a sysroot would move the
# librdkafka paths too). Its Requires: rdkafka is the librdkafka the programs were built
# with: the one under .stack/ (scripts/librdkafka.sh, found at run time through an rpath,
# as the programs find it), or the system's with SYSTEM_RDKAFKA set; the same for hiredis
# (scripts/hiredis.sh, or the system's with SYSTEM_HIREDIS set).
mkdir -p "$tmp/pkgconfig"
sed "s|^prefix=.*|prefix=$root$prefix|" "$root$prefix/lib/pkgconfig/casestream.pc" \
  >"$tmp/pkgconfig/casestream.pc"
export PKG_CONFIG_PATH=$tmp/pkgconfig
rpath=
if [[ -z ${SYSTEM_RDKAFKA:-} ]]; then
  rdkafka=$(scripts/librdkafka.sh prefix)/lib
  PKG_CONFIG_PATH=$PKG_CONFIG_PATH:$rdkafka/pkgconfig
  rpath=-Wl,-rpath,$rdkafka
fi
if [[ -z ${SYSTEM_HIREDIS:-} ]]; then
  hiredis=$(scripts/hiredis.sh prefix)/lib
  PKG_CONFIG_PATH=$PKG_CONFIG_PATH:$hiredis/pkgconfig
  rpath="$rpath -Wl,-rpath,$hiredis"
fi
flags=$(pkg-config --cflags --libs casestream) || fail "pkg-config casestream"
# shellcheck disable=SC2086 # flags are words
cc -std=c11 -Wall -Wextra -Werror "$tmp/submit.c" $flags $rpath -o "$tmp/submit" ||
  fail "the docs/producer.md example does not build with pkg-config casestream"
echo '{"case_reference": "not a number"}' >"$tmp/bad.json"
set +e
"$tmp/submit" "$tmp/bad.json" 2>"$tmp/submit.err"
rc=$?
set -e
[[ $rc -eq 65 ]] && grep -q 'not a valid submission' "$tmp/submit.err" ||
  fail "the example on an invalid submission: exit $rc, $(cat "$tmp/submit.err")"

if [[ -n ${CASESTREAM_PG:-} ]]; then
  (cd "$tmp" && "$root$prefix/bin/casestream" migrate >"$tmp/migrate.out" 2>&1) ||
    fail "installed casestream migrate: $(cat "$tmp/migrate.out")"
  grep -q 'schema up to date' "$tmp/migrate.out" || fail "migrate: $(cat "$tmp/migrate.out")"
fi
echo "install-check: ok (installed into $root$prefix: programs, manual pages, migrations," \
  "C API with pkg-config, systemd units${CASESTREAM_PG:+; migrate found the installed migrations})"
cd "$top"
