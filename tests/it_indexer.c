/* Integration tests of casestream-indexer and reindex against the real Kafka, Elasticsearch,
 * PostgreSQL. */
#include "it_support.h"
#include "fault.h"
#include "runner.h"

#include "err.h"
#include "es.h"
#include "kafka.h"
#include "murmur2.h"
#include "run.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Every test gets its own topic, consumer group and case type (so its own index). */
typedef struct fixture {
    char *topic;
    char *group;
    char *type;
    char index[300];
    int metrics_port;
} fixture;

/* A free TCP port on loopback for the indexer's /metrics. */
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

static void fixture_new(fixture *f, int partitions)
{
    f->topic = it_unique("test-changes");
    f->group = it_unique("test-indexer");
    f->type = it_unique("itx");
    ck_assert(cs_es_index_name(f->type, f->index, sizeof(f->index)));
    f->metrics_port = free_port();
    it_create_topic(f->topic, partitions);
}

static void fixture_free(fixture *f)
{
    it_es_drop(f->index);
    free(f->topic);
    free(f->group);
    free(f->type);
}

/* Starts the indexer on the fixture's topic, group and metrics port, with
 * up to two extra arguments (NULL for none). */
static pid_t start_indexer(const fixture *f, const char *extra1, const char *extra2)
{
    char topic[300], group[300], port[64];
    const char *args[8];
    int n = 0;

    snprintf(topic, sizeof(topic), "--topic-changes=%s", f->topic);
    snprintf(group, sizeof(group), "--indexer-group=%s", f->group);
    snprintf(port, sizeof(port), "--metrics-port=%d", f->metrics_port);
    args[n++] = topic;
    args[n++] = group;
    args[n++] = port;
    args[n++] = "--bulk-linger-ms=50";
    if (extra1)
        args[n++] = extra1;
    if (extra2)
        args[n++] = extra2;
    args[n] = NULL;
    return it_spawn("casestream-indexer", args, NULL);
}

/* SIGTERM, and the indexer must drain and exit 0. */
static void stop_indexer(pid_t pid)
{
    ck_assert_int_eq(it_stop(pid, SIGTERM, 60000), 0);
}

/* The internal id of case ref in the change documents these tests make: another number than
 * the reference, as PostgreSQL's ids are, so that the tests see the _id is the id. */
#define DOC_ID(ref) ((int64_t)((ref)-1000000000000000000LL))

/* A change document (DESIGN §6). data is a JSON object text or NULL for {}. */
static char *change_doc(int64_t ref, const char *type, int64_t rev, const char *state,
                        const char *data, const char *extra)
{
    char *s = malloc(4096);

    snprintf(s, 4096,
             "{\"id\":%" PRId64 ",\"reference\":%" PRId64 ",\"jurisdiction\":\"IT\","
             "\"case_type_id\":\"%s\",\"state\":\"%s\",\"security_classification\":\"PUBLIC\","
             "\"created_date\":\"2024-05-01T10:00:00.000\","
             "\"last_modified\":\"2024-05-02T11:00:00.123\","
             "\"last_state_modified_date\":\"2024-05-02T11:00:00.123\",\"data\":%s,"
             "\"data_classification\":{},\"supplementary_data\":{},\"case_revision\":%" PRId64
             ",\"version\":%" PRId64 ",\"case_type\":\"%s\",\"notes\":[]%s%s}",
             DOC_ID(ref), ref, type, state, data ? data : "{}", rev, rev, type, extra ? "," : "",
             extra ? extra : "");
    return s;
}

static void produce_change(const fixture *f, int64_t ref, int64_t rev, const char *state,
                           const char *data, const char *extra)
{
    char key[32];
    char *doc = change_doc(ref, f->type, rev, state, data, extra);

    snprintf(key, sizeof(key), "%" PRId64, ref);
    it_produce(f->topic, key, doc, strlen(doc));
    free(doc);
}

/* case_revision of the document with _id id, or -1 when there is none. */
static long long es_revision_of(const fixture *f, int64_t id)
{
    char path[400];
    long status;
    json_t *root;
    long long rev = -1;

    snprintf(path, sizeof(path), "/%s/_doc/%" PRId64, f->index, id);
    root = it_es_json("GET", path, NULL, &status);
    if (status == 200)
        rev =
            json_integer_value(json_object_get(json_object_get(root, "_source"), "case_revision"));
    json_decref(root);
    return rev;
}

/* case_revision of the document of case ref as the tests' change documents make it. */
static long long es_revision(const fixture *f, int64_t ref)
{
    return es_revision_of(f, DOC_ID(ref));
}

/* The internal id PostgreSQL gave case ref. */
static int64_t pg_id(int64_t ref)
{
    return it_sql_int("SELECT id FROM ccd.case_data WHERE reference = %" PRId64, ref);
}

static bool wait_revision(const fixture *f, int64_t ref, long long rev, int timeout_ms)
{
    long long deadline = cs_now_ms() + timeout_ms;

    while (cs_now_ms() < deadline) {
        if (es_revision(f, ref) == rev)
            return true;
        usleep(100 * 1000);
    }
    return false;
}

