#!/usr/bin/env bash
# The chaos campaign (`make chaos`; `--short` runs inside `make test`).
#
# While a workload flows through its own topics to three workers and two
# indexers in one group each, it SIGKILLs members at random moments (and
# starts them again), SIGSTOPs one worker past its session timeout and lets
# it go on (a zombie whose partitions moved), and crashes PostgreSQL, Redis,
# Kafka and Elasticsearch once each with SIGKILL. On a stack of three Kafka
# brokers or more (scripts/stack.sh up --kafka-brokers 3, as `make chaos`
# runs it) the run's topics are replicated three times with
# min.insync.replicas 2, and a broker phase runs during the load: it SIGKILLs
# the broker that leads the busiest partitions, starts it again after a
# while, waits until every replica is back in sync, and repeats. Poison is mixed into the
# load: a real of 2^63 or more, notes that make a change document too large
# for the changes topic, an idempotency key reused with another payload,
# numbers that cannot be kept, a message of about 1 MB that is not JSON, and
# a few more that are not JSON. The workload carries CCD's optional fields
# (`casestream workload --ccd`) and supplementary data updates; three more
# producers send $inc updates to the same cases at the same time (some of them
# twice, with the same key); a fifth of the cases are created past their
# retention date, and `casestream dispose` runs during the load, while members
# are killed, and once more when it is over. No program is restarted by hand:
# the pipeline must settle on its own. Then it checks, in SQL over what it read
# back from the topics, the index and Redis:
#   1. every submission has exactly one history row, or a non-applied outcome
#   2. no idempotency key is applied twice
#   3. each case's revisions are 1..n, in produce order
#   4. every message got an outcome, the same in every copy (but that a message
#      of a disposed case answered from Redis alone as a duplicate and
#      delivered again after the disposal is answered as disposed, DESIGN §4)
#   5. the outbox is drained
#   6. every case has one Elasticsearch document, under its id, whose
#      revision equals PostgreSQL's
#   7. the DLQ holds exactly the poison the validator refuses: the messages
#      that are not JSON and the numbers that cannot be kept (rejected), each
#      with its reason; nothing refused from a case's state (a key reused with
#      another payload, a disposed case) is there
#   8. every outcome agrees with PostgreSQL (applied: the history row's
#      version, revision and sequence; duplicate: the applied row's revision)
#   9. every document in Elasticsearch equals PostgreSQL's change document
#  10. the poison got the outcome it must (kept numbers applied, the others
#      rejected)
#  11. supplementary data adds up exactly: each live case's counters.views is
#      the sum of the $inc of its applied updates (a key sent twice counts
#      once), each history row's map the sum up to its revision, and each
#      applied update's outcome carries its history row's map
#  12. a disposed case is gone from PostgreSQL: no case row, history, notes
#      or outbox row (but its disposal document); the outcomes recorded for
#      its messages stay, to answer their redeliveries (15 checks they did)
#  13. a disposed case has no document in Elasticsearch
#  14. a disposed case has no idempotency entry in Redis, not even of the
#      submissions a worker applied just before the disposal and wrote to
#      Redis after it (DESIGN §10: dispose marks the case first)
#  15. a disposed case has its disposal record, whose last revision is that of
#      its last applied outcome, and one published disposal document; every
#      case dispose took was past its date, and none past its date is left
#  16. no disposed case comes back: no applied outcome above its last
#      revision, and the rejections that name a disposal are its own
#  17. every history row of a live case holds the CCD fields its submission
#      gave (event_name, user and proxy names, state_name, case_type_version,
#      significant_item, summary, description)
# It prints the counts and exits non-zero on any violation. The run's cases are
# of a case type of their own (the run id), so dispose touches no other case.
set -euo pipefail
cd "$(dirname "$0")/.."

CASES=200 EVENTS=50 KILLS=20 RATE=150 SERVICES="pg redis kafka es" BROKER_KILLS=3
if [[ ${1:-} == --short ]]; then
    CASES=50 EVENTS=20 KILLS=6 RATE=200 SERVICES="pg redis" BROKER_KILLS=1
