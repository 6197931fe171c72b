/* Kafka helpers: configuration from cs_config, producers, consumers and topic admin. */
#ifndef CS_KAFKA_H
#define CS_KAFKA_H

#include "config.h"

#include <librdkafka/rdkafka.h>
#include <stddef.h>

/* Builds a librdkafka configuration: bootstrap.servers from cfg, then the
 * given defaults (NULL-terminated key, value pairs), then cfg's -X
 * properties, which win. Returns a conf the caller owns (rd_kafka_new takes
 * it on success), or NULL with the reason in errstr. */
rd_kafka_conf_t *cs_kafka_conf_new(const cs_config *cfg, const char *const *defaults, char *errstr,
                                   size_t errstr_size);

/* Creates a producer with the settings every casestream producer uses:
 * idempotence, acks=all and Java-compatible murmur2_random partitioning.
 * conf may carry callbacks set by the caller; it is consumed in every case.
 * Returns the handle (caller frees with rd_kafka_destroy) or NULL. */
rd_kafka_t *cs_kafka_producer_new(const cs_config *cfg, rd_kafka_conf_t *conf, char *errstr,
                                  size_t errstr_size);

/* Creates the four topics of DESIGN §2 if they do not exist: the events
 * topic with cfg->events_partitions partitions, the others with as many.
 * Returns 0 or a cs_err with the reason in errstr. */
int cs_kafka_create_topics(const cs_config *cfg, char *errstr, size_t errstr_size);

/* Number of partitions of topic, or a negative cs_err. */
int cs_kafka_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms, char *errstr,
                             size_t errstr_size);

#endif
