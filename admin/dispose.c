/* casestream dispose: deletes the cases whose retention date (resolved_ttl) has passed, each in
 * its own transaction under its case lock, leaving a disposal record and, through the outbox,
 * the disposal document that deletes the case's search document (DESIGN §10). */
#include "admin.h"

#include "db.h"
#include "envelope.h"
#include "err.h"
#include "idem.h"
#include "outcome.h"
#include "redis.h"
#include "run.h"
#include "text.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Cases read per page, and how often the progress line is redrawn. */
#define PAGE_ROWS            "500"
#define PROGRESS_INTERVAL_MS 250

/* The day before which a resolved_ttl has passed: --before, or today in UTC. */
static const char before_sql[] =
    "SELECT COALESCE(NULLIF($1::text, '')::date, (now() AT TIME ZONE 'UTC')::date)::text";

/* A page of the cases past their retention, after reference $3, in reference order. Read
 * without locks: each one is checked again under its lock. */
static const char page_sql[] =
    "SELECT reference, id, case_type_id, jurisdiction, to_char(resolved_ttl, 'YYYY-MM-DD'),"
    " case_revision FROM ccd.case_data"
    " WHERE resolved_ttl < $1::date AND ($2::text = '' OR case_type_id = $2::text)"
    " AND reference > $3::bigint ORDER BY reference LIMIT " PAGE_ROWS;

/* The case lock (the worker's, DESIGN §5.1), and whether the case is still past its retention
 * under it: a submission that committed while dispose waited for the lock may have moved
 * resolved_ttl. */
static const char lock_sql[] =
    "SELECT coalesce(resolved_ttl < $2::date AND ($3::text = '' OR case_type_id = $3::text),"
    " false), coalesce(to_char(resolved_ttl, 'YYYY-MM-DD'), 'none')"
    " FROM ccd.case_data WHERE reference = $1::bigint FOR UPDATE";

/* The history rows of the case applied from a message within the last $2 hours (the workers'
 * --outcome-retention-hours): what the applied outcome of each is rendered from, as the worker
 * renders it for a redelivery (DESIGN §4). Imported history has no message. */
static const char answers_sql[] =
    "SELECT idempotency_key::text, version, case_revision, id, kafka_partition, kafka_offset,"
    " supplementary_data::text, created_date FROM ccd.case_event"
    " WHERE case_reference = $1::bigint AND idempotency_key IS NOT NULL"
    " AND kafka_partition IS NOT NULL AND kafka_offset IS NOT NULL"
    " AND created_date >= now() - make_interval(hours => $2::int)";

/* Everything of the case, in one statement (the foreign keys of its history and notes are
 * checked at its end): notes, outbox rows, index dead letters, the case row, which leaves the
 * disposal record (stamped with the time it is written, just before the commit, which reindex
 * relies on) and the disposal document in the outbox (after every change of the case, for the
 * relay of changes topic $2), and the history, whose idempotency keys are returned for Redis.
 * The outcomes recorded for its messages stay, joined by the applied outcomes $4 of its recent
 * history rows, each dated as its row ($5) and recorded for its position on submissions topic
 * $3: a message delivered again after the disposal gets the answer it had, not the disposal's
 * rejection; the workers delete them past their retention, as any outcome. */
