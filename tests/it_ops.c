/* Integration tests of operating casestream: the HTTP endpoint under idle clients, readiness
 * following each dependency, no credential in any output, logs that parse. */
#include "it_proxy.h"
#include "it_support.h"
#include "it_world.h"
#include "logfmt.h"
#include "runner.h"

#include "err.h"
#include "es.h"
#include "run.h"
#include "url.h"

#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* How long a dependency going down or coming back may take to show in /readyz. */
#define READY_DOWN_MS 5000
#define READY_UP_MS   15000

static const char secret[] = "s3cret";

/* A free TCP port on loopback (nothing listens on it once this returns). */
static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* A TCP connection to host:port, or -1. */
static int dial(const char *host, int port)
{
    struct addrinfo hints, *res = NULL;
    char service[16];
    int fd = -1;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof(service), "%d", port);
    if (getaddrinfo(host, service, &hints, &res) != 0)
        return -1;
    fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* One HTTP/1.0 request; returns the status (0 when there was no answer), the body in buf. */
static long http(const char *host, int port, const char *method, const char *path, char *buf,
                 size_t size)
{
    char req[512];
    static char resp[1 << 20];
    size_t got = 0;
    ssize_t n;
    long status = 0;
    int fd = dial(host, port);
    const char *body;
    struct timeval tv = {5, 0};

    buf[0] = '\0';
    if (fd < 0)
        return 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: x\r\n\r\n", method, path);
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
        close(fd);
        return 0;
    }
    while (got + 1 < sizeof(resp) && (n = recv(fd, resp + got, sizeof(resp) - 1 - got, 0)) > 0)
        got += (size_t)n;
    resp[got] = '\0';
    close(fd);
    if (sscanf(resp, "HTTP/1.%*d %ld", &status) != 1)
        return 0;
    body = strstr(resp, "\r\n\r\n");
    snprintf(buf, size, "%s", body ? body + 4 : "");
    return status;
}

static long get(int port, const char *path, char *buf, size_t size)
{
    return http("127.0.0.1", port, "GET", path, buf, size);
}

/* Polls path until it answers want with needle in its body (NULL: any); returns the
 * milliseconds it took, or fails the test after timeout_ms. */
static long long wait_for(int port, const char *path, long want, const char *needle, int timeout_ms)
{
    long long t0 = cs_now_ms();
    char body[4096] = "";
    long status = 0;

    while (cs_now_ms() - t0 < timeout_ms) {
        status = get(port, path, body, sizeof(body));
        if (status == want && (!needle || strstr(body, needle)))
            return cs_now_ms() - t0;
        usleep(100 * 1000);
    }
    ck_abort_msg("%s did not answer %ld with \"%s\" within %d ms: %ld %s", path, want,
                 needle ? needle : "", timeout_ms, status, body);
    return -1;
}

/* The whole text of a file (caller frees), or "" when it cannot be read. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *text;
    long len;

    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    rewind(f);
    text = calloc(1, (size_t)len + 1);
    if (fread(text, 1, (size_t)len, f) != (size_t)len)
        text[0] = '\0';
    fclose(f);
    return text;
}

static void log_path(char *buf, size_t size, const char *program, pid_t pid)
{
    snprintf(buf, size, "build/it-logs/%s-%d.log", program, (int)pid);
}

/* The worker's own topics and group, so that it shares nothing with other tests. */
typedef struct names {
    char ev[256], re[256], ch[256], dl[256], gr[256], ix[256];
} names;

static void names_new(names *n)
{
    char *u = it_unique("ops");

    snprintf(n->ev, sizeof(n->ev), "--topic-events=%s-events", u);
    snprintf(n->re, sizeof(n->re), "--topic-results=%s-results", u);
    snprintf(n->ch, sizeof(n->ch), "--topic-changes=%s-changes", u);
    snprintf(n->dl, sizeof(n->dl), "--topic-dlq=%s-dlq", u);
    snprintf(n->gr, sizeof(n->gr), "--group=%s", u);
    snprintf(n->ix, sizeof(n->ix), "--indexer-group=%s", u);
    free(u);
}

/* The conninfo the worker connects with (its role when the stack names one). */
static const char *worker_pg(void)
{
    const char *pg = getenv("CASESTREAM_WORKER_PG");

    return pg ? pg : it_config()->pg;
}

/* Starts a worker on its own topics with up to 4 more arguments (NULL-terminated). */
static pid_t start_worker(const names *n, const char *const *extra)
{
    const char *args[16] = {n->ev, n->re, n->ch, n->dl, n->gr, "--appliers=1"};
    int k = 6;

    for (int i = 0; extra && extra[i] && k < 15; i++)
        args[k++] = extra[i];
    args[k] = NULL;
    return it_spawn("casestream-worker", args, NULL);
}

