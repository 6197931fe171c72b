/* The contract checker of the tests (tests/ccd_contract.h): answers CCD takes pass, and each
 * rule CCD's client applies, and each name outside CCD's shapes, fails with its reason. */
#include "ccd_contract.h"
#include "runner.h"

#include <stdio.h>
#include <string.h>

static const cs_ccd_case NFD = {1795458157000000LL, "NFD", "DIVORCE"};

#define DETAILS(ref, extra)                                                                        \
    "{\"id\":" ref ",\"version\":2,\"jurisdiction\":\"DIVORCE\","                                  \
    "\"case_type_id\":\"NFD\",\"created_date\":\"2025-03-01T10:15:30.123\","                       \
    "\"last_modified\":\"2025-03-02T08:00:01.500\","                                               \
    "\"last_state_modified_date\":\"2025-03-02T08:00:01.5\",\"state\":\"Submitted\","              \
    "\"security_classification\":\"PUBLIC\",\"case_data\":{\"a\":1},"                              \
    "\"data_classification\":null,\"supplementary_data\":{}" extra "}"
#define CASE(ref) "{\"case_details\":" DETAILS(ref, "") ",\"revision\":5}"

#define EVENT(id, date, extra)                                                                     \
    "{\"id\":" id ",\"case_reference\":1795458157000000,\"event\":{\"id\":\"create\","             \
    "\"summary\":null,\"description\":\"d\",\"user_id\":\"u\",\"user_first_name\":null,"           \
    "\"user_last_name\":null,\"event_name\":\"Create\",\"created_date\":\"" date "\","             \
    "\"case_type_id\":\"NFD\",\"case_type_version\":3,\"state_id\":\"Open\","                      \
    "\"state_name\":null,\"data\":{},\"data_classification\":null,"                                \
    "\"security_classification\":\"PUBLIC\",\"significant_item\":{\"type\":\"DOCUMENT\","          \
    "\"description\":\"x\",\"url\":\"https://e/x\"},\"proxied_by\":null,"                          \
    "\"proxied_by_first_name\":null,\"proxied_by_last_name\":null" extra "}}"

/* Runs check on body; expects ok, or a failure whose reason contains reason. */
static void expect(bool ok, const char *why, const char *reason, const char *body)
{
    if (!reason)
        ck_assert_msg(ok, "refused: %s: %s", why, body);
    else
        ck_assert_msg(!ok && strstr(why, reason), "expected \"%s\", got %s (%s): %s", reason,
                      ok ? "a pass" : "a failure", ok ? "" : why, body);
}

START_TEST(test_ccd_contract_cases_checks_ccds_rules_order_and_names)
{
    static const struct {
        const char *body, *reason;
    } cases[] = {
        {"[" CASE("1795458157000000") "]", NULL},
        {"[]", "holds 0 cases, not 1"},
        {"[" CASE("1795458157000001") "]", "id (the reference) is not 1795458157000000"},
        {"[{\"case_details\":" DETAILS("1795458157000000", ",\"reference\":1") ",\"revision\":5}]",
         "does not know: \"reference\""},
        {"[{\"case_details\":" DETAILS("1795458157000000", "") "}]", "no member \"revision\""},
        {"[{\"case_details\":" DETAILS("1795458157000000", "") ",\"revision\":null}]",
         "revision is missing"},
        {"[{\"case_details\":" DETAILS("1795458157000000", "") ",\"revision\":5,\"x\":1}]",
         "does not know: \"x\""},
        {"[{\"case_details\":" DETAILS("1795458157000000",
                                       ",\"callback_response_status\":null") ",\"revision\":5}]",
         "does not know: \"callback_response_status\""},
        {"[{\"case_details\":{\"id\":1},\"revision\":5}]", "case_details has no member"},
        {"not json", "not JSON"},
        {"{}", "not an array"},
    };
    char why[256];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool ok = cs_ccd_contract_cases(cases[i].body, &NFD, 1, why, sizeof(why));

        expect(ok, why, cases[i].reason, cases[i].body);
    }
    {
        cs_ccd_case two[] = {{1795458157000001LL, "NFD", "DIVORCE"}, NFD};
        const char *body = "[" CASE("1795458157000000") "," CASE("1795458157000001") "]";
        const char *reversed = "[" CASE("1795458157000001") "," CASE("1795458157000000") "]";

        expect(cs_ccd_contract_cases(body, two, 2, why, sizeof(why)), why, NULL, body);
        expect(cs_ccd_contract_cases(reversed, two, 2, why, sizeof(why)), why,
               "not in reference order", reversed);
    }
}
END_TEST

