/* Integration tests of casestream-worker against the real services (DESIGN §2-§5, §9): outcomes,
 * exactly-once application, ordering, a crash at every fault point, PostgreSQL and Redis
 * outages, malformed input and the DLQ, a consumer group losing a member, graceful stop.
 *
 * Each test runs the worker on topics and a group of its own and uses case references from
 * it_new_ref(), which are consecutive within a test: lo..hi covers all of a test's cases. */
#include "it_world.h"
#include "runner.h"
#include "../worker/worker.h"

#include "es.h"
#include "kafka.h"
#include "run.h"
#include "uuid.h"

#include <ctype.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* --- 1. optimistic lock ---------------------------------------------------------------------- */

START_TEST(test_worker_same_expected_version_one_applied_one_conflict)
{
    int64_t ref;
    planned *a, *b, *c, *d;
    outcome *o;
    size_t n;
    pid_t pid;

    world_new("conflict", 1);
    ref = new_ref();
    plan_create(ref, NULL);
    /* Two edits from version 1 in one batch, decided in memory... */
    a = plan_sub(ref, NULL, "applied", "edit",
                 "{\"expected_version\": 1, \"data_merge\": "
                 "{\"title\": \"first\"}}");
    b = plan_sub(ref, NULL, "conflict", "edit",
                 "{\"expected_version\": 1, \"data_merge\": "
                 "{\"title\": \"second\"}}");
    a->revision = 2;
    send_range(0, W.nplan);
    pid = worker_start(NULL);
    ck_assert_msg(it_wait_sql(2, CATCH_UP_MS,
                              "SELECT count(*) FROM ccd.case_event WHERE case_reference = "
                              "%" PRId64,
                              ref),
                  "first pair not applied");
    /* ...and two from version 2 in a later batch, decided against the stored case. */
    c = plan_sub(ref, NULL, "applied", "edit2",
                 "{\"expected_version\": 2, \"data_merge\": "
                 "{\"title\": \"third\"}}");
    d = plan_sub(ref, NULL, "conflict", "edit2",
                 "{\"expected_version\": 2, \"data_merge\": "
                 "{\"title\": \"fourth\"}}");
    c->revision = 3;
    send_range(3, 5);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    {
        const outcome *x = find_outcome(o, n, ref, b->key, "conflict");
        const outcome *y = find_outcome(o, n, ref, d->key, "conflict");

        ck_assert_int_eq(x->code, 409);
        ck_assert_int_eq(y->code, 409);
        ck_assert_msg(x->error && strstr(x->error, "expected version 1"), "%s", x->text);
        ck_assert_msg(y->error && strstr(y->error, "expected version 2"), "%s", y->text);
        ck_assert_int_eq(find_outcome(o, n, ref, a->key, "applied")->code, 200);
        ck_assert_int_eq(find_outcome(o, n, ref, a->key, "applied")->version, 2);
    }
    check_applied_once();
    /* History: one row per edit that went through; the blob is the winners'. */
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_event WHERE case_reference = "
                                "%" PRId64 " AND event_id = 'edit'",
                                ref),
                     1);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_event WHERE case_reference = "
                                "%" PRId64 " AND event_id = 'edit2'",
                                ref),
                     1);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_event WHERE case_reference = "
                                "%" PRId64 " AND idempotency_key IN ('%s', '%s')",
                                ref, b->key, d->key),
                     0);
    ck_assert_int_eq(
        it_sql_int("SELECT version FROM ccd.case_data WHERE reference = %" PRId64, ref), 3);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_data WHERE reference = %" PRId64
                                " AND data->>'title' = 'third'",
                                ref),
                     1);
    outcomes_free(o, n);
    worker_stop_last(pid);
}
END_TEST

/* --- 2. duplicates, with and without Redis ------------------------------------------------ */

START_TEST(test_worker_resubmission_is_duplicate_with_original_figures)
{
    int port = 20000 + (int)(getpid() % 20000);
    char portflag[32];
    const char *extra[] = {portflag, NULL};
    int64_t ref;
    planned *k1, *k2;
    outcome *o;
    size_t n;
    pid_t pid;
    long long version, revision, seq, hits, fallbacks;

    snprintf(portflag, sizeof(portflag), "--metrics-port=%d", port);
    world_new("duplicate", 1);
    ref = new_ref();
    k1 = plan_create(ref, NULL);
    k2 = plan_sub(ref, NULL, "applied", "edit", "{\"data_merge\": {\"title\": \"edited\"}}");
    plan_sub(ref, NULL, "applied", "edit", "{\"data_merge\": {\"title\": \"edited again\"}}");
    send_range(0, 3);
    pid = worker_start(extra);
    ck_assert_msg(it_wait_sql(3, CATCH_UP_MS,
                              "SELECT count(*) FROM ccd.case_event WHERE case_reference = "
                              "%" PRId64,
                              ref),
                  "submissions not applied");
    o = read_outcomes(&n);
    {
        const outcome *x = find_outcome(o, n, ref, k2->key, "applied");

        ck_assert_ptr_nonnull(x);
        version = x->version;
        revision = x->revision;
        seq = x->seq;
    }
    outcomes_free(o, n);
    ck_assert_int_eq(version, 2);
    ck_assert_int_eq(revision, 2);
    ck_assert_int_eq(seq, it_sql_int("SELECT id FROM ccd.case_event WHERE case_reference = "
                                     "%" PRId64 " AND idempotency_key = '%s'",
                                     ref, k2->key));
    /* Redis holds the outcome of every applied key, written after the commit. */
    ck_assert_msg(redis_exists(ref, k2->key) == 1, "no redis entry for case %" PRId64 " key %s",
                  ref, k2->key);
    hits = metric(port, "casestream_worker_redis_hits_total");

    /* With Redis up: the repeat is answered from Redis. */
    plan_raw(ref, k2->key, "duplicate", W.plan[1].mkey, k2->value, k2->len);
    send_range(3, 4);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    {
        const outcome *x = &o[n - 1];

        ck_assert_str_eq(x->status, "duplicate");
        ck_assert_int_eq(x->code, 200);
        ck_assert_int_eq(x->version, version);
        ck_assert_int_eq(x->revision, revision);
        ck_assert_int_eq(x->seq, seq);
    }
    outcomes_free(o, n);
    ck_assert_int_gt(metric(port, "casestream_worker_redis_hits_total"), hits);
    ck_assert_int_eq(events_in_world(), 3);

    /* With Redis stopped: PostgreSQL answers alone, with the same figures. */
    fallbacks = metric(port, "casestream_worker_redis_fallbacks_total");
    ck_assert_int_eq(it_stack("stop redis"), 0);
    ck_assert_msg(!redis_up(), "redis still answers after stop");
    plan_raw(ref, k2->key, "duplicate", W.plan[1].mkey, k2->value, k2->len);
    plan_raw(ref, k1->key, "duplicate", W.plan[0].mkey, k1->value, k1->len);
    send_range(4, 6);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    for (size_t i = 0; i < n; i++) {
        const outcome *x = &o[i];

        if (x->offset < 4)
            continue;
        ck_assert_str_eq(x->status, "duplicate");
        ck_assert_int_eq(x->code, 200);
        if (strcmp(x->key, k2->key) == 0) {
            ck_assert_int_eq(x->version, version);
            ck_assert_int_eq(x->revision, revision);
            ck_assert_int_eq(x->seq, seq);
        } else {
            ck_assert_int_eq(x->version, 1);
            ck_assert_int_eq(x->revision, 1);
        }
    }
    outcomes_free(o, n);
    ck_assert_int_gt(metric(port, "casestream_worker_redis_fallbacks_total"), fallbacks);
    ck_assert_int_eq(events_in_world(), 3);
    ck_assert_int_eq(it_sql_int("SELECT case_revision FROM ccd.case_data WHERE reference = "
                                "%" PRId64,
                                ref),
                     3);
    ck_assert_int_eq(it_stack("start redis"), 0);
    ck_assert(redis_up());
    worker_stop_last(pid);
    check_applied_once();
}
END_TEST

/* --- 3. an unchanged blob --------------------------------------------------------------------- */

