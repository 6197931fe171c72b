/* casestream import: onboards a case type from CCD data store's own PostgreSQL database
 * (DESIGN §13). preload copies its cases and their history while CCD is live, cutover copies
 * what changed since under CCD's shutter, verifies and takes the case type over, validate
 * compares without writing.
 *
 * A run streams the source with COPY (SELECT …) TO STDOUT, one statement per phase (cases,
 * then events), cuts it into batches of --batch rows, and hands them to --jobs connections to
 * the target. Each batch is copied into a temporary table, moved into ccd.* by one statement
 * that sends the rows it cannot take to ccd.import_error, and committed together with the
 * run's position in ccd.case_type_import, in the order the batches were read: a run killed at
 * any moment and started again goes on from the last batch committed. */
#include "admin.h"

#include "db.h"
#include "envelope.h"
#include "err.h"
#include "import_rules.h"
#include "run.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROGRESS_INTERVAL_MS 250
#define VALIDATE_PAGE        "2000"

/* --- SQL on the source (CCD's tables) ------------------------------------------------------ */

#define KNOWN_CLASSIFICATIONS "('PUBLIC', 'PRIVATE', 'RESTRICTED')"

/* An event the import copies into its case's history (its case aside). */
#define EVENT_GOOD                                                                                 \
    "jsonb_typeof(e.data) = 'object' AND e.security_classification::text "                         \
    "IN " KNOWN_CLASSIFICATIONS " AND coalesce(jsonb_typeof(e.data_classification), 'null') IN"    \
    " ('object', 'null') AND e.event_id IS NOT NULL AND e.user_id IS NOT NULL"                     \
    " AND e.state_id IS NOT NULL"

/* Why an event is skipped (c: its case, LEFT JOINed), NULL when it is not. */
#define EVENT_PROBLEM                                                                              \
    "CASE WHEN c.id IS NULL THEN 'its case (case_data.id ' || e.case_data_id || ') is not in"      \
    " case_data as a case of this case type'"                                                      \
    " WHEN jsonb_typeof(e.data) IS DISTINCT FROM 'object' THEN 'data is not a JSON object but '"   \
    " || coalesce(jsonb_typeof(e.data), 'NULL')"                                                   \
    " WHEN e.security_classification IS NULL OR e.security_classification::text NOT "              \
    "IN " KNOWN_CLASSIFICATIONS " THEN 'unknown security_classification '"                         \
    " || coalesce(e.security_classification::text, 'NULL')"                                        \
    " WHEN coalesce(jsonb_typeof(e.data_classification), 'null') NOT IN ('object', 'null')"        \
    " THEN 'data_classification is not a JSON object'"                                             \
    " WHEN e.event_id IS NULL OR e.user_id IS NULL OR e.state_id IS NULL"                          \
    " THEN 'event_id, user_id or state_id is missing' END"

/* Why a case is skipped, NULL when it is not. */
#define CASE_PROBLEM                                                                               \
    "CASE WHEN jsonb_typeof(c.data) IS DISTINCT FROM 'object' THEN 'data is not a JSON object"     \
    " but ' || coalesce(jsonb_typeof(c.data), 'NULL')"                                             \
    " WHEN c.security_classification IS NULL OR c.security_classification::text NOT "              \
    "IN " KNOWN_CLASSIFICATIONS " THEN 'unknown security_classification '"                         \
    " || coalesce(c.security_classification::text, 'NULL')"                                        \
    " WHEN coalesce(jsonb_typeof(c.data_classification), 'null') NOT IN ('object', 'null')"        \
    " THEN 'data_classification is not a JSON object'"                                             \
    " WHEN coalesce(jsonb_typeof(c.supplementary_data), 'null') NOT IN ('object', 'null')"         \
    " THEN 'supplementary_data is not a JSON object'"                                              \
    " WHEN c.reference IS NULL OR c.reference <= 0 THEN 'reference is not a positive number'"      \
    " WHEN c.id <= 0 THEN 'id is not a positive number'"                                           \
    " WHEN c.jurisdiction IS NULL OR c.state IS NULL THEN 'jurisdiction or state is missing' END"

/* The run's parameters, set in the source session before each COPY (which takes no
 * parameters): the case type, the revision offset, the run's highest event id, the last
 * complete run's (the event mark) and newest last_modified (the case mark; NULL on a first run),
 * and the cursors of the run in progress. */
#define TYPE_P         "current_setting('casestream.import_type')"
#define OFFSET_P       "current_setting('casestream.import_offset')::bigint"
#define MAX_P          "current_setting('casestream.import_max')::bigint"
#define MARK_P         "current_setting('casestream.import_mark')::bigint"
#define CASE_MARK_P    "nullif(current_setting('casestream.import_case_mark'), '')::timestamp"
#define CASE_CURSOR_P  "current_setting('casestream.import_case_cursor')::bigint"
#define CURSOR_CASE_P  "current_setting('casestream.import_cursor_case')::bigint"
#define CURSOR_EVENT_P "current_setting('casestream.import_cursor_event')::bigint"

/* The same, read once per statement (an InitPlan) rather than once per row, for the events
 * statement: its plan (its scans, the lookup of each event's significant item) then stays the
 * same whatever the source's statistics, and a first run (the mark 0) skips the second scan. */
#define TYPE_1         "(SELECT " TYPE_P ")"
#define OFFSET_1       "(SELECT " OFFSET_P ")"
#define MAX_1          "(SELECT " MAX_P ")"
#define MARK_1         "(SELECT " MARK_P ")"
#define CURSOR_CASE_1  "(SELECT " CURSOR_CASE_P ")"
#define CURSOR_EVENT_1 "(SELECT " CURSOR_EVENT_P ")"

static const char params_sql[] =
    "SELECT set_config('casestream.import_type', $1, false),"
    " set_config('casestream.import_offset', $2, false),"
    " set_config('casestream.import_max', $3, false),"
    " set_config('casestream.import_mark', $4, false),"
    " set_config('casestream.import_case_mark', coalesce($5, ''), false),"
    " set_config('casestream.import_case_cursor', $6, false),"
    " set_config('casestream.import_cursor_case', $7, false),"
    " set_config('casestream.import_cursor_event', $8, false)";

/* The cases of a run after the cursor, in id order: every case on a first run, else those
 * modified since the case mark or with events since the event mark. A case's revision is the
 * offset plus its events up to the run's highest. */
#define CASES_WHERE                                                                                \
    " FROM case_data c WHERE c.case_type_id = " TYPE_P " AND c.id > " CASE_CURSOR_P                \
    " AND (" CASE_MARK_P " IS NULL OR c.last_modified >= " CASE_MARK_P                             \
    " OR c.id IN (SELECT case_data_id FROM case_event WHERE case_type_id = " TYPE_P                \
    " AND id > " MARK_P " AND id <= " MAX_P "))"

#define CASES_COPY_SQL                                                                             \
    "COPY (SELECT c.id, c.reference, c.case_type_id, c.jurisdiction, c.state,"                     \
    " c.security_classification::text, c.data, NULLIF(c.data_classification, 'null'::jsonb),"      \
    " CASE WHEN coalesce(jsonb_typeof(c.supplementary_data), 'null') = 'null' THEN '{}'::jsonb"    \
    " ELSE c.supplementary_data END, c.resolved_ttl, coalesce(c.version, 1),"                      \
    " " OFFSET_P " + (SELECT count(*) FROM case_event e WHERE e.case_data_id = c.id"               \
    " AND e.case_type_id = c.case_type_id AND e.id <= " MAX_P " AND " EVENT_GOOD "),"              \
    " c.created_date, coalesce(c.last_modified, c.created_date),"                                  \
    " coalesce(c.last_state_modified_date, c.created_date), " CASE_PROBLEM CASES_WHERE             \
    " ORDER BY c.id) TO STDOUT"

