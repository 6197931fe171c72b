/* casestream reindex [--case-type T] [--new-index]: rebuilds the case indices from PostgreSQL,
 * the source of truth, into the live names or, with --new-index, into a new index that then
 * takes the live name's place; and deletes the documents of the cases disposed of while it ran. */
#include "admin.h"
#include "backoff.h"
#include "batch.h"
#include "bulk.h"
#include "db.h"
#include "dead_letter.h"
#include "err.h"
#include "es.h"
#include "log.h"
#include "run.h"
#include "utf8.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows fetched from the cursor at a time, and the most documents in one bulk request. */
#define PAGE_ROWS  1000
#define FETCH_PAGE "FETCH 1000 FROM reindex_cases"
/* Rows of (reference, revision) read at a time when looking for what changed. */
#define SCAN_PAGE "FETCH 10000 FROM reindex_scan"
/* A bulk that keeps failing is given up after this many attempts (about a
 * minute with the backoff below): reindex is run by a person, who is told. */
#define MAX_ATTEMPTS    10
#define BACKOFF_BASE_MS 200
#define BACKOFF_CAP_MS  10000
/* Passes over what changed while a new index is built, before writes to the old one stop. */
#define MAX_CATCH_UP 5
/* How long the old indices stay after the alias left them, for the searches still reading them. */
#define OLD_INDEX_GRACE_MS 5000

/* Documents come from the same SQL function as the worker's change documents,
 * in a REPEATABLE READ snapshot, with the revision each case has now. */
static const char declare_sql[] =
    "DECLARE reindex_cases NO SCROLL CURSOR FOR"
    " SELECT ccd.change_document(c)::text, c.reference, c.id, c.case_revision"
    " FROM ccd.case_data c WHERE ($1::text = '' OR c.case_type_id = $1::text)"
    " ORDER BY c.reference";

/* The cases of one index: every case type whose index name is the same (letter case aside). */
static const char declare_index_sql[] =
    "DECLARE reindex_cases NO SCROLL CURSOR FOR"
    " SELECT ccd.change_document(c)::text, c.reference, c.id, c.case_revision"
    " FROM ccd.case_data c WHERE lower(c.case_type_id) = lower($1::text)"
    " ORDER BY c.reference";

static const char declare_scan_sql[] =
    "DECLARE reindex_scan NO SCROLL CURSOR FOR"
    " SELECT reference, id, case_revision FROM ccd.case_data"
    " WHERE lower(case_type_id) = lower($1::text) ORDER BY reference";

static const char docs_sql[] =
    "SELECT ccd.change_document(c)::text, c.reference, c.id, c.case_revision"
    " FROM ccd.case_data c WHERE c.reference = ANY($1::bigint[]) ORDER BY c.reference";

/* The disposal documents (DESIGN §10) of the cases disposed of since $1, the start of the
 * pass less a minute (a disposal's record is stamped just before its commit): a pass that read
 * such a case before its disposal may have written its document after the delete. */
static const char disposed_sql[] =
    "SELECT ccd.disposal_document(d)::text FROM ccd.disposed_case d"
    " WHERE d.disposed_at >= $1::timestamptz - interval '1 minute'"
    " AND ($2::text = '' OR lower(d.case_type_id) = lower($2::text)) ORDER BY d.reference";

typedef struct counts {
    long long cases, written, newer, dead, retries, again, gone, cleared, deleted;
} counts;

/* What reindex works with: its connections, client, batch and counts. */
typedef struct reindex {
    const cs_config *cfg;
    PGconn *conn; /* reads the cases */
    PGconn
        *dl_conn; /* records dead letters: the cursor's connection holds a read-only transaction */
    cs_es *es;
    cs_batch *batch;
    char target[300]; /* --new-index: the index being built, where the batch writes */
    long long t0;     /* start, ms */
    char started[64]; /* now() of the first pass's snapshot: disposals since are sent again */
    counts c;
} reindex;

/* A case written to the new index: its reference, id and revision. */
typedef struct seen {
    int64_t ref, id, rev;
} seen;

typedef struct seen_list {
    seen *v;
    size_t n, cap;
} seen_list;

static int seen_push(seen_list *l, int64_t ref, int64_t id, int64_t rev)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        seen *grown = realloc(l->v, cap * sizeof(*grown));

        if (!grown)
            return CS_ERR;
        l->v = grown;
        l->cap = cap;
    }
    l->v[l->n++] = (seen){ref, id, rev};
    return CS_OK;
}

