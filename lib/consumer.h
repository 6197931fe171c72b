/* Consumer flow shared by the worker and the indexer: group membership, pause and resume,
 * stored offsets, lag and stalled partitions. */
#ifndef CS_CONSUMER_H
#define CS_CONSUMER_H

#include "config.h"
#include "metrics.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cs_consumer cs_consumer;

/* Called inside the rebalance callback before parts are given up: the program forgets the
 * work it holds for them (their offsets were never stored, so their next owner receives them
 * again) and says whether it still wants to be paused (cs_consumer_set_paused). lost: the
 * assignment was lost (session timeout, fatal error), not handed over. Afterwards the
 * consumer commits what was stored (unless lost) and unassigns them.
 * Returns true if the program also dropped work of partitions it keeps: in an incremental
 * rebalance those go on fetching, so the consumer moves each of them back to its next offset
 * not yet acknowledged, and what was dropped is received again. */
typedef bool (*cs_consumer_revoke_fn)(const rd_kafka_topic_partition_list_t *parts, bool lost,
                                      void *ctx);

typedef struct cs_consumer_opts {
    const char *topic;            /* the one topic consumed */
    const char *group;            /* group.id (a -X group.id wins) */
    const char *const *defaults;  /* librdkafka defaults, NULL-terminated pairs; -X wins */
    int stall_seconds;            /* 0: never report a stall */
    cs_consumer_revoke_fn revoke; /* may be NULL */
    void *ctx;                    /* passed to revoke */
    /* Gauges kept up to date (each may be NULL): messages not yet acknowledged, 1 while
     * paused, partitions stalled. */
    cs_metric *lag, *paused, *stalled;
} cs_consumer_opts;

#define CS_CONSUMER_OPTS_INIT                                                                      \
    {                                                                                              \
        NULL, NULL, NULL, 120, NULL, NULL, NULL, NULL, NULL                                        \
    }

/* Creates the consumer (not yet subscribed) from cfg's brokers, group protocol
 * (cfg->group_protocol) and -X properties; opts' strings and metrics are borrowed for its life.
 * Rebalances are incremental with the consumer protocol and cooperative-sticky, eager
 * otherwise; the revoke callback sees only the partitions given up either way.
 * Returns it (free with cs_consumer_free) or NULL with the reason in errstr; CS_ERR_INVALID in
 * *why when the configuration (a -X property) is at fault (why may be NULL). */
cs_consumer *cs_consumer_new(const cs_config *cfg, const cs_consumer_opts *opts, int *why,
                             char *errstr, size_t errstr_size);

/* Subscribes to the topic. Returns 0 or CS_ERR with the reason in errstr. */
int cs_consumer_subscribe(cs_consumer *c, char *errstr, size_t errstr_size);

/* Polls once (rebalances are handled inside) and beats the loop's heartbeat (cs_beat). Returns
 * a message the caller destroys with rd_kafka_message_destroy, or NULL. */
rd_kafka_message_t *cs_consumer_poll(cs_consumer *c, int timeout_ms);

/* The librdkafka handle (borrowed), for requests from other threads (readiness probes). */
rd_kafka_t *cs_consumer_handle(cs_consumer *c);

/* Sets the desired state and applies it to every assigned partition; every partition assigned
 * later is explicitly paused or resumed to match (librdkafka keeps an application pause of a
 * partition across unassign and reassign). */
void cs_consumer_set_paused(cs_consumer *c, bool paused);

/* The desired state. */
bool cs_consumer_paused(const cs_consumer *c);

/* Stores offsets (the next offset to consume, per partition of the topic) for the auto commit
 * and counts them as progress. librdkafka sets each element's err. Returns 0, or CS_ERR with
 * the reason of the first failure in errstr. */
int cs_consumer_store(cs_consumer *c, rd_kafka_topic_partition_list_t *offsets, char *errstr,
                      size_t errstr_size);

/* Commits the stored offsets now. Nothing to commit is success. Returns 0 or CS_ERR. */
int cs_consumer_commit(cs_consumer *c, char *errstr, size_t errstr_size);

/* Call often from the polling thread; at most once a second it refreshes the lag of every
 * assigned partition and decides which are stalled. dependency_up: the service the program
 * writes to answers (time while it does not never counts towards a stall). May block briefly
 * on the broker (committed offsets and watermarks of partitions that are not fetching). */
void cs_consumer_tick(cs_consumer *c, bool dependency_up);

/* Partitions assigned now, and stalled now. Safe from any thread. */
int cs_consumer_assigned(const cs_consumer *c);
int cs_consumer_stalled(const cs_consumer *c);

/* Commits the stored offsets and leaves the group (the revoke callback runs once more).
 * Returns 0 or CS_ERR with the reason in errstr. */
int cs_consumer_close(cs_consumer *c, char *errstr, size_t errstr_size);

/* Destroys the consumer (without leaving the group if not closed). Accepts NULL. */
void cs_consumer_free(cs_consumer *c);

/* ---- the rules, without I/O -------------------------------------------------------------- */

/* Offset for "no offset acknowledged yet": the group starts at the low watermark. */
#define CS_CONSUMER_FROM_LOW (-2)
/* Offset for "not known yet". */
#define CS_CONSUMER_UNKNOWN (-1001)

/* Lag of one partition: messages from the next offset not yet acknowledged (done: the offset
 * last stored, else the group's committed offset at assignment, else CS_CONSUMER_FROM_LOW when
 * the group has none; never below low, as the broker may have deleted older messages) to the
 * high watermark. -1 when it cannot be known (watermarks or done unknown). */
int64_t cs_consumer_lag(int64_t low, int64_t high, int64_t done);

/* The stall clock of one partition at now_ms. *since_ms is when the current stretch without
 * progress began (set it at assignment and at every stored offset); a partition with no lag
 * (or unknown lag) or a dependency that is down restarts it. Returns true when the partition
 * has had lag, a dependency up and no progress for stall_ms or longer (stall_ms 0: never). */
bool cs_consumer_stall_clock(long long *since_ms, long long now_ms, int64_t lag, bool dependency_up,
                             long long stall_ms);

#endif
