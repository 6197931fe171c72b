/* Integration tests of consumer flow: no partition stays paused after an outage and a rebalance.
 *
 * A program is cut off from its dependency by a proxy (tests/it_proxy.c) while it holds work
 * it cannot finish, so it pauses its partitions; a second member joins the group, which takes
 * partitions away and gives some back; then the dependency returns. Every message must then be
 * done within FLOW_RECOVERY_MS: a partition left paused by the first member never would be. */
#include "it_proxy.h"
#include "it_support.h"
#include "runner.h"

#include "err.h"
#include "es.h"
#include "murmur2.h"
#include "run.h"
#include "uuid.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Everything must be done this long after the dependency is back. */
#define FLOW_RECOVERY_MS 30000
/* Partitions of the test topics, and cases on each partition. */
#define FLOW_PARTITIONS    6
#define FLOW_PER_PARTITION 3
#define FLOW_CASES         (FLOW_PARTITIONS * FLOW_PER_PARTITION)
/* Updates per case sent while the dependency is down. */
#define FLOW_UPDATES 2
#define CASE_TYPE    "ItFlow"

/* --- helpers ------------------------------------------------------------------------------ */

/* A free TCP port on loopback for a program's /metrics. */
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

/* The value of the metric line "name value" in /metrics text, or -1. */
static long long metric(const char *text, const char *name)
{
    char pat[256];
    const char *p;

    snprintf(pat, sizeof(pat), "\n%s ", name);
    p = strstr(text, pat);
    return p ? atoll(p + strlen(pat)) : -1;
}

/* Waits until the program on port answers /healthz 200 and its gauges named stalled and lag are
 * 0: nothing left to do, nothing stuck. */
static void assert_settles(const char *who, int port, const char *stalled, const char *lag)
{
    long long deadline = cs_now_ms() + 20000;
    char health[1024], text[65536];
    long status = 0;
    long long s = -1, l = -1;

    while (cs_now_ms() < deadline) {
        status = it_http_get(port, "/healthz", health, sizeof(health));
        it_http_get(port, "/metrics", text, sizeof(text));
        s = metric(text, stalled);
        l = metric(text, lag);
        if (status == 200 && s == 0 && l == 0)
            return;
        usleep(200 * 1000);
    }
    ck_abort_msg("%s: /healthz %ld \"%s\", %s %lld, %s %lld", who, status, health, stalled, s, lag,
                 l);
}

/* Host and port of an http://host:port URL. */
static void url_target(const char *url, char *host, size_t size, int *port)
{
    char h[128];

    ck_assert_msg(sscanf(url, "http://%127[^:/]:%d", h, port) == 2,
                  "cannot proxy %s: not http://host:port", url);
    snprintf(host, size, "%s", h);
}

/* FLOW_PER_PARTITION new case references on each of partitions, in refs (FLOW_CASES long),
 * so that every partition has work when the dependency goes down. */
static void refs_on_every_partition(int64_t *refs, int partitions, int per_partition)
{
    int have[64] = {0}, n = 0;

    ck_assert_int_le(partitions, 64);
    while (n < partitions * per_partition) {
        int64_t r = it_new_ref();
        char key[24];
        int p;

        snprintf(key, sizeof(key), "%" PRId64, r);
        p = cs_murmur2_partition(key, strlen(key), partitions);
        if (have[p] < per_partition) {
            have[p]++;
            refs[n++] = r;
        }
    }
}

/* Milliseconds left until deadline, at least 1. */
static int left_ms(long long deadline)
{
    long long left = deadline - cs_now_ms();

    return left > 1 ? (int)left : 1;
}

/* --- the worker -------------------------------------------------------------------------- */

typedef struct sub {
    int64_t ref;
    char key[37];
    long long revision; /* the case_revision its outcome must carry */
} sub;

static struct {
    char *events, *results, *changes, *dlq, *group;
    const char *protocol; /* --group-protocol */
    sub subs[FLOW_CASES * (1 + FLOW_UPDATES)];
    size_t nsubs;
    int64_t lo, hi;
} W;

