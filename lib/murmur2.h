/* murmur2 as the Java Kafka client computes it, to name the partition of a key. */
#ifndef CS_MURMUR2_H
#define CS_MURMUR2_H

#include <stddef.h>
#include <stdint.h>

/* The 32 bits of org.apache.kafka.common.utils.Utils.murmur2(key): the hash
 * Java's default partitioner and librdkafka's murmur2_random use. key may be
 * NULL when len is 0. */
uint32_t cs_murmur2(const void *key, size_t len);

/* The partition Java's default partitioner picks for a non-null key:
 * toPositive(murmur2(key)) % partitions. Returns -1 if partitions < 1. The
 * producer sends through librdkafka's partitioner; this is for reporting and
 * checking. */
int32_t cs_murmur2_partition(const void *key, size_t len, int32_t partitions);

#endif
