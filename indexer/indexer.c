/* The indexer loop: consume case-changes, bulk-write to Elasticsearch, store offsets when
 * acknowledged. */
#include "indexer.h"

#include "fault.h"

#include "backoff.h"
#include "batch.h"
#include "bulk.h"
#include "consumer.h"
#include "db.h"
#include "dead_letter.h"
#include "err.h"
#include "es.h"
#include "health.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "probe.h"
#include "run.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long a stop may spend finishing the current bulk. */
#define DRAIN_MS 10000
/* How often Elasticsearch is asked whether it is back when no batch is retrying. */
#define PROBE_EVERY_MS 2000
/* Most acknowledged changes kept for clearing their dead letters while PostgreSQL fails. */
#define CLEAR_MAX 100000

const char *const cs_indexer_faults[] = {"before_bulk", "after_bulk_before_commit", "after_commit",
                                         NULL};

/* Each partition belongs to one slot (partition % --bulk-in-flight), and each slot has at most
 * one bulk in flight: a case's changes (one partition, DESIGN §2) reach Elasticsearch in order,
 * and a slot stores the offsets of its own partitions only, once its bulk is acknowledged, so no
 * stored offset passes a change that is not. The slots' bulks go out at the same time, each on a
 * thread of its own with its own connection; everything else (Kafka, PostgreSQL, offsets) stays
 * on the polling thread. */
typedef struct slot {
    cs_indexer *ix;
    cs_batch *fill;     /* consumed, waiting for the bulk in flight to be acknowledged */
    cs_batch *fly;      /* sent or to be retried; empty when the slot is idle */
    cs_es *es;          /* the slot's own connection */
    long long first_ms; /* arrival of fill's first message */
    long long retry_at; /* next attempt of fly after a failure; 0: not backing off */
    pthread_t thread;
    bool running;     /* the thread is started and not joined */
    atomic_bool done; /* the thread has finished its attempt */
    /* Written by the thread before done, read by the polling thread after the join. */
    int rc;
    cs_batch_stats st;
    char errstr[1024];
} slot;

struct cs_indexer {
    const cs_config *cfg;
    cs_consumer *consumer;
    cs_es *es;  /* templates, indices and probes, on the polling thread */
    PGconn *pg; /* for dead letters; connected when first needed */
    slot *slots;
    int nslots;
    bool queue_empty; /* the last poll found no message */
    bool held;        /* consuming is held: a slot's next batch is full */
    long long drain_deadline;
    int *parts; /* scratch for the offsets to store */
    int64_t *offs;
    size_t offs_cap;
    bool draining; /* stopping: no new messages join a batch */
    bool fatal;
    long long probe_at; /* next check whether Elasticsearch is back */
    /* Acknowledged changes whose older dead letters are still to be cleared (DESIGN §6). */
    int64_t *clear_refs, *clear_revs;
    size_t clear_n;
    long long clear_at; /* next try after a failure; 0: now */
    cs_backoff clear_backoff;
    pthread_mutex_t health_lock;
    bool healthy;
    char health[512];
    cs_health *readiness;
    cs_probe *probes[3];
    cs_metrics_server *metrics;
};

/* ---- metrics ---------------------------------------------------------------------------- */

static struct {
    cs_metric *messages, *indexed, *deleted, *conflicts, *superseded, *item_retries,
        *request_retries, *dead_letters, *cleared, *by_reference, *bulks, *bulk_seconds, *lag,
        *paused, *stalled;
} M;
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static void register_metrics(void)
{
    M.messages = cs_metric_counter("casestream_indexer_messages_total",
                                   "change messages consumed from Kafka");
    M.indexed = cs_metric_counter("casestream_indexer_documents_indexed_total",
                                  "documents written to Elasticsearch");
    M.deleted = cs_metric_counter("casestream_indexer_documents_deleted_total",
                                  "documents of disposed cases deleted from Elasticsearch");
    M.conflicts = cs_metric_counter("casestream_indexer_conflicts_total",
                                    "documents already in the index with this or a newer revision");
    M.superseded = cs_metric_counter("casestream_indexer_superseded_total",
                                     "changes not sent: a newer revision was in the same bulk");
    M.item_retries =
        cs_metric_counter("casestream_indexer_retries_total{kind=\"item\"}",
                          "retries: documents (429/5xx items) and whole bulk requests");
    M.request_retries =
        cs_metric_counter("casestream_indexer_retries_total{kind=\"request\"}", "retries");
    M.by_reference = cs_metric_counter("casestream_indexer_documents_by_reference_total",
                                       "documents read from postgresql for changes sent by "
                                       "reference");
    M.dead_letters = cs_metric_counter("casestream_indexer_dead_letters_total",
                                       "changes recorded in ccd.index_dead_letter");
    M.cleared = cs_metric_counter("casestream_indexer_dead_letters_cleared_total",
                                  "dead letters deleted because a later revision of their case "
                                  "was indexed");
    M.bulks = cs_metric_counter("casestream_indexer_bulk_requests_total",
                                "bulk requests sent to Elasticsearch");
    M.bulk_seconds =
        cs_metric_histogram("casestream_indexer_bulk_seconds", "latency of one bulk request");
    M.lag = cs_metric_gauge("casestream_indexer_lag",
                            "changes in the assigned partitions not yet acknowledged");
    M.paused = cs_metric_gauge("casestream_indexer_paused",
                               "1 while consumption is paused for Elasticsearch");
    M.stalled = cs_metric_gauge("casestream_indexer_stalled",
                                "1 while an assigned partition with lag makes no progress");
}

