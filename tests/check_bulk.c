/* Unit tests of lib/es.c without Elasticsearch: bulk bodies, real bulk responses, the template. */
#include "err.h"
#include "es.h"
#include "fixture.h"
#include "runner.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads a fixture of tests/fixtures/bulk; caller frees. */
static char *fixture(const char *name, size_t *len)
{
    char rel[256];

    snprintf(rel, sizeof(rel), "bulk/%s", name);
    return cs_fixture_read(rel, len);
}

START_TEST(test_bulk_add_writes_external_gte_action_and_source)
{
    cs_es_bulk b = CS_ES_BULK_INIT;
    const char *doc = "{\"reference\":1234,\"case_revision\":5}";

    ck_assert_int_eq(cs_es_bulk_add(&b, "nfd_cases", 1234, 5, doc, strlen(doc)), 0);
    ck_assert_int_eq(cs_es_bulk_add(&b, "pr_cases", 99, 1, "{}", 2), 0);
    ck_assert_uint_eq(b.count, 2);
    ck_assert_str_eq(b.buf, "{\"index\":{\"_index\":\"nfd_cases\",\"_id\":\"1234\",\"version\":5,"
                            "\"version_type\":\"external_gte\"}}\n"
                            "{\"reference\":1234,\"case_revision\":5}\n"
                            "{\"index\":{\"_index\":\"pr_cases\",\"_id\":\"99\",\"version\":1,"
                            "\"version_type\":\"external_gte\"}}\n"
                            "{}\n");
    ck_assert_uint_eq(b.len, strlen(b.buf));
    cs_es_bulk_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.count, 0);
    cs_es_bulk_free(&b);
}
END_TEST

START_TEST(test_bulk_add_keeps_each_document_on_one_line)
{
    cs_es_bulk b = CS_ES_BULK_INIT;
    const char *doc = "{\n  \"a\": \"x\\ny\",\r\n  \"b\": 1\n}";
    char *nl;
    json_t *parsed;

    ck_assert_int_eq(cs_es_bulk_add(&b, "t_cases", 1, 1, doc, strlen(doc)), 0);
    nl = strchr(b.buf, '\n');
    ck_assert_ptr_nonnull(nl);
    /* Exactly two lines: the action and the source. */
    ck_assert_ptr_eq(strchr(nl + 1, '\n'), b.buf + b.len - 1);
    parsed = json_loadb(nl + 1, (size_t)(b.buf + b.len - 1 - (nl + 1)), 0, NULL);
    ck_assert_ptr_nonnull(parsed);
    ck_assert_str_eq(json_string_value(json_object_get(parsed, "a")), "x\ny");
    json_decref(parsed);
    cs_es_bulk_free(&b);
}
END_TEST

START_TEST(test_bulk_add_grows_past_the_first_allocation)
{
    cs_es_bulk b = CS_ES_BULK_INIT;
    size_t n = 200000;
    char *doc = malloc(n + 1);

    memset(doc, ' ', n);
    doc[0] = '{';
    doc[n - 1] = '}';
    doc[n] = '\0';
    for (int i = 1; i <= 5; i++)
        ck_assert_int_eq(cs_es_bulk_add(&b, "t_cases", i, i, doc, n), 0);
    ck_assert_uint_eq(b.count, 5);
    ck_assert_uint_gt(b.len, 5 * n);
    ck_assert_uint_eq(strlen(b.buf), b.len);
    free(doc);
    cs_es_bulk_free(&b);
}
END_TEST

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

START_TEST(test_parse_success_response)
{
    size_t len;
    char *body = fixture("success.json", &len);
    cs_es_item items[3];
    char err[256];

    ck_assert_int_eq(cs_es_bulk_parse(body, len, items, 3, err, sizeof(err)), 0);
    ck_assert_int_eq(items[0].status, 201);
    ck_assert_int_eq(items[0].outcome, CS_ES_OK);
    ck_assert_int_eq(items[2].outcome, CS_ES_OK);
    ck_assert_ptr_null(items[1].reason);
    cs_es_items_clear(items, 3);
    free(body);
}
END_TEST

START_TEST(test_parse_version_conflict_is_success)
{
    size_t len;
    char *body = fixture("conflict.json", &len);
    cs_es_item items[2];
    char err[256];

    ck_assert_int_eq(cs_es_bulk_parse(body, len, items, 2, err, sizeof(err)), 0);
    ck_assert_int_eq(items[0].status, 409);
    ck_assert_int_eq(items[0].outcome, CS_ES_CONFLICT);
    ck_assert_ptr_nonnull(strstr(items[0].reason, "version_conflict_engine_exception"));
    ck_assert_int_eq(items[1].outcome, CS_ES_OK);
    cs_es_items_clear(items, 2);
    free(body);
}
END_TEST

START_TEST(test_parse_unfiltered_response)
{
    size_t len;
    char *body = fixture("conflict_full.json", &len);
    cs_es_item items[2];
    char err[256];

    ck_assert_int_eq(cs_es_bulk_parse(body, len, items, 2, err, sizeof(err)), 0);
    ck_assert_int_eq(items[0].outcome, CS_ES_CONFLICT);
    ck_assert_int_eq(items[1].status, 200);
    ck_assert_int_eq(items[1].outcome, CS_ES_OK);
    cs_es_items_clear(items, 2);
    free(body);
}
END_TEST

