/* The worker's consume loop: batches, appliers in parallel by case, outcomes, Redis, offsets.
 *
 * One thread polls Kafka and owns every message. A batch is taken from the
 * polled messages, its submissions are validated, repeats are answered from
 * Redis, and the rest are split by case reference across the appliers (one
 * PostgreSQL connection each), which run concurrently. Only when every
 * applier has committed are the outcomes produced; only when every outcome
 * (and DLQ copy) is delivered are the batch's offsets stored for the
 * auto-commit. Rebalance callbacks run inside poll, between batches, so a
 * revoke never sees half-done work: messages polled but not yet processed
 * are dropped and will be delivered again to the new owner. */
#include "worker.h"

#include "apply.h"
#include "backoff.h"
#include "batching.h"
#include "consumer.h"
#include "decide.h"
#include "err.h"
#include "fault.h"
#include "health.h"
#include "idem.h"
#include "job.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "probe.h"
#include "redis.h"
#include "run.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The readiness query of PostgreSQL: the outbox backlog, counted up to a bound so that it
 * stays cheap with the partial index on unpublished rows. */
#define BACKLOG_SQL                                                                                \
    "SELECT count(*) FROM (SELECT 1 FROM ccd.change_outbox WHERE topic = $1 AND "                  \
    "published_at IS NULL LIMIT 100000) b"

const char *const cs_worker_faults[] = {
    "before_commit",        "mid_batch", "after_commit", "after_outcome", "before_outbox_publish",
    "after_outbox_publish", NULL};

typedef struct applier_slot {
    cs_worker *w;
    cs_applier *applier;
    pthread_t thread;
    cs_job **jobs;
    size_t n;
    int rc;
    char errstr[512];
} applier_slot;

/* The histograms of the stages of a submission's way (DESIGN §8). */
enum stage {
    STAGE_POLL_DELAY,
    STAGE_BATCH_WAIT,
    STAGE_REDIS_READ,
    STAGE_REDIS_WRITE, /* next to its read: one metric family, rendered together */
    STAGE_COMMIT,
    STAGE_DELIVERY,
    STAGE_SUBMISSION,
    STAGE_HOUSEKEEPING,
    STAGE_COUNT
};

static const char *const stage_metrics[STAGE_COUNT][2] = {
    {"casestream_worker_poll_delay_seconds", "from a submission's Kafka timestamp to its poll"},
    {"casestream_worker_batch_wait_seconds",
     "from the poll of a batch's first submission to the batch's dispatch"},
    {"casestream_worker_redis_seconds{op=\"read\"}", "one batch's Redis round trip"},
    {"casestream_worker_redis_seconds{op=\"write\"}", "one batch's Redis round trip"},
    {"casestream_worker_commit_seconds",
     "the appliers' run that committed a batch: round trips and COMMIT"},
    {"casestream_worker_delivery_seconds",
     "from producing a batch's outcomes to the last delivery report"},
    {"casestream_worker_submission_seconds",
     "from a submission's Kafka timestamp to its outcome delivered"},
    {"casestream_worker_housekeeping_seconds",
     "the polling thread's housekeeping between batches (lag, probes, pruning)"}};

struct cs_worker {
    const cs_config *cfg;
    cs_consumer *consumer;
    rd_kafka_t *producer;
    cs_idem *idem;
    cs_relay *relay;
    cs_metrics_server *metrics;
    cs_health *health;
    cs_probe *probes[3];
    /* polled, not yet processed, and when each was polled (cs_now_us) */
    rd_kafka_message_t **pending;
    long long *polled_us;
    size_t npending, cap_pending;
    size_t pending_bytes; /* of the values and keys in pending */
    bool revoked;         /* since the batch being applied began */
    unsigned revokes;     /* revocations so far (a batch finished after one stores no offsets) */
    /* applier pool */
    applier_slot *slots;
    int nslots;
    pthread_mutex_t mu;
    pthread_cond_t start_cv, done_cv;
    unsigned round;
    int running_slots;
    bool stopping;
    /* health */
    atomic_bool pg_ok;
    atomic_bool kafka_ok;
    long long next_prune_ms, next_probe_ms;
    /* metrics */
    cs_metric *outcomes[CS_STATUS_COUNT];
    cs_metric *apply_seconds, *batch_size, *batches, *redis_fallbacks, *redis_hits, *lag, *paused,
        *stalled, *retries, *dlq, *delivery_retries, *unreadable, *backlog;
    cs_metric *stage[STAGE_COUNT];
};

/* Seconds from a submission's Kafka timestamp to now_ms (the wall clock, as the timestamp),
 * or -1 when the message has none. A producer's clock ahead of ours counts as 0. */
static double since_timestamp(const rd_kafka_message_t *m, long long now_ms)
{
    rd_kafka_timestamp_type_t type;
    int64_t ts = rd_kafka_message_timestamp(m, &type);

    if (type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE || ts < 0)
        return -1;
    return now_ms > ts ? (double)(now_ms - ts) / 1e3 : 0;
}

/* --- applier pool --------------------------------------------------------------- */

