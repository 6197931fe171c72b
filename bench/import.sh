#!/usr/bin/env bash
# bench (g): `casestream import` events/s beside a raw copy of the same rows between the same two
# databases, in one run (bench/README.md). bench/run.sh runs it; it also runs alone:
#
#   bench/import.sh [WORK_DIR]
#
# It makes a source database shaped as CCD data store's (tests/fixtures/ccd_source.sql) with
# BENCH_IMPORT_CASES cases of BENCH_IMPORT_EVENTS events each, then
#   raw:    COPY (SELECT * FROM case_data | case_event …) TO STDOUT | COPY … FROM STDIN into
#           tables of CCD's shape (a schema of its own in casestream's database), timed;
#   import: casestream import --mode preload, as the worker's role; its copy (cases and
#           events, not the reindex after it) as the import itself times it.
# Writes WORK_DIR/g-rows.md (rows of the bench table) and WORK_DIR/g.json, and removes what it
# made: the source database, the raw schema, the imported cases, their index.
set -euo pipefail
cd "$(dirname "$0")/.."

CASES=${BENCH_IMPORT_CASES:-2000}
EVENTS=${BENCH_IMPORT_EVENTS:-20}
JOBS=${BENCH_IMPORT_JOBS:-2}
BATCH=${BENCH_IMPORT_BATCH:-1000}
RUNS=${BENCH_IMPORT_RUNS:-3} # raw and import alternately, RUNS times each
WORK=${1:-build/bench/import-$$}
mkdir -p "$WORK"

