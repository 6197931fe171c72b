/* Service-to-service tokens: compact JWS verification and minting (HS256, HS512, RS256). */
#include "jwt.h"

#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_KEY_FILE (1024 * 1024)

typedef enum jwt_alg { ALG_HS256, ALG_HS512, ALG_RS256 } jwt_alg;

static const char *const alg_names[] = {"HS256", "HS512", "RS256"};

struct cs_jwt_key {
    jwt_alg alg;
    unsigned char *secret; /* HS*: the shared secret */
    size_t secret_len;
    EVP_PKEY *pkey; /* RS256 */
    bool can_sign;  /* RS256: a private key */
};

const char *cs_jwt_result_str(cs_jwt_result r)
{
    switch (r) {
    case CS_JWT_OK:
        return "ok";
    case CS_JWT_MALFORMED:
        return "malformed";
    case CS_JWT_WRONG_ALG:
        return "wrong alg";
    case CS_JWT_BAD_SIGNATURE:
        return "bad signature";
    case CS_JWT_EXPIRED:
        return "expired";
    case CS_JWT_NOT_YET_VALID:
        return "not yet valid";
    }
    return "unknown";
}

const char *cs_jwt_key_alg(const cs_jwt_key *key)
{
    return alg_names[key->alg];
}

/* Copies at most max bytes of s to out, printable ASCII only ('?' for the rest), for a reason
 * that quotes a value from outside. */
static const char *printable(const char *s, size_t max, char *out, size_t size)
{
    size_t i = 0;

    for (; s[i] && i < max && i + 1 < size; i++)
        out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    out[i] = '\0';
    return out;
}

/* ---------------------------------------------------------------- base64url (RFC 4648 §5) */

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decodes s[0..len) strictly: the alphabet only, no padding, no length of 4n+1, and the unused
 * bits of the last character zero (so one byte string has one encoding). out has room for
 * len * 3 / 4 bytes. Returns false when s is not such a text. */
static bool b64url_decode(const char *s, size_t len, unsigned char *out, size_t *out_len)
{
    unsigned long acc = 0;
    int bits = 0;
    size_t n = 0;

    if (len % 4 == 1)
        return false;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)s[i]);

        if (v < 0)
            return false;
        acc = (acc << 6) | (unsigned long)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1UL << bits) - 1;
        }
    }
    if (acc != 0) /* stray bits in the last character */
        return false;
    *out_len = n;
    return true;
}

/* Appends the encoding of data[0..len) to out at *pos (room checked by the caller). */
static void b64url_encode(const unsigned char *data, size_t len, char *out, size_t *pos)
{
    size_t i = 0;

    for (; i + 2 < len; i += 3) {
        unsigned long v =
            (unsigned long)data[i] << 16 | (unsigned long)data[i + 1] << 8 | data[i + 2];

        out[(*pos)++] = b64url_alphabet[(v >> 18) & 63];
        out[(*pos)++] = b64url_alphabet[(v >> 12) & 63];
        out[(*pos)++] = b64url_alphabet[(v >> 6) & 63];
        out[(*pos)++] = b64url_alphabet[v & 63];
    }
    if (len - i == 1) {
        unsigned long v = (unsigned long)data[i] << 16;

        out[(*pos)++] = b64url_alphabet[(v >> 18) & 63];
        out[(*pos)++] = b64url_alphabet[(v >> 12) & 63];
    } else if (len - i == 2) {
        unsigned long v = (unsigned long)data[i] << 16 | (unsigned long)data[i + 1] << 8;

        out[(*pos)++] = b64url_alphabet[(v >> 18) & 63];
        out[(*pos)++] = b64url_alphabet[(v >> 12) & 63];
        out[(*pos)++] = b64url_alphabet[(v >> 6) & 63];
    }
}

static size_t b64url_len(size_t len)
{
    return len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
}

