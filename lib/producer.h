/* Publishing submissions: validation, keys, Java-compatible partitioning, delivery, outcomes. */
#ifndef CS_PRODUCER_H
#define CS_PRODUCER_H

#include "config.h"
#include "outcome.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A producer of submissions onto cfg->topic_events (key = case reference,
 * idempotent, acks=all, partitioner murmur2_random), with an optional
 * consumer of cfg->topic_results for the outcomes. A cs_producer may be used
 * by one thread at a time; delivery callbacks run inside its calls. Two
 * exceptions, which touch nothing the other calls change: the results
 * consumer (cs_producer_watch_results, cs_producer_next_outcome) may run on
 * one thread of its own beside the thread that sends, and cs_producer_check
 * may run on any thread (a readiness probe). */
typedef struct cs_producer cs_producer;

/* --- The embedding API ---------------------------------------------------- */

/* Creates a producer from cfg (brokers, -X properties, topic names,
 * max_message_bytes, gen_key). cfg is only read during the call. Nothing is
 * sent and no connection is awaited here. Returns the producer (free with
 * cs_producer_free) or NULL with the reason in errstr. */
cs_producer *cs_producer_new(const cs_config *cfg, char *errstr, size_t errstr_size);

/* Validates json (cs_submission_parse, with the key derived from its
 * case_reference; with cfg->gen_key a missing idempotency_key is filled in)
 * and queues it; json is copied, the caller keeps it. Returns 0 once queued
 * (delivery is confirmed by cs_producer_flush), CS_ERR_INVALID with the
 * reason if it is not a valid submission, CS_ERR_RETRY if the queue is full
 * or no broker is reachable (nothing was queued: try again later), CS_ERR on
 * a fatal producer error. */
int cs_producer_submit(cs_producer *p, const char *json, size_t len, char *errstr,
                       size_t errstr_size);

/* Like cs_producer_submit, then waits up to timeout_ms for the delivery and
 * for the worker's outcome (DESIGN §4) of this very message, matched by case
 * reference, idempotency key and source partition/offset. Returns 0 with the
 * outcome JSON as received in *outcome_json (NUL-terminated, caller frees
 * with free()) whatever its status; CS_ERR_RETRY if delivery failed or no
 * outcome came in time (*outcome_json is NULL); otherwise as
 * cs_producer_submit. The first call starts the results consumer at the
 * current end of cfg->topic_results; outcomes of other messages are skipped. */
int cs_producer_submit_wait(cs_producer *p, const char *json, size_t len, int timeout_ms,
                            char **outcome_json, char *errstr, size_t errstr_size);

/* Waits up to timeout_ms for every queued message to be delivered. Returns 0
 * if the queue is empty and no delivery failed since the previous flush,
 * CS_ERR_RETRY if messages are still in flight, CS_ERR if some delivery
 * failed (those messages are lost unless submitted again). */
int cs_producer_flush(cs_producer *p, int timeout_ms);

/* Destroys the producer without waiting: flush first. Messages still queued
 * are dropped and get no delivery callback. Accepts NULL. */
void cs_producer_free(cs_producer *p);

/* --- Building blocks, used by casestream-produce ---------------------------- */

/* A validated submission ready to send. */
typedef struct cs_prepared {
    char key[24]; /* the Kafka key: the case reference in decimal, NUL-terminated */
    size_t key_len;
    int64_t case_reference;
    char idempotency_key[37]; /* canonical lower-case */
    bool key_generated;       /* idempotency_key was filled in */
    const char *value;        /* the bytes to send: the caller's json, or buf */
    size_t len;
    char *buf; /* owned copy with the generated key, or NULL */
} cs_prepared;

/* Validates one submission like cs_producer_submit, needing no producer.
 * With gen_key, a missing (or null) idempotency_key gets a random UUID and
 * the value is the input with that field added. On success *out borrows json
 * (keep it alive while out is used) and may own a buffer: release with
 * cs_prepared_clear. Returns 0, CS_ERR_INVALID with the reason, or CS_ERR if
 * no UUID could be generated. */