fi
INC_PRODUCERS=3
WORKERS=(worker1 worker2 worker3)
INDEXERS=(indexer1 indexer2)
# The stack's settings, unless the caller gave its own (a database of its own, say).
while read -r line; do
    var=${line#export }
    var=${var%%=*}
    [[ -n ${!var:-} ]] || eval "$line"
done < <(scripts/stack.sh env)
# The broker phase needs three brokers: replication 3, min.insync.replicas 2.
brokers=$(awk -F, '{ print NF }' <<<"$CASESTREAM_BROKERS")
if ((brokers >= 3)) && [[ ${1:-} != --short ]]; then
    # A broker's kill, restart and catch-up take 30 to 60 s on a small
    # machine: production at 60/s (about 170 s) keeps the load on for them.
    RATE=60
fi
CASES=${CHAOS_CASES:-$CASES}
EVENTS=${CHAOS_EVENTS:-$EVENTS}
KILLS=${CHAOS_KILLS:-$KILLS}
RATE=${CHAOS_RATE:-$RATE}
SERVICES=${CHAOS_SERVICES-$SERVICES}
BROKER_KILLS=${CHAOS_BROKER_KILLS:-$BROKER_KILLS}
((brokers >= 3)) || BROKER_KILLS=0
# A killed broker stays down this long before it is started again.
BROKER_DOWN=${CHAOS_BROKER_DOWN:-10}
POISON=10
EXPIRED=$((CASES / 5))

# Partitions of each of the run's topics (casestream's default).
PARTITIONS=12

run_id=chaos-$(date +%s)-$$
TYPE=$run_id
INDEX=${TYPE}_cases
DIR=build/chaos/$run_id
mkdir -p "$DIR"
TOPICS=(--topic-events="$run_id-events" --topic-results="$run_id-results"
    --topic-changes="$run_id-changes" --topic-dlq="$run_id-dlq")
# A SIGKILLed member's partitions move after the session timeout, which the
# consumer group protocol leaves to the broker: the stack's is 6 s
# (scripts/stack.sh; Kafka's default, 45 s, only slows the campaign down).
GROUP=(--group="$run_id-workers")
IGROUP=(--indexer-group="$run_id-indexer")
# The programs connect as the worker role (scripts/stack.sh env).
PG=(--pg="${CASESTREAM_WORKER_PG:-$CASESTREAM_PG}")
declare -A PIDS=()
kills=0 restarts=0 zombies=0 broker_phase=

log() { printf '%s chaos: %s\n' "$(date +%T)" "$*"; }

start() { # name -> starts build/<program> for that role
    local name=$1
    if [[ $name == indexer* ]]; then
        build/casestream-indexer "${TOPICS[@]}" "${IGROUP[@]}" --metrics-port=0 "${PG[@]}" \
            >>"$DIR/$name.log" 2>&1 &
    else
        build/casestream-worker "${TOPICS[@]}" "${GROUP[@]}" --metrics-port=0 "${PG[@]}" \
            >>"$DIR/$name.log" 2>&1 &
    fi
    PIDS[$name]=$!
}

stop_all() {
    if [[ -n $broker_phase ]] && kill -0 "$broker_phase" 2>/dev/null; then
        # Interrupted: no broker is left down.
        kill "$broker_phase" 2>/dev/null || true
        wait "$broker_phase" 2>/dev/null || true
        scripts/stack.sh start kafka >>"$DIR/stack.log" 2>&1 || true
    fi
    for name in "${!PIDS[@]}"; do
        kill -TERM "${PIDS[$name]}" 2>/dev/null || true
    done
    for name in "${!PIDS[@]}"; do
        wait "${PIDS[$name]}" 2>/dev/null || true
    done
}
trap stop_all EXIT

log "run $run_id: $CASES cases x $EVENTS submissions + poison + $INC_PRODUCERS producers of \$inc," \
    "$EXPIRED cases past their retention, ${#WORKERS[@]} workers, ${#INDEXERS[@]} indexers," \
    "$KILLS kills, crashes of: $SERVICES, $BROKER_KILLS broker kills ($brokers broker(s))"
# Stack commands (crashes, the broker phase) one at a time. The lock is not
# passed on (-o, and 9>&- in the broker phase): a service started under it
# would hold it for good.
stack() { flock -o "$DIR/stack.lock" scripts/stack.sh "$@" >>"$DIR/stack.log" 2>&1; }
if ((BROKER_KILLS > 0)); then
    build/casestream "${TOPICS[@]}" --events-partitions="$PARTITIONS" \
        --replication-factor=3 --min-insync-replicas=2 topics create >/dev/null
    build/casestream "${TOPICS[@]}" topics describe >"$DIR/topics.json"
    if [[ $(jq -c 'select(.replication_factor == 3 and .configs["min.insync.replicas"] == "2")' \
        "$DIR/topics.json" | wc -l) != 4 ]]; then
        log "the run's topics are not replicated 3 times with min.insync.replicas 2:"
        cat "$DIR/topics.json"
        exit 1
    fi
    log "topics: $PARTITIONS partitions each, replication factor 3, min.insync.replicas 2"
else
    build/casestream "${TOPICS[@]}" --events-partitions="$PARTITIONS" topics create >/dev/null
fi
build/casestream workload --cases "$CASES" --events "$EVENTS" --seed "$$" --case-type "$TYPE" \
    --ccd --expired "$EXPIRED" >"$DIR/load.ndjson" 2>"$DIR/expected.json"
base=$(sed -n 's/.*"first_reference":\([0-9]*\).*/\1/p' "$DIR/expected.json")
last=$((base + CASES - 1))

# Valid poison goes into the ordered stream at 60%, after every case exists:
# a real past 64 bits (applied), nine notes of 60,000 bytes twice (the second
# change document is too large for the changes topic and goes by reference),
# and a key already used, with another payload (rejected, or applied once if
# the first use was not applied).
uuid() { cat /proc/sys/kernel/random/uuid; }
poison_line() { # ref event fields
    printf '{"idempotency_key":"%s","case_reference":%s,"case_type":"%s","event_id":"%s","user_id":"chaos",%s}\n' \
        "$(uuid)" "$1" "$TYPE" "$2" "$3"
}
body=$(head -c 60000 /dev/zero | tr '\0' n)
notes=""
for i in 1 2 3 4 5 6 7 8 9; do
    notes+="${notes:+,}{\"author\":\"chaos\",\"body\":\"$body\"}"
done
at=$(($(wc -l <"$DIR/load.ndjson") * 6 / 10))
reused=$(grep -m1 "\"case_reference\":$((base + 3)),.*\"event_id\":\"create\"" "$DIR/load.ndjson" |
    sed 's/"data":{/"data":{"reused":true,/')
{
    head -n "$at" "$DIR/load.ndjson"
    poison_line "$base" poisonBigReal '"data_merge":{"big":1e19}'
    poison_line "$((base + 2))" poisonNotes "\"notes\":[$notes]"
    poison_line "$((base + 2))" poisonNotes "\"notes\":[$notes]"
    printf '%s\n' "$reused"
    tail -n "+$((at + 1))" "$DIR/load.ndjson"
} >"$DIR/workload.ndjson"
total=$(wc -l <"$DIR/workload.ndjson")

# Supplementary data from producers of their own, concurrently with the workload's: each sends
# $inc updates of counters.views to cases at random, one in ten of them twice (same key, so
# applied once). The sums are checked exactly (11).
incs_each=$((CASES * EVENTS / 10))
for p in $(seq 1 "$INC_PRODUCERS"); do
    prev=""
    for i in $(seq 1 "$incs_each"); do
        if [[ -n $prev && $((RANDOM % 10)) == 0 ]]; then
            printf '%s\n' "$prev"
            continue
        fi
        read -r key </proc/sys/kernel/random/uuid
        prev=$(printf '{"idempotency_key":"%s","case_reference":%s,"case_type":"%s","event_id":"updateSupplementaryData","user_id":"producer-%s","event_name":"Count a view","supplementary_data_updates":{"$inc":{"counters.views":%s}}}' \
            "$key" "$((base + RANDOM % CASES))" "$TYPE" "$p" "$((1 + RANDOM % 5))")
        printf '%s\n' "$prev"
    done >"$DIR/incs-$p.ndjson"
done
incs_total=$(cat "$DIR"/incs-*.ndjson | wc -l)

for w in "${WORKERS[@]}" "${INDEXERS[@]}"; do start "$w"; done
build/casestream-produce "${TOPICS[@]}" --rate="$RATE" "$DIR/workload.ndjson" \
    >"$DIR/produce.out" 2>"$DIR/produce.err" &
producer=$!
# casestream dispose of the run's case type, as the workers' role, into the run's changes topic:
# twice during the load (at a third and at two thirds of the workload's production), while the
# kills below go on, and once more when all is quiet.
dispose() { # when
    local rc=0
    build/casestream "${TOPICS[@]}" "${PG[@]}" dispose --case-type "$TYPE" \
        >>"$DIR/dispose.out" 2>>"$DIR/dispose.log" || rc=$?
    log "dispose ($1): exit $rc, $(grep 'dispose: done' "$DIR/dispose.log" | tail -1 |
        sed -n 's/.*\(disposed=[0-9]* kept=[0-9]* failed=[0-9]*\).*/\1/p')"
}
(
    sleep "$(awk -v t="$total" -v r="$RATE" 'BEGIN { printf "%.1f", t / r / 3 }')"
    dispose "during the load"
    sleep "$(awk -v t="$total" -v r="$RATE" 'BEGIN { printf "%.1f", t / r / 3 }')"
    dispose "during the load"
) &
disposer=$!
# Once the workload has created its cases (its first round), the $inc producers join in.
sleep $((CASES / RATE + 2))
inc_pids=()
for p in $(seq 1 "$INC_PRODUCERS"); do
    build/casestream-produce "${TOPICS[@]}" --rate=$((RATE / 4 + 1)) "$DIR/incs-$p.ndjson" \
        >"$DIR/produce-incs-$p.out" 2>"$DIR/produce-incs-$p.err" &
    inc_pids+=($!)
