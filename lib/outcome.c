/* Outcomes (DESIGN §4): the status names and codes, the one rendering, the one parser. */
#include "outcome.h"

#include "err.h"
#include "jsondump.h"
#include "uuid.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[CS_STATUS_COUNT] = {
    [CS_STATUS_APPLIED] = "applied",   [CS_STATUS_DUPLICATE] = "duplicate",
    [CS_STATUS_CONFLICT] = "conflict", [CS_STATUS_REJECTED] = "rejected",
    [CS_STATUS_INVALID] = "invalid",
};

const char *cs_status_name(cs_status status)
{
    return (unsigned)status < CS_STATUS_COUNT ? names[status] : "unknown";
}

bool cs_status_from_name(const char *name, cs_status *status)
{
    for (int i = 0; name && i < CS_STATUS_COUNT; i++) {
        if (strcmp(name, names[i]) == 0) {
            *status = (cs_status)i;
            return true;
        }
    }
    return false;
}

int cs_status_code(cs_status status, bool created)
{
    switch (status) {
    case CS_STATUS_APPLIED:
        return created ? 201 : 200;
    case CS_STATUS_DUPLICATE:
        return 200;
    case CS_STATUS_CONFLICT:
        return 409;
    case CS_STATUS_REJECTED:
        return 422;
    case CS_STATUS_INVALID:
        break;
    }
    return 400;
}

/* --- rendering ----------------------------------------------------------------------------- */

static json_t *int_or_null(int64_t v, int64_t null)
{
    return v != null ? json_integer(v) : json_null();
}

/* An outcome's error as a JSON string. Reasons are cut between characters where they are made
 * (lib/utf8.h); should one still not be UTF-8, its bytes beyond ASCII become '?' rather than the
 * whole error becoming null, which json_string() would give. NULL when out of memory. */
static json_t *error_json(const char *error)
{
    json_t *v;
    char *copy;

    if (!error)
        return json_null();
    if ((v = json_string(error)))
        return v;
    if (!(copy = strdup(error)))
        return NULL;
    for (char *c = copy; *c; c++)
        if ((unsigned char)*c > 0x7e)
            *c = '?';
    v = json_string(copy);
    free(copy);
    return v;
}

