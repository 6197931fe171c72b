#!/usr/bin/env bash
# The chaos campaign (`make chaos`; `--short` runs inside `make test`).
#
# While a workload flows through its own topics, it SIGKILLs and restarts the
# workers and the indexer at random moments, and restarts PostgreSQL, Redis,
# Kafka and Elasticsearch once each. Then it waits for the pipeline to go
# quiet and checks, in SQL over what it read back from the topics and the
# index:
#   1. every submission has exactly one history row, or a non-applied outcome
#   2. no idempotency key is applied twice
#   3. each case's revisions are 1..n, in produce order
#   4. every submission got an outcome
#   5. the outbox is drained
#   6. every Elasticsearch document's revision equals PostgreSQL's
#   7. the DLQ holds exactly the poison messages
# It prints the counts and exits non-zero on any violation.
set -euo pipefail
cd "$(dirname "$0")/.."

CASES=200 EVENTS=50 KILLS=20 RATE=150 SERVICES="pg redis kafka es"
if [[ ${1:-} == --short ]]; then
    CASES=50 EVENTS=20 KILLS=6 RATE=200 SERVICES="pg redis"
fi
CASES=${CHAOS_CASES:-$CASES}
EVENTS=${CHAOS_EVENTS:-$EVENTS}
KILLS=${CHAOS_KILLS:-$KILLS}
RATE=${CHAOS_RATE:-$RATE}
POISON=10

eval "$(scripts/stack.sh env)"
run_id=chaos-$(date +%s)-$$
DIR=build/chaos/$run_id
mkdir -p "$DIR"
TOPICS=(--topic-events="$run_id-events" --topic-results="$run_id-results"
    --topic-changes="$run_id-changes" --topic-dlq="$run_id-dlq")
# A SIGKILLed member's partitions move after session.timeout.ms; 6 s keeps
# the campaign short (the default, 45 s, only slows it down).
GROUP=(--group="$run_id-workers" -X session.timeout.ms=6000)
IGROUP=(--indexer-group="$run_id-indexer" -X session.timeout.ms=6000)
declare -A PIDS=()
kills=0 restarts=0

log() { printf '%s chaos: %s\n' "$(date +%T)" "$*"; }

start() { # name -> starts build/<program> for that role
    local name=$1
    if [[ $name == indexer ]]; then
        build/casestream-indexer "${TOPICS[@]}" "${IGROUP[@]}" --metrics-port=0 \
            >>"$DIR/$name.log" 2>&1 &
    else
        build/casestream-worker "${TOPICS[@]}" "${GROUP[@]}" --metrics-port=0 \
            >>"$DIR/$name.log" 2>&1 &
    fi
    PIDS[$name]=$!
}

stop_all() {
    for name in "${!PIDS[@]}"; do
        kill -TERM "${PIDS[$name]}" 2>/dev/null || true
    done
    for name in "${!PIDS[@]}"; do
        wait "${PIDS[$name]}" 2>/dev/null || true
    done
}
trap stop_all EXIT

log "run $run_id: $CASES cases x $EVENTS submissions + $POISON poison, $KILLS kills, restarts of: $SERVICES"
build/casestream "${TOPICS[@]}" topics create >/dev/null
build/casestream workload --cases "$CASES" --events "$EVENTS" --seed "$$" \
    >"$DIR/workload.ndjson" 2>"$DIR/expected.json"
base=$(sed -n 's/.*"first_reference":\([0-9]*\).*/\1/p' "$DIR/expected.json")
last=$((base + CASES - 1))
total=$(wc -l <"$DIR/workload.ndjson")

start worker1
start worker2
start indexer
build/casestream-produce "${TOPICS[@]}" --rate="$RATE" "$DIR/workload.ndjson" \
    >"$DIR/produce.out" 2>"$DIR/produce.err" &
producer=$!
# Poison messages, keyed with our references so they land among the valid ones.
for i in $(seq 1 $POISON); do
    echo "$((base + i))|poison $i of $run_id: not JSON"
done | kcat -P -b "$CASESTREAM_BROKERS" -t "$run_id-events" -K'|'

