/* Prometheus metrics (counters, gauges, histograms) and the /metrics + /healthz endpoint. */
#ifndef CS_METRICS_H
#define CS_METRICS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct cs_metric cs_metric;
typedef struct cs_metrics_server cs_metrics_server;

/* Registers a metric. name may carry labels: `x_total{status="applied"}`;
 * help is printed once per name without labels. The registry lives for the
 * whole process; the returned handle is borrowed and never freed. Returns
 * NULL only when the fixed-size registry is full. Not thread-safe: register
 * everything at start-up. */
cs_metric *cs_metric_counter(const char *name, const char *help);
cs_metric *cs_metric_gauge(const char *name, const char *help);
/* A histogram of seconds with buckets from 0.5 ms to 30 s. */
cs_metric *cs_metric_histogram(const char *name, const char *help);

/* Updates are atomic and safe from any thread; NULL is ignored. */
void cs_metric_inc(cs_metric *m, long long by);
void cs_metric_set(cs_metric *m, long long value);
void cs_metric_observe(cs_metric *m, double seconds);

/* Current value of a counter or gauge (for tests and summaries). */
long long cs_metric_value(const cs_metric *m);

/* Writes every metric in Prometheus text format into buf (NUL-terminated,
 * truncated to size). Returns the length written. */
size_t cs_metrics_render(char *buf, size_t size);

/* Reports health into detail; returns true when healthy. */
typedef bool (*cs_health_fn)(char *detail, size_t size, void *ctx);

/* Starts a thread serving GET /metrics and GET /healthz (200 or 503) on
 * host:port. Returns the server (free with cs_metrics_server_free) or NULL
 * with the reason in errstr. */
cs_metrics_server *cs_metrics_server_start(const char *host, int port, cs_health_fn health,
                                           void *ctx, char *errstr, size_t errstr_size);

/* Stops the thread and frees the server. Accepts NULL. */
void cs_metrics_server_free(cs_metrics_server *s);

#endif
