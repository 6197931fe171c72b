/* Applies batches of submissions in PostgreSQL: locks, idempotency, optimistic lock, history,
 * notes, outbox and outcomes, in two pipelined round trips per batch.
 *
 * Round 1 (one pipeline): BEGIN, lock every case of the batch FOR UPDATE,
 * read the idempotency keys already applied, the outcomes already decided
 * for these source positions (redeliveries), the references disposed of
 * (after the lock, so that a case disposed of while the batch waited for it is
 * seen as disposed, not as missing), who holds the internal ids the batch's
 * creates name, and reserve event ids and the internal ids of the cases the
 * batch may create.
 * Then every job is decided in offset order by worker/decide.c against the
 * state read (and as the batch's earlier jobs leave it). Round 2 (one
 * pipeline): the writes of every applied job with one statement per table
 * (cases created, history, cases updated, notes, outbox: the rows computed
 * here from the decisions, a case's several submissions in one batch each
 * with a history row and outbox row of the case as it left it, the case row
 * written once at its last revision), the outcomes, COMMIT.
 *
 * If round 2 fails for a reason that is not transient, the batch is rolled
 * back and run again in careful mode: each job's writes inside its own
 * savepoint, synchronously, with the statements of one row each ("create",
 * "update", "event", "notes", "outbox"), so the job the database refuses is
 * rejected and the others commit. The two modes write the same rows. */
#include "apply.h"

#include "db.h"
#include "decide.h"
#include "err.h"
#include "fault.h"
#include "jsondump.h"
#include "log.h"
#include "utf8.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cs_applier {
    PGconn *conn;
    char *conninfo;
    char *topic;         /* source of the submissions, recorded with outcomes */
    char *changes_topic; /* destination of the outbox rows */
};

/* The history row's columns, in the order of both statements that write them. */
#define INSERT_EVENT                                                                               \
    "INSERT INTO ccd.case_event (id, case_reference, case_revision, version, event_id,"            \
    " user_id, summary, description, state_id, security_classification, data,"                     \
    " idempotency_key, kafka_partition, kafka_offset, payload_sha256, event_name,"                 \
    " user_first_name, user_last_name, state_name, case_type_version,"                             \
    " data_classification, significant_item, proxied_by, proxied_by_first_name,"                   \
    " proxied_by_last_name, supplementary_data, last_state_modified_date,"                         \
    " case_supplementary_data, start_revision, merge_revision)"