char *cs_jwt_base64url(const void *data, size_t len)
{
    char *out = malloc(b64url_len(len) + 1);
    size_t pos = 0;

    if (!out)
        return NULL;
    b64url_encode(data, len, out, &pos);
    out[pos] = '\0';
    return out;
}

/* ---------------------------------------------------------------- keys */

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1; /* an encrypted key is refused, never prompted for */
}

static bool parse_alg(const char *alg, jwt_alg *out)
{
    for (size_t i = 0; i < sizeof(alg_names) / sizeof(alg_names[0]); i++) {
        if (alg && strcmp(alg, alg_names[i]) == 0) {
            *out = (jwt_alg)i;
            return true;
        }
    }
    return false;
}

/* True if data[0..len) holds a PEM boundary ("-----BEGIN "). */
static bool has_pem_marker(const void *data, size_t len)
{
    static const char marker[] = "-----BEGIN ";
    const char *p = data;

    for (size_t i = 0; i + sizeof(marker) - 1 <= len; i++) {
        if (memcmp(p + i, marker, sizeof(marker) - 1) == 0)
            return true;
    }
    return false;
}

static EVP_PKEY *read_rsa_pem(const void *material, size_t len, bool *is_private)
{
    BIO *bio = BIO_new_mem_buf(material, (int)len);
    EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;

    *is_private = pkey != NULL;
    if (!pkey && bio) {
        BIO_free(bio);
        bio = BIO_new_mem_buf(material, (int)len);
        pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL) : NULL;
    }
    BIO_free(bio);
    ERR_clear_error();
    return pkey;
}

bool cs_jwt_alg_valid(const char *alg)
{
    jwt_alg a;

    return parse_alg(alg, &a);
}

cs_jwt_key *cs_jwt_key_new(const char *alg, const void *material, size_t len, char *errstr,
                           size_t errstr_size)
{
    cs_jwt_key *key = NULL;
    jwt_alg a;
    char shown[24];

    if (!parse_alg(alg, &a)) {
        snprintf(errstr, errstr_size, "unsupported s2s alg \"%s\" (HS256, HS512 or RS256)",
                 alg ? printable(alg, 16, shown, sizeof(shown)) : "");
        return NULL;
    }
    if (!material && len > 0) {
        snprintf(errstr, errstr_size, "%s key: no material", alg_names[a]);
        return NULL;
    }
    if (!(key = calloc(1, sizeof(*key))))
        goto oom;
    key->alg = a;
    if (a == ALG_HS256 || a == ALG_HS512) {
        size_t min = a == ALG_HS256 ? 32 : 64;

        if (len < min) {
            snprintf(errstr, errstr_size, "%s secret is %zu bytes: at least %zu are needed",
                     alg_names[a], len, min);
            goto fail;
        }
        if (has_pem_marker(material, len)) {
            snprintf(errstr, errstr_size,
                     "%s secret is a PEM key: an HMAC secret must be random bytes "
                     "(a key pair is RS256)",
                     alg_names[a]);
            goto fail;
        }
        if (!(key->secret = malloc(len)))
            goto oom;
        memcpy(key->secret, material, len);
        key->secret_len = len;
        return key;
    }
    if (len == 0 || len > INT_MAX || !(key->pkey = read_rsa_pem(material, len, &key->can_sign))) {
        snprintf(errstr, errstr_size,
                 "RS256 key is not a PEM public key (BEGIN PUBLIC KEY) or an unencrypted PEM "
                 "private key");
        goto fail;
    }
    if (EVP_PKEY_get_base_id(key->pkey) != EVP_PKEY_RSA) {
        snprintf(errstr, errstr_size, "RS256 key is not an RSA key");
        goto fail;
    }
    if (EVP_PKEY_get_bits(key->pkey) < 2048) {
        snprintf(errstr, errstr_size, "RS256 key has %d bits: at least 2048 are needed",
                 EVP_PKEY_get_bits(key->pkey));
        goto fail;
    }
    return key;
oom:
    snprintf(errstr, errstr_size, "out of memory");
fail:
    cs_jwt_key_free(key);
    return NULL;
}

