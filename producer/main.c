/* casestream-produce: configuration, signals, then the run in produce.c. */
#include "config.h"
#include "err.h"
#include "log.h"
#include "produce.h"
#include "run.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    cs_config cfg;
    char errstr[512];
    int status;

    cs_log_init("casestream-produce");
    if (cs_config_load(&cfg, CS_PROG_PRODUCE, argc, argv, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "casestream-produce: %s\n", errstr);
        cs_config_free(&cfg);
        return CS_EXIT_CONFIG;
    }
    if (cfg.help) {
        cs_config_usage(stdout, CS_PROG_PRODUCE, cs_produce_synopsis, cs_produce_description);
        cs_config_free(&cfg);
        return 0;
    }
    if (cs_signals_install() != 0) {
        fprintf(stderr, "casestream-produce: could not install signal handlers\n");
        cs_config_free(&cfg);
        return CS_PRODUCE_EXIT_FAILED;
    }
    status = cs_produce_run(&cfg, stdout, stderr, NULL);
    cs_config_free(&cfg);
    return status;
}