/* A case as this batch sees it. */
static const struct statement {
    const char *name;
    const char *sql;
} statements[] = {
    {"lock", "SELECT reference, case_type_id, state, security_classification, data::text,"
             " version, case_revision, jurisdiction, id, to_char(resolved_ttl, 'YYYY-MM-DD'),"
             " supplementary_data::text FROM ccd.case_data"
             " WHERE reference = ANY($1::bigint[]) ORDER BY reference FOR UPDATE"},
    {"keys", "SELECT case_reference, idempotency_key::text, version, case_revision, id,"
             " kafka_partition, kafka_offset, payload_sha256, supplementary_data::text"
             " FROM ccd.case_event WHERE (case_reference, idempotency_key) IN"
             " (SELECT * FROM unnest($1::bigint[], $2::uuid[]))"},
    {"seen", "SELECT kafka_partition, kafka_offset, outcome::text FROM ccd.event_outcome"
             " WHERE topic = $1 AND (kafka_partition, kafka_offset) IN"
             " (SELECT * FROM unnest($2::int[], $3::bigint[]))"},
    {"ids", "SELECT nextval('ccd.case_event_id_seq') FROM generate_series(1, $1::int)"},
    /* Internal ids for the creates that name none, so the batch knows each case's id. */
    {"case_ids", "SELECT nextval('ccd.case_data_id_seq') FROM generate_series(1, $1::int)"},
    /* $1: the case types of the batch's submissions that can create a case. A type not
     * stored yet is locked (by its lower case, until COMMIT) so that two workers cannot
     * both create the first cases of ADVCase and ADVCASE; the lock is taken before "types"
     * runs, whose snapshot then sees what the lock's holder committed. */
    {"typelock", "SELECT pg_advisory_xact_lock(hashtext('casestream case type'), hashtext(l))"
                 " FROM (SELECT DISTINCT lower(t) AS l FROM unnest($1::text[]) t"
                 " WHERE NOT EXISTS (SELECT 1 FROM ccd.case_data c WHERE c.case_type_id = t)"
                 " ORDER BY l) n"},
    /* The stored case types that matter to those creates: each one stored exactly as given,
     * and, when some are new, every stored type equal to one of them but for letter case.
     * Distinct types are found by skipping through the index on case_type_id, one probe per
     * stored type, and only when a new type is created; a type already stored costs one
     * probe. */
    {"types", "WITH RECURSIVE cand AS (SELECT DISTINCT t FROM unnest($1::text[]) t),"
              " known AS (SELECT t FROM cand WHERE EXISTS"
              " (SELECT 1 FROM ccd.case_data c WHERE c.case_type_id = cand.t)),"
              " fresh AS (SELECT lower(t) AS l FROM cand WHERE t NOT IN (SELECT t FROM known)),"
              " stored(ct) AS ((SELECT min(case_type_id) FROM ccd.case_data"
              " WHERE EXISTS (SELECT 1 FROM fresh))"
              " UNION ALL SELECT (SELECT min(c.case_type_id) FROM ccd.case_data c"
              " WHERE c.case_type_id > stored.ct) FROM stored WHERE stored.ct IS NOT NULL)"
              " SELECT t FROM known UNION SELECT ct FROM stored WHERE lower(ct) IN"
              " (SELECT l FROM fresh)"},
    /* After "lock" in the pipeline: each statement's snapshot sees what committed before it,
     * so a case that `casestream dispose` deleted while "lock" waited for it is found here. */
    {"disposed", "SELECT reference, to_char(disposed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
                 " FROM ccd.disposed_case WHERE reference = ANY($1::bigint[])"},
    /* $1: the internal ids the batch's creates name. Who holds each, or held it until it was
     * disposed of (DESIGN §5.7): a create naming one for another reference is rejected. */
    {"taken", "SELECT id, reference, NULL FROM ccd.case_data WHERE id = ANY($1::bigint[])"
              " UNION ALL SELECT id, reference, to_char(disposed_at AT TIME ZONE 'UTC',"
              " 'YYYY-MM-DD') FROM ccd.disposed_case WHERE id = ANY($1::bigint[])"},
    /* $1: the case types of the batch's submissions. Those being imported from CCD's database
     * and not cut over yet take no submissions (DESIGN §13). */
    {"importing", "SELECT case_type_id FROM ccd.case_type_import"
                  " WHERE case_type_id = ANY($1::text[]) AND owned_at IS NULL"},
    {"create", "WITH w AS (INSERT INTO ccd.case_data (reference, case_type_id, jurisdiction,"
               " state, security_classification, data, version, case_revision, id,"
               " resolved_ttl, data_classification)"
               " VALUES ($1, $2, $3, $4, $5, $6, 1, 1,"
               " COALESCE($7::bigint, nextval('ccd.case_data_id_seq')), $8::date, $9::jsonb)"
               " ON CONFLICT (reference) DO NOTHING"
               " RETURNING 1) SELECT ccd.expect_one_row(count(*), 'case ' || $1) FROM w"},
    /* $8: the state changed (decide.c), the one thing that moves last_state_modified_date. */
    {"update", "WITH w AS (UPDATE ccd.case_data SET state = $2::varchar,"
               " security_classification = $3::ccd.securityclassification,"
               " data = COALESCE($4::jsonb, data), version = $5, case_revision = $6,"
               " last_modified = now(), last_state_modified_date = CASE WHEN $8::boolean"
               " THEN now() ELSE last_state_modified_date END, resolved_ttl = $9::date,"
               " data_classification = COALESCE($10::jsonb, data_classification),"
               " supplementary_data = COALESCE($11::jsonb, supplementary_data)"
               " WHERE reference = $1 AND case_revision = $7 RETURNING 1)"
               " SELECT ccd.expect_one_row(count(*), 'case ' || $1) FROM w"},
    /* The case as the event left it, read from the row just written (010): what the views
     * render the case right after this event from (lib/ccd_view.h). */
    {"event",
     INSERT_EVENT " SELECT $1, $2, $3, $4, $5, $6, $7, $8, c.state, c.security_classification,"
                  " c.data, $9, $10, $11, $12, $13, $14, $15, $16, $17, c.data_classification,"
                  " $18::jsonb, $19, $20, $21, $22::jsonb, c.last_state_modified_date,"
                  " c.supplementary_data, $23::bigint, $24::bigint"
                  " FROM ccd.case_data c WHERE c.reference = $2"},
    {"notes", "INSERT INTO ccd.case_notes (case_reference, author, body, case_revision)"
              " SELECT $1, n->>'author', n->>'body', $2 FROM jsonb_array_elements($3::jsonb) n"},
    /* The row form of change_document: the by-reference one plans its query on
     * every call, three times the cost. */
    {"outbox", "INSERT INTO ccd.change_outbox (reference, case_revision, document, topic)"
               " SELECT c.reference, c.case_revision, ccd.change_document(c), $2"
               " FROM ccd.case_data c WHERE c.reference = $1"},
    /* The set forms of "create", "update", "event", "notes" and "outbox": one statement each
     * for every applied submission of a batch ($1 a JSON array of one record per row, built by
     * batch_add). Creates first, then the history, whose rows take what a submission left as
     * it was from the case row as the batch found it (or as its create wrote it), then the
     * case rows at the batch's last revision of each case, the notes, and the outbox rows. */
    {"creates", "WITH w AS (INSERT INTO ccd.case_data (reference, case_type_id, jurisdiction,"
                " state, security_classification, data, version, case_revision, id,"
                " resolved_ttl, data_classification)"
                " SELECT r.reference, r.case_type, r.jurisdiction, r.state, r.classification,"
                " r.data, 1, 1, COALESCE(r.id, nextval('ccd.case_data_id_seq')), r.resolved_ttl,"
                " r.data_classification FROM jsonb_to_recordset($1::jsonb) AS r(reference bigint,"
                " case_type varchar, jurisdiction varchar, state varchar,"
                " classification ccd.securityclassification, data jsonb, id bigint,"
                " resolved_ttl date, data_classification jsonb)"
                " ON CONFLICT (reference) DO NOTHING RETURNING 1)"
                " SELECT ccd.expect_rows(count(*), $2, 'a case the batch creates') FROM w"},
    /* A record's data, data_classification and case_supplementary_data are the case's after
     * the submission when the batch changed them since the case row's (round 1's, or its
     * create's), else absent; state_moved, when the batch moved the state since then. */
    {"events", INSERT_EVENT
     " SELECT r.id, r.reference, r.revision, r.version, r.event_id, r.user_id,"
     " r.summary, r.description, r.state, r.classification, COALESCE(r.data, c.data),"
     " r.idempotency_key, r.kafka_partition, r.kafka_offset, r.payload_sha256,"
     " r.event_name, r.user_first_name, r.user_last_name, r.state_name,"
     " r.case_type_version, COALESCE(r.data_classification, c.data_classification),"
     " r.significant_item, r.proxied_by, r.proxied_by_first_name,"
     " r.proxied_by_last_name, r.supplementary_data, CASE WHEN r.state_moved THEN now()"
     " ELSE c.last_state_modified_date END,"
     " COALESCE(r.case_supplementary_data, c.supplementary_data), r.start_revision,"
     " r.merge_revision FROM jsonb_to_recordset($1::jsonb) AS r(id bigint,"
     " reference bigint, revision bigint, version integer, event_id varchar,"
     " user_id varchar, summary varchar, description text, state varchar,"
     " classification ccd.securityclassification, data jsonb, idempotency_key uuid,"
     " kafka_partition integer, kafka_offset bigint, payload_sha256 text,"
     " event_name varchar, user_first_name varchar, user_last_name varchar,"
     " state_name varchar, case_type_version integer, data_classification jsonb,"
     " significant_item jsonb, proxied_by varchar, proxied_by_first_name varchar,"
     " proxied_by_last_name varchar, supplementary_data jsonb, state_moved boolean,"
     " case_supplementary_data jsonb, start_revision bigint, merge_revision bigint)"
     " JOIN ccd.case_data c ON c.reference = r.reference"},
    /* One record per case updated: the case after the batch's last submission for it, where
     * its revision is still the one the batch started from ($2 records). */
    {"updates", "WITH w AS (UPDATE ccd.case_data c SET state = r.state,"
                " security_classification = r.classification, data = COALESCE(r.data, c.data),"
                " version = r.version, case_revision = r.revision, last_modified = now(),"
                " last_state_modified_date = CASE WHEN r.state_moved THEN now()"
                " ELSE c.last_state_modified_date END, resolved_ttl = r.resolved_ttl,"
                " data_classification = COALESCE(r.data_classification, c.data_classification),"
                " supplementary_data = COALESCE(r.supplementary_data, c.supplementary_data)"
                " FROM jsonb_to_recordset($1::jsonb) AS r(reference bigint, prev_revision bigint,"
                " state varchar, classification ccd.securityclassification, data jsonb,"
                " version integer, revision bigint, state_moved boolean, resolved_ttl date,"
                " data_classification jsonb, supplementary_data jsonb)"
                " WHERE c.reference = r.reference AND c.case_revision = r.prev_revision"
                " RETURNING 1) SELECT ccd.expect_rows(count(*), $2, 'a case the batch updates')"
                " FROM w"},
    /* Note ids in the order of the submissions, and of each one's notes. */
    {"notes_all", "INSERT INTO ccd.case_notes (case_reference, author, body, case_revision)"
                  " SELECT (r->>'reference')::bigint, n->>'author', n->>'body',"
                  " (r->>'revision')::bigint FROM jsonb_array_elements($1::jsonb)"
                  " WITH ORDINALITY AS a(r, i), jsonb_array_elements(r->'notes')"
                  " WITH ORDINALITY AS b(n, k) ORDER BY i, k"},
    /* Each applied submission's change document, from its history row (014). */
    {"outbox_all", "INSERT INTO ccd.change_outbox (reference, case_revision, document, topic)"
                   " SELECT c.reference, e.case_revision, ccd.change_document(c, e,"
                   " (r->>'resolved_ttl')::date), $2 FROM jsonb_array_elements($1::jsonb)"
                   " WITH ORDINALITY AS a(r, i) JOIN ccd.case_event e"
                   " ON e.id = (r->>'id')::bigint JOIN ccd.case_data c"
                   " ON c.reference = e.case_reference ORDER BY i"},
    {"outcomes", "INSERT INTO ccd.event_outcome (topic, kafka_partition, kafka_offset, outcome)"
                 " SELECT $1, (o->'source'->>'partition')::int, (o->'source'->>'offset')::bigint,"
                 " o FROM jsonb_array_elements($2::jsonb) o ON CONFLICT (topic, kafka_partition,"
                 " kafka_offset) DO UPDATE SET outcome = EXCLUDED.outcome, created_date = now()"},
    {"begin", "BEGIN"},
    {"commit", "COMMIT"},
    {"savepoint", "SAVEPOINT job"},
    {"release", "RELEASE SAVEPOINT job"},
    {"rollback_job", "ROLLBACK TO SAVEPOINT job"},
};