/* GET of the indexer's own HTTP endpoint; returns the status, body in buf. */
static long indexer_get(const fixture *f, const char *path, char *buf, size_t size)
{
    char base[64], errstr[256];
    cs_es *http;
    cs_es_response r = CS_ES_RESPONSE_INIT;
    long status = 0;

    snprintf(base, sizeof(base), "http://127.0.0.1:%d", f->metrics_port);
    http = cs_es_new(base, 5000, errstr, sizeof(errstr));
    ck_assert_ptr_nonnull(http);
    buf[0] = '\0';
    if (cs_es_request(http, "GET", path, NULL, 0, &r, errstr, sizeof(errstr)) == CS_OK) {
        status = r.status;
        snprintf(buf, size, "%s", r.body);
        cs_es_response_clear(&r);
    }
    cs_es_free(http);
    return status;
}

/* The value of a metric line "name value" in /metrics text, or -1. */
static long long metric(const char *text, const char *name)
{
    char pat[256];
    const char *p;

    snprintf(pat, sizeof(pat), "\n%s ", name);
    p = strstr(text, pat);
    return p ? atoll(p + strlen(pat)) : -1;
}

static double metric_real(const char *text, const char *name)
{
    char pat[256];
    const char *p;

    snprintf(pat, sizeof(pat), "\n%s ", name);
    p = strstr(text, pat);
    return p ? atof(p + strlen(pat)) : -1;
}

/* Every partition's committed offset for the group equals its high watermark. */
static void assert_committed_at_end(const fixture *f)
{
    char errstr[512];
    const char *const defaults[] = {"group.id", f->group, NULL};
    rd_kafka_conf_t *conf = cs_kafka_conf_new(it_config(), defaults, errstr, sizeof(errstr));
    rd_kafka_t *rk;
    rd_kafka_topic_partition_list_t *list;
    rd_kafka_resp_err_t err;
    int n;

    ck_assert_msg(conf != NULL, "%s", errstr);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    ck_assert_msg(rk != NULL, "%s", errstr);
    n = cs_kafka_partition_count(rk, f->topic, 10000, errstr, sizeof(errstr));
    ck_assert_msg(n > 0, "%s", errstr);
    list = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++)
        rd_kafka_topic_partition_list_add(list, f->topic, p);
    err = rd_kafka_committed(rk, list, 10000);
    ck_assert_msg(!err, "committed offsets: %s", rd_kafka_err2str(err));
    for (int p = 0; p < n; p++) {
        int64_t lo, hi, committed = list->elems[p].offset;

        err = rd_kafka_query_watermark_offsets(rk, f->topic, p, &lo, &hi, 10000);
        ck_assert_msg(!err, "watermarks: %s", rd_kafka_err2str(err));
        if (hi == 0 && committed < 0)
            continue; /* an empty partition has nothing to commit */
        ck_assert_msg(committed == hi, "partition %d: committed %" PRId64 ", end %" PRId64, p,
                      committed, hi);
    }
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_destroy(rk);
}

/* Sum of the committed offsets of the group (partitions without one count 0). */
static long long committed_total(const fixture *f)
{
    char errstr[512];
    const char *const defaults[] = {"group.id", f->group, NULL};
    rd_kafka_conf_t *conf = cs_kafka_conf_new(it_config(), defaults, errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    rd_kafka_topic_partition_list_t *list;
    long long total = 0;
    int n;

    ck_assert_msg(rk != NULL, "%s", errstr);
    n = cs_kafka_partition_count(rk, f->topic, 10000, errstr, sizeof(errstr));
    list = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++)
        rd_kafka_topic_partition_list_add(list, f->topic, p);
    ck_assert(!rd_kafka_committed(rk, list, 10000));
    for (int p = 0; p < n; p++)
        if (list->elems[p].offset > 0)
            total += list->elems[p].offset;
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_destroy(rk);
    return total;
}

/* Starts Elasticsearch again in a session of its own. Check kills the
 * process group of a test when the test ends, and the daemon would otherwise
 * belong to it (it_stack runs the script in the test's group). */
static int start_es(void)
{
    int status = system("setsid -w scripts/stack.sh start es >>build/it-logs/stack.log 2>&1");

    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Waits for the child to exit by itself; returns its status or -1 on timeout. */
static int wait_exit(pid_t pid, int timeout_ms)
{
    long long deadline = cs_now_ms() + timeout_ms;
    int status;

    while (cs_now_ms() < deadline) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(50 * 1000);
    }
    return -1;
}

/* ---- 1. a late, older revision never wins ------------------------------------------------- */

