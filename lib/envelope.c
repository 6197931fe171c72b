/* Submissions (DESIGN §3): the checks that make a message usable, then acceptable. */
#include "envelope.h"

#include "err.h"
#include "jsondump.h"
#include "sha256.h"
#include "utf8.h"
#include "uuid.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Limits of DESIGN §3. A field stored in a varchar(n) column is limited to n characters, as
 * PostgreSQL counts them (sql/001_ccd_schema.sql); text columns have no limit of their own and
 * are limited in bytes. */
#define MAX_NAME 255 /* characters: jurisdiction, state, notes[].author */
/* case_type: CS_CASE_TYPE_MAX bytes of ASCII (envelope.h) */
#define MAX_EVENT_ID    70    /* characters */
#define MAX_USER_ID     64    /* characters: user_id, proxied_by */
#define MAX_SUMMARY     1024  /* characters */
#define MAX_DESCRIPTION 65536 /* bytes: description, notes[].body */
/* CCD's fields (sql/007_ccd_case_model.sql): event_name, state_name, the user's and the proxy's
 * names are varchar(255) (MAX_NAME), proxied_by varchar(64) (MAX_USER_ID). */
#define MAX_ITEM_DESC 64 /* characters: significant_item.description, as CCD checks it */

#define SUPPLEMENTARY "supplementary_data_updates"

/* CHARS: the limit counts characters (a varchar column), else bytes. */
enum { OPTIONAL = 0, REQUIRED = 1 << 0, NONEMPTY = 1 << 1, CHARS = 1 << 2 };

/* The verdict so far and where its reason goes. */
typedef struct check {
    cs_verdict verdict;
    char *errstr;
    size_t errstr_size;
} check;

/* Records a failure. The first CS_INVALID wins, else the first CS_REJECTED, so
 * the fields can be read in one pass in document order while every
 * invalid-class check still comes before every rejected-class check. */
__attribute__((format(printf, 3, 4))) static void fail(check *c, cs_verdict v, const char *fmt, ...)
{
    va_list ap;

    if (c->verdict == CS_INVALID || (c->verdict == CS_REJECTED && v == CS_REJECTED))
        return;
    c->verdict = v;
    if (c->errstr_size == 0)
        return;
    va_start(ap, fmt);
    cs_utf8_vsnprintf(c->errstr, c->errstr_size, fmt, ap);
    va_end(ap);
}

/* A member, or NULL when it is absent or JSON null: both mean "not given". */
static json_t *member(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);

    return json_is_null(v) ? NULL : v;
}

/* Checks a string value named name in reasons; wrong is the verdict when it
 * is missing (with REQUIRED) or not a string. max counts characters with
 * CHARS, else bytes. Returns the string, or NULL. */
static const char *string_value(check *c, const char *name, json_t *v, cs_verdict wrong,
                                unsigned flags, size_t max)
{
    const char *unit = flags & CHARS ? "characters" : "bytes";
    size_t len;

    if (!v) {
        if (flags & REQUIRED)
            fail(c, wrong, "field \"%s\" is missing", name);
        return NULL;
    }
    if (!json_is_string(v)) {
        fail(c, wrong, "field \"%s\" must be a string", name);
        return NULL;
    }
    len = json_string_length(v);
    if (flags & CHARS)
        len = cs_utf8_chars(json_string_value(v), len);
    if (len > max)
        fail(c, CS_REJECTED, "field \"%s\" is %zu %s, over the limit of %zu", name, len, unit, max);
    else if ((flags & NONEMPTY) && len == 0)
        fail(c, CS_REJECTED, "field \"%s\" is empty", name);
    return json_string_value(v);
}

/* Reads an identifier (case_reference, id): a JSON integer, or a string of decimal digits in
 * canonical form (no sign, spaces or leading zeros), in 1..max (at most 2^63-1); wrong is the
 * verdict when it is not, why_max (or NULL) what the reason adds about max. v is given.
 * Returns 0 if it is unusable. */