/* The events of a run after the cursor, in (case, id) order: every event of the cases with
 * events since the event mark (on a first run, the mark 0, every case: no second scan of the
 * events), numbered within its case among the events the import copies, so that its revision
 * is the offset plus that ordinal and its version counts, by the version rule, the changes of
 * blob, state and classification along the history. Significant items are attached (the
 * latest one). Of the case after each event (010): its last_state_modified_date, the latest
 * event up to this one that changed the state; its supplementary data on the case's latest
 * row only (CCD keeps no history of it: NULL before). An event's significant item is looked
 * up by its id (CCD's index on case_event_id): no plan joins the items of every case type, nor
 * rescans them per event when the source's statistics are missing. The rows with a reason to
 * skip are
 * numbered apart (their own window partition) and given no numbers, so one pass of windows
 * over one sort serves both, without a second scan of the events. */
#define EVENTS_COPY_SQL                                                                            \
    "COPY (WITH ev AS (SELECT e.id, e.case_data_id, c.reference, e.event_id, e.event_name,"        \
    " e.user_id, e.user_first_name, e.user_last_name, e.summary, e.description, e.state_id,"       \
    " e.state_name, e.case_type_version, e.security_classification, e.data,"                       \
    " NULLIF(e.data_classification, 'null'::jsonb) AS data_classification,"                        \
    " (SELECT jsonb_build_object('type', si.type::text, 'description', si.description, 'url',"     \
    " si.url) FROM case_event_significant_items si WHERE si.case_event_id = e.id"                  \
    " ORDER BY si.id DESC LIMIT 1) AS item, c.supplementary_data AS case_map,"                     \
    " e.proxied_by, e.proxied_by_first_name, e.proxied_by_last_name, "                             \
    "e.created_date, " EVENT_PROBLEM " AS problem"                                                 \
    " FROM case_event e LEFT JOIN case_data c ON c.id = e.case_data_id"                            \
    " AND c.case_type_id = e.case_type_id"                                                         \
    " WHERE e.case_type_id = " TYPE_1 " AND e.id <= " MAX_1                                        \
    " AND e.case_data_id >= " CURSOR_CASE_1 " AND (" MARK_1 " = 0"                                 \
    " OR e.case_data_id IN (SELECT case_data_id FROM case_event WHERE case_type_id = " TYPE_1      \
    " AND id > " MARK_1 " AND id <= " MAX_1 "))),"                                                 \
    " lagged AS (SELECT ev.*, row_number() OVER w AS ordinal, lead(id) OVER w IS NULL AS latest,"  \
    " (data IS DISTINCT FROM lag(data) OVER w OR state_id IS DISTINCT FROM lag(state_id) OVER w"   \
    " OR security_classification IS DISTINCT FROM lag(security_classification) OVER w)::int"       \
    " AS changed, CASE WHEN state_id IS DISTINCT FROM lag(state_id) OVER w THEN created_date"      \
    " END AS state_moved FROM ev WINDOW w AS (PARTITION BY case_data_id, problem IS NULL"          \
    " ORDER BY id)),"                                                                              \
    " numbered AS (SELECT lagged.*, sum(changed) OVER w AS version,"                               \
    " max(state_moved) OVER w AS state_since FROM lagged"                                          \
    " WINDOW w AS (PARTITION BY case_data_id, problem IS NULL ORDER BY id))"                       \
    " SELECT case_data_id, id, reference,"                                                         \
    " CASE WHEN problem IS NULL THEN " OFFSET_1 " + ordinal END,"                                  \
    " CASE WHEN problem IS NULL THEN version::int END, event_id, event_name, user_id,"             \
    " user_first_name, user_last_name, summary, description, state_id, state_name,"                \
    " case_type_version, security_classification::text, data, data_classification, item,"          \
    " proxied_by, proxied_by_first_name, proxied_by_last_name, created_date,"                      \
    " CASE WHEN problem IS NULL THEN state_since END,"                                             \
    " CASE WHEN problem IS NULL AND latest THEN coalesce(NULLIF(case_map, 'null'::jsonb),"         \
    " '{}'::jsonb) END, problem FROM numbered WHERE id > " MARK_1                                  \
    " AND (case_data_id, id) > (" CURSOR_CASE_1 ", " CURSOR_EVENT_1 ")"                            \
    " ORDER BY case_data_id, id) TO STDOUT"

static const char cases_count_sql[] = "SELECT count(*)" CASES_WHERE;
static const char events_count_sql[] =
    "SELECT count(*) FROM case_event WHERE case_type_id = " TYPE_P " AND id > " MARK_P
    " AND id <= " MAX_P " AND (case_data_id, id) > (" CURSOR_CASE_P ", " CURSOR_EVENT_P ")";

/* What a run starting now covers: the highest event id, the newest last_modified, the
 * highest case id of the case type. */
static const char bounds_sql[] =
    "SELECT (SELECT coalesce(max(id), 0) FROM case_event WHERE case_type_id = $1),"
    " (SELECT max(last_modified)::text FROM case_data WHERE case_type_id = $1),"
    " (SELECT coalesce(max(id), 0) FROM case_data WHERE case_type_id = $1)";

/* validate, on the source: the cases the import copies, with the number of their events it
 * copies. */
static const char source_cases_sql[] =
    "DECLARE import_validate NO SCROLL CURSOR FOR SELECT c.reference,"
    " (SELECT count(*) FROM case_event e WHERE e.case_data_id = c.id"
    " AND e.case_type_id = c.case_type_id AND " EVENT_GOOD "), md5(c.data::text), c.state,"
    " coalesce(c.version, 1), c.security_classification::text FROM case_data c"
    " WHERE c.case_type_id = $1 AND (" CASE_PROBLEM ") IS NULL ORDER BY c.reference";

static const char source_data_sql[] = "SELECT data::text FROM case_data WHERE reference = $1";

/* --- SQL on the target (ccd.*) -------------------------------------------------------------- */

static const char case_stage_sql[] =
    "CREATE TEMP TABLE import_case_stage (src_id bigint, reference bigint, case_type_id text,"
    " jurisdiction text, state text, classification text, data jsonb,"
    " data_classification jsonb, supplementary_data jsonb, resolved_ttl date, version int,"
    " case_revision bigint, created_date timestamp, last_modified timestamp,"
    " last_state_modified_date timestamp, problem text) ON COMMIT DELETE ROWS";

static const char event_stage_sql[] =
    "CREATE TEMP TABLE import_event_stage (src_case_id bigint, id bigint, case_reference bigint,"
    " case_revision bigint, version int, event_id text, event_name text, user_id text,"
    " user_first_name text, user_last_name text, summary text, description text,"
    " state_id text, state_name text, case_type_version int, classification text, data jsonb,"
    " data_classification jsonb, significant_item jsonb, proxied_by text,"
    " proxied_by_first_name text, proxied_by_last_name text, created_date timestamp,"
    " last_state_modified_date timestamp, case_supplementary_data jsonb, problem text)"
    " ON COMMIT DELETE ROWS";

/* A batch of cases ($1 the case type) into ccd.case_data: new ones inserted, ones copied
 * before updated; those the source gives a reason to skip, and those whose reference or id
 * another case holds in casestream (or whose reference was disposed of), recorded in
 * ccd.import_error instead. A case imported at last loses its error row. Returns how many
 * were written and how many skipped. */
