/* The unit-test suites, one line each: X(name_of_suite_function). */
X(config_suite)
