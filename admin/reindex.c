/* casestream reindex [--case-type T]: rebuilds the case indices from PostgreSQL, the source of
 * truth, and deletes the documents of the cases disposed of while it ran. */
#include "admin.h"
#include "backoff.h"
#include "batch.h"
#include "bulk.h"
#include "db.h"
#include "dead_letter.h"
#include "err.h"
#include "es.h"
#include "run.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows fetched from the cursor at a time, and the most documents in one bulk request. */
#define PAGE_ROWS  1000
#define FETCH_PAGE "FETCH 1000 FROM reindex_cases"
/* A bulk that keeps failing is given up after this many attempts (about a
 * minute with the backoff below): reindex is run by a person, who is told. */
#define MAX_ATTEMPTS    10
#define BACKOFF_BASE_MS 200
#define BACKOFF_CAP_MS  10000

/* Documents come from the same SQL function as the worker's change documents,
 * in a REPEATABLE READ snapshot, with the revision each case has now. */
static const char declare_sql[] =
    "DECLARE reindex_cases NO SCROLL CURSOR FOR"
    " SELECT ccd.change_document(c)::text"
    " FROM ccd.case_data c WHERE ($1::text = '' OR c.case_type_id = $1::text)"
    " ORDER BY c.reference";

/* The disposal documents (DESIGN §10) of the cases disposed of since $1, the start of the
 * pass less a minute (a disposal's record is stamped just before its commit): a pass that read
 * such a case before its disposal may have written its document after the delete. */
static const char disposed_sql[] =
    "SELECT ccd.disposal_document(d)::text FROM ccd.disposed_case d"
    " WHERE d.disposed_at >= $1::timestamptz - interval '1 minute'"
    " AND ($2::text = '' OR d.case_type_id = $2::text) ORDER BY d.reference";

typedef struct counts {
    long long cases, written, newer, dead, retries, deleted;
} counts;

/* Sends one bulk request (a cs_batch_send_fn; ctx is the Elasticsearch client). */
static int send_bulk(void *ctx, const cs_bulk_body *body, cs_es_response *out, char *errstr,
                     size_t errstr_size)
{
    return cs_es_request(ctx, "POST", CS_BULK_PATH, body->buf, body->len, out, errstr, errstr_size);
}

/* Records the batch's dead letters on dl_conn (a connection of its own: the
 * cursor's holds a read-only transaction). */
static int write_dead(PGconn *dl_conn, cs_batch *b, counts *c, char *errstr, size_t errstr_size)
{
    cs_dead_letter *dl = NULL;
    size_t n = cs_batch_dead_letters(b, NULL, &dl);
    int rc;

    if (n == 0)
        return CS_OK;
    if (n == (size_t)-1) {
        snprintf(errstr, errstr_size, "out of memory");
        return CS_ERR;
    }
    for (size_t i = 0; i < n; i++)
        fprintf(stderr,
                "casestream reindex: dead letter case=%" PRId64 " revision=%" PRId64 ": %s\n",
                dl[i].reference, dl[i].revision, dl[i].reason);
    rc = cs_dead_letters_write(dl_conn, dl, n, errstr, errstr_size);
    if (rc == CS_OK) {
        c->dead += (long long)n;
        cs_batch_dead_letters_written(b);
    }
    free(dl);
    return rc;
}

/* Writes the batch as the indexer does (cs_batch_attempt), again after a backoff for what
 * Elasticsearch asked to retry, until each document is written, already newer, or refused
 * (a dead letter, then recorded); gives up after MAX_ATTEMPTS. */
static int write_batch(cs_es *es, PGconn *dl_conn, cs_batch *b, counts *c, char *errstr,
                       size_t errstr_size)
{
    cs_batch_stats st = {0};
    int rc;

    for (;;) {
        rc = cs_batch_attempt(b, send_bulk, es, &st, errstr, errstr_size);
        if (rc == CS_ERR || !cs_batch_pending(b))
            break;
        if (cs_batch_failures(b) + 1 >= MAX_ATTEMPTS) {
            size_t len = strlen(errstr);

            snprintf(errstr + len, errstr_size - len, " (gave up after %d attempts)", MAX_ATTEMPTS);
            rc = CS_ERR_RETRY;
            break;
        }
        c->retries++;
        cs_sleep_ms(cs_batch_backoff(b));
    }
    c->written += (long long)st.indexed;
    c->newer += (long long)st.conflicts;
    c->deleted += (long long)st.deleted;
    if (rc == CS_OK)
        rc = write_dead(dl_conn, b, c, errstr, errstr_size);
    return rc;
}

/* Sends one page of documents in bulks of at most bulk_bytes, each with its dead letters. */
static int send_page(const cs_config *cfg, cs_es *es, PGconn *dl_conn, cs_batch *b, PGresult *page,
                     counts *c, char *errstr, size_t errstr_size)
{
    int rows = PQntuples(page), rc = CS_OK;

    for (int i = 0; i < rows && rc == CS_OK; i++) {
        if (cs_batch_add(b, 0, i, NULL, 0, PQgetvalue(page, i, 0),
                         (size_t)PQgetlength(page, i, 0))) {
            snprintf(errstr, errstr_size, "out of memory");
            rc = CS_ERR;
            break;
        }
        if (cs_batch_bytes(b) >= (size_t)cfg->bulk_bytes || i == rows - 1) {
            rc = write_batch(es, dl_conn, b, c, errstr, errstr_size);
            cs_batch_clear(b);
        }
    }
    cs_batch_clear(b);
    return rc;
}

