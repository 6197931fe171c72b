/* UTF-8 under byte limits: counting characters, and cuts that never split one. */
#include "utf8.h"
#include "runner.h"

#include <jansson.h>
#include <string.h>

/* a, e-acute (2 bytes), euro sign (3 bytes), grinning face (4 bytes), z. */
#define MIXED "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z"

START_TEST(test_utf8_chars_counts_code_points_not_bytes)
{
    ck_assert_uint_eq(cs_utf8_chars("", 0), 0);
    ck_assert_uint_eq(cs_utf8_chars("abc", 3), 3);
    ck_assert_uint_eq(cs_utf8_chars("\xc3\xa9", 2), 1);
    ck_assert_uint_eq(cs_utf8_chars(MIXED, strlen(MIXED)), 5);
    ck_assert_uint_eq(strlen(MIXED), 11);
}
END_TEST

START_TEST(test_utf8_prefix_backs_up_to_a_character_start)
{
    const char *s = MIXED;
    size_t len = strlen(s);
    /* The prefix for each max 0..11: character starts are at 0, 1, 3, 6, 10, 11. */
    static const size_t want[] = {0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 11};

    for (size_t max = 0; max <= len; max++)
        ck_assert_msg(cs_utf8_prefix(s, len, max) == want[max], "max %zu: %zu, expected %zu", max,
                      cs_utf8_prefix(s, len, max), want[max]);
    ck_assert_uint_eq(cs_utf8_prefix(s, len, 100), len);
    ck_assert_uint_eq(cs_utf8_prefix("abc", 3, 2), 2);
}
END_TEST

START_TEST(test_utf8_trim_drops_only_an_incomplete_last_character)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},
        {"abc", "abc"},
        {"ab\xc3", "ab"},
        {"ab\xc3\xa9", "ab\xc3\xa9"},
        {"a\xe2\x82", "a"},
        {"a\xe2", "a"},
        {"a\xe2\x82\xac", "a\xe2\x82\xac"},
        {"a\xf0\x9f\x98", "a"},
        {"a\xf0\x9f\x98\x80", "a\xf0\x9f\x98\x80"},
        {"\xc3", ""},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[16];

        strcpy(buf, cases[i].in);
        ck_assert_uint_eq(cs_utf8_trim(buf), strlen(cases[i].out));
        ck_assert_str_eq(buf, cases[i].out);
    }
}
END_TEST

/* Whatever the buffer size, the text is a whole-character prefix that jansson takes as a
 * string: json_string() of a split character is NULL, which an outcome renders as null. */
START_TEST(test_utf8_snprintf_cut_at_any_size_is_valid_utf8)
{
    const char *text = "reason: " MIXED MIXED;
    size_t full = strlen(text);

    for (size_t size = 1; size <= full + 2; size++) {
        char buf[64];
        size_t n = cs_utf8_snprintf(buf, size, "reason: %s%s", MIXED, MIXED);
        json_t *j = json_string(buf);

        ck_assert_uint_eq(n, strlen(buf));
        ck_assert_msg(n < size, "size %zu: %zu bytes", size, n);
        ck_assert_msg(strncmp(buf, text, n) == 0, "size %zu: not a prefix", size);
        ck_assert_msg(j != NULL, "size %zu: \"%s\" is not valid UTF-8", size, buf);
        ck_assert_uint_eq(n, cs_utf8_prefix(text, full, size - 1));
        json_decref(j);
    }
    ck_assert_uint_eq(cs_utf8_snprintf(NULL, 0, "%s", "x"), 0);
}
END_TEST

static const struct {
    const char *in, *out;
} repair_cases[] = {
    {"", ""},
    {"plain ascii", "plain ascii"},
    {MIXED, MIXED},
    {"cut \xc3", "cut ?"},                        /* a character cut in two */
    {"cut \xe2\x82 inside", "cut ?? inside"},     /* three bytes, two left, not at the end */
    {"lone \x80 byte", "lone ? byte"},            /* a continuation byte alone */
    {"overlong \xc0\xaf", "overlong ??"},         /* '/' in two bytes */
    {"overlong \xe0\x80\xaf", "overlong ???"},    /* '/' in three bytes */
    {"surrogate \xed\xa0\x80", "surrogate ???"},  /* U+D800 */
    {"too big \xf4\x90\x80\x80", "too big ????"}, /* U+110000 */
    {"\xff\xfe", "??"},
    /* jansson's error text for the change document "\xd5\x9c+\\\xd5\x9c\xea */
    {"invalid escape near '\"\xd5\x9c+\\\xd5'", "invalid escape near '\"\xd5\x9c+\\?'"},
};

START_TEST(test_utf8_repair_marks_what_postgresql_refuses)
{
    for (size_t i = 0; i < sizeof(repair_cases) / sizeof(repair_cases[0]); i++) {
        char buf[64];

        strcpy(buf, repair_cases[i].in);
        ck_assert_msg(strcmp(cs_utf8_repair(buf), repair_cases[i].out) == 0, "case %zu: %s", i,
                      buf);
    }
}
END_TEST

Suite *utf8_suite(void)
{
    Suite *s = suite_create("utf8");
    TCase *tc = tcase_create("utf8");

    tcase_add_test(tc, test_utf8_chars_counts_code_points_not_bytes);
    tcase_add_test(tc, test_utf8_prefix_backs_up_to_a_character_start);
    tcase_add_test(tc, test_utf8_trim_drops_only_an_incomplete_last_character);
    tcase_add_test(tc, test_utf8_snprintf_cut_at_any_size_is_valid_utf8);
    tcase_add_test(tc, test_utf8_repair_marks_what_postgresql_refuses);
    suite_add_tcase(s, tc);
    return s;
}
