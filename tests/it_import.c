/* casestream import against a real second database shaped as CCD data store's
 * (tests/fixtures/ccd_source.sql, made on the local PostgreSQL for each test and dropped after
 * it): a full preload that validates clean and is searchable above the revision offset, a run
 * killed at a random moment and run again ending as an uninterrupted one, a second preload
 * copying exactly the new events, each class of bad source row in ccd.import_error, and a
 * cutover after which a Kafka submission applies on top of the imported version. Each test
 * has a case type, references and (for the worker) topics of its own. */
#include "it_world.h"
#include "runner.h"

#include "es.h"
#include "run.h"

#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OFFSET 1000000000LL

/* A source database of this test: its name and conninfo. */
typedef struct source {
    char name[64];
    char *conninfo;
} source;

/* The conninfo of the role `casestream import` runs as (README: casestream_worker). */
static const char *import_pg(void)
{
    const char *pg = getenv("CASESTREAM_WORKER_PG");

    return pg && pg[0] ? pg : it_config()->pg;
}

/* conninfo with dbname set to db, as keyword=value pairs. Caller frees. */
static char *with_dbname(const char *conninfo, const char *db)
{
    char *err = NULL, *out = calloc(1, 4096);
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    size_t len = 0;

    ck_assert_msg(opts != NULL, "cannot parse the conninfo: %s", err ? err : "?");
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        const char *v = strcmp(o->keyword, "dbname") == 0 ? db : o->val;

        if (!v || !v[0])
            continue;
        len += (size_t)snprintf(out + len, 4096 - len, "%s%s='", len ? " " : "", o->keyword);
        for (const char *c = v; *c && len < 4090; c++) {
            if (*c == '\'' || *c == '\\')
                out[len++] = '\\';
            out[len++] = *c;
        }
        out[len++] = '\'';
    }
    PQconninfoFree(opts);
    return out;
}

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Runs sql (built from fmt) on conninfo's database (its notices unsaid); the test fails on an
 * error. */
__attribute__((format(printf, 2, 3))) static void run_sql(const char *conninfo, const char *fmt,
                                                          ...)
{
    PGconn *c = PQconnectdb(conninfo);
    char *sql = malloc(1 << 16);
    PGresult *res;
    va_list ap;

    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "cannot connect: %s", PQerrorMessage(c));
    PQsetNoticeProcessor(c, quiet, NULL);
    va_start(ap, fmt);
    vsnprintf(sql, 1 << 16, fmt, ap);
    va_end(ap);
    res = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK,
                  "%s\n-- failed: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(c);
    free(sql);
}

/* A new source database with CCD's tables (the role of CASESTREAM_PG may create databases),
 * whose ids start at first_id: the import keeps CCD's ids, so a test's must be its own in
 * casestream's database. */
static source source_new(int64_t first_id)
{
    static int n;
    source s;
    char *ddl = it_read_file("tests/fixtures/ccd_source.sql");

    ck_assert_msg(ddl[0], "tests/fixtures/ccd_source.sql cannot be read (run from the checkout)");
    snprintf(s.name, sizeof(s.name), "cs_it_import_%d_%d", (int)getpid(), ++n);
    run_sql(it_config()->pg, "DROP DATABASE IF EXISTS %s", s.name);
    run_sql(it_config()->pg, "CREATE DATABASE %s", s.name);
    s.conninfo = with_dbname(it_config()->pg, s.name);
    run_sql(s.conninfo, "%s", ddl);
    run_sql(s.conninfo,
            "SELECT setval('case_data_id_seq', %1$" PRId64 "),"
            " setval('case_event_id_seq', %1$" PRId64 ")",
            first_id);
    free(ddl);
    return s;
}

/* Drops the source database. Sessions of other roles on it (an import killed a moment ago, whose
 * backend has not noticed yet) cannot be terminated by this role: they are given up to 30 s to
 * end first. */