static const char cases_move_sql[] =
    "WITH s AS (SELECT * FROM import_case_stage),"
    " bad AS (SELECT s.src_id, s.reference, s.problem AS reason FROM s"
    " WHERE s.problem IS NOT NULL"
    " UNION ALL SELECT s.src_id, s.reference, 'reference ' || s.reference || ' is a case of"
    " case type ' || c.case_type_id || ' in casestream' FROM s JOIN ccd.case_data c"
    " ON c.reference = s.reference WHERE s.problem IS NULL AND c.case_type_id <> $1"
    " UNION ALL SELECT s.src_id, s.reference, 'id ' || s.src_id || ' is the id of case '"
    " || c.reference || ' in casestream' FROM s JOIN ccd.case_data c ON c.id = s.src_id"
    " WHERE s.problem IS NULL AND c.reference <> s.reference"
    " UNION ALL SELECT s.src_id, s.reference, 'case ' || s.reference || ' was disposed of in"
    " casestream' FROM s JOIN ccd.disposed_case d ON d.reference = s.reference"
    " WHERE s.problem IS NULL),"
    " up AS (INSERT INTO ccd.case_data (reference, id, case_type_id, jurisdiction, state,"
    " security_classification, data, data_classification, supplementary_data, resolved_ttl,"
    " version, case_revision, created_date, last_modified, last_state_modified_date)"
    " SELECT s.reference, s.src_id, s.case_type_id, s.jurisdiction, s.state,"
    " s.classification::ccd.securityclassification, s.data, s.data_classification,"
    " s.supplementary_data, s.resolved_ttl, s.version, s.case_revision,"
    " s.created_date AT TIME ZONE 'UTC', s.last_modified AT TIME ZONE 'UTC',"
    " s.last_state_modified_date AT TIME ZONE 'UTC' FROM s"
    " WHERE s.problem IS NULL AND s.src_id NOT IN (SELECT src_id FROM bad)"
    " ON CONFLICT (reference) DO UPDATE SET id = EXCLUDED.id,"
    " jurisdiction = EXCLUDED.jurisdiction, state = EXCLUDED.state,"
    " security_classification = EXCLUDED.security_classification, data = EXCLUDED.data,"
    " data_classification = EXCLUDED.data_classification,"
    " supplementary_data = EXCLUDED.supplementary_data, resolved_ttl = EXCLUDED.resolved_ttl,"
    " version = EXCLUDED.version, case_revision = EXCLUDED.case_revision,"
    " created_date = EXCLUDED.created_date, last_modified = EXCLUDED.last_modified,"
    " last_state_modified_date = EXCLUDED.last_state_modified_date"
    " WHERE ccd.case_data.case_type_id = EXCLUDED.case_type_id RETURNING id),"
    " fixed AS (DELETE FROM ccd.import_error x WHERE x.case_type_id = $1"
    " AND x.source_table = 'case_data' AND x.source_id IN (SELECT id FROM up)),"
    " err AS (INSERT INTO ccd.import_error (case_type_id, source_table, source_id,"
    " case_reference, reason) SELECT DISTINCT ON (src_id) $1, 'case_data', src_id, reference,"
    " reason FROM bad ORDER BY src_id ON CONFLICT DO NOTHING)"
    " SELECT (SELECT count(*) FROM up), (SELECT count(DISTINCT src_id) FROM bad)";

/* A batch of events ($1 the case type) into ccd.case_event (a row's case looked up by its
 * reference, one index probe each: a plan through the index on case_type_id, whose statistics
 * lag behind an import, costs a scan of the type's cases per row), without idempotency keys; those
 * the source gives a reason to skip, those whose case was not imported and those whose id or
 * revision another history row holds, recorded in ccd.import_error instead (a row exactly as
 * this one was copied before is neither). Returns how many were written and skipped. */
static const char events_move_sql[] =
    "WITH s AS (SELECT * FROM import_event_stage),"
    " orphan AS (SELECT s.id, s.case_reference FROM s WHERE s.problem IS NULL AND"
    " (SELECT c.case_type_id FROM ccd.case_data c WHERE c.reference = s.case_reference)"
    " IS DISTINCT FROM $1),"
    " ins AS (INSERT INTO ccd.case_event (id, case_reference, case_revision, version,"
    " event_id, user_id, summary, description, state_id, security_classification, data,"
    " idempotency_key, created_date, event_name, user_first_name, user_last_name, state_name,"
    " case_type_version, data_classification, significant_item, proxied_by,"
    " proxied_by_first_name, proxied_by_last_name, last_state_modified_date,"
    " case_supplementary_data)"
    " SELECT s.id, s.case_reference, s.case_revision, s.version, s.event_id, s.user_id,"
    " s.summary, s.description, s.state_id, s.classification::ccd.securityclassification,"
    " s.data, NULL, s.created_date AT TIME ZONE 'UTC', s.event_name, s.user_first_name,"
    " s.user_last_name, s.state_name, s.case_type_version, s.data_classification,"
    " s.significant_item, s.proxied_by, s.proxied_by_first_name, s.proxied_by_last_name,"
    " s.last_state_modified_date AT TIME ZONE 'UTC', s.case_supplementary_data FROM s WHERE "
    "s.problem IS NULL AND s.id NOT IN (SELECT id FROM orphan)"
    " ON CONFLICT DO NOTHING RETURNING id),"
    " bad AS (SELECT s.id, s.case_reference, s.problem AS reason FROM s"
    " WHERE s.problem IS NOT NULL"
    " UNION ALL SELECT o.id, o.case_reference, 'its case ' || o.case_reference || ' was not"
    " imported (see the case''s own row)' FROM orphan o"
    " UNION ALL SELECT s.id, s.case_reference, 'id ' || s.id || ' or revision '"
    " || s.case_revision || ' of case ' || s.case_reference || ' is another history row''s in"
    " casestream' FROM s WHERE s.problem IS NULL AND s.id NOT IN (SELECT id FROM orphan)"
    " AND s.id NOT IN (SELECT id FROM ins) AND NOT EXISTS (SELECT 1 FROM ccd.case_event e"
    " WHERE e.id = s.id AND e.case_reference = s.case_reference"
    " AND e.case_revision = s.case_revision)),"
    " err AS (INSERT INTO ccd.import_error (case_type_id, source_table, source_id,"
    " case_reference, reason) SELECT $1, 'case_event', id, case_reference, reason FROM bad"
    " ON CONFLICT DO NOTHING)"
    " SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM bad)";

static const char cases_cursor_sql[] =
    "UPDATE ccd.case_type_import SET run_case_cursor = $2 WHERE case_type_id = $1";
static const char events_cursor_sql[] = "UPDATE ccd.case_type_import SET run_event_case = $2,"
                                        " run_event_id = $3 WHERE case_type_id = $1";

static const char state_sql[] =
    "SELECT revision_offset, event_mark, case_mark::text, run_event_max,"
    " run_phase, run_case_cursor, run_event_case, run_event_id,"
    " to_char(owned_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
    " FROM ccd.case_type_import WHERE case_type_id = $1";

/* A new run: its bounds, from the source, and its phase. */
static const char run_start_sql[] =
    "UPDATE ccd.case_type_import SET run_event_max = $2, run_case_max = $3::timestamp,"
    " run_phase = 'cases', run_case_cursor = 0, run_event_case = 0, run_event_id = 0"
    " WHERE case_type_id = $1";

static const char run_events_sql[] =
    "UPDATE ccd.case_type_import SET run_phase = 'events' WHERE case_type_id = $1";

/* The run is complete: its bounds become the marks. */
static const char run_end_sql[] =
    "UPDATE ccd.case_type_import SET event_mark = run_event_max,"
    " case_mark = coalesce(run_case_max, case_mark), run_event_max = NULL,"
    " run_case_max = NULL, run_phase = NULL, run_case_cursor = 0, run_event_case = 0,"
    " run_event_id = 0, last_run_at = now() WHERE case_type_id = $1";

/* The two id sequences moved past ids the source holds ($1 case ids, $2 event ids), so that
 * casestream gives no case or history row an id the import is to copy. */
static const char sequences_sql[] =
    "SELECT setval('ccd.case_data_id_seq', $1::bigint) FROM ccd.case_data_id_seq"
    " WHERE $1::bigint >= last_value UNION ALL"
    " SELECT setval('ccd.case_event_id_seq', $2::bigint) FROM ccd.case_event_id_seq"
    " WHERE $2::bigint >= last_value";

