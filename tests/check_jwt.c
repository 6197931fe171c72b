/* Service-to-service tokens (lib/jwt.c): known vectors, round trips and every refusal. Tokens
 * with chosen headers and payloads are signed here with OpenSSL directly (the base64url of
 * lib/jwt.c encodes them; the RFC, Python and openssl CLI vectors check it). */
#include "jwt.h"
#include "../admin/admin.h"
#include "config.h"
#include "fixture.h"
#include "runner.h"

#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* RFC 7515 appendix A.1: the JWS and the octets of its HMAC key. */
static const char rfc7515_a1[] = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
                                 ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
                                 "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
                                 ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
static const unsigned char rfc7515_a1_key[64] = {
    3,   35,  53, 75,  43,  15, 165, 188, 131, 126, 6,   101, 119, 123, 166, 143,
    90,  179, 40, 230, 240, 84, 201, 40,  169, 15,  132, 178, 210, 80,  46,  191,
    211, 251, 90, 146, 210, 6,  71,  239, 150, 138, 180, 195, 119, 98,  61,  34,
    61,  46,  33, 114, 5,   46, 79,  8,   192, 205, 154, 245, 103, 208, 128, 163};
#define RFC7515_A1_EXP 1300819380LL

/* An HS512 token made with Python's hmac module: {"sub":"ccd_data","iat":1700000000,
 * "exp":1700003600} under the secret "0123456789abcdef" x 4. */
static const char hs512_python[] =
    "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiJjY2RfZGF0YSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAzNjAwfQ"
    ".WHiyeXlGigaajwLLd7xxNbSvIOTdkuc6Y1iRLGw06fNKC7snjt70CrSC5qtLYKnyfIg3waLNXf3idm83KbE0Tg";
static const char hs512_secret[] = "0123456789abcdef0123456789abcdef"
                                   "0123456789abcdef0123456789abcdef";
static const char hs256_secret[] = "casestream-unit-test-hs256-secret-32b+";

#define NOW 1800000000LL

/* ---------------------------------------------------------------- helpers */

static char *b64u(const void *data, size_t len)
{
    char *out = cs_jwt_base64url(data, len);

    if (!out)
        abort();
    return out;
}

/* Reads tests/fixtures/jwt/name whole; its length to *len unless len is NULL. Caller frees. */
static char *fixture(const char *name, size_t *len)
{
    char rel[128];
    size_t n;

    snprintf(rel, sizeof(rel), "jwt/%s", name);
    return cs_fixture_read(rel, len ? len : &n);
}

/* header.payload.signature, signed with OpenSSL: alg "HS256"/"HS512" with key as the secret, or
 * "RS256" with key the PEM private key; sign_alg "-" leaves the signature empty. Caller frees. */
static char *sign_token(const char *sign_alg, const void *key, size_t key_len, const char *header,
                        const char *payload)
{
    char *h = b64u(header, strlen(header)), *p = b64u(payload, strlen(payload)), *s, *out;
    size_t input_len = strlen(h) + 1 + strlen(p);
    char *input = malloc(input_len + 1);
    unsigned char sig[1024];
    size_t sig_len = 0;

    ck_assert_ptr_nonnull(input);
    snprintf(input, input_len + 1, "%s.%s", h, p);
    if (strcmp(sign_alg, "RS256") == 0) {
        BIO *bio = BIO_new_mem_buf(key, (int)key_len);
        EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();

        ck_assert_ptr_nonnull(pkey);
        sig_len = sizeof(sig);
        ck_assert_int_eq(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey), 1);
        ck_assert_int_eq(EVP_DigestSign(ctx, sig, &sig_len, (unsigned char *)input, input_len), 1);
        EVP_MD_CTX_free(ctx);
        EVP_PKEY_free(pkey);
        BIO_free(bio);
    } else if (strcmp(sign_alg, "-") != 0) {
        unsigned int n = 0;

        ck_assert_ptr_nonnull(HMAC(strcmp(sign_alg, "HS512") == 0 ? EVP_sha512() : EVP_sha256(),
                                   key, (int)key_len, (unsigned char *)input, input_len, sig, &n));
        sig_len = n;
    }
    s = b64u(sig, sig_len);
    out = malloc(input_len + strlen(s) + 2);
    ck_assert_ptr_nonnull(out);
    sprintf(out, "%s.%s", input, s);
    free(h);
    free(p);
    free(s);
    free(input);
    return out;
}

static char *hs256_token(const char *payload)
{
    return sign_token("HS256", hs256_secret, strlen(hs256_secret), "{\"alg\":\"HS256\"}", payload);
}

static cs_jwt_key *hs256_key(void)
{
    char errstr[256];
    cs_jwt_key *key =
        cs_jwt_key_new("HS256", hs256_secret, strlen(hs256_secret), errstr, sizeof(errstr));

    ck_assert_msg(key != NULL, "%s", errstr);
    return key;
}

static cs_jwt_key *fixture_key(const char *alg, const char *name)
{
    char rel[128], path[512], errstr[256];
    cs_jwt_key *key;

    snprintf(rel, sizeof(rel), "jwt/%s", name);
    key = cs_jwt_key_load(alg, cs_fixture_path(rel, path, sizeof(path)), errstr, sizeof(errstr));
    ck_assert_msg(key != NULL, "%s: %s", name, errstr);
    return key;
}

/* Verifies and checks the result; returns the reason (static) for further checks. */
static const char *expect(const cs_jwt_key *key, const char *token, long long now,
                          cs_jwt_result want)
{
    static char errstr[256];
    json_t *claims = (json_t *)1;
    cs_jwt_result got = cs_jwt_verify(key, token, now, &claims, errstr, sizeof(errstr));

    ck_assert_msg(got == want, "got %s (%s), want %s", cs_jwt_result_str(got), errstr,
                  cs_jwt_result_str(want));
    if (want == CS_JWT_OK) {
        ck_assert(json_is_object(claims));
        ck_assert_str_eq(errstr, "");
        json_decref(claims);
    } else {
        ck_assert_ptr_null(claims);
        ck_assert_msg(errstr[0] != '\0' && !strchr(errstr, '\n'), "reason \"%s\"", errstr);
    }
    return errstr;
}

