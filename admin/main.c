/* casestream: migrate the schema, manage topics, inspect cases, reindex, read the DLQ and the
 * index dead letters, dispose of cases past their retention, import a case type from CCD, mint
 * development tokens. */
#include "admin.h"
#include "config.h"
#include "err.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

typedef struct command {
    const char *name;
    int (*run)(const cs_config *cfg, int argc, char **argv);
} command;

static const command commands[] = {
    {"migrate", cs_admin_migrate},   {"topics", cs_admin_topics},
    {"case", cs_admin_case},         {"reindex", cs_admin_reindex},
    {"dlq", cs_admin_dlq},           {"index-dead-letters", cs_admin_index_dead_letters},
    {"workload", cs_admin_workload}, {"dispose", cs_admin_dispose},
    {"import", cs_admin_import},     {"token", cs_admin_token},
};

static const char synopsis[] = "casestream [options] COMMAND [ARGS]";
static const char description[] =
    "Administration of a casestream deployment.\n\n"
    "commands:\n"
    "  migrate                    apply the numbered migrations in --sql-dir (idempotent)\n"
    "  topics create              create the topics of the pipeline if missing, with the\n"
    "                             partitions, replication factor, min.insync.replicas,\n"
    "                             retention and compaction of the options below, and set\n"
    "                             those configs on topics already there (their partitions\n"
    "                             and replicas are not changed: a warning says so)\n"
    "  topics list                list the topics and their partition counts\n"
    "  topics describe            print each topic as a JSON line: partitions, replication,\n"
    "                             leader, replicas and ISR of each partition, and configs\n"
    "  topics delete --yes        delete the four topics and every message in them\n"
    "  case show REF              print a case as JSON\n"
    "  case history REF           print a case's event history, one JSON line per event\n"
    "  reindex [--case-type T]    rebuild the Elasticsearch documents from PostgreSQL\n"
    "  reindex --new-index --case-type T\n"
    "                             build a new index for T's cases, then move its live name\n"
    "                             (an alias) to it; searches never find fewer documents\n"
    "  dlq list [--limit N]       print the dead-letter messages, one JSON line each (100)\n"
    "  dlq replay [--limit N]     send dead-letter messages not yet replayed back to the\n"
    "                             events topic (after fixing their cause)\n"
    "  index-dead-letters list [--case-type T] [--limit N]\n"
    "                             print the documents Elasticsearch refused, newest first\n"
    "  index-dead-letters retry [--case-type T] [--limit N]\n"
    "                             write those cases again from PostgreSQL (after fixing the\n"
    "                             cause); their dead letters are replaced by the outcome\n"
    "  workload [--cases N] [--events N] [--base-ref R] [--seed S] [--case-type T] [--ccd]\n"
    "           [--expired N]     print NDJSON submissions for a demo or a load test; --ccd\n"
    "                             adds CCD's optional fields, supplementary data updates and\n"
    "                             retention dates, --expired N dates the last N cases in the\n"
    "                             past, for dispose\n"
    "  dispose [--case-type T] [--before YYYY-MM-DD] [--dry-run] [--limit N]\n"
    "                             delete the cases whose resolved_ttl is before the day\n"
    "                             (default today, UTC), each under its case lock; their\n"
    "                             documents are deleted from the index through the outbox\n"
    "                             of --topic-changes; --dry-run lists them as JSON lines;\n"
    "                             run it as the worker's role (CASESTREAM_WORKER_PG)\n"
    "  import --from CONNINFO --case-type T [--mode preload|cutover|validate]\n"
    "         [--revision-offset N] [--batch N] [--jobs N]\n"
    "                             onboard case type T from CCD data store's database:\n"
    "                             preload copies its cases and history (again: what changed),\n"
    "                             cutover copies the rest under CCD's shutter, verifies and\n"
    "                             takes the type over, validate compares and prints each\n"
    "                             mismatch (exit 1 on any); a run resumes where one stopped;\n"
    "                             preload and cutover end with a reindex of T; run it as the\n"
    "                             worker's role (CASESTREAM_WORKER_PG)\n"
    "  token --service NAME [--ttl SECONDS]\n"
    "                             print a development service-to-service token (a JWT with\n"
    "                             sub NAME, iat now, exp now + ttl) signed with the key of\n"
    "                             --s2s-key-file under --s2s-alg: the HS256/HS512 secret or\n"
    "                             the RS256 private key";

int main(int argc, char **argv)
{
    cs_config cfg;
    int rc;

    cs_log_init("casestream");
    if ((rc = cs_config_main(&cfg, CS_PROG_ADMIN, argc, argv, synopsis, description)) >= 0) {
        cs_config_free(&cfg);
        return rc;
    }
    if (cfg.args_count == 0) {
        cs_log_error("invalid configuration: no command given (see --help)");
        cs_config_free(&cfg);
        return CS_EXIT_CONFIG;
    }
    rc = -1;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(cfg.args[0], commands[i].name) == 0)
            rc = commands[i].run(&cfg, (int)cfg.args_count - 1, cfg.args + 1);
    }
    if (rc == -1) {
        cs_log_error("invalid configuration: unknown command \"%s\" (see --help)", cfg.args[0]);
        rc = CS_EXIT_CONFIG;
    }
    cs_config_free(&cfg);
    return rc;
}