static const char target_cases_sql[] =
    "DECLARE import_validate NO SCROLL CURSOR FOR SELECT c.reference,"
    " (SELECT count(*) FROM ccd.case_event e WHERE e.case_reference = c.reference),"
    " md5(c.data::text), c.state, c.version, c.security_classification::text"
    " FROM ccd.case_data c WHERE c.case_type_id = $1 ORDER BY c.reference";

static const char target_data_sql[] = "SELECT data::text FROM ccd.case_data WHERE reference = $1";

/* --- the run --------------------------------------------------------------------------------- */

typedef enum phase { PHASE_CASES, PHASE_EVENTS } phase;

/* Rows read from the source, in COPY's text format, with where the last one is. */
typedef struct batch {
    uint64_t seq;
    char *buf;
    size_t len, cap;
    long long rows;
    int64_t last[2]; /* the last row's source case id (and event id) */
    struct batch *next;
} batch;

typedef struct import {
    const cs_config *cfg;
    PGconn *src, *dst; /* dst: the state and the advisory lock */
    /* ccd.case_type_import */
    long long offset, event_mark, run_event_max, case_cursor, event_case, event_id;
    char case_mark[40], run_phase[16];
    bool has_case_mark, running;
    long long source_case_max;
    /* the batches between the reader and the writers */
    pthread_mutex_t q_mu;
    pthread_cond_t q_cond;
    batch *head, *tail;
    size_t queued;
    bool closed;
    /* the order of commits, and what they did */
    pthread_mutex_t turn_mu;
    pthread_cond_t turn_cond;
    cs_import_turns turns;
    phase ph;
    long long cases, events, errors, phase_rows, phase_total;
    char failure[512];
    /* progress */
    bool progress, progress_shown;
    long long start_ms, phase_start_ms, last_progress_ms;
} import;

static PGconn *connect_utc(import *im, const char *conninfo, const char *which);

/* Logs one line at level, first clearing the progress line if one is shown. */
__attribute__((format(printf, 3, 4))) static void say(import *im, int level, const char *fmt, ...)
{
    char text[2048];
    va_list ap;

    if (level > cs_log_threshold)
        return;
    if (im->progress_shown) {
        fputs("\r\033[K", stderr);
        im->progress_shown = false;
    }
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    cs_log_write(level, "import: %s", text);
}

static const char *phase_name(phase p)
{
    return p == PHASE_CASES ? "cases" : "events";
}

/* The progress line (on a terminal): what this phase did, its rate and what is left. */
static void progress(import *im, bool force)
{
    long long now = cs_now_ms(), rows, total;
    double secs, rate;

    if (!im->progress || (!force && now - im->last_progress_ms < PROGRESS_INTERVAL_MS))
        return;
    pthread_mutex_lock(&im->turn_mu);
    rows = im->phase_rows;
    total = im->phase_total;
    pthread_mutex_unlock(&im->turn_mu);
    secs = (double)(now - im->phase_start_ms) / 1000.0;
    rate = secs > 0 ? (double)rows / secs : 0.0;
    fprintf(stderr, "\r\033[K%s: %lld/%lld %.0f/s eta %.0fs", phase_name(im->ph), rows, total, rate,
            rate > 0 && total > rows ? (double)(total - rows) / rate : 0.0);
    fflush(stderr);
    im->progress_shown = true;
    im->last_progress_ms = now;
}

static void batch_free(batch *b)
{
    if (b)
        free(b->buf);
    free(b);
}

static bool batch_append(batch *b, const char *row, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1 << 20;
        char *bigger;

        while (cap < b->len + len)
            cap *= 2;
        if (!(bigger = realloc(b->buf, cap)))
            return false;
        b->buf = bigger;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, row, len);
    b->len += len;
    b->rows++;
    return true;
}

/* Hands b to the writers, waiting while as many batches as writers are waiting already. */
static void queue_push(import *im, batch *b)
{
    pthread_mutex_lock(&im->q_mu);
    while (im->queued >= (size_t)im->cfg->jobs && !im->turns.failed)
        pthread_cond_wait(&im->q_cond, &im->q_mu);
    b->next = NULL;
    if (im->tail)
        im->tail->next = b;
    else
        im->head = b;
    im->tail = b;
    im->queued++;
    pthread_cond_broadcast(&im->q_cond);
    pthread_mutex_unlock(&im->q_mu);
}

/* The next batch for a writer; NULL once the reader is done and the queue is empty. */
static batch *queue_pop(import *im)
{
    batch *b;

    pthread_mutex_lock(&im->q_mu);
    while (!im->head && !im->closed)
        pthread_cond_wait(&im->q_cond, &im->q_mu);
    if ((b = im->head) != NULL) {
        im->head = b->next;
        if (!im->head)
            im->tail = NULL;
        im->queued--;
        pthread_cond_broadcast(&im->q_cond);
    }
    pthread_mutex_unlock(&im->q_mu);
    return b;
}

static void queue_close(import *im)
{
    pthread_mutex_lock(&im->q_mu);
    im->closed = true;
    pthread_cond_broadcast(&im->q_cond);
    pthread_mutex_unlock(&im->q_mu);
}

/* Records the first failure; later batches do not commit and the reader stops. */
static void fail(import *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(import *im, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&im->turn_mu);
    if (!im->failure[0]) {
        va_start(ap, fmt);
        vsnprintf(im->failure, sizeof(im->failure), fmt, ap);
        va_end(ap);
    }
    im->turns.failed = true;
    pthread_cond_broadcast(&im->turn_cond);
    pthread_mutex_unlock(&im->turn_mu);
    pthread_mutex_lock(&im->q_mu);
    pthread_cond_broadcast(&im->q_cond);
    pthread_mutex_unlock(&im->q_mu);
}

static bool failed(import *im)
{
    bool f;

    pthread_mutex_lock(&im->turn_mu);
    f = im->turns.failed;
    pthread_mutex_unlock(&im->turn_mu);
    return f;
}

/* A connection to the target for a writer, with the stage tables of its session. */
static PGconn *writer_connect(import *im, char *errstr, size_t errstr_size)
{
    PGconn *conn = cs_db_connect(im->cfg->pg, errstr, errstr_size);

    if (!conn)
        return NULL;
    if (cs_db_exec(conn, "SET TIME ZONE 'UTC'", errstr, errstr_size) ||
        cs_db_exec(conn, case_stage_sql, errstr, errstr_size) ||
        cs_db_exec(conn, event_stage_sql, errstr, errstr_size)) {
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* The direct COPY of an events batch: the columns of the events COPY between the source case
 * id and the reason to skip (cs_import_event_row). */
static const char events_direct_sql[] =
    "COPY ccd.case_event (id, case_reference, case_revision, version, event_id, event_name,"
    " user_id, user_first_name, user_last_name, summary, description, state_id, state_name,"
    " case_type_version, security_classification, data, data_classification,"
    " significant_item, proxied_by, proxied_by_first_name, proxied_by_last_name,"
    " created_date, last_state_modified_date, case_supplementary_data) FROM STDIN";

/* Sends len bytes of COPY text rows with sql (a COPY … FROM STDIN); *rows gets how many the
 * server took. */
static int copy_rows(PGconn *conn, const char *sql, const char *data, size_t len, long long *rows,
                     char *errstr, size_t errstr_size)
{
    PGresult *res = PQexec(conn, sql);
    int rc = CS_OK;

    *rows = 0;
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        cs_db_error(conn, res, errstr, errstr_size);
        PQclear(res);
        return CS_ERR;
    }
    PQclear(res);
    if (PQputCopyData(conn, data, (int)len) != 1 || PQputCopyEnd(conn, NULL) != 1) {
        cs_db_error(conn, NULL, errstr, errstr_size);
        rc = CS_ERR;
    }
    while ((res = PQgetResult(conn)) != NULL) {
        if (rc == CS_OK && PQresultStatus(res) != PGRES_COMMAND_OK) {
            cs_db_error(conn, res, errstr, errstr_size);
            rc = CS_ERR;
        } else if (rc == CS_OK) {
            *rows = strtoll(PQcmdTuples(res), NULL, 10);
        }
        PQclear(res);
    }
    return rc;
}

/* Splits an events batch: the rows to copy straight into ccd.case_event (their history
 * columns) into *direct, the rows with a reason to skip (whole) into *skip. */
static bool split_events(const batch *b, batch *direct, batch *skip)
{
    for (size_t at = 0; at < b->len;) {
        const char *row = b->buf + at, *nl = memchr(row, '\n', b->len - at);
        size_t len = (size_t)(nl - row) + 1, from, to;
        bool skipped;

        if (!nl || !cs_import_event_row(row, len, &from, &to, &skipped))
            return false;
        if (skipped
                ? !batch_append(skip, row, len)
                : !batch_append(direct, row + from, to - from) || !batch_append(direct, "\n", 1))
            return false;
        at += len;
    }
    return true;
}

/* Copies rows (COPY text) into the stage table stage_copy names, then runs move ($1 the case
 * type), which returns how many rows it wrote and how many it skipped: added to *written and
 * *skipped. */
static int stage_and_move(PGconn *conn, const char *stage_copy, const char *move, const char *type,
                          const batch *rows, long long *written, long long *skipped, char *errstr,
                          size_t errstr_size)
{
    const char *params[] = {type};
    PGresult *res;
    long long n;

    if (copy_rows(conn, stage_copy, rows->buf, rows->len, &n, errstr, errstr_size))
        return CS_ERR;
    res = PQexecParams(conn, move, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cs_db_error(conn, res, errstr, errstr_size);
        PQclear(res);
        return CS_ERR;
    }
    *written += strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    *skipped += strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);
    return CS_OK;
}