START_TEST(test_worker_unchanged_blob_keeps_version_bumps_revision)
{
    int64_t ref;
    planned *p;
    outcome *o;
    size_t n;
    pid_t pid;

    world_new("same-data", 1);
    ref = new_ref();
    plan_sub(ref, NULL, "applied", "create",
             "{\"jurisdiction\": \"IT\", \"state\": \"Open\", \"data\": "
             "{\"a\": 1, \"b\": {\"c\": [1, 2], \"d\": \"x\"}}}");
    /* The same value in another member order, then a merge patch that changes nothing. */
    p = plan_sub(ref, NULL, "applied", "same",
                 "{\"expected_version\": 1, \"data\": {\"b\": {\"d\": \"x\", \"c\": [1, 2]}, "
                 "\"a\": 1}}");
    p->revision = 2;
    p = plan_sub(ref, NULL, "applied", "same",
                 "{\"expected_version\": 1, \"data_merge\": {\"a\": 1, \"b\": {\"d\": \"x\"}}}");
    p->revision = 3;
    send_range(0, W.nplan);
    pid = worker_start(NULL);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    ck_assert_int_eq(o[1].version, 1);
    ck_assert_int_eq(o[1].revision, 2);
    ck_assert_int_eq(o[2].version, 1);
    ck_assert_int_eq(o[2].revision, 3);
    outcomes_free(o, n);
    check_applied_once();
    ck_assert_int_eq(
        it_sql_int("SELECT version FROM ccd.case_data WHERE reference = %" PRId64, ref), 1);
    ck_assert_int_eq(it_sql_int("SELECT case_revision FROM ccd.case_data WHERE reference = "
                                "%" PRId64,
                                ref),
                     3);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_event WHERE case_reference = "
                                "%" PRId64 " AND version = 1",
                                ref),
                     3);
    /* A real change after them moves the version. */
    p = plan_sub(ref, NULL, "applied", "change", "{\"data_merge\": {\"a\": 2}}");
    p->revision = 4;
    send_range(3, 4);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    ck_assert_int_eq(o[3].version, 2);
    outcomes_free(o, n);
    ck_assert_int_eq(
        it_sql_int("SELECT version FROM ccd.case_data WHERE reference = %" PRId64, ref), 2);
    worker_stop_last(pid);
}
END_TEST

/* --- 4. notes from concurrent producers ------------------------------------------------------- */

#define NOTE_PRODUCERS  4
#define NOTES_EACH      15
#define NOTE_BLOB_EDITS 10

static bool pick_tag(size_t i, void *ctx)
{
    return W.plan[i].tag == *(int *)ctx;
}

START_TEST(test_worker_notes_from_concurrent_producers_never_conflict)
{
    feeder f[NOTE_PRODUCERS + 1];
    int tags[NOTE_PRODUCERS + 1];
    int64_t ref;
    outcome *o;
    size_t n;
    pid_t pid;

    world_new("notes", 3);
    ref = new_ref();
    plan_create(ref, NULL);
    /* Producers 1..4 send notes only, producer 5 blob edits with the right expected version
     * in order; all on the same case, interleaved as the threads run. */
    for (int k = 0; k < NOTES_EACH; k++)
        for (int who = 1; who <= NOTE_PRODUCERS; who++)
            plan_sub(ref, NULL, "applied", "addNote",
                     "{\"notes\": [{\"author\": \"p%d\", \"body\": \"note %d a\"}, "
                     "{\"author\": \"p%d\", \"body\": \"note %d b\"}]}",
                     who, k, who, k)
                ->tag = who;
    for (int e = 1; e <= NOTE_BLOB_EDITS; e++)
        plan_sub(ref, NULL, "applied", "editBlob",
                 "{\"expected_version\": %d, \"data_merge\": {\"n\": %d}}", e, e)
            ->tag = NOTE_PRODUCERS + 1;
    pid = worker_start(NULL);
    send_range(0, 1);
    /* The blob edits first and slower (about 0.6 s in all), the notes (about 0.4 s each) once
     * the first edit is out: the notes land between the edits. */
    for (int who = NOTE_PRODUCERS + 1; who >= 1; who--) {
        tags[who - 1] = who;
        feeder_start(&f[who - 1], pick_tag, &tags[who - 1], who > NOTE_PRODUCERS ? 50 : 20);
        for (long long until = cs_now_ms() + 30000;
             who > NOTE_PRODUCERS && atomic_load(&f[who - 1].sent) == 0 && cs_now_ms() < until;)
            usleep(1000);
    }
    for (int who = 0; who <= NOTE_PRODUCERS; who++)
        feeder_join(&f[who]);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    ck_assert_uint_eq(count_status(o, n, "conflict"), 0);
    ck_assert_uint_eq(count_status(o, n, "applied"),
                      1 + NOTE_PRODUCERS * NOTES_EACH + NOTE_BLOB_EDITS);
    outcomes_free(o, n);
    check_applied_once();
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_notes WHERE case_reference = "
                                "%" PRId64,
                                ref),
                     2 * NOTE_PRODUCERS * NOTES_EACH);
    ck_assert_int_eq(
        it_sql_int("SELECT version FROM ccd.case_data WHERE reference = %" PRId64, ref),
        1 + NOTE_BLOB_EDITS);
    ck_assert_int_eq(it_sql_int("SELECT case_revision FROM ccd.case_data WHERE reference = "
                                "%" PRId64,
                                ref),
                     1 + NOTE_PRODUCERS * NOTES_EACH + NOTE_BLOB_EDITS);
    ck_assert_int_eq(it_sql_int("SELECT (data->>'n')::int FROM ccd.case_data WHERE reference = "
                                "%" PRId64,
                                ref),
                     NOTE_BLOB_EDITS);
    /* The edits and notes really interleaved: some note came between two blob edits. */
    ck_assert_int_gt(it_sql_int("SELECT count(*) FROM ccd.case_event WHERE case_reference = "
                                "%" PRId64 " AND event_id = 'addNote' AND version BETWEEN 2 AND "
                                "%d",
                                ref, NOTE_BLOB_EDITS),
                     0);
    /* Notes-only events kept the version of the last blob change before them. */
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_event e WHERE case_reference = "
                                "%" PRId64 " AND event_id = 'addNote' AND version <> (SELECT "
                                "max(p.version) FROM ccd.case_event p WHERE p.case_reference = "
                                "e.case_reference AND p.event_id <> 'addNote' AND "
                                "p.case_revision < e.case_revision)",
                                ref),
                     0);
    worker_stop_last(pid);
}
END_TEST

/* --- 5. order and revisions over many cases ----------------------------------------------------
 */

#define ORDER_CASES 50
#define ORDER_EACH  20

START_TEST(test_worker_history_keeps_produce_order_over_many_cases)
{
    int64_t refs[ORDER_CASES];
    int next[ORDER_CASES] = {0};
    int slots[ORDER_CASES * ORDER_EACH];
    outcome *o;
    size_t n;
    pid_t pid;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();

    world_new("order", 12);
    for (int c = 0; c < ORDER_CASES; c++)
        refs[c] = new_ref();
    for (int i = 0; i < ORDER_CASES * ORDER_EACH; i++)
        slots[i] = i % ORDER_CASES;
    for (int i = ORDER_CASES * ORDER_EACH - 1; i > 0; i--) {
        int j = (int)(rand_r(&seed) % (unsigned)(i + 1)), t = slots[i];

        slots[i] = slots[j];
        slots[j] = t;
    }
    /* Each case's k-th submission (in produce order) carries seq k; the first creates. */
    for (int i = 0; i < ORDER_CASES * ORDER_EACH; i++) {
        int c = slots[i], k = ++next[c];
        planned *p;

        if (k == 1)
            p = plan_sub(refs[c], NULL, "applied", "create",
                         "{\"jurisdiction\": \"IT\", \"state\": \"Open\", \"summary\": \"seq 1\","
                         " \"data\": {\"seq\": 1}}");
        else
            p = plan_sub(refs[c], NULL, "applied", "step",
                         "{\"summary\": \"seq %d\", \"data_merge\": {\"seq\": %d}}", k, k);
        p->revision = k;
    }
    pid = worker_start(NULL);
    send_range(0, W.nplan);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    ck_assert_uint_eq(count_status(o, n, "applied"), ORDER_CASES * ORDER_EACH);
    outcomes_free(o, n);
    check_applied_once();
    /* Revision k holds the k-th produced submission: history in produce order, no gaps. */
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_event WHERE case_reference "
                                "BETWEEN %" PRId64 " AND %" PRId64 " AND ((data->>'seq')::int "
                                "<> case_revision OR summary <> 'seq ' || case_revision "
                                "OR version <> case_revision)",
                                W.lo, W.hi),
                     0);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_data WHERE reference BETWEEN "
                                "%" PRId64 " AND %" PRId64 " AND case_revision = %d AND "
                                "(data->>'seq')::int = %d",
                                W.lo, W.hi, ORDER_EACH, ORDER_EACH),
                     ORDER_CASES);
    worker_stop_last(pid);
}
END_TEST

