# shellcheck shell=bash
# Helpers of the bench's phase scripts (bench/api.sh, bench/rebalance.sh), sourced after they
# set BENCH_ROW (the row letter their messages name).
log() { printf '%s bench: %s\n' "$(date +%T)" "$*" >&2; }
die() {
    log "($BENCH_ROW) $*"
    exit 1
}
now_ms() { date +%s%3N; }
sql() { psql "$CASESTREAM_PG" -XAtqc "$1"; }
# A TCP port free on loopback now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
