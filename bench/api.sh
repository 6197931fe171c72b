#!/usr/bin/env bash
# bench (h): casestream-api under load, in one run (bench/README.md). bench/run.sh runs it; it
# also runs alone:
#
#   bench/api.sh [WORK_DIR]
#
# On topics, a group, ports, references and a case type of its own, with a worker, an indexer
# and casestream-api (a real S2S key) running:
#   GET:  BENCH_API_GET_CONNECTIONS (32) connections of wrk reading one case each request
#         (GET /ccd-persistence/cases?case-refs=R, R at random among BENCH_API_CASES cases
#         produced and applied first) for BENCH_API_SECONDS: requests/s and the p99;
#   SQL:  the same lookup as SQL, pgbench with as many clients on the same database (the case
#         row as JSON by its reference, prepared, as the reader role): transactions/s;
#   POST: BENCH_API_POST_CLIENTS (16) connections of wrk creating a case each request, as CCD
#         does (each waits for the worker's outcome): p50 and p99, requests/s.
# Every answer must be 2xx, or the phase fails. Writes WORK_DIR/h-rows.md (rows of the bench
# table) and WORK_DIR/h.json, and removes what it made.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${BENCH_API_SECONDS:-15}
GET_CONNS=${BENCH_API_GET_CONNECTIONS:-32}
POST_CLIENTS=${BENCH_API_POST_CLIENTS:-16}
CASES=${BENCH_API_CASES:-2000}
WORK=${1:-build/bench/api-$$}
mkdir -p "$WORK"

[[ -n ${CASESTREAM_PG:-} ]] || eval "$(scripts/stack.sh env)"
READER=${CASESTREAM_READER_PG:-$CASESTREAM_PG}
WORKER_PG=${CASESTREAM_WORKER_PG:-$CASESTREAM_PG}
PGBENCH=/usr/lib/postgresql/15/bin/pgbench
[[ -x $PGBENCH ]] || PGBENCH=$(command -v pgbench || true)
TAG=$(date +%s)_$$
RUN=bench-api-$TAG
TYPE=BenchApi-$TAG
INDEX=$(tr '[:upper:]' '[:lower:]' <<<"$TYPE")_cases
# References of its own: GET's cases, then POST's (threads 10^6 apart).
GET_BASE=$((8700000000000000 + (10#$(date +%s) % 100000) * 10000000))
POST_BASE=$((GET_BASE + 1000000))
declare -A PIDS=()

BENCH_ROW=h
# shellcheck source=bench/common.sh
source bench/common.sh
command -v wrk >/dev/null || die "wrk not found (scripts/stack.sh packages installs it)"
[[ -n $PGBENCH ]] || die "pgbench not found"

topics=(--topic-events="$RUN-events" --topic-results="$RUN-results"
    --topic-changes="$RUN-changes" --topic-dlq="$RUN-dlq")

clean_up() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    [[ ${BENCH_KEEP:-0} == 1 ]] && return 0
    sql "DELETE FROM ccd.change_outbox WHERE reference BETWEEN $GET_BASE AND $((POST_BASE + 99000000));
         DELETE FROM ccd.case_notes WHERE case_reference BETWEEN $GET_BASE AND $((POST_BASE + 99000000));
         DELETE FROM ccd.case_event WHERE case_reference BETWEEN $GET_BASE AND $((POST_BASE + 99000000));
         DELETE FROM ccd.case_data WHERE reference BETWEEN $GET_BASE AND $((POST_BASE + 99000000));
         DELETE FROM ccd.event_outcome WHERE topic LIKE '$RUN-%';" >/dev/null 2>&1 ||
        log "(h) could not delete the bench's cases"
    curl -fsS -X DELETE "$CASESTREAM_ES/$INDEX-000001" >/dev/null 2>&1 || true
    build/casestream "${topics[@]}" topics delete --yes >"$WORK/h-topics-delete.txt" 2>&1 ||
        log "(h) could not delete the bench's topics (see $WORK/h-topics-delete.txt)"
}
trap clean_up EXIT

# wrk's "1.23ms", "850.00us", "1.20s", "2.00m" in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        m = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1;
        if (m < 0) exit 1; printf "%.2f\n", n * m }'
}
# From a wrk --latency output: requests/s, p50 and p99 (ms), requests, non-2xx answers.
wrk_figures() { # file
    local f=$1
    RPS=$(awk '/^Requests\/sec:/ { print $2 }' "$f")
    P50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$f")")
    P99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$f")")
    REQS=$(awk '/requests in/ { print $1 }' "$f")
    NON2XX=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$f")
    NON2XX=${NON2XX:-0}
    SOCKERR=$(awk '/Socket errors:/ { print $0 }' "$f")
    [[ -n $RPS && -n $P99 && -n $REQS ]] || die "could not read wrk's output $f"
}

