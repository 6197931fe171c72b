/* Unit tests of lib/batch.c without services: superseding, outcomes, dead letters, offsets, and
 * attempts (413/400 split, retries, backoff) through a fake Elasticsearch. */
#include "batch.h"
#include "bulk.h"
#include "err.h"
#include "runner.h"
#include "utf8.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The internal id of case ref in these tests: another number than the reference, as in
 * PostgreSQL, so that a test sees which of the two becomes the _id. */
#define ID_OF(ref) ((ref) + 500000)

/* A change document of case ref at revision rev. Caller frees. */
static char *change(long long ref, long long rev, const char *type)
{
    char *s = malloc(256);

    snprintf(s, 256,
             "{\"id\": %lld, \"reference\": %lld, \"case_type_id\": \"%s\", "
             "\"case_revision\": %lld, \"state\": \"Open\", \"data\": {}}",
             ID_OF(ref), ref, type, rev);
    return s;
}

static void add(cs_batch *b, int partition, long long offset, long long ref, long long rev)
{
    char *doc = change(ref, rev, "NFD");

    ck_assert_int_eq(cs_batch_add(b, partition, offset, NULL, 0, doc, strlen(doc)), 0);
    free(doc);
}

/* Items all of one outcome, for a request of n actions. */
static void items_of(cs_bulk_item *items, size_t n, int status)
{
    memset(items, 0, n * sizeof(*items));
    for (size_t i = 0; i < n; i++) {
        items[i].status = status;
        items[i].outcome = cs_bulk_classify(status, NULL);
    }
}

START_TEST(test_change_parse_reads_id_reference_type_and_revision)
{
    cs_change c;
    char err[256];
    bool is_json;
    const char *doc = "{\"id\":\"99\",\"reference\":\"1234\",\"case_type_id\":\"NFD\","
                      "\"case_type\":\"Other\",\"case_revision\":7}";

    ck_assert_int_eq(cs_change_parse(doc, strlen(doc), &c, &is_json, err, sizeof(err)), 0);
    ck_assert_int_eq(c.reference, 1234);
    ck_assert_int_eq(c.id, 99);
    ck_assert_int_eq(c.revision, 7);
    ck_assert_str_eq(c.index, "nfd_cases"); /* case_type_id wins over case_type */
    ck_assert(is_json);
}
END_TEST

/* Changes published before 007 name the case type case_type and carry no id. */
START_TEST(test_change_parse_reads_a_change_from_before_the_case_id)
{
    cs_change c;
    char err[256];
    bool is_json;
    const char *doc = "{\"reference\":1234,\"case_type\":\"PR\",\"case_revision\":2}";

    ck_assert_int_eq(cs_change_parse(doc, strlen(doc), &c, &is_json, err, sizeof(err)), 0);
    ck_assert_int_eq(c.reference, 1234);
    ck_assert_int_eq(c.id, 0);
    ck_assert_int_eq(c.revision, 2);
    ck_assert_str_eq(c.index, "pr_cases");
}
END_TEST

START_TEST(test_change_parse_refuses_unusable_documents)
{
    const char *bad[] = {
        "",
        "not json",
        "[1]",
        "{\"case_type_id\":\"NFD\",\"case_revision\":1}",
        "{\"reference\":0,\"case_type_id\":\"NFD\",\"case_revision\":1}",
        "{\"reference\":\"12x\",\"case_type_id\":\"NFD\",\"case_revision\":1}",
        "{\"reference\":1,\"case_type_id\":\"NFD\"}",
        "{\"reference\":1,\"case_type_id\":\"NFD\",\"case_revision\":\"1\"}",
        "{\"reference\":1,\"case_revision\":1}",
        "{\"reference\":1,\"case_type_id\":7,\"case_revision\":1}",
        "{\"reference\":1,\"case_type_id\":\"a b\",\"case_revision\":1}",
        "{\"id\":0,\"reference\":1,\"case_type_id\":\"NFD\",\"case_revision\":1}",
        "{\"id\":-4,\"reference\":1,\"case_type_id\":\"NFD\",\"case_revision\":1}",
        "{\"id\":\"4a\",\"reference\":1,\"case_type_id\":\"NFD\",\"case_revision\":1}",
        "{\"id\":1.5,\"reference\":1,\"case_type_id\":\"NFD\",\"case_revision\":1}"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cs_change c;
        char err[256] = "";
        bool is_json;

        ck_assert_int_eq(cs_change_parse(bad[i], strlen(bad[i]), &c, &is_json, err, sizeof(err)),
                         CS_ERR_INVALID);
        ck_assert_msg(err[0] != '\0', "no reason for %s", bad[i]);
        ck_assert_int_eq(is_json, i >= 2);
    }
}
END_TEST

/* The change document is read without building a tree when it can be (change_scan), and with
 * jansson otherwise: both give what jansson alone gave. Documents jansson refuses anywhere in
 * them (not only at the top) stay refused as not JSON. */
