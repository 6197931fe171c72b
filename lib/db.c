/* PostgreSQL helpers shared by the worker, the indexer and the admin tool. */
#include "db.h"

#include "err.h"
#include "utf8.h"

#include <stdio.h>
#include <string.h>

PGconn *cs_db_connect(const char *conninfo, char *errstr, size_t errstr_size)
{
    /* Defaults that keep a lost server from blocking a caller for good; they
     * come before the caller's conninfo, which overrides any of them. */
    static const char *const keys[] = {
        "connect_timeout",  "keepalives",       "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "dbname",          NULL};
    const char *values[] = {"10", "1", "30", "10", "3", "60000", conninfo, NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 1);

    if (PQstatus(conn) != CONNECTION_OK) {
        cs_db_error(conn, NULL, errstr, errstr_size);
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

void cs_db_error(PGconn *conn, const PGresult *res, char *errstr, size_t errstr_size)
{
    const char *msg = res ? PQresultErrorMessage(res) : NULL;
    size_t n;

    if (!msg || !*msg)
        msg = conn ? PQerrorMessage(conn) : "no connection";
    /* Server messages may quote the submission's text: cut between characters. */
    n = cs_utf8_snprintf(errstr, errstr_size, "%s", msg);
    while (n > 0 && (errstr[n - 1] == '\n' || errstr[n - 1] == ' '))
        errstr[--n] = '\0';
}

bool cs_db_retryable(PGconn *conn, const PGresult *res)
{
    const char *state;

    if (!conn || PQstatus(conn) != CONNECTION_OK)
        return true;
    if (!res)
        return true;
    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (!state)
        return PQresultStatus(res) == PGRES_FATAL_ERROR && PQstatus(conn) != CONNECTION_OK;
    /* 08: connection exception; 40001/40P01: serialization failure, deadlock;
     * 53: insufficient resources; 57P0x: server shutting down or restarting. */
    return strncmp(state, "08", 2) == 0 || strcmp(state, "40001") == 0 ||
           strcmp(state, "40P01") == 0 || strncmp(state, "53", 2) == 0 ||
           strncmp(state, "57P0", 4) == 0;
}

int cs_db_exec(PGconn *conn, const char *sql, char *errstr, size_t errstr_size)
{
    PGresult *res = PQexec(conn, sql);
    int rc = CS_OK;
    ExecStatusType st = PQresultStatus(res);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        cs_db_error(conn, res, errstr, errstr_size);
        rc = cs_db_retryable(conn, res) ? CS_ERR_RETRY : CS_ERR;
    }
    PQclear(res);
    return rc;
}