cs_jwt_key *cs_jwt_key_load(const char *alg, const char *path, char *errstr, size_t errstr_size)
{
    FILE *f = NULL;
    unsigned char *buf = NULL;
    size_t len = 0, got;
    cs_jwt_key *key = NULL;
    jwt_alg a;

    if (!parse_alg(alg, &a))
        return cs_jwt_key_new(alg, "", 0, errstr, errstr_size); /* its reason */
    if (!path || !*path) {
        snprintf(errstr, errstr_size, "no s2s key file given");
        return NULL;
    }
    if (!(f = fopen(path, "rb"))) {
        snprintf(errstr, errstr_size, "could not open s2s key file %s: %s", path, strerror(errno));
        return NULL;
    }
    if (!(buf = malloc(MAX_KEY_FILE + 1))) {
        snprintf(errstr, errstr_size, "out of memory");
        goto cleanup;
    }
    while ((got = fread(buf + len, 1, MAX_KEY_FILE + 1 - len, f)) > 0)
        len += got;
    if (ferror(f)) {
        snprintf(errstr, errstr_size, "could not read s2s key file %s: %s", path, strerror(errno));
        goto cleanup;
    }
    if (len > MAX_KEY_FILE) {
        snprintf(errstr, errstr_size, "s2s key file %s is over %d bytes", path, MAX_KEY_FILE);
        goto cleanup;
    }
    if (a != ALG_RS256 && len > 0 && buf[len - 1] == '\n') {
        len--;
        if (len > 0 && buf[len - 1] == '\r')
            len--;
    }
    if (!(key = cs_jwt_key_new(alg, buf, len, errstr, errstr_size))) {
        char reason[256];

        snprintf(reason, sizeof(reason), "%s", errstr);
        snprintf(errstr, errstr_size, "s2s key file %s: %s", path, reason);
    }
cleanup:
    if (buf) {
        OPENSSL_cleanse(buf, MAX_KEY_FILE + 1);
        free(buf);
    }
    fclose(f);
    return key;
}

void cs_jwt_key_free(cs_jwt_key *key)
{
    if (!key)
        return;
    if (key->secret) {
        OPENSSL_cleanse(key->secret, key->secret_len);
        free(key->secret);
    }
    EVP_PKEY_free(key->pkey);
    free(key);
}

/* ---------------------------------------------------------------- the compact form */

/* A token cut into its three segments (pointers into the caller's text). */
typedef struct segments {
    const char *part[3];
    size_t len[3];
} segments;

/* Takes off an optional "Bearer " (the scheme in any case, then one or more spaces), checks the
 * size and cuts the rest at its two dots. Reads at most CS_JWT_MAX_TOKEN + 64 bytes. */
static bool split(const char *token, segments *s, char *errstr, size_t errstr_size)
{
    size_t n, start = 0, k = 0;

    if (!token) {
        snprintf(errstr, errstr_size, "no token");
        return false;
    }
    n = strnlen(token, CS_JWT_MAX_TOKEN + 64);
    if (n == CS_JWT_MAX_TOKEN + 64) {
        snprintf(errstr, errstr_size, "token is over %d bytes", CS_JWT_MAX_TOKEN);
        return false;
    }
    if (n >= 7 && strncasecmp(token, "bearer ", 7) == 0) {
        start = 7;
        while (start < n && token[start] == ' ')
            start++;
    }
    if (n - start > CS_JWT_MAX_TOKEN) {
        snprintf(errstr, errstr_size, "token is over %d bytes", CS_JWT_MAX_TOKEN);
        return false;
    }
    s->part[0] = token + start;
    for (size_t i = start; i <= n; i++) {
        if (i < n && token[i] != '.')
            continue;
        if (k == 3) {
            k++;
            break;
        }
        s->len[k] = (size_t)(token + i - s->part[k]);
        if (++k < 3)
            s->part[k] = token + i + 1;
    }
    if (k != 3) {
        snprintf(errstr, errstr_size, "token is not three base64url segments joined by dots");
        return false;
    }
    return true;
}