static pid_t start_indexer(const names *n, const char *const *extra)
{
    const char *args[16] = {n->ch, n->ix};
    int k = 2;

    for (int i = 0; extra && extra[i] && k < 15; i++)
        args[k++] = extra[i];
    args[k] = NULL;
    return it_spawn("casestream-indexer", args, NULL);
}

/* ---- 1. the endpoint under idle and slow clients ------------------------------------------ */

START_TEST(test_livez_answers_within_100ms_with_50_idle_connections)
{
    names n;
    int port = free_port(), idle[60], slowest = 0;
    char portflag[32], body[1 << 16];
    const char *extra[] = {portflag, "--metrics-host=localhost", NULL};
    pid_t pid;

    names_new(&n);
    snprintf(portflag, sizeof(portflag), "--metrics-port=%d", port);
    pid = start_worker(&n, extra);
    wait_for(port, "/livez", 200, "ok", 20000);
    /* 50 connections that send nothing, 10 that stop in the middle of their headers. */
    for (int i = 0; i < 60; i++) {
        idle[i] = dial("127.0.0.1", port);
        ck_assert_int_ge(idle[i], 0);
        if (i >= 50)
            ck_assert_int_gt(send(idle[i], "GET /livez HTTP/1.1\r\nHost:", 26, MSG_NOSIGNAL), 0);
    }
    for (int i = 0; i < 20; i++) {
        long long t0 = cs_now_us();
        long status = get(port, "/livez", body, sizeof(body));
        int ms = (int)((cs_now_us() - t0) / 1000);

        ck_assert_int_eq(status, 200);
        slowest = ms > slowest ? ms : slowest;
    }
    ck_assert_msg(slowest < 100, "/livez took %d ms with 60 idle clients", slowest);
    /* Exact paths, GET and HEAD. */
    ck_assert_int_eq(get(port, "/metricsXYZ", body, sizeof(body)), 404);
    ck_assert_int_eq(get(port, "/", body, sizeof(body)), 404);
    ck_assert_int_eq(http("127.0.0.1", port, "POST", "/metrics", body, sizeof(body)), 405);
    ck_assert_int_eq(http("127.0.0.1", port, "HEAD", "/metrics", body, sizeof(body)), 200);
    ck_assert_str_eq(body, "");
    ck_assert_int_eq(http("127.0.0.1", port, "HEAD", "/livez", body, sizeof(body)), 200);
    ck_assert_int_eq(get(port, "/metrics", body, sizeof(body)), 200);
    ck_assert_ptr_nonnull(strstr(body, "\ncasestream_build_info{version=\""));
    ck_assert_ptr_nonnull(strstr(body, "\nprocess_cpu_seconds_total "));
    ck_assert_ptr_nonnull(strstr(body, "\nprocess_resident_memory_bytes "));
    ck_assert_ptr_nonnull(strstr(body, "\nprocess_open_fds "));
    ck_assert_ptr_nonnull(strstr(body, "\nprocess_start_time_seconds "));
    ck_assert_ptr_nonnull(strstr(body, "\ncasestream_worker_outbox_backlog "));
    for (int i = 0; i < 60; i++)
        close(idle[i]);
    ck_assert_int_eq(it_stop(pid, SIGTERM, 30000), 0);
}
END_TEST

START_TEST(test_metrics_host_ipv6)
{
    names n;
    int port = free_port();
    char portflag[32], body[4096];
    const char *extra[] = {portflag, "--metrics-host=::1", NULL};
    long long t0 = cs_now_ms();
    long status = 0;
    pid_t pid;

    names_new(&n);
    snprintf(portflag, sizeof(portflag), "--metrics-port=%d", port);
    pid = start_worker(&n, extra);
    while (cs_now_ms() - t0 < 20000 &&
           (status = http("::1", port, "GET", "/livez", body, sizeof(body))) != 200)
        usleep(100 * 1000);
    ck_assert_int_eq(status, 200);
    ck_assert_int_eq(it_stop(pid, SIGTERM, 30000), 0);
}
END_TEST

/* ---- 2. readiness follows each dependency ------------------------------------------------- */