START_TEST(test_change_parse_without_a_tree_agrees_with_jansson)
{
#define HEAD "{\"id\":9,\"reference\":5,\"case_type_id\":\"NFD\",\"case_revision\":3"
    const char *not_json[] = {
        HEAD "} x",
        HEAD ",\"data\":{\"n\":99999999999999999999}}",
        HEAD ",\"data\":{\"n\":-99999999999999999999}}",
        HEAD ",\"data\":{\"n\":1e400}}",
        HEAD ",\"data\":{\"s\":\"a\\u0000b\"}}",
        HEAD ",\"data\":{\"s\":\"\\ud800\"}}",
        HEAD ",\"data\":{\"s\":\"\xc0\xaf\"}}",
        HEAD ",\"data\":{\"s\":\"\xed\xa0\x80\"}}",
        HEAD ",\"data\":{\"s\":\"\xf4\x90\x80\x80\"}}",
        HEAD ",\"data\":{\"s\":\"tab\there\"}}",
        HEAD ",\"data\":{\"n\":01}}",
        HEAD ",\"data\":{\"n\":1.}}",
        HEAD ",\"data\":[1,]}",
        HEAD ",\"data\":{\"a\":1,}}",
        HEAD ",\"data\":{\"a\" 1}}",
        HEAD ",\"data\":tru}",
        HEAD ",\"data\":\"open}",
        HEAD ",}",
        "\xef\xbb\xbf" HEAD "}",
    };
    struct {
        const char *doc;
        int64_t reference, id, revision;
        const char *index;
    } ok[] = {
        {HEAD "}", 5, 9, 3, "nfd_cases"},
        {" \n\t\r" HEAD
         ",\"data\":{\"n\":[1.5,-0,0.25,true,false,null,{}],\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t"
         "\\u00e9\\ud83d\\ude00 caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}} \n",
         5, 9, 3, "nfd_cases"},
        {HEAD ",\"reference\":6}", 6, 9, 3, "nfd_cases"},
        {"{\"refer\\u0065nce\":7,\"case_type_id\":\"NFD\",\"case_revision\":1}", 7, 0, 1,
         "nfd_cases"},
        {"{\"reference\":\"007\",\"id\":null,\"case_type_id\":\"N\\u0046D\",\"case_revision\":-0}",
         7, 0, 0, "nfd_cases"},
        {"{\"reference\":1,\"case_type_id\":\"NFD\",\"case_revision\":1,\"d\":{\"n\":1e3}}", 1, 0,
         1, "nfd_cases"},
        {"{\"reference\":999999999999999999,\"id\":9223372036854775807,\"case_type_id\":\"NFD\","
         "\"case_revision\":1}",
         999999999999999999LL, INT64_MAX, 1, "nfd_cases"},
    };
    char deep[8200];
    size_t n = 0;

    for (size_t i = 0; i < sizeof(not_json) / sizeof(not_json[0]); i++) {
        cs_change c;
        char err[256] = "";
        bool is_json = true;

        ck_assert_msg(cs_change_parse(not_json[i], strlen(not_json[i]), &c, &is_json, err,
                                      sizeof(err)) == CS_ERR_INVALID,
                      "accepted %s", not_json[i]);
        ck_assert_msg(!is_json && strstr(err, "not JSON"), "%s: %s", not_json[i], err);
    }
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        cs_change c;
        char err[256] = "";
        bool is_json = false;

        ck_assert_msg(
            cs_change_parse(ok[i].doc, strlen(ok[i].doc), &c, &is_json, err, sizeof(err)) == CS_OK,
            "refused %s: %s", ok[i].doc, err);
        ck_assert(is_json);
        ck_assert_int_eq(c.reference, ok[i].reference);
        ck_assert_int_eq(c.id, ok[i].id);
        ck_assert_int_eq(c.revision, ok[i].revision);
        ck_assert_str_eq(c.index, ok[i].index);
    }
    /* Nested 1,500 deep: past the scanner's depth, within jansson's. */
    n += (size_t)snprintf(deep, sizeof(deep), HEAD ",\"d\":");
    for (int i = 0; i < 1500; i++)
        deep[n++] = '[';
    for (int i = 0; i < 1500; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = '\0';
    {
        cs_change c;
        char err[256] = "";
        bool is_json = false;

        ck_assert_int_eq(cs_change_parse(deep, n, &c, &is_json, err, sizeof(err)), CS_OK);
        ck_assert_int_eq(c.reference, 5);
    }
#undef HEAD
}
END_TEST

/* jansson skips a raw NUL after a number or a literal; Elasticsearch refuses
 * the document (tests/fuzz/corpus/change/regress-nul-after-number). */
START_TEST(test_change_parse_refuses_a_nul_byte)
{
    static const char after_number[] =
        "{\"reference\":1234\0,\"case_type_id\":\"NFD\",\"case_revision\":1}";
    static const char after_literal[] =
        "{\"reference\":1234,\"case_type_id\":\"NFD\",\"case_revision\":1,\"x\":true\0}";
    const char *docs[] = {after_number, after_literal};
    const size_t lens[] = {sizeof(after_number) - 1, sizeof(after_literal) - 1};
    cs_batch *b = cs_batch_new(NULL);
    cs_bulk_body body = CS_BULK_BODY_INIT;
    cs_dead_letter *dl = NULL;

    for (size_t i = 0; i < 2; i++) {
        cs_change c;
        char err[256] = "";
        bool is_json = true;

        ck_assert_int_eq(cs_change_parse(docs[i], lens[i], &c, &is_json, err, sizeof(err)),
                         CS_ERR_INVALID);
        ck_assert_ptr_nonnull(strstr(err, "NUL byte"));
        ck_assert(!is_json);
        ck_assert_int_eq(cs_batch_add(b, 0, (int64_t)i, "1234", 4, docs[i], lens[i]), 0);
    }
    cs_batch_begin_attempt(b, NULL);
    ck_assert_int_eq(cs_batch_build(b, &body, 100), 0);
    ck_assert_uint_eq(cs_batch_dead_letters(b, "case-changes", &dl), 2);
    free(dl);
    cs_bulk_free(&body);
    cs_batch_free(b);
}
END_TEST

/* A reason that quotes the input must not cut a character in two: PostgreSQL
 * refuses it, and a dead letter that cannot be written stops the indexer
 * (tests/fuzz/corpus/change/regress-reason-cut-utf8*: jansson quotes the
 * token it stopped in, cut inside a character, before its closing quote). */
START_TEST(test_change_parse_reason_is_utf8)
{
    char type[200] = "a", doc[400];
    const char *docs[] = {"\"\xd5\x9c+\\\xd5\x9c\xea", "{\"refere\xdf\x99\\\xdf\x99_", doc};

    for (int i = 0; i < 60; i++)
        strcat(type, "\xc3\xa9"); /* e-acute: 121 bytes, cut at 100 */
    snprintf(doc, sizeof(doc), "{\"reference\":1,\"case_revision\":1,\"case_type_id\":\"%s\"}",
             type);
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        cs_change c;
        char err[256] = "", repaired[256];
        bool is_json;

        ck_assert_int_eq(cs_change_parse(docs[i], strlen(docs[i]), &c, &is_json, err, sizeof(err)),
                         CS_ERR_INVALID);
        memcpy(repaired, err, sizeof(err));
        ck_assert_msg(strcmp(cs_utf8_repair(repaired), err) == 0, "reason is not UTF-8: %s", err);
    }
}
END_TEST

START_TEST(test_batch_sends_only_the_highest_revision_of_a_case)
{
    cs_batch *b = cs_batch_new(NULL);
    cs_bulk_body body = CS_BULK_BODY_INIT;
    cs_batch_stats st = {0};
    cs_bulk_item items[2];

    add(b, 0, 10, 1000, 7); /* 7 arrives first, then 5: 7 must win */
    add(b, 0, 11, 1000, 5);
    add(b, 0, 12, 2000, 1);
    add(b, 0, 13, 1000, 6);
    ck_assert_uint_eq(cs_batch_count(b), 4);
    cs_batch_begin_attempt(b, &st);
    ck_assert_uint_eq(st.superseded, 2);
    ck_assert_int_eq(cs_batch_build(b, &body, 100), 2);
    /* The _id is the case's id, not its reference. */
    ck_assert_ptr_nonnull(strstr(body.buf, "\"_id\":\"501000\",\"version\":7,"));
    ck_assert_ptr_null(strstr(body.buf, "\"version\":5"));
    ck_assert_ptr_null(strstr(body.buf, "\"version\":6"));
    items_of(items, 2, 201);
    cs_batch_apply(b, items, 2, &st);
    ck_assert_int_eq(cs_batch_build(b, &body, 100), 0);
    ck_assert(!cs_batch_pending(b));
    ck_assert(cs_batch_resolved(b));
    cs_bulk_free(&body);
    cs_batch_free(b);
}
END_TEST

START_TEST(test_batch_same_case_in_two_partitions_is_sent_twice)
{
    cs_batch *b = cs_batch_new(NULL);
    cs_bulk_body body = CS_BULK_BODY_INIT;

    add(b, 0, 1, 1000, 7);
    add(b, 1, 1, 1000, 8);
    cs_batch_begin_attempt(b, NULL);
    ck_assert_int_eq(cs_batch_build(b, &body, 100), 2);
    cs_bulk_free(&body);
    cs_batch_free(b);
}
END_TEST