static int64_t identifier_value(check *c, const char *name, json_t *v, cs_verdict wrong,
                                int64_t max, const char *why_max)
{
    const char *s;
    int64_t n = 0;

    if (json_is_integer(v)) {
        n = json_integer_value(v);
    } else if (json_is_string(v) && json_string_length(v) > 0 &&
               strspn(json_string_value(v), "0123456789") == json_string_length(v)) {
        s = json_string_value(v);
        if (s[0] == '0' && s[1] != '\0') {
            fail(c, wrong, "field \"%s\" has a leading zero", name);
            return 0;
        }
        for (; *s; s++) {
            if (n > (INT64_MAX - (*s - '0')) / 10) {
                n = 0;
                break;
            }
            n = n * 10 + (*s - '0');
        }
    } else {
        fail(c, wrong, "field \"%s\" must be an integer or a string of decimal digits", name);
        return 0;
    }
    if (n < 1 || n > max) {
        fail(c, wrong, "field \"%s\" is out of range 1 to %" PRId64 "%s", name, max,
             why_max ? why_max : "");
        return 0;
    }
    return n;
}

/* Reads case_reference (identifier_value); a message without one is unusable. */
static int64_t reference_value(check *c, json_t *v)
{
    if (!v) {
        fail(c, CS_INVALID, "field \"case_reference\" is missing");
        return 0;
    }
    return identifier_value(c, "case_reference", v, CS_INVALID, INT64_MAX, NULL);
}

/* Decodes the character at s[0..len) (valid UTF-8, as jansson checked); *n gets its bytes. */
static unsigned long code_point(const char *s, size_t len, size_t *n)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned long cp;
    size_t k;

    if (u[0] < 0x80) {
        *n = 1;
        return u[0];
    }
    k = u[0] >= 0xf0 ? 4 : u[0] >= 0xe0 ? 3 : 2;
    cp = u[0] & (0x3f >> (k - 1));
    for (size_t i = 1; i < k && i < len; i++)
        cp = (cp << 6) | (u[i] & 0x3f);
    *n = k < len ? k : len;
    return cp;
}

static bool index_char(unsigned long cp)
{
    return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') ||
           cp == '_' || cp == '-' || cp == '.';
}

bool cs_case_type_check(const char *case_type, size_t len, char *why, size_t why_size)
{
    char dummy[1];
    size_t pos = 0, n;

    if (!why) {
        why = dummy;
        why_size = sizeof(dummy);
    }
    if (len == 0) {
        snprintf(why, why_size, "is empty");
        return false;
    }
    /* Elasticsearch refuses these first; "." also hides the index. */
    if (strchr("_-+.", case_type[0])) {
        snprintf(why, why_size, "cannot name an index: it starts with \"%c\"", case_type[0]);
        return false;
    }
    for (size_t i = 0; i < len; i += n) {
        unsigned long cp = code_point(case_type + i, len - i, &n);

        pos++;
        if (index_char(cp))
            continue;
        /* Show the character itself only where it prints; its code point always. */
        if (cp >= 0x20 && cp < 0x7f)
            snprintf(why, why_size, "cannot name an index: character %zu is \"%c\"", pos, (char)cp);
        else if (cp >= 0xa0)
            cs_utf8_snprintf(why, why_size,
                             "cannot name an index: character %zu is \"%.*s\" (U+%04lX)", pos,
                             (int)n, case_type + i, cp);
        else
            snprintf(why, why_size, "cannot name an index: character %zu is U+%04lX", pos, cp);
        cs_utf8_snprintf(why + strlen(why), why_size - strlen(why),
                         ", not an ASCII letter, digit, \"_\", \"-\" or \".\"");
        return false;
    }
    if (len > CS_CASE_TYPE_MAX) {
        snprintf(why, why_size,
                 "cannot name an index: it is %zu bytes, over the limit of %d (an index name, "
                 "lower(case_type) + \"_cases\", has at most 255)",
                 len, CS_CASE_TYPE_MAX);
        return false;
    }
    return true;
}

/* Reads an optional object field. */
static json_t *object_value(check *c, json_t *root, const char *name)
{
    json_t *v = member(root, name);

    if (v && !json_is_object(v)) {
        fail(c, CS_REJECTED, "field \"%s\" must be an object", name);
        return NULL;
    }
    return v;
}

