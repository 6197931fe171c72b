/* CCD's /ccd-persistence requests in casestream's terms: routes, mappings, answers. */
#include "ccd.h"

#include "envelope.h"
#include "err.h"
#include "jsondump.h"
#include "utf8.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PREFIX "/ccd-persistence/cases"

static const char *const route_names[CS_API_ROUTE_COUNT] = {
    "cases",  "submit",  "supplementary", "history",    "event",   "livez",
    "readyz", "metrics", "not_found",     "bad_method", "bad_path"};

const char *cs_api_route_name(cs_api_route route)
{
    return (unsigned)route < CS_API_ROUTE_COUNT ? route_names[route] : "not_found";
}

bool cs_api_parse_ref(const char *s, int64_t *ref)
{
    int64_t v = 0;

    if (!s || strlen(s) != 16 || s[0] == '0')
        return false;
    for (size_t i = 0; i < 16; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *ref = v;
    return true;
}

/* A positive decimal number of at most 18 digits, the whole of [s, s + len). */
static bool parse_id(const char *s, size_t len, int64_t *out)
{
    int64_t v = 0;

    if (len == 0 || len > 18 || s[0] == '0')
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static void bad_method(cs_api_target *out, const char *allow)
{
    out->route = CS_API_BAD_METHOD;
    out->allow = allow;
}

void cs_api_route_of(const char *method, const char *path, cs_api_target *out)
{
    bool get = strcmp(method, "GET") == 0, head = strcmp(method, "HEAD") == 0;
    bool post = strcmp(method, "POST") == 0;
    const char *rest, *slash;
    char ref[32];
    size_t n;

    memset(out, 0, sizeof(*out));
    out->route = CS_API_NOT_FOUND;
    if (strcmp(path, "/livez") == 0 || strcmp(path, "/readyz") == 0 ||
        strcmp(path, "/healthz") == 0 || strcmp(path, "/metrics") == 0) {
        if (!get && !head)
            bad_method(out, "GET, HEAD");
        else
            out->route = path[1] == 'l'   ? CS_API_LIVEZ
                         : path[1] == 'm' ? CS_API_METRICS
                                          : CS_API_READYZ;
        return;
    }
    if (strncmp(path, PREFIX, strlen(PREFIX)) != 0)
        return;
    rest = path + strlen(PREFIX);
    if (*rest == '\0') {
        if (get)
            out->route = CS_API_CASES;
        else if (post)
            out->route = CS_API_SUBMIT;
        else
            bad_method(out, "GET, POST");
        return;
    }
    if (*rest++ != '/')
        return;
    /* {ref}/supplementary-data, {ref}/history, {ref}/history/{id} */
    if (!(slash = strchr(rest, '/')))
        return;
    n = (size_t)(slash - rest);
    if (strcmp(slash, "/supplementary-data") == 0) {
        out->route = post ? CS_API_SUPPLEMENTARY : CS_API_BAD_METHOD;
        out->allow = "POST";
    } else if (strcmp(slash, "/history") == 0) {
        out->route = get ? CS_API_HISTORY : CS_API_BAD_METHOD;
        out->allow = "GET";
    } else if (strncmp(slash, "/history/", 9) == 0 && slash[9] && !strchr(slash + 9, '/')) {
        out->route = get ? CS_API_EVENT : CS_API_BAD_METHOD;
        out->allow = "GET";
        if (get && !parse_id(slash + 9, strlen(slash + 9), &out->event_id)) {
            out->route = CS_API_BAD_PATH;
            out->reason = "the history event id must be a positive integer";
            return;
        }
    } else {
        return;
    }
    if (out->route == CS_API_BAD_METHOD)
        return;
    if (n >= sizeof(ref) ||
        (memcpy(ref, rest, n), ref[n] = '\0', !cs_api_parse_ref(ref, &out->ref))) {
        out->route = CS_API_BAD_PATH;
        out->reason = "the case reference must be a 16-digit number";
    }
}

int cs_api_add_refs(const char *value, int64_t refs[CS_API_MAX_REFS], size_t *n, char *errstr,
                    size_t errstr_size)
{
    const char *p = value;

    for (;;) {
        size_t len = strcspn(p, ",");
        char item[32];
        int64_t ref;

        while (len > 0 && *p == ' ')
            p++, len--;
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (len == 0 || len >= sizeof(item)) {
            snprintf(errstr, errstr_size, "case-refs has an empty or overlong item");
            return CS_ERR_INVALID;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (!cs_api_parse_ref(item, &ref)) {
            cs_utf8_snprintf(errstr, errstr_size,
                             "case-refs: \"%s\" is not a 16-digit case reference",
                             cs_utf8_repair(item));
            return CS_ERR_INVALID;
        }
        if (*n >= CS_API_MAX_REFS) {
            snprintf(errstr, errstr_size, "case-refs names more than %d cases", CS_API_MAX_REFS);
            return CS_ERR_INVALID;
        }
        refs[(*n)++] = ref;
        p += strcspn(p, ",");
        if (*p == '\0')
            return CS_OK;
        p++;
    }
}

static const char *claim_string(const json_t *claims, const char *name)
{
    const json_t *v = json_object_get(claims, name);

    return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

bool cs_api_user_of(const json_t *claims, cs_api_user *out)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(claims))
        return false;
    if (!(out->id = claim_string(claims, "uid")))
        out->id = claim_string(claims, "sub");
    out->first_name = claim_string(claims, "given_name");
    out->last_name = claim_string(claims, "family_name");
    return out->id != NULL;
}

bool cs_api_service_allowed(const char *allowed, const char *service)
{
    size_t wanted = strlen(service);
    const char *p = allowed;

    if (wanted == 0)
        return false;
    for (;;) {
        size_t len = strcspn(p, ",");
        const char *name = p;

        while (len > 0 && *name == ' ')
            name++, len--;
        while (len > 0 && name[len - 1] == ' ')
            len--;
        if (len == wanted && memcmp(name, service, len) == 0)
            return true;
        p += strcspn(p, ",");
        if (*p == '\0')
            return false;
        p++;
    }
}

/* --- mapping ---------------------------------------------------------------------------- */

typedef enum want { WANT_STRING, WANT_OBJECT, WANT_INTEGER } want;

/* The member name of parent (named where), if present and not null: of the wanted type, else
 * CS_ERR_INVALID with the reason. *out is NULL when absent or null. */
static int member(const json_t *parent, const char *where, const char *name, want w, json_t **out,
                  char *errstr, size_t errstr_size)
{
    static const char *const kinds[] = {"a string", "an object", "an integer"};
    json_t *v = json_object_get(parent, name);
    bool ok;

    *out = NULL;
    if (!v || json_is_null(v))
        return CS_OK;
    ok = w == WANT_STRING   ? json_is_string(v)
         : w == WANT_OBJECT ? json_is_object(v)
                            : json_is_integer(v);
    if (!ok) {
        snprintf(errstr, errstr_size, "%s%s%s must be %s", where, where[0] ? "." : "", name,
                 kinds[w]);
        return CS_ERR_INVALID;
    }
    *out = v;
    return CS_OK;
}

/* Copies member name of from (if present and not null) into to as to_name. */
static int copy(json_t *to, const char *to_name, const json_t *from, const char *where,
                const char *name, want w, char *errstr, size_t errstr_size)
{
    json_t *v;
    int rc = member(from, where, name, w, &v, errstr, errstr_size);

    if (rc || !v)
        return rc;
    return json_object_set(to, to_name, v) ? CS_ERR : CS_OK;
}

/* The case reference of case_details: "reference", else "id" (CCD's CaseDetails writes its
 * reference as "id"), a 16-digit number or its digits as a string. */
static int case_reference(const json_t *details, int64_t *ref, char *errstr, size_t errstr_size)
{
    const char *name = json_object_get(details, "reference") ? "reference" : "id";
    json_t *v = json_object_get(details, name);
    char digits[32] = "";

    if (json_is_integer(v))
        snprintf(digits, sizeof(digits), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_string(v))
        snprintf(digits, sizeof(digits), "%s", json_string_value(v));
    if (!cs_api_parse_ref(digits, ref)) {
        snprintf(errstr, errstr_size, "case_details.%s must be a 16-digit case reference", name);
        return CS_ERR_INVALID;
    }
    return CS_OK;
}

/* Checks a built submission with the envelope's validator; a refusal is a 400. */
static int validate(const char *json, int64_t ref, char *errstr, size_t errstr_size)
{
    char key[24];
    int n = snprintf(key, sizeof(key), "%" PRId64, ref);
    cs_submission *s = NULL;
    cs_verdict v =
        cs_submission_parse(json, strlen(json), key, (size_t)n, SIZE_MAX, &s, errstr, errstr_size);

    cs_submission_free(s);
    return v == CS_VALID ? CS_OK : CS_ERR_INVALID;
}

/* Parses body as a JSON object, numbers kept as stored. */
static json_t *parse_object(const char *body, size_t len, char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    json_t *root;
    char why[256];

    if (!(root = cs_json_loads_stored(body, len, &jerr))) {
        /* jansson's text quotes the bytes it stopped at, cut anywhere. */
        cs_utf8_snprintf(errstr, errstr_size, "the body is not JSON: %s at line %d column %d",
                         cs_utf8_repair(jerr.text), jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(root)) {
        snprintf(errstr, errstr_size, "the body must be a JSON object");
        json_decref(root);
        return NULL;
    }
    /* After the object check: its closing brace ends every number before the end of body. */
    if (!cs_json_numbers_keep(body, len, why, sizeof(why))) {
        snprintf(errstr, errstr_size, "%s", why);
        json_decref(root);
        return NULL;
    }
    return root;
}

int cs_api_map_event(const char *body, size_t len, const char *idempotency_key,
                     const cs_api_user *user, const char *notes_field, cs_api_mapped *out,
                     char *errstr, size_t errstr_size)
{
    json_t *root = NULL, *sub = json_object(), *details, *event, *v, *type_event;
    int rc = CS_ERR_INVALID;

    memset(out, 0, sizeof(*out));
    if (!sub) {
        snprintf(errstr, errstr_size, "out of memory");
        return CS_ERR;
    }
    if (!(root = parse_object(body, len, errstr, errstr_size)))
        goto cleanup;
    if ((rc = member(root, "", "case_details", WANT_OBJECT, &details, errstr, errstr_size)) ||
        (rc = member(root, "", "event_details", WANT_OBJECT, &event, errstr, errstr_size)))
        goto cleanup;
    rc = CS_ERR_INVALID;
    if (!details || !event) {
        snprintf(errstr, errstr_size, "%s is required", details ? "event_details" : "case_details");
        goto cleanup;
    }
    if ((rc = case_reference(details, &out->ref, errstr, errstr_size)))
        goto cleanup;
    json_object_set_new(sub, "idempotency_key", json_string(idempotency_key));
    json_object_set_new(sub, "case_reference", json_integer(out->ref));
    /* The case type: case_details', else event_details'; both given, they agree. */
    if ((rc = member(details, "case_details", "case_type_id", WANT_STRING, &v, errstr,
                     errstr_size)) ||
        (rc = member(event, "event_details", "case_type", WANT_STRING, &type_event, errstr,
                     errstr_size)))
        goto cleanup;
    rc = CS_ERR_INVALID;
    if (!v && !(v = type_event)) {
        snprintf(errstr, errstr_size, "case_details.case_type_id is required");
        goto cleanup;
    }
    if (type_event && !json_equal(v, type_event)) {
        snprintf(errstr, errstr_size,
                 "event_details.case_type differs from case_details.case_type_id");
        goto cleanup;
    }
    json_object_set(sub, "case_type", v);
    if ((rc = copy(sub, "jurisdiction", details, "case_details", "jurisdiction", WANT_STRING,
                   errstr, errstr_size)) ||
        (rc = member(event, "event_details", "event_id", WANT_STRING, &v, errstr, errstr_size)))
        goto cleanup;
    if (!v) {
        snprintf(errstr, errstr_size, "event_details.event_id is required");
        rc = CS_ERR_INVALID;
        goto cleanup;
    }
    json_object_set(sub, "event_id", v);
    json_object_set_new(sub, "user_id", json_string(user->id));
    if (user->first_name)
        json_object_set_new(sub, "user_first_name", json_string(user->first_name));
    if (user->last_name)
        json_object_set_new(sub, "user_last_name", json_string(user->last_name));
    /* case_details.version is the version the user started from: absent on a create. */
    if ((rc = member(details, "case_details", "version", WANT_INTEGER, &v, errstr, errstr_size)))
        goto cleanup;
    if (v)
        json_object_set(sub, "expected_version", v);
    out->created = v == NULL;
    if ((rc = copy(sub, "state", details, "case_details", "state", WANT_STRING, errstr,
                   errstr_size)) ||
        (rc = member(details, "case_details", "case_data", WANT_OBJECT, &v, errstr, errstr_size)))
        goto cleanup;
    if (v) {
        /* The notes are shown under notes_field and kept outside the blob: never stored in it. */
        json_t *data = json_copy(v);

        if (!data || json_object_set_new(sub, "data", data)) {
            rc = CS_ERR;
            goto cleanup;
        }
        if (notes_field && notes_field[0])
            json_object_del(data, notes_field);
    }
    const struct {
        json_t *from;
        const char *where, *name, *to;
        want w;
    } copies[] = {
        {details, "case_details", "security_classification", "security_classification",
         WANT_STRING},
        {details, "case_details", "data_classification", "data_classification", WANT_OBJECT},
        {event, "event_details", "event_name", "event_name", WANT_STRING},
        {event, "event_details", "summary", "summary", WANT_STRING},
        {event, "event_details", "description", "description", WANT_STRING},
        {event, "event_details", "proxied_by", "proxied_by", WANT_STRING},
        {event, "event_details", "proxied_by_first_name", "proxied_by_first_name", WANT_STRING},
        {event, "event_details", "proxied_by_last_name", "proxied_by_last_name", WANT_STRING},
        {root, "", "resolved_ttl", "resolved_ttl", WANT_STRING},
        {root, "", "internal_case_id", "id", WANT_INTEGER},
        {root, "", "start_revision", "start_revision", WANT_INTEGER},
        {root, "", "merge_revision", "merge_revision", WANT_INTEGER},
    };
    for (size_t i = 0; i < sizeof(copies) / sizeof(copies[0]); i++)
        if ((rc = copy(sub, copies[i].to, copies[i].from, copies[i].where, copies[i].name,
                       copies[i].w, errstr, errstr_size)))
            goto cleanup;
    if (!(out->json = cs_json_dumps(sub))) {
        snprintf(errstr, errstr_size, "out of memory");
        rc = CS_ERR;
        goto cleanup;
    }
    rc = validate(out->json, out->ref, errstr, errstr_size);
cleanup:
    if (rc == CS_ERR && !errstr[0])
        snprintf(errstr, errstr_size, "out of memory");
    if (rc != CS_OK) {
        free(out->json);
        out->json = NULL;
    }
    json_decref(root);
    json_decref(sub);
    return rc;
}

int cs_api_map_supplementary(const char *body, size_t len, int64_t ref, const char *case_type,
                             const char *idempotency_key, const cs_api_user *user, char **json,
                             char *errstr, size_t errstr_size)
{
    json_t *root, *sub = NULL, *updates;
    int rc = CS_ERR_INVALID;

    *json = NULL;
    if (!(root = parse_object(body, len, errstr, errstr_size)))
        return CS_ERR_INVALID;
    updates = json_object_get(root, "supplementary_data_updates");
    if (!json_is_object(updates)) {
        snprintf(errstr, errstr_size, "supplementary_data_updates must be an object");
        goto cleanup;
    }
    rc = CS_ERR;
    if (!(sub = json_pack("{s:s, s:I, s:s, s:s, s:s, s:O}", "idempotency_key", idempotency_key,
                          "case_reference", (json_int_t)ref, "case_type", case_type, "event_id",
                          "updateSupplementaryData", "user_id", user->id,
                          "supplementary_data_updates", updates)) ||
        (user->first_name &&
         json_object_set_new(sub, "user_first_name", json_string(user->first_name))) ||
        (user->last_name &&
         json_object_set_new(sub, "user_last_name", json_string(user->last_name))) ||
        !(*json = cs_json_dumps(sub))) {
        snprintf(errstr, errstr_size, "out of memory");
        goto cleanup;
    }
    rc = validate(*json, ref, errstr, errstr_size);
cleanup:
    if (rc != CS_OK) {
        free(*json);
        *json = NULL;
    }
    json_decref(sub);
    json_decref(root);
    return rc;
}

cs_api_reply cs_api_submit_reply(cs_status status, bool created, int *http)
{
    switch (status) {
    case CS_STATUS_APPLIED:
        *http = created ? 201 : 200;
        return CS_API_REPLY_CASE;
    case CS_STATUS_DUPLICATE:
        *http = 200;
        return CS_API_REPLY_CASE;
    case CS_STATUS_CONFLICT:
        *http = 409;
        return CS_API_REPLY_CONFLICT;
    case CS_STATUS_REJECTED:
        *http = 200;
        return CS_API_REPLY_ERRORS;
    case CS_STATUS_INVALID:
        break;
    }
    *http = 400;
    return CS_API_REPLY_ERRORS;
}

char *cs_api_errors_body(const char *message)
{
    json_t *o = json_pack("{s:[s?]}", "errors", message);
    char *text;

    if (!o) /* not UTF-8: say so rather than quote it */
        o = json_pack("{s:[s]}", "errors", "the reason is not valid UTF-8");
    text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

char *cs_api_refused_body(const char *message)
{
    json_t *o = json_pack("{s:n, s:n, s:[s?], s:n, s:n}", "case_details", "revision", "errors",
                          message, "warnings", "ignore_warning");
    char *text;

    if (!o)
        o = json_pack("{s:n, s:n, s:[s], s:n, s:n}", "case_details", "revision", "errors",
                      "the reason is not valid UTF-8", "warnings", "ignore_warning");
    text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return text;
}

char *cs_api_supplementary_body(const char *map)
{
    json_error_t jerr;
    json_t *m = map ? cs_json_loads_stored(map, strlen(map), &jerr) : json_object();
    json_t *o;
    char *text = NULL;

    if (json_is_object(m) && (o = json_pack("{s:O}", "supplementary_data", m))) {
        text = cs_json_dumps(o);
        json_decref(o);
    }
    json_decref(m);
    return text;
}

bool cs_api_json_content_type(const char *value)
{
    static const char json_type[] = "application/json";
    size_t n = sizeof(json_type) - 1;

    if (!value)
        return false;
    while (*value == ' ')
        value++;
    if (strncasecmp(value, json_type, n) != 0)
        return false;
    value += n;
    while (*value == ' ')
        value++;
    return *value == '\0' || *value == ';';
}
