/* Integration tests of CCD's case model in the worker (DESIGN §3-§5) against the real services:
 * every CCD field from a Kafka submission to PostgreSQL and to the change document, the version
 * rule's four triggers and a no-op event, and supplementary data updates: $set and $inc, their
 * outcomes and repeats, concurrent $inc from several producers, and every refused form.
 *
 * Each test runs the worker on topics and a group of its own (tests/it_world.h). */
#include "envelope.h"
#include "it_world.h"
#include "runner.h"

#include "run.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- helpers --------------------------------------------------------------------------------- */

/* The first column of the first row of a query as text (NULL for SQL NULL or no row); the
 * caller frees. */
__attribute__((format(printf, 1, 2))) static char *sql_text(const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    PGresult *res;
    char *v = NULL;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    res = query("%s", sql);
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        v = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

/* Asserts that a query's text result is want (NULL: SQL NULL). */
#define assert_sql(want, ...)                                                                      \
    do {                                                                                           \
        char *got_ = sql_text(__VA_ARGS__);                                                        \
        const char *want_ = (want);                                                                \
        ck_assert_msg(want_ ? got_ &&strcmp(got_, want_) == 0 : got_ == NULL,                      \
                      "%s: %s, expected %s", #__VA_ARGS__, got_ ? got_ : "NULL",                   \
                      want_ ? want_ : "NULL");                                                     \
        free(got_);                                                                                \
    } while (0)

/* The outcome of planned message p (its case, key and expected status). */
static const outcome *outcome_of(const outcome *o, size_t n, const planned *p)
{
    const outcome *x = find_outcome(o, n, p->ref, p->key, p->status);

    ck_assert_msg(x != NULL, "no \"%s\" outcome for case %" PRId64 " key %s", p->status, p->ref,
                  p->key);
    return x;
}

/* The text of the outcome's supplementary_data member as it is on the wire (NULL: none); the
 * caller frees. */
static char *wire_supplementary(const outcome *x)
{
    const char *at = strstr(x->text, "\"supplementary_data\":"), *end;

    if (!at)
        return NULL;
    at += strlen("\"supplementary_data\":");
    end = strstr(at, ",\"source\":");
    ck_assert_msg(end != NULL, "supplementary_data is not right before source: %s", x->text);
    return strndup(at, (size_t)(end - at));
}

/* Asserts the outcome's supplementary_data is the JSON want (by value; NULL: none). */
static void assert_outcome_map(const outcome *x, const char *want)
{
    char *got = wire_supplementary(x);
    json_t *g = got ? json_loads(got, 0, NULL) : NULL, *w = want ? json_loads(want, 0, NULL) : NULL;

    if (!want)
        ck_assert_msg(got == NULL, "outcome carries supplementary data: %s", x->text);
    else
        ck_assert_msg(g && w && json_equal(g, w), "supplementary_data %s, expected %s: %s",
                      got ? got : "(none)", want, x->text);
    json_decref(g);
    json_decref(w);
    free(got);
}

/* Waits until case ref has revision rev in PostgreSQL. */
static void wait_revision(int64_t ref, long long rev)
{
    ck_assert_msg(it_wait_sql(rev, CATCH_UP_MS,
                              "SELECT coalesce((SELECT case_revision FROM ccd.case_data WHERE "
                              "reference = %" PRId64 "), 0)",
                              ref),
                  "case %" PRId64 " did not reach revision %lld", ref, rev);
}

/* The change document of case ref at revision rev on the world's changes topic; the caller
 * decrefs. */
static json_t *change_document(int64_t ref, long long rev)
{
    long long deadline = cs_now_ms() + 60000;
    json_t *found = NULL;

    while (!found && cs_now_ms() < deadline) {
        it_msg *msgs = NULL;
        size_t n = read_topic(W.changes, 0, 0, &msgs);

        for (size_t i = 0; i < n && !found; i++) {
            json_t *d = json_loads(msgs[i].value, 0, NULL);

            if (json_integer_value(json_object_get(d, "reference")) == ref &&
                json_integer_value(json_object_get(d, "case_revision")) == rev)
                found = json_incref(d);
            json_decref(d);
        }
        it_msgs_free(msgs, n);
        if (!found)
            usleep(250 * 1000);
    }
    ck_assert_msg(found != NULL, "no change of case %" PRId64 " at revision %lld on %s", ref, rev,
                  W.changes);
    return found;
}

/* Asserts member name of document d equals the JSON want (by value). */
static void assert_member(json_t *d, const char *name, const char *want)
{
    json_t *w = json_loads(want, JSON_DECODE_ANY, NULL), *got = json_object_get(d, name);
    char *text = json_dumps(got, JSON_ENCODE_ANY | JSON_COMPACT);

    ck_assert_msg(w != NULL, "test bug: %s", want);
    ck_assert_msg(got && json_equal(got, w), "change document %s is %s, expected %s", name,
                  text ? text : "absent", want);
    free(text);
    json_decref(w);
}

/* --- 1. every field from Kafka to PostgreSQL and to the change document ------------------ */

/* Bad values of the fields, each class of them: each is rejected (422) by the validator with its
 * reason, and goes to the DLQ with it (numbers that cannot be kept exactly: tests/it_poison.c,
 * whose messages reach the worker as written; these are rendered by jansson). With long > 0, fields
 * names a string field given long characters "é". */
static const struct {
    const char *fields;
    size_t long_;
    const char *reason;
} bad_values[] = {
    {"{\"event_name\": 5}", 0, "field \"event_name\" must be a string"},
    {"user_first_name", 256, "field \"user_first_name\" is 256 characters, over the limit of 255"},
    {"summary", 1025, "field \"summary\" is 1025 characters, over the limit of 1024"},
    {"{\"security_classification\": \"SECRET\"}", 0,
     "field \"security_classification\" must be one of PUBLIC, PRIVATE, RESTRICTED"},
    {"{\"resolved_ttl\": \"2031-02-29\"}", 0,
     "field \"resolved_ttl\" is not a calendar date: \"2031-02-29\""},
    {"{\"resolved_ttl\": \"2031-2-28\"}", 0,
     "field \"resolved_ttl\" must be a date \"YYYY-MM-DD\" or null"},
    {"{\"case_type_version\": 0}", 0, "field \"case_type_version\" must be an integer from 1 to"},
    {"{\"significant_item\": {\"type\": \"DOCUMENT\", \"description\": \"d\", \"url\": "
     "\"file:///etc/passwd\"}}",
     0, "field \"significant_item.url\" must be an http, https or ftp URL"},
    {"{\"id\": 4611686018427387904}", 0, "casestream gives the ids from 2^62 up itself"},
    {"{\"start_revision\": -1}", 0, "field \"start_revision\" must be an integer 0 or more"},
    {"{\"data_classification\": [\"PUBLIC\"]}", 0,
     "field \"data_classification\" must be an object"},
    {"{\"notes\": {\"author\": \"a\", \"body\": \"b\"}}", 0, "field \"notes\" must be an array"},
    {"{\"data\": {}, \"data_merge\": {}}", 0,
     "fields \"data\" and \"data_merge\" cannot be used together"},
    {"{\"expected_version\": -1}", 0, "field \"expected_version\" must be an integer >= 0"},
};

START_TEST(test_ccd_fields_round_trip_to_postgresql_and_change_document)
{
    int64_t a, b;
    planned *create_a, *create_b, *edit, *other_id,
        *bad[sizeof(bad_values) / sizeof(bad_values[0])];
    outcome *o;
    size_t n;
    pid_t pid;
    json_t *doc;
    char id_b[32];

    world_new("ccd-fields", 3);
    a = new_ref();
    b = new_ref();
    /* Case a names its internal id (its reference: no sequence value comes near it); b does
     * not and takes one from ccd.case_data_id_seq. */
    create_a = plan_sub(
        a, NULL, "applied", "create",
        "{\"id\": %" PRId64 ", \"jurisdiction\": \"IT\", \"state\": \"Open\", \"data\": {\"x\": "
        "1}, \"data_classification\": {\"x\": \"PRIVATE\"}, \"resolved_ttl\": \"2031-02-28\", "
        "\"security_classification\": \"PRIVATE\", \"summary\": \"made\", \"description\": "
        "\"by the test\", \"event_name\": \"Create a case\", \"user_first_name\": \"Ann\", "
        "\"user_last_name\": \"Émile\", \"state_name\": \"Case open\", \"case_type_version\": 7, "
        "\"significant_item\": {\"type\": \"DOCUMENT\", \"description\": \"Form A\", \"url\": "
        "\"https://dm-store/documents/1\", \"extra\": true}, \"proxied_by\": \"proxy-1\", "
        "\"proxied_by_first_name\": \"Pat\", \"proxied_by_last_name\": \"Proxy\"}",
        a);
    create_a->revision = 1;
    create_b = plan_sub(b, NULL, "applied", "create",
                        "{\"jurisdiction\": \"IT\", \"state\": \"Open\", \"data\": {}}");
    create_b->revision = 1;
    /* A later event: the same id, the date cleared, another classification of the data. */
    edit = plan_sub(a, NULL, "applied", "edit",
                    "{\"id\": \"%" PRId64 "\", \"resolved_ttl\": null, \"data_classification\": "
                    "{\"x\": \"PUBLIC\"}, \"event_name\": \"Edit\", \"user_first_name\": \"Bo\"}",
                    a);
    edit->revision = 2;
    /* Refused for the case's state (another id than the case's): outcome only, never in the
     * DLQ. Refused for its own values: each bad value below, also in the DLQ. */
    other_id = plan_sub(a, NULL, "rejected", "edit", "{\"id\": 1, \"data\": {\"x\": 9}}");
    for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
        char fields[4096];

        if (bad_values[i].long_) {
            int len = snprintf(fields, sizeof(fields), "{\"%s\": \"", bad_values[i].fields);

            for (size_t k = 0; k < bad_values[i].long_; k++)
                len += snprintf(fields + len, sizeof(fields) - (size_t)len, "\xc3\xa9");
            snprintf(fields + len, sizeof(fields) - (size_t)len, "\"}");
        } else {
            snprintf(fields, sizeof(fields), "%s", bad_values[i].fields);
        }
        bad[i] = plan_sub(a, NULL, "rejected", "edit", "%s", fields);
        bad[i]->at_door = true;
    }
    pid = worker_start(NULL);
    send_range(0, W.nplan);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    {
        const outcome *x = outcome_of(o, n, other_id);
        char want[128];

        snprintf(want, sizeof(want), "case %" PRId64 " has id %" PRId64 ", not 1", a, a);
        ck_assert_int_eq(x->code, 422);
        ck_assert_msg(x->error && strcmp(x->error, want) == 0, "%s", x->text);
        assert_outcome_map(x, NULL);
    }
    for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
        const outcome *y = outcome_of(o, n, bad[i]);

        ck_assert_int_eq(y->code, 422);
        ck_assert_msg(y->error && strstr(y->error, bad_values[i].reason), "bad value %zu: %s", i,
                      y->text);
    }
    check_dead_letters(o, n);
    outcomes_free(o, n);
    check_applied_once();
    check_changes();

    /* The case rows. */
    assert_sql("t",
               "SELECT id = reference AND data_classification = '{\"x\": \"PUBLIC\"}' AND "
               "resolved_ttl IS NULL AND supplementary_data = '{}' AND version = 2 AND "
               "case_revision = 2 AND data = '{\"x\": 1}' FROM ccd.case_data WHERE reference = "
               "%" PRId64,
               a);
    snprintf(id_b, sizeof(id_b), "%lld",
             it_sql_int("SELECT id FROM ccd.case_data WHERE reference = %" PRId64, b));
    /* From casestream's own range (2^62 and up, migration 013), which CCD's ids never reach. */
    ck_assert_msg(atoll(id_b) >= CS_CASE_ID_OWN_FIRST, "case %" PRId64 " has id %s", b, id_b);
    /* The history rows: every CCD field as submitted, the significant item as its three. */
    assert_sql("t",
               "SELECT event_name = 'Create a case' AND user_first_name = 'Ann' AND "
               "user_last_name = 'Émile' AND state_name = 'Case open' AND case_type_version = 7 "
               "AND data_classification = '{\"x\": \"PRIVATE\"}' AND significant_item = "
               "'{\"type\": \"DOCUMENT\", \"description\": \"Form A\", \"url\": "
               "\"https://dm-store/documents/1\"}' AND proxied_by = 'proxy-1' AND "
               "proxied_by_first_name = 'Pat' AND proxied_by_last_name = 'Proxy' AND summary = "
               "'made' AND description = 'by the test' AND security_classification = 'PRIVATE' "
               "AND supplementary_data IS NULL FROM ccd.case_event WHERE case_reference = "
               "%" PRId64 " AND case_revision = 1",
               a);
    assert_sql("t",
               "SELECT event_name = 'Edit' AND user_first_name = 'Bo' AND user_last_name IS NULL "
               "AND state_name IS NULL AND case_type_version IS NULL AND significant_item IS "
               "NULL AND proxied_by IS NULL AND data_classification = '{\"x\": \"PUBLIC\"}' "
               "FROM ccd.case_event WHERE case_reference = %" PRId64 " AND case_revision = 2",
               a);
    /* The change documents on the changes topic: the case's fields as they were then. */
    doc = change_document(a, 1);
    {
        char id[32];

        snprintf(id, sizeof(id), "%" PRId64, a);
        assert_member(doc, "id", id);
    }
    assert_member(doc, "data_classification", "{\"x\": \"PRIVATE\"}");
    assert_member(doc, "resolved_ttl", "\"2031-02-28\"");
    assert_member(doc, "supplementary_data", "{}");
    assert_member(doc, "security_classification", "\"PRIVATE\"");
    ck_assert_ptr_nonnull(json_string_value(json_object_get(doc, "last_state_modified_date")));
    json_decref(doc);
    doc = change_document(a, 2);
    assert_member(doc, "data_classification", "{\"x\": \"PUBLIC\"}");
    assert_member(doc, "resolved_ttl", "null");
    json_decref(doc);
    doc = change_document(b, 1);
    assert_member(doc, "id", id_b);
    assert_member(doc, "data_classification", "null");
    json_decref(doc);
    worker_stop_last(pid);
}
END_TEST