/* notes: an array of objects, each with a non-empty author and a body. */
static json_t *notes_value(check *c, json_t *root)
{
    json_t *notes = member(root, "notes"), *note;
    char name[48];
    size_t i;

    if (notes && !json_is_array(notes)) {
        fail(c, CS_REJECTED, "field \"notes\" must be an array");
        return NULL;
    }
    json_array_foreach(notes, i, note)
    {
        if (!json_is_object(note)) {
            fail(c, CS_REJECTED, "field \"notes[%zu]\" must be an object", i);
            continue;
        }
        snprintf(name, sizeof(name), "notes[%zu].author", i);
        string_value(c, name, member(note, "author"), CS_REJECTED, REQUIRED | NONEMPTY | CHARS,
                     MAX_NAME);
        snprintf(name, sizeof(name), "notes[%zu].body", i);
        string_value(c, name, member(note, "body"), CS_REJECTED, REQUIRED, MAX_DESCRIPTION);
    }
    return notes;
}

/* True if s, digits and hyphens in the shape YYYY-MM-DD, is a day of the (proleptic Gregorian)
 * calendar written YYYY-MM-DD, years 0001 to 9999, as PostgreSQL's date takes and gives it back. */
static bool calendar_date(const char *s)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);

    if (y < 1 || m < 1 || m > 12 || d < 1)
        return false;
    return d <= days[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
}

/* True if s, NUL-terminated or longer, starts with the shape YYYY-MM-DD (digits and hyphens). */
static bool date_shape(const char *s)
{
    return strspn(s, "0123456789") == 4 && s[4] == '-' && strspn(s + 5, "0123456789") == 2 &&
           s[7] == '-' && strspn(s + 8, "0123456789") == 2;
}

bool cs_calendar_day(const char *s)
{
    return strlen(s) == 10 && date_shape(s) && calendar_date(s);
}

/* resolved_ttl: absent leaves the case's as it is, null clears it, else an ISO date. */
static void resolved_ttl_value(check *c, cs_submission *s, json_t *root)
{
    json_t *v = json_object_get(root, "resolved_ttl");
    const char *d;

    if (!v)
        return;
    s->has_resolved_ttl = true;
    if (json_is_null(v))
        return;
    d = json_string_value(v);
    if (!d || json_string_length(v) != 10 || !date_shape(d)) {
        fail(c, CS_REJECTED, "field \"resolved_ttl\" must be a date \"YYYY-MM-DD\" or null");
        s->has_resolved_ttl = false;
        return;
    }
    if (!calendar_date(d)) {
        fail(c, CS_REJECTED, "field \"resolved_ttl\" is not a calendar date: \"%s\"", d);
        s->has_resolved_ttl = false;
        return;
    }
    s->resolved_ttl = d;
}

/* True if url is an absolute http, https or ftp URL with a host, without spaces or control
 * characters: the URLs CCD's validator of significant items takes. */
static bool url_ok(const char *url, size_t len)
{
    static const char *const schemes[] = {"http://", "https://", "ftp://"};
    size_t n = 0;

    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]) && !n; i++)
        if (len > strlen(schemes[i]) && strncasecmp(url, schemes[i], strlen(schemes[i])) == 0)
            n = strlen(schemes[i]);
    if (!n || strchr("/?#", url[n]))
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
            return false;
    return true;
}

/* significant_item: {type: "DOCUMENT", description: 1..64 characters, url}, as CCD checks the
 * one a callback returns. Members beyond these three are ignored (and not stored). */
static json_t *significant_item_value(check *c, json_t *root)
{
    json_t *item = object_value(c, root, "significant_item");
    const char *type, *url;

    if (!item)
        return NULL;
    type = string_value(c, "significant_item.type", member(item, "type"), CS_REJECTED, REQUIRED,
                        SIZE_MAX);
    if (type && strcmp(type, "DOCUMENT") != 0)
        fail(c, CS_REJECTED, "field \"significant_item.type\" must be DOCUMENT");
    string_value(c, "significant_item.description", member(item, "description"), CS_REJECTED,
                 REQUIRED | NONEMPTY | CHARS, MAX_ITEM_DESC);
    url = string_value(c, "significant_item.url", member(item, "url"), CS_REJECTED, REQUIRED,
                       SIZE_MAX);
    if (url && !url_ok(url, strlen(url)))
        fail(c, CS_REJECTED, "field \"significant_item.url\" must be an http, https or ftp URL");
    return item;
}