static int by_ref(const void *a, const void *b)
{
    int64_t x = ((const seen *)a)->ref, y = ((const seen *)b)->ref;

    return x < y ? -1 : x > y;
}

/* Sends one bulk request (a cs_batch_send_fn; ctx is the Elasticsearch client). */
static int send_bulk(void *ctx, const cs_bulk_body *body, cs_es_response *out, char *errstr,
                     size_t errstr_size)
{
    return cs_es_request(ctx, "POST", CS_BULK_PATH, body->buf, body->len, out, errstr, errstr_size);
}

/* Records the batch's dead letters on the dead-letter connection. */
static int write_dead(reindex *r, char *errstr, size_t errstr_size)
{
    cs_dead_letter *dl = NULL;
    size_t n = cs_batch_dead_letters(r->batch, NULL, &dl);
    int rc;

    if (n == 0)
        return CS_OK;
    if (n == (size_t)-1) {
        snprintf(errstr, errstr_size, "out of memory");
        return CS_ERR;
    }
    for (size_t i = 0; i < n; i++)
        cs_log_error("reindex: dead letter case=%" PRId64 " revision=%" PRId64 ": %s",
                     dl[i].reference, dl[i].revision, dl[i].reason);
    rc = cs_dead_letters_write(r->dl_conn, dl, n, errstr, errstr_size);
    if (rc == CS_OK) {
        r->c.dead += (long long)n;
        cs_batch_dead_letters_written(r->batch);
    }
    free(dl);
    return rc;
}

/* Deletes the dead letters the batch's acknowledged changes resolve (DESIGN §6). A failure is
 * reported and does not stop reindex: the dead letters stay until a later revision is indexed
 * or `casestream index-dead-letters retry`. */
static void clear_resolved(reindex *r)
{
    size_t max = cs_batch_count(r->batch), n;
    int64_t *refs = malloc((max ? max : 1) * sizeof(*refs));
    int64_t *revs = malloc((max ? max : 1) * sizeof(*revs));
    long long cleared = 0;
    char errstr[512];

    if (!refs || !revs) {
        cs_log_error("reindex: out of memory clearing dead letters");
    } else if ((n = cs_batch_acknowledged(r->batch, refs, revs, max)) > 0 &&
               cs_dead_letters_clear(r->dl_conn, refs, revs, n, &cleared, errstr, sizeof(errstr))) {
        cs_log_warn("reindex: could not clear the dead letters of %zu cases: %s", n, errstr);
    }
    r->c.cleared += cleared;
    free(refs);
    free(revs);
}

/* Makes sure the live names the batch writes to are behind their aliases (not when building a
 * new index: that one exists). */
static int ensure_indices(reindex *r, char *errstr, size_t errstr_size)
{
    size_t max = cs_batch_count(r->batch), n;
    const char **names = malloc((max ? max : 1) * sizeof(*names));
    int rc = CS_OK;

    if (!names) {
        snprintf(errstr, errstr_size, "out of memory");
        return CS_ERR;
    }
    n = cs_batch_indices(r->batch, names, max);
    for (size_t i = 0; i < n && rc == CS_OK; i++) {
        rc = cs_es_ensure_index(r->es, names[i], r->cfg->max_fields, r->cfg->refresh_ms, errstr,
                                errstr_size);
        if (rc == 1) {
            cs_log_warn("reindex: index=%s is a plain index from before case indices were put "
                        "behind aliases; `casestream reindex --new-index --case-type T` moves it",
                        names[i]);
            rc = CS_OK;
        }
    }
    free(names);
    return rc;
}

/* Writes the batch as the indexer does (cs_batch_attempt), again after a backoff for what
 * Elasticsearch asked to retry, until each document is written, already newer, or refused
 * (a dead letter, then recorded); gives up after MAX_ATTEMPTS. Empties the batch. */