static void *slot_main(void *arg)
{
    applier_slot *s = arg;
    cs_worker *w = s->w;
    unsigned seen = 0;

    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (w->round == seen && !w->stopping)
            pthread_cond_wait(&w->start_cv, &w->mu);
        if (w->stopping) {
            pthread_mutex_unlock(&w->mu);
            return NULL;
        }
        seen = w->round;
        pthread_mutex_unlock(&w->mu);
        s->rc =
            s->n ? cs_applier_run(s->applier, s->jobs, s->n, s->errstr, sizeof(s->errstr)) : CS_OK;
        pthread_mutex_lock(&w->mu);
        if (--w->running_slots == 0)
            pthread_cond_signal(&w->done_cv);
        pthread_mutex_unlock(&w->mu);
    }
}

/* Runs the undecided valid jobs on the appliers, split by case across as many as
 * cs_batching_appliers says. Returns 0 or CS_ERR_RETRY (some applier could not commit; its jobs
 * stay undecided). */
static int run_appliers(cs_worker *w, cs_job *jobs, size_t n, char *errstr, size_t errstr_size)
{
    int rc = CS_OK;
    size_t todo = 0, used;

    for (size_t i = 0; i < n; i++)
        todo += !jobs[i].decided;
    if (todo == 0)
        return CS_OK;
    used = cs_batching_appliers(todo, (size_t)w->nslots);
    for (int i = 0; i < w->nslots; i++)
        w->slots[i].n = 0;
    for (size_t i = 0; i < n; i++) {
        if (jobs[i].decided)
            continue;
        applier_slot *s = &w->slots[(uint64_t)jobs[i].sub->case_reference % (uint64_t)used];
        s->jobs[s->n++] = &jobs[i];
    }
    pthread_mutex_lock(&w->mu);
    w->running_slots = w->nslots;
    w->round++;
    pthread_cond_broadcast(&w->start_cv);
    while (w->running_slots > 0)
        pthread_cond_wait(&w->done_cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->nslots; i++) {
        if (w->slots[i].rc) {
            snprintf(errstr, errstr_size, "%s", w->slots[i].errstr);
            rc = CS_ERR_RETRY;
        }
    }
    return rc;
}

/* --- Kafka -------------------------------------------------------------------------- */

static void drop_pending(cs_worker *w)
{
    for (size_t i = 0; i < w->npending; i++)
        rd_kafka_message_destroy(w->pending[i]);
    w->npending = 0;
    w->pending_bytes = 0;
}

/* Revoke hook: everything stored is complete; what is polled but unprocessed is dropped and
 * redelivered to the next owner. A batch in hand is dropped by process() once it sees revoked.
 * Both hold submissions of the partitions kept too (an incremental rebalance gives up only
 * some): the consumer moves those back to their acknowledged offsets (returns true). */
static bool on_revoke(const rd_kafka_topic_partition_list_t *parts, bool lost, void *ctx)
{
    cs_worker *w = ctx;

    (void)parts;
    (void)lost;
    if (w->npending > 0)
        cs_log_info("dropping polled submissions after a revoke count=%zu", w->npending);
    drop_pending(w);
    w->revoked = true;
    w->revokes++;
    return true;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    cs_worker *w = opaque;
    cs_job *j = m->_private;

    (void)rk;
    if (!j)
        return;
    j->pending_deliveries--;
    if (m->err) {
        bool dlq = strcmp(rd_kafka_topic_name(m->rkt), w->cfg->topic_dlq) == 0;

        j->delivery_failed = true;
        /* A copy too large for the broker is sent again cut in half: one
         * message must not hold up every other. */
        if (dlq && cs_kafka_err_too_large(m->err))
            j->dlq_cap = (m->len > 2048 ? m->len : 2048) / 2;
        cs_log_warn("%s not delivered case=%" PRId64 " partition=%d offset=%" PRId64
                    " error=\"%s\"",
                    dlq ? "dlq copy" : "outcome", j->sub ? j->sub->case_reference : 0, j->partition,
                    j->offset, rd_kafka_err2str(m->err));
    }
}

/* What a message counts for against --batch-bytes: its value and key. */
static size_t message_bytes(const rd_kafka_message_t *m)
{
    return m->len + m->key_len;
}

