/* The outcome module (DESIGN §4): status names and codes, the rendering, the parser. */
#include "outcome.h"

#include "err.h"
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UUID1 "6f1c2b4e-7d1a-4c3e-9b2a-1f0e5d6c7b8a"

/* DESIGN §4's example, as the worker puts it on the wire. */
#define EXAMPLE                                                                                    \
    "{\"idempotency_key\":\"" UUID1 "\",\"case_reference\":1234,\"status\":\"applied\","           \
    "\"code\":201,\"version\":1,\"case_revision\":1,\"event_seq\":77,\"error\":null,"              \
    "\"source\":{\"partition\":3,\"offset\":901}}"

/* The outcome of EXAMPLE. */
static cs_outcome example(void)
{
    return (cs_outcome){.idempotency_key = UUID1,
                        .case_reference = 1234,
                        .status = CS_STATUS_APPLIED,
                        .code = 201,
                        .version = 1,
                        .revision = 1,
                        .event_seq = 77,
                        .source_partition = 3,
                        .source_offset = 901};
}

static cs_outcome *parse(const char *text)
{
    cs_outcome *o = NULL;

    ck_assert_msg(cs_outcome_parse(text, strlen(text), &o) == CS_OK, "not parsed: %s", text);
    ck_assert_ptr_nonnull(o);
    return o;
}

/* Renders o and checks the text; frees nothing of o. */
static void assert_renders(const cs_outcome *o, const char *want)
{
    char *text = cs_outcome_render(o);

    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, want);
    free(text);
}

START_TEST(test_status_names_and_codes)
{
    static const struct {
        cs_status status;
        const char *name;
        int code, created_code;
    } table[] = {
        {CS_STATUS_APPLIED, "applied", 200, 201},   {CS_STATUS_DUPLICATE, "duplicate", 200, 200},
        {CS_STATUS_CONFLICT, "conflict", 409, 409}, {CS_STATUS_REJECTED, "rejected", 422, 422},
        {CS_STATUS_INVALID, "invalid", 400, 400},
    };
    cs_status s;

    ck_assert_int_eq(sizeof(table) / sizeof(table[0]), CS_STATUS_COUNT);
    for (size_t i = 0; i < CS_STATUS_COUNT; i++) {
        ck_assert_str_eq(cs_status_name(table[i].status), table[i].name);
        ck_assert(cs_status_from_name(table[i].name, &s));
        ck_assert_int_eq(s, table[i].status);
        ck_assert_int_eq(cs_status_code(table[i].status, false), table[i].code);
        ck_assert_int_eq(cs_status_code(table[i].status, true), table[i].created_code);
    }
    ck_assert(!cs_status_from_name("Applied", &s));
    ck_assert(!cs_status_from_name("timeout", &s));
    ck_assert(!cs_status_from_name("", &s));
    ck_assert(!cs_status_from_name(NULL, &s));
}
END_TEST

START_TEST(test_outcome_render_is_design_format)
{
    cs_outcome o = example();

    assert_renders(&o, EXAMPLE);
}
END_TEST

/* Zero integers are null, the source position is null only below 0, and an error is a string. */
START_TEST(test_outcome_render_nulls_and_error)
{
    cs_outcome o = {.case_reference = 5,
                    .status = CS_STATUS_CONFLICT,
                    .code = 409,
                    .error = "expected version 2, case does not exist",
                    .source_partition = 0,
                    .source_offset = 0};

    assert_renders(&o, "{\"idempotency_key\":null,\"case_reference\":5,\"status\":\"conflict\","
                       "\"code\":409,\"version\":null,\"case_revision\":null,\"event_seq\":null,"
                       "\"error\":\"expected version 2, case does not exist\","
                       "\"source\":{\"partition\":0,\"offset\":0}}");
    o.source_partition = -1;
    o.source_offset = -1;
    o.error = "say \"no\"\\";
    assert_renders(&o, "{\"idempotency_key\":null,\"case_reference\":5,\"status\":\"conflict\","
                       "\"code\":409,\"version\":null,\"case_revision\":null,\"event_seq\":null,"
                       "\"error\":\"say \\\"no\\\"\\\\\","
                       "\"source\":{\"partition\":null,\"offset\":null}}");
}
END_TEST

