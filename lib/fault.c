/* Fault points for crash tests (CASESTREAM_FAULT / --fault). */
#include "fault.h"

#include "err.h"
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char armed[64];

int cs_fault_arm(const char *name, const char *const *points, char *errstr, size_t errstr_size)
{
    size_t off;

    armed[0] = '\0';
    if (!name || !*name)
        return CS_OK;
    for (size_t i = 0; points[i]; i++) {
        if (strcmp(points[i], name) == 0) {
            snprintf(armed, sizeof(armed), "%s", name);
            return CS_OK;
        }
    }
    off = (size_t)snprintf(errstr, errstr_size, "unknown fault point \"%s\" (known:", name);
    for (size_t i = 0; points[i] && off < errstr_size; i++)
        off += (size_t)snprintf(errstr + off, errstr_size - off, " %s", points[i]);
    if (off < errstr_size)
        snprintf(errstr + off, errstr_size - off, ")");
    return CS_ERR_INVALID;
}

void cs_fault_point(const char *name)
{
    if (armed[0] && strcmp(armed, name) == 0) {
        cs_log_warn("fault point reached, exiting fault=%s", name);
        _exit(CS_EXIT_FAULT);
    }
}
