/* Integration-test support: configuration, PostgreSQL, Kafka and child processes. */
#include "it_support.h"

#include "db.h"
#include "es.h"
#include "err.h"
#include "kafka.h"
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static cs_config config;
static bool config_loaded;
static PGconn *pg;

const cs_config *it_config(void)
{
    static char *argv[] = {"casestream-tests", NULL};
    char errstr[256];

    if (!config_loaded) {
        if (cs_config_load(&config, CS_PROG_ALL, 1, argv, errstr, sizeof(errstr)))
            ck_abort_msg("configuration: %s", errstr);
        config_loaded = true;
    }
    return &config;
}

PGconn *it_pg(void)
{
    char errstr[512];

    if (pg && PQstatus(pg) != CONNECTION_OK) {
        PQfinish(pg);
        pg = NULL;
    }
    if (!pg && !(pg = cs_db_connect(it_config()->pg, errstr, sizeof(errstr))))
        ck_abort_msg("postgresql is unreachable: %s", errstr);
    return pg;
}

static long long sql_int_v(const char *fmt, va_list ap)
{
    char sql[8192];
    PGresult *res;
    long long v = 0;

    vsnprintf(sql, sizeof(sql), fmt, ap);
    res = PQexec(it_pg(), sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char errstr[512];

        cs_db_error(it_pg(), res, errstr, sizeof(errstr));
        PQclear(res);
        ck_abort_msg("query failed: %s: %s", sql, errstr);
    }
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        v = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

long long it_sql_int(const char *fmt, ...)
{
    va_list ap;
    long long v;

    va_start(ap, fmt);
    v = sql_int_v(fmt, ap);
    va_end(ap);
    return v;
}

static bool wait_sql_v(int poll_ms, long long want, int timeout_ms, const char *fmt, va_list ap)
{
    long long deadline = cs_now_ms() + timeout_ms;

    for (;;) {
        va_list again;
        long long v;

        va_copy(again, ap);
        v = sql_int_v(fmt, again);
        va_end(again);
        if (v == want)
            return true;
        if (cs_now_ms() > deadline)
            return false;
        usleep((useconds_t)poll_ms * 1000);
    }
}

bool it_wait_sql(long long want, int timeout_ms, const char *fmt, ...)
{
    va_list ap;
    bool ok;

    va_start(ap, fmt);
    ok = wait_sql_v(100, want, timeout_ms, fmt, ap);
    va_end(ap);
    return ok;
}

bool it_wait_sql_every(int poll_ms, long long want, int timeout_ms, const char *fmt, ...)
{
    va_list ap;
    bool ok;

    va_start(ap, fmt);
    ok = wait_sql_v(poll_ms, want, timeout_ms, fmt, ap);
    va_end(ap);
    return ok;
}

int64_t it_new_ref(void)
{
    static int64_t base, counter;

    if (!base) {
        struct timeval tv;

        gettimeofday(&tv, NULL);
        /* Microseconds since the epoch times 1000: unique across runs. */
        base = ((int64_t)tv.tv_sec * 1000000 + tv.tv_usec) * 1000;
    }
    return base + ++counter;
}

char *it_unique(const char *prefix)
{
    static int counter;
    char buf[256];

    snprintf(buf, sizeof(buf), "%s-%ld-%d-%d", prefix, (long)time(NULL), (int)getpid(), ++counter);
    return strdup(buf);
}

static void child_exec(const char *program, const char *const *args, const char *const *env)
{
    char path[512];
    const char *argv[64], *role = NULL;
    int n = 0;

    snprintf(path, sizeof(path), program[0] == '/' ? "%s" : "build/%s", program);
    argv[n++] = path;
    for (int i = 0; args && args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    /* Programs connect as the role they have in production (DESIGN §7) when
     * the stack names one: the worker and the indexer as the worker role,
     * casestream case, reindex and index-dead-letters as the reader. A --pg flag still
     * wins. */
    if (strcmp(program, "casestream-worker") == 0 || strcmp(program, "casestream-indexer") == 0)
        role = getenv("CASESTREAM_WORKER_PG");
    for (int i = 1; strcmp(program, "casestream") == 0 && i < n; i++)
        if (strcmp(argv[i], "reindex") == 0 || strcmp(argv[i], "case") == 0 ||
            strcmp(argv[i], "index-dead-letters") == 0)
            role = getenv("CASESTREAM_READER_PG");
    if (role)
        setenv("CASESTREAM_PG", role, 1);
    for (int i = 0; env && env[i]; i++)
        putenv((char *)env[i]);
    execv(path, (char *const *)argv);
    fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
    _exit(127);
}

static void redirect(int fd, const char *path, int flags)
{
    int f = open(path ? path : "/dev/null", flags, 0644);

    if (f >= 0) {
        dup2(f, fd);
        close(f);
    }
}

pid_t it_spawn(const char *program, const char *const *args, const char *const *env)
{
    pid_t parent = getpid(), pid;

    mkdir("build/it-logs", 0755);
    pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        char log[512];

        /* Tied to the test: a test that dies leaves nothing running. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127); /* the test died before the prctl took effect */
        snprintf(log, sizeof(log), "build/it-logs/%s-%d.log",
                 strrchr(program, '/') ? strrchr(program, '/') + 1 : program, (int)getpid());
        redirect(STDIN_FILENO, NULL, O_RDONLY);
        redirect(STDOUT_FILENO, log, O_WRONLY | O_CREAT | O_APPEND);
        redirect(STDERR_FILENO, log, O_WRONLY | O_CREAT | O_APPEND);
        child_exec(program, args, env);
    }
    return pid;
}

static int exit_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

int it_stop(pid_t pid, int sig, int timeout_ms)
{
    long long deadline = cs_now_ms() + timeout_ms;
    int status;

    kill(pid, sig);
    while (cs_now_ms() < deadline) {
        pid_t r = waitpid(pid, &status, WNOHANG);

        if (r == pid)
            return exit_status(status);
        usleep(20 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

int it_run(const char *program, const char *const *args, const char *in_path, const char *out_path,
           const char *err_path)
{
    int status;
    pid_t pid;

    /* The usual home of out_path and err_path, missing in a fresh build directory. */
    mkdir("build/it-logs", 0755);
    pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        redirect(STDIN_FILENO, in_path, O_RDONLY);
        redirect(STDOUT_FILENO, out_path, O_WRONLY | O_CREAT | O_TRUNC);
        if (err_path)
            redirect(STDERR_FILENO, err_path, O_WRONLY | O_CREAT | O_TRUNC);
        child_exec(program, args, NULL);
    }
    waitpid(pid, &status, 0);
    return exit_status(status);
}

char *it_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;

    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = calloc(1, (size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return buf;
}

int it_stack(const char *args)
{
    char cmd[512];
    int status;

    /* setsid: Check ends a test by killing its process group, which would take a
     * service started here with it. */
    snprintf(cmd, sizeof(cmd), "setsid -w scripts/stack.sh %s >>build/it-logs/stack.log 2>&1",
             args);
    mkdir("build/it-logs", 0755);
    status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The file listing the topics this run created: build/it-logs/topics-<runner pid>.txt, the
 * runner's pid coming from CS_IT_RUNNER (integration_main sets it; the tests run in children). */
static bool created_topics_path(char *buf, size_t size)
{
    const char *runner = getenv("CS_IT_RUNNER");

    if (!runner || !runner[0])
        return false;
    snprintf(buf, size, "build/it-logs/topics-%s.txt", runner);
    return true;
}

/* Notes a topic this run created, for it_drop_created_topics. One write of one line with
 * O_APPEND: lines from tests running at once do not mix. */
static void note_created_topic(const char *name)
{
    char path[256], line[512];
    int fd, n;

    if (!created_topics_path(path, sizeof(path)))
        return;
    mkdir("build/it-logs", 0755);
    n = snprintf(line, sizeof(line), "%s\n", name);
    if (n <= 0 || (size_t)n >= sizeof(line) ||
        (fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0)
        return;
    if (write(fd, line, (size_t)n) != n)
        fprintf(stderr, "could not note topic %s in %s\n", name, path);
    close(fd);
}

void it_create_topic(const char *name, int partitions)
{
    rd_kafka_NewTopic_t *nt;
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    rd_kafka_event_t *ev;
    char errstr[512], max[24];

    conf = cs_kafka_conf_new(it_config(), NULL, errstr, sizeof(errstr));
    ck_assert_msg(conf != NULL, "%s", errstr);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    ck_assert_msg(rk != NULL, "%s", errstr);
    nt = rd_kafka_NewTopic_new(name, partitions, 1, errstr, sizeof(errstr));
    ck_assert_msg(nt != NULL, "%s", errstr);
    /* As casestream topics create makes them: the worker checks this at start. */
    snprintf(max, sizeof(max), "%ld", cs_kafka_message_max(it_config()));
    ck_assert_int_eq(rd_kafka_NewTopic_set_config(nt, "max.message.bytes", max), 0);
    q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    ev = rd_kafka_queue_poll(q, 30000);
    ck_assert_msg(ev != NULL, "kafka did not answer CreateTopics for %s", name);
    {
        size_t n;
        const rd_kafka_topic_result_t **tr =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);

        ck_assert_msg(!rd_kafka_event_error(ev), "create topic %s: %s", name,
                      rd_kafka_event_error_string(ev));
        ck_assert_msg(n == 1 && !rd_kafka_topic_result_error(tr[0]), "create topic %s: %s", name,
                      n ? rd_kafka_topic_result_error_string(tr[0]) : "no result");
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    note_created_topic(name);
    /* Wait until every partition has a leader that answers for its offsets,
     * so that a program started next finds the topic. */
    long long deadline = cs_now_ms() + 30000;
    bool ready = false;

    while (!ready && cs_now_ms() < deadline) {
        ready = cs_kafka_partition_count(rk, name, 5000, errstr, sizeof(errstr)) == partitions;
        for (int i = 0; ready && i < partitions; i++) {
            int64_t lo, hi;

            ready = rd_kafka_query_watermark_offsets(rk, name, i, &lo, &hi, 5000) ==
                    RD_KAFKA_RESP_ERR_NO_ERROR;
        }
        if (!ready)
            usleep(100 * 1000);
    }
    rd_kafka_destroy(rk);
    ck_assert_msg(ready, "topic %s not ready within 30 s", name);
}

void it_drop_created_topics(void)
{
    char path[256], name[512];
    size_t n = 0;
    FILE *f;

    if (!created_topics_path(path, sizeof(path)) || !(f = fopen(path, "r")))
        return;
    while (fgets(name, sizeof(name), f)) {
        name[strcspn(name, "\n")] = '\0';
        if (name[0]) {
            it_drop_topic(name);
            n++;
        }
    }
    fclose(f);
    unlink(path);
    fprintf(stderr, "integration tests: deleted the %zu topics they created\n", n);
}

void it_drop_topic(const char *name)
{
    char errstr[512];
    rd_kafka_conf_t *conf = cs_kafka_conf_new(it_config(), NULL, errstr, sizeof(errstr));
    rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(name);
    rd_kafka_queue_t *q;
    rd_kafka_event_t *ev;
    rd_kafka_t *rk;

    if (!conf || !(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)))) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        rd_kafka_DeleteTopic_destroy(dt);
        return;
    }
    q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopics(rk, &dt, 1, NULL, q);
    if ((ev = rd_kafka_queue_poll(q, 10000)))
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteTopic_destroy(dt);
    rd_kafka_destroy(rk);
}

static rd_kafka_t *test_producer(void)
{
    static rd_kafka_t *rk;
    char errstr[512];

    if (!rk) {
        rd_kafka_conf_t *conf = cs_kafka_conf_new(it_config(), NULL, errstr, sizeof(errstr));

        ck_assert_msg(conf != NULL, "%s", errstr);
        rk = cs_kafka_producer_new(it_config(), conf, CS_KAFKA_SEND_GATHERED, errstr,
                                   sizeof(errstr));
        ck_assert_msg(rk != NULL, "%s", errstr);
    }
    return rk;
}

void it_produce(const char *topic, const char *key, const char *value, size_t len)
{
    rd_kafka_t *rk = test_producer();
    rd_kafka_resp_err_t err;

    err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                            RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_END);
    ck_assert_msg(!err, "produce to %s: %s", topic, rd_kafka_err2str(err));
    ck_assert_msg(rd_kafka_flush(rk, 30000) == RD_KAFKA_RESP_ERR_NO_ERROR,
                  "produce to %s: not delivered within 30 s", topic);
}

static rd_kafka_t *test_consumer(const char *topic, int *partitions)
{
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    char errstr[512];
    char *group = it_unique("it-reader");
    const char *const defaults[] = {
        "group.id", group, "enable.auto.commit", "false", "auto.offset.reset", "earliest", NULL};
    rd_kafka_topic_partition_list_t *parts;
    int n;

    conf = cs_kafka_conf_new(it_config(), defaults, errstr, sizeof(errstr));
    free(group);
    ck_assert_msg(conf != NULL, "%s", errstr);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    ck_assert_msg(rk != NULL, "%s", errstr);
    n = cs_kafka_partition_count(rk, topic, 10000, errstr, sizeof(errstr));
    ck_assert_msg(n > 0, "kafka: %s", errstr);
    parts = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++)
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    *partitions = n;
    return rk;
}

size_t it_consume(const char *topic, size_t want, int timeout_ms, it_msg **out)
{
    int partitions;
    rd_kafka_t *rk = test_consumer(topic, &partitions);
    long long deadline = cs_now_ms() + timeout_ms;
    size_t n = 0, cap = want ? want : 16;
    it_msg *msgs = calloc(cap, sizeof(*msgs));

    while (n < want && cs_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        rd_kafka_headers_t *hdrs;
        const void *hv;
        size_t hlen;

        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (n == cap)
            msgs = realloc(msgs, (cap *= 2) * sizeof(*msgs));
        memset(&msgs[n], 0, sizeof(msgs[n]));
        msgs[n].key = m->key ? strndup(m->key, m->key_len) : NULL;
        msgs[n].value = m->payload ? strndup(m->payload, m->len) : strdup("");
        msgs[n].len = m->len;
        msgs[n].partition = m->partition;
        msgs[n].offset = m->offset;
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            rd_kafka_header_get_last(hdrs, "error", &hv, &hlen) == RD_KAFKA_RESP_ERR_NO_ERROR)
            msgs[n].error = strndup(hv, hlen);
        n++;
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    *out = msgs;
    return n;
}

void it_msgs_free(it_msg *msgs, size_t n)
{
    for (size_t i = 0; msgs && i < n; i++) {
        free(msgs[i].key);
        free(msgs[i].value);
        free(msgs[i].error);
    }
    free(msgs);
}

long long it_topic_end(const char *topic)
{
    int partitions;
    rd_kafka_t *rk = test_consumer(topic, &partitions);
    long long total = 0;

    for (int p = 0; p < partitions; p++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000);

        ck_assert_msg(!err, "watermarks of %s/%d: %s", topic, p, rd_kafka_err2str(err));
        total += hi;
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return total;
}

int it_wait_exit(pid_t pid, int timeout_ms)
{
    long long deadline = cs_now_ms() + timeout_ms;
    int status;

    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);

        if (r == pid)
            return exit_status(status);
        if (r < 0 || cs_now_ms() >= deadline)
            return -1;
        usleep(20 * 1000);
    }
}