/* --- 6. a crash at every fault point -----------------------------------------------------------
 */

#define FAULT_CASES 10

START_TEST(test_worker_fault_point_loses_and_duplicates_nothing)
{
    const char *fault = cs_worker_faults[_i];
    char flag[64];
    const char *extra[] = {flag, NULL};
    int64_t refs[FAULT_CASES];
    planned *edit[FAULT_CASES];
    outcome *o;
    size_t n;
    pid_t pid;
    int status;

    world_new(fault, 1);
    /* One partition, and every case's applied submissions before the others: whatever the
     * first batch holds, its middle job is one that writes, so mid_batch is reached. */
    for (int c = 0; c < FAULT_CASES; c++) {
        refs[c] = new_ref();
        plan_create(refs[c], NULL);
        edit[c] = plan_sub(refs[c], NULL, "applied", "edit",
                           "{\"expected_version\": 1, \"data_merge\": {\"n\": 1}}");
        edit[c]->revision = 2;
        plan_sub(refs[c], NULL, "applied", "addNote",
                 "{\"notes\": [{\"author\": \"a\", \"body\": \"b\"}]}")
            ->revision = 3;
    }
    for (int c = 0; c < FAULT_CASES; c++) {
        plan_sub(refs[c], NULL, "conflict", "edit",
                 "{\"expected_version\": 1, \"data_merge\": {\"n\": 2}}");
        plan_raw(refs[c], edit[c]->key, "duplicate", edit[c]->mkey, edit[c]->value, edit[c]->len)
            ->revision = 2;
        plan_sub(refs[c], NULL, "rejected", "edit",
                 "{\"data\": {\"n\": 3}, \"data_merge\": {\"n\": 4}}");
    }
    snprintf(flag, sizeof(flag), "--fault=%s", fault);
    pid = worker_start(extra);
    wait_relay(pid);
    send_range(0, W.nplan);
    status = it_wait_exit(pid, 90000);
    if (status < 0)
        it_stop(pid, SIGKILL, 5000);
    ck_assert_msg(status == 70,
                  "worker with --fault=%s exited with status %d, expected 70 (see "
                  "build/it-logs/casestream-worker-%d.log)",
                  fault, status, (int)pid);
    ck_assert(log_has(pid, "fault point reached"));
    pid = worker_start(NULL);
    wait_relay(pid);
    wait_committed();
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    fprintf(stderr, "it_worker: fault %s: %zu outcomes, %zu copies sent again\n", fault, n,
            W.nraw - n);
    outcomes_free(o, n);
    check_applied_once();
    check_changes();
    worker_stop_last(pid);
}
END_TEST

/* --- 7. PostgreSQL restarted mid-stream ------------------------------------------------------- */

static bool pick_all(size_t i, void *ctx)
{
    (void)i;
    (void)ctx;
    return true;
}

START_TEST(test_worker_survives_postgresql_restart)
{
    feeder f;
    outcome *o;
    size_t n;
    pid_t pid;
    long long t0;
    size_t sent;
    int rc;

    world_new("pg-restart", 6);
    plan_stream(30, 12);
    pid = worker_start(NULL);
    wait_relay(pid);
    feeder_start(&f, pick_all, NULL, 15);
    /* Restart once the stream is flowing and the worker has applied some of it. */
    ck_assert_msg(it_wait_sql(1, 60000,
                              "SELECT (count(*) > 20)::int FROM ccd.case_event WHERE "
                              "case_reference BETWEEN %" PRId64 " AND %" PRId64,
                              W.lo, W.hi),
                  "the worker applied nothing before the restart");
    it_pg_reset();
    t0 = cs_now_ms();
    sent = atomic_load(&f.sent);
    ck_assert_msg(sent < f.n, "the stream ended before the restart");
    rc = it_stack("restart pg");
    ck_assert_msg(rc == 0, "scripts/stack.sh restart pg: status %d", rc);
    fprintf(stderr, "it_worker: postgresql restarted in %lld ms, %zu..%zu of %zu sent\n",
            cs_now_ms() - t0, sent, atomic_load(&f.sent), f.n);
    feeder_join(&f);
    wait_committed();
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    outcomes_free(o, n);
    check_applied_once();
    check_changes();
    ck_assert_msg(log_has(pid, "batch not committed, retrying"),
                  "the worker never saw the restart");
    worker_stop_last(pid);
}
END_TEST

/* Plans a message that must be answered "invalid"; len SIZE_MAX = strlen(text). */
static void plan_invalid(int64_t ref, const char *mkey, const char *text, size_t len)
{
    plan_raw(ref, NULL, "invalid", mkey, text, len == SIZE_MAX ? strlen(text) : len);
}

/* --- 8. malformed input and the DLQ
 * --------------------------------------------------------------- */

