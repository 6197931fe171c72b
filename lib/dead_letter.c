/* Dead letters of the case indices: change documents Elasticsearch refused, recorded in
 * ccd.index_dead_letter by the indexer and `casestream reindex`. */
#include "dead_letter.h"

#include "db.h"
#include "err.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* reason + " (document not stored: " + why + ")" in new memory, or NULL. Caller frees. */
static char *with_note(const char *reason, const char *why)
{
    size_t size = strlen(reason) + strlen(why) + sizeof(" (document not stored: )");
    char *s = malloc(size);

    if (s)
        snprintf(s, size, "%s (document not stored: %s)", reason, why);
    return s;
}

static int insert_dead_letter(PGconn *conn, const cs_dead_letter *d, bool with_doc,
                              const char *reason, char *errstr, size_t errstr_size)
{
    static const char sql_json[] =
        "INSERT INTO ccd.index_dead_letter (reference, case_revision, index_name, reason,"
        " kafka_topic, kafka_partition, kafka_offset, document)"
        " VALUES ($1::bigint, $2::bigint, $3, $4, $5, $6::integer, $7::bigint, $8::jsonb)";
    static const char sql_text[] =
        "INSERT INTO ccd.index_dead_letter (reference, case_revision, index_name, reason,"
        " kafka_topic, kafka_partition, kafka_offset, document)"
        " VALUES ($1::bigint, $2::bigint, $3, $4, $5, $6::integer, $7::bigint, to_jsonb($8::text))";
    char ref[32], rev[32], part[16], off[32];
    const char *params[8];
    PGresult *res;
    int rc = CS_OK;

    snprintf(ref, sizeof(ref), "%" PRId64, d->reference);
    snprintf(rev, sizeof(rev), "%" PRId64, d->revision);
    snprintf(part, sizeof(part), "%d", d->partition);
    snprintf(off, sizeof(off), "%" PRId64, d->offset);
    params[0] = d->reference > 0 ? ref : NULL;
    params[1] = d->revision > 0 ? rev : NULL;
    params[2] = d->index;
    params[3] = reason;
    params[4] = d->topic;
    params[5] = d->topic ? part : NULL;
    params[6] = d->topic ? off : NULL;
    params[7] = with_doc ? d->doc : NULL;
    res = PQexecParams(conn, d->doc_is_json ? sql_json : sql_text, 8, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        cs_db_error(conn, res, errstr, errstr_size);
        rc = cs_db_retryable(conn, res) ? CS_ERR_RETRY : CS_ERR;
    }
    PQclear(res);
    return rc;
}

int cs_dead_letters_write(PGconn *conn, const cs_dead_letter *dl, size_t n, char *errstr,
                          size_t errstr_size)
{
    char ignored[256];
    int rc;

    if (n == 0)
        return CS_OK;
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        snprintf(errstr, errstr_size, "no connection to postgresql");
        return CS_ERR_RETRY;
    }
    if ((rc = cs_db_exec(conn, "BEGIN", errstr, errstr_size)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        char why[512];
        char *reason = NULL;

        if ((rc = cs_db_exec(conn, "SAVEPOINT dead_letter", errstr, errstr_size)))
            goto fail;
        rc = insert_dead_letter(conn, &dl[i], true, dl[i].reason, why, sizeof(why));
        if (rc == CS_ERR) {
            /* The document itself is unstorable (bad UTF-8, \u0000 in jsonb):
             * keep the record without it rather than block the pipeline. */
            if ((rc = cs_db_exec(conn, "ROLLBACK TO SAVEPOINT dead_letter", errstr, errstr_size)))
                goto fail;
            reason = with_note(dl[i].reason, why);
            rc = insert_dead_letter(conn, &dl[i], false, reason ? reason : dl[i].reason, why,
                                    sizeof(why));
            free(reason);
        }
        if (rc) {
            snprintf(errstr, errstr_size, "%s", why);
            goto fail;
        }
    }
    if ((rc = cs_db_exec(conn, "COMMIT", errstr, errstr_size)))
        goto fail;
    return CS_OK;
fail:
    cs_db_exec(conn, "ROLLBACK", ignored, sizeof(ignored));
    return rc;
}

/* refs (or revs) as a PostgreSQL array literal "{1,2,3}" in new memory, or NULL. Caller frees. */
static char *array_literal(const int64_t *v, size_t n)
{
    char *s = malloc(n * 21 + 3);
    size_t len = 0;

    if (!s)
        return NULL;
    s[len++] = '{';
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(s + len, "%s%" PRId64, i ? "," : "", v[i]);
    s[len++] = '}';
    s[len] = '\0';
    return s;
}

int cs_dead_letters_clear(PGconn *conn, const int64_t *refs, const int64_t *revs, size_t n,
                          long long *cleared, char *errstr, size_t errstr_size)
{
    char *a = NULL, *b = NULL;
    const char *params[2];
    PGresult *res = NULL;
    int rc = CS_OK;

    if (cleared)
        *cleared = 0;
    if (n == 0)
        return CS_OK;
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        snprintf(errstr, errstr_size, "no connection to postgresql");
        return CS_ERR_RETRY;
    }
    if (!(a = array_literal(refs, n)) || !(b = array_literal(revs, n))) {
        snprintf(errstr, errstr_size, "out of memory");
        rc = CS_ERR;
        goto cleanup;
    }
    params[0] = a;
    params[1] = b;
    res = PQexecParams(conn,
                       "DELETE FROM ccd.index_dead_letter d"
                       " USING unnest($1::bigint[], $2::bigint[]) AS a(reference, case_revision)"
                       " WHERE d.reference = a.reference AND d.case_revision <= a.case_revision",
                       2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        cs_db_error(conn, res, errstr, errstr_size);
        rc = cs_db_retryable(conn, res) ? CS_ERR_RETRY : CS_ERR;
    } else if (cleared) {
        *cleared = atoll(PQcmdTuples(res));
    }
cleanup:
    PQclear(res);
    free(a);
    free(b);
    return rc;
}