START_TEST(test_readyz_says_kafka_down_for_an_unreachable_broker)
{
    names n;
    int port = free_port();
    char portflag[32], brokers[64], body[4096];
    const char *extra[] = {portflag, brokers, NULL};
    long long ms;
    pid_t pid;

    names_new(&n);
    snprintf(portflag, sizeof(portflag), "--metrics-port=%d", port);
    snprintf(brokers, sizeof(brokers), "--brokers=127.0.0.1:%d", free_port());
    pid = start_worker(&n, extra);
    wait_for(port, "/livez", 200, NULL, 20000);
    ms = wait_for(port, "/readyz", 503, "kafka=down", READY_DOWN_MS);
    ck_assert_int_lt(ms, READY_DOWN_MS);
    ck_assert_int_eq(get(port, "/healthz", body, sizeof(body)), 503);
    ck_assert_int_eq(get(port, "/livez", body, sizeof(body)), 200);
    ck_assert_int_eq(it_stop(pid, SIGTERM, 30000), 0);
}
END_TEST

/* Drops the proxy and waits for /readyz to say name=down; restores it and waits for 200. */
static void drop_and_restore(it_proxy *proxy, int port, const char *name)
{
    char down[64], body[4096];
    long long ms;

    snprintf(down, sizeof(down), "%s=down", name);
    it_proxy_drop(proxy);
    ms = wait_for(port, "/readyz", 503, down, READY_DOWN_MS);
    ck_assert_msg(ms < READY_DOWN_MS, "%s down took %lld ms to show", name, ms);
    ck_assert_int_eq(get(port, "/livez", body, sizeof(body)), 200);
    it_proxy_restore(proxy);
    wait_for(port, "/readyz", 200, NULL, READY_UP_MS);
}

START_TEST(test_worker_readyz_follows_postgresql_and_redis)
{
    names n;
    int port = free_port(), pg_port;
    char portflag[32], pg[1024], redis[128], host[128], body[4096];
    const char *extra[] = {portflag, pg, redis, NULL};
    it_proxy *pg_proxy, *redis_proxy;
    cs_url url;
    int db;
    pid_t pid;

    names_new(&n);
    it_pg_target(worker_pg(), host, sizeof(host), &pg_port);
    pg_proxy = it_proxy_start(host, pg_port);
    ck_assert_int_eq(cs_url_parse_redis(it_config()->redis, &url, &db, body, sizeof(body)), 0);
    redis_proxy = it_proxy_start(url.host, url.port);
    snprintf(portflag, sizeof(portflag), "--metrics-port=%d", port);
    /* libpq takes the last value of a repeated keyword. */
    snprintf(pg, sizeof(pg), "--pg=%s host=127.0.0.1 port=%d", worker_pg(),
             it_proxy_port(pg_proxy));
    snprintf(redis, sizeof(redis), "--redis=redis://127.0.0.1:%d/%d", it_proxy_port(redis_proxy),
             db);
    pid = start_worker(&n, extra);
    wait_for(port, "/readyz", 200, "postgresql=up", 30000);
    drop_and_restore(pg_proxy, port, "postgresql");
    drop_and_restore(redis_proxy, port, "redis");
    ck_assert_int_eq(it_stop(pid, SIGTERM, 30000), 0);
    it_proxy_free(pg_proxy);
    it_proxy_free(redis_proxy);
}
END_TEST

START_TEST(test_indexer_readyz_follows_elasticsearch_and_postgresql)
{
    names n;
    int port = free_port(), pg_port;
    char portflag[32], pg[1024], es[128], host[128], err[256];
    const char *extra[] = {portflag, pg, es, NULL};
    it_proxy *pg_proxy, *es_proxy;
    cs_url url;
    pid_t pid;

    names_new(&n);
    it_pg_target(worker_pg(), host, sizeof(host), &pg_port);
    pg_proxy = it_proxy_start(host, pg_port);
    ck_assert_int_eq(cs_url_parse_http(it_config()->es, &url, err, sizeof(err)), 0);
    es_proxy = it_proxy_start(url.host, url.port);
    snprintf(portflag, sizeof(portflag), "--metrics-port=%d", port);
    snprintf(pg, sizeof(pg), "--pg=%s host=127.0.0.1 port=%d", worker_pg(),
             it_proxy_port(pg_proxy));
    snprintf(es, sizeof(es), "--es=http://127.0.0.1:%d", it_proxy_port(es_proxy));
    pid = start_indexer(&n, extra);
    wait_for(port, "/readyz", 200, "elasticsearch=up", 30000);
    drop_and_restore(es_proxy, port, "elasticsearch");
    drop_and_restore(pg_proxy, port, "postgresql");
    ck_assert_int_eq(it_stop(pid, SIGTERM, 30000), 0);
    it_proxy_free(pg_proxy);
    it_proxy_free(es_proxy);
}
END_TEST