/* One member of CASE's case_details replaced: CCD's validateCaseDetails and its JSON reader. */
START_TEST(test_ccd_contract_case_details_rules_each_fail_with_their_reason)
{
    static const struct {
        const char *from, *to, *reason;
    } edits[] = {
        {"\"version\":2", "\"version\":null", "version is missing"},
        {"\"security_classification\":\"PUBLIC\"", "\"security_classification\":null",
         "security_classification is missing"},
        {"\"security_classification\":\"PUBLIC\"", "\"security_classification\":\"SECRET\"",
         "not one of CCD's classifications"},
        {"\"jurisdiction\":\"DIVORCE\"", "\"jurisdiction\":\"PROBATE\"",
         "jurisdiction is PROBATE, the case's is DIVORCE"},
        {"\"case_type_id\":\"NFD\"", "\"case_type_id\":\"XYZ\"", "case_type_id is XYZ"},
        {"\"created_date\":\"2025-03-01T10:15:30.123\"", "\"created_date\":\"2025-03-01\"",
         "not an ISO local date-time"},
        {"\"last_modified\":\"2025-03-02T08:00:01.500\"",
         "\"last_modified\":\"2025-03-02T08:00:01.500Z\"", "not an ISO local date-time"},
        {"\"case_data\":{\"a\":1}", "\"case_data\":[1]", "case_data is neither an object"},
        {"\"case_data\":{\"a\":1}", "\"data\":{\"a\":1}", "no member \"case_data\""},
    };
    char body[2048], why[256];

    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        const char *base = "[" CASE("1795458157000000") "]", *at = strstr(base, edits[i].from);

        ck_assert_msg(at != NULL, "test bug: %s", edits[i].from);
        snprintf(body, sizeof(body), "%.*s%s%s", (int)(at - base), base, edits[i].to,
                 at + strlen(edits[i].from));
        expect(cs_ccd_contract_cases(body, &NFD, 1, why, sizeof(why)), why, edits[i].reason, body);
    }
}
END_TEST

START_TEST(test_ccd_contract_history_and_event_check_reference_type_names_and_order)
{
    static const struct {
        const char *body, *reason;
    } cases[] = {
        {"[" EVENT("9", "2025-03-02T08:00:01.500", "") "," EVENT("8", "2025-03-01T10:15:30.123",
                                                                 "") "]",
         NULL},
        {"[]", NULL},
        {"[" EVENT("8", "2025-03-01T10:15:30.123", "") "," EVENT("9", "2025-03-02T08:00:01.500",
                                                                 "") "]",
         "is newer than the one before it"},
        {"[" EVENT("8", "2025-03-01T10:15:30.123", "") "," EVENT("8", "2025-03-01T10:15:30.123",
                                                                 "") "]",
         "appears twice"},
        {"[" EVENT("8", "2025-03-01T10:15:30.123", ",\"version\":1") "]",
         "does not know: \"version\""},
        {"[{\"id\":8,\"case_reference\":1795458157000001,\"event\":{}}]",
         "case_reference is not 1795458157000000"},
        {"[{\"id\":\"8\",\"case_reference\":1795458157000000,\"event\":{}}]",
         "id is neither an integer nor null"},
        {"[{\"id\":8,\"case_reference\":1795458157000000,\"event\":{}}]",
         "event has no member \"id\""},
    };
    char why[256], body[2048];
    const char *one = EVENT("8", "2025-03-01T10:15:30.123", "");
    const char *at = strstr(one, "\"case_type_id\":\"NFD\"");

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect(cs_ccd_contract_history(cases[i].body, &NFD, why, sizeof(why)), why, cases[i].reason,
               cases[i].body);
    expect(cs_ccd_contract_event(one, &NFD, 8, why, sizeof(why)), why, NULL, one);
    expect(cs_ccd_contract_event(one, &NFD, 9, why, sizeof(why)), why, "id is not 9", one);
    /* extractValidatedAuditEvent: the event's case type must be the case's. */
    snprintf(body, sizeof(body), "%.*s\"case_type_id\":\"ABC\"%s", (int)(at - one), one,
             at + strlen("\"case_type_id\":\"NFD\""));
    expect(cs_ccd_contract_event(body, &NFD, 8, why, sizeof(why)), why,
           "case_type_id is ABC, the case's is NFD", body);
}
END_TEST

