/* Unit tests of lib/bulk.c without Elasticsearch: bulk bodies and real bulk responses. */
#include "bulk.h"
#include "err.h"
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
    cs_bulk_body b = CS_BULK_BODY_INIT;
    const char *doc = "{\"reference\":1234,\"case_revision\":5}";

    ck_assert_int_eq(cs_bulk_add(&b, "nfd_cases", 1234, 5, doc, strlen(doc)), 0);
    ck_assert_int_eq(cs_bulk_add(&b, "pr_cases", 99, 1, "{}", 2), 0);
    ck_assert_uint_eq(b.count, 2);
    ck_assert_str_eq(b.buf, "{\"index\":{\"_index\":\"nfd_cases\",\"_id\":\"1234\",\"version\":5,"
                            "\"version_type\":\"external_gte\"}}\n"
                            "{\"reference\":1234,\"case_revision\":5}\n"
                            "{\"index\":{\"_index\":\"pr_cases\",\"_id\":\"99\",\"version\":1,"
                            "\"version_type\":\"external_gte\"}}\n"
                            "{}\n");
    ck_assert_uint_eq(b.len, strlen(b.buf));
    cs_bulk_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.count, 0);
    cs_bulk_free(&b);
}
END_TEST

START_TEST(test_bulk_add_keeps_each_document_on_one_line)
{
    cs_bulk_body b = CS_BULK_BODY_INIT;
    const char *doc = "{\n  \"a\": \"x\\ny\",\r\n  \"b\": 1\n}";
    char *nl;
    json_t *parsed;

    ck_assert_int_eq(cs_bulk_add(&b, "t_cases", 1, 1, doc, strlen(doc)), 0);
    nl = strchr(b.buf, '\n');
    ck_assert_ptr_nonnull(nl);
    /* Exactly two lines: the action and the source. */
    ck_assert_ptr_eq(strchr(nl + 1, '\n'), b.buf + b.len - 1);
    parsed = json_loadb(nl + 1, (size_t)(b.buf + b.len - 1 - (nl + 1)), 0, NULL);
    ck_assert_ptr_nonnull(parsed);
    ck_assert_str_eq(json_string_value(json_object_get(parsed, "a")), "x\ny");
    json_decref(parsed);
    cs_bulk_free(&b);
}
END_TEST

START_TEST(test_bulk_add_grows_past_the_first_allocation)
{
    cs_bulk_body b = CS_BULK_BODY_INIT;
    size_t n = 200000;
    char *doc = malloc(n + 1);

    memset(doc, ' ', n);
    doc[0] = '{';
    doc[n - 1] = '}';
    doc[n] = '\0';
    for (int i = 1; i <= 5; i++)
        ck_assert_int_eq(cs_bulk_add(&b, "t_cases", i, i, doc, n), 0);
    ck_assert_uint_eq(b.count, 5);
    ck_assert_uint_gt(b.len, 5 * n);
    ck_assert_uint_eq(strlen(b.buf), b.len);
    free(doc);
    cs_bulk_free(&b);
}
END_TEST

START_TEST(test_bulk_delete_writes_external_gte_action_without_source)
{
    cs_bulk_body b = CS_BULK_BODY_INIT;
    const char *doc = "{\"reference\":7,\"case_revision\":3}";

    ck_assert_int_eq(cs_bulk_add(&b, "nfd_cases", 7, 3, doc, strlen(doc)), 0);
    ck_assert_int_eq(cs_bulk_delete(&b, "nfd_cases", 1234, 6), 0);
    ck_assert_int_eq(cs_bulk_add(&b, "pr_cases", 99, 1, "{}", 2), 0);
    ck_assert_uint_eq(b.count, 3);
    ck_assert_str_eq(b.buf, "{\"index\":{\"_index\":\"nfd_cases\",\"_id\":\"7\",\"version\":3,"
                            "\"version_type\":\"external_gte\"}}\n"
                            "{\"reference\":7,\"case_revision\":3}\n"
                            "{\"delete\":{\"_index\":\"nfd_cases\",\"_id\":\"1234\",\"version\":6,"
                            "\"version_type\":\"external_gte\"}}\n"
                            "{\"index\":{\"_index\":\"pr_cases\",\"_id\":\"99\",\"version\":1,"
                            "\"version_type\":\"external_gte\"}}\n"
                            "{}\n");
    ck_assert_uint_eq(b.len, strlen(b.buf));
    cs_bulk_free(&b);
}
END_TEST

START_TEST(test_bulk_delete_alone_is_a_whole_request)
{
    cs_bulk_body b = CS_BULK_BODY_INIT;

    ck_assert_int_eq(cs_bulk_delete(&b, "t_cases", 1, 9223372036854775807LL), 0);
    ck_assert_uint_eq(b.count, 1);
    ck_assert_str_eq(b.buf,
                     "{\"delete\":{\"_index\":\"t_cases\",\"_id\":\"1\","
                     "\"version\":9223372036854775807,\"version_type\":\"external_gte\"}}\n");
    cs_bulk_free(&b);
}
END_TEST

