/* casestream-api's rules without I/O: routes, the mapping of CCD's requests, answers, waiters,
 * the tokens remembered. */
#include "../api/ccd.h"
#include "../api/s2s.h"
#include "../api/waiters.h"

#include "err.h"
#include "runner.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY  "6f1c2b4e-7d1a-4c3e-9b2a-1f0e5d6c7b8a"
#define REF  1796021823004242LL
#define REFS "1796021823004242"

static const cs_api_user user = {"u-1", "Ann", "Clerk"};

START_TEST(test_routes)
{
    static const struct {
        const char *method, *path;
        cs_api_route route;
        long long ref, event;
    } table[] = {
        {"GET", "/ccd-persistence/cases", CS_API_CASES, 0, 0},
        {"POST", "/ccd-persistence/cases", CS_API_SUBMIT, 0, 0},
        {"PUT", "/ccd-persistence/cases", CS_API_BAD_METHOD, 0, 0},
        {"POST", "/ccd-persistence/cases/" REFS "/supplementary-data", CS_API_SUPPLEMENTARY, REF,
         0},
        {"GET", "/ccd-persistence/cases/" REFS "/supplementary-data", CS_API_BAD_METHOD, 0, 0},
        {"GET", "/ccd-persistence/cases/" REFS "/history", CS_API_HISTORY, REF, 0},
        {"DELETE", "/ccd-persistence/cases/" REFS "/history", CS_API_BAD_METHOD, 0, 0},
        {"GET", "/ccd-persistence/cases/" REFS "/history/42", CS_API_EVENT, REF, 42},
        {"GET", "/ccd-persistence/cases/" REFS "/history/x", CS_API_BAD_PATH, 0, 0},
        {"GET", "/ccd-persistence/cases/" REFS "/history/9223372036854775807", CS_API_EVENT, REF,
         INT64_MAX},
        {"GET", "/ccd-persistence/cases/" REFS "/history/9223372036854775808", CS_API_BAD_PATH, 0,
         0},
        {"GET", "/ccd-persistence/cases/" REFS "/history/0", CS_API_BAD_PATH, 0, 0},
        {"GET", "/ccd-persistence/cases/12/history", CS_API_BAD_PATH, 0, 0},
        {"GET", "/ccd-persistence/cases/abc/history", CS_API_BAD_PATH, 0, 0},
        {"GET", "/ccd-persistence/cases/" REFS, CS_API_NOT_FOUND, 0, 0},
        {"GET", "/ccd-persistence/cases/" REFS "/other", CS_API_NOT_FOUND, 0, 0},
        {"GET", "/ccd-persistence/casesX", CS_API_NOT_FOUND, 0, 0},
        {"GET", "/", CS_API_NOT_FOUND, 0, 0},
        {"GET", "/livez", CS_API_LIVEZ, 0, 0},
        {"HEAD", "/readyz", CS_API_READYZ, 0, 0},
        {"GET", "/healthz", CS_API_READYZ, 0, 0},
        {"GET", "/metrics", CS_API_METRICS, 0, 0},
        {"POST", "/metrics", CS_API_BAD_METHOD, 0, 0},
    };

    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        cs_api_target t;

        cs_api_route_of(table[i].method, table[i].path, &t);
        ck_assert_msg(t.route == table[i].route, "%s %s: route %s", table[i].method, table[i].path,
                      cs_api_route_name(t.route));
        ck_assert_int_eq(t.ref, table[i].ref);
        ck_assert_int_eq(t.event_id, table[i].event);
        if (t.route == CS_API_BAD_METHOD)
            ck_assert_ptr_nonnull(t.allow);
    }
}
END_TEST