START_TEST(test_indexer_older_revision_arriving_later_keeps_newer)
{
    fixture f;
    int64_t a = it_new_ref(), b = it_new_ref(), c = it_new_ref();
    char text[65536];
    pid_t pid;

    fixture_new(&f, 3);
    /* Case a: 7 then 5 land in the same bulk (the indexer is not running yet). */
    produce_change(&f, a, 7, "Seven", NULL, NULL);
    produce_change(&f, a, 5, "Five", NULL, NULL);
    pid = start_indexer(&f, NULL, NULL);
    ck_assert_msg(wait_revision(&f, a, 7, 60000), "case a never reached revision 7");
    /* Case b: 7 indexed first, then 5 arrives in a later bulk (a 409). */
    produce_change(&f, b, 7, "Seven", NULL, NULL);
    ck_assert(wait_revision(&f, b, 7, 30000));
    produce_change(&f, b, 5, "Five", NULL, NULL);
    produce_change(&f, c, 1, "Sentinel", NULL, NULL); /* after b's 5 in its partition or not */
    ck_assert(wait_revision(&f, c, 1, 30000));
    /* b's 5 is consumed before the test moves on: wait for its conflict. The counts of a bulk
     * are added once its slot's thread is joined, a moment after Elasticsearch answered (and
     * after c can be read): wait for them all. */
    long long deadline = cs_now_ms() + 30000;
    while (cs_now_ms() < deadline) {
        ck_assert_int_eq(indexer_get(&f, "/metrics", text, sizeof(text)), 200);
        if (metric(text, "casestream_indexer_conflicts_total") >= 1 &&
            metric(text, "casestream_indexer_superseded_total") >= 1 &&
            metric(text, "casestream_indexer_documents_indexed_total") >= 3)
            break;
        usleep(100 * 1000);
    }
    ck_assert_int_ge(metric(text, "casestream_indexer_conflicts_total"), 1);
    ck_assert_int_ge(metric(text, "casestream_indexer_superseded_total"), 1);
    ck_assert_int_ge(metric(text, "casestream_indexer_documents_indexed_total"), 3);
    ck_assert_ptr_nonnull(strstr(text, "casestream_indexer_bulk_seconds_bucket"));
    ck_assert_int_eq(indexer_get(&f, "/healthz", text, sizeof(text)), 200);
    ck_assert_int_eq(es_revision(&f, a), 7);
    ck_assert_int_eq(es_revision(&f, b), 7);
    ck_assert_int_eq(it_es_count(f.index, "{\"term\":{\"state\":\"Five\"}}"), 0);
    stop_indexer(pid);
    assert_committed_at_end(&f);
    fixture_free(&f);
}
END_TEST

/* ---- 2. Elasticsearch goes away mid-stream ------------------------------------------------ */

#define OUTAGE_CASES 40

START_TEST(test_indexer_survives_elasticsearch_outage_without_skipping)
{
    fixture f;
    int64_t refs[OUTAGE_CASES];
    char text[65536], query[128];
    pid_t pid;
    long long deadline;
    long status = 0;

    fixture_new(&f, 3);
    for (int i = 0; i < OUTAGE_CASES; i++)
        refs[i] = it_new_ref();
    for (int rev = 1; rev <= 2; rev++)
        for (int i = 0; i < OUTAGE_CASES; i++)
            produce_change(&f, refs[i], rev, "Before", NULL, NULL);
    pid = start_indexer(&f, NULL, NULL);
    ck_assert(it_es_wait_count(f.index, "{\"term\":{\"case_revision\":2}}", OUTAGE_CASES, 60000));

    ck_assert_msg(it_stack("stop es") == 0, "scripts/stack.sh stop es failed");
    for (int rev = 3; rev <= 5; rev++)
        for (int i = 0; i < OUTAGE_CASES; i++)
            produce_change(&f, refs[i], rev, rev == 5 ? "After" : "During", NULL, NULL);
    /* The indexer notices, reports unhealthy and backs off (paused). */
    deadline = cs_now_ms() + 30000;
    while (cs_now_ms() < deadline &&
           (status = indexer_get(&f, "/healthz", text, sizeof(text))) != 503)
        usleep(200 * 1000);
    ck_assert_msg(status == 503, "healthz during the outage: %ld %s", status, text);
    ck_assert_int_eq(indexer_get(&f, "/metrics", text, sizeof(text)), 200);
    ck_assert_int_ge(metric(text, "casestream_indexer_retries_total{kind=\"request\"}"), 1);
    ck_assert_int_eq(metric(text, "casestream_indexer_paused"), 1);
    /* SIGTERM while Elasticsearch is down: a bounded drain, exit 0, and
     * nothing committed past what Elasticsearch acknowledged. */
    long long t_stop = cs_now_ms();
    stop_indexer(pid);
    ck_assert_int_lt(cs_now_ms() - t_stop, 45000);
    ck_assert_int_le(committed_total(&f), 2 * OUTAGE_CASES);
    pid = start_indexer(&f, NULL, NULL);
    /* It is up, waiting for elasticsearch (template) before joining the group. */
    deadline = cs_now_ms() + 30000;
    while (cs_now_ms() < deadline &&
           (status = indexer_get(&f, "/healthz", text, sizeof(text))) != 503)
        usleep(100 * 1000);
    ck_assert_msg(status == 503, "healthz of an indexer started without elasticsearch: %ld %s",
                  status, text);

    ck_assert_msg(start_es() == 0, "scripts/stack.sh start es failed");
    snprintf(query, sizeof(query), "{\"term\":{\"case_revision\":5}}");
    ck_assert_msg(it_es_wait_count(f.index, query, OUTAGE_CASES, 180000),
                  "not every case converged to revision 5 after elasticsearch came back");
    ck_assert_int_eq(it_es_count(f.index, "{\"range\":{\"case_revision\":{\"lt\":5}}}"), 0);
    ck_assert_int_eq(it_es_count(f.index, "{\"term\":{\"state\":\"After\"}}"), OUTAGE_CASES);
    /* Ready again once its probes and its next bulk saw Elasticsearch back. */
    deadline = cs_now_ms() + 30000;
    while (cs_now_ms() < deadline &&
           (status = indexer_get(&f, "/healthz", text, sizeof(text))) != 200)
        usleep(100 * 1000);
    ck_assert_msg(status == 200, "healthz after elasticsearch came back: %ld %s", status, text);
    stop_indexer(pid);
    assert_committed_at_end(&f);
    fixture_free(&f);
}
END_TEST

