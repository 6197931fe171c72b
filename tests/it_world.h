/* Support for the worker's integration tests: each test runs the worker on topics and a group
 * of its own (its "world") and uses case references from it_new_ref(), which are consecutive
 * within a test, so lo..hi covers all of a test's cases. */
#ifndef CS_IT_WORLD_H
#define CS_IT_WORLD_H

#include "it_support.h"

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CASE_TYPE "ItWorker"

/* How long a test waits for the worker to catch up, in ms. */
#define CATCH_UP_MS 120000

/* A message the test sends, and the outcome it expects. */
typedef struct planned {
    int64_t ref;        /* 0: the message has no usable reference */
    char key[37];       /* idempotency key, "" when there is none */
    const char *status; /* expected outcome status */
    long long revision; /* expected case_revision of the outcome, 0 = not checked */
    char *value;        /* owned */
    size_t len;
    char *mkey;   /* message key (owned); NULL = no key */
    int tag;      /* which feeder sends it */
    bool at_door; /* "rejected" by the validator for its own values: also copied to the DLQ */
} planned;

/* A decoded outcome from the results topic. */
typedef struct outcome {
    int64_t ref;
    char key[40];
    char status[16];
    int code;
    long long version, revision, seq;
    int partition;
    long long offset;
    char *error; /* NULL when null */
    const char *text;
} outcome;

/* Most messages one test plans; the plan never moves, so pointers into it stay valid. */
#define PLAN_MAX 4096

/* One test's world: its topics, group, references and messages. */
typedef struct world {
    char events[128], results[128], changes[128], dlq[128], group[128];
    int64_t lo, hi;
    planned *plan;
    size_t nplan;
    it_msg *raw; /* the results topic as last read */
    size_t nraw;
} world;

extern world W;

/* A producer thread of its own, sending some planned messages one at a time. */
typedef struct feeder {
    rd_kafka_t *rk;
    size_t *index; /* into W.plan, which must not grow meanwhile */
    size_t n;
    int gap_ms;
    atomic_size_t sent;
    char err[256];
    pthread_t thread;
} feeder;

void world_new(const char *test, int partitions);
/* A case reference of this world (lo..hi grows with it). */
int64_t new_ref(void);
void new_key(char out[37]);
pid_t worker_start(const char *const *extra);
/* worker_start with env (NAME=value strings, NULL-terminated) added to its environment. */
pid_t worker_start_env(const char *const *extra, const char *const *env);
void worker_stop(pid_t pid);
bool log_has(pid_t pid, const char *text);
bool wait_log(pid_t pid, const char *text, int timeout_ms);
void wait_relay(pid_t pid);
planned *plan_raw(int64_t ref, const char *key, const char *status, const char *mkey,
                  const char *value, size_t len);
__attribute__((format(printf, 5, 6))) planned *plan_sub(int64_t ref, const char *key,
                                                        const char *status, const char *event_id,
                                                        const char *fields_fmt, ...);
planned *plan_create(int64_t ref, const char *key);
/* Plans each of cases new cases: a create, then each-1 merges with a note, in rounds over the
 * cases (so consecutive messages go to different partitions). */
void plan_stream(int cases, int each);
void send_one(const planned *p);
void send_range(size_t from, size_t to);
void feeder_start(feeder *f, bool (*pick)(size_t i, void *ctx), void *ctx, int gap_ms);
void feeder_join(feeder *f);
size_t read_topic(const char *topic, long long min, int timeout_ms, it_msg **out);
void outcomes_free(outcome *o, size_t n);
outcome *read_outcomes(size_t *n);
const outcome *find_outcome(const outcome *o, size_t n, int64_t ref, const char *key,
                            const char *status);
void check_planned_outcomes(const outcome *o, size_t n);
size_t count_status(const outcome *o, size_t n, const char *status);
/* The DLQ holds exactly the planned messages the validator refused (status "invalid", or
 * at_door), byte for byte under their keys, each with its outcome's error as its reason (o:
 * the outcomes read); a message refused from its case's state is not there. Call it once every
 * outcome is read: a batch's DLQ copies are delivered with its outcomes. */
void check_dead_letters(const outcome *o, size_t n);
long long committed_now(void);
void wait_committed(void);
void worker_stop_last(pid_t pid);
/* Runs a query built from fmt; the test fails on a SQL error. The caller PQclears. */
PGresult *query(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
long long events_in_world(void);
void check_applied_once(void);
void check_changes(void);
bool redis_up(void);
bool redis_restore(void);
long long redis_exists(int64_t ref, const char *key);
long long metric(int port, const char *name);
void services_up(void);
void leave_clean(void);

#endif
