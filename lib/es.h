/* Elasticsearch helpers shared by the indexer and `casestream reindex`: a libcurl client,
 * the case index template, bulk bodies and responses. */
#ifndef CS_ES_H
#define CS_ES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- HTTP ------------------------------------------------------------------------------- */

typedef struct cs_es cs_es;

/* A client for base_url (e.g. "http://127.0.0.1:59200") with one libcurl easy
 * handle kept for the client's life, so the connection is reused. timeout_ms
 * bounds each whole request. Returns the client (free with cs_es_free) or NULL
 * with the reason in errstr. Not thread-safe: one client per thread. */
cs_es *cs_es_new(const char *base_url, int timeout_ms, char *errstr, size_t errstr_size);

/* Changes the bound on each whole request (e.g. shorter while shutting down). */
void cs_es_set_timeout(cs_es *es, int timeout_ms);

/* Closes the connection and frees the client. Accepts NULL. */
void cs_es_free(cs_es *es);

/* A response: HTTP status and body (NUL-terminated; body is owned by the
 * response, free with cs_es_response_clear). */
typedef struct cs_es_response {
    long status;
    char *body;
    size_t len;
} cs_es_response;

#define CS_ES_RESPONSE_INIT                                                                        \
    {                                                                                              \
        0, NULL, 0                                                                                 \
    }

/* Sends method (GET, PUT, POST, DELETE, HEAD) to base_url + path with an
 * optional body (NULL for none; content type application/json, or
 * application/x-ndjson when path starts with "/_bulk" or ends with "/_bulk...").
 * Returns 0 when the server answered, whatever the status (in *out, which the
 * caller clears), or CS_ERR_RETRY when it did not (refused, timeout, reset)
 * with the reason in errstr; *out is then empty. */
int cs_es_request(cs_es *es, const char *method, const char *path, const char *body,
                  size_t body_len, cs_es_response *out, char *errstr, size_t errstr_size);

/* Frees the body and empties the response. Accepts an empty response. */
void cs_es_response_clear(cs_es_response *r);

/* ---- the case indices ------------------------------------------------------------------- */

/* Name of the index template installed for "*_cases". */
#define CS_ES_TEMPLATE "casestream-cases"

/* The body of the index template: explicit mappings for the change document
 * fields, `data` dynamic, total fields limited to max_fields. Caller frees. */
char *cs_es_template_body(int max_fields);

/* Installs (or replaces: idempotent) the index template. Returns 0,
 * CS_ERR_RETRY when Elasticsearch is unreachable or overloaded, or CS_ERR
 * when it refused the template; the reason is in errstr. */
int cs_es_put_template(cs_es *es, int max_fields, char *errstr, size_t errstr_size);

/* Writes lower(case_type) + "_cases" into buf. Returns false (buf then holds
 * "") when the case type cannot name an index by cs_case_type_check (the rule
 * of DESIGN §3: ASCII letters, digits, '_', '-' and '.', the first a letter or
 * a digit, at most CS_CASE_TYPE_MAX bytes) or buf is too small. */
bool cs_es_index_name(const char *case_type, char *buf, size_t size);

/* ---- bulk requests ---------------------------------------------------------------------- */

/* A growing bulk request body. */
typedef struct cs_es_bulk {
    char *buf;
    size_t len;
    size_t cap;
    size_t count; /* items added */
} cs_es_bulk;

#define CS_ES_BULK_INIT                                                                            \
    {                                                                                              \
        NULL, 0, 0, 0                                                                              \
    }

/* The request path of a bulk: only the fields the parser reads are returned. */
#define CS_ES_BULK_PATH "/_bulk?filter_path=errors,items.*.status,items.*.error"

/* Appends one index action for document id reference in index with
 * version = revision, version_type = external_gte, and the document source
 * (doc, doc_len: one JSON object; raw newlines, which JSON allows only as
 * whitespace, are written as spaces). Returns 0 or CS_ERR (out of memory). */
int cs_es_bulk_add(cs_es_bulk *b, const char *index, int64_t reference, int64_t revision,
                   const char *doc, size_t doc_len);

/* Empties the body for reuse, keeping its memory. */
void cs_es_bulk_reset(cs_es_bulk *b);

/* Frees the body's memory. Accepts an empty body. */
void cs_es_bulk_free(cs_es_bulk *b);

/* What to do with one item of a bulk response. */
typedef enum cs_es_outcome {
    CS_ES_OK = 0,   /* indexed (2xx) */
    CS_ES_CONFLICT, /* 409: a document with this or a newer revision is there: success */
    CS_ES_RETRY,    /* 429, 5xx, or a cluster/index state that an operator fixes: retry */
    CS_ES_REJECTED  /* refused for its content (400 mapping errors etc.): dead letter */
} cs_es_outcome;

/* The outcome of an item of the given status and error type (may be NULL). */
cs_es_outcome cs_es_classify(int status, const char *error_type);

typedef struct cs_es_item {
    int status;
    cs_es_outcome outcome;
    char *reason; /* "type: reason (caused by ...)" when the item failed, else NULL; owned */
} cs_es_item;

/* Parses a bulk response body (status 200) into items[0..n-1], which must be
 * the number of actions sent, in order. Returns 0, or CS_ERR with the reason
 * in errstr when the body is not a bulk response of n items (items then hold
 * nothing to free). Free the reasons with cs_es_items_clear. */
int cs_es_bulk_parse(const char *body, size_t len, cs_es_item *items, size_t n, char *errstr,
                     size_t errstr_size);

/* Frees the reasons of items[0..n-1]. */
void cs_es_items_clear(cs_es_item *items, size_t n);

#endif
