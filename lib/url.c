/* Parsing of the service URLs casestream takes (Redis, Elasticsearch). */
#include "url.h"

#include "err.h"
#include "redact.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..len) into buf; false when an escape is malformed or buf too small. */
static bool decode(const char *s, size_t len, char *buf, size_t size)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (c == '%') {
            int hi, lo;

            if (i + 2 >= len || (hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0)
                return false;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= size)
            return false;
        buf[o++] = c;
    }
    buf[o] = '\0';
    return true;
}

static int fail(char *errstr, size_t errstr_size, const char *url, const char *why)
{
    char safe[512];

    cs_redact(safe, sizeof(safe), url);
    snprintf(errstr, errstr_size, "invalid URL \"%s\": %s", safe, why);
    return CS_ERR_INVALID;
}

int cs_url_parse(const char *url, cs_url *out, char *errstr, size_t errstr_size)
{
    const char *p = strstr(url, "://"), *auth, *end, *at = NULL, *hp, *hend, *port = NULL;

    memset(out, 0, sizeof(*out));
    if (!p || p == url || (size_t)(p - url) >= sizeof(out->scheme))
        return fail(errstr, errstr_size, url, "no scheme:// at the start");
    for (const char *s = url; s < p; s++) {
        if (!isalpha((unsigned char)*s) &&
            !(s > url && (isdigit((unsigned char)*s) || *s == '+' || *s == '-' || *s == '.')))
            return fail(errstr, errstr_size, url, "invalid scheme");
        out->scheme[s - url] = (char)tolower((unsigned char)*s);
    }
    auth = p + 3;
    end = auth + strcspn(auth, "/?#");
    for (const char *s = auth; s < end; s++)
        if (*s == '@')
            at = s;
    hp = auth;
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        size_t ulen = colon ? (size_t)(colon - auth) : (size_t)(at - auth);

        if (!decode(auth, ulen, out->user, sizeof(out->user)))
            return fail(errstr, errstr_size, url, "invalid user name");
        if (colon) {
            out->has_password = true;
            if (!decode(colon + 1, (size_t)(at - colon - 1), out->password, sizeof(out->password)))
                return fail(errstr, errstr_size, url, "invalid password encoding");
        }
        hp = at + 1;
    }
    if (*hp == '[') {
        const char *close = memchr(hp, ']', (size_t)(end - hp));

        if (!close || close == hp + 1)
            return fail(errstr, errstr_size, url, "unclosed [ of an IPv6 address");
        if ((size_t)(close - hp - 1) >= sizeof(out->host))
            return fail(errstr, errstr_size, url, "host too long");
        memcpy(out->host, hp + 1, (size_t)(close - hp - 1));
        out->ipv6 = true;
        hend = close + 1;
        if (hend < end && *hend != ':')
            return fail(errstr, errstr_size, url, "unexpected text after the IPv6 address");
    } else {
        hend = memchr(hp, ':', (size_t)(end - hp));
        if (!hend)
            hend = end;
        if ((size_t)(hend - hp) >= sizeof(out->host))
            return fail(errstr, errstr_size, url, "host too long");
        memcpy(out->host, hp, (size_t)(hend - hp));
        for (const char *s = hp; s < hend; s++)
            if (!isalnum((unsigned char)*s) && *s != '.' && *s != '-' && *s != '_')
                return fail(errstr, errstr_size, url, "invalid character in the host");
    }
    if (out->host[0] == '\0')
        return fail(errstr, errstr_size, url, "no host");
    if (hend < end && *hend == ':')
        port = hend + 1;
    if (port) {
        long v = 0;

        if (port == end)
            return fail(errstr, errstr_size, url, "empty port");
        for (const char *s = port; s < end; s++) {
            if (!isdigit((unsigned char)*s) || (v = v * 10 + (*s - '0')) > 65535)
                return fail(errstr, errstr_size, url, "port must be a number 1..65535");
        }
        if (v == 0)
            return fail(errstr, errstr_size, url, "port must be a number 1..65535");
        out->port = (int)v;
    }
    if (strlen(end) >= sizeof(out->path))
        return fail(errstr, errstr_size, url, "path too long");
    snprintf(out->path, sizeof(out->path), "%s", end);
    return CS_OK;
}

size_t cs_url_origin(const cs_url *u, char *buf, size_t size)
{
    char port[16] = "";
    int n;

    if (u->port)
        snprintf(port, sizeof(port), ":%d", u->port);
    n = snprintf(buf, size, "%s://%s%s%s%s", u->scheme, u->ipv6 ? "[" : "", u->host,
                 u->ipv6 ? "]" : "", port);
    if (n < 0)
        return 0;
    return (size_t)n < size ? (size_t)n : size - 1;
}

int cs_url_parse_redis(const char *url, cs_url *out, int *db, char *errstr, size_t errstr_size)
{
    int rc;
    const char *p;
    long v = 0;

    *db = 0;
    if (strncmp(url, "redis://", 8) != 0 && strncmp(url, "rediss://", 9) != 0)
        return fail(errstr, errstr_size, url,
                    "a Redis URL looks like redis[s]://[[user]:password@]host[:port][/db]");
    if ((rc = cs_url_parse(url, out, errstr, errstr_size)))
        return rc;
    if (strcmp(out->scheme, "redis") != 0 && strcmp(out->scheme, "rediss") != 0)
        return fail(errstr, errstr_size, url, "a Redis URL starts with redis:// or rediss://");
    if (!out->port)
        out->port = 6379;
    p = out->path;
    if (*p == '/')
        p++;
    if (*p) {
        for (const char *s = p; *s; s++)
            if (!isdigit((unsigned char)*s) || (v = v * 10 + (*s - '0')) > 100000)
                return fail(errstr, errstr_size, url, "the path must be a database number");
        *db = (int)v;
    }
    return CS_OK;
}

int cs_url_parse_http(const char *url, cs_url *out, char *errstr, size_t errstr_size)
{
    int rc;

    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return fail(errstr, errstr_size, url,
                    "an Elasticsearch URL looks like http[s]://[user:password@]host[:port]");
    if ((rc = cs_url_parse(url, out, errstr, errstr_size)))
        return rc;
    if (strcmp(out->scheme, "http") != 0 && strcmp(out->scheme, "https") != 0)
        return fail(errstr, errstr_size, url,
                    "an Elasticsearch URL starts with http:// or https://");
    if (strpbrk(out->path, "?#"))
        return fail(errstr, errstr_size, url, "a base URL has no query or fragment");
    if (!out->port)
        out->port = strcmp(out->scheme, "https") == 0 ? 443 : 80;
    return CS_OK;
}
