/* Integration tests: no single input stalls the pipeline. Each test sends one hostile input
 * (a real past 64 bits, an unreadable stored case, a message near the size limits, a change
 * document too large for the changes topic), then 1,000 valid submissions across every
 * partition, and asserts that every message is answered and applied as it should be. */
#include "it_world.h"
#include "runner.h"

#include "err.h"
#include "es.h"
#include "kafka.h"
#include "run.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How many valid submissions follow each hostile input: 100 cases, 10 each. */
#define LOAD_CASES 100
#define LOAD_EACH  10

/* A submission whose value is given as text, so numbers reach the worker as written. */
static planned *plan_text(int64_t ref, const char *status, const char *fields)
{
    char key[37], mkey[24], *text;
    size_t size = strlen(fields) + 512;
    planned *p;

    new_key(key);
    text = malloc(size);
    ck_assert_ptr_nonnull(text);
    snprintf(text, size,
             "{\"idempotency_key\":\"%s\",\"case_reference\":%" PRId64 ",\"case_type\":\"%s\","
             "\"event_id\":\"poison\",\"user_id\":\"it-user\",%s}",
             key, ref, CASE_TYPE, fields);
    snprintf(mkey, sizeof(mkey), "%" PRId64, ref);
    p = plan_raw(ref, key, status, mkey, text, strlen(text));
    free(text);
    return p;
}

/* Plans the 1,000 valid submissions, sends what is planned from message from on, and checks
 * the outcome of every message of the test. */
static void load_after_and_check(size_t from)
{
    outcome *o;
    size_t n;

    plan_stream(LOAD_CASES, LOAD_EACH);
    send_range(from, W.nplan);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    outcomes_free(o, n);
    check_applied_once();
}

static const outcome *the_outcome(const outcome *o, size_t n, const planned *p)
{
    const outcome *x = find_outcome(o, n, p->ref, p->key, p->status);

    ck_assert_msg(x != NULL, "no %s outcome for case %" PRId64, p->status, p->ref);
    return x;
}

/* --- 1. numbers ---------------------------------------------------------------------------- */

