/* A fixed-size, lock-free metrics registry and a one-thread HTTP endpoint for it. */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_METRICS 160
#define N_BUCKETS   14

typedef enum metric_kind { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } metric_kind;

struct cs_metric {
    char name[160];
    const char *help;
    metric_kind kind;
    atomic_llong value;              /* counter, gauge; histogram: count */
    atomic_llong sum_us;             /* histogram: sum in microseconds */
    atomic_llong buckets[N_BUCKETS]; /* histogram: cumulative on render */
};

static const double bucket_bounds[N_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                0.1,    0.25,  0.5,    1,     2.5,  10,    30};
static cs_metric registry[MAX_METRICS];
static atomic_int registered;

static cs_metric *add(const char *name, const char *help, metric_kind kind)
{
    int i = atomic_load(&registered);
    cs_metric *m;

    if (i >= MAX_METRICS)
        return NULL;
    m = &registry[i];
    snprintf(m->name, sizeof(m->name), "%s", name);
    m->help = help;
    m->kind = kind;
    atomic_store(&registered, i + 1);
    return m;
}

cs_metric *cs_metric_counter(const char *name, const char *help)
{
    return add(name, help, KIND_COUNTER);
}

cs_metric *cs_metric_gauge(const char *name, const char *help)
{
    return add(name, help, KIND_GAUGE);
}

cs_metric *cs_metric_histogram(const char *name, const char *help)
{
    return add(name, help, KIND_HISTOGRAM);
}

void cs_metric_inc(cs_metric *m, long long by)
{
    if (m)
        atomic_fetch_add(&m->value, by);
}

void cs_metric_set(cs_metric *m, long long value)
{
    if (m)
        atomic_store(&m->value, value);
}

long long cs_metric_value(const cs_metric *m)
{
    return m ? atomic_load(&((cs_metric *)m)->value) : 0;
}

void cs_metric_observe(cs_metric *m, double seconds)
{
    if (!m)
        return;
    for (int b = 0; b < N_BUCKETS; b++) {
        if (seconds <= bucket_bounds[b]) {
            atomic_fetch_add(&m->buckets[b], 1);
            break;
        }
    }
    atomic_fetch_add(&m->sum_us, (long long)(seconds * 1e6));
    atomic_fetch_add(&m->value, 1);
}

/* Length of the name without its {labels}. */
static size_t base_len(const char *name)
{
    const char *brace = strchr(name, '{');

    return brace ? (size_t)(brace - name) : strlen(name);
}

static bool seen_base(int upto, const char *name)
{
    size_t n = base_len(name);

    for (int i = 0; i < upto; i++)
        if (base_len(registry[i].name) == n && strncmp(registry[i].name, name, n) == 0)
            return true;
    return false;
}

size_t cs_metrics_render(char *buf, size_t size)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    int count = atomic_load(&registered);
    size_t off = 0;

#define OUT(...)                                                                                   \
    do {                                                                                           \
        int w_ = snprintf(buf + off, size - off, __VA_ARGS__);                                     \
        if (w_ > 0)                                                                                \
            off = off + (size_t)w_ < size ? off + (size_t)w_ : size - 1;                           \
    } while (0)

    buf[0] = '\0';
    for (int i = 0; i < count && off + 1 < size; i++) {
        cs_metric *m = &registry[i];
        size_t bl = base_len(m->name);
        const char *labels = m->name + bl; /* "" or "{...}" */

        if (!seen_base(i, m->name))
            OUT("# HELP %.*s %s\n# TYPE %.*s %s\n", (int)bl, m->name, m->help, (int)bl, m->name,
                types[m->kind]);
        if (m->kind != KIND_HISTOGRAM) {
            OUT("%s %lld\n", m->name, (long long)atomic_load(&m->value));
            continue;
        }
        long long cumulative = 0;
        /* Labels inside the braces, to add "le" to them. */
        char inner[128] = "";
        if (*labels)
            snprintf(inner, sizeof(inner), "%.*s,", (int)(strlen(labels) - 2), labels + 1);
        for (int b = 0; b < N_BUCKETS; b++) {
            cumulative += atomic_load(&m->buckets[b]);
            OUT("%.*s_bucket{%sle=\"%g\"} %lld\n", (int)bl, m->name, inner, bucket_bounds[b],
                cumulative);
        }
        OUT("%.*s_bucket{%sle=\"+Inf\"} %lld\n", (int)bl, m->name, inner,
            (long long)atomic_load(&m->value));
        OUT("%.*s_sum%s %.6f\n", (int)bl, m->name, labels, (double)atomic_load(&m->sum_us) / 1e6);
        OUT("%.*s_count%s %lld\n", (int)bl, m->name, labels, (long long)atomic_load(&m->value));
    }
