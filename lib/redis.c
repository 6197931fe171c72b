/* Redis connections: connect with a timeout, TLS for rediss://, authenticate, select the
 * database. */
#include "redis.h"

#include "err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef CS_HAVE_REDIS_TLS
#include <hiredis/hiredis_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#endif

struct cs_redis {
    cs_url url;
    int db;
    char where[300];
#ifdef CS_HAVE_REDIS_TLS
    SSL_CTX *tls;     /* NULL for redis:// */
    bool client_cert; /* tls presents a client certificate */
#endif
};

cs_redis_tls cs_redis_tls_of(const cs_config *cfg)
{
    cs_redis_tls t = {cfg->redis_ca_file, cfg->redis_cert_file, cfg->redis_key_file};

    return t;
}

bool cs_redis_tls_supported(void)
{
#ifdef CS_HAVE_REDIS_TLS
    return true;
#else
    return false;
#endif
}

const char *cs_redis_where(const cs_redis *r)
{
    return r->where;
}

void cs_redis_free(cs_redis *r)
{
    if (!r)
        return;
#ifdef CS_HAVE_REDIS_TLS
    SSL_CTX_free(r->tls);
#endif
    free(r);
}

#ifdef CS_HAVE_REDIS_TLS
/* The reason of OpenSSL's last error, or fallback; clears OpenSSL's error queue. */
static const char *tls_reason(const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    const char *s = e ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    return s ? s : fallback;
}

/* The client context of a rediss:// URL: TLS 1.2 or later, the server verified against the
 * CA file (or the system's CAs), the client certificate and key when given. */
static int tls_new(cs_redis *r, const cs_redis_tls *tls, char *errstr, size_t errstr_size)
{
    const char *ca = tls && tls->ca_file ? tls->ca_file : "";
    const char *cert = tls && tls->cert_file ? tls->cert_file : "";
    const char *key = tls && tls->key_file && tls->key_file[0] ? tls->key_file : cert;
    const struct {
        const char *name, *path;
    } files[] = {{"redis-ca-file", ca}, {"redis-cert-file", cert}, {"redis-key-file", key}};

    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (files[i].path[0] && access(files[i].path, R_OK) != 0) {
            snprintf(errstr, errstr_size, "%s %s cannot be read: %s", files[i].name, files[i].path,
                     strerror(errno));
            return CS_ERR_INVALID;
        }
    }
    ERR_clear_error();
    if (!(r->tls = SSL_CTX_new(TLS_client_method())) ||
        !SSL_CTX_set_min_proto_version(r->tls, TLS1_2_VERSION)) {
        snprintf(errstr, errstr_size, "could not set up TLS: %s", tls_reason("out of memory"));
        return CS_ERR_INVALID;
    }
    SSL_CTX_set_verify(r->tls, SSL_VERIFY_PEER, NULL);
    if (ca[0] ? SSL_CTX_load_verify_locations(r->tls, ca, NULL) != 1
              : SSL_CTX_set_default_verify_paths(r->tls) != 1) {
        snprintf(errstr, errstr_size, "%s%s: no CA certificate could be loaded: %s",
                 ca[0] ? "redis-ca-file " : "the system's CAs", ca, tls_reason("unknown"));
        return CS_ERR_INVALID;
    }
    if (cert[0]) {
        if (SSL_CTX_use_certificate_chain_file(r->tls, cert) != 1) {
            snprintf(errstr, errstr_size, "redis-cert-file %s: no certificate could be loaded: %s",
                     cert, tls_reason("unknown"));
            return CS_ERR_INVALID;
        }
        if (SSL_CTX_use_PrivateKey_file(r->tls, key, SSL_FILETYPE_PEM) != 1) {
            snprintf(errstr, errstr_size, "%s %s: no private key could be loaded: %s",
                     key == cert ? "redis-cert-file" : "redis-key-file", key,
                     tls_reason("unknown"));
            return CS_ERR_INVALID;
        }
        if (SSL_CTX_check_private_key(r->tls) != 1) {
            snprintf(errstr, errstr_size, "the key in %s does not match redis-cert-file %s: %s",
                     key, cert, tls_reason("unknown"));
            return CS_ERR_INVALID;
        }
        r->client_cert = true;
    }
    return CS_OK;
}

/* The TLS handshake on c's socket; the server's certificate must chain to the CAs and name
 * the URL's host (its IP address when the host is one). hiredis owns ssl once this succeeds. */
