/* Elasticsearch over libcurl: requests, the case index template and index names. */
#include "es.h"

#include "envelope.h"
#include "err.h"
#include "url.h"
#include "utf8.h"

#include <curl/curl.h>
#include <ctype.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cs_es {
    CURL *curl;
    char *base;            /* without credentials or a trailing '/' */
    char *user, *password; /* basic auth from the URL, or NULL */
    char *ca_file;         /* or NULL: the system's CAs */
    char *cert_file;       /* client certificate, or NULL */
    char *key_file;        /* its key, or NULL: in cert_file */
    int timeout_ms;
    char curl_err[CURL_ERROR_SIZE];
    struct curl_slist *json_headers;
    struct curl_slist *ndjson_headers;
    char **known; /* live names cs_es_ensure_index looked up */
    size_t n_known, cap_known;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

cs_es *cs_es_new(const char *base_url, int timeout_ms, char *errstr, size_t errstr_size)
{
    cs_es *es;
    cs_url url;
    char origin[600];
    size_t n;

    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        snprintf(errstr, errstr_size, "could not initialise libcurl: %s",
                 curl_easy_strerror(curl_init_rc));
        return NULL;
    }
    if (cs_url_parse_http(base_url, &url, errstr, errstr_size))
        return NULL;
    /* The credentials go to libcurl apart, so that no URL printed carries them. */
    n = cs_url_origin(&url, origin, sizeof(origin));
    snprintf(origin + n, sizeof(origin) - n, "%s", url.path);
    if (!(es = calloc(1, sizeof(*es))) || !(es->base = strdup(origin)) ||
        !(es->curl = curl_easy_init()) || (url.user[0] && !(es->user = strdup(url.user))) ||
        (url.user[0] && !(es->password = strdup(url.password)))) {
        snprintf(errstr, errstr_size, "out of memory");
        cs_es_free(es);
        return NULL;
    }
    n = strlen(es->base);
    while (n > 0 && es->base[n - 1] == '/')
        es->base[--n] = '\0';
    es->timeout_ms = timeout_ms;
    /* "Expect:" stops libcurl waiting for 100-continue before large bodies. */
    es->json_headers = curl_slist_append(NULL, "Content-Type: application/json");
    es->json_headers = curl_slist_append(es->json_headers, "Expect:");
    es->ndjson_headers = curl_slist_append(NULL, "Content-Type: application/x-ndjson");
    es->ndjson_headers = curl_slist_append(es->ndjson_headers, "Expect:");
    if (!es->json_headers || !es->ndjson_headers) {
        snprintf(errstr, errstr_size, "out of memory");
        cs_es_free(es);
        return NULL;
    }
    return es;
}

cs_es *cs_es_new_config(const cs_config *cfg, char *errstr, size_t errstr_size)
{
    cs_es *es = cs_es_new(cfg->es, cfg->es_timeout_ms, errstr, errstr_size);
    char header[1024];

    if (!es)
        return NULL;
    if (cfg->es_ca_file[0] && !(es->ca_file = strdup(cfg->es_ca_file)))
        goto oom;
    if (cfg->es_cert_file[0] && !(es->cert_file = strdup(cfg->es_cert_file)))
        goto oom;
    if (cfg->es_key_file[0] && !(es->key_file = strdup(cfg->es_key_file)))
        goto oom;
    if (cfg->es_api_key[0]) {
        struct curl_slist *j, *nd;

        snprintf(header, sizeof(header), "Authorization: ApiKey %s", cfg->es_api_key);
        if (!(j = curl_slist_append(es->json_headers, header)))
            goto oom;
        es->json_headers = j;
        if (!(nd = curl_slist_append(es->ndjson_headers, header)))
            goto oom;
        es->ndjson_headers = nd;
    }
    return es;
oom:
    snprintf(errstr, errstr_size, "out of memory");
    cs_es_free(es);
    return NULL;
}

void cs_es_set_timeout(cs_es *es, int timeout_ms)
{
    es->timeout_ms = timeout_ms;
}

