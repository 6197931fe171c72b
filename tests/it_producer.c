/* Integration tests of the producer against the real broker: Java partitions, the CLI, --wait. */
#include "it_support.h"
#include "runner.h"

#include "err.h"
#include "kafka.h"
#include "murmur2.h"
#include "producer.h"
#include "run.h"
#include "uuid.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define UUID_A "6f1c2b4e-7d1a-4c3e-9b2a-1f0e5d6c7b8a"

/* --- the Java table (tests/tools/Murmur2Partitions.java) --------------------- */

typedef struct java_row {
    unsigned char key[64];
    size_t len;
    int p12, p7;
} java_row;

static size_t load_java_rows(java_row *rows, size_t max)
{
    const char *dir = getenv("CASESTREAM_FIXTURES");
    char path[512], line[512], hex[160];
    size_t n = 0;
    long hash;
    FILE *f;

    snprintf(path, sizeof(path), "%s/murmur2/java_partitions.txt", dir ? dir : "tests/fixtures");
    ck_assert_msg((f = fopen(path, "r")) != NULL, "cannot open %s", path);
    while (fgets(line, sizeof(line), f) && n < max) {
        java_row *r = &rows[n];
        unsigned byte;

        if (line[0] == '#')
            continue;
        ck_assert_int_eq(sscanf(line, "%159s %ld %d %d", hex, &hash, &r->p12, &r->p7), 4);
        r->len = 0;
        for (size_t i = 0; strcmp(hex, "-") != 0 && hex[i] && hex[i + 1]; i += 2) {
            ck_assert_int_eq(sscanf(hex + i, "%2x", &byte), 1);
            r->key[r->len++] = (unsigned char)byte;
        }
        n++;
    }
    fclose(f);
    ck_assert_uint_ge(n, 40);
    return n;
}

/* Produces every key of the table with the settings of every casestream
 * producer (cs_kafka_producer_new: murmur2_random) and checks, by reading the
 * topic back, that each landed on the partition Java computed. */
static void check_java_partitions(int partitions)
{
    static java_row rows[128];
    size_t n = load_java_rows(rows, 128), got;
    char *topic = it_unique(partitions == 12 ? "test-producer-java12" : "test-producer-java7");
    char errstr[512], value[32];
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    it_msg *msgs;

    it_create_topic(topic, partitions);
    conf = cs_kafka_conf_new(it_config(), NULL, errstr, sizeof(errstr));
    ck_assert_msg(conf != NULL, "%s", errstr);
    rk = cs_kafka_producer_new(it_config(), conf, CS_KAFKA_SEND_GATHERED, errstr, sizeof(errstr));
    ck_assert_msg(rk != NULL, "%s", errstr);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t err;

        snprintf(value, sizeof(value), "row-%zu", i);
        /* The empty key is a real (non-null) empty key, as in Java. */
        err =
            rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(rows[i].key, rows[i].len),
                              RD_KAFKA_V_VALUE(value, strlen(value)),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        ck_assert_msg(!err, "produce: %s", rd_kafka_err2str(err));
    }
    ck_assert_msg(rd_kafka_flush(rk, 30000) == RD_KAFKA_RESP_ERR_NO_ERROR,
                  "not delivered within 30 s to %s", it_config()->brokers);
    rd_kafka_destroy(rk);

    got = it_consume(topic, n, 30000, &msgs);
    ck_assert_uint_eq(got, n);
    for (size_t i = 0; i < got; i++) {
        size_t row;
        int want;

        ck_assert_int_eq(sscanf(msgs[i].value, "row-%zu", &row), 1);
        ck_assert_uint_lt(row, n);
        want = partitions == 12 ? rows[row].p12 : rows[row].p7;
        ck_assert_msg(msgs[i].partition == want, "row %zu (%zu bytes): partition %d, java %d", row,
                      rows[row].len, msgs[i].partition, want);
        ck_assert_int_eq(cs_murmur2_partition(rows[row].key, rows[row].len, partitions), want);
    }
    it_msgs_free(msgs, got);
    it_drop_topic(topic);
    free(topic);
}