static void source_drop(source *s)
{
    char sql[256];
    long long deadline = cs_now_ms() + 30000;

    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s'"
             " AND usename <> current_user",
             s->name);
    while (it_sql_int("%s", sql) > 0 && cs_now_ms() < deadline)
        usleep(200 * 1000);
    run_sql(it_config()->pg, "DROP DATABASE IF EXISTS %s WITH (FORCE)", s->name);
    free(s->conninfo);
}

/* n consecutive references of this run; returns the one before the first (fill_cases's base). */
static int64_t new_refs(int n)
{
    int64_t base = it_new_ref();

    for (int i = 1; i < n; i++)
        it_new_ref();
    return base - 1;
}

/* The case type of a test: unique to this run, a name that makes an index. Caller frees. */
static char *new_type(const char *what)
{
    char *u = it_unique(what);

    for (char *c = u; *c; c++)
        if (*c == '_')
            *c = '-';
    return u;
}

/* Runs `casestream import` as the worker's role with --from, --case-type, --mode and extra
 * flags (NULL-terminated, may be NULL). Returns its exit status; *err its stderr when err is
 * not NULL (caller frees). */
static int import(const source *s, const char *type, const char *mode, const char *const *extra,
                  char **err)
{
    char pg[1024], from[1024], ct[300], md[64], out_path[256], err_path[256];
    const char *args[24] = {pg, from, ct, md};
    int n = 4, rc;

    snprintf(pg, sizeof(pg), "--pg=%s", import_pg());
    snprintf(from, sizeof(from), "--from=%s", s->conninfo);
    snprintf(ct, sizeof(ct), "--case-type=%s", type);
    snprintf(md, sizeof(md), "--mode=%s", mode);
    for (int i = 0; extra && extra[i] && n < 22; i++)
        args[n++] = extra[i];
    args[n++] = "import";
    args[n] = NULL;
    snprintf(out_path, sizeof(out_path), "build/it-logs/import-%d.out", (int)getpid());
    snprintf(err_path, sizeof(err_path), "build/it-logs/import-%d.err", (int)getpid());
    rc = it_run("casestream", args, NULL, out_path, err_path);
    if (err)
        *err = it_read_file(err_path);
    return rc;
}

/* The import started in the background, as import() runs it. */
static pid_t import_spawn(const source *s, const char *type)
{
    char pg[1024], from[1024], ct[300];
    const char *args[] = {pg, from, ct, "import", NULL};

    snprintf(pg, sizeof(pg), "--pg=%s", import_pg());
    snprintf(from, sizeof(from), "--from=%s", s->conninfo);
    snprintf(ct, sizeof(ct), "--case-type=%s", type);
    return it_spawn("casestream", args, NULL);
}

/* Everything casestream holds of case type T, as one md5: the cases, their history, the
 * import's errors and state (not the times a run was stamped with). Caller frees. */
static char *fingerprint(const char *type)
{
    PGresult *res = query(
        "SELECT md5(coalesce(string_agg(t, '|' ORDER BY t), '')) FROM ("
        " SELECT (c.*)::text AS t FROM ccd.case_data c WHERE c.case_type_id = '%1$s'"
        " UNION ALL SELECT (e.*)::text FROM ccd.case_event e JOIN ccd.case_data c"
        " ON c.reference = e.case_reference WHERE c.case_type_id = '%1$s'"
        " UNION ALL SELECT concat_ws(',', source_table, source_id, case_reference, reason)"
        " FROM ccd.import_error WHERE case_type_id = '%1$s'"
        " UNION ALL SELECT concat_ws(',', revision_offset, event_mark, case_mark, run_event_max,"
        " run_phase, owned_at) FROM ccd.case_type_import WHERE case_type_id = '%1$s') x",
        type);
    char *md5 = strdup(PQgetvalue(res, 0, 0));

    PQclear(res);
    return md5;
}