START_TEST(test_poison_large_reals_are_kept_and_unreadable_case_rejects_only_itself)
{
    int64_t big, old, broken, door;
    planned *refused_precision, *refused_zero, *refused_tiny, *on_broken;
    pid_t pid;
    outcome *o;
    size_t n, sent;

    world_new("numbers", 6);
    big = new_ref();
    old = new_ref();
    broken = new_ref();
    door = new_ref();
    /* A real of 2^63 or more, then a change of the same case. */
    plan_text(big, "applied",
              "\"jurisdiction\":\"IT\",\"state\":\"Open\",\"data\":{\"x\":1e19,\"m\":1.79e308,"
              "\"t\":5e-324,\"h\":1e2}")
        ->revision = 1;
    plan_text(big, "applied", "\"data_merge\":{\"y\":1}")->revision = 2;
    /* Refused at the door: what PostgreSQL or a double would change. */
    refused_precision = plan_text(door, "rejected",
                                  "\"jurisdiction\":\"IT\",\"state\":\"Open\","
                                  "\"data\":{\"x\":9007199254740993.0}");
    refused_zero = plan_text(door, "rejected",
                             "\"jurisdiction\":\"IT\",\"state\":\"Open\",\"data\":{\"x\":-0.0}");
    refused_tiny = plan_text(door, "rejected",
                             "\"jurisdiction\":\"IT\",\"state\":\"Open\",\"data\":{\"x\":1e-400}");
    refused_precision->at_door = refused_zero->at_door = refused_tiny->at_door = true;
    plan_create(old, NULL);
    plan_create(broken, NULL);
    send_range(0, W.nplan);
    sent = W.nplan;
    pid = worker_start(NULL);
    ck_assert_msg(it_wait_sql(2, 60000,
                              "SELECT count(*) FROM ccd.case_data WHERE reference IN (%" PRId64
                              ", %" PRId64 ")",
                              old, broken),
                  "the worker did not create the cases");
    /* As an earlier release stored 1e19 (jsonb renders it as an integer past 64 bits), and a
     * blob nested deeper than any JSON reader here takes. */
    PQclear(query("UPDATE ccd.case_data SET data = '{\"x\": 1e19, \"n\": 0}'::jsonb WHERE "
                  "reference = %" PRId64,
                  old));
    PQclear(query("UPDATE ccd.case_data SET data = jsonb_build_object('deep', (repeat('[', 3000) "
                  "|| repeat(']', 3000))::jsonb) WHERE reference = %" PRId64,
                  broken));
    plan_sub(old, NULL, "applied", "edit", "{\"data_merge\": {\"n\": 1}}")->revision = 2;
    on_broken = plan_sub(broken, NULL, "rejected", "edit", "{\"data_merge\": {\"n\": 1}}");
    load_after_and_check(sent);
    o = read_outcomes(&n);
    {
        const outcome *x = the_outcome(o, n, refused_precision);

        ck_assert_int_eq(x->code, 422);
        ck_assert_msg(x->error && strstr(x->error, "cannot be kept exactly"), "%s", x->text);
        x = the_outcome(o, n, refused_zero);
        ck_assert_msg(x->error && strstr(x->error, "negative zero"), "%s", x->text);
        x = the_outcome(o, n, refused_tiny);
        ck_assert_msg(x->error && strstr(x->error, "too small"), "%s", x->text);
        x = the_outcome(o, n, on_broken);
        ck_assert_int_eq(x->code, 422);
        ck_assert_msg(x->error && strstr(x->error, "stored data is not readable JSON"), "%s",
                      x->text);
    }
    /* The numbers refused at the door are in the DLQ with their reasons; the submission the
     * unreadable case refused is not (its message is sound). */
    check_dead_letters(o, n);
    outcomes_free(o, n);
    /* Stored and read back exactly: reals stay reals of the same value. */
    ck_assert_int_eq(it_sql_int("SELECT (data->>'x' = '10000000000000000000.0' AND data->>'h' = "
                                "'100.0' AND (data->>'m')::float8 = 1.79e308 AND "
                                "(data->>'t')::float8 > 0 AND data->>'y' = '1')::int FROM "
                                "ccd.case_data WHERE reference = %" PRId64,
                                big),
                     1);
    ck_assert_int_eq(it_sql_int("SELECT (data->>'x' = '10000000000000000000.0' AND data->>'n' = "
                                "'1')::int FROM ccd.case_data WHERE reference = %" PRId64,
                                old),
                     1);
    ck_assert_int_eq(
        it_sql_int("SELECT count(*) FROM ccd.case_data WHERE reference = %" PRId64, door), 0);
    ck_assert_msg(log_has(pid, "stored case unreadable\" case="),
                  "no log line for the unreadable case in build/it-logs/casestream-worker-%d.log",
                  (int)pid);
    worker_stop_last(pid);
}
END_TEST

/* --- 2. messages near the size limits ------------------------------------------------------ */

/* Sends a message of len bytes of 'x' (not JSON) with the given key, expecting "invalid". */
static void plan_junk(const char *mkey, size_t len)
{
    char *text = malloc(len);

    ck_assert_ptr_nonnull(text);
    memset(text, 'x', len);
    plan_raw(0, NULL, "invalid", mkey, text, len);
    free(text);
}

