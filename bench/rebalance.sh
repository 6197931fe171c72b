#!/usr/bin/env bash
# bench (i): the pause a rebalance puts in a busy worker group, with the classic group protocol
# (eager: every member gives up every partition) and with the consumer group protocol
# (KIP-848: only the partitions that move), in one run (bench/README.md). bench/run.sh runs it;
# it also runs alone:
#
#   bench/rebalance.sh [WORK_DIR]
#
# For each protocol, on topics and a group of its own: one worker applies a steady load
# (BENCH_REBALANCE_RATE submissions/s for BENCH_REBALANCE_SECONDS s, casestream-produce --rate);
# a second worker joins a third of the way in and leaves (SIGTERM) at two thirds. The pause is
# the longest time one partition of the events topic went without an outcome (the outcomes'
# Kafka timestamps, by their source partition) between the join and the leave, and in the
# third after the leave, against the same in the steady first quarter. Writes
# WORK_DIR/i-rows.md and WORK_DIR/i.json, and removes what it made.
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${BENCH_REBALANCE_RATE:-200}
SECS=${BENCH_REBALANCE_SECONDS:-45}
WORK=${1:-build/bench/rebalance-$$}
mkdir -p "$WORK"
[[ -n ${CASESTREAM_PG:-} ]] || eval "$(scripts/stack.sh env)"
WORKER_PG=${CASESTREAM_WORKER_PG:-$CASESTREAM_PG}
TAG=$(date +%s)_$$
BASE=$((8600000000000000 + (10#$(date +%s) % 100000) * 10000000))
declare -a PIDS=() MADE=()

BENCH_ROW=i
# shellcheck source=bench/common.sh
source bench/common.sh

clean_up() {
    local pid t
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    [[ ${BENCH_KEEP:-0} == 1 ]] && return 0
    sql "DELETE FROM ccd.change_outbox WHERE reference BETWEEN $BASE AND $((BASE + 9999999));
         DELETE FROM ccd.case_notes WHERE case_reference BETWEEN $BASE AND $((BASE + 9999999));
         DELETE FROM ccd.case_event WHERE case_reference BETWEEN $BASE AND $((BASE + 9999999));
         DELETE FROM ccd.case_data WHERE reference BETWEEN $BASE AND $((BASE + 9999999));" \
        >/dev/null 2>&1 || log "(i) could not delete the bench's cases"
    for t in "${MADE[@]}"; do
        build/casestream --topic-events="$t-events" --topic-results="$t-results" \
            --topic-changes="$t-changes" --topic-dlq="$t-dlq" topics delete --yes \
            >>"$WORK/i-topics-delete.txt" 2>&1 || true
    done
}
trap clean_up EXIT

# The longest time, in ms, one source partition of the events topic went without an outcome,
# of the silences that ended within [$2, $3): file $1 holds "<timestamp> <source partition>" lines. A partition that moves
# between members answers nothing from its revoke until its new owner has it.
max_gap() {
    sort -k2,2n -k1,1n "$1" | awk -v lo="$2" -v hi="$3" '{
        if (seen && $2 == part && $1 >= lo && $1 < hi && $1 - prev > gap) gap = $1 - prev
        prev = $1; part = $2; seen = 1 }
        END { printf "%d\n", gap + 0 }'
}

# One protocol: sets JOIN, LEAVE, STEADY (ms) and N (outcomes).
measure() { # protocol
    local proto=$1 run=bench-rebalance-$TAG-$1 n_cases t0 t_join t_leave w1 w2 p base=$BASE
    local topics=(--topic-events="$run-events" --topic-results="$run-results"
        --topic-changes="$run-changes" --topic-dlq="$run-dlq")
    MADE+=("$run")
    [[ $proto == classic ]] || base=$((BASE + 5000000))
    build/casestream "${topics[@]}" topics create >"$WORK/i-$proto-topics.txt" 2>&1 ||
        die "could not create the topics: $(tail -1 "$WORK/i-$proto-topics.txt")"
    n_cases=$((RATE * SECS / 10))
    build/casestream workload --cases "$n_cases" --events 10 --base-ref "$base" 2>/dev/null >"$WORK/i-$proto.ndjson"
    start() { # log: sets STARTED to the worker's pid
        build/casestream-worker "${topics[@]}" --group="$run-group" --group-protocol="$proto" \
            --metrics-port="$(free_port)" --pg="$WORKER_PG" >"$WORK/$1" 2>&1 &
        STARTED=$!
        PIDS+=("$STARTED")
    }
    start "i-$proto-worker1.log"
    w1=$STARTED
    for _ in $(seq 1 600); do grep -qs "consuming topic=" "$WORK/i-$proto-worker1.log" && break; sleep 0.1; done
    sleep 3 # its first assignment
    t0=$(now_ms)
    build/casestream-produce "${topics[@]}" --rate "$RATE" "$WORK/i-$proto.ndjson" \
        >"$WORK/i-$proto-produce.log" 2>&1 &
    p=$!
    PIDS+=("$p")
    sleep $((SECS / 3))
    t_join=$(now_ms)
    start "i-$proto-worker2.log"
    w2=$STARTED
    sleep $((SECS / 3))
    t_leave=$(now_ms)
    kill -TERM "$w2"
    wait "$w2" || log "(i) the second worker ($proto) did not exit 0"
    wait "$p" || die "casestream-produce failed ($proto): $(tail -2 "$WORK/i-$proto-produce.log")"
    sleep 3
    kill -TERM "$w1"
    wait "$w1" || log "(i) the first worker ($proto) did not exit 0"
    kcat -C -b "$CASESTREAM_BROKERS" -t "$run-results" -e -q -f '%T %s\n' 2>/dev/null |
        sed -n 's/^\([0-9]*\) .*"source": *{"partition": *\([0-9]*\).*/\1 \2/p' \
            >"$WORK/i-$proto-times.txt" || die "kcat could not read $run-results"
    N=$(wc -l <"$WORK/i-$proto-times.txt")
    ((N > 0)) || die "no outcomes ($proto)"
    STEADY=$(max_gap "$WORK/i-$proto-times.txt" "$((t0 + 2000))" "$((t0 + SECS * 250))")
    JOIN=$(max_gap "$WORK/i-$proto-times.txt" "$t_join" "$t_leave")
    LEAVE=$(max_gap "$WORK/i-$proto-times.txt" "$t_leave" "$((t_leave + SECS * 1000 / 3))")
    log "(i) $proto: $N outcomes; longest time a partition went without an outcome: steady $STEADY ms, after the join $JOIN ms, after the leave $LEAVE ms"
}

command -v kcat >/dev/null || die "kcat not found (scripts/stack.sh packages installs it)"
log "(i) rebalance pauses: $RATE submissions/s for ${SECS} s, a second worker joins at a third and leaves at two thirds"
measure classic
C_JOIN=$JOIN C_LEAVE=$LEAVE C_STEADY=$STEADY C_N=$N
measure consumer
K_JOIN=$JOIN K_LEAVE=$LEAVE K_STEADY=$STEADY K_N=$N

cat >"$WORK/i-rows.md" <<EOF
| i | rebalance pause, classic protocol (a worker joins / leaves a busy group) | **$C_JOIN ms / $C_LEAVE ms** | longest time a partition went without an outcome after the join / after the leave; steady $C_STEADY ms; $C_N outcomes at $RATE/s |
| i | rebalance pause, consumer protocol (KIP-848) | **$K_JOIN ms / $K_LEAVE ms** | the same; steady $K_STEADY ms; $K_N outcomes |
EOF
cat >"$WORK/i.json" <<EOF
{"rate": $RATE, "seconds": $SECS,
 "classic": {"join_ms": $C_JOIN, "leave_ms": $C_LEAVE, "steady_ms": $C_STEADY, "outcomes": $C_N},
 "consumer": {"join_ms": $K_JOIN, "leave_ms": $K_LEAVE, "steady_ms": $K_STEADY, "outcomes": $K_N}}
EOF
cat "$WORK/i-rows.md"
