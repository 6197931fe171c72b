/* Outbox relay thread: reads unpublished rows in id order, produces them, marks them published.
 * A crash between the produce and the mark publishes those rows again after the restart:
 * case-changes is at least once, and consumers keep the highest case_revision. */
#include "outbox.h"

#include "backoff.h"
#include "db.h"
#include "err.h"
#include "fault.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "run.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Advisory lock held by the one relay publishing to a topic: (namespace, topic). */
#define RELAY_LOCK_SQL "SELECT pg_try_advisory_lock(hashtext('casestream outbox'), hashtext($1))"

/* The relay's statements, prepared on each connection: a round's rows (at most $1, from the
 * first, whose documents before each stay under $3 bytes, with how many were waiting) of the
 * changes topic $2, and the rows it published. */
enum { RELAY_ROUND, RELAY_PUBLISHED };
static const cs_db_statement relay_statements[] = {
    [RELAY_ROUND] = {"relay_round",
                     "SELECT id, reference, doc, case_revision, case_type, case_id, listed FROM ("
                     "SELECT *, sum(octet_length(doc)) OVER (ORDER BY id) AS upto, "
                     "count(*) OVER () AS listed FROM ("
                     "SELECT id, reference, document::text AS doc, case_revision, "
                     "COALESCE(document->>'case_type_id', document->>'case_type') AS case_type, "
                     "document->>'id' AS case_id FROM ccd.change_outbox "
                     "WHERE topic = $2 AND published_at IS NULL ORDER BY id LIMIT $1) o) w "
                     "WHERE upto - octet_length(doc) < $3::bigint ORDER BY id",
                     3},
    [RELAY_PUBLISHED] = {"relay_published",
                         "UPDATE ccd.change_outbox SET published_at = now() "
                         "WHERE id = ANY($1::bigint[])",
                         1}};

struct cs_relay {
    const cs_config *cfg;
    rd_kafka_t *producer;
    PGconn *conn;
    bool leader;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool kicked;
    bool full; /* the last round stopped at --outbox-batch or --outbox-bytes: more may wait */
    atomic_bool stop;
    cs_metric *published;
    cs_metric *rounds;
    cs_metric *failures;
    cs_metric *by_reference;
};

/* Where one row's message stands in a round. */
enum { ROW_QUEUED, ROW_DELIVERED, ROW_FAILED, ROW_TOO_LARGE };

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    int *state = m->_private;

    (void)rk;
    (void)opaque;
    if (state)
        *state = !m->err                          ? ROW_DELIVERED
                 : cs_kafka_err_too_large(m->err) ? ROW_TOO_LARGE
                                                  : ROW_FAILED;
}

/* Connects and takes the relay lock. Returns 0 when this relay may publish. */
static int become_leader(cs_relay *r, char *errstr, size_t errstr_size)
{
    PGresult *res;

    if (r->conn && PQstatus(r->conn) != CONNECTION_OK) {
        PQfinish(r->conn);
        r->conn = NULL;
        r->leader = false;
    }
    if (!r->conn) {
        if (!(r->conn = cs_db_connect(r->cfg->pg, errstr, errstr_size)))
            return CS_ERR_RETRY;
        if (cs_db_generic_plans(r->conn, errstr, errstr_size) ||
            cs_db_prepare(r->conn, relay_statements,
                          sizeof(relay_statements) / sizeof(relay_statements[0]), errstr,
                          errstr_size)) {
            PQfinish(r->conn);
            r->conn = NULL;
            return CS_ERR_RETRY;
        }
    }
    if (r->leader)
        return CS_OK;
    res = PQexecParams(r->conn, RELAY_LOCK_SQL, 1, NULL, &r->cfg->topic_changes, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cs_db_error(r->conn, res, errstr, errstr_size);
        PQclear(res);
        return CS_ERR_RETRY;
    }
    r->leader = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!r->leader) {
        snprintf(errstr, errstr_size, "another relay is publishing to %s", r->cfg->topic_changes);
        return CS_ERR_CONFLICT;
    }
    cs_log_info("outbox relay is publishing topic=%s", r->cfg->topic_changes);
    return CS_OK;
}

/* The reference form of a change document too large for the changes topic:
 * the fields that route it (id, reference, case_type_id, and case_type as
 * the document has it), case_revision and "omitted"; the indexer reads the
 * document from PostgreSQL instead (DESIGN §6). id is NULL for a row written
 * before the schema kept it (the form then has none). Returns text the caller
 * frees. */
