/* Redis connections on hiredis 0.14: the URL's host (IPv6 too), AUTH and SELECT. */
#ifndef CS_REDIS_H
#define CS_REDIS_H

#include "url.h"

#include <hiredis/hiredis.h>
#include <stddef.h>

/* Connects to u (from cs_url_parse_redis) within timeout_ms, which also bounds every later
 * command; sends AUTH [user] password when the URL has a password, then SELECT db unless 0.
 * Returns a context the caller frees with redisFree, or NULL with the reason (host and port,
 * never the password) in errstr. */
redisContext *cs_redis_connect(const cs_url *u, int db, int timeout_ms, char *errstr,
                               size_t errstr_size);

#endif
