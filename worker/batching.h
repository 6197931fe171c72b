/* When the batch the worker's polling thread holds goes to the appliers: the rule, without I/O. */
#ifndef CS_BATCHING_H
#define CS_BATCHING_H

#include <stdbool.h>
#include <stddef.h>

/* cs_batching_wait_ms's answer: the batch goes now. */
#define CS_BATCHING_GO (-1)

/* How long the polling thread may wait for one more message before the batch in hand
 * (pending > 0 messages of pending_bytes bytes in all, the first of them polled age_ms ago)
 * goes to the appliers. CS_BATCHING_GO when it goes now: it holds want messages or want_bytes
 * bytes, or the last poll found nothing queued (drained) and linger_ms have passed since its
 * first message (with linger 0, as soon as nothing more is queued: under light load a
 * submission waits for no timer, and under heavy load batches fill while the previous one is
 * applied). 0: poll what is queued without waiting. Otherwise the milliseconds left of the
 * linger. */
int cs_batching_wait_ms(size_t pending, size_t want, size_t pending_bytes, size_t want_bytes,
                        bool drained, long long age_ms, int linger_ms);

/* Whether the next message in hand, of next_bytes bytes, joins a batch that already takes
 * taken messages of taken_bytes bytes: while the batch stays within want messages and
 * want_bytes bytes. The first message always joins, however large, so a submission larger
 * than want_bytes forms a batch of one. Messages are taken in the order they were polled:
 * the first that does not join opens the next batch. */
bool cs_batching_takes(size_t taken, size_t taken_bytes, size_t next_bytes, size_t want,
                       size_t want_bytes);

/* Submissions a batch gives each applier before it takes one more. */
#define CS_BATCHING_JOBS_PER_APPLIER 8

/* How many of the appliers a batch of jobs (> 0) to apply is split across: one for each
 * CS_BATCHING_JOBS_PER_APPLIER, at most appliers. An applier's transaction takes its jobs
 * together in the same round trips, so a small batch split across every applier pays a commit
 * (and a WAL flush) for one or two submissions each; a large one keeps them all busy. */
size_t cs_batching_appliers(size_t jobs, size_t appliers);

#endif