# --- the programs --------------------------------------------------------------------------
build/casestream "${topics[@]}" topics create >"$WORK/h-topics.txt" 2>&1 ||
    die "could not create the topics: $(tail -1 "$WORK/h-topics.txt")"
KEY=$WORK/h-s2s.key
head -c 48 /dev/urandom | base64 >"$KEY"
S2S=$(build/casestream token --service ccd_data --s2s-key-file="$KEY" --ttl 3600)
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
USER_TOKEN="$(printf '{"alg":"HS256","typ":"JWT"}' | b64url).$(printf \
    '{"sub":"bench@example.com","uid":"u-bench","given_name":"Bench","family_name":"User"}' |
    b64url).c2lnbmF0dXJl"
export S2S USER_TOKEN CASE_TYPE=$TYPE
W_PORT=$(free_port)
I_PORT=$(free_port)
API_PORT=$(free_port)
build/casestream-worker "${topics[@]}" --group="$RUN-worker" --metrics-port="$W_PORT" \
    --pg="$WORKER_PG" >"$WORK/h-worker.log" 2>&1 &
PIDS[worker]=$!
build/casestream-indexer "${topics[@]}" --indexer-group="$RUN-indexer" --metrics-port="$I_PORT" \
    --pg="$WORKER_PG" >"$WORK/h-indexer.log" 2>&1 &
PIDS[indexer]=$!
build/casestream-api "${topics[@]:0:2}" --pg="$READER" --s2s-key-file="$KEY" --api-port="$API_PORT" \
    >"$WORK/h-api.log" 2>&1 &
PIDS[api]=$!
API=http://127.0.0.1:$API_PORT
for _ in $(seq 1 300); do
    curl -fsS "$API/readyz" >/dev/null 2>&1 && break
    kill -0 "${PIDS[api]}" 2>/dev/null || die "casestream-api exited: $(tail -2 "$WORK/h-api.log")"
    sleep 0.2
done
curl -fsS "$API/readyz" >/dev/null || die "casestream-api not ready in 60 s: $(curl -s "$API/readyz")"

# --- GET against the same lookup as SQL ------------------------------------------------------
log "(h) $CASES cases for the reads, through the worker"
build/casestream workload --cases "$CASES" --events 1 --base-ref "$GET_BASE" 2>/dev/null |
    sed "s/\"case_type\":\"NFD\"/\"case_type\":\"$TYPE\"/" >"$WORK/h-cases.ndjson"
build/casestream-produce "${topics[@]}" "$WORK/h-cases.ndjson" >"$WORK/h-produce.log" 2>&1 ||
    die "could not produce the cases: $(tail -2 "$WORK/h-produce.log")"
deadline=$(($(now_ms) + 300000))
while (($(sql "SELECT count(*) FROM ccd.case_data WHERE reference BETWEEN $GET_BASE AND $((GET_BASE + CASES - 1))") < CASES)); do
    (($(now_ms) < deadline)) || die "the worker did not apply the $CASES cases within 300 s"
    sleep 0.5
done
export REF_BASE=$GET_BASE REF_COUNT=$CASES
# What earlier phases (and the cases above) left in the page cache goes to disk now: the kernel's
# writeback of it would otherwise land in the middle of a measurement, as a stall of every fsync.
sync
log "(h) GET: wrk, $GET_CONNS connections, ${SECS} s"
wrk -t2 -c"$GET_CONNS" -d"${SECS}s" --latency -s bench/api_get.lua "$API" >"$WORK/h-get.txt" 2>&1 ||
    die "wrk GET failed: $(tail -2 "$WORK/h-get.txt")"