static int write_batch(reindex *r, bool live_names, char *errstr, size_t errstr_size)
{
    cs_batch_stats st = {0};
    int rc = CS_OK;

    for (;;) {
        if (live_names)
            rc = ensure_indices(r, errstr, errstr_size);
        if (rc == CS_OK)
            rc = cs_batch_attempt(r->batch, send_bulk, r->es, &st, errstr, errstr_size);
        if (rc == CS_ERR || !cs_batch_pending(r->batch))
            break;
        if (cs_batch_failures(r->batch) + 1 >= MAX_ATTEMPTS) {
            size_t len = strlen(errstr);

            snprintf(errstr + len, errstr_size - len, " (gave up after %d attempts)", MAX_ATTEMPTS);
            rc = CS_ERR_RETRY;
            break;
        }
        r->c.retries++;
        cs_sleep_ms(cs_batch_backoff(r->batch));
    }
    r->c.written += (long long)st.indexed;
    r->c.newer += (long long)st.conflicts;
    r->c.deleted += (long long)st.deleted;
    if (rc == CS_OK)
        rc = write_dead(r, errstr, errstr_size);
    /* Into the live names only: an index being built may yet be dropped. */
    if (rc == CS_OK && live_names)
        clear_resolved(r);
    cs_batch_clear(r->batch);
    return rc;
}

/* Sends a page of rows (document, reference, id, revision) in bulks of at most --bulk-bytes,
 * each with its dead letters; records each case in *written when it is not NULL. */
static int send_page(reindex *r, PGresult *page, bool live_names, seen_list *written, char *errstr,
                     size_t errstr_size)
{
    int rows = PQntuples(page), rc = CS_OK;

    for (int i = 0; i < rows && rc == CS_OK; i++) {
        if (cs_batch_add(r->batch, 0, i, NULL, 0, PQgetvalue(page, i, 0),
                         (size_t)PQgetlength(page, i, 0)) ||
            (written && seen_push(written, strtoll(PQgetvalue(page, i, 1), NULL, 10),
                                  strtoll(PQgetvalue(page, i, 2), NULL, 10),
                                  strtoll(PQgetvalue(page, i, 3), NULL, 10)))) {
            snprintf(errstr, errstr_size, "out of memory");
            rc = CS_ERR;
            break;
        }
        if (cs_batch_bytes(r->batch) >= (size_t)r->cfg->bulk_bytes || i == rows - 1)
            rc = write_batch(r, live_names, errstr, errstr_size);
    }
    cs_batch_clear(r->batch);
    return rc;
}

/* Reads every case of the cursor declared by declare (with param) in one REPEATABLE READ
 * snapshot and writes it; records the cases in *written when it is not NULL. */
static int write_all(reindex *r, const char *declare, const char *param, bool live_names,
                     seen_list *written, char *errstr, size_t errstr_size)
{
    PGresult *res = NULL;
    char ignored[256];
    int rc;

    if ((rc = cs_db_exec(r->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", errstr,
                         errstr_size)))
        return rc;
    /* The snapshot is taken here, no earlier than the transaction's start, now(). */
    res = PQexec(r->conn, "SELECT now()::text");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cs_db_error(r->conn, res, errstr, errstr_size);
        rc = CS_ERR;
        goto cleanup;
    }
    if (!r->started[0])
        snprintf(r->started, sizeof(r->started), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    res = PQexecParams(r->conn, declare, 1, NULL, &param, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        cs_db_error(r->conn, res, errstr, errstr_size);
        rc = CS_ERR;
        goto cleanup;
    }
    for (;;) {
        PQclear(res);
        res = PQexec(r->conn, FETCH_PAGE);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            cs_db_error(r->conn, res, errstr, errstr_size);
            rc = CS_ERR;
            goto cleanup;
        }
        if (PQntuples(res) == 0)
            break;
        r->c.cases += PQntuples(res);
        if ((rc = send_page(r, res, live_names, written, errstr, errstr_size)))
            goto cleanup;
    }
cleanup:
    PQclear(res);
    cs_db_exec(r->conn, rc ? "ROLLBACK" : "COMMIT", ignored, sizeof(ignored));
    return rc;
}

/* Sends again, outside the pass's snapshot, the disposal documents of the cases of type (""
 * for all) disposed of since the pass began: each deletes its case's document above the
 * case's last revision, whatever the pass wrote of it (DESIGN §10). Nothing to send on a
 * schema from before 009. */
static int delete_disposed(reindex *r, const char *type, bool live_names, char *errstr,
                           size_t errstr_size)
{
    const char *params[] = {r->started, type};
    PGresult *res;
    int rc = CS_OK;

    /* A schema from before 009 has no disposals (and no disposal documents). */
    res = PQexec(r->dl_conn, "SELECT to_regclass('ccd.disposed_case') IS NOT NULL"
                             " AND to_regproc('ccd.disposal_document') IS NOT NULL");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cs_db_error(r->dl_conn, res, errstr, errstr_size);
        PQclear(res);
        return CS_ERR;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        PQclear(res);
        return CS_OK;
    }
    PQclear(res);
    res = PQexecParams(r->dl_conn, disposed_sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cs_db_error(r->dl_conn, res, errstr, errstr_size);
        rc = CS_ERR;
    } else if (PQntuples(res) > 0) {
        rc = send_page(r, res, live_names, NULL, errstr, errstr_size);
    }
    PQclear(res);
    return rc;
}

