/* casestream: migrate the schema, manage topics, inspect cases, reindex, read the DLQ, dispose of
 * cases past their retention. */
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
    {"migrate", cs_admin_migrate}, {"topics", cs_admin_topics}, {"case", cs_admin_case},
    {"reindex", cs_admin_reindex}, {"dlq", cs_admin_dlq},       {"workload", cs_admin_workload},
    {"dispose", cs_admin_dispose},
};

static const char synopsis[] = "casestream [options] COMMAND [ARGS]";
static const char description[] =
    "Administration of a casestream deployment.\n\n"
    "commands:\n"
    "  migrate                    apply the numbered migrations in --sql-dir (idempotent)\n"
    "  topics create              create the topics of the pipeline if missing\n"
    "  topics list                list the topics and their partition counts\n"
    "  case show REF              print a case as JSON\n"
    "  case history REF           print a case's event history, one JSON line per event\n"
    "  reindex [--case-type T]    rebuild the Elasticsearch documents from PostgreSQL\n"
    "  dlq list [--limit N]       print the dead-letter messages, one JSON line each (100)\n"
    "  dlq replay [--limit N]     send dead-letter messages not yet replayed back to the\n"
    "                             events topic (after fixing their cause)\n"
    "  workload [--cases N] [--events N] [--base-ref R] [--seed S]\n"
    "                             print NDJSON submissions for a demo or a load test\n"
    "  dispose [--case-type T] [--before YYYY-MM-DD] [--dry-run] [--limit N]\n"
    "                             delete the cases whose resolved_ttl is before the day\n"
    "                             (default today, UTC), each under its case lock; their\n"
    "                             documents are deleted from the index through the outbox\n"
    "                             of --topic-changes; --dry-run lists them as JSON lines;\n"
    "                             run it as the worker's role (CASESTREAM_WORKER_PG)";

int main(int argc, char **argv)
{
    cs_config cfg;
    char errstr[512];
    int rc;

    cs_log_init("casestream");
    if (cs_config_load(&cfg, CS_PROG_ADMIN, argc, argv, errstr, sizeof(errstr))) {
        fprintf(stderr, "casestream: %s\n", errstr);
        cs_config_free(&cfg);
        return CS_EXIT_CONFIG;
    }
    if (cfg.help || cfg.args_count == 0) {
        cs_config_usage(cfg.help ? stdout : stderr, CS_PROG_ADMIN, synopsis, description);
        cs_config_free(&cfg);
        return cfg.help ? 0 : 2;
    }
    rc = -1;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(cfg.args[0], commands[i].name) == 0)
            rc = commands[i].run(&cfg, (int)cfg.args_count - 1, cfg.args + 1);
    }
    if (rc == -1) {
        fprintf(stderr, "casestream: unknown command \"%s\" (see --help)\n", cfg.args[0]);
        rc = 2;
    }
    cs_config_free(&cfg);
    return rc;
}