START_TEST(test_java_keys_land_on_java_partitions_of_12)
{
    check_java_partitions(12);
}
END_TEST

START_TEST(test_java_keys_land_on_java_partitions_of_7)
{
    check_java_partitions(7);
}
END_TEST

/* --- the C API ------------------------------------------------------------------ */

/* printf into a new string; the caller frees. */
__attribute__((format(printf, 1, 2))) static char *format(const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    s = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(s);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static char *submission(int64_t ref, const char *key)
{
    if (key)
        return format("{\"idempotency_key\":\"%s\",\"case_reference\":%" PRId64
                      ",\"case_type\":\"NFD\",\"event_id\":\"addNote\",\"user_id\":\"it\","
                      "\"notes\":[{\"author\":\"it\",\"body\":\"b\"}]}",
                      key, ref);
    return format("{\"case_reference\":%" PRId64 ",\"case_type\":\"NFD\","
                  "\"event_id\":\"addNote\",\"user_id\":\"it\"}",
                  ref);
}

START_TEST(test_api_submissions_land_on_java_partition_by_reference)
{
    static const int64_t refs[] = {1, 12, 1234567890123456LL, INT64_MAX};
    char *topic = it_unique("test-producer-api");
    cs_config cfg = *it_config();
    char errstr[512], key[37], *json;
    cs_producer_counts c;
    cs_producer *p;
    it_msg *msgs;
    size_t got;

    it_create_topic(topic, 12);
    cfg.topic_events = topic;
    p = cs_producer_new(&cfg, errstr, sizeof(errstr));
    ck_assert_msg(p != NULL, "%s", errstr);
    ck_assert_int_eq(cs_producer_check(p, 10000, errstr, sizeof(errstr)), 12);

    json = submission(5, NULL); /* no idempotency_key and gen_key is off */
    ck_assert_int_eq(cs_producer_submit(p, json, strlen(json), errstr, sizeof(errstr)),
                     CS_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(errstr, "idempotency_key"));
    free(json);
    for (size_t i = 0; i < 4; i++) {
        ck_assert_int_eq(cs_uuid_generate(key), 0);
        json = submission(refs[i], key);
        ck_assert_msg(cs_producer_submit(p, json, strlen(json), errstr, sizeof(errstr)) == 0, "%s",
                      errstr);
        free(json);
    }
    ck_assert_int_eq(cs_producer_flush(p, 30000), 0);
    cs_producer_get_counts(p, &c);
    ck_assert_uint_eq(c.sent, 4);
    ck_assert_uint_eq(c.delivered, 4);
    ck_assert_uint_eq(c.failed, 0);
    cs_producer_free(p);

    got = it_consume(topic, 4, 30000, &msgs);
    ck_assert_uint_eq(got, 4);
    for (size_t i = 0; i < got; i++) {
        json_t *v = json_loads(msgs[i].value, 0, NULL);
        char ref[24];

        ck_assert_ptr_nonnull(v);
        snprintf(ref, sizeof(ref), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(v, "case_reference")));
        ck_assert_str_eq(msgs[i].key, ref);
        ck_assert_int_eq(msgs[i].partition, cs_murmur2_partition(ref, strlen(ref), 12));
        json_decref(v);
    }
    it_msgs_free(msgs, got);
    it_drop_topic(topic);
    free(topic);
}
END_TEST

START_TEST(test_api_unreachable_broker_means_retry)
{
    cs_config cfg = *it_config();
    char errstr[512], *json = submission(77, UUID_A);
    long long deadline = cs_now_ms() + 15000;
    cs_producer *p;
    int rc = 0;

    cfg.brokers = "127.0.0.1:1";
    p = cs_producer_new(&cfg, errstr, sizeof(errstr));
    ck_assert_msg(p != NULL, "%s", errstr);
    ck_assert_int_eq(cs_producer_check(p, 1000, errstr, sizeof(errstr)), CS_ERR_RETRY);
    /* The first may be queued before the producer knows; then it must refuse. */
    while (cs_now_ms() < deadline &&
           (rc = cs_producer_submit(p, json, strlen(json), errstr, sizeof(errstr))) == 0)
        usleep(50 * 1000);
    ck_assert_int_eq(rc, CS_ERR_RETRY);
    ck_assert_msg(strstr(errstr, "127.0.0.1:1") != NULL, "%s", errstr);
    cs_producer_free(p);
    free(json);
}
END_TEST