START_TEST(test_worker_malformed_input_goes_to_dlq_valid_around_it_applied)
{
    const char *extra[] = {"--max-message-bytes=4096", NULL};
    int64_t a, b, c;
    char key[37], json[8192], mkey[24], other[24], big[6000];
    size_t ninvalid = 0, nrejected = 0;
    outcome *o;
    size_t n;
    pid_t pid;

    world_new("malformed", 3);
    a = new_ref();
    b = new_ref();
    c = new_ref();
    snprintf(mkey, sizeof(mkey), "%" PRId64, c);
    snprintf(other, sizeof(other), "%" PRId64, a);
#define INVALID(mk, text, len) (plan_invalid(c, (mk), (text), (len)), ninvalid++)
#define JSON(...)              (snprintf(json, sizeof(json), __VA_ARGS__), json)
    plan_create(a, NULL);
    /* 1 not JSON, 2 an array, 3 a string, 4 empty. */
    INVALID(mkey, "this is {not json", strlen("this is {not json"));
    plan_sub(a, NULL, "applied", "edit", "{\"data_merge\": {\"n\": 1}}");
    INVALID(mkey, "[1, 2, 3]", 9);
    INVALID(mkey, "\"hello\"", 7);
    INVALID(mkey, "", 0);
    /* 5 no idempotency_key, 6 not a UUID. */
    new_key(key);
    INVALID(mkey,
            JSON("{\"case_reference\": %" PRId64 ", \"case_type\": \"%s\", \"event_id\": \"e\","
                 " \"user_id\": \"u\"}",
                 c, CASE_TYPE),
            SIZE_MAX);
    INVALID(mkey,
            JSON("{\"idempotency_key\": \"not-a-uuid\", \"case_reference\": %" PRId64 ","
                 " \"case_type\": \"%s\", \"event_id\": \"e\", \"user_id\": \"u\"}",
                 c, CASE_TYPE),
            SIZE_MAX);
    plan_create(b, NULL);
    /* 7 no case_reference, 8 reference 0, 9 reference with a leading zero. */
    INVALID(mkey,
            JSON("{\"idempotency_key\": \"%s\", \"case_type\": \"%s\", \"event_id\": \"e\","
                 " \"user_id\": \"u\"}",
                 key, CASE_TYPE),
            SIZE_MAX);
    INVALID("0",
            JSON("{\"idempotency_key\": \"%s\", \"case_reference\": 0, \"case_type\": \"%s\","
                 " \"event_id\": \"e\", \"user_id\": \"u\"}",
                 key, CASE_TYPE),
            SIZE_MAX);
    INVALID("007",
            JSON("{\"idempotency_key\": \"%s\", \"case_reference\": \"007\", \"case_type\": "
                 "\"%s\", \"event_id\": \"e\", \"user_id\": \"u\"}",
                 key, CASE_TYPE),
            SIZE_MAX);
    /* 10 key and reference differ, 11 no key at all. */
    INVALID(other,
            JSON("{\"idempotency_key\": \"%s\", \"case_reference\": %" PRId64 ", \"case_type\":"
                 " \"%s\", \"event_id\": \"e\", \"user_id\": \"u\"}",
                 key, c, CASE_TYPE),
            SIZE_MAX);
    INVALID(NULL,
            JSON("{\"idempotency_key\": \"%s\", \"case_reference\": %" PRId64 ", \"case_type\":"
                 " \"%s\", \"event_id\": \"e\", \"user_id\": \"u\"}",
                 key, c, CASE_TYPE),
            SIZE_MAX);
    plan_sub(b, NULL, "applied", "addNote", "{\"notes\": [{\"author\": \"a\", \"body\": \"b\"}]}");
    /* 12 over --max-message-bytes (otherwise valid). */
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    INVALID(mkey,
            JSON("{\"idempotency_key\": \"%s\", \"case_reference\": %" PRId64 ", \"case_type\":"
                 " \"%s\", \"event_id\": \"e\", \"user_id\": \"u\", \"jurisdiction\": \"IT\","
                 " \"state\": \"Open\", \"data\": {}, \"description\": \"%s\"}",
                 key, c, CASE_TYPE, big),
            SIZE_MAX);
    /* 13 invalid UTF-8 in a string. */
    INVALID(mkey,
            JSON("{\"idempotency_key\": \"%s\", \"case_reference\": %" PRId64 ", \"case_type\":"
                 " \"%s\", \"event_id\": \"e\", \"user_id\": \"u\", \"summary\": \"\xff\xfe\"}",
                 key, c, CASE_TYPE),
            SIZE_MAX);
    /* 14 no event_id, 15 no user_id, 16 no case_type, 17 a member twice. */
    INVALID(mkey,
            JSON("{\"idempotency_key\": \"%s\", \"case_reference\": %" PRId64 ", \"case_type\":"
                 " \"%s\", \"user_id\": \"u\"}",
                 key, c, CASE_TYPE),
            SIZE_MAX);
    INVALID(mkey,
            JSON("{\"idempotency_key\": \"%s\", \"case_reference\": %" PRId64 ", \"case_type\":"
                 " \"%s\", \"event_id\": \"e\"}",
                 key, c, CASE_TYPE),
            SIZE_MAX);
    INVALID(mkey,
            JSON("{\"idempotency_key\": \"%s\", \"case_reference\": %" PRId64 ", \"event_id\":"
                 " \"e\", \"user_id\": \"u\"}",
                 key, c),
            SIZE_MAX);
    INVALID(mkey,
            JSON("{\"idempotency_key\": \"%s\", \"case_reference\": %" PRId64 ", \"case_type\":"
                 " \"%s\", \"event_id\": \"e\", \"user_id\": \"u\", \"user_id\": \"v\"}",
                 key, c, CASE_TYPE),
            SIZE_MAX);
#undef INVALID
#undef JSON
    /* Usable but not acceptable: rejected (422); dead letters too when the validator refuses
     * their values, not when the case's state does (no such case). */
    plan_sub(a, NULL, "rejected", "edit", "{\"data\": {\"n\": 5}, \"data_merge\": {\"n\": 6}}")
        ->at_door = true;
    plan_sub(a, NULL, "rejected", "edit", "{\"expected_version\": -1, \"data_merge\": {}}")
        ->at_door = true;
    plan_sub(a, NULL, "rejected", "edit", "{\"security_classification\": \"SECRET\"}")->at_door =
        true;
    plan_sub(c, NULL, "rejected", "edit", "{\"data_merge\": {\"n\": 1}}"); /* no such case */
    nrejected = 4;
    plan_sub(a, NULL, "applied", "edit", "{\"data_merge\": {\"n\": 2}}")->revision = 3;
    plan_sub(b, NULL, "applied", "edit", "{\"data_merge\": {\"n\": 2}}")->revision = 3;
    ck_assert_uint_ge(ninvalid, 10);
    send_range(0, W.nplan);
    pid = worker_start(extra);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    ck_assert_uint_eq(count_status(o, n, "invalid"), ninvalid);
    ck_assert_uint_eq(count_status(o, n, "rejected"), nrejected);
    ck_assert_uint_eq(count_status(o, n, "applied"), W.nplan - ninvalid - nrejected);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(o[i].status, "invalid") == 0)
            ck_assert_msg(o[i].code == 400 && o[i].error && o[i].error[0], "%s", o[i].text);
        if (strcmp(o[i].status, "rejected") == 0)
            ck_assert_msg(o[i].code == 422 && o[i].error && o[i].error[0], "%s", o[i].text);
    }
    /* The DLQ holds exactly the invalid messages and those rejected at the door, byte for byte,
     * each with its reason. */
    check_dead_letters(o, n);
    outcomes_free(o, n);
    check_applied_once();
    worker_stop_last(pid);
}
END_TEST

/* --- 9. a member of the group killed -------------------------------------------------------------
 */

START_TEST(test_worker_group_member_killed_loses_nothing)
{
    feeder f;
    outcome *o;
    size_t n;
    pid_t a, b;
    int rc;

    world_new("group", 12);
    plan_stream(48, 10);
    a = worker_start(NULL);
    wait_relay(a);
    ck_assert_msg(wait_log(a, "partitions assigned\" count=12", 60000),
                  "first worker not assigned");
    b = worker_start(NULL);
    /* Incremental (consumer protocol): A gives up 6 and keeps 6; eager: A gives up 12, gets 6. */
    ck_assert_msg(wait_log(b, "partitions assigned\" count=6", 60000) &&
                      wait_log(a, " total=6 ", 30000),
                  "the group did not split the partitions between the two workers");
    feeder_start(&f, pick_all, NULL, 8);
    /* Kill one member while the stream flows and both are applying. */
    ck_assert_msg(it_wait_sql(1, 60000,
                              "SELECT (count(*) > 120)::int FROM ccd.case_event WHERE "
                              "case_reference BETWEEN %" PRId64 " AND %" PRId64,
                              W.lo, W.hi),
                  "the workers applied nothing");
    rc = it_stop(a, SIGKILL, 5000);
    ck_assert_int_eq(rc, 128 + SIGKILL);
    ck_assert_msg(atomic_load(&f.sent) < f.n, "the stream ended before the kill");
    feeder_join(&f);
    wait_committed();
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    outcomes_free(o, n);
    check_applied_once();
    check_changes();
    ck_assert(log_has(b, " total=12 "));
    worker_stop_last(b);
}
END_TEST

/* --- 10. a submission the database refuses ---------------------------------------------------- */

/* A trigger (and its function), both called name, that makes PostgreSQL refuse every history
 * row of event_id: a write the database refuses for its content. */
static void refusal_trigger_create(const char *name, const char *event_id)
{
    PGresult *res = query("CREATE FUNCTION ccd.%s() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                          " RAISE EXCEPTION 'refused by the test trigger'; END $$; CREATE TRIGGER"
                          " %s BEFORE INSERT ON ccd.case_event FOR EACH ROW WHEN (NEW.event_id ="
                          " '%s') EXECUTE FUNCTION ccd.%s()",
                          name, name, event_id, name);

    PQclear(res);
}

static void refusal_trigger_drop(const char *name)
{
    PGresult *res = query("DROP TRIGGER %s ON ccd.case_event; DROP FUNCTION ccd.%s()", name, name);

    PQclear(res);
}

START_TEST(test_worker_database_refusal_rejects_one_applies_rest_of_batch)
{
    const char *extra[] = {"--appliers=1", "--batch-linger-ms=1000", NULL};
    char name[64], event[96];
    int64_t a, b;
    planned *refused;
    outcome *o;
    size_t n;
    pid_t pid;

    snprintf(name, sizeof(name), "it_refuse_%ld_%d", (long)time(NULL), (int)getpid());
    snprintf(event, sizeof(event), "refuse-me-%ld-%d", (long)time(NULL), (int)getpid());
    refusal_trigger_create(name, event);
    world_new("refusal", 1);
    a = new_ref();
    b = new_ref();
    plan_create(a, NULL);
    plan_create(b, NULL);
    refused = plan_sub(a, NULL, "rejected", event, "{\"data_merge\": {\"n\": 1}}");
    plan_sub(a, NULL, "applied", "edit", "{\"data_merge\": {\"n\": 2}}")->revision = 2;
    plan_sub(b, NULL, "applied", "addNote", "{\"notes\": [{\"author\": \"a\", \"body\": \"b\"}]}")
        ->revision = 2;
    plan_sub(a, NULL, "applied", "addNote", "{\"notes\": [{\"author\": \"a\", \"body\": \"c\"}]}")
        ->revision = 3;
    send_range(0, W.nplan);
    pid = worker_start(extra);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    {
        const outcome *x = find_outcome(o, n, a, refused->key, "rejected");

        ck_assert_int_eq(x->code, 422);
        ck_assert_msg(x->error && strstr(x->error, "refused by the test trigger"), "%s", x->text);
    }
    outcomes_free(o, n);
    check_applied_once();
    ck_assert_int_eq(it_sql_int("SELECT (data->>'n')::int FROM ccd.case_data WHERE reference = "
                                "%" PRId64,
                                a),
                     2);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_notes WHERE case_reference IN "
                                "(%" PRId64 ", %" PRId64 ")",
                                a, b),
                     2);
    /* All six were one batch: refused as a whole, then applied one savepoint each. */
    ck_assert_msg(log_has(pid, "batch refused, applying its 6 submissions one savepoint each"),
                  "no careful retry of the whole batch in build/it-logs/casestream-worker-%d.log",
                  (int)pid);
    ck_assert(log_has(pid, "submission refused by postgresql"));
    worker_stop_last(pid);
    refusal_trigger_drop(name);
}
END_TEST