void cs_es_free(cs_es *es)
{
    if (!es)
        return;
    if (es->curl)
        curl_easy_cleanup(es->curl);
    curl_slist_free_all(es->json_headers);
    curl_slist_free_all(es->ndjson_headers);
    cs_es_names_free(es->known, es->n_known);
    free(es->base);
    free(es->user);
    free(es->password);
    free(es->ca_file);
    free(es->cert_file);
    free(es->key_file);
    free(es);
}

void cs_es_response_clear(cs_es_response *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
    r->status = 0;
}

typedef struct growbuf {
    char *buf;
    size_t len, cap;
    bool oom;
} growbuf;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    growbuf *g = userdata;
    size_t n = size * nmemb;

    if (g->len + n + 1 > g->cap) {
        size_t cap = g->cap ? g->cap : 4096;
        char *grown;

        while (cap < g->len + n + 1)
            cap *= 2;
        if (!(grown = realloc(g->buf, cap))) {
            g->oom = true;
            return 0; /* makes libcurl fail the transfer */
        }
        g->buf = grown;
        g->cap = cap;
    }
    memcpy(g->buf + g->len, ptr, n);
    g->len += n;
    g->buf[g->len] = '\0';
    return n;
}

int cs_es_request(cs_es *es, const char *method, const char *path, const char *body,
                  size_t body_len, cs_es_response *out, char *errstr, size_t errstr_size)
{
    CURL *c = es->curl;
    growbuf g = {NULL, 0, 0, false};
    char *url;
    size_t url_len = strlen(es->base) + strlen(path) + 2;
    CURLcode rc;

    out->status = 0;
    out->body = NULL;
    out->len = 0;
    if (!(url = malloc(url_len))) {
        snprintf(errstr, errstr_size, "out of memory");
        return CS_ERR;
    }
    snprintf(url, url_len, "%s%s%s", es->base, path[0] == '/' ? "" : "/", path);
    /* Resetting the options keeps the handle's connection cache: the
     * connection to Elasticsearch is reused from request to request. */
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)es->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(es->timeout_ms < 5000 ? es->timeout_ms : 5000));
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, es->curl_err);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &g);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER,
                     strstr(path, "_bulk") ? es->ndjson_headers : es->json_headers);
    if (es->user) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, es->user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, es->password);
    }
    if (es->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, es->ca_file);
    if (es->cert_file) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, es->cert_file);
        curl_easy_setopt(c, CURLOPT_SSLKEY, es->key_file ? es->key_file : es->cert_file);
    }
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") != 0 || body)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    es->curl_err[0] = '\0';
    rc = curl_easy_perform(c);
    free(url);
    if (rc != CURLE_OK) {
        snprintf(errstr, errstr_size, "%s %s%s: %s", method, es->base, path,
                 g.oom             ? "out of memory"
                 : es->curl_err[0] ? es->curl_err
                                   : curl_easy_strerror(rc));
        free(g.buf);
        return g.oom ? CS_ERR : CS_ERR_RETRY;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    if (!g.buf && !(g.buf = calloc(1, 1))) {
        snprintf(errstr, errstr_size, "out of memory");
        return CS_ERR;
    }
    out->body = g.buf;
    out->len = g.len;
    return CS_OK;
}

/* ---- the case indices ------------------------------------------------------------------- */

/* A keyword compared without letter case, as CCD compares it (its state filter sends lower-case
 * state ids; its own indices map these fields as text), with the exact value in .keyword. */
#define CI_KEYWORD                                                                                 \
    "{\"type\":\"keyword\",\"normalizer\":\"lowercase\",\"fields\":{\"keyword\":{\"type\":"        \
    "\"keyword\"}}}"
/* CCD's dates are local date-times (2025-03-01T10:15:30.123), the first format, which is also
 * the one Elasticsearch renders; dates with a zone and epoch milliseconds are read too. */
#define CCD_DATE                                                                                   \
    "{\"type\":\"date\",\"format\":\"strict_date_hour_minute_second_fraction||"                    \
    "strict_date_optional_time||epoch_millis\"}"

/* The settings and mappings of a case index, as members of a JSON object; the %d are the field
 * limit and the refresh interval in milliseconds. */
