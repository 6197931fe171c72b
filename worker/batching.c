/* When the batch the worker's polling thread holds goes to the appliers. */
#include "batching.h"

int cs_batching_wait_ms(size_t pending, size_t want, size_t pending_bytes, size_t want_bytes,
                        bool drained, long long age_ms, int linger_ms)
{
    if (pending >= want || pending_bytes >= want_bytes)
        return CS_BATCHING_GO;
    if (!drained)
        return 0;
    if (age_ms < 0)
        age_ms = 0;
    if (age_ms >= linger_ms)
        return CS_BATCHING_GO;
    return (int)(linger_ms - age_ms);
}

bool cs_batching_takes(size_t taken, size_t taken_bytes, size_t next_bytes, size_t want,
                       size_t want_bytes)
{
    if (taken == 0)
        return true;
    if (taken >= want)
        return false;
    return next_bytes <= want_bytes && taken_bytes <= want_bytes - next_bytes;
}

size_t cs_batching_appliers(size_t jobs, size_t appliers)
{
    size_t used = (jobs + CS_BATCHING_JOBS_PER_APPLIER - 1) / CS_BATCHING_JOBS_PER_APPLIER;

    if (used == 0)
        used = 1;
    return used < appliers ? used : appliers;
}
