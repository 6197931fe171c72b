/* casestream, the admin tool: one function per subcommand, each returning an exit status. */
#ifndef CS_ADMIN_H
#define CS_ADMIN_H

#include "config.h"
#include "err.h"
#include "log.h"

#include <stddef.h>
#include <stdint.h>

/* Each takes the subcommand's own arguments (after its name) and returns the
 * process exit status: 0 on success, 1 on failure, CS_EXIT_CONFIG on bad usage
 * (logged with its reason, as every message of the tool is). */
int cs_admin_migrate(const cs_config *cfg, int argc, char **argv);
int cs_admin_topics(const cs_config *cfg, int argc, char **argv);
int cs_admin_case(const cs_config *cfg, int argc, char **argv);
int cs_admin_reindex(const cs_config *cfg, int argc, char **argv);
int cs_admin_dlq(const cs_config *cfg, int argc, char **argv);
int cs_admin_workload(const cs_config *cfg, int argc, char **argv);
int cs_admin_dispose(const cs_config *cfg, int argc, char **argv);
int cs_admin_index_dead_letters(const cs_config *cfg, int argc, char **argv);
int cs_admin_import(const cs_config *cfg, int argc, char **argv);
int cs_admin_token(const cs_config *cfg, int argc, char **argv);

/* What writing cases to the index did. */
typedef struct cs_reindex_counts {
    long long cases;   /* cases read from PostgreSQL */
    long long written; /* documents written */
    long long newer;   /* already in the index at a newer revision */
    long long dead;    /* refused: new dead letters */
    long long retries; /* bulks retried */
    long long cleared; /* older dead letters the written cases resolved */
} cs_reindex_counts;

/* Writes the current documents of the cases refs[0..n-1] that are still in PostgreSQL to their
 * live index names through the bulk engine, as reindex does: refused documents are recorded as
 * dead letters, the dead letters an indexed case resolves are cleared. Counts go to *out.
 * Returns 0, or 1 with the reason logged. */
int cs_admin_reindex_cases(const cs_config *cfg, const int64_t *refs, size_t n,
                           cs_reindex_counts *out);

#endif