#undef OUT
    return off;
}

struct cs_metrics_server {
    int fd;
    pthread_t thread;
    atomic_bool stop;
    cs_health_fn health;
    void *ctx;
};

static void respond(int fd, int status, const char *ctype, const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status,
                     status == 200   ? "OK"
                     : status == 404 ? "Not Found"
                                     : "Unavailable",
                     ctype, len);

    if (send(fd, head, (size_t)n, MSG_NOSIGNAL) < 0)
        return;
    while (len > 0) {
        ssize_t w = send(fd, body, len, MSG_NOSIGNAL);

        if (w <= 0)
            return;
        body += w;
        len -= (size_t)w;
    }
}

static void serve(cs_metrics_server *s, int fd)
{
    static char page[256 * 1024];
    char req[2048];
    ssize_t n = recv(fd, req, sizeof(req) - 1, 0);

    if (n <= 0)
        return;
    req[n] = '\0';
    if (strncmp(req, "GET /metrics", 12) == 0) {
        size_t len = cs_metrics_render(page, sizeof(page));

        respond(fd, 200, "text/plain; version=0.0.4", page, len);
    } else if (strncmp(req, "GET /healthz", 12) == 0) {
        char detail[512] = "ok";
        bool ok = s->health ? s->health(detail, sizeof(detail), s->ctx) : true;
        size_t len = strlen(detail);

        if (len + 1 < sizeof(detail)) {
            detail[len++] = '\n';
            detail[len] = '\0';
        }
        respond(fd, ok ? 200 : 503, "text/plain", detail, len);
    } else {
        respond(fd, 404, "text/plain", "not found\n", 10);
    }
}

static void *server_main(void *arg)
{
    cs_metrics_server *s = arg;

    while (!atomic_load(&s->stop)) {
        struct pollfd pfd = {s->fd, POLLIN, 0};
        struct timeval tv = {2, 0};
        int c;

        if (poll(&pfd, 1, 200) <= 0)
            continue;
        if ((c = accept(s->fd, NULL, NULL)) < 0)
            continue;
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        serve(s, c);
        close(c);
    }
    return NULL;
}

cs_metrics_server *cs_metrics_server_start(const char *host, int port, cs_health_fn health,
                                           void *ctx, char *errstr, size_t errstr_size)
{
    static cs_metrics_server server; /* one per process */
    struct sockaddr_in addr;
    int one = 1;

    memset(&server, 0, sizeof(server));
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        snprintf(errstr, errstr_size, "metrics-host %s is not an IPv4 address", host);
        return NULL;
    }
    if ((server.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(server.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(server.fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        listen(server.fd, 16) != 0) {
        snprintf(errstr, errstr_size, "could not listen on %s:%d: %s", host, port, strerror(errno));
        if (server.fd >= 0)
            close(server.fd);
        return NULL;
    }
    server.health = health;
    server.ctx = ctx;
    if (pthread_create(&server.thread, NULL, server_main, &server) != 0) {
        snprintf(errstr, errstr_size, "could not start the metrics thread");
        close(server.fd);
        return NULL;
    }
    return &server;
}

void cs_metrics_server_free(cs_metrics_server *s)
{
    if (!s)
        return;
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    close(s->fd);
}
