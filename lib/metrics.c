/* A fixed-size, lock-free metrics registry and its HTTP endpoint on libmicrohttpd. */
#include "metrics.h"

#include "config.h"
#include "err.h"
#include "log.h"
#include "redact.h"

#include <dirent.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_METRICS 256
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

/* ---- process metrics -------------------------------------------------------------------- */

size_t cs_metrics_render_process(char *buf, size_t size)
{
    char stat[1024] = "";
    unsigned long long utime = 0, stime = 0, start = 0, btime = 0;
    unsigned long vsize_pages = 0, rss_pages = 0;
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    struct rlimit rl;
    size_t off = 0;
    long fds = 0;
    FILE *f;
    DIR *d;

    if ((f = fopen("/proc/self/stat", "r"))) {
        size_t n = fread(stat, 1, sizeof(stat) - 1, f);
        const char *p;

        stat[n] = '\0';
        fclose(f);
        /* After the command's ")": field 3 on; utime and stime are 14 and 15, starttime 22. */
        if ((p = strrchr(stat, ')')))
            sscanf(p + 2,
                   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d "
                   "%*d %llu",
                   &utime, &stime, &start);
    }
    if ((f = fopen("/proc/self/statm", "r"))) {
        if (fscanf(f, "%lu %lu", &vsize_pages, &rss_pages) != 2)
            vsize_pages = rss_pages = 0;
        fclose(f);
    }
    if ((f = fopen("/proc/stat", "r"))) {
        char line[256];

        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "btime %llu", &btime) == 1)
                break;
        fclose(f);
    }
    if ((d = opendir("/proc/self/fd"))) {
        struct dirent *e;

        while ((e = readdir(d)))
            fds += e->d_name[0] != '.';
        fds--; /* the directory's own */
        closedir(d);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        rl.rlim_cur = 0;
    if (ticks <= 0)
        ticks = 100;

#define OUT(...)                                                                                   \
    do {                                                                                           \
        int w_ = snprintf(buf + off, size - off, __VA_ARGS__);                                     \
        if (w_ > 0)                                                                                \
            off = off + (size_t)w_ < size ? off + (size_t)w_ : size - 1;                           \
    } while (0)
    if (size == 0)
        return 0;
    buf[0] = '\0';
    OUT("# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
        "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n",
        (double)(utime + stime) / (double)ticks);
    OUT("# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
        "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %llu\n",
        (unsigned long long)rss_pages * (unsigned long long)page);
    OUT("# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
        "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %llu\n",
        (unsigned long long)vsize_pages * (unsigned long long)page);
    OUT("# HELP process_open_fds Number of open file descriptors.\n"
        "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n",
        fds);
    OUT("# HELP process_max_fds Maximum number of open file descriptors.\n"
        "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n",
        (unsigned long long)rl.rlim_cur);
    OUT("# HELP process_start_time_seconds Start time of the process since unix epoch in "
        "seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.2f\n",
        (double)btime + (double)start / (double)ticks);
#undef OUT
    return off;
}

void cs_metrics_build_info(void)
{
    static atomic_flag done = ATOMIC_FLAG_INIT;
    char name[160];

    if (atomic_flag_test_and_set(&done))
        return;
    snprintf(name, sizeof(name), "casestream_build_info{version=\"%s\"}", cs_version);
    cs_metric_set(cs_metric_gauge(name, "the version casestream was built as (always 1)"), 1);
}

/* ---- the HTTP endpoint ------------------------------------------------------------------ */

int cs_metrics_resolve(const char *host, int port, cs_metrics_addr *out, char *errstr,
                       size_t errstr_size)
{
    struct addrinfo hints, *res = NULL, *pick = NULL;
    char service[16];
    int rc = 0;

    memset(&hints, 0, sizeof(hints));
    memset(out, 0, sizeof(*out));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(service, sizeof(service), "%d", port);
    if (!host[0] || (rc = getaddrinfo(host, service, &hints, &res)) != 0) {
        snprintf(errstr, errstr_size, "\"%s\" is not an address or a known host: %s", host,
                 host[0] ? gai_strerror(rc) : "empty");
        return CS_ERR_INVALID;
    }
    for (struct addrinfo *a = res; a && !pick; a = a->ai_next)
        if (a->ai_family == AF_INET)
            pick = a;
    for (struct addrinfo *a = res; a && !pick; a = a->ai_next)
        if (a->ai_family == AF_INET6)
            pick = a;
    if (!pick || pick->ai_addrlen > sizeof(out->ss)) {
        snprintf(errstr, errstr_size, "\"%s\" has no IPv4 or IPv6 address", host);
        freeaddrinfo(res);
        return CS_ERR_INVALID;
    }
    memcpy(&out->ss, pick->ai_addr, pick->ai_addrlen);
    out->len = pick->ai_addrlen;
    freeaddrinfo(res);
    return CS_OK;
}