/* ---- --new-index ------------------------------------------------------------------------- */

/* Sends method path body and expects 200. Returns 0 or a cs_err, with the reason in errstr. */
static int es_call(cs_es *es, const char *method, const char *path, const char *body,
                   json_t **answer, char *errstr, size_t errstr_size)
{
    cs_es_response resp = CS_ES_RESPONSE_INIT;
    int rc =
        cs_es_request(es, method, path, body, body ? strlen(body) : 0, &resp, errstr, errstr_size);

    if (answer)
        *answer = NULL;
    if (rc)
        return rc;
    if (resp.status != 200) {
        cs_utf8_snprintf(errstr, errstr_size, "%s %s: HTTP %ld: %.*s", method, path, resp.status,
                         (int)cs_utf8_prefix(resp.body, resp.len, 300), resp.body);
        rc = resp.status == 429 || resp.status >= 500 ? CS_ERR_RETRY : CS_ERR;
    } else if (answer) {
        *answer = json_loadb(resp.body, resp.len, 0, NULL);
    }
    cs_es_response_clear(&resp);
    return rc;
}

/* The next free version of alias's versioned indices: one above every alias-NNNNNN there is,
 * behind the alias or not (left by an interrupted run). 0 on failure (errstr says why). */
static int next_version(cs_es *es, const char *alias, char *errstr, size_t errstr_size)
{
    char path[320];
    json_t *answer;
    const char *index;
    json_t *v;
    int max = 0;

    snprintf(path, sizeof(path), "/%s-*/_alias", alias);
    if (es_call(es, "GET", path, NULL, &answer, errstr, errstr_size))
        return 0;
    json_object_foreach(answer, index, v)
    {
        int n = cs_es_version_of(alias, index);

        max = n > max ? n : max;
    }
    json_decref(answer);
    return max + 1;
}

/* Sets or lifts the write block of each index. */
static int block_writes(cs_es *es, char **names, size_t n, bool block, char *errstr,
                        size_t errstr_size)
{
    int rc = CS_OK;

    for (size_t i = 0; i < n && (rc == CS_OK || !block); i++) {
        char path[300];
        int one;

        snprintf(path, sizeof(path), "/%s/_settings", names[i]);
        one = es_call(es, "PUT", path,
                      block ? "{\"index.blocks.write\":true}" : "{\"index.blocks.write\":null}",
                      NULL, errstr, errstr_size);
        rc = rc ? rc : one;
    }
    return rc;
}

/* A growing array of case references. */
typedef struct ref_list {
    int64_t *v;
    size_t n, cap;
} ref_list;

static int ref_push(ref_list *l, int64_t ref)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        int64_t *grown = realloc(l->v, cap * sizeof(*grown));

        if (!grown)
            return CS_ERR;
        l->v = grown;
        l->cap = cap;
    }
    l->v[l->n++] = ref;
    return CS_OK;
}

/* Compares what PostgreSQL holds now, in one snapshot, with what was written to the new index
 * (*written, by reference): appends to *changed the cases whose revision or id differs or that
 * are new, marks in *written (rev -1) those that are gone, and returns in *now what PostgreSQL
 * holds. */
static int scan_changes(reindex *r, const char *type, seen_list *written, ref_list *changed,
                        seen_list *now, char *errstr, size_t errstr_size)
{
    PGresult *res;
    char ignored[256];
    size_t i = 0;
    int rc;

    if ((rc = cs_db_exec(r->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", errstr,
                         errstr_size)))
        return rc;
    res = PQexecParams(r->conn, declare_scan_sql, 1, NULL, &type, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        cs_db_error(r->conn, res, errstr, errstr_size);
        rc = CS_ERR;
    }
    while (rc == CS_OK) {
        int rows;

        PQclear(res);
        res = PQexec(r->conn, SCAN_PAGE);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            cs_db_error(r->conn, res, errstr, errstr_size);
            rc = CS_ERR;
            break;
        }
        if ((rows = PQntuples(res)) == 0)
            break;
        for (int k = 0; k < rows && rc == CS_OK; k++) {
            int64_t ref = strtoll(PQgetvalue(res, k, 0), NULL, 10);
            int64_t id = strtoll(PQgetvalue(res, k, 1), NULL, 10);
            int64_t rev = strtoll(PQgetvalue(res, k, 2), NULL, 10);
            bool same;

            /* Both lists are ordered by reference: what was written and is not read is gone. */
            while (i < written->n && written->v[i].ref < ref)
                written->v[i++].rev = -1;
            same = i < written->n && written->v[i].ref == ref && written->v[i].rev == rev &&
                   written->v[i].id == id;
            if (i < written->n && written->v[i].ref == ref)
                i++;
            if (seen_push(now, ref, id, rev) || (!same && ref_push(changed, ref))) {
                snprintf(errstr, errstr_size, "out of memory");
                rc = CS_ERR;
            }
        }
    }
    while (i < written->n)
        written->v[i++].rev = -1;
    PQclear(res);
    cs_db_exec(r->conn, rc ? "ROLLBACK" : "COMMIT", ignored, sizeof(ignored));
    return rc;
}

