/* PostgreSQL helpers shared by the worker, the indexer and the admin tool. */
#include "db.h"

#include "err.h"
#include "log.h"
#include "utf8.h"

#include <poll.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The server's notices and warnings (e.g. "relation already exists, skipping"), through
 * casestream's logger instead of libpq's default print to stderr. */
static void on_notice(void *arg, const PGresult *res)
{
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *text = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    int level = CS_LOG_INFO;

    (void)arg;
    if (!severity)
        severity = "NOTICE";
    if (strcmp(severity, "WARNING") == 0)
        level = CS_LOG_WARN;
    else if (strcmp(severity, "DEBUG") == 0)
        level = CS_LOG_DEBUG;
    cs_log(level, "postgresql %s: %s", severity, text ? text : PQresultErrorMessage(res));
}

PGconn *cs_db_connect(const char *conninfo, char *errstr, size_t errstr_size)
{
    return cs_db_connect_within(conninfo, 0, errstr, errstr_size);
}

PGconn *cs_db_connect_within(const char *conninfo, int seconds, char *errstr, size_t errstr_size)
{
    /* Defaults that keep a lost server from blocking a caller for good; they
     * come before the caller's conninfo, which overrides any of them. */
    static const char *const keys[] = {"connect_timeout",
                                       "keepalives",
                                       "keepalives_idle",
                                       "keepalives_interval",
                                       "keepalives_count",
                                       "tcp_user_timeout",
                                       "dbname",
                                       "connect_timeout",
                                       NULL};
    char timeout[16];
    const char *values[] = {"10", "1", "30", "10", "3", "60000", conninfo, timeout, NULL};
    PGconn *conn;

    /* A bound of the caller's comes after the conninfo, so it wins. */
    snprintf(timeout, sizeof(timeout), "%d", seconds);
    if (seconds <= 0)
        values[7] = NULL;
    conn = PQconnectdbParams(keys, values, 1);

    if (PQstatus(conn) != CONNECTION_OK) {
        cs_db_error(conn, NULL, errstr, errstr_size);
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeReceiver(conn, on_notice, NULL);
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
    return cs_db_sqlstate_retryable(state);
}

bool cs_db_sqlstate_retryable(const char *state)
{
    /* 08: connection exception; 40001/40P01: serialization failure, deadlock;
     * 53: insufficient resources; 57P0x: server shutting down or restarting;
     * 57014: statement canceled (statement_timeout, or a cancel request);
     * 55P03: lock not available (lock_timeout, NOWAIT). */
    return state && (strncmp(state, "08", 2) == 0 || strcmp(state, "40001") == 0 ||
                     strcmp(state, "40P01") == 0 || strncmp(state, "53", 2) == 0 ||
                     strncmp(state, "57P0", 4) == 0 || strcmp(state, "57014") == 0 ||
                     strcmp(state, "55P03") == 0);
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

int cs_db_generic_plans(PGconn *conn, char *errstr, size_t errstr_size)
{
    return cs_db_exec(conn, "SET plan_cache_mode = force_generic_plan", errstr, errstr_size);
}

int cs_db_prepare(PGconn *conn, const cs_db_statement *stmts, size_t n, char *errstr,
                  size_t errstr_size)
{
    for (size_t i = 0; i < n; i++) {
        PGresult *res = PQprepare(conn, stmts[i].name, stmts[i].sql, stmts[i].nparams, NULL);

        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            int rc = cs_db_retryable(conn, res) ? CS_ERR_RETRY : CS_ERR;

            cs_db_error(conn, res, errstr, errstr_size);
            PQclear(res);
            return rc;
        }
        PQclear(res);
    }
    return CS_OK;
}

PGresult *cs_db_exec_prepared(PGconn *conn, const cs_db_statement *s, const char *const *params)
{
    PGresult *res = PQexecPrepared(conn, s->name, s->nparams, params, NULL, NULL, 0);
    const char *state;

    if (PQresultStatus(res) != PGRES_FATAL_ERROR ||
        !(state = PQresultErrorField(res, PG_DIAG_SQLSTATE)) || strcmp(state, "26000") != 0)
        return res;
    PQclear(res);
    res = PQprepare(conn, s->name, s->sql, s->nparams, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return res;
    PQclear(res);
    return PQexecPrepared(conn, s->name, s->nparams, params, NULL, NULL, 0);
}

int cs_db_query_int(PGconn *conn, const char *sql, const char *param, int timeout_ms,
                    long long *value, char *errstr, size_t errstr_size)
{
    long long deadline = 0;
    PGresult *res, *last = NULL;
    struct timespec now;
    int rc = CS_OK;

    clock_gettime(CLOCK_MONOTONIC, &now);
    deadline = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 + timeout_ms;
    if (!PQsendQueryParams(conn, sql, param ? 1 : 0, NULL, param ? &param : NULL, NULL, NULL, 0)) {
        cs_db_error(conn, NULL, errstr, errstr_size);
        return CS_ERR_RETRY;
    }
    for (;;) {
        struct pollfd pfd = {PQsocket(conn), POLLIN, 0};
        long long left;

        if (!PQconsumeInput(conn)) {
            cs_db_error(conn, NULL, errstr, errstr_size);
            rc = CS_ERR_RETRY;
            break;
        }
        if (!PQisBusy(conn)) {
            while ((res = PQgetResult(conn)) != NULL) {
                PQclear(last);
                last = res;
            }
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        left = deadline - ((long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
        if (left <= 0 || pfd.fd < 0) {
            snprintf(errstr, errstr_size, "no answer within %d ms", timeout_ms);
            rc = CS_ERR_RETRY;
            break;
        }
        poll(&pfd, 1, (int)left);
    }
    if (rc == CS_OK) {
        if (PQresultStatus(last) != PGRES_TUPLES_OK || PQntuples(last) < 1) {
            cs_db_error(conn, last, errstr, errstr_size);
            rc = cs_db_retryable(conn, last) ? CS_ERR_RETRY : CS_ERR;
        } else if (value) {
            *value = PQgetisnull(last, 0, 0) ? 0 : atoll(PQgetvalue(last, 0, 0));
        }
    }
    PQclear(last);
    return rc;
}
