/* Unit tests of the producer without a broker: preparing submissions, the CLI's dry run. */
#include "producer.h"

#include "../producer/produce.h"
#include "err.h"
#include "uuid.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BYTES 1048576
#define UUID1     "6f1c2b4e-7d1a-4c3e-9b2a-1f0e5d6c7b8a"

static int prepare(const char *json, bool gen_key, cs_prepared *m, char *why)
{
    return cs_producer_prepare(json, strlen(json), gen_key, MAX_BYTES, m, why, 256);
}

START_TEST(test_prepare_key_is_integer_case_reference)
{
    const char *json = "{\"idempotency_key\":\"" UUID1 "\",\"case_reference\":1234567890123456,"
                       "\"case_type\":\"NFD\",\"event_id\":\"e\",\"user_id\":\"u\"}";
    char why[256] = "";
    cs_prepared m;

    ck_assert_int_eq(prepare(json, false, &m, why), 0);
    ck_assert_str_eq(m.key, "1234567890123456");
    ck_assert_uint_eq(m.key_len, 16);
    ck_assert(m.case_reference == 1234567890123456LL);
    ck_assert_str_eq(m.idempotency_key, UUID1);
    ck_assert_ptr_eq(m.value, json); /* sent as given */
    ck_assert_uint_eq(m.len, strlen(json));
    ck_assert(!m.key_generated);
    cs_prepared_clear(&m);
}
END_TEST

START_TEST(test_prepare_key_from_digit_string_and_canonical_uuid)
{
    const char *json = "{\"idempotency_key\":\"6F1C2B4E-7D1A-4C3E-9B2A-1F0E5D6C7B8A\","
                       "\"case_reference\":\"9223372036854775807\",\"case_type\":\"NFD\","
                       "\"event_id\":\"e\",\"user_id\":\"u\"}";
    char why[256] = "";
    cs_prepared m;

    ck_assert_int_eq(prepare(json, false, &m, why), 0);
    ck_assert_str_eq(m.key, "9223372036854775807");
    ck_assert(m.case_reference == INT64_MAX);
    ck_assert_str_eq(m.idempotency_key, UUID1); /* lower-case, for matching outcomes */
    cs_prepared_clear(&m);
}
END_TEST

START_TEST(test_prepare_key_is_top_level_reference_not_a_nested_one)
{
    const char *nested = "{\"data\":{\"case_reference\":99},\"idempotency_key\":\"" UUID1
                         "\",\"case_reference\" : 5,\"case_type\":\"T\",\"event_id\":\"e\","
                         "\"user_id\":\"u\"}";
    const char *spaced = "{ \"case_reference\" :\t\"77\", \"idempotency_key\":\"" UUID1
                         "\",\"case_type\":\"T\",\"event_id\":\"e\",\"user_id\":\"u\"}";
    char why[256] = "";
    cs_prepared m;

    ck_assert_msg(prepare(nested, false, &m, why) == 0, "%s", why);
    ck_assert_str_eq(m.key, "5");
    cs_prepared_clear(&m);
    ck_assert_msg(prepare(spaced, false, &m, why) == 0, "%s", why);
    ck_assert_str_eq(m.key, "77");
    cs_prepared_clear(&m);
}
END_TEST

