/* Submission validation, driven by tests/fixtures/envelopes (see its README.md). */
#include "envelope.h"
#include "merge_patch.h"
#include "fixture.h"
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_BYTES 1048576

/* Fixtures of tests/fixtures/envelopes. */
static char *read_fixture(const char *rel, size_t *len)
{
    char path[256];

    snprintf(path, sizeof(path), "envelopes/%s", rel);
    return cs_fixture_read(path, len);
}

static json_t *load_fixture(const char *rel)
{
    char path[256];

    snprintf(path, sizeof(path), "envelopes/%s", rel);
    return cs_fixture_json(path);
}

/* Copies v with every {"$repeat": s, "times": n} replaced by s repeated n times. */
static json_t *expand(json_t *v)
{
    json_t *rep = json_object_get(v, "$repeat"), *out, *item;
    const char *name;
    size_t i, n, unit;
    char *buf;

    if (json_is_string(rep)) {
        n = (size_t)json_integer_value(json_object_get(v, "times"));
        unit = json_string_length(rep);
        buf = malloc(n * unit + 1);
        ck_assert_ptr_nonnull(buf);
        for (i = 0; i < n; i++)
            memcpy(buf + i * unit, json_string_value(rep), unit);
        out = json_stringn(buf, n * unit);
        free(buf);
        return out;
    }
    if (json_is_object(v)) {
        out = json_object();
        json_object_foreach(v, name, item)
        {
            json_object_set_new(out, name, expand(item));
        }
        return out;
    }
    if (json_is_array(v)) {
        out = json_array();
        json_array_foreach(v, i, item)
        {
            json_array_append_new(out, expand(item));
        }
        return out;
    }
    return json_incref(v);
}

/* The struct member a fixture's "absent" list names. */
static const void *field_ptr(const cs_submission *s, const char *name)
{
    const struct {
        const char *name;
        const void *ptr;
    } fields[] = {
        {"case_type", s->case_type},
        {"jurisdiction", s->jurisdiction},
        {"event_id", s->event_id},
        {"user_id", s->user_id},
        {"state", s->state},
        {"data", s->data},
        {"data_merge", s->data_merge},
        {"notes", s->notes},
        {"summary", s->summary},
        {"description", s->description},
        {"security_classification", s->security_classification},
        {"data_classification", s->data_classification},
        {"event_name", s->event_name},
        {"user_first_name", s->user_first_name},
        {"user_last_name", s->user_last_name},
        {"state_name", s->state_name},
        {"significant_item", s->significant_item},
        {"proxied_by", s->proxied_by},
        {"proxied_by_first_name", s->proxied_by_first_name},
        {"proxied_by_last_name", s->proxied_by_last_name},
        {"supplementary_data_updates", s->supplementary_updates},
    };

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (strcmp(fields[i].name, name) == 0)
            return fields[i].ptr;
    }
    ck_abort_msg("fixture names unknown field %s", name);
    return NULL;
}

