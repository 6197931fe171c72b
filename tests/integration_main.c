/* Integration-test runner: suites against the real services started by scripts/stack.sh. */
#include "it_support.h"
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static Suite *(*const suites[])(void) = {
#define X(fn) fn,
#include "it_suites.h"
#undef X
};

int main(void)
{
    char pid[32];
    int rc;

    /* The tests' topics are deleted at the end, so that runs do not pile up on the broker. */
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    setenv("CS_IT_RUNNER", pid, 1);
    rc = cs_test_run(suites, (int)(sizeof(suites) / sizeof(suites[0])), "integration tests");
    it_drop_created_topics();
    return rc;
}