/* Checks one path of a supplementary operation: "a" or "a.b", no level empty. */
static void supplementary_path(check *c, const char *op, const char *path)
{
    const char *dot = strchr(path, '.');

    if (dot && strchr(dot + 1, '.'))
        fail(c, CS_REJECTED,
             "field \"" SUPPLEMENTARY ".%s\" has the path \"%s\" of more than two levels (at "
             "most \"a.b\")",
             op, path);
    else if (path[0] == '\0' || path[0] == '.' || (dot && dot[1] == '\0'))
        fail(c, CS_REJECTED,
             "field \"" SUPPLEMENTARY ".%s\" has the path \"%s\" with an empty level", op, path);
}

/* supplementary_data_updates, as CCD's SupplementaryDataUpdateRequestValidator and the SDK
 * take it: a non-empty object of the operations "$set" and "$inc", each a non-empty object of
 * paths of at most two levels; "$inc" adds integers, "$set" sets any value but null. */
static json_t *supplementary_value(check *c, json_t *root)
{
    json_t *updates = member(root, SUPPLEMENTARY), *ops, *value;
    const char *op, *path;

    if (!updates)
        return NULL;
    if (!json_is_object(updates)) {
        fail(c, CS_REJECTED, "field \"" SUPPLEMENTARY "\" must be an object");
        return NULL;
    }
    if (json_object_size(updates) == 0) {
        fail(c, CS_REJECTED, "field \"" SUPPLEMENTARY "\" is empty");
        return NULL;
    }
    json_object_foreach(updates, op, ops)
    {
        bool inc = strcmp(op, "$inc") == 0;

        if (!inc && strcmp(op, "$set") != 0) {
            fail(c, CS_REJECTED,
                 "field \"" SUPPLEMENTARY "\" has the operation \"%s\": only \"$set\" and "
                 "\"$inc\" are known",
                 op);
            continue;
        }
        if (!json_is_object(ops)) {
            fail(c, CS_REJECTED, "field \"" SUPPLEMENTARY ".%s\" must be an object", op);
            continue;
        }
        if (json_object_size(ops) == 0) {
            fail(c, CS_REJECTED, "field \"" SUPPLEMENTARY ".%s\" is empty", op);
            continue;
        }
        json_object_foreach(ops, path, value)
        {
            supplementary_path(c, op, path);
            if (inc && !json_is_integer(value))
                fail(c, CS_REJECTED,
                     "field \"" SUPPLEMENTARY ".$inc\" gives \"%s\" a value that is not an "
                     "integer",
                     path);
            else if (!inc && json_is_null(value))
                fail(c, CS_REJECTED,
                     "field \"" SUPPLEMENTARY ".$set\" gives \"%s\" null, which cannot be set",
                     path);
        }
    }
    return updates;
}

/* The first field a supplementary data update may not carry, or NULL: it changes nothing of
 * the case but its supplementary data, and it is not under the optimistic lock. */
static const char *beside_supplementary(const cs_submission *s)
{
    return s->data                      ? "data"
           : s->data_merge              ? "data_merge"
           : s->state                   ? "state"
           : s->security_classification ? "security_classification"
           : s->notes                   ? "notes"
           : s->has_resolved_ttl        ? "resolved_ttl"
           : s->data_classification     ? "data_classification"
           : s->has_case_id             ? "id"
           : s->has_expected_version    ? "expected_version"
                                        : NULL;
}

/* A revision CCD reports (start_revision, merge_revision): absent, or an integer 0 or more.
 * Returns whether it was given, with its value in *out. */
static bool revision_value(check *c, json_t *root, const char *name, int64_t *out)
{
    json_t *v = member(root, name);

    if (!v)
        return false;
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        fail(c, CS_REJECTED, "field \"%s\" must be an integer 0 or more", name);
        return false;
    }
    *out = (int64_t)json_integer_value(v);
    return true;
}

