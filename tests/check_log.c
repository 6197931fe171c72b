/* Unit tests of the log line: logfmt and JSON that always parse, fields, escaping, folding. */
#include "log.h"
#include "logfmt.h"
#include "runner.h"

#include <jansson.h>
#include <string.h>

static logfmt_pair pairs[LOGFMT_MAX_PAIRS];

/* Renders message as logfmt and parses it back; returns the number of pairs. */
static int roundtrip(const char *message, size_t size)
{
    static char line[CS_LOG_LINE_MAX + 64];
    char err[256];
    size_t n = cs_log_render(line, size, CS_LOG_LOGFMT, "2026-01-02T03:04:05.006Z", CS_LOG_WARN,
                             "casestream-worker", message);
    int np;

    ck_assert_uint_gt(n, 0);
    ck_assert_msg(line[n - 1] == '\n' && !memchr(line, '\n', n - 1), "not one line: %s", line);
    line[n - 1] = '\0';
    np = logfmt_parse(line, pairs, LOGFMT_MAX_PAIRS, err, sizeof(err));
    ck_assert_msg(np > 0, "%s: %s", err, line);
    return np;
}

static const char *get(int n, const char *key)
{
    const char *v = logfmt_get(pairs, n, key);

    ck_assert_msg(v != NULL, "no %s", key);
    return v;
}

START_TEST(test_log_fields_follow_the_message)
{
    int n = roundtrip("submission invalid case=0 partition=5 offset=4 error=\"not valid JSON: "
                      "invalid token near 'not'\"",
                      4096);

    ck_assert_int_eq(n, 8);
    ck_assert_str_eq(get(n, "ts"), "2026-01-02T03:04:05.006Z");
    ck_assert_str_eq(get(n, "level"), "warn");
    ck_assert_str_eq(get(n, "program"), "casestream-worker");
    ck_assert_str_eq(get(n, "msg"), "submission invalid");
    ck_assert_str_eq(get(n, "case"), "0");
    ck_assert_str_eq(get(n, "offset"), "4");
    ck_assert_str_eq(get(n, "error"), "not valid JSON: invalid token near 'not'");
}
END_TEST

START_TEST(test_log_escapes_quotes_backslashes_and_folds_lines)
{
    int n = roundtrip("batch not committed error=\"server said \"no\" to C:\\dir\" "
                      "partition=1",
                      4096);

    ck_assert_str_eq(get(n, "error"), "server said \"no\" to C:\\dir");
    ck_assert_str_eq(get(n, "partition"), "1");
    /* A multi-line libpq error becomes one line. */
    n = roundtrip("could not connect: connection to server at \"127.0.0.1\", port 1 failed: "
                  "Connection refused\n\tIs the server running on that host and accepting "
                  "TCP/IP connections?\n",
                  4096);
    ck_assert_str_eq(get(n, "msg"), "could not connect: connection to server at \"127.0.0.1\", "
                                    "port 1 failed: Connection refused Is the server running on "
                                    "that host and accepting TCP/IP connections?");
    /* Values run to the next field; an unfinished quote is only text. */
    n = roundtrip("could not resume topic=t: Local: Broker transport failure x=\"open", 4096);
    ck_assert_str_eq(get(n, "topic"), "t: Local: Broker transport failure");
    ck_assert_str_eq(get(n, "x"), "\"open");
    n = roundtrip("%3|1700000000.123|FAIL|rdkafka#producer-1| [thrd:x]: a=b=c \x01 \xff end", 4096);
    ck_assert_str_eq(get(n, "a"), "b=c \x01 \xef\xbf\xbd end");
    n = roundtrip("", 4096);
    ck_assert_str_eq(get(n, "msg"), "");
}
END_TEST

START_TEST(test_log_removes_credentials)
{
    int n = roundtrip("indexing es=http://elastic:s3cret@127.0.0.1:1 pg=\"host=db "
                      "password=s3cret\"",
                      4096);

    ck_assert_str_eq(get(n, "es"), "http://elastic:***@127.0.0.1:1");
    ck_assert_str_eq(get(n, "pg"), "host=db password=***");
}
END_TEST

START_TEST(test_log_long_values_are_cut_and_still_parse)
{
    static char message[CS_LOG_LINE_MAX];

    memset(message, 0, sizeof(message));
    strcpy(message, "big value=\"");
    for (size_t i = strlen(message); i < sizeof(message) - 2; i++)
        message[i] = i % 7 == 0 ? '"' : i % 5 == 0 ? '\n' : "\xc3\xa9"[i % 2];
    for (size_t size = 64; size <= 2048; size = size * 2 + 1)
        roundtrip(message, size);
    roundtrip(message, CS_LOG_LINE_MAX + 64);
}
END_TEST

START_TEST(test_log_json_lines_are_objects)
{
    char line[1024];
    json_error_t jerr;
    json_t *o;

    cs_log_render(line, sizeof(line), CS_LOG_JSON, "t", CS_LOG_ERROR, "casestream",
                  "stopped error=\"a \"b\"\n c\" n=1");
    o = json_loads(line, 0, &jerr);
    ck_assert_msg(o != NULL, "%s: %s", jerr.text, line);
    ck_assert_str_eq(json_string_value(json_object_get(o, "level")), "error");
    ck_assert_str_eq(json_string_value(json_object_get(o, "msg")), "stopped");
    ck_assert_str_eq(json_string_value(json_object_get(o, "error")), "a \"b\" c");
    ck_assert_str_eq(json_string_value(json_object_get(o, "n")), "1");
    json_decref(o);
}
END_TEST

START_TEST(test_log_level_and_format_names)
{
    int v;

    ck_assert(cs_log_format_parse("json", &v) && v == CS_LOG_JSON);
    ck_assert(cs_log_format_parse("logfmt", &v) && v == CS_LOG_LOGFMT);
    ck_assert(!cs_log_format_parse("text", &v));
    ck_assert(cs_log_level_parse("debug", &v) && v == CS_LOG_DEBUG);
}
END_TEST

Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("render");

    tcase_add_test(tc, test_log_fields_follow_the_message);
    tcase_add_test(tc, test_log_escapes_quotes_backslashes_and_folds_lines);
    tcase_add_test(tc, test_log_removes_credentials);
    tcase_add_test(tc, test_log_long_values_are_cut_and_still_parse);
    tcase_add_test(tc, test_log_json_lines_are_objects);
    tcase_add_test(tc, test_log_level_and_format_names);
    suite_add_tcase(s, tc);
    return s;
}
