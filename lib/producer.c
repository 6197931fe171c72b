/* Publishing submissions onto the events topic and reading their outcomes back. */
#include "producer.h"

#include "envelope.h"
#include "err.h"
#include "kafka.h"
#include "run.h"
#include "uuid.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How often a producer that lost every broker asks again before refusing. */
#define PROBE_INTERVAL_MS 1000
#define PROBE_TIMEOUT_MS  500

/* A message sent by cs_producer_submit_wait. Its address is the message's
 * opaque; it stays on p->waits until its delivery report, which may come
 * after the call that sent it has given up. */
typedef struct wait_msg {
    struct wait_msg *next;
    uint64_t seq;
} wait_msg;

struct cs_producer {
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    char *brokers;
    char *topic_events;
    char *topic_results;
    size_t max_bytes;
    bool gen_key;
    cs_delivery_cb *on_delivery;
    void *ctx;
    cs_producer_counts counts;
    uint64_t failed_since_flush;
    /* Set by an all-brokers-down error, cleared by a delivery or a probe. */
    bool brokers_down;
    long long last_probe_ms;
    char last_error[256];
    /* cs_producer_submit_wait: the message being waited for is wait_seq. */
    wait_msg *waits;
    uint64_t wait_seq;
    bool wait_done;
    char wait_reason[256];
    int32_t wait_partition;
    int64_t wait_offset;
    /* The results consumer, and its configuration. */
    rd_kafka_conf_t *results_conf;
    rd_kafka_t *results;
};

/* --- preparing ------------------------------------------------------------- */

/* A guess at the key from the text: the digits after the first
 * "case_reference": (quoted or not). The validator has the last word; a
 * wrong guess (say, the name nested in "data") only costs a second parse. */
static size_t guess_key(const char *json, size_t len, char *key, size_t key_size)
{
    static const char name[] = "\"case_reference\"";
    const char *p = json, *end = json + len;
    size_t n = 0;

    while ((p = memchr(p, '"', (size_t)(end - p))) != NULL) {
        if ((size_t)(end - p) >= sizeof(name) - 1 && memcmp(p, name, sizeof(name) - 1) == 0)
            break;
        p++;
    }
    if (!p)
        return 0;
    p += sizeof(name) - 1;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    if (p == end || *p++ != ':')
        return 0;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '"'))
        p++;
    while (p < end && *p >= '0' && *p <= '9' && n + 1 < key_size)
        key[n++] = *p++;
    key[n] = '\0';
    return n;
}

/* Builds json with "idempotency_key" added. When the field is absent the
 * original bytes are kept and the field is inserted after the opening brace,
 * so numbers and order survive exactly; a null field is replaced through a
 * re-serialisation. Returns a malloc'd string, or NULL. */
static char *with_key(const char *json, size_t len, json_t *root, const char *uuid)
{
    const char *brace = memchr(json, '{', len);
    size_t head, size;
    char *buf;

    if (json_object_get(root, "idempotency_key")) {
        if (json_object_set_new(root, "idempotency_key", json_string(uuid)) != 0)
            return NULL;
        return json_dumps(root, JSON_COMPACT);
    }
    /* root parsed as an object, so the first non-blank byte is this brace. */
    head = (size_t)(brace - json) + 1;
    size = len + 64;
    if (!(buf = malloc(size)))
        return NULL;
    memcpy(buf, json, head);
    head += (size_t)snprintf(buf + head, size - head, "\"idempotency_key\":\"%s\"%s", uuid,
                             json_object_size(root) > 0 ? "," : "");
    memcpy(buf + head, brace + 1, len - (size_t)(brace + 1 - json));
    buf[head + len - (size_t)(brace + 1 - json)] = '\0';
    return buf;
}

