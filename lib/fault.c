/* Fault points for crash tests (CASESTREAM_FAULT / --fault). */
#include "fault.h"

#include "log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char armed[64];

void cs_fault_arm(const char *name)
{
    snprintf(armed, sizeof(armed), "%s", name ? name : "");
}

void cs_fault_point(const char *name)
{
    if (armed[0] && strcmp(armed, name) == 0) {
        cs_log_warn("fault point reached, exiting fault=%s", name);
        _exit(70);
    }
}
