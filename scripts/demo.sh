#!/usr/bin/env bash
# The demo behind `make run`: starts casestream-worker and casestream-indexer,
# pushes a mixed workload through casestream-produce, adds a few poison
# messages, and prints a summary read back from PostgreSQL and Elasticsearch.
# The programs keep running afterwards; `scripts/demo.sh stop` (make stop)
# stops them by pid.
#
#   scripts/demo.sh [run]       the demo (expects the stack up, the build done, schema and topics)
#   scripts/demo.sh start       only start the worker and the indexer
#   scripts/demo.sh stop        stop the worker and the indexer
set -euo pipefail

cd "$(dirname "$0")/.."
STACK_DIR=${CASESTREAM_STACK_DIR:-$PWD/.stack}
RUN=$STACK_DIR/run
LOG=$STACK_DIR/log
DEMO=$STACK_DIR/demo
CASES=${DEMO_CASES:-200}
EVENTS=${DEMO_EVENTS:-10}
mkdir -p "$RUN" "$LOG" "$DEMO"
eval "$(scripts/stack.sh env)"
: "${CASESTREAM_TOPIC_EVENTS:=case-events}"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_program() {
    local name=$1
    shift
    local pidfile=$RUN/$name.pid
    if alive "$pidfile"; then
        echo "$name already running (pid $(cat "$pidfile"))"
        return
    fi
    nohup "build/$name" "$@" >>"$LOG/$name.log" 2>&1 &
    echo $! >"$pidfile"
    echo "started $name (pid $!, log $LOG/$name.log)"
}

stop_program() {
    local name=$1 pidfile=$RUN/$1.pid
    alive "$pidfile" || { rm -f "$pidfile"; return 0; }
    local pid
    pid=$(cat "$pidfile")
    kill -TERM "$pid"
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "$name (pid $pid) did not stop within 20 s; sending SIGKILL" >&2
        kill -KILL "$pid"
    fi
    rm -f "$pidfile"
    echo "stopped $name (pid $pid)"
}

psql_value() { psql "$CASESTREAM_PG" -XAtqc "$1"; }

es_count() { # $1 = JSON query
    curl -fsS -H 'Content-Type: application/json' "$CASESTREAM_ES/nfd_cases/_count" -d "$1" 2>/dev/null |
        sed -n 's/.*"count":\([0-9]*\).*/\1/p'
}

start_all() {
    start_program casestream-worker
    start_program casestream-indexer
}

run_demo() {
    start_all
    say "generating $CASES cases x $EVENTS submissions"
    build/casestream workload --cases "$CASES" --events "$EVENTS" >"$DEMO/workload.ndjson" 2>"$DEMO/expected.json"
    local base last
    base=$(sed -n 's/.*"first_reference":\([0-9]*\).*/\1/p' "$DEMO/expected.json")
    last=$((base + CASES - 1))
    say "producing $(wc -l <"$DEMO/workload.ndjson") submissions and waiting for their outcomes"
    build/casestream-produce --wait=300 "$DEMO/workload.ndjson" >"$DEMO/outcomes.ndjson"

    say "publishing 5 poison messages straight onto $CASESTREAM_TOPIC_EVENTS"
    {
        echo "$base|this is not JSON"
        echo "$base|[1,2,3]"
        echo "$base|{\"case_reference\":$base,\"case_type\":\"NFD\"}"
        echo "$base|{\"idempotency_key\":\"not-a-uuid\",\"case_reference\":$base,\"case_type\":\"NFD\",\"event_id\":\"e\",\"user_id\":\"u\"}"
        echo "$last|{\"idempotency_key\":\"00000000-0000-4000-8000-000000000000\",\"case_reference\":$base,\"case_type\":\"NFD\",\"event_id\":\"e\",\"user_id\":\"u\"}"
    } | kcat -P -b "$CASESTREAM_BROKERS" -t "$CASESTREAM_TOPIC_EVENTS" -K'|'

    say "waiting for PostgreSQL and Elasticsearch to agree"
    local pg_cases es_docs=0 range
    pg_cases=$(psql_value "SELECT count(*) FROM ccd.case_data WHERE reference BETWEEN $base AND $last")
    range="{\"query\":{\"range\":{\"reference\":{\"gte\":$base,\"lte\":$last}}}}"
    for _ in $(seq 1 120); do
        es_docs=$(es_count "$range")
        [[ ${es_docs:-0} -ge $pg_cases ]] && break
        sleep 1
    done
    local pg_rev es_rev
    pg_rev=$(psql_value "SELECT coalesce(sum(case_revision),0) FROM ccd.case_data WHERE reference BETWEEN $base AND $last")
    es_rev=$(curl -fsS -H 'Content-Type: application/json' "$CASESTREAM_ES/nfd_cases/_search" \
        -d "{\"size\":0,\"query\":$(sed 's/^{"query"://; s/}$//' <<<"$range"),\"aggs\":{\"r\":{\"sum\":{\"field\":\"case_revision\"}}}}" |
        sed -n 's/.*"r":{"value":\([0-9.]*\).*/\1/p')

    echo
    say "summary"
    echo "expected by the workload: $(cat "$DEMO/expected.json")"
    echo "outcomes received by casestream-produce --wait:"
    for s in applied duplicate conflict rejected invalid timeout; do
        printf '  %-10s %s\n' "$s" "$(grep -c "\"status\":\"$s\"" "$DEMO/outcomes.ndjson" || true)"
    done
    echo "poison messages in the DLQ for these cases: $(build/casestream dlq list --limit 1000000 |
        grep -c -e "\"key\":\"$base\"" -e "\"key\":\"$last\"" || true)"
    echo "cases in PostgreSQL:            $pg_cases (history rows: $(psql_value \
        "SELECT count(*) FROM ccd.case_event WHERE case_reference BETWEEN $base AND $last"), notes: $(psql_value \
        "SELECT count(*) FROM ccd.case_notes WHERE case_reference BETWEEN $base AND $last"))"
    echo "documents in Elasticsearch:     ${es_docs:-0}"
    echo "sum of revisions, PostgreSQL:   $pg_rev; Elasticsearch: ${es_rev%.0}"
    echo
    say "history of case $base (casestream case history $base)"
    build/casestream case history "$base"
    echo
    say "search: cases in state Issued whose applicant lives in Leeds"
    local hits
    hits=$(curl -fsS -H 'Content-Type: application/json' "$CASESTREAM_ES/nfd_cases/_search" -d "{
      \"size\": 5, \"_source\": [\"reference\", \"state\", \"case_revision\"],
      \"query\": {\"bool\": {\"filter\": [$(sed 's/^{"query"://; s/}$//' <<<"$range"),
        {\"term\": {\"state\": \"Issued\"}}, {\"match\": {\"data.applicant.city\": \"Leeds\"}}]}}}")
    echo "$(sed -n 's/.*"total":{"value":\([0-9]*\).*/\1/p' <<<"$hits") cases found; the first few:"
    grep -o '"_source":{[^}]*}' <<<"$hits" | sed 's/^"_source":/  /'
    echo
    echo "The worker and the indexer keep running (logs in $LOG/); 'make stop' stops them and the services."
}

case ${1:-run} in
run) run_demo ;;
start) start_all ;;
stop)
    stop_program casestream-worker
    stop_program casestream-indexer
    ;;
*)
    echo "usage: scripts/demo.sh [run|start|stop]" >&2
    exit 2
    ;;
esac