int cs_producer_prepare(const char *json, size_t len, bool gen_key, size_t max_bytes,
                        cs_prepared *out, char *errstr, size_t errstr_size)
{
    char guess[24];
    size_t guess_len = guess_key(json, len, guess, sizeof(guess));
    cs_submission *s = NULL;
    cs_verdict verdict;
    bool again = false;
    json_t *idem;
    int rc = CS_ERR_INVALID;

    memset(out, 0, sizeof(*out));
    out->value = json;
    out->len = len;
    /* One parse when the guessed key is right and no key is to be made;
     * otherwise a second one, on exactly the bytes that will be sent. */
    verdict = cs_submission_parse(json, len, guess_len ? guess : NULL, guess_len, max_bytes, &s,
                                  errstr, errstr_size);
    if (s && s->case_reference > 0) {
        out->key_len = (size_t)snprintf(out->key, sizeof(out->key), "%" PRId64, s->case_reference);
        again = out->key_len != guess_len || memcmp(out->key, guess, guess_len) != 0;
    }
    idem = s ? json_object_get(s->root, "idempotency_key") : NULL;
    if (gen_key && s && (!idem || json_is_null(idem))) {
        char uuid[37];

        if (cs_uuid_generate(uuid) != 0) {
            snprintf(errstr, errstr_size, "could not generate an idempotency key: no randomness");
            rc = CS_ERR;
            goto cleanup;
        }
        if (!(out->buf = with_key(json, len, s->root, uuid))) {
            snprintf(errstr, errstr_size, "out of memory");
            rc = CS_ERR;
            goto cleanup;
        }
        out->value = out->buf;
        out->len = strlen(out->buf);
        out->key_generated = true;
        again = true;
    }
    if (again) {
        cs_submission_free(s);
        s = NULL;
        verdict = cs_submission_parse(out->value, out->len, out->key_len ? out->key : NULL,
                                      out->key_len, max_bytes, &s, errstr, errstr_size);
    }
    if (verdict != CS_VALID)
        goto cleanup;
    out->case_reference = s->case_reference;
    memcpy(out->idempotency_key, s->idempotency_key, sizeof(out->idempotency_key));
    rc = CS_OK;
cleanup:
    cs_submission_free(s);
    if (rc != CS_OK)
        cs_prepared_clear(out);
    return rc;
}

void cs_prepared_clear(cs_prepared *m)
{
    if (!m)
        return;
    free(m->buf);
    memset(m, 0, sizeof(*m));
}

/* --- the producer -------------------------------------------------------- */

static void on_delivery_report(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    cs_producer *p = opaque;
    wait_msg **link;

    (void)rk;
    if (m->err) {
        p->counts.failed++;
        p->failed_since_flush++;
    } else {
        p->counts.delivered++;
        p->brokers_down = false;
    }
    for (link = &p->waits; *link; link = &(*link)->next) {
        wait_msg *w = *link;

        if ((void *)w != m->_private)
            continue;
        if (w->seq == p->wait_seq) {
            p->wait_done = true;
            p->wait_partition = m->partition;
            p->wait_offset = m->offset;
            snprintf(p->wait_reason, sizeof(p->wait_reason), "%s",
                     m->err ? rd_kafka_err2str(m->err) : "");
        }
        *link = w->next;
        free(w);
        return;
    }
    if (p->on_delivery) {
        cs_delivery d = {m->_private,
                         m->err ? CS_ERR_RETRY : CS_OK,
                         m->err ? rd_kafka_err2str(m->err) : NULL,
                         m->key,
                         m->key_len,
                         m->partition,
                         m->err ? -1 : m->offset};

        p->on_delivery(p->ctx, &d);
    }
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    cs_producer *p = opaque;

    (void)rk;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        p->brokers_down = true;
    snprintf(p->last_error, sizeof(p->last_error), "%s", reason);
}

/* The results consumer's settings: a group of its own, nothing committed. */
static rd_kafka_conf_t *results_conf_new(const cs_config *cfg, char *errstr, size_t errstr_size)
{
    char group[96], uuid[37];
    const char *defaults[] = {"group.id",
                              group,
                              "enable.auto.commit",
                              "false",
                              "enable.auto.offset.store",
                              "false",
                              "auto.offset.reset",
                              "latest",
                              "enable.partition.eof",
                              "false",
                              NULL};

    if (cs_uuid_generate(uuid) != 0) {
        snprintf(errstr, errstr_size, "could not generate a group id: no randomness");
        return NULL;
    }
    snprintf(group, sizeof(group), "casestream-produce-%ld-%s", (long)getpid(), uuid);
    return cs_kafka_conf_new_for(cfg, RD_KAFKA_CONSUMER, defaults, errstr, errstr_size);
}