/* ---------------------------------------------------------------- known vectors */

START_TEST(test_jwt_rfc7515_a1_hs256_vector_verifies)
{
    char errstr[256], bearer[512];
    cs_jwt_key *key =
        cs_jwt_key_new("HS256", rfc7515_a1_key, sizeof(rfc7515_a1_key), errstr, sizeof(errstr));
    json_t *claims = NULL;

    ck_assert_msg(key != NULL, "%s", errstr);
    ck_assert_str_eq(cs_jwt_key_alg(key), "HS256");
    ck_assert_int_eq(
        cs_jwt_verify(key, rfc7515_a1, RFC7515_A1_EXP - 380, &claims, errstr, sizeof(errstr)),
        CS_JWT_OK);
    ck_assert_str_eq(json_string_value(json_object_get(claims, "iss")), "joe");
    ck_assert_int_eq(json_integer_value(json_object_get(claims, "exp")), RFC7515_A1_EXP);
    ck_assert(json_is_true(json_object_get(claims, "http://example.com/is_root")));
    json_decref(claims);
    /* With the "Bearer " of an Authorization header, and without asking for the claims. */
    snprintf(bearer, sizeof(bearer), "Bearer %s", rfc7515_a1);
    ck_assert_int_eq(cs_jwt_verify(key, bearer, RFC7515_A1_EXP - 380, NULL, errstr, sizeof(errstr)),
                     CS_JWT_OK);
    snprintf(bearer, sizeof(bearer), "bearer  %s", rfc7515_a1);
    expect(key, bearer, RFC7515_A1_EXP - 380, CS_JWT_OK);
    /* Its exp is 2011: now it is expired. */
    expect(key, rfc7515_a1, NOW, CS_JWT_EXPIRED);
    cs_jwt_key_free(key);
}
END_TEST

START_TEST(test_jwt_hs512_python_vector_and_round_trip)
{
    char errstr[256];
    cs_jwt_key *key =
        cs_jwt_key_new("HS512", hs512_secret, strlen(hs512_secret), errstr, sizeof(errstr));
    cs_jwt_key *hs256 = hs256_key();
    json_t *claims = NULL;
    char *token;

    ck_assert_msg(key != NULL, "%s", errstr);
    expect(key, hs512_python, 1700000100, CS_JWT_OK);
    token = cs_jwt_mint(key, "ccd_data", NOW, 600, errstr, sizeof(errstr));
    ck_assert_msg(token != NULL, "%s", errstr);
    ck_assert_int_eq(cs_jwt_verify(key, token, NOW + 1, &claims, errstr, sizeof(errstr)),
                     CS_JWT_OK);
    ck_assert_str_eq(json_string_value(json_object_get(claims, "sub")), "ccd_data");
    ck_assert_int_eq(json_integer_value(json_object_get(claims, "iat")), NOW);
    ck_assert_int_eq(json_integer_value(json_object_get(claims, "exp")), NOW + 600);
    ck_assert_int_eq(json_object_size(claims), 3);
    json_decref(claims);
    /* The header names the key's alg, as JWT; an HS256 key refuses the token. */
    ck_assert_str_eq(strtok(token, "."), "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9");
    free(token);
    expect(hs256, hs512_python, 1700000100, CS_JWT_WRONG_ALG);
    cs_jwt_key_free(hs256);
    cs_jwt_key_free(key);
}
END_TEST

START_TEST(test_jwt_rs256_openssl_token_and_round_trip)
{
    cs_jwt_key *pub = fixture_key("RS256", "rs256-public.pem");
    cs_jwt_key *priv = fixture_key("RS256", "rs256-private.pem");
    cs_jwt_key *other = fixture_key("RS256", "other-public.pem");
    char *external = fixture("rs256-openssl.jwt", NULL), *token, errstr[256];
    json_t *claims = NULL;

    external[strcspn(external, "\n")] = '\0';
    /* Signed by `openssl dgst -sha256 -sign` (tests/fixtures/jwt/README). */
    expect(pub, external, NOW, CS_JWT_OK);
    expect(priv, external, NOW, CS_JWT_OK);
    expect(other, external, NOW, CS_JWT_BAD_SIGNATURE);
    token = cs_jwt_mint(priv, "ccd_data", NOW, 60, errstr, sizeof(errstr));
    ck_assert_msg(token != NULL, "%s", errstr);
    ck_assert_int_eq(cs_jwt_verify(pub, token, NOW, &claims, errstr, sizeof(errstr)), CS_JWT_OK);
    ck_assert_str_eq(json_string_value(json_object_get(claims, "sub")), "ccd_data");
    json_decref(claims);
    expect(other, token, NOW, CS_JWT_BAD_SIGNATURE);
    free(token);
    /* A public key verifies but cannot mint. */
    ck_assert_ptr_null(cs_jwt_mint(pub, "ccd_data", NOW, 60, errstr, sizeof(errstr)));
    ck_assert_ptr_nonnull(strstr(errstr, "private key"));
    free(external);
    cs_jwt_key_free(other);
    cs_jwt_key_free(priv);
    cs_jwt_key_free(pub);
}
END_TEST

/* ---------------------------------------------------------------- refusals */