START_TEST(test_batch_conflict_counts_as_acknowledged)
{
    cs_batch *b = cs_batch_new(NULL);
    cs_bulk_body body = CS_BULK_BODY_INIT;
    cs_batch_stats st = {0};
    cs_bulk_item items[1];

    add(b, 0, 1, 1000, 5);
    cs_batch_begin_attempt(b, &st);
    ck_assert_int_eq(cs_batch_build(b, &body, 100), 1);
    items_of(items, 1, 409);
    cs_batch_apply(b, items, 1, &st);
    ck_assert_uint_eq(st.conflicts, 1);
    ck_assert(cs_batch_resolved(b));
    cs_bulk_free(&body);
    cs_batch_free(b);
}
END_TEST

START_TEST(test_batch_retries_only_the_failed_items)
{
    cs_batch *b = cs_batch_new(NULL);
    cs_bulk_body body = CS_BULK_BODY_INIT;
    cs_batch_stats st = {0};
    cs_bulk_item items[3];

    add(b, 0, 1, 1, 1);
    add(b, 0, 2, 2, 1);
    add(b, 0, 3, 3, 1);
    cs_batch_begin_attempt(b, &st);
    ck_assert_int_eq(cs_batch_build(b, &body, 100), 3);
    items_of(items, 3, 201);
    items[1].status = 429;
    items[1].outcome = CS_BULK_RETRY;
    cs_batch_apply(b, items, 3, &st);
    ck_assert_uint_eq(st.retries, 1);
    /* Nothing more in this attempt, but the batch is not done. */
    ck_assert_int_eq(cs_batch_build(b, &body, 100), 0);
    ck_assert(cs_batch_pending(b));
    ck_assert(!cs_batch_resolved(b));
    /* The next attempt sends case 2 alone. */
    cs_batch_begin_attempt(b, &st);
    ck_assert_int_eq(cs_batch_build(b, &body, 100), 1);
    ck_assert_ptr_nonnull(strstr(body.buf, "\"_id\":\"500002\""));
    items_of(items, 1, 201);
    cs_batch_apply(b, items, 1, &st);
    ck_assert(cs_batch_resolved(b));
    cs_bulk_free(&body);
    cs_batch_free(b);
}
END_TEST

START_TEST(test_batch_whole_request_failure_resends_everything)
{
    cs_batch *b = cs_batch_new(NULL);
    cs_bulk_body body = CS_BULK_BODY_INIT;

    add(b, 0, 1, 1, 1);
    add(b, 0, 2, 2, 1);
    cs_batch_begin_attempt(b, NULL);
    ck_assert_int_eq(cs_batch_build(b, &body, 100), 2);
    /* No response applied (connection refused): the next attempt resends both. */
    cs_batch_begin_attempt(b, NULL);
    ck_assert_int_eq(cs_batch_build(b, &body, 100), 2);
    ck_assert(!cs_batch_resolved(b));
    cs_bulk_free(&body);
    cs_batch_free(b);
}
END_TEST

START_TEST(test_batch_requests_are_split_by_max_docs)
{
    cs_batch *b = cs_batch_new(NULL);
    cs_bulk_body body = CS_BULK_BODY_INIT;
    cs_bulk_item items[2];

    for (int i = 1; i <= 5; i++)
        add(b, 0, i, i, 1);
    cs_batch_begin_attempt(b, NULL);
    items_of(items, 2, 201);
    ck_assert_int_eq(cs_batch_build(b, &body, 2), 2);
    cs_batch_apply(b, items, 2, NULL);
    ck_assert_int_eq(cs_batch_build(b, &body, 2), 2);
    cs_batch_apply(b, items, 2, NULL);
    ck_assert_int_eq(cs_batch_build(b, &body, 2), 1);
    cs_batch_apply(b, items, 1, NULL);
    ck_assert_int_eq(cs_batch_build(b, &body, 2), 0);
    ck_assert(cs_batch_resolved(b));
    cs_bulk_free(&body);
    cs_batch_free(b);
}
END_TEST

START_TEST(test_batch_rejected_item_is_a_dead_letter_the_others_carry_on)
{
    cs_batch *b = cs_batch_new(NULL);
    cs_bulk_body body = CS_BULK_BODY_INIT;
    cs_batch_stats st = {0};
    cs_bulk_item items[3];
    cs_dead_letter *dl;

    add(b, 2, 40, 1, 3);
    add(b, 2, 41, 2, 4);
    add(b, 2, 42, 3, 5);
    cs_batch_begin_attempt(b, &st);
    ck_assert_int_eq(cs_batch_build(b, &body, 100), 3);
    items_of(items, 3, 201);
    items[1].status = 400;
    items[1].outcome = CS_BULK_REJECTED;
    items[1].reason = strdup("document_parsing_exception: failed to parse field [created_date]");
    cs_batch_apply(b, items, 3, &st);
    cs_bulk_items_clear(items, 3);
    ck_assert_uint_eq(st.indexed, 2);
    ck_assert_uint_eq(st.rejected, 1);
    ck_assert(!cs_batch_pending(b));
    ck_assert(!cs_batch_resolved(b)); /* until the dead letter is recorded */
    ck_assert_uint_eq(cs_batch_dead_letters(b, "case-changes", &dl), 1);
    ck_assert_int_eq(dl[0].reference, 2);
    ck_assert_int_eq(dl[0].revision, 4);
    ck_assert_str_eq(dl[0].index, "nfd_cases");
    ck_assert_str_eq(dl[0].topic, "case-changes");
    ck_assert_int_eq(dl[0].partition, 2);
    ck_assert_int_eq(dl[0].offset, 41);
    ck_assert(dl[0].doc_is_json);
    ck_assert_ptr_nonnull(strstr(dl[0].doc, "\"reference\": 2"));
    ck_assert_ptr_nonnull(strstr(dl[0].reason, "created_date"));
    free(dl);
    cs_batch_dead_letters_written(b);
    ck_assert(cs_batch_resolved(b));
    ck_assert_uint_eq(cs_batch_dead_letters(b, "case-changes", &dl), 0);
    ck_assert_ptr_null(dl);
    cs_bulk_free(&body);
    cs_batch_free(b);
}
END_TEST

START_TEST(test_batch_unreadable_message_is_a_dead_letter_at_once)
{
    cs_batch *b = cs_batch_new(NULL);
    cs_bulk_body body = CS_BULK_BODY_INIT;
    cs_dead_letter *dl;

    ck_assert_int_eq(cs_batch_add(b, 0, 7, NULL, 0, "not json", 8), 0);
    ck_assert_int_eq(cs_batch_add(b, 0, 8, NULL, 0, NULL, 0), 0);
    cs_batch_begin_attempt(b, NULL);
    ck_assert_int_eq(cs_batch_build(b, &body, 100), 0);
    ck_assert(!cs_batch_resolved(b));
    ck_assert_uint_eq(cs_batch_dead_letters(b, "t", &dl), 2);
    ck_assert(!dl[0].doc_is_json);
    ck_assert_str_eq(dl[0].doc, "not json");
    ck_assert_int_eq(dl[0].reference, 0);
    ck_assert_ptr_null(dl[0].index);
    ck_assert_ptr_nonnull(strstr(dl[0].reason, "not JSON"));
    ck_assert_ptr_nonnull(strstr(dl[1].reason, "empty"));
    free(dl);
    cs_batch_dead_letters_written(b);
    ck_assert(cs_batch_resolved(b));
    cs_bulk_free(&body);
    cs_batch_free(b);
}
END_TEST

