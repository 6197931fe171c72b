/* Unit tests of lib/es.c without Elasticsearch: index names and the index template. */
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

START_TEST(test_template_has_explicit_mappings_and_field_limit)
{
    char *body = cs_es_template_body(1234);
    json_t *t = json_loads(body, 0, NULL), *props;

    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(t, "index_patterns"), 0)),
                     "*_cases");
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_object_get(json_object_get(t, "template"), "settings"),
                         "index.mapping.total_fields.limit")),
                     1234);
    props =
        json_object_get(json_object_get(json_object_get(t, "template"), "mappings"), "properties");
#define TYPE_OF(obj, f) json_string_value(json_object_get(json_object_get(obj, f), "type"))
    ck_assert_str_eq(TYPE_OF(props, "reference"), "long");
    ck_assert_str_eq(TYPE_OF(props, "case_type"), "keyword");
    ck_assert_str_eq(TYPE_OF(props, "jurisdiction"), "keyword");
    ck_assert_str_eq(TYPE_OF(props, "state"), "keyword");
    ck_assert_str_eq(TYPE_OF(props, "security_classification"), "keyword");
    ck_assert_str_eq(TYPE_OF(props, "version"), "long");
    ck_assert_str_eq(TYPE_OF(props, "case_revision"), "long");
    ck_assert_str_eq(TYPE_OF(props, "created_date"), "date");
    ck_assert_str_eq(TYPE_OF(props, "last_modified"), "date");
    ck_assert_str_eq(TYPE_OF(props, "data"), "object");
    json_t *notes = json_object_get(json_object_get(props, "notes"), "properties");
    ck_assert_str_eq(TYPE_OF(notes, "author"), "keyword");
    ck_assert_str_eq(TYPE_OF(notes, "body"), "text");
    ck_assert_str_eq(TYPE_OF(notes, "id"), "long");
    ck_assert_str_eq(TYPE_OF(notes, "created_date"), "date");
#undef TYPE_OF
    json_decref(t);
    free(body);
}
END_TEST

Suite *es_suite(void)
{
    Suite *s = suite_create("es");
    TCase *tc = tcase_create("indices");

    tcase_add_test(tc, test_index_name_is_lower_case_type_with_suffix);
    tcase_add_test(tc, test_index_name_refuses_what_elasticsearch_refuses);
    tcase_add_test(tc, test_template_has_explicit_mappings_and_field_limit);
    suite_add_tcase(s, tc);
    return s;
}
