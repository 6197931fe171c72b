/* When the batch the worker's polling thread holds goes to the appliers. */
#include "batching.h"

int cs_batching_wait_ms(size_t pending, size_t want, bool drained, long long age_ms, int linger_ms)
{
    if (pending >= want)
        return CS_BATCHING_GO;
    if (!drained)
        return 0;
    if (age_ms < 0)
        age_ms = 0;
    if (age_ms >= linger_ms)
        return CS_BATCHING_GO;
    return (int)(linger_ms - age_ms);
}