/* What the README says to do to roll an import back before its cutover. */
static void forget(const char *type)
{
    PQclear(query("DELETE FROM ccd.case_event WHERE case_reference IN"
                  " (SELECT reference FROM ccd.case_data WHERE case_type_id = '%s')",
                  type));
    PQclear(query("DELETE FROM ccd.index_dead_letter WHERE reference IN"
                  " (SELECT reference FROM ccd.case_data WHERE case_type_id = '%s')",
                  type));
    PQclear(query("DELETE FROM ccd.case_data WHERE case_type_id = '%s'", type));
    PQclear(query("DELETE FROM ccd.import_error WHERE case_type_id = '%s'", type));
    PQclear(query("DELETE FROM ccd.case_type_import WHERE case_type_id = '%s'", type));
}

/* Documents of the case type's index whose case_revision is above the offset. */
static long long searchable_above_offset(const char *type)
{
    char index[300];

    ck_assert(cs_es_index_name(type, index, sizeof(index)));
    return it_es_count(index, "{\"range\":{\"case_revision\":{\"gt\":%lld}}}", OFFSET);
}

/* Deletes the case type's index (behind its live name). */
static void drop_index(const char *type)
{
    char index[300];

    ck_assert(cs_es_index_name(type, index, sizeof(index)));
    it_es_drop(index);
}

/* --- tests ----------------------------------------------------------------------------------- */

START_TEST(test_import_killed_at_a_random_moment_and_run_again_ends_as_an_uninterrupted_run)
{
    int64_t base = new_refs(2000);
    source s = source_new(base);
    char *type = new_type("ItImport"), *clean, *again, *err;
    long long want, killed_at;
    PGconn *hold;
    PGresult *res;
    pid_t pid;
    int rc;

    run_sql(s.conninfo, "SELECT fill_cases('%s', 2000, 20, %" PRId64 ")", type, base);
    rc = import(&s, type, "preload", NULL, &err);
    ck_assert_msg(rc == 0, "import exited %d:\n%s", rc, err);
    ck_assert_msg(strstr(err, "cases=2000 events=40000 skipped=0") != NULL, "import said:\n%s",
                  err);
    free(err);
    ck_assert_int_eq(
        it_sql_int("SELECT count(*) FROM ccd.case_data WHERE case_type_id = '%s'", type), 2000);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_event e JOIN ccd.case_data c ON"
                                " c.reference = e.case_reference WHERE c.case_type_id = '%s'"
                                " AND e.case_revision > %lld AND e.idempotency_key IS NULL",
                                type, OFFSET),
                     40000);
    /* CCD's ids kept, the sequences moved past them. */
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_data WHERE case_type_id = '%s'"
                                " AND id <= (SELECT last_value FROM ccd.case_data_id_seq)",
                                type),
                     2000);
    rc = import(&s, type, "validate", NULL, &err);
    ck_assert_msg(rc == 0, "validate exited %d:\n%s", rc, err);
    ck_assert_ptr_nonnull(strstr(err, "cases=2000 mismatches=0 import_errors=0"));
    free(err);
    ck_assert_int_eq(searchable_above_offset(type), 2000);
    clean = fingerprint(type);

    /* Again from nothing, killed at a random point of its copy: once it has committed a random
     * number of events (0: as soon as it has taken the case type, in the cases phase). */
    forget(type);
    srand((unsigned)cs_now_us());
    want = (rand() % 31) * 1000;
    hold = PQconnectdb(it_config()->pg);
    ck_assert_msg(PQstatus(hold) == CONNECTION_OK, "%s", PQerrorMessage(hold));
    pid = import_spawn(&s, type);
    /* Polled every millisecond: the import copies tens of thousands of events a second. */
    ck_assert_msg(
        it_wait_sql_every(1, 1, 120000,
                          "SELECT count(*) FROM ccd.case_type_import WHERE case_type_id = '%s'"
                          " AND (SELECT count(*) FROM ccd.case_event e JOIN ccd.case_data c"
                          " ON c.reference = e.case_reference WHERE c.case_type_id = '%s')"
                          " >= %lld",
                          type, type, want),
        "the import did not reach %lld events", want);
    /* Holding ccd.case_type_import still (once a commit in flight is done) bounds how far the
     * import goes on between the count above and the kill, however fast the machine: to want
     * plus a batch (1000 events) per job, each copied but waiting to record its cursor. Not
     * ccd.case_event: a writer that copied a later batch holds it while it waits for its turn
     * to commit, and the writer of the earlier batch would queue behind this lock for good. */
    res = PQexec(hold, "BEGIN; SET LOCAL lock_timeout = '60s';"
                       " LOCK TABLE ccd.case_type_import IN EXCLUSIVE MODE");
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
    PQclear(res);
    rc = it_stop(pid, SIGKILL, 10000);
    ck_assert_msg(rc == 128 + SIGKILL, "the import was not killed in its run: status %d", rc);
    PQclear(PQexec(hold, "ROLLBACK"));
    PQfinish(hold);
    killed_at = it_sql_int("SELECT count(*) FROM ccd.case_event e JOIN ccd.case_data c"
                           " ON c.reference = e.case_reference WHERE c.case_type_id = '%s'",
                           type);
    ck_assert_int_lt(killed_at, 40000);
    fprintf(stderr, "import killed after %lld of 40000 events (waited for %lld)\n", killed_at,
            want);
    rc = import(&s, type, "preload", NULL, &err);
    ck_assert_msg(rc == 0, "the import run again exited %d:\n%s", rc, err);
    free(err);
    again = fingerprint(type);
    ck_assert_str_eq(again, clean);
    ck_assert_int_eq(import(&s, type, "validate", NULL, NULL), 0);
    ck_assert_int_eq(searchable_above_offset(type), 2000);

    /* A change in casestream is a mismatch validate names. */
    PQclear(
        query("UPDATE ccd.case_data SET state = 'Elsewhere' WHERE reference = %" PRId64, base + 7));
    rc = import(&s, type, "validate", NULL, &err);
    ck_assert_int_eq(rc, 1);
    ck_assert_ptr_nonnull(strstr(err, "mismatches=1"));
    free(err);
    {
        char path[256], line[128];

        snprintf(path, sizeof(path), "build/it-logs/import-%d.out", (int)getpid());
        err = it_read_file(path);
        snprintf(line, sizeof(line),
                 "{\"reference\":%" PRId64 ",\"field\":\"state\",\"source\":\"State2\","
                 "\"casestream\":\"Elsewhere\"}",
                 base + 7);
        ck_assert_msg(strstr(err, line) != NULL, "validate printed:\n%s", err);
        free(err);
    }
    forget(type);
    drop_index(type);
    free(clean);
    free(again);
    free(type);
    source_drop(&s);
}
END_TEST

