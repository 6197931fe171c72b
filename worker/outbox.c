/* Outbox relay thread: reads unpublished rows in id order, produces them, marks them published.
 * A crash between the produce and the mark publishes those rows again after the restart:
 * case-changes is at least once, and consumers keep the highest case_revision. */
#include "outbox.h"

#include "db.h"
#include "err.h"
#include "fault.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "run.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Advisory lock held by the one relay publishing to a topic: (namespace, topic). */
#define RELAY_LOCK_SQL "SELECT pg_try_advisory_lock(hashtext('casestream outbox'), hashtext($1))"

struct cs_relay {
    const cs_config *cfg;
    rd_kafka_t *producer;
    PGconn *conn;
    bool leader;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool kicked;
    atomic_bool stop;
    atomic_llong pending;
    cs_metric *published;
    cs_metric *failures;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err)
        atomic_fetch_add((atomic_int *)m->_private, 1);
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
    if (!r->conn && !(r->conn = cs_db_connect(r->cfg->pg, errstr, errstr_size)))
        return CS_ERR_RETRY;
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

/* One round: publish up to outbox_batch rows. Returns rows published or a cs_err. */
static int publish_round(cs_relay *r, char *errstr, size_t errstr_size)
{
    char limit[16];
    const char *params[2] = {limit, r->cfg->topic_changes};
    PGresult *res, *upd;
    atomic_int failed = 0;
    char *ids = NULL;
    size_t len = 0;
    int n, rc;

    snprintf(limit, sizeof(limit), "%d", r->cfg->outbox_batch);
    res = PQexecParams(r->conn,
                       "SELECT id, reference, document::text FROM ccd.change_outbox "
                       "WHERE topic = $2 AND published_at IS NULL ORDER BY id LIMIT $1",
                       2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cs_db_error(r->conn, res, errstr, errstr_size);
        PQclear(res);
        return CS_ERR_RETRY;
    }
    if ((n = PQntuples(res)) == 0) {
        PQclear(res);
        atomic_store(&r->pending, 0);
        return 0;
    }
    cs_fault_point("before_outbox_publish");
    ids = malloc((size_t)n * 24 + 3);
    ids[len++] = '{';
    for (int i = 0; i < n; i++) {
        const char *ref = PQgetvalue(res, i, 1);
        const char *doc = PQgetvalue(res, i, 2);
        rd_kafka_resp_err_t err;

        do {
            err = rd_kafka_producev(r->producer, RD_KAFKA_V_TOPIC(r->cfg->topic_changes),
                                    RD_KAFKA_V_KEY(ref, strlen(ref)),
                                    RD_KAFKA_V_VALUE((void *)doc, strlen(doc)),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                    RD_KAFKA_V_OPAQUE(&failed), RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(r->producer, 50);
        } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        if (err)
            atomic_fetch_add(&failed, 1);
        len += (size_t)sprintf(ids + len, "%s%s", i ? "," : "", PQgetvalue(res, i, 0));
    }
    ids[len++] = '}';
    ids[len] = '\0';
    PQclear(res);
    if (rd_kafka_flush(r->producer, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        /* Nothing may keep a pointer to this frame's counter: drop the rest and
         * serve their reports now. The rows are published again next round. */
        rd_kafka_purge(r->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        while (rd_kafka_outq_len(r->producer) > 0)
            rd_kafka_poll(r->producer, 50);
        atomic_fetch_add(&failed, 1);
    }
    if (atomic_load(&failed) > 0) {
        snprintf(errstr, errstr_size, "%d of %d changes not delivered to %s", atomic_load(&failed),
                 n, r->cfg->topic_changes);
        cs_metric_inc(r->failures, 1);
        free(ids);
        return CS_ERR_RETRY;
    }
    cs_fault_point("after_outbox_publish");
    params[0] = ids;
    upd = PQexecParams(r->conn,
                       "UPDATE ccd.change_outbox SET published_at = now() "
                       "WHERE id = ANY($1::bigint[])",
                       1, NULL, params, NULL, NULL, 0);
    rc = PQresultStatus(upd) == PGRES_COMMAND_OK ? n : CS_ERR_RETRY;
    if (rc < 0)
        cs_db_error(r->conn, upd, errstr, errstr_size);
    PQclear(upd);
    free(ids);
    if (rc > 0)
        cs_metric_inc(r->published, rc);
    return rc;
}

static void wait_kick(cs_relay *r, long ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->mu);
    if (!r->kicked && !atomic_load(&r->stop))
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    r->kicked = false;
    pthread_mutex_unlock(&r->mu);
}

static void *relay_main(void *arg)
{
    cs_relay *r = arg;
    long backoff = 100;
    char errstr[512];
    bool last_round = false;

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
            cs_log_warn("outbox relay: %s; retrying in %ld ms", errstr, backoff);
            if (last_round)
                break;
            wait_kick(r, backoff);
            backoff = backoff * 2 > 10000 ? 10000 : backoff * 2;
            continue;
        }
        backoff = 100;
        if (rc == 0 && !last_round)
            wait_kick(r, 200);
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
    atomic_store(&r->pending, -1);
    r->published = cs_metric_counter("casestream_worker_outbox_published_total",
                                     "changes published from the outbox to case-changes");
    r->failures = cs_metric_counter("casestream_worker_outbox_failures_total",
                                    "outbox rounds that failed to deliver and were retried");
    if (!(conf = cs_kafka_conf_new(cfg, NULL, errstr, errstr_size))) {
        free(r);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    if (!(r->producer = cs_kafka_producer_new(cfg, conf, errstr, errstr_size))) {
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

long long cs_relay_pending(const cs_relay *r)
{
    return atomic_load(&((cs_relay *)r)->pending);
}