/* Deletes from index the documents of the cases marked gone (rev -1) in written. */
static int delete_gone(reindex *r, const char *index, const seen_list *written, char *errstr,
                       size_t errstr_size)
{
    int rc = CS_OK;

    for (size_t k = 0; k < written->n && rc == CS_OK; k++) {
        cs_es_response resp = CS_ES_RESPONSE_INIT;
        char path[400];

        if (written->v[k].rev != -1)
            continue;
        snprintf(path, sizeof(path), "/%s/_doc/%" PRId64, index, written->v[k].id);
        rc = cs_es_request(r->es, "DELETE", path, NULL, 0, &resp, errstr, errstr_size);
        if (rc == CS_OK && resp.status != 200 && resp.status != 404) {
            cs_utf8_snprintf(errstr, errstr_size, "DELETE %s: HTTP %ld", path, resp.status);
            rc = resp.status == 429 || resp.status >= 500 ? CS_ERR_RETRY : CS_ERR;
        }
        cs_es_response_clear(&resp);
        r->c.gone++;
    }
    return rc;
}

/* Writes the changed cases again, as PostgreSQL holds them now, and records in *now the
 * revision written (which may be newer than the scan's). */
static int write_changed(reindex *r, const ref_list *changed, seen_list *now, char *errstr,
                         size_t errstr_size)
{
    int rc = CS_OK;

    for (size_t k = 0; k < changed->n && rc == CS_OK; k += PAGE_ROWS) {
        size_t m = changed->n - k < PAGE_ROWS ? changed->n - k : PAGE_ROWS, len = 0;
        char *arr = malloc(m * 21 + 3);
        const char *param;
        PGresult *res;

        if (!arr) {
            snprintf(errstr, errstr_size, "out of memory");
            return CS_ERR;
        }
        arr[len++] = '{';
        for (size_t j = 0; j < m; j++)
            len += (size_t)sprintf(arr + len, "%s%" PRId64, j ? "," : "", changed->v[k + j]);
        arr[len++] = '}';
        arr[len] = '\0';
        param = arr;
        res = PQexecParams(r->conn, docs_sql, 1, NULL, &param, NULL, NULL, 0);
        free(arr);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            cs_db_error(r->conn, res, errstr, errstr_size);
            PQclear(res);
            return CS_ERR;
        }
        for (int row = 0; row < PQntuples(res); row++) {
            seen key = {strtoll(PQgetvalue(res, row, 1), NULL, 10), 0, 0};
            seen *s = bsearch(&key, now->v, now->n, sizeof(*now->v), by_ref);

            if (s)
                s->rev = strtoll(PQgetvalue(res, row, 3), NULL, 10);
        }
        r->c.again += PQntuples(res);
        rc = send_page(r, res, false, NULL, errstr, errstr_size);
        PQclear(res);
    }
    return rc;
}

/* One pass over what changed since *written was written to index; *written becomes what the
 * index holds now; *n_changed says how many cases were written again or deleted. */
static int catch_up(reindex *r, const char *type, const char *index, seen_list *written,
                    size_t *n_changed, char *errstr, size_t errstr_size)
{
    seen_list now = {NULL, 0, 0};
    ref_list changed = {NULL, 0, 0};
    long long gone = r->c.gone;
    int rc;

    if ((rc = scan_changes(r, type, written, &changed, &now, errstr, errstr_size)) == CS_OK &&
        (rc = delete_gone(r, index, written, errstr, errstr_size)) == CS_OK)
        rc = write_changed(r, &changed, &now, errstr, errstr_size);
    *n_changed = changed.n + (size_t)(r->c.gone - gone);
    free(changed.v);
    if (rc == CS_OK) {
        free(written->v);
        *written = now;
    } else {
        free(now.v);
    }
    return rc;
}