done

# Poison the validator refuses, keyed with our references so it lands among
# the valid ones (the Java partitioner, as services use): numbers that
# cannot be kept (rejected), then messages that are not JSON (invalid), one
# of them about 1 MB. All of it goes to the DLQ.
kcat_p() { kcat -P -b "$CASESTREAM_BROKERS" -t "$run_id-events" -K'|' \
    -X partitioner=murmur2_random -X message.max.bytes=2000000 "$@"; }
{
    echo "$((base + 4))|$(poison_line "$((base + 4))" poisonZero '"data_merge":{"z":-0.0}')"
    echo "$((base + 5))|$(poison_line "$((base + 5))" poisonTiny '"data_merge":{"t":1e-400}')"
} | kcat_p
REJECTED=2
for i in $(seq 1 $POISON); do
    echo "$((base + i))|poison $i of $run_id: not JSON"
done | kcat_p
{
    printf '%s|poison big of %s: ' "$((base + 6))" "$run_id"
    head -c 1040000 /dev/zero | tr '\0' x
    echo
} | kcat_p
POISON=$((POISON + 1))

# The broker phase, in the background during the load: kill -9 the broker
# that leads the busiest partitions of the run's topics (the most messages,
# by metadata and each partition's last offset), start it again after
# BROKER_DOWN seconds, wait until every partition of the cluster has all its
# replicas in sync, and repeat. With replication 3 and min.insync.replicas 2
# an acknowledged message is on two brokers, so nothing may be lost.
busiest_leader() { # prints: broker messages-it-leads messages-in-all
    local meta t
    meta=$(kcat -L -b "$CASESTREAM_BROKERS" 2>/dev/null) || return 1
    {
        printf '%s\n' "$meta"
        for t in events results changes; do
            timeout 60 kcat -C -b "$CASESTREAM_BROKERS" -t "$run_id-$t" -o -1 -e -q \
                -f "last \"$run_id-$t\" %p %o\n" 2>/dev/null || true
        done
    } | awk -v prefix="\"$run_id-" '
        /^  topic "/ { topic = $2 }
        /^    partition [0-9]+, leader/ && index(topic, prefix) == 1 {
            p = $2; sub(/,/, "", p); l = $4; sub(/,/, "", l); leader[topic " " p] = l }
        $1 == "last" { n[$2 " " $3] = $4 + 1 }
        END {
            for (k in n) { total += n[k]; if (k in leader) led[leader[k]] += n[k] }
            for (b in led) if (led[b] > best) { best = led[b]; who = b }
            if (who == "" || who < 0) exit 1
            print who, best, total }'
}
in_sync() { # every partition of the cluster has a leader and all its replicas in its ISR
    local meta
    meta=$(kcat -L -b "$CASESTREAM_BROKERS" 2>/dev/null) || return 1
    (($(grep -c '^  broker [0-9]* at' <<<"$meta") >= brokers)) || return 1
    awk '/^    partition [0-9]+, leader/ {
            l = $4; sub(/,/, "", l)
            if (!match($0, /replicas: [0-9,]+/)) { bad++; next }
            r = substr($0, RSTART + 10, RLENGTH - 10)
            if (!match($0, /isrs: [0-9,]+/)) { bad++; next }
            i = substr($0, RSTART + 6, RLENGTH - 6)
            sub(/,$/, "", r); sub(/,$/, "", i)
            if (l < 0 || split(r, a, ",") != split(i, b, ",")) bad++ }
         END { exit bad > 0 }' <<<"$meta"
}
broker_phase() {
    local k victim led total t0 load
    sleep 5
    for ((k = 1; k <= BROKER_KILLS; k++)); do
        exec 9>"$DIR/stack.lock"
        flock 9
        if ! read -r victim led total < <(busiest_leader); then
            log "broker kill $k: no leader found in the metadata"
            return 1
        fi
        load=after
        ! kill -0 "$producer" 2>/dev/null || load=during
        scripts/stack.sh kill "kafka-$victim" >>"$DIR/stack.log" 2>&1 9>&-
        echo "kafka-$victim $led $total $load" >>"$DIR/broker-kills.txt"
        log "broker kill $k: SIGKILL kafka-$victim, leader of the busiest partitions" \
            "($led of the run's $total messages), $load production, down for $BROKER_DOWN s"
        sleep "$BROKER_DOWN"
        t0=$SECONDS
        if ! scripts/stack.sh start "kafka-$victim" >>"$DIR/stack.log" 2>&1 9>&-; then
            log "broker kill $k: kafka-$victim did not start again (see $DIR/stack.log)"
            return 1
        fi
        until in_sync; do
            if ((SECONDS - t0 > 300)); then
                log "broker kill $k: replicas not back in sync 300 s after kafka-$victim started"
                return 1
            fi
            sleep 1
        done
        log "broker kill $k: kafka-$victim back, every replica in sync after $((SECONDS - t0)) s"
        exec 9>&-
        sleep 5
    done
}
if ((BROKER_KILLS > 0)); then
    broker_phase &
    broker_phase=$!
