/* casestream-indexer: configuration, signals, then the indexer loop. */
#include "config.h"
#include "err.h"
#include "fault.h"
#include "indexer.h"
#include "log.h"
#include "run.h"

#include <stdio.h>

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
    char errstr[1024];
    int why, rc;

    cs_log_init("casestream-indexer");
    if ((rc = cs_config_main(&cfg, CS_PROG_INDEXER, argc, argv, synopsis, description)) >= 0)
        goto cleanup;
    rc = 1;
    if (cs_fault_arm(cfg.fault, cs_indexer_faults, errstr, sizeof(errstr))) {
        cs_log_error("invalid configuration: %s", errstr);
        rc = CS_EXIT_CONFIG;
        goto cleanup;
    }
    if (cs_signals_install()) {
        cs_log_error("could not install signal handlers");
        goto cleanup;
    }
    if (!(ix = cs_indexer_new(&cfg, &why, errstr, sizeof(errstr)))) {
        cs_log_error("could not start: %s", errstr);
        rc = why == CS_ERR_INVALID ? CS_EXIT_CONFIG : 1;
        goto cleanup;
    }
    cs_notify("READY=1"); /* systemd Type=notify: started, endpoint listening */
    rc = cs_indexer_run(ix) == CS_OK ? 0 : 1;
cleanup:
    cs_indexer_free(ix);
    cs_config_free(&cfg);
    return rc;
}
