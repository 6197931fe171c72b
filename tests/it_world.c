/* Support for the worker's integration tests: a test's world (topics, group, references),
 * planned messages, outcomes read back and checked, and the worker run by pid. */
#include "it_world.h"

#include "kafka.h"
#include "run.h"
#include "uuid.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

world W;

/* --- the world -------------------------------------------------------------------------- */

static void world_name(char *buf, size_t size, const char *test, const char *what)
{
    char *u = it_unique("it-worker");

    snprintf(buf, size, "%s-%s-%s", u, test, what);
    free(u);
}

/* Creates the test's topics: events with the given partitions. */
void world_new(const char *test, int partitions)
{
    memset(&W, 0, sizeof(W));
    world_name(W.events, sizeof(W.events), test, "events");
    world_name(W.results, sizeof(W.results), test, "results");
    world_name(W.changes, sizeof(W.changes), test, "changes");
    world_name(W.dlq, sizeof(W.dlq), test, "dlq");
    world_name(W.group, sizeof(W.group), test, "group");
    it_create_topic(W.events, partitions);
    it_create_topic(W.results, 3);
    it_create_topic(W.changes, 3);
    it_create_topic(W.dlq, 1);
    W.plan = calloc(PLAN_MAX, sizeof(*W.plan));
}

int64_t new_ref(void)
{
    int64_t r = it_new_ref();

    if (!W.lo)
        W.lo = r;
    W.hi = r;
    return r;
}

void new_key(char out[37])
{
    ck_assert_int_eq(cs_uuid_generate(out), 0);
}

/* Starts a worker on the world's topics; extra flags (NULL-terminated, may be NULL) come last
 * and win. The group notices a killed member in seconds: the stack's broker gives consumer
 * protocol groups a 6 s session timeout (scripts/stack.sh). */
pid_t worker_start(const char *const *extra)
{
    return worker_start_env(extra, NULL);
}

pid_t worker_start_env(const char *const *extra, const char *const *env)
{
    char ev[160], re[160], ch[160], dl[160], gr[160];
    const char *args[48] = {ev, re, ch, dl, gr, "--metrics-port=0"};
    int n = 6;

    snprintf(ev, sizeof(ev), "--topic-events=%s", W.events);
    snprintf(re, sizeof(re), "--topic-results=%s", W.results);
    snprintf(ch, sizeof(ch), "--topic-changes=%s", W.changes);
    snprintf(dl, sizeof(dl), "--topic-dlq=%s", W.dlq);
    snprintf(gr, sizeof(gr), "--group=%s", W.group);
    for (int i = 0; extra && extra[i] && n < 47; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    return it_spawn("casestream-worker", args, env);
}

/* Stops a worker with SIGTERM and asserts a clean exit 0. A worker stopped right after it was
 * started (on a loaded machine: before it installed its signal handlers) would die of the
 * signal: it is first given up to 60 s to start consuming (or to exit). */
void worker_stop(pid_t pid)
{
    long long deadline = cs_now_ms() + 60000;
    char path[64], state = 0;
    int rc;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    while (!log_has(pid, "consuming topic=") && cs_now_ms() < deadline) {
        /* A worker that already exited (a zombie, "Z") has nothing to wait for. */
        if ((f = fopen(path, "r")) != NULL) {
            state = fscanf(f, "%*d (%*[^)]) %c", &state) == 1 ? state : 0;
            fclose(f);
        }
        if (!f || state == 'Z')
            break;
        usleep(100 * 1000);
    }
    rc = it_stop(pid, SIGTERM, 20000);

    ck_assert_msg(rc == 0,
                  "worker %d did not stop cleanly on SIGTERM: status %d (see "
                  "build/it-logs/casestream-worker-%d.log)",
                  (int)pid, rc, (int)pid);
}

/* True when the worker's log contains text. */
bool log_has(pid_t pid, const char *text)
{
    char path[256], *buf;
    FILE *f;
    long size;
    bool found;

    snprintf(path, sizeof(path), "build/it-logs/casestream-worker-%d.log", (int)pid);
    if (!(f = fopen(path, "r")))
        return false;
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)size + 1);
    size = (long)fread(buf, 1, (size_t)size, f);
    fclose(f);
    buf[size] = '\0';
    found = strstr(buf, text) != NULL;
    free(buf);
    return found;
}