/* ---- 3. documents the mapping refuses become dead letters ---------------------------------- */

START_TEST(test_indexer_mapping_conflicts_go_to_dead_letters_others_indexed)
{
    fixture f;
    int64_t bad_date = it_new_ref(), ok1 = it_new_ref(), obj = it_new_ref(), str = it_new_ref(),
            ok2 = it_new_ref(), unreadable = it_new_ref();
    char key[24];
    pid_t pid;

    fixture_new(&f, 1); /* one partition: one bulk, in this order */
    produce_change(&f, ok1, 1, "Open", NULL, NULL);
    produce_change(&f, bad_date, 1, "Open", NULL, "\"created_date\":\"not a date\"");
    produce_change(&f, obj, 1, "Open", "{\"x\":{\"a\":1}}", NULL);
    produce_change(&f, str, 1, "Open", "{\"x\":\"now a string\"}", NULL);
    produce_change(&f, ok2, 1, "Open", NULL, NULL);
    snprintf(key, sizeof(key), "%" PRId64, unreadable);
    it_produce(f.topic, key, "this is not json", 16);
    pid = start_indexer(&f, NULL, NULL);
    ck_assert(wait_revision(&f, ok1, 1, 60000));
    ck_assert(wait_revision(&f, obj, 1, 30000));
    ck_assert(wait_revision(&f, ok2, 1, 30000));
    ck_assert_msg(it_wait_sql(2, 30000,
                              "SELECT count(*) FROM ccd.index_dead_letter WHERE index_name = '%s'",
                              f.index),
                  "expected two dead letters for %s", f.index);
    ck_assert_int_eq(es_revision(&f, bad_date), -1);
    ck_assert_int_eq(es_revision(&f, str), -1);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.index_dead_letter WHERE reference = "
                                "%" PRId64 " AND case_revision = 1 AND reason LIKE "
                                "'%%created_date%%' AND document->>'created_date' = 'not a "
                                "date' AND kafka_topic = '%s' AND kafka_offset = 1",
                                bad_date, f.topic),
                     1);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.index_dead_letter WHERE reference = "
                                "%" PRId64 " AND reason LIKE '%%data.x%%' AND "
                                "document->'data'->>'x' = 'now a string'",
                                str),
                     1);
    /* The message that is not JSON at all is recorded too, as a string, with the reference
     * its key gives. */
    ck_assert_msg(it_wait_sql(1, 30000,
                              "SELECT count(*) FROM ccd.index_dead_letter WHERE kafka_topic = '%s'"
                              " AND reference = %" PRId64
                              " AND document #>> '{}' = 'this is not json'",
                              f.topic, unreadable),
                  "the unreadable message has no dead letter with its key's reference");
    stop_indexer(pid);
    assert_committed_at_end(&f);
    fixture_free(&f);
}
END_TEST

/* ---- 4. reindex from PostgreSQL -------------------------------------------------------------- */

#define REINDEX_CASES 30

static void run_reindex(const fixture *f, const char *out)
{
    char arg[300];
    const char *args[] = {"reindex", arg, NULL};

    snprintf(arg, sizeof(arg), "--case-type=%s", f->type);
    ck_assert_int_eq(it_run("casestream", args, NULL, out, NULL), 0);
}

static void assert_index_matches_database(const fixture *f, int64_t first)
{
    for (int i = 0; i < REINDEX_CASES; i++) {
        long long want = it_sql_int("SELECT case_revision FROM ccd.case_data WHERE reference = "
                                    "%" PRId64,
                                    first + i);

        ck_assert_int_eq(es_revision_of(f, pg_id(first + i)), want);
    }
    ck_assert_int_eq(it_es_count(f->index, NULL), REINDEX_CASES);
}

