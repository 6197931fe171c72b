/* Unit tests of lib/db.c's classification of PostgreSQL errors: what a retry may cure. */
#include "db.h"
#include "runner.h"

#include <stddef.h>

START_TEST(test_db_load_and_outages_are_retryable)
{
    /* Connection lost, serialization failure, deadlock, too many connections, disk full,
     * shutting down, statement_timeout or a cancel, lock_timeout. */
    static const char *const transient[] = {"08006", "08001", "40001", "40P01", "53300",
                                            "53100", "57P01", "57P03", "57014", "55P03"};

    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
        ck_assert_msg(cs_db_sqlstate_retryable(transient[i]), "%s", transient[i]);
}
END_TEST

START_TEST(test_db_refusals_of_the_statement_are_not_retryable)
{
    /* Unique, check, foreign key, not null violations, a raised exception, bad input, a
     * missing table, permission denied, and no state at all. */
    static const char *const permanent[] = {"23505", "23514", "23503", "23502", "P0001",
                                            "22P02", "42P01", "42501", "55000", "57000"};

    for (size_t i = 0; i < sizeof(permanent) / sizeof(permanent[0]); i++)
        ck_assert_msg(!cs_db_sqlstate_retryable(permanent[i]), "%s", permanent[i]);
    ck_assert(!cs_db_sqlstate_retryable(NULL));
}
END_TEST

Suite *db_suite(void)
{
    Suite *s = suite_create("db");
    TCase *tc = tcase_create("sqlstate");

    tcase_add_test(tc, test_db_load_and_outages_are_retryable);
    tcase_add_test(tc, test_db_refusals_of_the_statement_are_not_retryable);
    suite_add_tcase(s, tc);
    return s;
}