static const char dispose_sql[] =
    "WITH notes AS (DELETE FROM ccd.case_notes WHERE case_reference = $1::bigint),"
    " outbox AS (DELETE FROM ccd.change_outbox WHERE reference = $1::bigint),"
    " answers AS (INSERT INTO ccd.event_outcome"
    " (topic, kafka_partition, kafka_offset, outcome, created_date)"
    " SELECT $3::text, (o->'source'->>'partition')::int, (o->'source'->>'offset')::bigint, o,"
    " d.at FROM jsonb_array_elements($4::jsonb) WITH ORDINALITY AS a(o, i)"
    " JOIN unnest($5::timestamptz[]) WITH ORDINALITY AS d(at, i) USING (i)"
    " ON CONFLICT (topic, kafka_partition, kafka_offset) DO NOTHING),"
    " dead AS (DELETE FROM ccd.index_dead_letter WHERE reference = $1::bigint),"
    " gone AS (DELETE FROM ccd.case_data WHERE reference = $1::bigint"
    " RETURNING reference, id, case_type_id, jurisdiction, case_revision),"
    " record AS (INSERT INTO ccd.disposed_case"
    " (reference, id, case_type_id, jurisdiction, last_revision, disposed_at)"
    " SELECT *, clock_timestamp() FROM gone RETURNING *),"
    " disposal AS (INSERT INTO ccd.change_outbox (reference, case_revision, document, topic)"
    " SELECT r.reference, r.last_revision + 1, ccd.disposal_document(r::ccd.disposed_case),"
    " $2::text FROM record r)"
    " DELETE FROM ccd.case_event WHERE case_reference = $1::bigint"
    " RETURNING idempotency_key::text";

typedef enum verdict { DISPOSED, KEPT, FAILED } verdict;

typedef struct run {
    const cs_config *cfg;
    PGconn *conn;
    cs_idem *idem;
    char before[16];
    long long disposed, kept, failed, listed, redis_failed;
    bool lost;     /* the connection to PostgreSQL is gone: stop */
    bool progress; /* stderr is a terminal: keep a progress line */
    bool progress_shown;
    long long start_ms, last_progress_ms;
} run;

/* Logs one line (cs_log, "dispose: " and the message) at level, first clearing the progress
 * line if one is shown. */
__attribute__((format(printf, 3, 4))) static void say(run *r, int level, const char *fmt, ...)
{
    char text[2048];
    va_list ap;

    if (level > cs_log_threshold)
        return;
    if (r->progress_shown) {
        fputs("\r\033[K", stderr);
        r->progress_shown = false;
    }
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    cs_log_write(level, "dispose: %s", text);
}

static void progress(run *r)
{
    long long now = cs_now_ms();
    double secs = (double)(now - r->start_ms) / 1000.0;

    if (!r->progress || now - r->last_progress_ms < PROGRESS_INTERVAL_MS)
        return;
    if (r->cfg->dry_run)
        fprintf(stderr, "\r\033[Klisted=%lld", r->listed);
    else
        fprintf(stderr, "\r\033[Kdisposed=%lld kept=%lld failed=%lld rate=%.0f/s", r->disposed,
                r->kept, r->failed, secs > 0 ? (double)r->disposed / secs : 0.0);
    fflush(stderr);
    r->progress_shown = true;
    r->last_progress_ms = now;
}

/* Records a failed statement of case ref and rolls its transaction back. */
static verdict failed(run *r, const char *ref, const PGresult *res)
{
    char errstr[512];

    cs_db_error(r->conn, res, errstr, sizeof(errstr));
    if (PQstatus(r->conn) != CONNECTION_OK) {
        r->lost = true;
        say(r, CS_LOG_ERROR, "case=%s failed: %s", ref, errstr);
        return FAILED;
    }
    say(r, CS_LOG_ERROR, "case=%s failed: %s", ref, errstr);
    if (cs_db_exec(r->conn, "ROLLBACK", errstr, sizeof(errstr)) != CS_OK)
        r->lost = PQstatus(r->conn) != CONNECTION_OK;
    return FAILED;
}

/* Deletes the case's idempotency entries from Redis, the keys its history held, after marking
 * the case so that a worker that committed before the disposal writes none of them afterwards.
 * A failure leaves them to expire (the worker's --redis-ttl): counted, and the exit status says
 * so. */
