/* casestream index-dead-letters list|retry: the change documents Elasticsearch refused
 * (ccd.index_dead_letter), and writing their cases again from PostgreSQL. */
#include "admin.h"
#include "db.h"
#include "err.h"
#include "es.h"
#include "log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --limit 0 (its default): this many. */
#define DEFAULT_LIMIT 100

/* Newest first; the document itself is left in the table (it may be large): its size says
 * whether there was one. $1: the index of --case-type, '' for all; $2: --limit. */
static const char list_sql[] =
    "SELECT jsonb_build_object('id', d.id, 'reference', d.reference,"
    " 'case_revision', d.case_revision, 'index_name', d.index_name, 'reason', d.reason,"
    " 'document_bytes', octet_length(d.document::text), 'kafka_topic', d.kafka_topic,"
    " 'kafka_partition', d.kafka_partition, 'kafka_offset', d.kafka_offset,"
    " 'created_date', d.created_date)::text"
    " FROM ccd.index_dead_letter d WHERE ($1::text = '' OR d.index_name = $1::text)"
    " ORDER BY d.id DESC LIMIT $2::int";

/* The cases to retry: those with a dead letter (of --case-type's index), the most recently
 * refused first, at most --limit; and the dead letters there are now. */
static const char cases_sql[] =
    "SELECT reference FROM ccd.index_dead_letter"
    " WHERE reference IS NOT NULL AND ($1::text = '' OR index_name = $1::text)"
    " GROUP BY reference ORDER BY max(id) DESC LIMIT $2::int";

/* After the cases were written again: their dead letters recorded before the retry (id at most
 * $2) at or below the revision PostgreSQL holds are replaced by the retry's outcome, whether
 * the case was indexed (nothing) or refused again (the new dead letter); so are those without a
 * revision (messages that were not a usable change) of a case that was indexed. */
static const char replaced_sql[] =
    "DELETE FROM ccd.index_dead_letter d USING ccd.case_data c"
    " WHERE d.reference = c.reference AND d.reference = ANY($1::bigint[]) AND d.id <= $2::bigint"
    " AND (d.case_revision <= c.case_revision OR d.case_revision IS NULL)";

/* The index of --case-type into buf ("" for all). Returns false when it names none. */
static bool index_of(const cs_config *cfg, char *buf, size_t size)
{
    if (!cfg->case_type[0]) {
        buf[0] = '\0';
        return true;
    }
    if (cs_es_index_name(cfg->case_type, buf, size))
        return true;
    cs_log_error("invalid configuration: case type \"%s\" cannot name an index", cfg->case_type);
    return false;
}

static int list(const cs_config *cfg, PGconn *conn, const char *index)
{
    char limit[16];
    const char *params[2] = {index, limit};
    PGresult *res;
    char errstr[512];
    int rc = 0;

    snprintf(limit, sizeof(limit), "%d", cfg->limit > 0 ? cfg->limit : DEFAULT_LIMIT);
    res = PQexecParams(conn, list_sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cs_db_error(conn, res, errstr, sizeof(errstr));
        cs_log_error("index-dead-letters: %s", errstr);
        rc = 1;
    } else {
        for (int i = 0; i < PQntuples(res); i++)
            printf("%s\n", PQgetvalue(res, i, 0));
    }
    PQclear(res);
    return rc;
}

static int retry(const cs_config *cfg, PGconn *conn, const char *index)
{
    char limit[16], max_id[24] = "0", errstr[512];
    const char *params[2] = {index, limit};
    PGresult *res;
    int64_t *refs = NULL;
    cs_reindex_counts c;
    long long replaced = 0, missing;
    size_t n;
    int rc = 1;

    snprintf(limit, sizeof(limit), "%d", cfg->limit > 0 ? cfg->limit : DEFAULT_LIMIT);
    res = PQexec(conn, "SELECT coalesce(max(id), 0) FROM ccd.index_dead_letter");
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        snprintf(max_id, sizeof(max_id), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    res = PQexecParams(conn, cases_sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cs_db_error(conn, res, errstr, sizeof(errstr));
        cs_log_error("index-dead-letters: %s", errstr);
        PQclear(res);
        return 1;
    }
    n = (size_t)PQntuples(res);
    if (!(refs = malloc((n ? n : 1) * sizeof(*refs)))) {
        PQclear(res);
        cs_log_error("index-dead-letters: out of memory");
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        refs[i] = strtoll(PQgetvalue(res, (int)i, 0), NULL, 10);
    PQclear(res);
    res = NULL;
    if (n == 0) {
        printf("no dead letters with a case reference to retry\n");
        rc = 0;
        goto cleanup;
    }
    if (cs_admin_reindex_cases(cfg, refs, n, &c))
        goto cleanup;
    {
        char *arr = malloc(n * 21 + 3);
        size_t len = 0;
        const char *p[2];

        if (!arr) {
            cs_log_error("index-dead-letters: out of memory");
            goto cleanup;
        }
        arr[len++] = '{';
        for (size_t i = 0; i < n; i++)
            len += (size_t)sprintf(arr + len, "%s%" PRId64, i ? "," : "", refs[i]);
        arr[len++] = '}';
        arr[len] = '\0';
        p[0] = arr;
        p[1] = max_id;
        res = PQexecParams(conn, replaced_sql, 2, NULL, p, NULL, NULL, 0);
        free(arr);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            cs_db_error(conn, res, errstr, sizeof(errstr));
            cs_log_error("index-dead-letters: %s", errstr);
            goto cleanup;
        }
        replaced = atoll(PQcmdTuples(res));
    }
    missing = (long long)n - c.cases;
    printf("retried %zu cases: %lld written, %lld already newer in the index, %lld refused again "
           "(recorded anew), %lld no longer in postgresql (their dead letters stay); %lld "
           "earlier dead letters removed\n",
           n, c.written, c.newer, c.dead, missing, c.cleared + replaced);
    rc = 0;
cleanup:
    PQclear(res);
    free(refs);
    return rc;
}

int cs_admin_index_dead_letters(const cs_config *cfg, int argc, char **argv)
{
    char index[300], errstr[512];
    PGconn *conn;
    int rc;

    if (argc != 1 || (strcmp(argv[0], "list") != 0 && strcmp(argv[0], "retry") != 0)) {
        cs_log_error("invalid configuration: usage: casestream index-dead-letters list|retry "
                     "[--case-type T] [--limit N]");
        return CS_EXIT_CONFIG;
    }
    if (!index_of(cfg, index, sizeof(index)))
        return CS_EXIT_CONFIG;
    if (!(conn = cs_db_connect(cfg->pg, errstr, sizeof(errstr)))) {
        cs_log_error("index-dead-letters: could not connect to postgresql: %s", errstr);
        return 1;
    }
    rc = strcmp(argv[0], "list") == 0 ? list(cfg, conn, index) : retry(cfg, conn, index);
    PQfinish(conn);
    return rc;
}