bool wait_log(pid_t pid, const char *text, int timeout_ms)
{
    long long deadline = cs_now_ms() + timeout_ms;

    while (!log_has(pid, text)) {
        if (cs_now_ms() > deadline)
            return false;
        usleep(100 * 1000);
    }
    return true;
}

/* Waits until this worker's outbox relay publishes. The relay is one per database (an advisory
 * lock), and it publishes every unpublished outbox row to its own --topic-changes: while
 * another casestream-worker with other topics holds the lock, this test's changes go to that
 * worker's topic, so the test cannot check its own changes topic and fails here, saying so. */
void wait_relay(pid_t pid)
{
    PGresult *res;
    char holders[512] = "";
    size_t len = 0;

    if (wait_log(pid, "outbox relay is publishing", 30000))
        return;
    res = PQexec(it_pg(), "SELECT a.pid, a.client_port, a.backend_start FROM pg_locks l JOIN "
                          "pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' AND "
                          "l.granted");
    for (int i = 0; PQresultStatus(res) == PGRES_TUPLES_OK && i < PQntuples(res); i++)
        len += (size_t)snprintf(holders + len, len < sizeof(holders) ? sizeof(holders) - len : 0,
                                " backend %s (client port %s, since %s)", PQgetvalue(res, i, 0),
                                PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
    PQclear(res);
    ck_abort_msg("worker %d never became the outbox relay in 30 s: another casestream-worker on "
                 "this database holds the relay lock and would publish this test's changes to "
                 "its own changes topic; advisory locks held by:%s",
                 (int)pid, holders[0] ? holders : " none");
}

/* --- messages ---------------------------------------------------------------------------- */

planned *plan_raw(int64_t ref, const char *key, const char *status, const char *mkey,
                  const char *value, size_t len)
{
    planned *p;

    ck_assert_msg(W.nplan < PLAN_MAX, "test bug: more than %d messages planned", PLAN_MAX);
    p = &W.plan[W.nplan++];
    memset(p, 0, sizeof(*p));
    p->ref = ref;
    snprintf(p->key, sizeof(p->key), "%s", key ? key : "");
    p->status = status;
    p->value = malloc(len + 1);
    memcpy(p->value, value, len);
    p->value[len] = '\0';
    p->len = len;
    p->mkey = mkey ? strdup(mkey) : NULL;
    return p;
}

/* Plans a submission of case ref keyed with its reference: the key fields, then the members
 * of the JSON object fields_fmt (may be NULL). key NULL = a new key. */
__attribute__((format(printf, 5, 6))) planned *plan_sub(int64_t ref, const char *key,
                                                        const char *status, const char *event_id,
                                                        const char *fields_fmt, ...)
{
    char fields[8192] = "{}", keybuf[37], mkey[24];
    json_t *o, *more;
    json_error_t jerr;
    char *text;
    planned *p;

    if (!key) {
        new_key(keybuf);
        key = keybuf;
    }
    if (fields_fmt) {
        va_list ap;

        va_start(ap, fields_fmt);
        vsnprintf(fields, sizeof(fields), fields_fmt, ap);
        va_end(ap);
    }
    more = json_loads(fields, 0, &jerr);
    ck_assert_msg(more != NULL, "test bug: bad fields %s: %s", fields, jerr.text);
    o = json_pack("{s:s, s:I, s:s, s:s, s:s}", "idempotency_key", key, "case_reference",
                  (json_int_t)ref, "case_type", CASE_TYPE, "event_id", event_id, "user_id",
                  "it-user");
    json_object_update(o, more);
    text = json_dumps(o, JSON_COMPACT);
    snprintf(mkey, sizeof(mkey), "%" PRId64, ref);
    p = plan_raw(ref, key, status, mkey, text, strlen(text));
    free(text);
    json_decref(o);
    json_decref(more);
    return p;
}

/* Plans the creation of case ref. */
planned *plan_create(int64_t ref, const char *key)
{
    planned *p = plan_sub(ref, key, "applied", "create",
                          "{\"jurisdiction\": \"IT\", \"state\": \"Open\", \"data\": "
                          "{\"title\": \"case %" PRId64 "\", \"n\": 0}}",
                          ref);

    p->revision = 1;
    return p;
}

void send_one(const planned *p)
{
    it_produce_async(W.events, p->mkey, p->value, p->len);
}

/* Produces plan[from..to) in order and waits until Kafka has them. */
void send_range(size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        send_one(&W.plan[i]);
    it_flush();
}

static void *feeder_main(void *arg)
{
    feeder *f = arg;

    for (size_t i = 0; i < f->n; i++) {
        const planned *p = &W.plan[f->index[i]];
        rd_kafka_resp_err_t err;

        err = rd_kafka_producev(f->rk, RD_KAFKA_V_TOPIC(W.events),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_KEY(p->mkey, p->mkey ? strlen(p->mkey) : 0),
                                RD_KAFKA_V_VALUE(p->value, p->len), RD_KAFKA_V_END);
        if (!err)
            err = rd_kafka_flush(f->rk, 30000);
        if (err) {
            snprintf(f->err, sizeof(f->err), "produce: %s", rd_kafka_err2str(err));
            break;
        }
        atomic_store(&f->sent, i + 1);
        if (f->gap_ms)
            usleep((useconds_t)f->gap_ms * 1000);
    }
    return NULL;
}

/* Starts a feeder over the planned messages whose index satisfies pick. */
void feeder_start(feeder *f, bool (*pick)(size_t i, void *ctx), void *ctx, int gap_ms)
{
    char errstr[512];
    rd_kafka_conf_t *conf = cs_kafka_conf_new(it_config(), NULL, errstr, sizeof(errstr));

    memset(f, 0, sizeof(*f));
    ck_assert_msg(conf != NULL, "%s", errstr);
    f->rk =
        cs_kafka_producer_new(it_config(), conf, CS_KAFKA_SEND_GATHERED, errstr, sizeof(errstr));
    ck_assert_msg(f->rk != NULL, "%s", errstr);
    f->index = calloc(W.nplan, sizeof(*f->index));
    for (size_t i = 0; i < W.nplan; i++)
        if (pick(i, ctx))
            f->index[f->n++] = i;
    f->gap_ms = gap_ms;
    ck_assert_int_eq(pthread_create(&f->thread, NULL, feeder_main, f), 0);
}

void feeder_join(feeder *f)
{
    pthread_join(f->thread, NULL);
    ck_assert_msg(f->err[0] == '\0', "feeder: %s", f->err);
    ck_assert_uint_eq(atomic_load(&f->sent), f->n);
    rd_kafka_destroy(f->rk);
    free(f->index);
}

/* --- reading the topics ------------------------------------------------------------------ */

/* Reads a whole topic once it holds at least min messages (or the time is up). */
size_t read_topic(const char *topic, long long min, int timeout_ms, it_msg **out)
{
    long long deadline = cs_now_ms() + timeout_ms, end;
    size_t n;

    while ((end = it_topic_end(topic)) < min && cs_now_ms() < deadline)
        usleep(250 * 1000);
    n = it_consume(topic, (size_t)end, 60000, out);
    ck_assert_msg((long long)n >= min, "%s: %zu messages after %d s, expected at least %lld", topic,
                  n, timeout_ms / 1000, min);
    return n;
}

static int cmp_source(const void *a, const void *b)
{
    const outcome *x = a, *y = b;

    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

void outcomes_free(outcome *o, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(o[i].error);
    free(o);
    it_msgs_free(W.raw, W.nraw);
    W.raw = NULL;
    W.nraw = 0;
}

/* Reads the results topic once it holds an outcome for every planned message. Asserts one
 * outcome per consumed message (every source position exactly once, copies on the wire
 * byte-identical) and that each outcome is keyed by its case reference. Returns the outcomes
 * sorted by source position, one per position, in *n. */
outcome *read_outcomes(size_t *n)
{
    size_t m = read_topic(W.results, (long long)W.nplan, CATCH_UP_MS, &W.raw), k = 0;
    outcome *all = calloc(m ? m : 1, sizeof(*all));

    W.nraw = m;
    for (size_t i = 0; i < m; i++) {
        json_error_t jerr;
        json_t *o = json_loads(W.raw[i].value, 0, &jerr), *v;
        outcome *x = &all[i];

        ck_assert_msg(o != NULL, "outcome is not JSON: %s", W.raw[i].value);
        x->text = W.raw[i].value;
        x->ref = json_integer_value(json_object_get(o, "case_reference"));
        v = json_object_get(o, "idempotency_key");
        snprintf(x->key, sizeof(x->key), "%s", json_is_string(v) ? json_string_value(v) : "");
        snprintf(x->status, sizeof(x->status), "%s",
                 json_string_value(json_object_get(o, "status")));
        x->code = (int)json_integer_value(json_object_get(o, "code"));
        x->version = json_integer_value(json_object_get(o, "version"));
        x->revision = json_integer_value(json_object_get(o, "case_revision"));
        x->seq = json_integer_value(json_object_get(o, "event_seq"));
        v = json_object_get(o, "error");
        x->error = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
        v = json_object_get(o, "source");
        ck_assert_msg(json_is_object(v), "outcome without source: %s", x->text);
        x->partition = (int)json_integer_value(json_object_get(v, "partition"));
        x->offset = json_integer_value(json_object_get(v, "offset"));
        if (x->ref > 0) {
            char key[24];

            snprintf(key, sizeof(key), "%" PRId64, x->ref);
            ck_assert_msg(W.raw[i].key && strcmp(W.raw[i].key, key) == 0,
                          "outcome keyed %s, not by its case reference: %s",
                          W.raw[i].key ? W.raw[i].key : "(none)", x->text);
        }
        json_decref(o);
    }
    qsort(all, m, sizeof(*all), cmp_source);
    /* Copies of one source position must be byte-identical; keep one of each. */
    for (size_t i = 0; i < m; i++) {
        if (k > 0 && cmp_source(&all[k - 1], &all[i]) == 0) {
            ck_assert_msg(strcmp(all[k - 1].text, all[i].text) == 0,
                          "two different outcomes for partition %d offset %lld:\n  %s\n  %s",
                          all[i].partition, all[i].offset, all[k - 1].text, all[i].text);
            free(all[i].error);
            continue;
        }
        all[k++] = all[i];
    }
    ck_assert_msg(k == W.nplan, "%zu distinct source positions have outcomes, %zu messages sent", k,
                  W.nplan);
    *n = k;
    return all;
}

const outcome *find_outcome(const outcome *o, size_t n, int64_t ref, const char *key,
                            const char *status)
{
    for (size_t i = 0; i < n; i++)
        if (o[i].ref == ref && strcmp(o[i].key, key) == 0 && strcmp(o[i].status, status) == 0)
            return &o[i];
    return NULL;
}

/* Every planned message with a reference has its expected outcome. */
void check_planned_outcomes(const outcome *o, size_t n)
{
    for (size_t i = 0; i < W.nplan; i++) {
        const planned *p = &W.plan[i];
        const outcome *x;

        if (!p->ref || !p->key[0])
            continue;
        x = find_outcome(o, n, p->ref, p->key, p->status);
        ck_assert_msg(x != NULL, "no \"%s\" outcome for case %" PRId64 " key %s (message %zu)",
                      p->status, p->ref, p->key, i);
        if (p->revision)
            ck_assert_msg(x->revision == p->revision,
                          "case %" PRId64 " key %s: case_revision %lld, expected %lld: %s", p->ref,
                          p->key, x->revision, p->revision, x->text);
    }
}

size_t count_status(const outcome *o, size_t n, const char *status)
{
    size_t c = 0;

    for (size_t i = 0; i < n; i++)
        c += strcmp(o[i].status, status) == 0;
    return c;
}

/* Whether DLQ copy d is planned message p, byte for byte under its key. */
static bool is_copy_of(const it_msg *d, const planned *p)
{
    return d->len == p->len && memcmp(d->value, p->value, p->len) == 0 &&
           ((!p->mkey && !d->key) || (p->mkey && d->key && strcmp(p->mkey, d->key) == 0));
}

static bool refused_at_door(const planned *p)
{
    return p->at_door || strcmp(p->status, "invalid") == 0;
}

void check_dead_letters(const outcome *o, size_t n)
{
    it_msg *dlq = NULL;
    size_t ndlq, want = 0;

    for (size_t i = 0; i < W.nplan; i++)
        want += refused_at_door(&W.plan[i]);
    ndlq = read_topic(W.dlq, (long long)want, CATCH_UP_MS, &dlq);
    for (size_t d = 0; d < ndlq; d++) {
        const planned *p = NULL;

        ck_assert_msg(dlq[d].error && dlq[d].error[0], "DLQ message without its reason: %.80s",
                      dlq[d].value);
        for (size_t i = 0; i < W.nplan && !p; i++)
            if (is_copy_of(&dlq[d], &W.plan[i]))
                p = &W.plan[i];
        ck_assert_msg(p != NULL, "the DLQ holds a message no test message is: %.80s", dlq[d].value);
        ck_assert_msg(refused_at_door(p),
                      "a \"%s\" message the validator did not refuse is in the DLQ (%s): %.80s",
                      p->status, dlq[d].error, p->value);
        if (p->ref && p->key[0]) {
            const outcome *x = find_outcome(o, n, p->ref, p->key, p->status);

            ck_assert_msg(x != NULL, "no \"%s\" outcome for case %" PRId64 " key %s", p->status,
                          p->ref, p->key);
            ck_assert_msg(x->error && strcmp(x->error, dlq[d].error) == 0,
                          "DLQ reason \"%s\", outcome error \"%s\"", dlq[d].error,
                          x->error ? x->error : "null");
        }
    }
    for (size_t i = 0; i < W.nplan; i++) {
        bool found = false;

        if (!refused_at_door(&W.plan[i]))
            continue;
        for (size_t d = 0; d < ndlq && !found; d++)
            found = is_copy_of(&dlq[d], &W.plan[i]);
        ck_assert_msg(found, "\"%s\" message %zu is not in the DLQ: %.80s", W.plan[i].status, i,
                      W.plan[i].value);
    }
    it_msgs_free(dlq, ndlq);
}

long long committed_now(void)
{
    return it_group_committed(W.group, W.events);
}

/* Waits until the worker group has committed every message of the events topic: whatever a
 * crash left for redelivery has been consumed again and answered. */
void wait_committed(void)
{
    long long end = it_topic_end(W.events), done = 0, deadline = cs_now_ms() + CATCH_UP_MS;

    while ((done = it_group_committed(W.group, W.events)) < end && cs_now_ms() < deadline)
        usleep(500 * 1000);
    ck_assert_msg(done == end, "group %s committed %lld of %lld messages of %s", W.group, done, end,
                  W.events);
}

/* Stops the last worker of a test, which has answered everything: it exits 0 and, on the way
 * out, commits the offsets of every message. */
void worker_stop_last(pid_t pid)
{
    long long end, done;

    worker_stop(pid);
    end = it_topic_end(W.events);
    done = committed_now();
    ck_assert_msg(done == end, "after SIGTERM, group %s committed %lld of %lld messages", W.group,
                  done, end);
}

/* --- PostgreSQL ---------------------------------------------------------------------------- */

PGresult *query(const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    PGresult *res;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    res = PQexec(it_pg(), sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK,
                  "%s: %s", sql, PQresultErrorMessage(res));
    return res;
}

long long events_in_world(void)
{
    return it_sql_int("SELECT count(*) FROM ccd.case_event WHERE case_reference BETWEEN %" PRId64
                      " AND %" PRId64,
                      W.lo, W.hi);
}

/* Every planned "applied" submission is exactly one ccd.case_event row and there is no other
 * row; each case's revisions are 1..n without gaps and the case is at revision n. */
void check_applied_once(void)
{
    long long want = 0;
    PGresult *res;
    int rows;

    for (size_t i = 0; i < W.nplan; i++)
        want += W.plan[i].ref && strcmp(W.plan[i].status, "applied") == 0;
    ck_assert_msg(it_wait_sql(want, CATCH_UP_MS,
                              "SELECT count(*) FROM ccd.case_event WHERE case_reference "
                              "BETWEEN %" PRId64 " AND %" PRId64,
                              W.lo, W.hi),
                  "%lld case_event rows, expected %lld", events_in_world(), want);
    res = query("SELECT case_reference, idempotency_key::text FROM ccd.case_event"
                " WHERE case_reference BETWEEN %" PRId64 " AND %" PRId64,
                W.lo, W.hi);
    rows = PQntuples(res);
    ck_assert_int_eq(rows, want);
    for (size_t i = 0; i < W.nplan; i++) {
        const planned *p = &W.plan[i];
        int found = 0;

        if (!p->ref || strcmp(p->status, "applied") != 0)
            continue;
        for (int r = 0; r < rows; r++)
            found += strtoll(PQgetvalue(res, r, 0), NULL, 10) == p->ref &&
                     strcmp(PQgetvalue(res, r, 1), p->key) == 0;
        ck_assert_msg(found == 1, "case %" PRId64 " key %s has %d case_event rows, expected 1",
                      p->ref, p->key, found);
    }
    PQclear(res);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM (SELECT case_reference FROM ccd.case_event"
                                " WHERE case_reference BETWEEN %" PRId64 " AND %" PRId64
                                " GROUP BY case_reference HAVING min(case_revision) <> 1"
                                " OR max(case_revision) <> count(*)"
                                " OR count(DISTINCT case_revision) <> count(*)) g",
                                W.lo, W.hi),
                     0);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_data d WHERE reference BETWEEN "
                                "%" PRId64 " AND %" PRId64 " AND case_revision <> (SELECT "
                                "count(*) FROM ccd.case_event e WHERE e.case_reference = "
                                "d.reference)",
                                W.lo, W.hi),
                     0);
}

