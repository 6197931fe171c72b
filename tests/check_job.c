/* Outcome rendering of worker/job.c (DESIGN §4): the error member of a decided job, and which
 * decided jobs go to the DLQ. */
#include "../worker/job.h"
#include "envelope.h"
#include "runner.h"
#include "utf8.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* The "error" member of the job's rendered outcome; the caller frees. */
static char *outcome_error(const cs_job *j)
{
    json_t *o = json_loads(j->outcome, 0, NULL), *e;
    char *copy;

    ck_assert_ptr_nonnull(o);
    e = json_object_get(o, "error");
    copy = json_is_string(e) ? strdup(json_string_value(e)) : NULL;
    json_decref(o);
    return copy;
}

/* A reason of 512 bytes cut from text of two-byte characters (the 512th byte is the first half
 * of one) keeps every whole character and is rendered, not null. */
START_TEST(test_job_reason_cut_in_a_character_is_rendered_not_null)
{
    char value[1024] = "", reason[512];
    cs_job j;
    char *err;

    for (size_t i = 0; i < 300; i++)
        strcat(value, "\xc3\x84"); /* A with diaeresis */
    memset(&j, 0, sizeof(j));
    cs_utf8_snprintf(reason, sizeof(reason), "case 1 is in jurisdiction %s, not X", value);
    cs_job_decide(&j, CS_STATUS_REJECTED, 0, 0, 0, reason);
    err = outcome_error(&j);
    ck_assert_msg(err != NULL, "error is null: %s", j.outcome);
    ck_assert_str_eq(err, reason);
    ck_assert_uint_eq(strlen(err), 510); /* 26 bytes of text, 242 characters of 2 */
    free(err);
    cs_job_clear(&j);
}
END_TEST

/* A reason that is not UTF-8 at all (a caller that cut bytes) still says something: its bytes
 * beyond ASCII become '?'. A job without a reason renders null. */
START_TEST(test_job_reason_not_utf8_is_rendered_with_placeholders)
{
    cs_job j;
    char *err;

    memset(&j, 0, sizeof(j));
    cs_job_decide(&j, CS_STATUS_REJECTED, 0, 0, 0, "type \xc3");
    err = outcome_error(&j);
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(err, "type ?");
    free(err);
    cs_job_decide(&j, CS_STATUS_APPLIED, 1, 1, 7, NULL);
    ck_assert_ptr_nonnull(strstr(j.outcome, "\"error\":null"));
    cs_job_clear(&j);
}
END_TEST

/* A supplementary update's map is on the outcome it was decided with, and only there: a
 * decision made again without it (a retried batch) renders none. */
START_TEST(test_job_supplementary_map_only_on_the_decision_that_carries_it)
{
    cs_job j;

    memset(&j, 0, sizeof(j));
    ck_assert_int_eq(cs_job_decide_supplementary(&j, CS_STATUS_APPLIED, 2, 5, 9, "{\"n\": 1}"), 0);
    ck_assert_ptr_nonnull(strstr(j.outcome, "\"error\":null,\"supplementary_data\":{\"n\":1},"));
    ck_assert_str_eq(j.supplementary_data, "{\"n\": 1}");
    cs_job_undecide(&j);
    ck_assert(!j.decided);
    ck_assert_ptr_null(j.supplementary_data);
    ck_assert_int_eq(cs_job_decide_supplementary(&j, CS_STATUS_APPLIED, 2, 5, 9, "{}"), 0);
    ck_assert_int_eq(cs_job_decide(&j, CS_STATUS_REJECTED, 0, 0, 0, "no"), 0);
    ck_assert_ptr_null(strstr(j.outcome, "supplementary_data"));
    ck_assert_ptr_null(j.supplementary_data);
    cs_job_clear(&j);
}
END_TEST

/* A job as the worker's validator leaves it: the verdict on text (keyed by case 7), decided at
 * once when refused. */
