/* Kafka helpers: configuration from cs_config, producers, consumers and topic admin. */
#ifndef CS_KAFKA_H
#define CS_KAFKA_H

#include "config.h"

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>

/* The one set of sizes (DESIGN §2): every casestream topic accepts, and
 * every casestream producer sends, messages up to the submission limit
 * (cfg->max_message_bytes) plus this headroom for the key, headers and
 * record overhead. Copies of consumed messages (DLQ) keep at most
 * cs_kafka_copy_max of value and CS_KAFKA_MAX_KEY of key, so they always fit. */
#define CS_KAFKA_HEADROOM 65536
#define CS_KAFKA_MAX_KEY  1024

/* max.message.bytes of casestream's topics and message.max.bytes of its
 * producers: the submission limit plus CS_KAFKA_HEADROOM. */
long cs_kafka_message_max(const cs_config *cfg);

/* The most value bytes a copy of a consumed message (the DLQ copy) keeps:
 * what fits a topic of cs_kafka_message_max with a key of CS_KAFKA_MAX_KEY
 * and the copy's headers (8 KiB in all). A message the events topic took is
 * copied whole unless it is within 8 KiB of that topic's limit. */
size_t cs_kafka_copy_max(const cs_config *cfg);

/* Checks that each of the n topics accepts cs_kafka_message_max(cfg) bytes
 * (its max.message.bytes, as the broker describes it). Returns 0;
 * CS_ERR_INVALID with the topic and its limit in errstr when one is smaller;
 * CS_ERR_RETRY when the broker could not be asked within timeout_ms. */
int cs_kafka_check_topic_limits(rd_kafka_t *rk, const cs_config *cfg, const char *const *topics,
                                size_t n, int timeout_ms, char *errstr, size_t errstr_size);

/* True for a delivery error that retrying the same message cannot cure: it
 * is too large for the producer, the topic or the broker. */
bool cs_kafka_err_too_large(rd_kafka_resp_err_t err);

/* Builds a librdkafka configuration: bootstrap.servers from cfg, then the
 * given defaults (NULL-terminated key, value pairs), then cfg's -X
 * properties without a "consumer." or "producer." prefix, which win. librdkafka's log lines go
 * through cs_log, and its errors (all brokers down, fatal) are logged and passed to the hook of
 * cs_kafka_set_error_hook. Returns a conf the caller owns (rd_kafka_new takes
 * it on success), or NULL with the reason in errstr. */
rd_kafka_conf_t *cs_kafka_conf_new(const cs_config *cfg, const char *const *defaults, char *errstr,
                                   size_t errstr_size);

/* As cs_kafka_conf_new, for a client of type: then the -X properties prefixed "consumer." or
 * "producer." for that type, prefix stripped, which win over the others. */
rd_kafka_conf_t *cs_kafka_conf_new_for(const cs_config *cfg, rd_kafka_type_t type,
                                       const char *const *defaults, char *errstr,
                                       size_t errstr_size);

/* The client type of -X properties without a prefix: every client. */
#define CS_KAFKA_ANY_CLIENT (-1)

/* A -X property's name without its prefix, and in *type the clients it is for:
 * "consumer.<name>" RD_KAFKA_CONSUMER, "producer.<name>" RD_KAFKA_PRODUCER, any other
 * CS_KAFKA_ANY_CLIENT. */
const char *cs_kafka_prop_name(const char *key, int *type);

/* Called from librdkafka's threads with every error it reports outside a request. */
typedef void (*cs_kafka_error_fn)(rd_kafka_resp_err_t err, const char *reason, void *ctx);

/* Sets the one hook (per process) that every handle built from cs_kafka_conf_new calls;
 * set it before creating them. */
void cs_kafka_set_error_hook(cs_kafka_error_fn fn, void *ctx);

/* How long a producer lets a message wait for others to go in the same request (librdkafka's
 * linger.ms, which -X producer.linger.ms overrides): a producer whose messages someone is
 * waiting for sends them at once (the API's submissions, the worker's outcomes, the outbox
 * relay's rounds, gathered already); a bulk producer gathers for 5 ms. */
typedef enum cs_kafka_send { CS_KAFKA_SEND_AT_ONCE, CS_KAFKA_SEND_GATHERED } cs_kafka_send;

/* Creates a producer with the settings every casestream producer uses:
 * idempotence, acks=all and Java-compatible murmur2_random partitioning, and the linger of
 * send. conf may carry callbacks set by the caller; it is consumed in every case.
 * Returns the handle (caller frees with rd_kafka_destroy) or NULL. */
rd_kafka_t *cs_kafka_producer_new(const cs_config *cfg, rd_kafka_conf_t *conf, cs_kafka_send send,
                                  char *errstr, size_t errstr_size);

/* One topic as casestream topics create makes it. */
typedef struct cs_topic_spec {
    const char *name;
    int partitions;
    long long retention_ms;     /* -1: kept forever; 0: the broker's default (not set) */
    const char *cleanup_policy; /* "delete" or "compact" */
} cs_topic_spec;

/* The four topics of DESIGN §2 as cfg asks for them, in the order events, results, changes,
 * DLQ: partitions (0 = the events topic's), retention from the hours options (the changes
 * topic keeps the broker's), cleanup.policy compact for the changes topic with
 * cfg->changes_compact. Returns 0, or CS_ERR_INVALID with the reason in errstr: a retention of
 * 0 hours, or min.insync.replicas above the replication factor. */
int cs_kafka_topic_specs(const cs_config *cfg, cs_topic_spec out[4], char *errstr,
                         size_t errstr_size);

/* Creates the four topics of DESIGN §2 as cs_kafka_topic_specs gives them, with
 * cfg->replication_factor replicas, and sets the configs of each (new or already there):
 * max.message.bytes = cs_kafka_message_max(cfg), min.insync.replicas, retention.ms and
 * cleanup.policy. The partitions and replicas of a topic that exists are not changed (more
 * partitions would move cases to other partitions): a difference is logged as a warning.
 * Waits until every topic shows its partitions. Returns 0; CS_ERR_INVALID with the reason for
 * settings the cluster cannot take (a replication factor above its brokers, bad specs);
 * another cs_err when the cluster refused or did not answer. */
int cs_kafka_create_topics(const cs_config *cfg, char *errstr, size_t errstr_size);

/* Describes the four topics: an array with one object per topic, {"topic", "partitions",
 * "replication_factor", "under_replicated" (partitions whose ISR lacks a replica), "configs"
 * {max.message.bytes, min.insync.replicas, retention.ms, cleanup.policy}, "partition_detail"
 * [{"partition", "leader", "replicas", "isr"}]}, or {"topic", "error"} for one the cluster
 * does not have. Returns the array (caller decrefs) or NULL with the reason in errstr. */
json_t *cs_kafka_describe_topics(const cs_config *cfg, char *errstr, size_t errstr_size);

/* Deletes the four topics and waits until the cluster no longer lists them; one already gone
 * counts as deleted. Returns 0 or a cs_err with the reason in errstr. */
int cs_kafka_delete_topics(const cs_config *cfg, char *errstr, size_t errstr_size);

/* Number of partitions of topic, or a negative cs_err. */
int cs_kafka_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms, char *errstr,
                             size_t errstr_size);

#endif
