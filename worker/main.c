/* casestream-worker: reads configuration, installs signal handlers, runs the consume loop. */
#include "config.h"
#include "err.h"
#include "fault.h"
#include "log.h"
#include "run.h"
#include "worker.h"

#include <malloc.h>
#include <stdio.h>

static const char synopsis[] = "casestream-worker [options]";
static const char description[] =
    "Consumes submissions from the events topic and applies each exactly once in\n"
    "PostgreSQL (case lock, optimistic version check, history, notes, outbox),\n"
    "publishes one outcome per message, sends the messages its validator refuses\n"
    "(invalid, or rejected for their own field values) to the DLQ with the reason,\n"
    "and relays committed changes to the changes topic. Run more processes with the\n"
    "same --group to scale out (the events topic's partitions are the ceiling).\n"
    "SIGTERM or SIGINT: finish the batch in hand, commit, leave the group, exit 0.\n"
    "Fault points (--fault, tests only; the worker exits 70 there): before_commit,\n"
    "mid_batch, after_commit, after_outcome, before_outbox_publish, after_outbox_publish.";

int main(int argc, char **argv)
{
    cs_config cfg;
    char errstr[512];
    cs_worker *w = NULL;
    int rc;

    cs_log_init("casestream-worker");
    /* Blocks of 128 KiB or more (large submissions, case blobs) are mapped and unmapped on
     * their own: glibc's threshold would otherwise climb after the first ones are freed and
     * keep them in the heap, where they add to the peak of memory the process holds. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    if ((rc = cs_config_main(&cfg, CS_PROG_WORKER, argc, argv, synopsis, description)) >= 0)
        goto cleanup;
    rc = 1;
    if (cs_fault_arm(cfg.fault, cs_worker_faults, errstr, sizeof(errstr))) {
        cs_log_error("invalid configuration: %s", errstr);
        rc = CS_EXIT_CONFIG;
        goto cleanup;
    }
    if (cs_signals_install()) {
        cs_log_error("could not install signal handlers");
        goto cleanup;
    }
    if (!(w = cs_worker_new(&cfg, errstr, sizeof(errstr)))) {
        cs_log_error("could not start: %s", errstr);
        goto cleanup;
    }
    rc = cs_worker_check_limits(w, errstr, sizeof(errstr));
    if (rc == CS_ERR_INVALID) {
        cs_log_error("could not start: %s", errstr);
        rc = CS_EXIT_CONFIG;
        goto cleanup;
    }
    if (rc)
        cs_log_warn("could not check the topics' message size limits: %s", errstr);
    cs_notify("READY=1"); /* systemd Type=notify: started, endpoint listening */
    rc = cs_worker_run(w) == CS_OK ? 0 : 1;
    cs_log_info("stopped");
cleanup:
    cs_worker_free(w);
    cs_config_free(&cfg);
    return rc;
}
