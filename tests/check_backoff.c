/* Unit tests of lib/backoff.c: the delay grows, is jittered within its upper half, and caps. */
#include "backoff.h"
#include "runner.h"

START_TEST(test_backoff_grows_with_jitter_and_caps)
{
    unsigned seed = 42;

    for (int round = 0; round < 100; round++) {
        long d0 = cs_backoff_ms(0, 100, 30000, &seed);
        long d3 = cs_backoff_ms(3, 100, 30000, &seed);
        long d20 = cs_backoff_ms(20, 100, 30000, &seed);
        long d99 = cs_backoff_ms(99, 100, 30000, &seed);

        ck_assert(d0 >= 50 && d0 <= 100);
        ck_assert(d3 >= 400 && d3 <= 800);
        ck_assert(d20 >= 15000 && d20 <= 30000);
        ck_assert(d99 >= 15000 && d99 <= 30000);
    }
}
END_TEST

START_TEST(test_backoff_jitter_spreads_the_delays)
{
    unsigned seed = 7;
    long lo = 1000000, hi = 0;

    for (int i = 0; i < 200; i++) {
        long d = cs_backoff_ms(4, 100, 30000, &seed);

        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    /* 1600 ms drawn from [800, 1600]: two hundred draws are not all alike. */
    ck_assert_int_ge(lo, 800);
    ck_assert_int_le(hi, 1600);
    ck_assert_int_gt(hi - lo, 400);
}
END_TEST

START_TEST(test_backoff_state_counts_failures_and_resets_on_success)
{
    cs_backoff b;
    long d;

    cs_backoff_init(&b, 200, 10000);
    ck_assert_int_eq(b.attempt, 0);
    d = cs_backoff_next(&b);
    ck_assert(d >= 100 && d <= 200);
    d = cs_backoff_next(&b);
    ck_assert(d >= 200 && d <= 400);
    ck_assert_int_eq(b.attempt, 2);
    for (int i = 0; i < 100; i++)
        d = cs_backoff_next(&b);
    ck_assert(d >= 5000 && d <= 10000);
    cs_backoff_reset(&b);
    ck_assert_int_eq(b.attempt, 0);
    d = cs_backoff_next(&b);
    ck_assert(d >= 100 && d <= 200);
}
END_TEST

Suite *backoff_suite(void)
{
    Suite *s = suite_create("backoff");
    TCase *tc = tcase_create("backoff");

    tcase_add_test(tc, test_backoff_grows_with_jitter_and_caps);
    tcase_add_test(tc, test_backoff_jitter_spreads_the_delays);
    tcase_add_test(tc, test_backoff_state_counts_failures_and_resets_on_success);
    suite_add_tcase(s, tc);
    return s;
}