# Kills at random moments over the production time, services restarted in between.
span=$(((total / RATE) + 10))
read -r -a services <<<"$SERVICES"
for k in $(seq 1 "$KILLS"); do
    sleep "$(awk -v s="$span" -v n="$KILLS" -v r="$RANDOM" 'BEGIN { printf "%.2f", (s / n) * (0.5 + r / 32767) }')"
    victims=(worker1 worker2 indexer)
    v=${victims[$((RANDOM % 3))]}
    kill -KILL "${PIDS[$v]}" 2>/dev/null || true
    wait "${PIDS[$v]}" 2>/dev/null || true
    kills=$((kills + 1))
    log "kill $kills: SIGKILL $v (pid ${PIDS[$v]})"
    start "$v"
    # Service restarts spread over the run.
    if ((${#services[@]} > 0 && k % (KILLS / (${#services[@]} + 1) + 1) == 0)); then
        s=${services[0]}
        services=("${services[@]:1}")
        log "restarting service $s"
        scripts/stack.sh restart "$s" >>"$DIR/stack.log" 2>&1
        restarts=$((restarts + 1))
    fi
done
for s in "${services[@]}"; do
    log "restarting service $s"
    scripts/stack.sh restart "$s" >>"$DIR/stack.log" 2>&1
    restarts=$((restarts + 1))
done
wait "$producer" || {
    log "casestream-produce failed:"
    tail -5 "$DIR/produce.err"
    exit 1
}
log "production finished: $(tail -1 "$DIR/produce.err")"

# Quiescence: every message has an outcome, the outbox is empty and the index
# holds every case at its PostgreSQL revision (sums compared; the per-case
# check follows).
psql_value() { psql "$CASESTREAM_PG" -XAtqc "$1"; }
events_total=$((total + POISON))
read_topic() { # topic file
    kcat -C -b "$CASESTREAM_BROKERS" -t "$1" -o beginning -e -q -f "$2" 2>/dev/null
}
es_query="{\"range\": {\"reference\": {\"gte\": $base, \"lte\": $last}}}"
es_revisions() {
    curl -fsS -H 'Content-Type: application/json' "$CASESTREAM_ES/nfd_cases/_search" -d "{
        \"size\": 0, \"query\": $es_query,
        \"aggs\": {\"r\": {\"sum\": {\"field\": \"case_revision\"}}}}" 2>/dev/null |
        sed -n 's/.*"r":{"value":\([0-9]*\).*/\1/p'
}
deadline=$((SECONDS + 600))
while :; do
    outcomes=$(read_topic "$run_id-results" '%s\n' | grep -o '"source":{[^}]*}' | sort -u | wc -l)
    unpublished=$(psql_value "SELECT count(*) FROM ccd.change_outbox WHERE published_at IS NULL
                              AND reference BETWEEN $base AND $last")
    pg_rev=$(psql_value "SELECT coalesce(sum(case_revision), 0) FROM ccd.case_data
                         WHERE reference BETWEEN $base AND $last")
    es_rev=$(es_revisions)
    if ((outcomes >= events_total && unpublished == 0 && ${es_rev:-0} == pg_rev)); then
        log "quiet: $outcomes outcomes, outbox drained, index at the database's revisions"
        break
    fi
    if ((SECONDS > deadline)); then
        log "not quiet after 600 s: outcomes $outcomes/$events_total, unpublished outbox" \
            "$unpublished, revisions in the index ${es_rev:-0} of $pg_rev"
        break
    fi
    sleep 2
done
curl -fsS -H 'Content-Type: application/json' "$CASESTREAM_ES/nfd_cases/_search" -d "{
    \"size\": 10000, \"_source\": [\"reference\", \"case_revision\"], \"query\": $es_query}" \
    >"$DIR/es.json"

read_topic "$run_id-results" '%s\n' >"$DIR/results.ndjson"
read_topic "$run_id-dlq" '%h\t%s\n' >"$DIR/dlq.txt"
grep -o '"_source":{[^}]*}' "$DIR/es.json" | sed 's/^"_source"://' >"$DIR/es.ndjson" || true

# Load everything into temporary tables and check the invariants in SQL.
raw_copy() { # table file
    printf '\\copy %s (doc) FROM %s WITH (FORMAT csv, QUOTE E%s, DELIMITER E%s)\n' \
        "$1" "$2" "'\\x01'" "'\\x02'"
}
psql "$CASESTREAM_PG" -XAq -v ON_ERROR_STOP=1 -v base="$base" -v last="$last" \
    -v events_total="$events_total" -v poison="$POISON" >"$DIR/invariants.txt" <<SQL
CREATE TEMP TABLE wl (line bigserial, doc text);
CREATE TEMP TABLE res (doc text);
CREATE TEMP TABLE dlq (doc text);
CREATE TEMP TABLE es (doc text);
$(raw_copy wl "$DIR/workload.ndjson")
$(raw_copy res "$DIR/results.ndjson")
$(raw_copy dlq "$DIR/dlq.txt")
$(raw_copy es "$DIR/es.ndjson")
CREATE TEMP VIEW sub AS SELECT line, (doc::jsonb->>'case_reference')::bigint AS ref,
    (doc::jsonb->>'idempotency_key')::uuid AS key FROM wl;
CREATE TEMP VIEW outc AS SELECT DISTINCT doc::jsonb AS o FROM res;
\pset format unaligned
\pset tuples_only on
SELECT 'submissions ' || (SELECT count(*) FROM wl) || ' poison ' || :poison
    || ' outcomes(distinct) ' || (SELECT count(*) FROM outc);
-- 1. exactly one history row, or a non-applied outcome
SELECT 'violation1 ' || count(*) FROM sub s
 WHERE (SELECT count(*) FROM ccd.case_event e WHERE e.case_reference = s.ref AND e.idempotency_key = s.key) <> 1
   AND NOT EXISTS (SELECT 1 FROM outc WHERE (o->>'case_reference')::bigint = s.ref
                   AND (o->>'idempotency_key')::uuid = s.key AND o->>'status' <> 'applied');
-- 2. no key applied twice (two different applied outcomes, or two rows)
SELECT 'violation2 ' || (
  (SELECT count(*) FROM (SELECT o->>'case_reference', o->>'idempotency_key' FROM outc
     WHERE o->>'status' = 'applied' GROUP BY 1, 2 HAVING count(DISTINCT o->>'event_seq') > 1) x)
  + (SELECT count(*) FROM (SELECT 1 FROM ccd.case_event WHERE case_reference BETWEEN :base AND :last
     GROUP BY case_reference, idempotency_key HAVING count(*) > 1) y));
-- 3. revisions 1..n in produce order
SELECT 'violation3 ' || count(*) FROM (
  SELECT e.case_reference, e.case_revision,
         row_number() OVER (PARTITION BY e.case_reference ORDER BY e.case_revision) AS rn,
         min(s.line) AS line,
         lag(min(s.line)) OVER (PARTITION BY e.case_reference ORDER BY e.case_revision) AS prev_line
    FROM ccd.case_event e JOIN sub s ON s.ref = e.case_reference AND s.key = e.idempotency_key
   WHERE e.case_reference BETWEEN :base AND :last
   GROUP BY e.case_reference, e.case_revision) h
 WHERE h.case_revision <> h.rn OR h.line < h.prev_line;
-- 4. every consumed message got an outcome (distinct source positions)
SELECT 'violation4 ' || greatest(0, :events_total - (SELECT count(DISTINCT o->'source') FROM outc));
-- 5. outbox drained
SELECT 'violation5 ' || count(*) FROM ccd.change_outbox
 WHERE published_at IS NULL AND reference BETWEEN :base AND :last;
-- 6. Elasticsearch revision = PostgreSQL revision, for every case
SELECT 'violation6 ' || count(*) FROM ccd.case_data c
  LEFT JOIN (SELECT (doc::jsonb->>'reference')::bigint AS ref,
                    (doc::jsonb->>'case_revision')::bigint AS rev FROM es) d ON d.ref = c.reference
 WHERE c.reference BETWEEN :base AND :last AND d.rev IS DISTINCT FROM c.case_revision;
-- 7. the DLQ holds exactly the poison messages (copies of one message count once)
SELECT 'violation7 ' || (abs(:poison - (SELECT count(DISTINCT split_part(doc, E'\t', 1)) FROM dlq))
   + (SELECT count(*) FROM dlq WHERE split_part(doc, E'\t', 2) NOT LIKE 'poison %'));
SQL

echo "== chaos $run_id"
echo "kills: $kills (SIGKILL of workers and indexer), service restarts: $restarts ($SERVICES)"
cat "$DIR/invariants.txt"
violations=$(awk '/^violation/ { s += $2 } END { print s + 0 }' "$DIR/invariants.txt")
names=("" "one history row or a non-applied outcome" "no key applied twice"
    "revisions 1..n in produce order" "an outcome for every message" "outbox drained"
    "Elasticsearch revision = PostgreSQL" "DLQ = the poison messages")
for i in 1 2 3 4 5 6 7; do
    n=$(awk -v k="violation$i" '$1 == k { print $2 }' "$DIR/invariants.txt")
    printf '  %-42s %s\n' "${names[$i]}" "$([[ $n == 0 ]] && echo ok || echo "VIOLATED ($n)")"
done
echo "violations: $violations"
stop_all
trap - EXIT
((violations == 0))
