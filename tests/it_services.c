/* Integration tests of the foundation: the four services answer and the schema holds. */
#include "it_support.h"
#include "runner.h"

#include "db.h"
#include "kafka.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs a statement expected to fail with SQLSTATE state (inside a savepoint). */
static void expect_sqlstate(const char *sql, const char *state)
{
    PGconn *c = it_pg();
    PGresult *res = PQexec(c, sql);
    const char *got = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    ck_assert_msg(PQresultStatus(res) == PGRES_FATAL_ERROR, "statement succeeded: %s", sql);
    ck_assert_msg(got && strcmp(got, state) == 0, "expected SQLSTATE %s, got %s: %s", state,
                  got ? got : "none", PQresultErrorMessage(res));
    PQclear(res);
}

START_TEST(test_schema_unique_constraints_hold)
{
    long long ref = it_new_ref();
    char sql[1024];
    PGresult *res;

    snprintf(sql, sizeof(sql),
             "INSERT INTO ccd.case_data (reference, case_type_id, jurisdiction, state, data) "
             "VALUES (%lld, 'T', 'J', 'Open', '{}');"
             "INSERT INTO ccd.case_event (case_reference, case_revision, version, event_id, "
             "user_id, state_id, security_classification, data, idempotency_key) VALUES "
             "(%lld, 1, 1, 'create', 'u', 'Open', 'PUBLIC', '{}', "
             "'00000000-0000-4000-8000-000000000001')",
             ref, ref);
    res = PQexec(it_pg(), sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
    PQclear(res);
    /* Same (case_reference, idempotency_key): 23505 unique_violation. */
    snprintf(sql, sizeof(sql),
             "INSERT INTO ccd.case_event (case_reference, case_revision, version, event_id, "
             "user_id, state_id, security_classification, data, idempotency_key) VALUES "
             "(%lld, 2, 1, 'e', 'u', 'Open', 'PUBLIC', '{}', "
             "'00000000-0000-4000-8000-000000000001')",
             ref);
    expect_sqlstate(sql, "23505");
    /* Same (case_reference, case_revision). */
    snprintf(sql, sizeof(sql),
             "INSERT INTO ccd.case_event (case_reference, case_revision, version, event_id, "
             "user_id, state_id, security_classification, data, idempotency_key) VALUES "
             "(%lld, 1, 1, 'e', 'u', 'Open', 'PUBLIC', '{}', "
             "'00000000-0000-4000-8000-000000000002')",
             ref);
    expect_sqlstate(sql, "23505");
    /* The case reference is the primary key. */
    snprintf(sql, sizeof(sql),
             "INSERT INTO ccd.case_data (reference, case_type_id, jurisdiction, state, data) "
             "VALUES (%lld, 'T', 'J', 'Open', '{}')",
             ref);
    expect_sqlstate(sql, "23505");
    /* The blob must be an object: 23514 check_violation. */
    snprintf(sql, sizeof(sql),
             "INSERT INTO ccd.case_data (reference, case_type_id, jurisdiction, state, data) "
             "VALUES (%lld, 'T', 'J', 'Open', '[]')",
             ref + 1);
    expect_sqlstate(sql, "23514");
    /* History of an unknown case: 23503 foreign_key_violation. */
    snprintf(sql, sizeof(sql),
             "INSERT INTO ccd.case_notes (case_reference, author, body, case_revision) "
             "VALUES (%lld, 'a', 'b', 1)",
             ref + 2);
    expect_sqlstate(sql, "23503");
}
END_TEST

START_TEST(test_migrations_are_recorded_with_checksums)
{
    ck_assert_int_ge(it_sql_int("SELECT count(*) FROM ccd.schema_migrations"), 1);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.schema_migrations "
                                "WHERE checksum !~ '^[0-9a-f]{64}$'"),
                     0);
}
END_TEST

