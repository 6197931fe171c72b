/* Consumer flow shared by the worker and the indexer: one topic in one group.
 *
 * The program says whether it wants its partitions paused (it holds work it cannot finish);
 * this module applies that state to the whole assignment and again, explicitly, to every
 * partition it is given later, so a pause never outlives the reason for it. It also keeps, per
 * assigned partition, the next offset not yet acknowledged (the last stored one), from which
 * lag and stalls are decided. Everything here runs on the polling thread (rebalance callbacks
 * run inside poll); the metrics thread reads only atomics.
 *
 * Unlike the rest of lib/, this module logs: rebalances, pauses and stalls happen inside
 * librdkafka's callback or the periodic tick, where there is no caller to hand a message to,
 * and each is an event of note for the operator. */
#include "consumer.h"

#include "err.h"
#include "kafka.h"
#include "log.h"
#include "run.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How often lag and stalls are refreshed. */
#define TICK_MS 1000
/* A partition that stored nothing for this long, or that is paused, has its watermarks asked
 * of the broker at most this often: librdkafka's cached ones come with fetches, and a paused
 * partition is not fetched. */
#define QUERY_EVERY_MS 5000
/* Bound on one broker request made for the polling thread. */
#define BROKER_TIMEOUT_MS 1000
/* librdkafka 2.3 and later ask for watermarks without blocking (rd_kafka_ListOffsets): the
 * polling thread sends the question at one tick and reads the answers at the next, instead of
 * waiting a broker round trip per partition while submissions queue up behind it. */
#define ASYNC_WATERMARKS (RD_KAFKA_VERSION >= 0x020300ff)
/* Most defaults a program passes, in pairs. */
#define MAX_DEFAULTS 30

typedef struct part_state {
    int32_t partition;
    int64_t done;          /* next offset not yet acknowledged (see cs_consumer_lag) */
    int64_t low, high;     /* the broker's last answer; -1 before */
    long long queried_ms;  /* when the broker answered; 0: never */
    long long progress_ms; /* assignment or last stored offset */
    long long since_ms;    /* the stall clock */
    bool stalled;
} part_state;

struct cs_consumer {
    cs_consumer_opts opts;
    rd_kafka_t *rk;
    bool paused; /* desired */
    part_state *parts;
    size_t nparts, cap;
    long long tick_at;
    long long broker_at;       /* no broker request before (it did not answer) */
    rd_kafka_queue_t *answers; /* of the watermark questions (ASYNC_WATERMARKS) */
    int asking;                /* questions not yet answered */
    atomic_int assigned, stalled;
};

/* ---- the rules -------------------------------------------------------------------------- */

int64_t cs_consumer_lag(int64_t low, int64_t high, int64_t done)
{
    if (high < 0 || done == CS_CONSUMER_UNKNOWN)
        return -1;
    if (done < 0) {
        if (low < 0)
            return -1;
        done = low;
    }
    if (low >= 0 && done < low)
        done = low;
    return high > done ? high - done : 0;
}

bool cs_consumer_stall_clock(long long *since_ms, long long now_ms, int64_t lag, bool dependency_up,
                             long long stall_ms)
{
    if (lag <= 0 || !dependency_up) {
        *since_ms = now_ms;
        return false;
    }
    return stall_ms > 0 && now_ms - *since_ms >= stall_ms;
}

/* ---- the assignment --------------------------------------------------------------------- */

static part_state *find_part(cs_consumer *c, int32_t partition)
{
    for (size_t i = 0; i < c->nparts; i++)
        if (c->parts[i].partition == partition)
            return &c->parts[i];
    return NULL;
}

static void count_stalled(cs_consumer *c)
{
    int n = 0;

    for (size_t i = 0; i < c->nparts; i++)
        n += c->parts[i].stalled;
    atomic_store(&c->stalled, n);
    atomic_store(&c->assigned, (int)c->nparts);
    cs_metric_set(c->opts.stalled, n > 0);
}