/* The outbox of the world's cases drains and every revision of every case reaches the changes
 * topic (at least once). */
void check_changes(void)
{
    long long total;
    it_msg *msgs = NULL;
    size_t n = 0, seen = 0;
    long long deadline;
    PGresult *res;
    int ncases;

    ck_assert_msg(it_wait_sql(0, CATCH_UP_MS,
                              "SELECT count(*) FROM ccd.change_outbox WHERE reference BETWEEN "
                              "%" PRId64 " AND %" PRId64 " AND published_at IS NULL",
                              W.lo, W.hi),
                  "the outbox did not drain: %lld unpublished rows",
                  it_sql_int("SELECT count(*) FROM ccd.change_outbox WHERE reference BETWEEN "
                             "%" PRId64 " AND %" PRId64 " AND published_at IS NULL",
                             W.lo, W.hi));
    total = events_in_world();
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.change_outbox WHERE reference BETWEEN "
                                "%" PRId64 " AND %" PRId64,
                                W.lo, W.hi),
                     total);
    res = query("SELECT reference, case_revision FROM ccd.case_data WHERE reference BETWEEN "
                "%" PRId64 " AND %" PRId64 " ORDER BY reference",
                W.lo, W.hi);
    ncases = PQntuples(res);
    deadline = cs_now_ms() + 60000;
    for (;;) {
        /* (case index, revision) pairs seen, as a bitmap per case. */
        bool *got;
        long long maxrev = 1;

        for (int c = 0; c < ncases; c++)
            if (atoll(PQgetvalue(res, c, 1)) > maxrev)
                maxrev = atoll(PQgetvalue(res, c, 1));
        got = calloc((size_t)ncases * (size_t)(maxrev + 1), sizeof(*got));
        n = read_topic(W.changes, 0, 0, &msgs);
        seen = 0;
        for (size_t i = 0; i < n; i++) {
            json_t *d = json_loads(msgs[i].value, 0, NULL);
            long long ref = json_integer_value(json_object_get(d, "reference"));
            long long rev = json_integer_value(json_object_get(d, "case_revision"));

            json_decref(d);
            if (ref < W.lo || ref > W.hi)
                continue;
            for (int c = 0; c < ncases; c++) {
                if (atoll(PQgetvalue(res, c, 0)) != ref)
                    continue;
                ck_assert_msg(rev >= 1 && rev <= atoll(PQgetvalue(res, c, 1)),
                              "change of case %lld at revision %lld, beyond the database's", ref,
                              rev);
                if (!got[(size_t)c * (size_t)(maxrev + 1) + (size_t)rev]) {
                    got[(size_t)c * (size_t)(maxrev + 1) + (size_t)rev] = true;
                    seen++;
                }
            }
        }
        free(got);
        it_msgs_free(msgs, n);
        if ((long long)seen == total || cs_now_ms() > deadline)
            break;
        usleep(500 * 1000);
    }
    PQclear(res);
    ck_assert_msg((long long)seen == total, "%zu of %lld revisions reached the changes topic %s",
                  seen, total, W.changes);
}

