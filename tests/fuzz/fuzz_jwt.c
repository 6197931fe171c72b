/* libFuzzer target: service-to-service tokens (lib/jwt.c), cs_jwt_verify, cs_jwt_claims_unverified
 * and cs_jwt_mint.
 *
 * Input: a first byte that picks the mode, then
 * - mode 0: a token as a caller passes it (up to the first NUL). It is verified with an HS256,
 *   an HS512 and an RS256 key: every answer is one of the results, with a one-line reason
 *   exactly when refused and claims exactly when accepted; a token the unverified reader
 *   refuses is malformed for every key; accepted claims are the unverified reader's and meet
 *   exp and nbf; "Bearer " in front changes nothing;
 * - mode 1: a header JSON text, a newline, a payload JSON text. The target encodes and signs
 *   them with the HS256 secret itself (OpenSSL's HMAC, not lib/jwt.c) and checks that
 *   cs_jwt_verify gives the result the rules of jwt.h give, never a bad signature;
 * - mode 2: a service name and a ttl (the last byte): a token minted for it verifies, with
 *   that sub and exp = iat + ttl, or minting is refused for a name that is empty or not UTF-8. */
#include "fuzz.h"

#include "jwt.h"

#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NOW 1800000000LL

static const char hs256_secret[] = "casestream-fuzz-hs256-secret-of-32-bytes";
static const char hs512_secret[] = "casestream-fuzz-hs512-secret-0123456789"
                                   "abcdefghijklmnopqrstuvwxyz";
