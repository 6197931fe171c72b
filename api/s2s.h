/* The ServiceAuthorization tokens casestream-api has accepted, remembered until they expire: CCD
 * sends the same token on every call, and checking its signature each time cost more than the
 * rest of a read's work in the API. */
#ifndef CS_API_S2S_H
#define CS_API_S2S_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The longest token remembered, in bytes; a longer one is verified on every call. */
#define CS_S2S_CACHE_MAX_TOKEN 2048

/* Tokens remembered at once: a token takes the slot its hash names, replacing the one there. */
#define CS_S2S_CACHE_SLOTS 64

typedef struct cs_s2s_cache cs_s2s_cache;

/* An empty cache, safe to use from several threads, freed with cs_s2s_cache_free. Returns NULL
 * when out of memory. */
cs_s2s_cache *cs_s2s_cache_new(void);

/* Frees the cache. Accepts NULL. */
void cs_s2s_cache_free(cs_s2s_cache *c);

/* True when token (the header's value, exactly as sent) was remembered by cs_s2s_cache_put, now
 * is not before the time it was verified and is before its exp (without the leeway
 * cs_jwt_verify allows, so a remembered token is one cs_jwt_verify would accept now); its sub is
 * copied into sub. Compares the token in constant time. */
bool cs_s2s_cache_get(cs_s2s_cache *c, const char *token, long long now, char *sub,
                      size_t sub_size);

/* Remembers token, which cs_jwt_verify accepted at now with claims (its payload), until its exp.
 * Nothing is remembered for a token over CS_S2S_CACHE_MAX_TOKEN, a sub that is not a string or
 * longer than 255 bytes, or an exp already past. */
void cs_s2s_cache_put(cs_s2s_cache *c, const char *token, const json_t *claims, long long now);

#endif
