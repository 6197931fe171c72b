/* casestream-worker: consumes submissions, applies them, publishes outcomes (DESIGN §5). */
#ifndef CS_WORKER_H
#define CS_WORKER_H

#include "config.h"

#include <stddef.h>

typedef struct cs_worker cs_worker;

/* Builds the worker: Kafka consumer and producer, appliers, Redis client,
 * outbox relay and metrics endpoint. cfg is borrowed for the worker's life.
 * Returns NULL with the reason in errstr. */
/* The worker's fault points (DESIGN §9), NULL-terminated, in the order a
 * submission meets them. */
extern const char *const cs_worker_faults[];

cs_worker *cs_worker_new(const cs_config *cfg, char *errstr, size_t errstr_size);

/* Consumes until cs_running is cleared, then drains: finishes the batch in
 * hand, commits offsets, leaves the group. Returns 0 or a cs_err. */
int cs_worker_run(cs_worker *w);

/* Checks that the four topics accept a submission of the configured limit
 * plus headroom (cs_kafka_check_topic_limits). Returns 0, CS_ERR_INVALID
 * (a topic is too small: a configuration error) or CS_ERR_RETRY (Kafka did
 * not answer), with the reason in errstr. */
int cs_worker_check_limits(cs_worker *w, char *errstr, size_t errstr_size);

/* Frees everything. Accepts NULL. */
void cs_worker_free(cs_worker *w);

#endif
