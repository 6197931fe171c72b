/* Fixture files for the unit tests, under $CASESTREAM_FIXTURES (default tests/fixtures). */
#ifndef CS_TEST_FIXTURE_H
#define CS_TEST_FIXTURE_H

#include <jansson.h>
#include <stddef.h>

/* The path of fixture rel in buf. Returns buf. */
const char *cs_fixture_path(const char *rel, char *buf, size_t size);

/* Reads fixture rel whole (NUL-terminated, length in *len); the caller frees.
 * A missing file fails the test. */
char *cs_fixture_read(const char *rel, size_t *len);

/* Parses fixture rel as JSON (duplicate keys rejected); the caller decrefs.
 * A missing or broken file fails the test. */
json_t *cs_fixture_json(const char *rel);

#endif