/* The events of batch b: those without a reason to skip copied straight into ccd.case_event
 * (no second copy through the stage table); the rest, or the whole batch when the direct copy
 * is refused (a row whose case was not imported, an id casestream has), through the stage
 * table and the statement that records what it cannot take. */
static int write_events(PGconn *conn, const char *type, const batch *b, long long *written,
                        long long *skipped, char *errstr, size_t errstr_size)
{
    batch direct = {0}, skip = {0};
    const batch *staged = &skip;
    int rc = CS_ERR;

    *written = *skipped = 0;
    if (!split_events(b, &direct, &skip)) {
        snprintf(errstr, errstr_size, "an events row of the source is not as expected");
        goto cleanup;
    }
    if (direct.len > 0) {
        if (cs_db_exec(conn, "SAVEPOINT direct", errstr, errstr_size))
            goto cleanup;
        if (copy_rows(conn, events_direct_sql, direct.buf, direct.len, written, errstr,
                      errstr_size) == CS_OK) {
            if (cs_db_exec(conn, "RELEASE SAVEPOINT direct", errstr, errstr_size))
                goto cleanup;
        } else {
            cs_log_debug("import: batch ending at %" PRId64 " goes through the stage table: %s",
                         b->last[1], errstr);
            if (cs_db_exec(conn, "ROLLBACK TO SAVEPOINT direct", errstr, errstr_size))
                goto cleanup;
            *written = 0;
            staged = b;
        }
    }
    if (staged->len > 0 &&
        stage_and_move(conn, "COPY import_event_stage FROM STDIN", events_move_sql, type, staged,
                       written, skipped, errstr, errstr_size))
        goto cleanup;
    rc = CS_OK;
cleanup:
    free(direct.buf);
    free(skip.buf);
    return rc;
}

/* One batch: copied in, moved into ccd.*, and committed in its turn with the run's cursor. */
static int write_batch(import *im, PGconn *conn, const batch *b, char *errstr, size_t errstr_size)
{
    const char *type = im->cfg->case_type;
    char k0[24], k1[24];
    const char *cursor[] = {type, k0, k1};
    long long written, skipped;
    PGresult *res;
    int rc;

    written = skipped = 0;
    if (cs_db_exec(conn, "BEGIN", errstr, errstr_size) ||
        (im->ph == PHASE_CASES
             ? stage_and_move(conn, "COPY import_case_stage FROM STDIN", cases_move_sql, type, b,
                              &written, &skipped, errstr, errstr_size)
             : write_events(conn, type, b, &written, &skipped, errstr, errstr_size)))
        return CS_ERR;
    snprintf(k0, sizeof(k0), "%" PRId64, b->last[0]);
    snprintf(k1, sizeof(k1), "%" PRId64, b->last[1]);

    pthread_mutex_lock(&im->turn_mu);
    while (!cs_import_my_turn(&im->turns, b->seq) && !im->turns.failed)
        pthread_cond_wait(&im->turn_cond, &im->turn_mu);
    if (im->turns.failed) {
        pthread_mutex_unlock(&im->turn_mu);
        snprintf(errstr, errstr_size, "an earlier batch failed");
        return CS_ERR;
    }
    res = PQexecParams(conn, im->ph == PHASE_CASES ? cases_cursor_sql : events_cursor_sql,
                       im->ph == PHASE_CASES ? 2 : 3, NULL, cursor, NULL, NULL, 0);
    rc = PQresultStatus(res) == PGRES_COMMAND_OK ? CS_OK : CS_ERR;
    if (rc)
        cs_db_error(conn, res, errstr, errstr_size);
    PQclear(res);
    if (rc == CS_OK)
        rc = cs_db_exec(conn, "COMMIT", errstr, errstr_size) ? CS_ERR : CS_OK;
    if (rc == CS_OK) {
        cs_import_done(&im->turns, b->seq, true);
        if (im->ph == PHASE_CASES)
            im->cases += written;
        else
            im->events += written;
        im->errors += skipped;
        im->phase_rows += b->rows;
        if (!im->progress)
            cs_log_info("import: batch phase=%s rows=%lld written=%lld skipped=%lld "
                        "cursor=%s%s%s done=%lld/%lld",
                        phase_name(im->ph), b->rows, written, skipped, k0,
                        im->ph == PHASE_EVENTS ? "/" : "", im->ph == PHASE_EVENTS ? k1 : "",
                        im->phase_rows, im->phase_total);
    }
    pthread_cond_broadcast(&im->turn_cond);
    pthread_mutex_unlock(&im->turn_mu);
    return rc;
}

static void *writer_main(void *arg)
{
    import *im = arg;
    char errstr[1024];
    PGconn *conn = writer_connect(im, errstr, sizeof(errstr));
    batch *b;

    if (!conn)
        fail(im, "could not connect to the target: %s", errstr);
    while ((b = queue_pop(im)) != NULL) {
        if (conn && !failed(im) && write_batch(im, conn, b, errstr, sizeof(errstr)) != CS_OK) {
            if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
                PGresult *res = PQexec(conn, "ROLLBACK");

                PQclear(res);
            }
            fail(im, "%s batch ending at source id %" PRId64 ": %s", phase_name(im->ph),
                 b->last[im->ph == PHASE_CASES ? 0 : 1], errstr);
        }
        batch_free(b);
    }
    if (conn)
        PQfinish(conn);
    return NULL;
}

/* Stops the COPY the source is sending, and reads what is left of it. */
static void source_stop(PGconn *src)
{
    PGcancel *cancel = PQgetCancel(src);
    char errbuf[256], *row;
    PGresult *res;

    if (cancel) {
        PQcancel(cancel, errbuf, sizeof(errbuf));
        PQfreeCancel(cancel);
    }
    while (PQgetCopyData(src, &row, 0) >= 0)
        PQfreemem(row);
    while ((res = PQgetResult(src)) != NULL)
        PQclear(res);
}

/* Streams the rows of sql (a COPY … TO STDOUT) from the source connection src to the writers,
 * in batches; sql NULL when it was sent on src already (PQsendQuery). Returns 0 when every row
 * was committed; CS_ERR_RETRY when interrupted; CS_ERR with the reason logged. */
