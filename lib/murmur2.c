/* murmur2 with Kafka's seed, bit for bit what Utils.murmur2 in kafka-clients computes. */
#include "murmur2.h"

#define SEED 0x9747b28cu
#define M    0x5bd1e995u
#define R    24

uint32_t cs_murmur2(const void *key, size_t len)
{
    const unsigned char *data = key;
    /* Java mixes in the length as an int; keys are far below 2^31 bytes. */
    uint32_t h = SEED ^ (uint32_t)len;
    size_t i, tail = len & ~(size_t)3;

    for (i = 0; i < tail; i += 4) {
        uint32_t k = (uint32_t)data[i] | (uint32_t)data[i + 1] << 8 | (uint32_t)data[i + 2] << 16 |
                     (uint32_t)data[i + 3] << 24;

        k *= M;
        k ^= k >> R;
        k *= M;
        h *= M;
        h ^= k;
    }
    /* Java masks each byte with 0xff, so bytes >= 0x80 are not sign-extended. */
    switch (len & 3) {
    case 3:
        h ^= (uint32_t)data[tail + 2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)data[tail + 1] << 8;
        /* fall through */
    case 1:
        h ^= (uint32_t)data[tail];
        h *= M;
    }
    h ^= h >> 13;
    h *= M;
    h ^= h >> 15;
    return h;
}

int32_t cs_murmur2_partition(const void *key, size_t len, int32_t partitions)
{
    if (partitions < 1)
        return -1;
    /* Utils.toPositive: clear the sign bit (not abs, which would differ for INT_MIN). */
    return (int32_t)((cs_murmur2(key, len) & 0x7fffffffu) % (uint32_t)partitions);
}
