/* Collects the suites into one SRunner, prints Check's summary, returns the exit status. */
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>

int cs_test_run(Suite *(*const *suites)(void), int n, const char *title)
{
    SRunner *sr;
    int failed;

    printf("== %s\n", title);
    fflush(stdout);
    sr = srunner_create(NULL);
    for (int i = 0; i < n; i++)
        srunner_add_suite(sr, suites[i]());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