START_TEST(test_jwt_tampered_payload_is_a_bad_signature)
{
    cs_jwt_key *hs = hs256_key(), *pub = fixture_key("RS256", "rs256-public.pem");
    char *pem = fixture("rs256-private.pem", NULL);
    const char *payload = "{\"sub\":\"ccd_data\",\"exp\":1800000600}";
    const char *forged = "{\"sub\":\"xui_webapp\",\"exp\":1800000600}";
    char *tokens[2] = {hs256_token(payload),
                       sign_token("RS256", pem, strlen(pem), "{\"alg\":\"RS256\"}", payload)};
    char *fp = b64u(forged, strlen(forged));

    for (int i = 0; i < 2; i++) {
        char *t = tokens[i], *dot1 = strchr(t, '.'), *dot2 = strchr(dot1 + 1, '.');
        char tampered[2048];

        expect(i ? pub : hs, t, NOW, CS_JWT_OK);
        snprintf(tampered, sizeof(tampered), "%.*s.%s%s", (int)(dot1 - t), t, fp, dot2);
        expect(i ? pub : hs, tampered, NOW, CS_JWT_BAD_SIGNATURE);
        free(t);
    }
    free(fp);
    free(pem);
    cs_jwt_key_free(pub);
    cs_jwt_key_free(hs);
}
END_TEST

START_TEST(test_jwt_tampered_signature_is_a_bad_signature)
{
    cs_jwt_key *hs = hs256_key(), *pub = fixture_key("RS256", "rs256-public.pem");
    char *rs = fixture("rs256-openssl.jwt", NULL);
    char *t = hs256_token("{\"exp\":1800000600}");
    const cs_jwt_key *keys[2] = {hs, pub};
    char *tokens[2] = {t, rs};

    rs[strcspn(rs, "\n")] = '\0';
    for (int i = 0; i < 2; i++) {
        char *sig = strrchr(tokens[i], '.') + 1, saved = sig[5];

        sig[5] = sig[5] == 'A' ? 'B' : 'A'; /* one byte of the signature changed */
        expect(keys[i], tokens[i], NOW, CS_JWT_BAD_SIGNATURE);
        sig[5] = saved;
        expect(keys[i], tokens[i], NOW, CS_JWT_OK);
        sig[4] = '\0'; /* three bytes */
        expect(keys[i], tokens[i], NOW, CS_JWT_BAD_SIGNATURE);
        sig[0] = '\0'; /* none at all */
        expect(keys[i], tokens[i], NOW, CS_JWT_BAD_SIGNATURE);
    }
    free(t);
    free(rs);
    cs_jwt_key_free(pub);
    cs_jwt_key_free(hs);
}
END_TEST

START_TEST(test_jwt_alg_none_and_other_algs_are_refused)
{
    cs_jwt_key *hs = hs256_key(), *pub = fixture_key("RS256", "rs256-public.pem");
    const char *payload = "{\"sub\":\"ccd_data\",\"exp\":1800000600}";
    const char *headers[] = {
        "{\"alg\":\"none\"}",  "{\"alg\":\"None\"}",   "{\"alg\":\"NONE\"}",
        "{\"alg\":\"hs256\"}", "{\"alg\":\"HS384\"}",  "{\"alg\":\"ES256\"}",
        "{\"alg\":\"PS256\"}", "{\"alg\":\"HS256 \"}", "{\"typ\":\"JWT\"}",
        "{\"alg\":null}",      "{\"alg\":256}",        "{\"alg\":[\"HS256\"]}"};

    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        /* Unsigned, and signed with the HS256 secret: the alg decides before the signature. */
        char *unsigned_token = sign_token("-", NULL, 0, headers[i], payload);
        char *hmac_token =
            sign_token("HS256", hs256_secret, strlen(hs256_secret), headers[i], payload);

        expect(hs, unsigned_token, NOW, CS_JWT_WRONG_ALG);
        expect(hs, hmac_token, NOW, CS_JWT_WRONG_ALG);
        expect(pub, unsigned_token, NOW, CS_JWT_WRONG_ALG);
        free(unsigned_token);
        free(hmac_token);
    }
    cs_jwt_key_free(pub);
    cs_jwt_key_free(hs);
}
END_TEST

START_TEST(test_jwt_alg_switched_between_hs256_and_rs256_is_refused)
{
    cs_jwt_key *pub = fixture_key("RS256", "rs256-public.pem"), *hs = hs256_key();
    size_t pub_len, priv_len;
    char *pub_pem = fixture("rs256-public.pem", &pub_len);
    char *priv_pem = fixture("rs256-private.pem", &priv_len), errstr[256];
    const char *payload = "{\"sub\":\"ccd_data\",\"exp\":1800000600}";
    /* The classic forgery: HS256 keyed with the (public) RSA public key. */
    char *forged = sign_token("HS256", pub_pem, pub_len, "{\"alg\":\"HS256\"}", payload);
    char *rs = sign_token("RS256", priv_pem, priv_len, "{\"alg\":\"RS256\"}", payload);
    char *rs_as_hs = sign_token("RS256", priv_pem, priv_len, "{\"alg\":\"HS256\"}", payload);

    ck_assert_ptr_nonnull(strstr(expect(pub, forged, NOW, CS_JWT_WRONG_ALG), "HS256"));
    expect(hs, rs, NOW, CS_JWT_WRONG_ALG);
    /* An RS256 signature under a header that says HS256 does not check as an HMAC. */
    expect(hs, rs_as_hs, NOW, CS_JWT_BAD_SIGNATURE);
    expect(pub, rs, NOW, CS_JWT_OK);
    /* Nor may an HMAC key be made of a PEM key. */
    ck_assert_ptr_null(cs_jwt_key_new("HS256", pub_pem, pub_len, errstr, sizeof(errstr)));
    ck_assert_ptr_nonnull(strstr(errstr, "PEM"));
    ck_assert_ptr_null(cs_jwt_key_new("HS512", priv_pem, priv_len, errstr, sizeof(errstr)));
    free(forged);
    free(rs);
    free(rs_as_hs);
    free(pub_pem);
    free(priv_pem);
    cs_jwt_key_free(hs);
    cs_jwt_key_free(pub);
}
END_TEST