static pid_t worker_start(const char *pg, int metrics_port)
{
    char ev[256], re[256], ch[256], dl[256], gr[256], port[64], conninfo[1024], proto[64];
    const char *args[] = {ev, re, ch, dl, gr, port, conninfo, proto, "--appliers=2", NULL};

    snprintf(ev, sizeof(ev), "--topic-events=%s", W.events);
    snprintf(re, sizeof(re), "--topic-results=%s", W.results);
    snprintf(ch, sizeof(ch), "--topic-changes=%s", W.changes);
    snprintf(dl, sizeof(dl), "--topic-dlq=%s", W.dlq);
    snprintf(gr, sizeof(gr), "--group=%s", W.group);
    snprintf(port, sizeof(port), "--metrics-port=%d", metrics_port);
    snprintf(conninfo, sizeof(conninfo), "--pg=%s", pg);
    snprintf(proto, sizeof(proto), "--group-protocol=%s", W.protocol);
    return it_spawn("casestream-worker", args, NULL);
}

static void worker_stop(pid_t pid)
{
    int rc = it_stop(pid, SIGTERM, 30000);

    ck_assert_msg(rc == 0,
                  "worker %d: status %d on SIGTERM (see build/it-logs/casestream-worker-%d.log)",
                  (int)pid, rc, (int)pid);
}

/* Sends one submission of case ref: a create when revision is 1, else an update. */
static void send_sub(int64_t ref, long long revision)
{
    sub *s = &W.subs[W.nsubs++];
    char mkey[24];
    json_t *o;
    char *text;

    s->ref = ref;
    s->revision = revision;
    ck_assert_int_eq(cs_uuid_generate(s->key), 0);
    o = json_pack("{s:s, s:I, s:s, s:s, s:s}", "idempotency_key", s->key, "case_reference",
                  (json_int_t)ref, "case_type", CASE_TYPE, "event_id",
                  revision == 1 ? "create" : "step", "user_id", "it-flow");
    if (revision == 1) {
        json_object_set_new(o, "jurisdiction", json_string("IT"));
        json_object_set_new(o, "state", json_string("Open"));
        json_object_set_new(o, "data", json_pack("{s:I}", "n", (json_int_t)revision));
    } else {
        json_object_set_new(o, "data_merge", json_pack("{s:I}", "n", (json_int_t)revision));
    }
    text = json_dumps(o, JSON_COMPACT);
    snprintf(mkey, sizeof(mkey), "%" PRId64, ref);
    it_produce_async(W.events, mkey, text, strlen(text));
    free(text);
    json_decref(o);
}

static long long events_applied(void)
{
    return it_sql_int("SELECT count(*) FROM ccd.case_event WHERE case_reference BETWEEN %" PRId64
                      " AND %" PRId64,
                      W.lo, W.hi);
}

/* Every submission sent has exactly one outcome, "applied" at its revision: one per source
 * position (copies on the wire identical), one per submission. */
static void check_outcomes(long long deadline)
{
    it_msg *msgs = NULL;
    size_t n, *seen = calloc(W.nsubs, sizeof(*seen));
    json_t **by_sub = calloc(W.nsubs, sizeof(*by_sub));

    while (it_topic_end(W.results) < (long long)W.nsubs && cs_now_ms() < deadline)
        usleep(200 * 1000);
    n = it_consume(W.results, (size_t)it_topic_end(W.results), 30000, &msgs);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_loads(msgs[i].value, 0, NULL);
        const char *key = json_string_value(json_object_get(o, "idempotency_key"));
        size_t k;

        ck_assert_msg(o != NULL, "outcome is not JSON: %s", msgs[i].value);
        for (k = 0; k < W.nsubs; k++)
            if (key && strcmp(W.subs[k].key, key) == 0)
                break;
        ck_assert_msg(k < W.nsubs, "an outcome for a submission never sent: %s", msgs[i].value);
        ck_assert_msg(strcmp(json_string_value(json_object_get(o, "status")), "applied") == 0 &&
                          json_integer_value(json_object_get(o, "case_revision")) ==
                              W.subs[k].revision,
                      "case %" PRId64 " expected applied at revision %lld: %s", W.subs[k].ref,
                      W.subs[k].revision, msgs[i].value);
        if (by_sub[k]) {
            ck_assert_msg(json_equal(by_sub[k], o), "two different outcomes for key %s:\n %s",
                          W.subs[k].key, msgs[i].value);
            json_decref(o);
        } else {
            by_sub[k] = o;
        }
        seen[k]++;
    }
    for (size_t k = 0; k < W.nsubs; k++) {
        ck_assert_msg(seen[k] > 0,
                      "no outcome for case %" PRId64 " revision %lld within %d s of recovery (%zu "
                      "outcome messages for %zu submissions)",
                      W.subs[k].ref, W.subs[k].revision, FLOW_RECOVERY_MS / 1000, n, W.nsubs);
        json_decref(by_sub[k]);
    }
    it_msgs_free(msgs, n);
    free(seen);
    free(by_sub);
}

