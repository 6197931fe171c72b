/* The indexer loop: case-changes from Kafka to Elasticsearch, offsets stored only when
 * acknowledged. */
#ifndef CS_INDEXER_H
#define CS_INDEXER_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct cs_indexer cs_indexer;

/* The fault points, space-separated, for messages. */
extern const char *const cs_indexer_faults[];

/* Creates the Elasticsearch client, the consumer (subscribed to
 * cfg->topic_changes in group cfg->indexer_group), registers the metrics
 * and, when cfg->metrics_port is set, probes Kafka, PostgreSQL and
 * Elasticsearch and serves /livez, /readyz, /healthz and /metrics.
 * cfg is borrowed for the indexer's life. Returns the indexer (free with
 * cs_indexer_free) or NULL with the reason in errstr; CS_ERR_INVALID in *why
 * when the configuration is at fault (may be NULL). */
cs_indexer *cs_indexer_new(const cs_config *cfg, int *why, char *errstr, size_t errstr_size);

/* Installs the index template, then consumes and indexes until cs_running is
 * cleared; then drains: finishes the current bulk if Elasticsearch answers
 * within a bounded time, commits the stored offsets and closes the consumer.
 * Returns 0, or CS_ERR if the consumer could not be closed cleanly. */
int cs_indexer_run(cs_indexer *ix);

/* Frees the indexer. Accepts NULL. */
void cs_indexer_free(cs_indexer *ix);

#endif