# The stack's settings, unless the caller gives its own (a database of its own, say).
[[ -n ${CASESTREAM_PG:-} ]] || eval "$(scripts/stack.sh env)"
OWNER=$CASESTREAM_PG
ROLE=${CASESTREAM_WORKER_PG:-$CASESTREAM_PG}
ES=$CASESTREAM_ES
TAG=$(date +%s)_$$
SRC_DB=bench_import_src_$TAG
RAW_SCHEMA=bench_import_raw_$TAG
TYPE=BenchImport-$TAG
INDEX=$(tr '[:upper:]' '[:lower:]' <<<"$TYPE")_cases
# Ids and references of its own: the import keeps CCD's ids.
BASE=$((8900000000000000 + (10#$(date +%s) % 100000) * 100000))

BENCH_ROW=g
# shellcheck source=bench/common.sh
source bench/common.sh
src_conninfo() { # the owner's conninfo with dbname replaced
    local c=$OWNER
    if [[ $c == *dbname=* ]]; then
        sed -E "s/dbname=[^ ]*/dbname=$SRC_DB/" <<<"$c"
    else
        echo "$c dbname=$SRC_DB"
    fi
}
SRC=$(src_conninfo)

# What the import wrote in casestream: its cases, their history, its own rows (not the index).
forget_imported() {
    psql "$ROLE" -XAtqc "
        DELETE FROM ccd.case_event WHERE case_reference IN
            (SELECT reference FROM ccd.case_data WHERE case_type_id = '$TYPE');
        DELETE FROM ccd.index_dead_letter WHERE reference IN
            (SELECT reference FROM ccd.case_data WHERE case_type_id = '$TYPE');
        DELETE FROM ccd.case_data WHERE case_type_id = '$TYPE';
        DELETE FROM ccd.import_error WHERE case_type_id = '$TYPE';
        DELETE FROM ccd.case_type_import WHERE case_type_id = '$TYPE';" >/dev/null
}
clean() {
    forget_imported 2>/dev/null || true
    psql "$OWNER" -XAtqc "DROP SCHEMA IF EXISTS $RAW_SCHEMA CASCADE" >/dev/null 2>&1 || true
    psql "$OWNER" -XAtqc "DROP DATABASE IF EXISTS $SRC_DB WITH (FORCE)" >/dev/null 2>&1 || true
    curl -fsS -X DELETE "$ES/$INDEX-*" >/dev/null 2>&1 || true
}
trap clean EXIT

log "(g) source database $SRC_DB: $CASES cases × $EVENTS events"
psql "$OWNER" -XAtqc "CREATE DATABASE $SRC_DB" >/dev/null
psql "$SRC" -XAtq -v ON_ERROR_STOP=1 -f tests/fixtures/ccd_source.sql >/dev/null
psql "$SRC" -XAtqc "SELECT setval('case_data_id_seq', $BASE), setval('case_event_id_seq', $BASE);
                    SELECT fill_cases('$TYPE', $CASES, $EVENTS, $BASE)" >/dev/null
# Statistics, as autovacuum keeps them in CCD's long-lived database: without them the planner's
# guesses about the freshly filled tables vary from run to run.
psql "$SRC" -XAtqc "VACUUM ANALYZE" >/dev/null
ROWS=$(psql "$SRC" -XAtqc "SELECT count(*) FROM case_event WHERE case_type_id = '$TYPE'")
BYTES=$(psql "$SRC" -XAtqc "SELECT sum(pg_column_size(e.*)) FROM case_event e")

# Raw: the same rows, cases then events, into tables of CCD's shape in casestream's database.
psql "$OWNER" -XAtqc "CREATE SCHEMA $RAW_SCHEMA" >/dev/null
psql "$OWNER" -XAtq -v ON_ERROR_STOP=1 -c "SET search_path = $RAW_SCHEMA" \
    -f tests/fixtures/ccd_source.sql >/dev/null
raw_copy() { # table
    psql "$SRC" -XAtqc "COPY (SELECT * FROM $1 WHERE case_type_id = '$TYPE' ORDER BY id) TO STDOUT" |
        psql "$OWNER" -XAtq -v ON_ERROR_STOP=1 -c "SET search_path = $RAW_SCHEMA" \
            -c "COPY $1 FROM STDIN" >/dev/null
}
raw_run() { # -> RAW_MS
    psql "$OWNER" -XAtqc "TRUNCATE $RAW_SCHEMA.case_data, $RAW_SCHEMA.case_event CASCADE" >/dev/null
    local t0
    t0=$(now_ms)
    raw_copy case_data
    raw_copy case_event
    RAW_MS=$(($(now_ms) - t0))
}
import_run() { # -> COPY_S, IMPORTED, WALL_MS; the import from nothing
    local t0
    forget_imported
    t0=$(now_ms)
    build/casestream --pg="$ROLE" --from="$SRC" --case-type="$TYPE" --jobs="$JOBS" --batch="$BATCH" import \
        >"$WORK/g-import.out" 2>"$WORK/g-import.err" ||
        {
            log "FAILED: the import: $(tail -3 "$WORK/g-import.err" | tr '\n' ' ')"
            exit 1
        }
    WALL_MS=$(($(now_ms) - t0))
    SUMMARY=$(grep 'msg="import: copied"' "$WORK/g-import.err")
    COPY_S=$(sed -n 's/.* elapsed=\([0-9.]*\)s.*/\1/p' <<<"$SUMMARY")
    IMPORTED=$(sed -n 's/.* events=\([0-9]*\) .*/\1/p' <<<"$SUMMARY")
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

# Alternately, so that both sides see the same machine: raw, import, raw, import, …
RAW_RATES=() IMPORT_RATES=()
for r in $(seq 1 "$RUNS"); do
    raw_run
    RAW_RATES+=("$(awk -v n="$ROWS" -v ms="$RAW_MS" 'BEGIN { printf "%.0f", (ms > 0 ? n * 1000 / ms : 0) }')")
    log "(g) run $r: raw copy of $ROWS events in $RAW_MS ms, ${RAW_RATES[-1]}/s"
    import_run
    IMPORT_RATES+=("$(awk -v n="$IMPORTED" -v s="$COPY_S" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')")
    log "(g) run $r: import of $IMPORTED events in $COPY_S s, ${IMPORT_RATES[-1]}/s"
done
RAW_RATE=$(printf '%s\n' "${RAW_RATES[@]}" | median)
IMPORT_RATE=$(printf '%s\n' "${IMPORT_RATES[@]}" | median)
RATIO=$(awk -v a="$IMPORT_RATE" -v b="$RAW_RATE" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
MET=$(awk -v r="$RATIO" 'BEGIN { print (r >= 0.5 ? "true" : "false") }')
VALID=false
build/casestream --pg="$ROLE" --from="$SRC" --case-type="$TYPE" --mode=validate import \
    >"$WORK/g-validate.out" 2>"$WORK/g-validate.err" && VALID=true
log "(g) medians: import $IMPORT_RATE/s, raw $RAW_RATE/s (import/raw $RATIO); validate clean: $VALID"

cat >"$WORK/g-rows.md" <<EOF
| g | import events/s | **$IMPORT_RATE/s** (median; runs ${IMPORT_RATES[*]}) | \`casestream import --mode preload --jobs $JOBS\` of $CASES cases × $EVENTS events ($((BYTES / 1024)) KiB of case_event) from a database shaped as CCD's, as casestream_worker, from nothing each run; the last: $IMPORTED events and $CASES cases in $COPY_S s (copy only; $(awk -v ms="$WALL_MS" 'BEGIN { printf "%.1f", ms / 1000 }') s with the reindex after it); validate clean: $VALID |
| g | raw COPY events/s | **$RAW_RATE/s** (median; runs ${RAW_RATES[*]}) | the same rows, \`COPY (SELECT …) TO STDOUT \| COPY … FROM STDIN\` with psql, case_data then case_event into emptied tables of CCD's shape (its indexes) in casestream's database, alternating with the import's runs; import/raw (medians) = **$RATIO** (target ≥ 0.5: $(if [[ $MET == true ]]; then echo reached; else echo "**not reached**"; fi)) |
EOF
cat >"$WORK/g.json" <<EOF
{"cases": $CASES, "events": $ROWS, "jobs": $JOBS, "case_event_bytes": $BYTES,
       "import": {"events": ${IMPORTED:-0}, "copy_seconds": ${COPY_S:-0}, "per_second": $IMPORT_RATE, "with_reindex_ms": $WALL_MS, "validate_clean": $VALID},
       "raw_copy": {"events": $ROWS, "ms": $RAW_MS, "per_second": $RAW_RATE},
       "runs": {"import_per_second": [$(IFS=,; echo "${IMPORT_RATES[*]}")], "raw_per_second": [$(IFS=,; echo "${RAW_RATES[*]}")]},
       "import_over_raw": $RATIO, "target": 0.5, "target_met": $MET}
EOF
cat "$WORK/g-rows.md"