static void forget_keys(run *r, const char *ref, PGresult *keys)
{
    int n = PQntuples(keys);
    const char **k = calloc((size_t)(n ? n : 1), sizeof(*k));
    char errstr[512];

    if (!k) {
        say(r, CS_LOG_ERROR, "case=%s: out of memory deleting its %d idempotency keys from redis",
            ref, n);
        r->redis_failed++;
    } else {
        size_t m = 0;

        /* History imported from CCD has no keys (DESIGN §12): nothing of it is in Redis. The
         * case is marked all the same. */
        for (int i = 0; i < n; i++)
            if (!PQgetisnull(keys, i, 0))
                k[m++] = PQgetvalue(keys, i, 0);
        if (cs_idem_forget(r->idem, strtoll(ref, NULL, 10), m, k, NULL, errstr, sizeof(errstr)) !=
            CS_OK) {
            if (r->redis_failed == 0)
                say(r, CS_LOG_ERROR,
                    "case=%s: could not delete its idempotency keys from redis (they expire "
                    "with their ttl): %s",
                    ref, errstr);
            r->redis_failed++;
        }
    }
    free((void *)k);
}

/* The applied outcome of each row of answers_sql, rendered as the worker renders a redelivery
 * of its message (lib/outcome), as a JSON array in *outcomes, and the rows' dates as a
 * PostgreSQL array in *dates. False when out of memory or a row's supplementary data is not
 * an object. */
static bool render_answers(const char *ref, const PGresult *rows, char **outcomes, char **dates)
{
    cs_text o = CS_TEXT_INIT, d = CS_TEXT_INIT;
    bool ok = true;

    cs_text_put(&o, "[", 1);
    cs_text_put(&d, "{", 1);
    for (int i = 0; ok && i < PQntuples(rows); i++) {
        cs_outcome a = {.case_reference = strtoll(ref, NULL, 10),
                        .status = CS_STATUS_APPLIED,
                        .version = atoi(PQgetvalue(rows, i, 1)),
                        .revision = strtoll(PQgetvalue(rows, i, 2), NULL, 10),
                        .event_seq = strtoll(PQgetvalue(rows, i, 3), NULL, 10),
                        .supplementary_data =
                            PQgetisnull(rows, i, 6) ? NULL : PQgetvalue(rows, i, 6),
                        .source_partition = atoi(PQgetvalue(rows, i, 4)),
                        .source_offset = strtoll(PQgetvalue(rows, i, 5), NULL, 10)};
        char *text;

        snprintf(a.idempotency_key, sizeof(a.idempotency_key), "%s", PQgetvalue(rows, i, 0));
        a.code = cs_status_code(CS_STATUS_APPLIED, a.revision == 1);
        if (!(text = cs_outcome_render(&a))) {
            ok = false;
            break;
        }
        if (i) {
            cs_text_put(&o, ",", 1);
            cs_text_put(&d, ",", 1);
        }
        cs_text_puts(&o, text);
        cs_text_put(&d, "\"", 1);
        cs_text_puts(&d, PQgetvalue(rows, i, 7));
        cs_text_put(&d, "\"", 1);
        free(text);
    }
    cs_text_put(&o, "]", 1);
    cs_text_put(&d, "}", 1);
    if (!ok || !o.ok || !d.ok) {
        free(o.p);
        free(d.p);
        return false;
    }
    *outcomes = o.p;
    *dates = d.p;
    return true;
}

