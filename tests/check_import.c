/* casestream import's decisions (admin/import_rules.c): COPY row keys, commit turns and what
 * validate calls a mismatch. */
#include "../admin/import_rules.h"
#include "runner.h"

#include <string.h>

START_TEST(test_import_row_keys_read_the_leading_ids)
{
    int64_t k[2] = {0, 0};
    const char *row = "17\t40001\t1700000000000017\t{\"a\": 1}\t\\N\n";

    ck_assert(cs_import_row_keys(row, strlen(row), 1, k));
    ck_assert_int_eq(k[0], 17);
    ck_assert(cs_import_row_keys(row, strlen(row), 2, k));
    ck_assert_int_eq(k[0], 17);
    ck_assert_int_eq(k[1], 40001);
    /* A row of one column ends with the newline. */
    ck_assert(cs_import_row_keys("9223372036854775807\n", 20, 1, k));
    ck_assert_int_eq(k[0], INT64_MAX);
}
END_TEST

START_TEST(test_import_row_keys_refuse_what_is_not_an_id)
{
    int64_t k[2];

    ck_assert(!cs_import_row_keys("\\N\t1\n", 5, 1, k));
    ck_assert(!cs_import_row_keys("-1\t1\n", 5, 1, k));
    ck_assert(!cs_import_row_keys("12", 2, 1, k));      /* no end of column */
    ck_assert(!cs_import_row_keys("12\n", 3, 2, k));    /* one column where two are read */
    ck_assert(!cs_import_row_keys("1x\t2\n", 5, 1, k)); /* not digits */
    ck_assert(!cs_import_row_keys("9223372036854775808\n", 20, 1, k)); /* past 2^63-1 */
    ck_assert(!cs_import_row_keys("", 0, 1, k));
}
END_TEST

START_TEST(test_import_event_rows_split_into_history_columns_and_reason)
{
    const char *good = "17\t40001\t1700\t{\"a\": \"x\\ty\"}\t\\N\n";
    const char *bad = "17\t40002\t\\N\tdata is not a JSON object but array\n";
    const char *tricky = "17\t40003\t5\t\\No\n";
    size_t from, to;
    bool skip;

    ck_assert(cs_import_event_row(good, strlen(good), &from, &to, &skip));
    ck_assert(!skip);
    ck_assert_int_eq((int)(to - from), (int)strlen("40001\t1700\t{\"a\": \"x\\ty\"}"));
    ck_assert(strncmp(good + from, "40001\t1700\t{", 12) == 0);
    ck_assert(cs_import_event_row(bad, strlen(bad), &from, &to, &skip));
    ck_assert(skip);
    ck_assert(cs_import_event_row(tricky, strlen(tricky), &from, &to, &skip));
    ck_assert(skip);                                                     /* "\No" is not NULL */
    ck_assert(!cs_import_event_row("17\t\\N\n", 6, &from, &to, &skip));  /* no middle */
    ck_assert(!cs_import_event_row("17\t1\t\\N", 8, &from, &to, &skip)); /* no newline */
}
END_TEST

START_TEST(test_import_batches_commit_in_the_order_they_were_read)
{
    cs_import_turns t = {0};

    ck_assert(cs_import_my_turn(&t, 0));
    ck_assert(!cs_import_my_turn(&t, 1));
    cs_import_done(&t, 0, true);
    ck_assert(cs_import_my_turn(&t, 1));
    ck_assert(!cs_import_my_turn(&t, 2));
    /* A batch that fails ends the turns: no later one commits past it. */
    cs_import_done(&t, 1, false);
    ck_assert(!cs_import_my_turn(&t, 1));
    ck_assert(!cs_import_my_turn(&t, 2));
    ck_assert(t.failed);
}
END_TEST

START_TEST(test_import_compare_names_each_difference)
{
    cs_import_case s = {.reference = 1,
                        .events = 20,
                        .data_md5 = "aa",
                        .state = "Open",
                        .version = 3,
                        .classification = "PUBLIC"};
    cs_import_case t = s;

    ck_assert_uint_eq(cs_import_compare(&s, &t), 0);
    t.events = 19;
    t.state = "Closed";
    t.version = 4;
    t.classification = "PRIVATE";
    ck_assert_uint_eq(cs_import_compare(&s, &t), CS_IMPORT_EVENTS | CS_IMPORT_STATE |
                                                     CS_IMPORT_VERSION | CS_IMPORT_CLASSIFICATION);
    ck_assert_str_eq(cs_import_field_name(CS_IMPORT_CLASSIFICATION), "security_classification");
    ck_assert_str_eq(cs_import_field_name(CS_IMPORT_EVENTS), "events");
}
END_TEST

START_TEST(test_import_compare_blobs_by_json_value)
{
    cs_import_case s = {.reference = 1, .data_md5 = "aa", .state = "O", .classification = "P"};
    cs_import_case t = s;

    t.data_md5 = "bb";
    /* Different text, not read yet: the caller reads both blobs and asks again. */
    ck_assert_uint_eq(cs_import_compare(&s, &t), CS_IMPORT_DATA);
    s.data = json_loads("{\"a\": 1.0, \"b\": [1, 2]}", 0, NULL);
    t.data = json_loads("{\"b\": [1, 2], \"a\": 1}", 0, NULL);
    ck_assert_uint_eq(cs_import_compare(&s, &t), 0);
    json_decref(t.data);
    t.data = json_loads("{\"b\": [2, 1], \"a\": 1}", 0, NULL);
    ck_assert_uint_eq(cs_import_compare(&s, &t), CS_IMPORT_DATA);
    json_decref(s.data);
    json_decref(t.data);
}
END_TEST

Suite *import_suite(void)
{
    Suite *s = suite_create("import");
    TCase *tc = tcase_create("rules");

    tcase_add_test(tc, test_import_row_keys_read_the_leading_ids);
    tcase_add_test(tc, test_import_row_keys_refuse_what_is_not_an_id);
    tcase_add_test(tc, test_import_event_rows_split_into_history_columns_and_reason);
    tcase_add_test(tc, test_import_batches_commit_in_the_order_they_were_read);
    tcase_add_test(tc, test_import_compare_names_each_difference);
    tcase_add_test(tc, test_import_compare_blobs_by_json_value);
    suite_add_tcase(s, tc);
    return s;
}
