/* Unit tests of worker/batching.c: when the batch in hand goes to the appliers. */
#include "../worker/batching.h"
#include "runner.h"

START_TEST(test_batching_full_batch_goes_at_once)
{
    ck_assert_int_eq(cs_batching_wait_ms(256, 256, false, 0, 0), CS_BATCHING_GO);
    ck_assert_int_eq(cs_batching_wait_ms(300, 256, false, 0, 1000), CS_BATCHING_GO);
    ck_assert_int_eq(cs_batching_wait_ms(1, 1, true, 0, 50), CS_BATCHING_GO);
}
END_TEST

START_TEST(test_batching_takes_what_is_queued_before_going)
{
    /* Something may still be queued: poll it without waiting, linger or not. */
    ck_assert_int_eq(cs_batching_wait_ms(1, 256, false, 0, 0), 0);
    ck_assert_int_eq(cs_batching_wait_ms(10, 256, false, 5000, 0), 0);
    ck_assert_int_eq(cs_batching_wait_ms(10, 256, false, 3, 20), 0);
}
END_TEST

START_TEST(test_batching_without_linger_goes_once_nothing_is_queued)
{
    ck_assert_int_eq(cs_batching_wait_ms(1, 256, true, 0, 0), CS_BATCHING_GO);
    ck_assert_int_eq(cs_batching_wait_ms(255, 256, true, 0, 0), CS_BATCHING_GO);
}
END_TEST

START_TEST(test_batching_linger_waits_out_its_rest_from_the_first_message)
{
    ck_assert_int_eq(cs_batching_wait_ms(1, 256, true, 0, 20), 20);
    ck_assert_int_eq(cs_batching_wait_ms(5, 256, true, 15, 20), 5);
    ck_assert_int_eq(cs_batching_wait_ms(5, 256, true, 20, 20), CS_BATCHING_GO);
    ck_assert_int_eq(cs_batching_wait_ms(5, 256, true, 90, 20), CS_BATCHING_GO);
    /* A clock that went back counts as no time passed. */
    ck_assert_int_eq(cs_batching_wait_ms(5, 256, true, -7, 20), 20);
}
END_TEST

Suite *batching_suite(void)
{
    Suite *s = suite_create("batching");
    TCase *tc = tcase_create("batching");

    tcase_add_test(tc, test_batching_full_batch_goes_at_once);
    tcase_add_test(tc, test_batching_takes_what_is_queued_before_going);
    tcase_add_test(tc, test_batching_without_linger_goes_once_nothing_is_queued);
    tcase_add_test(tc, test_batching_linger_waits_out_its_rest_from_the_first_message);
    suite_add_tcase(s, tc);
    return s;
}