/* ---- health and faults ------------------------------------------------------------------ */

static void set_health(cs_indexer *ix, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_health(cs_indexer *ix, bool ok, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&ix->health_lock);
    ix->healthy = ok;
    va_start(ap, fmt);
    vsnprintf(ix->health, sizeof(ix->health), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&ix->health_lock);
}

static bool es_up(cs_indexer *ix)
{
    bool ok;

    pthread_mutex_lock(&ix->health_lock);
    ok = ix->healthy;
    pthread_mutex_unlock(&ix->health_lock);
    return ok;
}

/* The indexer's part of readiness (a cs_health_fn): bulks are acknowledged and no partition
 * is stalled. The services themselves are probed. */
static bool program_health(char *detail, size_t size, void *ctx)
{
    cs_indexer *ix = ctx;
    int stalled = cs_consumer_stalled(ix->consumer);
    bool ok;

    pthread_mutex_lock(&ix->health_lock);
    ok = ix->healthy;
    if (ok)
        snprintf(detail, size, "indexing=ok assigned=%d stalled=%d",
                 cs_consumer_assigned(ix->consumer), stalled);
    else
        snprintf(detail, size, "indexing=failing assigned=%d stalled=%d indexing_error=\"%s\"",
                 cs_consumer_assigned(ix->consumer), stalled, ix->health);
    pthread_mutex_unlock(&ix->health_lock);
    return ok && stalled == 0;
}

/* librdkafka's errors outside a request: with every broker down, or a fatal error, Kafka is
 * not ready until the next successful probe. */
static void on_kafka_error(rd_kafka_resp_err_t err, const char *reason, void *ctx)
{
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__FATAL)
        cs_health_down(ctx, "kafka", reason);
}

/* Probes Kafka, PostgreSQL (dead letters and documents sent by reference need it) and
 * Elasticsearch for /readyz, and serves the HTTP endpoint. */
static int start_health(cs_indexer *ix, char *errstr, size_t errstr_size)
{
    static const char *const names[] = {"kafka", "postgresql", "elasticsearch"};

    ix->probes[0] = cs_probe_kafka_new(cs_consumer_handle(ix->consumer));
    ix->probes[1] = cs_probe_pg_new(ix->cfg->pg, NULL, NULL, NULL);
    ix->probes[2] = cs_probe_es_new(ix->cfg);
    for (int i = 0; i < 3; i++) {
        if (!ix->probes[i] || cs_health_add(ix->readiness, names[i], cs_probe_run, ix->probes[i])) {
            snprintf(errstr, errstr_size, "out of memory");
            return CS_ERR;
        }
    }
    cs_health_set_program(ix->readiness, program_health, ix);
    if (cs_health_start(ix->readiness, errstr, errstr_size))
        return CS_ERR;
    ix->metrics = cs_metrics_server_start(ix->cfg->metrics_host, ix->cfg->metrics_port,
                                          ix->readiness, errstr, errstr_size);
    return ix->metrics ? CS_OK : CS_ERR;
}

/* ---- slots ------------------------------------------------------------------------------ */

static slot *slot_of(cs_indexer *ix, int partition)
{
    return &ix->slots[(partition < 0 ? 0 : partition) % ix->nslots];
}

/* The batch is as large as one bulk may be. */
static bool fill_full(const cs_indexer *ix, const slot *s)
{
    return cs_batch_count(s->fill) >= (size_t)ix->cfg->bulk_docs ||
           cs_batch_bytes(s->fill) >= (size_t)ix->cfg->bulk_bytes;
}

/* Some slot's bulk failed and waits for its next attempt. */
static bool any_failing(const cs_indexer *ix)
{
    for (int k = 0; k < ix->nslots; k++)
        if (ix->slots[k].retry_at)
            return true;
    return false;
}

static bool any_running(const cs_indexer *ix)
{
    for (int k = 0; k < ix->nslots; k++)
        if (ix->slots[k].running)
            return true;
    return false;
}

/* Some change is consumed and not acknowledged, or a bulk is in flight. */
static bool any_pending(const cs_indexer *ix)
{
    for (int k = 0; k < ix->nslots; k++) {
        const slot *s = &ix->slots[k];

        if (s->running || cs_batch_count(s->fly) > 0 || cs_batch_count(s->fill) > 0)
            return true;
    }
    return false;
}