/* Disposes of case ref in its own transaction, under its lock. */
static verdict dispose_one(run *r, const char *ref)
{
    const char *lock_params[] = {ref, r->before, r->cfg->case_type};
    char hours[16], *outcomes = NULL, *dates = NULL;
    const char *answer_params[] = {ref, hours};
    const char *params[] = {ref, r->cfg->topic_changes, r->cfg->topic_events, NULL, NULL};
    PGresult *res, *keys;
    char errstr[512];
    bool rendered;

    if (cs_db_exec(r->conn, "BEGIN", errstr, sizeof(errstr)) != CS_OK) {
        r->lost = PQstatus(r->conn) != CONNECTION_OK;
        say(r, CS_LOG_ERROR, "case=%s failed: %s", ref, errstr);
        return FAILED;
    }
    res = PQexecParams(r->conn, lock_sql, 3, NULL, lock_params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        verdict v = failed(r, ref, res);

        PQclear(res);
        return v;
    }
    if (PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        /* Disposed of by another run meanwhile, or given a later date (or none). */
        if (PQntuples(res) == 0)
            say(r, CS_LOG_INFO, "case=%s kept: it is no longer there", ref);
        else
            say(r, CS_LOG_INFO, "case=%s kept: its resolved_ttl is now %s", ref,
                PQgetvalue(res, 0, 1));
        PQclear(res);
        if (cs_db_exec(r->conn, "ROLLBACK", errstr, sizeof(errstr)) != CS_OK)
            return failed(r, ref, NULL);
        return KEPT;
    }
    PQclear(res);
    snprintf(hours, sizeof(hours), "%d", r->cfg->outcome_retention_hours);
    res = PQexecParams(r->conn, answers_sql, 2, NULL, answer_params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        verdict v = failed(r, ref, res);

        PQclear(res);
        return v;
    }
    rendered = render_answers(ref, res, &outcomes, &dates);
    PQclear(res);
    if (!rendered) {
        say(r, CS_LOG_ERROR,
            "case=%s failed: out of memory, or a history row's supplementary "
            "data is not an object",
            ref);
        if (cs_db_exec(r->conn, "ROLLBACK", errstr, sizeof(errstr)) != CS_OK)
            r->lost = PQstatus(r->conn) != CONNECTION_OK;
        return FAILED;
    }
    params[3] = outcomes;
    params[4] = dates;
    keys = PQexecParams(r->conn, dispose_sql, 5, NULL, params, NULL, NULL, 0);
    free(outcomes);
    free(dates);
    if (PQresultStatus(keys) != PGRES_TUPLES_OK) {
        verdict v = failed(r, ref, keys);

        PQclear(keys);
        return v;
    }
    if (cs_db_exec(r->conn, "COMMIT", errstr, sizeof(errstr)) != CS_OK) {
        /* Not known to be committed: the next run finds the case again if it is not. */
        r->lost = PQstatus(r->conn) != CONNECTION_OK;
        say(r, CS_LOG_ERROR, "case=%s failed at commit: %s", ref, errstr);
        PQclear(keys);
        return FAILED;
    }
    /* Redis after PostgreSQL, as the worker writes it: the database is the authority. */
    forget_keys(r, ref, keys);
    PQclear(keys);
    return DISPOSED;
}

/* Prints a case that would be disposed of, as one JSON line on stdout. */
static void list_case(const PGresult *page, int i)
{
    json_t *o = json_pack("{s:I, s:I, s:s, s:s, s:s, s:I}", "reference",
                          (json_int_t)strtoll(PQgetvalue(page, i, 0), NULL, 10), "id",
                          (json_int_t)strtoll(PQgetvalue(page, i, 1), NULL, 10), "case_type_id",
                          PQgetvalue(page, i, 2), "jurisdiction", PQgetvalue(page, i, 3),
                          "resolved_ttl", PQgetvalue(page, i, 4), "case_revision",
                          (json_int_t)strtoll(PQgetvalue(page, i, 5), NULL, 10));
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

    if (text)
        printf("%s\n", text);
    free(text);
    json_decref(o);
}

/* Goes through the cases past their retention, page by page. Returns false when it had to stop
 * (PostgreSQL lost, interrupted). */