START_TEST(test_refs_are_16_digits_at_most_100)
{
    int64_t refs[CS_API_MAX_REFS];
    char err[256] = "", many[2048] = "";
    size_t n = 0;

    ck_assert_int_eq(cs_api_add_refs(REFS ",1796021823004243", refs, &n, err, sizeof(err)), 0);
    ck_assert_int_eq(cs_api_add_refs("1796021823004241", refs, &n, err, sizeof(err)), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(refs[2], 1796021823004241LL);
    static const char *const bad[] = {"",
                                      "1,",
                                      "123",
                                      "0796021823004242",
                                      "17960218230042420",
                                      "179602182300424x",
                                      "-796021823004242"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = 0;
        ck_assert_msg(cs_api_add_refs(bad[i], refs, &n, err, sizeof(err)) == CS_ERR_INVALID,
                      "accepted \"%s\"", bad[i]);
    }
    for (int i = 0; i < CS_API_MAX_REFS + 1; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s%lld", i ? "," : "", REF + i);
    n = 0;
    ck_assert_int_eq(cs_api_add_refs(many, refs, &n, err, sizeof(err)), CS_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "more than 100"));
}
END_TEST

static json_t *mapped(const char *body, int want_rc, cs_api_mapped *m, char *err, size_t size)
{
    json_error_t jerr;
    int rc = cs_api_map_event(body, strlen(body), KEY, &user, "caseNotes", m, err, size);

    ck_assert_msg(rc == want_rc, "rc %d (%s) for %s", rc, err, body);
    return rc == CS_OK ? json_loads(m->json, 0, &jerr) : NULL;
}

START_TEST(test_map_create)
{
    const char *body =
        "{\"case_details\":{\"id\":" REFS ",\"jurisdiction\":\"DIVORCE\",\"case_type_id\":\"NFD\","
        "\"state\":\"Submitted\",\"security_classification\":\"PUBLIC\",\"version\":null,"
        "\"case_data\":{\"applicant\":\"Ann\",\"amount\":0.1,\"caseNotes\":[{\"id\":\"1\"}]},"
        "\"data_classification\":{\"applicant\":\"PRIVATE\"},\"supplementary_data\":{}},"
        "\"case_details_before\":null,"
        "\"event_details\":{\"case_type\":\"NFD\",\"event_id\":\"create\",\"event_name\":\"Create "
        "case\",\"summary\":\"s\",\"description\":\"d\",\"proxied_by\":null},"
        "\"resolved_ttl\":\"2033-03-31\",\"internal_case_id\":1595000000004242,"
        "\"start_revision\":null,\"merge_revision\":null}";
    cs_api_mapped m;
    char err[256] = "";
    json_t *s = mapped(body, CS_OK, &m, err, sizeof(err));

    ck_assert(m.created);
    ck_assert_int_eq(m.ref, REF);
    ck_assert_str_eq(json_string_value(json_object_get(s, "idempotency_key")), KEY);
    ck_assert_int_eq(json_integer_value(json_object_get(s, "case_reference")), REF);
    ck_assert_str_eq(json_string_value(json_object_get(s, "case_type")), "NFD");
    ck_assert_str_eq(json_string_value(json_object_get(s, "jurisdiction")), "DIVORCE");
    ck_assert_str_eq(json_string_value(json_object_get(s, "event_id")), "create");
    ck_assert_str_eq(json_string_value(json_object_get(s, "event_name")), "Create case");
    ck_assert_str_eq(json_string_value(json_object_get(s, "user_id")), "u-1");
    ck_assert_str_eq(json_string_value(json_object_get(s, "user_first_name")), "Ann");
    ck_assert_str_eq(json_string_value(json_object_get(s, "user_last_name")), "Clerk");
    ck_assert_str_eq(json_string_value(json_object_get(s, "resolved_ttl")), "2033-03-31");
    ck_assert_int_eq(json_integer_value(json_object_get(s, "id")), 1595000000004242LL);
    ck_assert_ptr_null(json_object_get(s, "expected_version"));
    ck_assert_ptr_null(json_object_get(s, "proxied_by"));
    ck_assert_ptr_null(json_object_get(s, "start_revision"));
    /* The projected notes are never stored in the blob; reals are kept as written. */
    ck_assert_ptr_null(json_object_get(json_object_get(s, "data"), "caseNotes"));
    ck_assert_ptr_nonnull(strstr(m.json, "\"amount\":0.1"));
    json_decref(s);
    free(m.json);
}
END_TEST

START_TEST(test_map_update_takes_version_and_revisions)
{
    const char *body = "{\"case_details\":{\"id\":\"" REFS "\",\"case_type_id\":\"NFD\","
                       "\"jurisdiction\":\"DIVORCE\",\"state\":\"Open\",\"version\":3,"
                       "\"case_data\":{}},\"event_details\":{\"event_id\":\"update\"},"
                       "\"start_revision\":4,\"merge_revision\":5}";
    cs_api_mapped m;
    char err[256] = "";
    json_t *s = mapped(body, CS_OK, &m, err, sizeof(err));

    ck_assert(!m.created);
    ck_assert_int_eq(json_integer_value(json_object_get(s, "expected_version")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(s, "start_revision")), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(s, "merge_revision")), 5);
    json_decref(s);
    free(m.json);
}
END_TEST