static size_t pending_count(const cs_indexer *ix)
{
    size_t n = 0;

    for (int k = 0; k < ix->nslots; k++)
        n += cs_batch_count(ix->slots[k].fly) + cs_batch_count(ix->slots[k].fill);
    return n;
}

/* The slot's batch in flight is done with: the next one may go. */
static void reset_fly(slot *s)
{
    cs_batch_clear(s->fly);
    s->retry_at = 0;
}

/* Records the batch's dead letters; false if PostgreSQL failed (retry later). */
static bool write_dead_letters(cs_indexer *ix, cs_batch *batch)
{
    cs_dead_letter *dl = NULL;
    size_t n = cs_batch_dead_letters(batch, ix->cfg->topic_changes, &dl);
    char errstr[1024];
    int rc;

    if (n == 0)
        return true;
    if (n == (size_t)-1) {
        cs_log_error("out of memory listing dead letters");
        return false;
    }
    if (!ix->pg && !(ix->pg = cs_db_connect(ix->cfg->pg, errstr, sizeof(errstr)))) {
        cs_log_warn("could not connect to postgresql for dead letters: %s", errstr);
        free(dl);
        return false;
    }
    rc = cs_dead_letters_write(ix->pg, dl, n, errstr, sizeof(errstr));
    if (rc) {
        cs_log_warn("could not record %zu dead letters: %s", n, errstr);
        if (PQstatus(ix->pg) != CONNECTION_OK) {
            PQfinish(ix->pg);
            ix->pg = NULL;
        }
        free(dl);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        cs_log_error("dead letter case=%" PRId64 " revision=%" PRId64
                     " index=%s partition=%d offset=%" PRId64 ": %s",
                     dl[i].reference, dl[i].revision, dl[i].index ? dl[i].index : "-",
                     dl[i].partition, dl[i].offset, dl[i].reason);
    cs_metric_inc(M.dead_letters, (long long)n);
    cs_batch_dead_letters_written(batch);
    free(dl);
    return true;
}

/* Clears the dead letters that the batch's acknowledged changes resolve (those of the same
 * case at or below the revision now in the index), with those a failure left over. Clearing
 * never holds up indexing: when PostgreSQL fails, the changes are kept (up to CLEAR_MAX) and
 * tried again after a backoff. */
static void clear_dead_letters(cs_indexer *ix, const cs_batch *batch)
{
    size_t room = CLEAR_MAX - ix->clear_n;
    long long cleared = 0;
    char errstr[512];
    int rc;

    ix->clear_n += cs_batch_acknowledged(batch, ix->clear_refs + ix->clear_n,
                                         ix->clear_revs + ix->clear_n, room);
    if (ix->clear_n == 0 || cs_now_ms() < ix->clear_at)
        return;
    if (!ix->pg && !(ix->pg = cs_db_connect(ix->cfg->pg, errstr, sizeof(errstr)))) {
        rc = CS_ERR_RETRY;
    } else {
        rc = cs_dead_letters_clear(ix->pg, ix->clear_refs, ix->clear_revs, ix->clear_n, &cleared,
                                   errstr, sizeof(errstr));
        if (rc && PQstatus(ix->pg) != CONNECTION_OK) {
            PQfinish(ix->pg);
            ix->pg = NULL;
        }
    }
    if (rc) {
        long delay = cs_backoff_next(&ix->clear_backoff);

        ix->clear_at = cs_now_ms() + delay;
        cs_log_warn("could not clear the dead letters of %zu indexed changes: %s; retrying in "
                    "%ld ms",
                    ix->clear_n, errstr, delay);
        return;
    }
    if (cleared > 0)
        cs_log_info("cleared %lld dead letters: later revisions of their cases are indexed",
                    cleared);
    cs_metric_inc(M.cleared, cleared);
    ix->clear_n = 0;
    ix->clear_at = 0;
    cs_backoff_reset(&ix->clear_backoff);
}

/* Reads from PostgreSQL the documents of the changes sent by reference
 * (DESIGN §6): the case's change document, or its disposal document when it was
 * disposed of since. False, with the reason, when PostgreSQL failed: the attempt
 * is retried like a failed bulk. */
static bool resolve_omitted(cs_indexer *ix, cs_batch *batch, char *why, size_t why_size)
{
    int64_t refs[64];
    size_t n;

    while ((n = cs_batch_omitted(batch, refs, 64)) > 0) {
        if (!ix->pg && !(ix->pg = cs_db_connect(ix->cfg->pg, why, why_size)))
            return false;
        for (size_t i = 0; i < n; i++) {
            char ref[24];
            const char *params[] = {ref};
            PGresult *res;
            bool found;

            snprintf(ref, sizeof(ref), "%" PRId64, refs[i]);
            res = PQexecParams(ix->pg,
                               "SELECT ccd.change_document(c)::text FROM ccd.case_data c "
                               "WHERE c.reference = $1 UNION ALL "
                               "SELECT ccd.disposal_document(d)::text FROM ccd.disposed_case d "
                               "WHERE d.reference = $1",
                               1, NULL, params, NULL, NULL, 0);
            if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                cs_db_error(ix->pg, res, why, why_size);
                PQclear(res);
                if (PQstatus(ix->pg) != CONNECTION_OK) {
                    PQfinish(ix->pg);
                    ix->pg = NULL;
                }
                return false;
            }
            found = PQntuples(res) > 0;
            if (cs_batch_fill(batch, refs[i], found ? PQgetvalue(res, 0, 0) : NULL,
                              found ? (size_t)PQgetlength(res, 0, 0) : 0)) {
                PQclear(res);
                snprintf(why, why_size, "out of memory");
                return false;
            }
            PQclear(res);
            cs_metric_inc(M.by_reference, 1);
        }
    }
    return true;
}