START_TEST(test_prepare_rejects_with_validator_reason)
{
    static const struct {
        const char *json, *reason;
    } cases[] = {
        {"not json", "not valid JSON"},
        {"[1,2]", "not a JSON object"},
        {"{\"case_reference\":1,\"case_type\":\"T\",\"event_id\":\"e\",\"user_id\":\"u\"}",
         "\"idempotency_key\" is missing"},
        {"{\"idempotency_key\":\"" UUID1 "\",\"case_reference\":\"0123\",\"case_type\":\"T\","
         "\"event_id\":\"e\",\"user_id\":\"u\"}",
         "leading zero"},
        {"{\"idempotency_key\":\"" UUID1 "\",\"case_reference\":0,\"case_type\":\"T\","
         "\"event_id\":\"e\",\"user_id\":\"u\"}",
         "out of range"},
        {"{\"idempotency_key\":\"" UUID1 "\",\"case_reference\":\"12a\",\"case_type\":\"T\","
         "\"event_id\":\"e\",\"user_id\":\"u\"}",
         "case_reference"},
        {"{\"idempotency_key\":\"" UUID1 "\",\"case_reference\":5,\"event_id\":\"e\","
         "\"user_id\":\"u\"}",
         "\"case_type\" is missing"},
        {"{\"idempotency_key\":\"" UUID1 "\",\"case_reference\":5,\"case_type\":\"T\","
         "\"event_id\":\"e\",\"user_id\":\"u\",\"security_classification\":\"SECRET\"}",
         "security_classification"},
        {"{\"idempotency_key\":\"" UUID1 "\",\"case_reference\":5,\"case_type\":\"T\","
         "\"event_id\":\"e\",\"user_id\":\"u\",\"resolved_ttl\":\"2025-02-29\"}",
         "\"resolved_ttl\" is not a calendar date"},
        {"{\"idempotency_key\":\"" UUID1 "\",\"case_reference\":5,\"case_type\":\"T\","
         "\"event_id\":\"e\",\"user_id\":\"u\","
         "\"supplementary_data_updates\":{\"$set\":{\"a.b.c\":1}}}",
         "more than two levels"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char why[256] = "";
        cs_prepared m;

        ck_assert_int_eq(prepare(cases[i].json, false, &m, why), CS_ERR_INVALID);
        ck_assert_msg(strstr(why, cases[i].reason) != NULL, "case %zu: reason \"%s\"", i, why);
        ck_assert_ptr_null(m.buf);
    }
}
END_TEST

START_TEST(test_prepare_size_limit_applies)
{
    const char *json = "{\"idempotency_key\":\"" UUID1 "\",\"case_reference\":5,"
                       "\"case_type\":\"T\",\"event_id\":\"e\",\"user_id\":\"u\"}";
    char why[256] = "";
    cs_prepared m;

    ck_assert_int_eq(cs_producer_prepare(json, strlen(json), false, 64, &m, why, sizeof(why)),
                     CS_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(why, "over the limit"));
}
END_TEST

START_TEST(test_prepare_gen_key_inserts_field_keeping_bytes)
{
    const char *json = "  {\"case_reference\": 42, \"case_type\":\"T\",\"event_id\":\"e\","
                       "\"user_id\":\"u\",\"data\":{\"n\":1.10,\"big\":12345678901234567}}";
    char why[256] = "", expect[512];
    cs_prepared m;

    ck_assert_int_eq(prepare(json, true, &m, why), 0);
    ck_assert(m.key_generated);
    ck_assert(cs_uuid_parse(m.idempotency_key, NULL));
    ck_assert_ptr_eq(m.value, m.buf);
    snprintf(expect, sizeof(expect), "  {\"idempotency_key\":\"%s\",%s", m.idempotency_key,
             strchr(json, '{') + 1);
    ck_assert_str_eq(m.value, expect);
    ck_assert_uint_eq(m.len, strlen(expect));
    ck_assert_str_eq(m.key, "42");
    cs_prepared_clear(&m);
    ck_assert_ptr_null(m.buf);
}
END_TEST

START_TEST(test_prepare_gen_key_replaces_null_and_keeps_given_key)
{
    const char *null_key = "{\"idempotency_key\":null,\"case_reference\":7,\"case_type\":\"T\","
                           "\"event_id\":\"e\",\"user_id\":\"u\"}";
    const char *given = "{\"idempotency_key\":\"" UUID1 "\",\"case_reference\":7,"
                        "\"case_type\":\"T\",\"event_id\":\"e\",\"user_id\":\"u\"}";
    char why[256] = "";
    cs_prepared m;
    json_t *root;

    ck_assert_int_eq(prepare(null_key, true, &m, why), 0);
    ck_assert(m.key_generated);
    root = json_loadb(m.value, m.len, JSON_REJECT_DUPLICATES, NULL);
    ck_assert_ptr_nonnull(root);
    ck_assert_str_eq(json_string_value(json_object_get(root, "idempotency_key")),
                     m.idempotency_key);
    ck_assert_int_eq(json_integer_value(json_object_get(root, "case_reference")), 7);
    json_decref(root);
    cs_prepared_clear(&m);

    ck_assert_int_eq(prepare(given, true, &m, why), 0);
    ck_assert(!m.key_generated);
    ck_assert_ptr_eq(m.value, given);
    ck_assert_str_eq(m.idempotency_key, UUID1);
    cs_prepared_clear(&m);
}
END_TEST

START_TEST(test_prepare_gen_key_each_line_gets_its_own_key)
{
    const char *json =
        "{\"case_reference\":8,\"case_type\":\"T\",\"event_id\":\"e\",\"user_id\":\"u\"}";
    char why[256] = "";
    cs_prepared a, b;

    ck_assert_int_eq(prepare(json, true, &a, why), 0);
    ck_assert_int_eq(prepare(json, true, &b, why), 0);
    ck_assert_str_ne(a.idempotency_key, b.idempotency_key);
    cs_prepared_clear(&a);
    cs_prepared_clear(&b);
    cs_prepared_clear(NULL);
}
END_TEST

START_TEST(test_producer_new_reports_bad_kafka_property)
{
    char *argv[] = {"casestream-produce", NULL};
    const char *unknown[] = {"no.such.property=1"};
    /* A caller of the C API may fill cs_config itself, so the configuration's checks did not
     * run: the producer still reports a bad property as a configuration error. */
    const char *conflict[] = {"acks=1"};
    char errstr[256] = "";
    cs_producer *p = NULL;
    cs_config cfg;

    ck_assert_int_eq(cs_config_load(&cfg, CS_PROG_PRODUCE, 1, argv, errstr, sizeof(errstr)), 0);
    free(cfg.kafka_props);
    cfg.kafka_props = unknown;
    cfg.kafka_props_count = 1;
    ck_assert_ptr_null(cs_producer_new(&cfg, errstr, sizeof(errstr)));
    ck_assert_ptr_nonnull(strstr(errstr, "no.such.property"));
    /* Idempotence needs acks=all: the conflict is a configuration error too. */
    cfg.kafka_props = conflict;
    ck_assert_int_eq(cs_producer_open(&cfg, NULL, &p, errstr, sizeof(errstr)), CS_ERR_INVALID);
    ck_assert_ptr_null(p);
    ck_assert_ptr_nonnull(strstr(errstr, "acks"));
    cfg.kafka_props = NULL;
    cs_config_free(&cfg);
    cs_producer_free(NULL);
}
END_TEST

/* Writes text to a new temporary file; returns its path (static buffer). */
static const char *temp_file(const char *text)
{
    static char path[64];
    FILE *f;
    int fd;

    snprintf(path, sizeof(path), "/tmp/check_producer_XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    f = fdopen(fd, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Reads a stream from the start into a malloc'd string. */
static char *slurp(FILE *f)
{
    long n;
    char *buf;

    fflush(f);
    n = ftell(f);
    rewind(f);
    buf = calloc(1, (size_t)n + 1);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    return buf;
}

START_TEST(test_produce_dry_run_reports_file_and_line)
{
    const char *text =
        "{\"idempotency_key\":\"" UUID1 "\",\"case_reference\":1,\"case_type\":\"T\","
        "\"event_id\":\"e\",\"user_id\":\"u\"}\n"
        "{broken\n"
        "\n"
        "{\"case_reference\":2,\"case_type\":\"T\",\"event_id\":\"e\",\"user_id\":\"u\"}\r\n"
        "   \n"
        "{\"idempotency_key\":\"" UUID1 "\",\"case_reference\":3,\"case_type\":\"T\","
        "\"event_id\":\"e\",\"user_id\":\"u\"}";
    char path[64], *argv[] = {"casestream-produce", "--dry-run", path, NULL}, errstr[256];
    char *gen_argv[] = {"casestream-produce", "--dry-run", "--gen-key", path, NULL};
    char expect[128], *err_text;
    cs_produce_stats st;
    FILE *out = tmpfile(), *err = tmpfile();
    cs_config cfg;

    snprintf(path, sizeof(path), "%s", temp_file(text));
    ck_assert_int_eq(cs_config_load(&cfg, CS_PROG_PRODUCE, 3, argv, errstr, sizeof(errstr)), 0);
    ck_assert_int_eq(cs_produce_run(&cfg, out, err, &st), CS_PRODUCE_EXIT_FAILED);
    cs_config_free(&cfg);
    ck_assert_uint_eq(st.read, 4); /* blank lines are not submissions */
    ck_assert_uint_eq(st.invalid, 2);
    ck_assert_uint_eq(st.sent, 0);
    err_text = slurp(err);
    snprintf(expect, sizeof(expect), "%s:2: invalid: not valid JSON", path);
    ck_assert_msg(strstr(err_text, expect), "stderr: %s", err_text);
    /* Log lines: the quotes of the reason are escaped. */
    snprintf(expect, sizeof(expect), "%s:4: invalid: field \\\"idempotency_key\\\" is missing",
             path);
    ck_assert_msg(strstr(err_text, expect), "stderr: %s", err_text);
    snprintf(expect, sizeof(expect), "%s:1:", path);
    ck_assert_ptr_null(strstr(err_text, expect));
    snprintf(expect, sizeof(expect), "%s:6:", path);
    ck_assert_ptr_null(strstr(err_text, expect));
    ck_assert_ptr_nonnull(strstr(err_text, "dry run:\" read=4 invalid=2 valid=2"));
    free(err_text);

    /* --gen-key mends line 4; line 2 stays broken. */
    rewind(err);
    ck_assert_int_eq(cs_config_load(&cfg, CS_PROG_PRODUCE, 4, gen_argv, errstr, sizeof(errstr)), 0);
    ck_assert_int_eq(cs_produce_run(&cfg, out, err, &st), CS_PRODUCE_EXIT_FAILED);
    cs_config_free(&cfg);
    ck_assert_uint_eq(st.invalid, 1);
    remove(path);
    fclose(out);
    fclose(err);
}
END_TEST

START_TEST(test_produce_valid_dry_run_exits_zero_and_missing_file_fails)
{
    const char *text = "{\"idempotency_key\":\"" UUID1 "\",\"case_reference\":1,"
                       "\"case_type\":\"T\",\"event_id\":\"e\",\"user_id\":\"u\"}\n";
    char path[64], *argv[] = {"casestream-produce", "--dry-run", path, NULL}, errstr[256];
    char *missing[] = {"casestream-produce", "--dry-run", "/nonexistent/in.ndjson", NULL};
    FILE *out = tmpfile(), *err = tmpfile();
    cs_produce_stats st;
    cs_config cfg;
    char *err_text;

    snprintf(path, sizeof(path), "%s", temp_file(text));
    ck_assert_int_eq(cs_config_load(&cfg, CS_PROG_PRODUCE, 3, argv, errstr, sizeof(errstr)), 0);
    ck_assert_int_eq(cs_produce_run(&cfg, out, err, &st), 0);
    ck_assert_uint_eq(st.read, 1);
    cs_config_free(&cfg);
    remove(path);

    rewind(err);
    ck_assert_int_eq(cs_config_load(&cfg, CS_PROG_PRODUCE, 3, missing, errstr, sizeof(errstr)), 0);
    ck_assert_int_eq(cs_produce_run(&cfg, out, err, &st), CS_PRODUCE_EXIT_FAILED);
    cs_config_free(&cfg);
    err_text = slurp(err);
    ck_assert_ptr_nonnull(strstr(err_text, "/nonexistent/in.ndjson: No such file"));
    free(err_text);
    fclose(out);
    fclose(err);
}
END_TEST

Suite *producer_suite(void);

Suite *producer_suite(void)
{
    Suite *s = suite_create("producer");
    TCase *tc = tcase_create("prepare");

    tcase_add_test(tc, test_prepare_key_is_integer_case_reference);
    tcase_add_test(tc, test_prepare_key_from_digit_string_and_canonical_uuid);
    tcase_add_test(tc, test_prepare_key_is_top_level_reference_not_a_nested_one);
    tcase_add_test(tc, test_prepare_rejects_with_validator_reason);
    tcase_add_test(tc, test_prepare_size_limit_applies);
    tcase_add_test(tc, test_prepare_gen_key_inserts_field_keeping_bytes);
    tcase_add_test(tc, test_prepare_gen_key_replaces_null_and_keeps_given_key);
    tcase_add_test(tc, test_prepare_gen_key_each_line_gets_its_own_key);
    suite_add_tcase(s, tc);
    tc = tcase_create("cli");
    tcase_add_test(tc, test_producer_new_reports_bad_kafka_property);
    tcase_add_test(tc, test_produce_dry_run_reports_file_and_line);
    tcase_add_test(tc, test_produce_valid_dry_run_exits_zero_and_missing_file_fails);
    suite_add_tcase(s, tc);
    return s;
}