START_TEST(test_map_refuses_bad_bodies)
{
    static const struct {
        const char *body, *reason;
    } table[] = {
        {"not json", "not JSON"},
        {"[]", "must be a JSON object"},
        {"{}", "case_details is required"},
        {"{\"case_details\":{}}", "event_details is required"},
        {"{\"case_details\":[],\"event_details\":{}}", "case_details must be an object"},
        {"{\"case_details\":{\"id\":12},\"event_details\":{}}", "16-digit"},
        {"{\"case_details\":{\"id\":" REFS "},\"event_details\":{\"event_id\":\"e\"}}",
         "case_type_id is required"},
        {"{\"case_details\":{\"id\":" REFS ",\"case_type_id\":\"NFD\"},\"event_details\":{}}",
         "event_id is required"},
        {"{\"case_details\":{\"id\":" REFS ",\"case_type_id\":\"NFD\",\"version\":\"1\"},"
         "\"event_details\":{\"event_id\":\"e\"}}",
         "case_details.version must be an integer"},
        {"{\"case_details\":{\"id\":" REFS ",\"case_type_id\":\"NFD\",\"case_data\":1},"
         "\"event_details\":{\"event_id\":\"e\"}}",
         "case_details.case_data must be an object"},
        {"{\"case_details\":{\"id\":" REFS ",\"case_type_id\":\"NFD\"},"
         "\"event_details\":{\"event_id\":\"e\",\"case_type\":\"X\"}}",
         "differs"},
        {"{\"case_details\":{\"id\":" REFS ",\"case_type_id\":\"A/B\"},"
         "\"event_details\":{\"event_id\":\"e\"}}",
         "cannot name an index"},
        {"{\"case_details\":{\"id\":" REFS ",\"case_type_id\":\"NFD\"},"
         "\"event_details\":{\"event_id\":\"e\"},\"resolved_ttl\":\"2025-02-29\"}",
         "resolved_ttl"},
        {"{\"case_details\":{\"id\":" REFS ",\"case_type_id\":\"NFD\",\"case_data\":{\"x\":-0.0}},"
         "\"event_details\":{\"event_id\":\"e\"}}",
         "-0.0"},
    };

    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        cs_api_mapped m;
        char err[256] = "";

        mapped(table[i].body, CS_ERR_INVALID, &m, err, sizeof(err));
        ck_assert_ptr_null(m.json);
        ck_assert_msg(strstr(err, table[i].reason), "%s: reason \"%s\", wanted \"%s\"",
                      table[i].body, err, table[i].reason);
    }
}
END_TEST

START_TEST(test_map_supplementary_as_ccd_validates)
{
    char err[256] = "", *json = NULL;
    json_error_t jerr;
    json_t *s;
    static const struct {
        const char *body, *reason;
    } bad[] = {
        {"{}", "must be an object"},
        {"{\"supplementary_data_updates\":{}}", "supplementary_data_updates"},
        {"{\"supplementary_data_updates\":{\"$find\":{\"a\":1}}}", "$find"},
        {"{\"supplementary_data_updates\":{\"$set\":{\"a.b.c\":1}}}", "more than two levels"},
        {"{\"supplementary_data_updates\":{\"$inc\":{\"n\":\"1\"}}}", "not an integer"},
        {"{\"supplementary_data_updates\":{\"$set\":{}}}", "$set"},
    };

    const char *good = "{\"supplementary_data_updates\":{\"$set\":{\"orgs.org1\":\"Y\"},"
                       "\"$inc\":{\"views\":1}}}";

    ck_assert_int_eq(cs_api_map_supplementary(good, strlen(good), REF, "NFD", KEY, &user, &json,
                                              err, sizeof(err)),
                     CS_OK);
    s = json_loads(json, 0, &jerr);
    ck_assert_str_eq(json_string_value(json_object_get(s, "event_id")), "updateSupplementaryData");
    ck_assert_str_eq(json_string_value(json_object_get(s, "case_type")), "NFD");
    ck_assert_int_eq(json_integer_value(json_object_get(s, "case_reference")), REF);
    ck_assert_int_eq(
        json_integer_value(json_object_get(
            json_object_get(json_object_get(s, "supplementary_data_updates"), "$inc"), "views")),
        1);
    json_decref(s);
    free(json);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json = NULL;
        ck_assert_int_eq(cs_api_map_supplementary(bad[i].body, strlen(bad[i].body), REF, "NFD", KEY,
                                                  &user, &json, err, sizeof(err)),
                         CS_ERR_INVALID);
        ck_assert_ptr_null(json);
        ck_assert_msg(strstr(err, bad[i].reason), "%s: \"%s\"", bad[i].body, err);
    }
}
END_TEST

