/* casestream, the admin tool: one function per subcommand, each returning an exit status. */
#ifndef CS_ADMIN_H
#define CS_ADMIN_H

#include "config.h"

/* Each takes the subcommand's own arguments (after its name) and returns the
 * process exit status: 0 on success, 1 on failure, 2 on bad usage. */
int cs_admin_migrate(const cs_config *cfg, int argc, char **argv);
int cs_admin_topics(const cs_config *cfg, int argc, char **argv);
int cs_admin_case(const cs_config *cfg, int argc, char **argv);
int cs_admin_reindex(const cs_config *cfg, int argc, char **argv);
int cs_admin_dlq(const cs_config *cfg, int argc, char **argv);
int cs_admin_workload(const cs_config *cfg, int argc, char **argv);
int cs_admin_dispose(const cs_config *cfg, int argc, char **argv);

#endif