START_TEST(test_parse_success_response)
{
    size_t len;
    char *body = fixture("success.json", &len);
    cs_bulk_item items[3];
    char err[256];

    ck_assert_int_eq(cs_bulk_parse(body, len, items, 3, err, sizeof(err)), 0);
    ck_assert_int_eq(items[0].status, 201);
    ck_assert_int_eq(items[0].outcome, CS_BULK_OK);
    ck_assert_int_eq(items[2].outcome, CS_BULK_OK);
    ck_assert_ptr_null(items[1].reason);
    cs_bulk_items_clear(items, 3);
    free(body);
}
END_TEST

START_TEST(test_parse_version_conflict_is_success)
{
    size_t len;
    char *body = fixture("conflict.json", &len);
    cs_bulk_item items[2];
    char err[256];

    ck_assert_int_eq(cs_bulk_parse(body, len, items, 2, err, sizeof(err)), 0);
    ck_assert_int_eq(items[0].status, 409);
    ck_assert_int_eq(items[0].outcome, CS_BULK_CONFLICT);
    ck_assert_ptr_nonnull(strstr(items[0].reason, "version_conflict_engine_exception"));
    ck_assert_int_eq(items[1].outcome, CS_BULK_OK);
    cs_bulk_items_clear(items, 2);
    free(body);
}
END_TEST

START_TEST(test_parse_unfiltered_response)
{
    size_t len;
    char *body = fixture("conflict_full.json", &len);
    cs_bulk_item items[2];
    char err[256];

    ck_assert_int_eq(cs_bulk_parse(body, len, items, 2, err, sizeof(err)), 0);
    ck_assert_int_eq(items[0].outcome, CS_BULK_CONFLICT);
    ck_assert_int_eq(items[1].status, 200);
    ck_assert_int_eq(items[1].outcome, CS_BULK_OK);
    cs_bulk_items_clear(items, 2);
    free(body);
}
END_TEST

START_TEST(test_parse_429_item_is_retried)
{
    size_t len;
    char *body = fixture("rejected_429.json", &len);
    cs_bulk_item items[2];
    char err[256];

    ck_assert_int_eq(cs_bulk_parse(body, len, items, 2, err, sizeof(err)), 0);
    ck_assert_int_eq(items[0].status, 429);
    ck_assert_int_eq(items[0].outcome, CS_BULK_RETRY);
    ck_assert_ptr_nonnull(strstr(items[0].reason, "es_rejected_execution_exception"));
    ck_assert_int_eq(items[1].outcome, CS_BULK_OK);
    cs_bulk_items_clear(items, 2);
    free(body);
}
END_TEST

START_TEST(test_parse_mapping_error_is_rejected_with_reason)
{
    size_t len;
    char *body = fixture("mapper_parsing.json", &len);
    cs_bulk_item items[3];
    char err[256];

    ck_assert_int_eq(cs_bulk_parse(body, len, items, 3, err, sizeof(err)), 0);
    ck_assert_int_eq(items[0].outcome, CS_BULK_OK);
    ck_assert_int_eq(items[1].status, 400);
    ck_assert_int_eq(items[1].outcome, CS_BULK_REJECTED);
    ck_assert_ptr_nonnull(strstr(items[1].reason, "created_date"));
    ck_assert_ptr_nonnull(strstr(items[1].reason, "caused by"));
    ck_assert_int_eq(items[2].outcome, CS_BULK_OK);
    cs_bulk_items_clear(items, 3);
    free(body);
}
END_TEST

START_TEST(test_parse_object_vs_string_conflict_is_rejected)
{
    size_t len;
    char *body = fixture("mapper_object_string.json", &len);
    cs_bulk_item items[1];
    char err[256];

    ck_assert_int_eq(cs_bulk_parse(body, len, items, 1, err, sizeof(err)), 0);
    ck_assert_int_eq(items[0].status, 400);
    ck_assert_int_eq(items[0].outcome, CS_BULK_REJECTED);
    cs_bulk_items_clear(items, 1);
    free(body);
}
END_TEST

START_TEST(test_parse_refuses_wrong_item_count_and_garbage)
{
    size_t len;
    char *body = fixture("success.json", &len);
    cs_bulk_item items[4];
    char err[256];

    ck_assert_int_eq(cs_bulk_parse(body, len, items, 4, err, sizeof(err)), CS_ERR);
    ck_assert_ptr_nonnull(strstr(err, "3 items for 4"));
    ck_assert_int_eq(cs_bulk_parse("<html>", 6, items, 1, err, sizeof(err)), CS_ERR);
    ck_assert_int_eq(cs_bulk_parse("{\"items\":[{\"index\":{}}]}", 24, items, 1, err, sizeof(err)),
                     CS_ERR);
    free(body);
}
END_TEST

