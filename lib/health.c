/* Health of a long-running program: probe threads, the main loop's heartbeat, the rules. */
#include "health.h"

#include "err.h"
#include "redact.h"
#include "run.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_DEPS 8

typedef struct probe_slot {
    cs_health *h;
    size_t index;
    cs_probe_fn fn;
    void *ctx;
    pthread_t thread;
    bool started;
} probe_slot;

struct cs_health {
    long long live_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    cs_dep deps[MAX_DEPS];
    probe_slot slots[MAX_DEPS];
    size_t n;
    cs_health_fn program;
    void *program_ctx;
};

/* ---- the rules -------------------------------------------------------------------------- */

static const char *state_name(const cs_dep *d, long long now_ms, long long stale_ms)
{
    if (d->state == CS_DEP_UP)
        return now_ms - d->ok_ms <= stale_ms ? "up" : "down";
    return d->state == CS_DEP_DOWN ? "down" : "unknown";
}

bool cs_health_decide(const cs_dep *deps, size_t n, long long now_ms, long long stale_ms,
                      bool program_ok, const char *program_text, char *text, size_t size)
{
    bool ready = program_ok;
    size_t off;

#define OUT(...)                                                                                   \
    do {                                                                                           \
        int w_ = snprintf(text + off, size - off, __VA_ARGS__);                                    \
        if (w_ > 0)                                                                                \
            off = off + (size_t)w_ < size ? off + (size_t)w_ : size - 1;                           \
    } while (0)

    for (size_t i = 0; i < n; i++)
        ready = ready && strcmp(state_name(&deps[i], now_ms, stale_ms), "up") == 0;
    if (size == 0)
        return ready;
    off = 0;
    text[0] = '\0';
    OUT("%s", ready ? "ok" : "unavailable");
    for (size_t i = 0; i < n; i++)
        OUT(" %s=%s", deps[i].name, state_name(&deps[i], now_ms, stale_ms));
    if (program_text && program_text[0])
        OUT(" %s", program_text);
    for (size_t i = 0; i < n; i++) {
        const char *st = state_name(&deps[i], now_ms, stale_ms);

        if (strcmp(st, "down") != 0)
            continue;
        if (deps[i].state == CS_DEP_UP)
            OUT(" %s_error=\"no answer for %lld ms\"", deps[i].name, now_ms - deps[i].ok_ms);
        else
            OUT(" %s_error=\"%s\"", deps[i].name, deps[i].detail);
    }
#undef OUT
    return ready;
}

bool cs_health_decide_live(long long beat_age_ms, long long live_ms, char *text, size_t size)
{
    bool live = beat_age_ms <= live_ms;

    snprintf(text, size, "%s loop_seconds_ago=%lld", live ? "ok" : "stuck", beat_age_ms / 1000);
    return live;
}

/* ---- the state -------------------------------------------------------------------------- */

cs_health *cs_health_new(int live_seconds)
{
    cs_health *h = calloc(1, sizeof(*h));

    if (!h)
        return NULL;
    h->live_ms = (long long)live_seconds * 1000;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    cs_beat();
    return h;
}

int cs_health_add(cs_health *h, const char *name, cs_probe_fn fn, void *ctx)
{
    if (h->n == MAX_DEPS)
        return CS_ERR;
    h->deps[h->n].name = name;
    h->deps[h->n].state = CS_DEP_UNKNOWN;
    snprintf(h->deps[h->n].detail, sizeof(h->deps[h->n].detail), "not probed yet");
    h->slots[h->n] = (probe_slot){h, h->n, fn, ctx, 0, false};
    h->n++;
    return CS_OK;
}

void cs_health_set_program(cs_health *h, cs_health_fn fn, void *ctx)
{
    h->program = fn;
    h->program_ctx = ctx;
}

static void record(cs_health *h, size_t i, bool up, const char *why)
{
    pthread_mutex_lock(&h->mu);
    h->deps[i].state = up ? CS_DEP_UP : CS_DEP_DOWN;
    if (up)
        h->deps[i].ok_ms = cs_now_ms();
    else
        cs_redact(h->deps[i].detail, sizeof(h->deps[i].detail), why);
    pthread_mutex_unlock(&h->mu);
}

void cs_health_down(cs_health *h, const char *name, const char *why)
{
    for (size_t i = 0; h && i < h->n; i++)
        if (strcmp(h->deps[i].name, name) == 0)
            record(h, i, false, why);
}

static void *probe_main(void *arg)
{
    probe_slot *s = arg;
    cs_health *h = s->h;

    for (;;) {
        char detail[256] = "";
        struct timespec until;
        int rc = s->fn(s->ctx, detail, sizeof(detail));

        record(h, s->index, rc == 0, detail[0] ? detail : "no answer");
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)CS_HEALTH_PROBE_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_mutex_lock(&h->mu);
        while (!h->stopping && pthread_cond_timedwait(&h->cv, &h->mu, &until) == 0)
            ;
        if (h->stopping) {
            pthread_mutex_unlock(&h->mu);
            return NULL;
        }
        pthread_mutex_unlock(&h->mu);
    }
}

int cs_health_start(cs_health *h, char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < h->n; i++) {
        if (pthread_create(&h->slots[i].thread, NULL, probe_main, &h->slots[i]) != 0) {
            snprintf(errstr, errstr_size, "could not start the probe thread of %s",
                     h->deps[i].name);
            cs_health_stop(h);
            return CS_ERR;
        }
        h->slots[i].started = true;
    }
    return CS_OK;
}

void cs_health_stop(cs_health *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->stopping = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    for (size_t i = 0; i < h->n; i++) {
        if (h->slots[i].started)
            pthread_join(h->slots[i].thread, NULL);
        h->slots[i].started = false;
    }
}

void cs_health_free(cs_health *h)
{
    if (!h)
        return;
    cs_health_stop(h);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}

bool cs_health_live(cs_health *h, char *text, size_t size)
{
    return cs_health_decide_live(cs_beat_age_ms(), h->live_ms, text, size);
}

bool cs_health_ready(cs_health *h, char *text, size_t size)
{
    cs_dep deps[MAX_DEPS];
    char program[256] = "";
    bool program_ok = true;
    size_t n;

    if (h->program)
        program_ok = h->program(program, sizeof(program), h->program_ctx);
    pthread_mutex_lock(&h->mu);
    n = h->n;
    memcpy(deps, h->deps, n * sizeof(deps[0]));
    pthread_mutex_unlock(&h->mu);
    return cs_health_decide(deps, n, cs_now_ms(), CS_HEALTH_STALE_MS, program_ok, program, text,
                            size);
}