/* --- 10b. set-based writes and careful writes store the same rows -------------------------------
 */

/* Plans seven submissions of new case ref that touch every column of the history: a create,
 * notes alone, a state move with a merge, a supplementary data update, classification and
 * CCD's event fields, a merge that leaves the blob as it is, and a cleared retention date. */
static void plan_case_life(int64_t ref)
{
    plan_sub(ref, NULL, "applied", "create",
             "{\"jurisdiction\": \"IT\", \"state\": \"Open\", \"data\": {\"title\": \"t\", "
             "\"n\": 0, \"x\": 1.5}, \"data_classification\": {\"title\": \"PUBLIC\"}, "
             "\"resolved_ttl\": \"2030-01-31\"}")
        ->revision = 1;
    plan_sub(ref, NULL, "applied", "addNote",
             "{\"notes\": [{\"author\": \"a\", \"body\": \"one\"}]}")
        ->revision = 2;
    plan_sub(ref, NULL, "applied", "submit",
             "{\"state\": \"Submitted\", \"data_merge\": {\"n\": 1, \"list\": [1, 2.25, null]}}")
        ->revision = 3;
    plan_sub(ref, NULL, "applied", "updateSupplementaryData",
             "{\"supplementary_data_updates\": {\"$set\": {\"orgs.o1\": \"Y\"}, "
             "\"$inc\": {\"views\": 2}}}")
        ->revision = 4;
    plan_sub(ref, NULL, "applied", "classify",
             "{\"security_classification\": \"PRIVATE\", \"data_classification\": {\"title\": "
             "\"PRIVATE\", \"n\": \"PUBLIC\"}, \"significant_item\": {\"type\": \"DOCUMENT\", "
             "\"description\": \"d\", \"url\": \"https://example.org/d\"}, \"event_name\": "
             "\"Classify\", "
             "\"summary\": \"s\", \"description\": \"long\", \"user_first_name\": \"F\", "
             "\"user_last_name\": \"L\", \"state_name\": \"Submitted!\", \"case_type_version\": 3, "
             "\"proxied_by\": \"p\", \"proxied_by_first_name\": \"PF\", \"proxied_by_last_name\": "
             "\"PL\", \"start_revision\": 4, \"merge_revision\": 4}")
        ->revision = 5;
    plan_sub(ref, NULL, "applied", "sameBlob",
             "{\"data_merge\": {\"n\": 1}, \"notes\": [{\"author\": \"b\", \"body\": \"two\"}, "
             "{\"author\": \"c\", \"body\": \"three\"}]}")
        ->revision = 6;
    plan_sub(ref, NULL, "applied", "forget", "{\"resolved_ttl\": null, \"state\": \"Closed\"}")
        ->revision = 7;
}

/* Case ref's history, case row, notes and outbox documents as text, without what names the
 * case, its keys, positions and times (last_state_modified_date as whether it is the event's
 * time). The caller frees. */
static char *case_record(int64_t ref)
{
    PGresult *res = query(
        "SELECT (SELECT string_agg(ROW(case_revision, version, event_id, user_id, summary,"
        " description, state_id, security_classification, data, event_name, user_first_name,"
        " user_last_name, state_name, case_type_version, data_classification, significant_item,"
        " proxied_by, proxied_by_first_name, proxied_by_last_name, supplementary_data,"
        " last_state_modified_date = created_date, case_supplementary_data, start_revision,"
        " merge_revision, payload_sha256 IS NOT NULL)::text, E'\\n' ORDER BY case_revision)"
        " FROM ccd.case_event WHERE case_reference = %" PRId64 ") || E'\\n' ||"
        " (SELECT ROW(state, security_classification, data, version, case_revision,"
        " data_classification, supplementary_data, resolved_ttl,"
        " last_state_modified_date = last_modified)::text FROM ccd.case_data"
        " WHERE reference = %" PRId64 ") || E'\\n' ||"
        " (SELECT string_agg(ROW(author, body, case_revision)::text, ',' ORDER BY id)"
        " FROM ccd.case_notes WHERE case_reference = %" PRId64 ") || E'\\n' ||"
        " (SELECT string_agg(ROW(case_revision, document - 'id' - 'reference' - 'created_date'"
        " - 'last_modified' - 'last_state_modified_date' - 'notes',"
        " jsonb_path_query_array(document, '$.notes[*].body'),"
        " document->'last_state_modified_date' = document->'last_modified')::text, E'\\n'"
        " ORDER BY id) FROM ccd.change_outbox WHERE reference = %" PRId64 ")",
        ref, ref, ref, ref);
    char *text;

    ck_assert_msg(!PQgetisnull(res, 0, 0), "case %" PRId64 " has no history, row or outbox", ref);
    text = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    ck_assert(text != NULL);
    return text;
}

/* A statement PostgreSQL cancels (statement_timeout here; lock_timeout and an operator's
 * cancel alike) says nothing against the submission: the batch is retried, and the submission
 * is applied once the database keeps up again, never rejected. */
START_TEST(test_worker_canceled_statement_retries_batch_never_rejects)
{
    const char *extra[] = {"--appliers=1", "--batch-linger-ms=1000", NULL};
    const char *env[] = {"PGOPTIONS=-c statement_timeout=500", NULL};
    char name[64], event[96];
    PGresult *res;
    outcome *o;
    bool retried;
    size_t n;
    pid_t pid;
    int64_t a;

    snprintf(name, sizeof(name), "it_slow_%ld_%d", (long)time(NULL), (int)getpid());
    snprintf(event, sizeof(event), "slow-%ld-%d", (long)time(NULL), (int)getpid());
    /* Every history row of event takes 2 s to write: longer than the worker's 500 ms. */
    res = query("CREATE FUNCTION ccd.%s() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " PERFORM pg_sleep(2); RETURN NEW; END $$; CREATE TRIGGER %s BEFORE INSERT ON"
                " ccd.case_event FOR EACH ROW WHEN (NEW.event_id = '%s') EXECUTE FUNCTION"
                " ccd.%s()",
                name, name, event, name);
    PQclear(res);
    world_new("canceled", 1);
    a = new_ref();
    plan_create(a, NULL);
    plan_sub(a, NULL, "applied", event, "{\"data_merge\": {\"n\": 1}}")->revision = 2;
    plan_sub(a, NULL, "applied", "addNote", "{\"notes\": [{\"author\": \"a\", \"body\": \"b\"}]}")
        ->revision = 3;
    send_range(0, W.nplan);
    pid = worker_start_env(extra, env);
    retried = wait_log(pid, "batch not committed, retrying", 90000);
    refusal_trigger_drop(name);
    ck_assert_msg(retried,
                  "no retry of the canceled batch in build/it-logs/casestream-worker-%d.log",
                  (int)pid);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    outcomes_free(o, n);
    check_applied_once();
    ck_assert_int_eq(it_sql_int("SELECT (data->>'n')::int FROM ccd.case_data WHERE reference = "
                                "%" PRId64,
                                a),
                     1);
    ck_assert_msg(!log_has(pid, "submission refused by postgresql"),
                  "a canceled statement rejected a submission");
    worker_stop_last(pid);
}
END_TEST