static char *reference_form(const char *ref, const char *id, const char *case_type,
                            const char *revision, size_t size)
{
    json_t *o = json_object();
    char why[96], *text;

    snprintf(why, sizeof(why), "document of %zu bytes is too large for the changes topic", size);
    if (id)
        json_object_set_new(o, "id", json_integer(strtoll(id, NULL, 10)));
    json_object_set_new(o, "reference", json_integer(strtoll(ref, NULL, 10)));
    json_object_set_new(o, "case_type_id", json_string(case_type));
    json_object_set_new(o, "case_type", json_string(case_type));
    json_object_set_new(o, "case_revision", json_integer(strtoll(revision, NULL, 10)));
    json_object_set_new(o, "omitted", json_string(why));
    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

/* Queues row i's document (or its reference form) on the producer. */
static rd_kafka_resp_err_t produce_row(cs_relay *r, PGresult *res, int i, bool by_reference,
                                       int *state)
{
    const char *ref = PQgetvalue(res, i, 1);
    const char *doc = PQgetvalue(res, i, 2);
    char *small = NULL;
    rd_kafka_resp_err_t err;

    if (by_reference) {
        if (!(small = reference_form(ref, PQgetisnull(res, i, 5) ? NULL : PQgetvalue(res, i, 5),
                                     PQgetvalue(res, i, 4), PQgetvalue(res, i, 3),
                                     (size_t)PQgetlength(res, i, 2))))
            return RD_KAFKA_RESP_ERR__FAIL;
        doc = small;
        cs_metric_inc(r->by_reference, 1);
        cs_log_warn("change published by reference case=%s revision=%s bytes=%d", ref,
                    PQgetvalue(res, i, 3), PQgetlength(res, i, 2));
    }
    *state = ROW_QUEUED;
    do {
        err = rd_kafka_producev(
            r->producer, RD_KAFKA_V_TOPIC(r->cfg->topic_changes), RD_KAFKA_V_KEY(ref, strlen(ref)),
            RD_KAFKA_V_VALUE((void *)doc, strlen(doc)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_OPAQUE(state), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(r->producer, 50);
    } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
    free(small);
    if (err)
        *state = cs_kafka_err_too_large(err) ? ROW_TOO_LARGE : ROW_FAILED;
    return err;
}

/* Waits for every queued row's report. Nothing may keep a pointer to the
 * states after this: on a timeout the rest is dropped and its reports served
 * now (those rows are published again next round). */
static void wait_reports(cs_relay *r)
{
    if (rd_kafka_flush(r->producer, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_purge(r->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        while (rd_kafka_outq_len(r->producer) > 0)
            rd_kafka_poll(r->producer, 50);
    }
}

/* One round: publish up to outbox_batch rows, and rows of documents up to outbox_bytes in all
 * (the first row whatever its size): the round's result and the producer's copies of its
 * documents are held at once, and a row holds a whole case's data. Each row stands alone: one that
 * the topic refuses as too large goes again in its reference form, and the
 * rows delivered are marked published even when another failed, so a retry
 * sends only what is still missing. Returns rows published or a cs_err. */
static int publish_round(cs_relay *r, char *errstr, size_t errstr_size)
{
    char limit[16], bytes[16];
    const char *params[3] = {limit, r->cfg->topic_changes, bytes};
    PGresult *res = NULL, *upd;
    int *state = NULL;
    char *ids = NULL;
    size_t len = 0, max_doc = (size_t)r->cfg->max_message_bytes;
    int n, done = 0, failed = 0, rc;

    snprintf(limit, sizeof(limit), "%d", r->cfg->outbox_batch);
    snprintf(bytes, sizeof(bytes), "%d", r->cfg->outbox_bytes);
    res = cs_db_exec_prepared(r->conn, &relay_statements[RELAY_ROUND], params);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cs_db_error(r->conn, res, errstr, errstr_size);
        PQclear(res);
        return CS_ERR_RETRY;
    }
    r->full = false;
    if ((n = PQntuples(res)) == 0) {
        PQclear(res);
        return 0;
    }
    /* Cut by either limit: more rows may be waiting. */
    r->full = n == r->cfg->outbox_batch || atoi(PQgetvalue(res, 0, 6)) > n;
    cs_fault_point("before_outbox_publish");
    if (!(state = calloc((size_t)n, sizeof(*state))) || !(ids = malloc((size_t)n * 24 + 3))) {
        snprintf(errstr, errstr_size, "out of memory");
        rc = CS_ERR_RETRY;
        goto cleanup;
    }
    for (int i = 0; i < n; i++)
        produce_row(r, res, i, (size_t)PQgetlength(res, i, 2) > max_doc, &state[i]);
    wait_reports(r);
    /* What the broker refused for its size goes once more, by reference. */
    {
        int again = 0;

        for (int i = 0; i < n; i++)
            if (state[i] == ROW_TOO_LARGE && ++again)
                produce_row(r, res, i, true, &state[i]);
        if (again)
            wait_reports(r);
    }
    ids[len++] = '{';
    for (int i = 0; i < n; i++) {
        if (state[i] != ROW_DELIVERED) {
            failed++;
            continue;
        }
        len += (size_t)sprintf(ids + len, "%s%s", done++ ? "," : "", PQgetvalue(res, i, 0));
    }
    ids[len++] = '}';
    ids[len] = '\0';
    rc = done;
    if (done > 0) {
        cs_fault_point("after_outbox_publish");
        params[0] = ids;
        upd = cs_db_exec_prepared(r->conn, &relay_statements[RELAY_PUBLISHED], params);
        if (PQresultStatus(upd) != PGRES_COMMAND_OK) {
            cs_db_error(r->conn, upd, errstr, errstr_size);
            rc = CS_ERR_RETRY;
        }
        PQclear(upd);
    }
    if (rc >= 0 && failed > 0) {
        snprintf(errstr, errstr_size, "%d of %d changes not delivered to %s", failed, n,
                 r->cfg->topic_changes);
        cs_metric_inc(r->failures, 1);
        if (done > 0)
            cs_metric_inc(r->published, done);
        rc = CS_ERR_RETRY;
    } else if (rc > 0) {
        cs_metric_inc(r->published, rc);
        cs_metric_inc(r->rounds, 1);
    }
cleanup:
    PQclear(res);
    free(state);
    free(ids);
    return rc;
}

/* The realtime clock ms from now, for pthread_cond_timedwait. */
static struct timespec in_ms(long ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static void wait_kick(cs_relay *r, long ms)
{
    struct timespec ts = in_ms(ms);

    pthread_mutex_lock(&r->mu);
    if (!r->kicked && !atomic_load(&r->stop))
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    r->kicked = false;
    pthread_mutex_unlock(&r->mu);
}

/* Waits ms, or until stopped: what is committed meanwhile goes in the next round. */
static void gather(cs_relay *r, long ms)
{
    long long deadline = cs_now_ms() + ms, now;

    pthread_mutex_lock(&r->mu);
    while (!atomic_load(&r->stop) && (now = cs_now_ms()) < deadline) {
        struct timespec ts = in_ms((long)(deadline - now));

        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
    r->kicked = false;
    pthread_mutex_unlock(&r->mu);
}

static void *relay_main(void *arg)
{
    cs_relay *r = arg;
    cs_backoff backoff;
    char errstr[512];
    bool last_round = false;

    cs_backoff_init(&backoff, 100, 10000);
    for (;;) {
        int rc;

        /* After stop, one more round publishes what the worker committed last. */
        if (atomic_load(&r->stop)) {
            if (last_round)
                break;
            last_round = true;
        }
        rc = become_leader(r, errstr, sizeof(errstr));
        if (rc == CS_OK)
            rc = publish_round(r, errstr, sizeof(errstr));
        if (rc == CS_ERR_CONFLICT) {
            wait_kick(r, 1000);
            continue;
        }
        if (rc < 0) {
            long delay = cs_backoff_next(&backoff);

            cs_log_warn("outbox relay: %s; retrying in %ld ms", errstr, delay);
            if (last_round)
                break;
            wait_kick(r, delay);
            continue;
        }
        cs_backoff_reset(&backoff);
        if (rc == 0 && !last_round)
            wait_kick(r, 200);
        /* Changes committed within --outbox-linger-ms of each other go in one round, not a
         * round (a query, a produce request, an update) for each commit; a backlog is
         * published round after round. */
        if (!r->full && !last_round && r->cfg->outbox_linger_ms > 0)
            gather(r, r->cfg->outbox_linger_ms);
    }
    return NULL;
}

cs_relay *cs_relay_start(const cs_config *cfg, char *errstr, size_t errstr_size)
{
    cs_relay *r = calloc(1, sizeof(*r));
    rd_kafka_conf_t *conf;

    if (!r)
        return NULL;
    r->cfg = cfg;
    r->published = cs_metric_counter("casestream_worker_outbox_published_total",
                                     "changes published from the outbox to case-changes");
    r->rounds = cs_metric_counter("casestream_worker_outbox_rounds_total",
                                  "outbox rounds that published changes (--outbox-linger-ms "
                                  "gathers commits into rounds)");
    r->by_reference = cs_metric_counter("casestream_worker_outbox_by_reference_total",
                                        "changes too large for the changes topic, published in "
                                        "their reference form");
    r->failures = cs_metric_counter("casestream_worker_outbox_failures_total",
                                    "outbox rounds that failed to deliver and were retried");
    if (!(conf = cs_kafka_conf_new(cfg, NULL, errstr, errstr_size))) {
        free(r);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    if (!(r->producer =
              cs_kafka_producer_new(cfg, conf, CS_KAFKA_SEND_AT_ONCE, errstr, errstr_size))) {
        free(r);
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    if (pthread_create(&r->thread, NULL, relay_main, r) != 0) {
        snprintf(errstr, errstr_size, "could not start the outbox relay thread");
        rd_kafka_destroy(r->producer);
        free(r);
        return NULL;
    }
    return r;
}

void cs_relay_kick(cs_relay *r)
{
    pthread_mutex_lock(&r->mu);
    r->kicked = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void cs_relay_stop(cs_relay *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, true);
    cs_relay_kick(r);
    pthread_join(r->thread, NULL);
    rd_kafka_flush(r->producer, 10000);
    rd_kafka_destroy(r->producer);
    PQfinish(r->conn);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}