START_TEST(test_ccd_contract_submit_answers_success_and_refusal)
{
    static const struct {
        const char *body, *reason;
        bool refusal;
    } cases[] = {
        {"{\"case_details\":" DETAILS("1795458157000000", "") ",\"revision\":5,\"errors\":null,"
                                                              "\"warnings\":null,"
                                                              "\"ignore_warning\":null}",
         NULL, false},
        {"{\"case_details\":" DETAILS("1795458157000000", "") ",\"revision\":5}",
         "no member \"errors\"", false},
        {"{\"case_details\":" DETAILS("1795458157000000", "") ",\"revision\":5,\"errors\":[\"x\"],"
                                                              "\"warnings\":null,"
                                                              "\"ignore_warning\":null}",
         "has errors", false},
        {"{\"case_details\":" DETAILS("1795458157000000", "") ",\"revision\":5,\"errors\":[],"
                                                              "\"warnings\":[\"w\"],"
                                                              "\"ignore_warning\":false}",
         "warnings without ignore_warning", false},
        {"{\"case_details\":" DETAILS("1795458157000000", "") ",\"revision\":null,\"errors\":null,"
                                                              "\"warnings\":null,"
                                                              "\"ignore_warning\":null}",
         "revision is missing", false},
        {"{\"case_details\":null,\"revision\":null,\"errors\":[\"no\"],\"warnings\":null,"
         "\"ignore_warning\":null}",
         NULL, true},
        {"{\"case_details\":null,\"revision\":null,\"errors\":[],\"warnings\":null,"
         "\"ignore_warning\":null}",
         "a refusal without errors", true},
        {"{\"case_details\":null,\"revision\":null,\"errors\":[1],\"warnings\":null,"
         "\"ignore_warning\":null}",
         "errors[0] is not a string", true},
    };
    char why[256];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool ok = cases[i].refusal
                      ? cs_ccd_contract_refused(cases[i].body, why, sizeof(why))
                      : cs_ccd_contract_submitted(cases[i].body, &NFD, why, sizeof(why));

        expect(ok, why, cases[i].reason, cases[i].body);
    }
}
END_TEST

Suite *ccd_contract_suite(void)
{
    Suite *s = suite_create("ccd_contract");
    TCase *tc = tcase_create("ccd_contract");

    tcase_add_test(tc, test_ccd_contract_cases_checks_ccds_rules_order_and_names);
    tcase_add_test(tc, test_ccd_contract_case_details_rules_each_fail_with_their_reason);
    tcase_add_test(tc, test_ccd_contract_history_and_event_check_reference_type_names_and_order);
    tcase_add_test(tc, test_ccd_contract_submit_answers_success_and_refusal);
    suite_add_tcase(s, tc);
    return s;
}