START_TEST(test_worker_set_writes_store_what_careful_writes_store)
{
    const char *extra[] = {"--appliers=1", "--batch-linger-ms=1000", NULL};
    char name[64], event[96], msg[96];
    int64_t set_ref, careful_ref, refused_ref;
    size_t first, n;
    char *set_text, *careful_text;
    outcome *o;
    pid_t pid;
    long long waited = 0;

    snprintf(name, sizeof(name), "it_setref_%ld_%d", (long)time(NULL), (int)getpid());
    snprintf(event, sizeof(event), "refuse-set-%ld-%d", (long)time(NULL), (int)getpid());
    refusal_trigger_create(name, event);
    world_new("setwrites", 1);
    set_ref = new_ref();
    careful_ref = new_ref();
    refused_ref = new_ref();
    /* One batch of set-based writes: seven revisions of one case. */
    plan_case_life(set_ref);
    send_range(0, W.nplan);
    pid = worker_start(extra);
    while (it_sql_int("SELECT count(*) FROM ccd.case_event WHERE case_reference = %" PRId64,
                      set_ref) < 7) {
        ck_assert_msg(waited < CATCH_UP_MS, "the first batch was not applied in time");
        usleep(100 * 1000);
        waited += 100;
    }
    /* The same in a batch the database refuses, so written one savepoint per submission. */
    first = W.nplan;
    plan_case_life(careful_ref);
    plan_create(refused_ref, NULL);
    plan_sub(refused_ref, NULL, "rejected", event, NULL);
    send_range(first, W.nplan);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    outcomes_free(o, n);
    snprintf(msg, sizeof(msg), "batch refused, applying its %zu submissions one savepoint each",
             W.nplan - first);
    ck_assert_msg(log_has(pid, msg),
                  "no careful run of the second batch (\"%s\") in "
                  "build/it-logs/casestream-worker-%d.log",
                  msg, (int)pid);
    ck_assert_msg(!log_has(pid, "batch refused, applying its 7 submissions"),
                  "the first batch was not written set-based");
    set_text = case_record(set_ref);
    careful_text = case_record(careful_ref);
    ck_assert_str_eq(set_text, careful_text);
    /* And what the rows hold is the case as each event left it. */
    ck_assert_int_eq(
        it_sql_int("SELECT count(*) FROM ccd.case_event WHERE case_reference = %" PRId64
                   " AND (case_revision, version, state_id, security_classification,"
                   " data->>'n') IN ((1, 1, 'Open', 'PUBLIC', '0'),"
                   " (2, 1, 'Open', 'PUBLIC', '0'), (3, 2, 'Submitted', 'PUBLIC', '1'),"
                   " (4, 2, 'Submitted', 'PUBLIC', '1'), (5, 3, 'Submitted', 'PRIVATE', '1'),"
                   " (6, 3, 'Submitted', 'PRIVATE', '1'), (7, 4, 'Closed', 'PRIVATE', '1'))",
                   set_ref),
        7);
    ck_assert_int_eq(
        it_sql_int("SELECT count(*) FROM ccd.change_outbox WHERE reference = %" PRId64
                   " AND jsonb_array_length(document->'notes') = CASE"
                   " WHEN case_revision = 1 THEN 0 WHEN case_revision < 6 THEN 1 ELSE 3 END",
                   set_ref),
        7);
    free(set_text);
    free(careful_text);
    worker_stop_last(pid);
    refusal_trigger_drop(name);
}
END_TEST

/* A batch whose set statements are larger than the applier's cut (4 MiB): eight cases of 600 KiB
 * of data, each created and edited twice in one batch, so the creates, the history and the
 * case rows each go in several statements. Everything is stored as in small batches: every
 * history row the case as its event left it, every case at its last revision. */
/* The pad of the test below, as SQL (p.pad). */
#define PAD_SQL                                                                                    \
    "WITH p AS (SELECT string_agg(chr(97 + ((i * 7 + i / 26) % 26)::int), '' ORDER BY i) AS pad"   \
    " FROM generate_series(0, 600 * 1024 - 1) i)"

/* Plans the create of a new case whose data holds pad (and n 0), applied at revision 1;
 * returns its reference. */
static int64_t plan_padded_create(const char *pad)
{
    int64_t ref = new_ref();
    char key[37], mkey[24], *text;
    json_t *m;

    new_key(key);
    snprintf(mkey, sizeof(mkey), "%" PRId64, ref);
    m = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:i}}", "idempotency_key", key,
                  "case_reference", (json_int_t)ref, "case_type", CASE_TYPE, "event_id", "create",
                  "user_id", "it-user", "jurisdiction", "IT", "state", "Open", "data", "pad", pad,
                  "n", 0);
    ck_assert_ptr_nonnull(m);
    text = json_dumps(m, JSON_COMPACT);
    plan_raw(ref, key, "applied", mkey, text, strlen(text))->revision = 1;
    free(text);
    json_decref(m);
    return ref;
}

START_TEST(test_worker_large_batch_is_written_in_several_statements_whole)
{
    enum { CASES = 8, PAD = 600 * 1024 };
    const char *extra[] = {"--appliers=1", "--batch-linger-ms=1000", NULL};
    char *pad = malloc(PAD + 1), refs[CASES * 24] = "", *at = refs;
    size_t n;
    outcome *o;
    pid_t pid;

    ck_assert_ptr_nonnull(pad);
    for (size_t i = 0; i < PAD; i++)
        pad[i] = (char)('a' + (i * 7 + i / 26) % 26);
    pad[PAD] = '\0';
    world_new("bigset", 1);
    for (int c = 0; c < CASES; c++) {
        int64_t ref = plan_padded_create(pad);
        for (int e = 1; e <= 2; e++)
            plan_sub(ref, NULL, "applied", "edit", "{\"data_merge\": {\"n\": %d}}", e)->revision =
                e + 1;
        at += sprintf(at, "%s%" PRId64, c ? "," : "", ref);
    }
    send_range(0, W.nplan);
    pid = worker_start(extra);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    outcomes_free(o, n);
    ck_assert_msg(!log_has(pid, "batch refused"), "the batch was not written set-based");
    ck_assert_int_eq(it_sql_int("%s SELECT count(*) FROM ccd.case_event, p WHERE case_reference"
                                " IN (%s) AND data->>'pad' = p.pad"
                                " AND (data->>'n')::int = case_revision - 1"
                                " AND version = case_revision",
                                PAD_SQL, refs),
                     CASES * 3);
    ck_assert_int_eq(it_sql_int("%s SELECT count(*) FROM ccd.case_data, p WHERE reference IN (%s)"
                                " AND data->>'pad' = p.pad AND data->>'n' = '2' AND version = 3"
                                " AND case_revision = 3",
                                PAD_SQL, refs),
                     CASES);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.change_outbox WHERE reference IN (%s)"
                                " AND (document->'data'->>'n')::int = case_revision - 1"
                                " AND length(document->'data'->>'pad') = %d",
                                refs, PAD),
                     CASES * 3);
    worker_stop_last(pid);
    free(pad);
}
END_TEST

/* Outbox rows published longer ago than --outbox-retention-hours are deleted; a row published
 * since, and one never published, stay. */
START_TEST(test_worker_prunes_outbox_rows_published_before_the_retention)
{
    const char *extra[] = {"--outbox-retention-hours=24", NULL};
    int64_t ref;
    pid_t pid;

    world_new("prune", 1);
    ref = new_ref();
    /* A topic no relay publishes, so that the unpublished row stays as it is. */
    ck_assert_int_eq(
        it_sql_int("WITH i AS (INSERT INTO ccd.change_outbox (reference, case_revision, document,"
                   " topic, created_date, published_at) VALUES"
                   " (%" PRId64 ", 1, '{}', 'it-prune-nowhere', now() - interval '3 days',"
                   " now() - interval '2 days'),"
                   " (%" PRId64 ", 2, '{}', 'it-prune-nowhere', now() - interval '3 days',"
                   " now() - interval '1 hour'),"
                   " (%" PRId64 ", 3, '{}', 'it-prune-nowhere', now() - interval '3 days', NULL)"
                   " RETURNING 1) SELECT count(*) FROM i",
                   ref, ref, ref),
        3);
    pid = worker_start(extra);
    ck_assert(it_wait_sql(
        2, 60000, "SELECT count(*) FROM ccd.change_outbox WHERE reference = %" PRId64, ref));
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.change_outbox WHERE reference = %" PRId64
                                " AND case_revision IN (2, 3)",
                                ref),
                     2);
    worker_stop_last(pid);
    ck_assert_int_eq(
        it_sql_int("WITH d AS (DELETE FROM ccd.change_outbox WHERE reference = %" PRId64
                   " RETURNING 1) SELECT count(*) FROM d",
                   ref),
        2);
}
END_TEST

/* The relay gathers what is committed for --outbox-linger-ms before a round: creates committed
 * one by one, 50 ms apart, are published in a round or two with a linger of 2 s, not a round
 * each. */