/* Adds a member (stealing v); false when v or the member could not be made. */
static bool add(json_t *o, const char *name, json_t *v)
{
    return v && json_object_set_new(o, name, v) == 0;
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A copy of v whose objects hold their members in byte order, at every depth (jansson keeps
 * the order members are added in): one rendering whatever order v was read in. NULL when out
 * of memory. */
static json_t *sorted_copy(json_t *v)
{
    json_t *out, *item;
    const char **keys;
    const char *key;
    size_t i = 0, n;

    if (json_is_array(v)) {
        out = json_array();
        json_array_foreach(v, i, item)
        {
            if (!out || json_array_append_new(out, sorted_copy(item))) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    if (!json_is_object(v))
        return json_incref(v);
    n = json_object_size(v);
    out = json_object();
    keys = malloc((n ? n : 1) * sizeof(*keys));
    if (!out || !keys) {
        json_decref(out);
        free(keys);
        return NULL;
    }
    json_object_foreach(v, key, item)
    {
        keys[i++] = key;
    }
    qsort(keys, n, sizeof(*keys), cmp_key);
    for (i = 0; i < n; i++) {
        if (json_object_set_new(out, keys[i], sorted_copy(json_object_get(v, keys[i])))) {
            json_decref(out);
            out = NULL;
            break;
        }
    }
    free(keys);
    return out;
}

/* The supplementary data member: text as JSON (a stored form too: cs_json_loads_stored), its
 * members sorted. NULL when it is not an object or memory ran out. */
static json_t *supplementary_json(const char *text)
{
    json_t *v = cs_json_loads_stored(text, strlen(text), NULL), *sorted = NULL;

    if (json_is_object(v))
        sorted = sorted_copy(v);
    json_decref(v);
    return sorted;
}

char *cs_outcome_render(const cs_outcome *o)
{
    json_t *out = json_object(), *src = json_object();
    char *text = NULL;
    bool ok;

    ok = out && src &&
         add(out, "idempotency_key",
             o->idempotency_key[0] ? json_string(o->idempotency_key) : json_null()) &&
         add(out, "case_reference", int_or_null(o->case_reference, 0)) &&
         add(out, "status", json_string(cs_status_name(o->status))) &&
         add(out, "code", int_or_null(o->code, 0)) &&
         add(out, "version", int_or_null(o->version, 0)) &&
         add(out, "case_revision", int_or_null(o->revision, 0)) &&
         add(out, "event_seq", int_or_null(o->event_seq, 0)) &&
         add(out, "error", error_json(o->error)) &&
         (!o->supplementary_data ||
          add(out, "supplementary_data", supplementary_json(o->supplementary_data))) &&
         add(src, "partition", int_or_null(o->source_partition, -1)) &&
         add(src, "offset", int_or_null(o->source_offset, -1));
    if (ok) {
        ok = add(out, "source", src);
        src = NULL; /* stolen, even on failure */
    }
    if (ok && o->payload_sha256[0])
        ok = add(out, "payload_sha256", json_string(o->payload_sha256));
    /* Only supplementary data holds reals; written as they are stored, as jsonb gives them. */
    if (ok)
        text = o->supplementary_data ? cs_json_dumps(out) : json_dumps(out, JSON_COMPACT);
    json_decref(src);
    json_decref(out);
    return text;
}

/* --- parsing ------------------------------------------------------------------------------- */

/* An integer member, also given as a string of at most 18 digits; absent otherwise. */
static int64_t int_member(json_t *v, int64_t absent)
{
    const char *s;
    int64_t n = 0;

    if (json_is_integer(v))
        return json_integer_value(v);
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 18)
        return absent;
    for (s = json_string_value(v); *s; s++) {
        if (*s < '0' || *s > '9')
            return absent;
        n = n * 10 + (*s - '0');
    }
    return n;
}

int cs_outcome_parse(const char *value, size_t len, cs_outcome **out)
{
    json_t *root = json_loadb(value, len, 0, NULL), *src, *error, *print, *sup;
    size_t error_len = 0, sup_len = 0;
    char *sup_text = NULL;
    cs_outcome *o = NULL;
    cs_status status;
    int rc = CS_ERR_INVALID;

    *out = NULL;
    if (!json_is_object(root) ||
        !cs_status_from_name(json_string_value(json_object_get(root, "status")), &status))
        goto cleanup;
    error = json_object_get(root, "error");
    if (json_is_string(error))
        error_len = json_string_length(error) + 1;
    rc = CS_ERR;
    sup = json_object_get(root, "supplementary_data");
    if (json_is_object(sup)) {
        if (!(sup_text = cs_json_dumps(sup)))
            goto cleanup;
        sup_len = strlen(sup_text) + 1;
    }
    if (!(o = calloc(1, sizeof(*o))) || !(o->json = malloc(len + 1 + error_len + sup_len)))
        goto cleanup;
    memcpy(o->json, value, len);
    o->json[len] = '\0';
    o->len = len;
    o->timestamp_ms = -1;
    if (error_len) {
        memcpy(o->json + len + 1, json_string_value(error), error_len);
        o->error = o->json + len + 1;
    }
    if (sup_len) {
        memcpy(o->json + len + 1 + error_len, sup_text, sup_len);
        o->supplementary_data = o->json + len + 1 + error_len;
    }
    if (!cs_uuid_parse(json_string_value(json_object_get(root, "idempotency_key")),
                       o->idempotency_key))
        o->idempotency_key[0] = '\0';
    o->case_reference = int_member(json_object_get(root, "case_reference"), 0);
    o->status = status;
    o->code = (int)json_integer_value(json_object_get(root, "code"));
    o->version = (int)json_integer_value(json_object_get(root, "version"));
    o->revision = json_integer_value(json_object_get(root, "case_revision"));
    o->event_seq = json_integer_value(json_object_get(root, "event_seq"));
    src = json_object_get(root, "source");
    o->source_partition = (int32_t)int_member(json_object_get(src, "partition"), -1);
    o->source_offset = int_member(json_object_get(src, "offset"), -1);
    print = json_object_get(root, "payload_sha256");
    if (json_is_string(print) && json_string_length(print) < sizeof(o->payload_sha256))
        memcpy(o->payload_sha256, json_string_value(print), json_string_length(print) + 1);
    *out = o;
    o = NULL;
    rc = CS_OK;
cleanup:
    cs_outcome_free(o);
    free(sup_text);
    json_decref(root);
    return rc;
}

void cs_outcome_free(cs_outcome *o)
{
    if (!o)
        return;
    free(o->json);
    free(o);
}