cs_http_route cs_http_route_of(const char *method, const char *path)
{
    static const struct {
        const char *path;
        cs_http_route route;
    } paths[] = {{"/livez", CS_ROUTE_LIVEZ},
                 {"/readyz", CS_ROUTE_READYZ},
                 {"/healthz", CS_ROUTE_READYZ},
                 {"/metrics", CS_ROUTE_METRICS}};
    size_t len = strcspn(path, "?");

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (strlen(paths[i].path) != len || strncmp(paths[i].path, path, len) != 0)
            continue;
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
            return CS_ROUTE_BAD_METHOD;
        return paths[i].route;
    }
    return CS_ROUTE_NOT_FOUND;
}

struct cs_metrics_server {
    struct MHD_Daemon *daemon;
    cs_health *health;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *ctype,
                             char *body, size_t len, bool allow)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result rc;

    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* A one-line text answer, redacted (it may quote a dependency's error). */
static enum MHD_Result text_reply(struct MHD_Connection *c, unsigned status, const char *text,
                                  bool allow)
{
    size_t size = strlen(text) * 2 + 16;
    char *body = malloc(size);
    size_t n;

    if (!body)
        return MHD_NO;
    n = cs_redact(body, size - 1, text);
    body[n++] = '\n';
    body[n] = '\0';
    return reply(c, status, "text/plain; charset=utf-8", body, n, allow);
}

#define METRICS_PAGE (512 * 1024)

int cs_metrics_respond(struct MHD_Connection *c, cs_health *health, cs_http_route route)
{
    char text[1024];
    bool ok;

    switch (route) {
    case CS_ROUTE_LIVEZ:
        ok = health ? cs_health_live(health, text, sizeof(text))
                    : (snprintf(text, sizeof(text), "ok"), true);
        return text_reply(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, text, false);
    case CS_ROUTE_READYZ:
        ok = health ? cs_health_ready(health, text, sizeof(text))
                    : (snprintf(text, sizeof(text), "ok"), true);
        return text_reply(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, text, false);
    case CS_ROUTE_METRICS: {
        char *page = malloc(METRICS_PAGE);
        size_t n;

        if (!page)
            return MHD_NO;
        n = cs_metrics_render(page, METRICS_PAGE);
        n += cs_metrics_render_process(page + n, METRICS_PAGE - n);
        return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", page, n, false);
    }
    case CS_ROUTE_BAD_METHOD:
        return text_reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed", true);
    case CS_ROUTE_NOT_FOUND:
        break;
    }
    return text_reply(c, MHD_HTTP_NOT_FOUND, "not found", false);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    cs_metrics_server *s = cls;

    (void)version;
    (void)upload_data;
    (void)con_cls;
    if (*upload_data_size > 0) {
        *upload_data_size = 0; /* a body is read and ignored */
        return MHD_YES;
    }
    return cs_metrics_respond(c, s->health, cs_http_route_of(method, url)) ? MHD_YES : MHD_NO;
}

/* libmicrohttpd's own messages, through the logger. */
__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    cs_log_warn("http endpoint: %s", msg);
}

cs_metrics_server *cs_metrics_server_start(const char *host, int port, cs_health *health,
                                           char *errstr, size_t errstr_size)
{
    cs_metrics_server *s;
    cs_metrics_addr addr;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;

    if (cs_metrics_resolve(host, port, &addr, errstr, errstr_size))
        return NULL;
    if (!(s = calloc(1, sizeof(*s)))) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (addr.ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->health = health;
    cs_metrics_build_info();
    /* The logger comes first, so that every message of libmicrohttpd's goes through it. */
    s->daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, s,
                                 MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
                                 (struct sockaddr *)&addr.ss, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned)10, MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
                                 MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)256, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(errstr, errstr_size, "could not listen on %s port %d: %s", host, port,
                 errno ? strerror(errno) : "libmicrohttpd refused the settings");
        free(s);
        return NULL;
    }
    return s;
}

void cs_metrics_server_free(cs_metrics_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->daemon);
    free(s);
}