static void validated(cs_job *j, const char *text)
{
    memset(j, 0, sizeof(*j));
    j->verdict = cs_submission_parse(text, strlen(text), "7", 1, 1 << 20, &j->sub, j->reason,
                                     sizeof(j->reason));
    if (j->verdict != CS_VALID)
        ck_assert_int_eq(cs_job_decide_refused(j), 0);
}

#define SUBMISSION(extra)                                                                          \
    "{\"idempotency_key\": \"0b6f2c1e-8d4a-4f3b-9c2d-5e6f7a8b9c0d\", \"case_reference\": 7, "      \
    "\"case_type\": \"T\", \"event_id\": \"e\", \"user_id\": \"u\"" extra "}"

/* Every message the validator refuses goes to the DLQ, invalid or rejected for its own field
 * values, with its reason as the outcome's error; a refusal decided later, from the case's
 * state (same status, same code), does not, nor does any other outcome. */
START_TEST(test_job_validator_refusals_go_to_the_dlq_state_decided_ones_do_not)
{
    static const struct {
        const char *text, *status, *reason;
    } refused[] = {
        {"not json", "invalid", "not valid JSON"},
        {SUBMISSION(", \"security_classification\": \"SECRET\""), "rejected",
         "\"security_classification\" must be one of"},
        {SUBMISSION(", \"resolved_ttl\": \"2025-02-29\""), "rejected",
         "\"resolved_ttl\" is not a calendar date"},
        {SUBMISSION(", \"data_merge\": {\"z\": -0.0}"), "rejected", "negative zero"},
        {SUBMISSION(", \"supplementary_data_updates\": {\"$set\": {\"a.b.c\": 1}}"), "rejected",
         "more than two levels"},
    };
    cs_job j;
    char *err;

    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        validated(&j, refused[i].text);
        ck_assert_msg(j.decided, "refusal %zu not decided", i);
        ck_assert_str_eq(cs_status_name(j.status), refused[i].status);
        ck_assert_msg(cs_job_dead_letter(&j), "refusal %zu is not for the DLQ", i);
        err = outcome_error(&j);
        ck_assert_msg(err && strstr(err, refused[i].reason), "refusal %zu: %s", i, j.outcome);
        ck_assert_str_eq(err, j.reason); /* the DLQ copy's error header */
        free(err);
        cs_job_clear(&j);
    }
    /* A sound message: never for the DLQ, whatever the case's state decides. */
    validated(&j, SUBMISSION(", \"data_merge\": {\"n\": 1}"));
    ck_assert_int_eq(j.verdict, CS_VALID);
    ck_assert(!cs_job_dead_letter(&j));
    ck_assert_int_eq(cs_job_decide(&j, CS_STATUS_REJECTED, 0, 0, 0, "case 7 was disposed of"), 0);
    ck_assert_int_eq(j.code, 422);
    ck_assert(!cs_job_dead_letter(&j));
    cs_job_undecide(&j);
    ck_assert_int_eq(cs_job_decide(&j, CS_STATUS_CONFLICT, 0, 0, 0, "expected version 1, not 2"),
                     0);
    ck_assert(!cs_job_dead_letter(&j));
    cs_job_undecide(&j);
    ck_assert_int_eq(cs_job_decide(&j, CS_STATUS_APPLIED, 1, 1, 1, NULL), 0);
    ck_assert(!cs_job_dead_letter(&j));
    cs_job_clear(&j);
}
END_TEST

Suite *job_suite(void)
{
    Suite *s = suite_create("job");
    TCase *tc = tcase_create("outcome");

    tcase_add_test(tc, test_job_reason_cut_in_a_character_is_rendered_not_null);
    tcase_add_test(tc, test_job_reason_not_utf8_is_rendered_with_placeholders);
    tcase_add_test(tc, test_job_supplementary_map_only_on_the_decision_that_carries_it);
    tcase_add_test(tc, test_job_validator_refusals_go_to_the_dlq_state_decided_ones_do_not);
    suite_add_tcase(s, tc);
    return s;
}