/* Decodes segment i of s into a new buffer (*out, caller frees; NUL-terminated for jansson's
 * sake, the NUL not counted). */
static bool decode_segment(const segments *s, int i, unsigned char **out, size_t *out_len,
                           char *errstr, size_t errstr_size)
{
    static const char *const names[] = {"header", "payload", "signature"};

    *out = malloc(s->len[i] / 4 * 3 + 3 + 1);
    if (!*out) {
        snprintf(errstr, errstr_size, "out of memory");
        return false;
    }
    if (!b64url_decode(s->part[i], s->len[i], *out, out_len)) {
        snprintf(errstr, errstr_size, "token %s is not base64url", names[i]);
        return false;
    }
    (*out)[*out_len] = '\0';
    return true;
}

/* Parses a decoded header or payload: a JSON object, duplicate members refused (RFC 7515 §4). */
static json_t *parse_object(const unsigned char *text, size_t len, const char *what, char *errstr,
                            size_t errstr_size)
{
    json_error_t jerr;
    json_t *v = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &jerr);

    if (!json_is_object(v)) {
        snprintf(errstr, errstr_size, "token %s is not a JSON object", what);
        json_decref(v);
        return NULL;
    }
    return v;
}

/* Cuts and decodes the header and payload of a token; the signature segment is left encoded. */
static bool read_token(const char *token, segments *s, json_t **header, json_t **payload,
                       char *errstr, size_t errstr_size)
{
    unsigned char *h = NULL, *p = NULL;
    size_t hlen, plen;
    bool ok = false;

    *header = *payload = NULL;
    if (!split(token, s, errstr, errstr_size) ||
        !decode_segment(s, 0, &h, &hlen, errstr, errstr_size) ||
        !decode_segment(s, 1, &p, &plen, errstr, errstr_size))
        goto cleanup;
    for (size_t i = 0; i < s->len[2]; i++) {
        if (b64url_value((unsigned char)s->part[2][i]) < 0) {
            snprintf(errstr, errstr_size, "token signature is not base64url");
            goto cleanup;
        }
    }
    if (!(*header = parse_object(h, hlen, "header", errstr, errstr_size)) ||
        !(*payload = parse_object(p, plen, "payload", errstr, errstr_size)))
        goto cleanup;
    ok = true;
cleanup:
    if (!ok) {
        json_decref(*header);
        json_decref(*payload);
        *header = *payload = NULL;
    }
    free(h);
    free(p);
    return ok;
}

json_t *cs_jwt_claims_unverified(const char *token, char *errstr, size_t errstr_size)
{
    segments s;
    json_t *header, *payload;

    if (!read_token(token, &s, &header, &payload, errstr, errstr_size))
        return NULL;
    json_decref(header);
    return payload;
}

/* ---------------------------------------------------------------- verification */

static const EVP_MD *alg_md(jwt_alg a)
{
    return a == ALG_HS512 ? EVP_sha512() : EVP_sha256();
}

/* True if sig is the signature of data[0..len) under key. */
static bool signature_ok(const cs_jwt_key *key, const char *data, size_t len,
                         const unsigned char *sig, size_t sig_len)
{
    bool ok = false;

    if (key->alg == ALG_HS256 || key->alg == ALG_HS512) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;

        if (HMAC(alg_md(key->alg), key->secret, (int)key->secret_len, (const unsigned char *)data,
                 len, mac, &mac_len) &&
            sig_len == mac_len && CRYPTO_memcmp(mac, sig, mac_len) == 0)
            ok = true;
        OPENSSL_cleanse(mac, sizeof(mac));
    } else {
        EVP_MD_CTX *ctx;

        if (sig_len != (size_t)EVP_PKEY_get_size(key->pkey))
            return false;
        if ((ctx = EVP_MD_CTX_new()) != NULL &&
            EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
            EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)data, len) == 1)
            ok = true;
        EVP_MD_CTX_free(ctx);
        ERR_clear_error();
    }
    return ok;
}

