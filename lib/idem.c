/* Redis idempotency cache on hiredis: pipelined GET, conditional SET EX (a script) and DEL,
 * lazy reconnect with a pause. */
#include "idem.h"

#include "err.h"
#include "redis.h"
#include "run.h"
#include "url.h"

#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* After a failure, do not try to reconnect for this long (ms), so a Redis
 * outage costs the worker one connect attempt per interval, not per batch. */
#define RECONNECT_PAUSE_MS 2000

struct cs_idem {
    cs_redis *redis;
    int ttl;
    redisContext *ctx;
    long long retry_at;
    atomic_bool up; /* read by the metrics thread */
};

cs_idem *cs_idem_new(const char *url, const cs_redis_tls *tls, int ttl, char *errstr,
                     size_t errstr_size)
{
    cs_idem *c;

    if (!(c = calloc(1, sizeof(*c)))) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (!(c->redis = cs_redis_new(url, tls, errstr, errstr_size))) {
        free(c);
        return NULL;
    }
    c->ttl = ttl;
    return c;
}

void cs_idem_free(cs_idem *c)
{
    if (!c)
        return;
    if (c->ctx)
        redisFree(c->ctx);
    cs_redis_free(c->redis);
    free(c);
}

bool cs_idem_up(const cs_idem *c)
{
    return atomic_load(&((cs_idem *)c)->up);
}

static void drop(cs_idem *c, const char *why, char *errstr, size_t errstr_size)
{
    snprintf(errstr, errstr_size, "redis at %s: %s", cs_redis_where(c->redis), why);
    if (c->ctx)
        redisFree(c->ctx);
    c->ctx = NULL;
    atomic_store(&c->up, false);
    c->retry_at = cs_now_ms() + RECONNECT_PAUSE_MS;
}

static int ensure(cs_idem *c, char *errstr, size_t errstr_size)
{
    if (c->ctx)
        return CS_OK;
    if (cs_now_ms() < c->retry_at) {
        snprintf(errstr, errstr_size, "redis at %s: unreachable, retrying later",
                 cs_redis_where(c->redis));
        return CS_ERR_RETRY;
    }
    if (!(c->ctx = cs_redis_connect(c->redis, 1000, errstr, errstr_size))) {
        atomic_store(&c->up, false);
        c->retry_at = cs_now_ms() + RECONNECT_PAUSE_MS;
        return CS_ERR_RETRY;
    }
    return CS_OK;
}

static void key_of(char *buf, size_t size, int64_t ref, const char *key)
{
    snprintf(buf, size, "cs:idem:%" PRId64 ":%s", ref, key);
}

/* A disposed case's marker (DESIGN §10): while it lasts, no entry of the case is written. It
 * outlasts by far any batch a worker holds between its commit and its Redis writes. */
#define GONE_TTL_SECONDS 86400

static void gone_of(char *buf, size_t size, int64_t ref)
{
    snprintf(buf, size, "cs:gone:%" PRId64, ref);
}

/* Sets KEYS[1] to ARGV[1] with the TTL ARGV[2] unless KEYS[2], the case's disposal marker,
 * exists: one step in Redis, so an entry is never written after dispose marked its case, and
 * one written before is deleted by dispose after the mark. */
static const char put_script[] = "if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end "
                                 "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return 1";

int cs_idem_get(cs_idem *c, size_t n, const int64_t *refs, const char *const *keys, char **out,
                char *errstr, size_t errstr_size)
{
    char k[128];
    size_t got = 0;

    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    if (n == 0)
        return CS_OK;
    if (ensure(c, errstr, errstr_size))
        return CS_ERR_RETRY;
    for (size_t i = 0; i < n; i++) {
        key_of(k, sizeof(k), refs[i], keys[i]);
        redisAppendCommand(c->ctx, "GET %s", k);
    }
    for (; got < n; got++) {
        redisReply *r = NULL;

        if (redisGetReply(c->ctx, (void **)&r) != REDIS_OK || !r) {
            drop(c, c->ctx->errstr, errstr, errstr_size);
            for (size_t i = 0; i < n; i++) {
                free(out[i]);
                out[i] = NULL;
            }
            return CS_ERR_RETRY;
        }
        if (r->type == REDIS_REPLY_STRING)
            out[got] = strndup(r->str, r->len);
        freeReplyObject(r);
    }
    atomic_store(&c->up, true);
    return CS_OK;
}

/* Reads n replies of the pipeline; an error reply fails it like a lost connection (the
 * connection is dropped with the rest unread: the next call makes a new one). Adds the integer
 * replies to *sum when sum is given. */
static int read_replies(cs_idem *c, size_t n, long long *sum, char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < n; i++) {
        redisReply *r = NULL;

        if (redisGetReply(c->ctx, (void **)&r) != REDIS_OK || !r) {
            drop(c, c->ctx->errstr, errstr, errstr_size);
            return CS_ERR_RETRY;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            drop(c, r->str, errstr, errstr_size);
            freeReplyObject(r);
            return CS_ERR_RETRY;
        }
        if (sum && r->type == REDIS_REPLY_INTEGER)
            *sum += r->integer;
        freeReplyObject(r);
    }
    atomic_store(&c->up, true);
    return CS_OK;
}

int cs_idem_put(cs_idem *c, size_t n, const int64_t *refs, const char *const *keys,
                const char *const *outcomes, char *errstr, size_t errstr_size)
{
    char k[128], g[64];

    if (n == 0)
        return CS_OK;
    if (ensure(c, errstr, errstr_size))
        return CS_ERR_RETRY;
    for (size_t i = 0; i < n; i++) {
        key_of(k, sizeof(k), refs[i], keys[i]);
        gone_of(g, sizeof(g), refs[i]);
        redisAppendCommand(c->ctx, "EVAL %s 2 %s %s %s %d", put_script, k, g, outcomes[i], c->ttl);
    }
    return read_replies(c, n, NULL, errstr, errstr_size);
}

int cs_idem_forget(cs_idem *c, int64_t ref, size_t n, const char *const *keys, long long *deleted,
                   char *errstr, size_t errstr_size)
{
    char k[128], g[64];
    long long count = 0;
    int rc;

    if (deleted)
        *deleted = 0;
    if (ensure(c, errstr, errstr_size))
        return CS_ERR_RETRY;
    /* The mark first: a worker's write of an entry of the case is refused from here on, and
     * the DELs after it remove those written before. */
    gone_of(g, sizeof(g), ref);
    redisAppendCommand(c->ctx, "SET %s 1 EX %d", g, GONE_TTL_SECONDS);
    for (size_t i = 0; i < n; i++) {
        key_of(k, sizeof(k), ref, keys[i]);
        redisAppendCommand(c->ctx, "DEL %s", k);
    }
    if ((rc = read_replies(c, 1, NULL, errstr, errstr_size)) ||
        (rc = read_replies(c, n, &count, errstr, errstr_size)))
        return rc;
    if (deleted)
        *deleted = count;
    return CS_OK;
}
