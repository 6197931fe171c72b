/* Jittered exponential backoff shared by the worker, the outbox relay, the indexer and reindex. */
#include "backoff.h"

#include "run.h"

#include <stdlib.h>
#include <unistd.h>

long cs_backoff_ms(int attempt, long base_ms, long cap_ms, unsigned *seed)
{
    long delay = base_ms;

    for (int i = 0; i < attempt && delay < cap_ms; i++)
        delay *= 2;
    if (delay > cap_ms)
        delay = cap_ms;
    /* Upper half, uniformly: spreads retries of many processes apart while
     * still growing with every attempt. */
    return delay / 2 + (long)(rand_r(seed) % (unsigned)(delay / 2 + 1));
}

void cs_backoff_init(cs_backoff *b, long base_ms, long cap_ms)
{
    b->base_ms = base_ms;
    b->cap_ms = cap_ms;
    b->attempt = 0;
    b->seed = (unsigned)getpid() ^ (unsigned)cs_now_us();
}

long cs_backoff_next(cs_backoff *b)
{
    long delay = cs_backoff_ms(b->attempt, b->base_ms, b->cap_ms, &b->seed);

    if (b->attempt < 64)
        b->attempt++;
    return delay;
}

void cs_backoff_reset(cs_backoff *b)
{
    b->attempt = 0;
}
