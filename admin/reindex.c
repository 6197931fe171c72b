/* casestream reindex [--case-type T]: rebuilds the case indices from PostgreSQL, the source of
 * truth. */
#include "admin.h"
#include "backoff.h"
#include "bulk.h"
#include "db.h"
#include "dead_letter.h"
#include "err.h"
#include "es.h"
#include "run.h"
#include "utf8.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows fetched from the cursor at a time. */
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
    " SELECT c.reference, c.case_type_id, c.case_revision, ccd.change_document(c)::text"
    " FROM ccd.case_data c WHERE ($1::text = '' OR c.case_type_id = $1::text)"
    " ORDER BY c.reference";

typedef enum doc_state { D_PENDING, D_DONE, D_DEAD } doc_state;

typedef struct doc {
    int64_t reference, revision;
    char index[256];
    const char *json; /* borrowed from the page's result */
    size_t len;
    doc_state state;
    char *reason; /* D_DEAD: owned */
} doc;

typedef struct counts {
    long long cases, written, newer, dead, retries;
} counts;

/* Records the dead documents of docs[0..n-1] on dl_conn (a connection of its
 * own: the cursor's holds a read-only transaction). */
static int write_dead(PGconn *dl_conn, doc *docs, size_t n, counts *c, char *errstr,
                      size_t errstr_size)
{
    cs_dead_letter *dl = calloc(n ? n : 1, sizeof(*dl));
    size_t k = 0;
    int rc;

    if (!dl) {
        snprintf(errstr, errstr_size, "out of memory");
        return CS_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        if (docs[i].state != D_DEAD)
            continue;
        dl[k].reference = docs[i].reference;
        dl[k].revision = docs[i].revision;
        dl[k].index = docs[i].index[0] ? docs[i].index : NULL;
        dl[k].reason = docs[i].reason ? docs[i].reason : "rejected";
        dl[k].doc = docs[i].json;
        dl[k].doc_is_json = true;
        fprintf(stderr,
                "casestream reindex: dead letter case=%" PRId64 " revision=%" PRId64 ": %s\n",
                docs[i].reference, docs[i].revision, dl[k].reason);
        k++;
    }
    rc = cs_dead_letters_write(dl_conn, dl, k, errstr, errstr_size);
    if (rc == CS_OK)
        c->dead += (long long)k;
    free(dl);
    return rc;
}

/* Writes docs[0..n-1] with one bulk request, then again for the items that
 * Elasticsearch asked to retry, until each is written, already newer, or
 * refused (a dead letter). */
static int send_docs(cs_es *es, doc *docs, size_t n, counts *c, char *errstr, size_t errstr_size)
{
    cs_backoff backoff;
    cs_bulk_body body = CS_BULK_BODY_INIT;
    cs_bulk_item *items = calloc(n, sizeof(*items));
    size_t *sent = calloc(n, sizeof(*sent));
    int rc = CS_ERR;

    cs_backoff_init(&backoff, BACKOFF_BASE_MS, BACKOFF_CAP_MS);
    if (!items || !sent) {
        snprintf(errstr, errstr_size, "out of memory");
        goto cleanup;
    }
    for (int attempt = 0;; attempt++) {
        cs_es_response r = CS_ES_RESPONSE_INIT;
        size_t k = 0;
        int req;

        cs_bulk_reset(&body);
        for (size_t i = 0; i < n; i++) {
            if (docs[i].state != D_PENDING)
                continue;
            if (cs_bulk_add(&body, docs[i].index, docs[i].reference, docs[i].revision, docs[i].json,
                            docs[i].len)) {
                snprintf(errstr, errstr_size, "out of memory");
                goto cleanup;
            }
            sent[k++] = i;
        }
        if (k == 0)
            break;
        if (attempt >= MAX_ATTEMPTS) {
            snprintf(errstr + strlen(errstr), errstr_size - strlen(errstr),
                     " (gave up after %d attempts)", attempt);
            rc = CS_ERR_RETRY;
            goto cleanup;
        }
        if (attempt > 0) {
            c->retries++;
            cs_sleep_ms(cs_backoff_next(&backoff));
        }
        req = cs_es_request(es, "POST", CS_BULK_PATH, body.buf, body.len, &r, errstr, errstr_size);
        if (req == CS_ERR)
            goto cleanup;
        if (req != CS_OK)
            continue; /* unreachable: errstr says why, retry the whole request */
        if (r.status != 200) {
            cs_utf8_snprintf(errstr, errstr_size, "bulk request: HTTP %ld: %.*s", r.status,
                             (int)cs_utf8_prefix(r.body, r.len, 300), r.body);
            cs_es_response_clear(&r);
            continue;
        }
        if (cs_bulk_parse(r.body, r.len, items, k, errstr, errstr_size)) {
            cs_es_response_clear(&r);
            continue;
        }
        cs_es_response_clear(&r);
        for (size_t j = 0; j < k; j++) {
            doc *d = &docs[sent[j]];

            switch (items[j].outcome) {
            case CS_BULK_OK:
                d->state = D_DONE;
                c->written++;
                break;
            case CS_BULK_CONFLICT:
                d->state = D_DONE;
                c->newer++;
                break;
            case CS_BULK_RETRY:
                cs_utf8_snprintf(errstr, errstr_size, "%s",
                                 items[j].reason ? items[j].reason : "retry");
                break;
            case CS_BULK_REJECTED:
                d->state = D_DEAD;
                d->reason = items[j].reason;
                items[j].reason = NULL;
                break;
            }
        }
        cs_bulk_items_clear(items, k);
    }
    rc = CS_OK;
cleanup:
    cs_bulk_free(&body);
    free(items);
    free(sent);
    return rc;
}