START_TEST(test_poison_messages_near_the_limits_are_answered_and_copied_cut_to_fit)
{
    const size_t limit = (size_t)it_config()->max_message_bytes;
    const size_t copy_max = cs_kafka_copy_max(it_config());
    char ref16[24], *longkey, *big;
    int64_t huge;
    it_msg *dlq = NULL;
    size_t ndlq, sent;
    bool full = false, cut = false, keycut = false;
    pid_t pid;

    world_new("sizes", 6);
    snprintf(ref16, sizeof(ref16), "%" PRId64, new_ref());
    plan_junk(ref16, 1040000);         /* invalid JSON under the limit: copied whole */
    plan_junk(ref16, copy_max + 1000); /* over the limit and what a copy keeps: cut */
    longkey = malloc(100001);
    ck_assert_ptr_nonnull(longkey);
    memset(longkey, '7', 100000);
    longkey[100000] = '\0';
    plan_junk(longkey, 10); /* a key no outcome or copy keeps whole */
    free(longkey);
    /* A valid submission of nearly the limit is applied. */
    huge = new_ref();
    big = malloc(limit);
    ck_assert_ptr_nonnull(big);
    snprintf(big, limit, "\"jurisdiction\":\"IT\",\"state\":\"Open\",\"data\":{\"s\":\"");
    memset(big + strlen(big), 'y', limit - 1024 - strlen(big));
    big[limit - 1024] = '\0';
    strcat(big, "\"}");
    plan_text(huge, "applied", big)->revision = 1;
    free(big);
    send_range(0, W.nplan);
    sent = W.nplan;
    pid = worker_start(NULL);
    load_after_and_check(sent);
    ndlq = read_topic(W.dlq, 3, 60000, &dlq);
    for (size_t i = 0; i < ndlq; i++) {
        full = full || dlq[i].len == 1040000;
        cut = cut || dlq[i].len == copy_max;
        keycut = keycut || (dlq[i].key && strlen(dlq[i].key) == 1024);
        ck_assert_msg(dlq[i].error != NULL, "a DLQ copy without its reason");
    }
    ck_assert_msg(full, "no whole DLQ copy of the 1,040,000-byte message");
    ck_assert_msg(cut, "no DLQ copy of the oversize message cut to %zu bytes", copy_max);
    ck_assert_msg(keycut, "no DLQ copy with its key cut to 1024 bytes");
    it_msgs_free(dlq, ndlq);
    worker_stop_last(pid);
}
END_TEST

/* --- 3. a change document too large for the changes topic -------------------------------- */

/* case_revision of the case's document in the test's index (under the case's id), -1 when
 * there is none. */
static long long es_revision(int64_t ref, long long *notes)
{
    static cs_es *es;
    char errstr[512], path[256];
    cs_es_response r = CS_ES_RESPONSE_INIT;
    json_t *root, *src;
    long long rev = -1;

    if (!es)
        es = cs_es_new(it_config()->es, 30000, errstr, sizeof(errstr));
    ck_assert_msg(es != NULL, "%s", errstr);
    snprintf(path, sizeof(path), "/itworker_cases/_doc/%lld",
             it_sql_int("SELECT id FROM ccd.case_data WHERE reference = %" PRId64, ref));
    ck_assert_msg(cs_es_request(es, "GET", path, NULL, 0, &r, errstr, sizeof(errstr)) == CS_OK,
                  "elasticsearch is unreachable: %s", errstr);
    root = r.status == 200 ? json_loadb(r.body, r.len, 0, NULL) : NULL;
    src = json_object_get(root, "_source");
    if (src) {
        rev = json_integer_value(json_object_get(src, "case_revision"));
        if (notes)
            *notes = (long long)json_array_size(json_object_get(src, "notes"));
    }
    json_decref(root);
    cs_es_response_clear(&r);
    return rev;
}

/* Waits until the index holds the database's revision of the case. */
static bool wait_indexed(int64_t ref, int timeout_ms)
{
    long long want = it_sql_int(
                  "SELECT case_revision FROM ccd.case_data WHERE reference = %" PRId64, ref),
              deadline = cs_now_ms() + timeout_ms;

    while (cs_now_ms() < deadline) {
        if (es_revision(ref, NULL) == want)
            return true;
        usleep(200 * 1000);
    }
    return false;
}

