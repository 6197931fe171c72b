#!/usr/bin/env bash
# The demo behind `make run`: starts casestream-worker, casestream-indexer and
# casestream-api, pushes a mixed workload through casestream-produce, adds a few
# poison messages, prints a summary read back from PostgreSQL and
# Elasticsearch, and ends with a CCD-like session through casestream-api with
# curl, printing each command. The programs keep running afterwards;
# `scripts/demo.sh stop` (make stop) stops them by pid.
#
#   scripts/demo.sh [run]       the demo (expects the stack up, the build done, schema and topics)
#   scripts/demo.sh start       only start the worker, the indexer and the API
#   scripts/demo.sh stop        stop them
set -euo pipefail

cd "$(dirname "$0")/.."
STACK_DIR=${CASESTREAM_STACK_DIR:-$PWD/.stack}
RUN=$STACK_DIR/run
LOG=$STACK_DIR/log
DEMO=$STACK_DIR/demo
CASES=${DEMO_CASES:-200}
EVENTS=${DEMO_EVENTS:-10}
WAIT=${DEMO_WAIT:-120} # seconds Elasticsearch has to catch up with PostgreSQL
INDEX=nfd_cases        # the workload's case type is NFD
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
    # As the stack's services: the unprivileged user, the worker's database role.
    local as=()
    [[ $(id -u) -ne 0 ]] || as=(setpriv --reuid=casestream --regid=casestream --init-groups --)
    nohup "${as[@]}" "build/$name" --pg="$CASESTREAM_WORKER_PG" "$@" >>"$LOG/$name.log" 2>&1 &
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

# POSTs the JSON $2 to $CASESTREAM_ES/$INDEX/$1 and prints the answer. The indexer creates the
# index with its first document, so until then Elasticsearch answers 404: that prints nothing
# and succeeds ("not yet"). Any other status, or no answer, fails with the reason on stderr.
es_query() {
    local out code
    out=$(curl -sS -w '\n%{http_code}' -H 'Content-Type: application/json' \
        "$CASESTREAM_ES/$INDEX/$1" -d "$2") || return 1
    code=${out##*$'\n'}
    case $code in
    200) printf '%s\n' "${out%$'\n'*}" ;;
    404) ;;
    *)
        echo "elasticsearch: HTTP $code for $INDEX/$1: ${out%$'\n'*}" >&2
        return 1
        ;;
    esac
}

# Documents matching the query $1, and the sum of their revisions ("0 0" while there is no index).
es_docs_and_revisions() {
    local out docs revs
    out=$(es_query _search "{\"size\":0,\"track_total_hits\":true,$(sed 's/^{//; s/}$//' <<<"$1"),
        \"aggs\":{\"r\":{\"sum\":{\"field\":\"case_revision\"}}}}") || return 1
    docs=$(sed -n 's/.*"total":{"value":\([0-9]*\).*/\1/p' <<<"$out")
    revs=$(sed -n 's/.*"r":{"value":\([0-9]*\).*/\1/p' <<<"$out")
    echo "${docs:-0} ${revs:-0}"
}

API_PORT=${CASESTREAM_API_PORT:-4550}
S2S_KEY=$DEMO/s2s.key # the demo's S2S secret, shared with its "CCD"

start_all() {
    start_program casestream-worker
    start_program casestream-indexer
    [[ -s $S2S_KEY ]] || (umask 022 && head -c 48 /dev/urandom | base64 >"$S2S_KEY")
    start_program casestream-api --pg="$CASESTREAM_READER_PG" --s2s-key-file="$S2S_KEY" \
        --api-port="$API_PORT"
    for _ in $(seq 1 150); do
        curl -sf "http://127.0.0.1:$API_PORT/readyz" >/dev/null && return 0
        sleep 0.2
    done
    echo "casestream-api did not become ready within 30 s: $(curl -s "http://127.0.0.1:$API_PORT/readyz")" \
        "(its log: $LOG/casestream-api.log)" >&2
    return 1
}

# Prints a command, then runs it (so a person can repeat it).
show() {
    printf '$ %s\n' "$1"
    eval "$1"
    echo
}

# What CCD data store does with a case it keeps in casestream: create, read, an update from a
# stale version (409), history, supplementary data. $1: a case reference of its own.
ccd_session() {
    local body=$DEMO/ccd
    mkdir -p "$body"
    API="http://127.0.0.1:$API_PORT"
    REF=$1
    S2S=$(build/casestream token --service ccd_data --s2s-key-file="$S2S_KEY")
    # The user's token: CCD has verified it; casestream-api reads uid, given_name, family_name.
    b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
    USER_TOKEN="$(printf '{"alg":"HS256","typ":"JWT"}' | b64url).$(printf \
        '{"sub":"ann@example.com","uid":"u-ann","given_name":"Ann","family_name":"Clerk"}' |
        b64url).c2lnbmF0dXJl"
    cat >"$body/create.json" <<JSON
{"case_details": {"id": $REF, "jurisdiction": "DIVORCE", "case_type_id": "NFD", "state": "Submitted",
  "version": null, "security_classification": "PUBLIC", "data_classification": {},
  "case_data": {"applicant": {"name": "Ann Smith", "city": "Leeds"}}},
 "event_details": {"case_type": "NFD", "event_id": "create", "event_name": "Create case"}}
