/* Applies batches of submissions in PostgreSQL: locks, idempotency, optimistic lock, history,
 * notes, outbox and outcomes, in two pipelined round trips per batch.
 *
 * Round 1 (one pipeline): BEGIN, lock every case of the batch FOR UPDATE,
 * read the idempotency keys already applied, the outcomes already decided
 * for these source positions (redeliveries), and reserve event ids.
 * Then every job is decided in C, in offset order, against the in-memory
 * state of its case. Round 2 (one pipeline): the writes of every applied
 * job, the outcomes, COMMIT.
 *
 * If round 2 fails for a reason that is not transient, the batch is rolled
 * back and run again in careful mode: each job's writes inside its own
 * savepoint, synchronously, so the job the database refuses is rejected and
 * the others commit. */
#include "apply.h"

#include "db.h"
#include "err.h"
#include "es.h"
#include "fault.h"
#include "jsondump.h"
#include "log.h"
#include "merge_patch.h"
#include "utf8.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct cs_applier {
    PGconn *conn;
    char *conninfo;
    char *topic;         /* source of the submissions, recorded with outcomes */
    char *changes_topic; /* destination of the outbox rows */
};

/* A case as this batch sees it. */
typedef struct case_state {
    int64_t ref;
    bool exists;
    char *case_type;
    char *jurisdiction;
    char *state;
    char *classification;
    json_t *data;     /* NULL when the stored blob could not be read: see unreadable */
    char *unreadable; /* why the stored blob cannot be read; the case's jobs are rejected */
    int version;
    int64_t revision;
} case_state;

/* An applied idempotency key of a case. */
typedef struct key_entry {
    int64_t ref;
    char key[37];
    int version;
    int64_t revision;
    int64_t seq;
    int32_t partition; /* where the applied submission was read */
    int64_t offset;
    char fingerprint[65]; /* of the applied payload; "" for rows from before fingerprints */
} key_entry;

typedef struct batch {
    case_state *cases;
    size_t ncases;
    key_entry *keys;
    size_t nkeys;
    PGresult *seen; /* outcomes already decided: partition, offset, outcome */
    int64_t *ids;   /* reserved event ids */
    size_t nids, next_id;
    /* Case types a create of this batch must be checked against (statement "types"), and
     * those its creates add; owned. */
    char **types;
    size_t ntypes;
} batch;

/* What one applied job writes. */
typedef struct plan {
    bool create;
    json_t *data; /* the blob after the job (owned) */
    bool data_changed;
    const char *state;
    const char *classification;
    int version;
    int64_t revision;
    int64_t prev_revision;
    int64_t event_id;
} plan;