/* Polls once; keeps a message, handles an error event. */
static void poll_once(cs_worker *w, int timeout_ms)
{
    rd_kafka_message_t *m = cs_consumer_poll(w->consumer, timeout_ms);

    if (!m)
        return;
    if (m->err) {
        /* Reported, not acted on: whether Kafka answers is the readiness probe's to say. */
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            cs_log_warn("kafka consumer: %s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return;
    }
    atomic_store(&w->kafka_ok, true);
    double delay = since_timestamp(m, cs_wall_ms());

    if (delay >= 0)
        cs_metric_observe(w->stage[STAGE_POLL_DELAY], delay);
    if (w->npending == w->cap_pending) {
        size_t cap = w->cap_pending ? w->cap_pending * 2 : 1024;
        rd_kafka_message_t **grown = realloc(w->pending, cap * sizeof(*grown));
        long long *times = grown ? realloc(w->polled_us, cap * sizeof(*times)) : NULL;

        if (grown)
            w->pending = grown;
        if (!times) {
            /* Nothing after this message may be processed, or its offset
             * would be stored past it: stop, and it comes again next run. */
            cs_log_error("out of memory keeping a polled message partition=%d offset=%" PRId64,
                         m->partition, m->offset);
            rd_kafka_message_destroy(m);
            cs_running = 0;
            return;
        }
        w->polled_us = times;
        w->cap_pending = cap;
    }
    w->polled_us[w->npending] = cs_now_us();
    w->pending[w->npending++] = m;
    w->pending_bytes += message_bytes(m);
}

/* Polls until the batch in hand goes (cs_batching_wait_ms): full (by count or bytes), or
 * nothing more queued and --batch-linger-ms passed since its first message. Returns with nothing in
 * hand after an idle poll, for the caller's housekeeping. */
static void fill(cs_worker *w)
{
    bool drained = false;

    while (cs_running) {
        size_t before = w->npending;
        int wait;

        if (before == 0) {
            poll_once(w, 100);
            if (w->npending == 0)
                return; /* idle: let the caller do housekeeping */
            continue;
        }
        wait = cs_batching_wait_ms(before, (size_t)w->cfg->batch_size, w->pending_bytes,
                                   (size_t)w->cfg->batch_bytes, drained,
                                   (cs_now_us() - w->polled_us[0]) / 1000, w->cfg->batch_linger_ms);
        if (wait == CS_BATCHING_GO)
            return;
        poll_once(w, wait);
        drained = w->npending == before;
    }
}

/* --- one batch ------------------------------------------------------------------------ */

/* Parses and checks one message; one the validator refuses is decided here (invalid or
 * rejected, and copied to the DLQ: cs_job_dead_letter). Returns
 * false when out of memory (the job is left undecided). */
static bool validate(cs_worker *w, cs_job *j)
{
    rd_kafka_message_t *m = j->msg;

    j->partition = m->partition;
    j->offset = m->offset;
    j->verdict = cs_submission_parse(m->payload, m->len, m->key, m->key_len,
                                     (size_t)w->cfg->max_message_bytes, &j->sub, j->reason,
                                     sizeof(j->reason));
    if (j->verdict != CS_VALID && cs_job_decide_refused(j))
        return false;
    if (j->verdict == CS_VALID && cs_submission_fingerprint(j->sub, j->fingerprint))
        j->fingerprint[0] = '\0'; /* out of memory: a repeat of its key is not compared */
    if (j->verdict != CS_VALID)
        cs_log_info("submission %s case=%" PRId64 " partition=%d offset=%" PRId64 " error=\"%s\"",
                    cs_status_name(j->status), j->sub ? j->sub->case_reference : 0, j->partition,
                    j->offset, j->reason);
    return true;
}

/* Answers repeats of applied keys from Redis. */
static void redis_fast_path(cs_worker *w, cs_job *jobs, size_t n)
{
    int64_t *refs = calloc(n, sizeof(*refs));
    const char **keys = calloc(n, sizeof(*keys));
    char **found = calloc(n, sizeof(*found));
    size_t *index = calloc(n, sizeof(*index));
    size_t m = 0;
    char errstr[256];

    if (!refs || !keys || !found || !index) {
        cs_log_warn("out of memory: repeats left to postgresql");
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        if (jobs[i].decided)
            continue;
        refs[m] = jobs[i].sub->case_reference;
        keys[m] = jobs[i].sub->idempotency_key;
        index[m++] = i;
    }
    if (cs_idem_get(w->idem, m, refs, keys, found, errstr, sizeof(errstr))) {
        cs_metric_inc(w->redis_fallbacks, 1);
        cs_log_warn("redis unavailable, using postgresql alone: %s", errstr);
    }
    for (size_t k = 0; k < m; k++) {
        cs_job *j = &jobs[index[k]];
        cs_applied_key applied;
        cs_outcome *o = NULL;

        if (!found[k])
            continue;
        /* Only a redelivery and a later resubmission of the same payload are answered here
         * (cs_decide_repeat): the rest only PostgreSQL's records answer. */
        if (cs_outcome_parse(found[k], strlen(found[k]), &o) == CS_OK &&
            cs_applied_key_from_outcome(o, &applied))
            cs_decide_repeat(j, &applied, false);
        if (j->decided)
            cs_metric_inc(w->redis_hits, 1);
        cs_outcome_free(o);
        free(found[k]);
    }
cleanup:
    free(refs);
    free(keys);
    free(found);
    free(index);
}

/* The Redis entry of an applied job: its outcome with the payload's
 * fingerprint as one more member (replays render only the outcome's own).
 * Returns text the caller frees, or NULL. */
static char *redis_entry(const cs_job *j)
{
    cs_outcome o;

    cs_job_outcome(j, &o);
    memcpy(o.payload_sha256, j->fingerprint, sizeof(o.payload_sha256));
    return cs_outcome_render(&o);
}

static void remember_applied(cs_worker *w, cs_job *jobs, size_t n)
{
    int64_t *refs = calloc(n, sizeof(*refs));
    const char **keys = calloc(n, sizeof(*keys));
    char **outs = calloc(n, sizeof(*outs));
    size_t m = 0;
    char errstr[256];

    if (!refs || !keys || !outs) {
        cs_log_warn("out of memory: applied outcomes not written to redis");
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        if (!jobs[i].applied || !(outs[m] = redis_entry(&jobs[i])))
            continue;
        refs[m] = jobs[i].sub->case_reference;
        keys[m++] = jobs[i].sub->idempotency_key;
    }
    if (cs_idem_put(w->idem, m, refs, keys, (const char **)outs, errstr, sizeof(errstr))) {
        cs_metric_inc(w->redis_fallbacks, 1);
        cs_log_warn("redis unavailable, idempotency kept in postgresql only: %s", errstr);
    }
cleanup:
    for (size_t i = 0; outs && i < m; i++)
        free(outs[i]);
    free(refs);
    free(keys);
    free(outs);
}

/* The DLQ copy of a message the validator refused: its value and key cut to what always
 * fits the DLQ topic (DESIGN §2), saying so in a header. */
static rd_kafka_resp_err_t produce_dlq_copy(cs_worker *w, cs_job *j)
{
    rd_kafka_message_t *m = j->msg;
    size_t cap = j->dlq_cap ? j->dlq_cap : cs_kafka_copy_max(w->cfg);
    size_t len = m->len > cap ? cap : m->len;
    size_t klen = m->key_len > CS_KAFKA_MAX_KEY ? CS_KAFKA_MAX_KEY : m->key_len;
    char part[16], off[24], cut[96];
    rd_kafka_headers_t *hdrs;
    rd_kafka_resp_err_t err;

    snprintf(part, sizeof(part), "%" PRId32, j->partition);
    snprintf(off, sizeof(off), "%" PRId64, j->offset);
    cut[0] = '\0';
    if (len < m->len || klen < m->key_len)
        snprintf(cut, sizeof(cut), "value %zu of %zu bytes, key %zu of %zu bytes", len, m->len,
                 klen, m->key_len);
    hdrs = rd_kafka_headers_new(5);
    rd_kafka_header_add(hdrs, "error", -1, j->reason, -1);
    rd_kafka_header_add(hdrs, "source.topic", -1, w->cfg->topic_events, -1);
    rd_kafka_header_add(hdrs, "source.partition", -1, part, -1);
    rd_kafka_header_add(hdrs, "source.offset", -1, off, -1);
    if (cut[0])
        rd_kafka_header_add(hdrs, "truncated", -1, cut, -1);
    err = rd_kafka_producev(w->producer, RD_KAFKA_V_TOPIC(w->cfg->topic_dlq),
                            RD_KAFKA_V_KEY(m->key, klen), RD_KAFKA_V_VALUE(m->payload, len),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(j),
                            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
    if (err) /* the headers are the message's only once it is queued */
        rd_kafka_headers_destroy(hdrs);
    return err;
}

static rd_kafka_resp_err_t produce_job(cs_worker *w, cs_job *j)
{
    char keybuf[24];
    size_t klen;
    const char *key = cs_job_result_key(j, &klen, keybuf, sizeof(keybuf));
    rd_kafka_resp_err_t err;

    if (klen > CS_KAFKA_MAX_KEY)
        klen = CS_KAFKA_MAX_KEY;
    j->delivery_failed = false;
    err = rd_kafka_producev(
        w->producer, RD_KAFKA_V_TOPIC(w->cfg->topic_results), RD_KAFKA_V_KEY(key, klen),
        RD_KAFKA_V_VALUE(j->outcome, strlen(j->outcome)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE(j), RD_KAFKA_V_END);
    if (err)
        return err;
    j->pending_deliveries++;
    if (cs_job_dead_letter(j)) {
        if ((err = produce_dlq_copy(w, j)) == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
            j->dlq_cap = (j->dlq_cap ? j->dlq_cap : cs_kafka_copy_max(w->cfg)) / 2;
            err = produce_dlq_copy(w, j);
        }
        if (err)
            return err;
        j->pending_deliveries++;
    }
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Drops what is still queued or in flight and serves its delivery reports,
 * so that no report can reach the jobs after they are freed. */
static void abandon_deliveries(cs_worker *w, cs_job *jobs, size_t n)
{
    rd_kafka_purge(w->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (size_t i = 0; i < n; i++)
        while (jobs[i].pending_deliveries > 0)
            rd_kafka_poll(w->producer, 50);
}

/* Hands every outcome (and DLQ copy) of the batch not handed over yet, or whose delivery
 * failed (jobs[i].delivery_failed), to the producer. */
static void produce_outcomes(cs_worker *w, cs_job *jobs, size_t n)
{
    for (size_t i = 0; i < n && cs_running; i++) {
        /* A copy still in flight is waited for before producing again. */
        if (!jobs[i].delivery_failed || jobs[i].pending_deliveries > 0)
            continue;
        rd_kafka_resp_err_t err = produce_job(w, &jobs[i]);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(w->producer, 100);
            i--;
            continue;
        }
        if (err)
            jobs[i].delivery_failed = true;
    }
}

/* Hands a committed batch's outcomes (and DLQ copies) to the producer; deliver() waits for
 * them. */
static void deliver_start(cs_worker *w, cs_job *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        jobs[i].delivery_failed = true; /* not yet produced */
    produce_outcomes(w, jobs, n);
}

/* Waits until every outcome (and DLQ copy) deliver_start handed over is delivered, producing
 * again what failed. Returns false if stopped first; then nothing of the batch is left in the
 * producer. */
static bool deliver(cs_worker *w, cs_job *jobs, size_t n)
{
    cs_backoff backoff;

    cs_backoff_init(&backoff, 100, 5000);
    for (bool again = false;; again = true) {
        bool all = true;

        cs_beat();
        if (again)
            produce_outcomes(w, jobs, n);
        rd_kafka_flush(w->producer, 5000);
        for (size_t i = 0; i < n; i++)
            all = all && !jobs[i].delivery_failed && jobs[i].pending_deliveries == 0;
        if (all) {
            atomic_store(&w->kafka_ok, true);
            return true;
        }
        atomic_store(&w->kafka_ok, false);
        cs_metric_inc(w->delivery_retries, 1);
        if (!cs_running) {
            abandon_deliveries(w, jobs, n);
            return false;
        }
        long delay = cs_backoff_next(&backoff);

        cs_log_warn("outcomes not delivered, retrying in %ld ms", delay);
        cs_sleep_ms(delay);
    }
}

static void store_offsets(cs_worker *w, cs_job *jobs, size_t n)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(16);
    char errstr[512];

    for (size_t i = 0; i < n; i++) {
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(parts, w->cfg->topic_events, jobs[i].partition);

        if (!p)
            p = rd_kafka_topic_partition_list_add(parts, w->cfg->topic_events, jobs[i].partition);
        if (jobs[i].offset + 1 > p->offset)
            p->offset = jobs[i].offset + 1;
    }
    if (cs_consumer_store(w->consumer, parts, errstr, sizeof(errstr)))
        cs_log_warn("%s", errstr);
    rd_kafka_topic_partition_list_destroy(parts);
}

static bool dependencies_up(cs_worker *w)
{
    return atomic_load(&w->pg_ok) && atomic_load(&w->kafka_ok);
}

/* Waits out a PostgreSQL failure while serving the group and keeping the lag
 * current; false if the batch must be dropped (revoked or stopping). */
static bool backoff_wait(cs_worker *w, long ms)
{
    long long until = cs_now_ms() + ms;

    while (cs_running && !w->revoked && cs_now_ms() < until) {
        poll_once(w, 100);
        cs_consumer_tick(w->consumer, dependencies_up(w));
    }
    return cs_running && !w->revoked;
}

/* Observes the seconds since t0_us (cs_now_us) in m and returns now. */
static long long observe_since(cs_metric *m, long long t0_us)
{
    long long now = cs_now_us();

    cs_metric_observe(m, (double)(now - t0_us) / 1e6);
    return now;
}

/* A batch of jobs: committed, its outcomes on their way (open), not yet finished. */
typedef struct batch {
    cs_job *jobs;
    size_t n;
    bool open;
    unsigned revokes;        /* w->revokes when it began */
    long long delivering_us; /* when its outcomes were handed to the producer */
} batch;

/* Validates and applies a batch (polled_us: when its first message was polled) and hands its
 * outcomes to the producer: then it is open, for finish() once the next batch is committed.
 * Returns false when the batch was dropped (revoked or stopping before its commit). */
static bool apply(cs_worker *w, batch *b, long long polled_us)
{
    cs_job *jobs = b->jobs;
    size_t n = b->n;
    long long t0 = observe_since(w->stage[STAGE_BATCH_WAIT], polled_us), t;
    cs_backoff backoff;
    char errstr[512];
    size_t valid = 0;

    cs_backoff_init(&backoff, 200, 10000);
    w->revoked = false;
    b->revokes = w->revokes;
    for (size_t i = 0; i < n; i++) {
        if (!validate(w, &jobs[i])) {
            /* Nothing of the batch is stored: it comes again after the restart. */
            cs_log_error("out of memory deciding partition=%d offset=%" PRId64 "; stopping",
                         jobs[i].partition, jobs[i].offset);
            cs_running = 0;
            return false;
        }
        valid += jobs[i].verdict == CS_VALID;
    }
    if (valid) {
        t = cs_now_us();
        redis_fast_path(w, jobs, n);
        observe_since(w->stage[STAGE_REDIS_READ], t);
    }
    for (;;) {
        t = cs_now_us();
        if (run_appliers(w, jobs, n, errstr, sizeof(errstr)) == CS_OK)
            break;
        long delay = cs_backoff_next(&backoff);

        atomic_store(&w->pg_ok, false);
        cs_metric_inc(w->retries, 1);
        cs_log_warn("batch not committed, retrying in %ld ms: %s", delay, errstr);
        /* Nothing new is fetched while the batch waits for PostgreSQL. */
        if (!cs_consumer_paused(w->consumer))
            cs_consumer_set_paused(w->consumer, true);
        if (!backoff_wait(w, delay)) {
            /* Nothing is held any more, so nothing stays paused: the partitions
             * still (or again) assigned are resumed, and the batch comes again. */
            cs_log_info("batch dropped before commit size=%zu (redelivered later)", n);
            cs_consumer_set_paused(w->consumer, false);
            return false;
        }
    }
    if (cs_consumer_paused(w->consumer))
        cs_consumer_set_paused(w->consumer, false);
    atomic_store(&w->pg_ok, true);
    observe_since(w->stage[STAGE_COMMIT], t);
    t = observe_since(w->apply_seconds, t0);
    cs_fault_point("after_commit");
    if (w->relay)
        cs_relay_kick(w->relay);
    return true;
}

/* Delivers batch b's outcomes (open: handed to the producer by open_batch) and, once they
 * are all delivered, writes its keys to Redis and stores its offsets, unless a revocation came
 * since it began (its submissions come again; their outcomes are published again from what
 * was recorded). */
static void finish(cs_worker *w, batch *b)
{
    cs_job *jobs = b->jobs;
    size_t n = b->n;
    long long t;

    b->open = false;
    if (!deliver(w, jobs, n))
        return;
    t = observe_since(w->stage[STAGE_DELIVERY], b->delivering_us);
    for (size_t i = 0; i < n; i++) {
        double since = since_timestamp(jobs[i].msg, cs_wall_ms());

        if (since >= 0)
            cs_metric_observe(w->stage[STAGE_SUBMISSION], since);
    }
    remember_applied(w, jobs, n);
    observe_since(w->stage[STAGE_REDIS_WRITE], t);
    cs_fault_point("after_outcome");
    if (w->revokes != b->revokes)
        return;
    store_offsets(w, jobs, n);
    for (size_t i = 0; i < n; i++) {
        cs_metric_inc(w->outcomes[jobs[i].status], 1);
        if (cs_job_dead_letter(&jobs[i]))
            cs_metric_inc(w->dlq, 1);
        if (jobs[i].case_unreadable) {
            cs_metric_inc(w->unreadable, 1);
            cs_log_warn("submission rejected: stored case unreadable case=%" PRId64
                        " partition=%d offset=%" PRId64,
                        jobs[i].sub->case_reference, jobs[i].partition, jobs[i].offset);
        }
        if (jobs[i].applied)
            cs_log_debug(
                "applied case=%" PRId64 " partition=%d offset=%" PRId64 " revision=%" PRId64,
                jobs[i].sub->case_reference, jobs[i].partition, jobs[i].offset, jobs[i].revision);
    }
    cs_metric_set(w->batch_size, (long long)n);
    cs_metric_inc(w->batches, 1);
}

/* Hands committed batch b's outcomes to the producer: b is open until finish(). */
static void open_batch(cs_worker *w, batch *b)
{
    b->delivering_us = cs_now_us();
    deliver_start(w, b->jobs, b->n);
    b->open = true;
}

static void clear_batch(batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        cs_job_clear(&b->jobs[i]);
    b->n = 0;
    b->open = false;
}

/* Finishes batch b if it is open, and clears it. */
static void close_batch(cs_worker *w, batch *b)
{
    if (b->open)
        finish(w, b);
    clear_batch(b);
}

/* --- housekeeping --------------------------------------------------------------------- */

static void housekeeping(cs_worker *w)
{
    long long t0 = cs_now_us(), now = t0 / 1000;
    char errstr[256];

    /* After a failure with nothing left to retry (the batch was dropped in a
     * rebalance), only a probe tells when PostgreSQL is back. */
    if (!atomic_load(&w->pg_ok) && now >= w->next_probe_ms) {
        if (cs_applier_ping(w->slots[0].applier, errstr, sizeof(errstr)) == CS_OK) {
            cs_log_info("postgresql answers again");
            atomic_store(&w->pg_ok, true);
        }
        w->next_probe_ms = now + 2000;
    }
    cs_consumer_tick(w->consumer, dependencies_up(w));
    if (now >= w->next_prune_ms) {
        bool more = false;
        long long n =
            cs_applier_prune(w->slots[0].applier, w->cfg->outcome_retention_hours,
                             w->cfg->outbox_retention_hours, &more, errstr, sizeof(errstr));
        if (n > 0)
            cs_log_info("pruned recorded outcomes and published outbox rows rows=%lld", n);
        /* A backlog of old rows goes a round a second, between batches. */
        w->next_prune_ms = now + (more ? 1000 : 10 * 60 * 1000);
    }
    observe_since(w->stage[STAGE_HOUSEKEEPING], t0);
}

/* How many of the messages in hand, from the first, form the next batch (cs_batching_takes);
 * takes their bytes off pending_bytes. */
static size_t take(cs_worker *w)
{
    size_t n = 0, bytes = 0;

    while (n < w->npending &&
           cs_batching_takes(n, bytes, message_bytes(w->pending[n]), (size_t)w->cfg->batch_size,
                             (size_t)w->cfg->batch_bytes))
        bytes += message_bytes(w->pending[n++]);
    w->pending_bytes -= bytes;
    return n;
}

int cs_worker_run(cs_worker *w)
{
    char errstr[512];
    /* Two batches: one being applied while the outcomes of the one before are on their way. */
    cs_job *jobs = calloc(2 * (size_t)w->cfg->batch_size, sizeof(*jobs));
    batch batches[2] = {{.jobs = jobs}, {.jobs = jobs + w->cfg->batch_size}};
    int cur = 0;

    if (!jobs) {
        cs_log_error("out of memory for a batch of %d", w->cfg->batch_size);
        return CS_ERR;
    }
    if (cs_consumer_subscribe(w->consumer, errstr, sizeof(errstr))) {
        cs_log_error("%s", errstr);
        free(jobs);
        return CS_ERR;
    }
    cs_log_info("consuming topic=%s group=%s group_protocol=%s appliers=%d batch=%d "
                "batch_bytes=%d",
                w->cfg->topic_events, w->cfg->group, w->cfg->group_protocol, w->cfg->appliers,
                w->cfg->batch_size, w->cfg->batch_bytes);
    while (cs_running) {
        batch *b = &batches[cur], *before = &batches[1 - cur];
        long long polled_us;
        size_t n;

        /* Nothing to apply meanwhile: the batch before is finished at once. */
        if (before->open && w->npending == 0)
            poll_once(w, 0);
        if (before->open && w->npending == 0)
            close_batch(w, before);
        fill(w);
        housekeeping(w);
        if (w->npending == 0)
            continue;
        n = take(w);
        polled_us = w->polled_us[0];
        for (size_t i = 0; i < n; i++)
            b->jobs[i].msg = w->pending[i];
        b->n = n;
        memmove(w->pending, w->pending + n, (w->npending - n) * sizeof(*w->pending));
        memmove(w->polled_us, w->polled_us + n, (w->npending - n) * sizeof(*w->polled_us));
        w->npending -= n;
        bool applied = apply(w, b, polled_us);
        /* The outcomes of the batch before go first. */
        close_batch(w, before);
        if (applied && cs_running) {
            open_batch(w, b);
            cur = 1 - cur;
        } else {
            clear_batch(b);
        }
    }
    for (int i = 0; i < 2; i++)
        close_batch(w, &batches[i]);
    cs_log_info("stopping: committing offsets and leaving the group");
    drop_pending(w);
    if (cs_consumer_close(w->consumer, errstr, sizeof(errstr)))
        cs_log_warn("%s", errstr);
    free(jobs);
    return CS_OK;
}

int cs_worker_check_limits(cs_worker *w, char *errstr, size_t errstr_size)
{
    const char *topics[] = {w->cfg->topic_events, w->cfg->topic_results, w->cfg->topic_changes,
                            w->cfg->topic_dlq};

    return cs_kafka_check_topic_limits(w->producer, w->cfg, topics, 4, 10000, errstr, errstr_size);
}

/* --- construction --------------------------------------------------------------------- */

/* The worker's part of readiness (a cs_health_fn): no batch waiting for PostgreSQL, no
 * outcome waiting for Kafka, no partition stalled. The services themselves are probed. */
static bool health(char *detail, size_t size, void *ctx)
{
    cs_worker *w = ctx;
    bool pg = atomic_load(&w->pg_ok), kafka = atomic_load(&w->kafka_ok);
    int stalled = cs_consumer_stalled(w->consumer);

    snprintf(detail, size, "batches=%s deliveries=%s assigned=%d stalled=%d", pg ? "ok" : "failing",
             kafka ? "ok" : "failing", cs_consumer_assigned(w->consumer), stalled);
    return pg && kafka && stalled == 0;
}

/* librdkafka's errors outside a request: with every broker down, or a fatal error, Kafka is
 * not ready until the next successful probe. */
static void on_kafka_error(rd_kafka_resp_err_t err, const char *reason, void *ctx)
{
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__FATAL)
        cs_health_down(ctx, "kafka", reason);
}

/* Probes Kafka, PostgreSQL (the outbox backlog query) and Redis for /readyz. */
static int start_health(cs_worker *w, char *errstr, size_t errstr_size)
{
    const cs_config *cfg = w->cfg;
    static const char *const names[] = {"kafka", "postgresql", "redis"};
    cs_redis_tls redis_tls = cs_redis_tls_of(cfg);

    w->probes[0] = cs_probe_kafka_new(cs_consumer_handle(w->consumer));
    w->probes[1] = cs_probe_pg_new(cfg->pg, BACKLOG_SQL, cfg->topic_changes, w->backlog);
    w->probes[2] = cs_probe_redis_new(cfg->redis, &redis_tls);
    for (int i = 0; i < 3; i++) {
        if (!w->probes[i] || cs_health_add(w->health, names[i], cs_probe_run, w->probes[i])) {
            snprintf(errstr, errstr_size, "out of memory");
            return CS_ERR;
        }
    }
    cs_health_set_program(w->health, health, w);
    return cs_health_start(w->health, errstr, errstr_size);
}

static void register_metrics(cs_worker *w)
{
    char name[96];

    for (int i = 0; i < CS_STATUS_COUNT; i++) {
        snprintf(name, sizeof(name), "casestream_worker_outcomes_total{status=\"%s\"}",
                 cs_status_name((cs_status)i));
        w->outcomes[i] = cs_metric_counter(name, "outcomes published, by status");
    }
    w->apply_seconds = cs_metric_histogram("casestream_worker_apply_seconds",
                                           "time to decide and commit one batch");
    w->batch_size = cs_metric_gauge("casestream_worker_batch_size", "size of the last batch");
    w->batches = cs_metric_counter("casestream_worker_batches_total", "batches completed");
    w->redis_fallbacks = cs_metric_counter("casestream_worker_redis_fallbacks_total",
                                           "Redis operations that failed; PostgreSQL alone used");
    w->redis_hits = cs_metric_counter("casestream_worker_redis_hits_total",
                                      "repeats answered from Redis without PostgreSQL");
    w->lag = cs_metric_gauge("casestream_worker_lag",
                             "submissions in the assigned partitions not yet acknowledged");
    w->paused =
        cs_metric_gauge("casestream_worker_paused", "1 while consumption is paused for PostgreSQL");
    w->stalled = cs_metric_gauge("casestream_worker_stalled",
                                 "1 while an assigned partition with lag makes no progress");
    w->retries = cs_metric_counter("casestream_worker_batch_retries_total",
                                   "batches retried after a PostgreSQL failure");
    w->dlq = cs_metric_counter("casestream_worker_dlq_total", "messages sent to the DLQ");
    w->unreadable = cs_metric_counter("casestream_worker_unreadable_case_rejections_total",
                                      "submissions rejected because their case's stored data "
                                      "cannot be read");
    w->delivery_retries = cs_metric_counter("casestream_worker_delivery_retries_total",
                                            "rounds of outcome deliveries retried");
    for (int i = 0; i < STAGE_COUNT; i++)
        w->stage[i] = cs_metric_histogram(stage_metrics[i][0], stage_metrics[i][1]);
    w->backlog = cs_metric_gauge("casestream_worker_outbox_backlog",
                                 "committed changes not yet published from the outbox (counted "
                                 "up to 100000)");
}

cs_worker *cs_worker_new(const cs_config *cfg, char *errstr, size_t errstr_size)
{
    /* queued.max.messages.kbytes bounds what librdkafka fetches ahead of the batch in hand
     * (64 MiB by default, which large submissions fill: DESIGN §8). */
    static const char *const consumer_defaults[] = {"enable.auto.commit",
                                                    "true",
                                                    "enable.auto.offset.store",
                                                    "false",
                                                    "auto.commit.interval.ms",
                                                    "1000",
                                                    "auto.offset.reset",
                                                    "earliest",
                                                    "enable.partition.eof",
                                                    "false",
                                                    "queued.max.messages.kbytes",
                                                    "4096",
                                                    NULL};
    cs_worker *w = calloc(1, sizeof(*w));
    cs_consumer_opts copts = CS_CONSUMER_OPTS_INIT;
    rd_kafka_conf_t *conf = NULL;
    cs_redis_tls redis_tls;

    if (!w)
        return NULL;
    w->cfg = cfg;
    atomic_store(&w->pg_ok, true);
    atomic_store(&w->kafka_ok, true);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->start_cv, NULL);
    pthread_cond_init(&w->done_cv, NULL);
    register_metrics(w);
    if (!(w->health = cs_health_new(cfg->live_seconds))) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    cs_kafka_set_error_hook(on_kafka_error, w->health);
    redis_tls = cs_redis_tls_of(cfg);
    if (!(w->idem = cs_idem_new(cfg->redis, &redis_tls, cfg->redis_ttl, errstr, errstr_size)))
        goto fail;
    /* Consumer. */
    copts.topic = cfg->topic_events;
    copts.group = cfg->group;
    copts.defaults = consumer_defaults;
    copts.stall_seconds = cfg->stall_seconds;
    copts.revoke = on_revoke;
    copts.ctx = w;
    copts.lag = w->lag;
    copts.paused = w->paused;
    copts.stalled = w->stalled;
    if (!(w->consumer = cs_consumer_new(cfg, &copts, NULL, errstr, errstr_size)))
        goto fail;
    /* Producer of outcomes and DLQ copies. */
    if (!(conf = cs_kafka_conf_new(cfg, NULL, errstr, errstr_size)))
        goto fail;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, w);
    w->producer = cs_kafka_producer_new(cfg, conf, CS_KAFKA_SEND_AT_ONCE, errstr, errstr_size);
    conf = NULL;
    if (!w->producer)
        goto fail;
    /* Appliers. */
    w->nslots = cfg->appliers;
    if (!(w->slots = calloc((size_t)w->nslots, sizeof(*w->slots)))) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    for (int i = 0; i < w->nslots; i++) {
        applier_slot *s = &w->slots[i];

        s->w = w;
        if (!(s->jobs = calloc((size_t)cfg->batch_size, sizeof(*s->jobs)))) {
            snprintf(errstr, errstr_size, "out of memory");
            goto fail;
        }
        if (!(s->applier = cs_applier_new(cfg->pg, cfg->topic_events, cfg->topic_changes, errstr,
                                          errstr_size)) ||
            pthread_create(&s->thread, NULL, slot_main, s) != 0)
            goto fail;
    }
    if (!(w->relay = cs_relay_start(cfg, errstr, errstr_size)))
        goto fail;
    /* Without the endpoint nobody asks: no probes either. */
    if (cfg->metrics_port > 0 &&
        (start_health(w, errstr, errstr_size) ||
         !(w->metrics = cs_metrics_server_start(cfg->metrics_host, cfg->metrics_port, w->health,
                                                errstr, errstr_size))))
        goto fail;
    return w;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    cs_worker_free(w);
    return NULL;
}

void cs_worker_free(cs_worker *w)
{
    if (!w)
        return;
    cs_metrics_server_free(w->metrics);
    cs_health_stop(w->health); /* the Kafka probe uses the consumer */
    cs_relay_stop(w->relay);
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->start_cv);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; w->slots && i < w->nslots; i++) {
        if (w->slots[i].thread)
            pthread_join(w->slots[i].thread, NULL);
        cs_applier_free(w->slots[i].applier);
        free(w->slots[i].jobs);
    }
    free(w->slots);
    if (w->producer) {
        rd_kafka_flush(w->producer, 10000);
        rd_kafka_destroy(w->producer);
    }
    cs_consumer_free(w->consumer);
    drop_pending(w);
    free(w->pending);
    free(w->polled_us);
    cs_idem_free(w->idem);
    for (int i = 0; i < 3; i++)
        cs_probe_free(w->probes[i]);
    /* No Kafka handle is left to call the hook. */
    cs_kafka_set_error_hook(NULL, NULL);
    cs_health_free(w->health);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->start_cv);
    pthread_cond_destroy(&w->done_cv);
    free(w);
}