#define N_STATEMENTS (sizeof(statements) / sizeof(statements[0]))

static int connect_db(cs_applier *a, char *errstr, size_t errstr_size)
{
    if (a->conn && PQstatus(a->conn) == CONNECTION_OK)
        return CS_OK;
    PQfinish(a->conn);
    if (!(a->conn = cs_db_connect(a->conninfo, errstr, errstr_size)))
        return CS_ERR_RETRY;
    /* Round 1's lookups by arrays of references and keys were planned again at every
     * execution, which cost more than running them. */
    if (cs_db_generic_plans(a->conn, errstr, errstr_size)) {
        PQfinish(a->conn);
        a->conn = NULL;
        return CS_ERR_RETRY;
    }
    for (size_t i = 0; i < N_STATEMENTS; i++) {
        PGresult *res = PQprepare(a->conn, statements[i].name, statements[i].sql, 0, NULL);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;

        if (!ok)
            cs_db_error(a->conn, res, errstr, errstr_size);
        PQclear(res);
        if (!ok) {
            PQfinish(a->conn);
            a->conn = NULL;
            return CS_ERR_RETRY;
        }
    }
    return CS_OK;
}

cs_applier *cs_applier_new(const char *conninfo, const char *topic, const char *changes_topic,
                           char *errstr, size_t errstr_size)
{
    cs_applier *a = calloc(1, sizeof(*a));

    if (!a || !(a->conninfo = strdup(conninfo)) || !(a->topic = strdup(topic)) ||
        !(a->changes_topic = strdup(changes_topic))) {
        snprintf(errstr, errstr_size, "out of memory");
        cs_applier_free(a);
        return NULL;
    }
    /* A failed first connect is not fatal: the worker retries with backoff. */
    if (connect_db(a, errstr, errstr_size))
        cs_log_warn("postgresql not ready, will retry: %s", errstr);
    return a;
}

void cs_applier_free(cs_applier *a)
{
    if (!a)
        return;
    PQfinish(a->conn);
    free(a->conninfo);
    free(a->topic);
    free(a->changes_topic);
    free(a);
}

/* --- the pipeline ----------------------------------------------------------- */

static bool send_stmt(cs_applier *a, const char *name, int n, const char *const *params)
{
    return PQsendQueryPrepared(a->conn, name, n, params, NULL, NULL, 0) == 1;
}

/* Reads the next statement's result (the caller PQclears it) or NULL. */
static PGresult *next_result(cs_applier *a)
{
    PGresult *res = PQgetResult(a->conn), *extra;

    /* Each statement's result is followed by a NULL. */
    if (res && PQresultStatus(res) != PGRES_PIPELINE_SYNC)
        while ((extra = PQgetResult(a->conn)) != NULL)
            PQclear(extra);
    return res;
}

/* Ends a pipeline: reads up to the sync point. Returns 0 when every statement
 * succeeded, else CS_ERR_RETRY or CS_ERR with the first error in errstr. */
static int finish_pipeline(cs_applier *a, char *errstr, size_t errstr_size)
{
    int rc = CS_OK;

    for (;;) {
        PGresult *res = next_result(a);
        ExecStatusType st;

        if (!res) {
            if (PQstatus(a->conn) != CONNECTION_OK) {
                if (rc == CS_OK)
                    cs_db_error(a->conn, NULL, errstr, errstr_size);
                rc = CS_ERR_RETRY;
                break;
            }
            continue;
        }
        st = PQresultStatus(res);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            break;
        }
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && rc == CS_OK) {
            if (st == PGRES_PIPELINE_ABORTED) {
                snprintf(errstr, errstr_size, "pipeline aborted");
                rc = CS_ERR;
            } else {
                cs_db_error(a->conn, res, errstr, errstr_size);
                rc = cs_db_retryable(a->conn, res) ? CS_ERR_RETRY : CS_ERR;
            }
        }
        PQclear(res);
    }
    return rc;
}

/* Leaves pipeline mode and makes sure no transaction is left open. */
static void reset_conn(cs_applier *a)
{
    PGresult *res;

    if (!a->conn)
        return;
    if (PQpipelineStatus(a->conn) != PQ_PIPELINE_OFF && !PQexitPipelineMode(a->conn)) {
        /* Statements queued but never synced: this connection is out of step. */
        PQfinish(a->conn);
        a->conn = NULL;
        return;
    }
    if (PQstatus(a->conn) != CONNECTION_OK)
        return;
    if (PQtransactionStatus(a->conn) != PQTRANS_IDLE) {
        res = PQexec(a->conn, "ROLLBACK");
        PQclear(res);
    }
}

/* --- round 1 ------------------------------------------------------------------ */

/* A PostgreSQL array literal being built. */
typedef struct array_text {
    char *buf; /* NULL while empty */
    size_t len, cap;
    bool failed; /* out of memory */
} array_text;

/* Appends v, in double quotes if quote (so that a case type such as NULL stays text; v then
 * holds no '"' or '\\', cs_case_type_check). */