/* Plans a create of ref naming the internal id id, expected to get status. */
static planned *plan_named_create(int64_t ref, const char *status, int64_t id)
{
    return plan_sub(ref, NULL, status, "create",
                    "{\"id\": %" PRId64 ", \"jurisdiction\": \"IT\", \"state\": \"Open\", "
                    "\"data\": {}}",
                    id);
}

/* A create naming an internal id that another case holds, or a disposed case held, is rejected
 * with the case that holds it, and the pipeline goes on: never a retried batch, never a stall.
 * Two creates naming one new id at once (on different partitions, so possibly in two batches
 * of two appliers): one applies, the other is rejected, by the worker's check or, when both
 * raced past it, by the unique constraint. */
START_TEST(test_ccd_create_naming_a_taken_id_is_rejected_and_the_pipeline_goes_on)
{
    int64_t a, b, gone, c, r1, r2, after;
    planned *create_a, *create_b, *create_c, *race1, *race2, *create_after;
    const outcome *x, *w1, *w2, *l1, *l2;
    outcome *o;
    size_t n;
    pid_t pid;
    char want[160], num[32];

    world_new("ccd-ids", 3);
    a = new_ref();
    b = new_ref();
    gone = new_ref();
    c = new_ref();
    r1 = new_ref();
    r2 = new_ref();
    after = new_ref();
    /* What is left of a disposed case whose id was gone's own reference. */
    assert_sql("1",
               "WITH d AS (INSERT INTO ccd.disposed_case (reference, id, case_type_id, "
               "jurisdiction, last_revision, disposed_at) VALUES (%" PRId64 ", %" PRId64
               ", '%s', 'IT', 3, '2026-01-31 12:00+00') RETURNING 1) SELECT count(*) FROM d",
               gone, gone, CASE_TYPE);
    create_a = plan_named_create(a, "applied", a);
    pid = worker_start(NULL);
    send_range(0, 1);
    o = read_outcomes(&n);
    x = outcome_of(o, n, create_a);
    outcomes_free(o, n);
    /* Then a create naming a's id, and one naming the disposed case's. */
    create_b = plan_named_create(b, "rejected", a);
    create_c = plan_sub(c, NULL, "rejected", "create",
                        "{\"id\": \"%" PRId64 "\", \"jurisdiction\": \"IT\", \"state\": "
                        "\"Open\", \"data\": {}}",
                        gone);
    send_range(1, 3);
    o = read_outcomes(&n);
    x = outcome_of(o, n, create_b);
    snprintf(want, sizeof(want),
             "id %" PRId64 " is already the id of case %" PRId64 ": an id is one case's", a, a);
    ck_assert_int_eq(x->code, 422);
    ck_assert_msg(x->error && strcmp(x->error, want) == 0, "%s", x->text);
    x = outcome_of(o, n, create_c);
    snprintf(want, sizeof(want),
             "id %" PRId64 " was the id of case %" PRId64
             ", disposed of on 2026-01-31: an id is never given to another case",
             gone, gone);
    ck_assert_msg(x->error && strcmp(x->error, want) == 0, "%s", x->text);
    outcomes_free(o, n);

    /* The race, then a create that must still get through. */
    race1 = plan_named_create(r1, "applied", r1);
    race2 = plan_named_create(r2, "applied", r1);
    send_range(3, 5);
    create_after = plan_create(after, NULL);
    send_range(5, 6);
    o = read_outcomes(&n);
    ck_assert_ptr_nonnull(find_outcome(o, n, after, create_after->key, "applied"));
    w1 = find_outcome(o, n, r1, race1->key, "applied");
    w2 = find_outcome(o, n, r2, race2->key, "applied");
    l1 = find_outcome(o, n, r1, race1->key, "rejected");
    l2 = find_outcome(o, n, r2, race2->key, "rejected");
    ck_assert_msg((w1 && l2 && !w2 && !l1) || (w2 && l1 && !w1 && !l2),
                  "one of the two creates naming id %" PRId64 " applies, the other is rejected",
                  r1);
    x = l1 ? l1 : l2;
    snprintf(num, sizeof(num), "id %" PRId64 " ", r1);
    ck_assert_msg(x->code == 422 && x->error &&
                      (strstr(x->error, num) || strstr(x->error, "case_data_id")),
                  "%s", x->text);
    /* One outcome per message, every one decided: nothing was retried into a loop. */
    ck_assert_uint_eq(count_status(o, n, "applied") + count_status(o, n, "rejected"), W.nplan);
    (l1 ? race1 : race2)->status = "rejected"; /* for check_applied_once */
    outcomes_free(o, n);
    check_applied_once();
    assert_sql("1", "SELECT count(*) FROM ccd.case_data WHERE id = %" PRId64, r1);
    assert_sql("0",
               "SELECT count(*) FROM ccd.case_data WHERE reference IN (%" PRId64 ", %" PRId64 ")",
               b, c);
    ck_assert_int_ge(it_sql_int("SELECT id FROM ccd.case_data WHERE reference = %" PRId64, after),
                     CS_CASE_ID_OWN_FIRST);
    worker_stop_last(pid);
}
END_TEST