static const struct statement {
    const char *name;
    const char *sql;
} statements[] = {
    {"lock", "SELECT reference, case_type_id, state, security_classification, data::text,"
             " version, case_revision, jurisdiction FROM ccd.case_data"
             " WHERE reference = ANY($1::bigint[]) ORDER BY reference FOR UPDATE"},
    {"keys", "SELECT case_reference, idempotency_key::text, version, case_revision, id,"
             " kafka_partition, kafka_offset, payload_sha256"
             " FROM ccd.case_event WHERE (case_reference, idempotency_key) IN"
             " (SELECT * FROM unnest($1::bigint[], $2::uuid[]))"},
    {"seen", "SELECT kafka_partition, kafka_offset, outcome::text FROM ccd.event_outcome"
             " WHERE topic = $1 AND (kafka_partition, kafka_offset) IN"
             " (SELECT * FROM unnest($2::int[], $3::bigint[]))"},
    {"ids", "SELECT nextval('ccd.case_event_id_seq') FROM generate_series(1, $1::int)"},
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
    {"create", "WITH w AS (INSERT INTO ccd.case_data (reference, case_type_id, jurisdiction,"
               " state, security_classification, data, version, case_revision)"
               " VALUES ($1, $2, $3, $4, $5, $6, 1, 1) ON CONFLICT (reference) DO NOTHING"
               " RETURNING 1) SELECT ccd.expect_one_row(count(*), 'case ' || $1) FROM w"},
    {"update", "WITH w AS (UPDATE ccd.case_data SET state = $2::varchar,"
               " security_classification = $3::ccd.securityclassification,"
               " data = COALESCE($4::jsonb, data), version = $5, case_revision = $6,"
               " last_modified = now(), last_state_modified_date = CASE WHEN state <> $2::varchar"
               " THEN now() ELSE last_state_modified_date END"
               " WHERE reference = $1 AND case_revision = $7 RETURNING 1)"
               " SELECT ccd.expect_one_row(count(*), 'case ' || $1) FROM w"},
    {"event", "INSERT INTO ccd.case_event (id, case_reference, case_revision, version, event_id,"
              " user_id, summary, description, state_id, security_classification, data,"
              " idempotency_key, kafka_partition, kafka_offset, payload_sha256)"
              " SELECT $1, $2, $3, $4, $5, $6, $7, $8, c.state, c.security_classification,"
              " c.data, $9, $10, $11, $12 FROM ccd.case_data c WHERE c.reference = $2"},
    {"notes", "INSERT INTO ccd.case_notes (case_reference, author, body, case_revision)"
              " SELECT $1, n->>'author', n->>'body', $2 FROM jsonb_array_elements($3::jsonb) n"},
    /* The row form of change_document: the by-reference one plans its query on
     * every call, three times the cost. */
    {"outbox", "INSERT INTO ccd.change_outbox (reference, case_revision, document, topic)"
               " SELECT c.reference, c.case_revision, ccd.change_document(c), $2"
               " FROM ccd.case_data c WHERE c.reference = $1"},
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

/* --- batch state ------------------------------------------------------------- */

static void batch_free(batch *b)
{
    for (size_t i = 0; i < b->ncases; i++) {
        free(b->cases[i].case_type);
        free(b->cases[i].jurisdiction);
        free(b->cases[i].state);
        free(b->cases[i].classification);
        json_decref(b->cases[i].data);
        free(b->cases[i].unreadable);
    }
    free(b->cases);
    free(b->keys);
    free(b->ids);
    for (size_t i = 0; i < b->ntypes; i++)
        free(b->types[i]);
    free(b->types);
    PQclear(b->seen);
    memset(b, 0, sizeof(*b));
}

static int cmp_ref(const void *x, const void *y)
{
    int64_t a = ((const case_state *)x)->ref, b = ((const case_state *)y)->ref;

    return (a > b) - (a < b);
}

static case_state *find_case(batch *b, int64_t ref)
{
    case_state key = {.ref = ref};

    return bsearch(&key, b->cases, b->ncases, sizeof(*b->cases), cmp_ref);
}

static key_entry *find_key(batch *b, int64_t ref, const char *key)
{
    for (size_t i = 0; i < b->nkeys; i++)
        if (b->keys[i].ref == ref && strcmp(b->keys[i].key, key) == 0)
            return &b->keys[i];
    return NULL;
}

static const char *find_seen(batch *b, int32_t partition, int64_t offset)
{
    for (int i = 0; b->seen && i < PQntuples(b->seen); i++)
        if (atoi(PQgetvalue(b->seen, i, 0)) == partition &&
            strtoll(PQgetvalue(b->seen, i, 1), NULL, 10) == offset)
            return PQgetvalue(b->seen, i, 2);
    return NULL;
}

/* Appends "v" to a PostgreSQL array literal being built in *buf. */
static void array_add(char **buf, size_t *len, size_t *cap, const char *v)
{
    size_t n = strlen(v);

    if (*len + n + 3 > *cap) {
        *cap = (*len + n + 3) * 2;
        *buf = realloc(*buf, *cap);
    }
    (*buf)[*len] = *len == 0 ? '{' : ',';
    (*len)++;
    memcpy(*buf + *len, v, n);
    *len += n;
    (*buf)[*len] = '}';
    (*buf)[*len + 1] = '\0';
}

/* Appends v as a quoted element, so that a case type such as NULL stays text. v holds no '"'
 * or '\\' (cs_case_type_check). */
static void array_add_quoted(char **buf, size_t *len, size_t *cap, const char *v)
{
    size_t n = strlen(v);
    char *q = malloc(n + 3);

    if (!q)
        return;
    q[0] = '"';
    memcpy(q + 1, v, n);
    q[n + 1] = '"';
    q[n + 2] = '\0';
    array_add(buf, len, cap, q);
    free(q);
}

/* Round 1: BEGIN, lock the cases, read keys, decided outcomes, ids and the case types that
 * creates are checked against. */
static int load_batch(cs_applier *a, cs_job **jobs, size_t n, batch *b, char *errstr,
                      size_t errstr_size)
{
    char *refs = NULL, *jrefs = NULL, *keys = NULL, *parts = NULL, *offs = NULL, *types = NULL;
    size_t lr = 0, cr = 0, ljr = 0, cjr = 0, lk = 0, ck = 0, lp = 0, cp = 0, lo = 0, co = 0;
    size_t lt = 0, ct = 0;
    char num[32], count[24];
    PGresult *res[6] = {NULL};
    int rc = CS_OK;

    memset(b, 0, sizeof(*b));
    b->cases = calloc(n, sizeof(*b->cases));
    b->keys = calloc(n * 2, sizeof(*b->keys));
    for (size_t i = 0; i < n; i++) {
        int64_t ref = jobs[i]->sub->case_reference;
        bool dup = false;

        for (size_t c = 0; c < b->ncases && !dup; c++)
            dup = b->cases[c].ref == ref;
        snprintf(num, sizeof(num), "%" PRId64, ref);
        if (!dup) {
            b->cases[b->ncases++].ref = ref;
            array_add(&refs, &lr, &cr, num);
        }
        array_add(&jrefs, &ljr, &cjr, num);
        array_add(&keys, &lk, &ck, jobs[i]->sub->idempotency_key);
        snprintf(num, sizeof(num), "%" PRId32, jobs[i]->partition);
        array_add(&parts, &lp, &cp, num);
        snprintf(num, sizeof(num), "%" PRId64, jobs[i]->offset);
        array_add(&offs, &lo, &co, num);
        if (cs_submission_can_create(jobs[i]->sub))
            array_add_quoted(&types, &lt, &ct, jobs[i]->sub->case_type);
    }
    qsort(b->cases, b->ncases, sizeof(*b->cases), cmp_ref);
    snprintf(count, sizeof(count), "%zu", n);
    {
        const char *p_lock[] = {refs};
        const char *p_keys[] = {jrefs, keys};
        const char *p_seen[] = {a->topic, parts, offs};
        const char *p_ids[] = {count};
        const char *p_types[] = {types ? types : "{}"};

        if (!PQenterPipelineMode(a->conn) || !send_stmt(a, "begin", 0, NULL) ||
            !send_stmt(a, "lock", 1, p_lock) || !send_stmt(a, "keys", 2, p_keys) ||
            !send_stmt(a, "seen", 3, p_seen) || !send_stmt(a, "ids", 1, p_ids) ||
            !send_stmt(a, "typelock", 1, p_types) || !send_stmt(a, "types", 1, p_types) ||
            !PQpipelineSync(a->conn)) {
            cs_db_error(a->conn, NULL, errstr, errstr_size);
            rc = CS_ERR_RETRY;
            goto cleanup;
        }
    }
    /* BEGIN, then the six queries, then the sync. */
    for (int i = -1; i < 6; i++) {
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
    for (int i = 0; i < PQntuples(res[0]); i++) {
        case_state *c = find_case(b, strtoll(PQgetvalue(res[0], i, 0), NULL, 10));

        c->exists = true;
        c->case_type = strdup(PQgetvalue(res[0], i, 1));
        c->state = strdup(PQgetvalue(res[0], i, 2));
        c->classification = strdup(PQgetvalue(res[0], i, 3));
        c->version = atoi(PQgetvalue(res[0], i, 5));
        c->revision = strtoll(PQgetvalue(res[0], i, 6), NULL, 10);
        c->jurisdiction = strdup(PQgetvalue(res[0], i, 7));
        if (!c->case_type || !c->state || !c->classification || !c->jurisdiction) {
            snprintf(errstr, errstr_size, "out of memory");
            rc = CS_ERR_RETRY;
            goto cleanup;
        }
        {
            json_error_t jerr;
            char why[256];
            const char *text = PQgetvalue(res[0], i, 4);

            /* One case's unreadable blob is that case's problem: its jobs are
             * rejected with the reason, every other case goes on. */
            c->data = cs_json_loads_stored(text, strlen(text), &jerr);
            if (!c->data) {
                /* jansson's text may quote the blob, cut at its own byte limit. */
                cs_utf8_trim(jerr.text);
                snprintf(why, sizeof(why), "stored data is not readable JSON: %s", jerr.text);
                c->unreadable = strdup(why);
            }
            if (!c->data && !c->unreadable) {
                snprintf(errstr, errstr_size, "out of memory");
                rc = CS_ERR_RETRY;
                goto cleanup;
            }
        }
    }
    for (int i = 0; i < PQntuples(res[1]); i++) {
        key_entry *k = &b->keys[b->nkeys++];

        k->ref = strtoll(PQgetvalue(res[1], i, 0), NULL, 10);
        snprintf(k->key, sizeof(k->key), "%s", PQgetvalue(res[1], i, 1));
        k->version = atoi(PQgetvalue(res[1], i, 2));
        k->revision = strtoll(PQgetvalue(res[1], i, 3), NULL, 10);
        k->seq = strtoll(PQgetvalue(res[1], i, 4), NULL, 10);
        k->partition = PQgetisnull(res[1], i, 5) ? -1 : atoi(PQgetvalue(res[1], i, 5));
        k->offset = PQgetisnull(res[1], i, 6) ? -1 : strtoll(PQgetvalue(res[1], i, 6), NULL, 10);
        snprintf(k->fingerprint, sizeof(k->fingerprint), "%s", PQgetvalue(res[1], i, 7));
    }
    b->seen = res[2];
    res[2] = NULL;
    b->nids = (size_t)PQntuples(res[3]);
    b->ids = calloc(b->nids ? b->nids : 1, sizeof(*b->ids));
    for (size_t i = 0; i < b->nids; i++)
        b->ids[i] = strtoll(PQgetvalue(res[3], (int)i, 0), NULL, 10);
    /* res[4] is the type lock; room for the types this batch's creates add. */
    b->types = calloc((size_t)PQntuples(res[5]) + n, sizeof(*b->types));
    for (int i = 0; b->types && i < PQntuples(res[5]); i++)
        if ((b->types[b->ntypes] = strdup(PQgetvalue(res[5], i, 0))))
            b->ntypes++;
cleanup:
    for (int i = 0; i < 6; i++)
        PQclear(res[i]);
    free(refs);
    free(jrefs);
    free(keys);
    free(parts);
    free(offs);
    free(types);
    return rc;
}

/* --- deciding one job ---------------------------------------------------------- */

/* True if a recorded outcome is for this submission: a position reused by a
 * recreated topic holds another message's outcome, which is overwritten. */
static bool same_submission(const cs_outcome *o, const cs_submission *s)
{
    return strcmp(o->idempotency_key, s->idempotency_key) == 0 &&
           o->case_reference == s->case_reference;
}

/* A case type known to this batch (stored, or created by an earlier job) that differs from
 * type only in letter case, so that both would be written to one index. NULL when type itself
 * is known (cases of both may exist from before this rule: they carry on) or none differs. */
static const char *case_fold_twin(const batch *b, const char *type)
{
    const char *twin = NULL;

    for (size_t i = 0; i < b->ntypes; i++) {
        if (strcmp(b->types[i], type) == 0)
            return NULL;
        if (!twin && strcasecmp(b->types[i], type) == 0)
            twin = b->types[i];
    }
    return twin;
}

static bool known_type(const batch *b, const char *type)
{
    for (size_t i = 0; i < b->ntypes; i++)
        if (strcmp(b->types[i], type) == 0)
            return true;
    return false;
}

/* Decides j against its case. Returns true when the job applies, with the
 * writes in *p (p->data owned by the plan); otherwise the job is decided. */
static bool decide(batch *b, cs_job *j, plan *p)
{
    const cs_submission *s = j->sub;
    case_state *c = find_case(b, s->case_reference);
    const char *seen = find_seen(b, j->partition, j->offset);
    cs_outcome *recorded = NULL;
    const char *twin;
    key_entry *k;
    char why[512];

    memset(p, 0, sizeof(*p));
    if (seen && cs_outcome_parse(seen, strlen(seen), &recorded) == CS_OK &&
        same_submission(recorded, s) && cs_job_replay(j, recorded) == CS_OK) {
        cs_outcome_free(recorded);
        return false;
    }
    cs_outcome_free(recorded);
    if ((k = find_key(b, s->case_reference, s->idempotency_key)) != NULL) {
        if (k->partition == j->partition && k->offset == j->offset) {
            /* The applied message itself, delivered again: its history row
             * holds everything of its outcome, which is rendered again. */
            cs_job_decide(j, CS_STATUS_APPLIED, k->version, k->revision, k->seq, NULL);
            j->replayed = true;
            return false;
        }
        if (k->fingerprint[0] && j->fingerprint[0] && strcmp(k->fingerprint, j->fingerprint) != 0) {
            snprintf(why, sizeof(why),
                     "idempotency key %s was already applied to case %" PRId64
                     " with another payload",
                     s->idempotency_key, s->case_reference);
            cs_job_decide(j, CS_STATUS_REJECTED, 0, 0, 0, why);
            return false;
        }
        cs_job_decide(j, CS_STATUS_DUPLICATE, k->version, k->revision, k->seq, NULL);
        return false;
    }
    if (!c->exists) {
        if (s->data_merge) {
            snprintf(why, sizeof(why), "case %" PRId64 " does not exist: nothing to merge into",
                     s->case_reference);
            cs_job_decide(j, CS_STATUS_REJECTED, 0, 0, 0, why);
            return false;
        }
        if (!cs_submission_can_create(s)) {
            snprintf(why, sizeof(why),
                     "case %" PRId64 " does not exist and the submission lacks %s to create it",
                     s->case_reference,
                     !s->jurisdiction ? "jurisdiction"
                     : !s->state      ? "state"
                                      : "data");
            cs_job_decide(j, CS_STATUS_REJECTED, 0, 0, 0, why);
            return false;
        }
        if ((twin = case_fold_twin(b, s->case_type)) != NULL) {
            char index[256];

            cs_es_index_name(twin, index, sizeof(index));
            cs_utf8_snprintf(why, sizeof(why),
                             "case type %s differs only in letter case from the existing case "
                             "type %s: both would be indexed in %s",
                             s->case_type, twin, index);
            cs_job_decide(j, CS_STATUS_REJECTED, 0, 0, 0, why);
            return false;
        }
        /* expected_version 0 means "this case must not exist yet". */
        if (s->has_expected_version && s->expected_version != 0) {
            snprintf(why, sizeof(why), "expected version %" PRId64 ", case does not exist",
                     s->expected_version);
            cs_job_decide(j, CS_STATUS_CONFLICT, 0, 0, 0, why);
            return false;
        }
        p->create = true;
        p->data = json_incref(s->data);
        p->data_changed = true;
        p->state = s->state;
        p->classification = s->security_classification ? s->security_classification : "PUBLIC";
        p->version = 1;
        p->revision = 1;
    } else {
        if (c->unreadable) {
            snprintf(why, sizeof(why), "case %" PRId64 " cannot be changed: %s", s->case_reference,
                     c->unreadable);
            cs_job_decide(j, CS_STATUS_REJECTED, 0, 0, 0, why);
            j->case_unreadable = true;
            return false;
        }
        if (strcmp(c->case_type, s->case_type) != 0) {
            /* Text from the submission and the database: cut between characters. */
            cs_utf8_snprintf(why, sizeof(why), "case %" PRId64 " is of type %s, not %s",
                             s->case_reference, c->case_type, s->case_type);
            cs_job_decide(j, CS_STATUS_REJECTED, 0, 0, 0, why);
            return false;
        }
        /* A case stays in its jurisdiction: naming another is an error, not a move. */
        if (s->jurisdiction && strcmp(c->jurisdiction, s->jurisdiction) != 0) {
            cs_utf8_snprintf(why, sizeof(why), "case %" PRId64 " is in jurisdiction %s, not %s",
                             s->case_reference, c->jurisdiction, s->jurisdiction);
            cs_job_decide(j, CS_STATUS_REJECTED, 0, 0, 0, why);
            return false;
        }
        if (s->has_expected_version && s->expected_version != c->version) {
            snprintf(why, sizeof(why), "expected version %" PRId64 ", case is at version %d",
                     s->expected_version, c->version);
            cs_job_decide(j, CS_STATUS_CONFLICT, c->version, c->revision, 0, why);
            return false;
        }
        if (s->data)
            p->data = json_incref(s->data);
        else if (s->data_merge)
            p->data = cs_merge_patch(c->data, s->data_merge);
        else
            p->data = json_incref(c->data);
        p->state = s->state ? s->state : c->state;
        p->classification =
            s->security_classification ? s->security_classification : c->classification;
        p->data_changed = !cs_json_equal(p->data, c->data);
        /* The version counts changes of the blob, the state or the classification. */
        p->version = c->version + (p->data_changed || strcmp(p->state, c->state) != 0 ||
                                   strcmp(p->classification, c->classification) != 0);
        p->revision = c->revision + 1;
        p->prev_revision = c->revision;
    }
    p->event_id = b->ids[b->next_id++];
    return true;
}

/* Makes the plan the case's state and records the key; decides the job. */
static void adopt(batch *b, cs_job *j, plan *p)
{
    case_state *c = find_case(b, j->sub->case_reference);
    key_entry *k = &b->keys[b->nkeys++];
    char *state = strdup(p->state), *cls = strdup(p->classification);

    if (!c->exists) {
        c->case_type = strdup(j->sub->case_type);
        c->jurisdiction = strdup(j->sub->jurisdiction);
        /* A new case type is known to the jobs after this one (room: see load_batch). */
        if (b->types && !known_type(b, c->case_type) &&
            (b->types[b->ntypes] = strdup(c->case_type)))
            b->ntypes++;
    }
    c->exists = true;
    free(c->state);
    free(c->classification);
    c->state = state;
    c->classification = cls;
    json_decref(c->data);
    c->data = p->data;
    p->data = NULL;
    c->version = p->version;
    c->revision = p->revision;
    k->ref = c->ref;
    snprintf(k->key, sizeof(k->key), "%s", j->sub->idempotency_key);
    k->version = p->version;
    k->revision = p->revision;
    k->seq = p->event_id;
    k->partition = j->partition;
    k->offset = j->offset;
    memcpy(k->fingerprint, j->fingerprint, sizeof(k->fingerprint));
    cs_job_decide(j, CS_STATUS_APPLIED, p->version, p->revision, p->event_id, NULL);
    j->applied = true;
}

/* Queues the writes of one applied job on the pipeline. */
static bool send_writes(cs_applier *a, const cs_job *j, const plan *p)
{
    const cs_submission *s = j->sub;
    char ref[24], ver[16], rev[24], prev[24], id[24], part[16], off[24];
    char *data = p->data_changed ? cs_json_dumps(p->data) : NULL;
    bool ok;

    snprintf(ref, sizeof(ref), "%" PRId64, s->case_reference);
    snprintf(ver, sizeof(ver), "%d", p->version);
    snprintf(rev, sizeof(rev), "%" PRId64, p->revision);
    snprintf(prev, sizeof(prev), "%" PRId64, p->prev_revision);
    snprintf(id, sizeof(id), "%" PRId64, p->event_id);
    snprintf(part, sizeof(part), "%" PRId32, j->partition);
    snprintf(off, sizeof(off), "%" PRId64, j->offset);
    if (p->create) {
        const char *params[] = {ref,      s->case_type,      s->jurisdiction,
                                p->state, p->classification, data};
        ok = send_stmt(a, "create", 6, params);
    } else {
        const char *params[] = {ref, p->state, p->classification, data, ver, rev, prev};
        ok = send_stmt(a, "update", 7, params);
    }
    free(data);
    {
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
                                j->fingerprint[0] ? j->fingerprint : NULL};
        ok = ok && send_stmt(a, "event", 12, params);
    }
    if (ok && s->notes && json_array_size(s->notes) > 0) {
        char *notes = cs_json_dumps(s->notes);
        const char *params[] = {ref, rev, notes};

        ok = send_stmt(a, "notes", 3, params);
        free(notes);
    }
    if (ok) {
        const char *params[] = {ref, a->changes_topic};
        ok = send_stmt(a, "outbox", 2, params);
    }
    return ok;
}

/* Queues the outcomes decided now that wrote nothing (duplicate, conflict,
 * rejected), so that a redelivery gets them again. An applied outcome needs no
 * record: its history row holds it (see decide). */
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
    for (size_t i = 0; i < n; i++) {
        free(jobs[i]->outcome);
        jobs[i]->outcome = NULL;
        jobs[i]->decided = jobs[i]->applied = jobs[i]->replayed = false;
    }
}

