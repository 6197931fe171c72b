/* One consumed submission on its way through the worker, and its outcome (DESIGN §4). */
#ifndef CS_JOB_H
#define CS_JOB_H

#include "envelope.h"
#include "outcome.h"

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
    cs_status status;
    int code;
    int version;              /* 0 = null */
    int64_t revision;         /* 0 = null */
    int64_t event_seq;        /* 0 = null */
    char *outcome;            /* outcome JSON, owned */
    char *supplementary_data; /* owned: the map an applied or duplicate supplementary update's
                                 outcome carries (JSON text); NULL on every other outcome */
    bool applied;             /* written by this worker now: goes to Redis */
    bool replayed;            /* outcome taken from an earlier decision (redelivery) */
    bool case_unreadable;     /* rejected because its case's stored blob cannot be read */
    /* Delivery of the outcome (and the DLQ copy, cs_job_dead_letter). */
    int pending_deliveries;
    bool delivery_failed;
    size_t dlq_cap; /* most value bytes of the DLQ copy; 0 = the submission limit */
} cs_job;

/* Records the decision and renders its outcome (cs_outcome_render). The code
 * follows from the status: an applied revision 1 is a create (201). error may
 * be NULL (rendered null). Returns 0, or CS_ERR when out of memory: the job is
 * left undecided. */
int cs_job_decide(cs_job *j, cs_status status, int version, int64_t revision, int64_t event_seq,
                  const char *error);

/* Decides a job the validator refused (verdict CS_INVALID or CS_REJECTED, its reason in
 * reason) as invalid or rejected with that reason. Returns 0, or CS_ERR when out of memory: the
 * job is left undecided. */
int cs_job_decide_refused(cs_job *j);

/* Like cs_job_decide without an error, for an applied or duplicate supplementary data update:
 * the outcome also carries supplementary (the text of a JSON object: the case's supplementary
 * data after the update), which is copied. */
int cs_job_decide_supplementary(cs_job *j, cs_status status, int version, int64_t revision,
                                int64_t event_seq, const char *supplementary);

/* Takes an outcome decided before for this job's message (a redelivery) and
 * renders it again, so that every copy on the wire is byte-identical whatever
 * the member order and spacing of the text it was parsed from. o stays the
 * caller's. Returns 0, or CS_ERR when out of memory (the job is left
 * undecided). */
int cs_job_replay(cs_job *j, const cs_outcome *o);

/* Fills *o with the job's decided outcome but its error (left NULL): the
 * outcome cs_job_decide rendered for a decision without one. Its
 * supplementary_data is borrowed from the job. */
void cs_job_outcome(const cs_job *j, cs_outcome *o);

/* Whether the job's message also goes to the DLQ: every message the validator refused, as
 * invalid or (rejected) for its own field values (DESIGN §4). A refusal decided from the case's
 * state or records (a conflict, a disposed case, a key reused with another payload...) is
 * outcome-only: the message itself was sound. */
bool cs_job_dead_letter(const cs_job *j);

/* The outcome's message key: the case reference, or the original key. */
const char *cs_job_result_key(const cs_job *j, size_t *len, char *buf, size_t size);

/* Forgets the decision (outcome, supplementary data, flags) so that the job can be decided
 * again. */
void cs_job_undecide(cs_job *j);

/* Frees what the job owns (message, submission, outcome) and zeroes it. */
void cs_job_clear(cs_job *j);

#endif
