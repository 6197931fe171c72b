/* Applying submissions in PostgreSQL (DESIGN §5): one connection, batches of jobs. */
#ifndef CS_APPLY_H
#define CS_APPLY_H

#include "job.h"

#include <stddef.h>

typedef struct cs_applier cs_applier;

/* Connects to PostgreSQL and prepares the statements. topic names the
 * source topic recorded with each outcome, changes_topic the topic the
 * outbox rows are for. Returns NULL with the reason in errstr. Free with
 * cs_applier_free. */
cs_applier *cs_applier_new(const char *conninfo, const char *topic, const char *changes_topic,
                           char *errstr, size_t errstr_size);
void cs_applier_free(cs_applier *a);

/* Decides (worker/decide.h) and applies n valid jobs (in offset order; a
 * case's jobs all in the same call) in one transaction, each job atomic on
 * its own: a job the database refuses is rolled back to its savepoint and
 * rejected while the others commit. On success every job is decided and
 * committed. Returns 0, or CS_ERR_RETRY when PostgreSQL
 * is unreachable or the batch raced a concurrent writer: nothing was
 * committed and the jobs are left undecided for a retry. */
int cs_applier_run(cs_applier *a, cs_job **jobs, size_t n, char *errstr, size_t errstr_size);

/* Outbox rows pruned by one cs_applier_prune at most. */
#define CS_APPLIER_PRUNE_ROUND      10000
#define CS_APPLIER_PRUNE_ROUND_TEXT "10000"

/* Deletes recorded outcomes older than outcome_hours, and up to CS_APPLIER_PRUNE_ROUND outbox
 * rows published more than outbox_hours ago, oldest first; *more says whether older published
 * rows may be left (a full round). Returns rows deleted or a negative cs_err. */
long long cs_applier_prune(cs_applier *a, int outcome_hours, int outbox_hours, bool *more,
                           char *errstr, size_t errstr_size);

/* Checks that PostgreSQL answers on the applier's connection (connecting
 * again if it was lost). Returns 0 or CS_ERR_RETRY with the reason. */
int cs_applier_ping(cs_applier *a, char *errstr, size_t errstr_size);

#endif
