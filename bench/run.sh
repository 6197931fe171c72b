#!/usr/bin/env bash
# (j) runs in a subshell on purpose: what it changes of PIDS stays there.
# shellcheck disable=SC2030,SC2031
# make bench (DESIGN §9): one run on this machine measures
#   (a) worker submissions/s with every guarantee on, and
#   (b) a pgbench baseline doing what one submission writes, one durable transaction each,
#       each three times, alternating (a, b, a, b, a, b), on the same database,
#   (c) the ratio of their medians (target >= 3.0),
#   (C) the pipeline's capacity: the highest offered rate that the worker, the indexer and
#       Elasticsearch keep up with for 30 s, by a short step search,
#   (d) produce->outcome and produce->searchable latency at C/2 (targets: p99 <= 100 ms and
#       <= 1.5 s),
#   (e) indexer documents/s against a raw _bulk load of the same documents (as (a) published
#       them, and (e') each with an id of its own),
#   (f) peak RSS of the programs,
#   (g) `casestream import` events/s against a raw COPY of the same rows (bench/import.sh),
#   (h) casestream-api: GET of one case (wrk, 32 connections) against the same lookup as SQL
#       (pgbench), and POST submit p50/p99 at 16 connections (bench/api.sh),
#   (i) the pause a worker joining and leaving a busy group puts on its partitions, with the
#       classic and the consumer group protocol (bench/rebalance.sh),
#   (j) how cost grows: throughput and p99 as the blob grows (1, 16, 256 KiB) beside pgbench
#       with the same blob, one hot case receiving every submission, 1, 2 and 3 workers in
#       one group,
# plus a profile of the worker, and writes bench/results/<UTC>.json, <UTC>.md, latest.md.
# What each figure means: bench/README.md. Everything runs on topics, groups, ports,
# references and indices of its own, so the demo and the tests are never touched.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${BENCH_N:-20000}                  # (a) submissions
M=${BENCH_M:-1000}                   # (a) cases, and (b) cases
AB_RUNS=${BENCH_AB_RUNS:-3}          # (a) and (b): runs of each, alternating
RATIO_TARGET=3.0                     # (c)
PGB_SECONDS=${BENCH_PGBENCH_SECONDS:-8}
PGB_CLIENTS=${BENCH_PGBENCH_CLIENTS:-1 2 4 8 16}
CAP_SECONDS=${BENCH_CAPACITY_SECONDS:-30}     # (C) length of each step
CAP_STEPS=${BENCH_CAPACITY_STEPS:-5}          # (C) most steps
CAP_START=${BENCH_CAPACITY_START:-}           # (C) first rate; default: the median of (a) / 3
CAP_OUTCOME_BOUND_MS=${BENCH_CAPACITY_OUTCOME_BOUND_MS:-250} # (C) "keeps up": growth allowed, in
CAP_SEARCH_BOUND_MS=${BENCH_CAPACITY_SEARCH_BOUND_MS:-1000}  # ms of arrivals at the offered rate
LAT_SECONDS=${BENCH_LATENCY_SECONDS:-30} # (d) how long to produce at the fixed rate
SAMPLE=${BENCH_SEARCH_SAMPLE:-200}   # (d) cases watched in Elasticsearch
POLL_MS=${BENCH_SEARCH_POLL_MS:-20}  # (d) their polling interval
read -r -a BLOB_KIB <<<"${BENCH_BLOB_KIB:-1 16 256}"     # (j) blob sizes
read -r -a BLOB_CASES <<<"${BENCH_BLOB_CASES:-1000 400 60}" # (j) cases of each size (10 submissions each)
BLOB_SECONDS=${BENCH_BLOB_SECONDS:-10} # (j) the fixed-rate run of each size
HOT_N=${BENCH_HOT_N:-2000}            # (j) submissions to the one hot case
GROUP_SIZES=${BENCH_GROUP_SIZES:-1 2 3} # (j) workers in one group
PROFILE_N=${BENCH_PROFILE_N:-2000}   # submissions of the callgrind run
PROFILER=${BENCH_PROFILER:-auto}     # auto, perf, callgrind or none
KEEP=${BENCH_KEEP:-0}                # 1: keep the bench topics, indices and rows
SKIP=" ${BENCH_SKIP:-} "             # phases left out: any of g h i profile
skipped() { [[ $SKIP == *" $1 "* ]]; }
read -r -a WORKER_ARGS <<<"${BENCH_WORKER_ARGS:-}"
read -r -a INDEXER_ARGS <<<"${BENCH_INDEXER_ARGS:-}"
BULK_DOCS=1000 # the indexer's --bulk-docs default; the raw baseline uses the same
for a in "${INDEXER_ARGS[@]}"; do [[ $a == --bulk-docs=* ]] && BULK_DOCS=${a#--bulk-docs=}; done

E=$((N / M)) # submissions per case
if ((E < 1)); then
    echo "bench: BENCH_N ($N) must be at least BENCH_M ($M)" >&2
    exit 78
fi
if ((M > 200000 || AB_RUNS < 1 || CAP_STEPS < 1 || CAP_SECONDS < 10 || ${#BLOB_KIB[@]} != ${#BLOB_CASES[@]} ||
    ${#BLOB_KIB[@]} > 3 || HOT_N < 2)); then
    echo "bench: invalid configuration: BENCH_M at most 200000, BENCH_AB_RUNS and BENCH_CAPACITY_STEPS at least 1," \
        "BENCH_CAPACITY_SECONDS at least 10, BENCH_BLOB_KIB and BENCH_BLOB_CASES of the same length (at most 3)," \
        "BENCH_HOT_N at least 2 (bench/README.md)" >&2
    exit 78
fi
N=$((M * E))

eval "$(scripts/stack.sh env)"
PG=$CASESTREAM_PG BROKERS=$CASESTREAM_BROKERS ES=$CASESTREAM_ES
PGBENCH=/usr/lib/postgresql/15/bin/pgbench
[[ -x $PGBENCH ]] || PGBENCH=$(command -v pgbench || true)
for tool in kcat psql curl awk "$PGBENCH" build/casestream build/casestream-worker \
    build/casestream-indexer build/casestream-produce; do
    if [[ -z $tool ]] || ! command -v "$tool" >/dev/null; then
        echo "bench: ${tool:-pgbench} not found (make all; scripts/stack.sh up installs the tools)" >&2
        exit 1
    fi
done

TS=$(date -u +%Y%m%dT%H%M%SZ)
RUN=bench-${TS,,}-$$
WORK=build/bench/$RUN
RESULTS=${BENCH_RESULTS:-bench/results}
mkdir -p "$WORK" "$RESULTS"
EPOCH=$(date +%s)
# References of our own: [8e15, 9e15) is below 2^53 (exact in awk) and apart from the demo's
# (time*1e6 ~ 1.8e15) and the tests' (~1.8e18). Each run gets 10^7, in 50 blocks of 2*10^5
# references, one per phase (block N): a 0-2, d 3, profile 4, b 5-7, blob sizes 8-16, hot case
# 17, worker groups 18-20, capacity steps 21-49.
BASE=$((8000000000000000 + (EPOCH % 100000000) * 10000000))
block() { echo $((BASE + $1 * 200000)); }
BASE_D=$(block 3) BASE_P=$(block 4)
RELAY_KEY=$(sed -n 's/^#define RELAY_LOCK_KEY "\([0-9]*\)".*/\1/p' worker/outbox.c)

# shellcheck source=bench/common.sh
source bench/common.sh
declare -A PIDS # common.sh's, named here for shellcheck

# --- programs we start, stopped by pid ---------------------------------------------------
stop() { # name
    local pid=${PIDS[$1]:-}
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "PIDS[$1]"
}

# Deletes the cases [first, first + count) and what refers to them.
delete_cases() { # first count
    local lo=$1 hi=$(($1 + $2 - 1))
    sql "DELETE FROM ccd.change_outbox WHERE reference BETWEEN $lo AND $hi;
         DELETE FROM ccd.case_notes WHERE case_reference BETWEEN $lo AND $hi;
         DELETE FROM ccd.case_event WHERE case_reference BETWEEN $lo AND $hi;
         DELETE FROM ccd.case_data WHERE reference BETWEEN $lo AND $hi;" >/dev/null ||
        log "could not delete the cases $lo..$hi"
}

# What only the bench needed, also after a failure (unless BENCH_KEEP=1). The cases of the
# phases that ran a worker without an indexer (a, the profile, b, the blob sizes, the hot case,
# the worker groups: blocks 0-20 but (d)'s) never reached nfd_cases: they go, so that every
# case in PostgreSQL keeps a document in the index. The cases of (d) and of the capacity
# search went through the whole pipeline and stay, in PostgreSQL and in nfd_cases.
CLEANED=0
clean_up() {
    local b
    ((CLEANED == 0)) && [[ $KEEP != 1 ]] || return 0
    CLEANED=1
    for b in $(seq 0 20); do
        ((b == 3)) || delete_cases "$(block "$b")" 200000
    done
    sql "DELETE FROM ccd.event_outcome WHERE topic LIKE '$RUN-%'" >/dev/null || true
    drop_indices
    drop_topics
}

# Deletes the indices made so far. An index the indexer created is <name>-000001 behind the
# alias <name>.
drop_indices() {
    local i n
    for i in "${INDICES_MADE[@]}"; do
        for n in "$i" "$i-000001"; do curl -fsS -X DELETE "$ES/$n" >/dev/null 2>&1 || true; done
    done
    INDICES_MADE=()
}

# Deletes the topics made so far (topics-made.txt, emptied once they are gone).
drop_topics() {
    local made
    mapfile -t made < <(sort -u "$WORK/topics-made.txt" 2>/dev/null)
    ((${#made[@]})) || return 0
    if build/bench/topic_delete "$BROKERS" "${made[@]}" >"$WORK/topic-delete.txt" 2>&1; then
        : >"$WORK/topics-made.txt"
    else
        log "could not delete every bench topic (see $WORK/topic-delete.txt)"
    fi
}

on_exit() {
    local name
    for name in "${!PIDS[@]}"; do stop "$name"; done
    clean_up
}
trap on_exit EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
NEXT_PORT=19700
free_port() { # variable: sets it to a free port (not in a subshell, so ports are not reused)
    while ! port_free $NEXT_PORT; do NEXT_PORT=$((NEXT_PORT + 1)); done
    printf -v "$1" %d $NEXT_PORT
    NEXT_PORT=$((NEXT_PORT + 1))
}

topic_args() { # phase -> the four topic flags of that phase
    echo "--topic-events=$RUN-$1-events --topic-results=$RUN-$1-results" \
        "--topic-changes=$RUN-$1-changes --topic-dlq=$RUN-$1-dlq"
}
make_topics() { # phase
    # shellcheck disable=SC2046
    build/casestream $(topic_args "$1") topics create >"$WORK/$1-topics.txt" ||
        die "could not create the topics of phase $1"
    # In a file, not a variable: (j) makes its topics in a subshell.
    printf '%s\n' "$RUN-$1-events" "$RUN-$1-results" "$RUN-$1-changes" "$RUN-$1-dlq" \
        >>"$WORK/topics-made.txt"
}

metrics() { curl -fsS --max-time 2 "http://127.0.0.1:$1/metrics" 2>/dev/null || true; }
# Sum of the samples of every series whose name starts with $2 (all labels), from file $1.
msum() { awk -v p="$2" 'index($1, p) == 1 && $1 !~ /^#/ { s += $2 } END { printf "%.6f\n", s + 0 }' "$1"; }
mint() { msum "$@" | awk '{ printf "%d\n", $1 }'; }

wait_log() { # file pattern seconds pid: until the pattern is in the log (false if pid exits)
    local until=$((SECONDS + $3))
    while ! grep -q "$2" "$1" 2>/dev/null; do
        ((SECONDS < until)) && kill -0 "$4" 2>/dev/null || return 1
        sleep 0.1
    done
}
tail_of() { tail -3 "$1" 2>/dev/null | tr '\n' ' '; }

# Before outbox rows named their changes topic (sql/004), one relay (an advisory lock) published
# every row to its own topic: with such a worker, wait until no other relay holds the lock, or
# our changes would end up on another worker's topic.
relay_lock_free() {
    [[ -n $RELAY_KEY ]] || return 0 # outbox rows name their topic: one relay per topic
    local until=$((SECONDS + 60))
    while [[ $(sql "SELECT CASE WHEN pg_try_advisory_lock($RELAY_KEY)
                         THEN pg_advisory_unlock($RELAY_KEY) ELSE false END") != t ]]; do
        ((SECONDS < until)) || die "another casestream-worker's outbox relay holds the outbox lock; stop the other workers (make stop) and run again"
        sleep 1
    done
}

start_worker() { # phase port [wrapper...]
    local phase=$1 port=$2
    shift 2
    relay_lock_free
    W_STARTED=$(now_ms)
    # shellcheck disable=SC2046
    "$@" build/casestream-worker $(topic_args "$phase") --group="$RUN-$phase-worker" \
        --metrics-port="$port" --pg="${CASESTREAM_WORKER_PG:-$CASESTREAM_PG}" "${WORKER_ARGS[@]}" \
        >"$WORK/$phase-worker.log" 2>&1 &
    PIDS[worker]=$!
    wait_log "$WORK/$phase-worker.log" "outbox relay is publishing" 120 "${PIDS[worker]}" ||
        die "the worker of phase $phase did not start publishing the outbox: $(tail_of "$WORK/$phase-worker.log")"
}

start_indexer() { # phase port
    # shellcheck disable=SC2046
    build/casestream-indexer $(topic_args "$1") --indexer-group="$RUN-$1-indexer" \
        --metrics-port="$2" --pg="${CASESTREAM_WORKER_PG:-$CASESTREAM_PG}" "${INDEXER_ARGS[@]}" \
        >"$WORK/$1-indexer.log" 2>&1 &
    PIDS[indexer]=$!
}

vmhwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

max() { echo $(($1 > $2 ? $1 : $2)); }
ms_s() { awk -v m="$1" 'BEGIN { printf "%.2f", m / 1000 }'; }
met() { if [[ $1 == true ]]; then echo met; else echo "**not met**"; fi; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# "min–max, ±P%" where P is half the range over the median.
spread() {
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { m = v[int((NR + 1) / 2)]
        printf "%d–%d (±%.0f%%)\n", v[1], v[NR], (m > 0 ? 50 * (v[NR] - v[1]) / m : 0) }'
}

percentiles() { # values on stdin -> "n p50 p95 p99 max mean" (nearest rank)
    sort -n | awk '{ v[NR] = $1; s += $1 }
        function r(p,  k) { k = int(p * NR); if (k < p * NR) k++; if (k < 1) k = 1; return v[k] }
        END { if (NR == 0) { print 0, "null", "null", "null", "null", "null"; exit }
              printf "%d %d %d %d %d %.1f\n", NR, r(0.50), r(0.95), r(0.99), v[NR], s / NR }'
}

# Polls the sum of the counters $3 on port $1 every ~100 ms until it reaches $2.
# Sets T_FIRST/C_FIRST (first poll that saw a count), T_LAST (first poll that saw $2),
# POLLS, and leaves the metrics of those two polls in $4.first and $4.last. Runs the command
# in $ON_FIRST, if any, right after the first poll that saw a count.
ON_FIRST=""
watch_counter() { # port target counter-prefix file-prefix timeout-seconds
    local port=$1 target=$2 name=$3 out=$4 until=$((SECONDS + $5)) c t
    T_FIRST=0 C_FIRST=0 T_LAST=0 POLLS=0 T_POLL0=$(now_ms)
    while :; do
        metrics "$port" >"$out.poll"
        t=$(now_ms)
        POLLS=$((POLLS + 1))
        c=$(mint "$out.poll" "$name")
        if ((c > 0 && T_FIRST == 0)); then
            T_FIRST=$t C_FIRST=$c
            cp "$out.poll" "$out.first"
            [[ -z $ON_FIRST ]] || $ON_FIRST
        fi
        if ((c >= target)); then
            T_LAST=$t
            cp "$out.poll" "$out.last"
            return 0
        fi
        ((SECONDS < until)) || return 1
        sleep 0.1
    done
}

# --- the machine --------------------------------------------------------------------------
NPROC=$(nproc)
MODEL=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM_KB=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
KERNEL=$(uname -r)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
others() { pgrep -f 'build/(asan/)?(casestream-(worker|indexer|produce)|check_integration)' 2>/dev/null |
    grep -vc "^$$\$" || true; }
OTHERS_START=$(others)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git status --porcelain 2>/dev/null | grep -q . && echo true || echo false)
MACHINE="$NPROC × $MODEL, $((MEM_KB / 1024)) MiB RAM, Linux $KERNEL"
log "run $RUN on $MACHINE; load $LOAD_START; other casestream processes: $OTHERS_START"

# --- the C helpers --------------------------------------------------------------------------
# Built by the Makefile (make bench), with the programs' flags and librdkafka.
make --no-print-directory -s bench-helpers >&2 ||
    die "could not build the bench's helpers (bench/es_watch.c, bench/topic_delete.c)"

PROFILE_TOOL=$PROFILER
if [[ $PROFILER == auto ]]; then
    if command -v perf >/dev/null &&
        perf stat -x, -e instructions true 2>&1 | grep -q '^[0-9]*,*instructions'; then
        PROFILE_TOOL=perf
    elif command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null; then
        PROFILE_TOOL=callgrind
    else
        PROFILE_TOOL=none
    fi
fi
if skipped profile; then PROFILE_TOOL=none; fi

# =========================================================================================
# (a) worker throughput and (b) the pgbench baseline, three times each, alternating
# =========================================================================================
PG_PID=$(stack_pid postgres) KAFKA_PID=$(stack_pid kafka) ES_PID=$(stack_pid es)
# CPU and PostgreSQL counters, taken when the first outcomes are seen and when the last is.
snapshot() { # suffix
    local total idle wal
    read -r total idle < <(machine_ticks)
    wal=$(sql "SELECT wal_sync || ' ' || wal_bytes || ' ' || (SELECT xact_commit FROM pg_stat_database
               WHERE datname = current_database()) FROM pg_stat_wal")
    printf -v "SNAP_$1" '%s' "$total $idle $(tree_ticks "$PG_PID") $(tree_ticks "$KAFKA_PID") $(tree_ticks "$ES_PID") $(ticks "$WPID") $(ticks "${IPID:-0}") $wal"
}
snapshot_first() { snapshot 0; }
d() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'; }
pct() { awk -v t="$1" -v ms="$2" -v hz="$HZ" 'BEGIN { printf "%.0f", (ms > 0 ? 100 * t / hz / (ms / 1000) : 0) }'; }
expect() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$WORK/a1-expected.json"; }
# The variables of one (a) run that the report reads, saved per run (a_run) and read back
# for the median run.
A_VARS=(A_RATE A_WALL A_C_FIRST A_FROM_START A_RATE_START A_POLL_MS A_KAFKA_SPAN MIX_OK
    APPLY_PCT BATCHES BATCH_AVG BATCH_MS W_CPU PG_CPU KAFKA_CPU ES_CPU M_BUSY FSYNCS COMMITS
    PER_FSYNC WAL0_BYTES WAL1_BYTES RSS_WORKER_A)

# One (a) run: run number (1..3). The submissions of run r are cases of block r-1.
a_run() {
    local r=$1 ph=a$1 base port until T_START A_T_FIRST A_T_LAST A_POLLS A_T_POLL0 s
    local M0_TOTAL M0_IDLE PG0 KAFKA0 ES0 W0 WAL0_SYNC XACT0 M1_TOTAL M1_IDLE PG1 KAFKA1 ES1 W1 WAL1_SYNC XACT1
    base=$(block $((r - 1)))
    log "(a) run $r: $N submissions over $M cases, preloaded, then one casestream-worker"
    make_topics "$ph"
    build/casestream workload --cases "$M" --events "$E" --seed 1 --base-ref "$base" \
        >"$WORK/$ph-workload.ndjson" 2>"$WORK/$ph-expected.json"
    # shellcheck disable=SC2046
    build/casestream-produce $(topic_args "$ph") "$WORK/$ph-workload.ndjson" >/dev/null 2>"$WORK/$ph-produce.err" ||
        die "could not preload the submissions: $(tail -2 "$WORK/$ph-produce.err")"
    free_port port
    start_worker "$ph" "$port"
    T_START=$W_STARTED
    WPID=${PIDS[worker]}
    if [[ $PROFILE_TOOL == perf && $r == 1 ]]; then
        perf record -g -F 499 -o "$WORK/perf.data" -p "$WPID" >"$WORK/perf.log" 2>&1 &
        PIDS[perf]=$!
    fi
    ON_FIRST=snapshot_first
    watch_counter "$port" "$N" casestream_worker_outcomes_total "$WORK/$ph-metrics" $((60 + N / 20)) ||
        die "(a) run $r: only $(mint "$WORK/$ph-metrics.poll" casestream_worker_outcomes_total) of $N outcomes (see $WORK/$ph-worker.log)"
    ON_FIRST=""
    snapshot 1
    A_T_FIRST=$T_FIRST A_C_FIRST=$C_FIRST A_T_LAST=$T_LAST A_POLLS=$POLLS A_T_POLL0=$T_POLL0
    read -r M0_TOTAL M0_IDLE PG0 KAFKA0 ES0 W0 _ WAL0_SYNC WAL0_BYTES XACT0 <<<"$SNAP_0"
    read -r M1_TOTAL M1_IDLE PG1 KAFKA1 ES1 W1 _ WAL1_SYNC WAL1_BYTES XACT1 <<<"$SNAP_1"
    # Before stopping: the relay has published every change of the run, or (e) would miss some.
    until=$((SECONDS + 60))
    while [[ $(sql "SELECT count(*) FROM ccd.change_outbox WHERE published_at IS NULL
                    AND reference BETWEEN $base AND $((base + M - 1))") != 0 ]]; do
        ((SECONDS < until)) || die "(a) run $r: the outbox relay did not publish every change"
        sleep 0.2
    done
    RSS_WORKER_A=$(max "$RSS_WORKER_A" "$(vmhwm "$WPID")")
    if [[ -n ${PIDS[perf]:-} ]]; then
        kill -INT "${PIDS[perf]}" 2>/dev/null || true
        wait "${PIDS[perf]}" 2>/dev/null || true
        unset "PIDS[perf]"
    fi
    stop worker

    A_WALL=$((A_T_LAST - A_T_FIRST))
    A_FROM_START=$((A_T_LAST - T_START))
    A_RATE=$(awk -v n=$((N - A_C_FIRST)) -v ms="$A_WALL" 'BEGIN { printf "%.0f", (ms > 0 ? n * 1000 / ms : 0) }')
    A_RATE_START=$(awk -v n="$N" -v ms="$A_FROM_START" 'BEGIN { printf "%.0f", n * 1000 / ms }')
    A_POLL_MS=$(awk -v p="$A_POLLS" -v ms=$((A_T_LAST - A_T_POLL0)) 'BEGIN { printf "%.0f", (p > 1 ? ms / (p - 1) : 0) }')
    for s in applied duplicate conflict rejected invalid; do
        MIX[$s]=$(mint "$WORK/$ph-metrics.last" "casestream_worker_outcomes_total{status=\"$s\"}")
    done
    MIX_OK=false
    [[ ${MIX[applied]} == "$(expect applied)" && ${MIX[conflict]} == "$(expect conflict)" &&
        ${MIX[duplicate]} == "$(expect duplicate)" && ${MIX[rejected]} == 0 && ${MIX[invalid]} == 0 ]] && MIX_OK=true
    # Cross-check with the outcomes' own Kafka timestamps (CreateTime, ms).
    kcat -C -b "$BROKERS" -t "$RUN-$ph-results" -o beginning -e -q -f '%T\n' 2>/dev/null | sort -n >"$WORK/$ph-outcome-ts.txt"
    A_KAFKA_SPAN=$(awk 'NR == 1 { f = $1 } { l = $1 } END { print l - f }' "$WORK/$ph-outcome-ts.txt")
    # Where the time went.
    local apply_s
    apply_s=$(d "$(msum "$WORK/$ph-metrics.first" casestream_worker_apply_seconds_sum)" "$(msum "$WORK/$ph-metrics.last" casestream_worker_apply_seconds_sum)")
    BATCHES=$(($(mint "$WORK/$ph-metrics.last" casestream_worker_batches_total) - $(mint "$WORK/$ph-metrics.first" casestream_worker_batches_total)))
    APPLY_PCT=$(awk -v s="$apply_s" -v ms="$A_WALL" 'BEGIN { printf "%.0f", (ms > 0 ? 100 * s * 1000 / ms : 0) }')
    BATCH_AVG=$(awk -v n=$((N - A_C_FIRST)) -v b="$BATCHES" 'BEGIN { printf "%.0f", b ? n / b : 0 }')
    BATCH_MS=$(awk -v s="$apply_s" -v b="$BATCHES" 'BEGIN { printf "%.1f", b ? 1000 * s / b : 0 }')
    W_CPU=$(pct $((W1 - W0)) "$A_WALL")
    PG_CPU=$(pct $((PG1 - PG0)) "$A_WALL")
    KAFKA_CPU=$(pct $((KAFKA1 - KAFKA0)) "$A_WALL")
    ES_CPU=$(pct $((ES1 - ES0)) "$A_WALL")
    M_BUSY=$(awk -v t=$((M1_TOTAL - M0_TOTAL)) -v i=$((M1_IDLE - M0_IDLE)) 'BEGIN { printf "%.0f", t ? 100 * (t - i) / t : 0 }')
    FSYNCS=$((WAL1_SYNC - WAL0_SYNC)) COMMITS=$((XACT1 - XACT0))
    PER_FSYNC=$(awk -v n=$((N - A_C_FIRST)) -v f="$FSYNCS" 'BEGIN { printf "%.1f", f ? n / f : 0 }')
    declare -p "${A_VARS[@]}" MIX >"$WORK/$ph.vars"
    A_RUNS+=("$A_RATE")
    log "(a) run $r: $A_RATE submissions/s (first->last outcome ${A_WALL} ms; ${A_RATE_START}/s from worker start)"
}

# One (b) run: run number (1..3), on M fresh cases of block 5+r-1, every client count.
b_run() {
    local r=$1 base c j tps lat failed peak=0 peak_c=0 rows=""
    base=$(block $((r + 4)))
    log "(b) run $r: pgbench on $M cases, clients $PGB_CLIENTS, ${PGB_SECONDS} s each"
    make_cases "$base" "$M" "" || die "could not create the baseline's cases"
    for c in $PGB_CLIENTS; do
        j=$((c < 2 ? c : 2))
        "$PGBENCH" -n -M prepared -f "$WORK/b-script.sql" -D base="$base" -D m="$M" -D topic="$RUN-b-changes" \
            -c "$c" -j "$j" -T "$PGB_SECONDS" "$PG" >"$WORK/b$r-pgbench-$c.txt" 2>&1 ||
            die "pgbench -c $c failed: $(tail -3 "$WORK/b$r-pgbench-$c.txt")"
        tps=$(awk '/^tps = / { printf "%.0f", $3 }' "$WORK/b$r-pgbench-$c.txt")
        lat=$(awk '/^latency average = / { print $4 }' "$WORK/b$r-pgbench-$c.txt")
        failed=$(awk '/^number of failed transactions: / { print $5 }' "$WORK/b$r-pgbench-$c.txt")
        rows+="${rows:+;}$c $tps $lat ${failed:-0}"
        log "(b) run $r, $c clients: $tps tps, latency $lat ms"
        if ((tps > peak)); then peak=$tps peak_c=$c; fi
    done
    delete_cases "$base" "$M"
    B_RUNS+=("$peak") B_RUNS_C+=("$peak_c") B_RUNS_ROWS+=("$rows")
}

# M cases for a baseline: first-reference count [pad-file]. With a pad file (one line of
# base64), the blob gets a member "pad" holding it, read by psql's \copy.
make_cases() {
    {
        echo "CREATE TEMP TABLE bench_pad (pad text);"
        if [[ -n ${3:-} ]]; then
            echo "\\copy bench_pad FROM '$3'"
        else
            echo "INSERT INTO bench_pad VALUES (NULL);"
        fi
        echo "INSERT INTO ccd.case_data (reference, case_type_id, jurisdiction, state, data)
              SELECT $1 + i, 'NFD', 'DIVORCE', 'Submitted',
                     jsonb_strip_nulls(jsonb_build_object('pad', (SELECT pad FROM bench_pad),
                        'applicant', jsonb_build_object('name', 'Applicant ' || ($1 + i), 'city', 'Leeds'),
                        'amount', i % 10000, 'step', 0))
                FROM generate_series(0, $(($2 - 1))) i;"
    } | psql "$PG" -XAtq -v ON_ERROR_STOP=1 >/dev/null
}

# Without sql/004 (outbox rows name their topic) the outbox has no topic column.
cp bench/pgbench_submission.sql "$WORK/b-script.sql"
if [[ $(sql "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'ccd'
             AND table_name = 'change_outbox' AND column_name = 'topic'") == 0 ]]; then
    sed -i 's/document, topic, published_at/document, published_at/; s/, :topic::text, now()/, now()/' "$WORK/b-script.sql"
fi
declare -A MIX=()
A_RUNS=() B_RUNS=() B_RUNS_C=() B_RUNS_ROWS=() RSS_WORKER_A=0
for r in $(seq 1 "$AB_RUNS"); do
    a_run "$r"
    b_run "$r"
done
# The median run of (a) gives the detail of the report ("what limits the worker").
A_MED=$(median "${A_RUNS[@]}") B_PEAK=$(median "${B_RUNS[@]}")
for r in $(seq 1 "$AB_RUNS"); do
    if [[ ${A_RUNS[r - 1]} == "$A_MED" ]]; then
        A_MED_RUN=$r
        break
    fi
done
RSS_MAX_A=$RSS_WORKER_A
# shellcheck disable=SC1090
source "$WORK/a$A_MED_RUN.vars"
RSS_WORKER_A=$RSS_MAX_A
for r in $(seq 1 "$AB_RUNS"); do
    if [[ ${B_RUNS[r - 1]} == "$B_PEAK" ]]; then
        B_PEAK_C=${B_RUNS_C[r - 1]} B_MED_RUN=$r
        break
    fi
done
A_SPREAD=$(spread "${A_RUNS[@]}") B_SPREAD=$(spread "${B_RUNS[@]}")
RATIO=$(awk -v a="$A_MED" -v b="$B_PEAK" 'BEGIN { printf "%.2f", b ? a / b : 0 }')
TARGET_MET=$(awk -v r="$RATIO" -v t="$RATIO_TARGET" 'BEGIN { print (r >= t ? "true" : "false") }')
log "(c) ratio of the medians a/b = $A_MED/$B_PEAK = $RATIO (target $RATIO_TARGET: $TARGET_MET)"

# =========================================================================================
# (d) latency at a fixed rate, with a worker and an indexer running
# =========================================================================================
RSS_WORKER_D=0 RSS_INDEXER_D=0 RSS_PRODUCE=0 D_PHASES=()

# Searchable: for each applied submission of a watched case, the first poll of that kind that
# showed a version >= its case_revision: "arrival - produce" and "previous send - produce".
searchable() { # phase kind
    # GET needs the document's _id (the case's id), which es_watch learns from the first search
    # that finds the case ("getfrom REF VERSION"): the GET latency of revisions up to VERSION is
    # not measured.
    awk -v kind="$2" 'FILENAME == ARGV[1] { if ($1 == kind) { n[$2]++; v[$2, n[$2]] = $3; t[$2, n[$2]] = $4; b[$2, n[$2]] = $5 }
                                            if ($1 == "getfrom") from[$2] = $3; next }
        FILENAME == ARGV[2] { w[$1] = 1; next }
        ($4 in w) && $5 == "applied" {
            if (kind == "get" && ($4 in from) && $6 <= from[$4]) next
            hit = 0
            for (i = 1; i <= n[$4]; i++) if (v[$4, i] >= $6) { hit = i; break }
            if (hit) print t[$4, hit] - $7, b[$4, hit] - $7; else print "missing"
        }' "$WORK/$1-watch.txt" "$WORK/$1-sample.txt" "$WORK/$1-matched.txt"
}

# The outcomes of a phase matched with their submissions, one line per outcome in
# $WORK/$phase-matched.txt: partition offset outcome_ms reference status revision produce_ms.
match_outcomes() { # phase
    local ph=$1
    kcat -C -b "$BROKERS" -t "$RUN-$ph-events" -o beginning -e -q -f '%p %o %T\n' 2>/dev/null >"$WORK/$ph-events.txt"
    kcat -C -b "$BROKERS" -t "$RUN-$ph-results" -o beginning -e -q -f '%T %s\n' 2>/dev/null >"$WORK/$ph-results.txt"
    # One line per outcome: partition offset outcome_ms reference status revision produce_ms.
    awk 'FNR == NR { ts[$1 " " $2] = $3; next }
         { if (!match($0, /"source":\{"partition":[0-9]+,"offset":[0-9]+\}/)) next
           src = substr($0, RSTART, RLENGTH); gsub(/[^0-9,]/, "", src); split(src, s, ",")
           k = s[1] " " s[2]; if (k in seen || !(k in ts)) next; seen[k] = 1
           match($0, /"case_reference":[0-9]+/); ref = substr($0, RSTART + 17, RLENGTH - 17)
           match($0, /"status":"[a-z]+"/); st = substr($0, RSTART + 10, RLENGTH - 11)
           rev = 0; if (match($0, /"case_revision":[0-9]+/)) rev = substr($0, RSTART + 16, RLENGTH - 16)
           print k, $1, ref, st, rev, ts[k] }' "$WORK/$ph-events.txt" "$WORK/$ph-results.txt" >"$WORK/$ph-matched.txt"
}

# The worker's stage histograms, for stages (bench/common.sh).
STAGES=(poll_delay "casestream_worker_poll_delay_seconds" "poll delay (Kafka timestamp → poll)"
    batch_wait "casestream_worker_batch_wait_seconds" "batch wait (poll → dispatch)"
    redis_read 'casestream_worker_redis_seconds{op="read"}' "Redis read"
    commit "casestream_worker_commit_seconds" "commit (appliers' round trips and COMMIT)"
    delivery "casestream_worker_delivery_seconds" "delivery of the outcomes (acks=all)"
    redis_write 'casestream_worker_redis_seconds{op="write"}' "Redis write"
    housekeeping "casestream_worker_housekeeping_seconds" "housekeeping between batches"
    submission "casestream_worker_submission_seconds" "whole (Kafka timestamp → outcome delivered)")

# One latency run: phase rate seed first-reference label. Writes its table rows to
# $WORK/$phase-rows.md and its JSON object to $WORK/$phase.json; sets D_KEPT_UP.
latency_run() {
    local ph=$1 rate=$2 seed=$3 base=$4 label=$5 pw pi until unpublished published acked behind m
    local md=$(((rate * LAT_SECONDS + E - 1) / E))
    local nd=$((md * E))
    local sample_n=$((SAMPLE < md ? SAMPLE : md))
    log "($label) $nd submissions over $md cases at $rate/s; $sample_n cases watched in Elasticsearch every ${POLL_MS} ms"
    D_PHASES+=("$ph")
    make_topics "$ph"
    build/casestream workload --cases "$md" --events "$E" --seed "$seed" --base-ref "$base" \
        >"$WORK/$ph-workload.ndjson" 2>"$WORK/$ph-expected.json"
    seq "$base" $((base + sample_n - 1)) >"$WORK/$ph-sample.txt"
    free_port pw
    free_port pi
    start_indexer "$ph" "$pi"
    start_worker "$ph" "$pw"
    wait_log "$WORK/$ph-indexer.log" "partitions assigned" 60 "${PIDS[indexer]}" ||
        die "the indexer of phase $ph got no partitions: $(tail_of "$WORK/$ph-indexer.log")"
    wait_log "$WORK/$ph-worker.log" "partitions assigned" 60 "${PIDS[worker]}" ||
        die "the worker of phase $ph got no partitions: $(tail_of "$WORK/$ph-worker.log")"
    build/bench/es_watch "$ES" nfd_cases "$POLL_MS" "$WORK/$ph-sample.txt" \
        >"$WORK/$ph-watch.txt" 2>"$WORK/$ph-watch.err" &
    PIDS[watch]=$!
    sleep 1
    local time_cmd=()
    [[ -x /usr/bin/time ]] && time_cmd=(/usr/bin/time -f %M -o "$WORK/$ph-produce.rss")
    WPID=${PIDS[worker]} IPID=${PIDS[indexer]}
    metrics "$pw" >"$WORK/$ph-metrics.before"
    snapshot 2
    local t0 t1
    t0=$(now_ms)
    # shellcheck disable=SC2046
    "${time_cmd[@]}" build/casestream-produce $(topic_args "$ph") --rate="$rate" "$WORK/$ph-workload.ndjson" \
        >/dev/null 2>"$WORK/$ph-produce.err" || die "casestream-produce failed: $(tail -2 "$WORK/$ph-produce.err")"
    t1=$(now_ms)
    snapshot 3
    metrics "$pw" >"$WORK/$ph-metrics.during"
    local achieved
    achieved=$(sed -n 's/.* rate=\([0-9.]*\)\/s.*/\1/p' "$WORK/$ph-produce.err" | tail -1)
    RSS_PRODUCE=$(max "$RSS_PRODUCE" "$(cat "$WORK/$ph-produce.rss" 2>/dev/null || echo 0)")
    watch_counter "$pw" "$nd" casestream_worker_outcomes_total "$WORK/$ph-metrics" 300 ||
        die "($label) not every submission got an outcome (see $WORK/$ph-worker.log)"
    # Quiet: the outbox of these cases is published and the indexer acknowledged all of it.
    until=$((SECONDS + 120))
    while :; do
        unpublished=$(sql "SELECT count(*) FROM ccd.change_outbox WHERE published_at IS NULL
                           AND reference BETWEEN $base AND $((base + md - 1))")
        metrics "$pw" >"$WORK/$ph-metrics.w"
        metrics "$pi" >"$WORK/$ph-metrics.i"
        published=$(mint "$WORK/$ph-metrics.w" casestream_worker_outbox_published_total)
        acked=0
        for m in documents_indexed conflicts superseded dead_letters; do
            acked=$((acked + $(mint "$WORK/$ph-metrics.i" "casestream_indexer_${m}_total")))
        done
        ((unpublished == 0 && acked >= published)) && break
        ((SECONDS < until)) || die "($label) the index did not catch up: unpublished $unpublished, published $published, acknowledged $acked"
        sleep 0.2
    done
    # Until every watched case is searchable at its final revision (or 30 s).
    sql "SELECT reference, case_revision FROM ccd.case_data
         WHERE reference BETWEEN $base AND $((base + sample_n - 1))" | tr '|' ' ' >"$WORK/$ph-final.txt"
    until=$((SECONDS + 30))
    while :; do
        behind=$(awk 'FNR == NR { want[$1] = $2; next }
                      $1 == "search" && $3 > got[$2] { got[$2] = $3 }
                      END { n = 0; for (r in want) if (got[r] < want[r]) n++; print n }' \
            "$WORK/$ph-final.txt" "$WORK/$ph-watch.txt")
        ((behind == 0 || SECONDS >= until)) && break
        sleep 0.2
    done
    RSS_WORKER_D=$(max "$RSS_WORKER_D" "$(vmhwm "${PIDS[worker]}")")
    RSS_INDEXER_D=$(max "$RSS_INDEXER_D" "$(vmhwm "${PIDS[indexer]}")")
    stop watch
    stop worker
    stop indexer
    local ws cycle get_ms search_ms errors
    ws=$(grep '^#' "$WORK/$ph-watch.txt" | tail -1)
    cycle=$(sed -n 's/.*mean_cycle_ms=\([0-9.]*\).*/\1/p' <<<"$ws")
    get_ms=$(sed -n 's/.*mean_get_ms=\([0-9.]*\).*/\1/p' <<<"$ws")
    search_ms=$(sed -n 's/.*mean_search_ms=\([0-9.]*\).*/\1/p' <<<"$ws")
    errors=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' <<<"$ws")
    match_outcomes "$ph"
    local matched o_n o_p50 o_p95 o_p99 o_max o_mean
    matched=$(wc -l <"$WORK/$ph-matched.txt")
    read -r o_n o_p50 o_p95 o_p99 o_max o_mean < <(awk '{ print $3 - $7 }' "$WORK/$ph-matched.txt" | percentiles)
    searchable "$ph" get >"$WORK/$ph-get.txt"
    searchable "$ph" search >"$WORK/$ph-search.txt"
    local g_miss s_miss g_n g_p50 g_p95 g_p99 g_max g_mean s_n s_p50 s_p95 s_p99 s_max s_mean g_lb s_lb
    g_miss=$(grep -c missing "$WORK/$ph-get.txt" || true)
    s_miss=$(grep -c missing "$WORK/$ph-search.txt" || true)
    read -r g_n g_p50 g_p95 g_p99 g_max g_mean < <(grep -v missing "$WORK/$ph-get.txt" | awk '{ print $1 }' | percentiles)
    read -r s_n s_p50 s_p95 s_p99 s_max s_mean < <(grep -v missing "$WORK/$ph-search.txt" | awk '{ print $1 }' | percentiles)
    read -r _ g_lb _ _ _ _ < <(grep -v missing "$WORK/$ph-get.txt" | awk '{ print $2 }' | percentiles)
    read -r _ s_lb _ _ _ _ < <(grep -v missing "$WORK/$ph-search.txt" | awk '{ print $2 }' | percentiles)
    # The load while producing, and whether the pipeline kept up with the offered rate.
    local m2_total m2_idle pg2 kafka2 es2 w2 i2 m3_total m3_idle pg3 kafka3 es3 w3 i3
    read -r m2_total m2_idle pg2 kafka2 es2 w2 i2 _ <<<"$SNAP_2"
    read -r m3_total m3_idle pg3 kafka3 es3 w3 i3 _ <<<"$SNAP_3"
    local d_ms=$((t1 - t0)) busy w_cpu i_cpu pg_cpu kafka_cpu es_cpu apply_s apply_pct tail_ms p50_first p50_last
    busy=$(awk -v t=$((m3_total - m2_total)) -v i=$((m3_idle - m2_idle)) 'BEGIN { printf "%.0f", (t ? 100 * (t - i) / t : 0) }')
    w_cpu=$(pct $((w3 - w2)) "$d_ms") i_cpu=$(pct $((i3 - i2)) "$d_ms")
    pg_cpu=$(pct $((pg3 - pg2)) "$d_ms") kafka_cpu=$(pct $((kafka3 - kafka2)) "$d_ms")
    es_cpu=$(pct $((es3 - es2)) "$d_ms")
    apply_s=$(d "$(msum "$WORK/$ph-metrics.before" casestream_worker_apply_seconds_sum)" "$(msum "$WORK/$ph-metrics.during" casestream_worker_apply_seconds_sum)")
    apply_pct=$(awk -v s="$apply_s" -v ms="$d_ms" 'BEGIN { printf "%.0f", (ms > 0 ? 100 * s * 1000 / ms : 0) }')
    tail_ms=$(awk '$3 > o { o = $3 } $7 > p { p = $7 } END { print o - p }' "$WORK/$ph-matched.txt")
    read -r p50_first p50_last < <(awk 'NR == 1 || $7 < lo { lo = $7 } $7 > hi { hi = $7 } { t[NR] = $7; l[NR] = $3 - $7 }
        END { third = (hi - lo) / 3
              for (i = 1; i <= NR; i++) { if (t[i] < lo + third) print "f", l[i]; else if (t[i] >= hi - third) print "l", l[i] } }' \
        "$WORK/$ph-matched.txt" | sort -k1,1 -k2n | awk '{ v[$1, ++n[$1]] = $2 }
        END { for (k = 1; k <= 2; k++) { c = k == 1 ? "f" : "l"; r = int(n[c] / 2 + 0.5); if (r < 1) r = 1
              printf "%s%s", (n[c] ? v[c, r] : "null"), (k == 1 ? " " : "\n") } }')
    D_KEPT_UP=$(awk -v t="$tail_ms" 'BEGIN { print (t <= 2000 ? "true" : "false") }')
    stages STAGES "$WORK/$ph-metrics.before" "$WORK/$ph-metrics.last"
    local o_met s_met
    o_met=$(awk -v p="$o_p99" 'BEGIN { print (p != "null" && p <= 100 ? "true" : "false") }')
    s_met=$(awk -v p="$s_p99" 'BEGIN { print (p != "null" && p <= 1500 ? "true" : "false") }')
    log "($label) produce->outcome p50/p95/p99 $o_p50/$o_p95/$o_p99 ms; ->search $s_p50/$s_p95/$s_p99 ms; kept up: $D_KEPT_UP"
    cat >"$WORK/$ph-rows.md" <<EOF
| $label | produce → outcome p50 / p95 / p99 | **$o_p50 / $o_p95 / $o_p99 ms** (max $o_max) | $o_n submissions over $md cases offered at $rate/s (achieved ${achieved:-?}/s) for ${LAT_SECONDS} s, a worker and an indexer running; outcome CreateTime − submission CreateTime, 1 ms resolution |
| $label | produce → searchable (_search) p50 / p95 / p99 | **$s_p50 / $s_p95 / $s_p99 ms** (max $s_max) | $s_n applied submissions of $sample_n watched cases ($s_miss never seen); first _search poll showing case_revision ≥ r; polled every ${POLL_MS} ms (mean cycle ${cycle:-?} ms), so late by up to one cycle (p50 of the lower bound: $s_lb ms) |
| $label | produce → GET (realtime) p50 / p95 / p99 | $g_p50 / $g_p95 / $g_p99 ms (max $g_max) | the same submissions by GET-by-id (_mget, realtime, before any refresh); $g_miss never seen; p50 of the lower bound $g_lb ms |
| $label | targets | p99 produce → outcome ≤ 100 ms: $(met "$o_met"); p99 produce → searchable ≤ 1.5 s: $(met "$s_met") | at $rate/s$(if [[ -z ${BENCH_LATENCY_RATE:-} ]]; then echo " = C/2"; fi) |
| $label | pipeline at $rate/s | $(if [[ $D_KEPT_UP == true ]]; then echo "kept up"; else echo "**did not keep up**"; fi) | last outcome $tail_ms ms after the last submission; p50 produce→outcome $p50_first ms in the first third of the run, $p50_last ms in the last; while producing the machine was $busy% busy; % of one core: worker $w_cpu, indexer $i_cpu, PostgreSQL $pg_cpu, Kafka $kafka_cpu, Elasticsearch $es_cpu; the worker was in apply $apply_pct% of the time |
| $label | what produce → outcome is made of | see how | the worker's own histograms (DESIGN §8) over the run, per submission (poll delay, whole) or per batch (the rest); buckets 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500 ms, 1 s…: $STAGE_CELL |
EOF
    cat >"$WORK/$ph.json" <<EOF
{"phase": "$label", "offered_per_second": $rate, "achieved_per_second": ${achieved:-null}, "seconds": $LAT_SECONDS,
       "submissions": $nd, "cases": $md, "outcomes_matched": $matched,
       "produce_to_outcome_ms": {"n": $o_n, "p50": $o_p50, "p95": $o_p95, "p99": $o_p99, "max": $o_max, "mean": $o_mean},
       "produce_to_search_ms": {"n": $s_n, "p50": $s_p50, "p95": $s_p95, "p99": $s_p99, "max": $s_max, "mean": $s_mean,
                                "p50_lower_bound": $s_lb, "never_seen": $s_miss},
       "produce_to_get_ms": {"n": $g_n, "p50": $g_p50, "p95": $g_p95, "p99": $g_p99, "max": $g_max, "mean": $g_mean,
                             "p50_lower_bound": $g_lb, "never_seen": $g_miss},
       "watched_cases": $sample_n, "poll_interval_ms": $POLL_MS, "mean_poll_cycle_ms": ${cycle:-null},
       "mean_get_request_ms": ${get_ms:-null}, "mean_search_request_ms": ${search_ms:-null}, "poll_errors": ${errors:-null},
       "produce_ms": $d_ms, "last_outcome_after_last_submission_ms": $tail_ms, "kept_up": $D_KEPT_UP,
       "target_outcome_p99_ms": 100, "target_outcome_met": $o_met, "target_search_p99_ms": 1500, "target_search_met": $s_met,
       "outcome_p50_first_third_ms": $p50_first, "outcome_p50_last_third_ms": $p50_last,
       "while_producing": {"machine_busy_pct": $busy, "worker_cpu_pct": $w_cpu, "indexer_cpu_pct": $i_cpu,
                           "postgres_cpu_pct": $pg_cpu, "kafka_cpu_pct": $kafka_cpu, "elasticsearch_cpu_pct": $es_cpu,
                           "worker_apply_pct": $apply_pct},
       "worker_stages": {$STAGE_JSON}}
EOF
}

# =========================================================================================
# (C) the pipeline's capacity: a short step search, one worker and one indexer throughout
# =========================================================================================
# One step: index rate. Produces rate/s for CAP_SECONDS on fresh cases and samples, every
# 0.5 s, the worker's and the indexer's counters. Afterwards the
# events and outcomes of the step are read back with their Kafka timestamps. At each sample t:
#   outcome backlog    = submissions in the events topic by t − outcomes by t (CreateTime),
#   searchable backlog = changes committed (see committed) − documents the indexer acknowledged.
# "start" is the median over the samples 2–5 s into the step, "end" the median over the last
# 3 s of producing. The step keeps up when the submissions' timestamps show ≥ 95% of the rate, and
# end ≤ start + rate × CAP_OUTCOME_BOUND_MS (outcomes), end ≤ start + rate ×
# CAP_SEARCH_BOUND_MS (searchable). Then waits until both backlogs are empty (false if they do
# not empty within 120 s). Sets CAP_OK and appends a line to $WORK/cap-steps.txt.
cap_step() {
    local s=$1 rate=$2 ph=cap base md nd t0 t1 t pp achieved until o_start o_end s_start s_end busy
    local m0_total m0_idle m1_total m1_idle out0 done_n
    base=$(block $((21 + s)))
    md=$(((rate * CAP_SECONDS + E - 1) / E))
    nd=$((md * E))
    build/casestream workload --cases "$md" --events "$E" --seed $((10 + s)) --base-ref "$base" \
        >"$WORK/cap$s-workload.ndjson" 2>/dev/null
    out0=$(($(mint "$WORK/cap-metrics.w" casestream_worker_outcomes_total) + $(mint "$WORK/cap-metrics.w" casestream_worker_dlq_total)))
    read -r m0_total m0_idle < <(machine_ticks)
    t0=$(now_ms)
    # shellcheck disable=SC2046
    build/casestream-produce $(topic_args "$ph") --rate="$rate" "$WORK/cap$s-workload.ndjson" \
        >/dev/null 2>"$WORK/cap$s-produce.err" &
    pp=$!
    PIDS[produce]=$pp
    : >"$WORK/cap$s-samples.txt"
    while kill -0 "$pp" 2>/dev/null; do
        metrics "$CAP_WORKER_PORT" >"$WORK/cap-metrics.w"
        metrics "$CAP_INDEXER_PORT" >"$WORK/cap-metrics.i"
        t=$(now_ms)
        echo "$t $(committed "$WORK/cap-metrics.w") $(indexer_acked "$WORK/cap-metrics.i")" >>"$WORK/cap$s-samples.txt"
        sleep 0.5
    done
    wait "$pp" || die "(C) casestream-produce failed: $(tail -2 "$WORK/cap$s-produce.err")"
    unset "PIDS[produce]"
    t1=$(now_ms)
    read -r m1_total m1_idle < <(machine_ticks)
    busy=$(awk -v t=$((m1_total - m0_total)) -v i=$((m1_idle - m0_idle)) 'BEGIN { printf "%.0f", (t ? 100 * (t - i) / t : 0) }')
    # Drained: every submission answered, every applied change acknowledged by the indexer.
    CAP_DRAINED=true
    until=$((SECONDS + 120))
    while :; do
        metrics "$CAP_WORKER_PORT" >"$WORK/cap-metrics.w"
        metrics "$CAP_INDEXER_PORT" >"$WORK/cap-metrics.i"
        done_n=$(($(mint "$WORK/cap-metrics.w" casestream_worker_outcomes_total) + $(mint "$WORK/cap-metrics.w" casestream_worker_dlq_total) - out0))
        ((done_n >= nd)) && (($(committed "$WORK/cap-metrics.w") <= $(indexer_acked "$WORK/cap-metrics.i"))) && break
        if ((SECONDS >= until)); then
            CAP_DRAINED=false
            break
        fi
        sleep 0.5
    done
    kcat -C -b "$BROKERS" -t "$RUN-$ph-events" -o "s@$t0" -e -q -f '%T\n' 2>/dev/null >"$WORK/cap$s-events.txt"
    kcat -C -b "$BROKERS" -t "$RUN-$ph-results" -o "s@$t0" -e -q -f '%T\n' 2>/dev/null >"$WORK/cap$s-results.txt"
    # The rate achieved: submissions over first → last by their Kafka timestamps (the producer's
    # own figure also counts its start and its wait for the last acknowledgements).
    achieved=$(sort -n "$WORK/cap$s-events.txt" | awk 'NR == 1 { f = $1 } { l = $1 }
        END { printf "%.0f", (l > f ? (NR - 1) * 1000 / (l - f) : 0) }')
    read -r o_start o_end s_start s_end < <(awk -v t0="$t0" -v t1="$t1" '
        FILENAME == ARGV[1] { ev[++ne] = $1; next }
        FILENAME == ARGV[2] { rs[++nr] = $1; next }
        { t = $1; o = 0; for (i = 1; i <= ne; i++) if (ev[i] <= t) o++
          for (i = 1; i <= nr; i++) if (rs[i] <= t) o--
          if (t - t0 >= 2000 && t - t0 < 5000) { so[++nso] = o; ss[nso] = $2 - $3 }
          if (t >= t1 - 3000 && t < t1) { eo[++neo] = o; es[neo] = $2 - $3 } }
        function med(a, n,  i, j, x) { if (n == 0) return 0
            for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
            return a[int((n + 1) / 2)] }
        END { printf "%d %d %d %d\n", med(so, nso), med(eo, neo), med(ss, nso), med(es, neo) }' \
        "$WORK/cap$s-events.txt" "$WORK/cap$s-results.txt" "$WORK/cap$s-samples.txt")
    CAP_OK=$(awk -v r="$rate" -v a="${achieved:-0}" -v os="$o_start" -v oe="$o_end" -v ss="$s_start" -v se="$s_end" \
        -v bo="$CAP_OUTCOME_BOUND_MS" -v bs="$CAP_SEARCH_BOUND_MS" \
        'BEGIN { print (a >= 0.95 * r && oe <= os + r * bo / 1000 && se <= ss + r * bs / 1000 ? "true" : "false") }')
    [[ $CAP_DRAINED == true ]] || CAP_OK=false
    echo "$rate ${achieved:-0} $o_start $o_end $s_start $s_end $busy $CAP_OK $CAP_DRAINED" >>"$WORK/cap-steps.txt"
    log "(C) step $((s + 1)): $rate/s (achieved ${achieved:-?}/s): outcome backlog $o_start -> $o_end, searchable backlog $s_start -> $s_end, machine $busy% busy: $(if [[ $CAP_OK == true ]]; then echo "kept up"; else echo "did not keep up"; fi)"
}
# Changes committed: the larger of the applied outcomes delivered and the changes published
# plus those waiting in the outbox (the relay may publish a change before its outcome is
# delivered, and the outbox gauge is refreshed by the relay's own cycle).
committed() { # metrics-file
    local a p
    a=$(mint "$1" 'casestream_worker_outcomes_total{status="applied"}')
    p=$(($(mint "$1" casestream_worker_outbox_published_total) + $(mint "$1" casestream_worker_outbox_backlog)))
    max "$a" "$p"
}
# Acknowledged = indexed + version conflicts + superseded in the batch + dead letters.
indexer_acked() { # metrics-file
    local m a=0
    for m in documents_indexed conflicts superseded dead_letters; do
        a=$((a + $(mint "$1" "casestream_indexer_${m}_total")))
    done
    echo $a
}

log "(C) capacity: a step search of at most $CAP_STEPS steps of ${CAP_SECONDS} s, a worker and an indexer running"
make_topics cap
: >"$WORK/cap-steps.txt"
free_port CAP_WORKER_PORT
free_port CAP_INDEXER_PORT
start_indexer cap "$CAP_INDEXER_PORT"
start_worker cap "$CAP_WORKER_PORT"
wait_log "$WORK/cap-indexer.log" "partitions assigned" 60 "${PIDS[indexer]}" ||
    die "the indexer of phase cap got no partitions: $(tail_of "$WORK/cap-indexer.log")"
wait_log "$WORK/cap-worker.log" "partitions assigned" 60 "${PIDS[worker]}" ||
    die "the worker of phase cap got no partitions: $(tail_of "$WORK/cap-worker.log")"
metrics "$CAP_WORKER_PORT" >"$WORK/cap-metrics.w"
CAP_LO=0 CAP_HI=0
CAP_R=${CAP_START:-$((A_MED / 3))}
CAP_R=$(((CAP_R + 5) / 10 * 10))
((CAP_R >= 10)) || CAP_R=10
for s in $(seq 0 $((CAP_STEPS - 1))); do
    cap_step "$s" "$CAP_R"
    if [[ $CAP_DRAINED != true ]]; then
        log "(C) the pipeline did not drain the step's backlog within 120 s: the search stops"
        CAP_HI=$CAP_R
        break
    fi
    if [[ $CAP_OK == true ]]; then CAP_LO=$CAP_R; else CAP_HI=$CAP_R; fi
    # Up by half while it keeps up, down by a third while it does not, then halve the bracket.
    if ((CAP_HI == 0)); then
        next=$((CAP_R * 3 / 2))
    elif ((CAP_LO == 0)); then
        next=$((CAP_R * 2 / 3))
    else
        next=$(awk -v l="$CAP_LO" -v h="$CAP_HI" 'BEGIN { printf "%d", sqrt(l * h) }')
    fi
    next=$(((next + 5) / 10 * 10))
    ((next >= 10)) || break
    # Bracketed within 10/s, or within 3%: no step would tell more.
    if ((CAP_HI > 0 && CAP_LO > 0)) && ((CAP_HI - CAP_LO <= 10 || CAP_HI * 100 <= CAP_LO * 103)); then break; fi
    CAP_R=$next
done
stop worker
stop indexer
C=$CAP_LO
C_OVER_B=$(awk -v c="$C" -v b="$B_PEAK" 'BEGIN { printf "%.2f", b ? c / b : 0 }')
log "(C) capacity $C/s (C/b = $C_OVER_B); lowest rate that did not keep up: $CAP_HI/s"

# (d) at half the capacity (at half the lowest rate tried if none kept up).
R=${BENCH_LATENCY_RATE:-$(((C > 0 ? C : CAP_HI) / 2))}
((R > 0)) || R=1
latency_run d "$R" 2 "$BASE_D" d

# =========================================================================================
# (e) indexer documents/s against a raw _bulk load of the same documents
# =========================================================================================
# The change documents the first run of (a) published.
kcat -C -b "$BROKERS" -t "$RUN-a1-changes" -o beginning -e -q -f '%k\t%s\n' 2>/dev/null |
    awk -F'\t' -v lo="$(block 0)" -v hi=$(($(block 0) + M - 1)) '$1 >= lo && $1 <= hi' >"$WORK/e-source.tsv"
SRC_DOCS=$(wc -l <"$WORK/e-source.tsv")
((SRC_DOCS == MIX[applied])) ||
    log "(e) warning: (a) applied ${MIX[applied]} submissions but its changes topic has $SRC_DOCS of them"
RSS_INDEXER_E=0 E_PHASES=()
count() { curl -fsS "$ES/$1/_count" 2>/dev/null | sed -n 's/.*"count":\([0-9]*\).*/\1/p'; }

# One indexer run and its raw baseline: phase mode label. mode "revisions": the documents as
# (a) published them, several revisions per case (within one bulk the indexer sends only the
# newest of a case); mode "distinct": every document gets an id of its own, so both write
# every document. Writes $WORK/$phase-rows.md and $WORK/$phase.json.
index_run() {
    local ph=$1 mode=$2 label=$3 ix_index=${RUN}-$1-ix_cases raw_index=${RUN}-$1-raw_cases
    local docs cases bytes port t_start until c t m
    # Re-typed, so that the documents go to a fresh index (lower(case_type_id)_cases). The
    # document's first "id" is the case's (jsonb prints shorter keys first).
    awk -F'\t' -v OFS='\t' -v type="$RUN-$ph-ix" -v mode="$mode" '
        { doc = $2; sub(/"case_type_id": "[^"]*"/, "\"case_type_id\": \"" type "\"", doc)
          sub(/"case_type": "[^"]*"/, "\"case_type\": \"" type "\"", doc)
          key = $1
          if (mode == "distinct") {
              match(doc, /"case_revision": [0-9]+/); rev = substr(doc, RSTART + 17, RLENGTH - 17)
              key = sprintf("%.0f", $1 + rev * 200000)
              sub(/"reference": [0-9]+/, "\"reference\": " key, doc)
              sub(/"id": [0-9]+/, "\"id\": " key, doc)
          }
          print key, doc }' "$WORK/e-source.tsv" >"$WORK/$ph-docs.tsv"
    docs=$(wc -l <"$WORK/$ph-docs.tsv")
    cases=$(cut -f1 "$WORK/$ph-docs.tsv" | sort -u | wc -l)
    bytes=$(cut -f2- "$WORK/$ph-docs.tsv" | wc -c)
    log "($label) $docs change documents, $cases document ids, through casestream-indexer, then raw _bulk"
    E_PHASES+=("$ph")
    make_topics "$ph"
    kcat -P -b "$BROKERS" -t "$RUN-$ph-changes" -K $'\t' -X partitioner=murmur2_random <"$WORK/$ph-docs.tsv" ||
        die "could not preload the change documents"
    INDICES_MADE+=("$ix_index" "$raw_index")
    free_port port
    t_start=$(now_ms)
    start_indexer "$ph" "$port"
    # Acknowledged = indexed + version conflicts + superseded in the batch + dead letters.
    until=$((SECONDS + 300)) T_FIRST=0 C_FIRST=0 T_LAST=0
    while :; do
        metrics "$port" >"$WORK/$ph-metrics.poll"
        t=$(now_ms)
        c=0
        for m in documents_indexed conflicts superseded dead_letters; do
            c=$((c + $(mint "$WORK/$ph-metrics.poll" "casestream_indexer_${m}_total")))
        done
        ((c > 0 && T_FIRST == 0)) && T_FIRST=$t C_FIRST=$c
        if ((c >= docs)); then
            T_LAST=$t
            cp "$WORK/$ph-metrics.poll" "$WORK/$ph-metrics.last"
            break
        fi
        ((SECONDS < until)) || die "($label) the indexer did not acknowledge all $docs documents (see $WORK/$ph-indexer.log)"
        sleep 0.1
    done
    RSS_INDEXER_E=$(max "$RSS_INDEXER_E" "$(vmhwm "${PIDS[indexer]}")")
    stop indexer
    local wall=$((T_LAST - T_FIRST)) from_start=$((T_LAST - t_start)) rate rate_start indexed conflicts superseded bulks
    rate=$(awk -v n=$((docs - C_FIRST)) -v ms="$wall" 'BEGIN { printf "%.0f", (ms > 0 ? n * 1000 / ms : 0) }')
    rate_start=$(awk -v n="$docs" -v ms="$from_start" 'BEGIN { printf "%.0f", n * 1000 / ms }')
    indexed=$(mint "$WORK/$ph-metrics.last" casestream_indexer_documents_indexed_total)
    conflicts=$(mint "$WORK/$ph-metrics.last" casestream_indexer_conflicts_total)
    superseded=$(mint "$WORK/$ph-metrics.last" casestream_indexer_superseded_total)
    bulks=$(mint "$WORK/$ph-metrics.last" casestream_indexer_bulk_requests_total)
    # The raw load: the same documents in the same order, $BULK_DOCS per request, one request
    # at a time through one connection, index action with version_type external_gte.
    rm -rf "$WORK/$ph-raw" && mkdir -p "$WORK/$ph-raw"
    awk -F'\t' -v idx="$raw_index" -v per="$BULK_DOCS" -v dir="$WORK/$ph-raw" '
        { match($2, /"case_revision": [0-9]+/); rev = substr($2, RSTART + 17, RLENGTH - 17)
          f = sprintf("%s/%05d.ndjson", dir, int((NR - 1) / per))
          printf "{\"index\":{\"_index\":\"%s\",\"_id\":\"%s\",\"version\":%s,\"version_type\":\"external_gte\"}}\n%s\n", idx, $1, rev, $2 > f }' \
        "$WORK/$ph-docs.tsv"
    local curl_args=() f requests t0 t1 raw_ms raw_errors raw_rate ix_count raw_count ratio
    for f in "$WORK/$ph-raw"/*.ndjson; do
        ((${#curl_args[@]})) && curl_args+=(--next)
        curl_args+=(-sS -H 'Content-Type: application/x-ndjson' --data-binary "@$f" -o "$f.resp" "$ES/_bulk")
    done
    requests=$(find "$WORK/$ph-raw" -name "*.ndjson" | wc -l)
    t0=$(now_ms)
    curl "${curl_args[@]}" || die "the raw _bulk load failed"
    t1=$(now_ms)
    raw_ms=$((t1 - t0))
    raw_errors=$(cat "$WORK/$ph-raw"/*.resp | grep -c '"errors":true' || true)
    raw_rate=$(awk -v n="$docs" -v ms="$raw_ms" 'BEGIN { printf "%.0f", (ms > 0 ? n * 1000 / ms : 0) }')
    curl -fsS -X POST "$ES/$ix_index,$raw_index/_refresh" >/dev/null || true
    ix_count=$(count "$ix_index") raw_count=$(count "$raw_index")
    ratio=$(awk -v a="$rate" -v b="$raw_rate" 'BEGIN { printf "%.2f", b ? a / b : 0 }')
    log "($label) indexer $rate docs/s, raw _bulk $raw_rate docs/s ($ix_count and $raw_count documents in the indices)"
    cat >"$WORK/$ph-rows.md" <<EOF
| $label | indexer documents/s | **$rate/s** | $docs change documents of (a) ($cases ids, $((bytes / 1024)) KiB; ${mode}), preloaded; first→last acknowledgement $(ms_s "$wall") s by /metrics; $rate_start/s from start; $bulks bulk requests: $indexed indexed, $superseded superseded by a newer revision in the same bulk, $conflicts version conflicts; $ix_count documents in the index |
| $label | raw _bulk documents/s | **$raw_rate/s** | the same $docs documents with curl: $requests requests of $BULK_DOCS, external_gte, one at a time on one connection, $raw_ms ms; $raw_errors responses with errors; $raw_count documents in the index; indexer/raw = **$ratio** |
EOF
    cat >"$WORK/$ph.json" <<EOF
{"phase": "$label", "mode": "$mode", "documents": $docs, "ids": $cases, "bytes": $bytes,
       "per_second": $rate, "first_to_last_ms": $wall, "from_start_ms": $from_start, "per_second_from_start": $rate_start,
       "indexed": $indexed, "conflicts": $conflicts, "superseded": $superseded, "bulk_requests": $bulks,
       "index_count": ${ix_count:-null},
       "raw_bulk": {"per_second": $raw_rate, "ms": $raw_ms, "requests": $requests, "docs_per_request": $BULK_DOCS,
                    "responses_with_errors": $raw_errors, "index_count": ${raw_count:-null}},
       "indexer_over_raw": $ratio}
EOF
}
index_run e1 revisions "e"
index_run e2 distinct "e′"

# =========================================================================================
# (j) how cost grows: the blob's size, one hot case, workers in one group
# =========================================================================================
# Polls the sum of outcomes (all statuses) over the worker metrics ports in $1 (space
# separated) every ~100 ms until it reaches $2: sets T_FIRST, C_FIRST, T_LAST as
# watch_counter does. False after $3 seconds.
watch_sum() { # ports target timeout-seconds
    local until=$((SECONDS + $3)) c t p
    T_FIRST=0 C_FIRST=0 T_LAST=0
    while :; do
        c=0
        for p in $1; do
            metrics "$p" >"$WORK/sum-metrics.poll"
            c=$((c + $(mint "$WORK/sum-metrics.poll" casestream_worker_outcomes_total)))
        done
        t=$(now_ms)
        ((c > 0 && T_FIRST == 0)) && T_FIRST=$t C_FIRST=$c
        if ((c >= $2)); then
            T_LAST=$t
            return 0
        fi
        ((SECONDS < until)) || return 1
        sleep 0.1
    done
}
per_s() { awk -v n="$1" -v ms="$2" 'BEGIN { printf "%.0f", (ms > 0 ? n * 1000 / ms : 0) }'; }

# One preloaded worker run on a workload file: phase workload-file submissions. Sets J_RATE:
# n / (last outcome's Kafka timestamp − the time the worker logged its partitions assigned),
# which holds for runs too short for (a)'s polls of /metrics (a batch's outcomes share one
# instant, so first → last outcome would leave out the first batch).
preloaded_run() {
    local ph=$1 file=$2 n=$3 port
    make_topics "$ph"
    # shellcheck disable=SC2046
    build/casestream-produce $(topic_args "$ph") "$file" >/dev/null 2>"$WORK/$ph-produce.err" ||
        die "($ph) could not preload the submissions: $(tail -2 "$WORK/$ph-produce.err")"
    free_port port
    start_worker "$ph" "$port"
    watch_counter "$port" "$n" casestream_worker_outcomes_total "$WORK/$ph-metrics" $((120 + n / 10)) ||
        die "($ph) only $(mint "$WORK/$ph-metrics.poll" casestream_worker_outcomes_total) of $n outcomes (see $WORK/$ph-worker.log)"
    kcat -C -b "$BROKERS" -t "$RUN-$ph-results" -o beginning -e -q -f '%T\n' 2>/dev/null | sort -n >"$WORK/$ph-outcome-ts.txt"
    local assigned
    assigned=$(sed -n 's/^ts=\([^ ]*\) .*msg="partitions assigned".*/\1/p' "$WORK/$ph-worker.log" | head -1)
    assigned=$(date -d "$assigned" +%s%3N) || die "($ph) no assignment time in $WORK/$ph-worker.log"
    J_RATE=$(awk -v n="$n" -v t0="$assigned" '{ l = $1 } END { printf "%.0f", (l > t0 ? n * 1000 / (l - t0) : 0) }' "$WORK/$ph-outcome-ts.txt")
    RSS_WORKER_J=$(max "$RSS_WORKER_J" "$(vmhwm "${PIDS[worker]}")")
    stop worker
}

# Adds a member "pad" holding the pad file's text to the blob of every create.
pad_creates() { # pad-file < workload > padded workload
    python3 -c '
import sys
pad = open(sys.argv[1]).read().strip()
for line in sys.stdin:
    if "\"event_id\":\"create\"" in line:
        line = line.replace("\"data\":{", "\"data\":{\"pad\":\"" + pad + "\",", 1)
    sys.stdout.write(line)' "$1"
}

# In a subshell, so that a failure of (j) (its rows say so) leaves the rest of the run going;
# it stops its own programs and hands its rows, JSON and peak RSS back in files.
RSS_WORKER_J=0
if ! (
    trap 'for n in "${!PIDS[@]}"; do stop "$n"; done' EXIT
    J_ROWS=() J_JSON=() G_RATES=()
    BLOB_E=10
    for k in "${!BLOB_KIB[@]}"; do
        kib=${BLOB_KIB[k]} bc=${BLOB_CASES[k]}
        bn=$((bc * BLOB_E)) ph=jb$kib
        log "(j) blob of $kib KiB: $bn submissions over $bc cases, preloaded; then at half that rate; then pgbench"
        # Random base64: PostgreSQL's compression of the blob (TOAST) gains little, as with real data.
        head -c $((kib * 768)) /dev/urandom | base64 -w0 >"$WORK/pad-$kib.txt"
        build/casestream workload --cases "$bc" --events "$BLOB_E" --seed 6 --base-ref "$(block $((8 + 3 * k)))" 2>/dev/null |
            pad_creates "$WORK/pad-$kib.txt" >"$WORK/$ph-workload.ndjson"
        preloaded_run "$ph" "$WORK/$ph-workload.ndjson" "$bn"
        jb_rate=$J_RATE
        # The latency at half that rate, or at (d)'s rate (C/2) if lower, on fresh cases: produce →
        # outcome, one worker.
        jr=$((jb_rate / 2))
        ((C == 0 || C / 2 >= jr)) || jr=$((C / 2))
        ((jr > 0)) || jr=1
        jrc=$(((jr * BLOB_SECONDS + BLOB_E - 1) / BLOB_E))
        build/casestream workload --cases "$jrc" --events "$BLOB_E" --seed 7 --base-ref "$(block $((9 + 3 * k)))" 2>/dev/null |
            pad_creates "$WORK/pad-$kib.txt" >"$WORK/${ph}r-workload.ndjson"
        make_topics "${ph}r"
        free_port port
        start_worker "${ph}r" "$port"
        wait_log "$WORK/${ph}r-worker.log" "partitions assigned" 60 "${PIDS[worker]}" ||
            die "the worker of phase ${ph}r got no partitions: $(tail_of "$WORK/${ph}r-worker.log")"
        # shellcheck disable=SC2046
        build/casestream-produce $(topic_args "${ph}r") --rate="$jr" "$WORK/${ph}r-workload.ndjson" \
            >/dev/null 2>"$WORK/${ph}r-produce.err" || die "casestream-produce failed: $(tail -2 "$WORK/${ph}r-produce.err")"
        watch_counter "$port" $((jrc * BLOB_E)) casestream_worker_outcomes_total "$WORK/${ph}r-metrics" 300 ||
            die "(j) blob $kib KiB at $jr/s: not every submission got an outcome (see $WORK/${ph}r-worker.log)"
        RSS_WORKER_J=$(max "$RSS_WORKER_J" "$(vmhwm "${PIDS[worker]}")")
        stop worker
        match_outcomes "${ph}r"
        read -r _ jp50 _ jp99 jmax _ < <(awk '{ print $3 - $7 }' "$WORK/${ph}r-matched.txt" | percentiles)
        # pgbench with the same blob, at the client count of (b)'s median peak.
        base=$(block $((10 + 3 * k)))
        make_cases "$base" "$bc" "$WORK/pad-$kib.txt" || die "could not create the blob baseline's cases"
        "$PGBENCH" -n -M prepared -f "$WORK/b-script.sql" -D base="$base" -D m="$bc" -D topic="$RUN-b-changes" \
            -c "$B_PEAK_C" -j $((B_PEAK_C < 2 ? B_PEAK_C : 2)) -T "$PGB_SECONDS" "$PG" >"$WORK/$ph-pgbench.txt" 2>&1 ||
            die "pgbench with the $kib KiB blob failed: $(tail -3 "$WORK/$ph-pgbench.txt")"
        jtps=$(awk '/^tps = / { printf "%.0f", $3 }' "$WORK/$ph-pgbench.txt")
        delete_cases "$base" "$bc"
        jratio=$(awk -v a="$jb_rate" -v b="$jtps" 'BEGIN { printf "%.2f", b ? a / b : 0 }')
        log "(j) blob $kib KiB: worker $jb_rate/s; at $jr/s p50/p99 $jp50/$jp99 ms; pgbench $jtps tps; ratio $jratio"
        J_ROWS+=("| j | blob of $kib KiB per case | **$jb_rate/s**; at $jr/s p50 / p99 produce → outcome **$jp50 / $jp99 ms** (max $jmax); pgbench **$jtps tps**, worker/pgbench **$jratio** | the worker, $bn submissions over $bc cases whose create carries a $kib KiB member of random base64 in the blob (every edit rewrites it; its history rows copy it), preloaded, timed from the worker's assignment to the last outcome (Kafka timestamp); then $((jrc * BLOB_E)) submissions on fresh cases offered at $jr/s (half that, or C/2 if lower) for ${BLOB_SECONDS} s, one worker; pgbench as (b) on $bc cases with the same blob, $B_PEAK_C clients, ${PGB_SECONDS} s |")
        J_JSON+=("{\"blob_kib\": $kib, \"cases\": $bc, \"submissions\": $bn, \"per_second\": $jb_rate, \"latency_rate\": $jr, \"latency_submissions\": $((jrc * BLOB_E)), \"produce_to_outcome_p50_ms\": $jp50, \"produce_to_outcome_p99_ms\": $jp99, \"produce_to_outcome_max_ms\": $jmax, \"pgbench_tps\": ${jtps:-null}, \"pgbench_clients\": $B_PEAK_C, \"worker_over_pgbench\": $jratio}")
    done

    # One hot case receiving every submission: the serial limit.
    log "(j) one hot case: $HOT_N submissions, preloaded"
    build/casestream workload --cases 1 --events "$HOT_N" --seed 8 --base-ref "$(block 17)" \
        >"$WORK/jh-workload.ndjson" 2>"$WORK/jh-expected.json"
    preloaded_run jh "$WORK/jh-workload.ndjson" "$HOT_N"
    HOT_RATE=$J_RATE
    HOT_BATCHES=$(($(mint "$WORK/jh-metrics.last" casestream_worker_batches_total) - $(mint "$WORK/jh-metrics.first" casestream_worker_batches_total)))
    log "(j) one hot case: $HOT_RATE submissions/s"
    J_ROWS+=("| j | one hot case | **$HOT_RATE/s** | $HOT_N submissions to a single case (the workload's mix), preloaded, one worker, timed from its assignment to the last outcome; they all sit on one partition; $HOT_BATCHES batches in the window |")
    J_JSON+=("{\"hot_case\": true, \"submissions\": $HOT_N, \"per_second\": $HOT_RATE, \"batches\": $HOT_BATCHES}")

    # 1, 2, 3 workers in one group: started together on an empty topic, then N submissions.
    gi=0
    for g in $GROUP_SIZES; do
        ph=jg$g
        log "(j) $g worker(s) in one group: $N submissions over $M cases produced once the group holds every partition"
        make_topics "$ph"
        build/casestream workload --cases "$M" --events "$E" --seed 9 --base-ref "$(block $((18 + gi)))" \
            >"$WORK/$ph-workload.ndjson" 2>/dev/null
        gi=$((gi + 1))
        ports=""
        relay_lock_free
        for w in $(seq 1 "$g"); do
            free_port port
            ports+="${ports:+ }$port"
            # shellcheck disable=SC2046
            build/casestream-worker $(topic_args "$ph") --group="$RUN-$ph-worker" --metrics-port="$port" \
                --pg="${CASESTREAM_WORKER_PG:-$CASESTREAM_PG}" "${WORKER_ARGS[@]}" >"$WORK/$ph-worker$w.log" 2>&1 &
            PIDS[gworker$w]=$!
        done
        # Until the members hold the 12 partitions between them, unchanged for 2 s.
        until=$((SECONDS + 90)) held_since=0
        while :; do
            held=0
            for w in $(seq 1 "$g"); do
                h=$(grep -E 'partitions (assigned|revoked)' "$WORK/$ph-worker$w.log" 2>/dev/null | tail -1 |
                    sed -n 's/.* total=\([0-9]*\).*/\1/p' || true)
                held=$((held + ${h:-0}))
            done
            if ((held == 12)); then
                ((held_since > 0)) || held_since=$SECONDS
                ((SECONDS - held_since >= 2)) && break
            else
                held_since=0
            fi
            ((SECONDS < until)) || die "(j) the group of $g workers did not settle on 12 partitions (see $WORK/$ph-worker*.log)"
            sleep 0.2
        done
        # shellcheck disable=SC2046
        build/casestream-produce $(topic_args "$ph") "$WORK/$ph-workload.ndjson" >/dev/null 2>"$WORK/$ph-produce.err" ||
            die "($ph) could not produce the submissions: $(tail -2 "$WORK/$ph-produce.err")"
        watch_sum "$ports" "$N" $((60 + N / 20)) ||
            die "(j) the group of $g workers did not answer all $N submissions (see $WORK/$ph-worker*.log)"
        g_rate=$(per_s $((N - C_FIRST)) $((T_LAST - T_FIRST)))
        for w in $(seq 1 "$g"); do
            RSS_WORKER_J=$(max "$RSS_WORKER_J" "$(vmhwm "${PIDS[gworker$w]}")")
            stop "gworker$w"
        done
        G_RATES+=("$g $g_rate")
        log "(j) $g worker(s): $g_rate submissions/s"
    done
    G_TEXT="" G_JSON=""
    for row in "${G_RATES[@]}"; do
        read -r g r <<<"$row"
        G_TEXT+="${G_TEXT:+, }$g: **$r/s**"
        G_JSON+="${G_JSON:+, }{\"workers\": $g, \"per_second\": $r}"
    done
    J_ROWS+=("| j | workers in one group | $G_TEXT | $N submissions over $M cases produced (full speed) once the members hold the 12 partitions; outcomes of all members summed from their /metrics, first→last poll, as (a); every member has 4 appliers, so 3 members make 12 PostgreSQL connections on these $NPROC cores. The pause while one member joins and one leaves: (i) |")
    J_JSON+=("{\"group\": [$G_JSON]}")
    printf '%s\n' "${J_ROWS[@]}" >"$WORK/j-rows.md"
    printf '%s\n' "${J_JSON[@]}" | paste -sd , >"$WORK/j.json"
    echo "$RSS_WORKER_J" >"$WORK/j-rss.txt"
); then
    log "(j) failed: see the log above and $WORK/j*-worker*.log"
    echo "| j | how cost grows | failed | see the bench's log and \`$WORK/j*\` |" >"$WORK/j-rows.md"
    echo '{"failed": true}' >"$WORK/j.json"
fi
[[ ! -s $WORK/j-rss.txt ]] || RSS_WORKER_J=$(cat "$WORK/j-rss.txt")

# =========================================================================================
# (g), (h), (i): phases with scripts of their own, each of which also runs alone
# =========================================================================================
# Runs bench/<script>.sh WORK, which writes WORK/<letter>-rows.md and WORK/<letter>.json; a
# phase left out (BENCH_SKIP) or failed gets a row that says so, and the run goes on.
phase_script() { # letter script what
    log "($1) $3 (bench/$2.sh)"
    if skipped "$1"; then
        echo "| $1 | $3 | skipped (BENCH_SKIP) | |" >"$WORK/$1-rows.md"
        echo '{"skipped": true}' >"$WORK/$1.json"
    elif ! "bench/$2.sh" "$WORK" 2>"$WORK/$1.log"; then
        log "($1) failed: $(tail -2 "$WORK/$1.log" | tr '\n' ' ')"
        echo "| $1 | $3 | failed | see \`$WORK/$1.log\` |" >"$WORK/$1-rows.md"
        echo '{"failed": true}' >"$WORK/$1.json"
    fi
}
# The phases before are over: their topics (and what Kafka holds for them) and their indices
# go now, so that (g), (h) and (i) find the broker and Elasticsearch as when they run alone.
if [[ $KEEP != 1 ]]; then
    drop_topics
    drop_indices
fi
phase_script g import "casestream import against a raw COPY between two databases"
phase_script h api "casestream-api under wrk against pgbench"
phase_script i rebalance "rebalance pauses with each group protocol"

# =========================================================================================
# The profile of the worker
# =========================================================================================
PROFILE_FILE=$RESULTS/$TS-profile.txt
PROFILE_NOTE=""
case $PROFILE_TOOL in
perf)
    perf report -i "$WORK/perf.data" --stdio --children --percent-limit 1 2>/dev/null |
        grep -v '^$' | awk "NR <= 150" >"$PROFILE_FILE"
    PROFILE_NOTE="perf record -g -F 499 of the worker during (a)"
    ;;
callgrind)
    PE=$E
    PM=$(((PROFILE_N + PE - 1) / PE))
    PN=$((PM * PE))
    log "profile: $PN submissions through the worker under callgrind"
    make_topics p
    build/casestream workload --cases "$PM" --events "$PE" --seed 3 --base-ref "$BASE_P" \
        >"$WORK/p-workload.ndjson" 2>/dev/null
    free_port PORT_P
    # Only the work on submissions is profiled: instrumentation goes on once the worker has
    # its partitions, before the submissions are produced, and off before it stops.
    start_worker p "$PORT_P" valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$WORK/callgrind.out"
    wait_log "$WORK/p-worker.log" "partitions assigned" 120 "${PIDS[worker]}" ||
        die "the worker under callgrind got no partitions: $(tail_of "$WORK/p-worker.log")"
    callgrind_control -i on "${PIDS[worker]}" >"$WORK/callgrind-control.txt" 2>&1 ||
        log "profile: could not switch callgrind's instrumentation on"
    # shellcheck disable=SC2046
    build/casestream-produce $(topic_args p) "$WORK/p-workload.ndjson" >/dev/null 2>&1 ||
        die "could not produce the profile's submissions"
    watch_counter "$PORT_P" "$PN" casestream_worker_outcomes_total "$WORK/p-metrics" 600 ||
        log "profile: the worker under callgrind did not finish; profiling what it did"
    callgrind_control -i off "${PIDS[worker]}" >>"$WORK/callgrind-control.txt" 2>&1 || true
    stop worker
    {
        echo "# callgrind of casestream-worker: $PN submissions over $PM cases (run $RUN)"
        echo "# instructions executed, all threads; a profile of CPU work, not of waiting"
        echo
        echo "## by inclusive cost"
        callgrind_annotate --inclusive=yes "$WORK/callgrind.out" 2>/dev/null | sed -n '/^Ir/,$p' | awk "NR <= 70"
        echo
        echo "## by exclusive (self) cost"
        callgrind_annotate "$WORK/callgrind.out" 2>/dev/null | sed -n '/^Ir/,$p' | awk "NR <= 40"
    } >"$PROFILE_FILE"
    PROFILE_NOTE="valgrind --tool=callgrind on $PN submissions (perf has no hardware counters here)"
    ;;
*)
    echo "no profiler available (perf with hardware counters, or valgrind)" >"$PROFILE_FILE"
    PROFILE_NOTE="none"
    ;;
esac
# The heaviest functions by self cost, for the summary.
TOP_SELF=$(awk '/^## by exclusive/ { on = 1; next }
    on && !/PROGRAM TOTALS/ && match($0, /\( *[0-9.]+%\)/) {
        pct = substr($0, RSTART + 1, RLENGTH - 2); gsub(/ /, "", pct)
        fn = substr($0, RSTART + RLENGTH); sub(/^ +/, "", fn)
        lib = ""; if (match(fn, /\[[^]]*\]/)) { lib = substr(fn, RSTART + 1, RLENGTH - 2); sub(/.*\//, "", lib) }
        sub(/ \[.*/, "", fn); sub(/^.*:/, "", fn)
        if (fn ~ /^0x/) fn = fn " in " lib
        printf "%s%s (%s)", n++ ? ", " : "", fn, pct
        if (n == 8) exit }' "$PROFILE_FILE" 2>/dev/null || true)
TOTAL_IR=$(awk '/PROGRAM TOTALS/ { gsub(/,/, "", $1); print $1; exit }' "$PROFILE_FILE" 2>/dev/null || true)
IR_PER_SUB=$(awk -v t="${TOTAL_IR:-0}" -v n="${PN:-0}" 'BEGIN { printf "%.0f", n ? t / n : 0 }')
# The worker's own functions by inclusive cost (what its CPU goes to, per part of the code).
TOP_OWN=$(awk '/^## by inclusive/ { on = 1; next } /^## / { on = 0 }
    on && match($0, /\( *[0-9.]+%\) +([^ ]*\/)?(worker|lib)\/[a-z_]+\.c:[a-z_0-9]+/) {
        s = substr($0, RSTART, RLENGTH); pct = s; sub(/%.*/, "%", pct); gsub(/[( ]/, "", pct)
        fn = s; sub(/.*:/, "", fn)
        if (fn ~ /^(main|slot_main|cs_worker_run|cs_applier_run|run_once|process)$/ || seen[fn]++) next
        printf "%s%s %s", n++ ? ", " : "", fn, pct
        if (n == 6) exit }' "$PROFILE_FILE" 2>/dev/null || true)

# =========================================================================================
# Clean up what only the bench needed
# =========================================================================================
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
OTHERS_END=$(others)
KEPT_CASES="(d) $BASE_D.. and of the capacity search $(block 21).. in PostgreSQL and nfd_cases"
CLEANUP_NOTE="kept (BENCH_KEEP=1): the topics $RUN-*, the (e) indices, the cases of every phase"
if [[ $KEEP != 1 ]]; then
    clean_up
    CLEANUP_NOTE="deleted: the bench topics, the (e) indices, the cases of (a), (b), (j) and the profile; kept: the cases of $KEPT_CASES"
fi

# =========================================================================================
# The report
# =========================================================================================
kb_mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
RSS_WORKER=$(max "$(max "$RSS_WORKER_A" "$RSS_WORKER_D")" "$RSS_WORKER_J")
RSS_INDEXER=$(max "$RSS_INDEXER_D" "$RSS_INDEXER_E")
if ((M_BUSY >= 90)); then
    VERDICT="**CPU.** During (a) the machine's $NPROC cores were ${M_BUSY}% busy, mostly with PostgreSQL executing the submissions' statements (${PG_CPU}% of one core); the worker itself used ${W_CPU}%, Kafka ${KAFKA_CPU}%, Elasticsearch ${ES_CPU}%. The worker waits for PostgreSQL, and PostgreSQL waits for a core: more cores (or cheaper SQL per submission), not a faster worker, would raise (a)."
elif ((APPLY_PCT >= 60)); then
    VERDICT="**PostgreSQL.** The worker's consumer thread spent ${APPLY_PCT}% of the time waiting for its appliers (round trips, row locks, COMMIT with fsync) while the machine was only ${M_BUSY}% busy: latency, not CPU, bounds (a)."
else
    VERDICT="**Kafka and the consumer thread.** Only ${APPLY_PCT}% of the time went to applying in PostgreSQL; the rest went to polling, the Redis fast path and the acks=all delivery of every outcome before the next batch; the machine was ${M_BUSY}% busy."
fi
B_ROWS=()
IFS=';' read -r -a B_ROWS <<<"${B_RUNS_ROWS[B_MED_RUN - 1]}"
B1_TPS=$(awk '$1 == 1 { print $2 }' <<<"$(printf '%s\n' "${B_ROWS[@]}")")
FSYNC_RATE=$(awk -v f="$FSYNCS" -v ms="$A_WALL" 'BEGIN { printf "%.0f", (ms > 0 ? f * 1000 / ms : 0) }')
# Every run of (a) and (b), in order, for the table and the JSON.
A_TEXT="" A_JSON="" B_TEXT="" B_JSON=""
for r in $(seq 1 "$AB_RUNS"); do
    A_TEXT+="${A_TEXT:+, }${A_RUNS[r - 1]}"
    A_JSON+="${A_JSON:+, }${A_RUNS[r - 1]}"
    bt="" bj=""
    IFS=';' read -r -a rows <<<"${B_RUNS_ROWS[r - 1]}"
    for row in "${rows[@]}"; do
        read -r c tps lat failed <<<"$row"
        bt+="${bt:+ }$c:$tps"
        bj+="${bj:+, }{\"clients\": $c, \"tps\": $tps, \"latency_ms\": $lat, \"failed\": $failed}"
    done
    B_TEXT+="${B_TEXT:+; }run $r: **${B_RUNS[r - 1]}** at ${B_RUNS_C[r - 1]} clients ($bt)"
    B_JSON+="${B_JSON:+, }{\"peak_tps\": ${B_RUNS[r - 1]}, \"peak_clients\": ${B_RUNS_C[r - 1]}, \"by_clients\": [$bj]}"
done
# The capacity search's steps.
CAP_TEXT="" CAP_JSON=""
while read -r rate ach os oe ss se busy ok drained; do
    CAP_TEXT+="${CAP_TEXT:+; }$rate/s $(if [[ $ok == true ]]; then echo "kept up"; else echo "did not"; fi) (achieved $ach/s, outcome backlog $os→$oe, searchable $ss→$se$(if [[ $drained != true ]]; then echo ", not drained in 120 s"; fi), $busy% busy)"
    CAP_JSON+="${CAP_JSON:+, }{\"offered\": $rate, \"achieved\": $ach, \"outcome_backlog_start\": $os, \"outcome_backlog_end\": $oe, \"searchable_backlog_start\": $ss, \"searchable_backlog_end\": $se, \"machine_busy_pct\": $busy, \"kept_up\": $ok, \"drained\": $drained}"
done <"$WORK/cap-steps.txt"
join_json() { # phases -> their JSON objects, comma-separated
    local p s=""
    for p in "$@"; do s+="${s:+,
      }$(cat "$WORK/$p.json")"; done
    echo "$s"
}
MD_FILE=$RESULTS/$TS.md JSON_FILE=$RESULTS/$TS.json

cat >"$JSON_FILE" <<EOF
{
  "run": "$RUN", "timestamp": "$TS", "commit": "$COMMIT", "uncommitted_changes": $DIRTY,
  "machine": {"nproc": $NPROC, "model": "$MODEL", "mem_total_kb": $MEM_KB, "kernel": "$KERNEL",
              "loadavg_start": "$LOAD_START", "loadavg_end": "$LOAD_END",
              "other_casestream_processes_start": $OTHERS_START, "other_casestream_processes_end": $OTHERS_END},
  "worker_throughput": {"submissions": $N, "cases": $M, "per_second": $A_MED, "runs_per_second": [$A_JSON],
      "spread": "$A_SPREAD", "detail_of_run": $A_MED_RUN, "run_per_second": $A_RATE,
      "first_to_last_outcome_ms": $A_WALL, "outcomes_at_first_poll": $A_C_FIRST,
      "from_worker_start_ms": $A_FROM_START, "per_second_from_start": $A_RATE_START,
      "poll_interval_ms": $A_POLL_MS, "kafka_first_to_last_outcome_ms": $A_KAFKA_SPAN,
      "outcomes": {"applied": ${MIX[applied]}, "duplicate": ${MIX[duplicate]}, "conflict": ${MIX[conflict]},
                   "rejected": ${MIX[rejected]}, "invalid": ${MIX[invalid]}},
      "expected": {"applied": $(expect applied), "duplicate": $(expect duplicate), "conflict": $(expect conflict)},
      "mix_as_expected": $MIX_OK, "worker_args": "${WORKER_ARGS[*]}"},
  "baseline": {"tool": "pgbench -n -M prepared", "script": "bench/pgbench_submission.sql",
      "seconds_each": $PGB_SECONDS, "cases": $M, "runs": [$B_JSON],
      "peak_tps": $B_PEAK, "peak_clients": $B_PEAK_C, "spread": "$B_SPREAD"},
  "ratio": {"a_over_b": $RATIO, "of": "medians", "target": $RATIO_TARGET, "target_met": $TARGET_MET},
  "capacity": {"per_second": $C, "c_over_b": $C_OVER_B, "lowest_not_kept_up": $CAP_HI, "step_seconds": $CAP_SECONDS,
      "outcome_bound_ms": $CAP_OUTCOME_BOUND_MS, "searchable_bound_ms": $CAP_SEARCH_BOUND_MS, "steps": [$CAP_JSON]},
  "cost_growth": [$(cat "$WORK/j.json")],
  "latency": [$(join_json "${D_PHASES[@]}")],
  "indexer": [$(join_json "${E_PHASES[@]}")],
  "import": $(cat "$WORK/g.json"),
  "api": $(cat "$WORK/h.json"),
  "rebalance": $(cat "$WORK/i.json"),
  "peak_rss_kb": {"worker": $RSS_WORKER, "worker_a": $RSS_WORKER_A, "worker_d": $RSS_WORKER_D, "worker_j": $RSS_WORKER_J,
                  "indexer": $RSS_INDEXER, "indexer_d": $RSS_INDEXER_D, "indexer_e": $RSS_INDEXER_E,
                  "produce_d": $RSS_PRODUCE},
  "during_a": {"worker_cpu_pct_of_one_core": $W_CPU, "postgres_cpu_pct": $PG_CPU, "kafka_cpu_pct": $KAFKA_CPU,
               "elasticsearch_cpu_pct": $ES_CPU, "machine_busy_pct": $M_BUSY,
               "apply_pct_of_wall": $APPLY_PCT, "batches": $BATCHES, "mean_batch": $BATCH_AVG,
               "mean_apply_ms_per_batch": $BATCH_MS, "pg_commits": $COMMITS, "pg_wal_fsyncs": $FSYNCS,
               "pg_wal_fsyncs_per_second": $FSYNC_RATE, "submissions_per_fsync": $PER_FSYNC,
               "pg_wal_bytes": $((WAL1_BYTES - WAL0_BYTES))},
  "profile": {"tool": "$PROFILE_TOOL", "file": "$PROFILE_FILE", "instructions_per_submission": $IR_PER_SUB},
  "cleanup": "$CLEANUP_NOTE"
}
EOF

cat >"$MD_FILE" <<EOF
# casestream bench $TS

Machine: $MACHINE. Load average at start $LOAD_START, at end $LOAD_END; other casestream
processes running (tests, demo) at start: $OTHERS_START, at end: $OTHERS_END.
Commit $COMMIT$(if [[ $DIRTY == true ]]; then echo " with uncommitted changes"; fi). Run \`$RUN\`; what each figure means: [bench/README.md](../README.md).

| | figure | value | how |
|---|---|---|---|
| a | worker submissions/s, every guarantee on, median of $AB_RUNS | **$A_MED/s** | runs in order: $A_TEXT; spread $A_SPREAD. Each: $N submissions over $M fresh cases preloaded on 12 partitions; one worker (4 appliers, batch 256${WORKER_ARGS:+, ${WORKER_ARGS[*]}}); first→last outcome by /metrics. Median run ($A_MED_RUN): $(ms_s "$A_WALL") s polled every ~${A_POLL_MS} ms ($(ms_s "$A_KAFKA_SPAN") s by the outcomes' Kafka timestamps); $A_RATE_START/s from worker start ($(ms_s "$A_FROM_START") s, with group join) |
| a | outcome mix (median run) | applied ${MIX[applied]}, duplicate ${MIX[duplicate]}, conflict ${MIX[conflict]}, rejected ${MIX[rejected]}, invalid ${MIX[invalid]} | as the workload expected: $MIX_OK |
| b | pgbench baseline, median of the peaks of $AB_RUNS | **$B_PEAK tps** | one durable transaction per submission (bench/pgbench_submission.sql), $M fresh cases per run, ${PGB_SECONDS} s per client count, each run right after an (a) run; spread $B_SPREAD; $B_TEXT |
| c | ratio a/b of the medians | **$RATIO** | target ≥ $RATIO_TARGET: $(if [[ $TARGET_MET == true ]]; then echo reached; else echo "**not reached**"; fi) |
| C | pipeline capacity | **$C/s**$(if ((C == 0)); then echo " (no step kept up)"; fi); C/b = **$C_OVER_B** | highest offered rate at which worker, indexer and Elasticsearch kept up for ${CAP_SECONDS} s (bench/README.md: outcome backlog may grow by at most ${CAP_OUTCOME_BOUND_MS} ms of arrivals, searchable backlog by ${CAP_SEARCH_BOUND_MS} ms); lowest that did not: $(if ((CAP_HI > 0)); then echo "$CAP_HI/s"; else echo "none tried"; fi); steps: $CAP_TEXT |
$(for p in "${D_PHASES[@]}"; do cat "$WORK/$p-rows.md"; done)
$(for p in "${E_PHASES[@]}"; do cat "$WORK/$p-rows.md"; done)
$(cat "$WORK/j-rows.md")
| f | peak RSS casestream-worker | **$(kb_mib "$RSS_WORKER") MiB** | VmHWM before stopping: $(kb_mib "$RSS_WORKER_A") MiB after (a), $(kb_mib "$RSS_WORKER_D") MiB after (d), $(kb_mib "$RSS_WORKER_J") MiB in (j) |
| f | peak RSS casestream-indexer | **$(kb_mib "$RSS_INDEXER") MiB** | VmHWM before stopping: $(kb_mib "$RSS_INDEXER_D") MiB after (d), $(kb_mib "$RSS_INDEXER_E") MiB after (e) |
| f | peak RSS casestream-produce | $(kb_mib "$RSS_PRODUCE") MiB | max RSS of the (d) producer (/usr/bin/time) |
$(cat "$WORK/g-rows.md")
$(cat "$WORK/h-rows.md")
$(cat "$WORK/i-rows.md")

## What limits the worker's throughput

$VERDICT

Over the $(ms_s "$A_WALL") s of (a) from the first poll that saw outcomes to the last ($((N - A_C_FIRST)) outcomes):

- **CPU** (% of one core): PostgreSQL $PG_CPU, worker $W_CPU, Kafka $KAFKA_CPU, Elasticsearch $ES_CPU; the machine ($NPROC cores) was $M_BUSY% busy.
- **The single consumer thread** spent $APPLY_PCT% of the window waiting in apply (validate, Redis fast path, then the appliers' two pipelined round trips and COMMIT on 4 connections): $BATCHES batches of $BATCH_AVG submissions on average, $BATCH_MS ms each. The other $((100 - APPLY_PCT))% is polling, the acks=all delivery of the batch's outcomes and the Redis writes.
- **PostgreSQL fsync**: $FSYNCS WAL fsyncs ($FSYNC_RATE/s) and $COMMITS commits for $((N - A_C_FIRST)) submissions, $PER_FSYNC submissions per fsync; pgbench with one client, one fsync per transaction, did ${B1_TPS:-?} tps, so fsync is $(if [[ -n ${B1_TPS:-} ]] && ((FSYNC_RATE * 2 < B1_TPS)); then echo "far from its limit"; else echo "close to its limit"; fi). $(((WAL1_BYTES - WAL0_BYTES) / 1024 / 1024)) MiB of WAL.
- **JSON and the worker's own CPU** ($PROFILE_NOTE, [$(basename "$PROFILE_FILE")]($(basename "$PROFILE_FILE"))): $(if ((IR_PER_SUB > 0)); then echo "$IR_PER_SUB instructions per submission, all threads. Inclusive: ${TOP_OWN:-see the file}. Heaviest by self cost: ${TOP_SELF:-see the file}."; else echo "see the file."; fi)

Bench data: \`$WORK\` (workloads, logs, topic dumps). Cleanup: $CLEANUP_NOTE.
EOF
cp "$MD_FILE" "$RESULTS/latest.md"
cat "$MD_FILE"
log "wrote $MD_FILE, $JSON_FILE and $RESULTS/latest.md"
