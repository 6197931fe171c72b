/* The ServiceAuthorization tokens casestream-api has accepted, until they expire. */
#include "s2s.h"

#include <limits.h>
#include <math.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    char token[CS_S2S_CACHE_MAX_TOKEN];
    size_t len; /* 0: empty */
    char sub[256];
    long long verified_at, until;
} slot;

struct cs_s2s_cache {
    pthread_mutex_t mu;
    slot slots[CS_S2S_CACHE_SLOTS];
};

cs_s2s_cache *cs_s2s_cache_new(void)
{
    cs_s2s_cache *c = calloc(1, sizeof(*c));

    if (c)
        pthread_mutex_init(&c->mu, NULL);
    return c;
}

void cs_s2s_cache_free(cs_s2s_cache *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* FNV-1a: which slot a token takes. */
static size_t slot_of(const char *token, size_t len)
{
    uint64_t h = 14695981039346656037ULL;

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)token[i]) * 1099511628211ULL;
    return (size_t)(h % CS_S2S_CACHE_SLOTS);
}

bool cs_s2s_cache_get(cs_s2s_cache *c, const char *token, long long now, char *sub, size_t sub_size)
{
    size_t len = token ? strlen(token) : 0;
    bool hit = false;
    slot *s;

    if (!c || len == 0 || len > CS_S2S_CACHE_MAX_TOKEN)
        return false;
    s = &c->slots[slot_of(token, len)];
    pthread_mutex_lock(&c->mu);
    if (s->len == len && CRYPTO_memcmp(s->token, token, len) == 0 && now >= s->verified_at &&
        now < s->until) {
        snprintf(sub, sub_size, "%s", s->sub);
        hit = true;
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

void cs_s2s_cache_put(cs_s2s_cache *c, const char *token, const json_t *claims, long long now)
{
    size_t len = token ? strlen(token) : 0;
    const json_t *sub = json_object_get(claims, "sub"), *exp = json_object_get(claims, "exp");
    long long until;
    slot *s;

    if (!c || len == 0 || len > CS_S2S_CACHE_MAX_TOKEN || !json_is_string(sub) ||
        json_string_length(sub) >= sizeof(s->sub) || !json_is_number(exp))
        return;
    if (json_is_integer(exp)) {
        until = json_integer_value(exp);
    } else {
        double e = floor(json_real_value(exp));

        until = e >= 9.2e18 ? LLONG_MAX : e <= -9.2e18 ? LLONG_MIN : (long long)e;
    }
    if (until <= now)
        return;
    s = &c->slots[slot_of(token, len)];
    pthread_mutex_lock(&c->mu);
    memcpy(s->token, token, len);
    s->len = len;
    snprintf(s->sub, sizeof(s->sub), "%s", json_string_value(sub));
    s->verified_at = now;
    s->until = until;
    pthread_mutex_unlock(&c->mu);
}