/* --- 2. the version rule ---------------------------------------------------------------------- */

/* Microseconds since the epoch of a timestamp column of case ref. */
static long long case_time(int64_t ref, const char *column)
{
    return it_sql_int("SELECT (extract(epoch FROM %s) * 1000000)::bigint FROM ccd.case_data "
                      "WHERE reference = %" PRId64,
                      column, ref);
}

START_TEST(test_ccd_version_moves_for_each_trigger_and_not_for_a_no_op)
{
    /* Each step: what it sends, and the version and revision it must leave. */
    static const struct {
        const char *event, *fields;
        int version;
    } steps[] = {
        {"noop", "{\"summary\": \"only a summary\", \"event_name\": \"Look\"}", 1},
        {"data", "{\"data\": {\"a\": 1, \"b\": [1, 2]}}", 2},
        {"sameData", "{\"data\": {\"b\": [1, 2], \"a\": 1}}", 2},
        {"classification", "{\"security_classification\": \"RESTRICTED\"}", 3},
        {"sameClassification", "{\"security_classification\": \"RESTRICTED\"}", 3},
        {"ttl", "{\"resolved_ttl\": \"2032-01-31\"}", 4},
        {"sameTtl", "{\"resolved_ttl\": \"2032-01-31\"}", 4},
        {"clearTtl", "{\"resolved_ttl\": null}", 5},
        {"dataClassification", "{\"data_classification\": {\"a\": \"PRIVATE\"}}", 5},
        {"notes", "{\"notes\": [{\"author\": \"a\", \"body\": \"b\"}]}", 5},
        {"supplementary", "{\"supplementary_data_updates\": {\"$inc\": {\"n\": 1}}}", 5},
    };
    const size_t nsteps = sizeof(steps) / sizeof(steps[0]);
    long long lsm_created, lsm_state, modified;
    int64_t ref;
    outcome *o;
    size_t n;
    pid_t pid;

    world_new("ccd-version", 1);
    ref = new_ref();
    plan_sub(ref, NULL, "applied", "create",
             "{\"jurisdiction\": \"IT\", \"state\": \"Open\", \"data\": {\"a\": 1, \"b\": [1]}}")
        ->revision = 1;
    pid = worker_start(NULL);
    send_range(0, 1);
    wait_revision(ref, 1);
    lsm_created = case_time(ref, "last_state_modified_date");
    for (size_t i = 0; i < nsteps; i++)
        plan_sub(ref, NULL, "applied", steps[i].event, "%s", steps[i].fields)->revision =
            (long long)i + 2;
    /* The triggers other than the state, each in a batch of its own. */
    for (size_t i = 0; i < nsteps; i++) {
        send_range(i + 1, i + 2);
        wait_revision(ref, (long long)i + 2);
    }
    ck_assert_int_eq(case_time(ref, "last_state_modified_date"), lsm_created);
    ck_assert_int_gt(case_time(ref, "last_modified"), lsm_created);
    /* The state: the same state again keeps the version and the date, another moves both. */
    plan_sub(ref, NULL, "applied", "sameState", "{\"state\": \"Open\"}")->revision =
        (long long)nsteps + 2;
    send_range(nsteps + 1, nsteps + 2);
    wait_revision(ref, (long long)nsteps + 2);
    ck_assert_int_eq(case_time(ref, "last_state_modified_date"), lsm_created);
    plan_sub(ref, NULL, "applied", "state", "{\"state\": \"Closed\"}")->revision =
        (long long)nsteps + 3;
    send_range(nsteps + 2, nsteps + 3);
    wait_revision(ref, (long long)nsteps + 3);
    lsm_state = case_time(ref, "last_state_modified_date");
    ck_assert_int_gt(lsm_state, lsm_created);
    plan_sub(ref, NULL, "applied", "after", "{\"data_merge\": {\"c\": 1}}")->revision =
        (long long)nsteps + 4;
    send_range(nsteps + 3, nsteps + 4);
    wait_revision(ref, (long long)nsteps + 4);
    modified = case_time(ref, "last_modified");
    ck_assert_int_eq(case_time(ref, "last_state_modified_date"), lsm_state);
    ck_assert_int_gt(modified, lsm_state);

    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    /* Outcomes in offset order: the create, the steps, sameState, state, after. */
    ck_assert_int_eq(o[0].version, 1);
    for (size_t i = 0; i < nsteps; i++)
        ck_assert_msg(o[i + 1].version == steps[i].version && o[i + 1].revision == (long long)i + 2,
                      "step %s: version %lld revision %lld, expected %d and %zu: %s",
                      steps[i].event, o[i + 1].version, o[i + 1].revision, steps[i].version, i + 2,
                      o[i + 1].text);
    ck_assert_int_eq(o[nsteps + 1].version, 5);
    ck_assert_int_eq(o[nsteps + 2].version, 6);
    ck_assert_int_eq(o[nsteps + 3].version, 7);
    outcomes_free(o, n);
    check_applied_once();
    /* The history rows hold the same versions. */
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_event e WHERE case_reference = "
                                "%" PRId64 " AND version = (SELECT max(p.version) FROM "
                                "ccd.case_event p WHERE p.case_reference = e.case_reference AND "
                                "p.case_revision <= e.case_revision)",
                                ref),
                     (long long)nsteps + 4);
    assert_sql("t",
               "SELECT version = 7 AND case_revision = %zu AND resolved_ttl IS NULL AND "
               "security_classification = 'RESTRICTED' AND state = 'Closed' AND "
               "supplementary_data = '{\"n\": 1}' FROM ccd.case_data WHERE reference = %" PRId64,
               nsteps + 4, ref);
    worker_stop_last(pid);
}
END_TEST