/* Reads the NumericDate claim name of payload: false (malformed) when present and not a number;
 * *present says whether it is there. */
static bool numeric_date(const json_t *payload, const char *name, bool *present, double *real,
                         long long *integer, bool *is_integer)
{
    const json_t *v = json_object_get(payload, name);

    *present = v != NULL;
    if (!v)
        return true;
    if (json_is_integer(v)) {
        *is_integer = true;
        *integer = json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        *is_integer = false;
        *real = json_real_value(v);
        return true;
    }
    return false;
}

/* True if the date claim is at or before now + offset (offset is ±CS_JWT_LEEWAY), without
 * overflow for any integer. */
static bool at_or_before(bool is_integer, long long integer, double real, long long now,
                         long long offset)
{
    if (!is_integer)
        return real <= (double)now + (double)offset;
    if (offset < 0)
        return now >= LLONG_MIN - offset ? integer <= now + offset : false;
    return now <= LLONG_MAX - offset ? integer <= now + offset : true;
}

cs_jwt_result cs_jwt_verify(const cs_jwt_key *key, const char *token, long long now,
                            json_t **claims, char *errstr, size_t errstr_size)
{
    segments s;
    json_t *header = NULL, *payload = NULL;
    unsigned char *sig = NULL;
    size_t sig_len;
    const char *alg;
    cs_jwt_result r = CS_JWT_MALFORMED;
    bool present, is_integer = true;
    long long integer = 0;
    double real = 0;
    char shown[24];

    if (claims)
        *claims = NULL;
    if (!read_token(token, &s, &header, &payload, errstr, errstr_size))
        goto cleanup;
    if (json_object_get(header, "crit")) {
        snprintf(errstr, errstr_size, "token header has crit: no extension is understood");
        goto cleanup;
    }
    alg = json_string_value(json_object_get(header, "alg"));
    if (!alg || strcmp(alg, alg_names[key->alg]) != 0) {
        r = CS_JWT_WRONG_ALG;
        if (!alg)
            snprintf(errstr, errstr_size, "token header has no alg string");
        else
            snprintf(errstr, errstr_size, "token alg \"%s\" is not the key's %s",
                     printable(alg, 16, shown, sizeof(shown)), alg_names[key->alg]);
        goto cleanup;
    }
    if (!decode_segment(&s, 2, &sig, &sig_len, errstr, errstr_size))
        goto cleanup;
    /* The signing input is the header and payload segments as sent, with their dot. */
    if (!signature_ok(key, s.part[0], s.len[0] + 1 + s.len[1], sig, sig_len)) {
        r = CS_JWT_BAD_SIGNATURE;
        snprintf(errstr, errstr_size, "token signature does not check with the %s key",
                 alg_names[key->alg]);
        goto cleanup;
    }
    if (!numeric_date(payload, "iat", &present, &real, &integer, &is_integer)) {
        snprintf(errstr, errstr_size, "token iat is not a number");
        goto cleanup;
    }
    if (!numeric_date(payload, "exp", &present, &real, &integer, &is_integer) || !present) {
        snprintf(errstr, errstr_size,
                 present ? "token exp is not a number" : "token has no exp: it must expire");
        goto cleanup;
    }
    if (at_or_before(is_integer, integer, real, now, -CS_JWT_LEEWAY)) {
        r = CS_JWT_EXPIRED;
        snprintf(errstr, errstr_size, "token expired (exp is over the %d s leeway past)",
                 CS_JWT_LEEWAY);
        goto cleanup;
    }
    if (!numeric_date(payload, "nbf", &present, &real, &integer, &is_integer)) {
        snprintf(errstr, errstr_size, "token nbf is not a number");
        goto cleanup;
    }
    if (present && !at_or_before(is_integer, integer, real, now, CS_JWT_LEEWAY)) {
        r = CS_JWT_NOT_YET_VALID;
        snprintf(errstr, errstr_size, "token not valid yet (nbf is more than %d s ahead)",
                 CS_JWT_LEEWAY);
        goto cleanup;
    }
    r = CS_JWT_OK;
    if (errstr_size > 0)
        errstr[0] = '\0';
    if (claims) {
        *claims = payload;
        payload = NULL;
    }
cleanup:
    json_decref(header);
    json_decref(payload);
    free(sig);
    return r;
}

