/* casestream case show|history REF: a case and its event history from PostgreSQL, in the shapes
 * CCD reads them in (CaseDetails with its revision, AuditEvent wrappers), by the renderer the
 * API answers CCD with (lib/ccd_view.h), one JSON object a line. */
#include "admin.h"
#include "ccd_view.h"
#include "db.h"
#include "jsondump.h"

#include <jansson.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints each element of the JSON array text body on a line of its own, compact, as
 * lib/ccd_view.c wrote it. Returns how many it printed, or -1 when body is not an array. */
static long print_elements(const char *body)
{
    json_error_t jerr;
    json_t *all = cs_json_loads_stored(body, strlen(body), &jerr), *one;
    size_t i;
    long n = -1;

    if (json_is_array(all)) {
        n = 0;
        json_array_foreach(all, i, one)
        {
            char *line = cs_json_dumps(one);

            if (line)
                printf("%s\n", line);
            free(line);
            n++;
        }
    }
    json_decref(all);
    return n;
}

int cs_admin_case(const cs_config *cfg, int argc, char **argv)
{
    char errstr[512];
    PGconn *conn;
    char *end;
    long long ref;
    int rc = 0;

    if (argc != 2 || (strcmp(argv[0], "show") != 0 && strcmp(argv[0], "history") != 0)) {
        cs_log_error("invalid configuration: usage: casestream case show|history REFERENCE");
        return CS_EXIT_CONFIG;
    }
    errno = 0;
    ref = strtoll(argv[1], &end, 10);
    if (errno || *end || ref <= 0) {
        cs_log_error("invalid configuration: \"%s\" is not a case reference", argv[1]);
        return CS_EXIT_CONFIG;
    }
    if (!(conn = cs_db_connect(cfg->pg, errstr, sizeof(errstr)))) {
        cs_log_error("case: could not connect to postgresql: %s", errstr);
        return 1;
    }
    {
        const cs_ccd_view view = {.notes_field = NULL};
        char *body = NULL;
        int vrc = strcmp(argv[0], "show") == 0
                      ? cs_ccd_view_cases(conn, &view, &ref, 1, &body, errstr, sizeof(errstr))
                      : cs_ccd_view_history(conn, &view, ref, &body, errstr, sizeof(errstr));
        long printed = vrc == CS_OK ? print_elements(body) : 0;

        if (vrc != CS_OK && vrc != CS_ERR_NOTFOUND) {
            cs_log_error("case: %s", errstr);
            rc = 1;
        } else if (printed < 0) {
            cs_log_error("case: the view of case %lld is not a JSON array", ref);
            rc = 1;
        } else if (vrc == CS_ERR_NOTFOUND || (printed == 0 && strcmp(argv[0], "show") == 0)) {
            cs_log_error("case: no case %lld", ref);
            rc = 1;
        }
        free(body);
    }
    PQfinish(conn);
    return rc;
}