/* With the consumer protocol a rebalance is incremental: A keeps half of its partitions and
 * must receive again what it dropped of them; with the classic one (eager by default) it
 * gives up everything and gets half back. */
static void worker_rebalance_during_postgresql_outage(const char *protocol)
{
    int64_t refs[FLOW_CASES];
    char host[128], proxied[2048];
    int pg_port, port_a = free_port(), port_b = free_port();
    it_proxy *proxy;
    long long deadline, want;
    pid_t a, b;

    memset(&W, 0, sizeof(W));
    W.protocol = protocol;
    W.events = it_unique("it-flow-events");
    W.results = it_unique("it-flow-results");
    W.changes = it_unique("it-flow-changes");
    W.dlq = it_unique("it-flow-dlq");
    W.group = it_unique("it-flow-group");
    it_create_topic(W.events, FLOW_PARTITIONS);
    it_create_topic(W.results, 3);
    it_create_topic(W.changes, 3);
    it_create_topic(W.dlq, 1);
    refs_on_every_partition(refs, FLOW_PARTITIONS, FLOW_PER_PARTITION);
    W.lo = W.hi = refs[0];
    for (int i = 0; i < FLOW_CASES; i++) {
        W.lo = refs[i] < W.lo ? refs[i] : W.lo;
        W.hi = refs[i] > W.hi ? refs[i] : W.hi;
    }
    it_pg_target(it_config()->pg, host, sizeof(host), &pg_port);
    proxy = it_proxy_start(host, pg_port);
    /* libpq takes the last value of a repeated keyword. */
    snprintf(proxied, sizeof(proxied), "%s host=127.0.0.1 port=%d", it_config()->pg,
             it_proxy_port(proxy));

    /* A, cut off from PostgreSQL by the proxy, holds a batch it cannot commit... */
    a = worker_start(proxied, port_a);
    for (int i = 0; i < FLOW_CASES; i++)
        send_sub(refs[i], 1);
    it_flush();
    ck_assert_msg(it_wait_sql(FLOW_CASES, 60000,
                              "SELECT count(*) FROM ccd.case_event WHERE case_reference BETWEEN "
                              "%" PRId64 " AND %" PRId64,
                              W.lo, W.hi),
                  "the first worker applied %lld of %d creates", events_applied(), FLOW_CASES);
    it_proxy_drop(proxy);
    for (int k = 2; k <= 1 + FLOW_UPDATES; k++)
        for (int i = 0; i < FLOW_CASES; i++)
            send_sub(refs[i], k);
    it_flush();
    deadline = cs_now_ms() + 30000;
    while (cs_now_ms() < deadline) {
        char text[65536];

        if (it_http_get(port_a, "/metrics", text, sizeof(text)) == 200 &&
            metric(text, "casestream_worker_batch_retries_total") > 0)
            break;
        usleep(100 * 1000);
    }
    ck_assert_msg(cs_now_ms() < deadline, "the first worker never retried a batch");
    /* ...when B joins the group (B reaches PostgreSQL directly): the rebalance takes A's
     * partitions and gives half of them back. B applying something shows it has its half. */
    b = worker_start(it_config()->pg, port_b);
    ck_assert_msg(it_wait_sql(1, 60000,
                              "SELECT (count(*) > %d)::int FROM ccd.case_event WHERE "
                              "case_reference BETWEEN %" PRId64 " AND %" PRId64,
                              FLOW_CASES, W.lo, W.hi),
                  "the second worker applied nothing");
    it_proxy_restore(proxy);
    deadline = cs_now_ms() + FLOW_RECOVERY_MS;
    want = (long long)W.nsubs;
    ck_assert_msg(it_wait_sql(want, left_ms(deadline),
                              "SELECT count(*) FROM ccd.case_event WHERE case_reference BETWEEN "
                              "%" PRId64 " AND %" PRId64,
                              W.lo, W.hi),
                  "%lld of %lld submissions applied %d s after postgresql came back (see "
                  "build/it-logs/casestream-worker-%d.log)",
                  events_applied(), want, FLOW_RECOVERY_MS / 1000, (int)a);
    check_outcomes(deadline);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_data WHERE reference BETWEEN "
                                "%" PRId64 " AND %" PRId64 " AND case_revision = %d",
                                W.lo, W.hi, 1 + FLOW_UPDATES),
                     FLOW_CASES);
    assert_settles("worker A", port_a, "casestream_worker_stalled", "casestream_worker_lag");
    assert_settles("worker B", port_b, "casestream_worker_stalled", "casestream_worker_lag");
    worker_stop(b);
    worker_stop(a);
    ck_assert_int_eq(it_group_committed(W.group, W.events), it_topic_end(W.events));
    it_proxy_free(proxy);
    it_drop_topic(W.events);
    it_drop_topic(W.results);
    it_drop_topic(W.changes);
    it_drop_topic(W.dlq);
}