/* Checks the parsed submission against a case's "expect" object. */
static void check_expect(const char *name, json_t *expect, const cs_submission *s)
{
    json_t *v, *item;
    size_t i;

    if (json_object_get(expect, "out") && json_is_null(json_object_get(expect, "out"))) {
        ck_assert_msg(s == NULL, "%s: a submission was returned", name);
        return;
    }
    ck_assert_msg(s != NULL, "%s: no submission was returned", name);
    if ((v = json_object_get(expect, "idempotency_key")))
        ck_assert_msg(strcmp(s->idempotency_key, json_string_value(v)) == 0,
                      "%s: idempotency_key \"%s\"", name, s->idempotency_key);
    if ((v = json_object_get(expect, "case_reference")))
        ck_assert_msg(s->case_reference == json_integer_value(v), "%s: case_reference %lld", name,
                      (long long)s->case_reference);
    if ((v = json_object_get(expect, "can_create")))
        ck_assert_msg(cs_submission_can_create(s) == json_is_true(v), "%s: can_create", name);
    if ((v = json_object_get(expect, "expected_version"))) {
        ck_assert_msg(s->has_expected_version == !json_is_null(v), "%s: has_expected_version",
                      name);
        ck_assert_msg(json_is_null(v) || s->expected_version == json_integer_value(v),
                      "%s: expected_version", name);
    }
    if ((v = json_object_get(expect, "case_id"))) {
        ck_assert_msg(s->has_case_id == !json_is_null(v), "%s: has_case_id", name);
        ck_assert_msg(json_is_null(v) || s->case_id == json_integer_value(v), "%s: id %lld", name,
                      (long long)s->case_id);
    }
    /* "resolved_ttl": the date, or null for cleared; "resolved_ttl_given": false for absent. */
    if ((v = json_object_get(expect, "resolved_ttl"))) {
        ck_assert_msg(s->has_resolved_ttl, "%s: resolved_ttl not given", name);
        if (json_is_null(v))
            ck_assert_msg(s->resolved_ttl == NULL, "%s: resolved_ttl %s", name, s->resolved_ttl);
        else
            ck_assert_msg(s->resolved_ttl && strcmp(s->resolved_ttl, json_string_value(v)) == 0,
                          "%s: resolved_ttl %s", name, s->resolved_ttl);
    }
    if ((v = json_object_get(expect, "resolved_ttl_given")))
        ck_assert_msg(s->has_resolved_ttl == json_is_true(v), "%s: has_resolved_ttl", name);
    if ((v = json_object_get(expect, "case_type_version"))) {
        ck_assert_msg(s->has_case_type_version == !json_is_null(v), "%s: has_case_type_version",
                      name);
        ck_assert_msg(json_is_null(v) || s->case_type_version == json_integer_value(v),
                      "%s: case_type_version %d", name, (int)s->case_type_version);
    }
    if ((v = json_object_get(expect, "start_revision"))) {
        ck_assert_msg(s->has_start_revision == !json_is_null(v), "%s: has_start_revision", name);
        ck_assert_msg(json_is_null(v) || s->start_revision == json_integer_value(v),
                      "%s: start_revision", name);
    }
    if ((v = json_object_get(expect, "merge_revision"))) {
        ck_assert_msg(s->has_merge_revision == !json_is_null(v), "%s: has_merge_revision", name);
        ck_assert_msg(json_is_null(v) || s->merge_revision == json_integer_value(v),
                      "%s: merge_revision", name);
    }
    if ((v = json_object_get(expect, "supplementary")))
        ck_assert_msg(cs_submission_is_supplementary(s) == json_is_true(v), "%s: supplementary",
                      name);
    json_array_foreach(json_object_get(expect, "absent"), i, item)
    {
        ck_assert_msg(field_ptr(s, json_string_value(item)) == NULL, "%s: %s is not absent", name,
                      json_string_value(item));
    }
}

