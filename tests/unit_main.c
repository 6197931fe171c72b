/* Unit-test runner: every suite in unit_suites.h. CK_RUN_SUITE=<name> runs one. */
#include "runner.h"

static Suite *(*const suites[])(void) = {
#define X(fn) fn,
#include "unit_suites.h"
#undef X
};

int main(void)
{
    return cs_test_run(suites, (int)(sizeof(suites) / sizeof(suites[0])), "unit tests");
}