void it_produce_async(const char *topic, const char *key, const char *value, size_t len)
{
    rd_kafka_t *rk = test_producer();
    rd_kafka_resp_err_t err;

    for (;;) {
        err =
            rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                              RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(rk, 50);
    }
    ck_assert_msg(!err, "produce to %s: %s", topic, rd_kafka_err2str(err));
    rd_kafka_poll(rk, 0);
}

void it_flush(void)
{
    ck_assert_msg(rd_kafka_flush(test_producer(), 60000) == RD_KAFKA_RESP_ERR_NO_ERROR,
                  "queued messages not delivered within 60 s");
}

void it_pg_reset(void)
{
    PQfinish(pg);
    pg = NULL;
}

long long it_group_committed(const char *group, const char *topic)
{
    const char *const defaults[] = {"group.id", group, "enable.auto.commit", "false", NULL};
    rd_kafka_topic_partition_list_t *parts;
    rd_kafka_conf_t *conf;
    rd_kafka_resp_err_t err;
    rd_kafka_t *rk;
    char errstr[512];
    long long total = 0;
    int n;

    conf = cs_kafka_conf_new(it_config(), defaults, errstr, sizeof(errstr));
    ck_assert_msg(conf != NULL, "%s", errstr);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    ck_assert_msg(rk != NULL, "%s", errstr);
    n = cs_kafka_partition_count(rk, topic, 10000, errstr, sizeof(errstr));
    ck_assert_msg(n > 0, "kafka: %s", errstr);
    parts = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++)
        rd_kafka_topic_partition_list_add(parts, topic, p);
    err = rd_kafka_committed(rk, parts, 10000);
    ck_assert_msg(!err, "committed offsets of %s on %s: %s", group, topic, rd_kafka_err2str(err));
    for (int p = 0; p < parts->cnt; p++)
        if (parts->elems[p].offset > 0)
            total += parts->elems[p].offset;
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_destroy(rk);
    return total;
}