static const char index_members[] =
    "\"settings\":{\"index.mapping.total_fields.limit\":%d,"
    "\"index.refresh_interval\":\"%dms\"},"
    "\"mappings\":{\"dynamic\":\"true\",\"properties\":{"
    "\"id\":{\"type\":\"long\"},"
    "\"reference\":{\"type\":\"long\",\"fields\":{\"keyword\":{\"type\":\"keyword\"}}},"
    "\"jurisdiction\":" CI_KEYWORD ","
    "\"case_type_id\":" CI_KEYWORD ","
    "\"state\":" CI_KEYWORD ","
    "\"security_classification\":{\"type\":\"keyword\"},"
    "\"created_date\":" CCD_DATE ","
    "\"last_modified\":" CCD_DATE ","
    "\"last_state_modified_date\":" CCD_DATE ","
    "\"data\":{\"type\":\"object\",\"dynamic\":\"true\"},"
    "\"data_classification\":{\"type\":\"object\",\"dynamic\":\"true\"},"
    "\"supplementary_data\":{\"type\":\"object\",\"dynamic\":\"true\"},"
    "\"case_revision\":{\"type\":\"long\"},"
    "\"version\":{\"type\":\"long\"},"
    "\"resolved_ttl\":{\"type\":\"date\",\"format\":\"strict_date\"},"
    "\"case_type\":{\"type\":\"keyword\"},"
    "\"notes\":{\"type\":\"object\",\"properties\":{"
    "\"id\":{\"type\":\"long\"},"
    "\"author\":{\"type\":\"keyword\"},"
    "\"body\":{\"type\":\"text\"},"
    "\"created_date\":" CCD_DATE "}}}}";

/* prefix, the index members with max_fields and refresh_ms, suffix, in new memory (caller
 * frees), or NULL. */
static char *with_members(const char *prefix, int max_fields, int refresh_ms, const char *suffix)
{
    size_t size = strlen(prefix) + sizeof(index_members) + 32 + strlen(suffix);
    char *body = malloc(size);
    int n;

    if (!body)
        return NULL;
    n = snprintf(body, size, "%s", prefix);
    n += snprintf(body + n, size - (size_t)n, index_members, max_fields, refresh_ms);
    snprintf(body + n, size - (size_t)n, "%s", suffix);
    return body;
}

char *cs_es_template_body(int max_fields, int refresh_ms)
{
    /* The priority only has to beat built-in templates that could overlap
     * "*_cases" (logs-*-* and friends use 100). */
    return with_members("{\"index_patterns\":[\"*_cases\",\"*_cases-*\"],\"priority\":500,"
                        "\"_meta\":{\"description\":\"casestream case documents (DESIGN 6)\"},"
                        "\"template\":{",
                        max_fields, refresh_ms, "}}");
}

char *cs_es_index_body(int max_fields, int refresh_ms, const char *alias)
{
    char suffix[320];

    /* alias comes from cs_es_index_name: no character needs escaping. */
    if (alias)
        snprintf(suffix, sizeof(suffix), ",\"aliases\":{\"%s\":{\"is_write_index\":true}}}", alias);
    else
        snprintf(suffix, sizeof(suffix), "}");
    return with_members("{", max_fields, refresh_ms, suffix);
}

int cs_es_put_template(cs_es *es, int max_fields, int refresh_ms, char *errstr, size_t errstr_size)
{
    cs_es_response r = CS_ES_RESPONSE_INIT;
    char *body = cs_es_template_body(max_fields, refresh_ms);
    int rc;

    if (!body) {
        snprintf(errstr, errstr_size, "out of memory");
        return CS_ERR;
    }
    rc = cs_es_request(es, "PUT", "/_index_template/" CS_ES_TEMPLATE, body, strlen(body), &r,
                       errstr, errstr_size);
    free(body);
    if (rc)
        return rc;
    if (r.status != 200) {
        cs_utf8_snprintf(errstr, errstr_size, "index template %s: HTTP %ld: %.*s", CS_ES_TEMPLATE,
                         r.status, (int)cs_utf8_prefix(r.body, r.len, 300), r.body);
        rc = r.status == 429 || r.status >= 500 ? CS_ERR_RETRY : CS_ERR;
    }
    cs_es_response_clear(&r);
    return rc;
}

