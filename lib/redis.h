/* Redis connections: the URL's host (IPv6 too), TLS for rediss://, AUTH and SELECT. */
#ifndef CS_REDIS_H
#define CS_REDIS_H

#include "config.h"
#include "url.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

/* The TLS files of a rediss:// URL, PEM; NULL or "" for none. Borrowed: only read by
 * cs_redis_new. */
typedef struct cs_redis_tls {
    const char *ca_file;   /* the CAs that sign the server's certificate; none: the system's */
    const char *cert_file; /* client certificate (chain), for a server that asks for one */
    const char *key_file;  /* its private key; none: in cert_file */
} cs_redis_tls;

/* The Redis settings of cfg (--redis-ca-file, --redis-cert-file, --redis-key-file); the
 * strings are cfg's. */
cs_redis_tls cs_redis_tls_of(const cs_config *cfg);

/* True when this build can connect over TLS (hiredis 1.0 or later with libhiredis_ssl). */
bool cs_redis_tls_supported(void);

typedef struct cs_redis cs_redis;

/* Where and how to connect: url (redis[s]://[[user]:password@]host[:port][/db], see
 * cs_url_parse_redis) and, for rediss://, tls (may be NULL: the system's CAs, no client
 * certificate), whose files are loaded now. Returns a handle the caller frees with
 * cs_redis_free, or NULL with a one-line reason in errstr (never the password): a malformed
 * URL, rediss:// in a build without TLS, a TLS file that cannot be read or holds no
 * certificate or key, or a key that does not match the certificate. */
cs_redis *cs_redis_new(const char *url, const cs_redis_tls *tls, char *errstr, size_t errstr_size);
void cs_redis_free(cs_redis *r);

/* "host:port" (brackets around an IPv6 host), for messages. Borrowed from r. */
const char *cs_redis_where(const cs_redis *r);

/* Connects within timeout_ms, which also bounds the TLS handshake and every later command;
 * for rediss:// verifies the server's certificate (its chain and that it names the URL's host),
 * presents the client certificate if there is one and sends one PING (a server that refuses
 * the client's certificate says so only then, under TLS 1.3); sends AUTH [user] password when the
 * URL has a password, then SELECT db unless 0. Returns a context the caller frees with
 * redisFree, or NULL with the reason (host and port, never the password) in errstr. */
redisContext *cs_redis_connect(const cs_redis *r, int timeout_ms, char *errstr, size_t errstr_size);

#endif
