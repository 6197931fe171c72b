/* PostgreSQL helpers: connecting and classifying failures as retryable or not. */
#ifndef CS_DB_H
#define CS_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

/* Connects with conninfo (a connection string or URI), adding a connect
 * timeout and TCP keepalives unless conninfo sets them; the server's notices
 * go to the log. Returns a connection
 * the caller frees with PQfinish, or NULL with the reason in errstr. */
PGconn *cs_db_connect(const char *conninfo, char *errstr, size_t errstr_size);

/* As cs_db_connect, giving up after seconds (libpq's connect_timeout; at least 2), whatever
 * conninfo says; seconds <= 0 is cs_db_connect. */
PGconn *cs_db_connect_within(const char *conninfo, int seconds, char *errstr, size_t errstr_size);

/* Runs sql (one text parameter $1 = param, or none when param is NULL) and reads the first
 * column of its first row as an integer into *value (NULL: ignored), waiting at most
 * timeout_ms. Returns 0, CS_ERR_RETRY (the server did not answer in time, or the connection
 * failed: the caller drops the connection) or CS_ERR, with the reason in errstr. */
int cs_db_query_int(PGconn *conn, const char *sql, const char *param, int timeout_ms,
                    long long *value, char *errstr, size_t errstr_size);

/* True if a failed result (or a NULL result) on conn is worth retrying after a
 * backoff: a lost connection, or an error cs_db_sqlstate_retryable calls transient. */
bool cs_db_retryable(PGconn *conn, const PGresult *res);

/* True if the SQLSTATE state (NULL: false) says nothing against the statement itself, so
 * that the same statement may succeed later: a connection exception, a server shutting down,
 * a serialization failure or deadlock, too many connections, a statement canceled
 * (statement_timeout, a cancel request) or a lock not granted in time (lock_timeout). */
bool cs_db_sqlstate_retryable(const char *state);

/* Runs one statement without parameters that returns no rows of interest.
 * Returns 0, CS_ERR_RETRY or CS_ERR with the server's message in errstr. */
int cs_db_exec(PGconn *conn, const char *sql, char *errstr, size_t errstr_size);

/* Makes conn plan every prepared statement once, for any parameters (plan_cache_mode =
 * force_generic_plan), for the programs' hot statements: left to choose, PostgreSQL plans a
 * lookup by an array parameter again at every execution (its plan for a few elements looks
 * cheaper than the one for any array), and planning costs more than running it; the plans
 * are the same index scans. Returns 0, CS_ERR_RETRY or CS_ERR with the reason in errstr. */
int cs_db_generic_plans(PGconn *conn, char *errstr, size_t errstr_size);

/* A statement a session prepares once and runs by its name. */
typedef struct cs_db_statement {
    const char *name;
    const char *sql;
    int nparams;
} cs_db_statement;

/* Prepares the n statements on conn, a session that has none of them yet: parsed (and
 * planned, once cs_db_generic_plans) once per session. Returns 0, CS_ERR_RETRY or CS_ERR with
 * the server's message in errstr. */
int cs_db_prepare(PGconn *conn, const cs_db_statement *stmts, size_t n, char *errstr,
                  size_t errstr_size);

/* Runs statement s, prepared by cs_db_prepare, outside a transaction block. A session that
 * does not have it (never prepared, or dropped by DISCARD ALL) answers 26000,
 * invalid_sql_statement_name: it is prepared then and run again. Returns the result, as
 * PQexecPrepared. */
PGresult *cs_db_exec_prepared(PGconn *conn, const cs_db_statement *s, const char *const *params);

/* Copies the error of res (or of conn) into errstr, without the trailing newline;
 * a message too long for errstr is cut between UTF-8 characters. */
void cs_db_error(PGconn *conn, const PGresult *res, char *errstr, size_t errstr_size);

#endif
