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
    int status;

    cs_log_init("casestream-produce");
    if ((status = cs_config_main(&cfg, CS_PROG_PRODUCE, argc, argv, cs_produce_synopsis,
                                 cs_produce_description)) >= 0) {
        cs_config_free(&cfg);
        return status;
    }
    if (cs_signals_install() != 0) {
        cs_log_error("could not install signal handlers");
        cs_config_free(&cfg);
        return CS_PRODUCE_EXIT_FAILED;
    }
    status = cs_produce_run(&cfg, stdout, stderr, NULL);
    cs_config_free(&cfg);
    return status;
}
