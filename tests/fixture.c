/* Loading fixture files: a missing or unreadable fixture fails the test, never skips it. */
#include "fixture.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

const char *cs_fixture_path(const char *rel, char *buf, size_t size)
{
    const char *dir = getenv("CASESTREAM_FIXTURES");

    snprintf(buf, size, "%s/%s", dir ? dir : "tests/fixtures", rel);
    return buf;
}

char *cs_fixture_read(const char *rel, size_t *len)
{
    char path[512];
    FILE *f = fopen(cs_fixture_path(rel, path, sizeof(path)), "rb");
    char *buf;
    long n;

    ck_assert_msg(f != NULL, "cannot open fixture %s (run the tests from the repository root)",
                  path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    ck_assert_int_ge(n, 0);
    rewind(f);
    buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

json_t *cs_fixture_json(const char *rel)
{
    json_error_t err;
    size_t len;
    char *text = cs_fixture_read(rel, &len);
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);

    free(text);
    ck_assert_msg(root != NULL, "fixture %s: %s at line %d", rel, err.text, err.line);
    return root;
}
