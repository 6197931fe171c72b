/* Readiness probes of the services casestream depends on, each bounded to a couple of seconds. */
#ifndef CS_PROBE_H
#define CS_PROBE_H

#include "config.h"
#include "metrics.h"
#include "redis.h"

#include <librdkafka/rdkafka.h>
#include <stddef.h>

/* How long one probe may wait for its service. */
#define CS_PROBE_TIMEOUT_MS 2000

typedef struct cs_probe cs_probe;

/* PostgreSQL: a connection of the probe's own and a query returning one integer (sql with
 * $1 = param, or "SELECT 1" when sql is NULL); the integer goes into gauge (may be NULL). */
cs_probe *cs_probe_pg_new(const char *conninfo, const char *sql, const char *param,
                          cs_metric *gauge);

/* Redis: a connection of its own (TLS, AUTH, SELECT) and PING. url and tls (may be NULL)
 * must be valid (config); NULL otherwise. */
cs_probe *cs_probe_redis_new(const char *url, const cs_redis_tls *tls);

/* Elasticsearch: GET /_cluster/health with cfg's URL, credentials and CA; ready unless it
 * fails or the cluster is red. */
cs_probe *cs_probe_es_new(const cs_config *cfg);

/* Kafka: a metadata request through rk (borrowed; it must outlive the probe's thread). */
cs_probe *cs_probe_kafka_new(rd_kafka_t *rk);

/* Runs the probe (a cs_probe_fn: ctx is the probe): 0 when the service answered, otherwise
 * the reason in detail. */
int cs_probe_run(void *probe, char *detail, size_t size);

/* Closes its connection and frees. Accepts NULL. */
void cs_probe_free(cs_probe *p);

#endif