/* A reason that is not UTF-8 still says something: its bytes beyond ASCII become '?'. */
START_TEST(test_outcome_render_error_not_utf8_gets_placeholders)
{
    cs_outcome o = {.case_reference = 5,
                    .status = CS_STATUS_REJECTED,
                    .code = 422,
                    .error = "type \xc3",
                    .source_partition = 1,
                    .source_offset = 2};
    char *text = cs_outcome_render(&o);

    ck_assert_ptr_nonnull(strstr(text, "\"error\":\"type ?\""));
    free(text);
}
END_TEST

/* Every status, rendered, parsed and rendered again, gives the same bytes and fields. */
START_TEST(test_outcome_round_trip_every_status)
{
    for (int s = 0; s < CS_STATUS_COUNT; s++) {
        cs_outcome o = {.idempotency_key = UUID1,
                        .case_reference = 9007199254740993LL,
                        .status = (cs_status)s,
                        .code = cs_status_code((cs_status)s, false),
                        .version = s,
                        .revision = 2 * s,
                        .event_seq = 3 * s,
                        .error = s >= CS_STATUS_CONFLICT ? "why \xc3\x84" : NULL,
                        .source_partition = s,
                        .source_offset = 1000 + s};
        char *text = cs_outcome_render(&o), *again;
        cs_outcome *p = parse(text);

        ck_assert_str_eq(p->json, text);
        ck_assert_uint_eq(p->len, strlen(text));
        ck_assert_str_eq(p->idempotency_key, UUID1);
        ck_assert(p->case_reference == 9007199254740993LL);
        ck_assert_int_eq(p->status, s);
        ck_assert_int_eq(p->code, o.code);
        ck_assert_int_eq(p->version, s);
        ck_assert(p->revision == 2 * s);
        ck_assert(p->event_seq == 3 * s);
        if (o.error)
            ck_assert_str_eq(p->error, o.error);
        else
            ck_assert_ptr_null(p->error);
        ck_assert_int_eq(p->source_partition, s);
        ck_assert(p->source_offset == 1000 + s);
        again = cs_outcome_render(p);
        ck_assert_str_eq(again, text);
        free(again);
        free(text);
        cs_outcome_free(p);
    }
}
END_TEST

/* ccd.event_outcome gives the outcome back as jsonb renders it: members reordered, spaces. */
START_TEST(test_outcome_parse_jsonb_text_renders_the_original_bytes)
{
    const char *jsonb =
        "{\"code\": 409, \"error\": \"expected version 1, case is at version 2\", \"source\": "
        "{\"offset\": 4, \"partition\": 9}, \"status\": \"conflict\", \"version\": 2, "
        "\"event_seq\": null, \"case_revision\": 3, \"case_reference\": 1795457718004242, "
        "\"idempotency_key\": \"73591188-c287-4433-9b11-0dc2e2cd60d2\"}";
    cs_outcome *o = parse(jsonb);

    assert_renders(o, "{\"idempotency_key\":\"73591188-c287-4433-9b11-0dc2e2cd60d2\","
                      "\"case_reference\":1795457718004242,\"status\":\"conflict\",\"code\":409,"
                      "\"version\":2,\"case_revision\":3,\"event_seq\":null,"
                      "\"error\":\"expected version 1, case is at version 2\","
                      "\"source\":{\"partition\":9,\"offset\":4}}");
    cs_outcome_free(o);
}
END_TEST

START_TEST(test_outcome_parse_refuses_unknown_or_missing_status)
{
    const char *texts[] = {
        "{\"case_reference\":1,\"status\":\"timeout\"}",
        "{\"case_reference\":1,\"status\":\"APPLIED\"}",
        "{\"case_reference\":1,\"status\":1}",
        "{\"case_reference\":1}",
        "[]",
        "nope",
        "",
    };

    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        cs_outcome *o = (cs_outcome *)1;

        ck_assert_msg(cs_outcome_parse(texts[i], strlen(texts[i]), &o) == CS_ERR_INVALID, "%s",
                      texts[i]);
        ck_assert_ptr_null(o);
    }
    cs_outcome_free(NULL);
}
END_TEST