static void array_add(array_text *t, const char *v, bool quote)
{
    size_t n = strlen(v), need = t->len + n + 5;

    if (t->failed)
        return;
    if (need > t->cap) {
        char *bigger = realloc(t->buf, need * 2);

        if (!bigger) {
            t->failed = true;
            return;
        }
        t->buf = bigger;
        t->cap = need * 2;
    }
    t->buf[t->len] = t->len == 0 ? '{' : ',';
    t->len++;
    if (quote)
        t->buf[t->len++] = '"';
    memcpy(t->buf + t->len, v, n);
    t->len += n;
    if (quote)
        t->buf[t->len++] = '"';
    t->buf[t->len] = '}';
    t->buf[t->len + 1] = '\0';
}

static const char *array_value(const array_text *t)
{
    return t->buf ? t->buf : "{}";
}

static int cmp_int64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;

    return (a > b) - (a < b);
}

/* A text column, or NULL for SQL NULL. */
static const char *text_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* Round 1's results, in the order they are sent. */
enum {
    R_LOCK,
    R_KEYS,
    R_SEEN,
    R_IDS,
    R_CASE_IDS,
    R_TYPELOCK,
    R_TYPES,
    R_DISPOSED,
    R_TAKEN,
    R_IMPORTING,
    N_ROUND1
};

/* Reads round 1's rows into the decider. Returns 0 or CS_ERR when out of memory. */
static int read_state(cs_decider *d, PGresult *const res[N_ROUND1])
{
    for (int i = 0; i < PQntuples(res[R_LOCK]); i++) {
        const PGresult *r = res[R_LOCK];
        cs_case_row row = {.reference = strtoll(PQgetvalue(r, i, 0), NULL, 10),
                           .case_type = PQgetvalue(r, i, 1),
                           .state = PQgetvalue(r, i, 2),
                           .classification = PQgetvalue(r, i, 3),
                           .data = PQgetvalue(r, i, 4),
                           .data_len = (size_t)PQgetlength(r, i, 4),
                           .version = atoi(PQgetvalue(r, i, 5)),
                           .revision = strtoll(PQgetvalue(r, i, 6), NULL, 10),
                           .jurisdiction = PQgetvalue(r, i, 7),
                           .id = strtoll(PQgetvalue(r, i, 8), NULL, 10),
                           .resolved_ttl = text_or_null(r, i, 9),
                           .supplementary_data = PQgetvalue(r, i, 10),
                           .supplementary_len = (size_t)PQgetlength(r, i, 10)};

        if (cs_decider_add_case(d, &row))
            return CS_ERR;
    }
    for (int i = 0; i < PQntuples(res[R_KEYS]); i++) {
        cs_applied_key k = {
            .reference = strtoll(PQgetvalue(res[R_KEYS], i, 0), NULL, 10),
            .version = atoi(PQgetvalue(res[R_KEYS], i, 2)),
            .revision = strtoll(PQgetvalue(res[R_KEYS], i, 3), NULL, 10),
            .event_seq = strtoll(PQgetvalue(res[R_KEYS], i, 4), NULL, 10),
            .partition = PQgetisnull(res[R_KEYS], i, 5) ? -1 : atoi(PQgetvalue(res[R_KEYS], i, 5)),
            .offset = PQgetisnull(res[R_KEYS], i, 6)
                          ? -1
                          : strtoll(PQgetvalue(res[R_KEYS], i, 6), NULL, 10)};

        snprintf(k.key, sizeof(k.key), "%s", PQgetvalue(res[R_KEYS], i, 1));
        snprintf(k.fingerprint, sizeof(k.fingerprint), "%s", PQgetvalue(res[R_KEYS], i, 7));
        k.supplementary_data = text_or_null(res[R_KEYS], i, 8);
        if (cs_decider_add_key(d, &k))
            return CS_ERR;
    }
    for (int i = 0; i < PQntuples(res[R_SEEN]); i++)
        if (cs_decider_add_recorded(d, atoi(PQgetvalue(res[R_SEEN], i, 0)),
                                    strtoll(PQgetvalue(res[R_SEEN], i, 1), NULL, 10),
                                    PQgetvalue(res[R_SEEN], i, 2),
                                    (size_t)PQgetlength(res[R_SEEN], i, 2)))
            return CS_ERR;
    for (int i = 0; i < PQntuples(res[R_IDS]); i++)
        if (cs_decider_add_event_seq(d, strtoll(PQgetvalue(res[R_IDS], i, 0), NULL, 10)))
            return CS_ERR;
    for (int i = 0; i < PQntuples(res[R_CASE_IDS]); i++)
        if (cs_decider_add_case_id(d, strtoll(PQgetvalue(res[R_CASE_IDS], i, 0), NULL, 10)))
            return CS_ERR;
    for (int i = 0; i < PQntuples(res[R_TYPES]); i++)
        if (cs_decider_add_case_type(d, PQgetvalue(res[R_TYPES], i, 0)))
            return CS_ERR;
    for (int i = 0; i < PQntuples(res[R_DISPOSED]); i++)
        if (cs_decider_add_disposed(d, strtoll(PQgetvalue(res[R_DISPOSED], i, 0), NULL, 10),
                                    PQgetvalue(res[R_DISPOSED], i, 1)))
            return CS_ERR;
    for (int i = 0; i < PQntuples(res[R_TAKEN]); i++)
        if (!PQgetisnull(res[R_TAKEN], i, 0) &&
            cs_decider_add_taken_id(d, strtoll(PQgetvalue(res[R_TAKEN], i, 0), NULL, 10),
                                    strtoll(PQgetvalue(res[R_TAKEN], i, 1), NULL, 10),
                                    text_or_null(res[R_TAKEN], i, 2)))
            return CS_ERR;
    for (int i = 0; i < PQntuples(res[R_IMPORTING]); i++)
        if (cs_decider_add_importing(d, PQgetvalue(res[R_IMPORTING], i, 0)))
            return CS_ERR;
    return CS_OK;
}

/* Round 1: BEGIN, lock the cases, read keys, decided outcomes, ids and the case types that
 * creates are checked against, into d. */
