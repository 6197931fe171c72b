/* casestream case show|history REF: a case and its event history, as JSON from PostgreSQL. */
#include "admin.h"
#include "db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The same document the pipeline publishes (DESIGN §6). */
static const char show_sql[] = "SELECT ccd.change_document(reference)::text FROM ccd.case_data "
                               "WHERE reference = $1";

static const char history_sql[] =
    "SELECT jsonb_build_object('event_seq', e.id, 'case_revision', e.case_revision,"
    " 'version', e.version, 'event_id', e.event_id, 'user_id', e.user_id, 'state', e.state_id,"
    " 'summary', e.summary, 'idempotency_key', e.idempotency_key,"
    " 'kafka_partition', e.kafka_partition, 'kafka_offset', e.kafka_offset,"
    " 'created_date', e.created_date)::text"
    " FROM ccd.case_event e WHERE e.case_reference = $1 ORDER BY e.case_revision";

int cs_admin_case(const cs_config *cfg, int argc, char **argv)
{
    char errstr[512];
    PGconn *conn;
    PGresult *res;
    const char *param;
    char *end;
    long long ref;
    int rc = 0;

    if (argc != 2 || (strcmp(argv[0], "show") != 0 && strcmp(argv[0], "history") != 0)) {
        cs_log_error("invalid configuration: usage: casestream case show|history REFERENCE");
        return CS_EXIT_CONFIG;
    }
    errno = 0;
    ref = strtoll(argv[1], &end, 10);
    if (errno || *end || ref <= 0) {
        cs_log_error("invalid configuration: \"%s\" is not a case reference", argv[1]);
        return CS_EXIT_CONFIG;
    }
    if (!(conn = cs_db_connect(cfg->pg, errstr, sizeof(errstr)))) {
        cs_log_error("case: could not connect to postgresql: %s", errstr);
        return 1;
    }
    param = argv[1];
    res = PQexecParams(conn, strcmp(argv[0], "show") == 0 ? show_sql : history_sql, 1, NULL, &param,
                       NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cs_db_error(conn, res, errstr, sizeof(errstr));
        cs_log_error("case: %s", errstr);
        rc = 1;
    } else if (PQntuples(res) == 0) {
        cs_log_error("case: no case %lld", ref);
        rc = 1;
    } else {
        for (int i = 0; i < PQntuples(res); i++)
            printf("%s\n", PQgetvalue(res, i, 0));
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}