START_TEST(test_reindex_rebuilds_deleted_index_from_postgresql)
{
    fixture f;
    int64_t first = it_new_ref();
    char out[256], line[1024] = "", path[400];
    long status;
    FILE *fp;
    json_t *doc;

    for (int i = 1; i < REINDEX_CASES; i++)
        it_new_ref(); /* first .. first + REINDEX_CASES - 1 are ours */
    fixture_new(&f, 1);
    it_sql_int("INSERT INTO ccd.case_data (reference, case_type_id, jurisdiction, state, data,"
               " version, case_revision) SELECT %" PRId64 " + g, '%s', 'IT', 'Open',"
               " jsonb_build_object('n', g, 'applicant', jsonb_build_object('name', 'P' || g)),"
               " 1 + g %% 3, 1 + g %% 7 FROM generate_series(0, %d) g RETURNING 0",
               first, f.type, REINDEX_CASES - 1);
    it_sql_int("INSERT INTO ccd.case_notes (case_reference, author, body, case_revision) VALUES"
               " (%" PRId64 ", 'ann', 'first note', 1), (%" PRId64 ", 'bob', 'second note', 1)"
               " RETURNING 0",
               first, first);
    snprintf(out, sizeof(out), "build/it-logs/reindex-%d.out", (int)getpid());
    run_reindex(&f, out);
    assert_index_matches_database(&f, first);

    /* The live name is an alias of the versioned index reindex made. */
    snprintf(path, sizeof(path), "/_alias/%s", f.index);
    doc = it_es_json("GET", path, NULL, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_uint_eq(json_object_size(doc), 1);
    ck_assert_str_eq(json_object_iter_key(json_object_iter(doc)),
                     (snprintf(line, sizeof(line), "%s-000001", f.index), line));
    json_decref(doc);

    /* Deleted, then rebuilt. */
    it_es_drop(f.index);
    ck_assert_int_eq(es_revision_of(&f, pg_id(first)), -1);
    run_reindex(&f, out);
    assert_index_matches_database(&f, first);
    fp = fopen(out, "r");
    ck_assert_ptr_nonnull(fp);
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), fp));
    fclose(fp);
    ck_assert_msg(strstr(line, "30 cases read, 30 written"), "reindex said: %s", line);

    /* The documents are the change documents: notes in id order, data, types. */
    snprintf(path, sizeof(path), "/%s/_doc/%" PRId64, f.index, pg_id(first));
    doc = it_es_json("GET", path, NULL, &status);
    ck_assert_int_eq(status, 200);
    json_t *src = json_object_get(doc, "_source");
    ck_assert_str_eq(json_string_value(json_object_get(src, "case_type_id")), f.type);
    ck_assert_int_eq(json_integer_value(json_object_get(src, "reference")), first);
    ck_assert_str_eq(json_string_value(
                         json_object_get(json_array_get(json_object_get(src, "notes"), 1), "body")),
                     "second note");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_object_get(src, "data"), "applicant"), "name")),
                     "P0");
    json_decref(doc);

    /* Run again while the documents are there: same revisions, all "already newer". */
    run_reindex(&f, out);
    fp = fopen(out, "r");
    ck_assert_ptr_nonnull(fp);
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), fp));
    fclose(fp);
    ck_assert_msg(strstr(line, "30 cases read"), "reindex said: %s", line);
    assert_index_matches_database(&f, first);
    fixture_free(&f);
}
END_TEST

/* ---- 5. what the index is for: searching ------------------------------------------------------
 */

START_TEST(test_indexed_cases_are_searchable_by_state_type_data_and_notes)
{
    fixture f;
    int64_t r1 = it_new_ref(), r2 = it_new_ref(), r3 = it_new_ref();
    char q[1024];
    pid_t pid;

    fixture_new(&f, 3);
    produce_change(&f, r1, 1, "Submitted", "{\"applicant\":{\"name\":\"Zebedee Quux\"}}", NULL);
    produce_change(&f, r2, 1, "Closed", "{\"applicant\":{\"name\":\"Ann Other\"}}",
                   "\"ignored_extra\":1");
    produce_change(&f, r3, 2, "Submitted", "{\"applicant\":{\"name\":\"Bea Third\"}}", NULL);
    {
        char key[32];
        char *doc = change_doc(r3, f.type, 3, "Submitted",
                               "{\"applicant\":{\"name\":\"Bea Third\"}}", NULL);
        /* Replace the empty notes with two notes. */
        char *notes = strstr(doc, "\"notes\":[]");
        char full[8192];

        ck_assert_ptr_nonnull(notes);
        *notes = '\0';
        snprintf(full, sizeof(full),
                 "%s\"notes\":[{\"id\":1,\"author\":\"judge\",\"body\":\"The hearing was "
                 "adjourned until spring\",\"created_date\":\"2024-05-03T09:00:00Z\"},"
                 "{\"id\":2,\"author\":\"clerk\",\"body\":\"Bundle received\","
                 "\"created_date\":\"2024-05-04T09:00:00Z\"}]}",
                 doc);
        snprintf(key, sizeof(key), "%" PRId64, r3);
        it_produce(f.topic, key, full, strlen(full));
        free(doc);
    }
    pid = start_indexer(&f, NULL, NULL);
    ck_assert(wait_revision(&f, r3, 3, 60000));
    ck_assert(wait_revision(&f, r1, 1, 30000));
    ck_assert(wait_revision(&f, r2, 1, 30000));
    stop_indexer(pid);

    ck_assert_int_eq(it_es_count(f.index, "{\"term\":{\"state\":\"Submitted\"}}"), 2);
    /* CCD's state filter sends lower-case state ids; .keyword is the exact value. */
    ck_assert_int_eq(it_es_count(f.index, "{\"terms\":{\"state\":[\"submitted\"]}}"), 2);
    ck_assert_int_eq(it_es_count(f.index, "{\"term\":{\"state.keyword\":\"submitted\"}}"), 0);
    ck_assert_int_eq(it_es_count(f.index, "{\"term\":{\"state.keyword\":\"Submitted\"}}"), 2);
    ck_assert_int_eq(it_es_count(f.index, "{\"term\":{\"state\":\"Closed\"}}"), 1);
    /* By case type across every case index. */
    snprintf(q, sizeof(q), "{\"term\":{\"case_type_id\":\"%s\"}}", f.type);
    ck_assert_int_eq(it_es_count("*_cases", "%s", q), 3);
    ck_assert_int_eq(it_es_count(f.index, "{\"match\":{\"data.applicant.name\":\"zebedee\"}}"), 1);
    ck_assert_int_eq(it_es_count(f.index, "{\"match\":{\"notes.body\":\"adjourned\"}}"), 1);
    ck_assert_int_eq(it_es_count(f.index, "{\"term\":{\"notes.author\":\"clerk\"}}"), 1);
    ck_assert_int_eq(
        it_es_count(f.index, "{\"range\":{\"last_modified\":{\"gte\":\"2024-05-02\"}}}"), 3);
    assert_committed_at_end(&f);
    fixture_free(&f);
}
END_TEST