/* Builds one case's message value and key, parses it and checks the verdict. */
static void run_case(json_t *base, json_t *tc, cs_verdict want)
{
    const char *name = json_string_value(json_object_get(tc, "name"));
    const char *reason = json_string_value(json_object_get(tc, "reason"));
    json_t *key_json = json_object_get(tc, "key"), *value = NULL, *ref, *v, *reason_json;
    json_int_t err_size = json_integer_value(json_object_get(tc, "errstr_size"));
    cs_submission *s = NULL;
    char key[32] = "", err[512];
    const char *keyp = key;
    char *text;
    size_t len;
    cs_verdict got;

    ck_assert_msg(name != NULL, "a case has no name");
    ck_assert_msg(want == CS_VALID || reason != NULL, "%s: no reason to expect", name);
    if ((v = json_object_get(tc, "value_text"))) {
        len = json_string_length(v);
        text = malloc(len + 1);
        ck_assert_ptr_nonnull(text);
        memcpy(text, json_string_value(v), len + 1);
    } else if ((v = json_object_get(tc, "value_file"))) {
        text = read_fixture(json_string_value(v), &len);
    } else {
        json_t *patched = json_object_get(tc, "value")
                              ? json_incref(json_object_get(tc, "value"))
                              : cs_merge_patch(base, json_object_get(tc, "set"));

        ck_assert_msg(patched != NULL, "%s: neither value nor set", name);
        value = expand(patched);
        json_decref(patched);
        text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
        ck_assert_ptr_nonnull(text);
        len = strlen(text);
    }
    /* The key: as given (null for none), else the value's case_reference as text. */
    ref = json_object_get(value, "case_reference");
    if (key_json && json_is_null(key_json))
        keyp = NULL;
    else if (key_json)
        snprintf(key, sizeof(key), "%s", json_string_value(key_json));
    else if (json_is_integer(ref))
        snprintf(key, sizeof(key), "%" JSON_INTEGER_FORMAT, json_integer_value(ref));
    else if (json_is_string(ref))
        snprintf(key, sizeof(key), "%s", json_string_value(ref));
    else
        keyp = NULL;

    /* The worker's reason buffer is 512 bytes; a case may give a smaller one. */
    if (err_size <= 0 || err_size > (json_int_t)sizeof(err))
        err_size = sizeof(err);
    got = cs_submission_parse(text, len, keyp, keyp ? strlen(keyp) : 0, DEFAULT_MAX_BYTES, &s, err,
                              (size_t)err_size);
    ck_assert_msg(got == want, "%s: verdict %d, expected %d (%s)", name, got, want, err);
    /* Every reason, cut or not, is UTF-8: an outcome can carry it as a JSON string. */
    reason_json = json_string(err);
    ck_assert_msg(reason_json != NULL, "%s: reason is not UTF-8", name);
    json_decref(reason_json);
    if ((v = json_object_get(tc, "reason_length")))
        ck_assert_msg(strlen(err) == (size_t)json_integer_value(v), "%s: reason of %zu bytes: %s",
                      name, strlen(err), err);
    if (want == CS_VALID)
        ck_assert_msg(err[0] == '\0', "%s: reason \"%s\" on a valid submission", name, err);
    else
        ck_assert_msg(strstr(err, reason) != NULL, "%s: reason \"%s\" lacks \"%s\"", name, err,
                      reason);
    check_expect(name, json_object_get(tc, "expect"), s);
    cs_submission_free(s);
    json_decref(value);
    free(text);
}

/* Runs every case of one class file. */
static void run_file(const char *rel, cs_verdict want)
{
    json_t *base = load_fixture("base.json"), *file = load_fixture(rel), *tc;
    const char *verdict = json_string_value(json_object_get(file, "verdict"));
    json_t *cases = json_object_get(file, "cases");
    size_t i;

    ck_assert_msg(verdict && strcmp(verdict, want == CS_VALID     ? "valid"
                                             : want == CS_INVALID ? "invalid"
                                                                  : "rejected") == 0,
                  "%s: verdict \"%s\" is not this file's class", rel, verdict);
    ck_assert_msg(json_array_size(cases) > 0, "%s: no cases", rel);
    json_array_foreach(cases, i, tc)
    {
        run_case(base, tc, want);
    }
    json_decref(file);
    json_decref(base);
}

START_TEST(test_envelope_valid_fixtures_are_valid)
{
    run_file("valid.json", CS_VALID);
}
END_TEST

START_TEST(test_envelope_invalid_fixtures_are_invalid)
{
    run_file("invalid.json", CS_INVALID);
}
END_TEST

START_TEST(test_envelope_rejected_fixtures_are_rejected)
{
    run_file("rejected.json", CS_REJECTED);
}
END_TEST

/* Numbers as their text, since a fixture's "set" would go through jansson first. */
START_TEST(test_envelope_numbers_kept_exactly_are_valid)
{
    run_file("numbers_valid.json", CS_VALID);
}
END_TEST

START_TEST(test_envelope_numbers_not_kept_exactly_are_rejected)
{
    run_file("numbers_rejected.json", CS_REJECTED);
}
END_TEST

START_TEST(test_envelope_calendar_day_is_yyyy_mm_dd_on_the_calendar)
{
    const char *good[] = {"2025-01-31", "2024-02-29", "2000-02-29", "0001-01-01", "9999-12-31"};
    const char *bad[] = {"",          "2025-02-29", "1900-02-29", "2025-13-01", "2025-1-01",
                         "2025-01-1", "0000-01-01", "2025-00-10", "2025-01-32", "2025-01-311",
                         "20250131",  "2025/01/31", "today",      " 2025-01-31"};

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_msg(cs_calendar_day(good[i]), "%s refused", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!cs_calendar_day(bad[i]), "\"%s\" taken", bad[i]);
}
END_TEST