/* Sends one page of rows in bulks of at most bulk_bytes, and records its dead letters. */
static int send_page(const cs_config *cfg, cs_es *es, PGconn *dl_conn, PGresult *page, counts *c,
                     char *errstr, size_t errstr_size)
{
    int rows = PQntuples(page), rc = CS_OK;
    doc *docs = calloc((size_t)rows, sizeof(*docs));
    size_t start = 0, bytes = 0;

    if (!docs) {
        snprintf(errstr, errstr_size, "out of memory");
        return CS_ERR;
    }
    for (int i = 0; i < rows; i++) {
        doc *d = &docs[i];

        d->reference = strtoll(PQgetvalue(page, i, 0), NULL, 10);
        d->revision = strtoll(PQgetvalue(page, i, 2), NULL, 10);
        d->json = PQgetvalue(page, i, 3);
        d->len = (size_t)PQgetlength(page, i, 3);
        if (!cs_es_index_name(PQgetvalue(page, i, 1), d->index, sizeof(d->index))) {
            d->state = D_DEAD;
            d->reason = strdup("case_type cannot name an index");
        }
    }
    c->cases += rows;
    for (int i = 0; i < rows && rc == CS_OK; i++) {
        bytes += docs[i].len;
        if (bytes >= (size_t)cfg->bulk_bytes || i == rows - 1) {
            rc = send_docs(es, docs + start, (size_t)i + 1 - start, c, errstr, errstr_size);
            start = (size_t)i + 1;
            bytes = 0;
        }
    }
    if (rc == CS_OK)
        rc = write_dead(dl_conn, docs, (size_t)rows, c, errstr, errstr_size);
    for (int i = 0; i < rows; i++)
        free(docs[i].reason);
    free(docs);
    return rc;
}

int cs_admin_reindex(const cs_config *cfg, int argc, char **argv)
{
    char errstr[1024] = "";
    PGconn *conn = NULL, *dl_conn = NULL;
    PGresult *res = NULL;
    cs_es *es = NULL;
    counts c = {0, 0, 0, 0, 0};
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
        if (send_page(cfg, es, dl_conn, res, &c, errstr, sizeof(errstr))) {
            fprintf(stderr, "casestream reindex: %s\n", errstr);
            goto report;
        }
    }
    rc = 0;
    goto report;
sql_error:
    fprintf(stderr, "casestream reindex: %s\n", errstr);
report:
    printf("reindex%s%s: %lld cases read, %lld written, %lld already newer in the index, "
           "%lld dead letters, %lld retried bulks, %.1f s%s\n",
           cfg->case_type[0] ? " of case type " : "", cfg->case_type, c.cases, c.written, c.newer,
           c.dead, c.retries, (double)(cs_now_ms() - t0) / 1000.0, rc ? " (incomplete)" : "");
cleanup:
    PQclear(res);
    if (conn)
        PQfinish(conn);
    if (dl_conn)
        PQfinish(dl_conn);
    cs_es_free(es);
    return rc;
}