int cs_producer_open(const cs_config *cfg, const cs_producer_opts *opts, cs_producer **out,
                     char *errstr, size_t errstr_size)
{
    cs_producer *p = calloc(1, sizeof(*p));
    rd_kafka_conf_t *conf = NULL;
    int rc = CS_ERR;

    *out = NULL;
    if (!p || !(p->brokers = strdup(cfg->brokers)) ||
        !(p->topic_events = strdup(cfg->topic_events)) ||
        !(p->topic_results = strdup(cfg->topic_results))) {
        snprintf(errstr, errstr_size, "out of memory");
        goto cleanup;
    }
    p->max_bytes = cfg->max_message_bytes > 0 ? (size_t)cfg->max_message_bytes : 1048576;
    p->gen_key = cfg->gen_key;
    if (opts) {
        p->on_delivery = opts->on_delivery;
        p->ctx = opts->ctx;
    }
    p->wait_offset = -1;
    rc = CS_ERR_INVALID;
    if (!(p->results_conf = results_conf_new(cfg, errstr, errstr_size)))
        goto cleanup;
    if (!(conf = cs_kafka_conf_new(cfg, NULL, errstr, errstr_size)))
        goto cleanup;
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery_report);
    rd_kafka_conf_set_error_cb(conf, on_error);
    /* Takes conf in every case; failing here means the settings conflict
     * (e.g. -X acks=1 with idempotence). */
    if (!(p->rk = cs_kafka_producer_new(cfg, conf,
                                        opts && opts->send_at_once ? CS_KAFKA_SEND_AT_ONCE
                                                                   : CS_KAFKA_SEND_GATHERED,
                                        errstr, errstr_size)))
        goto cleanup;
    rc = CS_ERR;
    if (!(p->rkt = rd_kafka_topic_new(p->rk, p->topic_events, NULL))) {
        snprintf(errstr, errstr_size, "topic %s: %s", p->topic_events,
                 rd_kafka_err2str(rd_kafka_last_error()));
        goto cleanup;
    }
    *out = p;
    return CS_OK;
cleanup:
    cs_producer_free(p);
    return rc;
}

cs_producer *cs_producer_new(const cs_config *cfg, char *errstr, size_t errstr_size)
{
    cs_producer *p;

    return cs_producer_open(cfg, NULL, &p, errstr, errstr_size) == CS_OK ? p : NULL;
}

void cs_producer_free(cs_producer *p)
{
    if (!p)
        return;
    if (p->results) {
        rd_kafka_consumer_close(p->results);
        rd_kafka_destroy(p->results);
    }
    if (p->results_conf)
        rd_kafka_conf_destroy(p->results_conf);
    if (p->rkt)
        rd_kafka_topic_destroy(p->rkt);
    if (p->rk) {
        /* No callbacks into a caller that is tearing down. */
        p->on_delivery = NULL;
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(p->rk, 0);
        rd_kafka_destroy(p->rk);
    }
    while (p->waits) {
        wait_msg *w = p->waits;

        p->waits = w->next;
        free(w);
    }
    free(p->brokers);
    free(p->topic_events);
    free(p->topic_results);
    free(p);
}

int cs_producer_check(cs_producer *p, int timeout_ms, char *errstr, size_t errstr_size)
{
    char why[256] = "";
    int n = cs_kafka_partition_count(p->rk, p->topic_events, timeout_ms, why, sizeof(why));

    if (n == CS_ERR_NOTFOUND)
        snprintf(errstr, errstr_size, "topic %s does not exist on %s (casestream topics create)",
                 p->topic_events, p->brokers);
    else if (n < 0)
        snprintf(errstr, errstr_size, "could not reach kafka at %s: %s", p->brokers, why);
    return n;
}

int cs_producer_send(cs_producer *p, const cs_prepared *m, void *opaque, char *errstr,
                     size_t errstr_size)
{
    char fatal[256];
    rd_kafka_resp_err_t err;

    err = rd_kafka_producev(
        p->rk, RD_KAFKA_V_RKT(p->rkt), RD_KAFKA_V_KEY((void *)m->key, m->key_len),
        RD_KAFKA_V_VALUE((void *)m->value, m->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        p->counts.sent++;
        return CS_OK;
    }
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        snprintf(errstr, errstr_size, "producer queue is full");
        return CS_ERR_RETRY;
    }
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_fatal_error(p->rk, fatal, sizeof(fatal));
        snprintf(errstr, errstr_size, "producer failed: %s", fatal);
    } else {
        snprintf(errstr, errstr_size, "could not send to %s: %s", p->topic_events,
                 rd_kafka_err2str(err));
    }
    return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ? CS_ERR_INVALID : CS_ERR;
}

int cs_producer_poll(cs_producer *p, int timeout_ms)
{
    return rd_kafka_poll(p->rk, timeout_ms);
}