static int stream(import *im, phase ph, PGconn *src, const char *sql, long long total)
{
    pthread_t *threads = calloc((size_t)im->cfg->jobs, sizeof(*threads));
    int started = 0, rc = CS_OK, nkeys = ph == PHASE_CASES ? 1 : 2;
    uint64_t seq = 0;
    bool end = false;
    PGresult *res;

    im->ph = ph;
    im->turns = (cs_import_turns){0};
    im->closed = false;
    im->phase_rows = 0;
    im->phase_total = total;
    im->phase_start_ms = cs_now_ms();
    im->failure[0] = '\0';
    if (!threads) {
        say(im, CS_LOG_ERROR, "out of memory");
        return CS_ERR;
    }
    for (; started < im->cfg->jobs; started++)
        if (pthread_create(&threads[started], NULL, writer_main, im) != 0)
            break;
    if (started == 0) {
        free(threads);
        say(im, CS_LOG_ERROR, "could not start a writer thread");
        return CS_ERR;
    }
    res = sql ? PQexec(src, sql) : PQgetResult(src);
    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        char errstr[1024];

        cs_db_error(src, res, errstr, sizeof(errstr));
        fail(im, "reading the source's %s: %s", phase_name(ph), errstr);
        end = true;
    }
    PQclear(res);
    while (!end && !failed(im)) {
        batch *b = calloc(1, sizeof(*b));
        char *row;
        int len = 0;

        if (!b) {
            fail(im, "out of memory");
            break;
        }
        b->seq = seq++;
        while (b->rows < im->cfg->batch && (len = PQgetCopyData(src, &row, 0)) > 0) {
            bool ok = cs_import_row_keys(row, (size_t)len, nkeys, b->last) &&
                      batch_append(b, row, (size_t)len);

            PQfreemem(row);
            if (!ok) {
                fail(im, "a %s row of the source could not be read or kept", phase_name(ph));
                break;
            }
        }
        if (len == -2) {
            char errstr[1024];

            cs_db_error(src, NULL, errstr, sizeof(errstr));
            fail(im, "reading the source's %s: %s", phase_name(ph), errstr);
        }
        end = len == -1;
        if (b->rows > 0 && !failed(im))
            queue_push(im, b);
        else
            batch_free(b);
        progress(im, false);
        if (!end && !cs_running) {
            rc = CS_ERR_RETRY;
            break;
        }
    }
    if (end && !failed(im)) {
        while ((res = PQgetResult(src)) != NULL) {
            if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                char errstr[1024];

                cs_db_error(src, res, errstr, sizeof(errstr));
                fail(im, "reading the source's %s: %s", phase_name(ph), errstr);
            }
            PQclear(res);
        }
    } else if (!end || failed(im)) {
        source_stop(src);
    }
    queue_close(im);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    /* Batches left in the queue after a failure. */
    while (im->head) {
        batch *b = im->head;

        im->head = b->next;
        batch_free(b);
    }
    im->tail = NULL;
    im->queued = 0;
    progress(im, true);
    if (im->turns.failed) {
        say(im, CS_LOG_ERROR, "%s", im->failure);
        return CS_ERR;
    }
    return rc;
}

/* --- the state of the import ----------------------------------------------------------------- */

/* Runs sql on conn with the text parameters; returns its result when it has status want, else
 * NULL with the reason logged. */
static PGresult *query(import *im, PGconn *conn, const char *sql, int n, const char *const *params,
                       ExecStatusType want)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    char errstr[1024];

    if (PQresultStatus(res) == want)
        return res;
    cs_db_error(conn, res, errstr, sizeof(errstr));
    say(im, CS_LOG_ERROR, "%s", errstr);
    PQclear(res);
    return NULL;
}

static bool exec_ok(import *im, PGconn *conn, const char *sql, int n, const char *const *params)
{
    PGresult *res = query(im, conn, sql, n, params, PGRES_COMMAND_OK);

    PQclear(res);
    return res != NULL;
}

/* Reads the case type's row of ccd.case_type_import into im. Returns 1 when found, 0 when
 * there is none, -1 on error. *owned gets the time of the cutover ("" before). */
static int read_state(import *im, char *owned, size_t owned_size)
{
    const char *params[] = {im->cfg->case_type};
    PGresult *res = query(im, im->dst, state_sql, 1, params, PGRES_TUPLES_OK);

    if (!res)
        return -1;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return 0;
    }
    im->offset = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    im->event_mark = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    im->has_case_mark = !PQgetisnull(res, 0, 2);
    snprintf(im->case_mark, sizeof(im->case_mark), "%s", PQgetvalue(res, 0, 2));
    im->running = !PQgetisnull(res, 0, 3);
    im->run_event_max = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    snprintf(im->run_phase, sizeof(im->run_phase), "%s", PQgetvalue(res, 0, 4));
    im->case_cursor = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
    im->event_case = strtoll(PQgetvalue(res, 0, 6), NULL, 10);
    im->event_id = strtoll(PQgetvalue(res, 0, 7), NULL, 10);
    snprintf(owned, owned_size, "%s", PQgetvalue(res, 0, 8));
    PQclear(res);
    return 1;
}

/* Takes the case type for this run: the lock that keeps a second import of it out, its state
 * (created by the first run, which finds no case of the type in casestream), and the run in
 * progress or a new one. Returns 0, 1 (logged) or CS_EXIT_CONFIG. */
static int take_case_type(import *im)
{
    const char *type = im->cfg->case_type;
    const char *p1[] = {type};
    char owned[40] = "", num[3][24];
    PGresult *res;
    int found;

    res = query(im, im->dst,
                "SELECT pg_try_advisory_lock(hashtext('casestream import'), hashtext($1))", 1, p1,
                PGRES_TUPLES_OK);
    if (!res)
        return 1;
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        PQclear(res);
        say(im, CS_LOG_ERROR, "another import of case type %s is running", type);
        return 1;
    }
    PQclear(res);
    if ((found = read_state(im, owned, sizeof(owned))) < 0)
        return 1;
    if (found == 0) {
        const char *p2[] = {type, num[0]};

        res = query(im, im->dst,
                    "SELECT count(*) FROM (SELECT 1 FROM ccd.case_data WHERE case_type_id = $1"
                    " LIMIT 1) c",
                    1, p1, PGRES_TUPLES_OK);
        if (!res)
            return 1;
        if (strcmp(PQgetvalue(res, 0, 0), "0") != 0) {
            PQclear(res);
            say(im, CS_LOG_ERROR,
                "case type %s already has cases in casestream that were not imported: an "
                "import would mix them with CCD's",
                type);
            return 1;
        }
        PQclear(res);
        snprintf(num[0], sizeof(num[0]), "%d", im->cfg->revision_offset);
        if (!exec_ok(im, im->dst,
                     "INSERT INTO ccd.case_type_import (case_type_id, revision_offset)"
                     " VALUES ($1, $2)",
                     2, p2) ||
            read_state(im, owned, sizeof(owned)) != 1)
            return 1;
        say(im, CS_LOG_INFO,
            "case type %s is being imported: casestream rejects its submissions until the "
            "cutover",
            type);
    }
    if (owned[0]) {
        say(im, CS_LOG_ERROR,
            "case type %s was cut over on %s UTC and casestream owns its cases: an import "
            "would overwrite what they took since",
            type, owned);
        return 1;
    }
    if (im->offset != im->cfg->revision_offset) {
        cs_log_error("invalid configuration: import: case type %s is imported with "
                     "--revision-offset %lld, not %d",
                     type, im->offset, im->cfg->revision_offset);
        return CS_EXIT_CONFIG;
    }
    res = query(im, im->src, bounds_sql, 1, p1, PGRES_TUPLES_OK);
    if (!res)
        return 1;
    im->source_case_max = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    if (!im->running) {
        const char *p3[] = {type, num[0], PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1)};

        snprintf(num[0], sizeof(num[0]), "%s", PQgetvalue(res, 0, 0));
        if (!exec_ok(im, im->dst, run_start_sql, 3, p3) ||
            read_state(im, owned, sizeof(owned)) != 1) {
            PQclear(res);
            return 1;
        }
    } else {
        say(im, CS_LOG_INFO, "continuing the run in progress: phase=%s", im->run_phase);
    }
    PQclear(res);
    /* Past the ids the source holds, before any row is copied. */
    {
        const char *p4[] = {num[1], num[2]};

        snprintf(num[1], sizeof(num[1]), "%lld", im->source_case_max);
        snprintf(num[2], sizeof(num[2]), "%lld", im->run_event_max);
        res = query(im, im->dst, sequences_sql, 2, p4, PGRES_TUPLES_OK);
        if (!res)
            return 1;
        PQclear(res);
    }
    return 0;
}

