/* Unit tests of murmur2 partitioning against numbers computed by the Java client itself. */
#include "fixture.h"
#include "murmur2.h"

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Written by tests/tools/Murmur2Partitions.java from kafka-clients 3.9.1, under
 * $CASESTREAM_FIXTURES (default tests/fixtures). */
#define FIXTURE "murmur2/java_partitions.txt"

typedef struct java_row {
    unsigned char key[64];
    size_t len;
    long hash; /* Java's signed int */
    int p12, p7;
} java_row;

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Reads the fixture; returns the number of rows (the test fails on a bad line). */
static size_t load_rows(java_row *rows, size_t max)
{
    char path[512], line[512], hex[160];
    size_t n = 0;
    int lineno = 0;
    FILE *f;

    ck_assert_msg((f = fopen(cs_fixture_path(FIXTURE, path, sizeof(path)), "r")) != NULL,
                  "cannot open %s (run the tests from the repository root)", path);
    while (fgets(line, sizeof(line), f)) {
        java_row *r = &rows[n];

        lineno++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        ck_assert_msg(n < max, "%s: too many rows", FIXTURE);
        ck_assert_msg(sscanf(line, "%159s %ld %d %d", hex, &r->hash, &r->p12, &r->p7) == 4,
                      "%s:%d: malformed line", FIXTURE, lineno);
        r->len = 0;
        if (strcmp(hex, "-") != 0) {
            size_t hl = strlen(hex);

            ck_assert_msg(hl % 2 == 0 && hl / 2 <= sizeof(r->key), "%s:%d: bad key", FIXTURE,
                          lineno);
            for (size_t i = 0; i < hl; i += 2) {
                int hi = hexval(hex[i]), lo = hexval(hex[i + 1]);

                ck_assert_msg(hi >= 0 && lo >= 0, "%s:%d: bad hex", FIXTURE, lineno);
                r->key[r->len++] = (unsigned char)(hi << 4 | lo);
            }
        }
        n++;
    }
    fclose(f);
    return n;
}

static bool has_key(const java_row *rows, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (rows[i].len == strlen(key) && memcmp(rows[i].key, key, rows[i].len) == 0)
            return true;
    }
    return false;
}

START_TEST(test_murmur2_fixture_covers_required_keys)
{
    static java_row rows[256];
    size_t n = load_rows(rows, 256);

    ck_assert_uint_ge(n, 40);
    ck_assert(has_key(rows, n, ""));
    ck_assert(has_key(rows, n, "1"));
    ck_assert(has_key(rows, n, "12"));
    ck_assert(has_key(rows, n, "1234567890123456"));
    ck_assert(has_key(rows, n, "9223372036854775807"));
}
END_TEST

START_TEST(test_murmur2_hash_equals_java_utils_murmur2)
{
    static java_row rows[256];
    size_t n = load_rows(rows, 256);

    for (size_t i = 0; i < n; i++) {
        /* Converting Java's signed int to uint32_t is exact modulo 2^32. */
        uint32_t want = (uint32_t)rows[i].hash;

        ck_assert_msg(cs_murmur2(rows[i].key, rows[i].len) == want,
                      "row %zu (%zu bytes): got %u, java %u", i, rows[i].len,
                      cs_murmur2(rows[i].key, rows[i].len), want);
    }
}
END_TEST

START_TEST(test_murmur2_partition_of_12_equals_java)
{
    static java_row rows[256];
    size_t n = load_rows(rows, 256);

    for (size_t i = 0; i < n; i++)
        ck_assert_msg(cs_murmur2_partition(rows[i].key, rows[i].len, 12) == rows[i].p12,
                      "row %zu: got %d, java %d", i,
                      cs_murmur2_partition(rows[i].key, rows[i].len, 12), rows[i].p12);
}
END_TEST

START_TEST(test_murmur2_partition_of_7_equals_java)
{
    static java_row rows[256];
    size_t n = load_rows(rows, 256);

    for (size_t i = 0; i < n; i++)
        ck_assert_msg(cs_murmur2_partition(rows[i].key, rows[i].len, 7) == rows[i].p7,
                      "row %zu: got %d, java %d", i,
                      cs_murmur2_partition(rows[i].key, rows[i].len, 7), rows[i].p7);
}
END_TEST

START_TEST(test_murmur2_partition_rejects_no_partitions)
{
    ck_assert_int_eq(cs_murmur2_partition("1", 1, 0), -1);
    ck_assert_int_eq(cs_murmur2_partition("1", 1, -3), -1);
    ck_assert_int_eq(cs_murmur2_partition("1", 1, 1), 0);
    ck_assert_int_eq(cs_murmur2_partition(NULL, 0, 12), cs_murmur2_partition("", 0, 12));
}
END_TEST

Suite *murmur2_suite(void);

Suite *murmur2_suite(void)
{
    Suite *s = suite_create("murmur2");
    TCase *tc = tcase_create("java");

    tcase_add_test(tc, test_murmur2_fixture_covers_required_keys);
    tcase_add_test(tc, test_murmur2_hash_equals_java_utils_murmur2);
    tcase_add_test(tc, test_murmur2_partition_of_12_equals_java);
    tcase_add_test(tc, test_murmur2_partition_of_7_equals_java);
    tcase_add_test(tc, test_murmur2_partition_rejects_no_partitions);
    suite_add_tcase(s, tc);
    return s;
}
