/* Shared runner for the Check suites: CK_RUN_SUITE and CK_RUN_CASE select. */
#ifndef CS_TEST_RUNNER_H
#define CS_TEST_RUNNER_H

#include <check.h>

/* Every suite constructor, declared once for the files that define them. */
#define X(fn) Suite *fn(void);
#include "unit_suites.h"
#include "it_suites.h"
#undef X

/* Runs every suite built by the given constructors; returns the exit status. */
int cs_test_run(Suite *(*const *suites)(void), int n, const char *title);

#endif