/* A claim value and the result a token carrying it must get. */
typedef struct claim_case {
    const char *value;
    cs_jwt_result want;
} claim_case;

/* Signs prefix + value + suffix as the payload of an HS256 token for each case and checks its
 * result at NOW. */
static void expect_each(const char *prefix, const char *suffix, const claim_case *cases, size_t n)
{
    cs_jwt_key *key = hs256_key();
    char payload[256];

    for (size_t i = 0; i < n; i++) {
        char *t;

        snprintf(payload, sizeof(payload), "%s%s%s", prefix, cases[i].value, suffix);
        t = hs256_token(payload);
        expect(key, t, NOW, cases[i].want);
        free(t);
    }
    cs_jwt_key_free(key);
}

START_TEST(test_jwt_expired_with_30_seconds_leeway)
{
    static const claim_case cases[] = {
        {"1799999969", CS_JWT_EXPIRED},   /* 31 s ago */
        {"1799999970", CS_JWT_EXPIRED},   /* 30 s ago: the leeway is used up */
        {"1799999971", CS_JWT_OK},        /* 29 s ago */
        {"1799999970.5", CS_JWT_OK},      /* a NumericDate may have a fraction */
        {"1799999969.5", CS_JWT_EXPIRED}, /* */
        {"1800000000", CS_JWT_OK},
        {"9223372036854775807", CS_JWT_OK},
        {"-9223372036854775808", CS_JWT_EXPIRED},
        {"0", CS_JWT_EXPIRED},
    };
    cs_jwt_key *key = hs256_key();
    char *t = hs256_token("{\"exp\":1800000600}");

    expect_each("{\"sub\":\"ccd_data\",\"exp\":", "}", cases, sizeof(cases) / sizeof(cases[0]));
    /* now at the ends of its range does not overflow. */
    expect(key, t, LLONG_MIN, CS_JWT_OK);
    expect(key, t, LLONG_MAX, CS_JWT_EXPIRED);
    free(t);
    cs_jwt_key_free(key);
}
END_TEST

START_TEST(test_jwt_nbf_in_the_future_is_not_yet_valid)
{
    static const claim_case cases[] = {
        {"1800000031", CS_JWT_NOT_YET_VALID}, /* 31 s ahead */
        {"1800000030", CS_JWT_OK},            /* 30 s ahead: within the leeway */
        {"1800000030.5", CS_JWT_NOT_YET_VALID},
        {"1799990000", CS_JWT_OK},
        {"9223372036854775807", CS_JWT_NOT_YET_VALID},
        {"\"1799990000\"", CS_JWT_MALFORMED},
        {"null", CS_JWT_MALFORMED},
    };

    expect_each("{\"exp\":1800000600,\"nbf\":", "}", cases, sizeof(cases) / sizeof(cases[0]));
}
END_TEST

START_TEST(test_jwt_missing_or_non_numeric_exp_is_malformed)
{
    static const claim_case cases[] = {
        {"{\"sub\":\"ccd_data\"}", CS_JWT_MALFORMED},
        {"{}", CS_JWT_MALFORMED},
        {"{\"exp\":\"1800000600\"}", CS_JWT_MALFORMED},
        {"{\"exp\":null}", CS_JWT_MALFORMED},
        {"{\"exp\":true}", CS_JWT_MALFORMED},
        {"{\"exp\":[1800000600]}", CS_JWT_MALFORMED},
        {"{\"exp\":1800000600,\"iat\":\"now\"}", CS_JWT_MALFORMED},
    };

    expect_each("", "", cases, sizeof(cases) / sizeof(cases[0]));
}
END_TEST

START_TEST(test_jwt_bad_base64url_is_malformed)
{
    cs_jwt_key *key = hs256_key();
    char *t = hs256_token("{\"exp\":1800000600}");
    char *dot1 = strchr(t, '.'), *dot2 = strchr(dot1 + 1, '.');
    char bad[1024];
    const char *subst[] = {"+", "/", "=", " ", "%", "\xc3\xa9", "*"};

    expect(key, t, NOW, CS_JWT_OK);
    for (size_t i = 0; i < sizeof(subst) / sizeof(subst[0]); i++) {
        /* in the header, the payload, the signature */
        snprintf(bad, sizeof(bad), "%s%.*s", subst[i], (int)strlen(t) - 1, t + 1);
        expect(key, bad, NOW, CS_JWT_MALFORMED);
        snprintf(bad, sizeof(bad), "%.*s%s%s", (int)(dot1 - t + 1), t, subst[i], dot1 + 2);
        expect(key, bad, NOW, CS_JWT_MALFORMED);
        snprintf(bad, sizeof(bad), "%.*s%s%s", (int)(dot2 - t + 1), t, subst[i], dot2 + 2);
        expect(key, bad, NOW, CS_JWT_MALFORMED);
    }
    /* Padding, a length of 4n+1, and stray bits in the last character ("e30" is "{}", "e31"
     * decodes to the same bytes with a bit set that no encoder writes). */
    snprintf(bad, sizeof(bad), "%s=", t);
    expect(key, bad, NOW, CS_JWT_MALFORMED);
    snprintf(bad, sizeof(bad), "%.*sA%s", (int)(dot2 - t), t, dot2);
    expect(key, bad, NOW, CS_JWT_MALFORMED);
    expect(key, "eyJhbGciOiJIUzI1NiJ9.e31.AAAA", NOW, CS_JWT_MALFORMED);
    expect(key, "eyJhbGciOiJIUzI1NiJ9.e30.AAAA", NOW, CS_JWT_BAD_SIGNATURE);
    /* Not JSON, or JSON with a member twice (RFC 7515 §4). */
    free(t);
    t = sign_token("HS256", hs256_secret, strlen(hs256_secret), "{\"alg\":\"HS256\"",
                   "{\"exp\":1800000600}");
    expect(key, t, NOW, CS_JWT_MALFORMED);
    free(t);
    t = hs256_token("{\"exp\":1800000600,\"exp\":1}");
    expect(key, t, NOW, CS_JWT_MALFORMED);
    free(t);
    cs_jwt_key_free(key);
}
END_TEST