START_TEST(test_flow_worker_rebalance_during_postgresql_outage_leaves_no_partition_paused)
{
    worker_rebalance_during_postgresql_outage("consumer");
}
END_TEST

START_TEST(test_flow_worker_rebalance_with_the_classic_protocol_leaves_no_partition_paused)
{
    worker_rebalance_during_postgresql_outage("classic");
}
END_TEST

/* --- the indexer ------------------------------------------------------------------------- */

/* Documents of index at exactly revision rev (after a refresh); -1 when ES does not answer. */
static long long es_count_revision(const char *index, long long rev)
{
    char path[400], body[256], errstr[512];
    cs_es_response r = CS_ES_RESPONSE_INIT;
    long long n = -1;

    snprintf(path, sizeof(path), "/%s/_refresh", index);
    if (cs_es_request(it_es(), "POST", path, NULL, 0, &r, errstr, sizeof(errstr)) == CS_OK)
        cs_es_response_clear(&r);
    snprintf(path, sizeof(path), "/%s/_count", index);
    snprintf(body, sizeof(body), "{\"query\":{\"term\":{\"case_revision\":%lld}}}", rev);
    if (cs_es_request(it_es(), "POST", path, body, strlen(body), &r, errstr, sizeof(errstr)) ==
        CS_OK) {
        json_t *root = json_loadb(r.body, r.len, 0, NULL);

        if (r.status == 200)
            n = json_integer_value(json_object_get(root, "count"));
        json_decref(root);
        cs_es_response_clear(&r);
    }
    return n;
}

static bool wait_revision_count(const char *index, long long rev, long long want, int timeout_ms)
{
    long long deadline = cs_now_ms() + timeout_ms;

    do {
        if (es_count_revision(index, rev) == want)
            return true;
        usleep(200 * 1000);
    } while (cs_now_ms() < deadline);
    return false;
}

static pid_t indexer_start(const char *topic, const char *group, const char *es, int metrics_port)
{
    char t[300], g[300], e[300], port[64];
    const char *args[] = {t, g, e, port, "--bulk-linger-ms=50", NULL};

    snprintf(t, sizeof(t), "--topic-changes=%s", topic);
    snprintf(g, sizeof(g), "--indexer-group=%s", group);
    snprintf(e, sizeof(e), "--es=%s", es);
    snprintf(port, sizeof(port), "--metrics-port=%d", metrics_port);
    return it_spawn("casestream-indexer", args, NULL);
}

static void produce_changes(const char *topic, const char *type, const int64_t *refs, int n,
                            long long rev)
{
    for (int i = 0; i < n; i++) {
        char key[24], doc[1024];

        snprintf(key, sizeof(key), "%" PRId64, refs[i]);
        snprintf(doc, sizeof(doc),
                 "{\"id\":%" PRId64 ",\"reference\":%" PRId64 ",\"case_type_id\":\"%s\","
                 "\"jurisdiction\":\"IT\",\"state\":\"S%lld\",\"version\":%lld,"
                 "\"case_revision\":%lld,\"security_classification\":\"PUBLIC\","
                 "\"created_date\":\"2024-05-01T10:00:00.000\",\"last_modified\":"
                 "\"2024-05-01T10:00:00.000\",\"last_state_modified_date\":"
                 "\"2024-05-01T10:00:00.000\",\"data\":{\"n\":%lld},\"data_classification\":{},"
                 "\"supplementary_data\":{},\"notes\":[]}",
                 refs[i], refs[i], type, rev, rev, rev, rev);
        it_produce_async(topic, key, doc, strlen(doc));
    }
    it_flush();
}