START_TEST(test_parse_delete_not_found_is_done_and_index_404_is_retried)
{
    size_t len;
    char *body = fixture("delete.json", &len);
    cs_bulk_item items[7];
    char err[256];

    ck_assert_int_eq(cs_bulk_parse(body, len, items, 7, err, sizeof(err)), 0);
    /* deleted */
    ck_assert_int_eq(items[0].status, 200);
    ck_assert_int_eq(items[0].outcome, CS_BULK_OK);
    ck_assert_ptr_null(items[0].reason);
    /* nothing to delete: done, and no reason to report */
    ck_assert_int_eq(items[1].status, 404);
    ck_assert_int_eq(items[1].outcome, CS_BULK_OK);
    ck_assert_ptr_null(items[1].reason);
    /* no index (auto-creation off): the document is not there either */
    ck_assert_int_eq(items[2].status, 404);
    ck_assert_int_eq(items[2].outcome, CS_BULK_OK);
    /* a lower revision after the delete: refused, as a newer document would refuse it */
    ck_assert_int_eq(items[3].status, 409);
    ck_assert_int_eq(items[3].outcome, CS_BULK_CONFLICT);
    ck_assert_int_eq(items[4].outcome, CS_BULK_CONFLICT);
    ck_assert_int_eq(items[5].outcome, CS_BULK_RETRY);
    ck_assert_ptr_nonnull(strstr(items[5].reason, "es_rejected_execution_exception"));
    /* the same 404 on an index action is a state an operator fixes: retried */
    ck_assert_int_eq(items[6].outcome, CS_BULK_RETRY);
    cs_bulk_items_clear(items, 7);
    free(body);
}
END_TEST

START_TEST(test_classify_delete_item_statuses)
{
    ck_assert_int_eq(cs_bulk_classify_delete(200, NULL), CS_BULK_OK);
    ck_assert_int_eq(cs_bulk_classify_delete(404, NULL), CS_BULK_OK);
    ck_assert_int_eq(cs_bulk_classify_delete(404, "index_not_found_exception"), CS_BULK_OK);
    ck_assert_int_eq(cs_bulk_classify_delete(409, "version_conflict_engine_exception"),
                     CS_BULK_CONFLICT);
    ck_assert_int_eq(cs_bulk_classify_delete(429, NULL), CS_BULK_RETRY);
    ck_assert_int_eq(cs_bulk_classify_delete(503, NULL), CS_BULK_RETRY);
    ck_assert_int_eq(cs_bulk_classify_delete(403, "cluster_block_exception"), CS_BULK_RETRY);
    ck_assert_int_eq(cs_bulk_classify_delete(400, "illegal_argument_exception"), CS_BULK_REJECTED);
}
END_TEST

START_TEST(test_classify_item_statuses)
{
    ck_assert_int_eq(cs_bulk_classify(200, NULL), CS_BULK_OK);
    ck_assert_int_eq(cs_bulk_classify(201, NULL), CS_BULK_OK);
    ck_assert_int_eq(cs_bulk_classify(409, "version_conflict_engine_exception"), CS_BULK_CONFLICT);
    ck_assert_int_eq(cs_bulk_classify(429, "es_rejected_execution_exception"), CS_BULK_RETRY);
    ck_assert_int_eq(cs_bulk_classify(500, NULL), CS_BULK_RETRY);
    ck_assert_int_eq(cs_bulk_classify(503, "unavailable_shards_exception"), CS_BULK_RETRY);
    ck_assert_int_eq(cs_bulk_classify(403, "cluster_block_exception"), CS_BULK_RETRY);
    ck_assert_int_eq(cs_bulk_classify(404, "index_not_found_exception"), CS_BULK_RETRY);
    ck_assert_int_eq(cs_bulk_classify(400, "mapper_parsing_exception"), CS_BULK_REJECTED);
    ck_assert_int_eq(cs_bulk_classify(400, "document_parsing_exception"), CS_BULK_REJECTED);
    ck_assert_int_eq(cs_bulk_classify(400, "illegal_argument_exception"), CS_BULK_REJECTED);
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
    tcase_add_test(body, test_bulk_delete_writes_external_gte_action_without_source);
    tcase_add_test(body, test_bulk_delete_alone_is_a_whole_request);
    tcase_add_test(resp, test_parse_success_response);
    tcase_add_test(resp, test_parse_version_conflict_is_success);
    tcase_add_test(resp, test_parse_unfiltered_response);
    tcase_add_test(resp, test_parse_429_item_is_retried);
    tcase_add_test(resp, test_parse_mapping_error_is_rejected_with_reason);
    tcase_add_test(resp, test_parse_object_vs_string_conflict_is_rejected);
    tcase_add_test(resp, test_parse_refuses_wrong_item_count_and_garbage);
    tcase_add_test(resp, test_classify_item_statuses);
    tcase_add_test(resp, test_parse_delete_not_found_is_done_and_index_404_is_retried);
    tcase_add_test(resp, test_classify_delete_item_statuses);
    suite_add_tcase(s, body);
    suite_add_tcase(s, resp);
    return s;
}
