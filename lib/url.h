/* URLs of the services: scheme://[user[:password]@]host[:port][/path], IPv6 hosts in brackets. */
#ifndef CS_URL_H
#define CS_URL_H

#include <stdbool.h>
#include <stddef.h>

typedef struct cs_url {
    char scheme[16];    /* lowercase */
    char user[256];     /* percent-decoded; "" when none */
    char password[256]; /* percent-decoded; "" when none */
    bool has_password;
    char host[256]; /* without the brackets of an IPv6 address */
    bool ipv6;
    int port;       /* 0 when the URL gives none */
    char path[512]; /* from the first '/' after the host (query and fragment included); or "" */
} cs_url;

/* Parses url. Returns 0, or CS_ERR_INVALID with a one-line reason (which
 * quotes the URL without its credentials) in errstr. */
int cs_url_parse(const char *url, cs_url *out, char *errstr, size_t errstr_size);

/* Writes scheme://host[:port] (brackets around an IPv6 host, no credentials, no path) into
 * buf. Returns the length (cut to size). */
size_t cs_url_origin(const cs_url *u, char *buf, size_t size);

/* A Redis URL: redis://[[user]:password@]host[:port][/db], or rediss:// for TLS (whether this
 * build has TLS is cs_redis_new's question), port 6379 by default, db 0 by default. Returns 0,
 * or CS_ERR_INVALID with a one-line reason in errstr. */
int cs_url_parse_redis(const char *url, cs_url *out, int *db, char *errstr, size_t errstr_size);

/* An Elasticsearch URL: http:// or https://, port 80 or 443 by default. Returns 0, or
 * CS_ERR_INVALID with a one-line reason in errstr. */
int cs_url_parse_http(const char *url, cs_url *out, char *errstr, size_t errstr_size);

#endif