START_TEST(test_import_second_preload_copies_exactly_the_new_events)
{
    int64_t base = new_refs(51);
    source s = source_new(base);
    char *type = new_type("ItImportDelta"), *err, *before;
    PGresult *res;

    run_sql(s.conninfo, "SELECT fill_cases('%s', 50, 5, %" PRId64 ")", type, base);
    ck_assert_int_eq(import(&s, type, "preload", NULL, NULL), 0);
    res = query("SELECT md5(string_agg(e.id || ':' || e.xmin::text, ',' ORDER BY e.id))"
                " FROM ccd.case_event e JOIN ccd.case_data c ON c.reference = e.case_reference"
                " WHERE c.case_type_id = '%s'",
                type);
    before = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);

    /* CCD goes on: an event for each of three cases, and a new case with two. */
    run_sql(s.conninfo,
            "WITH c AS (SELECT id FROM case_data WHERE case_type_id = '%1$s'"
            " AND reference IN (%2$" PRId64 " + 1, %2$" PRId64 " + 2, %2$" PRId64 " + 3)),"
            " e AS (INSERT INTO case_event (event_id, summary, user_id, case_data_id,"
            " case_type_id, case_type_version, state_id, data, user_first_name, user_last_name,"
            " event_name, state_name, security_classification) SELECT 'amend', 'amended',"
            " 'user-9', c.id, '%1$s', 2, 'Amended', jsonb_build_object('amended', c.id), 'Ann',"
            " 'Clerk', 'Amend', 'Amended', 'PUBLIC' FROM c RETURNING case_data_id, data)"
            " UPDATE case_data d SET data = e.data, state = 'Amended', version = d.version + 1,"
            " last_modified = now() AT TIME ZONE 'UTC' FROM e WHERE d.id = e.case_data_id",
            type, base);
    run_sql(s.conninfo, "SELECT fill_cases('%s', 1, 2, %" PRId64 ")", type, base + 50);

    ck_assert_int_eq(import(&s, type, "preload", NULL, &err), 0);
    ck_assert_msg(strstr(err, " events=5 skipped=0") != NULL, "import said:\n%s", err);
    free(err);
    /* The history copied before is untouched (not even rewritten)… */
    res = query("SELECT md5(string_agg(e.id || ':' || e.xmin::text, ',' ORDER BY e.id))"
                " FROM ccd.case_event e JOIN ccd.case_data c ON c.reference = e.case_reference"
                " WHERE c.case_type_id = '%s' AND e.case_revision <= %lld + 5"
                " AND e.event_id <> 'amend' AND c.reference <> %" PRId64 " + 51",
                type, OFFSET, base);
    ck_assert_str_eq(PQgetvalue(res, 0, 0), before);
    PQclear(res);
    /* …the new events follow it, and the cases are as CCD has them now. */
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_event e JOIN ccd.case_data c"
                                " ON c.reference = e.case_reference WHERE c.case_type_id = '%s'",
                                type),
                     255);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_event WHERE event_id = 'amend'"
                                " AND case_revision = %lld + 6 AND case_reference BETWEEN"
                                " %" PRId64 " + 1 AND %" PRId64 " + 3",
                                OFFSET, base, base),
                     3);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_data WHERE state = 'Amended'"
                                " AND version = 6 AND case_revision = %lld + 6 AND reference"
                                " BETWEEN %" PRId64 " + 1 AND %" PRId64 " + 3",
                                OFFSET, base, base),
                     3);
    ck_assert_int_eq(it_sql_int("SELECT case_revision - %lld FROM ccd.case_data"
                                " WHERE reference = %" PRId64 " + 51",
                                OFFSET, base),
                     2);
    ck_assert_int_eq(import(&s, type, "validate", NULL, NULL), 0);
    forget(type);
    drop_index(type);
    free(before);
    free(type);
    source_drop(&s);
}
END_TEST