/* --- 3. supplementary data: $set and $inc, outcomes and repeats --------------------------------
 */

START_TEST(test_ccd_supplementary_set_and_inc_outcomes_history_and_repeats)
{
    int64_t ref;
    planned *set, *inc, *edit, *again, *later;
    const outcome *x;
    outcome *o;
    size_t n;
    pid_t pid;
    char *first_map, cmd[512];
    json_t *doc;

    world_new("ccd-supplementary", 1);
    ref = new_ref();
    plan_create(ref, NULL);
    set = plan_sub(ref, NULL, "applied", "setSupplementary",
                   "{\"supplementary_data_updates\": {\"$set\": {\"orgs.org1\": \"Y\", "
                   "\"HMCTSServiceId\": \"ABA1\", \"r\": 0.5}}}");
    set->revision = 2;
    inc = plan_sub(ref, NULL, "applied", "incSupplementary",
                   "{\"supplementary_data_updates\": {\"$inc\": {\"views\": 2, \"orgs.count\": "
                   "1}, \"$set\": {\"orgs.org2\": \"N\"}}}");
    inc->revision = 3;
    edit = plan_sub(ref, NULL, "applied", "edit", "{\"data_merge\": {\"n\": 1}}");
    edit->revision = 4;
    pid = worker_start(NULL);
    send_range(0, W.nplan);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    x = outcome_of(o, n, set);
    ck_assert_int_eq(x->code, 200);
    ck_assert_int_eq(x->version, 1);
    /* The whole map after the update, members sorted: the exact text on the wire. */
    first_map = wire_supplementary(x);
    ck_assert_str_eq(first_map,
                     "{\"HMCTSServiceId\":\"ABA1\",\"orgs\":{\"org1\":\"Y\"},\"r\":0.5}");
    x = outcome_of(o, n, inc);
    ck_assert_int_eq(x->version, 1);
    assert_outcome_map(x, "{\"HMCTSServiceId\": \"ABA1\", \"orgs\": {\"org1\": \"Y\", \"org2\": "
                          "\"N\", \"count\": 1}, \"r\": 0.5, \"views\": 2}");
    x = outcome_of(o, n, edit);
    ck_assert_int_eq(x->version, 2);
    assert_outcome_map(x, NULL);
    assert_outcome_map(&o[0], NULL);
    outcomes_free(o, n);
    check_applied_once();
    check_changes();
    /* PostgreSQL: the map, the history rows (version kept, the map after each update). */
    assert_sql("t",
               "SELECT supplementary_data = '{\"r\": 0.5, \"orgs\": {\"org1\": \"Y\", \"org2\": "
               "\"N\", \"count\": 1}, \"views\": 2, \"HMCTSServiceId\": \"ABA1\"}' AND version = 2 "
               "AND case_revision = 4 FROM ccd.case_data WHERE reference = %" PRId64,
               ref);
    assert_sql("1 1 {\"r\": 0.5, \"orgs\": {\"org1\": \"Y\"}, \"HMCTSServiceId\": \"ABA1\"}",
               "SELECT version || ' ' || (data = '{\"title\": \"case %" PRId64
               "\", \"n\": 0}')::int || ' ' || supplementary_data::text FROM ccd.case_event WHERE "
               "case_reference = %" PRId64 " AND case_revision = 2",
               ref, ref);
    assert_sql(NULL,
               "SELECT supplementary_data::text FROM ccd.case_event WHERE case_reference = "
               "%" PRId64 " AND case_revision = 4",
               ref);
    doc = change_document(ref, 3);
    assert_member(doc, "supplementary_data",
                  "{\"HMCTSServiceId\": \"ABA1\", \"orgs\": {\"org1\": \"Y\", \"org2\": \"N\", "
                  "\"count\": 1}, \"r\": 0.5, \"views\": 2}");
    assert_member(doc, "version", "1");
    json_decref(doc);

    /* The $set again, once answered from Redis and once (its entry gone) from PostgreSQL: a
     * duplicate carrying the map right after the original, byte for byte. */
    again = plan_raw(ref, set->key, "duplicate", set->mkey, set->value, set->len);
    again->revision = 2;
    send_range(W.nplan - 1, W.nplan);
    o = read_outcomes(&n);
    x = &o[n - 1];
    ck_assert_str_eq(x->status, "duplicate");
    {
        char *map = wire_supplementary(x);

        ck_assert_str_eq(map, first_map);
        free(map);
    }
    outcomes_free(o, n);
    snprintf(cmd, sizeof(cmd), "redis-cli -u '%s' DEL 'cs:idem:%" PRId64 ":%s' >/dev/null 2>&1",
             it_config()->redis, ref, set->key);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(redis_exists(ref, set->key), 0);
    later = plan_raw(ref, set->key, "duplicate", set->mkey, set->value, set->len);
    later->revision = 2;
    send_range(W.nplan - 1, W.nplan);
    o = read_outcomes(&n);
    x = &o[n - 1];
    ck_assert_str_eq(x->status, "duplicate");
    ck_assert_int_eq(x->version, 1);
    ck_assert_int_eq(x->revision, 2);
    {
        char *map = wire_supplementary(x);

        ck_assert_str_eq(map, first_map);
        free(map);
    }
    outcomes_free(o, n);
    ck_assert_int_eq(it_sql_int("SELECT case_revision FROM ccd.case_data WHERE reference = "
                                "%" PRId64,
                                ref),
                     4);
    free(first_map);
    worker_stop_last(pid);
}
END_TEST