START_TEST(test_submit_replies)
{
    int http;

    ck_assert(cs_api_submit_reply(CS_STATUS_APPLIED, true, &http) == CS_API_REPLY_CASE);
    ck_assert_int_eq(http, 201);
    ck_assert(cs_api_submit_reply(CS_STATUS_APPLIED, false, &http) == CS_API_REPLY_CASE);
    ck_assert_int_eq(http, 200);
    ck_assert(cs_api_submit_reply(CS_STATUS_DUPLICATE, true, &http) == CS_API_REPLY_CASE);
    ck_assert_int_eq(http, 200);
    ck_assert(cs_api_submit_reply(CS_STATUS_CONFLICT, false, &http) == CS_API_REPLY_CONFLICT);
    ck_assert_int_eq(http, 409);
    ck_assert(cs_api_submit_reply(CS_STATUS_REJECTED, false, &http) == CS_API_REPLY_ERRORS);
    ck_assert_int_eq(http, 200);
    ck_assert(cs_api_submit_reply(CS_STATUS_INVALID, false, &http) == CS_API_REPLY_ERRORS);
    ck_assert_int_eq(http, 400);
}
END_TEST

START_TEST(test_bodies_users_services_content_types)
{
    char *text = cs_api_errors_body("case \"x\" refused");
    json_error_t jerr;
    json_t *claims = json_loads("{\"sub\":\"ann@example.com\",\"uid\":\"u-9\",\"given_name\":"
                                "\"Ann\",\"family_name\":1}",
                                0, &jerr);
    cs_api_user u;

    ck_assert_str_eq(text, "{\"errors\":[\"case \\\"x\\\" refused\"]}");
    free(text);
    text = cs_api_refused_body("no");
    ck_assert_str_eq(text, "{\"case_details\":null,\"revision\":null,\"errors\":[\"no\"],"
                           "\"warnings\":null,\"ignore_warning\":null}");
    free(text);
    text = cs_api_supplementary_body("{\"views\": 2, \"orgs\": {\"b\": 1, \"a\": 0.5}}");
    ck_assert_str_eq(text, "{\"supplementary_data\":{\"views\":2,\"orgs\":{\"b\":1,\"a\":0.5}}}");
    free(text);
    text = cs_api_supplementary_body(NULL);
    ck_assert_str_eq(text, "{\"supplementary_data\":{}}");
    free(text);
    ck_assert(cs_api_user_of(claims, &u));
    ck_assert_str_eq(u.id, "u-9");
    ck_assert_str_eq(u.first_name, "Ann");
    ck_assert_ptr_null(u.last_name);
    json_object_del(claims, "uid");
    ck_assert(cs_api_user_of(claims, &u));
    ck_assert_str_eq(u.id, "ann@example.com");
    json_object_del(claims, "sub");
    ck_assert(!cs_api_user_of(claims, &u));
    json_decref(claims);
    ck_assert(cs_api_service_allowed("ccd_data", "ccd_data"));
    ck_assert(cs_api_service_allowed("xui_webapp, ccd_data ", "ccd_data"));
    ck_assert(!cs_api_service_allowed("ccd_data", "ccd_dat"));
    ck_assert(!cs_api_service_allowed("ccd_data", ""));
    ck_assert(cs_api_json_content_type("application/json"));
    ck_assert(cs_api_json_content_type("Application/JSON; charset=utf-8"));
    ck_assert(!cs_api_json_content_type("application/jsonx"));
    ck_assert(!cs_api_json_content_type("text/plain"));
    ck_assert(!cs_api_json_content_type(NULL));
}
END_TEST

