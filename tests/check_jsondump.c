/* cs_json_dumps: reals keep the digits they were given, everything else is jansson's; and
 * cs_json_compact_stored writes the same bytes without the tree. */
#include "jsondump.h"
#include "runner.h"

#include <stdlib.h>
#include <string.h>

static void check_dump(const char *in, const char *want)
{
    json_error_t err;
    json_t *v = json_loads(in, JSON_DECODE_ANY, &err);
    char *got;

    ck_assert_msg(v != NULL, "%s: %s", in, err.text);
    got = cs_json_dumps(v);
    ck_assert_str_eq(got, want);
    free(got);
    json_decref(v);
}

START_TEST(test_jsondump_reals_are_shortest_exact)
{
    check_dump("{\"a\":0.1,\"b\":1e2,\"c\":1.10,\"d\":0.30000000000000004}",
               "{\"a\":0.1,\"b\":100.0,\"c\":1.1,\"d\":0.30000000000000004}");
    check_dump("[-2.5e-8,1.0,3,-0.0,123456789012345678,1.5e10,-1.25e17]",
               "[-2.5e-08,1.0,3,-0.0,123456789012345678,15000000000.0,-125000000000000000.0]");
}
END_TEST

/* The door check reads only the len bytes it is given: what follows them (here more exponent
 * digits that would put the number out of range) is not part of the number. */
START_TEST(test_jsondump_numbers_keep_reads_only_len_bytes)
{
    char why[128];

    ck_assert(cs_json_numbers_keep("1e2999", 3, why, sizeof(why)));
    ck_assert(cs_json_numbers_keep("[2.5e-1]9", 8, why, sizeof(why)));
    ck_assert(!cs_json_numbers_keep("1e2999", 6, why, sizeof(why)));
    ck_assert_ptr_nonnull(strstr(why, "1e2999"));
}
END_TEST

/* jsonb renders 1e+19 as the integer 10000000000000000000, which no 64-bit
 * reader takes; with a fraction it stays a real. */
START_TEST(test_jsondump_large_reals_are_positional_with_a_fraction)
{
    check_dump("[1e19,-9.5e18,1.2345e20]",
               "[10000000000000000000.0,-9500000000000000000.0,123450000000000000000.0]");
    {
        json_t *v = json_loads("[1.7976931348623157e308]", 0, NULL);
        char *got = cs_json_dumps(v), *back_text;
        json_t *back;

        ck_assert_ptr_nonnull(got);
        ck_assert_uint_eq(strlen(got), 2 + 309 + 2);
        ck_assert(strncmp(got, "[17976931348623157", 18) == 0);
        ck_assert_str_eq(got + strlen(got) - 3, ".0]");
        back = json_loads(got, 0, NULL);
        ck_assert_ptr_nonnull(back);
        ck_assert(json_real_value(json_array_get(back, 0)) == 1.7976931348623157e308);
        back_text = cs_json_dumps(back);
        ck_assert_str_eq(back_text, got);
        free(back_text);
        free(got);
        json_decref(back);
        json_decref(v);
    }
}
END_TEST

START_TEST(test_jsondump_leaves_strings_and_integers_alone)
{
    check_dump("{\"s\":\"0.10000000000000001 \\\"1.5\\\" e-9\",\"n\":-42,\"k\":\"\\\\\"}",
               "{\"s\":\"0.10000000000000001 \\\"1.5\\\" e-9\",\"n\":-42,\"k\":\"\\\\\"}");
    check_dump("{\"nested\":{\"x\":[true,false,null,\"\\u00e9\"]}}",
               "{\"nested\":{\"x\":[true,false,null,\"\xc3\xa9\"]}}");
}
END_TEST

START_TEST(test_jsondump_round_trips_to_the_same_values)
{
    const char *in = "{\"v\":[0.1,0.2,0.7,1e-300,6.02214076e23,2.718281828459045]}";
    json_t *a = json_loads(in, 0, NULL), *b;
    char *text = cs_json_dumps(a);

    b = json_loads(text, 0, NULL);
    ck_assert_ptr_nonnull(b);
    ck_assert(json_equal(a, b));
    free(text);
    json_decref(a);
    json_decref(b);
}
END_TEST

/* What cs_json_compact_stored gives for in: cs_json_dumps of what cs_json_loads_stored reads,
 * byte for byte, and NULL exactly where that refuses it. */
static void check_compact_as_dumps(const char *in)
{
    json_error_t err;
    json_t *v = cs_json_loads_stored(in, strlen(in), &err);
    char *want = v ? cs_json_dumps(v) : NULL;
    char *got = cs_json_compact_stored(in, strlen(in));

    if (!want)
        ck_assert_msg(got == NULL, "%s: jansson refuses it (%s), compacted to %s", in, err.text,
                      got);
    else
        ck_assert_msg(got && strcmp(got, want) == 0, "%s: compacted to %s, jansson writes %s", in,
                      got ? got : "(null)", want);
    free(got);
    free(want);
    json_decref(v);
}