START_TEST(test_jwt_wrong_segment_count_is_malformed)
{
    cs_jwt_key *key = hs256_key();
    char *t = hs256_token("{\"exp\":1800000600}"), bad[1024];
    const char *dot2 = strrchr(t, '.');

    expect(key, t, NOW, CS_JWT_OK);
    snprintf(bad, sizeof(bad), "%.*s", (int)(dot2 - t), t); /* two */
    expect(key, bad, NOW, CS_JWT_MALFORMED);
    snprintf(bad, sizeof(bad), "%s.", t); /* four, the last empty */
    expect(key, bad, NOW, CS_JWT_MALFORMED);
    snprintf(bad, sizeof(bad), "%s.%s", t, dot2 + 1); /* four */
    expect(key, bad, NOW, CS_JWT_MALFORMED);
    snprintf(bad, sizeof(bad), "%s.AAAA.AAAA", t); /* five: a JWE's count */
    expect(key, bad, NOW, CS_JWT_MALFORMED);
    expect(key, "eyJhbGciOiJIUzI1NiJ9", NOW, CS_JWT_MALFORMED);
    expect(key, "", NOW, CS_JWT_MALFORMED);
    expect(key, "..", NOW, CS_JWT_MALFORMED);
    expect(key, "Bearer ", NOW, CS_JWT_MALFORMED);
    expect(key, NULL, NOW, CS_JWT_MALFORMED);
    free(t);
    cs_jwt_key_free(key);
}
END_TEST

START_TEST(test_jwt_oversize_token_is_malformed)
{
    cs_jwt_key *key = hs256_key();
    char *pad = malloc(7000), payload[8192], *t;

    ck_assert_ptr_nonnull(pad);
    /* Just under the limit: verified. */
    memset(pad, 'x', 5900);
    pad[5900] = '\0';
    snprintf(payload, sizeof(payload), "{\"exp\":1800000600,\"pad\":\"%s\"}", pad);
    t = hs256_token(payload);
    ck_assert_int_le(strlen(t), CS_JWT_MAX_TOKEN);
    expect(key, t, NOW, CS_JWT_OK);
    free(t);
    /* Validly signed, but over 8 KiB: refused before it is decoded. */
    memset(pad, 'x', 6200);
    pad[6200] = '\0';
    snprintf(payload, sizeof(payload), "{\"exp\":1800000600,\"pad\":\"%s\"}", pad);
    t = hs256_token(payload);
    ck_assert_int_gt(strlen(t), CS_JWT_MAX_TOKEN);
    ck_assert_ptr_nonnull(strstr(expect(key, t, NOW, CS_JWT_MALFORMED), "8192"));
    ck_assert_ptr_null(cs_jwt_claims_unverified(t, payload, sizeof(payload)));
    free(t);
    /* Spaces after "Bearer " count too: nothing past the bound is read. */
    t = malloc(CS_JWT_MAX_TOKEN + 200);
    ck_assert_ptr_nonnull(t);
    memcpy(t, "Bearer ", 7);
    memset(t + 7, ' ', CS_JWT_MAX_TOKEN + 100);
    strcpy(t + 7 + CS_JWT_MAX_TOKEN + 100, "a.b.c");
    expect(key, t, NOW, CS_JWT_MALFORMED);
    free(t);
    free(pad);
    cs_jwt_key_free(key);
}
END_TEST

START_TEST(test_jwt_non_object_payload_or_header_is_malformed)
{
    cs_jwt_key *key = hs256_key();
    const char *payloads[] = {"[1800000600]", "\"exp\"", "1800000600", "null", "", "{"};
    char *t;

    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        t = hs256_token(payloads[i]);
        ck_assert_ptr_nonnull(strstr(expect(key, t, NOW, CS_JWT_MALFORMED), "payload"));
        free(t);
    }
    t = sign_token("HS256", hs256_secret, strlen(hs256_secret), "[\"HS256\"]",
                   "{\"exp\":1800000600}");
    ck_assert_ptr_nonnull(strstr(expect(key, t, NOW, CS_JWT_MALFORMED), "header"));
    free(t);
    /* A header with crit asks for an extension that is not understood. */
    t = sign_token("HS256", hs256_secret, strlen(hs256_secret),
                   "{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", "{\"exp\":1800000600}");
    ck_assert_ptr_nonnull(strstr(expect(key, t, NOW, CS_JWT_MALFORMED), "crit"));
    free(t);
    cs_jwt_key_free(key);
}
END_TEST

START_TEST(test_jwt_reason_quotes_no_token_text)
{
    cs_jwt_key *key = hs256_key();
    char *t = hs256_token("{\"sub\":\"ccd_data\",\"exp\":1}");
    const char *reason = expect(key, t, NOW, CS_JWT_EXPIRED);

    ck_assert_ptr_null(strstr(reason, "ccd_data"));
    ck_assert_ptr_null(strstr(reason, strrchr(t, '.') + 1));
    free(t);
    /* A header alg is quoted, cut and printable. */
    t = sign_token("-", NULL, 0, "{\"alg\":\"n\\u0001one-and-a-very-long-name\"}", "{}");
    reason = expect(key, t, NOW, CS_JWT_WRONG_ALG);
    ck_assert_str_eq(reason, "token alg \"n?one-and-a-very\" is not the key's HS256");
    free(t);
    cs_jwt_key_free(key);
}
END_TEST

/* ---------------------------------------------------------------- unverified claims */