int cs_producer_in_flight(cs_producer *p)
{
    return rd_kafka_outq_len(p->rk);
}

void cs_producer_get_counts(const cs_producer *p, cs_producer_counts *out)
{
    *out = p->counts;
}

/* False (with the reason) while no broker can be reached; asks again at most
 * once per PROBE_INTERVAL_MS, so a caller retrying in a loop does not block. */
static bool brokers_reachable(cs_producer *p, char *errstr, size_t errstr_size)
{
    const struct rd_kafka_metadata *md = NULL;
    long long now;

    if (!p->brokers_down)
        return true;
    now = cs_now_ms();
    if (now - p->last_probe_ms >= PROBE_INTERVAL_MS) {
        p->last_probe_ms = now;
        if (rd_kafka_metadata(p->rk, 0, NULL, &md, PROBE_TIMEOUT_MS) ==
            RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_metadata_destroy(md);
            p->brokers_down = false;
            return true;
        }
    }
    snprintf(errstr, errstr_size, "no kafka broker reachable at %s: %s", p->brokers,
             p->last_error[0] ? p->last_error : "all brokers down");
    return false;
}

static int submit(cs_producer *p, const char *json, size_t len, void *opaque, cs_prepared *m,
                  char *errstr, size_t errstr_size)
{
    int rc;

    rd_kafka_poll(p->rk, 0);
    if ((rc = cs_producer_prepare(json, len, p->gen_key, p->max_bytes, m, errstr, errstr_size)))
        return rc;
    if (!brokers_reachable(p, errstr, errstr_size))
        return CS_ERR_RETRY;
    return cs_producer_send(p, m, opaque, errstr, errstr_size);
}

int cs_producer_submit(cs_producer *p, const char *json, size_t len, char *errstr,
                       size_t errstr_size)
{
    cs_prepared m;
    int rc = submit(p, json, len, NULL, &m, errstr, errstr_size);

    cs_prepared_clear(&m);
    return rc;
}

int cs_producer_flush(cs_producer *p, int timeout_ms)
{
    rd_kafka_resp_err_t err = rd_kafka_flush(p->rk, timeout_ms);

    if (err == RD_KAFKA_RESP_ERR__TIMED_OUT)
        return CS_ERR_RETRY;
    if (p->failed_since_flush) {
        p->failed_since_flush = 0;
        return CS_ERR;
    }
    return CS_OK;
}

/* --- outcomes ---------------------------------------------------------------- */

static bool retriable(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
           err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
           err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || err == RD_KAFKA_RESP_ERR__TRANSPORT;
}

int cs_producer_watch_results(cs_producer *p, int timeout_ms, char *errstr, size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_resp_err_t err;
    long long deadline = cs_now_ms() + timeout_ms;
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    int n, rc = CS_ERR_RETRY;

    if (p->results)
        return CS_OK;
    /* A copy, so that a failed start can be tried again. */
    conf = rd_kafka_conf_dup(p->results_conf);
    if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size))) {
        rd_kafka_conf_destroy(conf);
        return CS_ERR_INVALID;
    }
    p->results = rk;
    n = cs_kafka_partition_count(rk, p->topic_results, timeout_ms, errstr, errstr_size);
    if (n < 0) {
        rc = n;
        goto cleanup;
    }
    /* The current end of every partition: outcomes of what is sent from now
     * on come after it. */
    parts = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++) {
        int64_t lo, hi;

        /* A leader moving (or a topic just created) answers for a moment
         * with a retriable error. */
        while ((err = rd_kafka_query_watermark_offsets(rk, p->topic_results, i, &lo, &hi,
                                                       timeout_ms)) &&
               retriable(err) && cs_now_ms() + 100 < deadline)
            cs_sleep_ms(100);
        if (err) {
            snprintf(errstr, errstr_size, "end of %s [%d]: %s", p->topic_results, i,
                     rd_kafka_err2str(err));
            goto cleanup;
        }
        rd_kafka_topic_partition_list_add(parts, p->topic_results, i)->offset = hi;
    }
    if ((err = rd_kafka_assign(rk, parts))) {
        snprintf(errstr, errstr_size, "assign %s: %s", p->topic_results, rd_kafka_err2str(err));
        goto cleanup;
    }
    rc = CS_OK;
cleanup:
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    if (rc != CS_OK) {
        rd_kafka_destroy(p->results);
        p->results = NULL;
    }
    return rc;
}