/* --- waiters ---------------------------------------------------------------------------- */

static int woken;
static void suspend_noop(void *ctx)
{
    (void)ctx;
}
static void wake_count(void *ctx)
{
    (void)ctx;
    woken++;
}

static cs_outcome *outcome(const char *key, int partition, long long offset)
{
    char text[512];
    cs_outcome *o = NULL;

    snprintf(text, sizeof(text),
             "{\"idempotency_key\":\"%s\",\"case_reference\":%lld,\"status\":\"applied\","
             "\"code\":201,\"version\":1,\"case_revision\":1,\"event_seq\":7,\"error\":null,"
             "\"source\":{\"partition\":%d,\"offset\":%lld}}",
             key, REF, partition, offset);
    ck_assert_int_eq(cs_outcome_parse(text, strlen(text), &o), 0);
    return o;
}

START_TEST(test_waiter_gets_its_outcome_and_only_its_own)
{
    cs_waiters *t = cs_waiters_new();
    cs_waiter *w = cs_waiters_add(t, REF, KEY, 1000);
    cs_outcome *other = outcome("00000000-0000-4000-8000-000000000000", 1, 5);
    cs_outcome *earlier = outcome(KEY, 1, 4), *mine = outcome(KEY, 1, 5);
    const cs_outcome *got;

    woken = 0;
    ck_assert(cs_waiters_park(t, w, suspend_noop, wake_count, NULL));
    ck_assert_uint_eq(cs_waiters_outcome(t, other), 0);
    /* Delivered at offset 5: an earlier copy's outcome with the same key is not its answer. */
    cs_waiters_delivered(t, w, 0, NULL, 1, 5);
    ck_assert_uint_eq(cs_waiters_outcome(t, earlier), 0);
    ck_assert_int_eq(woken, 0);
    ck_assert(cs_waiter_state(t, w, NULL) == CS_WAIT_PENDING);
    ck_assert_uint_eq(cs_waiters_outcome(t, mine), 1);
    ck_assert_int_eq(woken, 1);
    ck_assert(cs_waiter_state(t, w, &got) == CS_WAIT_OUTCOME);
    ck_assert_int_eq(got->source_offset, 5);
    ck_assert_uint_eq(cs_waiters_count(t), 1);
    cs_waiters_release(t, w);
    ck_assert_uint_eq(cs_waiters_count(t), 0);
    cs_outcome_free(other);
    cs_outcome_free(earlier);
    cs_outcome_free(mine);
    cs_waiters_free(t);
}
END_TEST

/* Outcomes of its key that come before its delivery report wait for it: an earlier copy's is
 * dropped (its own, later, is the answer), its own answers when the report comes. */
START_TEST(test_waiter_holds_outcomes_that_come_before_its_delivery_report)
{
    cs_waiters *t = cs_waiters_new();
    cs_waiter *repeat = cs_waiters_add(t, REF, KEY, 1000);
    cs_outcome *first = outcome(KEY, 1, 4), *again = outcome(KEY, 1, 5);
    const cs_outcome *got;

    woken = 0;
    ck_assert(cs_waiters_park(t, repeat, suspend_noop, wake_count, NULL));
    ck_assert_uint_eq(cs_waiters_outcome(t, first), 0);
    cs_waiters_delivered(t, repeat, 0, NULL, 1, 5);
    ck_assert_int_eq(woken, 0);
    ck_assert(cs_waiter_state(t, repeat, NULL) == CS_WAIT_PENDING);
    ck_assert_uint_eq(cs_waiters_outcome(t, again), 1);
    ck_assert(cs_waiter_state(t, repeat, &got) == CS_WAIT_OUTCOME);
    ck_assert_int_eq(got->source_offset, 5);
    cs_waiters_release(t, repeat);

    /* Its own outcome before its delivery report: answered when the report comes. */
    cs_waiter *fast = cs_waiters_add(t, REF, KEY, 1000);

    ck_assert(cs_waiters_park(t, fast, suspend_noop, wake_count, NULL));
    ck_assert_uint_eq(cs_waiters_outcome(t, first), 0);
    ck_assert_uint_eq(cs_waiters_outcome(t, again), 0);
    ck_assert_int_eq(woken, 1);
    cs_waiters_delivered(t, fast, 0, NULL, 1, 5);
    ck_assert_int_eq(woken, 2);
    ck_assert(cs_waiter_state(t, fast, &got) == CS_WAIT_OUTCOME);
    ck_assert_int_eq(got->source_offset, 5);
    cs_waiters_release(t, fast);
    ck_assert_uint_eq(cs_waiters_count(t), 0);
    cs_outcome_free(first);
    cs_outcome_free(again);
    cs_waiters_free(t);
}
END_TEST