/* --- 4. concurrent $inc from several producers ------------------------------------------------ */

#define INC_PRODUCERS 4
#define INCS_EACH     30
#define INC_EDITS     8

static bool pick_tag(size_t i, void *ctx)
{
    return W.plan[i].tag == *(int *)ctx;
}

START_TEST(test_ccd_concurrent_incs_from_several_producers_sum_exactly)
{
    feeder f[INC_PRODUCERS + 1];
    int tags[INC_PRODUCERS + 1];
    long long total = 0;
    int64_t ref;
    outcome *o;
    size_t n;
    pid_t pid;

    world_new("ccd-incs", 3);
    ref = new_ref();
    plan_create(ref, NULL);
    /* Producer p adds p to "n" and 1 to "by.p<p>" each time; producer 5 edits the blob. */
    for (int k = 0; k < INCS_EACH; k++)
        for (int p = 1; p <= INC_PRODUCERS; p++) {
            plan_sub(ref, NULL, "applied", "inc",
                     "{\"supplementary_data_updates\": {\"$inc\": {\"n\": %d, \"by.p%d\": 1}}}", p,
                     p)
                ->tag = p;
            total += p;
        }
    for (int e = 1; e <= INC_EDITS; e++)
        plan_sub(ref, NULL, "applied", "edit",
                 "{\"expected_version\": %d, \"data_merge\": {\"n\": %d}}", e, e)
            ->tag = INC_PRODUCERS + 1;
    pid = worker_start(NULL);
    send_range(0, 1);
    for (int p = INC_PRODUCERS + 1; p >= 1; p--) {
        tags[p - 1] = p;
        feeder_start(&f[p - 1], pick_tag, &tags[p - 1], p > INC_PRODUCERS ? 60 : 10);
    }
    for (int p = 0; p <= INC_PRODUCERS; p++)
        feeder_join(&f[p]);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    ck_assert_uint_eq(count_status(o, n, "applied"), 1 + INC_PRODUCERS * INCS_EACH + INC_EDITS);
    ck_assert_uint_eq(count_status(o, n, "conflict"), 0);
    /* Every $inc's outcome saw a different total: none was lost or applied twice. */
    {
        long long seen[INC_PRODUCERS * INCS_EACH];
        size_t m = 0;

        for (size_t i = 0; i < n; i++) {
            char *map = wire_supplementary(&o[i]);
            json_t *v = map ? json_loads(map, 0, NULL) : NULL;

            if (v) {
                ck_assert_uint_lt(m, INC_PRODUCERS * INCS_EACH);
                ck_assert_int_le(o[i].version, 1 + INC_EDITS);
                seen[m++] = json_integer_value(json_object_get(v, "n"));
            }
            json_decref(v);
            free(map);
        }
        ck_assert_uint_eq(m, INC_PRODUCERS * INCS_EACH);
        for (size_t i = 0; i < m; i++)
            for (size_t k = i + 1; k < m; k++)
                ck_assert_msg(seen[i] != seen[k], "two $inc outcomes saw n = %lld", seen[i]);
    }
    outcomes_free(o, n);
    check_applied_once();
    /* The sum is exact, each producer's count too, and only the edits moved the version. */
    ck_assert_int_eq(it_sql_int("SELECT (supplementary_data->>'n')::bigint FROM ccd.case_data "
                                "WHERE reference = %" PRId64,
                                ref),
                     total);
    for (int p = 1; p <= INC_PRODUCERS; p++)
        ck_assert_int_eq(it_sql_int("SELECT (supplementary_data->'by'->>'p%d')::int FROM "
                                    "ccd.case_data WHERE reference = %" PRId64,
                                    p, ref),
                         INCS_EACH);
    assert_sql("t",
               "SELECT version = %d AND case_revision = %d AND (data->>'n')::int = %d FROM "
               "ccd.case_data WHERE reference = %" PRId64,
               1 + INC_EDITS, 1 + INC_PRODUCERS * INCS_EACH + INC_EDITS, INC_EDITS, ref);
    /* The producers really interleaved: some $inc came between two edits. */
    ck_assert_int_gt(it_sql_int("SELECT count(*) FROM ccd.case_event WHERE case_reference = "
                                "%" PRId64 " AND supplementary_data IS NOT NULL AND version "
                                "BETWEEN 2 AND %d",
                                ref, INC_EDITS),
                     0);
    /* In history order, each update's map is the one before plus its own $inc. */
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM (SELECT (supplementary_data->>'n')::int - "
                                "coalesce(lag((supplementary_data->>'n')::int) OVER (ORDER BY "
                                "case_revision), 0) AS step FROM ccd.case_event WHERE "
                                "case_reference = %" PRId64 " AND supplementary_data IS NOT NULL) "
                                "s WHERE step NOT BETWEEN 1 AND %d",
                                ref, INC_PRODUCERS),
                     0);
    worker_stop_last(pid);
}
END_TEST