START_TEST(test_jwt_claims_unverified_reads_without_a_key)
{
    char errstr[256], bearer[512];
    json_t *claims = cs_jwt_claims_unverified(rfc7515_a1, errstr, sizeof(errstr));
    char *t = hs256_token("{\"sub\":\"user-1\",\"given_name\":\"Ann\"}");

    ck_assert_msg(claims != NULL, "%s", errstr);
    ck_assert_str_eq(json_string_value(json_object_get(claims, "iss")), "joe");
    json_decref(claims);
    /* No exp, and a signature nobody checks: still read. */
    strrchr(t, '.')[1] = '\0';
    snprintf(bearer, sizeof(bearer), "Bearer %s", t);
    claims = cs_jwt_claims_unverified(bearer, errstr, sizeof(errstr));
    ck_assert_msg(claims != NULL, "%s", errstr);
    ck_assert_str_eq(json_string_value(json_object_get(claims, "given_name")), "Ann");
    json_decref(claims);
    free(t);
    /* Malformed: NULL with the reason. */
    ck_assert_ptr_null(cs_jwt_claims_unverified("e30.e30", errstr, sizeof(errstr)));
    ck_assert_ptr_nonnull(strstr(errstr, "three"));
    ck_assert_ptr_null(cs_jwt_claims_unverified("e30.WzFd.", errstr, sizeof(errstr)));
    ck_assert_ptr_nonnull(strstr(errstr, "payload"));
    ck_assert_ptr_null(cs_jwt_claims_unverified("e30.e30.a+b", errstr, sizeof(errstr)));
    ck_assert_ptr_null(cs_jwt_claims_unverified("e3=.e30.", errstr, sizeof(errstr)));
    ck_assert_ptr_null(cs_jwt_claims_unverified(NULL, errstr, sizeof(errstr)));
    claims = cs_jwt_claims_unverified("e30.e30.", errstr, sizeof(errstr));
    ck_assert(json_is_object(claims) && json_object_size(claims) == 0);
    json_decref(claims);
}
END_TEST

/* ---------------------------------------------------------------- keys and minting */

START_TEST(test_jwt_key_refusals_quote_no_material)
{
    char errstr[256];
    size_t len;
    char *pem;
    static const char short_secret[] = "0123456789012345678901234567890"; /* 31 bytes */

    ck_assert_ptr_null(
        cs_jwt_key_new("none", hs256_secret, strlen(hs256_secret), errstr, sizeof(errstr)));
    ck_assert_str_eq(errstr, "unsupported s2s alg \"none\" (HS256, HS512 or RS256)");
    ck_assert_ptr_null(
        cs_jwt_key_new("hs256", hs256_secret, strlen(hs256_secret), errstr, sizeof(errstr)));
    ck_assert_ptr_null(cs_jwt_key_new(NULL, hs256_secret, 32, errstr, sizeof(errstr)));
    ck_assert_ptr_null(cs_jwt_key_new("HS256", short_secret, 31, errstr, sizeof(errstr)));
    ck_assert_str_eq(errstr, "HS256 secret is 31 bytes: at least 32 are needed");
    ck_assert_ptr_null(cs_jwt_key_new("HS512", hs512_secret, 63, errstr, sizeof(errstr)));
    ck_assert_str_eq(errstr, "HS512 secret is 63 bytes: at least 64 are needed");
    ck_assert_ptr_null(cs_jwt_key_new("RS256", hs512_secret, 64, errstr, sizeof(errstr)));
    ck_assert_ptr_null(strstr(errstr, "0123"));
    ck_assert_ptr_null(cs_jwt_key_new("RS256", "", 0, errstr, sizeof(errstr)));
    pem = fixture("rsa1024-public.pem", &len);
    ck_assert_ptr_null(cs_jwt_key_new("RS256", pem, len, errstr, sizeof(errstr)));
    ck_assert_str_eq(errstr, "RS256 key has 1024 bits: at least 2048 are needed");
    free(pem);
    pem = fixture("ec-public.pem", &len);
    ck_assert_ptr_null(cs_jwt_key_new("RS256", pem, len, errstr, sizeof(errstr)));
    ck_assert_str_eq(errstr, "RS256 key is not an RSA key");
    free(pem);
    /* A PEM cut short. */
    pem = fixture("rs256-public.pem", &len);
    ck_assert_ptr_null(cs_jwt_key_new("RS256", pem, len / 2, errstr, sizeof(errstr)));
    ck_assert_ptr_null(strstr(errstr, "MII"));
    free(pem);
}
END_TEST

/* Writes content to path, loads it as an HS256 key file and verifies with it a token minted
 * with hs256_secret; returns the result. */
static cs_jwt_result verify_with_secret_file(const char *path, const char *content)
{
    char errstr[256], *t;
    cs_jwt_key *loaded, *key = hs256_key();
    FILE *f = fopen(path, "w");
    cs_jwt_result r;

    ck_assert_ptr_nonnull(f);
    fputs(content, f);
    fclose(f);
    loaded = cs_jwt_key_load("HS256", path, errstr, sizeof(errstr));
    ck_assert_msg(loaded != NULL, "%s", errstr);
    t = cs_jwt_mint(key, "ccd_data", NOW, 60, errstr, sizeof(errstr));
    r = cs_jwt_verify(loaded, t, NOW, NULL, errstr, sizeof(errstr));
    free(t);
    cs_jwt_key_free(loaded);
    cs_jwt_key_free(key);
    return r;
}