START_TEST(test_worker_relay_gathers_commits_within_its_linger)
{
    enum { CASES = 10 };
    int port = 20000 + (int)((getpid() + 11) % 20000);
    char portflag[32];
    const char *extra[] = {"--outbox-linger-ms=2000", portflag, NULL};
    long long rounds, published, deadline;
    size_t n;
    outcome *o;
    pid_t pid;

    snprintf(portflag, sizeof(portflag), "--metrics-port=%d", port);
    world_new("linger", 1);
    for (int i = 0; i < CASES; i++)
        plan_create(new_ref(), NULL);
    pid = worker_start(extra);
    wait_relay(pid);
    /* The first create answered: the worker is fetching. Then each create alone, so that each
     * is a batch and a commit of its own. */
    send_one(&W.plan[0]);
    {
        it_msg *first = NULL;

        it_msgs_free(first, read_topic(W.results, 1, CATCH_UP_MS, &first));
    }
    for (size_t i = 1; i < W.nplan; i++) {
        usleep(50 * 1000);
        send_one(&W.plan[i]);
    }
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    outcomes_free(o, n);
    deadline = cs_now_ms() + 30000;
    while ((published = metric(port, "casestream_worker_outbox_published_total")) < CASES &&
           cs_now_ms() < deadline)
        usleep(100 * 1000);
    ck_assert_int_eq(published, CASES);
    ck_assert_int_ge(metric(port, "casestream_worker_batches_total"), CASES / 2);
    rounds = metric(port, "casestream_worker_outbox_rounds_total");
    ck_assert_msg(rounds >= 1 && rounds <= 2, "%lld rounds published %d commits", rounds, CASES);
    check_changes();
    worker_stop_last(pid);
}
END_TEST

/* Submissions larger than --batch-bytes each form a batch of their own, and a small one after
 * a large one does not join it: a run of large creates with an edit after each is applied in
 * one batch per submission, in order, counted by the worker's batches metric. */
START_TEST(test_worker_large_submissions_are_cut_into_batches_by_bytes)
{
    enum { CASES = 4, PAD = 300 * 1024 };
    int port = 20000 + (int)((getpid() + 7) % 20000);
    char portflag[32];
    const char *extra[] = {"--appliers=1", "--batch-linger-ms=1000", "--batch-bytes=262144",
                           portflag, NULL};
    char *pad = malloc(PAD + 1);
    long long batches = -1, deadline;
    size_t n;
    outcome *o;
    pid_t pid;

    ck_assert_ptr_nonnull(pad);
    snprintf(portflag, sizeof(portflag), "--metrics-port=%d", port);
    memset(pad, 'b', PAD);
    pad[PAD] = '\0';
    world_new("bybytes", 1);
    for (int c = 0; c < CASES; c++) {
        int64_t ref = plan_padded_create(pad);
        plan_sub(ref, NULL, "applied", "edit", "{\"data_merge\": {\"n\": 1}}")->revision = 2;
    }
    send_range(0, W.nplan);
    pid = worker_start(extra);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    outcomes_free(o, n);
    /* The metric counts a batch once its offsets are stored, just after its outcomes. */
    deadline = cs_now_ms() + 30000;
    while ((batches = metric(port, "casestream_worker_batches_total")) < 2 * CASES &&
           cs_now_ms() < deadline)
        cs_sleep_ms(100);
    ck_assert_int_eq(batches, 2 * CASES);
    worker_stop_last(pid);
    free(pad);
}
END_TEST

/* --- 11. SIGTERM under load ----------------------------------------------------------------------
 */

START_TEST(test_worker_sigterm_during_flow_exits_zero_quickly)
{
    feeder f;
    outcome *o;
    size_t n;
    pid_t pid;
    long long t0, took;
    int rc;

    world_new("sigterm", 6);
    plan_stream(40, 10);
    pid = worker_start(NULL);
    wait_relay(pid);
    feeder_start(&f, pick_all, NULL, 5);
    ck_assert_msg(it_wait_sql(1, 60000,
                              "SELECT (count(*) > 60)::int FROM ccd.case_event WHERE "
                              "case_reference BETWEEN %" PRId64 " AND %" PRId64,
                              W.lo, W.hi),
                  "the worker applied nothing");
    t0 = cs_now_ms();
    rc = it_stop(pid, SIGTERM, 15000);
    took = cs_now_ms() - t0;
    ck_assert_msg(rc == 0, "SIGTERM: status %d after %lld ms", rc, took);
    ck_assert_msg(atomic_load(&f.sent) < f.n, "the stream ended before the SIGTERM");
    fprintf(stderr, "it_worker: SIGTERM to exit 0 in %lld ms\n", took);
    /* What it left is taken up by the next worker, once. */
    pid = worker_start(NULL);
    wait_relay(pid);
    feeder_join(&f);
    wait_committed();
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    outcomes_free(o, n);
    check_applied_once();
    check_changes();
    worker_stop_last(pid);
}
END_TEST

/* --- 12. what a case keeps: its jurisdiction ----------------------------------------------------
 */

/* unit repeated times, in new memory (the caller frees). */
static char *repeat(const char *unit, int times)
{
    size_t n = strlen(unit);
    char *s = malloc(n * (size_t)times + 1);

    for (int i = 0; i < times; i++)
        memcpy(s + n * (size_t)i, unit, n);
    s[n * (size_t)times] = '\0';
    return s;
}

/* A submission naming another jurisdiction than the case's is rejected and changes nothing,
 * whether the case was created in the same batch (decided in memory) or is read from the
 * database in a later one. The reason quotes both jurisdictions; with 255 two-byte characters
 * each it is cut at 511 bytes between characters, never to "error": null. */
START_TEST(test_worker_other_jurisdiction_is_rejected_case_unchanged)
{
    char *ae = repeat("\xc3\x84", 255), *oe = repeat("\xc3\x96", 255), want[64];
    int64_t a, b;
    planned *same_batch, *later, *long_one;
    const outcome *x;
    outcome *o;
    size_t n;
    pid_t pid;

    world_new("jurisdiction", 1);
    a = new_ref();
    b = new_ref();
    plan_create(a, NULL);
    same_batch = plan_sub(a, NULL, "rejected", "move",
                          "{\"jurisdiction\": \"OTHER\", "
                          "\"data_merge\": {\"n\": 1}}");
    plan_sub(a, NULL, "applied", "edit", "{\"jurisdiction\": \"IT\", \"data_merge\": {\"n\": 2}}")
        ->revision = 2;
    plan_sub(b, NULL, "applied", "create",
             "{\"jurisdiction\": \"%s\", \"state\": \"Open\", \"data\": {}}", ae)
        ->revision = 1;
    send_range(0, W.nplan);
    pid = worker_start(NULL);
    ck_assert_msg(it_wait_sql(3, CATCH_UP_MS,
                              "SELECT count(*) FROM ccd.case_event WHERE case_reference IN "
                              "(%" PRId64 ", %" PRId64 ")",
                              a, b),
                  "the first batch was not applied");
    later = plan_sub(a, NULL, "rejected", "move",
                     "{\"jurisdiction\": \"OTHER\", \"state\": \"Moved\", \"data\": {}}");
    long_one = plan_sub(b, NULL, "rejected", "move", "{\"jurisdiction\": \"%s\"}", oe);
    plan_sub(b, NULL, "applied", "edit", "{\"data_merge\": {\"n\": 3}}")->revision = 2;
    send_range(4, W.nplan);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    snprintf(want, sizeof(want), "case %" PRId64 " is in jurisdiction IT, not OTHER", a);
    x = find_outcome(o, n, a, same_batch->key, "rejected");
    ck_assert_int_eq(x->code, 422);
    ck_assert_msg(x->error && strcmp(x->error, want) == 0, "%s", x->text);
    x = find_outcome(o, n, a, later->key, "rejected");
    ck_assert_int_eq(x->code, 422);
    ck_assert_msg(x->error && strcmp(x->error, want) == 0, "%s", x->text);
    x = find_outcome(o, n, b, long_one->key, "rejected");
    ck_assert_int_eq(x->code, 422);
    ck_assert_msg(x->error != NULL, "a reason cut at its byte limit became null: %s", x->text);
    snprintf(want, sizeof(want), "case %" PRId64 " is in jurisdiction \xc3\x84\xc3\x84", b);
    ck_assert_msg(strncmp(x->error, want, strlen(want)) == 0, "%s", x->text);
    ck_assert_msg(strlen(x->error) <= 511 && strlen(x->error) >= 508, "%zu bytes: %s",
                  strlen(x->error), x->text);
    outcomes_free(o, n);
    check_applied_once();
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_data WHERE reference = %" PRId64
                                " AND jurisdiction = 'IT' AND state = 'Open' AND"
                                " (data->>'n')::int = 2",
                                a),
                     1);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_data WHERE reference = %" PRId64
                                " AND jurisdiction = repeat(U&'\\00C4', 255)",
                                b),
                     1);
    worker_stop_last(pid);
    free(ae);
    free(oe);
}
END_TEST

/* --- 13. case types that would share an index ---------------------------------------------- */