/* The _aliases request that puts index behind alias as its write index and takes the old
 * indices from it in the same atomic step, so that a search of alias finds either the old
 * indices or the new one, never neither. A plain index of the alias's name (old_is_alias false)
 * must be deleted in that step for the alias to take its name; old indices behind the alias are
 * only taken from it, and deleted later. Caller frees. */
static char *swap_body(const char *alias, const char *index, char **old, size_t n_old,
                       bool old_is_alias)
{
    json_t *actions = json_array(), *body;
    char *text;

    json_array_append_new(actions, json_pack("{s:{s:s,s:s,s:b}}", "add", "index", index, "alias",
                                             alias, "is_write_index", 1));
    for (size_t i = 0; i < n_old; i++)
        json_array_append_new(
            actions, old_is_alias
                         ? json_pack("{s:{s:s,s:s}}", "remove", "index", old[i], "alias", alias)
                         : json_pack("{s:{s:s}}", "remove_index", "index", old[i]));
    body = json_pack("{s:o}", "actions", actions);
    text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return text;
}

/* reindex --new-index: builds alias-NNNNNN from PostgreSQL while the live name keeps serving,
 * catches up with what changed meanwhile, stops writes to the old indices for a last catch-up,
 * refreshes the new index, then moves the alias to it and deletes the old ones in one _aliases
 * request. A writer (the indexer) whose writes are blocked retries them, and they go to the new
 * index once the alias is there. */