/* A dead letter names its case whenever the message does: the document's reference, else the
 * message key's (as casestream reindex records the reference of every dead letter). */
START_TEST(test_batch_dead_letter_takes_its_reference_from_the_key)
{
    static const struct {
        const char *key, *value;
        long long reference;
    } cases[] = {
        {"1234", "not json", 1234},
        {"1234", "", 1234},
        {"1234", "[1, 2]", 1234},
        {"1234", "{\"case_type_id\": \"NFD\", \"case_revision\": 2}", 1234},
        {"1234", "{\"reference\": \"x\", \"case_type_id\": \"NFD\", \"case_revision\": 2}", 1234},
        {"1234", "{\"reference\": 77, \"case_type_id\": \"A/B\", \"case_revision\": 2}", 77},
        {"9223372036854775807", "not json", 9223372036854775807LL},
        {NULL, "not json", 0},
        {"", "not json", 0},
        {"0", "not json", 0},
        {"007", "not json", 0},
        {"-5", "not json", 0},
        {"12a", "not json", 0},
        {"9223372036854775808", "not json", 0},
        {"99999999999999999999", "not json", 0},
    };
    size_t n = sizeof(cases) / sizeof(cases[0]);
    cs_batch *b = cs_batch_new(NULL);
    cs_dead_letter *dl;

    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(cs_batch_add(b, 0, (int64_t)i, cases[i].key,
                                      cases[i].key ? strlen(cases[i].key) : 0, cases[i].value,
                                      strlen(cases[i].value)),
                         0);
    ck_assert_uint_eq(cs_batch_dead_letters(b, "t", &dl), n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(dl[i].reference == cases[i].reference, "key \"%s\", value %s: reference %lld",
                      cases[i].key ? cases[i].key : "(none)", cases[i].value,
                      (long long)dl[i].reference);
    free(dl);
    cs_batch_free(b);
}
END_TEST

START_TEST(test_batch_request_refused_as_a_whole_dead_letters_its_documents)
{
    cs_batch *b = cs_batch_new(NULL);
    cs_bulk_body body = CS_BULK_BODY_INIT;
    cs_batch_stats st = {0};
    cs_dead_letter *dl;

    add(b, 0, 1, 1, 1);
    cs_batch_begin_attempt(b, &st);
    ck_assert_int_eq(cs_batch_build(b, &body, 1), 1);
    cs_batch_reject_request(b, "bulk request refused: HTTP 413", &st);
    ck_assert_uint_eq(st.rejected, 1);
    ck_assert_uint_eq(cs_batch_dead_letters(b, "t", &dl), 1);
    ck_assert_str_eq(dl[0].reason, "bulk request refused: HTTP 413");
    free(dl);
    cs_bulk_free(&body);
    cs_batch_free(b);
}
END_TEST

START_TEST(test_batch_offsets_are_after_the_last_message_of_each_partition)
{
    cs_batch *b = cs_batch_new(NULL);
    int parts[8];
    int64_t offs[8];
    size_t n;

    add(b, 3, 100, 1, 1);
    add(b, 1, 7, 2, 1);
    add(b, 3, 101, 3, 1);
    add(b, 1, 9, 2, 2);
    add(b, 0, 55, 4, 1);
    n = cs_batch_offsets(b, parts, offs, cs_batch_count(b));
    ck_assert_uint_eq(n, 3);
    for (size_t i = 0; i < n; i++) {
        if (parts[i] == 3)
            ck_assert_int_eq(offs[i], 102);
        else if (parts[i] == 1)
            ck_assert_int_eq(offs[i], 10);
        else
            ck_assert_int_eq(offs[i], 56);
    }
    cs_batch_free(b);
}
END_TEST

START_TEST(test_batch_revoked_partition_is_dropped_not_stored)
{
    cs_batch *b = cs_batch_new(NULL);
    cs_bulk_body body = CS_BULK_BODY_INIT;
    cs_bulk_item items[1];
    int parts[4];
    int64_t offs[4];

    add(b, 0, 5, 1, 1);
    add(b, 1, 6, 2, 1);
    ck_assert_uint_eq(cs_batch_bytes(b) > 0, 1);
    cs_batch_drop_partition(b, 1);
    ck_assert_uint_eq(cs_batch_count(b), 1);
    cs_batch_begin_attempt(b, NULL);
    ck_assert_int_eq(cs_batch_build(b, &body, 100), 1);
    ck_assert_ptr_nonnull(strstr(body.buf, "\"_id\":\"500001\""));
    items_of(items, 1, 201);
    cs_batch_apply(b, items, 1, NULL);
    ck_assert(cs_batch_resolved(b));
    ck_assert_uint_eq(cs_batch_offsets(b, parts, offs, 4), 1);
    ck_assert_int_eq(parts[0], 0);
    ck_assert_int_eq(offs[0], 6);
    cs_batch_clear(b);
    ck_assert_uint_eq(cs_batch_count(b), 0);
    ck_assert_uint_eq(cs_batch_bytes(b), 0);
    cs_bulk_free(&body);
    cs_batch_free(b);
}
END_TEST

START_TEST(test_batch_reference_form_is_sent_with_the_document_from_postgresql)
{
    cs_batch *b = cs_batch_new(NULL);
    cs_bulk_body body = CS_BULK_BODY_INIT;
    const char *small =
        "{\"id\":500077,\"reference\":77,\"case_type_id\":\"NFD\","
        "\"case_revision\":3,\"omitted\":\"document of 2000000 bytes is too large\"}";
    char *full = change(77, 4, "NFD");
    int64_t refs[4];

    ck_assert_int_eq(cs_batch_add(b, 0, 10, NULL, 0, small, strlen(small)), 0);
    add(b, 0, 11, 78, 1);
    ck_assert_uint_eq(cs_batch_omitted(b, refs, 4), 1);
    ck_assert_int_eq(refs[0], 77);
    /* The newer revision PostgreSQL holds now is what is indexed. */
    ck_assert_int_eq(cs_batch_fill(b, 77, full, strlen(full)), 0);
    ck_assert_uint_eq(cs_batch_omitted(b, refs, 4), 0);
    cs_batch_begin_attempt(b, NULL);
    ck_assert_int_eq(cs_batch_build(b, &body, 100), 2);
    ck_assert_ptr_nonnull(strstr(body.buf, "\"version\":4"));
    ck_assert_ptr_nonnull(strstr(body.buf, "\"data\": {}"));
    ck_assert_ptr_null(strstr(body.buf, "omitted"));
    cs_bulk_free(&body);
    free(full);
    cs_batch_free(b);
}
END_TEST

START_TEST(test_batch_reference_form_of_a_missing_case_is_a_dead_letter)
{
    cs_batch *b = cs_batch_new(NULL);
    const char *small = "{\"id\":500079,\"reference\":79,\"case_type_id\":\"NFD\","
                        "\"case_revision\":3,\"omitted\":\"too large\"}";
    cs_dead_letter *dl = NULL;
    int64_t refs[4];

    ck_assert_int_eq(cs_batch_add(b, 0, 10, NULL, 0, small, strlen(small)), 0);
    ck_assert_uint_eq(cs_batch_omitted(b, refs, 4), 1);
    ck_assert_int_eq(cs_batch_fill(b, 79, NULL, 0), 0);
    ck_assert_uint_eq(cs_batch_dead_letters(b, "changes", &dl), 1);
    ck_assert_int_eq(dl[0].reference, 79);
    ck_assert_ptr_nonnull(strstr(dl[0].reason, "not in postgresql"));
    free(dl);
    cs_batch_free(b);
}
END_TEST

/* The disposal document of case ref whose last revision was last (sql/009: ccd.disposal_document).
 * Caller frees. */
static char *disposal(long long ref, long long last)
{
    char *s = malloc(256);

    snprintf(s, 256,
             "{\"id\": %lld, \"reference\": %lld, \"case_type_id\": \"NFD\", \"case_type\": "
             "\"NFD\", \"case_revision\": %lld, \"disposed\": true}",
             ID_OF(ref), ref, last + 1);
    return s;
}

START_TEST(test_batch_disposal_deletes_above_the_last_revision_and_supersedes_changes)
{
    cs_batch *b = cs_batch_new(NULL);
    cs_bulk_body body = CS_BULK_BODY_INIT;
    cs_batch_stats st = {0};
    cs_bulk_item items[2];
    char *gone = disposal(1000, 5);

    add(b, 0, 10, 1000, 4);
    add(b, 0, 11, 1000, 5);
    ck_assert_int_eq(cs_batch_add(b, 0, 12, "1000", 4, gone, strlen(gone)), 0);
    add(b, 0, 13, 1000, 3); /* a late, lower revision after the disposal */
    add(b, 0, 14, 2000, 1);
    cs_batch_begin_attempt(b, &st);
    ck_assert_uint_eq(st.superseded, 3);
    ck_assert_int_eq(cs_batch_build(b, &body, 100), 2);
    ck_assert_ptr_nonnull(
        strstr(body.buf, "{\"delete\":{\"_index\":\"nfd_cases\",\"_id\":\"501000\",\"version\":6,"
                         "\"version_type\":\"external_gte\"}}\n{\"index\""));
    ck_assert_ptr_null(strstr(body.buf, "disposed"));
    ck_assert_ptr_nonnull(strstr(body.buf, "\"_id\":\"502000\",\"version\":1,"));
    items_of(items, 2, 201);
    items[0].status = 200;
    cs_batch_apply(b, items, 2, &st);
    ck_assert_uint_eq(st.deleted, 1);
    ck_assert_uint_eq(st.indexed, 1);
    ck_assert(cs_batch_resolved(b));
    cs_bulk_free(&body);
    free(gone);
    cs_batch_free(b);
}
END_TEST

START_TEST(test_batch_disposal_with_data_is_an_ordinary_change)
{
    cs_batch *b = cs_batch_new(NULL);
    cs_bulk_body body = CS_BULK_BODY_INIT;
    const char *doc = "{\"id\":7,\"reference\":5,\"case_type\":\"NFD\",\"case_revision\":2,"
                      "\"disposed\":true,\"data\":{\"disposed\":true}}";

    ck_assert_int_eq(cs_batch_add(b, 0, 1, NULL, 0, doc, strlen(doc)), 0);
    cs_batch_begin_attempt(b, NULL);
    ck_assert_int_eq(cs_batch_build(b, &body, 100), 1);
    ck_assert_ptr_nonnull(strstr(body.buf, "{\"index\":{\"_index\":\"nfd_cases\",\"_id\":\"7\""));
    cs_bulk_free(&body);
    cs_batch_free(b);
}
END_TEST

/* A change published before 007 (no id, case_type) is indexed with the document PostgreSQL
 * holds now, under the case's id. */
START_TEST(test_batch_change_without_an_id_is_sent_with_the_document_from_postgresql)
{
    cs_batch *b = cs_batch_new(NULL);
    cs_bulk_body body = CS_BULK_BODY_INIT;
    const char *old = "{\"reference\":81,\"case_type\":\"NFD\",\"case_revision\":3,"
                      "\"state\":\"Open\",\"data\":{},\"notes\":[]}";
    char *now = change(81, 3, "NFD");
    int64_t refs[4];

    ck_assert_int_eq(cs_batch_add(b, 0, 10, NULL, 0, old, strlen(old)), 0);
    ck_assert_uint_eq(cs_batch_omitted(b, refs, 4), 1);
    ck_assert_int_eq(refs[0], 81);
    ck_assert_int_eq(cs_batch_fill(b, 81, now, strlen(now)), 0);
    cs_batch_begin_attempt(b, NULL);
    ck_assert_int_eq(cs_batch_build(b, &body, 100), 1);
    ck_assert_ptr_nonnull(strstr(body.buf, "\"_index\":\"nfd_cases\",\"_id\":\"500081\""));
    ck_assert_ptr_nonnull(strstr(body.buf, "\"case_type_id\": \"NFD\""));
    cs_bulk_free(&body);
    free(now);
    cs_batch_free(b);
}
END_TEST

START_TEST(test_batch_reference_form_of_a_disposed_case_deletes_its_document)
{
    cs_batch *b = cs_batch_new(NULL);
    cs_bulk_body body = CS_BULK_BODY_INIT;
    const char *small = "{\"reference\":81,\"case_type\":\"NFD\",\"case_revision\":3,"
                        "\"omitted\":\"too large\"}";
    char *gone = disposal(81, 4);
    cs_dead_letter *dl = NULL;
    int64_t refs[4];

    ck_assert_int_eq(cs_batch_add(b, 0, 10, NULL, 0, small, strlen(small)), 0);
    ck_assert_uint_eq(cs_batch_omitted(b, refs, 4), 1);
    /* Disposed of since: PostgreSQL gives the disposal document instead of the case's. */
    ck_assert_int_eq(cs_batch_fill(b, 81, gone, strlen(gone)), 0);
    ck_assert_uint_eq(cs_batch_dead_letters(b, "changes", &dl), 0);
    cs_batch_begin_attempt(b, NULL);
    ck_assert_int_eq(cs_batch_build(b, &body, 100), 1);
    ck_assert_str_eq(body.buf,
                     "{\"delete\":{\"_index\":\"nfd_cases\",\"_id\":\"500081\",\"version\":5,"
                     "\"version_type\":\"external_gte\"}}\n");
    cs_bulk_free(&body);
    free(gone);
    cs_batch_free(b);
}
END_TEST

/* PostgreSQL before 007 gives documents without an id: such a change cannot be indexed. */
START_TEST(test_batch_document_without_an_id_from_postgresql_is_a_dead_letter)
{
    cs_batch *b = cs_batch_new(NULL);
    const char *old = "{\"reference\":82,\"case_type\":\"NFD\",\"case_revision\":3}";
    cs_dead_letter *dl = NULL;
    int64_t refs[4];

    ck_assert_int_eq(cs_batch_add(b, 0, 10, NULL, 0, old, strlen(old)), 0);
    ck_assert_uint_eq(cs_batch_omitted(b, refs, 4), 1);
    ck_assert_int_eq(cs_batch_fill(b, 82, old, strlen(old)), 0);
    ck_assert_uint_eq(cs_batch_dead_letters(b, "changes", &dl), 1);
    ck_assert_ptr_nonnull(strstr(dl[0].reason, "without an id"));
    free(dl);
    cs_batch_free(b);
}
END_TEST

/* The indices a batch writes to, each once, for the caller to make sure of. */
START_TEST(test_batch_lists_the_indices_of_its_pending_changes)
{
    cs_batch *b = cs_batch_new(NULL);
    const char *names[8];
    char *pr = change(3, 1, "PR");

    add(b, 0, 1, 1, 1);
    add(b, 0, 2, 2, 1);
    ck_assert_int_eq(cs_batch_add(b, 0, 3, NULL, 0, pr, strlen(pr)), 0);
    ck_assert_int_eq(cs_batch_add(b, 0, 4, NULL, 0, "not json", 8), 0);
    ck_assert_uint_eq(cs_batch_indices(b, names, 8), 2);
    ck_assert_str_eq(names[0], "nfd_cases");
    ck_assert_str_eq(names[1], "pr_cases");
    ck_assert_uint_eq(cs_batch_indices(b, names, 1), 1);
    free(pr);
    cs_batch_free(b);
}
END_TEST

/* reindex --new-index sends every change to the index it builds. */
START_TEST(test_batch_with_a_target_index_sends_everything_there)
{
    cs_batch_opts opts = CS_BATCH_OPTS_INIT;
    cs_batch *b;
    cs_bulk_body body = CS_BULK_BODY_INIT;
    char *pr = change(3, 1, "PR");

    opts.index = "nfd_cases-000002";
    b = cs_batch_new(&opts);
    add(b, 0, 1, 1, 1);
    ck_assert_int_eq(cs_batch_add(b, 0, 2, NULL, 0, pr, strlen(pr)), 0);
    cs_batch_begin_attempt(b, NULL);
    ck_assert_int_eq(cs_batch_build(b, &body, 100), 2);
    ck_assert_ptr_null(strstr(body.buf, "\"_index\":\"nfd_cases\""));
    ck_assert_ptr_null(strstr(body.buf, "\"_index\":\"pr_cases\""));
    ck_assert_ptr_nonnull(strstr(body.buf, "\"_index\":\"nfd_cases-000002\",\"_id\":\"500003\""));
    cs_bulk_free(&body);
    free(pr);
    cs_batch_free(b);
}
END_TEST

/* What is in the index (written, or there at a newer revision) resolves the case's dead letters
 * up to that revision; what waits or was refused resolves nothing. */
START_TEST(test_batch_lists_the_acknowledged_changes)
{
    cs_batch *b = cs_batch_new(NULL);
    cs_bulk_body body = CS_BULK_BODY_INIT;
    cs_bulk_item items[4];
    int64_t refs[8], revs[8];

    add(b, 0, 1, 10, 3);
    add(b, 0, 2, 10, 2); /* superseded by 3 */
    add(b, 0, 3, 11, 5);
    add(b, 0, 4, 12, 1);
    add(b, 0, 5, 13, 9);
    ck_assert_int_eq(cs_batch_add(b, 0, 6, "14", 2, "not json", 8), 0);
    cs_batch_begin_attempt(b, NULL);
    ck_assert_int_eq(cs_batch_build(b, &body, 100), 4);
    items_of(items, 4, 201);
    items[1].status = 409;
    items[1].outcome = CS_BULK_CONFLICT;
    items[2].status = 429;
    items[2].outcome = CS_BULK_RETRY;
    items[3].status = 400;
    items[3].outcome = CS_BULK_REJECTED;
    cs_batch_apply(b, items, 4, NULL);
    ck_assert_uint_eq(cs_batch_acknowledged(b, refs, revs, 8), 2);
    ck_assert_int_eq(refs[0], 10);
    ck_assert_int_eq(revs[0], 3);
    ck_assert_int_eq(refs[1], 11);
    ck_assert_int_eq(revs[1], 5);
    ck_assert_uint_eq(cs_batch_acknowledged(b, refs, revs, 1), 1);
    cs_bulk_free(&body);
    cs_batch_free(b);
}
END_TEST

/* ---- the attempt, through a fake Elasticsearch ------------------------------------------- */

/* Answers bulk requests by rule, without a network, and records what it was sent. */
typedef struct fake_es {
    int requests;
    size_t sizes[32];      /* actions of each request */
    int unanswered;        /* the next requests get no answer (CS_ERR_RETRY) */
    long status;           /* status of every whole request; 0: 200 with items */
    const char *raw;       /* with status 200: this body instead of items */
    const char *refuse;    /* a request with a source containing this... */
    long refuse_status;    /* ...is refused as a whole with this status */
    const char *busy_once; /* an item whose source contains this is answered 429 once */
    bool busy_done;
} fake_es;

static int fake_send(void *ctx, const cs_bulk_body *body, cs_es_response *out, char *errstr,
                     size_t errstr_size)
{
    fake_es *f = ctx;
    json_t *items, *resp;
    const char *p = body->buf;

    ck_assert_int_lt(f->requests, 32);
    f->sizes[f->requests++] = body->count;
    if (f->unanswered > 0) {
        f->unanswered--;
        snprintf(errstr, errstr_size, "POST /_bulk: connection refused");
        return CS_ERR_RETRY;
    }
    out->status = f->status ? f->status : 200;
    if (f->status || f->raw || (f->refuse && strstr(body->buf, f->refuse))) {
        if (!f->status && !f->raw)
            out->status = f->refuse_status;
        out->body = strdup(f->raw ? f->raw : "{\"error\":\"refused by the fake\"}");
        out->len = strlen(out->body);
        return CS_OK;
    }
    items = json_array();
    for (size_t i = 0; i < body->count; i++) {
        const char *source = strchr(p, '\n') + 1;

        /* A delete has no source line: nothing there to delete, as after a disposal that
         * came before the case's document. */
        if (strncmp(p, "{\"delete\"", 10) == 0) {
            json_array_append_new(items, json_pack("{s:{s:i}}", "delete", "status", 404));
            p = source;
            continue;
        }

        const char *end = strchr(source, '\n');
        char *copy = strndup(source, (size_t)(end - source));
        bool busy = f->busy_once && !f->busy_done && strstr(copy, f->busy_once);

        if (busy) {
            f->busy_done = true;
            json_array_append_new(
                items, json_pack("{s:{s:i,s:{s:s,s:s}}}", "index", "status", 429, "error", "type",
                                 "es_rejected_execution_exception", "reason", "queue full"));
        } else {
            json_array_append_new(items, json_pack("{s:{s:i}}", "index", "status", 201));
        }
        free(copy);
        p = end + 1;
    }
    resp = json_pack("{s:b,s:o}", "errors", false, "items", items);
    out->body = json_dumps(resp, JSON_COMPACT);
    out->len = strlen(out->body);
    json_decref(resp);
    return CS_OK;
}

/* A batch of cases 1..n, one change each, with requests of at most max_docs. */
static cs_batch *batch_of(int n, size_t max_docs)
{
    cs_batch_opts opts = CS_BATCH_OPTS_INIT;
    cs_batch *b;

    opts.max_docs = max_docs;
    opts.backoff_base_ms = 100;
    opts.backoff_cap_ms = 1000;
    b = cs_batch_new(&opts);
    for (int i = 1; i <= n; i++)
        add(b, 0, i, i, 1);
    return b;
}

START_TEST(test_attempt_splits_a_refused_request_until_the_document_at_fault_is_a_dead_letter)
{
    static const long statuses[] = {413, 400};

    for (size_t k = 0; k < 2; k++) {
        cs_batch *b = batch_of(6, 100);
        fake_es f = {0};
        cs_batch_stats st = {0};
        cs_dead_letter *dl;
        char err[512], want[64];
        static const size_t sizes[] = {6, 3, 3, 1, 1, 1};

        f.refuse = "\"reference\": 4,";
        f.refuse_status = statuses[k];
        ck_assert_int_eq(cs_batch_attempt(b, fake_send, &f, &st, err, sizeof(err)), CS_OK);
        /* 6 refused; 1-3 written; 4-6 refused; 4 alone refused; 5 and 6 written one by one. */
        ck_assert_int_eq(f.requests, 6);
        for (int i = 0; i < 6; i++)
            ck_assert_uint_eq(f.sizes[i], sizes[i]);
        ck_assert_uint_eq(st.indexed, 5);
        ck_assert_uint_eq(st.rejected, 1);
        ck_assert_uint_eq(st.splits, 2);
        ck_assert_uint_eq(cs_batch_request_size(b), 1);
        ck_assert(!cs_batch_pending(b));
        ck_assert_uint_eq(cs_batch_dead_letters(b, NULL, &dl), 1);
        ck_assert_int_eq(dl[0].reference, 4);
        snprintf(want, sizeof(want), "bulk request refused: HTTP %ld: ", statuses[k]);
        ck_assert_msg(strncmp(dl[0].reason, want, strlen(want)) == 0, "reason: %s", dl[0].reason);
        ck_assert_ptr_nonnull(strstr(dl[0].reason, "refused by the fake"));
        ck_assert_ptr_null(dl[0].topic);
        free(dl);
        cs_batch_dead_letters_written(b);
        ck_assert(cs_batch_resolved(b));
        ck_assert_int_eq(cs_batch_failures(b), 0);
        /* The next batch starts with whole requests again. */
        cs_batch_clear(b);
        ck_assert_uint_eq(cs_batch_request_size(b), 100);
        cs_batch_free(b);
    }
}
END_TEST

/* The refusal is quoted in the dead letter's reason, a text column: bytes that are not UTF-8
 * (tests/fuzz/corpus/bulk/regress-refusal-not-utf8) must not make PostgreSQL refuse it. */
START_TEST(test_attempt_refusal_that_is_not_utf8_gives_a_utf8_reason)
{
    cs_batch *b = batch_of(1, 100);
    fake_es f = {0};
    cs_dead_letter *dl;
    char err[512], repaired[512];

    f.status = 400;
    f.raw = "<html>proxy: requ\xea"
            "te refus\xe9"
            "e</html>"; /* Latin-1 */
    ck_assert_int_eq(cs_batch_attempt(b, fake_send, &f, NULL, err, sizeof(err)), CS_OK);
    ck_assert_uint_eq(cs_batch_dead_letters(b, NULL, &dl), 1);
    snprintf(repaired, sizeof(repaired), "%s", dl[0].reason);
    ck_assert_str_eq(cs_utf8_repair(repaired), dl[0].reason);
    ck_assert_ptr_nonnull(strstr(dl[0].reason, "proxy: requ?te refus?e"));
    free(dl);
    cs_batch_free(b);
}
END_TEST

START_TEST(test_attempt_split_size_stays_for_the_retries_of_the_batch)
{
    cs_batch *b = batch_of(4, 100);
    fake_es f = {0};
    cs_batch_stats st = {0};
    char err[512];

    /* Case 2 is refused as too large; case 3 is answered 429 once. */
    f.refuse = "\"reference\": 2,";
    f.refuse_status = 413;
    f.busy_once = "\"reference\": 3,";
    ck_assert_int_eq(cs_batch_attempt(b, fake_send, &f, &st, err, sizeof(err)), CS_OK);
    ck_assert(cs_batch_pending(b));
    ck_assert_uint_eq(st.retries, 1);
    ck_assert_str_eq(err, "1 documents to retry: es_rejected_execution_exception: queue full");
    f.requests = 0;
    ck_assert_int_eq(cs_batch_attempt(b, fake_send, &f, &st, err, sizeof(err)), CS_OK);
    ck_assert_int_eq(f.requests, 1);
    ck_assert_uint_eq(f.sizes[0], 1);
    ck_assert_str_eq(err, "");
    ck_assert(!cs_batch_pending(b));
    ck_assert_uint_eq(st.indexed, 3);
    ck_assert_uint_eq(st.rejected, 1);
    cs_batch_free(b);
}
END_TEST

START_TEST(test_attempt_without_an_answer_keeps_every_change_and_backs_off)
{
    cs_batch *b = batch_of(3, 100);
    fake_es f = {0};
    cs_batch_stats st = {0};
    char err[512];
    long d;

    f.unanswered = 2;
    ck_assert_int_eq(cs_batch_attempt(b, fake_send, &f, &st, err, sizeof(err)), CS_ERR_RETRY);
    ck_assert_str_eq(err, "POST /_bulk: connection refused");
    ck_assert(cs_batch_pending(b));
    d = cs_batch_backoff(b);
    ck_assert(d >= 50 && d <= 100);
    ck_assert_int_eq(cs_batch_attempt(b, fake_send, &f, &st, err, sizeof(err)), CS_ERR_RETRY);
    d = cs_batch_backoff(b);
    ck_assert(d >= 100 && d <= 200);
    ck_assert_int_eq(cs_batch_failures(b), 2);
    for (int i = 0; i < 10; i++)
        d = cs_batch_backoff(b);
    ck_assert(d >= 500 && d <= 1000); /* capped */
    /* Answered at last: everything is written in one request. */
    ck_assert_int_eq(cs_batch_attempt(b, fake_send, &f, &st, err, sizeof(err)), CS_OK);
    ck_assert_int_eq(f.requests, 3);
    ck_assert_uint_eq(f.sizes[2], 3);
    ck_assert_uint_eq(st.indexed, 3);
    ck_assert(cs_batch_resolved(b));
    cs_batch_clear(b);
    ck_assert_int_eq(cs_batch_failures(b), 0);
    cs_batch_free(b);
}
END_TEST

START_TEST(test_attempt_other_statuses_and_unreadable_answers_are_retried_whole)
{
    static const long statuses[] = {429, 503, 401, 404};

    for (size_t k = 0; k < sizeof(statuses) / sizeof(statuses[0]); k++) {
        cs_batch *b = batch_of(2, 100);
        fake_es f = {0};
        cs_batch_stats st = {0};
        cs_dead_letter *dl;
        char err[512], want[32];

        f.status = statuses[k];
        ck_assert_int_eq(cs_batch_attempt(b, fake_send, &f, &st, err, sizeof(err)), CS_ERR_RETRY);
        snprintf(want, sizeof(want), "bulk request: HTTP %ld: ", statuses[k]);
        ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
        ck_assert_int_eq(f.requests, 1);
        ck_assert_uint_eq(st.splits, 0);
        ck_assert(cs_batch_pending(b));
        ck_assert_uint_eq(cs_batch_dead_letters(b, NULL, &dl), 0);
        cs_batch_free(b);
    }
    {
        cs_batch *b = batch_of(2, 100);
        fake_es f = {0};
        char err[512];

        f.raw = "<html>bad gateway</html>";
        ck_assert_int_eq(cs_batch_attempt(b, fake_send, &f, NULL, err, sizeof(err)), CS_ERR_RETRY);
        ck_assert_ptr_nonnull(strstr(err, "not JSON"));
        ck_assert(cs_batch_pending(b));
        cs_batch_free(b);
    }
}
END_TEST

START_TEST(test_attempt_disposal_answered_404_is_deleted_and_resolved)
{
    cs_batch *b = batch_of(3, 100);
    fake_es f = {0};
    cs_batch_stats st = {0};
    char err[256];
    char *gone = disposal(2, 1);

    ck_assert_int_eq(cs_batch_add(b, 0, 4, "2", 1, gone, strlen(gone)), 0);
    ck_assert_int_eq(cs_batch_attempt(b, fake_send, &f, &st, err, sizeof(err)), 0);
    ck_assert_int_eq(f.requests, 1);
    ck_assert_uint_eq(f.sizes[0], 3);
    ck_assert_uint_eq(st.indexed, 2);
    ck_assert_uint_eq(st.deleted, 1);
    ck_assert_uint_eq(st.superseded, 1);
    ck_assert(!cs_batch_pending(b));
    ck_assert(cs_batch_resolved(b));
    free(gone);
    cs_batch_free(b);
}
END_TEST

START_TEST(test_attempt_sends_requests_of_max_docs)
{
    cs_batch *b = batch_of(5, 2);
    fake_es f = {0};
    char err[512];

    ck_assert_int_eq(cs_batch_attempt(b, fake_send, &f, NULL, err, sizeof(err)), CS_OK);
    ck_assert_int_eq(f.requests, 3);
    ck_assert_uint_eq(f.sizes[0], 2);
    ck_assert_uint_eq(f.sizes[1], 2);
    ck_assert_uint_eq(f.sizes[2], 1);
    ck_assert(cs_batch_resolved(b));
    cs_batch_free(b);
}
END_TEST

Suite *batch_suite(void)
{
    Suite *s = suite_create("batch");
    TCase *parse = tcase_create("parse");
    TCase *batch = tcase_create("batch");
    TCase *attempt = tcase_create("attempt");

    tcase_add_test(parse, test_change_parse_reads_id_reference_type_and_revision);
    tcase_add_test(parse, test_change_parse_reads_a_change_from_before_the_case_id);
    tcase_add_test(parse, test_change_parse_refuses_unusable_documents);
    tcase_add_test(parse, test_change_parse_refuses_a_nul_byte);
    tcase_add_test(parse, test_change_parse_without_a_tree_agrees_with_jansson);
    tcase_add_test(parse, test_change_parse_reason_is_utf8);
    tcase_add_test(batch, test_batch_sends_only_the_highest_revision_of_a_case);
    tcase_add_test(batch, test_batch_same_case_in_two_partitions_is_sent_twice);
    tcase_add_test(batch, test_batch_conflict_counts_as_acknowledged);
    tcase_add_test(batch, test_batch_retries_only_the_failed_items);
    tcase_add_test(batch, test_batch_whole_request_failure_resends_everything);
    tcase_add_test(batch, test_batch_requests_are_split_by_max_docs);
    tcase_add_test(batch, test_batch_rejected_item_is_a_dead_letter_the_others_carry_on);
    tcase_add_test(batch, test_batch_unreadable_message_is_a_dead_letter_at_once);
    tcase_add_test(batch, test_batch_dead_letter_takes_its_reference_from_the_key);
    tcase_add_test(batch, test_batch_request_refused_as_a_whole_dead_letters_its_documents);
    tcase_add_test(batch, test_batch_offsets_are_after_the_last_message_of_each_partition);
    tcase_add_test(batch, test_batch_revoked_partition_is_dropped_not_stored);
    tcase_add_test(batch, test_batch_reference_form_is_sent_with_the_document_from_postgresql);
    tcase_add_test(batch, test_batch_reference_form_of_a_missing_case_is_a_dead_letter);
    tcase_add_test(batch,
                   test_batch_disposal_deletes_above_the_last_revision_and_supersedes_changes);
    tcase_add_test(batch, test_batch_disposal_with_data_is_an_ordinary_change);
    tcase_add_test(batch, test_batch_reference_form_of_a_disposed_case_deletes_its_document);
    tcase_add_test(batch,
                   test_batch_change_without_an_id_is_sent_with_the_document_from_postgresql);
    tcase_add_test(batch, test_batch_document_without_an_id_from_postgresql_is_a_dead_letter);
    tcase_add_test(batch, test_batch_lists_the_indices_of_its_pending_changes);
    tcase_add_test(batch, test_batch_lists_the_acknowledged_changes);
    tcase_add_test(batch, test_batch_with_a_target_index_sends_everything_there);
    tcase_add_test(
        attempt,
        test_attempt_splits_a_refused_request_until_the_document_at_fault_is_a_dead_letter);
    tcase_add_test(attempt, test_attempt_refusal_that_is_not_utf8_gives_a_utf8_reason);
    tcase_add_test(attempt, test_attempt_split_size_stays_for_the_retries_of_the_batch);
    tcase_add_test(attempt, test_attempt_without_an_answer_keeps_every_change_and_backs_off);
    tcase_add_test(attempt, test_attempt_other_statuses_and_unreadable_answers_are_retried_whole);
    tcase_add_test(attempt, test_attempt_sends_requests_of_max_docs);
    tcase_add_test(attempt, test_attempt_disposal_answered_404_is_deleted_and_resolved);
    suite_add_tcase(s, parse);
    suite_add_tcase(s, batch);
    suite_add_tcase(s, attempt);
    return s;
}