START_TEST(test_migrate_twice_is_noop_and_edited_migration_refused)
{
    char *dir = it_unique("/tmp/cs-migrations");
    char cmd[1024];
    const char *args[] = {"--sql-dir", dir, "migrate", NULL};
    long long before = it_sql_int("SELECT count(*) FROM ccd.schema_migrations");

    /* A copy of the real migrations is up to date: nothing applied. */
    snprintf(cmd, sizeof(cmd), "mkdir -p %s && cp sql/*.sql %s/", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(it_run("casestream", args, NULL, NULL, NULL), 0);
    ck_assert_int_eq(it_run("casestream", args, NULL, NULL, NULL), 0);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.schema_migrations"), before);
    /* Editing an applied migration is refused with a clear error. */
    snprintf(cmd, sizeof(cmd), "echo '-- edited' >> %s/001_ccd_schema.sql", dir);
    ck_assert_int_eq(system(cmd), 0);
    char errpath[512];
    snprintf(errpath, sizeof(errpath), "%s/err.txt", dir);
    ck_assert_int_eq(it_run("casestream", args, NULL, NULL, errpath), 1);
    FILE *f = fopen(errpath, "r");
    char line[1024] = "";
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
    fclose(f);
    ck_assert_msg(strstr(line, "001_ccd_schema.sql was edited after it was applied"), "got: %s",
                  line);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}
END_TEST

START_TEST(test_kafka_has_the_pipeline_topics)
{
    const cs_config *cfg = it_config();
    const char *topics[] = {cfg->topic_events, cfg->topic_results, cfg->topic_changes,
                            cfg->topic_dlq};
    char errstr[512];
    rd_kafka_conf_t *conf = cs_kafka_conf_new(cfg, NULL, errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));

    ck_assert_msg(rk != NULL, "%s", errstr);
    for (int i = 0; i < 4; i++) {
        int n = cs_kafka_partition_count(rk, topics[i], 10000, errstr, sizeof(errstr));

        ck_assert_msg(n > 0, "topic %s: %s", topics[i], errstr);
        if (i == 0)
            ck_assert_int_eq(n, cfg->events_partitions);
    }
    rd_kafka_destroy(rk);
}
END_TEST

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    char *buf = userdata;
    size_t have = strlen(buf), n = size * nmemb;

    if (have + n < 4096) {
        memcpy(buf + have, ptr, n);
        buf[have + n] = '\0';
    }
    return n;
}

START_TEST(test_elasticsearch_answers_with_its_version)
{
    char body[4096] = "";
    CURL *curl = curl_easy_init();
    long status = 0;
    CURLcode rc;

    char url[512];

    /* The integ-test distribution has no handler for GET / (it answers 405);
     * the node info carries the same version. */
    snprintf(url, sizeof(url), "%s/_nodes/_local?filter_path=nodes.*.version", it_config()->es);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
    rc = curl_easy_perform(curl);
    ck_assert_msg(rc == CURLE_OK, "elasticsearch at %s is unreachable: %s", it_config()->es,
                  curl_easy_strerror(rc));
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    ck_assert_int_eq(status, 200);
    ck_assert_msg(strstr(body, "\"version\":\"8."), "no version in: %s", body);
}
END_TEST

START_TEST(test_redis_answers_ping)
{
    ck_assert_int_eq(system("redis-cli -u \"${CASESTREAM_REDIS:-redis://127.0.0.1:56379}\" ping "
                            "| grep -q PONG"),
                     0);
}
END_TEST

/* Connects with conninfo; the test fails if it cannot. */
static PGconn *connect_as(const char *var)
{
    const char *conninfo = getenv(var);
    PGconn *c;

    ck_assert_msg(conninfo != NULL, "%s is not set: eval \"$(scripts/stack.sh env)\" first", var);
    c = PQconnectdb(conninfo);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s: %s", var, PQerrorMessage(c));
    return c;
}

/* The SQLSTATE a statement fails with on c ("" if it succeeds). */
static const char *state_of(PGconn *c, const char *sql, char *buf, size_t size)
{
    PGresult *res = PQexec(c, sql);
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    snprintf(buf, size, "%s", PQresultStatus(res) == PGRES_FATAL_ERROR && st ? st : "");
    PQclear(res);
    return buf;
}