/* The refresh interval of the index behind f's alias, as Elasticsearch reports it ("" when it
 * has none of its own). */
static void refresh_interval(const fixture *f, char *buf, size_t size)
{
    char errstr[256], path[400];
    cs_es *es = cs_es_new(getenv("CASESTREAM_ES"), 5000, errstr, sizeof(errstr));
    cs_es_response r = CS_ES_RESPONSE_INIT;
    json_t *body, *index;
    const char *key;

    ck_assert_msg(es, "%s", errstr);
    snprintf(path, sizeof(path), "/%s/_settings", f->index);
    ck_assert_int_eq(cs_es_request(es, "GET", path, NULL, 0, &r, errstr, sizeof(errstr)), CS_OK);
    ck_assert_int_eq(r.status, 200);
    body = json_loadb(r.body, r.len, 0, NULL);
    ck_assert_ptr_nonnull(body);
    ck_assert_int_eq(json_object_size(body), 1);
    json_object_foreach(body, key, index)
    {
        const char *v = json_string_value(json_object_get(
            json_object_get(json_object_get(index, "settings"), "index"), "refresh_interval"));

        snprintf(buf, size, "%s", v ? v : "");
    }
    json_decref(body);
    cs_es_response_clear(&r);
    cs_es_free(es);
}

/* Indexes a new case's change with --refresh-ms=ms and asserts the index behind f's alias has
 * that refresh interval afterwards. */
static void index_with_refresh(const fixture *f, int ms)
{
    int64_t ref = it_new_ref();
    char flag[32], want[32], got[64];
    pid_t pid;

    snprintf(flag, sizeof(flag), "--refresh-ms=%d", ms);
    snprintf(want, sizeof(want), "%dms", ms);
    produce_change(f, ref, 1, "Submitted", "{}", NULL);
    pid = start_indexer(f, flag, NULL);
    ck_assert(wait_revision(f, ref, 1, 60000));
    stop_indexer(pid);
    refresh_interval(f, got, sizeof(got));
    ck_assert_str_eq(got, want);
}

/* --refresh-ms is the refresh interval of an index the indexer creates, and of one that was
 * there before it started. */
START_TEST(test_indexer_sets_the_refresh_interval_of_its_indices)
{
    fixture f;

    fixture_new(&f, 1);
    index_with_refresh(&f, 700);  /* creates the index */
    index_with_refresh(&f, 1500); /* finds it there */
    fixture_free(&f);
}
END_TEST

/* ---- a crash between the bulk and the commit loses and skips nothing ------------------------ */

START_TEST(test_indexer_crash_after_bulk_before_commit_redelivers)
{
    fixture f;
    int64_t refs[10];
    pid_t pid;

    fixture_new(&f, 2);
    for (int i = 0; i < 10; i++) {
        refs[i] = it_new_ref();
        produce_change(&f, refs[i], 3, "Open", NULL, NULL);
    }
    pid = start_indexer(&f, "--fault=after_bulk_before_commit", NULL);
    ck_assert_int_eq(wait_exit(pid, 60000), CS_EXIT_FAULT);
    /* The bulk reached Elasticsearch, but no offset was committed. */
    ck_assert_int_eq(committed_total(&f), 0);
    ck_assert_int_ge(it_es_count(f.index, NULL), 1);
    /* A new run without the fault gets everything again and commits. */
    produce_change(&f, refs[0], 4, "Open", NULL, NULL);
    pid = start_indexer(&f, NULL, NULL);
    ck_assert(wait_revision(&f, refs[0], 4, 60000));
    for (int i = 1; i < 10; i++)
        ck_assert(wait_revision(&f, refs[i], 3, 30000));
    stop_indexer(pid);
    assert_committed_at_end(&f);
    fixture_free(&f);
}
END_TEST

START_TEST(test_indexer_rejects_unknown_fault_point_as_configuration)
{
    const char *args[] = {"--fault=nowhere", NULL};

    ck_assert_int_eq(it_run("casestream-indexer", args, NULL, NULL, NULL), CS_EXIT_CONFIG);
}
END_TEST

/* ---- measurement: a bulk load of 50,000 changes --------------------------------------------- */

#define LOAD_DOCS 50000