int cs_admin_reindex(const cs_config *cfg, int argc, char **argv)
{
    char errstr[1024] = "";
    PGconn *conn = NULL, *dl_conn = NULL;
    PGresult *res = NULL;
    cs_es *es = NULL;
    cs_batch *batch = NULL;
    cs_batch_opts bopts = CS_BATCH_OPTS_INIT;
    counts c = {0, 0, 0, 0, 0, 0};
    char started[64] = "", deleted[96] = "";
    cs_backoff backoff;
    const char *param = cfg->case_type;
    long long t0 = cs_now_ms();
    int rc = 1, trc;

    (void)argv;
    if (argc != 0) {
        fprintf(stderr, "usage: casestream reindex [--case-type TYPE]\n");
        return 2;
    }
    if (!(conn = cs_db_connect(cfg->pg, errstr, sizeof(errstr))) ||
        !(dl_conn = cs_db_connect(cfg->pg, errstr, sizeof(errstr)))) {
        fprintf(stderr, "casestream reindex: could not connect to postgresql: %s\n", errstr);
        goto cleanup;
    }
    if (!(es = cs_es_new(cfg->es, cfg->es_timeout_ms, errstr, sizeof(errstr)))) {
        fprintf(stderr, "casestream reindex: %s\n", errstr);
        goto cleanup;
    }
    bopts.max_docs = PAGE_ROWS;
    bopts.backoff_base_ms = BACKOFF_BASE_MS;
    bopts.backoff_cap_ms = BACKOFF_CAP_MS;
    if (!(batch = cs_batch_new(&bopts))) {
        fprintf(stderr, "casestream reindex: out of memory\n");
        goto cleanup;
    }
    /* The template first: a deleted index is created again with its mappings. */
    cs_backoff_init(&backoff, BACKOFF_BASE_MS, BACKOFF_CAP_MS);
    while ((trc = cs_es_put_template(es, cfg->max_fields, errstr, sizeof(errstr))) ==
               CS_ERR_RETRY &&
           backoff.attempt < MAX_ATTEMPTS)
        cs_sleep_ms(cs_backoff_next(&backoff));
    if (trc != CS_OK) {
        fprintf(stderr, "casestream reindex: %s\n", errstr);
        goto cleanup;
    }
    if (cs_db_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", errstr, sizeof(errstr)))
        goto sql_error;
    /* The snapshot is taken here, no earlier than the transaction's start, now(). */
    res = PQexec(conn, "SELECT now()::text");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cs_db_error(conn, res, errstr, sizeof(errstr));
        goto sql_error;
    }
    snprintf(started, sizeof(started), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    res = PQexecParams(conn, declare_sql, 1, NULL, &param, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        cs_db_error(conn, res, errstr, sizeof(errstr));
        goto sql_error;
    }
    for (;;) {
        PQclear(res);
        res = PQexec(conn, FETCH_PAGE);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            cs_db_error(conn, res, errstr, sizeof(errstr));
            goto sql_error;
        }
        if (PQntuples(res) == 0)
            break;
        c.cases += PQntuples(res);
        if (send_page(cfg, es, dl_conn, batch, res, &c, errstr, sizeof(errstr))) {
            fprintf(stderr, "casestream reindex: %s\n", errstr);
            goto report;
        }
    }
    /* Outside the snapshot: what was disposed of while the pass ran. */
    {
        const char *dparams[] = {started, cfg->case_type};

        PQclear(res);
        res = PQexecParams(dl_conn, disposed_sql, 2, NULL, dparams, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            cs_db_error(dl_conn, res, errstr, sizeof(errstr));
            goto sql_error;
        }
        if (PQntuples(res) > 0 &&
            send_page(cfg, es, dl_conn, batch, res, &c, errstr, sizeof(errstr))) {
            fprintf(stderr, "casestream reindex: %s\n", errstr);
            goto report;
        }
    }
    rc = 0;
    goto report;
sql_error:
    fprintf(stderr, "casestream reindex: %s\n", errstr);
report:
    if (c.deleted > 0)
        snprintf(deleted, sizeof(deleted), ", %lld deleted (cases disposed of during the pass)",
                 c.deleted);
    printf("reindex%s%s: %lld cases read, %lld written, %lld already newer in the index, "
           "%lld dead letters, %lld retried bulks%s, %.1f s%s\n",
           cfg->case_type[0] ? " of case type " : "", cfg->case_type, c.cases, c.written, c.newer,
           c.dead, c.retries, deleted, (double)(cs_now_ms() - t0) / 1000.0,
           rc ? " (incomplete)" : "");
cleanup:
    PQclear(res);
    if (conn)
        PQfinish(conn);
    if (dl_conn)
        PQfinish(dl_conn);
    cs_es_free(es);
    cs_batch_free(batch);
    return rc;
}
