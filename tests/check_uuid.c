/* UUID validation into canonical form and version 4 generation. */
#include "uuid.h"
#include "runner.h"

#include <string.h>

/* Inputs and their canonical form, or NULL where the input is not a UUID. */
static const struct {
    const char *in, *canonical;
} parse_cases[] = {
    {"0b6e5a7c-3f0e-4a59-9d1c-2f1f4b8e9a01", "0b6e5a7c-3f0e-4a59-9d1c-2f1f4b8e9a01"},
    {"0B6E5A7C-3F0E-4A59-9D1C-2F1F4B8E9A01", "0b6e5a7c-3f0e-4a59-9d1c-2f1f4b8e9a01"},
    {"00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000"},
    {"FfFfFfFf-ffff-FFFF-ffff-FFFFFFFFFFFF", "ffffffff-ffff-ffff-ffff-ffffffffffff"},
    {"", NULL},
    {"0b6e5a7c-3f0e-4a59-9d1c-2f1f4b8e9a0", NULL},
    {"0b6e5a7c-3f0e-4a59-9d1c-2f1f4b8e9a012", NULL},
    {"0b6e5a7c3f0e4a599d1c2f1f4b8e9a01", NULL},
    {"0b6e5a7c-3f0e-4a59-9d1c-2f1f4b8e9a0g", NULL},
    {"0b6e5a7c-3f0e-4a59-9d1c_2f1f4b8e9a01", NULL},
    {"0b6e5a7-c3f0e-4a59-9d1c-2f1f4b8e9a01", NULL},
    {"{0b6e5a7c-3f0e-4a59-9d1c-2f1f4b8e9a01}", NULL},
    {" 0b6e5a7c-3f0e-4a59-9d1c-2f1f4b8e9a01", NULL},
    {"0b6e5a7c-3f0e-4a59-9d1c-2f1f4b8e9a01\n", NULL},
};

START_TEST(test_uuid_parse_accepts_any_case_and_canonicalises)
{
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        char out[37] = "untouched";

        ck_assert_msg(cs_uuid_parse(parse_cases[i].in, out) == (parse_cases[i].canonical != NULL),
                      "\"%s\"", parse_cases[i].in);
        ck_assert_str_eq(out, parse_cases[i].canonical ? parse_cases[i].canonical : "untouched");
    }
    ck_assert(!cs_uuid_parse(NULL, NULL));
    ck_assert(cs_uuid_parse("0b6e5a7c-3f0e-4a59-9d1c-2f1f4b8e9a01", NULL));
}
END_TEST

START_TEST(test_uuid_generate_gives_distinct_version_4_uuids)
{
    char prev[37] = "", cur[37], parsed[37];

    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(cs_uuid_generate(cur), 0);
        ck_assert(cs_uuid_parse(cur, parsed));
        ck_assert_str_eq(parsed, cur); /* already canonical */
        ck_assert_int_eq(cur[14], '4');
        ck_assert_ptr_nonnull(strchr("89ab", cur[19]));
        ck_assert_str_ne(cur, prev);
        memcpy(prev, cur, sizeof(cur));
    }
}
END_TEST

Suite *uuid_suite(void)
{
    Suite *s = suite_create("uuid");
    TCase *tc = tcase_create("uuid");

    tcase_add_test(tc, test_uuid_parse_accepts_any_case_and_canonicalises);
    tcase_add_test(tc, test_uuid_generate_gives_distinct_version_4_uuids);
    suite_add_tcase(s, tc);
    return s;
}
