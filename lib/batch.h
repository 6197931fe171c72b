/* The bulk engine of the indexer and `casestream reindex`: a batch of change documents (and
 * disposal documents, which delete theirs), which to send, the attempt that sends them (413/400
 * split, per-item outcomes), its backoff, the dead letters and the offsets that may be stored. The
 * one I/O, sending a request, is the caller's function; reading PostgreSQL and recording dead
 * letters are the caller's too. */
#ifndef CS_BATCH_H
#define CS_BATCH_H

#include "backoff.h"
#include "bulk.h"
#include "dead_letter.h"
#include "es.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the bulk engine reads from a change document (DESIGN §6). */
typedef struct cs_change {
    int64_t reference; /* the case reference, > 0 */
    int64_t id;        /* the case's internal id, the document's _id; 0 when the document has
                        * none: a change published before casestream kept CCD's id (DESIGN §6) */
    int64_t revision;  /* case_revision, >= 0: the document's external version */
    char index[256];   /* lower(case_type_id) + "_cases" */
} cs_change;

/* Reads a change document: reference and id (integers or digit strings, > 0; id may be
 * missing), case_type_id (or case_type, the name changes published before 007 use), which
 * must name an index, and case_revision (an integer >= 0). Returns 0, or CS_ERR_INVALID with
 * the reason in errstr (UTF-8 that PostgreSQL accepts: it becomes a dead letter's reason;
 * out->reference is then the document's reference if it had a valid one, else 0); a value
 * that is JSON sets *is_json to true. */
int cs_change_parse(const char *value, size_t len, cs_change *out, bool *is_json, char *errstr,
                    size_t errstr_size);

typedef struct cs_batch cs_batch;

/* Counts of what happened to the items of a response. */
typedef struct cs_batch_stats {
    size_t indexed;    /* 2xx */
    size_t deleted;    /* disposal documents: 2xx, or 404 (nothing to delete) */
    size_t conflicts;  /* 409: already there with this or a newer revision */
    size_t retries;    /* 429/5xx: left pending for the next attempt */
    size_t rejected;   /* dead letters */
    size_t superseded; /* dropped for a higher revision of the same case in the batch */
    size_t splits;     /* requests refused as a whole (413, 400) and sent again in halves */
} cs_batch_stats;

typedef struct cs_batch_opts {
    size_t max_docs;      /* most actions per request */
    long backoff_base_ms; /* backoff after a failed attempt: base, doubling, */
    long backoff_cap_ms;  /* up to the cap, jittered (cs_backoff_ms) */
    const char *index;    /* every change goes to this index (borrowed; a new index being
                           * built), NULL: to lower(case_type_id) + "_cases" */
} cs_batch_opts;

#define CS_BATCH_OPTS_INIT                                                                         \
    {                                                                                              \
        1000, 100, 30000, NULL                                                                     \
    }

/* An empty batch (free with cs_batch_free) or NULL when out of memory. opts is copied; NULL
 * takes CS_BATCH_OPTS_INIT. */
cs_batch *cs_batch_new(const cs_batch_opts *opts);

/* Frees the batch. Accepts NULL. */
void cs_batch_free(cs_batch *b);

/* Adds a consumed message (the value is copied; key, the message key, may be
 * NULL). A disposal document (DESIGN §6: "disposed": true, no "data") is sent as a delete
 * of the case's document at its case_revision (external_gte), which wins over the case's
 * changes in the batch as any higher revision does. A message that is not a usable change
 * document becomes a dead letter
 * at once, with the reference its document gives or else its key's (the case
 * reference in decimal, DESIGN §2), 0 when neither does. Returns 0 or CS_ERR
 * (out of memory). */
int cs_batch_add(cs_batch *b, int partition, int64_t offset, const char *key, size_t key_len,
                 const char *value, size_t len);

/* Messages in the batch, and the bytes of their values. */
size_t cs_batch_count(const cs_batch *b);
size_t cs_batch_bytes(const cs_batch *b);

/* ---- an attempt ------------------------------------------------------------------------------ */

/* Sends one bulk request (body->count actions, NDJSON, to CS_BULK_PATH) and fills *out as
 * cs_es_request does: returns 0 when the server answered, whatever the status (the engine clears
 * *out), CS_ERR_RETRY when it did not, CS_ERR when out of memory; errstr says why. ctx is the
 * caller's. */
typedef int (*cs_batch_send_fn)(void *ctx, const cs_bulk_body *body, cs_es_response *out,
                                char *errstr, size_t errstr_size);

/* One attempt at the batch: every pending change is sent once, through send, in requests of
 * at most cs_batch_request_size() actions, and the items of each response are applied
 * (cs_batch_apply). A request refused as a whole with 413 or 400 is sent again in halves (the
 * smaller size stays for the rest of the batch) until the document at fault stands alone;
 * that one becomes a dead letter. Any other failure of a whole request (no answer, another
 * status, a response that cannot be read) ends the attempt with its changes pending.
 * Returns 0 when every request of the attempt was answered; changes answered 429/5xx stay
 * pending (cs_batch_pending) and errstr then says how many and why. Returns CS_ERR_RETRY when
 * a request failed as a whole, CS_ERR when out of memory, with the reason in errstr. Counts
 * are added to *stats (may be NULL). Documents in the reference form must be filled first
 * (cs_batch_omitted); dead letters are left to the caller (cs_batch_dead_letters). */
