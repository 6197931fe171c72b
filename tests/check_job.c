/* Outcome rendering of worker/job.c (DESIGN §4): the error member of a decided job. */
#include "../worker/job.h"
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

Suite *job_suite(void)
{
    Suite *s = suite_create("job");
    TCase *tc = tcase_create("outcome");

    tcase_add_test(tc, test_job_reason_cut_in_a_character_is_rendered_not_null);
    tcase_add_test(tc, test_job_reason_not_utf8_is_rendered_with_placeholders);
    tcase_add_test(tc, test_job_supplementary_map_only_on_the_decision_that_carries_it);
    suite_add_tcase(s, tc);
    return s;
}
