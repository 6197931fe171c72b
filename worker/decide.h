/* The worker's decisions (DESIGN §4, §5): what each submission of a batch gets, decided against
 * its case as PostgreSQL holds it and as the batch's earlier submissions leave it. No I/O:
 * worker/apply.c reads the state in and sends the writes out, worker/worker.c answers repeats
 * from Redis with the same rule. */
#ifndef CS_DECIDE_H
#define CS_DECIDE_H

#include "job.h"
#include "outcome.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A stored case as round 1 read it (ccd.case_data, locked). Strings are borrowed. */
typedef struct cs_case_row {
    int64_t reference;
    int64_t id; /* CCD's internal id of the case; 0 when not known */
    const char *case_type;
    const char *jurisdiction;
    const char *state;
    const char *classification;
    const char *data; /* the blob as jsonb gives it back; it may not be readable */
    size_t data_len;
    const char *resolved_ttl; /* "YYYY-MM-DD"; NULL = none */
    /* The supplementary data as jsonb gives it back (it may not be readable); NULL = {} */
    const char *supplementary_data;
    size_t supplementary_len;
    int version;
    int64_t revision;
} cs_case_row;

/* An idempotency key a case applied: from its history row, or from its Redis entry. */
typedef struct cs_applied_key {
    int64_t reference;
    char key[37];
    int version;
    int64_t revision;
    int64_t event_seq;
    int32_t partition; /* where the applied submission was read; -1 if not recorded */
    int64_t offset;
    char fingerprint[65]; /* of the applied payload; "" for keys applied before fingerprints */
    /* A supplementary update's: the map after it (JSON text), which its repeats carry.
     * NULL for every other submission. Borrowed. */
    const char *supplementary_data;
} cs_applied_key;

/* What an applied submission writes (DESIGN §5). The case row after it: created (with the
 * submission's case type and jurisdiction, and case_id) or updated where its revision is
 * prev_revision. The history row: event_seq, version, revision, the row's state,
 * classification, blob and data classification, with the submission's event, user, summary,
 * description, CCD's event fields, key, position and fingerprint. The notes: one row each.
 * Then the outbox row of the case. */
typedef struct cs_plan {
    bool apply; /* false: the job is decided and nothing is written */
    bool create;
    int64_t case_id;             /* on create: the given id, one reserved in round 1, or 0 */
    char *state;                 /* owned */
    bool state_changed;          /* the state moves (and last_state_modified_date with it) */
    char *classification;        /* owned */
    json_t *data;                /* the blob after the submission; owned */
    bool data_changed;           /* differs from the stored blob by JSON value: written */
    char *resolved_ttl;          /* after the submission, "YYYY-MM-DD"; NULL = none; owned */
    json_t *data_classification; /* borrowed from the submission; NULL = left as it is */
    /* A supplementary update's: the case's supplementary data after it, written; NULL for
     * every other submission (left as it is). Owned. */
    json_t *supplementary;
    int version;
    int64_t revision;
    int64_t prev_revision; /* 0 on create */
    int64_t event_seq;     /* the history row's id, reserved in round 1 */
    json_t *notes;         /* borrowed from the submission; NULL when it adds none */
} cs_plan;

/* The state of one batch's cases, and the decisions against it. */
typedef struct cs_decider cs_decider;

/* Returns an empty decider (no case exists), or NULL when out of memory. Free with
 * cs_decider_free. */
cs_decider *cs_decider_new(void);
void cs_decider_free(cs_decider *d);

/* Round 1, read into the decider. Each copies what it is given and returns 0, or CS_ERR when
 * out of memory. */

/* A stored case. A blob that cannot be read makes that case's submissions rejected. */
int cs_decider_add_case(cs_decider *d, const cs_case_row *row);
/* A key applied to one of the batch's cases. */
int cs_decider_add_key(cs_decider *d, const cs_applied_key *k);
/* An outcome decided before for a source position (ccd.event_outcome). Text that is not an
 * outcome is ignored: the submission there is decided again. */
