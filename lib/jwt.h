/* Service-to-service tokens: compact JWS (RFC 7515) verified and minted with OpenSSL libcrypto. */
#ifndef CS_JWT_H
#define CS_JWT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The largest token cs_jwt_verify and cs_jwt_claims_unverified read, in bytes (after an optional
 * "Bearer "); a longer one is malformed, so the work done for any input is bounded. */
#define CS_JWT_MAX_TOKEN 8192

/* Seconds of clock skew allowed on either side of exp and nbf. */
#define CS_JWT_LEEWAY 30

typedef struct cs_jwt_key cs_jwt_key;

/* alg "HS256" or "HS512": material is the shared secret (raw bytes, at least 32 for HS256 and
 * 64 for HS512, else refused; a PEM key is refused too: a public key is no secret, and an
 * HMAC key made of one is the algorithm-confusion forgery).
 * alg "RS256": material is a PEM public key (SubjectPublicKeyInfo, "BEGIN PUBLIC KEY") to
 * verify, or a PEM private key (PKCS#8 or PKCS#1, unencrypted) to verify and mint; RSA of at
 * least 2048 bits (RFC 7518 3.3).
 * Returns a key the caller frees with cs_jwt_key_free (it keeps its own copy of material), or
 * NULL with a one-line reason in errstr (never echoing key material). */
cs_jwt_key *cs_jwt_key_new(const char *alg, const void *material, size_t len, char *errstr,
                           size_t errstr_size);

/* cs_jwt_key_new with the material read from a file (at most 1 MiB); for HS256 and HS512 one
 * trailing newline ("\n" or "\r\n") of the secret file is stripped. A reason names the file. */
cs_jwt_key *cs_jwt_key_load(const char *alg, const char *path, char *errstr, size_t errstr_size);

/* Frees the key and wipes its secret. Accepts NULL. */
void cs_jwt_key_free(cs_jwt_key *key);

/* True if alg is one cs_jwt_key_new takes: "HS256", "HS512" or "RS256" (exactly so). */
bool cs_jwt_alg_valid(const char *alg);

/* The key's algorithm: "HS256", "HS512" or "RS256" (static). */
const char *cs_jwt_key_alg(const cs_jwt_key *key);

typedef enum cs_jwt_result {
    CS_JWT_OK = 0,
    CS_JWT_MALFORMED,     /* not a compact JWS, over CS_JWT_MAX_TOKEN, a header or payload that
                           * is not a JSON object, crit, no exp, a non-numeric exp, nbf or iat */
    CS_JWT_WRONG_ALG,     /* header alg missing, "none", or not the key's */
    CS_JWT_BAD_SIGNATURE, /* the signature does not check against the key */
    CS_JWT_EXPIRED,       /* exp + CS_JWT_LEEWAY is not after now */
    CS_JWT_NOT_YET_VALID  /* nbf - CS_JWT_LEEWAY is after now */
} cs_jwt_result;

/* Verifies a compact JWS (an optional leading "Bearer " is accepted): header alg must equal the
 * key's (alg "none" and any other alg refused: no algorithm confusion; a header with crit is
 * refused, as no extension is understood), then the signature (HMAC compared in constant time;
 * RS256 with EVP_DigestVerify), then the claims: `exp` required and after now, `nbf` if present
 * not after now, both with CS_JWT_LEEWAY seconds of skew (now = unix seconds). The first failing
 * check decides the result. Base64url is read strictly (no padding, no stray bits). On
 * CS_JWT_OK *claims (if claims != NULL) receives the payload object, owned by the caller
 * (json_decref); otherwise *claims is set to NULL and errstr holds a one-line reason that quotes
 * no part of the token but a header alg (printable ASCII, cut). Bounded work for any input
 * (tokens over CS_JWT_MAX_TOKEN are refused before anything is decoded). Safe to call from
 * several threads on one key. */
cs_jwt_result cs_jwt_verify(const cs_jwt_key *key, const char *token, long long now,
                            json_t **claims, char *errstr, size_t errstr_size);

/* The payload claims of a compact JWS WITHOUT verifying it (the user's Authorization bearer,
 * which CCD has already verified): an optional "Bearer ", three base64url segments, a header
 * and a payload that are JSON objects, at most CS_JWT_MAX_TOKEN bytes. Returns the payload,
 * owned by the caller, or NULL with a reason in errstr when malformed. */
json_t *cs_jwt_claims_unverified(const char *token, char *errstr, size_t errstr_size);

/* Mints {"sub": sub, "iat": now, "exp": now + ttl} with header {"alg": <key's>, "typ": "JWT"}.
 * Returns the compact JWS, malloc'd (caller frees), or NULL with a reason in errstr: an RS256
 * key that is only a public key, an empty sub or one not UTF-8, ttl not positive, exp beyond
 * 64 bits. */
char *cs_jwt_mint(const cs_jwt_key *key, const char *sub, long long now, long long ttl,
                  char *errstr, size_t errstr_size);

/* data[0..len) in base64url without padding (RFC 7515 §2), NUL-terminated; malloc'd (caller
 * frees), NULL when out of memory. */
char *cs_jwt_base64url(const void *data, size_t len);

/* "ok", "malformed", "wrong alg", "bad signature", "expired", "not yet valid" (static). */
const char *cs_jwt_result_str(cs_jwt_result r);

#endif