JSON
    for v in 0 1; do
        cat >"$body/issue-from-$v.json" <<JSON
{"case_details": {"id": $REF, "jurisdiction": "DIVORCE", "case_type_id": "NFD", "state": "Issued",
  "version": $v, "security_classification": "PUBLIC",
  "case_data": {"applicant": {"name": "Ann Smith", "city": "York"}}},
 "event_details": {"case_type": "NFD", "event_id": "issue", "event_name": "Issue"}}
JSON
    done
    echo '{"supplementary_data_updates": {"$set": {"orgs.org1": "Y"}, "$inc": {"views": 1}}}' \
        >"$body/supplementary.json"
    echo "To repeat these commands, set:"
    echo "  API=$API REF=$REF"
    echo "  S2S=\$(build/casestream token --service ccd_data --s2s-key-file=$S2S_KEY)"
    echo "  USER_TOKEN=$USER_TOKEN"
    echo
    local auth='-H "ServiceAuthorization: Bearer $S2S" -H "Authorization: Bearer $USER_TOKEN"'
    local post="curl -s -w '  HTTP %{http_code}\\n' $auth -H 'Content-Type: application/json'"
    local key='-H "Idempotency-Key: $(cat /proc/sys/kernel/random/uuid)"'
    say "create the case (201: the case right after its event)"
    show "$post $key \"\$API/ccd-persistence/cases\" -d @$body/create.json"
    say "read it as CCD does"
    show "curl -s -w '\\n' $auth \"\$API/ccd-persistence/cases?case-refs=\$REF\""
    say "an update from version 0, which is stale (409: CCD says the case was changed meanwhile)"
    show "$post $key \"\$API/ccd-persistence/cases\" -d @$body/issue-from-0.json"
    say "the same update from version 1, the case's (200)"
    show "$post $key \"\$API/ccd-persistence/cases\" -d @$body/issue-from-1.json"
    say "its history, newest first"
    show "curl -s -w '\\n' $auth \"\$API/ccd-persistence/cases/\$REF/history\""
    say "supplementary data: the whole map after the update"
    show "$post \"\$API/ccd-persistence/cases/\$REF/supplementary-data\" -d @$body/supplementary.json"
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

    say "waiting up to $WAIT s for Elasticsearch to agree with PostgreSQL"
    local pg_cases pg_rev range es es_docs=0 es_rev=0 agreed=false deadline=$((SECONDS + WAIT))
    pg_cases=$(psql_value "SELECT count(*) FROM ccd.case_data WHERE reference BETWEEN $base AND $last")
    pg_rev=$(psql_value "SELECT coalesce(sum(case_revision),0) FROM ccd.case_data WHERE reference BETWEEN $base AND $last")
    range="{\"query\":{\"range\":{\"reference\":{\"gte\":$base,\"lte\":$last}}}}"
    # Every case indexed at its latest revision. Until the indexer has created the index (404)
    # or while Elasticsearch is busy, ask again until the deadline.
    while :; do
        if es=$(es_docs_and_revisions "$range" 2>"$DEMO/es.err"); then
            read -r es_docs es_rev <<<"$es"
            if [[ $es_docs -eq $pg_cases && $es_rev -eq $pg_rev ]]; then
                agreed=true
                break
            fi
        fi
        ((SECONDS < deadline)) || break
        sleep 1
    done
    if ! $agreed; then
        echo "Elasticsearch did not catch up within $WAIT s: $es_docs of $pg_cases cases, revisions" \
            "$es_rev of $pg_rev $(cat "$DEMO/es.err")" >&2
        echo "(the indexer's log: $LOG/casestream-indexer.log; DEMO_WAIT=<seconds> waits longer)" >&2
    fi

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
    echo "documents in Elasticsearch:     $es_docs"
    echo "sum of revisions, PostgreSQL:   $pg_rev; Elasticsearch: $es_rev"
    echo
    say "case $base as CCD reads it (casestream case show $base)"
    build/casestream --pg="$CASESTREAM_READER_PG" case show "$base"
    echo
    say "history of case $base as CCD reads it, newest first (casestream case history $base)"
    build/casestream --pg="$CASESTREAM_READER_PG" case history "$base"
    echo
    say "search, as CCD queries $INDEX: cases in state Issued whose applicant lives in Leeds"
    local hits found
    # CCD's state filter sends lower-case state ids; the index compares them without case.
    hits=$(es_query _search "{
      \"size\": 5, \"_source\": [\"id\", \"reference\", \"state\", \"case_revision\", \"last_modified\"],
      \"query\": {\"bool\": {\"filter\": [$(sed 's/^{"query"://; s/}$//' <<<"$range"),
        {\"terms\": {\"state\": [\"issued\"]}}, {\"match\": {\"data.applicant.city\": \"Leeds\"}}]}}}") || hits=
    found=$(sed -n 's/.*"total":{"value":\([0-9]*\).*/\1/p' <<<"$hits")
    echo "${found:-0} cases found; the first few:"
    grep -o '"_source":{[^}]*}' <<<"$hits" | sed 's/^"_source":/  /' || true
    echo
    say "a CCD-like session through casestream-api (port $API_PORT), with curl"
    ccd_session "$((last + 1))"
    echo "The worker, the indexer and the API keep running (logs in $LOG/); 'make stop' stops them and the services."
    $agreed
}

case ${1:-run} in
run) run_demo ;;
start) start_all ;;
stop)
    stop_program casestream-api
    stop_program casestream-worker
    stop_program casestream-indexer
    ;;
*)
    echo "usage: scripts/demo.sh [run|start|stop]" >&2
    exit 2
    ;;
esac
