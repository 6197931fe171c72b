/* Integration tests across programs: casestream-produce --wait against a running worker. */
#include "it_support.h"
#include "runner.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Counts lines of path containing needle. */
static int count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    int n = 0;

    ck_assert_msg(f != NULL, "cannot read %s", path);
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

START_TEST(test_produce_wait_reports_applied_conflict_and_duplicate)
{
    char *run = it_unique("it-pipeline");
    char events[300], results[300], changes[300], dlq[300], group[300];
    char path[512], out[512], err[512];
    int64_t ref = it_new_ref();
    FILE *f;
    pid_t worker;

    snprintf(events, sizeof(events), "--topic-events=%s-events", run);
    snprintf(results, sizeof(results), "--topic-results=%s-results", run);
    snprintf(changes, sizeof(changes), "--topic-changes=%s-changes", run);
    snprintf(dlq, sizeof(dlq), "--topic-dlq=%s-dlq", run);
    snprintf(group, sizeof(group), "--group=%s", run);
    {
        const char *args[] = {events, results, changes, dlq, "topics", "create", NULL};
        ck_assert_int_eq(it_run("casestream", args, NULL, NULL, NULL), 0);
    }
    const char *wargs[] = {events, results, changes, dlq, group, "--metrics-port=0", NULL};
    worker = it_spawn("casestream-worker", wargs, NULL);

    /* create → applied 201; edit from version 1 → applied; another edit from
     * version 1 → conflict; the first create again → duplicate. */
    snprintf(path, sizeof(path), "build/it-logs/%s.ndjson", run);
    snprintf(out, sizeof(out), "build/it-logs/%s.out", run);
    snprintf(err, sizeof(err), "build/it-logs/%s.err", run);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "{\"idempotency_key\":\"a0000000-0000-4000-8000-000000000001\",\"case_reference\":"
            "%" PRId64 ",\"case_type\":\"NFD\",\"jurisdiction\":\"DIVORCE\",\"event_id\":"
            "\"create\",\"user_id\":\"u\",\"state\":\"Open\",\"data\":{\"a\":1}}\n"
            "{\"idempotency_key\":\"a0000000-0000-4000-8000-000000000002\",\"case_reference\":"
            "%" PRId64 ",\"case_type\":\"NFD\",\"event_id\":\"edit\",\"user_id\":\"u\","
            "\"expected_version\":1,\"data_merge\":{\"a\":2}}\n"
            "{\"idempotency_key\":\"a0000000-0000-4000-8000-000000000003\",\"case_reference\":"
            "%" PRId64 ",\"case_type\":\"NFD\",\"event_id\":\"edit\",\"user_id\":\"u\","
            "\"expected_version\":1,\"data_merge\":{\"a\":3}}\n"
            "{\"idempotency_key\":\"a0000000-0000-4000-8000-000000000001\",\"case_reference\":"
            "%" PRId64 ",\"case_type\":\"NFD\",\"jurisdiction\":\"DIVORCE\",\"event_id\":"
            "\"create\",\"user_id\":\"u\",\"state\":\"Open\",\"data\":{\"a\":1}}\n",
            ref, ref, ref, ref);
    fclose(f);
    {
        const char *args[] = {events, results, "--wait=90", path, NULL};
        int rc = it_run("casestream-produce", args, NULL, out, err);

        ck_assert_msg(rc == 0, "casestream-produce --wait exited %d (see %s)", rc, err);
    }
    ck_assert_int_eq(count_lines(out, "\"status\":\"applied\""), 2);
    ck_assert_int_eq(count_lines(out, "\"status\":\"conflict\""), 1);
    ck_assert_int_eq(count_lines(out, "\"status\":\"duplicate\""), 1);
    ck_assert_int_eq(count_lines(out, "\"code\":409"), 1);
    ck_assert_int_eq(count_lines(out, "\"code\":201"), 1);
    /* The duplicate carries the original event's version and revision. */
    ck_assert_int_eq(count_lines(out, "\"status\":\"duplicate\",\"code\":200,\"version\":1,"
                                      "\"case_revision\":1"),
                     1);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_event WHERE case_reference = "
                                "%" PRId64,
                                ref),
                     2);
    ck_assert_int_eq(it_stop(worker, SIGTERM, 20000), 0);
    free(run);
}
END_TEST

Suite *it_pipeline_suite(void)
{
    Suite *s = suite_create("it_pipeline");
    TCase *tc = tcase_create("produce_wait");

    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_produce_wait_reports_applied_conflict_and_duplicate);
    suite_add_tcase(s, tc);
    return s;
}
