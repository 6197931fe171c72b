/* Liveness of a program's loop and readiness of its dependencies, probed in the background. */
#ifndef CS_HEALTH_H
#define CS_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

typedef struct cs_health cs_health;

/* A program's own condition (a partition stalled, batches failing): true when fine, with a
 * few `key=value` words in detail. Called from the HTTP thread: read atomics only. */
typedef bool (*cs_health_fn)(char *detail, size_t size, void *ctx);

/* Checks one dependency now, within a couple of seconds: 0 when it answers, otherwise
 * non-zero with the reason in detail. Runs on a thread of its own. */
typedef int (*cs_probe_fn)(void *ctx, char *detail, size_t size);

/* How often each dependency is probed, and how long a success counts: a probe that hangs
 * makes its dependency down once its last success is this old. */
#define CS_HEALTH_PROBE_MS 1000
#define CS_HEALTH_STALE_MS 4000

/* A new health state; live_seconds is how long the main loop may go without cs_beat()
 * before /livez fails. Counts as a beat. Free with cs_health_free. */
cs_health *cs_health_new(int live_seconds);

/* Adds a dependency probed by fn(ctx) (name and ctx borrowed; call before cs_health_start).
 * Returns 0, or CS_ERR when there are too many. Until its first probe, it is not ready. */
int cs_health_add(cs_health *h, const char *name, cs_probe_fn fn, void *ctx);

/* Sets the program's own condition, part of readiness (fn may be NULL). */
void cs_health_set_program(cs_health *h, cs_health_fn fn, void *ctx);

/* Marks a dependency down with why until its next successful probe (from any thread: a
 * library's error callback). Unknown names are ignored. */
void cs_health_down(cs_health *h, const char *name, const char *why);

/* Starts one probe thread per dependency. Returns 0 or CS_ERR with the reason in errstr. */
int cs_health_start(cs_health *h, char *errstr, size_t errstr_size);

/* Stops and joins the probe threads (call before freeing what the probes use). Accepts NULL;
 * may be called more than once. */
void cs_health_stop(cs_health *h);

/* Stops the threads and frees. Accepts NULL. */
void cs_health_free(cs_health *h);

/* /livez and /readyz: true when live (ready), with a one-line text. Any thread. */
bool cs_health_live(cs_health *h, char *text, size_t size);
bool cs_health_ready(cs_health *h, char *text, size_t size);

/* ---- the rules, without I/O ------------------------------------------------------------- */

typedef enum cs_dep_state { CS_DEP_UNKNOWN = 0, CS_DEP_UP, CS_DEP_DOWN } cs_dep_state;

typedef struct cs_dep {
    const char *name;
    cs_dep_state state;
    long long ok_ms; /* last successful probe */
    char detail[256];
} cs_dep;

/* Readiness at now_ms: every dependency up with a success at most stale_ms old, and the
 * program's condition fine. text: "ok" or "unavailable", then name=up|down|unknown for each
 * dependency, the program's words, and name_error="..." for each one down. */
bool cs_health_decide(const cs_dep *deps, size_t n, long long now_ms, long long stale_ms,
                      bool program_ok, const char *program_text, char *text, size_t size);

/* Liveness: the main loop's last turn was at most live_ms ago. */
bool cs_health_decide_live(long long beat_age_ms, long long live_ms, char *text, size_t size);

#endif