wrk_figures "$WORK/h-get.txt"
((NON2XX == 0)) || die "GET: $NON2XX answers were not 2xx (see $WORK/h-get.txt)"
GET_RPS=$RPS GET_P50=$P50 GET_P99=$P99 GET_REQS=$REQS GET_ERR=$SOCKERR
# How many reads each query served (the API reads the cases of concurrent reads together).
curl -fsS "$API/metrics" >"$WORK/h-metrics.txt" || die "could not read the API's /metrics"
READS=$(awk '$1 == "casestream_api_case_reads_total" { print $2 }' "$WORK/h-metrics.txt")
QUERIES=$(awk '$1 == "casestream_api_case_queries_total" { print $2 }' "$WORK/h-metrics.txt")
[[ -n $READS && -n $QUERIES ]] || die "the API's /metrics has no case reads or queries"
PER_QUERY=$(awk -v r="$READS" -v q="$QUERIES" 'BEGIN { printf "%.1f", q ? r / q : 0 }')
cat >"$WORK/h-lookup.sql" <<SQL
\\set ref random($GET_BASE, $((GET_BASE + CASES - 1)))
SELECT row_to_json(c) FROM ccd.case_data c WHERE c.reference = :ref;
SQL
log "(h) the same lookup as SQL: pgbench, $GET_CONNS clients, ${SECS} s"
# pgbench takes a conninfo as its database name.
"$PGBENCH" -n -M prepared -c "$GET_CONNS" -j 2 -T "$SECS" -f "$WORK/h-lookup.sql" "$READER" \
    >"$WORK/h-sql.txt" 2>&1 || die "pgbench failed: $(tail -2 "$WORK/h-sql.txt")"
SQL_TPS=$(awk '/^tps = / { print $3; exit }' "$WORK/h-sql.txt")
[[ -n $SQL_TPS ]] || die "could not read pgbench's output $WORK/h-sql.txt"
GET_RATIO=$(awk -v a="$GET_RPS" -v b="$SQL_TPS" 'BEGIN { printf "%.2f", a / b }')

# --- POST: a create each request, answered once the worker applied it -----------------------
export REF_BASE=$POST_BASE
PG_PID=$(stack_pid postgres) KAFKA_PID=$(stack_pid kafka) ES_PID=$(stack_pid es) REDIS_PID=$(stack_pid redis)
# Clock ticks: the machine's (total, idle), then each service's and program's, as CPU_NAMES.
CPU_NAMES=(PostgreSQL Kafka Elasticsearch Redis worker indexer api)
cpu_ticks() {
    echo "$(machine_ticks) $(tree_ticks "${PG_PID:-0}") $(tree_ticks "${KAFKA_PID:-0}")" \
        "$(tree_ticks "${ES_PID:-0}") $(ticks "${REDIS_PID:-0}") $(ticks "${PIDS[worker]}")" \
        "$(ticks "${PIDS[indexer]}") $(ticks "${PIDS[api]}")"
}
log "(h) POST: wrk, $POST_CLIENTS connections, ${SECS} s, worker and indexer running"
# The worker's and the API's histograms, scraped together before and after.
scrape() { # file
    { curl -fsS "http://127.0.0.1:$W_PORT/metrics" && curl -fsS "$API/metrics"; } >"$1" ||
        die "could not read the worker's or the API's /metrics"
}
POST_STAGES=(worker_poll_delay "casestream_worker_poll_delay_seconds" "worker: poll delay (Kafka timestamp → poll)"
    worker_commit "casestream_worker_commit_seconds" "worker: commit of a batch (appliers and COMMIT)"
    outcome_delay "casestream_api_outcome_delay_seconds" "outcome to the API (the worker's send → read)"
    until_outcome 'casestream_api_submit_stage_seconds{stage="outcome"}' "API: headers → woken by the outcome"
    render 'casestream_api_submit_stage_seconds{stage="render"}' "API: answer read from PostgreSQL"
    request 'casestream_api_request_seconds{route="submit"}' "API: whole request")
sync # as before GET
scrape "$WORK/h-post-metrics.before"
read -ra CPU0 <<<"$(cpu_ticks)"
STEAL0=$(steal_ticks)
T0=$(now_ms)
wrk -t2 -c"$POST_CLIENTS" -d"${SECS}s" --latency -s bench/api_post.lua "$API" >"$WORK/h-post.txt" 2>&1 ||
    die "wrk POST failed: $(tail -2 "$WORK/h-post.txt")"
STEAL1=$(steal_ticks)
read -ra CPU1 <<<"$(cpu_ticks)"
ELAPSED_MS=$(($(now_ms) - T0))
scrape "$WORK/h-post-metrics.after"
stages POST_STAGES "$WORK/h-post-metrics.before" "$WORK/h-post-metrics.after"
# "PostgreSQL 80, Kafka 45, …" (% of one core while wrk ran) and the machine's busy %.
POST_CPU=$(for i in "${!CPU_NAMES[@]}"; do
    awk -v n="${CPU_NAMES[i]}" -v t=$((CPU1[i + 2] - CPU0[i + 2])) -v hz="$HZ" -v ms="$ELAPSED_MS" \
        'BEGIN { printf "%s %.0f\n", n, 100 * t / hz / (ms / 1000) }'
done | paste -sd, - | sed 's/,/, /g')
POST_BUSY=$(awk -v t=$((CPU1[0] - CPU0[0])) -v i=$((CPU1[1] - CPU0[1])) \
    'BEGIN { printf "%.0f", (t > 0 ? 100 * (t - i) / t : 0) }')