int cs_producer_next_outcome(cs_producer *p, int timeout_ms, cs_outcome **out, char *errstr,
                             size_t errstr_size)
{
    long long deadline = cs_now_ms() + timeout_ms;

    *out = NULL;
    if (!p->results) {
        snprintf(errstr, errstr_size, "the results consumer was not started");
        return CS_ERR;
    }
    for (;;) {
        long long left = deadline - cs_now_ms();
        rd_kafka_message_t *m = rd_kafka_consumer_poll(p->results, left > 0 ? (int)left : 0);
        int rc = CS_OK;

        if (m && m->err == RD_KAFKA_RESP_ERR__FATAL) {
            snprintf(errstr, errstr_size, "results consumer: %s", rd_kafka_message_errstr(m));
            rc = CS_ERR;
        } else if (m && !m->err && m->payload) {
            /* Anything that is not an outcome is skipped. */
            if (cs_outcome_parse(m->payload, m->len, out) == CS_OK && *out) {
                rd_kafka_timestamp_type_t type;
                int64_t ts = rd_kafka_message_timestamp(m, &type);

                (*out)->timestamp_ms = type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts;
            }
        }
        if (m)
            rd_kafka_message_destroy(m);
        if (rc != CS_OK || *out || left <= 0)
            return rc;
    }
}

/* Waits until deadline for the outcome of the message delivered at
 * (p->wait_partition, p->wait_offset) with m's reference and key. */
static int await_outcome(cs_producer *p, const cs_prepared *m, long long deadline,
                         char **outcome_json, char *errstr, size_t errstr_size)
{
    cs_outcome *o = NULL;
    long long left;
    int rc;

    while ((left = deadline - cs_now_ms()) > 0) {
        if ((rc = cs_producer_next_outcome(p, (int)left, &o, errstr, errstr_size)))
            return rc;
        if (o && o->case_reference == m->case_reference &&
            strcmp(o->idempotency_key, m->idempotency_key) == 0 &&
            (o->source_partition < 0 ||
             (o->source_partition == p->wait_partition && o->source_offset == p->wait_offset))) {
            *outcome_json = o->json;
            o->json = NULL;
            cs_outcome_free(o);
            return CS_OK;
        }
        cs_outcome_free(o);
        o = NULL;
    }
    snprintf(errstr, errstr_size, "no outcome for case %" PRId64 " within the timeout",
             m->case_reference);
    return CS_ERR_RETRY;
}

int cs_producer_submit_wait(cs_producer *p, const char *json, size_t len, int timeout_ms,
                            char **outcome_json, char *errstr, size_t errstr_size)
{
    long long deadline = cs_now_ms() + timeout_ms;
    cs_prepared m;
    wait_msg *w = NULL;
    int rc;

    *outcome_json = NULL;
    memset(&m, 0, sizeof(m));
    /* The consumer must be at the end before the message goes out. */
    if ((rc = cs_producer_watch_results(p, timeout_ms, errstr, errstr_size)))
        return rc;
    if (!(w = calloc(1, sizeof(*w)))) {
        snprintf(errstr, errstr_size, "out of memory");
        return CS_ERR;
    }
    w->seq = ++p->wait_seq;
    p->wait_done = false;
    p->wait_partition = -1;
    p->wait_offset = -1;
    while ((rc = submit(p, json, len, w, &m, errstr, errstr_size)) == CS_ERR_RETRY &&
           cs_now_ms() < deadline) {
        cs_prepared_clear(&m);
        rd_kafka_poll(p->rk, 10);
    }
    if (rc != CS_OK) {
        free(w);
        goto cleanup;
    }
    w->next = p->waits; /* owned by the list from here on */
    p->waits = w;
    while (!p->wait_done && cs_now_ms() < deadline)
        rd_kafka_poll(p->rk, 10);
    if (!p->wait_done) {
        snprintf(errstr, errstr_size, "case %" PRId64 " not delivered within the timeout",
                 m.case_reference);
        rc = CS_ERR_RETRY;
    } else if (p->wait_reason[0]) {
        snprintf(errstr, errstr_size, "case %" PRId64 " not delivered: %s", m.case_reference,
                 p->wait_reason);
        rc = CS_ERR_RETRY;
    } else {
        rc = await_outcome(p, &m, deadline, outcome_json, errstr, errstr_size);
    }
cleanup:
    cs_prepared_clear(&m);
    return rc;
}