void it_es_drop(const char *name)
{
    char errstr[512], path[400];
    cs_es *es = cs_es_new(it_config()->es, 30000, errstr, sizeof(errstr));
    char **names = NULL;
    size_t n = 0;
    bool is_alias;

    if (!es)
        return;
    if (cs_es_resolve(es, name, &names, &n, &is_alias, errstr, sizeof(errstr)) == 0) {
        for (size_t i = 0; i < n; i++) {
            cs_es_response r = CS_ES_RESPONSE_INIT;

            snprintf(path, sizeof(path), "/%s", names[i]);
            if (cs_es_request(es, "DELETE", path, NULL, 0, &r, errstr, sizeof(errstr)) == 0)
                cs_es_response_clear(&r);
        }
    }
    cs_es_names_free(names, n);
    cs_es_free(es);
}

cs_es *it_es(void)
{
    static cs_es *es;
    char errstr[512];

    if (!es) {
        es = cs_es_new(it_config()->es, 30000, errstr, sizeof(errstr));
        ck_assert_msg(es != NULL, "%s", errstr);
    }
    return es;
}

json_t *it_es_json(const char *method, const char *path, const char *body, long *status)
{
    cs_es_response r = CS_ES_RESPONSE_INIT;
    char errstr[512];
    json_t *root;

    ck_assert_msg(cs_es_request(it_es(), method, path, body, body ? strlen(body) : 0, &r, errstr,
                                sizeof(errstr)) == CS_OK,
                  "elasticsearch is unreachable: %s", errstr);
    *status = r.status;
    root = json_loadb(r.body, r.len, 0, NULL);
    cs_es_response_clear(&r);
    return root;
}