START_TEST(test_poison_change_too_large_for_the_topic_goes_by_reference)
{
    char notes[9 * 60100 + 64], *wide;
    size_t len = 0, sent;
    int64_t a, b, c;
    long long nnotes = 0;
    pid_t pid, ix;
    char topic[200], group[200];
    const char *ix_args[] = {topic, group, "--metrics-port=0", "--bulk-linger-ms=50", NULL};
    it_msg *changes = NULL;
    size_t nchanges;
    int by_reference = 0;

    world_new("bigdoc", 6);
    snprintf(topic, sizeof(topic), "--topic-changes=%s", W.changes);
    snprintf(group, sizeof(group), "--indexer-group=%s-indexer", W.group);
    a = new_ref();
    b = new_ref();
    c = new_ref();
    /* Nine notes of 60,000 bytes, twice: the second change document is over 1 MB. */
    len += (size_t)sprintf(notes + len, "\"notes\":[");
    for (int i = 0; i < 9; i++) {
        len += (size_t)sprintf(notes + len, "%s{\"author\":\"a\",\"body\":\"", i ? "," : "");
        memset(notes + len, 'n', 60000);
        len += 60000;
        len += (size_t)sprintf(notes + len, "\"}");
    }
    sprintf(notes + len, "]");
    plan_create(a, NULL);
    plan_text(a, "applied", notes)->revision = 2;
    plan_text(a, "applied", notes)->revision = 3;
    /* Blobs under the limit as sent, over it as PostgreSQL renders them: one of 90,000 keys,
     * which Elasticsearch refuses (more fields than an index may have), and an array of
     * 400,000 numbers, which it takes. */
    wide = malloc(90000 * 16 + 128);
    ck_assert_ptr_nonnull(wide);
    len = (size_t)sprintf(wide, "\"jurisdiction\":\"IT\",\"state\":\"Open\",\"data\":{");
    for (int i = 0; i < 90000; i++)
        len += (size_t)sprintf(wide + len, "%s\"k%05d\":1", i ? "," : "", i);
    sprintf(wide + len, "}");
    plan_text(b, "applied", wide)->revision = 1;
    len = (size_t)sprintf(wide, "\"jurisdiction\":\"IT\",\"state\":\"Open\",\"data\":{\"v\":[");
    for (int i = 0; i < 400000; i++)
        len += (size_t)sprintf(wide + len, "%s1", i ? "," : "");
    sprintf(wide + len, "]}");
    plan_text(c, "applied", wide)->revision = 1;
    free(wide);
    send_range(0, W.nplan);
    sent = W.nplan;
    pid = worker_start(NULL);
    wait_relay(pid);
    ix = it_spawn("casestream-indexer", ix_args, NULL);
    load_after_and_check(sent);
    check_changes();
    nchanges = read_topic(W.changes, 0, 0, &changes);
    for (size_t i = 0; i < nchanges; i++)
        by_reference += strstr(changes[i].value, "\"omitted\"") != NULL;
    it_msgs_free(changes, nchanges);
    ck_assert_msg(by_reference >= 3, "%d changes went by reference, expected at least 3",
                  by_reference);
    ck_assert_msg(wait_indexed(a, 60000), "case %" PRId64 " not indexed at its revision", a);
    ck_assert_msg(wait_indexed(c, 60000), "case %" PRId64 " not indexed at its revision", c);
    /* What Elasticsearch refuses is a dead letter with its reason; nothing waits for it. */
    ck_assert_msg(
        it_wait_sql(1, 60000,
                    "SELECT count(*) FROM ccd.index_dead_letter WHERE reference = %" PRId64
                    " AND reason LIKE '%%total fields%%'",
                    b),
        "no dead letter for case %" PRId64 " naming the field limit", b);
    es_revision(a, &nnotes);
    ck_assert_int_eq(nnotes, 18);
    ck_assert_msg(wait_indexed(W.hi, 60000), "the last case of the load is not indexed");
    ck_assert_int_eq(it_stop(ix, SIGTERM, 20000), 0);
    worker_stop_last(pid);
}
END_TEST

/* --- 4. a key reused with another payload ------------------------------------------------- */