/* The worker's Redis entry: the outcome with its payload fingerprint after the source. */
START_TEST(test_outcome_redis_entry_carries_fingerprint_last)
{
    cs_outcome o = example();
    const char *print = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    char want[512], *text;
    cs_outcome *p;

    memcpy(o.payload_sha256, print, 65);
    snprintf(want, sizeof(want), "%.*s,\"payload_sha256\":\"%s\"}", (int)strlen(EXAMPLE) - 1,
             EXAMPLE, print);
    text = cs_outcome_render(&o);
    ck_assert_str_eq(text, want);
    p = parse(text);
    ck_assert_str_eq(p->payload_sha256, print);
    p->payload_sha256[0] = '\0'; /* without it: the outcome itself */
    assert_renders(p, EXAMPLE);
    cs_outcome_free(p);
    free(text);
}
END_TEST

START_TEST(test_outcome_parse_reads_match_fields)
{
    const char *json =
        "{\"idempotency_key\":\"6F1C2B4E-7D1A-4C3E-9B2A-1F0E5D6C7B8A\",\"case_reference\":1234,"
        "\"status\":\"applied\",\"code\":201,\"version\":1,\"case_revision\":1,"
        "\"event_seq\":77,\"error\":null,\"source\":{\"partition\":3,\"offset\":901}}";
    cs_outcome *o = NULL;

    ck_assert_int_eq(cs_outcome_parse(json, strlen(json), &o), 0);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(o->json, json);
    ck_assert_uint_eq(o->len, strlen(json));
    ck_assert(o->case_reference == 1234);
    ck_assert_str_eq(o->idempotency_key, UUID1);
    ck_assert_str_eq(cs_status_name(o->status), "applied");
    ck_assert_int_eq(o->source_partition, 3);
    ck_assert(o->source_offset == 901);
    ck_assert_ptr_null(o->supplementary_data);
    cs_outcome_free(o);
}
END_TEST

START_TEST(test_outcome_parse_tolerates_missing_fields)
{
    const char *partial = "{\"case_reference\":\"99\",\"status\":\"invalid\"}";
    cs_outcome *o = NULL;

    ck_assert_int_eq(cs_outcome_parse(partial, strlen(partial), &o), 0);
    ck_assert(o->case_reference == 99);
    ck_assert_str_eq(o->idempotency_key, "");
    ck_assert_int_eq(o->source_partition, -1);
    ck_assert(o->source_offset == -1);
    cs_outcome_free(o);
    ck_assert_int_eq(cs_outcome_parse("[]", 2, &o), CS_ERR_INVALID);
    ck_assert_ptr_null(o);
    ck_assert_int_eq(cs_outcome_parse("nope", 4, &o), CS_ERR_INVALID);
    cs_outcome_free(NULL);
}
END_TEST

/* The outcome of a supplementary data update: the whole map after it, between "error" and
 * "source", members sorted at every depth, reals in their stored form. */
#define SUPPLEMENTARY_OUTCOME                                                                      \
    "{\"idempotency_key\":\"" UUID1 "\",\"case_reference\":1234,\"status\":\"applied\","           \
    "\"code\":200,\"version\":3,\"case_revision\":7,\"event_seq\":78,\"error\":null,"              \
    "\"supplementary_data\":{\"HMCTSServiceId\":\"ABA1\",\"orgs\":{\"a\":\"Y\",\"b\":2},"          \
    "\"r\":[0.1,{\"x\":1,\"y\":2}]},\"source\":{\"partition\":3,\"offset\":902}}"

static cs_outcome supplementary_example(const char *map)
{
    cs_outcome o = example();

    o.code = 200;
    o.version = 3;
    o.revision = 7;
    o.event_seq = 78;
    o.source_offset = 902;
    o.supplementary_data = map;
    return o;
}

