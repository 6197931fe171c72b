/* casestream-indexer: configuration, signals, /metrics, then the indexer loop. */
#include "config.h"
#include "fault.h"
#include "err.h"
#include "indexer.h"
#include "log.h"
#include "metrics.h"
#include "run.h"

#include <stdio.h>
#include <string.h>

static const char synopsis[] = "casestream-indexer [options]";
static const char description[] =
    "Keeps Elasticsearch in sync with the committed case changes: consumes the\n"
    "change documents of --topic-changes in consumer group --indexer-group and\n"
    "writes them with the Bulk API to index lower(case_type)_cases, document id =\n"
    "reference, external version = case_revision (version_type=external_gte).\n"
    "Offsets are committed only after Elasticsearch acknowledged every change at\n"
    "or before them; documents refused for their content go to\n"
    "ccd.index_dead_letter. SIGTERM finishes the current bulk, commits and exits 0.\n"
    "Fault points (--fault, tests only; the indexer exits 70 there): before_bulk,\n"
    "after_bulk_before_commit, after_commit.";

int main(int argc, char **argv)
{
    cs_config cfg;
    cs_indexer *ix = NULL;
    cs_metrics_server *metrics = NULL;
    char errstr[1024];
    int why, rc = 1;

    cs_log_init("casestream-indexer");
    if (cs_config_load(&cfg, CS_PROG_INDEXER, argc, argv, errstr, sizeof(errstr))) {
        fprintf(stderr, "casestream-indexer: %s\n", errstr);
        cs_config_free(&cfg);
        return CS_EXIT_CONFIG;
    }
    if (cfg.help) {
        cs_config_usage(stdout, CS_PROG_INDEXER, synopsis, description);
        cs_config_free(&cfg);
        return 0;
    }
    if (cfg.args_count > 0) {
        fprintf(stderr, "casestream-indexer: unexpected argument \"%s\"\n", cfg.args[0]);
        cs_config_free(&cfg);
        return CS_EXIT_CONFIG;
    }
    if (cs_fault_arm(cfg.fault, cs_indexer_faults, errstr, sizeof(errstr))) {
        fprintf(stderr, "casestream-indexer: %s\n", errstr);
        cs_config_free(&cfg);
        return CS_EXIT_CONFIG;
    }
    if (cs_signals_install()) {
        fprintf(stderr, "casestream-indexer: could not install signal handlers\n");
        goto cleanup;
    }
    if (!(ix = cs_indexer_new(&cfg, &why, errstr, sizeof(errstr)))) {
        fprintf(stderr, "casestream-indexer: %s\n", errstr);
        rc = why == CS_ERR_INVALID ? CS_EXIT_CONFIG : 1;
        goto cleanup;
    }
    if (cfg.metrics_port > 0 &&
        !(metrics = cs_metrics_server_start(cfg.metrics_host, cfg.metrics_port, cs_indexer_health,
                                            ix, errstr, sizeof(errstr)))) {
        fprintf(stderr, "casestream-indexer: %s\n", errstr);
        goto cleanup;
    }
    rc = cs_indexer_run(ix) == CS_OK ? 0 : 1;
cleanup:
    cs_metrics_server_free(metrics);
    cs_indexer_free(ix);
    cs_config_free(&cfg);
    return rc;
}