static int load_batch(cs_applier *a, cs_job **jobs, size_t n, cs_decider *d, char *errstr,
                      size_t errstr_size)
{
    array_text refs = {0}, jrefs = {0}, keys = {0}, parts = {0}, offs = {0}, types = {0},
               named = {0}, alltypes = {0};
    int64_t *sorted = malloc(n * sizeof(*sorted));
    char num[32], count[24], creates[24];
    PGresult *res[N_ROUND1] = {NULL};
    size_t ncreates = 0;
    int rc = CS_OK;

    for (size_t i = 0; sorted && i < n; i++) {
        sorted[i] = jobs[i]->sub->case_reference;
        snprintf(num, sizeof(num), "%" PRId64, jobs[i]->sub->case_reference);
        array_add(&jrefs, num, false);
        array_add(&keys, jobs[i]->sub->idempotency_key, false);
        snprintf(num, sizeof(num), "%" PRId32, jobs[i]->partition);
        array_add(&parts, num, false);
        snprintf(num, sizeof(num), "%" PRId64, jobs[i]->offset);
        array_add(&offs, num, false);
        array_add(&alltypes, jobs[i]->sub->case_type, true);
        if (cs_submission_can_create(jobs[i]->sub)) {
            array_add(&types, jobs[i]->sub->case_type, true);
            ncreates += !jobs[i]->sub->has_case_id;
            if (jobs[i]->sub->has_case_id) {
                snprintf(num, sizeof(num), "%" PRId64, jobs[i]->sub->case_id);
                array_add(&named, num, false);
            }
        }
    }
    if (sorted)
        qsort(sorted, n, sizeof(*sorted), cmp_int64);
    for (size_t i = 0; sorted && i < n; i++) {
        if (i > 0 && sorted[i] == sorted[i - 1])
            continue;
        snprintf(num, sizeof(num), "%" PRId64, sorted[i]);
        array_add(&refs, num, false);
    }
    if (!sorted || refs.failed || jrefs.failed || keys.failed || parts.failed || offs.failed ||
        types.failed || named.failed || alltypes.failed) {
        snprintf(errstr, errstr_size, "out of memory");
        rc = CS_ERR_RETRY;
        goto cleanup;
    }
    snprintf(count, sizeof(count), "%zu", n);
    snprintf(creates, sizeof(creates), "%zu", ncreates);
    {
        const char *p_lock[] = {array_value(&refs)};
        const char *p_keys[] = {array_value(&jrefs), array_value(&keys)};
        const char *p_seen[] = {a->topic, array_value(&parts), array_value(&offs)};
        const char *p_ids[] = {count};
        const char *p_case_ids[] = {creates};
        const char *p_types[] = {array_value(&types)};
        const char *p_named[] = {array_value(&named)};
        const char *p_alltypes[] = {array_value(&alltypes)};

        if (!PQenterPipelineMode(a->conn) || !send_stmt(a, "begin", 0, NULL) ||
            !send_stmt(a, "lock", 1, p_lock) || !send_stmt(a, "keys", 2, p_keys) ||
            !send_stmt(a, "seen", 3, p_seen) || !send_stmt(a, "ids", 1, p_ids) ||
            !send_stmt(a, "case_ids", 1, p_case_ids) || !send_stmt(a, "typelock", 1, p_types) ||
            !send_stmt(a, "types", 1, p_types) || !send_stmt(a, "disposed", 1, p_lock) ||
            !send_stmt(a, "taken", 1, p_named) || !send_stmt(a, "importing", 1, p_alltypes) ||
            !PQpipelineSync(a->conn)) {
            cs_db_error(a->conn, NULL, errstr, errstr_size);
            rc = CS_ERR_RETRY;
            goto cleanup;
        }
    }
    /* BEGIN, then the queries of round 1, then the sync. */
    for (int i = -1; i < N_ROUND1; i++) {
        PGresult *r = next_result(a);

        if (i < 0 ? PQresultStatus(r) != PGRES_COMMAND_OK : PQresultStatus(r) != PGRES_TUPLES_OK) {
            cs_db_error(a->conn, r, errstr, errstr_size);
            rc = cs_db_retryable(a->conn, r) ? CS_ERR_RETRY : CS_ERR;
            PQclear(r);
            break;
        }
        if (i < 0)
            PQclear(r);
        else
            res[i] = r;
    }
    if (rc == CS_OK) {
        PGresult *sync = next_result(a);

        if (PQresultStatus(sync) != PGRES_PIPELINE_SYNC) {
            cs_db_error(a->conn, sync, errstr, errstr_size);
            rc = CS_ERR_RETRY;
        }
        PQclear(sync);
    } else {
        char ignored[256];

        finish_pipeline(a, ignored, sizeof(ignored));
    }
    if (rc)
        goto cleanup;
    if (read_state(d, res)) {
        snprintf(errstr, errstr_size, "out of memory");
        rc = CS_ERR_RETRY;
    }
cleanup:
    for (int i = 0; i < N_ROUND1; i++)
        PQclear(res[i]);
    free(sorted);
    free(refs.buf);
    free(jrefs.buf);
    free(keys.buf);
    free(parts.buf);
    free(offs.buf);
    free(types.buf);
    free(named.buf);
    free(alltypes.buf);
    return rc;
}

/* --- round 2 ------------------------------------------------------------------ */

/* The significant item as stored: its three members, whatever else the submission gave (the
 * validator checked them). Returns JSON text the caller frees, or NULL. */
static char *significant_item_text(const json_t *item)
{
    json_t *o =
        json_pack("{s:s, s:s, s:s}", "type", json_string_value(json_object_get(item, "type")),
                  "description", json_string_value(json_object_get(item, "description")), "url",
                  json_string_value(json_object_get(item, "url")));
    char *text = o ? cs_json_dumps(o) : NULL;

    json_decref(o);
    return text;
}

/* Queues the writes of one applied job on the pipeline. */
static bool send_writes(cs_applier *a, const cs_job *j, const cs_plan *p)
{
    const cs_submission *s = j->sub;
    char ref[24], ver[16], rev[24], prev[24], id[24], part[16], off[24], case_id[24], ctv[16];
    char start_rev[24], merge_rev[24];
    char *data = p->data_changed ? cs_json_dumps(p->data) : NULL;
    char *dcls = p->data_classification ? cs_json_dumps(p->data_classification) : NULL;
    char *sup = p->supplementary ? cs_json_dumps(p->supplementary) : NULL;
    char *item = s->significant_item ? significant_item_text(s->significant_item) : NULL;
    bool ok = (!p->data_changed || data) && (!p->data_classification || dcls) &&
              (!p->supplementary || sup) && (!s->significant_item || item);

    snprintf(ref, sizeof(ref), "%" PRId64, s->case_reference);
    snprintf(ver, sizeof(ver), "%d", p->version);
    snprintf(rev, sizeof(rev), "%" PRId64, p->revision);
    snprintf(prev, sizeof(prev), "%" PRId64, p->prev_revision);
    snprintf(id, sizeof(id), "%" PRId64, p->event_seq);
    snprintf(part, sizeof(part), "%" PRId32, j->partition);
    snprintf(off, sizeof(off), "%" PRId64, j->offset);
    snprintf(case_id, sizeof(case_id), "%" PRId64, p->case_id);
    snprintf(ctv, sizeof(ctv), "%" PRId32, s->case_type_version);
    snprintf(start_rev, sizeof(start_rev), "%" PRId64, s->start_revision);
    snprintf(merge_rev, sizeof(merge_rev), "%" PRId64, s->merge_revision);
    if (ok && p->create) {
        const char *params[] = {ref,
                                s->case_type,
                                s->jurisdiction,
                                p->state,
                                p->classification,
                                data,
                                p->case_id ? case_id : NULL,
                                p->resolved_ttl,
                                dcls};
        ok = send_stmt(a, "create", 9, params);
    } else if (ok) {
        const char *params[] = {ref,
                                p->state,
                                p->classification,
                                data,
                                ver,
                                rev,
                                prev,
                                p->state_changed ? "true" : "false",
                                p->resolved_ttl,
                                dcls,
                                sup};
        ok = send_stmt(a, "update", 11, params);
    }
    if (ok) {
        const char *params[] = {id,
                                ref,
                                rev,
                                ver,
                                s->event_id,
                                s->user_id,
                                s->summary,
                                s->description,
                                s->idempotency_key,
                                part,
                                off,
                                j->fingerprint[0] ? j->fingerprint : NULL,
                                s->event_name,
                                s->user_first_name,
                                s->user_last_name,
                                s->state_name,
                                s->has_case_type_version ? ctv : NULL,
                                item,
                                s->proxied_by,
                                s->proxied_by_first_name,
                                s->proxied_by_last_name,
                                sup,
                                s->has_start_revision ? start_rev : NULL,
                                s->has_merge_revision ? merge_rev : NULL};
        ok = send_stmt(a, "event", 24, params);
    }
    free(data);
    free(dcls);
    free(sup);
    free(item);
    if (ok && p->notes) {
        char *notes = cs_json_dumps(p->notes);
        const char *params[] = {ref, rev, notes};

        ok = notes && send_stmt(a, "notes", 3, params);
        free(notes);
    }
    if (ok) {
        const char *params[] = {ref, a->changes_topic};
        ok = send_stmt(a, "outbox", 2, params);
    }
    return ok;
}