static void track(cs_consumer *c, const rd_kafka_topic_partition_list_t *parts)
{
    long long now = cs_now_ms();

    for (int i = 0; i < parts->cnt; i++) {
        part_state *p;

        if (strcmp(parts->elems[i].topic, c->opts.topic) != 0 ||
            find_part(c, parts->elems[i].partition))
            continue;
        if (c->nparts == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 16;
            part_state *grown = realloc(c->parts, cap * sizeof(*grown));

            if (!grown) {
                /* Only lag and stall reporting lose this partition. */
                cs_log_error("out of memory tracking partition=%" PRId32,
                             parts->elems[i].partition);
                continue;
            }
            c->parts = grown;
            c->cap = cap;
        }
        p = &c->parts[c->nparts++];
        memset(p, 0, sizeof(*p));
        p->partition = parts->elems[i].partition;
        p->done = CS_CONSUMER_UNKNOWN;
        p->low = p->high = -1;
        p->progress_ms = p->since_ms = now;
    }
    count_stalled(c);
}

/* Forgets parts, or every partition when parts is NULL. */
static void untrack(cs_consumer *c, const rd_kafka_topic_partition_list_t *parts)
{
    for (size_t i = 0; i < c->nparts;) {
        bool gone = !parts;

        for (int k = 0; parts && k < parts->cnt && !gone; k++)
            gone = parts->elems[k].partition == c->parts[i].partition &&
                   strcmp(parts->elems[k].topic, c->opts.topic) == 0;
        if (gone)
            c->parts[i] = c->parts[--c->nparts];
        else
            i++;
    }
    count_stalled(c);
}

/* Pauses or resumes parts: always explicitly, whatever librdkafka remembers of them. */
static void apply(cs_consumer *c, rd_kafka_topic_partition_list_t *parts, bool paused)
{
    rd_kafka_resp_err_t err;

    if (!parts || parts->cnt == 0)
        return;
    err =
        paused ? rd_kafka_pause_partitions(c->rk, parts) : rd_kafka_resume_partitions(c->rk, parts);
    if (err)
        cs_log_error("could not %s topic=%s: %s", paused ? "pause" : "resume", c->opts.topic,
                     rd_kafka_err2str(err));
    for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].err)
            cs_log_error("could not %s topic=%s partition=%" PRId32 ": %s",
                         paused ? "pause" : "resume", parts->elems[i].topic,
                         parts->elems[i].partition, rd_kafka_err2str(parts->elems[i].err));
}

/* "0,1,2" (cut short with "..." when it does not fit). */
static void partitions_text(const rd_kafka_topic_partition_list_t *parts, char *buf, size_t size)
{
    size_t len = 0;

    buf[0] = '\0';
    for (int i = 0; parts && i < parts->cnt; i++) {
        int n =
            snprintf(buf + len, size - len, "%s%" PRId32, i ? "," : "", parts->elems[i].partition);

        if (n < 0 || (size_t)n >= size - len) {
            snprintf(buf + (size > 4 ? size - 4 : 0), size > 4 ? 4 : size, "...");
            return;
        }
        len += (size_t)n;
    }
}

static void commit_stored(cs_consumer *c, const char *when)
{
    rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, NULL, 0);

    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        cs_log_warn("could not commit offsets %s topic=%s: %s", when, c->opts.topic,
                    rd_kafka_err2str(err));
}

/* Moves every assigned partition not in gone back to its next offset not yet acknowledged: the
 * last stored one, else the group's committed one (just committed: the same), else the low
 * watermark when the group has none (auto.offset.reset=earliest). Messages fetched beyond it
 * are discarded by librdkafka and fetched again. */
