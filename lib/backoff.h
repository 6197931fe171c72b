/* Jittered exponential backoff: the one delay rule of every retry loop. */
#ifndef CS_BACKOFF_H
#define CS_BACKOFF_H

/* The delay before retry number attempt (0: the first): base_ms doubled attempt times, capped
 * at cap_ms, drawn uniformly from the upper half of that delay with *seed (rand_r), so that
 * many processes retrying at once spread apart while the delay still grows. */
long cs_backoff_ms(int attempt, long base_ms, long cap_ms, unsigned *seed);

/* The state of one retry loop. */
typedef struct cs_backoff {
    long base_ms;
    long cap_ms;
    int attempt; /* failures since the start or the last success */
    unsigned seed;
} cs_backoff;

/* Starts with no failure, seeded from the process id and the clock. */
void cs_backoff_init(cs_backoff *b, long base_ms, long cap_ms);

/* Counts a failure and returns how long to wait before the next try (cs_backoff_ms). */
long cs_backoff_next(cs_backoff *b);

/* A success: the next failure waits about base_ms again. */
void cs_backoff_reset(cs_backoff *b);

#endif