START_TEST(test_outcome_supplementary_data_sorted_between_error_and_source)
{
    /* As jsonb gives the map back (members by length, spaces), and as the update built it. */
    const char *maps[] = {
        "{\"r\": [0.1, {\"y\": 2, \"x\": 1}], \"orgs\": {\"a\": \"Y\", \"b\": 2}, "
        "\"HMCTSServiceId\": \"ABA1\"}",
        "{\"orgs\":{\"b\":2,\"a\":\"Y\"},\"r\":[0.1,{\"x\":1,\"y\":2}],\"HMCTSServiceId\":"
        "\"ABA1\"}",
    };

    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
        cs_outcome o = supplementary_example(maps[i]);

        assert_renders(&o, SUPPLEMENTARY_OUTCOME);
    }
}
END_TEST

/* Parsed and rendered again, byte for byte; the Redis entry keeps it, the fingerprint last. */
START_TEST(test_outcome_supplementary_data_round_trip)
{
    const char *print = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    cs_outcome *p = parse(SUPPLEMENTARY_OUTCOME), *q;
    char *entry;

    ck_assert_ptr_nonnull(p->supplementary_data);
    ck_assert_ptr_null(p->error);
    assert_renders(p, SUPPLEMENTARY_OUTCOME);
    memcpy(p->payload_sha256, print, 65);
    entry = cs_outcome_render(p);
    ck_assert_ptr_nonnull(strstr(entry, "\"source\":{\"partition\":3,\"offset\":902},"
                                        "\"payload_sha256\""));
    q = parse(entry);
    ck_assert_str_eq(q->payload_sha256, print);
    q->payload_sha256[0] = '\0';
    assert_renders(q, SUPPLEMENTARY_OUTCOME);
    cs_outcome_free(q);
    free(entry);
    cs_outcome_free(p);
}
END_TEST

/* Only an object is supplementary data: anything else in the member is read as absent, and
 * rendering text that is not an object fails rather than writing something else. */
START_TEST(test_outcome_supplementary_data_only_an_object)
{
    const char *texts[] = {
        "{\"status\":\"applied\",\"supplementary_data\":null}",
        "{\"status\":\"applied\",\"supplementary_data\":[1]}",
        "{\"status\":\"applied\",\"supplementary_data\":\"{}\"}",
        "{\"status\":\"applied\"}",
    };
    cs_outcome o = supplementary_example("[1]"), *p;
    char *text;

    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        p = parse(texts[i]);
        ck_assert_ptr_null(p->supplementary_data);
        text = cs_outcome_render(p);
        ck_assert_ptr_null(strstr(text, "supplementary_data"));
        free(text);
        cs_outcome_free(p);
    }
    ck_assert_ptr_null(cs_outcome_render(&o));
    o.supplementary_data = "not json";
    ck_assert_ptr_null(cs_outcome_render(&o));
    o.supplementary_data = "{}";
    text = cs_outcome_render(&o);
    ck_assert_ptr_nonnull(strstr(text, "\"error\":null,\"supplementary_data\":{},\"source\""));
    free(text);
}
END_TEST

Suite *outcome_suite(void)
{
    Suite *s = suite_create("outcome");
    TCase *tc = tcase_create("outcome");

    tcase_add_test(tc, test_status_names_and_codes);
    tcase_add_test(tc, test_outcome_render_is_design_format);
    tcase_add_test(tc, test_outcome_render_nulls_and_error);
    tcase_add_test(tc, test_outcome_render_error_not_utf8_gets_placeholders);
    tcase_add_test(tc, test_outcome_round_trip_every_status);
    tcase_add_test(tc, test_outcome_parse_jsonb_text_renders_the_original_bytes);
    tcase_add_test(tc, test_outcome_parse_refuses_unknown_or_missing_status);
    tcase_add_test(tc, test_outcome_redis_entry_carries_fingerprint_last);
    tcase_add_test(tc, test_outcome_parse_reads_match_fields);
    tcase_add_test(tc, test_outcome_parse_tolerates_missing_fields);
    tcase_add_test(tc, test_outcome_supplementary_data_sorted_between_error_and_source);
    tcase_add_test(tc, test_outcome_supplementary_data_round_trip);
    tcase_add_test(tc, test_outcome_supplementary_data_only_an_object);
    suite_add_tcase(s, tc);
    return s;
}