static void rewind_kept(cs_consumer *c, const rd_kafka_topic_partition_list_t *gone)
{
    rd_kafka_topic_partition_list_t *kept = rd_kafka_topic_partition_list_new((int)c->nparts + 1);
    rd_kafka_topic_partition_list_t *unknown = rd_kafka_topic_partition_list_new(1);
    rd_kafka_error_t *error;

    for (size_t i = 0; i < c->nparts; i++) {
        const part_state *p = &c->parts[i];

        if (gone && rd_kafka_topic_partition_list_find(gone, c->opts.topic, p->partition))
            continue;
        if (p->done >= 0)
            rd_kafka_topic_partition_list_add(kept, c->opts.topic, p->partition)->offset = p->done;
        else if (p->done == CS_CONSUMER_FROM_LOW)
            rd_kafka_topic_partition_list_add(kept, c->opts.topic, p->partition)->offset =
                RD_KAFKA_OFFSET_BEGINNING;
        else
            rd_kafka_topic_partition_list_add(unknown, c->opts.topic, p->partition);
    }
    if (unknown->cnt > 0) {
        rd_kafka_resp_err_t err = rd_kafka_committed(c->rk, unknown, BROKER_TIMEOUT_MS * 5);

        for (int i = 0; i < unknown->cnt; i++) {
            /* Without an answer, from the beginning: the worker answers what it applied
             * before again, and nothing is skipped. */
            int64_t at = !err && !unknown->elems[i].err && unknown->elems[i].offset >= 0
                             ? unknown->elems[i].offset
                             : RD_KAFKA_OFFSET_BEGINNING;

            if (err || unknown->elems[i].err)
                cs_log_warn("committed offset of topic=%s partition=%" PRId32
                            " unknown, rewinding to its beginning: %s",
                            c->opts.topic, unknown->elems[i].partition,
                            rd_kafka_err2str(err ? err : unknown->elems[i].err));
            rd_kafka_topic_partition_list_add(kept, c->opts.topic, unknown->elems[i].partition)
                ->offset = at;
        }
    }
    if (kept->cnt > 0) {
        char list[512];

        partitions_text(kept, list, sizeof(list));
        cs_log_info("rewinding kept partitions to their acknowledged offsets topic=%s "
                    "partitions=%s",
                    c->opts.topic, list);
        if ((error = rd_kafka_seek_partitions(c->rk, kept, BROKER_TIMEOUT_MS * 5)) != NULL) {
            cs_log_error("could not rewind topic=%s: %s", c->opts.topic,
                         rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
        }
        for (int i = 0; i < kept->cnt; i++)
            if (kept->elems[i].err)
                cs_log_error("could not rewind topic=%s partition=%" PRId32 ": %s", c->opts.topic,
                             kept->elems[i].partition, rd_kafka_err2str(kept->elems[i].err));
    }
    rd_kafka_topic_partition_list_destroy(unknown);
    rd_kafka_topic_partition_list_destroy(kept);
}

/* Partitions of parts this consumer tracks (holds). */
static size_t count_tracked(cs_consumer *c, const rd_kafka_topic_partition_list_t *parts)
{
    size_t n = 0;

    for (int i = 0; parts && i < parts->cnt; i++)
        n += strcmp(parts->elems[i].topic, c->opts.topic) == 0 &&
             find_part(c, parts->elems[i].partition) != NULL;
    return n;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    cs_consumer *c = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_topic_partition_list_t *all = NULL;
    rd_kafka_error_t *error = NULL;
    char list[512];
    bool lost, dropped_kept = false;

    partitions_text(parts, list, sizeof(list));
    /* total: the partitions held afterwards (an incremental rebalance gives or takes some). */
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        size_t total =
            coop ? c->nparts + (size_t)parts->cnt - count_tracked(c, parts) : (size_t)parts->cnt;

        cs_log_info("partitions assigned count=%d topic=%s partitions=%s total=%zu paused=%s",
                    parts->cnt, c->opts.topic, list, total, c->paused ? "yes" : "no");
        if (coop)
            error = rd_kafka_incremental_assign(rk, parts);
        else if ((err = rd_kafka_assign(rk, parts)) != RD_KAFKA_RESP_ERR_NO_ERROR)
            cs_log_error("could not assign topic=%s: %s", c->opts.topic, rd_kafka_err2str(err));
        track(c, parts);
        /* librdkafka keeps an application pause of a partition across unassign and reassign
         * in the same process, so every partition given is set to the desired state. Resuming
         * one that is not paused does nothing (librdkafka 2.4.0 and later). */
        apply(c, parts, c->paused);
    } else {
        if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
            lost = rd_kafka_assignment_lost(rk);
            cs_log_info("partitions revoked count=%d topic=%s partitions=%s total=%zu lost=%s",
                        parts->cnt, c->opts.topic, list,
                        coop ? c->nparts - count_tracked(c, parts) : 0, lost ? "yes" : "no");
        } else {
            /* Whatever went wrong, the whole assignment is given up. */
            lost = true;
            cs_log_error("rebalance failed topic=%s: %s", c->opts.topic, rd_kafka_err2str(err));
            if (rd_kafka_assignment(rk, &all) == RD_KAFKA_RESP_ERR_NO_ERROR)
                parts = all;
        }
        if (c->opts.revoke)
            dropped_kept = c->opts.revoke(parts, lost, c->opts.ctx);
        /* What the program acknowledged is committed before anyone else owns it. */
        if (!lost)
            commit_stored(c, "on revoke");
        /* The consumer group protocol (KIP-848) and cooperative-sticky hand over and take
         * back partitions incrementally: only these are given up, the others keep
         * fetching. */
        if (coop) {
            if (parts && parts->cnt > 0)
                error = rd_kafka_incremental_unassign(rk, parts);
            untrack(c, parts);
            if (dropped_kept && !error)
                rewind_kept(c, parts);
        } else {
            rd_kafka_assign(rk, NULL);
            untrack(c, NULL);
        }
    }
    if (error) {
        cs_log_error("rebalance topic=%s: %s", c->opts.topic, rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
    if (all)
        rd_kafka_topic_partition_list_destroy(all);
}

/* ---- lag and stalls ---------------------------------------------------------------------- */

/* Fills in done for the partitions assigned since the last tick: the group's committed offset,
 * or CS_CONSUMER_FROM_LOW when it has none (the programs start at the earliest offset). */
static void fetch_committed(cs_consumer *c, long long now)
{
    rd_kafka_topic_partition_list_t *list = NULL;
    rd_kafka_resp_err_t err;

    if (now < c->broker_at)
        return;
    for (size_t i = 0; i < c->nparts; i++) {
        if (c->parts[i].done != CS_CONSUMER_UNKNOWN)
            continue;
        if (!list)
            list = rd_kafka_topic_partition_list_new((int)c->nparts);
        rd_kafka_topic_partition_list_add(list, c->opts.topic, c->parts[i].partition);
    }
    if (!list)
        return;
    if ((err = rd_kafka_committed(c->rk, list, BROKER_TIMEOUT_MS)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        cs_log_debug("committed offsets of topic=%s not known yet: %s", c->opts.topic,
                     rd_kafka_err2str(err));
        c->broker_at = now + QUERY_EVERY_MS;
    }
    for (int i = 0; !err && i < list->cnt; i++) {
        part_state *p = find_part(c, list->elems[i].partition);

        if (p && !list->elems[i].err && p->done == CS_CONSUMER_UNKNOWN)
            p->done = list->elems[i].offset >= 0 ? list->elems[i].offset : CS_CONSUMER_FROM_LOW;
    }
    rd_kafka_topic_partition_list_destroy(list);
}

#if ASYNC_WATERMARKS
/* Which end of the partitions a question asks for (its admin options' opaque). */
static char ask_low, ask_high;

/* Adds p to the partitions to ask about at the end of this tick, unless questions sent
 * before are still unanswered. */
static void ask_watermarks(cs_consumer *c, part_state *p, long long now,
                           rd_kafka_topic_partition_list_t **ask)
{
    if (c->asking > 0 || !c->answers)
        return;
    if (!*ask)
        *ask = rd_kafka_topic_partition_list_new((int)c->nparts);
    rd_kafka_topic_partition_list_add(*ask, c->opts.topic, p->partition);
    p->queried_ms = now;
}

/* Sends two questions, the low and the high watermarks of the partitions in ask; the answers
 * come to c->answers, read at the next tick. */
static void send_questions(cs_consumer *c, const rd_kafka_topic_partition_list_t *ask)
{
    char *which[] = {&ask_low, &ask_high};

    for (int i = 0; i < 2; i++) {
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_copy(ask);
        rd_kafka_AdminOptions_t *o =
            rd_kafka_AdminOptions_new(c->rk, RD_KAFKA_ADMIN_OP_LISTOFFSETS);
        char errstr[256];
        rd_kafka_error_t *error;

        for (int k = 0; k < list->cnt; k++)
            list->elems[k].offset =
                i == 0 ? RD_KAFKA_OFFSET_SPEC_EARLIEST : RD_KAFKA_OFFSET_SPEC_LATEST;
        /* As rd_kafka_query_watermark_offsets: the consumers read committed messages only. */
        if ((error = rd_kafka_AdminOptions_set_isolation_level(
                 o, RD_KAFKA_ISOLATION_LEVEL_READ_COMMITTED)))
            rd_kafka_error_destroy(error);
        rd_kafka_AdminOptions_set_request_timeout(o, BROKER_TIMEOUT_MS, errstr, sizeof(errstr));
        rd_kafka_AdminOptions_set_opaque(o, which[i]);
        rd_kafka_ListOffsets(c->rk, list, o, c->answers);
        c->asking++;
        rd_kafka_AdminOptions_destroy(o);
        rd_kafka_topic_partition_list_destroy(list);
    }
}

/* Takes the answers that came since the last tick. A question that failed holds the next
 * ones back for QUERY_EVERY_MS. */
static void read_watermarks(cs_consumer *c, long long now)
{
    rd_kafka_event_t *ev;

    while (c->answers && (ev = rd_kafka_queue_poll(c->answers, 0))) {
        const rd_kafka_ListOffsets_result_t *r = rd_kafka_event_ListOffsets_result(ev);
        bool low = rd_kafka_event_opaque(ev) == &ask_low;
        size_t n = 0;
        const rd_kafka_ListOffsetsResultInfo_t **infos =
            r && !rd_kafka_event_error(ev) ? rd_kafka_ListOffsets_result_infos(r, &n) : NULL;

        if (r)
            c->asking--;
        if (r && (rd_kafka_event_error(ev) || n == 0))
            c->broker_at = now + QUERY_EVERY_MS;
        for (size_t i = 0; infos && i < n; i++) {
            const rd_kafka_topic_partition_t *tp =
                rd_kafka_ListOffsetsResultInfo_topic_partition(infos[i]);
            part_state *p = find_part(c, tp->partition);

            if (tp->err) {
                c->broker_at = now + QUERY_EVERY_MS;
                continue;
            }
            /* A partition revoked since is not ours any more. */
            if (p && strcmp(tp->topic, c->opts.topic) == 0) {
                if (low)
                    p->low = tp->offset;
                else
                    p->high = tp->offset;
            }
        }
        rd_kafka_event_destroy(ev);
    }
}
#else
/* An older librdkafka: the polling thread waits for each answer. */
static void ask_watermarks(cs_consumer *c, part_state *p, long long now,
                           rd_kafka_topic_partition_list_t **ask)
{
    int64_t qlow, qhigh;

    (void)ask;
    if (rd_kafka_query_watermark_offsets(c->rk, c->opts.topic, p->partition, &qlow, &qhigh,
                                         BROKER_TIMEOUT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        p->low = qlow;
        p->high = qhigh;
        p->queried_ms = now;
    } else {
        c->broker_at = now + QUERY_EVERY_MS; /* do not wait on it again so soon */
    }
}

static void send_questions(cs_consumer *c, const rd_kafka_topic_partition_list_t *ask)
{
    (void)c;
    (void)ask;
}

static void read_watermarks(cs_consumer *c, long long now)
{
    (void)c;
    (void)now;
}
#endif

void cs_consumer_tick(cs_consumer *c, bool dependency_up)
{
    long long now = cs_now_ms(), stall_ms = (long long)c->opts.stall_seconds * 1000;
    long long total = 0;
    rd_kafka_topic_partition_list_t *ask = NULL;

    if (now < c->tick_at)
        return;
    c->tick_at = now + TICK_MS;
    read_watermarks(c, now);
    fetch_committed(c, now);
    for (size_t i = 0; i < c->nparts; i++) {
        part_state *p = &c->parts[i];
        int64_t low = -1, high = -1, lag;
        bool was = p->stalled;

        if (rd_kafka_get_watermark_offsets(c->rk, c->opts.topic, p->partition, &low, &high) !=
            RD_KAFKA_RESP_ERR_NO_ERROR)
            low = high = -1;
        if (now >= c->broker_at && now - p->queried_ms >= QUERY_EVERY_MS &&
            (high < 0 || c->paused || now - p->progress_ms >= QUERY_EVERY_MS))
            ask_watermarks(c, p, now, &ask);
        /* Watermarks only grow: the newer of the cached and the queried ones. */
        if (p->high > high)
            high = p->high;
        if (p->low > low)
            low = p->low;
        lag = cs_consumer_lag(low, high, p->done);
        if (lag > 0)
            total += lag;
        p->stalled = cs_consumer_stall_clock(&p->since_ms, now, lag, dependency_up, stall_ms);
        if (p->stalled && !was)
            cs_log_warn("partition stalled topic=%s partition=%" PRId32 " lag=%" PRId64
                        " offset=%" PRId64 " seconds=%lld paused=%s",
                        c->opts.topic, p->partition, lag, p->done, (now - p->since_ms) / 1000,
                        c->paused ? "yes" : "no");
        else if (was && !p->stalled)
            cs_log_info("partition flowing again topic=%s partition=%" PRId32 " lag=%" PRId64,
                        c->opts.topic, p->partition, lag);
    }
    if (ask) {
        send_questions(c, ask);
        rd_kafka_topic_partition_list_destroy(ask);
    }
    cs_metric_set(c->opts.lag, total);
    count_stalled(c);
}

/* ---- the rest --------------------------------------------------------------------------- */

cs_consumer *cs_consumer_new(const cs_config *cfg, const cs_consumer_opts *opts, int *why,
                             char *errstr, size_t errstr_size)
{
    const char *defaults[MAX_DEFAULTS + 5];
    rd_kafka_conf_t *conf;
    cs_consumer *c;
    size_t n = 0;

    if (why)
        *why = CS_ERR;
    if (!(c = calloc(1, sizeof(*c)))) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    c->opts = *opts;
    defaults[n++] = "group.id";
    defaults[n++] = opts->group;
    defaults[n++] = "group.protocol";
    defaults[n++] = cfg->group_protocol;
    for (size_t i = 0; opts->defaults && opts->defaults[i] && n < MAX_DEFAULTS + 3; i++)
        defaults[n++] = opts->defaults[i];
    defaults[n] = NULL;
    if (!(conf = cs_kafka_conf_new_for(cfg, RD_KAFKA_CONSUMER, defaults, errstr, errstr_size))) {
        if (why)
            *why = CS_ERR_INVALID;
        free(c);
        return NULL;
    }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_opaque(conf, c);
    if (!(c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size))) {
        rd_kafka_conf_destroy(conf);
        free(c);
        return NULL;
    }
    rd_kafka_poll_set_consumer(c->rk);
#if ASYNC_WATERMARKS
    /* Without it (out of memory) watermarks come from fetches alone. */
    c->answers = rd_kafka_queue_new(c->rk);
#endif
    cs_metric_set(c->opts.lag, 0);
    cs_metric_set(c->opts.paused, 0);
    cs_metric_set(c->opts.stalled, 0);
    return c;
}

int cs_consumer_subscribe(cs_consumer *c, char *errstr, size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_resp_err_t err;

    rd_kafka_topic_partition_list_add(topics, c->opts.topic, RD_KAFKA_PARTITION_UA);
    err = rd_kafka_subscribe(c->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        snprintf(errstr, errstr_size, "could not subscribe to %s: %s", c->opts.topic,
                 rd_kafka_err2str(err));
        return CS_ERR;
    }
    return CS_OK;
}

rd_kafka_message_t *cs_consumer_poll(cs_consumer *c, int timeout_ms)
{
    /* Polling is what the programs' loops do at every turn: it is their heartbeat. */
    cs_beat();
    return rd_kafka_consumer_poll(c->rk, timeout_ms);
}

rd_kafka_t *cs_consumer_handle(cs_consumer *c)
{
    return c->rk;
}

void cs_consumer_set_paused(cs_consumer *c, bool paused)
{
    rd_kafka_topic_partition_list_t *a = NULL;

    if (c->paused != paused)
        cs_log_info("%s consumption of topic=%s", paused ? "pausing" : "resuming", c->opts.topic);
    c->paused = paused;
    cs_metric_set(c->opts.paused, paused ? 1 : 0);
    if (rd_kafka_assignment(c->rk, &a) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        apply(c, a, paused);
        rd_kafka_topic_partition_list_destroy(a);
    }
}

bool cs_consumer_paused(const cs_consumer *c)
{
    return c->paused;
}

int cs_consumer_store(cs_consumer *c, rd_kafka_topic_partition_list_t *offsets, char *errstr,
                      size_t errstr_size)
{
    long long now = cs_now_ms();
    rd_kafka_resp_err_t err;
    int rc = CS_OK;

    if (offsets->cnt == 0)
        return CS_OK;
    err = rd_kafka_offsets_store(c->rk, offsets);
    for (int i = 0; i < offsets->cnt; i++) {
        const rd_kafka_topic_partition_t *o = &offsets->elems[i];
        part_state *p;

        if (o->err) {
            if (rc == CS_OK)
                snprintf(errstr, errstr_size,
                         "could not store offset topic=%s partition=%" PRId32 " offset=%" PRId64
                         ": %s",
                         o->topic, o->partition, o->offset, rd_kafka_err2str(o->err));
            rc = CS_ERR;
            continue;
        }
        if (strcmp(o->topic, c->opts.topic) != 0 || !(p = find_part(c, o->partition)))
            continue;
        if (p->done < 0 || o->offset > p->done) {
            p->done = o->offset;
            p->progress_ms = p->since_ms = now;
        }
    }
    if (err && rc == CS_OK) {
        snprintf(errstr, errstr_size, "could not store offsets of topic=%s: %s", c->opts.topic,
                 rd_kafka_err2str(err));
        rc = CS_ERR;
    }
    return rc;
}

int cs_consumer_commit(cs_consumer *c, char *errstr, size_t errstr_size)
{
    rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, NULL, 0);

    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        snprintf(errstr, errstr_size, "could not commit offsets of topic=%s: %s", c->opts.topic,
                 rd_kafka_err2str(err));
        return CS_ERR;
    }
    return CS_OK;
}

int cs_consumer_assigned(const cs_consumer *c)
{
    return atomic_load(&((cs_consumer *)c)->assigned);
}

int cs_consumer_stalled(const cs_consumer *c)
{
    return atomic_load(&((cs_consumer *)c)->stalled);
}

int cs_consumer_close(cs_consumer *c, char *errstr, size_t errstr_size)
{
    rd_kafka_resp_err_t err;

    commit_stored(c, "at close");
    if ((err = rd_kafka_consumer_close(c->rk)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(errstr, errstr_size, "could not close the consumer of topic=%s: %s", c->opts.topic,
                 rd_kafka_err2str(err));
        return CS_ERR;
    }
    return CS_OK;
}

void cs_consumer_free(cs_consumer *c)
{
    if (!c)
        return;
#if ASYNC_WATERMARKS
    if (c->answers)
        rd_kafka_queue_destroy(c->answers);
#endif
    if (c->rk)
        rd_kafka_destroy(c->rk);
    free(c->parts);
    free(c);
}