START_TEST(test_poison_key_reused_with_another_payload_is_rejected_same_payload_duplicate)
{
    int64_t ref;
    char key[37], mkey[24], cmd[512], text[1024];
    planned *other_redis, *same, *other_pg;
    outcome *o;
    size_t n;
    pid_t pid;

    world_new("fingerprint", 3);
    ref = new_ref();
    new_key(key);
    snprintf(mkey, sizeof(mkey), "%" PRId64, ref);
    snprintf(text, sizeof(text),
             "{\"idempotency_key\":\"%s\",\"case_reference\":%" PRId64
             ",\"case_type\":\"%s\",\"event_id\":\"create\",\"user_id\":\"u\","
             "\"jurisdiction\":\"IT\",\"state\":\"Open\",\"data\":{\"a\":1,\"b\":2}}",
             key, ref, CASE_TYPE);
    plan_raw(ref, key, "applied", mkey, text, strlen(text))->revision = 1;
    pid = worker_start(NULL);
    send_range(0, W.nplan);
    ck_assert(it_wait_sql(
        1, 60000, "SELECT count(*) FROM ccd.case_event WHERE case_reference = %" PRId64, ref));
    for (long long deadline = cs_now_ms() + 30000;
         redis_exists(ref, key) != 1 && cs_now_ms() < deadline;)
        usleep(100 * 1000);
    ck_assert_msg(redis_exists(ref, key) == 1, "the applied key is not in redis");
    /* Answered through Redis: another payload goes on to PostgreSQL, which rejects it. */
    snprintf(text, sizeof(text),
             "{\"idempotency_key\":\"%s\",\"case_reference\":%" PRId64
             ",\"case_type\":\"%s\",\"event_id\":\"create\",\"user_id\":\"u\","
             "\"jurisdiction\":\"IT\",\"state\":\"Open\",\"data\":{\"a\":1,\"b\":3}}",
             key, ref, CASE_TYPE);
    other_redis = plan_raw(ref, key, "rejected", mkey, text, strlen(text));
    /* The same content with its members in another order and other spacing. */
    snprintf(text, sizeof(text),
             "{ \"data\": {\"b\": 2, \"a\": 1}, \"state\": \"Open\", \"jurisdiction\": "
             "\"IT\", \"user_id\": \"u\", \"event_id\": \"create\", \"case_type\": \"%s\", "
             "\"case_reference\": %" PRId64 ", \"idempotency_key\": \"%s\" }",
             CASE_TYPE, ref, key);
    same = plan_raw(ref, key, "duplicate", mkey, text, strlen(text));
    send_range(1, W.nplan);
    for (long long deadline = cs_now_ms() + 60000;
         it_topic_end(W.results) < 3 && cs_now_ms() < deadline;)
        usleep(100 * 1000);
    ck_assert_msg(it_topic_end(W.results) >= 3, "the worker did not answer the resubmissions");
    /* Without Redis's entry, PostgreSQL's record alone decides. */
    snprintf(cmd, sizeof(cmd), "redis-cli -u '%s' DEL 'cs:idem:%" PRId64 ":%s' >/dev/null",
             it_config()->redis, ref, key);
    ck_assert_int_eq(system(cmd), 0);
    other_pg = plan_raw(ref, key, "rejected", mkey, other_redis->value, other_redis->len);
    send_range(W.nplan - 1, W.nplan);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    /* One partition, offsets 0..3 in the order sent. */
    ck_assert_int_eq(n, 4);
    ck_assert_str_eq(o[1].status, other_redis->status);
    ck_assert_str_eq(o[2].status, same->status);
    ck_assert_str_eq(o[3].status, other_pg->status);
    for (size_t i = 1; i < 4; i += 2) {
        ck_assert_int_eq(o[i].code, 422);
        ck_assert_msg(o[i].error && strstr(o[i].error, "with another payload"), "%s", o[i].text);
    }
    ck_assert_int_eq(o[2].revision, 1);
    outcomes_free(o, n);
    check_applied_once();
    worker_stop_last(pid);
}
END_TEST

Suite *it_poison_suite(void)
{
    Suite *s = suite_create("it_poison");
    TCase *tc = tcase_create("poison");

    tcase_set_timeout(tc, 240);
    tcase_add_checked_fixture(tc, services_up, NULL);
    tcase_add_test(tc, test_poison_large_reals_are_kept_and_unreadable_case_rejects_only_itself);
    tcase_add_test(tc, test_poison_messages_near_the_limits_are_answered_and_copied_cut_to_fit);
    tcase_add_test(tc, test_poison_change_too_large_for_the_topic_goes_by_reference);
    tcase_add_test(tc,
                   test_poison_key_reused_with_another_payload_is_rejected_same_payload_duplicate);
    suite_add_tcase(s, tc);
    return s;
}