START_TEST(test_jwt_key_load_strips_one_newline_of_a_secret_file)
{
    char path[] = "/tmp/cs-jwt-secret-XXXXXX", errstr[256], content[256];
    int fd = mkstemp(path);
    FILE *f;

    ck_assert_int_ge(fd, 0);
    close(fd);
    snprintf(content, sizeof(content), "%s\n", hs256_secret);
    ck_assert_int_eq(verify_with_secret_file(path, content), CS_JWT_OK);
    /* "\r\n" too, and only one. */
    snprintf(content, sizeof(content), "%s\r\n", hs256_secret);
    ck_assert_int_eq(verify_with_secret_file(path, content), CS_JWT_OK);
    snprintf(content, sizeof(content), "%s\r\n\n", hs256_secret);
    ck_assert_int_eq(verify_with_secret_file(path, content), CS_JWT_BAD_SIGNATURE);
    /* A short secret file, and none. */
    ck_assert_ptr_nonnull(f = fopen(path, "w"));
    fprintf(f, "short\n");
    fclose(f);
    ck_assert_ptr_null(cs_jwt_key_load("HS256", path, errstr, sizeof(errstr)));
    ck_assert_ptr_nonnull(strstr(errstr, ": HS256 secret is 5 bytes: at least 32 are needed"));
    ck_assert_ptr_nonnull(strstr(errstr, "s2s key file /tmp/cs-jwt-secret-"));
    unlink(path);
    ck_assert_ptr_null(cs_jwt_key_load("HS256", path, errstr, sizeof(errstr)));
    ck_assert_ptr_nonnull(strstr(errstr, "could not open s2s key file /tmp/cs-jwt-secret-"));
    ck_assert_ptr_null(cs_jwt_key_load("HS256", "", errstr, sizeof(errstr)));
    ck_assert_ptr_null(cs_jwt_key_load("XS256", path, errstr, sizeof(errstr)));
    ck_assert_ptr_nonnull(strstr(errstr, "unsupported"));
}
END_TEST

START_TEST(test_jwt_mint_then_verify)
{
    cs_jwt_key *key = hs256_key();
    char errstr[256], *t;
    json_t *claims = NULL;

    t = cs_jwt_mint(key, "ccd_data", NOW, 3600, errstr, sizeof(errstr));
    ck_assert_msg(t != NULL, "%s", errstr);
    ck_assert_int_eq(cs_jwt_verify(key, t, NOW + 3569, &claims, errstr, sizeof(errstr)), CS_JWT_OK);
    ck_assert_str_eq(json_string_value(json_object_get(claims, "sub")), "ccd_data");
    json_decref(claims);
    expect(key, t, NOW + 3630, CS_JWT_EXPIRED);
    free(t);
    /* A service name with any characters survives the round trip. */
    t = cs_jwt_mint(key, "s\xc3\xa9rvice \"x\"", NOW, 1, errstr, sizeof(errstr));
    ck_assert_int_eq(cs_jwt_verify(key, t, NOW, &claims, errstr, sizeof(errstr)), CS_JWT_OK);
    ck_assert_str_eq(json_string_value(json_object_get(claims, "sub")), "s\xc3\xa9rvice \"x\"");
    json_decref(claims);
    free(t);
    /* Refusals. */
    ck_assert_ptr_null(cs_jwt_mint(key, "ccd_data", NOW, 0, errstr, sizeof(errstr)));
    ck_assert_ptr_null(cs_jwt_mint(key, "ccd_data", NOW, -5, errstr, sizeof(errstr)));
    ck_assert_ptr_null(cs_jwt_mint(key, "ccd_data", LLONG_MAX - 10, 11, errstr, sizeof(errstr)));
    ck_assert_ptr_null(cs_jwt_mint(key, "", NOW, 60, errstr, sizeof(errstr)));
    ck_assert_ptr_null(cs_jwt_mint(key, NULL, NOW, 60, errstr, sizeof(errstr)));
    ck_assert_ptr_null(cs_jwt_mint(key, "\xff", NOW, 60, errstr, sizeof(errstr)));
    ck_assert_str_eq(errstr, "service name (sub) is not UTF-8");
    cs_jwt_key_free(key);
}
END_TEST

/* Runs `casestream token ARGS` in process (cs_admin_token, as admin/main.c does) with stdout
 * in a file; returns the exit status and what it printed in out. */
