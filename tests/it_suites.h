/* The integration-test suites (real services), one line each. */