/* tests/fixtures/jwt/rs256-public.pem */
static const char rs256_public[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtBEnY5v4zjpLgIZV3cR8\n"
    "0nIzOmAPcNrILQReDgJHzugMjCwLa6o5q8awH9BhY2F52+pYbmLohXlZTRko4e+q\n"
    "00qOxwxcVNovh6DjepK6wIGeNalGQeDxKk8q7Dw6UrWFy5fq7vElKp8lynVFo8S1\n"
    "jRCTm173xGJp3HiU36Go0OVxGOLVSrYlKEnHDaArE0FAo7tH6ojL3EK/FflTiCHM\n"
    "leZPJ9RKAqYpr8nJuwXE6SphDhwDkvzzuNBebQqKr0vO5mCVGBWR/vuZ31/lWlpe\n"
    "DcYSKkzqtueAV2LAIdctncHl+seb2F9XywbznxVr6gGzbY/gZUKx5k9KcMm6SFBi\n"
    "BQIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

static cs_jwt_key *keys[3];

static void init_keys(void)
{
    char errstr[256];

    if (keys[0])
        return;
    keys[0] = cs_jwt_key_new("HS256", hs256_secret, strlen(hs256_secret), errstr, sizeof(errstr));
    keys[1] = cs_jwt_key_new("HS512", hs512_secret, strlen(hs512_secret), errstr, sizeof(errstr));
    keys[2] = cs_jwt_key_new("RS256", rs256_public, strlen(rs256_public), errstr, sizeof(errstr));
    cs_fuzz_require(keys[0] && keys[1] && keys[2], "test keys refused: %s", errstr);
}

static char *b64u(const void *data, size_t len)
{
    char *out = cs_jwt_base64url(data, len);

    if (!out)
        abort();
    return out;
}

/* The reason of a refusal: present, one line, printable ASCII. */
static void check_reason(const char *errstr, size_t size)
{
    cs_fuzz_require(cs_fuzz_terminated(errstr, size), "reason not terminated");
    cs_fuzz_require(errstr[0] != '\0', "a refusal without a reason");
    for (const char *p = errstr; *p; p++)
        cs_fuzz_require(*p >= 0x20 && *p < 0x7f, "reason has byte 0x%02x", (unsigned char)*p);
}

/* A NumericDate claim as a long double (exact for every integer and double); false if absent. */
static bool date_of(json_t *claims, const char *name, long double *out)
{
    json_t *v = json_object_get(claims, name);

    if (!v)
        return false;
    cs_fuzz_require(json_is_number(v), "accepted %s is not a number", name);
    *out = json_is_integer(v) ? (long double)json_integer_value(v) : json_real_value(v);
    return true;
}

/* What jwt.h promises of accepted claims, at now. */
static void check_accepted(json_t *claims, long long now)
{
    long double exp, nbf, iat;

    cs_fuzz_require(json_is_object(claims), "accepted claims are not an object");
    cs_fuzz_require(date_of(claims, "exp", &exp), "accepted without exp");
    cs_fuzz_require(exp > (long double)now - CS_JWT_LEEWAY, "accepted an expired token");
    if (date_of(claims, "nbf", &nbf))
        cs_fuzz_require(nbf <= (long double)now + CS_JWT_LEEWAY, "accepted before its nbf");
    (void)date_of(claims, "iat", &iat);
}

static cs_jwt_result verify(const cs_jwt_key *key, const char *token, json_t **claims)
{
    char errstr[256];
    cs_jwt_result r = cs_jwt_verify(key, token, NOW, claims, errstr, sizeof(errstr));

    cs_fuzz_require(r >= CS_JWT_OK && r <= CS_JWT_NOT_YET_VALID, "result %d", (int)r);
    if (r == CS_JWT_OK) {
        cs_fuzz_require(*claims != NULL, "accepted without claims");
        cs_fuzz_require(errstr[0] == '\0', "accepted with a reason");
        check_accepted(*claims, NOW);
    } else {
        cs_fuzz_require(*claims == NULL, "refused (%s) with claims", cs_jwt_result_str(r));
        check_reason(errstr, sizeof(errstr));
    }
    return r;
}

static void fuzz_token(const char *token)
{
    char errstr[256], *bearer = malloc(strlen(token) + 8);
    json_t *unverified = cs_jwt_claims_unverified(token, errstr, sizeof(errstr));

    if (!bearer)
        abort();
    if (!unverified)
        check_reason(errstr, sizeof(errstr));
    sprintf(bearer, "Bearer %s", token);
    for (int k = 0; k < 3; k++) {
        json_t *claims = NULL, *again = NULL;
        cs_jwt_result r = verify(keys[k], token, &claims);

        if (!unverified)
            cs_fuzz_require(r == CS_JWT_MALFORMED, "a token the unverified reader refuses is %s",
                            cs_jwt_result_str(r));
        if (r == CS_JWT_OK)
            cs_fuzz_require(unverified && json_equal(claims, unverified),
                            "verified claims are not the unverified reader's");
        /* (Spaces after "Bearer " are skipped, so a token that starts with one is left out.) */
        if (strncasecmp(token, "bearer ", 7) != 0 && token[0] != ' ')
            cs_fuzz_require(verify(keys[k], bearer, &again) == r, "\"Bearer \" changed %s",
                            cs_jwt_result_str(r));
        json_decref(again);
        json_decref(claims);
    }
    json_decref(unverified);
    free(bearer);
}

/* The result the rules of jwt.h give a token of this header and payload with a good HS256
 * signature. */
static cs_jwt_result expected(const char *htext, size_t hlen, const char *ptext, size_t plen,
                              size_t token_len)
{
    json_error_t jerr;
    json_t *h = json_loadb(htext, hlen, JSON_REJECT_DUPLICATES, &jerr);
    json_t *p = json_loadb(ptext, plen, JSON_REJECT_DUPLICATES, &jerr), *v;
    cs_jwt_result r = CS_JWT_MALFORMED;
    long double exp, nbf;

    if (token_len > CS_JWT_MAX_TOKEN || !json_is_object(h) || !json_is_object(p) ||
        json_object_get(h, "crit"))
        goto done;
    if (!json_is_string(v = json_object_get(h, "alg")) || strcmp(json_string_value(v), "HS256")) {
        r = CS_JWT_WRONG_ALG;
        goto done;
    }
    if (((v = json_object_get(p, "iat")) && !json_is_number(v)) ||
        !json_is_number(json_object_get(p, "exp")))
        goto done;
    date_of(p, "exp", &exp);
    if (exp <= (long double)NOW - CS_JWT_LEEWAY) {
        r = CS_JWT_EXPIRED;
        goto done;
    }
    if ((v = json_object_get(p, "nbf")) && !json_is_number(v))
        goto done;
    r = v && date_of(p, "nbf", &nbf) && nbf > (long double)NOW + CS_JWT_LEEWAY
            ? CS_JWT_NOT_YET_VALID
            : CS_JWT_OK;
done:
    json_decref(h);
    json_decref(p);
    return r;
}

static void fuzz_signed(const char *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    size_t hlen = nl ? (size_t)(nl - data) : size;
    const char *ptext = nl ? nl + 1 : "{}";
    size_t plen = nl ? size - hlen - 1 : 2;
    char *h = b64u(data, hlen), *p = b64u(ptext, plen), *s, *token;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    size_t input_len = strlen(h) + 1 + strlen(p);
    json_t *claims = NULL;
    cs_jwt_result want, got;

    token = malloc(input_len + 64);
    if (!token)
        abort();
    sprintf(token, "%s.%s", h, p);
    if (!HMAC(EVP_sha256(), hs256_secret, (int)strlen(hs256_secret), (unsigned char *)token,
              input_len, mac, &mac_len))
        abort();
    s = b64u(mac, mac_len);
    strcat(token, ".");
    strcat(token, s);
    want = expected(data, hlen, ptext, plen, strlen(token));
    got = verify(keys[0], token, &claims);
    cs_fuzz_require(got == want, "%s where the rules say %s", cs_jwt_result_str(got),
                    cs_jwt_result_str(want));
    if (got == CS_JWT_OK) {
        json_error_t jerr;
        json_t *payload = json_loadb(ptext, plen, JSON_REJECT_DUPLICATES, &jerr);

        cs_fuzz_require(json_equal(claims, payload), "claims are not the payload");
        json_decref(payload);
    }
    json_decref(claims);
    free(h);
    free(p);
    free(s);
    free(token);
}

static void fuzz_mint(const char *data, size_t size)
{
    char errstr[256], *sub = malloc(size + 1), *token;
    long long ttl = size ? (unsigned char)data[size - 1] : 0;
    json_t *claims = NULL;

    if (!sub)
        abort();
    memcpy(sub, data, size);
    sub[size > 0 ? size - 1 : 0] = '\0'; /* up to the ttl byte (or a NUL before it) */
    for (int k = 0; k < 2; k++) {
        token = cs_jwt_mint(keys[k], sub, NOW, ttl, errstr, sizeof(errstr));
        if (!token) {
            check_reason(errstr, sizeof(errstr));
            cs_fuzz_require(!sub[0] || ttl <= 0 || !cs_fuzz_utf8(sub, strlen(sub)),
                            "minting refused: %s", errstr);
            continue;
        }
        cs_fuzz_require(sub[0] && ttl > 0, "minted for an empty sub or a ttl of %lld", ttl);
        cs_fuzz_require(cs_jwt_verify(keys[k], token, NOW, &claims, errstr, sizeof(errstr)) ==
                            CS_JWT_OK,
                        "a minted token is refused: %s", errstr);
        cs_fuzz_require(strcmp(json_string_value(json_object_get(claims, "sub")), sub) == 0 &&
                            json_integer_value(json_object_get(claims, "exp")) == NOW + ttl &&
                            json_integer_value(json_object_get(claims, "iat")) == NOW,
                        "minted claims differ");
        cs_fuzz_require(cs_jwt_verify(keys[1 - k], token, NOW, NULL, errstr, sizeof(errstr)) ==
                            CS_JWT_WRONG_ALG,
                        "a token of the other HMAC alg is not refused as such");
        json_decref(claims);
        claims = NULL;
        free(token);
    }
    free(sub);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text;

    if (size == 0)
        return 0;
    init_keys();
    switch (data[0] % 3) {
    case 0:
        text = malloc(size);
        if (!text)
            abort();
        memcpy(text, data + 1, size - 1);
        text[size - 1] = '\0';
        fuzz_token(text);
        free(text);
        break;
    case 1:
        fuzz_signed((const char *)data + 1, size - 1);
        break;
    default:
        fuzz_mint((const char *)data + 1, size - 1);
        break;
    }
    return 0;
}