START_TEST(test_flow_indexer_rebalance_during_elasticsearch_outage_leaves_no_partition_paused)
{
    enum { PARTS = 4, PER = 6, N = PARTS * PER };
    int64_t refs[N];
    char *topic = it_unique("it-flow-changes"), *group = it_unique("it-flow-indexer");
    char *type = it_unique("itflow"), index[300], host[128], proxied[256];
    char text[65536];
    int es_port, port_a = free_port(), port_b = free_port();
    it_proxy *proxy;
    long long deadline;
    pid_t a, b;

    ck_assert(cs_es_index_name(type, index, sizeof(index)));
    it_create_topic(topic, PARTS);
    refs_on_every_partition(refs, PARTS, PER);
    url_target(it_config()->es, host, sizeof(host), &es_port);
    proxy = it_proxy_start(host, es_port);
    snprintf(proxied, sizeof(proxied), "http://127.0.0.1:%d", it_proxy_port(proxy));

    /* A, cut off from Elasticsearch by the proxy, holds a bulk it cannot send... */
    produce_changes(topic, type, refs, N, 1);
    a = indexer_start(topic, group, proxied, port_a);
    ck_assert_msg(wait_revision_count(index, 1, N, 60000), "the first indexer did not index");
    it_proxy_drop(proxy);
    produce_changes(topic, type, refs, N, 2);
    deadline = cs_now_ms() + 30000;
    while (cs_now_ms() < deadline &&
           !(it_http_get(port_a, "/metrics", text, sizeof(text)) == 200 &&
             metric(text, "casestream_indexer_retries_total{kind=\"request\"}") > 0))
        usleep(100 * 1000);
    ck_assert_msg(cs_now_ms() < deadline, "the first indexer never retried a bulk");
    /* ...when B joins the group (B reaches Elasticsearch directly). B indexing something shows
     * it has its half. */
    b = indexer_start(topic, group, it_config()->es, port_b);
    deadline = cs_now_ms() + 60000;
    while (cs_now_ms() < deadline && es_count_revision(index, 2) < 1)
        usleep(200 * 1000);
    ck_assert_msg(es_count_revision(index, 2) >= 1, "the second indexer indexed nothing");
    it_proxy_restore(proxy);
    ck_assert_msg(wait_revision_count(index, 2, N, FLOW_RECOVERY_MS),
                  "%lld of %d documents at the current revision %d s after elasticsearch came "
                  "back (see build/it-logs/casestream-indexer-%d.log)",
                  es_count_revision(index, 2), N, FLOW_RECOVERY_MS / 1000, (int)a);
    assert_settles("indexer A", port_a, "casestream_indexer_stalled", "casestream_indexer_lag");
    assert_settles("indexer B", port_b, "casestream_indexer_stalled", "casestream_indexer_lag");
    ck_assert_int_eq(it_stop(b, SIGTERM, 60000), 0);
    ck_assert_int_eq(it_stop(a, SIGTERM, 60000), 0);
    ck_assert_int_eq(it_group_committed(group, topic), it_topic_end(topic));
    it_proxy_free(proxy);
    it_es_drop(index);
    it_drop_topic(topic);
    free(topic);
    free(group);
    free(type);
}
END_TEST

Suite *it_flow_suite(void)
{
    Suite *s = suite_create("it_flow");
    TCase *tc = tcase_create("rebalance_after_outage");

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc,
                   test_flow_worker_rebalance_during_postgresql_outage_leaves_no_partition_paused);
    tcase_add_test(tc,
                   test_flow_worker_rebalance_with_the_classic_protocol_leaves_no_partition_paused);
    tcase_add_test(
        tc, test_flow_indexer_rebalance_during_elasticsearch_outage_leaves_no_partition_paused);
    suite_add_tcase(s, tc);
    return s;
}