static int new_index(reindex *r, char *errstr, size_t errstr_size)
{
    const char *type = r->cfg->case_type;
    char alias[300], *index = r->target, path[320], *body = NULL;
    char **old = NULL;
    size_t n_old = 0, n_changed = 0;
    seen_list written = {NULL, 0, 0};
    bool is_alias = false, created = false, blocked = false;
    int version, rc;

    if (!cs_es_index_name(type, alias, sizeof(alias))) {
        snprintf(errstr, errstr_size, "case type \"%s\" cannot name an index", type);
        return CS_ERR_INVALID;
    }
    if ((rc = cs_es_resolve(r->es, alias, &old, &n_old, &is_alias, errstr, errstr_size)))
        return rc;
    if (!(version = next_version(r->es, alias, errstr, errstr_size))) {
        rc = CS_ERR;
        goto cleanup;
    }
    if (!cs_es_versioned_name(alias, version, index, sizeof(r->target))) {
        snprintf(errstr, errstr_size, "%s is too long for a versioned index name", alias);
        rc = CS_ERR_INVALID;
        goto cleanup;
    }
    if (!(body = cs_es_index_body(r->cfg->max_fields, r->cfg->refresh_ms, NULL))) {
        snprintf(errstr, errstr_size, "out of memory");
        rc = CS_ERR;
        goto cleanup;
    }
    snprintf(path, sizeof(path), "/%s", index);
    if ((rc = es_call(r->es, "PUT", path, body, NULL, errstr, errstr_size)))
        goto cleanup;
    created = true;
    cs_log_info("reindex: building index=%s for alias=%s (now %s%s)", index, alias,
                n_old == 0 ? "nothing"
                : is_alias ? "an alias of "
                           : "a plain index",
                n_old == 0 || !is_alias ? "" : old[0]);
    /* Every case of the index, in one snapshot, while the live name serves searches. */
    if ((rc = write_all(r, declare_index_sql, type, false, &written, errstr, errstr_size)))
        goto cleanup;
    qsort(written.v, written.n, sizeof(*written.v), by_ref); /* already is: ORDER BY reference */
    /* What changed meanwhile, until little does. */
    for (int pass = 0; pass < MAX_CATCH_UP; pass++) {
        if ((rc = catch_up(r, type, index, &written, &n_changed, errstr, errstr_size)))
            goto cleanup;
        if (n_changed < 100)
            break;
    }
    /* The last changes: writers of the old indices wait (their writes are refused as blocked,
     * which the indexer retries) while the last catch-up runs. */
    if ((rc = block_writes(r->es, old, n_old, true, errstr, errstr_size)))
        goto cleanup;
    blocked = true;
    if ((rc = catch_up(r, type, index, &written, &n_changed, errstr, errstr_size)) ||
        (rc = delete_disposed(r, type, false, errstr, errstr_size)))
        goto cleanup;
    snprintf(path, sizeof(path), "/%s/_refresh", index);
    if ((rc = es_call(r->es, "POST", path, NULL, NULL, errstr, errstr_size)))
        goto cleanup;
    free(body);
    if (!(body = swap_body(alias, index, old, n_old, is_alias))) {
        snprintf(errstr, errstr_size, "out of memory");
        rc = CS_ERR;
        goto cleanup;
    }
    if ((rc = es_call(r->es, "POST", "/_aliases", body, NULL, errstr, errstr_size))) {
        /* No answer: the swap may have happened. */
        char **now = NULL;
        size_t n_now = 0;
        bool now_alias;

        if (cs_es_resolve(r->es, alias, &now, &n_now, &now_alias, errstr + strlen(errstr), 0) ==
                CS_OK &&
            now_alias && n_now == 1 && strcmp(now[0], index) == 0)
            rc = CS_OK;
        cs_es_names_free(now, n_now);
        if (rc)
            goto cleanup;
    }
    blocked = created = false; /* the new index is live */
    if (is_alias && n_old > 0) {
        /* A search that resolved the alias just before the move may still be reading the old
         * indices: they are deleted once such a search is surely over. */
        cs_sleep_ms(OLD_INDEX_GRACE_MS);
        for (size_t i = 0; i < n_old; i++) {
            char ignored[256];

            snprintf(path, sizeof(path), "/%s", old[i]);
            if (es_call(r->es, "DELETE", path, NULL, NULL, ignored, sizeof(ignored)))
                cs_log_warn("reindex: could not delete the old index=%s: %s", old[i], ignored);
        }
    }
    printf("reindex of case type %s into %s: %lld cases read, %lld written, %lld already newer "
           "in the index, %lld dead letters, %lld retried bulks; %lld changed while it ran and "
           "were written again, %lld gone, %lld deleted (cases disposed of during the pass); %s "
           "is now an alias of %s%s, %.1f s\n",
           type, index, r->c.cases, r->c.written, r->c.newer, r->c.dead, r->c.retries, r->c.again,
           r->c.gone, r->c.deleted, alias, index,
           n_old == 0 ? ""
           : is_alias ? " (the indices it replaced are deleted)"
                      : " (the plain index it replaced is deleted)",
           (double)(cs_now_ms() - r->t0) / 1000.0);
cleanup:
    if (blocked) {
        char ignored[256];

        block_writes(r->es, old, n_old, false, ignored, sizeof(ignored));
    }
    if (created) {
        char ignored[256];

        snprintf(path, sizeof(path), "/%s", index);
        es_call(r->es, "DELETE", path, NULL, NULL, ignored, sizeof(ignored));
    }
    free(body);
    free(written.v);
    cs_es_names_free(old, n_old);
    return rc;
}

/* ---- the commands ------------------------------------------------------------------------ */

/* Connects, makes the client and the batch (writing to r->target when it is to be built), and
 * installs the index template. Returns 0, or 1 with the reason logged (who: the command). */
static int reindex_open(reindex *r, const cs_config *cfg, bool to_target, const char *who)
{
    cs_batch_opts bopts = CS_BATCH_OPTS_INIT;
    char errstr[1024] = "";
    cs_backoff backoff;
    int trc;

    memset(r, 0, sizeof(*r));
    r->cfg = cfg;
    r->t0 = cs_now_ms();
    if (!(r->conn = cs_db_connect(cfg->pg, errstr, sizeof(errstr))) ||
        !(r->dl_conn = cs_db_connect(cfg->pg, errstr, sizeof(errstr)))) {
        cs_log_error("%s: could not connect to postgresql: %s", who, errstr);
        return 1;
    }
    if (!(r->es = cs_es_new_config(cfg, errstr, sizeof(errstr)))) {
        cs_log_error("%s: %s", who, errstr);
        return 1;
    }
    bopts.max_docs = PAGE_ROWS;
    bopts.backoff_base_ms = BACKOFF_BASE_MS;
    bopts.backoff_cap_ms = BACKOFF_CAP_MS;
    /* With --new-index every document goes to the index being built (named once it is made). */
    if (to_target)
        bopts.index = r->target;
    if (!(r->batch = cs_batch_new(&bopts))) {
        cs_log_error("%s: out of memory", who);
        return 1;
    }
    /* The template first: a deleted index is created again with its mappings. */
    cs_backoff_init(&backoff, BACKOFF_BASE_MS, BACKOFF_CAP_MS);
    while ((trc = cs_es_put_template(r->es, cfg->max_fields, cfg->refresh_ms, errstr,
                                     sizeof(errstr))) == CS_ERR_RETRY &&
           backoff.attempt < MAX_ATTEMPTS)
        cs_sleep_ms(cs_backoff_next(&backoff));
    if (trc != CS_OK) {
        cs_log_error("%s: %s", who, errstr);
        return 1;
    }
    return 0;
}