START_TEST(test_parse_429_item_is_retried)
{
    size_t len;
    char *body = fixture("rejected_429.json", &len);
    cs_es_item items[2];
    char err[256];

    ck_assert_int_eq(cs_es_bulk_parse(body, len, items, 2, err, sizeof(err)), 0);
    ck_assert_int_eq(items[0].status, 429);
    ck_assert_int_eq(items[0].outcome, CS_ES_RETRY);
    ck_assert_ptr_nonnull(strstr(items[0].reason, "es_rejected_execution_exception"));
    ck_assert_int_eq(items[1].outcome, CS_ES_OK);
    cs_es_items_clear(items, 2);
    free(body);
}
END_TEST

START_TEST(test_parse_mapping_error_is_rejected_with_reason)
{
    size_t len;
    char *body = fixture("mapper_parsing.json", &len);
    cs_es_item items[3];
    char err[256];

    ck_assert_int_eq(cs_es_bulk_parse(body, len, items, 3, err, sizeof(err)), 0);
    ck_assert_int_eq(items[0].outcome, CS_ES_OK);
    ck_assert_int_eq(items[1].status, 400);
    ck_assert_int_eq(items[1].outcome, CS_ES_REJECTED);
    ck_assert_ptr_nonnull(strstr(items[1].reason, "created_date"));
    ck_assert_ptr_nonnull(strstr(items[1].reason, "caused by"));
    ck_assert_int_eq(items[2].outcome, CS_ES_OK);
    cs_es_items_clear(items, 3);
    free(body);
}
END_TEST

START_TEST(test_parse_object_vs_string_conflict_is_rejected)
{
    size_t len;
    char *body = fixture("mapper_object_string.json", &len);
    cs_es_item items[1];
    char err[256];

    ck_assert_int_eq(cs_es_bulk_parse(body, len, items, 1, err, sizeof(err)), 0);
    ck_assert_int_eq(items[0].status, 400);
    ck_assert_int_eq(items[0].outcome, CS_ES_REJECTED);
    cs_es_items_clear(items, 1);
    free(body);
}
END_TEST

START_TEST(test_parse_refuses_wrong_item_count_and_garbage)
{
    size_t len;
    char *body = fixture("success.json", &len);
    cs_es_item items[4];
    char err[256];

    ck_assert_int_eq(cs_es_bulk_parse(body, len, items, 4, err, sizeof(err)), CS_ERR);
    ck_assert_ptr_nonnull(strstr(err, "3 items for 4"));
    ck_assert_int_eq(cs_es_bulk_parse("<html>", 6, items, 1, err, sizeof(err)), CS_ERR);
    ck_assert_int_eq(
        cs_es_bulk_parse("{\"items\":[{\"index\":{}}]}", 24, items, 1, err, sizeof(err)), CS_ERR);
    free(body);
}
END_TEST

START_TEST(test_classify_item_statuses)
{
    ck_assert_int_eq(cs_es_classify(200, NULL), CS_ES_OK);
    ck_assert_int_eq(cs_es_classify(201, NULL), CS_ES_OK);
    ck_assert_int_eq(cs_es_classify(409, "version_conflict_engine_exception"), CS_ES_CONFLICT);
    ck_assert_int_eq(cs_es_classify(429, "es_rejected_execution_exception"), CS_ES_RETRY);
    ck_assert_int_eq(cs_es_classify(500, NULL), CS_ES_RETRY);
    ck_assert_int_eq(cs_es_classify(503, "unavailable_shards_exception"), CS_ES_RETRY);
    ck_assert_int_eq(cs_es_classify(403, "cluster_block_exception"), CS_ES_RETRY);
    ck_assert_int_eq(cs_es_classify(404, "index_not_found_exception"), CS_ES_RETRY);
    ck_assert_int_eq(cs_es_classify(400, "mapper_parsing_exception"), CS_ES_REJECTED);
    ck_assert_int_eq(cs_es_classify(400, "document_parsing_exception"), CS_ES_REJECTED);
    ck_assert_int_eq(cs_es_classify(400, "illegal_argument_exception"), CS_ES_REJECTED);
}
END_TEST

Suite *bulk_suite(void)
{
    Suite *s = suite_create("bulk");
    TCase *body = tcase_create("body");
    TCase *resp = tcase_create("response");

    tcase_add_test(body, test_bulk_add_writes_external_gte_action_and_source);
    tcase_add_test(body, test_bulk_add_keeps_each_document_on_one_line);
    tcase_add_test(body, test_bulk_add_grows_past_the_first_allocation);
    tcase_add_test(body, test_index_name_is_lower_case_type_with_suffix);
    tcase_add_test(body, test_index_name_refuses_what_elasticsearch_refuses);
    tcase_add_test(body, test_template_has_explicit_mappings_and_field_limit);
    tcase_add_test(resp, test_parse_success_response);
    tcase_add_test(resp, test_parse_version_conflict_is_success);
    tcase_add_test(resp, test_parse_unfiltered_response);
    tcase_add_test(resp, test_parse_429_item_is_retried);
    tcase_add_test(resp, test_parse_mapping_error_is_rejected_with_reason);
    tcase_add_test(resp, test_parse_object_vs_string_conflict_is_rejected);
    tcase_add_test(resp, test_parse_refuses_wrong_item_count_and_garbage);
    tcase_add_test(resp, test_classify_item_statuses);
    suite_add_tcase(s, body);
    suite_add_tcase(s, resp);
    return s;
}