int cs_producer_prepare(const char *json, size_t len, bool gen_key, size_t max_bytes,
                        cs_prepared *out, char *errstr, size_t errstr_size);

/* Frees what cs_producer_prepare allocated. Accepts NULL. */
void cs_prepared_clear(cs_prepared *m);

/* The fate of one message, passed to the delivery callback. Pointers are
 * borrowed for the duration of the callback. */
typedef struct cs_delivery {
    void *opaque;       /* as given to cs_producer_send */
    int err;            /* 0, or CS_ERR_RETRY when the message was not delivered */
    const char *reason; /* why it failed; NULL on success */
    const char *key;
    size_t key_len;
    int32_t partition; /* -1 if unknown */
    int64_t offset;    /* -1 if unknown */
} cs_delivery;

typedef void cs_delivery_cb(void *ctx, const cs_delivery *d);

/* Options of cs_producer_open. */
typedef struct cs_producer_opts {
    cs_delivery_cb *on_delivery; /* called once per message sent with cs_producer_send */
    void *ctx;                   /* passed to on_delivery */
    /* Each message is waited for (CS_KAFKA_SEND_AT_ONCE), else gathered (lib/kafka.h). */
    bool send_at_once;
} cs_producer_opts;

#define CS_PRODUCER_OPTS_INIT                                                                      \
    {                                                                                              \
        NULL, NULL, false                                                                          \
    }

/* Creates a producer as cs_producer_new does, with options (may be NULL).
 * Returns 0 with *out (free with cs_producer_free), or CS_ERR_INVALID when
 * the configuration or a -X property is not acceptable, or CS_ERR. */
int cs_producer_open(const cs_config *cfg, const cs_producer_opts *opts, cs_producer **out,
                     char *errstr, size_t errstr_size);

/* Asks the brokers for the events topic. Returns its number of partitions,
 * CS_ERR_RETRY if no broker answered within timeout_ms, CS_ERR_NOTFOUND if
 * the topic does not exist. */
int cs_producer_check(cs_producer *p, int timeout_ms, char *errstr, size_t errstr_size);

/* Queues a prepared message (copied: m can be cleared at once); opaque comes
 * back in the delivery callback. Returns 0, CS_ERR_RETRY if the local queue
 * is full (serve deliveries with cs_producer_poll and try again),
 * CS_ERR_INVALID if librdkafka refuses the message as too large, or CS_ERR
 * (the producer failed fatally: stop using it). */
int cs_producer_send(cs_producer *p, const cs_prepared *m, void *opaque, char *errstr,
                     size_t errstr_size);

/* Serves delivery reports, waiting up to timeout_ms for the first. Returns
 * the number of events served. */
int cs_producer_poll(cs_producer *p, int timeout_ms);

/* Messages queued and not yet delivered or failed. */
int cs_producer_in_flight(cs_producer *p);

typedef struct cs_producer_counts {
    uint64_t sent;      /* queued with cs_producer_send or a submit */
    uint64_t delivered; /* acknowledged by the brokers */
    uint64_t failed;    /* given up on */
} cs_producer_counts;

/* Copies the counters. */
void cs_producer_get_counts(const cs_producer *p, cs_producer_counts *out);

/* Starts the results consumer, assigned to every partition of
 * cfg->topic_results at its current end (high watermark), with a group id of
 * its own and nothing committed. Call it before sending what you want the
 * outcomes of. Does nothing if already started. Returns 0, CS_ERR_RETRY if
 * the brokers did not answer in timeout_ms, CS_ERR_NOTFOUND if the topic does
 * not exist, CS_ERR_INVALID for a bad -X property. */
int cs_producer_watch_results(cs_producer *p, int timeout_ms, char *errstr, size_t errstr_size);

/* Reads the next outcome, waiting up to timeout_ms. Returns 0 with *out
 * (caller frees with cs_outcome_free) or with *out NULL on timeout; values
 * that are not outcomes (cs_outcome_parse) are skipped. CS_ERR if the results consumer was
 * not started or failed fatally. */
int cs_producer_next_outcome(cs_producer *p, int timeout_ms, cs_outcome **out, char *errstr,
                             size_t errstr_size);

#endif
