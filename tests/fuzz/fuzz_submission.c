/* libFuzzer target: cs_submission_parse (lib/envelope.c) on a Kafka key and value.
 *
 * Input: the key, a newline, then the value. An input without a newline is a
 * value sent without a key. A valid verdict must mean what DESIGN §3 says,
 * checked against the JSON itself: key fields, limits, the case type rule,
 * CCD's fields (id, dates, names, significant item, supplementary updates),
 * and every number stored exactly and given back so by PostgreSQL. The
 * reason must be UTF-8 whatever the bytes were. */
#include "fuzz.h"

#include "envelope.h"
#include "jsondump.h"
#include "uuid.h"

#include <inttypes.h>
#include <stdio.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BYTES 1048576

/* Characters (code points) of a UTF-8 string: the bytes that do not continue one. */
static size_t chars(json_t *v)
{
    const unsigned char *p = (const unsigned char *)json_string_value(v);
    size_t n = 0;

    for (size_t i = 0; i < json_string_length(v); i++)
        n += (p[i] & 0xc0) != 0x80;
    return n;
}

/* A string member within max characters (or bytes, when in_bytes); required
 * ones must be present and non-empty. */
static void check_string(json_t *root, const char *name, size_t max, bool in_bytes, bool required)
{
    json_t *v = json_object_get(root, name);
    size_t len;

    if (json_is_null(v))
        v = NULL;
    cs_fuzz_require(v || !required, "valid submission without \"%s\"", name);
    if (!v)
        return;
    cs_fuzz_require(json_is_string(v), "valid submission with a non-string \"%s\"", name);
    len = in_bytes ? json_string_length(v) : chars(v);
    cs_fuzz_require(len <= max, "valid submission with \"%s\" of %zu %s", name, len,
                    in_bytes ? "bytes" : "characters");
    cs_fuzz_require(!required || len > 0, "valid submission with empty \"%s\"", name);
}

/* DESIGN §3: 1 to 249 ASCII letters, digits, '_', '-' and '.', the first a letter or a digit. */
static void check_case_type(const char *t)
{
    size_t n = strlen(t);

    cs_fuzz_require(n >= 1 && n <= 249, "valid submission with a case type of %zu bytes", n);
    cs_fuzz_require((t[0] >= 'a' && t[0] <= 'z') || (t[0] >= 'A' && t[0] <= 'Z') ||
                        (t[0] >= '0' && t[0] <= '9'),
                    "valid submission with case type \"%s\"", t);
    for (size_t i = 0; i < n; i++)
        cs_fuzz_require((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') ||
                            (t[i] >= '0' && t[i] <= '9') || strchr("_-.", t[i]),
                        "valid submission with case type \"%s\"", t);
}

/* DESIGN §3: every number is kept exactly. What the worker stores (the
 * submission's JSON as cs_json_dumps writes it) holds the decimal values
 * written, and PostgreSQL's jsonb gives them back bit for bit. */
static void check_numbers_kept(const char *value, size_t len, json_t *root)
{
    char *text = cs_json_dumps(root), *pg, *input, why[256];
    json_t *back;
    json_error_t jerr;

    cs_fuzz_require(text != NULL, "cs_json_dumps returned NULL");
    /* JSON has no raw NUL (jansson would skip one after a number): never valid. */
    cs_fuzz_require(!memchr(value, '\0', len), "a valid submission with a NUL byte");
    if (!(input = strndup(value, len)))
        abort();
    cs_fuzz_require(cs_fuzz_same_numbers(input, text, why, sizeof(why)),
                    "valid submission whose number is stored as another: %s", why);
    free(input);
    pg = cs_fuzz_pg_render(text);
    back = json_loads(pg, 0, &jerr);
    cs_fuzz_require(back != NULL,
                    "valid submission stored as %s, which PostgreSQL gives back as %s, which "
                    "does not parse: %s",
                    text, pg, jerr.text);
    cs_fuzz_require_same(root, back, true, pg);
    json_decref(back);
    free(pg);
    free(text);
}

/* True if v is the integer n, or a string of decimal digits worth n. */
static bool is_number(json_t *v, int64_t n)
{
    const char *d = json_string_value(v);
    int64_t x = 0;

    if (json_is_integer(v))
        return json_integer_value(v) == n;
    if (!d || !*d)
        return false;
    for (; *d; d++) {
        if (*d < '0' || *d > '9' || x > (INT64_MAX - (*d - '0')) / 10)
            return false;
        x = x * 10 + (*d - '0');
    }
    return x == n;
}

/* "YYYY-MM-DD", a day of the Gregorian calendar in the years 0001 to 9999. */
static bool calendar_date(const char *d)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, m, day, n = 0;

    if (strlen(d) != 10 || sscanf(d, "%4d-%2d-%2d%n", &y, &m, &day, &n) != 3 || n != 10 ||
        strspn(d, "0123456789") != 4 || strspn(d + 5, "0123456789") != 2 ||
        strspn(d + 8, "0123456789") != 2)
        return false;
    if (y < 1 || m < 1 || m > 12 || day < 1)
        return false;
    return day <= days[m - 1] + (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0));
}