/* The count sql (one column, one row, $1 the case type when it has one) gives on conn; -1 on
 * error (logged). */
static long long count_of(import *im, PGconn *conn, const char *sql, int nparams)
{
    const char *p1[] = {im->cfg->case_type};
    PGresult *res = query(im, conn, sql, nparams, p1, PGRES_TUPLES_OK);
    long long n;

    if (!res)
        return -1;
    n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}

static long long source_count(import *im, const char *sql)
{
    return count_of(im, im->src, sql, 0);
}

/* Sets the run's parameters (TYPE_P …) in the source session conn. */
static bool set_params(import *im, PGconn *conn)
{
    char num[7][24];
    const char *params[] = {im->cfg->case_type,
                            num[0],
                            num[1],
                            num[2],
                            im->has_case_mark ? im->case_mark : NULL,
                            num[3],
                            num[4],
                            num[5]};
    PGresult *res;

    snprintf(num[0], sizeof(num[0]), "%lld", im->offset);
    snprintf(num[1], sizeof(num[1]), "%lld", im->run_event_max);
    snprintf(num[2], sizeof(num[2]), "%lld", im->event_mark);
    snprintf(num[3], sizeof(num[3]), "%lld", im->case_cursor);
    snprintf(num[4], sizeof(num[4]), "%lld", im->event_case);
    snprintf(num[5], sizeof(num[5]), "%lld", im->event_id);
    res = query(im, conn, params_sql, 8, params, PGRES_TUPLES_OK);
    PQclear(res);
    return res != NULL;
}

/* The run: the cases phase (unless done), the events phase, then the marks. When the run
 * starts with the cases, the events' statement is sent at once on a second source connection,
 * so that the source reads, joins and sorts them while the cases are written (the events
 * cursor is at its start until the events phase begins). Returns 0, CS_ERR_RETRY when
 * interrupted, CS_ERR. */
static int copy_run(import *im)
{
    const char *p1[] = {im->cfg->case_type};
    PGconn *events_src = NULL;
    long long total;
    int rc = CS_ERR;

    if (!set_params(im, im->src))
        return CS_ERR;
    if (strcmp(im->run_phase, "cases") == 0) {
        if (!(events_src = connect_utc(im, im->cfg->from, "the source (--from)")) ||
            !set_params(im, events_src))
            goto cleanup;
        if (!PQsendQuery(events_src, EVENTS_COPY_SQL)) {
            say(im, CS_LOG_ERROR, "reading the source's events: %s", PQerrorMessage(events_src));
            goto cleanup;
        }
        if ((total = source_count(im, cases_count_sql)) < 0)
            goto cleanup;
        if ((rc = stream(im, PHASE_CASES, im->src, CASES_COPY_SQL, total)) != CS_OK)
            goto cleanup;
        rc = CS_ERR;
        if (!exec_ok(im, im->dst, run_events_sql, 1, p1))
            goto cleanup;
    }
    if ((total = source_count(im, events_count_sql)) < 0)
        goto cleanup;
    if ((rc = events_src ? stream(im, PHASE_EVENTS, events_src, NULL, total)
                         : stream(im, PHASE_EVENTS, im->src, EVENTS_COPY_SQL, total)) != CS_OK)
        goto cleanup;
    rc = exec_ok(im, im->dst, run_end_sql, 1, p1) ? CS_OK : CS_ERR;
cleanup:
    /* Closing it ends a statement still sending (the cases phase stopped). */
    if (events_src)
        PQfinish(events_src);
    return rc;
}

/* --- validate -------------------------------------------------------------------------------- */

/* Reads one row of a validate cursor's page into c. */
static void case_of(const PGresult *page, int i, cs_import_case *c)
{
    memset(c, 0, sizeof(*c));
    c->reference = strtoll(PQgetvalue(page, i, 0), NULL, 10);
    c->events = strtoll(PQgetvalue(page, i, 1), NULL, 10);
    c->data_md5 = PQgetvalue(page, i, 2);
    c->state = PQgetvalue(page, i, 3);
    c->version = atoi(PQgetvalue(page, i, 4));
    c->classification = PQgetvalue(page, i, 5);
}

/* The next page of a validate cursor, or NULL on error (logged). */
static PGresult *fetch(import *im, PGconn *conn)
{
    return query(im, conn, "FETCH " VALIDATE_PAGE " FROM import_validate", 0, NULL,
                 PGRES_TUPLES_OK);
}

/* The blob of case ref as json, from sql on conn; NULL when it cannot be read. */
static json_t *blob(import *im, PGconn *conn, const char *sql, int64_t ref)
{
    char num[24];
    const char *params[] = {num};
    PGresult *res;
    json_t *j = NULL;

    snprintf(num, sizeof(num), "%" PRId64, ref);
    if ((res = query(im, conn, sql, 1, params, PGRES_TUPLES_OK)) && PQntuples(res) == 1)
        j = json_loads(PQgetvalue(res, 0, 0), JSON_DECODE_ANY, NULL);
    PQclear(res);
    return j;
}

/* Prints one mismatch as a JSON line on stdout. */
static void mismatch(int64_t ref, const char *field, json_t *source, json_t *target)
{
    json_t *o =
        json_pack("{s:I, s:s, s:o, s:o}", "reference", (json_int_t)ref, "field", field, "source",
                  source ? source : json_null(), "casestream", target ? target : json_null());
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

    if (text)
        printf("%s\n", text);
    free(text);
    json_decref(o);
}

static json_t *field_value(const cs_import_case *c, unsigned bit)
{
    switch (bit) {
    case CS_IMPORT_EVENTS:
        return json_integer(c->events);
    case CS_IMPORT_DATA:
        return json_string(c->data_md5);
    case CS_IMPORT_STATE:
        return json_string(c->state);
    case CS_IMPORT_VERSION:
        return json_integer(c->version);
    default:
        return json_string(c->classification);
    }
}

/* Compares the source's cases of the type with casestream's, each side read through a cursor
 * in reference order. *mismatches gets how many cases differ (a missing case is one). Returns
 * 0, or 1 when it could not compare (logged). */