/* Runs `casestream dlq <what>` on the world's topics, which must exit 0; returns what it printed
 * (the caller frees). */
static char *dlq_command(const char *what)
{
    char ev[200], dl[200], out[256];
    const char *args[] = {ev, dl, "dlq", what, NULL};

    snprintf(ev, sizeof(ev), "--topic-events=%s", W.events);
    snprintf(dl, sizeof(dl), "--topic-dlq=%s", W.dlq);
    snprintf(out, sizeof(out), "build/it-logs/dlq-%s-%d.out", what, (int)getpid());
    ck_assert_msg(it_run("casestream", args, NULL, out, NULL) == 0, "casestream dlq %s failed",
                  what);
    return it_read_file(out);
}

/* Waits until the worker's counter name (metrics on port) is want. */
static void wait_metric(int port, const char *name, long long want)
{
    long long v = metric(port, name);

    for (long long deadline = cs_now_ms() + 60000; v != want && cs_now_ms() < deadline;) {
        usleep(200 * 1000);
        v = metric(port, name);
    }
    ck_assert_msg(v == want, "%s is %lld, expected %lld", name, v, want);
}

/* The outcome text of o up to its source: what a replay must answer again, byte for byte. */
static size_t before_source(const outcome *o)
{
    const char *at = strstr(o->text, "\"source\":");

    ck_assert_msg(at != NULL, "outcome without source: %s", o->text);
    return (size_t)(at - o->text);
}

