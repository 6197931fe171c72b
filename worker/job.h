/* One consumed submission on its way through the worker, and its outcome (DESIGN §4). */
#ifndef CS_JOB_H
#define CS_JOB_H

#include "envelope.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

/* Per-message state, freed at the end of the message's life by cs_job_clear. */
typedef struct cs_job {
    rd_kafka_message_t *msg; /* owned */
    int32_t partition;
    int64_t offset;
    cs_submission *sub; /* owned; NULL when the value was not a JSON object */
    cs_verdict verdict;
    char reason[512];
    char fingerprint[65]; /* of a valid submission's payload; "" if not known */
    /* The decision. */
    bool decided;
    const char *status; /* "applied", "duplicate", "conflict", "rejected", "invalid" */
    int code;
    int version;          /* 0 = null */
    int64_t revision;     /* 0 = null */
    int64_t event_seq;    /* 0 = null */
    char *outcome;        /* outcome JSON, owned */
    bool applied;         /* written by this worker now: goes to Redis */
    bool replayed;        /* outcome taken from an earlier decision (redelivery) */
    bool case_unreadable; /* rejected because its case's stored blob cannot be read */
    /* Delivery of the outcome (and the DLQ copy for invalid messages). */
    int pending_deliveries;
    bool delivery_failed;
    size_t dlq_cap; /* most value bytes of the DLQ copy; 0 = the submission limit */
} cs_job;

/* Records the decision and renders the outcome JSON. error may be NULL (rendered null); it is
 * UTF-8 (cut with lib/utf8.h), else its bytes beyond ASCII are rendered as '?'. */
void cs_job_decide(cs_job *j, const char *status, int code, int version, int64_t revision,
                   int64_t event_seq, const char *error);

/* Takes a previously decided outcome (a redelivered message) and renders it
 * again exactly as cs_job_decide did, whatever the member order and spacing
 * of the text given (jsonb from PostgreSQL differs), so every copy on the
 * wire is byte-identical. outcome stays the caller's. Returns 0, or
 * CS_ERR_INVALID if it is not an outcome. */
int cs_job_replay(cs_job *j, const char *outcome);

/* Answers a resubmission of an applied key: "duplicate" with the original
 * event's version, revision and sequence, taken from its outcome JSON.
 * Returns 0, or CS_ERR_INVALID if original is not an outcome. */
int cs_job_duplicate_of(cs_job *j, const char *original);

/* The outcome's message key: the case reference, or the original key. */
const char *cs_job_result_key(const cs_job *j, size_t *len, char *buf, size_t size);

/* Frees what the job owns (message, submission, outcome) and zeroes it. */
void cs_job_clear(cs_job *j);

#endif