/* The source id sql selects (on the source) as text. Caller frees. */
static char *source_id(const source *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *source_id(const source *s, const char *fmt, ...)
{
    PGconn *c = PQconnectdb(s->conninfo);
    char sql[1024];
    PGresult *res;
    char *id;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    res = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1, "%s: %s", sql,
                  PQresultErrorMessage(res));
    id = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(c);
    return id;
}

/* Asserts the reason recorded for source row id (which it frees) of table. */
static void assert_reason(const char *type, const char *table, char *id, const char *want)
{
    PGresult *res = query("SELECT reason FROM ccd.import_error WHERE case_type_id = '%s'"
                          " AND source_table = '%s' AND source_id = %s",
                          type, table, id);

    ck_assert_msg(PQntuples(res) == 1, "no import error for %s %s", table, id);
    ck_assert_str_eq(PQgetvalue(res, 0, 0), want);
    PQclear(res);
    free(id);
}

START_TEST(test_import_each_class_of_bad_source_row_lands_in_the_error_table)
{
    int64_t base = new_refs(10);
    source s = source_new(base);
    char *type = new_type("ItImportBad"), *err;

    run_sql(s.conninfo, "SELECT fill_cases('%s', 10, 3, %" PRId64 ")", type, base);
    /* A CCD whose classification type has a value casestream does not know. */
    run_sql(s.conninfo, "ALTER TYPE securityclassification ADD VALUE 'SECRET'");
    run_sql(s.conninfo, "UPDATE case_data SET data = '[1, 2]' WHERE reference = %" PRId64 " + 1",
            base);
    run_sql(s.conninfo,
            "UPDATE case_data SET security_classification = 'SECRET' WHERE reference = %" PRId64
            " + 2",
            base);
    run_sql(s.conninfo,
            "UPDATE case_event SET security_classification = 'SECRET' WHERE id = (SELECT max(e.id)"
            " FROM case_event e JOIN case_data c ON c.id = e.case_data_id"
            " WHERE c.reference = %" PRId64 " + 3)",
            base);
    run_sql(s.conninfo,
            "UPDATE case_event SET data = '\"text\"' WHERE id = (SELECT min(e.id) FROM case_event"
            " e JOIN case_data c ON c.id = e.case_data_id WHERE c.reference = %" PRId64 " + 4"
            " AND e.event_id = 'uploadDocument')",
            base);
    run_sql(s.conninfo,
            "INSERT INTO case_event (event_id, user_id, case_data_id, case_type_id,"
            " case_type_version, state_id, data, user_first_name, user_last_name, event_name,"
            " state_name, security_classification) VALUES ('lost', 'u', 999999999, '%s', 1,"
            " 'Open', '{}', 'A', 'B', 'Lost', 'Open', 'PUBLIC')",
            type);

    ck_assert_int_eq(import(&s, type, "preload", NULL, &err), 0);
    ck_assert_msg(strstr(err, "cases=8 ") && strstr(err, "skipped=11"), "import said:\n%s", err);
    free(err);

    assert_reason(type, "case_data",
                  source_id(&s, "SELECT id FROM case_data WHERE reference = %" PRId64 " + 1", base),
                  "data is not a JSON object but array");
    assert_reason(type, "case_data",
                  source_id(&s, "SELECT id FROM case_data WHERE reference = %" PRId64 " + 2", base),
                  "unknown security_classification SECRET");
    assert_reason(type, "case_event",
                  source_id(&s, "SELECT id FROM case_event WHERE security_classification = "
                                "'SECRET'"),
                  "unknown security_classification SECRET");
    assert_reason(type, "case_event",
                  source_id(&s, "SELECT id FROM case_event WHERE data = '\"text\"'"),
                  "data is not a JSON object but string");
    assert_reason(type, "case_event",
                  source_id(&s, "SELECT id FROM case_event WHERE case_data_id = 999999999"),
                  "its case (case_data.id 999999999) is not in case_data as a case of this case "
                  "type");
    /* The events of the two cases skipped are skipped with them, and say why. */
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.import_error WHERE case_type_id = '%s'"
                                " AND source_table = 'case_event' AND reason LIKE 'its case %%"
                                " was not imported (see the case''s own row)'",
                                type),
                     6);
    /* Every other row is there, the histories numbered without the rows skipped. */
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_event e JOIN ccd.case_data c ON"
                                " c.reference = e.case_reference WHERE c.case_type_id = '%s'",
                                type),
                     22);
    ck_assert_int_eq(it_sql_int("SELECT max(case_revision) - %lld FROM ccd.case_event"
                                " WHERE case_reference = %" PRId64 " + 4",
                                OFFSET, base),
                     2);
    ck_assert_int_eq(it_sql_int("SELECT case_revision - %lld FROM ccd.case_data"
                                " WHERE reference = %" PRId64 " + 4",
                                OFFSET, base),
                     2);
    /* validate compares what the import copies; the cutover waits for the skipped rows. */
    ck_assert_int_eq(import(&s, type, "validate", NULL, NULL), 0);
    ck_assert_int_eq(import(&s, type, "cutover", NULL, &err), 1);
    ck_assert_msg(strstr(err, "not taken over while source rows are skipped"), "cutover said:\n%s",
                  err);
    free(err);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_type_import WHERE case_type_id ="
                                " '%s' AND owned_at IS NULL",
                                type),
                     1);
    forget(type);
    drop_index(type);
    free(type);
    source_drop(&s);
}
END_TEST