static int tls_start(const cs_redis *r, redisContext *c, char *errstr, size_t errstr_size)
{
    const char *host = r->url.host;
    unsigned char addr[16];
    bool ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
    redisReply *reply;
    SSL *ssl;
    long verify;

    ERR_clear_error();
    if (!(ssl = SSL_new(r->tls))) {
        snprintf(errstr, errstr_size, "redis at %s: %s", r->where, tls_reason("out of memory"));
        return CS_ERR_RETRY;
    }
    /* SNI is for host names only (RFC 6066). */
    if (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1
           : SSL_set_tlsext_host_name(ssl, host) != 1 || SSL_set1_host(ssl, host) != 1) {
        snprintf(errstr, errstr_size, "redis at %s: %s", r->where, tls_reason("bad host name"));
        SSL_free(ssl);
        return CS_ERR_RETRY;
    }
    if (redisInitiateSSL(c, ssl) != REDIS_OK) {
        verify = SSL_get_verify_result(ssl);
        snprintf(errstr, errstr_size, "redis at %s: TLS handshake failed: %s", r->where,
                 verify != X509_V_OK ? X509_verify_cert_error_string(verify)
                 : c->errstr[0]      ? c->errstr
                                     : "no reason given");
        ERR_clear_error();
        SSL_free(ssl);
        return CS_ERR_RETRY;
    }
    /* With TLS 1.3 a server that wants a client certificate refuses it only after the client
     * has finished its handshake: one PING makes that a connection error, with its reason. Any
     * reply, NOAUTH too, means the session works. */
    if (!(reply = redisCommand(c, "PING"))) {
        unsigned long e = ERR_peek_last_error();

        snprintf(errstr, errstr_size, "redis at %s: the server ended the TLS session: %s%s",
                 r->where,
                 e && ERR_reason_error_string(e) ? ERR_reason_error_string(e)
                 : c->errstr[0]                  ? c->errstr
                                                 : "no reply",
                 r->client_cert ? ""
                                : " (a server that requires a client certificate does so "
                                  "without one: redis-cert-file)");
        ERR_clear_error();
        return CS_ERR_RETRY;
    }
    freeReplyObject(reply);
    return CS_OK;
}
#endif

cs_redis *cs_redis_new(const char *url, const cs_redis_tls *tls, char *errstr, size_t errstr_size)
{
    cs_redis *r = calloc(1, sizeof(*r));

    if (!r) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (cs_url_parse_redis(url, &r->url, &r->db, errstr, errstr_size))
        goto fail;
    snprintf(r->where, sizeof(r->where), "%s%s%s:%d", r->url.ipv6 ? "[" : "", r->url.host,
             r->url.ipv6 ? "]" : "", r->url.port);
    if (strcmp(r->url.scheme, "rediss") == 0) {
#ifdef CS_HAVE_REDIS_TLS
        if (tls_new(r, tls, errstr, errstr_size))
            goto fail;
#else
        (void)tls;
        snprintf(errstr, errstr_size,
                 "rediss:// (TLS) needs hiredis 1.0 or later with libhiredis_ssl; this was "
                 "built with hiredis %d.%d, without TLS",
                 HIREDIS_MAJOR, HIREDIS_MINOR);
        goto fail;
#endif
    }
    return r;
fail:
    cs_redis_free(r);
    return NULL;
}

/* Runs one command whose reply must not be an error; fills errstr otherwise. */
static int command_ok(redisContext *c, redisReply *r, const cs_redis *rd, const char *what,
                      char *errstr, size_t errstr_size)
{
    int ok = r && r->type != REDIS_REPLY_ERROR;

    if (!ok)
        snprintf(errstr, errstr_size, "redis at %s: %s failed: %s", rd->where, what,
                 r              ? r->str
                 : c->errstr[0] ? c->errstr
                                : "no reply");
    if (r)
        freeReplyObject(r);
    return ok;
}

redisContext *cs_redis_connect(const cs_redis *rd, int timeout_ms, char *errstr, size_t errstr_size)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    const cs_url *u = &rd->url;
    redisContext *c = redisConnectWithTimeout(u->host, u->port, tv);

    if (!c || c->err) {
        snprintf(errstr, errstr_size, "redis at %s: %s", rd->where,
                 c ? c->errstr : "out of memory");
        goto fail;
    }
    /* Before the handshake, so that it is bounded too. */
    redisSetTimeout(c, tv);
#ifdef CS_HAVE_REDIS_TLS
    if (rd->tls && tls_start(rd, c, errstr, errstr_size))
        goto fail;
#endif
    if (u->has_password) {
        redisReply *r = u->user[0] ? redisCommand(c, "AUTH %s %s", u->user, u->password)
                                   : redisCommand(c, "AUTH %s", u->password);

        if (!command_ok(c, r, rd, "AUTH", errstr, errstr_size))
            goto fail;
    }
    if (rd->db != 0 &&
        !command_ok(c, redisCommand(c, "SELECT %d", rd->db), rd, "SELECT", errstr, errstr_size))
        goto fail;
    return c;
fail:
    if (c)
        redisFree(c);
    return NULL;
}