START_TEST(test_waiter_times_out_fails_or_is_done_before_parking)
{
    cs_waiters *t = cs_waiters_new();
    cs_waiter *late = cs_waiters_add(t, REF, KEY, 1000);
    cs_waiter *lost = cs_waiters_add(t, REF + 1, KEY, 5000);
    cs_waiter *quick = cs_waiters_add(t, REF + 2, KEY, 5000);
    cs_outcome *o = outcome(KEY, 0, 1);

    woken = 0;
    ck_assert(cs_waiters_park(t, late, suspend_noop, wake_count, NULL));
    ck_assert(cs_waiters_park(t, lost, suspend_noop, wake_count, NULL));
    ck_assert_uint_eq(cs_waiters_expire(t, 999), 0);
    ck_assert_uint_eq(cs_waiters_expire(t, 1000), 1);
    ck_assert(cs_waiter_state(t, late, NULL) == CS_WAIT_TIMEOUT);
    cs_waiters_delivered(t, lost, CS_ERR_RETRY, "broker down", -1, -1);
    ck_assert(cs_waiter_state(t, lost, NULL) == CS_WAIT_UNDELIVERED);
    ck_assert_str_eq(cs_waiter_reason(lost), "broker down");
    ck_assert_int_eq(woken, 2);
    /* An outcome before the request parks: no parking, no wake. */
    o->case_reference = REF + 2;
    cs_waiters_delivered(t, quick, 0, NULL, 0, 1);
    ck_assert_uint_eq(cs_waiters_outcome(t, o), 1);
    ck_assert(!cs_waiters_park(t, quick, suspend_noop, wake_count, NULL));
    ck_assert_int_eq(woken, 2);
    cs_waiters_release(t, late); /* the delivery still holds it */
    cs_waiters_delivered(t, late, 0, NULL, 0, 9);
    cs_waiters_release(t, lost);
    cs_waiters_release(t, quick);
    ck_assert_uint_eq(cs_waiters_count(t), 0);
    cs_outcome_free(o);
    cs_waiters_free(t);
}
END_TEST

/* A remembered token is one cs_jwt_verify would accept now: the same bytes, its sub, before its
 * exp, not before it was verified; anything else is verified again. */
