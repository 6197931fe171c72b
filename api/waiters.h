/* Requests waiting for the outcome of the submission they published, keyed by case reference
 * and idempotency key; thread-safe. */
#ifndef CS_API_WAITERS_H
#define CS_API_WAITERS_H

#include "outcome.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cs_waiters cs_waiters;
typedef struct cs_waiter cs_waiter;

/* What became of a wait. */
typedef enum cs_wait_state {
    CS_WAIT_PENDING,     /* nothing yet */
    CS_WAIT_OUTCOME,     /* its outcome came (cs_waiter_outcome) */
    CS_WAIT_TIMEOUT,     /* its deadline passed first */
    CS_WAIT_UNDELIVERED, /* Kafka did not take the submission (cs_waiter_reason) */
    CS_WAIT_STOPPED      /* the table was closed (shutdown) */
} cs_wait_state;

/* Called once, under the table's lock, when a parked waiter is done (it resumes the request):
 * it must not call back into the table. */
typedef void cs_waiter_wake_fn(void *ctx);

/* A new empty table; NULL when out of memory. Free with cs_waiters_free. */
cs_waiters *cs_waiters_new(void);

/* Frees the table and every waiter left in it. Accepts NULL. */
void cs_waiters_free(cs_waiters *t);

/* Registers a waiter for (ref, key) until deadline_ms (cs_now_ms clock), BEFORE its
 * submission is sent, so that no outcome can come unseen. It holds two references: the
 * request's (cs_waiters_release) and the delivery's (cs_waiters_delivered, or a second
 * cs_waiters_release when nothing was sent). NULL when out of memory. */
cs_waiter *cs_waiters_add(cs_waiters *t, int64_t ref, const char *key, long long deadline_ms);

/* Parks a waiter still pending: calls suspend(ctx) under the table's lock, and wake(ctx)
 * later when it is done. Returns false (nothing called) when it is already done. */
bool cs_waiters_park(cs_waiters *t, cs_waiter *w, void (*suspend)(void *ctx),
                     cs_waiter_wake_fn *wake, void *ctx);

/* An outcome from the results topic: done for every pending waiter of its reference and key
 * whose submission's delivered position is its source position. One that comes before the
 * waiter's delivery report is held until it (cs_waiters_delivered), as it may be an earlier
 * copy's; one with no source position answers at once. Returns the number of waiters it
 * answered. o is only read. */
size_t cs_waiters_outcome(cs_waiters *t, const cs_outcome *o);

/* The delivery report of w's submission: its position (done, if an outcome held for it came
 * from there), or a failure (err != 0: done as undelivered, with reason). Drops the delivery's
 * reference. */
void cs_waiters_delivered(cs_waiters *t, cs_waiter *w, int err, const char *reason,
                          int32_t partition, int64_t offset);

/* Marks every waiter whose deadline is at or before now_ms as timed out. Returns how many. */
size_t cs_waiters_expire(cs_waiters *t, long long now_ms);

/* Marks every pending waiter as stopped (the process is going away). */
void cs_waiters_stop(cs_waiters *t);

/* Waiters registered and not yet released by their request. */
size_t cs_waiters_count(cs_waiters *t);

/* The state of w; with CS_WAIT_OUTCOME, *o (if not NULL) borrows its outcome, valid until
 * the request's release. */
cs_wait_state cs_waiter_state(cs_waiters *t, cs_waiter *w, const cs_outcome **o);

/* Why w's submission was not delivered (CS_WAIT_UNDELIVERED), else "". Borrowed. */
const char *cs_waiter_reason(const cs_waiter *w);

/* Drops one reference of w (the request's; removing it from the table), freeing it with the
 * last one. Accepts NULL. */
void cs_waiters_release(cs_waiters *t, cs_waiter *w);

#endif