START_TEST(test_envelope_size_limit_is_inclusive)
{
    json_t *base = load_fixture("base.json");
    char *text = json_dumps(base, JSON_COMPACT), err[256];
    size_t len = strlen(text);
    cs_submission *s = NULL;

    ck_assert_int_eq(cs_submission_parse(text, len, "1234", 4, len, &s, err, sizeof(err)),
                     CS_VALID);
    ck_assert_ptr_nonnull(s);
    cs_submission_free(s);
    ck_assert_int_eq(cs_submission_parse(text, len, "1234", 4, len - 1, &s, err, sizeof(err)),
                     CS_INVALID);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(err, "over the limit of"));
    free(text);
    json_decref(base);
}
END_TEST

/* JSON has no raw NUL; jansson would skip one right after a number. */
START_TEST(test_envelope_raw_nul_byte_is_invalid)
{
    json_t *base = load_fixture("base.json");
    char *text = json_dumps(base, JSON_COMPACT), *nul, err[256];
    size_t len = strlen(text);
    cs_submission *s = NULL;

    ck_assert_ptr_nonnull(nul = strchr(text, ','));
    ck_assert_int_eq(cs_submission_parse(text, len, "1234", 4, len, &s, err, sizeof(err)),
                     CS_VALID);
    cs_submission_free(s);
    *nul = '\0';
    ck_assert_int_eq(cs_submission_parse(text, len, "1234", 4, len, &s, err, sizeof(err)),
                     CS_INVALID);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(err, "NUL byte"));
    free(text);
    json_decref(base);
}
END_TEST

START_TEST(test_envelope_oversize_is_invalid_without_parsing)
{
    size_t len = DEFAULT_MAX_BYTES + 1;
    char *text = malloc(len), err[256], want[128];
    cs_submission *s = NULL;

    ck_assert_ptr_nonnull(text);
    memset(text, 'x', len); /* not JSON: a parse would give another reason */
    ck_assert_int_eq(
        cs_submission_parse(text, len, "1", 1, DEFAULT_MAX_BYTES, &s, err, sizeof(err)),
        CS_INVALID);
    ck_assert_ptr_null(s);
    snprintf(want, sizeof(want), "submission is %zu bytes, over the limit of %d", len,
             DEFAULT_MAX_BYTES);
    ck_assert_str_eq(err, want);
    free(text);
}
END_TEST

START_TEST(test_envelope_reason_is_truncated_and_terminated)
{
    char err[8];
    cs_submission *s = NULL;

    ck_assert_int_eq(cs_submission_parse("[]", 2, NULL, 0, 100, &s, err, sizeof(err)), CS_INVALID);
    ck_assert_str_eq(err, "submiss");
    ck_assert_int_eq(cs_submission_parse(NULL, 0, NULL, 0, 100, &s, NULL, 0), CS_INVALID);
    ck_assert(!cs_submission_can_create(NULL));
    cs_submission_free(NULL);
}
END_TEST

Suite *envelope_suite(void)
{
    Suite *s = suite_create("envelope");
    TCase *tc = tcase_create("fixtures");

    tcase_add_test(tc, test_envelope_valid_fixtures_are_valid);
    tcase_add_test(tc, test_envelope_invalid_fixtures_are_invalid);
    tcase_add_test(tc, test_envelope_rejected_fixtures_are_rejected);
    tcase_add_test(tc, test_envelope_numbers_kept_exactly_are_valid);
    tcase_add_test(tc, test_envelope_numbers_not_kept_exactly_are_rejected);
    tcase_add_test(tc, test_envelope_calendar_day_is_yyyy_mm_dd_on_the_calendar);
    tcase_add_test(tc, test_envelope_size_limit_is_inclusive);
    tcase_add_test(tc, test_envelope_oversize_is_invalid_without_parsing);
    tcase_add_test(tc, test_envelope_raw_nul_byte_is_invalid);
    tcase_add_test(tc, test_envelope_reason_is_truncated_and_terminated);
    suite_add_tcase(s, tc);
    return s;
}