START_TEST(test_worker_authenticates_to_redis_with_user_and_password)
{
    names n;
    int port = free_port(), rport = free_port();
    char conf[256], cmd[600], portflag[32], redis[128];
    const char *extra[] = {portflag, redis, NULL};
    const char *urls[] = {"redis://:pw1@127.0.0.1", "redis://alice:pw2@[::1]",
                          "redis://:wrong@127.0.0.1"};
    const char *dbs[] = {"", "/1", ""};
    FILE *f;

    /* A Redis of the test's own that wants a password (and an ACL user). */
    snprintf(conf, sizeof(conf), "build/it-logs/ops-redis-%d.conf", (int)getpid());
    ck_assert_ptr_nonnull(f = fopen(conf, "w"));
    fprintf(f,
            "port %d\nbind 127.0.0.1 ::1\nsave \"\"\nappendonly no\ndaemonize yes\n"
            "pidfile %s.pid\nlogfile %s.log\nuser default on >pw1 ~* &* +@all\n"
            "user alice on >pw2 ~* &* +@all\n",
            rport, conf, conf);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "redis-server %s", conf);
    ck_assert_int_eq(system(cmd), 0);
    names_new(&n);
    snprintf(portflag, sizeof(portflag), "--metrics-port=%d", port);
    for (int i = 0; i < 3; i++) {
        pid_t pid;

        snprintf(redis, sizeof(redis), "--redis=%s:%d%s", urls[i], rport, dbs[i]);
        pid = start_worker(&n, extra);
        if (i < 2)
            wait_for(port, "/readyz", 200, "redis=up", 20000);
        else
            wait_for(port, "/readyz", 503, "AUTH failed", 20000);
        ck_assert_int_eq(it_stop(pid, SIGTERM, 30000), 0);
    }
    snprintf(cmd, sizeof(cmd), "kill $(cat %s.pid)", conf);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* ---- 3. no credential anywhere ------------------------------------------------------------ */

static void assert_no_secret(const char *what, const char *text)
{
    ck_assert_msg(!strstr(text, secret), "the password is in %s: %s", what, text);
}

START_TEST(test_planted_passwords_reach_no_log_readyz_or_metrics)
{
    names n;
    int wport = free_port(), iport = free_port();
    char wflag[32], iflag[32], pg[1024], path[256], body[1 << 16], *text;
    const char *wextra[] = {wflag, "--redis=redis://:s3cret@127.0.0.1:1", NULL};
    const char *iextra[] = {iflag, "--es=http://elastic:s3cret@127.0.0.1:1", pg, NULL};
    const char *bad_redis[] = {"--redis=redis://:s3cret@127.0.0.1:port", NULL};
    const char *bad_x[] = {"-Xsasl.password=s3cret", "-Xno.such.property=s3cret", NULL};
    pid_t w, ix;

    names_new(&n);
    snprintf(wflag, sizeof(wflag), "--metrics-port=%d", wport);
    snprintf(iflag, sizeof(iflag), "--metrics-port=%d", iport);
    snprintf(pg, sizeof(pg), "--pg=host=127.0.0.1 port=1 dbname=casestream user=u password=%s",
             secret);
    w = start_worker(&n, wextra);
    ix = start_indexer(&n, iextra);
    wait_for(wport, "/readyz", 503, "redis=down", 20000);
    wait_for(iport, "/readyz", 503, "elasticsearch=down", 20000);
    wait_for(iport, "/readyz", 503, "postgresql=down", 20000);
    for (int i = 0; i < 2; i++) {
        int port = i ? iport : wport;

        ck_assert_int_eq(get(port, "/readyz", body, sizeof(body)), 503);
        assert_no_secret("/readyz", body);
        ck_assert_int_eq(get(port, "/healthz", body, sizeof(body)), 503);
        assert_no_secret("/healthz", body);
        ck_assert_int_eq(get(port, "/metrics", body, sizeof(body)), 200);
        assert_no_secret("/metrics", body);
    }
    ck_assert_int_eq(it_stop(w, SIGTERM, 30000), 0);
    ck_assert_int_eq(it_stop(ix, SIGTERM, 30000), 0);
    log_path(path, sizeof(path), "casestream-worker", w);
    text = slurp(path);
    ck_assert_ptr_nonnull(strstr(text, "consuming"));
    assert_no_secret(path, text);
    free(text);
    log_path(path, sizeof(path), "casestream-indexer", ix);
    text = slurp(path);
    ck_assert_ptr_nonnull(strstr(text, "127.0.0.1:1"));
    assert_no_secret(path, text);
    free(text);
    /* Configuration errors quote what was given, masked. */
    snprintf(path, sizeof(path), "build/it-logs/ops-config-%d.log", (int)getpid());
    ck_assert_int_eq(it_run("casestream-worker", bad_redis, NULL, NULL, path), CS_EXIT_CONFIG);
    text = slurp(path);
    ck_assert_ptr_nonnull(strstr(text, "redis://:***@127.0.0.1:port"));
    assert_no_secret(path, text);
    free(text);
    ck_assert_int_eq(it_run("casestream-indexer", bad_x, NULL, NULL, path), CS_EXIT_CONFIG);
    text = slurp(path);
    assert_no_secret(path, text);
    free(text);
}
END_TEST