/* --- 5. every refused form ---------------------------------------------------------------------
 */

START_TEST(test_ccd_supplementary_refused_forms_change_nothing)
{
    /* state: refused from the case's supplementary data, not by the validator (outcome only,
     * not in the DLQ). */
    static const struct {
        const char *fields, *reason;
        bool state;
    } forms[] = {
        {"{\"supplementary_data_updates\": {}}", "\"supplementary_data_updates\" is empty", false},
        {"{\"supplementary_data_updates\": []}", "\"supplementary_data_updates\" must be an object",
         false},
        {"{\"supplementary_data_updates\": {\"$set\": {}}}",
         "\"supplementary_data_updates.$set\" is empty", false},
        {"{\"supplementary_data_updates\": {\"$find\": {\"a\": 1}}}",
         "has the operation \"$find\": only \"$set\" and \"$inc\" are known", false},
        {"{\"supplementary_data_updates\": {\"$set\": 1}}",
         "\"supplementary_data_updates.$set\" must be an object", false},
        {"{\"supplementary_data_updates\": {\"$set\": {\"a.b.c\": 1}}}",
         "has the path \"a.b.c\" of more than two levels", false},
        {"{\"supplementary_data_updates\": {\"$set\": {\".a\": 1}}}",
         "has the path \".a\" with an empty level", false},
        {"{\"supplementary_data_updates\": {\"$inc\": {\"n\": 1.5}}}",
         "gives \"n\" a value that is not an integer", false},
        {"{\"supplementary_data_updates\": {\"$set\": {\"n\": null}}}",
         "gives \"n\" null, which cannot be set", false},
        {"{\"data\": {}, \"supplementary_data_updates\": {\"$inc\": {\"n\": 1}}}",
         "field \"data\" cannot be used with \"supplementary_data_updates\"", false},
        {"{\"expected_version\": 1, \"supplementary_data_updates\": {\"$inc\": {\"n\": 1}}}",
         "field \"expected_version\" cannot be used with", false},
        {"{\"supplementary_data_updates\": {\"$set\": {\"s.x\": 1}}}",
         "supplementary data \"s\" is not an object: cannot set \"s.x\"", true},
        {"{\"supplementary_data_updates\": {\"$inc\": {\"s\": 1}}}",
         "supplementary data \"s\" is not an integer: cannot add to it", true},
        {"{\"supplementary_data_updates\": {\"$inc\": {\"big\": 1}}}",
         "adding 1 goes past a 64-bit integer", true},
    };
    const size_t nforms = sizeof(forms) / sizeof(forms[0]);
    int64_t ref, missing;
    planned *refused[sizeof(forms) / sizeof(forms[0])], *absent;
    outcome *o;
    size_t n, ndoor = 0;
    pid_t pid;
    int port = 20000 + (int)(getpid() % 20000);
    char portflag[32], *text, replayed[256];
    size_t copies;
    const char *extra[] = {portflag, NULL};
    it_msg *dlq = NULL;

    world_new("ccd-refused", 1);
    snprintf(portflag, sizeof(portflag), "--metrics-port=%d", port);
    ref = new_ref();
    missing = new_ref();
    plan_create(ref, NULL);
    plan_sub(ref, NULL, "applied", "seed",
             "{\"supplementary_data_updates\": {\"$set\": {\"s\": \"text\", \"big\": "
             "9223372036854775807}}}")
        ->revision = 2;
    for (size_t i = 0; i < nforms; i++) {
        refused[i] = plan_sub(ref, NULL, "rejected", "refused", "%s", forms[i].fields);
        refused[i]->at_door = !forms[i].state;
        ndoor += refused[i]->at_door;
    }
    absent = plan_sub(missing, NULL, "rejected", "refused",
                      "{\"supplementary_data_updates\": {\"$inc\": {\"n\": 1}}}");
    pid = worker_start(extra);
    send_range(0, W.nplan);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    for (size_t i = 0; i < nforms; i++) {
        const outcome *x = outcome_of(o, n, refused[i]);

        ck_assert_int_eq(x->code, 422);
        ck_assert_msg(x->error && strstr(x->error, forms[i].reason), "form %zu: %s", i, x->text);
        assert_outcome_map(x, NULL);
    }
    {
        const outcome *x = outcome_of(o, n, absent);
        char want[128];

        snprintf(want, sizeof(want),
                 "case %" PRId64 " does not exist: no supplementary data to "
                 "update",
                 missing);
        ck_assert_msg(x->error && strcmp(x->error, want) == 0, "%s", x->text);
    }
    ck_assert_uint_eq(count_status(o, n, "invalid"), 0);
    /* The forms the validator refuses are in the DLQ with their reasons; those refused from the
     * case's data, and the update of a missing case, are not. */
    check_dead_letters(o, n);
    outcomes_free(o, n);
    check_applied_once();
    /* Nothing of the refused was written; the missing case was not created. */
    assert_sql("t",
               "SELECT supplementary_data = '{\"s\": \"text\", \"big\": 9223372036854775807}' AND "
               "case_revision = 2 AND version = 1 FROM ccd.case_data WHERE reference = %" PRId64,
               ref);
    ck_assert_int_eq(
        it_sql_int("SELECT count(*) FROM ccd.case_data WHERE reference = %" PRId64, missing), 0);

    /* The metric counts the copies; `dlq list` shows each with its reason. */
    wait_metric(port, "casestream_worker_dlq_total", (long long)ndoor);
    text = dlq_command("list");
    {
        size_t lines = 0;

        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), lines++) {
            json_t *l = json_loads(line, 0, NULL);
            const char *error = json_string_value(json_object_get(l, "error"));
            bool known = false;

            ck_assert_msg(l != NULL, "dlq list printed a line that is not JSON: %s", line);
            for (size_t i = 0; i < nforms && error; i++)
                known = known || (!forms[i].state && strstr(error, forms[i].reason));
            ck_assert_msg(known, "dlq list: a copy without a refused form's reason: %s", line);
            ck_assert_ptr_nonnull(json_string_value(json_object_get(l, "source_offset")));
            json_decref(l);
        }
        ck_assert_uint_eq(lines, ndoor);
    }
    free(text);
    /* Replayed with nothing fixed: each is refused again with the same outcome (but its source,
     * the new position), as the refusal took no key and the validator runs before any
     * idempotency lookup; and copied again. */
    text = dlq_command("replay");
    snprintf(replayed, sizeof(replayed), "replayed %zu messages onto %s\n", ndoor, W.events);
    ck_assert_str_eq(text, replayed);
    free(text);
    for (size_t i = 0; i < nforms; i++)
        if (refused[i]->at_door)
            plan_raw(ref, refused[i]->key, "rejected", refused[i]->mkey, refused[i]->value,
                     refused[i]->len)
                ->at_door = true;
    o = read_outcomes(&n);
    ck_assert_uint_eq(n, W.nplan);
    for (size_t i = 0; i < nforms; i++) {
        const outcome *first = NULL;
        size_t answers = 0;

        for (size_t k = 0; k < n; k++) {
            if (o[k].ref != ref || strcmp(o[k].key, refused[i]->key) != 0)
                continue;
            if (answers++ == 0) {
                first = &o[k];
                continue;
            }
            ck_assert_msg(before_source(&o[k]) == before_source(first) &&
                              memcmp(o[k].text, first->text, before_source(first)) == 0,
                          "form %zu answered %s, then %s", i, first->text, o[k].text);
            ck_assert(o[k].offset != first->offset);
        }
        ck_assert_uint_eq(answers, forms[i].state ? 1 : 2);
    }
    check_dead_letters(o, n);
    outcomes_free(o, n);
    copies = read_topic(W.dlq, (long long)(2 * ndoor), CATCH_UP_MS, &dlq);
    it_msgs_free(dlq, copies);
    ck_assert_uint_eq(copies, 2 * ndoor);
    wait_metric(port, "casestream_worker_dlq_total", (long long)(2 * ndoor));
    worker_stop_last(pid);
}
END_TEST

