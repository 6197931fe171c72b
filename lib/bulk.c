/* Bulk API bodies and responses: NDJSON index and delete actions out, per-item outcomes in.
 * No I/O. */
#include "bulk.h"

#include "err.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* printf into new memory; NULL when out of memory. Caller frees. */
static char *dup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dup_printf(const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !(s = malloc((size_t)n + 1)))
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static int bulk_reserve(cs_bulk_body *b, size_t more)
{
    if (b->len + more + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64 * 1024;
        char *grown;

        while (cap < b->len + more + 1)
            cap *= 2;
        if (!(grown = realloc(b->buf, cap)))
            return CS_ERR;
        b->buf = grown;
        b->cap = cap;
    }
    return CS_OK;
}

int cs_bulk_add(cs_bulk_body *b, const char *index, int64_t id, int64_t revision, const char *doc,
                size_t doc_len)
{
    char action[512];
    int n;

    /* index comes from cs_es_index_name: no character needs escaping. */
    n = snprintf(action, sizeof(action),
                 "{\"index\":{\"_index\":\"%s\",\"_id\":\"%" PRId64 "\",\"version\":%" PRId64
                 ",\"version_type\":\"external_gte\"}}\n",
                 index, id, revision);
    if (n < 0 || (size_t)n >= sizeof(action))
        return CS_ERR;
    if (bulk_reserve(b, (size_t)n + doc_len + 1))
        return CS_ERR;
    memcpy(b->buf + b->len, action, (size_t)n);
    b->len += (size_t)n;
    /* Copied whole, then the rare raw newlines replaced: memcpy and memchr go by words, a loop
     * by bytes is a third of the indexer's work per document. */
    memcpy(b->buf + b->len, doc, doc_len);
    for (char *p = b->buf + b->len, *end = p + doc_len; (p = memchr(p, '\n', (size_t)(end - p)));)
        *p++ = ' ';
    for (char *p = b->buf + b->len, *end = p + doc_len; (p = memchr(p, '\r', (size_t)(end - p)));)
        *p++ = ' ';
    b->len += doc_len;
    b->buf[b->len++] = '\n';
    b->buf[b->len] = '\0';
    b->count++;
    return CS_OK;
}

int cs_bulk_delete(cs_bulk_body *b, const char *index, int64_t id, int64_t revision)
{
    char action[512];
    int n;

    /* index comes from cs_es_index_name: no character needs escaping. A delete has no source
     * line. */
    n = snprintf(action, sizeof(action),
                 "{\"delete\":{\"_index\":\"%s\",\"_id\":\"%" PRId64 "\",\"version\":%" PRId64
                 ",\"version_type\":\"external_gte\"}}\n",
                 index, id, revision);
    if (n < 0 || (size_t)n >= sizeof(action))
        return CS_ERR;
    if (bulk_reserve(b, (size_t)n))
        return CS_ERR;
    memcpy(b->buf + b->len, action, (size_t)n + 1);
    b->len += (size_t)n;
    b->count++;
    return CS_OK;
}

void cs_bulk_reset(cs_bulk_body *b)
{
    b->len = 0;
    b->count = 0;
    if (b->buf)
        b->buf[0] = '\0';
}

void cs_bulk_free(cs_bulk_body *b)
{
    free(b->buf);
    b->buf = NULL;
    b->len = b->cap = b->count = 0;
}

cs_bulk_outcome cs_bulk_classify(int status, const char *error_type)
{
    if (status >= 200 && status < 300)
        return CS_BULK_OK;
    if (status == 409)
        return CS_BULK_CONFLICT;
    /* Overload and server errors pass. So do states of the cluster or index
     * that an operator fixes and that say nothing about the document: a
     * read-only block (403), a missing index when auto-creation is off (404),
     * a timeout (408). Dead-lettering those would lose good documents. */
    if (status == 429 || status >= 500 || status == 403 || status == 404 || status == 408)
        return CS_BULK_RETRY;
    if (error_type && (strcmp(error_type, "cluster_block_exception") == 0 ||
                       strcmp(error_type, "es_rejected_execution_exception") == 0 ||
                       strcmp(error_type, "circuit_breaking_exception") == 0))
        return CS_BULK_RETRY;
    return CS_BULK_REJECTED;
}

cs_bulk_outcome cs_bulk_classify_delete(int status, const char *error_type)
{
    /* Deleting what is not there is done: the document never was, or went with its index. The
     * delete is kept at its version all the same, so a lower revision arriving later gets 409. */
    if (status == 404)
        return CS_BULK_OK;
    return cs_bulk_classify(status, error_type);
}

/* "type: reason (caused by type: reason)" from an error object or string. Caller frees. */
static char *error_text(json_t *err, const char **type_out)
{
    const char *type = NULL, *reason = NULL, *ctype = NULL, *creason = NULL;
    json_t *cause;
    *type_out = NULL;
    if (json_is_string(err))
        return strdup(json_string_value(err));
    if (!json_is_object(err))
        return strdup("unknown error");
    type = json_string_value(json_object_get(err, "type"));
    reason = json_string_value(json_object_get(err, "reason"));
    cause = json_object_get(err, "caused_by");
    if (json_is_object(cause)) {
        ctype = json_string_value(json_object_get(cause, "type"));
        creason = json_string_value(json_object_get(cause, "reason"));
    }
    *type_out = type;
    if (ctype)
        return dup_printf("%s: %s (caused by %s: %s)", type ? type : "error", reason ? reason : "",
                          ctype, creason ? creason : "");
    return dup_printf("%s: %s", type ? type : "error", reason ? reason : "");
}

int cs_bulk_parse(const char *body, size_t len, cs_bulk_item *items, size_t n, char *errstr,
                  size_t errstr_size)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    json_t *arr;
    int rc = CS_ERR;

    memset(items, 0, n * sizeof(*items));
    if (!root) {
        snprintf(errstr, errstr_size, "bulk response is not JSON: %s", jerr.text);
        return CS_ERR;
    }
    arr = json_object_get(root, "items");
    if (!json_is_array(arr) || json_array_size(arr) != n) {
        snprintf(errstr, errstr_size, "bulk response has %zu items for %zu actions",
                 json_is_array(arr) ? json_array_size(arr) : (size_t)0, n);
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *wrapper = json_array_get(arr, i);
        void *iter = json_is_object(wrapper) && json_object_size(wrapper) == 1
                         ? json_object_iter(wrapper)
                         : NULL;
        json_t *item = iter ? json_object_iter_value(iter) : NULL;
        bool is_delete = iter && strcmp(json_object_iter_key(iter), "delete") == 0;
        json_t *status = item ? json_object_get(item, "status") : NULL;
        json_t *err = item ? json_object_get(item, "error") : NULL;
        const char *type = NULL;

        if (!json_is_integer(status)) {
            snprintf(errstr, errstr_size, "bulk response item %zu has no status", i);
            cs_bulk_items_clear(items, i);
            goto cleanup;
        }
        items[i].status = (int)json_integer_value(status);
        if (err) {
            items[i].reason = error_text(err, &type);
        } else if (items[i].status >= 300 && !(is_delete && items[i].status == 404)) {
            char tmp[64];

            snprintf(tmp, sizeof(tmp), "HTTP %d", items[i].status);
            items[i].reason = strdup(tmp);
        }
        items[i].outcome = is_delete ? cs_bulk_classify_delete(items[i].status, type)
                                     : cs_bulk_classify(items[i].status, type);
    }
    rc = CS_OK;
cleanup:
    json_decref(root);
    return rc;
}

void cs_bulk_items_clear(cs_bulk_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].reason);
        items[i].reason = NULL;
    }
}