/* Makes sure every index the batch writes to is behind its alias, or says once that it is a
 * plain index (DESIGN §6). False, with the reason, when Elasticsearch failed: the attempt is
 * retried like a failed bulk. */
static bool ensure_indices(cs_indexer *ix, const cs_batch *batch, char *why, size_t why_size)
{
    size_t max = cs_batch_count(batch), n;
    const char **names = malloc((max ? max : 1) * sizeof(*names));
    bool ok = true;

    if (!names) {
        snprintf(why, why_size, "out of memory");
        return false;
    }
    n = cs_batch_indices(batch, names, max);
    for (size_t i = 0; i < n && ok; i++) {
        char errstr[512];
        int rc = cs_es_ensure_index(ix->es, names[i], ix->cfg->max_fields, ix->cfg->refresh_ms,
                                    errstr, sizeof(errstr));

        if (rc == 1)
            cs_log_warn("index=%s is a plain index from before case indices were put behind "
                        "aliases: its documents keyed by the case reference stay beside the new "
                        "ones until `casestream reindex --new-index` moves it behind its alias",
                        names[i]);
        else if (rc == CS_ERR)
            cs_log_error("index=%s: %s; writing to it as it is", names[i], errstr);
        else if (rc < 0) {
            snprintf(why, why_size, "%s", errstr);
            ok = false;
        }
    }
    free(names);
    return ok;
}

/* Sends one bulk request to Elasticsearch on the slot's connection (a cs_batch_send_fn; ctx is
 * the slot), timed. Runs on the slot's thread. */
static int send_bulk(void *ctx, const cs_bulk_body *body, cs_es_response *out, char *errstr,
                     size_t errstr_size)
{
    slot *s = ctx;
    long long t0 = cs_now_us();
    int rc =
        cs_es_request(s->es, "POST", CS_BULK_PATH, body->buf, body->len, out, errstr, errstr_size);

    cs_metric_observe(M.bulk_seconds, (double)(cs_now_us() - t0) / 1e6);
    cs_metric_inc(M.bulks, 1);
    return rc;
}

/* The slot's thread: one attempt at its batch in flight. The batch, the connection and the
 * results are the thread's until the polling thread joins it. */
static void *slot_main(void *arg)
{
    slot *s = arg;

    s->rc = cs_batch_attempt(s->fly, send_bulk, s, &s->st, s->errstr, sizeof(s->errstr));
    atomic_store(&s->done, true);
    return NULL;
}

/* A failed attempt at the slot's batch: counted, retried after a backoff; consumption pauses
 * until every slot's batch is acknowledged. */
static void fail_slot(cs_indexer *ix, slot *s, const char *why)
{
    s->retry_at = cs_now_ms() + cs_batch_backoff(s->fly);
    cs_log_warn("bulk attempt %d failed: %s; retrying in %lld ms", cs_batch_failures(s->fly), why,
                s->retry_at - cs_now_ms());
    set_health(ix, false, "bulk failing: %s (attempt %d)", why, cs_batch_failures(s->fly));
    if (!cs_consumer_paused(ix->consumer))
        cs_consumer_set_paused(ix->consumer, true);
}

/* The slot's batch is acknowledged: store the offsets after it (its partitions are the slot's
 * alone), clear what it resolves, make room for the next. */