/* --- round 2, set-based -------------------------------------------------------- */

/* A case as the batch's applied submissions leave it, from the case row the batch starts from
 * (round 1's, or the one its create writes). data, data_classification and supplementary are
 * the latest the batch wrote since then (NULL: the row's), each a reference of its own. */
typedef struct batch_case {
    int64_t reference;
    int64_t base_revision; /* the row's revision before the batch's updates */
    bool updated;          /* a submission after the row: the row is written at the end */
    bool state_moved;      /* the state moved since the row */
    json_t *data, *data_classification, *supplementary;
    char *state, *classification, *resolved_ttl;
    int version;
    int64_t revision;
} batch_case;

/* The records of one batch's writes (the set statements' $1), and its cases by reference. */
typedef struct batch_writes {
    json_t *creates, *events, *notes, *outbox;
    batch_case *cases;
    size_t ncases;
    size_t *slots; /* open addressing: index + 1 into cases, 0 = empty */
    size_t nslots; /* a power of two, at least twice the jobs */
} batch_writes;

static void batch_free(batch_writes *w)
{
    json_decref(w->creates);
    json_decref(w->events);
    json_decref(w->notes);
    json_decref(w->outbox);
    for (size_t i = 0; i < w->ncases; i++) {
        json_decref(w->cases[i].data);
        json_decref(w->cases[i].data_classification);
        json_decref(w->cases[i].supplementary);
        free(w->cases[i].state);
        free(w->cases[i].classification);
        free(w->cases[i].resolved_ttl);
    }
    free(w->cases);
    free(w->slots);
    memset(w, 0, sizeof(*w));
}

/* Sizes w for up to n jobs. Returns 0 or CS_ERR when out of memory. */
static int batch_init(batch_writes *w, size_t n)
{
    memset(w, 0, sizeof(*w));
    w->nslots = 16;
    while (w->nslots < 2 * n)
        w->nslots *= 2;
    w->creates = json_array();
    w->events = json_array();
    w->notes = json_array();
    w->outbox = json_array();
    w->cases = calloc(n ? n : 1, sizeof(*w->cases));
    w->slots = calloc(w->nslots, sizeof(*w->slots));
    if (!w->creates || !w->events || !w->notes || !w->outbox || !w->cases || !w->slots) {
        batch_free(w);
        return CS_ERR;
    }
    return CS_OK;
}

/* The batch's case of reference, added (from base_revision) when it is not there yet. */
static batch_case *batch_case_of(batch_writes *w, int64_t reference, int64_t base_revision)
{
    size_t mask = w->nslots - 1, i = ((uint64_t)reference * 0x9E3779B97F4A7C15u >> 17) & mask;

    while (w->slots[i]) {
        batch_case *c = &w->cases[w->slots[i] - 1];

        if (c->reference == reference)
            return c;
        i = (i + 1) & mask;
    }
    w->cases[w->ncases] = (batch_case){.reference = reference, .base_revision = base_revision};
    w->slots[i] = ++w->ncases;
    return &w->cases[w->ncases - 1];
}

/* Replaces *slot with a new reference to v (NULL leaves it). */
static void keep_json(json_t **slot, json_t *v)
{
    if (!v)
        return;
    json_decref(*slot);
    *slot = json_incref(v);
}

static bool replace_text(char **slot, const char *v)
{
    char *copy = v ? strdup(v) : NULL;

    if (v && !copy)
        return false;
    free(*slot);
    *slot = copy;
    return true;
}

/* Members of a record: each returns false when out of memory. A NULL value is left out (a
 * missing member is SQL NULL to jsonb_to_recordset). */
static bool put(json_t *o, const char *k, json_t *v)
{
    return v && json_object_set_new(o, k, v) == 0;
}

static bool put_text(json_t *o, const char *k, const char *v)
{
    return !v || put(o, k, json_string_nocheck(v));
}

static bool put_int(json_t *o, const char *k, int64_t v)
{
    return put(o, k, json_integer(v));
}

static bool put_json(json_t *o, const char *k, json_t *v)
{
    return !v || json_object_set(o, k, v) == 0;
}

/* Adds the writes of applied job j (plan p, not adopted yet) to the batch's records. Returns
 * 0 or CS_ERR when out of memory. */