START_TEST(test_indexer_bulk_load_50k_documents_per_second)
{
    fixture f;
    char errstr[512], key[32], data[512], text[65536];
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    int64_t first = it_new_ref();
    long long t0, t1, t2;
    pid_t pid;

    for (int i = 1; i < LOAD_DOCS; i++)
        it_new_ref();
    fixture_new(&f, 6);
    conf = cs_kafka_conf_new(it_config(), NULL, errstr, sizeof(errstr));
    ck_assert_msg(conf != NULL, "%s", errstr);
    rk = cs_kafka_producer_new(it_config(), conf, CS_KAFKA_SEND_GATHERED, errstr, sizeof(errstr));
    ck_assert_msg(rk != NULL, "%s", errstr);
    t0 = cs_now_ms();
    for (int i = 0; i < LOAD_DOCS; i++) {
        char *doc;

        snprintf(data, sizeof(data),
                 "{\"applicant\":{\"name\":\"Applicant %d\",\"address\":{\"line1\":\"%d High "
                 "Street\",\"postcode\":\"AB%d 1CD\"}},\"amount\":%d,\"flags\":{\"urgent\":%s},"
                 "\"summary\":\"case number %d of the bulk load measurement\"}",
                 i, i % 300, i % 90, i * 7, i % 2 ? "true" : "false", i);
        doc = change_doc(first + i, f.type, 1 + i % 4, i % 3 ? "Submitted" : "Open", data, NULL);
        snprintf(key, sizeof(key), "%" PRId64, first + i);
        while (rd_kafka_producev(
                   rk, RD_KAFKA_V_TOPIC(f.topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                   RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(doc, strlen(doc)),
                   RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
        rd_kafka_poll(rk, 0);
        free(doc);
    }
    ck_assert_int_eq(rd_kafka_flush(rk, 60000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);
    t1 = cs_now_ms();
    pid = start_indexer(&f, NULL, NULL);
    ck_assert(it_es_wait_count(f.index, NULL, LOAD_DOCS, 600000));
    t2 = cs_now_ms();
    ck_assert_int_eq(indexer_get(&f, "/metrics", text, sizeof(text)), 200);
    stop_indexer(pid);
    printf("indexer bulk load: %d change documents produced in %.1f s; indexed (start of "
           "casestream-indexer to a count of %d in the index) in %.1f s = %.0f documents/s; "
           "%lld bulk requests, mean %.0f ms each\n",
           LOAD_DOCS, (double)(t1 - t0) / 1000.0, LOAD_DOCS, (double)(t2 - t1) / 1000.0,
           LOAD_DOCS * 1000.0 / (double)(t2 - t1),
           metric(text, "casestream_indexer_bulk_seconds_count"),
           1000.0 * metric_real(text, "casestream_indexer_bulk_seconds_sum") /
               (double)metric(text, "casestream_indexer_bulk_seconds_count"));
    fflush(stdout);
    assert_committed_at_end(&f);
    fixture_free(&f);
}
END_TEST

/* ---- 9. several bulks in flight ----------------------------------------------------------- */

/* A new reference whose key (the reference in decimal) goes to partition p of n. */
static int64_t ref_on_partition(int p, int n)
{
    for (;;) {
        int64_t ref = it_new_ref();
        char key[32];

        snprintf(key, sizeof(key), "%" PRId64, ref);
        if (cs_murmur2_partition(key, strlen(key), n) == p)
            return ref;
    }
}

/* The group's committed offset of one partition (-1 when there is none). */
static int64_t committed_of(const fixture *f, int partition)
{
    char errstr[512];
    const char *const defaults[] = {"group.id", f->group, NULL};
    rd_kafka_conf_t *conf = cs_kafka_conf_new(it_config(), defaults, errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    rd_kafka_topic_partition_list_t *list;
    int64_t off;

    ck_assert_msg(rk != NULL, "%s", errstr);
    list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, f->topic, partition);
    ck_assert(!rd_kafka_committed(rk, list, 10000));
    off = list->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_destroy(rk);
    return off;
}

#define ORDER_CASES     24
#define ORDER_REVISIONS 12

/* Two bulks in flight at a time, small ones: each case's revisions still reach Elasticsearch in
 * order (a case's partition belongs to one slot, which has one bulk in flight), so no revision
 * is ever refused as older than the one in the index (no version conflicts), and every case
 * ends at its last revision. */
START_TEST(test_indexer_two_bulks_in_flight_keep_each_case_in_order)
{
    fixture f;
    int64_t refs[ORDER_CASES];
    char text[65536];
    long long deadline;
    pid_t pid;

    fixture_new(&f, 4);
    for (int i = 0; i < ORDER_CASES; i++)
        refs[i] = it_new_ref();
    pid = start_indexer(&f, "--bulk-docs=5", "--bulk-in-flight=2");
    for (int rev = 1; rev <= ORDER_REVISIONS; rev++) {
        for (int i = 0; i < ORDER_CASES; i++) {
            char key[32];
            char *doc = change_doc(refs[i], f.type, rev, rev == ORDER_REVISIONS ? "Last" : "Open",
                                   NULL, NULL);

            snprintf(key, sizeof(key), "%" PRId64, refs[i]);
            it_produce_async(f.topic, key, doc, strlen(doc));
            free(doc);
        }
        it_flush();
    }
    ck_assert_msg(it_es_wait_count(f.index, "{\"term\":{\"state\":\"Last\"}}", ORDER_CASES, 120000),
                  "not every case reached its last revision");
    ck_assert_int_eq(
        it_es_count(f.index, "{\"range\":{\"case_revision\":{\"lt\":%d}}}", ORDER_REVISIONS), 0);
    /* The counts of a bulk are added a moment after Elasticsearch answered it. */
    deadline = cs_now_ms() + 30000;
    do {
        ck_assert_int_eq(indexer_get(&f, "/metrics", text, sizeof(text)), 200);
        if (metric(text, "casestream_indexer_documents_indexed_total") +
                metric(text, "casestream_indexer_superseded_total") >=
            ORDER_CASES * ORDER_REVISIONS)
            break;
        usleep(100 * 1000);
    } while (cs_now_ms() < deadline);
    ck_assert_int_eq(metric(text, "casestream_indexer_conflicts_total"), 0);
    ck_assert_int_eq(metric(text, "casestream_indexer_documents_indexed_total") +
                         metric(text, "casestream_indexer_superseded_total"),
                     ORDER_CASES * ORDER_REVISIONS);
    /* Small bulks: many requests, so bulks of the two slots did overlap or follow each other. */
    ck_assert_int_ge(metric(text, "casestream_indexer_bulk_requests_total"), 4);
    stop_indexer(pid);
    assert_committed_at_end(&f);
    fixture_free(&f);
}
END_TEST

#define BLOCK_CASES 5

/* Elasticsearch refuses every write of one index (a write block: 403 items, retried), whose
 * changes are all on partition 1, while partition 0's changes go to another index: the failing
 * bulk is retried, and partition 1's committed offset never passes its first unacknowledged
 * change, whatever the other slot acknowledges. Once the block is lifted, everything is indexed
 * and committed. */
START_TEST(test_indexer_offsets_stay_behind_a_failing_bulk_of_other_partitions)
{
    fixture f;
    char *type_b = it_unique("itxb");
    char index_b[300], path[400], text[65536];
    int64_t a[BLOCK_CASES], b[BLOCK_CASES];
    long status = 0;
    json_t *r;
    pid_t pid;
    long long deadline;

    ck_assert(cs_es_index_name(type_b, index_b, sizeof(index_b)));
    fixture_new(&f, 2);
    for (int i = 0; i < BLOCK_CASES; i++) {
        a[i] = ref_on_partition(0, 2);
        b[i] = ref_on_partition(1, 2);
    }
    pid = start_indexer(&f, "--bulk-in-flight=2", NULL);
    /* The first change of partition 1 makes index B, which is then blocked. */
    {
        char key[32];
        char *doc = change_doc(b[0], type_b, 1, "Open", NULL, NULL);

        snprintf(key, sizeof(key), "%" PRId64, b[0]);
        it_produce(f.topic, key, doc, strlen(doc));
        free(doc);
    }
    ck_assert(it_es_wait_count(index_b, NULL, 1, 60000));
    snprintf(path, sizeof(path), "/%s/_settings", index_b);
    r = it_es_json("PUT", path, "{\"index.blocks.write\":true}", &status);
    json_decref(r);
    ck_assert_int_eq(status, 200);
    /* Partition 1 holds offset 0 (acknowledged); 1 to BLOCK_CASES - 1 cannot be written. */
    for (int i = 0; i < BLOCK_CASES; i++) {
        char key[32];
        char *doc;

        if (i > 0) {
            doc = change_doc(b[i], type_b, 1, "Open", NULL, NULL);
            snprintf(key, sizeof(key), "%" PRId64, b[i]);
            it_produce(f.topic, key, doc, strlen(doc));
            free(doc);
        }
        produce_change(&f, a[i], 1, "Open", NULL, NULL);
    }
    deadline = cs_now_ms() + 60000;
    while (cs_now_ms() < deadline) {
        ck_assert_int_eq(indexer_get(&f, "/metrics", text, sizeof(text)), 200);
        if (metric(text, "casestream_indexer_retries_total{kind=\"item\"}") >= 2)
            break;
        usleep(200 * 1000);
    }
    ck_assert_msg(metric(text, "casestream_indexer_retries_total{kind=\"item\"}") >= 2,
                  "the blocked index's writes were not retried");
    /* Past several auto-commit intervals (1 s) and retries. */
    sleep(4);
    ck_assert_int_le(committed_of(&f, 1), 1);
    ck_assert_int_eq(it_es_count(index_b, NULL), 1);
    r = it_es_json("PUT", path, "{\"index.blocks.write\":false}", &status);
    json_decref(r);
    ck_assert_int_eq(status, 200);
    ck_assert_msg(it_es_wait_count(index_b, NULL, BLOCK_CASES, 120000),
                  "partition 1's changes were not indexed once the block was lifted");
    ck_assert_msg(it_es_wait_count(f.index, NULL, BLOCK_CASES, 120000),
                  "partition 0's changes were not indexed");
    stop_indexer(pid);
    assert_committed_at_end(&f);
    it_es_drop(index_b);
    free(type_b);
    fixture_free(&f);
}
END_TEST

Suite *it_indexer_suite(void)
{
    Suite *s = suite_create("it_indexer");
    TCase *tc = tcase_create("indexer");
    TCase *outage = tcase_create("outage");
    TCase *load = tcase_create("load");

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_indexer_older_revision_arriving_later_keeps_newer);
    tcase_add_test(tc, test_indexer_mapping_conflicts_go_to_dead_letters_others_indexed);
    tcase_add_test(tc, test_reindex_rebuilds_deleted_index_from_postgresql);
    tcase_add_test(tc, test_indexed_cases_are_searchable_by_state_type_data_and_notes);
    tcase_add_test(tc, test_indexer_sets_the_refresh_interval_of_its_indices);
    tcase_add_test(tc, test_indexer_crash_after_bulk_before_commit_redelivers);
    tcase_add_test(tc, test_indexer_rejects_unknown_fault_point_as_configuration);
    tcase_add_test(tc, test_indexer_two_bulks_in_flight_keep_each_case_in_order);
    tcase_add_test(tc, test_indexer_offsets_stay_behind_a_failing_bulk_of_other_partitions);
    tcase_set_timeout(outage, 600);
    tcase_add_test(outage, test_indexer_survives_elasticsearch_outage_without_skipping);
    tcase_set_timeout(load, 900);
    tcase_add_test(load, test_indexer_bulk_load_50k_documents_per_second);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, outage);
    suite_add_tcase(s, load);
    return s;
}