/* An http, https or ftp URL with something after the scheme, no space or control byte. */
static bool url_like(const char *u)
{
    static const char *const schemes[] = {"http://", "https://", "ftp://"};

    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        size_t n = strlen(schemes[i]);

        if (strncasecmp(u, schemes[i], n) == 0 && u[n] && !strchr("/?#", u[n])) {
            for (const unsigned char *p = (const unsigned char *)u; *p; p++)
                if (*p <= 0x20 || *p == 0x7f)
                    return false;
            return true;
        }
    }
    return false;
}

/* DESIGN §3's fields of CCD's case and event model, for a valid submission. */
static void check_ccd_fields(const cs_submission *s, json_t *root)
{
    json_t *v = json_object_get(root, "id"), *ops, *value;
    const char *op, *path;

    if (json_is_null(v))
        v = NULL;
    cs_fuzz_require(s->has_case_id == (v != NULL), "id presence is not what the JSON says");
    if (v)
        cs_fuzz_require(s->case_id >= 1 && is_number(v, s->case_id),
                        "valid submission with id %" PRId64, s->case_id);
    check_string(root, "event_name", 255, false, false);
    check_string(root, "user_first_name", 255, false, false);
    check_string(root, "user_last_name", 255, false, false);
    check_string(root, "state_name", 255, false, false);
    check_string(root, "proxied_by", 64, false, false);
    check_string(root, "proxied_by_first_name", 255, false, false);
    check_string(root, "proxied_by_last_name", 255, false, false);
    v = json_object_get(root, "case_type_version");
    if (v && !json_is_null(v))
        cs_fuzz_require(json_is_integer(v) && json_integer_value(v) >= 1 &&
                            json_integer_value(v) <= INT32_MAX && s->has_case_type_version &&
                            s->case_type_version == json_integer_value(v),
                        "valid submission with case_type_version out of 1..2^31-1");
    v = json_object_get(root, "resolved_ttl");
    cs_fuzz_require(s->has_resolved_ttl == (v != NULL), "resolved_ttl presence");
    if (v && !json_is_null(v))
        cs_fuzz_require(json_is_string(v) && calendar_date(json_string_value(v)),
                        "valid submission with resolved_ttl \"%s\"",
                        json_is_string(v) ? json_string_value(v) : "(not a string)");
    v = json_object_get(root, "significant_item");
    if (v && !json_is_null(v)) {
        cs_fuzz_require(json_is_object(v), "significant_item is not an object");
        cs_fuzz_require(json_is_string(json_object_get(v, "type")) &&
                            strcmp(json_string_value(json_object_get(v, "type")), "DOCUMENT") == 0,
                        "significant_item.type is not DOCUMENT");
        check_string(v, "description", 64, false, true);
        cs_fuzz_require(json_is_string(json_object_get(v, "url")) &&
                            url_like(json_string_value(json_object_get(v, "url"))),
                        "significant_item.url is not an http, https or ftp URL");
    }
    v = json_object_get(root, "supplementary_data_updates");
    if (v && !json_is_null(v)) {
        cs_fuzz_require(json_is_object(v) && json_object_size(v) > 0,
                        "supplementary_data_updates is not a non-empty object");
        json_object_foreach(v, op, ops)
        {
            bool inc = strcmp(op, "$inc") == 0;

            cs_fuzz_require(inc || strcmp(op, "$set") == 0, "supplementary operation \"%s\"", op);
            cs_fuzz_require(json_is_object(ops) && json_object_size(ops) > 0,
                            "supplementary %s is not a non-empty object", op);
            json_object_foreach(ops, path, value)
            {
                const char *dot = strchr(path, '.');

                cs_fuzz_require(path[0] && path[0] != '.' &&
                                    (!dot || (dot[1] && !strchr(dot + 1, '.'))),
                                "supplementary path \"%s\"", path);
                cs_fuzz_require(inc ? json_is_integer(value) : !json_is_null(value),
                                "supplementary %s value for \"%s\"", op, path);
            }
        }
    }
}