# Of the machine's time, the share the hypervisor gave to others (steal): the noise of the run.
POST_STEAL=$(awk -v t=$((CPU1[0] - CPU0[0])) -v st=$((STEAL1 - STEAL0)) \
    'BEGIN { printf "%.0f", (t > 0 ? 100 * st / t : 0) }')
wrk_figures "$WORK/h-post.txt"
((NON2XX == 0)) || die "POST: $NON2XX answers were not 2xx (see $WORK/h-post.txt)"
POST_RPS=$RPS POST_P50=$P50 POST_P99=$P99 POST_REQS=$REQS POST_ERR=$SOCKERR
# Every request answered 201 created its case, once.
CREATED=$(sql "SELECT count(*) FROM ccd.case_data WHERE reference > $POST_BASE AND reference < $((POST_BASE + 99000000))")
((CREATED >= POST_REQS)) || die "POST: wrk counted $POST_REQS answers but only $CREATED cases exist"

met() { awk -v v="$1" -v t="$2" -v dir="$3" 'BEGIN { print ((dir == "ge" ? v >= t : v <= t) ? "true" : "false") }'; }
cat >"$WORK/h-rows.md" <<EOF
| h | GET one case through casestream-api ($GET_CONNS connections, wrk) | **$(printf '%.0f' "$GET_RPS") req/s**, p99 $GET_P99 ms | p50 $GET_P50 ms, $GET_REQS requests in ${SECS} s among $CASES cases; ${GET_ERR:-no socket errors}; $READS reads by $QUERIES queries, $PER_QUERY reads per query |
| h | the same lookup as SQL (pgbench, $GET_CONNS clients, prepared) | $(printf '%.0f' "$SQL_TPS") tps | \`SELECT row_to_json(c) FROM ccd.case_data c WHERE c.reference = :ref\` as the reader role |
| h | GET / SQL | **$GET_RATIO** | target ≥ 0.5: $(met "$GET_RATIO" 0.5 ge) |
| h | POST submit, a create each ($POST_CLIENTS connections, wrk, worker and indexer running) | **p99 $POST_P99 ms**, p50 $POST_P50 ms | $POST_REQS requests, $(printf '%.0f' "$POST_RPS") req/s; target p99 ≤ 100 ms: $(met "$POST_P99" 100 le); ${POST_ERR:-no socket errors}; while wrk ran, % of one core: $POST_CPU; the machine ($(nproc) cores) $POST_BUSY% busy, $POST_STEAL% of its time stolen by the hypervisor |
| h | what a POST's time is made of | see how | histograms of the worker and the API over the POST run (DESIGN §8), per submission or per batch (the worker's commit); buckets 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500 ms, 1 s…: $STAGE_CELL |
EOF
cat >"$WORK/h.json" <<EOF
{"get": {"connections": $GET_CONNS, "seconds": $SECS, "requests": $GET_REQS, "rps": $GET_RPS,
         "p50_ms": $GET_P50, "p99_ms": $GET_P99, "case_reads": $READS, "case_queries": $QUERIES},
 "sql": {"clients": $GET_CONNS, "tps": $SQL_TPS},
 "get_over_sql": $GET_RATIO, "get_target": 0.5, "get_target_met": $(met "$GET_RATIO" 0.5 ge),
 "post": {"connections": $POST_CLIENTS, "seconds": $SECS, "requests": $POST_REQS, "rps": $POST_RPS,
          "p50_ms": $POST_P50, "p99_ms": $POST_P99, "machine_busy_pct": $POST_BUSY,
          "machine_steal_pct": $POST_STEAL,
          "stages": {$STAGE_JSON},
          "cpu_pct": {$(sed -E 's/([A-Za-z]+) ([0-9]+)/"\1": \2/g' <<<"$POST_CPU")}},
 "post_p99_target_ms": 100, "post_target_met": $(met "$POST_P99" 100 le)}
EOF
cat "$WORK/h-rows.md"