/* ---------------------------------------------------------------- minting */

char *cs_jwt_mint(const cs_jwt_key *key, const char *sub, long long now, long long ttl,
                  char *errstr, size_t errstr_size)
{
    json_t *header = NULL, *payload = NULL;
    char *htext = NULL, *ptext = NULL, *out = NULL;
    unsigned char sig[1024]; /* RSA up to 8192 bits */
    size_t sig_len = 0, pos = 0;
    EVP_MD_CTX *ctx = NULL;
    bool ok = false;

    if (key->alg == ALG_RS256 && !key->can_sign) {
        snprintf(errstr, errstr_size,
                 "an RS256 public key cannot sign: minting needs the private key");
        return NULL;
    }
    if (!sub || !*sub) {
        snprintf(errstr, errstr_size, "no service name (sub) to mint a token for");
        return NULL;
    }
    if (ttl <= 0 || now > LLONG_MAX - ttl) {
        snprintf(errstr, errstr_size, "ttl %lld: it must be positive and exp fit in 64 bits", ttl);
        return NULL;
    }
    header = json_pack("{s:s, s:s}", "alg", alg_names[key->alg], "typ", "JWT");
    payload = json_pack("{s:s, s:I, s:I}", "sub", sub, "iat", (json_int_t)now, "exp",
                        (json_int_t)(now + ttl));
    if (!payload) {
        snprintf(errstr, errstr_size, "service name (sub) is not UTF-8");
        goto cleanup;
    }
    if (!header || !(htext = json_dumps(header, JSON_COMPACT)) ||
        !(ptext = json_dumps(payload, JSON_COMPACT)) ||
        !(out = malloc(b64url_len(strlen(htext)) + b64url_len(strlen(ptext)) +
                       b64url_len(sizeof(sig)) + 3))) {
        snprintf(errstr, errstr_size, "out of memory");
        goto cleanup;
    }
    b64url_encode((const unsigned char *)htext, strlen(htext), out, &pos);
    out[pos++] = '.';
    b64url_encode((const unsigned char *)ptext, strlen(ptext), out, &pos);
    if (key->alg == ALG_RS256) {
        sig_len = sizeof(sig);
        if (!(ctx = EVP_MD_CTX_new()) ||
            EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key->pkey) != 1 ||
            EVP_DigestSign(ctx, NULL, &sig_len, (const unsigned char *)out, pos) != 1 ||
            sig_len > sizeof(sig) ||
            EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)out, pos) != 1) {
            snprintf(errstr, errstr_size, "RS256 signing failed");
            ERR_clear_error();
            goto cleanup;
        }
    } else {
        unsigned int mac_len = 0;

        if (!HMAC(alg_md(key->alg), key->secret, (int)key->secret_len, (const unsigned char *)out,
                  pos, sig, &mac_len)) {
            snprintf(errstr, errstr_size, "%s signing failed", alg_names[key->alg]);
            goto cleanup;
        }
        sig_len = mac_len;
    }
    out[pos++] = '.';
    b64url_encode(sig, sig_len, out, &pos);
    out[pos] = '\0';
    ok = true;
cleanup:
    EVP_MD_CTX_free(ctx);
    json_decref(header);
    json_decref(payload);
    free(htext);
    free(ptext);
    if (!ok) {
        free(out);
        out = NULL;
    }
    return out;
}