/* The user a pid file's process runs as (-1 if there is none). */
static long uid_of(const char *pidfile)
{
    char path[512], line[256];
    long pid = 0, uid = -1;
    FILE *f;

    snprintf(path, sizeof(path), "%s/run/%s",
             getenv("CASESTREAM_STACK_DIR") ? getenv("CASESTREAM_STACK_DIR") : ".stack", pidfile);
    if (!(f = fopen(path, "r")))
        return -1;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    if (pid <= 0 || !(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Uid: %ld", &uid) == 1)
            break;
    fclose(f);
    return uid;
}

START_TEST(test_stack_runs_with_least_privilege)
{
    PGconn *worker = connect_as("CASESTREAM_WORKER_PG");
    PGconn *reader = connect_as("CASESTREAM_READER_PG");
    char st[8], wrong[512];
    PGconn *c;
    const char *pidfiles[] = {"postgres.pid", "redis.pid", "kafka.pid", "es.pid"};

    /* No role of casestream's is a superuser. */
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'casestream%%' "
                                "AND rolsuper"),
                     0);
    /* The worker's role reads and writes, and changes no schema. */
    ck_assert_str_eq(state_of(worker, "SELECT count(*) FROM ccd.case_data", st, sizeof(st)), "");
    ck_assert_str_eq(state_of(worker, "CREATE TABLE ccd.it_nope (a int)", st, sizeof(st)), "42501");
    ck_assert_str_eq(state_of(worker, "DROP TABLE ccd.case_notes", st, sizeof(st)), "42501");
    ck_assert_str_eq(state_of(worker, "TRUNCATE ccd.case_event", st, sizeof(st)), "42501");
    /* The reader's role reads and writes no case. */
    ck_assert_str_eq(state_of(reader, "SELECT count(*) FROM ccd.case_event", st, sizeof(st)), "");
    ck_assert_str_eq(state_of(reader, "DELETE FROM ccd.case_notes WHERE false", st, sizeof(st)),
                     "42501");
    ck_assert_str_eq(
        state_of(reader, "UPDATE ccd.case_data SET version = version WHERE false", st, sizeof(st)),
        "42501");
    /* Disposal deletes cases and records them; dead letters are cleared once resolved. */
    ck_assert_str_eq(state_of(worker, "DELETE FROM ccd.case_data WHERE false", st, sizeof(st)), "");
    ck_assert_str_eq(state_of(worker, "DELETE FROM ccd.disposed_case WHERE false", st, sizeof(st)),
                     "");
    ck_assert_str_eq(
        state_of(worker, "DELETE FROM ccd.index_dead_letter WHERE false", st, sizeof(st)), "");
    ck_assert_str_eq(
        state_of(reader, "DELETE FROM ccd.index_dead_letter WHERE false", st, sizeof(st)), "");
    ck_assert_str_eq(state_of(reader, "SELECT count(*) FROM ccd.disposed_case", st, sizeof(st)),
                     "");
    ck_assert_str_eq(state_of(reader, "DELETE FROM ccd.disposed_case WHERE false", st, sizeof(st)),
                     "42501");
    PQfinish(worker);
    PQfinish(reader);
    /* A password is required, and checked. */
    snprintf(wrong, sizeof(wrong), "%s password=not-the-password", it_config()->pg);
    c = PQconnectdb(wrong);
    ck_assert_msg(PQstatus(c) != CONNECTION_OK, "connected with a wrong password");
    ck_assert_ptr_nonnull(strstr(PQerrorMessage(c), "password authentication failed"));
    PQfinish(c);
    /* Every service runs as the unprivileged user. */
    for (size_t i = 0; i < sizeof(pidfiles) / sizeof(pidfiles[0]); i++) {
        long uid = uid_of(pidfiles[i]);

        ck_assert_msg(uid > 0, "%s: the service is not running, or runs as root (uid %ld)",
                      pidfiles[i], uid);
    }
}
END_TEST

Suite *it_services_suite(void)
{
    Suite *s = suite_create("it_services");
    TCase *tc = tcase_create("services");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_schema_unique_constraints_hold);
    tcase_add_test(tc, test_migrations_are_recorded_with_checksums);
    tcase_add_test(tc, test_migrate_twice_is_noop_and_edited_migration_refused);
    tcase_add_test(tc, test_kafka_has_the_pipeline_topics);
    tcase_add_test(tc, test_elasticsearch_answers_with_its_version);
    tcase_add_test(tc, test_redis_answers_ping);
    tcase_add_test(tc, test_stack_runs_with_least_privilege);
    suite_add_tcase(s, tc);
    return s;
}