static int batch_add(batch_writes *w, const cs_job *j, const cs_plan *p)
{
    const cs_submission *s = j->sub;
    batch_case *c = batch_case_of(w, s->case_reference, p->create ? 1 : p->prev_revision);
    json_t *ev = json_object(), *item = NULL, *o;
    bool ok = ev != NULL;

    if (p->create) {
        o = json_object();
        ok = ok && o && json_array_append_new(w->creates, o) == 0 &&
             put_int(o, "reference", s->case_reference) && put_text(o, "case_type", s->case_type) &&
             put_text(o, "jurisdiction", s->jurisdiction) && put_text(o, "state", p->state) &&
             put_text(o, "classification", p->classification) && put_json(o, "data", p->data) &&
             (!p->case_id || put_int(o, "id", p->case_id)) &&
             put_text(o, "resolved_ttl", p->resolved_ttl) &&
             put_json(o, "data_classification", p->data_classification);
    } else {
        /* The case after j: what j changes, over what the batch changed before it. */
        c->updated = true;
        c->state_moved = c->state_moved || p->state_changed;
        if (p->data_changed)
            keep_json(&c->data, p->data);
        keep_json(&c->data_classification, p->data_classification);
        keep_json(&c->supplementary, p->supplementary);
        c->version = p->version;
        c->revision = p->revision;
        ok = ok && replace_text(&c->state, p->state) &&
             replace_text(&c->classification, p->classification) &&
             replace_text(&c->resolved_ttl, p->resolved_ttl);
    }
    if (ok && s->significant_item)
        ok = (item = json_pack(
                  "{s:s, s:s, s:s}", "type",
                  json_string_value(json_object_get(s->significant_item, "type")), "description",
                  json_string_value(json_object_get(s->significant_item, "description")), "url",
                  json_string_value(json_object_get(s->significant_item, "url")))) != NULL;
    ok = ok && json_array_append(w->events, ev) == 0 && put_int(ev, "id", p->event_seq) &&
         put_int(ev, "reference", s->case_reference) && put_int(ev, "revision", p->revision) &&
         put_int(ev, "version", p->version) && put_text(ev, "event_id", s->event_id) &&
         put_text(ev, "user_id", s->user_id) && put_text(ev, "summary", s->summary) &&
         put_text(ev, "description", s->description) && put_text(ev, "state", p->state) &&
         put_text(ev, "classification", p->classification) &&
         put_json(ev, "data", p->create ? NULL : c->data) &&
         put_text(ev, "idempotency_key", s->idempotency_key) &&
         put_int(ev, "kafka_partition", j->partition) && put_int(ev, "kafka_offset", j->offset) &&
         put_text(ev, "payload_sha256", j->fingerprint[0] ? j->fingerprint : NULL) &&
         put_text(ev, "event_name", s->event_name) &&
         put_text(ev, "user_first_name", s->user_first_name) &&
         put_text(ev, "user_last_name", s->user_last_name) &&
         put_text(ev, "state_name", s->state_name) &&
         (!s->has_case_type_version || put_int(ev, "case_type_version", s->case_type_version)) &&
         put_json(ev, "data_classification", p->create ? NULL : c->data_classification) &&
         put_json(ev, "significant_item", item) && put_text(ev, "proxied_by", s->proxied_by) &&
         put_text(ev, "proxied_by_first_name", s->proxied_by_first_name) &&
         put_text(ev, "proxied_by_last_name", s->proxied_by_last_name) &&
         put_json(ev, "supplementary_data", p->supplementary) &&
         put(ev, "state_moved", json_boolean(!p->create && c->state_moved)) &&
         put_json(ev, "case_supplementary_data", p->create ? NULL : c->supplementary) &&
         (!s->has_start_revision || put_int(ev, "start_revision", s->start_revision)) &&
         (!s->has_merge_revision || put_int(ev, "merge_revision", s->merge_revision));
    if (ok && p->notes) {
        o = json_object();
        ok = o && json_array_append_new(w->notes, o) == 0 &&
             put_int(o, "reference", s->case_reference) && put_int(o, "revision", p->revision) &&
             put_json(o, "notes", p->notes);
    }
    if (ok) {
        o = json_object();
        ok = o && json_array_append_new(w->outbox, o) == 0 && put_int(o, "id", p->event_seq) &&
             put_text(o, "resolved_ttl", p->resolved_ttl);
    }
    json_decref(ev);
    json_decref(item);
    return ok ? CS_OK : CS_ERR;
}

/* A set statement's $1 is cut into statements of about this many bytes: a record holds a
 * whole case's data, and libpq holds a statement whole in its output buffer, so one statement
 * of every record would cost the batch's records several times over in memory. */
#define SET_CHUNK_BYTES (512u << 10)

/* Sends set statement name with records as $1, in statements of about SET_CHUNK_BYTES: each
 * with second as $2 when not NULL, or with its count of records as $2 when counted. */
static bool send_set(cs_applier *a, const char *name, const json_t *records, const char *second,
                     bool counted)
{
    size_t n = json_array_size(records), len = 0, cap = 0, in_chunk = 0;
    char *buf = NULL, count[24];
    bool ok = true;

    for (size_t i = 0; ok && i < n; i++) {
        char *rec = cs_json_dumps(json_array_get(records, i));
        size_t rlen = rec ? strlen(rec) : 0;

        if (!rec) {
            ok = false;
            break;
        }
        if (len + rlen + 3 > cap) {
            size_t want = cap ? cap : 4096;
            char *grown;

            while (want < len + rlen + 3)
                want *= 2;
            if (!(grown = realloc(buf, want))) {
                free(rec);
                ok = false;
                break;
            }
            buf = grown;
            cap = want;
        }
        buf[len++] = in_chunk++ ? ',' : '[';
        memcpy(buf + len, rec, rlen);
        len += rlen;
        free(rec);
        if (len >= SET_CHUNK_BYTES || i + 1 == n) {
            const char *params[] = {buf, counted ? count : second};

            buf[len++] = ']';
            buf[len] = '\0';
            snprintf(count, sizeof(count), "%zu", in_chunk);
            ok = send_stmt(a, name, counted || second ? 2 : 1, params);
            len = in_chunk = 0;
        }
    }
    free(buf);
    return ok;
}

/* Queues the batch's writes on the pipeline: one statement per table. */
static bool send_batch(cs_applier *a, batch_writes *w)
{
    json_t *updates = json_array();
    size_t nupdates = 0;
    bool ok = updates != NULL;

    for (size_t i = 0; ok && i < w->ncases; i++) {
        const batch_case *c = &w->cases[i];
        json_t *o;

        if (!c->updated)
            continue;
        o = json_object();
        ok = o && json_array_append_new(updates, o) == 0 && put_int(o, "reference", c->reference) &&
             put_int(o, "prev_revision", c->base_revision) && put_text(o, "state", c->state) &&
             put_text(o, "classification", c->classification) && put_json(o, "data", c->data) &&
             put_int(o, "version", c->version) && put_int(o, "revision", c->revision) &&
             put(o, "state_moved", json_boolean(c->state_moved)) &&
             put_text(o, "resolved_ttl", c->resolved_ttl) &&
             put_json(o, "data_classification", c->data_classification) &&
             put_json(o, "supplementary_data", c->supplementary);
        nupdates++;
    }
    ok = ok && send_set(a, "creates", w->creates, NULL, true) &&
         send_set(a, "events", w->events, NULL, false) &&
         (nupdates == 0 || send_set(a, "updates", updates, NULL, true)) &&
         send_set(a, "notes_all", w->notes, NULL, false) &&
         send_set(a, "outbox_all", w->outbox, a->changes_topic, false);
    json_decref(updates);
    return ok;
}

/* Queues the outcomes decided now that wrote nothing (duplicate, conflict,
 * rejected), so that a redelivery gets them again. An applied outcome needs no
 * record: its history row holds it (cs_decide_repeat). */
static bool send_outcomes(cs_applier *a, cs_job **jobs, size_t n)
{
    size_t len = 2, count = 0;
    char *all, *w;
    bool ok;

    for (size_t i = 0; i < n; i++)
        len += strlen(jobs[i]->outcome) + 1;
    if (!(all = malloc(len + 1)))
        return false;
    w = all;
    *w++ = '[';
    for (size_t i = 0; i < n; i++) {
        if (jobs[i]->replayed || jobs[i]->applied)
            continue;
        if (count++)
            *w++ = ',';
        w = stpcpy(w, jobs[i]->outcome);
    }
    *w++ = ']';
    *w = '\0';
    {
        const char *params[] = {a->topic, all};
        ok = count == 0 || send_stmt(a, "outcomes", 2, params);
    }
    free(all);
    return ok;
}