START_TEST(test_s2s_cache_remembers_a_token_only_until_its_exp)
{
    const long long now = 1700000000;
    cs_s2s_cache *c = cs_s2s_cache_new();
    json_t *claims = json_pack("{s:s, s:I}", "sub", "ccd_data", "exp", (json_int_t)(now + 60));
    json_t *real_exp = json_pack("{s:s, s:f}", "sub", "xui", "exp", (double)now + 10.9);
    json_t *no_sub = json_pack("{s:I}", "exp", (json_int_t)(now + 60));
    json_t *past = json_pack("{s:s, s:I}", "sub", "ccd_data", "exp", (json_int_t)now);
    char sub[64] = "", longer[CS_S2S_CACHE_MAX_TOKEN + 2];

    ck_assert_ptr_nonnull(c);
    ck_assert(!cs_s2s_cache_get(c, "Bearer a.b.c", now, sub, sizeof(sub)));
    cs_s2s_cache_put(c, "Bearer a.b.c", claims, now);
    ck_assert(cs_s2s_cache_get(c, "Bearer a.b.c", now, sub, sizeof(sub)));
    ck_assert_str_eq(sub, "ccd_data");
    ck_assert(cs_s2s_cache_get(c, "Bearer a.b.c", now + 59, sub, sizeof(sub)));
    /* At exp (the leeway is cs_jwt_verify's to give), and with the clock set back. */
    ck_assert(!cs_s2s_cache_get(c, "Bearer a.b.c", now + 60, sub, sizeof(sub)));
    ck_assert(!cs_s2s_cache_get(c, "Bearer a.b.c", now - 1, sub, sizeof(sub)));
    /* Other bytes: a prefix, one more byte, one byte changed, none. */
    ck_assert(!cs_s2s_cache_get(c, "Bearer a.b.", now, sub, sizeof(sub)));
    ck_assert(!cs_s2s_cache_get(c, "Bearer a.b.cc", now, sub, sizeof(sub)));
    ck_assert(!cs_s2s_cache_get(c, "Bearer a.b.d", now, sub, sizeof(sub)));
    ck_assert(!cs_s2s_cache_get(c, "", now, sub, sizeof(sub)));
    ck_assert(!cs_s2s_cache_get(c, NULL, now, sub, sizeof(sub)));
    /* A real exp counts from its whole second down. */
    cs_s2s_cache_put(c, "x.y.z", real_exp, now);
    ck_assert(cs_s2s_cache_get(c, "x.y.z", now + 9, sub, sizeof(sub)));
    ck_assert_str_eq(sub, "xui");
    ck_assert(!cs_s2s_cache_get(c, "x.y.z", now + 10, sub, sizeof(sub)));
    /* Not remembered: no sub, an exp past, a token over the limit. */
    cs_s2s_cache_put(c, "n.o.sub", no_sub, now);
    ck_assert(!cs_s2s_cache_get(c, "n.o.sub", now, sub, sizeof(sub)));
    cs_s2s_cache_put(c, "p.a.st", past, now);
    ck_assert(!cs_s2s_cache_get(c, "p.a.st", now, sub, sizeof(sub)));
    memset(longer, 'a', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    cs_s2s_cache_put(c, longer, claims, now);
    ck_assert(!cs_s2s_cache_get(c, longer, now, sub, sizeof(sub)));
    /* Many tokens: each one remembered is its own, whichever others replaced it. */
    for (int i = 0; i < 3 * CS_S2S_CACHE_SLOTS; i++) {
        char token[32];
        json_t *each;

        snprintf(token, sizeof(token), "t.%d.s", i);
        each = json_pack("{s:s, s:I}", "sub", token, "exp", (json_int_t)(now + 60));
        cs_s2s_cache_put(c, token, each, now);
        json_decref(each);
        ck_assert(cs_s2s_cache_get(c, token, now, sub, sizeof(sub)));
    }
    for (int i = 0; i < 3 * CS_S2S_CACHE_SLOTS; i++) {
        char token[32];

        snprintf(token, sizeof(token), "t.%d.s", i);
        if (cs_s2s_cache_get(c, token, now, sub, sizeof(sub)))
            ck_assert_str_eq(sub, token);
    }
    cs_s2s_cache_free(c);
    cs_s2s_cache_free(NULL);
    json_decref(claims);
    json_decref(real_exp);
    json_decref(no_sub);
    json_decref(past);
}
END_TEST

Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("api");

    tcase_add_test(tc, test_routes);
    tcase_add_test(tc, test_refs_are_16_digits_at_most_100);
    tcase_add_test(tc, test_map_create);
    tcase_add_test(tc, test_map_update_takes_version_and_revisions);
    tcase_add_test(tc, test_map_refuses_bad_bodies);
    tcase_add_test(tc, test_map_supplementary_as_ccd_validates);
    tcase_add_test(tc, test_submit_replies);
    tcase_add_test(tc, test_bodies_users_services_content_types);
    tcase_add_test(tc, test_waiter_gets_its_outcome_and_only_its_own);
    tcase_add_test(tc, test_waiter_holds_outcomes_that_come_before_its_delivery_report);
    tcase_add_test(tc, test_waiter_times_out_fails_or_is_done_before_parking);
    tcase_add_test(tc, test_s2s_cache_remembers_a_token_only_until_its_exp);
    suite_add_tcase(s, tc);
    return s;
}
