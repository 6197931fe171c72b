/* Unit tests of the indexer program's own rules: its fault points. */
#include "../indexer/indexer.h"
#include "err.h"
#include "fault.h"
#include "runner.h"

#include <string.h>

START_TEST(test_indexer_fault_points_are_known_by_name)
{
    char err[256] = "";

    ck_assert_int_eq(cs_fault_arm("", cs_indexer_faults, err, sizeof(err)), 0);
    ck_assert_int_eq(cs_fault_arm("before_bulk", cs_indexer_faults, err, sizeof(err)), 0);
    ck_assert_int_eq(cs_fault_arm("after_bulk_before_commit", cs_indexer_faults, err, sizeof(err)),
                     0);
    ck_assert_int_eq(cs_fault_arm("after_commit", cs_indexer_faults, err, sizeof(err)), 0);
    ck_assert_int_eq(cs_fault_arm("after", cs_indexer_faults, err, sizeof(err)), CS_ERR_INVALID);
    ck_assert_int_eq(cs_fault_arm("after_commit_x", cs_indexer_faults, err, sizeof(err)),
                     CS_ERR_INVALID);
    ck_assert_ptr_nonnull(
        strstr(err, "unknown fault point \"after_commit_x\" (known: before_bulk"));
    cs_fault_arm("", cs_indexer_faults, err, sizeof(err));
}
END_TEST

Suite *indexer_suite(void)
{
    Suite *s = suite_create("indexer");
    TCase *tc = tcase_create("faults");

    tcase_add_test(tc, test_indexer_fault_points_are_known_by_name);
    suite_add_tcase(s, tc);
    return s;
}