static int run_token_command(char **args, int nargs, char *out, size_t size)
{
    char *argv[16] = {"casestream"}, path[] = "/tmp/cs-jwt-out-XXXXXX";
    int argc = 1, rc, fd = mkstemp(path), saved = dup(STDOUT_FILENO);
    cs_config cfg;
    FILE *f;
    size_t n;

    ck_assert_int_ge(fd, 0);
    for (int i = 0; i < nargs && argc < 15; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;
    rc = cs_config_main(&cfg, CS_PROG_ADMIN, argc, argv, "s", "d");
    if (rc < 0) {
        ck_assert_int_ge(cfg.args_count, 1);
        ck_assert_str_eq(cfg.args[0], "token");
        fflush(stdout);
        dup2(fd, STDOUT_FILENO);
        rc = cs_admin_token(&cfg, (int)cfg.args_count - 1, cfg.args + 1);
        fflush(stdout);
        dup2(saved, STDOUT_FILENO);
    }
    cs_config_free(&cfg);
    close(saved);
    close(fd);
    ck_assert_ptr_nonnull(f = fopen(path, "r"));
    n = fread(out, 1, size - 1, f);
    out[n] = '\0';
    fclose(f);
    unlink(path);
    return rc;
}

START_TEST(test_jwt_token_command_mints_for_the_configured_key)
{
    char out[2048], secret_path[512], priv_path[512], pub_path[512], errstr[256];
    char *hs[] = {"token", "--service", "ccd_data", "--ttl", "120", "--s2s-key-file", secret_path};
    char *rs[] = {"token", "--service=xui_webapp", "--s2s-alg=RS256", "--s2s-key-file", priv_path};
    char *rs_pub[] = {"token", "--service=x", "--s2s-alg=RS256", "--s2s-key-file", pub_path};
    char *no_service[] = {"token", "--s2s-key-file", secret_path};
    char *no_key[] = {"token", "--service", "ccd_data"};
    char *bad_alg[] = {"token", "--service", "ccd_data", "--s2s-alg", "none"};
    char *extra[] = {"token", "--service", "ccd_data", "--s2s-key-file", secret_path, "x"};
    char *short_ttl[] = {"token", "--service", "ccd_data", "--ttl", "0"};
    cs_jwt_key *key = hs256_key(), *pub = fixture_key("RS256", "rs256-public.pem");
    json_t *claims = NULL;
    FILE *f;
    int fd;

    strcpy(secret_path, "/tmp/cs-jwt-secret-XXXXXX");
    ck_assert_int_ge(fd = mkstemp(secret_path), 0);
    ck_assert_ptr_nonnull(f = fdopen(fd, "w"));
    fprintf(f, "%s\n", hs256_secret);
    fclose(f);
    cs_fixture_path("jwt/rs256-private.pem", priv_path, sizeof(priv_path));
    cs_fixture_path("jwt/rs256-public.pem", pub_path, sizeof(pub_path));

    ck_assert_int_eq(run_token_command(hs, 7, out, sizeof(out)), 0);
    ck_assert_int_eq(out[strlen(out) - 1], '\n');
    out[strlen(out) - 1] = '\0';
    ck_assert_int_eq(
        cs_jwt_verify(key, out, (long long)time(NULL), &claims, errstr, sizeof(errstr)), CS_JWT_OK);
    ck_assert_str_eq(json_string_value(json_object_get(claims, "sub")), "ccd_data");
    ck_assert_int_eq(json_integer_value(json_object_get(claims, "exp")) -
                         json_integer_value(json_object_get(claims, "iat")),
                     120);
    json_decref(claims);
    ck_assert_int_eq(run_token_command(rs, 5, out, sizeof(out)), 0);
    out[strcspn(out, "\n")] = '\0';
    expect(pub, out, (long long)time(NULL), CS_JWT_OK);
    /* Configuration errors: exit 78, nothing printed. */
    ck_assert_int_eq(run_token_command(rs_pub, 5, out, sizeof(out)), CS_EXIT_CONFIG);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(run_token_command(no_service, 3, out, sizeof(out)), CS_EXIT_CONFIG);
    ck_assert_int_eq(run_token_command(no_key, 3, out, sizeof(out)), CS_EXIT_CONFIG);
    ck_assert_int_eq(run_token_command(bad_alg, 5, out, sizeof(out)), CS_EXIT_CONFIG);
    ck_assert_int_eq(run_token_command(extra, 6, out, sizeof(out)), CS_EXIT_CONFIG);
    ck_assert_int_eq(run_token_command(short_ttl, 5, out, sizeof(out)), CS_EXIT_CONFIG);
    ck_assert_str_eq(out, "");
    unlink(secret_path);
    cs_jwt_key_free(pub);
    cs_jwt_key_free(key);
}
END_TEST

START_TEST(test_jwt_result_names)
{
    ck_assert_str_eq(cs_jwt_result_str(CS_JWT_OK), "ok");
    ck_assert_str_eq(cs_jwt_result_str(CS_JWT_MALFORMED), "malformed");
    ck_assert_str_eq(cs_jwt_result_str(CS_JWT_WRONG_ALG), "wrong alg");
    ck_assert_str_eq(cs_jwt_result_str(CS_JWT_BAD_SIGNATURE), "bad signature");
    ck_assert_str_eq(cs_jwt_result_str(CS_JWT_EXPIRED), "expired");
    ck_assert_str_eq(cs_jwt_result_str(CS_JWT_NOT_YET_VALID), "not yet valid");
}
END_TEST

Suite *jwt_suite(void)
{
    Suite *s = suite_create("jwt");
    TCase *vectors = tcase_create("vectors");
    TCase *refusals = tcase_create("refusals");
    TCase *keys = tcase_create("keys");

    tcase_add_test(vectors, test_jwt_rfc7515_a1_hs256_vector_verifies);
    tcase_add_test(vectors, test_jwt_hs512_python_vector_and_round_trip);
    tcase_add_test(vectors, test_jwt_rs256_openssl_token_and_round_trip);
    tcase_add_test(vectors, test_jwt_claims_unverified_reads_without_a_key);
    tcase_add_test(vectors, test_jwt_mint_then_verify);
    tcase_add_test(vectors, test_jwt_result_names);
    suite_add_tcase(s, vectors);
    tcase_add_test(refusals, test_jwt_tampered_payload_is_a_bad_signature);
    tcase_add_test(refusals, test_jwt_tampered_signature_is_a_bad_signature);
    tcase_add_test(refusals, test_jwt_alg_none_and_other_algs_are_refused);
    tcase_add_test(refusals, test_jwt_alg_switched_between_hs256_and_rs256_is_refused);
    tcase_add_test(refusals, test_jwt_expired_with_30_seconds_leeway);
    tcase_add_test(refusals, test_jwt_nbf_in_the_future_is_not_yet_valid);
    tcase_add_test(refusals, test_jwt_missing_or_non_numeric_exp_is_malformed);
    tcase_add_test(refusals, test_jwt_bad_base64url_is_malformed);
    tcase_add_test(refusals, test_jwt_wrong_segment_count_is_malformed);
    tcase_add_test(refusals, test_jwt_oversize_token_is_malformed);
    tcase_add_test(refusals, test_jwt_non_object_payload_or_header_is_malformed);
    tcase_add_test(refusals, test_jwt_reason_quotes_no_token_text);
    suite_add_tcase(s, refusals);
    tcase_add_test(keys, test_jwt_key_refusals_quote_no_material);
    tcase_add_test(keys, test_jwt_key_load_strips_one_newline_of_a_secret_file);
    tcase_add_test(keys, test_jwt_token_command_mints_for_the_configured_key);
    suite_add_tcase(s, keys);
    return s;
}
