/* Redis connections: connect with a timeout, authenticate, select the database. */
#include "redis.h"

#include <stdio.h>
#include <string.h>

/* Runs one command whose reply must not be an error; fills errstr otherwise. */
static int command_ok(redisContext *c, redisReply *r, const cs_url *u, const char *what,
                      char *errstr, size_t errstr_size)
{
    int ok = r && r->type != REDIS_REPLY_ERROR;

    if (!ok)
        snprintf(errstr, errstr_size, "redis at %s%s%s:%d: %s failed: %s", u->ipv6 ? "[" : "",
                 u->host, u->ipv6 ? "]" : "", u->port, what,
                 r              ? r->str
                 : c->errstr[0] ? c->errstr
                                : "no reply");
    if (r)
        freeReplyObject(r);
    return ok;
}

redisContext *cs_redis_connect(const cs_url *u, int db, int timeout_ms, char *errstr,
                               size_t errstr_size)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(u->host, u->port, tv);

    if (!c || c->err) {
        snprintf(errstr, errstr_size, "redis at %s%s%s:%d: %s", u->ipv6 ? "[" : "", u->host,
                 u->ipv6 ? "]" : "", u->port, c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (u->has_password) {
        redisReply *r = u->user[0] ? redisCommand(c, "AUTH %s %s", u->user, u->password)
                                   : redisCommand(c, "AUTH %s", u->password);

        if (!command_ok(c, r, u, "AUTH", errstr, errstr_size)) {
            redisFree(c);
            return NULL;
        }
    }
    if (db != 0 &&
        !command_ok(c, redisCommand(c, "SELECT %d", db), u, "SELECT", errstr, errstr_size)) {
        redisFree(c);
        return NULL;
    }
    return c;
}
