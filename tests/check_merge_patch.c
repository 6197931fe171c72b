/* JSON merge patch against RFC 7396's own examples (tests/fixtures/merge_patch), and jsonb
 * equality. */
#include "merge_patch.h"
#include "fixture.h"
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>

START_TEST(test_merge_patch_rfc7396_examples)
{
    json_t *cases = cs_fixture_json("merge_patch/rfc7396.json"), *tc;
    size_t i;

    ck_assert_uint_eq(json_array_size(cases), 16);
    json_array_foreach(cases, i, tc)
    {
        const char *name = json_string_value(json_object_get(tc, "name"));
        json_t *target = json_object_get(tc, "target"), *patch = json_object_get(tc, "patch");
        json_t *target_before = json_deep_copy(target), *patch_before = json_deep_copy(patch);
        json_t *result = cs_merge_patch(target, patch);

        ck_assert_msg(target && patch && json_object_get(tc, "result"), "%s: incomplete case",
                      name);
        ck_assert_msg(result != NULL, "%s: no result", name);
        ck_assert_msg(json_equal(result, json_object_get(tc, "result")), "%s: wrong result", name);
        ck_assert_msg(json_equal(target, target_before) && json_equal(patch, patch_before),
                      "%s: an argument was modified", name);
        json_decref(result);
        json_decref(target_before);
        json_decref(patch_before);
    }
    json_decref(cases);
}
END_TEST

START_TEST(test_merge_patch_shares_what_it_leaves_and_copies_the_patch)
{
    json_t *target = json_pack("{s:{s:i}, s:{s:i}, s:i}", "a", "x", 1, "e", "z", 5, "b", 2);
    json_t *patch = json_pack("{s:{s:i}, s:[i], s:{s:i}}", "c", "y", 3, "d", 4, "e", "w", 6);
    json_t *result = cs_merge_patch(target, patch);

    /* What the patch leaves alone is the target's own value, not a copy of it. */
    ck_assert_ptr_eq(json_object_get(result, "a"), json_object_get(target, "a"));
    /* On the patch's paths, new objects: the target keeps its members. */
    ck_assert_ptr_ne(result, target);
    ck_assert_ptr_ne(json_object_get(result, "e"), json_object_get(target, "e"));
    ck_assert_uint_eq(json_object_size(target), 3);
    ck_assert_uint_eq(json_object_size(json_object_get(target, "e")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(result, "e"), "w")), 6);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(result, "e"), "z")), 5);
    /* The patch's values are copied. */
    json_object_set_new(json_object_get(result, "c"), "y", json_integer(9));
    json_array_append_new(json_object_get(result, "d"), json_integer(9));
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(patch, "c"), "y")), 3);
    ck_assert_uint_eq(json_array_size(json_object_get(patch, "d")), 1);
    json_decref(result);
    json_decref(target);
    json_decref(patch);
}
END_TEST

START_TEST(test_merge_patch_null_target_counts_as_null)
{
    json_t *patch = json_pack("{s:i, s:n}", "a", 1, "b");
    json_t *want = json_pack("{s:i}", "a", 1);
    json_t *result = cs_merge_patch(NULL, patch);

    ck_assert(json_equal(result, want));
    json_decref(result);
    result = cs_merge_patch(NULL, json_object_get(patch, "a"));
    ck_assert(json_equal(result, json_object_get(patch, "a")));
    json_decref(result);
    json_decref(want);
    json_decref(patch);
}
END_TEST

/* Pairs of JSON texts and whether jsonb would call them equal. */
static const struct {
    const char *a, *b;
    bool equal;
} equal_cases[] = {
    {"1", "1.0", true},
    {"[1, {\"x\": 2.0}]", "[1.0, {\"x\": 2}]", true},
    {"{\"a\": 1, \"b\": 2}", "{\"b\": 2.0, \"a\": 1}", true},
    {"-0.0", "0", true},
    {"1", "1.5", false},
    {"9007199254740993", "9007199254740992.0", false},
    {"9223372036854775807", "9223372036854775808.0", false},
    {"-9223372036854775808", "-9223372036854775808.0", true},
    {"1", "\"1\"", false},
    {"true", "1", false},
    {"null", "false", false},
    {"\"a\"", "\"a\"", true},
    {"\"a\"", "\"b\"", false},
    {"[1, 2]", "[2, 1]", false},
    {"[1]", "[1, 1]", false},
    {"{\"a\": 1}", "{\"a\": 1, \"b\": null}", false},
    {"{\"a\": null}", "{\"b\": null}", false},
    {"{}", "[]", false},
};

START_TEST(test_json_equal_compares_numbers_by_value)
{
    for (size_t i = 0; i < sizeof(equal_cases) / sizeof(equal_cases[0]); i++) {
        json_t *a = json_loads(equal_cases[i].a, JSON_DECODE_ANY, NULL);
        json_t *b = json_loads(equal_cases[i].b, JSON_DECODE_ANY, NULL);

        ck_assert_msg(a && b, "case %zu does not parse", i);
        ck_assert_msg(cs_json_equal(a, b) == equal_cases[i].equal &&
                          cs_json_equal(b, a) == equal_cases[i].equal,
                      "%s vs %s", equal_cases[i].a, equal_cases[i].b);
        json_decref(a);
        json_decref(b);
    }
    ck_assert(cs_json_equal(NULL, json_null()));
    ck_assert(!cs_json_equal(NULL, json_false()));
}
END_TEST

Suite *merge_patch_suite(void)
{
    Suite *s = suite_create("merge_patch");
    TCase *tc = tcase_create("rfc7396");

    tcase_add_test(tc, test_merge_patch_rfc7396_examples);
    tcase_add_test(tc, test_merge_patch_shares_what_it_leaves_and_copies_the_patch);
    tcase_add_test(tc, test_merge_patch_null_target_counts_as_null);
    tcase_add_test(tc, test_json_equal_compares_numbers_by_value);
    suite_add_tcase(s, tc);
    return s;
}
