/* Unit tests of lib/es.c without Elasticsearch: index names, versioned names, the index template
 * and the body that creates an index. */
#include "es.h"
#include "runner.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_index_name_is_lower_case_type_with_suffix)
{
    char buf[300];

    ck_assert(cs_es_index_name("NFD", buf, sizeof(buf)));
    ck_assert_str_eq(buf, "nfd_cases");
    ck_assert(cs_es_index_name("GrantOfRepresentation", buf, sizeof(buf)));
    ck_assert_str_eq(buf, "grantofrepresentation_cases");
    ck_assert(cs_es_index_name("itx-1-2.a_b", buf, sizeof(buf)));
    ck_assert_str_eq(buf, "itx-1-2.a_b_cases");
}
END_TEST

START_TEST(test_index_name_refuses_what_elasticsearch_refuses)
{
    char buf[300], big[300];
    const char *bad[] = {"",    "_x",  "-x",  "+x",   ".x",  "a b",        "a/b",
                         "a*b", "a,b", "a#b", "a\"b", "a:b", "caf\xc3\xa9"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(!cs_es_index_name(bad[i], buf, sizeof(buf)), "accepted \"%s\"", bad[i]);
        ck_assert_str_eq(buf, "");
    }
    memset(big, 'a', 250);
    big[250] = '\0';
    ck_assert(!cs_es_index_name(big, buf, sizeof(buf))); /* 256 bytes with the suffix */
    big[249] = '\0';
    ck_assert(cs_es_index_name(big, buf, sizeof(buf))); /* 255 */
    ck_assert(!cs_es_index_name("NFD", buf, 9));        /* no room for the NUL */
}
END_TEST

#define TYPE_OF(obj, f) json_string_value(json_object_get(json_object_get(obj, f), "type"))

/* The mappings of DESIGN §6, as a template's or an index body's "mappings". */
static void assert_case_mappings(json_t *mappings)
{
    json_t *props = json_object_get(mappings, "properties"), *notes;
    const char *ci[] = {"jurisdiction", "case_type_id", "state"};
    const char *dates[] = {"created_date", "last_modified", "last_state_modified_date"};
    const char *objects[] = {"data", "data_classification", "supplementary_data"};

    ck_assert_str_eq(TYPE_OF(props, "id"), "long");
    ck_assert_str_eq(TYPE_OF(props, "reference"), "long");
    for (size_t i = 0; i < 3; i++) {
        json_t *f = json_object_get(props, ci[i]);

        /* CCD compares these without letter case (its state filter sends lower case). */
        ck_assert_str_eq(TYPE_OF(props, ci[i]), "keyword");
        ck_assert_str_eq(json_string_value(json_object_get(f, "normalizer")), "lowercase");
        ck_assert_str_eq(TYPE_OF(json_object_get(f, "fields"), "keyword"), "keyword");
    }
    ck_assert_str_eq(TYPE_OF(props, "security_classification"), "keyword");
    for (size_t i = 0; i < 3; i++) {
        ck_assert_str_eq(TYPE_OF(props, dates[i]), "date");
        /* CCD's local date-times first: the form Elasticsearch renders dates in. */
        ck_assert_ptr_nonnull(
            strstr(json_string_value(json_object_get(json_object_get(props, dates[i]), "format")),
                   "strict_date_hour_minute_second_fraction||"));
    }
    for (size_t i = 0; i < 3; i++) {
        ck_assert_str_eq(TYPE_OF(props, objects[i]), "object");
        ck_assert_str_eq(
            json_string_value(json_object_get(json_object_get(props, objects[i]), "dynamic")),
            "true");
    }
    ck_assert_str_eq(TYPE_OF(props, "case_revision"), "long");
    ck_assert_str_eq(TYPE_OF(props, "version"), "long");
    ck_assert_str_eq(TYPE_OF(props, "resolved_ttl"), "date");
    ck_assert_str_eq(TYPE_OF(props, "case_type"), "keyword");
    notes = json_object_get(json_object_get(props, "notes"), "properties");
    ck_assert_str_eq(TYPE_OF(notes, "author"), "keyword");
    ck_assert_str_eq(TYPE_OF(notes, "body"), "text");
    ck_assert_str_eq(TYPE_OF(notes, "id"), "long");
    ck_assert_str_eq(TYPE_OF(notes, "created_date"), "date");
}

