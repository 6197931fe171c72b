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

struct cs_indexer {
    const cs_config *cfg;
    cs_consumer *consumer;
    cs_es *es;
    PGconn *pg; /* for dead letters; connected when first needed */
    cs_batch *batch;
    int *parts; /* scratch for the offsets to store */
    int64_t *offs;
    size_t offs_cap;
    long long first_ms; /* arrival of the batch's first message */
    long long retry_at; /* next attempt of a failed batch; 0: not backing off */
    bool draining;      /* stopping: no new messages join the batch */
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

/* ---- Kafka ------------------------------------------------------------------------------ */

static void reset_batch(cs_indexer *ix)
{
    cs_batch_clear(ix->batch);
    ix->retry_at = 0;
    ix->first_ms = 0;
}

/* Revoke hook. The pending work of revoked partitions is dropped, not finished: their offsets
 * were never stored (they are stored only after the whole bulk is acknowledged), so the
 * partitions' next owner receives those changes again and writes them with the same external
 * versions, which changes nothing. Finishing them here instead would hold up the rebalance for
 * as long as Elasticsearch is down. The consumer then commits what was acknowledged. */
static bool on_revoke(const rd_kafka_topic_partition_list_t *parts, bool lost, void *ctx)
{
    cs_indexer *ix = ctx;

    (void)lost;
    for (int i = 0; i < parts->cnt; i++)
        cs_batch_drop_partition(ix->batch, parts->elems[i].partition);
    /* With nothing left to hold, nothing stays paused (except while stopping). */
    if (cs_batch_count(ix->batch) == 0) {
        reset_batch(ix);
        if (cs_consumer_paused(ix->consumer) != ix->draining)
            cs_consumer_set_paused(ix->consumer, ix->draining);
    }
    /* Only the revoked partitions' changes were dropped. */
    return false;
}

/* ---- one attempt at the batch ------------------------------------------------------------ */

/* Records the batch's dead letters; false if PostgreSQL failed (retry later). */
static bool write_dead_letters(cs_indexer *ix)
{
    cs_dead_letter *dl = NULL;
    size_t n = cs_batch_dead_letters(ix->batch, ix->cfg->topic_changes, &dl);
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
    cs_batch_dead_letters_written(ix->batch);
    free(dl);
    return true;
}

/* Clears the dead letters that the batch's acknowledged changes resolve (those of the same
 * case at or below the revision now in the index), with those a failure left over. Clearing
 * never holds up indexing: when PostgreSQL fails, the changes are kept (up to CLEAR_MAX) and
 * tried again after a backoff. */
static void clear_dead_letters(cs_indexer *ix)
{
    size_t room = CLEAR_MAX - ix->clear_n;
    long long cleared = 0;
    char errstr[512];
    int rc;

    ix->clear_n += cs_batch_acknowledged(ix->batch, ix->clear_refs + ix->clear_n,
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
static bool resolve_omitted(cs_indexer *ix, char *why, size_t why_size)
{
    int64_t refs[64];
    size_t n;

    while ((n = cs_batch_omitted(ix->batch, refs, 64)) > 0) {
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
            if (cs_batch_fill(ix->batch, refs[i], found ? PQgetvalue(res, 0, 0) : NULL,
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
static bool ensure_indices(cs_indexer *ix, char *why, size_t why_size)
{
    size_t max = cs_batch_count(ix->batch), n;
    const char **names = malloc((max ? max : 1) * sizeof(*names));
    bool ok = true;

    if (!names) {
        snprintf(why, why_size, "out of memory");
        return false;
    }
    n = cs_batch_indices(ix->batch, names, max);
    for (size_t i = 0; i < n && ok; i++) {
        char errstr[512];
        int rc = cs_es_ensure_index(ix->es, names[i], ix->cfg->max_fields, errstr, sizeof(errstr));

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

/* Sends one bulk request to Elasticsearch (a cs_batch_send_fn; ctx is the indexer), timed. */
static int send_bulk(void *ctx, const cs_bulk_body *body, cs_es_response *out, char *errstr,
                     size_t errstr_size)
{
    cs_indexer *ix = ctx;
    long long t0 = cs_now_us();
    int rc =
        cs_es_request(ix->es, "POST", CS_BULK_PATH, body->buf, body->len, out, errstr, errstr_size);

    cs_metric_observe(M.bulk_seconds, (double)(cs_now_us() - t0) / 1e6);
    cs_metric_inc(M.bulks, 1);
    return rc;
}

/* Sends every pending change of the batch once. Returns true when the batch
 * is resolved; otherwise schedules the next attempt and pauses consumption. */
static bool attempt(cs_indexer *ix)
{
    cs_batch_stats st = {0};
    char errstr[1024], why[1200] = "";
    bool failed = false;

    if (cs_batch_failures(ix->batch) == 0)
        cs_fault_point("before_bulk");
    if (!resolve_omitted(ix, errstr, sizeof(errstr))) {
        snprintf(why, sizeof(why), "reading documents sent by reference: %s", errstr);
        failed = true;
    } else if (!ensure_indices(ix, errstr, sizeof(errstr))) {
        snprintf(why, sizeof(why), "making sure of the indices: %s", errstr);
        failed = true;
    } else if (cs_batch_attempt(ix->batch, send_bulk, ix, &st, errstr, sizeof(errstr)) != CS_OK) {
        snprintf(why, sizeof(why), "%s", errstr);
        failed = true;
    } else {
        /* Items to retry, if any: the attempt says how many and why. */
        snprintf(why, sizeof(why), "%s", errstr);
    }
    if (st.splits > 0)
        cs_log_warn("bulk requests refused as a whole (HTTP 413 or 400): retrying in requests "
                    "of %zu",
                    cs_batch_request_size(ix->batch));
    cs_metric_inc(M.indexed, (long long)st.indexed);
    cs_metric_inc(M.deleted, (long long)st.deleted);
    cs_metric_inc(M.conflicts, (long long)st.conflicts);
    cs_metric_inc(M.superseded, (long long)st.superseded);
    cs_metric_inc(M.item_retries, (long long)st.retries);
    if (failed)
        cs_metric_inc(M.request_retries, 1);
    if (!write_dead_letters(ix) && !failed) {
        snprintf(why, sizeof(why), "could not record dead letters in postgresql");
        failed = true;
    }
    if (!failed && cs_batch_resolved(ix->batch)) {
        if (cs_batch_failures(ix->batch) > 0)
            cs_log_info("elasticsearch accepts writes again after %d failed attempts",
                        cs_batch_failures(ix->batch));
        set_health(ix, true, "ok");
        return true;
    }
    if (why[0] == '\0')
        snprintf(why, sizeof(why), "documents to retry");
    ix->retry_at = cs_now_ms() + cs_batch_backoff(ix->batch);
    cs_log_warn("bulk attempt %d failed: %s; retrying in %lld ms", cs_batch_failures(ix->batch),
                why, ix->retry_at - cs_now_ms());
    set_health(ix, false, "bulk failing: %s (attempt %d)", why, cs_batch_failures(ix->batch));
    if (!cs_consumer_paused(ix->consumer))
        cs_consumer_set_paused(ix->consumer, true);
    return false;
}

/* The batch is acknowledged: store the offsets after it, start the next one. */
static void finish_batch(cs_indexer *ix)
{
    size_t need = cs_batch_count(ix->batch);
    size_t np;
    rd_kafka_topic_partition_list_t *list;
    char errstr[512];

    cs_fault_point("after_bulk_before_commit");
    clear_dead_letters(ix);
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
    np = cs_batch_offsets(ix->batch, ix->parts, ix->offs, ix->offs_cap);
    list = rd_kafka_topic_partition_list_new((int)np);
    for (size_t i = 0; i < np; i++)
        rd_kafka_topic_partition_list_add(list, ix->cfg->topic_changes, ix->parts[i])->offset =
            ix->offs[i];
    if (cs_consumer_store(ix->consumer, list, errstr, sizeof(errstr)))
        cs_log_warn("%s", errstr);
    rd_kafka_topic_partition_list_destroy(list);
    cs_log_debug("bulk of %zu changes acknowledged", cs_batch_count(ix->batch));
    if (strcmp(ix->cfg->fault, "after_commit") == 0) {
        cs_consumer_commit(ix->consumer, errstr, sizeof(errstr));
        cs_fault_point("after_commit");
    }
    reset_batch(ix);
    if (cs_consumer_paused(ix->consumer) && !ix->draining)
        cs_consumer_set_paused(ix->consumer, false);
}

static void handle_message(cs_indexer *ix, rd_kafka_message_t *msg)
{
    if (msg->err) {
        if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            cs_log_warn("consumer: %s", rd_kafka_message_errstr(msg));
        return;
    }
    cs_metric_inc(M.messages, 1);
    /* While stopping, a message outside the batch is left for the next run:
     * its offset is after every offset that will be stored. */
    if (ix->draining)
        return;
    if (cs_batch_count(ix->batch) == 0)
        ix->first_ms = cs_now_ms();
    if (cs_batch_add(ix->batch, msg->partition, msg->offset, msg->key, msg->key_len, msg->payload,
                     msg->len)) {
        cs_log_error("out of memory adding partition=%" PRId32 " offset=%" PRId64, msg->partition,
                     msg->offset);
        ix->fatal = true;
        cs_running = 0;
    }
}

/* Milliseconds until the batch should be sent (0: now), or -1 if empty. */
static long long due_in(const cs_indexer *ix, long long now)
{
    if (cs_batch_count(ix->batch) == 0)
        return -1;
    if (ix->retry_at)
        return ix->retry_at > now ? ix->retry_at - now : 0;
    if (cs_batch_count(ix->batch) >= (size_t)ix->cfg->bulk_docs ||
        cs_batch_bytes(ix->batch) >= (size_t)ix->cfg->bulk_bytes)
        return 0;
    return ix->first_ms + ix->cfg->bulk_linger_ms > now
               ? ix->first_ms + ix->cfg->bulk_linger_ms - now
               : 0;
}

static void poll_once(cs_indexer *ix, long long timeout_ms)
{
    rd_kafka_message_t *msg;

    if (timeout_ms > 100)
        timeout_ms = 100;
    if (timeout_ms < 0)
        timeout_ms = 0;
    if ((msg = cs_consumer_poll(ix->consumer, (int)timeout_ms)) != NULL) {
        handle_message(ix, msg);
        rd_kafka_message_destroy(msg);
    }
}

/* Stopping: pause, finish the current batch if Elasticsearch answers in
 * time, commit what is acknowledged. */
static void drain(cs_indexer *ix)
{
    long long deadline = cs_now_ms() + DRAIN_MS;
    long long now;

    ix->draining = true;
    cs_consumer_set_paused(ix->consumer, true);
    if (cs_batch_count(ix->batch) > 0 && !ix->fatal)
        cs_log_info("stopping: finishing a bulk of %zu changes", cs_batch_count(ix->batch));
    while (!ix->fatal && cs_batch_count(ix->batch) > 0 && (now = cs_now_ms()) < deadline) {
        if (!ix->retry_at || now >= ix->retry_at) {
            long long left = deadline - now;

            cs_es_set_timeout(ix->es,
                              (int)(left < ix->cfg->es_timeout_ms ? (left > 100 ? left : 100)
                                                                  : ix->cfg->es_timeout_ms));
            if (attempt(ix)) {
                finish_batch(ix);
                break;
            }
        }
        poll_once(ix, due_in(ix, cs_now_ms()));
    }
    if (cs_batch_count(ix->batch) > 0)
        cs_log_warn("stopping with %zu changes not acknowledged: they will be delivered again",
                    cs_batch_count(ix->batch));
}

/* After a failure with nothing left to retry (the batch was dropped in a rebalance), only a
 * probe tells when Elasticsearch is back. The probe is short: it runs on the polling thread. */
static void probe(cs_indexer *ix, long long now)
{
    cs_es_response r = CS_ES_RESPONSE_INIT;
    char errstr[512];

    if (now < ix->probe_at || cs_batch_count(ix->batch) > 0 || es_up(ix))
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
        int trc = cs_es_put_template(ix->es, ix->cfg->max_fields, errstr, sizeof(errstr));

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
    cs_log_info("indexing topic=%s group=%s es=%s bulk_docs=%d bulk_bytes=%d bulk_linger_ms=%d",
                ix->cfg->topic_changes, ix->cfg->indexer_group, ix->cfg->es, ix->cfg->bulk_docs,
                ix->cfg->bulk_bytes, ix->cfg->bulk_linger_ms);
    while (cs_running) {
        long long now = cs_now_ms();
        long long due = due_in(ix, now);

        if (due == 0 && attempt(ix))
            finish_batch(ix);
        if (!cs_running)
            break;
        now = cs_now_ms();
        poll_once(ix, (due = due_in(ix, now)) < 0 ? 100 : due);
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
    if (!(ix->batch = cs_batch_new(&bopts))) {
        snprintf(errstr, errstr_size, "out of memory");
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
    cs_batch_free(ix->batch);
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
