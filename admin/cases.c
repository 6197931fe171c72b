/* casestream case show|history REF: a case and its event history from PostgreSQL, in the shapes
 * CCD reads them in (CaseDetails with its revision, AuditEvent wrappers). */
#include "admin.h"
#include "db.h"
#include "jsondump.h"

#include <jansson.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The case as CCD's case answers hold it (DESIGN §6, ../shared/CCD-CONTRACT.md): CCD's
 * CaseDetails as case_details, the blob named case_data, and the revision beside it. CaseDetails
 * writes and reads its JSON "id" as the case REFERENCE (@JsonGetter/@JsonSetter("id") on
 * getReference/setReference); the reference has no member of its own and the internal id none at
 * all (CCD keeps its own), so an "id" holding the internal id would be read as a reference that
 * is not the case's. json, not jsonb, keeps the members in CCD's order. */
static const char show_sql[] =
    "SELECT json_build_object('case_details', json_build_object("
    " 'id', c.reference, 'version', c.version,"
    " 'jurisdiction', c.jurisdiction, 'case_type_id', c.case_type_id,"
    " 'created_date', ccd.ccd_date_time(c.created_date),"
    " 'last_modified', ccd.ccd_date_time(c.last_modified),"
    " 'last_state_modified_date', ccd.ccd_date_time(c.last_state_modified_date),"
    " 'state', c.state, 'security_classification', c.security_classification,"
    " 'case_data', c.data, 'data_classification', c.data_classification,"
    " 'supplementary_data', c.supplementary_data),"
    " 'revision', c.case_revision)::text"
    " FROM ccd.case_data c WHERE c.reference = $1";

/* The history as CCD's history answers hold it: one AuditEvent wrapper {id, case_reference,
 * event} per applied event, newest first; null where casestream has no value. */
static const char history_sql[] =
    "SELECT json_build_object('id', e.id, 'case_reference', e.case_reference,"
    " 'event', json_build_object("
    " 'id', e.event_id, 'summary', e.summary, 'description', e.description,"
    " 'user_id', e.user_id, 'user_first_name', e.user_first_name,"
    " 'user_last_name', e.user_last_name, 'event_name', e.event_name,"
    " 'created_date', ccd.ccd_date_time(e.created_date), 'case_type_id', c.case_type_id,"
    " 'case_type_version', e.case_type_version, 'state_id', e.state_id,"
    " 'state_name', e.state_name, 'data', e.data, 'data_classification', e.data_classification,"
    " 'security_classification', e.security_classification,"
    " 'significant_item', e.significant_item, 'proxied_by', e.proxied_by,"
    " 'proxied_by_first_name', e.proxied_by_first_name,"
    " 'proxied_by_last_name', e.proxied_by_last_name))::text"
    " FROM ccd.case_event e JOIN ccd.case_data c ON c.reference = e.case_reference"
    " WHERE e.case_reference = $1 ORDER BY e.case_revision DESC";

/* Prints a JSON text from PostgreSQL on one line, compact, its members in their order and its
 * numbers as stored (cs_json_dumps); as it came if it cannot be read. */
static void print_compact(const char *text, size_t len)
{
    json_error_t jerr;
    json_t *root = cs_json_loads_stored(text, len, &jerr);
    char *line = root ? cs_json_dumps(root) : NULL;

    printf("%s\n", line ? line : text);
    free(line);
    json_decref(root);
}

int cs_admin_case(const cs_config *cfg, int argc, char **argv)
{
    char errstr[512];
    PGconn *conn;
    PGresult *res;
    const char *param;
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
    param = argv[1];
    res = PQexecParams(conn, strcmp(argv[0], "show") == 0 ? show_sql : history_sql, 1, NULL, &param,
                       NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cs_db_error(conn, res, errstr, sizeof(errstr));
        cs_log_error("case: %s", errstr);
        rc = 1;
    } else if (PQntuples(res) == 0) {
        cs_log_error("case: no case %lld", ref);
        rc = 1;
    } else {
        for (int i = 0; i < PQntuples(res); i++)
            print_compact(PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0));
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}
