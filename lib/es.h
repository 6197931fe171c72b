/* Elasticsearch over HTTP for the indexer and `casestream reindex`: a libcurl client, the case
 * index template and index names. Bulk bodies and responses are in bulk.h. */
#ifndef CS_ES_H
#define CS_ES_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>

/* ---- HTTP ------------------------------------------------------------------------------- */

typedef struct cs_es cs_es;

/* A client for base_url (e.g. "http://127.0.0.1:59200"; user:password@ in it
 * is sent as basic auth and never printed) with one libcurl easy handle kept
 * for the client's life, so the connection is reused. timeout_ms bounds each
 * whole request. Returns the client (free with cs_es_free) or NULL with the
 * reason in errstr. Not thread-safe: one client per thread. */
cs_es *cs_es_new(const char *base_url, int timeout_ms, char *errstr, size_t errstr_size);

/* The client of cfg: --es (basic auth from its URL), --es-timeout-ms, --es-ca-file and
 * --es-api-key (sent as Authorization: ApiKey). As cs_es_new otherwise. */
cs_es *cs_es_new_config(const cs_config *cfg, char *errstr, size_t errstr_size);

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

#endif