/* What a valid verdict promises (DESIGN §3), read from the JSON, not from s. */
static void check_valid(const cs_submission *s, const char *key, size_t key_len, const char *value,
                        size_t len)
{
    json_t *root = s->root, *v, *note;
    char ref[24], uuid[37];
    size_t i;

    cs_fuzz_require(
        cs_uuid_parse(json_string_value(json_object_get(root, "idempotency_key")), uuid) &&
            strcmp(uuid, s->idempotency_key) == 0,
        "valid submission with idempotency_key \"%s\"", s->idempotency_key);
    cs_fuzz_require(s->case_reference >= 1, "valid submission with case_reference %" PRId64,
                    s->case_reference);
    snprintf(ref, sizeof(ref), "%" PRId64, s->case_reference);
    v = json_object_get(root, "case_reference");
    cs_fuzz_require((json_is_integer(v) && json_integer_value(v) == s->case_reference) ||
                        (json_is_string(v) && strcmp(json_string_value(v), ref) == 0),
                    "case_reference %" PRId64 " is not what the JSON says", s->case_reference);
    cs_fuzz_require(key && key_len == strlen(ref) && memcmp(key, ref, key_len) == 0,
                    "valid submission whose key is not the case reference %s", ref);

    check_string(root, "case_type", 249, true, true);
    check_case_type(json_string_value(json_object_get(root, "case_type")));
    check_string(root, "event_id", 70, false, true);
    check_string(root, "user_id", 64, false, true);
    check_string(root, "jurisdiction", 255, false, false);
    check_string(root, "state", 255, false, false);
    check_string(root, "summary", 1024, false, false);
    check_string(root, "description", 65536, true, false);
    check_string(root, "security_classification", 10, true, false);
    if (s->security_classification)
        cs_fuzz_require(strcmp(s->security_classification, "PUBLIC") == 0 ||
                            strcmp(s->security_classification, "PRIVATE") == 0 ||
                            strcmp(s->security_classification, "RESTRICTED") == 0,
                        "valid submission with security_classification \"%s\"",
                        s->security_classification);
    cs_fuzz_require(
        !s->case_type ||
            strcmp(s->case_type, json_string_value(json_object_get(root, "case_type"))) == 0,
        "case_type is not what the JSON says");

    v = json_object_get(root, "expected_version");
    cs_fuzz_require(s->has_expected_version == (v && !json_is_null(v)),
                    "expected_version presence is not what the JSON says");
    if (s->has_expected_version)
        cs_fuzz_require(json_is_integer(v) && json_integer_value(v) >= 0 &&
                            json_integer_value(v) == s->expected_version,
                        "valid submission with expected_version %" PRId64, s->expected_version);
    cs_fuzz_require(!s->data || json_is_object(s->data), "data is not an object");
    cs_fuzz_require(!s->data_merge || json_is_object(s->data_merge), "data_merge is not an object");
    cs_fuzz_require(!(s->data && s->data_merge), "valid submission with data and data_merge");
    cs_fuzz_require(!s->notes || json_is_array(s->notes), "notes is not an array");
    json_array_foreach(s->notes, i, note)
    {
        cs_fuzz_require(json_is_object(note), "notes[%zu] is not an object", i);
        check_string(note, "author", 255, false, true);
        v = json_object_get(note, "body");
        cs_fuzz_require(json_is_string(v) && json_string_length(v) <= 65536,
                        "notes[%zu].body is missing, not a string or too long", i);
    }
    cs_fuzz_require(cs_submission_can_create(s) == (s->jurisdiction && s->state && s->data),
                    "can_create disagrees with jurisdiction, state and data");
    check_ccd_fields(s, root);
    check_numbers_kept(value, len, root);
}