static void reindex_close(reindex *r)
{
    if (r->conn)
        PQfinish(r->conn);
    if (r->dl_conn)
        PQfinish(r->dl_conn);
    cs_es_free(r->es);
    cs_batch_free(r->batch);
}

int cs_admin_reindex_cases(const cs_config *cfg, const int64_t *refs, size_t n,
                           cs_reindex_counts *out)
{
    reindex r;
    char errstr[1024] = "";
    int rc = 1;

    memset(out, 0, sizeof(*out));
    if (reindex_open(&r, cfg, false, "index-dead-letters"))
        goto cleanup;
    rc = 0;
    for (size_t k = 0; k < n && rc == 0; k += PAGE_ROWS) {
        size_t m = n - k < PAGE_ROWS ? n - k : PAGE_ROWS, len = 0;
        char *arr = malloc(m * 21 + 3);
        const char *param;
        PGresult *res;

        if (!arr) {
            cs_log_error("index-dead-letters: out of memory");
            rc = 1;
            break;
        }
        arr[len++] = '{';
        for (size_t j = 0; j < m; j++)
            len += (size_t)sprintf(arr + len, "%s%" PRId64, j ? "," : "", refs[k + j]);
        arr[len++] = '}';
        arr[len] = '\0';
        param = arr;
        res = PQexecParams(r.conn, docs_sql, 1, NULL, &param, NULL, NULL, 0);
        free(arr);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            cs_db_error(r.conn, res, errstr, sizeof(errstr));
            rc = 1;
        } else {
            r.c.cases += PQntuples(res);
            rc = send_page(&r, res, true, NULL, errstr, sizeof(errstr)) ? 1 : 0;
        }
        PQclear(res);
        if (rc)
            cs_log_error("index-dead-letters: %s", errstr);
    }
    out->cases = r.c.cases;
    out->written = r.c.written;
    out->newer = r.c.newer;
    out->dead = r.c.dead;
    out->retries = r.c.retries;
    out->cleared = r.c.cleared;
cleanup:
    reindex_close(&r);
    return rc;
}

int cs_admin_reindex(const cs_config *cfg, int argc, char **argv)
{
    reindex r;
    char errstr[1024] = "", deleted[96] = "";
    int rc = 1;

    (void)argv;
    if (argc != 0 || (cfg->new_index && !cfg->case_type[0])) {
        cs_log_error("invalid configuration: usage: casestream reindex [--case-type TYPE] | "
                     "reindex --new-index --case-type TYPE");
        return CS_EXIT_CONFIG;
    }
    if (reindex_open(&r, cfg, cfg->new_index, "reindex"))
        goto cleanup;
    if (cfg->new_index) {
        rc = new_index(&r, errstr, sizeof(errstr)) ? 1 : 0;
        if (rc)
            cs_log_error("reindex: %s; the live index is as it was", errstr);
        goto cleanup;
    }
    /* Then, outside the snapshot: what was disposed of while the pass ran. */
    if (write_all(&r, declare_sql, cfg->case_type, true, NULL, errstr, sizeof(errstr)) ||
        delete_disposed(&r, cfg->case_type, true, errstr, sizeof(errstr)))
        cs_log_error("reindex: %s", errstr);
    else
        rc = 0;
    if (r.c.deleted > 0)
        snprintf(deleted, sizeof(deleted), ", %lld deleted (cases disposed of during the pass)",
                 r.c.deleted);
    printf("reindex%s%s: %lld cases read, %lld written, %lld already newer in the index, "
           "%lld dead letters, %lld retried bulks%s, %lld older dead letters cleared, %.1f s%s\n",
           cfg->case_type[0] ? " of case type " : "", cfg->case_type, r.c.cases, r.c.written,
           r.c.newer, r.c.dead, r.c.retries, deleted, r.c.cleared,
           (double)(cs_now_ms() - r.t0) / 1000.0, rc ? " (incomplete)" : "");
cleanup:
    reindex_close(&r);
    return rc;
}