/* One attempt at the batch; careful = one savepoint and round trip per job. */
static int run_once(cs_applier *a, cs_job **jobs, size_t n, bool careful, char *errstr,
                    size_t errstr_size)
{
    batch b = {0};
    int rc;

    if ((rc = connect_db(a, errstr, errstr_size)))
        return rc;
    if ((rc = load_batch(a, jobs, n, &b, errstr, errstr_size)))
        goto cleanup;
    for (size_t i = 0; i < n; i++) {
        plan p;

        if (!decide(&b, jobs[i], &p))
            continue;
        if (careful) {
            char why[512];

            if (!send_stmt(a, "savepoint", 0, NULL) || !send_writes(a, jobs[i], &p) ||
                !send_stmt(a, "release", 0, NULL) || !PQpipelineSync(a->conn)) {
                json_decref(p.data);
                rc = CS_ERR_RETRY;
                goto cleanup;
            }
            rc = finish_pipeline(a, why, sizeof(why));
            if (rc == CS_ERR) {
                /* Refused by the database: this job alone is rolled back. */
                json_decref(p.data);
                if (!send_stmt(a, "rollback_job", 0, NULL) || !PQpipelineSync(a->conn) ||
                    (rc = finish_pipeline(a, errstr, errstr_size)))
                    goto cleanup;
                cs_log_warn("submission refused by postgresql case=%" PRId64
                            " partition=%d offset=%" PRId64 " error=\"%s\"",
                            jobs[i]->sub->case_reference, jobs[i]->partition, jobs[i]->offset, why);
                cs_job_decide(jobs[i], CS_STATUS_REJECTED, 0, 0, 0, why);
                continue;
            }
            if (rc) {
                json_decref(p.data);
                cs_utf8_snprintf(errstr, errstr_size, "%s", why);
                goto cleanup;
            }
        } else if (!send_writes(a, jobs[i], &p)) {
            json_decref(p.data);
            cs_db_error(a->conn, NULL, errstr, errstr_size);
            rc = CS_ERR_RETRY;
            goto cleanup;
        }
        adopt(&b, jobs[i], &p);
        if (i == n / 2)
            cs_fault_point("mid_batch");
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
    reset_conn(a);
    batch_free(&b);
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

long long cs_applier_prune(cs_applier *a, int hours, char *errstr, size_t errstr_size)
{
    char h[16];
    const char *params[] = {h};
    PGresult *res;
    long long n;

    if (connect_db(a, errstr, errstr_size))
        return CS_ERR_RETRY;
    snprintf(h, sizeof(h), "%d", hours);
    res = PQexecParams(a->conn,
                       "DELETE FROM ccd.event_outcome WHERE created_date < now() - "
                       "make_interval(hours => $1::int)",
                       1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        cs_db_error(a->conn, res, errstr, errstr_size);
        PQclear(res);
        return CS_ERR_RETRY;
    }
    n = atoll(PQcmdTuples(res));
    PQclear(res);
    return n;
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