/* --- a stand-in for the worker ------------------------------------------------- */

/* In a forked child: reads want submissions from events (from the start) and
 * writes an outcome for each onto results, as the worker would (DESIGN §4),
 * except for case skip_ref; the first outcome goes out twice, as at-least-once
 * delivery may do, and one outcome for a message nobody sent is added.
 * Exits 0 when done, 1 on error. */
static void fake_worker(const char *events, const char *results, size_t want, int64_t skip_ref)
{
    const cs_config *cfg = it_config();
    char errstr[512], group[64];
    const char *defaults[] = {"group.id", group, "enable.auto.commit", "false", NULL};
    rd_kafka_topic_partition_list_t *parts;
    rd_kafka_conf_t *conf;
    rd_kafka_t *in, *out;
    json_t *seen = json_object();
    long long deadline = cs_now_ms() + 30000;
    size_t n = 0;
    int np;

    snprintf(group, sizeof(group), "it-fake-worker-%d", (int)getpid());
    if (!(conf = cs_kafka_conf_new(cfg, defaults, errstr, sizeof(errstr))) ||
        !(in = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr))))
        _exit(1);
    if (!(conf = cs_kafka_conf_new(cfg, NULL, errstr, sizeof(errstr))) ||
        !(out = cs_kafka_producer_new(cfg, conf, CS_KAFKA_SEND_GATHERED, errstr, sizeof(errstr))))
        _exit(1);
    if ((np = cs_kafka_partition_count(in, events, 10000, errstr, sizeof(errstr))) < 1)
        _exit(1);
    parts = rd_kafka_topic_partition_list_new(np);
    for (int i = 0; i < np; i++)
        rd_kafka_topic_partition_list_add(parts, events, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(in, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    while (n < want && cs_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(in, 100);
        json_t *sub, *outcome;
        const char *key;
        char *text;
        int64_t ref;

        if (!m || m->err) {
            if (m)
                rd_kafka_message_destroy(m);
            continue;
        }
        n++;
        sub = json_loadb(m->payload, m->len, 0, NULL);
        key = json_string_value(json_object_get(sub, "idempotency_key"));
        ref = json_integer_value(json_object_get(sub, "case_reference"));
        if (ref != skip_ref && key) {
            bool dup = json_object_get(seen, key) != NULL;

            json_object_set_new(seen, key, json_true());
            outcome =
                json_pack("{s:s, s:I, s:s, s:i, s:i, s:I, s:I, s:n, s:{s:i, s:I}}",
                          "idempotency_key", key, "case_reference", (json_int_t)ref, "status",
                          dup ? "duplicate" : "applied", "code", dup ? 200 : 201, "version", 1,
                          "case_revision", (json_int_t)1, "event_seq", (json_int_t)n, "error",
                          "source", "partition", m->partition, "offset", (json_int_t)m->offset);
            text = json_dumps(outcome, JSON_COMPACT);
            for (int copies = n == 1 ? 2 : 1; copies > 0; copies--)
                rd_kafka_producev(out, RD_KAFKA_V_TOPIC(results),
                                  RD_KAFKA_V_KEY(m->key, m->key_len),
                                  RD_KAFKA_V_VALUE(text, strlen(text)),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            free(text);
            json_decref(outcome);
        }
        json_decref(sub);
        rd_kafka_message_destroy(m);
    }
    {
        const char *stray = "{\"idempotency_key\":\"" UUID_A "\",\"case_reference\":5,"
                            "\"status\":\"applied\",\"source\":{\"partition\":0,\"offset\":0}}";

        rd_kafka_producev(out, RD_KAFKA_V_TOPIC(results), RD_KAFKA_V_KEY("5", 1),
                          RD_KAFKA_V_VALUE((void *)stray, strlen(stray)),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    }
    rd_kafka_flush(out, 10000);
    rd_kafka_destroy(out);
    rd_kafka_consumer_close(in);
    rd_kafka_destroy(in);
    json_decref(seen);
    _exit(n == want ? 0 : 1);
}

static pid_t start_fake_worker(const char *events, const char *results, size_t want,
                               int64_t skip_ref)
{
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        fake_worker(events, results, want, skip_ref);
    return pid;
}

static int wait_child(pid_t pid)
{
    int status;

    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

START_TEST(test_api_submit_wait_returns_this_messages_outcome)
{
    char *events = it_unique("test-producer-wait-ev"),
         *results = it_unique("test-producer-wait-re");
    cs_config cfg = *it_config();
    char errstr[512], *json, *outcome = NULL;
    cs_outcome *o;
    int64_t ref = it_new_ref();
    cs_producer *p;
    pid_t worker;

    it_create_topic(events, 3);
    it_create_topic(results, 3);
    cfg.topic_events = events;
    cfg.topic_results = results;
    cfg.gen_key = true;
    /* Fork before this process has librdkafka threads whose locks the child
     * could inherit held. */
    worker = start_fake_worker(events, results, 1, 0);
    p = cs_producer_new(&cfg, errstr, sizeof(errstr));
    ck_assert_msg(p != NULL, "%s", errstr);
    json = submission(ref, NULL); /* gen_key fills the key in */
    ck_assert_msg(cs_producer_submit_wait(p, json, strlen(json), 20000, &outcome, errstr,
                                          sizeof(errstr)) == 0,
                  "%s", errstr);
    free(json);
    ck_assert_int_eq(cs_outcome_parse(outcome, strlen(outcome), &o), 0);
    ck_assert(o->case_reference == ref);
    ck_assert_str_eq(cs_status_name(o->status), "applied");
    ck_assert_int_ge(o->source_partition, 0);
    cs_outcome_free(o);
    free(outcome);
    ck_assert_int_eq(wait_child(worker), 0);

    /* Nobody answers now: a timeout, reported as retryable. */
    json = submission(ref + 1, UUID_A);
    ck_assert_int_eq(
        cs_producer_submit_wait(p, json, strlen(json), 1500, &outcome, errstr, sizeof(errstr)),
        CS_ERR_RETRY);
    ck_assert_ptr_null(outcome);
    ck_assert_msg(strstr(errstr, "no outcome") != NULL, "%s", errstr);
    free(json);
    cs_producer_free(p);
    it_drop_topic(events);
    free(events);
    it_drop_topic(results);
    free(results);
}
END_TEST

/* --- the program ------------------------------------------------------------------ */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static bool has_line_report(const char *err, const char *path, int line)
{
    char want[600];

    snprintf(want, sizeof(want), "%s:%d: ", path, line);
    return strstr(err, want) != NULL;
}

START_TEST(test_cli_reports_bad_lines_and_sends_only_valid_ones)
{
    char *topic = it_unique("test-producer-cli");
    char in[256], out[256], err[256], flag[300], *text, *errs, refs[3][24];
    int64_t base = it_new_ref();
    it_msg *msgs;
    size_t got;
    int valid_lines[] = {1, 3, 6};

    snprintf(in, sizeof(in), "build/it-logs/%s.ndjson", topic);
    snprintf(out, sizeof(out), "build/it-logs/%s.out", topic);
    snprintf(err, sizeof(err), "build/it-logs/%s.err", topic);
    snprintf(flag, sizeof(flag), "--topic-events=%s", topic);
    for (int i = 0; i < 3; i++)
        snprintf(refs[i], sizeof(refs[i]), "%" PRId64, base + i);
    text = format("{\"idempotency_key\":\"%s\",\"case_reference\":%s,"
                  "\"case_type\":\"NFD\",\"event_id\":\"e\",\"user_id\":\"u\"}\n"
                  "this is not json\n"
                  "{\"idempotency_key\":\"%s\",\"case_reference\":%s,"
                  "\"case_type\":\"NFD\",\"event_id\":\"e\",\"user_id\":\"u\"}\n"
                  "{\"case_reference\":%s,\"case_type\":\"NFD\",\"event_id\":\"e\","
                  "\"user_id\":\"u\"}\n"
                  "\n"
                  "{\"idempotency_key\":\"%s\",\"case_reference\":\"%s\","
                  "\"case_type\":\"NFD\",\"event_id\":\"e\",\"user_id\":\"u\"}\n"
                  "{\"idempotency_key\":\"%s\",\"case_reference\":-4,"
                  "\"case_type\":\"NFD\",\"event_id\":\"e\",\"user_id\":\"u\"}\n"
                  "[\"an\",\"array\"]\n",
                  UUID_A, refs[0], UUID_A, refs[1], refs[0], UUID_A, refs[2], UUID_A);
    mkdir("build/it-logs", 0755);
    write_file(in, text);
    free(text);
    it_create_topic(topic, 12);

    /* --dry-run validates the same way and sends nothing. */
    {
        const char *args[] = {flag, "--dry-run", in, NULL};

        ck_assert_int_eq(it_run("casestream-produce", args, NULL, out, err), 1);
        ck_assert_int_eq(it_topic_end(topic), 0);
    }
    {
        const char *args[] = {flag, in, NULL};

        ck_assert_int_eq(it_run("casestream-produce", args, NULL, out, err), 1);
    }
    errs = it_read_file(err);
    for (int line = 1; line <= 8; line++) {
        bool valid = line == 1 || line == 3 || line == 5 || line == 6;

        ck_assert_msg(has_line_report(errs, in, line) == !valid, "line %d: stderr: %s", line, errs);
    }
    ck_assert_msg(strstr(errs, "read=7 invalid=4 sent=3 delivered=3 failed=0"), "stderr: %s", errs);
    free(errs);

    ck_assert_int_eq(it_topic_end(topic), 3);
    got = it_consume(topic, 3, 30000, &msgs);
    ck_assert_uint_eq(got, 3);
    for (size_t i = 0; i < got; i++) {
        int which = -1;

        for (int j = 0; j < 3; j++)
            if (strcmp(msgs[i].key, refs[j]) == 0)
                which = j;
        ck_assert_msg(which >= 0, "unexpected key %s (valid lines %d %d %d)", msgs[i].key,
                      valid_lines[0], valid_lines[1], valid_lines[2]);
        ck_assert_ptr_nonnull(strstr(msgs[i].value, refs[which]));
        ck_assert_int_eq(msgs[i].partition,
                         cs_murmur2_partition(msgs[i].key, strlen(msgs[i].key), 12));
    }
    it_msgs_free(msgs, got);
    it_drop_topic(topic);
    free(topic);
}
END_TEST

START_TEST(test_cli_gen_key_adds_idempotency_key)
{
    char *topic = it_unique("test-producer-genkey");
    char in[256], out[256], err[256], flag[300], line[256], rest[256];
    const char *args[] = {flag, "--gen-key", in, NULL};
    int64_t ref = it_new_ref();
    json_t *v;
    it_msg *msgs;

    snprintf(in, sizeof(in), "build/it-logs/%s.ndjson", topic);
    snprintf(out, sizeof(out), "build/it-logs/%s.out", topic);
    snprintf(err, sizeof(err), "build/it-logs/%s.err", topic);
    snprintf(flag, sizeof(flag), "--topic-events=%s", topic);
    snprintf(line, sizeof(line),
             "{\"case_reference\":%" PRId64 ",\"case_type\":\"NFD\",\"event_id\":\"e\","
             "\"user_id\":\"u\",\"data_merge\":{\"x\":1.50}}\n",
             ref);
    mkdir("build/it-logs", 0755);
    write_file(in, line);
    it_create_topic(topic, 12);
    ck_assert_int_eq(it_run("casestream-produce", args, NULL, out, err), 0);
    ck_assert_uint_eq(it_consume(topic, 1, 30000, &msgs), 1);
    v = json_loads(msgs[0].value, 0, NULL);
    ck_assert_ptr_nonnull(v);
    ck_assert(cs_uuid_parse(json_string_value(json_object_get(v, "idempotency_key")), NULL));
    /* The rest of the line is sent byte for byte. */
    snprintf(rest, sizeof(rest), "%s", line + 1);
    rest[strcspn(rest, "\n")] = '\0';
    ck_assert_msg(strstr(msgs[0].value, rest) != NULL, "sent: %s", msgs[0].value);
    json_decref(v);
    it_msgs_free(msgs, 1);
    it_drop_topic(topic);
    free(topic);
}
END_TEST

START_TEST(test_cli_unreachable_broker_fails)
{
    char out[] = "build/it-logs/unreachable.out", err[] = "build/it-logs/unreachable.err";
    char in[] = "build/it-logs/unreachable.ndjson", *line = submission(1, UUID_A), *errs;
    const char *args[] = {"--brokers=127.0.0.1:1", in, NULL};

    mkdir("build/it-logs", 0755);
    write_file(in, line);
    free(line);
    ck_assert_int_eq(it_run("casestream-produce", args, NULL, out, err), 1);
    errs = it_read_file(err);
    ck_assert_msg(strstr(errs, "could not reach kafka at 127.0.0.1:1"), "stderr: %s", errs);
    free(errs);
}
END_TEST

START_TEST(test_cli_wait_prints_one_outcome_per_sent_message)
{
    char *events = it_unique("test-producer-cliwait-ev");
    char *results = it_unique("test-producer-cliwait-re");
    char in[256], out[256], err[256], ev_flag[300], re_flag[300], *text, *outs, *errs, *save;
    const char *args[] = {ev_flag, re_flag, "--gen-key", "--wait=6", in, NULL};
    int64_t ref = it_new_ref();
    const char *status[4] = {"applied", "duplicate", "applied", "timeout"};
    long long offsets[2] = {-1, -1};
    pid_t worker;
    int n = 0;

    snprintf(in, sizeof(in), "build/it-logs/%s.ndjson", events);
    snprintf(out, sizeof(out), "build/it-logs/%s.out", events);
    snprintf(err, sizeof(err), "build/it-logs/%s.err", events);
    snprintf(ev_flag, sizeof(ev_flag), "--topic-events=%s", events);
    snprintf(re_flag, sizeof(re_flag), "--topic-results=%s", results);
    /* The same key twice (a deliberate duplicate), a generated key, and a case
     * the fake worker never answers. */
    text = format("{\"idempotency_key\":\"%s\",\"case_reference\":%" PRId64
                  ",\"case_type\":\"NFD\",\"event_id\":\"e\",\"user_id\":\"u\"}\n"
                  "{\"idempotency_key\":\"%s\",\"case_reference\":%" PRId64
                  ",\"case_type\":\"NFD\",\"event_id\":\"e\",\"user_id\":\"u\"}\n"
                  "{\"case_reference\":%" PRId64
                  ",\"case_type\":\"NFD\",\"event_id\":\"e\",\"user_id\":\"u\"}\n"
                  "{\"idempotency_key\":\"%s\",\"case_reference\":%" PRId64
                  ",\"case_type\":\"NFD\",\"event_id\":\"e\",\"user_id\":\"u\"}\n",
                  UUID_A, ref, UUID_A, ref, ref + 1, UUID_A, ref + 2);
    mkdir("build/it-logs", 0755);
    write_file(in, text);
    free(text);
    it_create_topic(events, 12);
    it_create_topic(results, 12);
    worker = start_fake_worker(events, results, 4, ref + 2);
    ck_assert_int_eq(it_run("casestream-produce", args, NULL, out, err), 2);
    ck_assert_int_eq(wait_child(worker), 0);

    outs = it_read_file(out);
    for (char *l = strtok_r(outs, "\n", &save); l; l = strtok_r(NULL, "\n", &save), n++) {
        cs_outcome *o;

        ck_assert_int_lt(n, 4);
        if (n == 3) {
            /* The CLI's own line for the message nobody answered (not an outcome). */
            char want[160];

            snprintf(want, sizeof(want),
                     "{\"case_reference\":%" PRId64
                     ",\"idempotency_key\":\"%s\",\"status\":\"timeout\"}",
                     ref + 2, UUID_A);
            ck_assert_str_eq(l, want);
            continue;
        }
        ck_assert_msg(cs_outcome_parse(l, strlen(l), &o) == 0, "line %d: %s", n + 1, l);
        ck_assert_msg(strcmp(cs_status_name(o->status), status[n]) == 0, "line %d: %s", n + 1, l);
        ck_assert(o->case_reference == ref + (n == 2 ? 1 : 0));
        if (n < 2) {
            ck_assert_str_eq(o->idempotency_key, UUID_A);
            offsets[n] = o->source_offset;
        }
        cs_outcome_free(o);
    }
    ck_assert_int_eq(n, 4);
    /* Each copy of the duplicated key got the outcome of its own message. */
    ck_assert(offsets[0] != offsets[1]);
    free(outs);
    errs = it_read_file(err);
    ck_assert_msg(strstr(errs, "outcomes: applied=2 duplicate=1 timeout=1"), "stderr: %s", errs);
    free(errs);
    it_drop_topic(events);
    free(events);
    it_drop_topic(results);
    free(results);
}
END_TEST

START_TEST(test_cli_sends_100000_lines_quickly)
{
    enum { LINES = 100000 };
    char *topic = it_unique("test-producer-100k");
    char in[256], out[256], err[256], flag[300], *errs, *summary;
    const char *args[] = {flag, in, NULL};
    int64_t base = it_new_ref();
    long long start_us;
    double secs;
    FILE *f;

    snprintf(in, sizeof(in), "build/it-logs/%s.ndjson", topic);
    snprintf(out, sizeof(out), "build/it-logs/%s.out", topic);
    snprintf(err, sizeof(err), "build/it-logs/%s.err", topic);
    snprintf(flag, sizeof(flag), "--topic-events=%s", topic);
    mkdir("build/it-logs", 0755);
    ck_assert_ptr_nonnull(f = fopen(in, "w"));
    for (int i = 0; i < LINES; i++)
        fprintf(f,
                "{\"idempotency_key\":\"00000000-0000-4000-8000-%012d\",\"case_reference\":%" PRId64
                ",\"case_type\":\"NFD\",\"event_id\":\"addNote\",\"user_id\":\"load\","
                "\"notes\":[{\"author\":\"load\",\"body\":\"note %d\"}]}\n",
                i, base + i % 5000, i);
    fclose(f);
    it_create_topic(topic, 12);

    start_us = cs_now_us();
    ck_assert_int_eq(it_run("casestream-produce", args, NULL, out, err), 0);
    secs = (double)(cs_now_us() - start_us) / 1e6;
    ck_assert_int_eq(it_topic_end(topic), LINES);
    errs = it_read_file(err);
    summary = strstr(errs, "read=");
    ck_assert_ptr_nonnull(summary);
    printf("it_producer: %d submissions through casestream-produce in %.2f s wall (%.0f/s); "
           "%s",
           LINES, secs, LINES / secs, summary);
    fflush(stdout);
    /* "Tens of thousands per second": a loose floor, so a slow machine passes. */
    ck_assert_msg(secs < 30.0, "100000 lines took %.1f s", secs);
    free(errs);
    remove(in);
    it_drop_topic(topic);
    free(topic);
}
END_TEST

Suite *it_producer_suite(void);

Suite *it_producer_suite(void)
{
    Suite *s = suite_create("it_producer");
    TCase *tc = tcase_create("producer");

    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_java_keys_land_on_java_partitions_of_12);
    tcase_add_test(tc, test_java_keys_land_on_java_partitions_of_7);
    tcase_add_test(tc, test_api_submissions_land_on_java_partition_by_reference);
    tcase_add_test(tc, test_api_unreachable_broker_means_retry);
    tcase_add_test(tc, test_api_submit_wait_returns_this_messages_outcome);
    tcase_add_test(tc, test_cli_reports_bad_lines_and_sends_only_valid_ones);
    tcase_add_test(tc, test_cli_gen_key_adds_idempotency_key);
    tcase_add_test(tc, test_cli_unreachable_broker_fails);
    tcase_add_test(tc, test_cli_wait_prints_one_outcome_per_sent_message);
    tcase_add_test(tc, test_cli_sends_100000_lines_quickly);
    suite_add_tcase(s, tc);
    return s;
}