START_TEST(test_jsondump_compact_is_the_dump_of_the_parse)
{
    static const char *const same[] = {
        /* as json_build_object and jsonb render */
        "[{\"case_details\" : {\"id\" : 1796021823004242, \"version\" : 3, \"case_data\" : "
        "{\"a\": 1, \"b\": [1, 2, {\"c\": null}], \"e\": {}, \"f\": []}, \"state\" : \"Open\"}, "
        "\"revision\" : 7}]",
        "{\"id\" : 12, \"event\" : {\"summary\" : null, \"significant_item\" : true, \"x\" : "
        "false}}",
        "[]",
        "{}",
        "[ ]",
        "{ }",
        "\"just a string\"",
        "42",
        "-7",
        "null",
        /* numbers: reals as stored, integers as read, past 64 bits a real */
        "[0.1, 1.50, 1e2, 1E+2, 6.02214076e23, 2.718281828459045, 1e-300, -0.0, 0.0, 100.0]",
        "[9223372036854775807, -9223372036854775808, 9223372036854775808, "
        "-9223372036854775809, 10000000000000000000, 123456789012345678901234567890]",
        "[-0, 0, 1000000]",
        /* the edges of the numbers written as they are (number_as_is) */
        "[0.0001, 0.00001, 0.00012345, -0.0001, 0.1000, 5.0, 50.0, 5.00, 0.5, -0.5]",
        "[123456789012345.0, 1234567890123456.0, 123456789012345.5, 12345678901234.5, "
        "0.123456789012345, 0.1234567890123456, 0.000123456789012345, 1.25e2]",
        "[999999999999999999, 1000000000000000000, -999999999999999999, -1000000000000000000]",
        "[1e-400]",
        "[1234567890123456789012345678901234567890123456789012345678901234567890.5]",
        /* strings: escapes read and written as jansson writes them */
        "{\"s\": \"tab\\there \\\"q\\\" back\\\\slash \\/ \\b\\f\\n\\r\"}",
        "{\"ctl\": \"\\u0001\\u001f\\u001F\\u007f\"}",
        "{\"u\": \"\\u00e9\\u00E9 \\u20ac \\ud83d\\ude00 \\uD83D\\uDE00\"}",
        "{\"raw\": \"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \x7f\"}",
        "{\"num in string\": \"1.50 1e2 -0\", \"ws in string\": \" a  b \\n \"}",
        "{\"k\\u0041y\": [\"\\\"\", \"\\\\\"]}",
        "{\n  \"pretty\": [\n    1,\r\n\t2\n  ]\n}",
        /* refused alike */
        "{\"nul\": \"a\\u0000b\"}",
        "{\"lone\": \"\\ud83d\"}",
        "{\"low\": \"\\ude00\"}",
        "{\"pair\": \"\\ud83d\\u0041\"}",
        "{\"esc\": \"\\x\"}",
        "{\"hex\": \"\\u00g1\"}",
        "{\"ctl\": \"a\tb\"}",
        "{\"bad\": \"\xc3\"}",
        "{\"overlong\": \"\xc0\xaf\"}",
        "{\"surrogate\": \"\xed\xa0\x80\"}",
        "{\"past\": \"\xf4\x90\x80\x80\"}",
        "{\"open\": \"abc",
        "[1e400]",
        "[-1e400]",
    };

    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
        check_compact_as_dumps(same[i]);
}
END_TEST

START_TEST(test_jsondump_compact_reads_only_len_bytes)
{
    char *got = cs_json_compact_stored("[1, 2]   [3]", 6);

    ck_assert_str_eq(got, "[1,2]");
    free(got);
    got = cs_json_compact_stored("{\"a\": \"bc\"}", 8); /* cut inside the string */
    ck_assert_ptr_null(got);
}
END_TEST

Suite *jsondump_suite(void)
{
    Suite *s = suite_create("jsondump");
    TCase *tc = tcase_create("dump");

    tcase_add_test(tc, test_jsondump_reals_are_shortest_exact);
    tcase_add_test(tc, test_jsondump_numbers_keep_reads_only_len_bytes);
    tcase_add_test(tc, test_jsondump_large_reals_are_positional_with_a_fraction);
    tcase_add_test(tc, test_jsondump_leaves_strings_and_integers_alone);
    tcase_add_test(tc, test_jsondump_round_trips_to_the_same_values);
    tcase_add_test(tc, test_jsondump_compact_is_the_dump_of_the_parse);
    tcase_add_test(tc, test_jsondump_compact_reads_only_len_bytes);
    suite_add_tcase(s, tc);
    return s;
}
