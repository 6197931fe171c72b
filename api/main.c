/* casestream-api: reads configuration, installs signal handlers, serves until SIGTERM. */
#include "config.h"
#include "err.h"
#include "log.h"
#include "run.h"
#include "server.h"

static const char synopsis[] = "casestream-api [options]";
static const char description[] =
    "Answers CCD data store's /ccd-persistence calls for the cases casestream keeps.\n"
    "HTTP/1.1 on libmicrohttpd: a submit is published to the events topic keyed by its case\n"
    "reference and answered from its outcome (the case right after its event, 409 on a\n"
    "stale version, errors on a refusal, 504 with Retry-After when no outcome came within\n"
    "--submit-timeout: a retry with the same Idempotency-Key is safe); reads come from\n"
    "PostgreSQL. Every /ccd-persistence call needs a ServiceAuthorization token signed with\n"
    "--s2s-key-file whose sub is in --allowed-services, and a non-blank Authorization\n"
    "(the user's id and names are read from its claims: uid or sub, given_name,\n"
    "family_name). Also serves /livez, /readyz (/healthz) and /metrics. Instances are\n"
    "stateless: run several side by side. SIGTERM or SIGINT: stop accepting, finish\n"
    "every request in flight (those waiting for an outcome included), exit 0.";

int main(int argc, char **argv)
{
    cs_config cfg;
    char errstr[512];
    bool config_error;
    cs_api *a = NULL;
    int rc;

    cs_log_init("casestream-api");
    if ((rc = cs_config_main(&cfg, CS_PROG_API, argc, argv, synopsis, description)) >= 0)
        goto cleanup;
    rc = 1;
    if (cs_signals_install()) {
        cs_log_error("could not install signal handlers");
        goto cleanup;
    }
    if (!(a = cs_api_new(&cfg, &config_error, errstr, sizeof(errstr)))) {
        if (config_error) {
            cs_log_error("invalid configuration: %s", errstr);
            rc = CS_EXIT_CONFIG;
        } else {
            cs_log_error("could not start: %s", errstr);
        }
        goto cleanup;
    }
    cs_notify("READY=1"); /* systemd Type=notify: started, listening */
    rc = cs_api_run(a) == CS_OK ? 0 : 1;
    cs_api_free(a);
    a = NULL;
    cs_log_info("stopped");
cleanup:
    cs_api_free(a);
    cs_config_free(&cfg);
    return rc;
}