static void finish_slot(cs_indexer *ix, slot *s)
{
    size_t need = cs_batch_count(s->fly);
    size_t np;
    rd_kafka_topic_partition_list_t *list;
    char errstr[512];

    cs_fault_point("after_bulk_before_commit");
    clear_dead_letters(ix, s->fly);
    if (need > ix->offs_cap) {
        int *p = realloc(ix->parts, need * sizeof(*p));
        int64_t *o = p ? realloc(ix->offs, need * sizeof(*o)) : NULL;

        if (p)
            ix->parts = p;
        if (o)
            ix->offs = o;
        if (!p || !o) {
            /* Not storing is safe: the changes come again after a restart. */
            cs_log_error("out of memory storing offsets");
            ix->fatal = true;
            cs_running = 0;
            return;
        }
        ix->offs_cap = need;
    }
    np = cs_batch_offsets(s->fly, ix->parts, ix->offs, ix->offs_cap);
    list = rd_kafka_topic_partition_list_new((int)np);
    for (size_t i = 0; i < np; i++)
        rd_kafka_topic_partition_list_add(list, ix->cfg->topic_changes, ix->parts[i])->offset =
            ix->offs[i];
    if (cs_consumer_store(ix->consumer, list, errstr, sizeof(errstr)))
        cs_log_warn("%s", errstr);
    rd_kafka_topic_partition_list_destroy(list);
    cs_log_debug("bulk of %zu changes acknowledged", cs_batch_count(s->fly));
    if (strcmp(ix->cfg->fault, "after_commit") == 0) {
        cs_consumer_commit(ix->consumer, errstr, sizeof(errstr));
        cs_fault_point("after_commit");
    }
    reset_fly(s);
    if (cs_consumer_paused(ix->consumer) && !ix->draining && !any_failing(ix))
        cs_consumer_set_paused(ix->consumer, false);
}

/* What the slot's attempt did, once its thread is joined: counts, dead letters, then either
 * the offsets or the next attempt. */
static void conclude(cs_indexer *ix, slot *s)
{
    const cs_batch_stats *st = &s->st;
    char why[1200];
    bool failed = s->rc != CS_OK;

    snprintf(why, sizeof(why), "%s", s->errstr);
    if (st->splits > 0)
        cs_log_warn("bulk requests refused as a whole (HTTP 413 or 400): retrying in requests "
                    "of %zu",
                    cs_batch_request_size(s->fly));
    cs_metric_inc(M.indexed, (long long)st->indexed);
    cs_metric_inc(M.deleted, (long long)st->deleted);
    cs_metric_inc(M.conflicts, (long long)st->conflicts);
    cs_metric_inc(M.superseded, (long long)st->superseded);
    cs_metric_inc(M.item_retries, (long long)st->retries);
    if (failed)
        cs_metric_inc(M.request_retries, 1);
    if (!write_dead_letters(ix, s->fly) && !failed) {
        snprintf(why, sizeof(why), "could not record dead letters in postgresql");
        failed = true;
    }
    if (!failed && cs_batch_resolved(s->fly)) {
        if (cs_batch_failures(s->fly) > 0)
            cs_log_info("elasticsearch accepts writes again after %d failed attempts",
                        cs_batch_failures(s->fly));
        s->retry_at = 0;
        if (!any_failing(ix))
            set_health(ix, true, "ok");
        finish_slot(ix, s);
        return;
    }
    if (why[0] == '\0')
        snprintf(why, sizeof(why), "documents to retry");
    fail_slot(ix, s, why);
}

/* Waits for the slot's thread (its attempt ends within --es-timeout-ms) and concludes. */
static void join_slot(cs_indexer *ix, slot *s)
{
    if (!s->running)
        return;
    pthread_join(s->thread, NULL);
    s->running = false;
    conclude(ix, s);
}

/* Starts an attempt at the slot's batch in flight: the documents sent by reference are read and
 * the indices made sure of here, on the polling thread, then the slot's thread sends. A failure
 * on the way is counted and retried like a failed bulk. */
static void launch(cs_indexer *ix, slot *s)
{
    char errstr[1024], why[1200];
    int rc;

    if (cs_batch_failures(s->fly) == 0)
        cs_fault_point("before_bulk");
    if (!resolve_omitted(ix, s->fly, errstr, sizeof(errstr))) {
        snprintf(why, sizeof(why), "reading documents sent by reference: %s", errstr);
    } else if (!ensure_indices(ix, s->fly, errstr, sizeof(errstr))) {
        snprintf(why, sizeof(why), "making sure of the indices: %s", errstr);
    } else {
        if (ix->draining) {
            long long left = ix->drain_deadline - cs_now_ms();

            cs_es_set_timeout(s->es, (int)(left < ix->cfg->es_timeout_ms ? (left > 100 ? left : 100)
                                                                         : ix->cfg->es_timeout_ms));
        }
        memset(&s->st, 0, sizeof(s->st));
        s->errstr[0] = '\0';
        s->rc = CS_OK;
        atomic_store(&s->done, false);
        if ((rc = pthread_create(&s->thread, NULL, slot_main, s)) == 0) {
            s->running = true;
            return;
        }
        snprintf(why, sizeof(why), "could not start a thread: %s", strerror(rc));
    }
    cs_metric_inc(M.request_retries, 1);
    fail_slot(ix, s, why);
}

/* Every assigned partition is consumed up to its end as the last fetch saw it: no more changes
 * are on their way, so a partial bulk gains nothing by waiting. (A partition not consumed yet, or
 * not fetched yet, counts as caught up.) */
