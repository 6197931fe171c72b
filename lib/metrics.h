/* Prometheus metrics (counters, gauges, histograms) and the HTTP endpoint: /livez, /readyz,
 * /healthz and /metrics on libmicrohttpd. */
#ifndef CS_METRICS_H
#define CS_METRICS_H

#include "health.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

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

/* Writes the process_* metrics of this process (CPU seconds, resident and virtual memory,
 * open and maximum file descriptors, start time) from /proc in Prometheus text format.
 * Returns the length written (NUL-terminated, cut to size). */
size_t cs_metrics_render_process(char *buf, size_t size);

/* Registers casestream_build_info{version="..."} 1 (once per process). */
void cs_metrics_build_info(void);

/* An address to listen on. */
typedef struct cs_metrics_addr {
    struct sockaddr_storage ss;
    socklen_t len;
} cs_metrics_addr;

/* Resolves host (an IPv4 or IPv6 address, or a host name; a name with both prefers IPv4)
 * and port. Returns 0, or CS_ERR_INVALID with a one-line reason in errstr (quoting host; the
 * caller names the option). */
int cs_metrics_resolve(const char *host, int port, cs_metrics_addr *out, char *errstr,
                       size_t errstr_size);

/* What a request is for: exact paths, GET or HEAD. */
typedef enum cs_http_route {
    CS_ROUTE_LIVEZ,
    CS_ROUTE_READYZ, /* /readyz and /healthz */
    CS_ROUTE_METRICS,
    CS_ROUTE_NOT_FOUND, /* 404 */
    CS_ROUTE_BAD_METHOD /* 405 */
} cs_http_route;

/* The route of method and path (the query string, if any, is ignored). */
cs_http_route cs_http_route_of(const char *method, const char *path);

struct MHD_Connection;

/* Answers route on c as the endpoint below does (text bodies redacted; 405 with Allow: GET,
 * HEAD): for a program's own libmicrohttpd server that serves these paths beside its others.
 * health may be NULL (always "ok"). Returns libmicrohttpd's MHD_YES (1) or MHD_NO (0). */
int cs_metrics_respond(struct MHD_Connection *c, cs_health *health, cs_http_route route);

/* Starts serving /livez, /readyz (and /healthz, its old name: 200 or 503 with
 * a one-line text) and /metrics on host:port with libmicrohttpd (one
 * internal thread, epoll: idle or slow clients do not delay anyone else;
 * idle connections are closed after 10 s). health is borrowed for the
 * server's life. Returns the server (free with cs_metrics_server_free) or NULL
 * with the reason in errstr. */
cs_metrics_server *cs_metrics_server_start(const char *host, int port, cs_health *health,
                                           char *errstr, size_t errstr_size);

/* Stops serving and frees the server. Accepts NULL. */
void cs_metrics_server_free(cs_metrics_server *s);

#endif