bool cs_es_index_name(const char *case_type, char *buf, size_t size)
{
    static const char suffix[] = "_cases";
    size_t n = strlen(case_type);

    if (size > 0)
        buf[0] = '\0';
    /* The rule submissions are held to (DESIGN §3): one rule for the worker and the indexer. */
    if (!cs_case_type_check(case_type, n, NULL, 0) || n + sizeof(suffix) > size)
        return false;
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)tolower((unsigned char)case_type[i]);
    memcpy(buf + n, suffix, sizeof(suffix));
    return true;
}

bool cs_es_versioned_name(const char *alias, int version, char *buf, size_t size)
{
    int n;

    if (size > 0)
        buf[0] = '\0';
    if (version < 1 || version > 999999)
        return false;
    n = snprintf(buf, size, "%s-%06d", alias, version);
    if (n < 0 || (size_t)n >= size || n > 255) {
        if (size > 0)
            buf[0] = '\0';
        return false;
    }
    return true;
}

int cs_es_version_of(const char *alias, const char *index)
{
    size_t n = strlen(alias);
    int v = 0;

    if (strncmp(index, alias, n) != 0 || index[n] != '-' || strlen(index + n + 1) != 6)
        return 0;
    for (const char *p = index + n + 1; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (*p - '0');
    }
    return v;
}

void cs_es_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The error of an Elasticsearch answer and its type, quoted into errstr. */
static void refused(const char *what, const cs_es_response *r, char *errstr, size_t errstr_size)
{
    cs_utf8_snprintf(errstr, errstr_size, "%s: HTTP %ld: %.*s", what, r->status,
                     (int)cs_utf8_prefix(r->body, r->len, 300), r->body ? r->body : "");
}

static int status_rc(long status)
{
    return status == 429 || status >= 500 ? CS_ERR_RETRY : CS_ERR;
}

int cs_es_resolve(cs_es *es, const char *name, char ***names, size_t *n, bool *is_alias,
                  char *errstr, size_t errstr_size)
{
    cs_es_response r = CS_ES_RESPONSE_INIT;
    char path[300], what[320];
    json_t *root = NULL;
    int rc;

    *names = NULL;
    *n = 0;
    *is_alias = false;
    snprintf(path, sizeof(path), "/_alias/%s", name);
    if ((rc = cs_es_request(es, "GET", path, NULL, 0, &r, errstr, errstr_size)))
        return rc;
    if (r.status == 200) {
        const char *index;
        json_t *v;

        if (!(root = json_loadb(r.body, r.len, 0, NULL)) || !json_is_object(root) ||
            !(*names = calloc(json_object_size(root) + 1, sizeof(**names)))) {
            snprintf(errstr, errstr_size, "GET %s: unreadable answer", path);
            rc = CS_ERR;
            goto cleanup;
        }
        json_object_foreach(root, index, v)
        {
            if (!((*names)[*n] = strdup(index))) {
                snprintf(errstr, errstr_size, "out of memory");
                rc = CS_ERR;
                goto cleanup;
            }
            (*n)++;
        }
        *is_alias = true;
        goto cleanup;
    }
    if (r.status != 404) {
        snprintf(what, sizeof(what), "GET %s", path);
        refused(what, &r, errstr, errstr_size);
        rc = status_rc(r.status);
        goto cleanup;
    }
    cs_es_response_clear(&r);
    snprintf(path, sizeof(path), "/%s", name);
    if ((rc = cs_es_request(es, "HEAD", path, NULL, 0, &r, errstr, errstr_size)))
        return rc;
    if (r.status == 200) {
        if (!(*names = calloc(1, sizeof(**names))) || !((*names)[0] = strdup(name))) {
            snprintf(errstr, errstr_size, "out of memory");
            rc = CS_ERR;
            goto cleanup;
        }
        *n = 1;
    } else if (r.status != 404) {
        snprintf(what, sizeof(what), "HEAD %s", path);
        refused(what, &r, errstr, errstr_size);
        rc = status_rc(r.status);
    }
cleanup:
    if (rc) {
        cs_es_names_free(*names, *n);
        *names = NULL;
        *n = 0;
    }
    json_decref(root);
    cs_es_response_clear(&r);
    return rc;
}