/* --- Redis and /metrics ---------------------------------------------------------------------- */

bool redis_up(void)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "redis-cli -u '%s' ping 2>/dev/null | grep -q PONG",
             it_config()->redis);
    return system(cmd) == 0;
}

/* Starts Redis again if a test stopped it; true when it answers. */
bool redis_restore(void)
{
    for (int i = 0; i < 3 && !redis_up(); i++)
        it_stack("start redis");
    return redis_up();
}

long long redis_exists(int64_t ref, const char *key)
{
    char cmd[512], line[64] = "";
    FILE *p;

    snprintf(cmd, sizeof(cmd), "redis-cli -u '%s' EXISTS 'cs:idem:%" PRId64 ":%s' 2>&1",
             it_config()->redis, ref, key);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    if (!fgets(line, sizeof(line), p))
        line[0] = '\0';
    pclose(p);
    return atoll(line);
}

typedef struct buf {
    char *data;
    size_t len;
} buf;

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    buf *b = userdata;
    size_t n = size * nmemb;

    b->data = realloc(b->data, b->len + n + 1);
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* The value of metric name (with its labels, if any) on the worker's /metrics. */
long long metric(int port, const char *name)
{
    char url[128];
    buf b = {NULL, 0};
    CURL *curl = curl_easy_init();
    CURLcode rc;
    long long v = -1;
    size_t nlen = strlen(name);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
    rc = curl_easy_perform(curl);
    curl_easy_cleanup(curl);
    ck_assert_msg(rc == CURLE_OK, "GET %s: %s", url, curl_easy_strerror(rc));
    for (char *line = b.data; line && *line;) {
        char *next = strchr(line, '\n');

        if (strncmp(line, name, nlen) == 0 && line[nlen] == ' ') {
            v = atoll(line + nlen + 1);
            break;
        }
        line = next ? next + 1 : NULL;
    }
    free(b.data);
    ck_assert_msg(v >= 0, "metric %s not found on %s", name, url);
    return v;
}