static int validate(import *im, long long *mismatches, long long *compared)
{
    const char *p1[] = {im->cfg->case_type};
    PGresult *sp = NULL, *tp = NULL, *r;
    int si = 0, ti = 0, rc = 1;

    *mismatches = *compared = 0;
    if (!exec_ok(im, im->src, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL) ||
        !exec_ok(im, im->dst, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL) ||
        !exec_ok(im, im->src, source_cases_sql, 1, p1) ||
        !exec_ok(im, im->dst, target_cases_sql, 1, p1) || !(sp = fetch(im, im->src)) ||
        !(tp = fetch(im, im->dst)))
        goto cleanup;
    for (;;) {
        cs_import_case s, t;
        bool have_s, have_t;

        if (si == PQntuples(sp) && PQntuples(sp) > 0) {
            PQclear(sp);
            si = 0;
            if (!(sp = fetch(im, im->src)))
                goto cleanup;
        }
        if (ti == PQntuples(tp) && PQntuples(tp) > 0) {
            PQclear(tp);
            ti = 0;
            if (!(tp = fetch(im, im->dst)))
                goto cleanup;
        }
        have_s = si < PQntuples(sp);
        have_t = ti < PQntuples(tp);
        if (!have_s && !have_t)
            break;
        if (have_s)
            case_of(sp, si, &s);
        if (have_t)
            case_of(tp, ti, &t);
        if (have_s && (!have_t || s.reference < t.reference)) {
            mismatch(s.reference, "case", json_string("present"), json_string("missing"));
            (*mismatches)++;
            si++;
            continue;
        }
        if (!have_s || t.reference < s.reference) {
            mismatch(t.reference, "case", json_string("missing"), json_string("present"));
            (*mismatches)++;
            ti++;
            continue;
        }
        (*compared)++;
        unsigned diff = cs_import_compare(&s, &t);

        if (diff & CS_IMPORT_DATA) {
            s.data = blob(im, im->src, source_data_sql, s.reference);
            t.data = blob(im, im->dst, target_data_sql, t.reference);
            diff = cs_import_compare(&s, &t);
        }
        for (unsigned bit = 1; bit <= CS_IMPORT_CLASSIFICATION; bit <<= 1)
            if (diff & bit)
                mismatch(s.reference, cs_import_field_name(bit), field_value(&s, bit),
                         field_value(&t, bit));
        json_decref(s.data);
        json_decref(t.data);
        *mismatches += diff != 0;
        si++;
        ti++;
    }
    rc = 0;
cleanup:
    PQclear(sp);
    PQclear(tp);
    r = PQexec(im->src, "ROLLBACK");
    PQclear(r);
    r = PQexec(im->dst, "ROLLBACK");
    PQclear(r);
    fflush(stdout);
    return rc;
}

/* Rows of ccd.import_error for the case type; -1 on error (logged). */
static long long import_errors(import *im)
{
    return count_of(im, im->dst, "SELECT count(*) FROM ccd.import_error WHERE case_type_id = $1",
                    1);
}

/* --- the command ------------------------------------------------------------------------------ */

static const char usage[] =
    "invalid configuration: usage: casestream import --from CONNINFO --case-type T "
    "[--mode preload|cutover|validate] [--revision-offset N] [--batch N] [--jobs N]";

static PGconn *connect_utc(import *im, const char *conninfo, const char *which)
{
    char errstr[1024];
    PGconn *conn = cs_db_connect(conninfo, errstr, sizeof(errstr));

    if (!conn) {
        say(im, CS_LOG_ERROR, "could not connect to %s: %s", which, errstr);
        return NULL;
    }
    if (cs_db_exec(conn, "SET TIME ZONE 'UTC'", errstr, sizeof(errstr))) {
        say(im, CS_LOG_ERROR, "%s: %s", which, errstr);
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* Checks and runs validate on its own: prints the mismatches, a summary, and returns the exit
 * status. */
static int run_validate(import *im)
{
    long long mismatches, compared, errors;

    if (validate(im, &mismatches, &compared) || (errors = import_errors(im)) < 0)
        return 1;
    cs_log_info("import: validate case_type=%s cases=%lld mismatches=%lld import_errors=%lld "
                "elapsed=%.1fs",
                im->cfg->case_type, compared, mismatches, errors,
                (double)(cs_now_ms() - im->start_ms) / 1000.0);
    return mismatches == 0 ? 0 : 1;
}

int cs_admin_import(const cs_config *cfg, int argc, char **argv)
{
import im = {.cfg = cfg, .start_ms = cs_now_ms() };
    char why[256];
    bool cutover = strcmp(cfg->mode, "cutover") == 0;
    int rc = 1, copied;

    (void)argv;
    if (argc != 0 || !cfg->from[0] || !cfg->case_type[0]) {
        cs_log_error("%s", usage);
        return CS_EXIT_CONFIG;
    }
    if (strcmp(cfg->mode, "preload") != 0 && !cutover && strcmp(cfg->mode, "validate") != 0) {
        cs_log_error("invalid configuration: import: --mode must be preload, cutover or "
                     "validate, not \"%s\"",
                     cfg->mode);
        return CS_EXIT_CONFIG;
    }
    if (!cs_case_type_check(cfg->case_type, strlen(cfg->case_type), why, sizeof(why))) {
        cs_log_error("invalid configuration: import: --case-type %s", why);
        return CS_EXIT_CONFIG;
    }
    pthread_mutex_init(&im.q_mu, NULL);
    pthread_cond_init(&im.q_cond, NULL);
    pthread_mutex_init(&im.turn_mu, NULL);
    pthread_cond_init(&im.turn_cond, NULL);
    cs_signals_install();
    im.progress = isatty(STDERR_FILENO);
    if (!(im.src = connect_utc(&im, cfg->from, "the source (--from)")) ||
        !(im.dst = connect_utc(&im, cfg->pg, "casestream's postgresql")))
        goto cleanup;
    if (strcmp(cfg->mode, "validate") == 0) {
        rc = run_validate(&im);
        goto cleanup;
    }
    if ((rc = take_case_type(&im)) != 0)
        goto cleanup;
    rc = 1;
    copied = copy_run(&im);
    if (im.progress_shown)
        fputs("\r\033[K", stderr);
    im.progress_shown = false;
    {
        double secs = (double)(cs_now_ms() - im.start_ms) / 1000.0;

        cs_log_info("import: %s mode=%s case_type=%s cases=%lld events=%lld skipped=%lld "
                    "elapsed=%.1fs events_per_s=%.0f%s",
                    copied == CS_OK ? "copied" : "stopped", cfg->mode, cfg->case_type, im.cases,
                    im.events, im.errors, secs, secs > 0 ? (double)im.events / secs : 0.0,
                    copied == CS_ERR_RETRY ? " interrupted=true" : "");
    }
    if (copied != CS_OK) {
        say(&im, CS_LOG_INFO, "run it again to go on from the last batch committed");
        goto cleanup;
    }
    {
        long long errors = import_errors(&im);

        if (errors < 0)
            goto cleanup;
        if (errors > 0)
            say(&im, CS_LOG_WARN,
                "%lld source rows of case type %s are skipped: see ccd.import_error", errors,
                cfg->case_type);
        if (cutover) {
            long long mismatches, compared;
            const char *p1[] = {cfg->case_type};

            if (errors > 0) {
                say(&im, CS_LOG_ERROR,
                    "cutover: not taken over while source rows are skipped: fix them in the "
                    "source (a later run copies what changed) or delete their "
                    "ccd.import_error rows to accept their loss, then run the cutover again");
                goto cleanup;
            }
            if (validate(&im, &mismatches, &compared))
                goto cleanup;
            if (mismatches > 0) {
                say(&im, CS_LOG_ERROR,
                    "cutover: %lld of %lld cases differ from the source (printed above): case "
                    "type %s is not taken over",
                    mismatches, compared, cfg->case_type);
                goto cleanup;
            }
            if (!exec_ok(&im, im.dst,
                         "UPDATE ccd.case_type_import SET owned_at = now()"
                         " WHERE case_type_id = $1",
                         1, p1))
                goto cleanup;
            say(&im, CS_LOG_INFO,
                "cutover: %lld cases agree with the source; casestream owns case type %s and "
                "takes its submissions from now on",
                compared, cfg->case_type);
        }
    }
    /* No outbox rows were written: the index learns the imported cases from a reindex. */
    say(&im, CS_LOG_INFO, "reindexing case type %s", cfg->case_type);
    if (cs_admin_reindex(cfg, 0, NULL) != 0) {
        say(&im, CS_LOG_ERROR,
            "the cases are imported but not all are in the index: run `casestream reindex "
            "--case-type %s`",
            cfg->case_type);
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (im.src)
        PQfinish(im.src);
    if (im.dst)
        PQfinish(im.dst);
    pthread_mutex_destroy(&im.q_mu);
    pthread_cond_destroy(&im.q_cond);
    pthread_mutex_destroy(&im.turn_mu);
    pthread_cond_destroy(&im.turn_cond);
    return rc;
}
