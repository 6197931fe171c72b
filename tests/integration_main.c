/* Integration-test runner: suites against the real services started by scripts/stack.sh. */
#include "runner.h"

static Suite *(*const suites[])(void) = {
#define X(fn) fn,
#include "it_suites.h"
#undef X
};

int main(void)
{
    return cs_test_run(suites, (int)(sizeof(suites) / sizeof(suites[0])), "integration tests");
}