/* The reason: NUL-terminated in its buffer, UTF-8 (it goes into the outcome's JSON, and
 * jansson refuses a string that is not; envelope.h says ASCII, but a case type's reason quotes
 * its character), empty exactly when valid. */
static void check_reason(cs_verdict v, const char *err, size_t size)
{
    if (size == 0)
        return;
    cs_fuzz_require(cs_fuzz_terminated(err, size), "reason not NUL-terminated");
    cs_fuzz_require(cs_fuzz_utf8(err, strlen(err)), "reason is not UTF-8: %s", err);
    /* A reason cut to fit a tiny buffer may be empty; a full-size one may not. */
    if (size >= 64)
        cs_fuzz_require((v == CS_VALID) == (err[0] == '\0'), "verdict %d with reason \"%s\"", v,
                        err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    size_t key_len = nl ? (size_t)(nl - (const char *)data) : 0;
    size_t len = nl ? size - key_len - 1 : size;
    char *key = nl ? cs_fuzz_exact_copy(data, key_len) : NULL;
    char *value = cs_fuzz_exact_copy(nl ? nl + 1 : (const char *)data, len);
    size_t small_size = size % 16;
    char err[512], *small = malloc(small_size ? small_size : 1);
    cs_submission *s = NULL, *again = NULL;
    cs_verdict v, w;

    if (!small)
        abort();
    memset(err, 'x', sizeof(err));
    v = cs_submission_parse(value, len, key, key_len, MAX_BYTES, &s, err, sizeof(err));
    cs_fuzz_require(v == CS_VALID || v == CS_INVALID || v == CS_REJECTED, "verdict %d", (int)v);
    check_reason(v, err, sizeof(err));
    cs_fuzz_require(s || v == CS_INVALID, "verdict %d without a submission", (int)v);
    cs_fuzz_require(!s || json_is_object(s->root), "a submission whose root is not an object");
    if (v == CS_VALID)
        check_valid(s, key, key_len, value, len);

    /* The same verdict with a reason buffer too small for it, or none at all. */
    w = cs_submission_parse(value, len, key, key_len, MAX_BYTES, &again, small, small_size);
    cs_fuzz_require(w == v, "verdict %d, then %d with a %zu-byte reason buffer", (int)v, (int)w,
                    small_size);
    check_reason(w, small, small_size);
    cs_submission_free(again);
    again = NULL;
    w = cs_submission_parse(value, len, key, key_len, MAX_BYTES, &again, NULL, 0);
    cs_fuzz_require(w == v, "verdict %d, then %d without a reason buffer", (int)v, (int)w);
    cs_submission_free(again);
    again = NULL;

    /* One byte over the limit: invalid, and nothing parsed. */
    if (len > 0) {
        w = cs_submission_parse(value, len, key, key_len, len - 1, &again, err, sizeof(err));
        cs_fuzz_require(w == CS_INVALID && !again, "a value over max_bytes was not refused");
        check_reason(w, err, sizeof(err));
    }

    cs_submission_free(s);
    free(small);
    free(value);
    free(key);
    return 0;
}
