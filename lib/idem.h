/* The Redis idempotency fast path: outcomes of applied submissions by (case, key). */
#ifndef CS_IDEM_H
#define CS_IDEM_H

#include "redis.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cs_idem cs_idem;

/* Creates a client for url (redis[s]://[[user]:password@]host[:port][/db], see
 * cs_url_parse_redis; tls: the files of a rediss:// URL, may be NULL, see cs_redis_new)
 * with entries kept ttl seconds. It connects lazily (TLS, AUTH and SELECT as the URL says)
 * and reconnects on its own. Returns NULL with the reason in errstr only for what
 * cs_redis_new refuses (a malformed URL, TLS files). Free with cs_idem_free. */
cs_idem *cs_idem_new(const char *url, const cs_redis_tls *tls, int ttl, char *errstr,
                     size_t errstr_size);
void cs_idem_free(cs_idem *c);

/* Looks up n (reference, key) pairs in one round trip. out[i] receives the
 * stored outcome JSON (caller frees) or NULL when absent. Returns 0, or
 * CS_ERR_RETRY when Redis is unreachable (then every out[i] is NULL). */
int cs_idem_get(cs_idem *c, size_t n, const int64_t *refs, const char *const *keys, char **out,
                char *errstr, size_t errstr_size);

/* Stores n outcomes in one round trip, each with the TTL, but none of a case that dispose
 * marked (cs_idem_forget): the check and the write are one step in Redis. Returns 0 or
 * CS_ERR_RETRY. */
int cs_idem_put(cs_idem *c, size_t n, const int64_t *refs, const char *const *keys,
                const char *const *outcomes, char *errstr, size_t errstr_size);

/* For a disposed case ref, in one round trip: marks the case (for a day, cs:gone:<ref>), so that
 * no worker writes an entry of it any more, then deletes the entries of its n keys (pipelined
 * DELs; an entry that is not there is no error). Sets *deleted (may be NULL) to how many were
 * there. Returns 0 or CS_ERR_RETRY. */
int cs_idem_forget(cs_idem *c, int64_t ref, size_t n, const char *const *keys, long long *deleted,
                   char *errstr, size_t errstr_size);

/* True if the last operation reached Redis. */
bool cs_idem_up(const cs_idem *c);

#endif