/* ---- 4. every program's log parses -------------------------------------------------------- */

/* Checks one log file in format ("logfmt" or "json"): lines, 0 errors; returns its text. */
static char *check_log(const char *path, const char *format)
{
    char err[1024] = "", cmd[600];
    int lines = 0, bad;

    if (strcmp(format, "logfmt") == 0) {
        bad = logfmt_check_file(path, &lines, err, sizeof(err));
        ck_assert_msg(bad == 0, "%d lines of %s do not parse as logfmt: %s", bad, path, err);
    } else {
        char *text = slurp(path), *line, *save = NULL;

        /* jq reads every line as a value; each must be an object with the fields. */
        snprintf(cmd, sizeof(cmd),
                 "jq -e -n '[inputs | select(type != \"object\" or .ts == null or .level == null "
                 "or .msg == null)] | length == 0' %s >/dev/null",
                 path);
        ck_assert_msg(system(cmd) == 0, "%s is not one JSON object with ts, level, msg per line",
                      path);
        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            json_error_t jerr;
            json_t *o = json_loads(line, 0, &jerr);

            ck_assert_msg(json_is_object(o), "%s: %s: %s", path, jerr.text, line);
            json_decref(o);
            lines++;
        }
        free(text);
    }
    ck_assert_msg(lines > 0, "%s is empty", path);
    return slurp(path);
}

START_TEST(test_every_program_logs_parse_as_logfmt_and_json)
{
    static const char *const formats[] = {"logfmt", "json"};

    for (int f = 0; f < 2; f++) {
        names n;
        char format[32], brokers[64], path[256], input[256], pg_down[256];
        const char *wargs[] = {format, brokers, "--metrics-port=0", NULL};
        const char *iargs[] = {format, "--es=http://127.0.0.1:1", pg_down, "--metrics-port=0",
                               NULL};
        const char *pargs[] = {format, "--dry-run", input, NULL};
        const char *case_args[] = {format, pg_down, "case", "show", "1", NULL};
        const char *bad[][4] = {{"casestream-worker", format, "stray", NULL},
                                {"casestream-indexer", format, "-Xacks=1", NULL},
                                {"casestream-produce", format, "--rate=x", NULL},
                                {"casestream", format, "nope", NULL}};
        char *text;
        FILE *in;
        pid_t w, ix;

        names_new(&n);
        snprintf(format, sizeof(format), "--log-format=%s", formats[f]);
        snprintf(brokers, sizeof(brokers), "--brokers=127.0.0.1:%d", free_port());
        snprintf(pg_down, sizeof(pg_down),
                 "--pg=host=127.0.0.1 port=1 dbname=casestream user=u connect_timeout=2");
        /* The worker with no broker: librdkafka's connection errors. */
        w = start_worker(&n, wargs);
        /* The indexer with no PostgreSQL and no Elasticsearch: libpq's multi-line error. */
        ix = start_indexer(&n, iargs);
        sleep(4);
        ck_assert_int_eq(it_stop(w, SIGTERM, 30000), 0);
        ck_assert_int_eq(it_stop(ix, SIGTERM, 30000), 0);
        log_path(path, sizeof(path), "casestream-worker", w);
        text = check_log(path, formats[f]);
        ck_assert_msg(strstr(text, "kafka: ") && strstr(text, "facility"),
                      "no librdkafka line in %s", path);
        free(text);
        log_path(path, sizeof(path), "casestream-indexer", ix);
        text = check_log(path, formats[f]);
        ck_assert_msg(strstr(text, "Is the server running"), "no libpq error in %s", path);
        free(text);
        /* The producer's report of invalid lines, quotes and all. */
        snprintf(input, sizeof(input), "build/it-logs/ops-input-%d.ndjson", (int)getpid());
        ck_assert_ptr_nonnull(in = fopen(input, "w"));
        fputs("{\"a\": \"quote \\\" and backslash \\\\\"}\nnot json\n", in);
        fclose(in);
        snprintf(path, sizeof(path), "build/it-logs/ops-produce-%d.log", (int)getpid());
        ck_assert_int_eq(it_run("casestream-produce", pargs, NULL, NULL, path), 1);
        free(check_log(path, formats[f]));
        snprintf(path, sizeof(path), "build/it-logs/ops-case-%d.log", (int)getpid());
        ck_assert_int_eq(it_run("casestream", case_args, NULL, NULL, path), 1);
        free(check_log(path, formats[f]));
        for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
            snprintf(path, sizeof(path), "build/it-logs/ops-bad-%d-%zu.log", (int)getpid(), b);
            ck_assert_int_eq(it_run(bad[b][0], bad[b] + 1, NULL, NULL, path), CS_EXIT_CONFIG);
            text = check_log(path, formats[f]);
            ck_assert_msg(!strchr(text, '\n') || strchr(text, '\n')[1] == '\0',
                          "%s: more than one line: %s", bad[b][0], text);
            free(text);
        }
        unlink(input);
    }
}
END_TEST

