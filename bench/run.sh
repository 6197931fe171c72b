#!/usr/bin/env bash
# make bench (DESIGN §9): one run on this machine measures
#   (a) worker submissions/s with every guarantee on,
#   (b) a pgbench baseline doing what one submission writes, one durable transaction each,
#   (c) the ratio a/b (design target >= 2.0),
#   (d) produce->outcome and produce->searchable latency at half the rate of (a)
#       (and (d') at a quarter if the pipeline did not keep up with half),
#   (e) indexer documents/s against a raw _bulk load of the same documents (as (a) published
#       them, and (e') each with an id of its own),
#   (f) peak RSS of the programs,
#   (g) `casestream import` events/s against a raw COPY of the same rows (bench/import.sh),
#   (h) casestream-api: GET of one case (wrk, 32 connections) against the same lookup as SQL
#       (pgbench), and POST submit p50/p99 at 16 connections (bench/api.sh),
#   (i) the pause a worker joining and leaving a busy group puts on its partitions, with the
#       classic and the consumer group protocol (bench/rebalance.sh),
# plus a profile of the worker, and writes bench/results/<UTC>.json, <UTC>.md, latest.md.
# What each figure means: bench/README.md. Everything runs on topics, groups, ports,
# references and indices of its own, so the demo and the tests are never touched.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${BENCH_N:-20000}                  # (a) submissions
M=${BENCH_M:-1000}                   # (a) cases, and (b) cases
PGB_SECONDS=${BENCH_PGBENCH_SECONDS:-10}
PGB_CLIENTS=${BENCH_PGBENCH_CLIENTS:-1 2 4 8 16}
LAT_SECONDS=${BENCH_LATENCY_SECONDS:-30} # (d) how long to produce at the fixed rate
SAMPLE=${BENCH_SEARCH_SAMPLE:-200}   # (d) cases watched in Elasticsearch
POLL_MS=${BENCH_SEARCH_POLL_MS:-20}  # (d) their polling interval
PROFILE_N=${BENCH_PROFILE_N:-2000}   # submissions of the callgrind run
PROFILER=${BENCH_PROFILER:-auto}     # auto, perf, callgrind or none
KEEP=${BENCH_KEEP:-0}                # 1: keep the bench topics, indices and rows
read -r -a WORKER_ARGS <<<"${BENCH_WORKER_ARGS:-}"
read -r -a INDEXER_ARGS <<<"${BENCH_INDEXER_ARGS:-}"
BULK_DOCS=1000 # the indexer's --bulk-docs default; the raw baseline uses the same
for a in "${INDEXER_ARGS[@]}"; do [[ $a == --bulk-docs=* ]] && BULK_DOCS=${a#--bulk-docs=}; done

E=$((N / M)) # submissions per case
if ((E < 1)); then
    echo "bench: BENCH_N ($N) must be at least BENCH_M ($M)" >&2
    exit 2
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
# (time*1e6 ~ 1.8e15) and the tests' (~1.8e18). Each run gets 10^6: a, d, profile, b, d2 at 2*10^5 steps.
BASE=$((8000000000000000 + (EPOCH % 1000000000) * 1000000))
BASE_A=$BASE BASE_D=$((BASE + 200000)) BASE_P=$((BASE + 400000)) BASE_B=$((BASE + 600000))
BASE_D2=$((BASE + 800000))
RELAY_KEY=$(sed -n 's/^#define RELAY_LOCK_KEY "\([0-9]*\)".*/\1/p' worker/outbox.c)

declare -A PIDS=()
TOPICS_MADE=() INDICES_MADE=() CLEAN_B=0

log() { printf '%s bench: %s\n' "$(date +%T)" "$*" >&2; }
die() {
    log "FAILED: $*"
    exit 1
}
now_ms() { date +%s%3N; }
sql() { psql "$PG" -XAtqc "$1"; }

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

delete_baseline_cases() {
    ((CLEAN_B)) || return 0
    sql "DELETE FROM ccd.change_outbox WHERE reference BETWEEN $BASE_B AND $((BASE_B + M - 1));
         DELETE FROM ccd.case_event WHERE case_reference BETWEEN $BASE_B AND $((BASE_B + M - 1));
         DELETE FROM ccd.case_data WHERE reference BETWEEN $BASE_B AND $((BASE_B + M - 1));" || true
    CLEAN_B=0
}

# What only the bench needed, also after a failure (unless BENCH_KEEP=1). The cases of (a)
# and of the profile never reached nfd_cases: they go, so that every case in PostgreSQL keeps
# a document in the index. (d)'s cases went through the whole pipeline and stay, in
# PostgreSQL and in nfd_cases.
CLEANED=0
clean_up() {
    local lo hi i
    ((CLEANED == 0)) && [[ $KEEP != 1 ]] || return 0
    CLEANED=1
    for lo in "$BASE_A" "$BASE_P"; do
        hi=$((lo + 200000 - 1))
        sql "DELETE FROM ccd.change_outbox WHERE reference BETWEEN $lo AND $hi;
             DELETE FROM ccd.case_notes WHERE case_reference BETWEEN $lo AND $hi;
             DELETE FROM ccd.case_event WHERE case_reference BETWEEN $lo AND $hi;
             DELETE FROM ccd.case_data WHERE reference BETWEEN $lo AND $hi;" >/dev/null ||
            log "could not delete the cases $lo..$hi"
    done
    sql "DELETE FROM ccd.event_outcome WHERE topic LIKE '$RUN-%'" >/dev/null || true
    # An index the indexer created is <name>-000001 behind the alias <name>.
    for i in "${INDICES_MADE[@]}"; do
        for n in "$i" "$i-000001"; do curl -fsS -X DELETE "$ES/$n" >/dev/null 2>&1 || true; done
    done
    if ((${#TOPICS_MADE[@]})); then
        build/bench/topic_delete "$BROKERS" "${TOPICS_MADE[@]}" >"$WORK/topic-delete.txt" 2>&1 ||
            log "could not delete every bench topic (see $WORK/topic-delete.txt)"
    fi
}

on_exit() {
    local name
    for name in "${!PIDS[@]}"; do stop "$name"; done
    delete_baseline_cases
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
    TOPICS_MADE+=("$RUN-$1-events" "$RUN-$1-results" "$RUN-$1-changes" "$RUN-$1-dlq")
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
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
tree_ticks() { # pid and its children, in clock ticks
    local t=0 p
    for p in $1 $(pgrep -P "$1" 2>/dev/null || true); do t=$((t + $(ticks "$p"))); done
    echo $t
}
machine_ticks() { awk '/^cpu / { print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6 }' /proc/stat; } # total idle
stack_pid() { scripts/stack.sh status 2>/dev/null | awk -v s="$1" '$1 == s { print $3 }'; }
HZ=$(getconf CLK_TCK)

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
HELPER_CFLAGS="-std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O2 -g -Wall -Wextra -Wshadow
  -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wundef -Wpointer-arith -Wwrite-strings"
mkdir -p build/bench
build_helper() { # name pkg-config-packages
    if [[ ! -x build/bench/$1 || bench/$1.c -nt build/bench/$1 ]]; then
        # shellcheck disable=SC2046,SC2086
        cc $HELPER_CFLAGS $(pkg-config --cflags $2) -o "build/bench/$1" "bench/$1.c" \
            $(pkg-config --libs $2) || die "could not build bench/$1.c"
    fi
}
build_helper es_watch "libcurl jansson"
build_helper topic_delete rdkafka

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

# =========================================================================================
# (a) worker throughput
# =========================================================================================
log "(a) $N submissions over $M cases, preloaded, then one casestream-worker"
make_topics a
build/casestream workload --cases "$M" --events "$E" --seed 1 --base-ref "$BASE_A" \
    >"$WORK/a-workload.ndjson" 2>"$WORK/a-expected.json"
# shellcheck disable=SC2046
build/casestream-produce $(topic_args a) "$WORK/a-workload.ndjson" >/dev/null 2>"$WORK/a-produce.err" ||
    die "could not preload the submissions: $(tail -2 "$WORK/a-produce.err")"
expect() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$WORK/a-expected.json"; }

free_port PORT_A
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
start_worker a "$PORT_A"
T_START=$W_STARTED
WPID=${PIDS[worker]}
if [[ $PROFILE_TOOL == perf ]]; then
    perf record -g -F 499 -o "$WORK/perf.data" -p "$WPID" >"$WORK/perf.log" 2>&1 &
    PIDS[perf]=$!
fi
ON_FIRST=snapshot_first
watch_counter "$PORT_A" "$N" casestream_worker_outcomes_total "$WORK/a-metrics" $((60 + N / 20)) ||
    die "(a) only $(mint "$WORK/a-metrics.poll" casestream_worker_outcomes_total) of $N outcomes (see $WORK/a-worker.log)"
ON_FIRST=""
snapshot 1
A_T_FIRST=$T_FIRST A_C_FIRST=$C_FIRST A_T_LAST=$T_LAST A_POLLS=$POLLS A_T_POLL0=$T_POLL0
read -r M0_TOTAL M0_IDLE PG0 KAFKA0 ES0 W0 _ WAL0_SYNC WAL0_BYTES XACT0 <<<"$SNAP_0"
read -r M1_TOTAL M1_IDLE PG1 KAFKA1 ES1 W1 _ WAL1_SYNC WAL1_BYTES XACT1 <<<"$SNAP_1"
# Before stopping: the relay has published every change of (a), or (e) would miss some and
# the next phase's relay would ship them to its own topic.
until=$((SECONDS + 60))
while [[ $(sql "SELECT count(*) FROM ccd.change_outbox WHERE published_at IS NULL
                AND reference BETWEEN $BASE_A AND $((BASE_A + M - 1))") != 0 ]]; do
    ((SECONDS < until)) || die "(a) the outbox relay did not publish every change"
    sleep 0.2
done
read -r WAL1_SYNC WAL1_BYTES XACT1 < <(sql "SELECT wal_sync, wal_bytes,
    (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()) FROM pg_stat_wal" | tr '|' ' ')
RSS_WORKER_A=$(vmhwm "$WPID")
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
declare -A MIX=()
for s in applied duplicate conflict rejected invalid; do
    MIX[$s]=$(mint "$WORK/a-metrics.last" "casestream_worker_outcomes_total{status=\"$s\"}")
done
MIX_OK=false
[[ ${MIX[applied]} == "$(expect applied)" && ${MIX[conflict]} == "$(expect conflict)" &&
    ${MIX[duplicate]} == "$(expect duplicate)" && ${MIX[rejected]} == 0 && ${MIX[invalid]} == 0 ]] && MIX_OK=true
# Cross-check with the outcomes' own Kafka timestamps (CreateTime, ms).
kcat -C -b "$BROKERS" -t "$RUN-a-results" -o beginning -e -q -f '%T\n' 2>/dev/null | sort -n >"$WORK/a-outcome-ts.txt"
A_KAFKA_SPAN=$(awk 'NR == 1 { f = $1 } { l = $1 } END { print l - f }' "$WORK/a-outcome-ts.txt")
# Where the time went.
d() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'; }
APPLY_S=$(d "$(msum "$WORK/a-metrics.first" casestream_worker_apply_seconds_sum)" "$(msum "$WORK/a-metrics.last" casestream_worker_apply_seconds_sum)")
BATCHES=$(($(mint "$WORK/a-metrics.last" casestream_worker_batches_total) - $(mint "$WORK/a-metrics.first" casestream_worker_batches_total)))
APPLY_PCT=$(awk -v s="$APPLY_S" -v ms="$A_WALL" 'BEGIN { printf "%.0f", (ms > 0 ? 100 * s * 1000 / ms : 0) }')
BATCH_AVG=$(awk -v n=$((N - A_C_FIRST)) -v b="$BATCHES" 'BEGIN { printf "%.0f", b ? n / b : 0 }')
BATCH_MS=$(awk -v s="$APPLY_S" -v b="$BATCHES" 'BEGIN { printf "%.1f", b ? 1000 * s / b : 0 }')
pct() { awk -v t="$1" -v ms="$2" -v hz="$HZ" 'BEGIN { printf "%.0f", (ms > 0 ? 100 * t / hz / (ms / 1000) : 0) }'; }
W_CPU=$(pct $((W1 - W0)) "$A_WALL")
PG_CPU=$(pct $((PG1 - PG0)) "$A_WALL")
KAFKA_CPU=$(pct $((KAFKA1 - KAFKA0)) "$A_WALL")
ES_CPU=$(pct $((ES1 - ES0)) "$A_WALL")
M_BUSY=$(awk -v t=$((M1_TOTAL - M0_TOTAL)) -v i=$((M1_IDLE - M0_IDLE)) 'BEGIN { printf "%.0f", t ? 100 * (t - i) / t : 0 }')
FSYNCS=$((WAL1_SYNC - WAL0_SYNC)) COMMITS=$((XACT1 - XACT0))
PER_FSYNC=$(awk -v n=$((N - A_C_FIRST)) -v f="$FSYNCS" 'BEGIN { printf "%.1f", f ? n / f : 0 }')
log "(a) $A_RATE submissions/s (first->last outcome ${A_WALL} ms; ${A_RATE_START}/s from worker start)"

# =========================================================================================
# (b) the pgbench baseline
# =========================================================================================
log "(b) pgbench baseline on $M cases, clients $PGB_CLIENTS, ${PGB_SECONDS} s each"
CLEAN_B=1
sql "INSERT INTO ccd.case_data (reference, case_type_id, jurisdiction, state, data)
     SELECT $BASE_B + i, 'NFD', 'DIVORCE', 'Submitted',
            jsonb_build_object('applicant', jsonb_build_object('name', 'Applicant ' || ($BASE_B + i),
                               'city', 'Leeds'), 'amount', i % 10000, 'step', 0)
       FROM generate_series(0, $((M - 1))) i" || die "could not create the baseline's cases"
# Without sql/004 (outbox rows name their topic) the outbox has no topic column.
cp bench/pgbench_submission.sql "$WORK/b-script.sql"
if [[ $(sql "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'ccd'
             AND table_name = 'change_outbox' AND column_name = 'topic'") == 0 ]]; then
    sed -i 's/document, topic, published_at/document, published_at/; s/, :topic::text, now()/, now()/' "$WORK/b-script.sql"
fi
B_ROWS=() B_PEAK=0 B_PEAK_C=0
for c in $PGB_CLIENTS; do
    j=$((c < 2 ? c : 2))
    "$PGBENCH" -n -M prepared -f "$WORK/b-script.sql" -D base="$BASE_B" -D m="$M" -D topic="$RUN-b-changes" \
        -c "$c" -j "$j" -T "$PGB_SECONDS" "$PG" >"$WORK/b-pgbench-$c.txt" 2>&1 ||
        die "pgbench -c $c failed: $(tail -3 "$WORK/b-pgbench-$c.txt")"
    tps=$(awk '/^tps = / { printf "%.0f", $3 }' "$WORK/b-pgbench-$c.txt")
    lat=$(awk '/^latency average = / { print $4 }' "$WORK/b-pgbench-$c.txt")
    failed=$(awk '/^number of failed transactions: / { print $5 }' "$WORK/b-pgbench-$c.txt")
    B_ROWS+=("$c $tps $lat ${failed:-0}")
    log "(b) $c clients: $tps tps, latency $lat ms"
    if ((tps > B_PEAK)); then B_PEAK=$tps B_PEAK_C=$c; fi
done
delete_baseline_cases
RATIO=$(awk -v a="$A_RATE" -v b="$B_PEAK" 'BEGIN { printf "%.2f", b ? a / b : 0 }')
TARGET_MET=$(awk -v r="$RATIO" 'BEGIN { print (r >= 2.0 ? "true" : "false") }')
log "(c) ratio a/b = $RATIO"

# =========================================================================================
# (d) latency at a fixed rate, with a worker and an indexer running
# =========================================================================================
RSS_WORKER_D=0 RSS_INDEXER_D=0 RSS_PRODUCE=0 D_PHASES=()
max() { echo $(($1 > $2 ? $1 : $2)); }
ms_s() { awk -v m="$1" 'BEGIN { printf "%.2f", m / 1000 }'; }

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
    log "($label) produce->outcome p50/p95/p99 $o_p50/$o_p95/$o_p99 ms; ->search $s_p50/$s_p95/$s_p99 ms; kept up: $D_KEPT_UP"
    cat >"$WORK/$ph-rows.md" <<EOF
| $label | produce → outcome p50 / p95 / p99 | **$o_p50 / $o_p95 / $o_p99 ms** (max $o_max) | $o_n submissions over $md cases offered at $rate/s (achieved ${achieved:-?}/s) for ${LAT_SECONDS} s, a worker and an indexer running; outcome CreateTime − submission CreateTime, 1 ms resolution |
| $label | produce → searchable (_search) p50 / p95 / p99 | **$s_p50 / $s_p95 / $s_p99 ms** (max $s_max) | $s_n applied submissions of $sample_n watched cases ($s_miss never seen); first _search poll showing case_revision ≥ r; polled every ${POLL_MS} ms (mean cycle ${cycle:-?} ms), so late by up to one cycle (p50 of the lower bound: $s_lb ms) |
| $label | produce → GET (realtime) p50 / p95 / p99 | $g_p50 / $g_p95 / $g_p99 ms (max $g_max) | the same submissions by GET-by-id (_mget, realtime, before any refresh); $g_miss never seen; p50 of the lower bound $g_lb ms |
| $label | pipeline at $rate/s | $(if [[ $D_KEPT_UP == true ]]; then echo "kept up"; else echo "**did not keep up**"; fi) | last outcome $tail_ms ms after the last submission; p50 produce→outcome $p50_first ms in the first third of the run, $p50_last ms in the last; while producing the machine was $busy% busy; % of one core: worker $w_cpu, indexer $i_cpu, PostgreSQL $pg_cpu, Kafka $kafka_cpu, Elasticsearch $es_cpu; the worker was in apply $apply_pct% of the time |
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
       "outcome_p50_first_third_ms": $p50_first, "outcome_p50_last_third_ms": $p50_last,
       "while_producing": {"machine_busy_pct": $busy, "worker_cpu_pct": $w_cpu, "indexer_cpu_pct": $i_cpu,
                           "postgres_cpu_pct": $pg_cpu, "kafka_cpu_pct": $kafka_cpu, "elasticsearch_cpu_pct": $es_cpu,
                           "worker_apply_pct": $apply_pct}}
EOF
}

R=${BENCH_LATENCY_RATE:-$((A_RATE / 2))}
((R > 0)) || R=1
latency_run d "$R" 2 "$BASE_D" d
# At a/2 a 2-core machine also runs the indexer and Elasticsearch: if the pipeline fell behind,
# the figures above measure a growing queue. Then measure again at half that rate.
if [[ $D_KEPT_UP != true && -z ${BENCH_LATENCY_RATE:-} && ${BENCH_LATENCY_RETRY:-1} == 1 && $((R / 2)) -gt 0 ]]; then
    latency_run d2 $((R / 2)) 4 "$BASE_D2" "d′"
fi

# =========================================================================================
# (e) indexer documents/s against a raw _bulk load of the same documents
# =========================================================================================
# The change documents phase (a) published.
kcat -C -b "$BROKERS" -t "$RUN-a-changes" -o beginning -e -q -f '%k\t%s\n' 2>/dev/null |
    awk -F'\t' -v lo="$BASE_A" -v hi=$((BASE_A + M - 1)) '$1 >= lo && $1 <= hi' >"$WORK/e-source.tsv"
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
# (g) import from a database shaped as CCD's, against a raw COPY of the same rows
# =========================================================================================
log "(g) casestream import against a raw COPY between two databases (bench/import.sh)"
if ! bench/import.sh "$WORK" 2>"$WORK/g.log"; then
    log "(g) failed: $(tail -2 "$WORK/g.log" | tr '\n' ' ')"
    echo "| g | import events/s | failed | see \`$WORK/g.log\` |" >"$WORK/g-rows.md"
    echo '{"failed": true}' >"$WORK/g.json"
fi

# =========================================================================================
# (h) casestream-api: reads against the same lookup as SQL, submits with the pipeline running
# =========================================================================================
log "(h) casestream-api under wrk against pgbench (bench/api.sh)"
if ! bench/api.sh "$WORK" 2>"$WORK/h.log"; then
    log "(h) failed: $(tail -2 "$WORK/h.log" | tr '\n' ' ')"
    echo "| h | casestream-api | failed | see \`$WORK/h.log\` |" >"$WORK/h-rows.md"
    echo '{"failed": true}' >"$WORK/h.json"
fi

# =========================================================================================
# (i) rebalance pauses, classic against consumer group protocol
# =========================================================================================
log "(i) rebalance pauses with each group protocol (bench/rebalance.sh)"
if ! bench/rebalance.sh "$WORK" 2>"$WORK/i.log"; then
    log "(i) failed: $(tail -2 "$WORK/i.log" | tr '\n' ' ')"
    echo "| i | rebalance pause | failed | see \`$WORK/i.log\` |" >"$WORK/i-rows.md"
    echo '{"failed": true}' >"$WORK/i.json"
fi

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
KEPT_CASES="(d) $BASE_D.. in PostgreSQL and nfd_cases$(if [[ -f $WORK/d2.json ]]; then echo ", (d′) $BASE_D2.."; fi)"
CLEANUP_NOTE="kept (BENCH_KEEP=1): the topics $RUN-*, the (e) indices, the cases of every phase"
if [[ $KEEP != 1 ]]; then
    clean_up
    CLEANUP_NOTE="deleted: the bench topics, the (e) indices, the cases of (a), (b) and the profile; kept: the cases of $KEPT_CASES"
fi

# =========================================================================================
# The report
# =========================================================================================
kb_mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
RSS_WORKER=$(max "$RSS_WORKER_A" "$RSS_WORKER_D")
RSS_INDEXER=$(max "$RSS_INDEXER_D" "$RSS_INDEXER_E")
if ((M_BUSY >= 90)); then
    VERDICT="**CPU.** During (a) the machine's $NPROC cores were ${M_BUSY}% busy, mostly with PostgreSQL executing the submissions' statements (${PG_CPU}% of one core); the worker itself used ${W_CPU}%, Kafka ${KAFKA_CPU}%, Elasticsearch ${ES_CPU}%. The worker waits for PostgreSQL, and PostgreSQL waits for a core: more cores (or cheaper SQL per submission), not a faster worker, would raise (a)."
elif ((APPLY_PCT >= 60)); then
    VERDICT="**PostgreSQL.** The worker's consumer thread spent ${APPLY_PCT}% of the time waiting for its appliers (round trips, row locks, COMMIT with fsync) while the machine was only ${M_BUSY}% busy: latency, not CPU, bounds (a)."
else
    VERDICT="**Kafka and the consumer thread.** Only ${APPLY_PCT}% of the time went to applying in PostgreSQL; the rest went to polling, the Redis fast path and the acks=all delivery of every outcome before the next batch; the machine was ${M_BUSY}% busy."
fi
B1_TPS=$(awk '$1 == 1 { print $2 }' <<<"$(printf '%s\n' "${B_ROWS[@]}")")
FSYNC_RATE=$(awk -v f="$FSYNCS" -v ms="$A_WALL" 'BEGIN { printf "%.0f", (ms > 0 ? f * 1000 / ms : 0) }')
B_TABLE=""
B_JSON=""
for row in "${B_ROWS[@]}"; do
    read -r c tps lat failed <<<"$row"
    B_TABLE+="$c: $tps, "
    B_JSON+="${B_JSON:+, }{\"clients\": $c, \"tps\": $tps, \"latency_ms\": $lat, \"failed\": $failed}"
done
B_TABLE=${B_TABLE%, }
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
  "worker_throughput": {"submissions": $N, "cases": $M, "per_second": $A_RATE,
      "first_to_last_outcome_ms": $A_WALL, "outcomes_at_first_poll": $A_C_FIRST,
      "from_worker_start_ms": $A_FROM_START, "per_second_from_start": $A_RATE_START,
      "poll_interval_ms": $A_POLL_MS, "kafka_first_to_last_outcome_ms": $A_KAFKA_SPAN,
      "outcomes": {"applied": ${MIX[applied]}, "duplicate": ${MIX[duplicate]}, "conflict": ${MIX[conflict]},
                   "rejected": ${MIX[rejected]}, "invalid": ${MIX[invalid]}},
      "expected": {"applied": $(expect applied), "duplicate": $(expect duplicate), "conflict": $(expect conflict)},
      "mix_as_expected": $MIX_OK, "worker_args": "${WORKER_ARGS[*]}"},
  "baseline": {"tool": "pgbench -n -M prepared", "script": "bench/pgbench_submission.sql",
      "seconds_each": $PGB_SECONDS, "cases": $M, "runs": [$B_JSON],
      "peak_tps": $B_PEAK, "peak_clients": $B_PEAK_C},
  "ratio": {"a_over_b": $RATIO, "target": 2.0, "target_met": $TARGET_MET},
  "latency": [$(join_json "${D_PHASES[@]}")],
  "indexer": [$(join_json "${E_PHASES[@]}")],
  "import": $(cat "$WORK/g.json"),
  "api": $(cat "$WORK/h.json"),
  "rebalance": $(cat "$WORK/i.json"),
  "peak_rss_kb": {"worker": $RSS_WORKER, "worker_a": $RSS_WORKER_A, "worker_d": $RSS_WORKER_D,
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
| a | worker submissions/s, every guarantee on | **$A_RATE/s** | $N submissions over $M cases preloaded on 12 partitions; one worker (4 appliers, batch 256${WORKER_ARGS:+, ${WORKER_ARGS[*]}}); first→last outcome $(ms_s "$A_WALL") s by /metrics every ~${A_POLL_MS} ms ($(ms_s "$A_KAFKA_SPAN") s by the outcomes' Kafka timestamps); $A_RATE_START/s from worker start ($(ms_s "$A_FROM_START") s, with group join) |
| a | outcome mix | applied ${MIX[applied]}, duplicate ${MIX[duplicate]}, conflict ${MIX[conflict]}, rejected ${MIX[rejected]}, invalid ${MIX[invalid]} | as the workload expected: $MIX_OK |
| b | pgbench baseline, peak | **$B_PEAK tps** at $B_PEAK_C clients | one durable transaction per submission (bench/pgbench_submission.sql), $M cases, ${PGB_SECONDS} s per client count; tps by clients: $B_TABLE |
| c | ratio a/b | **$RATIO** | design target ≥ 2.0: $(if [[ $TARGET_MET == true ]]; then echo reached; else echo "**not reached**"; fi) |
$(for p in "${D_PHASES[@]}"; do cat "$WORK/$p-rows.md"; done)
$(for p in "${E_PHASES[@]}"; do cat "$WORK/$p-rows.md"; done)
| f | peak RSS casestream-worker | **$(kb_mib "$RSS_WORKER") MiB** | VmHWM before stopping: $(kb_mib "$RSS_WORKER_A") MiB after (a), $(kb_mib "$RSS_WORKER_D") MiB after (d) |
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