/* The fields CCD records of a case and its events (DESIGN §3). */
static void read_ccd_fields(check *c, cs_submission *s)
{
    json_t *root = s->root, *v;
    const char *other;

    if ((v = member(root, "id"))) {
        /* casestream's own ids start where CCD's end: two cases never get the same one. */
        s->case_id = identifier_value(c, "id", v, CS_REJECTED, CS_CASE_ID_OWN_FIRST - 1,
                                      ": casestream gives the ids from 2^62 up itself");
        s->has_case_id = s->case_id > 0;
    }
    s->data_classification = object_value(c, root, "data_classification");
    resolved_ttl_value(c, s, root);
    s->event_name =
        string_value(c, "event_name", member(root, "event_name"), CS_REJECTED, CHARS, MAX_NAME);
    s->user_first_name = string_value(c, "user_first_name", member(root, "user_first_name"),
                                      CS_REJECTED, CHARS, MAX_NAME);
    s->user_last_name = string_value(c, "user_last_name", member(root, "user_last_name"),
                                     CS_REJECTED, CHARS, MAX_NAME);
    s->state_name =
        string_value(c, "state_name", member(root, "state_name"), CS_REJECTED, CHARS, MAX_NAME);
    v = member(root, "case_type_version");
    if (v &&
        (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > INT32_MAX)) {
        fail(c, CS_REJECTED, "field \"case_type_version\" must be an integer from 1 to %d",
             INT32_MAX);
    } else if (v) {
        s->has_case_type_version = true;
        s->case_type_version = (int32_t)json_integer_value(v);
    }
    s->significant_item = significant_item_value(c, root);
    s->proxied_by =
        string_value(c, "proxied_by", member(root, "proxied_by"), CS_REJECTED, CHARS, MAX_USER_ID);
    s->proxied_by_first_name =
        string_value(c, "proxied_by_first_name", member(root, "proxied_by_first_name"), CS_REJECTED,
                     CHARS, MAX_NAME);
    s->proxied_by_last_name =
        string_value(c, "proxied_by_last_name", member(root, "proxied_by_last_name"), CS_REJECTED,
                     CHARS, MAX_NAME);
    s->has_start_revision = revision_value(c, root, "start_revision", &s->start_revision);
    s->has_merge_revision = revision_value(c, root, "merge_revision", &s->merge_revision);
    s->supplementary_updates = supplementary_value(c, root);
    if (s->supplementary_updates && (other = beside_supplementary(s)) != NULL)
        fail(c, CS_REJECTED,
             "field \"%s\" cannot be used with \"" SUPPLEMENTARY "\": a supplementary data "
             "update changes nothing else",
             other);
}

/* Fills s from its root, recording the first failure in c. */
static void read_fields(check *c, cs_submission *s, const char *key, size_t key_len)
{
    json_t *root = s->root, *v;
    const char *str;
    char ref[24], why[160];
    int ref_len;

    /* The key fields: without them the message is unusable (CS_INVALID). */
    str = string_value(c, "idempotency_key", member(root, "idempotency_key"), CS_INVALID, REQUIRED,
                       SIZE_MAX);
    if (str && !cs_uuid_parse(str, s->idempotency_key))
        fail(c, CS_INVALID, "field \"idempotency_key\" is not a uuid");
    s->case_reference = reference_value(c, member(root, "case_reference"));
    if (s->case_reference > 0) {
        ref_len = snprintf(ref, sizeof(ref), "%" PRId64, s->case_reference);
        if (!key)
            fail(c, CS_INVALID, "message has no key; it must be the case reference %s", ref);
        else if (key_len != (size_t)ref_len || memcmp(key, ref, key_len) != 0)
            fail(c, CS_INVALID, "message key is not the case reference %s", ref);
    }
    /* A case type names the case's index (DESIGN §6): one that cannot is as unusable as none. */
    s->case_type =
        string_value(c, "case_type", member(root, "case_type"), CS_INVALID, REQUIRED, SIZE_MAX);
    if (s->case_type && !cs_case_type_check(s->case_type, strlen(s->case_type), why, sizeof(why)))
        fail(c, CS_INVALID, "field \"case_type\" %s", why);
    s->event_id = string_value(c, "event_id", member(root, "event_id"), CS_INVALID,
                               REQUIRED | NONEMPTY | CHARS, MAX_EVENT_ID);
    s->user_id = string_value(c, "user_id", member(root, "user_id"), CS_INVALID,
                              REQUIRED | NONEMPTY | CHARS, MAX_USER_ID);

    /* The other fields: usable, but possibly not acceptable (CS_REJECTED). */
    s->jurisdiction =
        string_value(c, "jurisdiction", member(root, "jurisdiction"), CS_REJECTED, CHARS, MAX_NAME);
    s->state = string_value(c, "state", member(root, "state"), CS_REJECTED, CHARS, MAX_NAME);
    s->summary =
        string_value(c, "summary", member(root, "summary"), CS_REJECTED, CHARS, MAX_SUMMARY);
    s->description = string_value(c, "description", member(root, "description"), CS_REJECTED,
                                  OPTIONAL, MAX_DESCRIPTION);
    v = member(root, "expected_version");
    if (v && (!json_is_integer(v) || json_integer_value(v) < 0)) {
        fail(c, CS_REJECTED, "field \"expected_version\" must be an integer >= 0");
    } else if (v) {
        s->has_expected_version = true;
        s->expected_version = json_integer_value(v);
    }
    s->data = object_value(c, root, "data");
    s->data_merge = object_value(c, root, "data_merge");
    if (s->data && s->data_merge)
        fail(c, CS_REJECTED, "fields \"data\" and \"data_merge\" cannot be used together");
    s->notes = notes_value(c, root);
    str = string_value(c, "security_classification", member(root, "security_classification"),
                       CS_REJECTED, OPTIONAL, MAX_NAME);
    if (str && strcmp(str, "PUBLIC") != 0 && strcmp(str, "PRIVATE") != 0 &&
        strcmp(str, "RESTRICTED") != 0)
        fail(c, CS_REJECTED,
             "field \"security_classification\" must be one of PUBLIC, PRIVATE, RESTRICTED");
    else
        s->security_classification = str;
    read_ccd_fields(c, s);
}