static bool each_case(run *r)
{
    char after[24] = "0";
    const char *params[] = {r->before, r->cfg->case_type, after};
    long long limit = r->cfg->limit;

    for (;;) {
        PGresult *page = PQexecParams(r->conn, page_sql, 3, NULL, params, NULL, NULL, 0);
        int rows;

        if (PQresultStatus(page) != PGRES_TUPLES_OK) {
            char errstr[512];

            cs_db_error(r->conn, page, errstr, sizeof(errstr));
            say(r, CS_LOG_ERROR, "reading the cases past their retention: %s", errstr);
            PQclear(page);
            return false;
        }
        if ((rows = PQntuples(page)) == 0) {
            PQclear(page);
            return true;
        }
        for (int i = 0; i < rows; i++) {
            const char *ref = PQgetvalue(page, i, 0);

            if (limit > 0 && (r->cfg->dry_run ? r->listed : r->disposed) >= limit) {
                PQclear(page);
                return true;
            }
            if (!cs_running) {
                PQclear(page);
                say(r, CS_LOG_WARN, "interrupted");
                return false;
            }
            if (r->cfg->dry_run) {
                list_case(page, i);
                r->listed++;
            } else {
                switch (dispose_one(r, ref)) {
                case DISPOSED:
                    r->disposed++;
                    break;
                case KEPT:
                    r->kept++;
                    break;
                case FAILED:
                    r->failed++;
                    break;
                }
                if (r->lost) {
                    PQclear(page);
                    return false;
                }
            }
            progress(r);
        }
        snprintf(after, sizeof(after), "%s", PQgetvalue(page, rows - 1, 0));
        PQclear(page);
    }
}

int cs_admin_dispose(const cs_config *cfg, int argc, char **argv)
{
    run r = {.cfg = cfg, .start_ms = cs_now_ms()};
    const char *params[] = {cfg->before};
    cs_redis_tls redis_tls;
    char errstr[512];
    PGresult *res;
    bool complete;
    int rc = 1;

    (void)argv;
    if (argc != 0) {
        cs_log_error("invalid configuration: usage: casestream dispose [--case-type T] "
                     "[--before YYYY-MM-DD] [--dry-run] [--limit N]");
        return CS_EXIT_CONFIG;
    }
    if (cfg->before[0] && !cs_calendar_day(cfg->before)) {
        cs_log_error("invalid configuration: dispose: --before must be a day YYYY-MM-DD, not "
                     "\"%s\"",
                     cfg->before);
        return CS_EXIT_CONFIG;
    }
    redis_tls = cs_redis_tls_of(cfg);
    if (!cfg->dry_run &&
        !(r.idem = cs_idem_new(cfg->redis, &redis_tls, 1, errstr, sizeof(errstr)))) {
        cs_log_error("invalid configuration: dispose: %s", errstr);
        return CS_EXIT_CONFIG;
    }
    cs_signals_install();
    r.progress = isatty(STDERR_FILENO);
    if (!(r.conn = cs_db_connect(cfg->pg, errstr, sizeof(errstr)))) {
        cs_log_error("dispose: could not connect to postgresql: %s", errstr);
        goto cleanup;
    }
    res = PQexecParams(r.conn, before_sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cs_db_error(r.conn, res, errstr, sizeof(errstr));
        cs_log_error("dispose: %s", errstr);
        PQclear(res);
        goto cleanup;
    }
    snprintf(r.before, sizeof(r.before), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    complete = each_case(&r);
    if (r.progress_shown)
        fputs("\r\033[K", stderr);
    {
        char redis[48] = "", type[300] = "";

        if (r.redis_failed)
            snprintf(redis, sizeof(redis), " redis_failed=%lld", r.redis_failed);
        if (cfg->case_type[0])
            snprintf(type, sizeof(type), " case_type=%s", cfg->case_type);
        if (cfg->dry_run)
            cs_log_info("dispose: dry run cases=%lld before=%s%s elapsed=%.3fs%s", r.listed,
                        r.before, type, (double)(cs_now_ms() - r.start_ms) / 1000.0,
                        complete ? "" : " incomplete=true");
        else
            cs_log_info("dispose: done disposed=%lld kept=%lld failed=%lld before=%s%s%s "
                        "elapsed=%.3fs%s",
                        r.disposed, r.kept, r.failed, r.before, type, redis,
                        (double)(cs_now_ms() - r.start_ms) / 1000.0,
                        complete ? "" : " incomplete=true");
    }
    rc = complete && r.failed == 0 && r.redis_failed == 0 ? 0 : 1;
cleanup:
    if (r.conn)
        PQfinish(r.conn);
    cs_idem_free(r.idem);
    return rc;
}