Suite *it_submission_suite(void)
{
    Suite *s = suite_create("it_submission");
    TCase *tc;

    tc = tcase_create("fields");
    tcase_set_timeout(tc, 150);
    tcase_add_checked_fixture(tc, services_up, NULL);
    tcase_add_test(tc, test_ccd_fields_round_trip_to_postgresql_and_change_document);
    tcase_add_test(tc, test_ccd_create_naming_a_taken_id_is_rejected_and_the_pipeline_goes_on);
    suite_add_tcase(s, tc);

    tc = tcase_create("version");
    tcase_set_timeout(tc, 200);
    tcase_add_checked_fixture(tc, services_up, NULL);
    tcase_add_test(tc, test_ccd_version_moves_for_each_trigger_and_not_for_a_no_op);
    suite_add_tcase(s, tc);

    tc = tcase_create("supplementary");
    tcase_set_timeout(tc, 200);
    tcase_add_checked_fixture(tc, services_up, NULL);
    tcase_add_test(tc, test_ccd_supplementary_set_and_inc_outcomes_history_and_repeats);
    tcase_add_test(tc, test_ccd_concurrent_incs_from_several_producers_sum_exactly);
    tcase_add_test(tc, test_ccd_supplementary_refused_forms_change_nothing);
    suite_add_tcase(s, tc);
    return s;
}
