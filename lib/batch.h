/* The changes of one bulk: parsing, superseding, request bodies, outcomes and offsets. */
#ifndef CS_BATCH_H
#define CS_BATCH_H

#include "bulk.h"
#include "dead_letter.h"
#include "es.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reads the fields the indexer needs from a change document (DESIGN §6):
 * reference (integer or digit string, > 0), case_type (which must name an
 * index: the index name goes to index[index_size]) and case_revision
 * (integer >= 0). Returns 0, or CS_ERR_INVALID with the reason in errstr; a
 * value that is JSON but lacks a field sets *is_json to true. */
int cs_change_parse(const char *value, size_t len, int64_t *reference, int64_t *revision,
                    char *index, size_t index_size, bool *is_json, char *errstr,
                    size_t errstr_size);

typedef struct cs_batch cs_batch;

/* Counts of what happened to the items of a response. */
typedef struct cs_batch_stats {
    size_t indexed;    /* 2xx */
    size_t conflicts;  /* 409: already there with this or a newer revision */
    size_t retries;    /* 429/5xx: left pending for the next attempt */
    size_t rejected;   /* dead letters */
    size_t superseded; /* dropped for a higher revision of the same case in the batch */
} cs_batch_stats;

/* An empty batch (free with cs_batch_free) or NULL when out of memory. */
cs_batch *cs_batch_new(void);
void cs_batch_free(cs_batch *b);

/* Adds a consumed message (the value is copied; key, the message key, may be
 * NULL). A message that is not a usable change document becomes a dead letter
 * at once, with the reference its document gives or else its key's (the case
 * reference in decimal, DESIGN §2), 0 when neither does. Returns 0 or CS_ERR
 * (out of memory). */
int cs_batch_add(cs_batch *b, int partition, int64_t offset, const char *key, size_t key_len,
                 const char *value, size_t len);

/* Messages in the batch, and the bytes of their values. */
size_t cs_batch_count(const cs_batch *b);
size_t cs_batch_bytes(const cs_batch *b);

/* Starts an attempt: every pending change becomes eligible to be sent once
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

/* True while some change is pending (to send, or to retry). */
bool cs_batch_pending(const cs_batch *b);

/* Dead letters not yet written, for topic (borrowed). *out is an array the
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

/* The references (each once, at most max into refs) of pending changes in
 * the reference form (DESIGN §6), whose document must be read from
 * PostgreSQL and given to cs_batch_fill. Returns the count. */
size_t cs_batch_omitted(const cs_batch *b, int64_t *refs, size_t max);

/* Gives the reference-form changes of case reference their document as
 * PostgreSQL holds it now (doc NULL: the case is not there; they become dead
 * letters, as does a document that is not of this case or is older than the
 * reference). Returns 0 or CS_ERR (out of memory). */
int cs_batch_fill(cs_batch *b, int64_t reference, const char *doc, size_t len);

/* Empties the batch for the next one. */
void cs_batch_clear(cs_batch *b);

#endif