static bool is_known(const cs_es *es, const char *name)
{
    for (size_t i = 0; i < es->n_known; i++)
        if (strcmp(es->known[i], name) == 0)
            return true;
    return false;
}

/* Remembers name as looked up; out of memory only means it is looked up again. */
static void remember(cs_es *es, const char *name)
{
    char *copy;

    if (es->n_known == es->cap_known) {
        size_t cap = es->cap_known ? es->cap_known * 2 : 16;
        char **grown = realloc(es->known, cap * sizeof(*grown));

        if (!grown)
            return;
        es->known = grown;
        es->cap_known = cap;
    }
    if ((copy = strdup(name)))
        es->known[es->n_known++] = copy;
}

/* What name is now: 0 alias, 1 plain index, 2 neither, or a negative cs_err. */
static int layout_of(cs_es *es, const char *name, char *errstr, size_t errstr_size)
{
    char **names;
    size_t n;
    bool is_alias;
    int rc = cs_es_resolve(es, name, &names, &n, &is_alias, errstr, errstr_size);

    if (rc)
        return rc;
    cs_es_names_free(names, n);
    return is_alias ? 0 : n > 0 ? 1 : 2;
}

/* Sets the refresh interval of the indices behind name (an alias or an index). */
static int set_refresh(cs_es *es, const char *name, int refresh_ms, char *errstr,
                       size_t errstr_size)
{
    cs_es_response r = CS_ES_RESPONSE_INIT;
    char path[310], body[64];
    int rc;

    snprintf(path, sizeof(path), "/%s/_settings", name);
    snprintf(body, sizeof(body), "{\"index\":{\"refresh_interval\":\"%dms\"}}", refresh_ms);
    if ((rc = cs_es_request(es, "PUT", path, body, strlen(body), &r, errstr, errstr_size)))
        return rc;
    if (r.status != 200) {
        snprintf(path, sizeof(path), "PUT /%s/_settings", name);
        refused(path, &r, errstr, errstr_size);
        rc = status_rc(r.status);
    }
    cs_es_response_clear(&r);
    return rc;
}

int cs_es_ensure_index(cs_es *es, const char *name, int max_fields, int refresh_ms, char *errstr,
                       size_t errstr_size)
{
    cs_es_response r = CS_ES_RESPONSE_INIT;
    char versioned[300], path[310];
    char *body;
    int rc;

    if (is_known(es, name))
        return CS_OK;
    if ((rc = layout_of(es, name, errstr, errstr_size)) < 0)
        return rc;
    if (rc == 2 && cs_es_versioned_name(name, 1, versioned, sizeof(versioned))) {
        if (!(body = cs_es_index_body(max_fields, refresh_ms, name))) {
            snprintf(errstr, errstr_size, "out of memory");
            return CS_ERR;
        }
        snprintf(path, sizeof(path), "/%s", versioned);
        rc = cs_es_request(es, "PUT", path, body, strlen(body), &r, errstr, errstr_size);
        free(body);
        if (rc)
            return rc;
        if (r.status == 200) {
            rc = 0;
        } else if (r.status == 400 && r.body &&
                   (strstr(r.body, "resource_already_exists_exception") ||
                    strstr(r.body, "invalid_alias_name_exception"))) {
            /* Another writer was first: see what it made. */
            if ((rc = layout_of(es, name, errstr, errstr_size)) == 2) {
                snprintf(errstr, errstr_size,
                         "%s exists, but the alias %s is not there: an interrupted casestream "
                         "reindex --new-index? (delete %s or run it again)",
                         versioned, name, versioned);
                rc = CS_ERR;
            }
        } else {
            snprintf(path, sizeof(path), "PUT /%s", versioned);
            refused(path, &r, errstr, errstr_size);
            rc = status_rc(r.status);
        }
        cs_es_response_clear(&r);
    } else if (rc == 2) {
        rc = 0; /* too long to be versioned: the first write makes it a plain index */
    } else {
        int src = set_refresh(es, name, refresh_ms, errstr, errstr_size);

        if (src)
            return src;
    }
    if (rc != CS_ERR_RETRY)
        remember(es, name);
    return rc;
}