int cs_batch_attempt(cs_batch *b, cs_batch_send_fn send, void *ctx, cs_batch_stats *stats,
                     char *errstr, size_t errstr_size);

/* Counts a failed attempt of the batch (its requests, or the caller's own work for it such as
 * reading documents or recording dead letters) and returns how long to wait before the next:
 * the jittered exponential backoff of the options. */
long cs_batch_backoff(cs_batch *b);

/* Failed attempts counted since the batch was last cleared. */
int cs_batch_failures(const cs_batch *b);

/* The most actions the next request may hold: max_docs, or less after a 413/400 split. */
size_t cs_batch_request_size(const cs_batch *b);

/* The steps of an attempt, which cs_batch_attempt takes in turn.
 *
 * Starts an attempt: every pending change becomes eligible to be sent once
 * more. Within a batch, only the highest revision of each case (per
 * partition) is sent: external_gte makes the index end up the same, and the
 * others count as superseded (in *stats). */
void cs_batch_begin_attempt(cs_batch *b, cs_batch_stats *stats);

/* Builds into body (reset first) the next request of this attempt: at most
 * max_docs changes not yet sent in it. Returns the number of actions (0 when
 * the attempt has nothing left to send) or CS_ERR (out of memory). */
int cs_batch_build(cs_batch *b, cs_bulk_body *body, size_t max_docs);

/* Applies the items of the response to the last built request (n must be
 * its number of actions): 2xx and 409 are done, retryable ones stay pending
 * for the next attempt, the rest become dead letters with their reason. */
void cs_batch_apply(cs_batch *b, const cs_bulk_item *items, size_t n, cs_batch_stats *stats);

/* The last built request was refused as a whole for its content: its changes
 * become dead letters with this reason. */
void cs_batch_reject_request(cs_batch *b, const char *reason, cs_batch_stats *stats);

/* ---- the state of the batch ------------------------------------------------------------------ */

/* True while some change is pending (to send, or to retry). */
bool cs_batch_pending(const cs_batch *b);

/* Dead letters not yet written, for topic (borrowed; NULL when the changes
 * were not read from Kafka, as in reindex). *out is an array the
 * caller frees (the strings in it are borrowed from the batch and live
 * until the next call that changes it). Returns the count (0: *out = NULL),
 * or (size_t)-1 when out of memory. */
size_t cs_batch_dead_letters(const cs_batch *b, const char *topic, cs_dead_letter **out);

/* The dead letters returned by cs_batch_dead_letters are recorded. */
void cs_batch_dead_letters_written(cs_batch *b);

/* True when every change is acknowledged: indexed, already newer in the
 * index, superseded, or recorded as a dead letter. */
bool cs_batch_resolved(const cs_batch *b);

/* Forgets the changes of partition (revoked in a rebalance): their offsets
 * are never stored, so they are delivered again to the partition's next
 * owner. */
void cs_batch_drop_partition(cs_batch *b, int partition);

/* The offsets to store once the batch is resolved: for each partition in the
 * batch, the offset after its last message. max must be at least the number
 * of partitions in the batch (cs_batch_count() is always enough). Returns the
 * number of pairs filled. */
size_t cs_batch_offsets(const cs_batch *b, int *partitions, int64_t *offsets, size_t max);

/* The changes of the batch that are acknowledged as in the index: written, or found already
 * there at a newer revision (at most max, into refs and revs: the case and the revision sent).
 * A case's dead letters at or below that revision are resolved (cs_dead_letters_clear). A case
 * may be listed twice (from two partitions). Returns the count. */
size_t cs_batch_acknowledged(const cs_batch *b, int64_t *refs, int64_t *revs, size_t max);

/* The references (each once, at most max into refs) of pending changes whose document must
 * be read from PostgreSQL and given to cs_batch_fill: those in the reference form (DESIGN §6)
 * and those without an id (published before casestream kept CCD's id). Returns the count. */
size_t cs_batch_omitted(const cs_batch *b, int64_t *refs, size_t max);

/* Gives the changes of case reference listed by cs_batch_omitted their document as PostgreSQL
 * holds it now (doc NULL: the case is not there; they become dead letters, as does a document
 * that is not of this case, has no id, or is older than the change). doc may be the case's
 * disposal document (it was disposed of since): the change then deletes the document. Returns 0
 * or CS_ERR (out of memory). */
int cs_batch_fill(cs_batch *b, int64_t reference, const char *doc, size_t len);

/* The index names (each once, at most max into names; borrowed from the batch, valid until it
 * changes) that pending changes go to, for the caller to make sure of before an attempt
 * (cs_es_ensure_index). Returns the count. */
size_t cs_batch_indices(const cs_batch *b, const char **names, size_t max);

/* Empties the batch for the next one: no failures counted, requests of max_docs again. */
void cs_batch_clear(cs_batch *b);

#endif