elif ((brokers < 3)); then
    log "broker phase: not run, the stack has $brokers broker(s) (scripts/stack.sh up --kafka-brokers 3 runs it)"
fi

# Kills at random moments over the production time, services restarted in between.
span=$(((total / RATE) + 10))
read -r -a services <<<"$SERVICES"
victims=("${WORKERS[@]}" "${INDEXERS[@]}")
for k in $(seq 1 "$KILLS"); do
    sleep "$(awk -v s="$span" -v n="$KILLS" -v r="$RANDOM" 'BEGIN { printf "%.2f", (s / n) * (0.5 + r / 32767) }')"
    v=${victims[$((RANDOM % ${#victims[@]}))]}
    kill -KILL "${PIDS[$v]}" 2>/dev/null || true
    wait "${PIDS[$v]}" 2>/dev/null || true
    kills=$((kills + 1))
    log "kill $kills: SIGKILL $v (pid ${PIDS[$v]})"
    start "$v"
    # Halfway, a worker freezes past its session timeout: the group moves its
    # partitions, then it wakes up with a batch in hand.
    if ((k == KILLS / 2)); then
        z=${WORKERS[$((RANDOM % ${#WORKERS[@]}))]}
        log "SIGSTOP $z (pid ${PIDS[$z]}) for 10 s, past its 6 s session timeout"
        kill -STOP "${PIDS[$z]}" 2>/dev/null || true
        sleep 10
        kill -CONT "${PIDS[$z]}" 2>/dev/null || true
        zombies=$((zombies + 1))
    fi
    # Service crashes spread over the run.
    if ((${#services[@]} > 0 && k % (KILLS / (${#services[@]} + 1) + 1) == 0)); then
        s=${services[0]}
        services=("${services[@]:1}")
        log "crashing service $s (SIGKILL)"
        stack crash "$s"
        restarts=$((restarts + 1))
    fi
done
for s in "${services[@]}"; do
    log "crashing service $s (SIGKILL)"
    stack crash "$s"
    restarts=$((restarts + 1))
done
wait "$producer" || {
    log "casestream-produce failed:"
    tail -5 "$DIR/produce.err"
    exit 1
}
wait "$disposer" || true
for p in "${!inc_pids[@]}"; do
    wait "${inc_pids[$p]}" || {
        log "casestream-produce of the \$inc updates $((p + 1)) failed:"
        tail -5 "$DIR/produce-incs-$((p + 1)).err"
        exit 1
    }
done
log "production finished: $(tail -1 "$DIR/produce.err")"
broker_failed=0
if [[ -n $broker_phase ]]; then
    wait "$broker_phase" || broker_failed=1
    broker_phase=
fi
broker_kills=0
[[ ! -f $DIR/broker-kills.txt ]] || broker_kills=$(wc -l <"$DIR/broker-kills.txt")

# Quiescence: every message has an outcome, the outbox is empty and the index
# holds every case at its PostgreSQL revision (sums compared; the per-case
# check follows).
psql_value() { psql "$CASESTREAM_PG" -XAtqc "$1"; }
events_total=$((total + POISON + REJECTED + incs_total))
read_topic() { # topic file
    kcat -C -b "$CASESTREAM_BROKERS" -t "$1" -o beginning -e -q -f "$2" 2>/dev/null
}
es_query="{\"range\": {\"reference\": {\"gte\": $base, \"lte\": $last}}}"
es_revisions() {
    curl -fsS -H 'Content-Type: application/json' "$CASESTREAM_ES/$INDEX/_search" -d "{
        \"size\": 0, \"query\": $es_query,
        \"aggs\": {\"r\": {\"sum\": {\"field\": \"case_revision\"}}}}" 2>/dev/null |
        sed -n 's/.*"r":{"value":\([0-9]*\).*/\1/p'
}
quiet() { # what
deadline=$((SECONDS + 600))
while :; do
    outcomes=$(read_topic "$run_id-results" '%s\n' | grep -o '"source":{[^}]*}' | sort -u | wc -l)
    unpublished=$(psql_value "SELECT count(*) FROM ccd.change_outbox WHERE published_at IS NULL
                              AND reference BETWEEN $base AND $last")
    pg_rev=$(psql_value "SELECT coalesce(sum(case_revision), 0) FROM ccd.case_data
                         WHERE reference BETWEEN $base AND $last")
    es_rev=$(es_revisions)
    if ((outcomes >= events_total && unpublished == 0 && ${es_rev:-0} == pg_rev)); then
        log "quiet ($1): $outcomes outcomes, outbox drained, index at the database's revisions"
        break
    fi
    if ((SECONDS > deadline)); then
        log "not quiet ($1) after 600 s: outcomes $outcomes/$events_total, unpublished outbox" \
            "$unpublished, revisions in the index ${es_rev:-0} of $pg_rev"
        break
    fi
    sleep 2
done
}
quiet "after the load"
# The cases past their date that the disposals during the load did not meet yet.
dispose "after the load"
quiet "after the last disposal"
curl -fsS -H 'Content-Type: application/json' "$CASESTREAM_ES/$INDEX/_search" -d "{
    \"size\": 10000, \"query\": $es_query}" >"$DIR/es.json"

read_topic "$run_id-results" '%s\n' >"$DIR/results.ndjson"
read_topic "$run_id-dlq" '%h\t%s\n' >"$DIR/dlq.txt"
# The Redis entries left of the disposed cases: reference, key and entry, tab-separated.
psql "$CASESTREAM_PG" -XAtqc "SELECT reference FROM ccd.disposed_case
                              WHERE reference BETWEEN $base AND $last" >"$DIR/disposed.txt"
redis-cli -u "$CASESTREAM_REDIS" --scan --pattern "cs:idem:${base%000000}*" |
    sort -u >"$DIR/redis-keys.txt"
while read -r ref; do
    { grep "^cs:idem:$ref:" "$DIR/redis-keys.txt" || true; } | while read -r k; do
        printf '%s\t%s\t%s\n' "$ref" "${k##*:}" "$(redis-cli -u "$CASESTREAM_REDIS" --raw GET "$k")"
    done
done <"$DIR/disposed.txt" >"$DIR/redis-left.txt"

# Load everything into temporary tables and check the invariants in SQL.
raw_copy() { # table file
    printf '\\copy %s (doc) FROM %s WITH (FORMAT csv, QUOTE E%s, DELIMITER E%s)\n' \
        "$1" "$2" "'\\x01'" "'\\x02'"
}
load_incs() {
    for p in $(seq 1 "$INC_PRODUCERS"); do
        raw_copy wl_in "$DIR/incs-$p.ndjson"
        echo "INSERT INTO wl (doc, stream) SELECT doc, $p FROM wl_in ORDER BY line; TRUNCATE wl_in;"
    done
}
psql "$CASESTREAM_PG" -XAq -v ON_ERROR_STOP=1 -v base="$base" -v last="$last" \
    -v events_total="$events_total" -v poison="$POISON" -v rejected="$REJECTED" \
    >"$DIR/invariants.txt" <<SQL
CREATE TEMP TABLE wl (line bigserial, doc text, stream int NOT NULL DEFAULT 0);
CREATE TEMP TABLE wl_in (line bigserial, doc text);
CREATE TEMP TABLE res (doc text);
CREATE TEMP TABLE dlq (doc text);
CREATE TEMP TABLE es_raw (doc text);
CREATE TEMP TABLE redis_raw (doc text);
$(raw_copy wl "$DIR/workload.ndjson")
$(load_incs)
$(raw_copy res "$DIR/results.ndjson")
$(raw_copy dlq "$DIR/dlq.txt")
$(raw_copy es_raw "$DIR/es.json")
$(raw_copy redis_raw "$DIR/redis-left.txt")
CREATE TEMP VIEW es AS SELECT (h->>'_id')::bigint AS doc_id, h->'_source' AS src
  FROM es_raw, jsonb_array_elements(doc::jsonb->'hits'->'hits') h;
CREATE TEMP VIEW sub AS SELECT line, stream, doc::jsonb AS j,
    (doc::jsonb->>'case_reference')::bigint AS ref,
    (doc::jsonb->>'idempotency_key')::uuid AS key FROM wl;
CREATE TEMP VIEW outc AS SELECT DISTINCT doc::jsonb AS o FROM res;
-- The run's disposed cases, and what Redis still holds of them.
CREATE TEMP TABLE gone AS SELECT * FROM ccd.disposed_case WHERE reference BETWEEN :base AND :last;
CREATE TEMP VIEW redis_left AS SELECT split_part(doc, E'\t', 1)::bigint AS ref,
    split_part(doc, E'\t', 2) AS key, split_part(doc, E'\t', 3)::jsonb AS entry FROM redis_raw;
-- The \$inc of counters.views of each submission that was applied (a key counts once).
-- A table, not a view: check 11 sums it once per case and per history row.
CREATE TEMP TABLE incs AS SELECT DISTINCT s.ref, s.key, e.case_revision AS rev,
    (s.j->'supplementary_data_updates'->'\$inc'->>'counters.views')::bigint AS amount
  FROM sub s JOIN ccd.case_event e ON e.case_reference = s.ref AND e.idempotency_key = s.key
 WHERE s.j->'supplementary_data_updates'->'\$inc' ? 'counters.views';
CREATE INDEX ON incs (ref, rev);
ANALYZE incs;
\pset format unaligned
\pset tuples_only on
SELECT 'submissions ' || (SELECT count(*) FROM wl) || ' (of them \$inc from other producers '
    || (SELECT count(*) FROM wl WHERE stream > 0) || ') poison ' || :poison
    || ' outcomes(distinct) ' || (SELECT count(*) FROM outc);
SELECT 'disposed ' || (SELECT count(*) FROM gone) || ' cases; submissions rejected as disposed '
    || (SELECT count(DISTINCT o->'source') FROM outc WHERE o->>'error' LIKE '%was disposed of on%')
    || ' (read again after the disposal, first answered otherwise: ' || (SELECT count(*) FROM
       (SELECT o->'source' FROM outc GROUP BY 1 HAVING count(*) > 1) x) || ')'
    || '; applied supplementary updates ' || (SELECT count(*) FROM ccd.case_event
       WHERE case_reference BETWEEN :base AND :last AND supplementary_data IS NOT NULL);
-- 1. exactly one history row, or a non-applied outcome (a disposed case's history is gone:
-- an outcome, of any kind)
SELECT 'violation1 ' || count(*) FROM sub s
 WHERE CASE WHEN s.ref IN (SELECT reference FROM gone)
       THEN NOT EXISTS (SELECT 1 FROM outc WHERE (o->>'case_reference')::bigint = s.ref
                        AND (o->>'idempotency_key')::uuid = s.key)
       ELSE (SELECT count(*) FROM ccd.case_event e WHERE e.case_reference = s.ref AND e.idempotency_key = s.key) <> 1
   AND NOT EXISTS (SELECT 1 FROM outc WHERE (o->>'case_reference')::bigint = s.ref
                   AND (o->>'idempotency_key')::uuid = s.key AND o->>'status' <> 'applied') END;
-- 2. no key applied twice (two different applied outcomes, or two rows)
SELECT 'violation2 ' || (
  (SELECT count(*) FROM (SELECT o->>'case_reference', o->>'idempotency_key' FROM outc
     WHERE o->>'status' = 'applied' GROUP BY 1, 2 HAVING count(DISTINCT o->>'event_seq') > 1) x)
  + (SELECT count(*) FROM (SELECT 1 FROM ccd.case_event WHERE case_reference BETWEEN :base AND :last
     GROUP BY case_reference, idempotency_key HAVING count(*) > 1) y));
-- 3. revisions 1..n, in produce order within each producer's stream
SELECT 'violation3 ' || count(*) FROM (
  SELECT r.*, row_number() OVER (PARTITION BY case_reference ORDER BY case_revision) AS rn,
         lag(line) OVER (PARTITION BY case_reference, stream ORDER BY case_revision) AS prev_line
    FROM (SELECT e.case_reference, e.case_revision, min(s.line) AS line, min(s.stream) AS stream
            FROM ccd.case_event e JOIN sub s ON s.ref = e.case_reference AND s.key = e.idempotency_key
           WHERE e.case_reference BETWEEN :base AND :last
           GROUP BY e.case_reference, e.case_revision) r) h
 WHERE h.case_revision <> h.rn OR h.line < h.prev_line;
-- 4. every consumed message got an outcome (distinct source positions), and its copies agree
-- (a disposed case's message read again after the disposal is answered as disposed)
SELECT 'violation4 ' || (greatest(0, :events_total - (SELECT count(DISTINCT o->'source') FROM outc))
  + (SELECT count(*) FROM (SELECT o->'source' FROM outc GROUP BY 1
      HAVING count(*) FILTER (WHERE NOT (o->>'error' LIKE '%was disposed of on%'
                                         AND (o->>'case_reference')::bigint IN (SELECT reference FROM gone))) > 1) x));
-- 5. outbox drained
SELECT 'violation5 ' || count(*) FROM ccd.change_outbox
 WHERE published_at IS NULL AND reference BETWEEN :base AND :last;
-- 6. one document per case, under the case's id, at PostgreSQL's revision
SELECT 'violation6 ' || (
  (SELECT count(*) FROM ccd.case_data c
     LEFT JOIN (SELECT doc_id, (src->>'reference')::bigint AS ref,
                       (src->>'case_revision')::bigint AS rev FROM es) d ON d.doc_id = c.id
    WHERE c.reference BETWEEN :base AND :last
      AND (d.rev IS DISTINCT FROM c.case_revision OR d.ref IS DISTINCT FROM c.reference))
  + (SELECT count(*) - count(DISTINCT (src->>'reference')) FROM es));
-- 7. the DLQ holds exactly the poison the validator refuses (copies of one message count once,
-- their headers being the same): the messages that are not JSON, and the two numbers that cannot
-- be kept, each with its reason in the error header
CREATE TEMP VIEW dlq_msg AS SELECT split_part(doc, E'\t', 1) AS headers,
    split_part(doc, E'\t', 2) AS value FROM dlq;
SELECT 'violation7 ' || (abs(:poison + :rejected - (SELECT count(DISTINCT headers) FROM dlq_msg))
   + (SELECT count(*) FROM dlq_msg WHERE NOT (
        (value LIKE 'poison %' AND headers LIKE '%error=not valid JSON%')
     OR (value LIKE '%"event_id":"poisonZero"%' AND headers LIKE '%error=%negative zero%')
     OR (value LIKE '%"event_id":"poisonTiny"%' AND headers LIKE '%error=%too small%'))));
-- 8. every outcome of a live case agrees with PostgreSQL (a disposed case's: 16)
SELECT 'violation8 ' || count(*) FROM outc
 WHERE o->>'status' IN ('applied', 'duplicate')
   AND (o->>'case_reference')::bigint NOT IN (SELECT reference FROM gone)
   AND NOT EXISTS (SELECT 1 FROM ccd.case_event e
                    WHERE e.case_reference = (o->>'case_reference')::bigint
                      AND e.idempotency_key = (o->>'idempotency_key')::uuid
                      AND e.case_revision = (o->>'case_revision')::bigint
                      AND e.version = (o->>'version')::int
                      AND e.id = (o->>'event_seq')::bigint);
-- 9. every document equals PostgreSQL's change document
SELECT 'violation9 ' || count(*) FROM ccd.case_data c
  LEFT JOIN es d ON d.doc_id = c.id
 WHERE c.reference BETWEEN :base AND :last
   AND d.src IS DISTINCT FROM ccd.change_document(c)::jsonb;
-- 10. the poison's outcomes: the real past 64 bits kept and applied, the
-- notes applied, the numbers that cannot be kept rejected
SELECT 'violation10 ' || (
  (SELECT count(*) FROM ccd.case_data WHERE reference = :base
      AND data->>'big' IS DISTINCT FROM '10000000000000000000.0')
  + abs(2 - (SELECT count(*) FROM ccd.case_event WHERE case_reference = :base + 2
              AND event_id = 'poisonNotes'))
  + abs(2 - (SELECT count(DISTINCT o->'source') FROM outc WHERE o->>'status' = 'rejected'
              AND (o->>'error' LIKE '%negative zero%' OR o->>'error' LIKE '%too small%'))));
-- 11. supplementary data adds up exactly: the case's, every history row's, every outcome's
SELECT 'violation11 ' || (
  (SELECT count(*) FROM ccd.case_data c WHERE c.reference BETWEEN :base AND :last
      AND coalesce((c.supplementary_data->'counters'->>'views')::bigint, 0)
          <> coalesce((SELECT sum(amount) FROM incs WHERE incs.ref = c.reference), 0))
  + (SELECT count(*) FROM ccd.case_event e WHERE e.case_reference BETWEEN :base AND :last
      AND e.supplementary_data IS NOT NULL
      AND coalesce((e.supplementary_data->'counters'->>'views')::bigint, 0)
          <> coalesce((SELECT sum(amount) FROM incs WHERE incs.ref = e.case_reference
                        AND incs.rev <= e.case_revision), 0))
  + (SELECT count(*) FROM outc JOIN ccd.case_event e
        ON e.case_reference = (o->>'case_reference')::bigint
       AND e.idempotency_key = (o->>'idempotency_key')::uuid
      WHERE o->>'status' IN ('applied', 'duplicate') AND o ? 'supplementary_data'
        AND o->'supplementary_data' IS DISTINCT FROM e.supplementary_data));
-- 12. a disposed case is gone from PostgreSQL
SELECT 'violation12 ' || (
  (SELECT count(*) FROM ccd.case_data WHERE reference IN (SELECT reference FROM gone))
  + (SELECT count(*) FROM ccd.case_event WHERE case_reference IN (SELECT reference FROM gone))
  + (SELECT count(*) FROM ccd.case_notes WHERE case_reference IN (SELECT reference FROM gone))
  + (SELECT count(*) FROM ccd.change_outbox WHERE reference IN (SELECT reference FROM gone)
      AND (document->>'disposed') IS DISTINCT FROM 'true'));
-- 13. a disposed case has no document in Elasticsearch
SELECT 'violation13 ' || (SELECT count(*) FROM es
  WHERE (src->>'reference')::bigint IN (SELECT reference FROM gone) OR doc_id IN (SELECT id FROM gone));
-- 14. no Redis entry of a disposed case
SELECT 'violation14 ' || (SELECT count(*) FROM redis_left);
-- 15. the disposal record: its last revision that of the case's last applied outcome; one
-- published disposal document; the case was past its date; none past its date is left
SELECT 'violation15 ' || (
  (SELECT count(*) FROM gone g
    WHERE g.last_revision IS DISTINCT FROM (SELECT max((o->>'case_revision')::bigint) FROM outc
           WHERE (o->>'case_reference')::bigint = g.reference AND o->>'status' = 'applied')
       OR (SELECT count(*) FROM ccd.change_outbox b WHERE b.reference = g.reference
            AND b.published_at IS NOT NULL AND b.document = (SELECT ccd.disposal_document(d)
                FROM ccd.disposed_case d WHERE d.reference = g.reference)) <> 1
       OR NOT EXISTS (SELECT 1 FROM sub s WHERE s.ref = g.reference AND s.j->>'event_id' = 'create'
            AND (s.j->>'resolved_ttl')::date < current_date))
  + (SELECT count(*) FROM ccd.case_data WHERE reference BETWEEN :base AND :last
      AND resolved_ttl < current_date));
-- 16. no disposed case comes back, and the rejections naming a disposal are the disposed
-- cases' own
SELECT 'violation16 ' || (
  (SELECT count(*) FROM outc JOIN gone g ON g.reference = (o->>'case_reference')::bigint
    WHERE o->>'status' = 'applied' AND (o->>'case_revision')::bigint > g.last_revision)
  + (SELECT count(*) FROM outc WHERE o->>'error' LIKE '%was disposed of on%'
      AND (o->>'case_reference')::bigint NOT IN (SELECT reference FROM gone)));
-- 17. the CCD fields of every applied submission of a live case are in its history row
SELECT 'violation17 ' || count(*) FROM ccd.case_event e
  JOIN (SELECT DISTINCT ON (ref, key) * FROM sub ORDER BY ref, key, line) s
    ON s.ref = e.case_reference AND s.key = e.idempotency_key
 WHERE e.case_reference BETWEEN :base AND :last
   AND (e.event_name IS DISTINCT FROM s.j->>'event_name'
     OR e.user_first_name IS DISTINCT FROM s.j->>'user_first_name'
     OR e.user_last_name IS DISTINCT FROM s.j->>'user_last_name'
     OR e.state_name IS DISTINCT FROM s.j->>'state_name'
     OR e.case_type_version IS DISTINCT FROM (s.j->>'case_type_version')::int
     OR e.significant_item IS DISTINCT FROM s.j->'significant_item'
     OR e.proxied_by IS DISTINCT FROM s.j->>'proxied_by'
     OR e.proxied_by_first_name IS DISTINCT FROM s.j->>'proxied_by_first_name'
     OR e.proxied_by_last_name IS DISTINCT FROM s.j->>'proxied_by_last_name'
     OR e.summary IS DISTINCT FROM s.j->>'summary'
     OR e.description IS DISTINCT FROM s.j->>'description');
SQL

echo "== chaos $run_id"
echo "kills: $kills (SIGKILL of ${#WORKERS[@]} workers and ${#INDEXERS[@]} indexers)," \
    "zombies: $zombies (SIGSTOP past the session timeout), service crashes: $restarts ($SERVICES)," \
    "disposals: $(grep -c 'dispose: done' "$DIR/dispose.log")"
if ((brokers >= 3)); then
    echo "broker kills: $broker_kills of $BROKER_KILLS, $(cat "$DIR/broker-kills.txt" 2>/dev/null | grep -c ' during$' || true)" \
        "during production (kill -9 of the leader of the busiest partitions:" \
        "$(cut -d' ' -f1 "$DIR/broker-kills.txt" 2>/dev/null | paste -sd' '), down $BROKER_DOWN s each;" \
        "$brokers brokers, replication 3, min.insync.replicas 2)"
else
    echo "broker kills: not run ($brokers broker(s))"
fi
cat "$DIR/invariants.txt"
violations=$(awk '/^violation/ { s += $2 } END { print s + 0 }' "$DIR/invariants.txt")
names=("" "one history row or a non-applied outcome" "no key applied twice"
    "revisions 1..n in produce order" "one outcome for every message" "outbox drained"
    "one document per case, at its revision" "DLQ = the poison the validator refuses"
    "outcomes agree with PostgreSQL" "documents = PostgreSQL's change documents"
    "poison answered as it must" "supplementary data adds up exactly"
    "disposed: gone from PostgreSQL" "disposed: gone from Elasticsearch"
    "disposed: gone from Redis" "disposed: record and disposal document"
    "disposed: never comes back" "history rows hold the CCD fields")
for i in $(seq 1 17); do
    n=$(awk -v k="violation$i" '$1 == k { print $2 }' "$DIR/invariants.txt")
    printf '  %-42s %s\n' "${names[$i]}" "$([[ $n == 0 ]] && echo ok || echo "VIOLATED ($n)")"
done
echo "violations: $violations"
if ((broker_failed || broker_kills < BROKER_KILLS)); then
    echo "broker phase FAILED: $broker_kills of $BROKER_KILLS kills done (see the log above and $DIR/stack.log)"
fi
stop_all
trap - EXIT
ok=$((violations == 0 && !broker_failed && broker_kills >= BROKER_KILLS))
if ((ok)); then
    # The run's index goes with a run that passed (a failed one's stays, to look into).
    for index in $(curl -fsS "$CASESTREAM_ES/_cat/indices/$INDEX-*?h=index" 2>/dev/null); do
        curl -fsS -X DELETE "$CASESTREAM_ES/$index" >/dev/null 2>&1 || true
    done
fi
((ok))