/* Plans the creation of case ref with case type type. */
static planned *plan_create_typed(int64_t ref, const char *type, const char *status)
{
    return plan_sub(ref, NULL, status, "create",
                    "{\"case_type\": \"%s\", \"jurisdiction\": \"IT\", \"state\": \"Open\", "
                    "\"data\": {}}",
                    type);
}

/* Case types that differ only in letter case would be indexed together (lower(case_type) +
 * "_cases"): the first one stored keeps the index and a case created with another is rejected,
 * whether the first was created earlier in the same batch or is read from the database. One
 * applier, so that the batch is decided in offset order (several appliers take different cases
 * at once; see the next test). */
START_TEST(test_worker_case_type_differing_only_in_letter_case_is_rejected)
{
    const char *extra[] = {"--appliers=1", NULL};
    char *mixed = it_unique("ItCase"), *upper = strdup(mixed), *lower = strdup(mixed);
    char want[512], index[300];
    int64_t a, b, c, d, e;
    planned *pb, *pd;
    const outcome *x;
    outcome *o;
    size_t n;
    pid_t pid;

    for (char *p = upper; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    for (char *p = lower; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    ck_assert(cs_es_index_name(mixed, index, sizeof(index)));
    world_new("letter-case", 1);
    a = new_ref();
    b = new_ref();
    c = new_ref();
    d = new_ref();
    e = new_ref();
    plan_create_typed(a, mixed, "applied")->revision = 1;
    pb = plan_create_typed(b, upper, "rejected");
    plan_create_typed(c, mixed, "applied")->revision = 1;
    send_range(0, W.nplan);
    pid = worker_start(extra);
    ck_assert_msg(it_wait_sql(2, CATCH_UP_MS,
                              "SELECT count(*) FROM ccd.case_event WHERE case_reference BETWEEN "
                              "%" PRId64 " AND %" PRId64,
                              a, e),
                  "the first batch was not applied");
    pd = plan_create_typed(d, lower, "rejected");
    plan_create_typed(e, mixed, "applied")->revision = 1;
    plan_sub(a, NULL, "applied", "edit", "{\"case_type\": \"%s\", \"data_merge\": {\"n\": 1}}",
             mixed)
        ->revision = 2;
    send_range(3, W.nplan);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    x = find_outcome(o, n, b, pb->key, "rejected");
    ck_assert_int_eq(x->code, 422);
    snprintf(want, sizeof(want),
             "case type %s differs only in letter case from the existing case type %s: both "
             "would be indexed in %s",
             upper, mixed, index);
    ck_assert_msg(x->error && strcmp(x->error, want) == 0, "%s", x->text);
    x = find_outcome(o, n, d, pd->key, "rejected");
    ck_assert_int_eq(x->code, 422);
    ck_assert_msg(x->error && strstr(x->error, "differs only in letter case"), "%s", x->text);
    outcomes_free(o, n);
    check_applied_once();
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_data WHERE lower(case_type_id) = "
                                "'%s'",
                                lower),
                     3);
    ck_assert_int_eq(
        it_sql_int("SELECT count(*) FROM ccd.case_data WHERE case_type_id = '%s'", mixed), 3);
    worker_stop_last(pid);
    free(mixed);
    free(upper);
    free(lower);
}
END_TEST

/* Appliers working at once on the first cases of two spellings of a new case type: the type's
 * lock lets one spelling be stored first and the other is rejected, never both stored. */
START_TEST(test_worker_concurrent_creates_of_two_spellings_store_one)
{
    char *mixed = it_unique("ItRace"), *upper = strdup(mixed);
    const int ncases = 8;
    int applied_mixed = 0, applied_upper = 0, rejected = 0;
    outcome *o;
    size_t n;
    pid_t pid;

    for (char *p = upper; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    world_new("letter-race", 4);
    for (int i = 0; i < ncases; i++)
        plan_create_typed(new_ref(), i % 2 ? upper : mixed, "applied");
    send_range(0, W.nplan);
    pid = worker_start(NULL); /* four appliers */
    o = read_outcomes(&n);
    for (size_t i = 0; i < n; i++) {
        const char *type = NULL;

        for (size_t k = 0; k < W.nplan; k++)
            if (W.plan[k].ref == o[i].ref)
                type = strstr(W.plan[k].value, mixed) ? mixed : upper;
        ck_assert_ptr_nonnull(type);
        if (strcmp(o[i].status, "rejected") == 0) {
            ck_assert_msg(o[i].error && strstr(o[i].error, "differs only in letter case"), "%s",
                          o[i].text);
            rejected++;
        } else {
            ck_assert_msg(strcmp(o[i].status, "applied") == 0, "%s", o[i].text);
            applied_mixed += type == mixed;
            applied_upper += type == upper;
        }
    }
    outcomes_free(o, n);
    ck_assert_msg((applied_mixed == 0) != (applied_upper == 0),
                  "applied %d of %s and %d of %s: exactly one spelling must be stored",
                  applied_mixed, mixed, applied_upper, upper);
    ck_assert_int_eq(applied_mixed + applied_upper + rejected, ncases);
    ck_assert_int_eq(applied_mixed + applied_upper, ncases / 2);
    ck_assert_int_eq(it_sql_int("SELECT count(DISTINCT case_type_id) FROM ccd.case_data WHERE "
                                "reference BETWEEN %" PRId64 " AND %" PRId64,
                                W.lo, W.hi),
                     1);
    worker_stop_last(pid);
    free(mixed);
    free(upper);
}
END_TEST

Suite *it_worker_suite(void)
{
    Suite *s = suite_create("it_worker");
    TCase *tc;
    int nfaults = 0;

    while (cs_worker_faults[nfaults])
        nfaults++;
    tc = tcase_create("outcomes");
    tcase_set_timeout(tc, 150);
    tcase_add_checked_fixture(tc, services_up, NULL);
    tcase_add_unchecked_fixture(tc, NULL, leave_clean);
    tcase_add_test(tc, test_worker_same_expected_version_one_applied_one_conflict);
    tcase_add_test(tc, test_worker_unchanged_blob_keeps_version_bumps_revision);
    tcase_add_test(tc, test_worker_database_refusal_rejects_one_applies_rest_of_batch);
    tcase_add_test(tc, test_worker_set_writes_store_what_careful_writes_store);
    tcase_add_test(tc, test_worker_large_batch_is_written_in_several_statements_whole);
    tcase_add_test(tc, test_worker_large_submissions_are_cut_into_batches_by_bytes);
    tcase_add_test(tc, test_worker_canceled_statement_retries_batch_never_rejects);
    tcase_add_test(tc, test_worker_malformed_input_goes_to_dlq_valid_around_it_applied);
    tcase_add_test(tc, test_worker_other_jurisdiction_is_rejected_case_unchanged);
    tcase_add_test(tc, test_worker_case_type_differing_only_in_letter_case_is_rejected);
    tcase_add_test(tc, test_worker_concurrent_creates_of_two_spellings_store_one);
    suite_add_tcase(s, tc);

    tc = tcase_create("redis");
    tcase_set_timeout(tc, 150);
    tcase_add_checked_fixture(tc, services_up, NULL);
    tcase_add_unchecked_fixture(tc, NULL, leave_clean);
    tcase_add_test(tc, test_worker_resubmission_is_duplicate_with_original_figures);
    suite_add_tcase(s, tc);

    tc = tcase_create("ordering");
    tcase_set_timeout(tc, 200);
    tcase_add_checked_fixture(tc, services_up, NULL);
    tcase_add_test(tc, test_worker_notes_from_concurrent_producers_never_conflict);
    tcase_add_test(tc, test_worker_history_keeps_produce_order_over_many_cases);
    suite_add_tcase(s, tc);

    tc = tcase_create("faults");
    tcase_set_timeout(tc, 200);
    tcase_add_checked_fixture(tc, services_up, NULL);
    tcase_add_loop_test(tc, test_worker_fault_point_loses_and_duplicates_nothing, 0, nfaults);
    suite_add_tcase(s, tc);

    tc = tcase_create("outages");
    tcase_set_timeout(tc, 240);
    tcase_add_checked_fixture(tc, services_up, NULL);
    tcase_add_test(tc, test_worker_survives_postgresql_restart);
    tcase_add_test(tc, test_worker_group_member_killed_loses_nothing);
    tcase_add_test(tc, test_worker_sigterm_during_flow_exits_zero_quickly);
    tcase_add_test(tc, test_worker_prunes_outbox_rows_published_before_the_retention);
    tcase_add_test(tc, test_worker_relay_gathers_commits_within_its_linger);
    suite_add_tcase(s, tc);
    return s;
}