/* --- fixtures ---------------------------------------------------------------------------- */

/* In each test's process: services a previous test may have stopped are up again. */
void services_up(void)
{
    ck_assert_msg(redis_restore(), "redis is unreachable at %s", it_config()->redis);
}

/* In the runner's process after a test case: Redis is running and no test trigger is left.
 * Uses a connection of its own: the tests' processes are forked from this one. */
void leave_clean(void)
{
    PGconn *c;
    PGresult *res;

    redis_restore();
    c = PQconnectdb(it_config()->pg);
    if (PQstatus(c) == CONNECTION_OK) {
        res = PQexec(c, "DO $$ DECLARE t record; BEGIN FOR t IN SELECT tgname FROM pg_trigger"
                        " WHERE tgrelid = 'ccd.case_event'::regclass AND tgname LIKE"
                        " 'it_refuse_%' LOOP EXECUTE format('DROP TRIGGER %I ON ccd.case_event',"
                        " t.tgname); END LOOP; END $$");
        PQclear(res);
    }
    PQfinish(c);
}

void plan_stream(int cases, int each)
{
    int64_t *refs = calloc((size_t)cases, sizeof(*refs));

    for (int c = 0; c < cases; c++)
        refs[c] = new_ref();
    for (int k = 1; k <= each; k++) {
        for (int c = 0; c < cases; c++) {
            planned *p;

            if (k == 1)
                p = plan_create(refs[c], NULL);
            else
                p = plan_sub(refs[c], NULL, "applied", "step",
                             "{\"data_merge\": {\"n\": %d}, \"notes\": [{\"author\": \"s\", "
                             "\"body\": \"step %d\"}]}",
                             k, k);
            p->revision = k;
        }
    }
    free(refs);
}
