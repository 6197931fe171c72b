/* Unit tests of the consumer-flow rules: lag of a partition and the stall clock. */
#include "consumer.h"
#include "runner.h"

START_TEST(test_consumer_lag_counts_from_the_last_acknowledged_offset)
{
    /* Stored (or committed) offset 40 of 100: 60 to go, whatever was fetched. */
    ck_assert_int_eq(cs_consumer_lag(0, 100, 40), 60);
    ck_assert_int_eq(cs_consumer_lag(0, 100, 100), 0);
    /* An empty partition has nothing to do. */
    ck_assert_int_eq(cs_consumer_lag(0, 0, CS_CONSUMER_FROM_LOW), 0);
}
END_TEST

START_TEST(test_consumer_lag_without_committed_offset_starts_at_low_watermark)
{
    /* Nothing ever acknowledged by the group: it starts at the earliest offset. */
    ck_assert_int_eq(cs_consumer_lag(30, 100, CS_CONSUMER_FROM_LOW), 70);
    /* A committed offset the broker has since deleted counts from the low watermark. */
    ck_assert_int_eq(cs_consumer_lag(30, 100, 10), 70);
}
END_TEST

START_TEST(test_consumer_lag_unknown_until_offsets_and_watermarks_known)
{
    ck_assert_int_eq(cs_consumer_lag(0, 100, CS_CONSUMER_UNKNOWN), -1);
    ck_assert_int_eq(cs_consumer_lag(-1, -1, 40), -1);
    ck_assert_int_eq(cs_consumer_lag(-1, 100, CS_CONSUMER_FROM_LOW), -1);
    /* High watermark known, low not: the acknowledged offset is enough. */
    ck_assert_int_eq(cs_consumer_lag(-1, 100, 40), 60);
}
END_TEST

START_TEST(test_consumer_stall_needs_lag_dependency_up_and_no_progress_for_the_limit)
{
    long long since = 1000;

    ck_assert(!cs_consumer_stall_clock(&since, 60000, 5, true, 120000));
    ck_assert(!cs_consumer_stall_clock(&since, 120999, 5, true, 120000));
    ck_assert(cs_consumer_stall_clock(&since, 121000, 5, true, 120000));
    ck_assert_int_eq(since, 1000);
}
END_TEST

START_TEST(test_consumer_stall_clock_restarts_while_dependency_down_or_no_lag)
{
    long long since = 0;

    /* Ten minutes of PostgreSQL down count for nothing... */
    ck_assert(!cs_consumer_stall_clock(&since, 600000, 5, false, 120000));
    ck_assert_int_eq(since, 600000);
    /* ...the clock starts when it is back. */
    ck_assert(!cs_consumer_stall_clock(&since, 700000, 5, true, 120000));
    ck_assert(cs_consumer_stall_clock(&since, 720000, 5, true, 120000));
    /* Caught up: not stalled, and the clock starts again. */
    ck_assert(!cs_consumer_stall_clock(&since, 730000, 0, true, 120000));
    ck_assert_int_eq(since, 730000);
    /* Lag unknown: nothing can be said. */
    ck_assert(!cs_consumer_stall_clock(&since, 900000, -1, true, 120000));
    ck_assert_int_eq(since, 900000);
}
END_TEST

START_TEST(test_consumer_stall_limit_zero_never_reports)
{
    long long since = 0;

    ck_assert(!cs_consumer_stall_clock(&since, 100000000, 5, true, 0));
}
END_TEST

Suite *consumer_suite(void)
{
    Suite *s = suite_create("consumer");
    TCase *tc = tcase_create("rules");

    tcase_add_test(tc, test_consumer_lag_counts_from_the_last_acknowledged_offset);
    tcase_add_test(tc, test_consumer_lag_without_committed_offset_starts_at_low_watermark);
    tcase_add_test(tc, test_consumer_lag_unknown_until_offsets_and_watermarks_known);
    tcase_add_test(tc, test_consumer_stall_needs_lag_dependency_up_and_no_progress_for_the_limit);
    tcase_add_test(tc, test_consumer_stall_clock_restarts_while_dependency_down_or_no_lag);
    tcase_add_test(tc, test_consumer_stall_limit_zero_never_reports);
    suite_add_tcase(s, tc);
    return s;
}