static bool caught_up(cs_indexer *ix)
{
    rd_kafka_t *rk = cs_consumer_handle(ix->consumer);
    rd_kafka_topic_partition_list_t *parts = NULL;
    bool yes = true;

    if (rd_kafka_assignment(rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || !parts)
        return true;
    if (rd_kafka_position(rk, parts) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < parts->cnt && yes; i++) {
            const rd_kafka_topic_partition_t *p = &parts->elems[i];
            int64_t lo, hi;

            if (p->offset >= 0 &&
                rd_kafka_get_watermark_offsets(rk, p->topic, p->partition, &lo, &hi) ==
                    RD_KAFKA_RESP_ERR_NO_ERROR &&
                hi >= 0 && p->offset < hi)
                yes = false;
        }
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return yes;
}

/* Concludes the attempts that ended, then starts those that are due: a retry whose backoff is
 * over, or a slot's next batch once its bulk in flight is acknowledged and the batch is full,
 * consuming is held, the stop has come, its first change is --bulk-linger-ms old, or nothing
 * more is queued or on its way and no bulk is in flight (light load: a partial bulk goes at once,
 * no linger; under load the batches fill while other bulks are in flight). */
static void step(cs_indexer *ix)
{
    long long now = cs_now_ms();

    for (int k = 0; k < ix->nslots; k++) {
        slot *s = &ix->slots[k];

        if (s->running && atomic_load(&s->done))
            join_slot(ix, s);
    }
    for (int k = 0; k < ix->nslots; k++) {
        slot *s = &ix->slots[k];
        cs_batch *t;

        if (s->running)
            continue;
        if (cs_batch_count(s->fly) > 0) {
            if (now >= s->retry_at)
                launch(ix, s);
            continue;
        }
        if (cs_batch_count(s->fill) == 0)
            continue;
        if (!(fill_full(ix, s) || ix->held || ix->draining ||
              now >= s->first_ms + ix->cfg->bulk_linger_ms ||
              (ix->queue_empty && !any_running(ix) && caught_up(ix))))
            continue;
        t = s->fly;
        s->fly = s->fill;
        s->fill = t;
        s->first_ms = 0;
        s->retry_at = 0;
        launch(ix, s);
    }
}

/* How long the next poll may wait: short while a bulk is in flight (its end is noticed on the
 * polling thread), 1 ms while an idle slot holds changes (they go once nothing more is queued),
 * until the next retry otherwise; -1 when a slot whose bulk is in flight has its next batch
 * full: nothing more is consumed until that bulk ends. */
static long long wait_ms(const cs_indexer *ix, long long now)
{
    long long t = 100;

    for (int k = 0; k < ix->nslots; k++) {
        const slot *s = &ix->slots[k];
        bool busy = s->running || cs_batch_count(s->fly) > 0;

        if (busy && fill_full(ix, s))
            return -1;
        if (s->running)
            t = t < 2 ? t : 2;
        else if (cs_batch_count(s->fly) > 0)
            t = s->retry_at - now < t ? (s->retry_at > now ? s->retry_at - now : 0) : t;
        else if (cs_batch_count(s->fill) > 0)
            t = t < 1 ? t : 1;
    }
    return t;
}

/* Revoke hook. The pending work of revoked partitions is dropped, not finished: their offsets
 * were never stored (they are stored only after their bulk is acknowledged), so the
 * partitions' next owner receives those changes again and writes them with the same external
 * versions, which changes nothing. Finishing them here instead would hold up the rebalance for
 * as long as Elasticsearch is down. A bulk in flight is waited for first (one request, within
 * --es-timeout-ms): its batch is its thread's until then, and what it acknowledged is stored
 * before the partitions go. The consumer then commits what was acknowledged. */
static bool on_revoke(const rd_kafka_topic_partition_list_t *parts, bool lost, void *ctx)
{
    cs_indexer *ix = ctx;

    (void)lost;
    for (int k = 0; k < ix->nslots; k++) {
        slot *s = &ix->slots[k];

        join_slot(ix, s);
        for (int i = 0; i < parts->cnt; i++) {
            cs_batch_drop_partition(s->fill, parts->elems[i].partition);
            cs_batch_drop_partition(s->fly, parts->elems[i].partition);
        }
        if (cs_batch_count(s->fly) == 0)
            reset_fly(s);
        if (cs_batch_count(s->fill) == 0) {
            cs_batch_clear(s->fill);
            s->first_ms = 0;
        }
    }
    /* With nothing left to retry, nothing stays paused (except while stopping). */
    if (!any_failing(ix) && cs_consumer_paused(ix->consumer) != ix->draining)
        cs_consumer_set_paused(ix->consumer, ix->draining);
    /* Only the revoked partitions' changes were dropped. */
    return false;
}

static void handle_message(cs_indexer *ix, rd_kafka_message_t *msg)
{
    slot *s;

    if (msg->err) {
        if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            cs_log_warn("consumer: %s", rd_kafka_message_errstr(msg));
        return;
    }
    cs_metric_inc(M.messages, 1);
    /* While stopping, a message outside the batches is left for the next run:
     * its offset is after every offset that will be stored. */
    if (ix->draining)
        return;
    s = slot_of(ix, msg->partition);
    if (cs_batch_count(s->fill) == 0)
        s->first_ms = cs_now_ms();
    if (cs_batch_add(s->fill, msg->partition, msg->offset, msg->key, msg->key_len, msg->payload,
                     msg->len)) {
        cs_log_error("out of memory adding partition=%" PRId32 " offset=%" PRId64, msg->partition,
                     msg->offset);
        ix->fatal = true;
        cs_running = 0;
    }
}

/* Polls once (at most timeout_ms, capped at 100 ms; -1: consuming is held, so only waits a
 * little for a bulk to end). */
static void poll_once(cs_indexer *ix, long long timeout_ms)
{
    rd_kafka_message_t *msg;

    ix->held = timeout_ms < 0;
    if (ix->held) {
        cs_sleep_ms(1);
        return;
    }
    if (timeout_ms > 100)
        timeout_ms = 100;
    msg = cs_consumer_poll(ix->consumer, (int)timeout_ms);
    ix->queue_empty = msg == NULL;
    if (msg) {
        handle_message(ix, msg);
        rd_kafka_message_destroy(msg);
    }
}

/* Stopping: pause, finish the batches consumed if Elasticsearch answers in time, commit what is
 * acknowledged. */
static void drain(cs_indexer *ix)
{
    ix->draining = true;
    ix->drain_deadline = cs_now_ms() + DRAIN_MS;
    cs_consumer_set_paused(ix->consumer, true);
    if (pending_count(ix) > 0 && !ix->fatal)
        cs_log_info("stopping: finishing %zu changes", pending_count(ix));
    while (!ix->fatal && any_pending(ix) && cs_now_ms() < ix->drain_deadline) {
        long long wait;

        step(ix);
        wait = wait_ms(ix, cs_now_ms());
        poll_once(ix, wait < 0 ? 1 : wait);
    }
    /* The bulks still in flight end within their timeout, set from the deadline. */
    for (int k = 0; k < ix->nslots; k++)
        join_slot(ix, &ix->slots[k]);
    if (pending_count(ix) > 0)
        cs_log_warn("stopping with %zu changes not acknowledged: they will be delivered again",
                    pending_count(ix));
}

/* After a failure with nothing left to retry (the batch was dropped in a rebalance), only a
 * probe tells when Elasticsearch is back. The probe is short: it runs on the polling thread. */
static void probe(cs_indexer *ix, long long now)
{
    cs_es_response r = CS_ES_RESPONSE_INIT;
    char errstr[512];

    if (now < ix->probe_at || any_pending(ix) || es_up(ix))
        return;
    ix->probe_at = now + PROBE_EVERY_MS;
    cs_es_set_timeout(ix->es, PROBE_EVERY_MS);
    if (cs_es_request(ix->es, "GET", "/", NULL, 0, &r, errstr, sizeof(errstr)) == CS_OK &&
        r.status < 500) {
        cs_log_info("elasticsearch answers again");
        set_health(ix, true, "ok");
    }
    cs_es_response_clear(&r);
    cs_es_set_timeout(ix->es, ix->cfg->es_timeout_ms);
}

int cs_indexer_run(cs_indexer *ix)
{
    char errstr[1024];
    int rc = CS_OK;
    cs_backoff wait;

    /* The template must exist before the first document creates an index. */
    cs_backoff_init(&wait, 500, 10000);
    while (cs_running) {
        int trc = cs_es_put_template(ix->es, ix->cfg->max_fields, ix->cfg->refresh_ms, errstr,
                                     sizeof(errstr));

        if (trc == CS_OK)
            break;
        if (trc != CS_ERR_RETRY) {
            cs_log_error("could not install the index template: %s", errstr);
            return CS_ERR;
        }
        set_health(ix, false, "waiting for elasticsearch: %s", errstr);
        long delay = cs_backoff_next(&wait);
        cs_log_warn("waiting for elasticsearch: %s; retrying in %ld ms", errstr, delay);
        cs_beat();
        cs_sleep_ms(delay);
    }
    if (!cs_running)
        return CS_OK;
    set_health(ix, true, "ok");
    if (cs_consumer_subscribe(ix->consumer, errstr, sizeof(errstr))) {
        cs_log_error("%s", errstr);
        return CS_ERR;
    }
    cs_log_info("indexing topic=%s group=%s es=%s bulk_docs=%d bulk_bytes=%d bulk_linger_ms=%d "
                "bulk_in_flight=%d",
                ix->cfg->topic_changes, ix->cfg->indexer_group, ix->cfg->es, ix->cfg->bulk_docs,
                ix->cfg->bulk_bytes, ix->cfg->bulk_linger_ms, ix->nslots);
    while (cs_running) {
        long long now;

        step(ix);
        if (!cs_running)
            break;
        now = cs_now_ms();
        poll_once(ix, wait_ms(ix, now));
        probe(ix, now);
        cs_consumer_tick(ix->consumer, es_up(ix));
    }
    drain(ix);
    /* Commits, then leaves the group; the revoke callback commits once more. */
    if (cs_consumer_close(ix->consumer, errstr, sizeof(errstr))) {
        cs_log_error("%s", errstr);
        rc = CS_ERR;
    }
    cs_log_info("stopped");
    return ix->fatal ? CS_ERR : rc;
}

cs_indexer *cs_indexer_new(const cs_config *cfg, int *why, char *errstr, size_t errstr_size)
{
    static const char *const consumer_defaults[] = {"enable.auto.offset.store",
                                                    "false",
                                                    "enable.auto.commit",
                                                    "true",
                                                    "auto.commit.interval.ms",
                                                    "1000",
                                                    "auto.offset.reset",
                                                    "earliest",
                                                    "client.id",
                                                    "casestream-indexer",
                                                    NULL};
    cs_consumer_opts copts = CS_CONSUMER_OPTS_INIT;
    cs_batch_opts bopts = CS_BATCH_OPTS_INIT;
    cs_indexer *ix;
    char pgerr[512];

    if (why)
        *why = CS_ERR;
    pthread_once(&metrics_once, register_metrics);
    if (!(ix = calloc(1, sizeof(*ix)))) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&ix->health_lock, NULL);
    ix->cfg = cfg;
    snprintf(ix->health, sizeof(ix->health), "starting");
    cs_backoff_init(&ix->clear_backoff, 1000, 60000);
    if (!(ix->clear_refs = malloc(CLEAR_MAX * sizeof(*ix->clear_refs))) ||
        !(ix->clear_revs = malloc(CLEAR_MAX * sizeof(*ix->clear_revs)))) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    if (!(ix->readiness = cs_health_new(cfg->live_seconds))) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    cs_kafka_set_error_hook(on_kafka_error, ix->readiness);
    bopts.max_docs = (size_t)cfg->bulk_docs;
    ix->nslots = cfg->bulk_in_flight > 0 ? cfg->bulk_in_flight : 1;
    if (!(ix->slots = calloc((size_t)ix->nslots, sizeof(*ix->slots)))) {
        ix->nslots = 0;
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    for (int k = 0; k < ix->nslots; k++) {
        slot *s = &ix->slots[k];

        s->ix = ix;
        atomic_init(&s->done, false);
        if (!(s->fill = cs_batch_new(&bopts)) || !(s->fly = cs_batch_new(&bopts))) {
            snprintf(errstr, errstr_size, "out of memory");
            goto fail;
        }
        if (!(s->es = cs_es_new_config(cfg, errstr, errstr_size)))
            goto fail;
    }
    if (!(ix->es = cs_es_new_config(cfg, errstr, errstr_size)))
        goto fail;
    /* -X properties win over these defaults. */
    copts.topic = cfg->topic_changes;
    copts.group = cfg->indexer_group;
    copts.defaults = consumer_defaults;
    copts.stall_seconds = cfg->stall_seconds;
    copts.revoke = on_revoke;
    copts.ctx = ix;
    copts.lag = M.lag;
    copts.paused = M.paused;
    copts.stalled = M.stalled;
    if (!(ix->consumer = cs_consumer_new(cfg, &copts, why, errstr, errstr_size)))
        goto fail;
    /* A database that is down now is retried when a dead letter needs it. */
    if (!(ix->pg = cs_db_connect(cfg->pg, pgerr, sizeof(pgerr))))
        cs_log_warn("could not connect to postgresql (needed for dead letters): %s", pgerr);
    /* Without the endpoint nobody asks: no probes either. */
    if (cfg->metrics_port > 0 && start_health(ix, errstr, errstr_size))
        goto fail;
    return ix;
fail:
    cs_indexer_free(ix);
    return NULL;
}

void cs_indexer_free(cs_indexer *ix)
{
    if (!ix)
        return;
    cs_metrics_server_free(ix->metrics);
    cs_health_stop(ix->readiness); /* the Kafka probe uses the consumer */
    for (int i = 0; i < 3; i++)
        cs_probe_free(ix->probes[i]);
    cs_consumer_free(ix->consumer);
    cs_es_free(ix->es);
    if (ix->pg)
        PQfinish(ix->pg);
    for (int k = 0; k < ix->nslots; k++) {
        slot *s = &ix->slots[k];

        if (s->running)
            pthread_join(s->thread, NULL);
        cs_batch_free(s->fill);
        cs_batch_free(s->fly);
        cs_es_free(s->es);
    }
    free(ix->slots);
    free(ix->clear_refs);
    free(ix->clear_revs);
    free(ix->parts);
    free(ix->offs);
    /* No Kafka handle is left to call the hook. */
    cs_kafka_set_error_hook(NULL, NULL);
    cs_health_free(ix->readiness);
    pthread_mutex_destroy(&ix->health_lock);
    free(ix);
}
