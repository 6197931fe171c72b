/* Requests waiting for their outcome: a hash table by case reference under one mutex. */
#include "waiters.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 1024
/* Outcomes of its key held while its own message's position is unknown (the latest kept). */
#define HELD_MAX 4

struct cs_waiter {
    cs_waiter *next, *prev; /* in its bucket while listed */
    bool listed;
    int refs;
    int64_t ref;
    char key[37];
    long long deadline_ms;
    cs_wait_state state;
    cs_outcome *outcome; /* CS_WAIT_OUTCOME: owned */
    char reason[256];
    /* The delivered position of its submission; -1 until the delivery report. */
    int32_t partition;
    int64_t offset;
    /* Outcomes of its reference and key that came before the delivery report: owned, judged
     * by position once it comes. */
    cs_outcome *held[HELD_MAX];
    size_t nheld;
    /* Parked: wake(ctx) once done. */
    cs_waiter_wake_fn *wake;
    void *ctx;
};

struct cs_waiters {
    pthread_mutex_t mu;
    cs_waiter *buckets[BUCKETS];
    size_t count;
};

static size_t bucket_of(int64_t ref)
{
    return (size_t)((uint64_t)ref * 0x9E3779B97F4A7C15ull >> 54) % BUCKETS;
}

cs_waiters *cs_waiters_new(void)
{
    cs_waiters *t = calloc(1, sizeof(*t));

    if (t && pthread_mutex_init(&t->mu, NULL) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

static void drop_held(cs_waiter *w)
{
    for (size_t i = 0; i < w->nheld; i++)
        cs_outcome_free(w->held[i]);
    w->nheld = 0;
}

static void waiter_free(cs_waiter *w)
{
    cs_outcome_free(w->outcome);
    drop_held(w);
    free(w);
}

/* Keeps a parsed outcome for w until its delivery report, in place of the earliest held when
 * full. Takes o. Under the lock. */
static void hold(cs_waiter *w, cs_outcome *o)
{
    size_t low = 0;

    if (w->nheld < HELD_MAX) {
        w->held[w->nheld++] = o;
        return;
    }
    for (size_t i = 1; i < w->nheld; i++)
        if (w->held[i]->source_offset < w->held[low]->source_offset)
            low = i;
    cs_outcome_free(w->held[low]);
    w->held[low] = o;
}

static void unlist(cs_waiters *t, cs_waiter *w)
{
    if (!w->listed)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        t->buckets[bucket_of(w->ref)] = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->listed = false;
    t->count--;
}

void cs_waiters_free(cs_waiters *t)
{
    if (!t)
        return;
    for (size_t b = 0; b < BUCKETS; b++) {
        while (t->buckets[b]) {
            cs_waiter *w = t->buckets[b];

            unlist(t, w);
            waiter_free(w);
        }
    }
    pthread_mutex_destroy(&t->mu);
    free(t);
}

cs_waiter *cs_waiters_add(cs_waiters *t, int64_t ref, const char *key, long long deadline_ms)
{
    cs_waiter *w = calloc(1, sizeof(*w));
    size_t b = bucket_of(ref);

    if (!w)
        return NULL;
    w->refs = 2;
    w->ref = ref;
    snprintf(w->key, sizeof(w->key), "%s", key);
    w->deadline_ms = deadline_ms;
    w->partition = -1;
    w->offset = -1;
    pthread_mutex_lock(&t->mu);
    w->next = t->buckets[b];
    if (w->next)
        w->next->prev = w;
    t->buckets[b] = w;
    w->listed = true;
    t->count++;
    pthread_mutex_unlock(&t->mu);
    return w;
}

/* Sets a pending waiter's final state and wakes it if parked. Under the lock. */
static void finish(cs_waiter *w, cs_wait_state state)
{
    if (w->state != CS_WAIT_PENDING)
        return;
    w->state = state;
    if (w->wake) {
        w->wake(w->ctx);
        w->wake = NULL;
    }
}

bool cs_waiters_park(cs_waiters *t, cs_waiter *w, void (*suspend)(void *ctx),
                     cs_waiter_wake_fn *wake, void *ctx)
{
    bool parked = false;

    pthread_mutex_lock(&t->mu);
    if (w->state == CS_WAIT_PENDING) {
        suspend(ctx);
        w->wake = wake;
        w->ctx = ctx;
        parked = true;
    }
    pthread_mutex_unlock(&t->mu);
    return parked;
}

size_t cs_waiters_outcome(cs_waiters *t, const cs_outcome *o)
{
    size_t n = 0;

    pthread_mutex_lock(&t->mu);
    for (cs_waiter *w = t->buckets[bucket_of(o->case_reference)]; w; w = w->next) {
        if (w->state != CS_WAIT_PENDING || w->ref != o->case_reference ||
            strcmp(w->key, o->idempotency_key) != 0)
            continue;
        /* Only its own message's outcome is its answer, not an earlier copy's with the same
         * key (answered 201 where a repeat is 200): until the delivery report says which
         * message is its own, an outcome with a position is held. */
        if (w->partition >= 0 && o->source_partition >= 0 &&
            (w->partition != o->source_partition || w->offset != o->source_offset))
            continue;
        cs_outcome *mine = NULL;

        if (!o->json || cs_outcome_parse(o->json, o->len, &mine) != 0)
            continue;
        if (w->partition < 0 && o->source_partition >= 0) {
            hold(w, mine);
            continue;
        }
        w->outcome = mine;
        finish(w, CS_WAIT_OUTCOME);
        n++;
    }
    pthread_mutex_unlock(&t->mu);
    return n;
}

/* Drops a reference; frees with the last. Under the lock. */
static void unref(cs_waiters *t, cs_waiter *w)
{
    if (--w->refs > 0)
        return;
    unlist(t, w);
    waiter_free(w);
}

void cs_waiters_delivered(cs_waiters *t, cs_waiter *w, int err, const char *reason,
                          int32_t partition, int64_t offset)
{
    pthread_mutex_lock(&t->mu);
    if (err) {
        snprintf(w->reason, sizeof(w->reason), "%s", reason ? reason : "not delivered");
        finish(w, CS_WAIT_UNDELIVERED);
    } else {
        w->partition = partition;
        w->offset = offset;
        for (size_t i = 0; i < w->nheld && w->state == CS_WAIT_PENDING; i++) {
            if (w->held[i]->source_partition == partition && w->held[i]->source_offset == offset) {
                w->outcome = w->held[i];
                w->held[i] = w->held[--w->nheld];
                finish(w, CS_WAIT_OUTCOME);
            }
        }
    }
    drop_held(w);
    unref(t, w);
    pthread_mutex_unlock(&t->mu);
}

size_t cs_waiters_expire(cs_waiters *t, long long now_ms)
{
    size_t n = 0;

    pthread_mutex_lock(&t->mu);
    for (size_t b = 0; b < BUCKETS; b++)
        for (cs_waiter *w = t->buckets[b]; w; w = w->next)
            if (w->state == CS_WAIT_PENDING && w->deadline_ms <= now_ms) {
                finish(w, CS_WAIT_TIMEOUT);
                n++;
            }
    pthread_mutex_unlock(&t->mu);
    return n;
}

void cs_waiters_stop(cs_waiters *t)
{
    pthread_mutex_lock(&t->mu);
    for (size_t b = 0; b < BUCKETS; b++)
        for (cs_waiter *w = t->buckets[b]; w; w = w->next)
            finish(w, CS_WAIT_STOPPED);
    pthread_mutex_unlock(&t->mu);
}

size_t cs_waiters_count(cs_waiters *t)
{
    size_t n;

    pthread_mutex_lock(&t->mu);
    n = t->count;
    pthread_mutex_unlock(&t->mu);
    return n;
}

cs_wait_state cs_waiter_state(cs_waiters *t, cs_waiter *w, const cs_outcome **o)
{
    cs_wait_state s;

    pthread_mutex_lock(&t->mu);
    s = w->state;
    if (o)
        *o = w->outcome;
    pthread_mutex_unlock(&t->mu);
    return s;
}

const char *cs_waiter_reason(const cs_waiter *w)
{
    return w->reason;
}

void cs_waiters_release(cs_waiters *t, cs_waiter *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&t->mu);
    /* The request is done with it: no outcome looks for it any more. */
    w->wake = NULL;
    if (w->state == CS_WAIT_PENDING)
        w->state = CS_WAIT_STOPPED;
    unlist(t, w);
    unref(t, w);
    pthread_mutex_unlock(&t->mu);
}