long long it_es_count(const char *index, const char *query_fmt, ...)
{
    char path[400], body[2048], query[1024] = "{\"match_all\":{}}";
    long status;
    json_t *root;
    long long n;

    if (query_fmt) {
        va_list ap;

        va_start(ap, query_fmt);
        vsnprintf(query, sizeof(query), query_fmt, ap);
        va_end(ap);
    }
    snprintf(path, sizeof(path), "/%s/_refresh", index);
    json_decref(it_es_json("POST", path, NULL, &status));
    snprintf(path, sizeof(path), "/%s/_count", index);
    snprintf(body, sizeof(body), "{\"query\":%s}", query);
    root = it_es_json("POST", path, body, &status);
    n = status == 200 ? json_integer_value(json_object_get(root, "count")) : -1;
    json_decref(root);
    return n;
}

bool it_es_wait_count(const char *index, const char *query, long long want, int timeout_ms)
{
    long long deadline = cs_now_ms() + timeout_ms, n = -1;

    while (cs_now_ms() < deadline) {
        if ((n = it_es_count(index, "%s", query ? query : "{\"match_all\":{}}")) == want)
            return true;
        usleep(200 * 1000);
    }
    fprintf(stderr, "count of %s: %lld, want %lld\n", index, n, want);
    return false;
}

long it_http_get(int port, const char *path, char *buf, size_t size)
{
    char base[64], errstr[256];
    cs_es *http;
    cs_es_response r = CS_ES_RESPONSE_INIT;
    long status = 0;

    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    http = cs_es_new(base, 5000, errstr, sizeof(errstr));
    ck_assert_msg(http != NULL, "%s", errstr);
    buf[0] = '\0';
    if (cs_es_request(http, "GET", path, NULL, 0, &r, errstr, sizeof(errstr)) == CS_OK) {
        status = r.status;
        snprintf(buf, size, "%s", r.body ? r.body : "");
        cs_es_response_clear(&r);
    }
    cs_es_free(http);
    return status;
}

void it_pg_target(const char *conninfo, char *host, size_t size, int *port)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);

    ck_assert_msg(opts != NULL, "conninfo: %s", err ? err : "out of memory");
    snprintf(host, size, "127.0.0.1");
    *port = 5432;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (strcmp(o->keyword, "host") == 0 && o->val && o->val[0])
            snprintf(host, size, "%s", o->val);
        else if (strcmp(o->keyword, "port") == 0 && o->val && o->val[0])
            *port = atoi(o->val);
    }
    PQconninfoFree(opts);
}