int cs_decider_add_recorded(cs_decider *d, int32_t partition, int64_t offset, const char *text,
                            size_t len);
/* A stored case type that a create is checked against: one of the batch's own, or one equal
 * to one of them but for letter case. */
int cs_decider_add_case_type(cs_decider *d, const char *case_type);
/* A reference disposed of at the end of its retention (ccd.disposed_case), on disposed_on
 * ("YYYY-MM-DD", UTC): while no case of that reference exists, its submissions are rejected
 * (422) with that date, and none creates it again. */
int cs_decider_add_disposed(cs_decider *d, int64_t reference, const char *disposed_on);
/* An internal id that case reference holds (disposed_on NULL), or held until it was disposed of
 * on disposed_on ("YYYY-MM-DD"): a create of another reference naming it is rejected (422). */
int cs_decider_add_taken_id(cs_decider *d, int64_t id, int64_t reference, const char *disposed_on);
/* A case type being imported from CCD's database and not yet cut over (ccd.case_type_import,
 * DESIGN §12): CCD still owns its cases, so every submission naming it is rejected (422). */
int cs_decider_add_importing(cs_decider *d, const char *case_type);
/* A reserved history row id; an applied submission takes the next one. */
int cs_decider_add_event_seq(cs_decider *d, int64_t seq);
/* A reserved case id; a create without an "id" takes the next one (without one left, its
 * plan's case_id is 0: the database gives it one, unknown to the batch's later submissions). */
int cs_decider_add_case_id(cs_decider *d, int64_t id);

/* Decides valid job j (jobs in offset order) against its case as the decider holds it. Either
 * j is decided (status, code, outcome; p->apply false), or p->apply is true and *p holds its
 * writes: once they are sent, cs_decider_adopt makes them the case's state and decides j;
 * a plan not adopted (the database refused it) leaves the case as it was, and is freed with
 * cs_plan_clear. Returns 0, or CS_ERR when out of memory or out of reserved ids (j undecided,
 * *p empty).
 *
 * The version rule (DESIGN §5): version goes up by one when the blob (by JSON value), the
 * state, the classification or resolved_ttl changes, and only then; the revision on every
 * applied submission. A supplementary data update changes the supplementary data alone,
 * applying "$set" then "$inc", each in byte order of path, to the map as the case holds it. */
int cs_decide(cs_decider *d, cs_job *j, cs_plan *p);

/* Makes p's writes the state of j's case, so that the batch's later submissions see them,
 * records j's key, and decides j applied. Takes what p owns and clears it. Returns 0, or
 * CS_ERR when out of memory (j undecided; p cleared). */
int cs_decider_adopt(cs_decider *d, cs_job *j, cs_plan *p);

/* The database refused the writes of p, j's plan: j is rejected (422) with its reason and its
 * case stays as it was. Clears p. Returns 0, or CS_ERR when out of memory (j undecided). */
int cs_decide_refused(cs_job *j, cs_plan *p, const char *why);

/* Frees what a plan owns and zeroes it. */
void cs_plan_clear(cs_plan *p);

/* The rule for a submission whose key its case applied before (DESIGN §5.2), the one rule of
 * the PostgreSQL and the Redis paths:
 * - read at the applied message's own source position: a redelivery, answered with the
 *   applied outcome again (replayed);
 * - with another payload (both fingerprints known and different): rejected (422);
 * - else a duplicate with the original's version, revision and sequence.
 * Only PostgreSQL (authoritative) rejects, and answers a message read before the applied one
 * or on another partition (decided without the key; its recorded outcome, when kept, came
 * first): the Redis path, which knows only the applied outcome, leaves both to it.
 * Returns true when j is decided; false when it is left to PostgreSQL, or when out of memory. */
bool cs_decide_repeat(cs_job *j, const cs_applied_key *k, bool authoritative);

/* The applied key an outcome tells of: its Redis entry. Returns false when the outcome is not
 * an applied one. */
bool cs_applied_key_from_outcome(const cs_outcome *o, cs_applied_key *k);

#endif