/* Plans a submission of type for case ref: its JSON fields after the key fields. */
static planned *plan_for(const char *type, int64_t ref, const char *status, const char *fields)
{
    char key[37], mkey[24], value[2048];

    new_key(key);
    snprintf(mkey, sizeof(mkey), "%" PRId64, ref);
    snprintf(value, sizeof(value),
             "{\"idempotency_key\":\"%s\",\"case_reference\":%" PRId64 ",\"case_type\":\"%s\","
             "\"event_id\":\"amend\",\"user_id\":\"it-user\",%s}",
             key, ref, type, fields);
    return plan_raw(ref, key, status, mkey, value, strlen(value));
}

START_TEST(test_cutover_then_a_kafka_submission_applies_on_top_of_the_imported_version)
{
    int64_t base = new_refs(20), ref = base + 3;
    source s = source_new(base);
    char *type = new_type("ItImportCut"), *err;
    const outcome *o;
    outcome *all;
    planned *before, *after;
    pid_t worker;
    size_t n;

    world_new("import", 3);
    run_sql(s.conninfo, "SELECT fill_cases('%s', 20, 5, %" PRId64 ")", type, base);
    ck_assert_int_eq(import(&s, type, "preload", NULL, NULL), 0);
    worker = worker_start(NULL);

    /* Before the cutover CCD owns the case: the submission is refused, with the reason. */
    before = plan_for(type, ref, "rejected", "\"expected_version\":5,\"data_merge\":{\"n\":1}");
    send_one(before);
    it_flush();
    ck_assert(it_wait_sql(1, CATCH_UP_MS,
                          "SELECT count(*) FROM ccd.event_outcome WHERE topic = '%s'", W.events));

    ck_assert_int_eq(import(&s, type, "cutover", NULL, &err), 0);
    ck_assert_msg(strstr(err, "cutover: 20 cases agree with the source"), "cutover said:\n%s", err);
    free(err);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_type_import WHERE case_type_id ="
                                " '%s' AND owned_at IS NOT NULL",
                                type),
                     1);
    /* A preload after the cutover would overwrite what casestream took since. */
    ck_assert_int_eq(import(&s, type, "preload", NULL, NULL), 1);

    after = plan_for(type, ref, "applied", "\"expected_version\":5,\"data_merge\":{\"n\":1}");
    send_one(after);
    it_flush();
    all = read_outcomes(&n);
    o = find_outcome(all, n, ref, before->key, "rejected");
    ck_assert_msg(o && o->error &&
                      strstr(o->error, "is being imported from CCD and is not cut "
                                       "over yet"),
                  "outcome before the cutover: %s", o ? o->text : "none");
    o = find_outcome(all, n, ref, after->key, "applied");
    ck_assert_msg(o != NULL, "no applied outcome after the cutover");
    ck_assert_int_eq(o->version, 6);
    ck_assert_int_eq(o->revision, OFFSET + 6);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_data WHERE reference = %" PRId64
                                " AND version = 6 AND case_revision = %lld + 6"
                                " AND data->>'n' = '1' AND data ? 'applicant'",
                                ref, OFFSET),
                     1);
    ck_assert_int_eq(
        it_sql_int("SELECT count(*) FROM ccd.case_event WHERE case_reference = %" PRId64, ref), 6);
    outcomes_free(all, n);
    worker_stop(worker);
    forget(type);
    drop_index(type);
    free(type);
    source_drop(&s);
}
END_TEST

Suite *it_import_suite(void)
{
    Suite *s = suite_create("it_import");
    TCase *tc = tcase_create("import");

    tcase_set_timeout(tc, 900);
    tcase_add_test(
        tc, test_import_killed_at_a_random_moment_and_run_again_ends_as_an_uninterrupted_run);
    tcase_add_test(tc, test_import_second_preload_copies_exactly_the_new_events);
    tcase_add_test(tc, test_import_each_class_of_bad_source_row_lands_in_the_error_table);
    tcase_add_test(tc, test_cutover_then_a_kafka_submission_applies_on_top_of_the_imported_version);
    suite_add_tcase(s, tc);
    return s;
}