START_TEST(test_every_program_prints_its_version)
{
    static const char *const programs[] = {"casestream-worker", "casestream-indexer",
                                           "casestream-produce", "casestream"};
    const char *args[] = {"--version", NULL};
    char path[256];

    for (size_t i = 0; i < 4; i++) {
        char *text;

        snprintf(path, sizeof(path), "build/it-logs/ops-version-%d.txt", (int)getpid());
        ck_assert_int_eq(it_run(programs[i], args, NULL, path, NULL), 0);
        text = slurp(path);
        ck_assert_msg(strncmp(text, programs[i], strlen(programs[i])) == 0 &&
                          text[strlen(programs[i])] == ' ' &&
                          strlen(text) > strlen(programs[i]) + 2,
                      "%s --version: %s", programs[i], text);
        free(text);
    }
}
END_TEST

/* The test's certificates, in a temporary directory of their own. */
typedef struct certs {
    char dir[32], ca[96], cert[96], key[96], srv_cert[96], srv_key[96];
} certs;

/* A CA, a server certificate for 127.0.0.1 and a client certificate (cert, key), made with
 * the openssl command in a new temporary directory; certs_remove deletes it. */
static void certs_make(certs *c)
{
    char cmd[2048];

    snprintf(c->dir, sizeof(c->dir), "/tmp/cs-tls-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(c->dir));
    snprintf(c->ca, sizeof(c->ca), "%s/ca.pem", c->dir);
    snprintf(c->cert, sizeof(c->cert), "%s/client.pem", c->dir);
    snprintf(c->key, sizeof(c->key), "%s/client.key", c->dir);
    snprintf(c->srv_cert, sizeof(c->srv_cert), "%s/server.pem", c->dir);
    snprintf(c->srv_key, sizeof(c->srv_key), "%s/server.key", c->dir);

    snprintf(cmd, sizeof(cmd),
             "set -e; cd %s; exec >openssl.log 2>&1; key='-newkey ec -pkeyopt "
             "ec_paramgen_curve:prime256v1 -nodes';"
             "openssl req -x509 $key -keyout ca.key -out ca.pem -days 1 -subj /CN=it-ca;"
             "openssl req $key -keyout server.key -out server.csr -subj /CN=127.0.0.1;"
             "printf 'subjectAltName=IP:127.0.0.1\n' > san.ext;"
             "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
             " -out server.pem -days 1 -extfile san.ext;"
             "openssl req $key -keyout client.key -out client.csr -subj /CN=casestream;"
             "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
             " -out client.pem -days 1",
             c->dir);
    ck_assert_msg(system(cmd) == 0,
                  "openssl could not make the test certificates: see %s/openssl.log", c->dir);
}

static void certs_remove(const certs *c)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", c->dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* One GET / through cs_es_new_config with the TLS settings given; the status, or 0 when the
 * request failed (errstr says why). */
static long tls_get(int port, const char *ca, const char *cert, const char *key, char *errstr,
                    size_t errstr_size)
{
    char url[64], err[256];
    cs_config cfg = *it_config();
    cs_es_response r = CS_ES_RESPONSE_INIT;
    cs_es *es;
    long status = 0;

    snprintf(url, sizeof(url), "https://127.0.0.1:%d", port);
    cfg.es = url;
    cfg.es_ca_file = ca;
    cfg.es_cert_file = cert;
    cfg.es_key_file = key;
    cfg.es_api_key = "";
    es = cs_es_new_config(&cfg, err, sizeof(err));
    ck_assert_msg(es != NULL, "%s", err);
    errstr[0] = '\0';
    if (cs_es_request(es, "GET", "/", NULL, 0, &r, errstr, errstr_size) == CS_OK) {
        status = r.status;
        cs_es_response_clear(&r);
    }
    cs_es_free(es);
    return status;
}

/* Elasticsearch behind TLS that demands a client certificate (openssl s_server standing in):
 * --es-ca-file verifies the server, --es-cert-file/--es-key-file authenticate casestream;
 * without either the connection fails. */
START_TEST(test_elasticsearch_over_tls_with_a_ca_file_and_a_client_certificate)
{
    char accept[32], errstr[512];
    int port = free_port();
    long long deadline;
    long status = 0;
    certs c;
    pid_t server;

    certs_make(&c);
    snprintf(accept, sizeof(accept), "127.0.0.1:%d", port);
    {
        const char *args[] = {"s_server", "-accept", accept,    "-cert",
                              c.srv_cert, "-key",    c.srv_key, "-CAfile",
                              c.ca,       "-Verify", "1",       "-verify_return_error",
                              "-www",     "-quiet",  NULL};

        server = it_spawn("/usr/bin/openssl", args, NULL);
    }
    deadline = cs_now_ms() + 15000;
    while (cs_now_ms() < deadline &&
           (status = tls_get(port, c.ca, c.cert, c.key, errstr, sizeof(errstr))) != 200)
        usleep(100 * 1000);
    ck_assert_msg(status == 200, "with the CA file and the client certificate: %ld %s", status,
                  errstr);
    ck_assert_int_eq(tls_get(port, c.ca, "", "", errstr, sizeof(errstr)), 0);
    fprintf(stderr, "it_ops: without a client certificate: %s\n", errstr);
    ck_assert_int_eq(tls_get(port, "", c.cert, c.key, errstr, sizeof(errstr)), 0);
    fprintf(stderr, "it_ops: without the CA file: %s\n", errstr);
    ck_assert_int_eq(tls_get(port, c.ca, c.cert, c.key, errstr, sizeof(errstr)), 200);
    it_stop(server, SIGTERM, 5000);
    certs_remove(&c);
}
END_TEST

/* Whether the idempotency entry of (ref, key) is in the TLS-only Redis on port, asked with
 * redis-cli over TLS with the test's CA and client certificate. */
static bool tls_redis_has(const certs *c, int port, int64_t ref, const char *key)
{
    char cmd[1024], line[64] = "";
    FILE *p;

    snprintf(cmd, sizeof(cmd),
             "redis-cli --tls --cacert %s --cert %s --key %s -h 127.0.0.1 -p %d "
             "EXISTS 'cs:idem:%" PRId64 ":%s' 2>&1",
             c->ca, c->cert, c->key, port, ref, key);
    ck_assert_ptr_nonnull(p = popen(cmd, "r"));
    if (!fgets(line, sizeof(line), p))
        line[0] = '\0';
    pclose(p);
    return strcmp(line, "1\n") == 0;
}

/* Redis over TLS only (a redis-server of the test's own, no plain port, client certificates
 * required): rediss:// with --redis-ca-file and --redis-cert-file/--redis-key-file makes the
 * worker ready and writes its idempotency entries over TLS; without the client certificate or
 * without the CA file it stays unready and /readyz says why; a CA file that cannot be read, or
 * one that is not a certificate, is a configuration error (exit 78). */
START_TEST(test_worker_uses_redis_over_tls_with_a_ca_file_and_a_client_certificate)
{
    char tls_port[16], portflag[32], redis[64], caflag[128], certflag[128], keyflag[128],
        notca[128], path[256], key[37];
    int port = free_port(), rport = free_port();
    const char *good[] = {portflag, redis, caflag, certflag, keyflag, NULL};
    const char *no_cert[] = {portflag, redis, caflag, NULL};
    const char *no_ca[] = {portflag, redis, certflag, keyflag, NULL};
    const char *missing_ca[] = {redis, "--redis-ca-file=/nonexistent/ca.pem", NULL};
    const char *key_as_ca[] = {redis, notca, NULL};
    long long deadline;
    int64_t ref;
    pid_t server, pid;
    char *text;
    certs c;

    certs_make(&c);
    snprintf(tls_port, sizeof(tls_port), "%d", rport);
    {
        const char *args[] = {"--port",
                              "0",
                              "--tls-port",
                              tls_port,
                              "--bind",
                              "127.0.0.1",
                              "--tls-cert-file",
                              c.srv_cert,
                              "--tls-key-file",
                              c.srv_key,
                              "--tls-ca-cert-file",
                              c.ca,
                              "--tls-auth-clients",
                              "yes",
                              "--save",
                              "",
                              "--appendonly",
                              "no",
                              NULL};

        server = it_spawn("/usr/bin/redis-server", args, NULL);
    }
    snprintf(portflag, sizeof(portflag), "--metrics-port=%d", port);
    snprintf(redis, sizeof(redis), "--redis=rediss://127.0.0.1:%d", rport);
    snprintf(caflag, sizeof(caflag), "--redis-ca-file=%s", c.ca);
    snprintf(certflag, sizeof(certflag), "--redis-cert-file=%s", c.cert);
    snprintf(keyflag, sizeof(keyflag), "--redis-key-file=%s", c.key);
    snprintf(notca, sizeof(notca), "--redis-ca-file=%s", c.key);

    /* Configuration errors, before any connection. */
    snprintf(path, sizeof(path), "build/it-logs/ops-rtls-%d.log", (int)getpid());
    ck_assert_int_eq(it_run("casestream-worker", missing_ca, NULL, NULL, path), CS_EXIT_CONFIG);
    text = it_read_file(path);
    ck_assert_msg(strstr(text, "redis-ca-file /nonexistent/ca.pem cannot be read"), "%s", text);
    free(text);
    ck_assert_int_eq(it_run("casestream-worker", key_as_ca, NULL, NULL, path), CS_EXIT_CONFIG);
    text = it_read_file(path);
    ck_assert_msg(strstr(text, "no CA certificate could be loaded"), "%s", text);
    free(text);

    /* With the CA file and the client certificate: ready, and an applied submission's
     * idempotency entry is in the TLS-only Redis. */
    world_new("rtls", 1);
    pid = worker_start(good);
    wait_for(port, "/readyz", 200, "redis=up", 30000);
    new_key(key);
    ref = new_ref();
    send_one(plan_create(ref, key));
    it_flush();
    deadline = cs_now_ms() + CATCH_UP_MS;
    while (!tls_redis_has(&c, rport, ref, key) && cs_now_ms() < deadline)
        usleep(200 * 1000);
    ck_assert_msg(tls_redis_has(&c, rport, ref, key),
                  "no idempotency entry for case %" PRId64 " in the TLS Redis", ref);
    worker_stop(pid);

    /* Without the client certificate the server ends the session; without the CA file the
     * worker does not trust the server. */
    pid = worker_start(no_cert);
    wait_for(port, "/readyz", 503, "client certificate", 30000);
    ck_assert_int_eq(it_stop(pid, SIGTERM, 30000), 0);
    pid = worker_start(no_ca);
    wait_for(port, "/readyz", 503, "self-signed certificate", 30000);
    ck_assert_int_eq(it_stop(pid, SIGTERM, 30000), 0);

    ck_assert_int_eq(it_stop(server, SIGTERM, 10000), 0);
    certs_remove(&c);
}
END_TEST

Suite *it_ops_suite(void)
{
    Suite *s = suite_create("it_ops");
    TCase *http_tc = tcase_create("http");
    TCase *ready = tcase_create("readiness");
    TCase *logs = tcase_create("logs");

    tcase_set_timeout(http_tc, 120);
    tcase_add_test(http_tc, test_livez_answers_within_100ms_with_50_idle_connections);
    tcase_add_test(http_tc, test_metrics_host_ipv6);
    suite_add_tcase(s, http_tc);
    tcase_set_timeout(ready, 180);
    tcase_add_test(ready, test_readyz_says_kafka_down_for_an_unreachable_broker);
    tcase_add_test(ready, test_worker_readyz_follows_postgresql_and_redis);
    tcase_add_test(ready, test_indexer_readyz_follows_elasticsearch_and_postgresql);
    tcase_add_test(ready, test_worker_authenticates_to_redis_with_user_and_password);
    tcase_add_test(ready, test_elasticsearch_over_tls_with_a_ca_file_and_a_client_certificate);
    tcase_add_test(ready, test_worker_uses_redis_over_tls_with_a_ca_file_and_a_client_certificate);
    suite_add_tcase(s, ready);
    tcase_set_timeout(logs, 180);
    tcase_add_test(logs, test_planted_passwords_reach_no_log_readyz_or_metrics);
    tcase_add_test(logs, test_every_program_logs_parse_as_logfmt_and_json);
    tcase_add_test(logs, test_every_program_prints_its_version);
    suite_add_tcase(s, logs);
    return s;
}