START_TEST(test_template_has_explicit_mappings_and_field_limit)
{
    char *body = cs_es_template_body(1234, 750);
    json_t *t = json_loads(body, 0, NULL), *patterns;

    ck_assert_ptr_nonnull(t);
    patterns = json_object_get(t, "index_patterns");
    ck_assert_str_eq(json_string_value(json_array_get(patterns, 0)), "*_cases");
    ck_assert_str_eq(json_string_value(json_array_get(patterns, 1)), "*_cases-*");
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_object_get(json_object_get(t, "template"), "settings"),
                         "index.mapping.total_fields.limit")),
                     1234);
    ck_assert_str_eq(
        json_string_value(json_object_get(
            json_object_get(json_object_get(t, "template"), "settings"), "index.refresh_interval")),
        "750ms");
    assert_case_mappings(json_object_get(json_object_get(t, "template"), "mappings"));
    json_decref(t);
    free(body);
}
END_TEST

/* An index is created with the template's mappings itself, and behind its alias. */
START_TEST(test_index_body_has_the_mappings_and_the_alias)
{
    char *body = cs_es_index_body(900, 500, "nfd_cases");
    json_t *b = json_loads(body, 0, NULL);

    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(b, "settings"),
                                                        "index.mapping.total_fields.limit")),
                     900);
    ck_assert_str_eq(json_string_value(
                         json_object_get(json_object_get(b, "settings"), "index.refresh_interval")),
                     "500ms");
    assert_case_mappings(json_object_get(b, "mappings"));
    ck_assert(json_is_true(json_object_get(
        json_object_get(json_object_get(b, "aliases"), "nfd_cases"), "is_write_index")));
    json_decref(b);
    free(body);
    body = cs_es_index_body(900, 500, NULL);
    b = json_loads(body, 0, NULL);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_null(json_object_get(b, "aliases"));
    json_decref(b);
    free(body);
}
END_TEST
#undef TYPE_OF

START_TEST(test_versioned_names_of_an_alias)
{
    char buf[300], big[300];

    ck_assert(cs_es_versioned_name("nfd_cases", 1, buf, sizeof(buf)));
    ck_assert_str_eq(buf, "nfd_cases-000001");
    ck_assert(cs_es_versioned_name("nfd_cases", 999999, buf, sizeof(buf)));
    ck_assert_str_eq(buf, "nfd_cases-999999");
    ck_assert(!cs_es_versioned_name("nfd_cases", 0, buf, sizeof(buf)));
    ck_assert(!cs_es_versioned_name("nfd_cases", 1000000, buf, sizeof(buf)));
    ck_assert(!cs_es_versioned_name("nfd_cases", 1, buf, 16)); /* no room for the NUL */
    ck_assert_str_eq(buf, "");
    memset(big, 'a', 248);
    big[248] = '\0';
    ck_assert(cs_es_versioned_name(big, 1, buf, sizeof(buf))); /* 255 bytes */
    big[248] = 'a';
    big[249] = '\0';
    ck_assert(!cs_es_versioned_name(big, 1, buf, sizeof(buf))); /* 256 */

    ck_assert_int_eq(cs_es_version_of("nfd_cases", "nfd_cases-000002"), 2);
    ck_assert_int_eq(cs_es_version_of("nfd_cases", "nfd_cases-123456"), 123456);
    ck_assert_int_eq(cs_es_version_of("nfd_cases", "nfd_cases"), 0);
    ck_assert_int_eq(cs_es_version_of("nfd_cases", "nfd_cases-00002"), 0);
    ck_assert_int_eq(cs_es_version_of("nfd_cases", "nfd_cases-0000a2"), 0);
    ck_assert_int_eq(cs_es_version_of("nfd_cases", "nfd_cases-x_cases-000001"), 0);
    ck_assert_int_eq(cs_es_version_of("nfd_cases", "pr_cases-000001"), 0);
}
END_TEST

Suite *es_suite(void)
{
    Suite *s = suite_create("es");
    TCase *tc = tcase_create("indices");

    tcase_add_test(tc, test_index_name_is_lower_case_type_with_suffix);
    tcase_add_test(tc, test_index_name_refuses_what_elasticsearch_refuses);
    tcase_add_test(tc, test_template_has_explicit_mappings_and_field_limit);
    tcase_add_test(tc, test_index_body_has_the_mappings_and_the_alias);
    tcase_add_test(tc, test_versioned_names_of_an_alias);
    suite_add_tcase(s, tc);
    return s;
}
