# shellcheck shell=bash
# Helpers of the bench's scripts (bench/run.sh, bench/api.sh, bench/rebalance.sh,
# bench/import.sh), sourced after they set BENCH_ROW (the row letter their messages name; none
# for run.sh, whose messages say FAILED).
log() { printf '%s bench: %s\n' "$(date +%T)" "$*" >&2; }
die() {
    if [[ -n ${BENCH_ROW:-} ]]; then log "($BENCH_ROW) $*"; else log "FAILED: $*"; fi
    exit 1
}
now_ms() { date +%s%3N; }
sql() { psql "$CASESTREAM_PG" -XAtqc "$1"; }
# A TCP port free on loopback now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