/* Keeps reasons ASCII: jansson's text can quote (and truncate) the bytes it choked on. */
static void ascii_only(char *text)
{
    for (; *text; text++) {
        if (*text < 0x20 || *text > 0x7e)
            *text = '?';
    }
}

cs_verdict cs_submission_parse(const char *value, size_t len, const char *key, size_t key_len,
                               size_t max_bytes, cs_submission **out, char *errstr,
                               size_t errstr_size)
{
    check c = {CS_VALID, errstr, errstr_size};
    json_error_t jerr;
    json_t *root;

    *out = NULL;
    if (errstr_size > 0)
        errstr[0] = '\0';
    if (len > max_bytes) {
        fail(&c, CS_INVALID, "submission is %zu bytes, over the limit of %zu", len, max_bytes);
        return c.verdict;
    }
    if (!value || len == 0) {
        fail(&c, CS_INVALID, "submission is empty");
        return c.verdict;
    }
    /* JSON has no raw NUL, but jansson skips one that follows a number or a literal. */
    if (memchr(value, '\0', len)) {
        fail(&c, CS_INVALID, "not valid JSON: a NUL byte at offset %zu",
             (size_t)((const char *)memchr(value, '\0', len) - value));
        return c.verdict;
    }
    /* jansson rejects invalid UTF-8 and \u0000 unless told otherwise. */
    root = json_loadb(value, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root) {
        ascii_only(jerr.text);
        fail(&c, CS_INVALID, "not valid JSON: %s at line %d column %d", jerr.text, jerr.line,
             jerr.column);
        return c.verdict;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        fail(&c, CS_INVALID, "submission is not a JSON object");
        return c.verdict;
    }
    *out = calloc(1, sizeof(**out));
    if (!*out) {
        json_decref(root);
        fail(&c, CS_INVALID, "out of memory");
        return c.verdict;
    }
    (*out)->root = root;
    read_fields(&c, *out, key, key_len);
    if (c.verdict == CS_VALID) {
        char why[160];

        /* A number PostgreSQL would give back changed is refused now, not
         * accepted and later unreadable or silently different. */
        if (!cs_json_numbers_keep(value, len, why, sizeof(why)))
            fail(&c, CS_REJECTED, "%s", why);
    }
    return c.verdict;
}

void cs_submission_free(cs_submission *s)
{
    if (!s)
        return;
    json_decref(s->root);
    free(s);
}

bool cs_submission_can_create(const cs_submission *s)
{
    return s && s->jurisdiction && s->state && s->data;
}

bool cs_submission_is_supplementary(const cs_submission *s)
{
    return s && s->supplementary_updates;
}

int cs_submission_fingerprint(const cs_submission *s, char hex[65])
{
    char *text = json_dumps(s->root, JSON_COMPACT | JSON_SORT_KEYS);

    if (!text)
        return CS_ERR;
    cs_sha256_hex(text, strlen(text), hex);
    free(text);
    return CS_OK;
}