static void undecide(cs_job **jobs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cs_job_undecide(jobs[i]);
}

/* One attempt at the batch: set-based writes, or careful = one savepoint, round trip and
 * row statements per job. */
static int run_once(cs_applier *a, cs_job **jobs, size_t n, bool careful, char *errstr,
                    size_t errstr_size)
{
    cs_decider *d = NULL;
    cs_plan p = {0};
    batch_writes w = {0};
    int rc;

    if ((rc = connect_db(a, errstr, errstr_size)))
        return rc;
    if (!(d = cs_decider_new()) || (!careful && batch_init(&w, n))) {
        snprintf(errstr, errstr_size, "out of memory");
        rc = CS_ERR_RETRY;
        goto cleanup;
    }
    if ((rc = load_batch(a, jobs, n, d, errstr, errstr_size)))
        goto cleanup;
    for (size_t i = 0; i < n; i++) {
        if (cs_decide(d, jobs[i], &p)) {
            snprintf(errstr, errstr_size, "out of memory");
            rc = CS_ERR_RETRY;
            goto cleanup;
        }
        if (!p.apply)
            continue;
        if (careful) {
            char why[512];

            if (!send_stmt(a, "savepoint", 0, NULL) || !send_writes(a, jobs[i], &p) ||
                !send_stmt(a, "release", 0, NULL) || !PQpipelineSync(a->conn)) {
                rc = CS_ERR_RETRY;
                goto cleanup;
            }
            rc = finish_pipeline(a, why, sizeof(why));
            if (rc == CS_ERR) {
                /* Refused by the database: this job alone is rolled back. */
                if (!send_stmt(a, "rollback_job", 0, NULL) || !PQpipelineSync(a->conn) ||
                    (rc = finish_pipeline(a, errstr, errstr_size)))
                    goto cleanup;
                cs_log_warn("submission refused by postgresql case=%" PRId64
                            " partition=%d offset=%" PRId64 " error=\"%s\"",
                            jobs[i]->sub->case_reference, jobs[i]->partition, jobs[i]->offset, why);
                if ((rc = cs_decide_refused(jobs[i], &p, why))) {
                    snprintf(errstr, errstr_size, "out of memory");
                    rc = CS_ERR_RETRY;
                    goto cleanup;
                }
                continue;
            }
            if (rc) {
                cs_utf8_snprintf(errstr, errstr_size, "%s", why);
                goto cleanup;
            }
        } else if (batch_add(&w, jobs[i], &p)) {
            snprintf(errstr, errstr_size, "out of memory");
            rc = CS_ERR_RETRY;
            goto cleanup;
        }
        if (cs_decider_adopt(d, jobs[i], &p)) {
            snprintf(errstr, errstr_size, "out of memory");
            rc = CS_ERR_RETRY;
            goto cleanup;
        }
        if (i == n / 2)
            cs_fault_point("mid_batch");
    }
    if (!careful && !send_batch(a, &w)) {
        cs_db_error(a->conn, NULL, errstr, errstr_size);
        rc = CS_ERR_RETRY;
        goto cleanup;
    }
    if (!send_outcomes(a, jobs, n)) {
        rc = CS_ERR_RETRY;
        goto cleanup;
    }
    cs_fault_point("before_commit");
    if (!send_stmt(a, "commit", 0, NULL) || !PQpipelineSync(a->conn)) {
        cs_db_error(a->conn, NULL, errstr, errstr_size);
        rc = CS_ERR_RETRY;
        goto cleanup;
    }
    rc = finish_pipeline(a, errstr, errstr_size);
cleanup:
    cs_plan_clear(&p);
    batch_free(&w);
    reset_conn(a);
    cs_decider_free(d);
    if (rc)
        undecide(jobs, n);
    return rc;
}

int cs_applier_run(cs_applier *a, cs_job **jobs, size_t n, char *errstr, size_t errstr_size)
{
    int rc;

    if (n == 0)
        return CS_OK;
    rc = run_once(a, jobs, n, false, errstr, errstr_size);
    if (rc == CS_ERR) {
        cs_log_warn("batch refused, applying its %zu submissions one savepoint each: %s", n,
                    errstr);
        rc = run_once(a, jobs, n, true, errstr, errstr_size);
    }
    if (rc == CS_ERR_RETRY && PQstatus(a->conn) != CONNECTION_OK) {
        PQfinish(a->conn);
        a->conn = NULL;
    }
    return rc;
}

/* Runs a DELETE of one parameter, hours; returns the rows deleted or CS_ERR_RETRY. */
static long long delete_older(cs_applier *a, const char *sql, int hours, char *errstr,
                              size_t errstr_size)
{
    char h[16];
    const char *params[] = {h};
    PGresult *res;
    long long n;

    snprintf(h, sizeof(h), "%d", hours);
    res = PQexecParams(a->conn, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        cs_db_error(a->conn, res, errstr, errstr_size);
        PQclear(res);
        return CS_ERR_RETRY;
    }
    n = atoll(PQcmdTuples(res));
    PQclear(res);
    return n;
}

long long cs_applier_prune(cs_applier *a, int outcome_hours, int outbox_hours, bool *more,
                           char *errstr, size_t errstr_size)
{
    long long total, n;

    *more = false;
    if (connect_db(a, errstr, errstr_size))
        return CS_ERR_RETRY;
    total = delete_older(a,
                         "DELETE FROM ccd.event_outcome WHERE created_date < now() - "
                         "make_interval(hours => $1::int)",
                         outcome_hours, errstr, errstr_size);
    if (total < 0)
        return total;
    /* The oldest published rows first, through the index of the rows by publication time
     * (018): a round reads the rows it deletes, not the whole table. */
    n = delete_older(a,
                     "DELETE FROM ccd.change_outbox WHERE id IN (SELECT id FROM ccd.change_outbox"
                     " WHERE published_at < now() - make_interval(hours => $1::int)"
                     " ORDER BY published_at LIMIT " CS_APPLIER_PRUNE_ROUND_TEXT ")",
                     outbox_hours, errstr, errstr_size);
    if (n < 0)
        return n;
    *more = n == CS_APPLIER_PRUNE_ROUND;
    return total + n;
}

int cs_applier_ping(cs_applier *a, char *errstr, size_t errstr_size)
{
    PGresult *res;
    int rc = CS_OK;

    if (connect_db(a, errstr, errstr_size))
        return CS_ERR_RETRY;
    res = PQexec(a->conn, "SELECT 1");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cs_db_error(a->conn, res, errstr, errstr_size);
        rc = CS_ERR_RETRY;
    }
    PQclear(res);
    return rc;
}
