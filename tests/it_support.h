/* Support for the integration tests: real services, programs run by pid, unique names. */
#ifndef CS_IT_SUPPORT_H
#define CS_IT_SUPPORT_H

#include "config.h"
#include "es.h"

#include <check.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The configuration the tests use: the defaults and CASESTREAM_* variables. */
const cs_config *it_config(void);

/* A shared PostgreSQL connection; the test fails if it cannot connect. */
PGconn *it_pg(void);

/* Runs a query built from fmt and returns the first column of the first row as an
 * integer (0 when there is no row). The test fails on a SQL error. */
long long it_sql_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A case reference no earlier run has used. */
int64_t it_new_ref(void);

/* A name unique to this run: "<prefix>-<time>-<pid>-<n>". Caller frees. */
char *it_unique(const char *prefix);

/* Starts build/<program> (or program itself when it is an absolute path) with args
 * (NULL-terminated, without argv[0]) and extra environment "K=V" entries (NULL-terminated, may be
 * NULL); its stderr goes to build/it-logs/<program>-<pid>.log. The program is SIGKILLed if the test
 * process dies. Returns the pid. */
pid_t it_spawn(const char *program, const char *const *args, const char *const *env);

/* Sends sig and waits up to timeout_ms; then SIGKILL. Returns the exit status
 * (128+signal when killed by a signal), or -1 if it had to be SIGKILLed. */
int it_stop(pid_t pid, int sig, int timeout_ms);

/* Runs build/<program> to completion with stdin from in_path (or /dev/null),
 * stdout to out_path (or /dev/null); returns its exit status. */
int it_run(const char *program, const char *const *args, const char *in_path, const char *out_path,
           const char *err_path);

/* The whole text of a file, NUL-terminated (caller frees); a file that cannot be read fails the
 * test. */
char *it_read_file(const char *path);

/* Creates a topic with the given partitions and waits until every partition
 * has a leader; fails the test on error. */
void it_create_topic(const char *name, int partitions);

/* Deletes a topic, best effort: tests leave no data behind where they can. */
void it_drop_topic(const char *name);

/* Deletes every topic it_create_topic made in this run (the runner calls it at the end; the
 * tests run in child processes, so the names are kept in a file under build/it-logs). */
void it_drop_created_topics(void);

/* Produces one message synchronously (acks=all, murmur2_random). */
void it_produce(const char *topic, const char *key, const char *value, size_t len);

typedef struct it_msg {
    char *key;
    char *value;
    size_t len;
    int partition;
    long long offset;
    char *error; /* "error" header, or NULL */
} it_msg;

/* Reads a topic from the beginning until at least want messages were read or
 * timeout_ms passed; returns the count and the messages in *out (free with
 * it_msgs_free). */
size_t it_consume(const char *topic, size_t want, int timeout_ms, it_msg **out);
void it_msgs_free(it_msg *msgs, size_t n);

/* Sum of the high watermarks of a topic's partitions. */
long long it_topic_end(const char *topic);

/* Runs scripts/stack.sh with the given arguments; returns its exit status. */
int it_stack(const char *args);

/* Polls until cond_sql (a query returning one integer) equals want or timeout, every 100 ms. */
bool it_wait_sql(long long want, int timeout_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* As it_wait_sql, polling every poll_ms: to catch a moment of a fast run. */
bool it_wait_sql_every(int poll_ms, long long want, int timeout_ms, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Waits up to timeout_ms for pid to exit on its own, without signalling it.
 * Returns its exit status (128+signal when killed by a signal), or -1 if it
 * is still running. */
int it_wait_exit(pid_t pid, int timeout_ms);

/* Queues one message without waiting for its delivery (same producer and
 * settings as it_produce, so the order per partition is kept); key may be
 * NULL for a message without a key. it_flush waits until every queued
 * message is delivered and fails the test otherwise. */
void it_produce_async(const char *topic, const char *key, const char *value, size_t len);
void it_flush(void);

/* Closes the shared PostgreSQL connection (after a server restart, say); the
 * next it_pg() connects again. */
void it_pg_reset(void);

/* Host and port of the PostgreSQL server behind a libpq conninfo (127.0.0.1 and 5432 unless it
 * names them), for a proxy in front of it. */
void it_pg_target(const char *conninfo, char *host, size_t size, int *port);

/* Sum over a topic's partitions of the offsets committed by a consumer group (a partition
 * without a committed offset counts 0). Does not join the group. */
long long it_group_committed(const char *group, const char *topic);

/* Deletes the index name, or every index behind the alias name, best effort: tests leave no
 * data behind where they can. */
void it_es_drop(const char *name);

/* A shared Elasticsearch client for the configured address; fails the test if it cannot be made. */
cs_es *it_es(void);

/* Sends a request to Elasticsearch; returns the parsed body (caller decrefs; NULL if not JSON)
 * with the status in *status. Fails the test if Elasticsearch is unreachable. */
json_t *it_es_json(const char *method, const char *path, const char *body, long *status);

/* Documents of index matching a query object (printf format; NULL: all), after a refresh;
 * -1 when the count fails. */
__attribute__((format(printf, 2, 3))) long long it_es_count(const char *index,
                                                            const char *query_fmt, ...);

/* Waits up to timeout_ms until it_es_count(index, query) is want; false (the last count on
 * stderr) otherwise. */
bool it_es_wait_count(const char *index, const char *query, long long want, int timeout_ms);

/* GET of a program's own HTTP endpoint on loopback: the status (0 when unreachable), the body
 * in buf. */
long it_http_get(int port, const char *path, char *buf, size_t size);

#endif
