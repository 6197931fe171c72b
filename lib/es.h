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

/* The client of cfg: --es (basic auth from its URL), --es-timeout-ms, --es-ca-file,
 * --es-cert-file and --es-key-file (a TLS client certificate) and
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

/* Name of the index template installed for "*_cases" and "*_cases-*". */
#define CS_ES_TEMPLATE "casestream-cases"

/* The body of the index template: the settings and explicit mappings of a case index (DESIGN
 * §6: `data`, `data_classification` and `supplementary_data` dynamic, total fields limited to
 * max_fields, refreshed every refresh_ms) for the live names and the versioned indices behind them.
 * Caller frees; NULL when out of memory. */
char *cs_es_template_body(int max_fields, int refresh_ms);

/* The body that creates a case index with the same settings and mappings as the template (so
 * that an index is right whichever template another program installed last), and, when alias is
 * not NULL, puts it behind alias as the alias's write index. Caller frees; NULL when out of
 * memory. */
char *cs_es_index_body(int max_fields, int refresh_ms, const char *alias);

/* Installs (or replaces: idempotent) the index template. Returns 0,
 * CS_ERR_RETRY when Elasticsearch is unreachable or overloaded, or CS_ERR
 * when it refused the template; the reason is in errstr. */
int cs_es_put_template(cs_es *es, int max_fields, int refresh_ms, char *errstr, size_t errstr_size);

/* Writes lower(case_type) + "_cases" into buf: the live name of the case type's index, which
 * CCD searches. Returns false (buf then holds "") when the case type cannot name an index by
 * cs_case_type_check (the rule of DESIGN §3: ASCII letters, digits, '_', '-' and '.', the
 * first a letter or a digit, at most CS_CASE_TYPE_MAX bytes) or buf is too small. */
bool cs_es_index_name(const char *case_type, char *buf, size_t size);

/* Writes the versioned index name alias + "-" + version in six digits (nfd_cases-000002) into
 * buf: the indices a live name is an alias of. Returns false when the name would be longer than
 * Elasticsearch allows (255 bytes), the version is not 1 to 999999, or buf is too small. */
bool cs_es_versioned_name(const char *alias, int version, char *buf, size_t size);

/* The version of index when it is a versioned index of alias (alias-NNNNNN), else 0. */
int cs_es_version_of(const char *alias, const char *index);

/* Makes sure the live name name can take writes behind its alias: when neither an alias nor an
 * index of that name exists, creates name-000001 (cs_es_index_body) behind the alias name; when
 * it exists, sets its indices' refresh interval to refresh_ms. What is found is remembered by
 * the client: a name is looked up once. Returns 0 when the name is an
 * alias (or was just made one, or was looked up before), 1 the first time the name is found to
 * be a plain index (created before casestream put case indices behind aliases, or by a write
 * that found neither: the caller may say so; `casestream reindex --new-index` moves it behind
 * its alias), CS_ERR_RETRY when Elasticsearch did not answer or was overloaded, CS_ERR when it
 * refused; the reason is in errstr. A name too long for a versioned index is left to become a
 * plain index (0). */
int cs_es_ensure_index(cs_es *es, const char *name, int max_fields, int refresh_ms, char *errstr,
                       size_t errstr_size);

/* The concrete indices behind name: the indices of the alias name, or name itself when it is an
 * index. *names is an array of *n strings the caller frees with cs_es_names_free (NULL and 0
 * when name is neither); *is_alias says which it was. Returns 0, CS_ERR_RETRY (no answer,
 * overloaded) or CS_ERR, with the reason in errstr. */
int cs_es_resolve(cs_es *es, const char *name, char ***names, size_t *n, bool *is_alias,
                  char *errstr, size_t errstr_size);

/* Frees n names returned by cs_es_resolve. Accepts NULL. */
void cs_es_names_free(char **names, size_t n);

#endif
