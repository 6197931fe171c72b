/* The answers of CCD's /ccd-persistence reads, and the submit answer, from PostgreSQL. */
#include "ccd_view.h"

#include "db.h"
#include "err.h"
#include "jsondump.h"
#include "log.h"
#include "text.h"
#include "uuid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The blob of a case with its notes up to revision REV projected into member $2 (NULL: none) as
 * a CCD collection, newest first. The member replaces a member of the blob with that name. A
 * case without notes (c.has_notes, 015) is not looked up in case_notes. */
#define CASE_DATA(DATA, REF, REV)                                                                  \
    "CASE WHEN $2::text IS NULL THEN " DATA " ELSE " DATA " || jsonb_build_object($2::text,"       \
    " CASE WHEN c.has_notes THEN (SELECT COALESCE(jsonb_agg(jsonb_build_object('id', n.id::text,"  \
    " 'value', jsonb_build_object('author', n.author, 'body', n.body,"                             \
    " 'created_date', ccd.ccd_date_time(n.created_date)))"                                         \
    " ORDER BY n.case_revision DESC, n.id DESC), '[]'::jsonb)"                                     \
    " FROM ccd.case_notes n WHERE n.case_reference = " REF " AND n.case_revision <= " REV ")"      \
    " ELSE '[]'::jsonb END) END"

/* The blob of the case as it is now (case row c), with all its notes; and the blob right after
 * history row e's event, with the notes up to it. */
#define DATA_NOW         CASE_DATA("c.data", "c.reference", "c.case_revision")
#define DATA_AFTER_EVENT CASE_DATA("e.data", "e.case_reference", "e.case_revision")

/* CCD's CaseDetails of the case as it is now (case row c), member by member, and its revision:
 * the columns each statement of the cases view selects, in the order of case_members, then the
 * revision. The JSON is written here (render_cases), not by json_build_object, which costs
 * PostgreSQL more than the lookup itself. */
#define CASE_COLUMNS                                                                               \
    "c.reference, c.version, c.jurisdiction, c.case_type_id,"                                      \
    " ccd.ccd_date_time(c.created_date), ccd.ccd_date_time(c.last_modified),"                      \
    " ccd.ccd_date_time(c.last_state_modified_date), c.state, "                                    \
    "c.security_classification, " DATA_NOW                                                         \
    ", c.data_classification, c.supplementary_data, c.case_revision"

/* How a column is written: its text as it is (a number; json), or as a JSON string. NULL is
 * null. */
typedef enum { AS_IS, AS_STRING } member_kind;

/* The members of CaseDetails, one per column of CASE_COLUMNS. On the wire CaseDetails' "id" is
 * the case reference (its getReference() is @JsonGetter("id")); it has no member for the
 * internal id, which CCD sets from its own. */
static const struct {
    const char *name;
    member_kind kind;
} case_members[] = {
    {"id", AS_IS},
    {"version", AS_IS},
    {"jurisdiction", AS_STRING},
    {"case_type_id", AS_STRING},
    {"created_date", AS_STRING},
    {"last_modified", AS_STRING},
    {"last_state_modified_date", AS_STRING},
    {"state", AS_STRING},
    {"security_classification", AS_STRING},
    {"case_data", AS_IS},
    {"data_classification", AS_IS},
    {"supplementary_data", AS_IS},
};

#define N_CASE_MEMBERS (sizeof(case_members) / sizeof(case_members[0]))

/* CCD's AuditEvent wrapper of history row e of case c: the blob after the event; null where
 * casestream has no value. */
#define AUDIT_EVENT                                                                                \
    "json_build_object('id', e.id, 'case_reference', e.case_reference,"                            \
    " 'event', json_build_object("                                                                 \
    " 'id', e.event_id, 'summary', e.summary, 'description', e.description,"                       \
    " 'user_id', e.user_id, 'user_first_name', e.user_first_name,"                                 \
    " 'user_last_name', e.user_last_name, 'event_name', e.event_name,"                             \
    " 'created_date', ccd.ccd_date_time(e.created_date), 'case_type_id', c.case_type_id,"          \
    " 'case_type_version', e.case_type_version, 'state_id', e.state_id,"                           \
    " 'state_name', e.state_name, 'data', " DATA_AFTER_EVENT ","                                   \
    " 'data_classification', e.data_classification,"                                               \
    " 'security_classification', e.security_classification,"                                       \
    " 'significant_item', e.significant_item, 'proxied_by', e.proxied_by,"                         \
    " 'proxied_by_first_name', e.proxied_by_first_name,"                                           \
    " 'proxied_by_last_name', e.proxied_by_last_name))"

/* $1 the references (bigint[]), $2 the notes member. */
static const char cases_sql[] = "SELECT " CASE_COLUMNS " FROM ccd.case_data c"
                                " WHERE c.reference = ANY($1::bigint[]) ORDER BY c.reference";

/* cases_sql for one reference, $1, without the array. */
static const char case_sql[] = "SELECT " CASE_COLUMNS " FROM ccd.case_data c"
                               " WHERE c.reference = $1::bigint";

/* $1 the reference, $2 the notes member. No row: no such case. */
static const char history_sql[] =
    "SELECT (SELECT COALESCE(json_agg(" AUDIT_EVENT " ORDER BY e.case_revision DESC),"
    " '[]'::json) FROM ccd.case_event e WHERE e.case_reference = c.reference)::text"
    " FROM ccd.case_data c WHERE c.reference = $1::bigint";

/* $1 the reference, $2 the notes member, $3 the history id. */
static const char event_sql[] = "SELECT " AUDIT_EVENT "::text"
                                " FROM ccd.case_event e"
                                " JOIN ccd.case_data c ON c.reference = e.case_reference"
                                " WHERE e.case_reference = $1::bigint AND e.id = $3::bigint";

/* $1 the reference, $2 the notes member, $3 the idempotency key. The case right after the
 * event, from the history row e and the columns of c that never change (reference,
 * jurisdiction, case type, created_date); last_modified after an event is its created_date
 * (010). The second column: whether e is the case's first row (its create). */
static const char submitted_sql[] =
    "SELECT json_build_object('case_details', json_build_object("
    " 'id', c.reference, 'version', e.version,"
    " 'jurisdiction', c.jurisdiction, 'case_type_id', c.case_type_id,"
    " 'created_date', ccd.ccd_date_time(c.created_date),"
    " 'last_modified', ccd.ccd_date_time(e.created_date),"
    " 'last_state_modified_date', ccd.ccd_date_time(e.last_state_modified_date),"
    " 'state', e.state_id, 'security_classification', e.security_classification,"
    " 'case_data', " DATA_AFTER_EVENT ","
    " 'data_classification', e.data_classification,"
    " 'supplementary_data', e.case_supplementary_data),"
    " 'revision', e.case_revision, 'errors', NULL, 'warnings', NULL,"
    " 'ignore_warning', NULL)::text,"
    " NOT EXISTS (SELECT 1 FROM ccd.case_event p WHERE p.case_reference = "
    "e.case_reference"
    " AND p.case_revision < e.case_revision)"
    " FROM ccd.case_event e JOIN ccd.case_data c ON c.reference = "
    "e.case_reference"
    " WHERE e.case_reference = $1::bigint AND e.idempotency_key = $3::uuid";

/* The field name as the $2 parameter: NULL for no projection. */
static const char *notes_param(const cs_ccd_view *v)
{
    return v && v->notes_field && v->notes_field[0] ? v->notes_field : NULL;
}

/* Every statement of the view, prepared when a session starts (cs_ccd_view_session). */
enum { ST_CASE, ST_CASES, ST_HISTORY, ST_EVENT, ST_SUBMITTED, ST_COUNT };
static const cs_db_statement statements[ST_COUNT] = {
    [ST_CASE] = {"cs_ccd_view_case", case_sql, 2},
    [ST_CASES] = {"cs_ccd_view_cases", cases_sql, 2},
    [ST_HISTORY] = {"cs_ccd_view_history", history_sql, 2},
    [ST_EVENT] = {"cs_ccd_view_event", event_sql, 3},
    [ST_SUBMITTED] = {"cs_ccd_view_submitted", submitted_sql, 3}};

int cs_ccd_view_session(PGconn *conn, char *errstr, size_t errstr_size)
{
    int rc = cs_db_generic_plans(conn, errstr, errstr_size);

    return rc ? rc : cs_db_prepare(conn, statements, ST_COUNT, errstr, errstr_size);
}

/* Runs statement st with params; *out gets its result when it returned rows (the caller
 * clears it). Returns CS_OK, CS_ERR_RETRY or CS_ERR. */
static int query(PGconn *conn, int st, const char *const *params, PGresult **out, char *errstr,
                 size_t errstr_size)
{
    PGresult *res = cs_db_exec_prepared(conn, &statements[st], params);

    *out = NULL;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        int rc;

        cs_db_error(conn, res, errstr, errstr_size);
        rc = cs_db_retryable(conn, res) ? CS_ERR_RETRY : CS_ERR;
        PQclear(res);
        return rc;
    }
    *out = res;
    return CS_OK;
}

/* text (len bytes) written as cs_json_dumps writes what jansson reads, without building the
 * tree; NULL (errstr set) when it is not such JSON or out of memory. */
static char *compact(const char *text, size_t len, char *errstr, size_t errstr_size)
{
    char *body = cs_json_compact_stored(text, len);

    if (!body)
        snprintf(errstr, errstr_size,
                 "postgresql gave JSON that does not parse as jansson reads it (or out of memory)");
    return body;
}

/* Runs sql and hands the first column of its row, JSON, to *body (the caller frees) written
 * compact; *second (may be NULL) gets the second column, a boolean. Returns CS_OK,
 * CS_ERR_NOTFOUND (no row), CS_ERR_RETRY or CS_ERR. */
static int render(PGconn *conn, int st, const char *const *params, char **body, bool *second,
                  char *errstr, size_t errstr_size)
{
    PGresult *res;
    int rc = query(conn, st, params, &res, errstr, errstr_size);

    *body = NULL;
    if (rc != CS_OK)
        return rc;
    if (PQntuples(res) == 0) {
        snprintf(errstr, errstr_size, "not found");
        rc = CS_ERR_NOTFOUND;
    } else if (!(*body = compact(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), errstr,
                                 errstr_size))) {
        rc = CS_ERR;
    } else if (second) {
        *second = PQnfields(res) > 1 && strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    }
    PQclear(res);
    return rc;
}

static void put_json_string(cs_text *t, const char *s)
{
    const char *run = s;

    cs_text_put(t, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];

        if (c != '"' && c != '\\' && c >= 0x20)
            continue;
        cs_text_put(t, run, (size_t)(s - run));
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            cs_text_put(t, esc, 2);
        } else {
            cs_text_put(t, esc, (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c));
        }
        run = s + 1;
    }
    cs_text_put(t, run, (size_t)(s - run));
    cs_text_put(t, "\"", 1);
}

struct cs_ccd_view_rows {
    size_t n;
    long long *refs; /* ascending */
    char **json;     /* compact {case_details, revision} of refs[i]; NULL: it did not render */
};

void cs_ccd_view_rows_free(cs_ccd_view_rows *rows)
{
    if (!rows)
        return;
    for (size_t i = 0; i < rows->n; i++)
        free(rows->json[i]);
    free(rows->json);
    free(rows->refs);
    free(rows);
}

/* Row i of res (CASE_COLUMNS) as {case_details, revision}, compact; NULL when it does not render
 * (errstr says why). */
static char *render_case(PGresult *res, int i, char *errstr, size_t errstr_size)
{
    cs_text t = CS_TEXT_INIT;
    char *json;

    cs_text_puts(&t, "{\"case_details\":{");
    for (size_t m = 0; m < N_CASE_MEMBERS; m++) {
        const char *value = PQgetvalue(res, i, (int)m);

        cs_text_puts(&t, m ? ",\"" : "\"");
        cs_text_puts(&t, case_members[m].name);
        cs_text_put(&t, "\":", 2);
        if (PQgetisnull(res, i, (int)m))
            cs_text_put(&t, "null", 4);
        else if (case_members[m].kind == AS_STRING)
            put_json_string(&t, value);
        else
            cs_text_put(&t, value, (size_t)PQgetlength(res, i, (int)m));
    }
    cs_text_puts(&t, "},\"revision\":");
    cs_text_puts(&t, PQgetvalue(res, i, (int)N_CASE_MEMBERS));
    cs_text_put(&t, "}", 1);
    if (!t.ok) {
        free(t.p);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    json = compact(t.p, t.len, errstr, errstr_size);
    free(t.p);
    return json;
}

/* True when refs[0..n) name one case (n > 0). */
static bool one_reference(const long long *refs, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (refs[i] != refs[0])
            return false;
    return true;
}

int cs_ccd_view_case_rows(PGconn *conn, const cs_ccd_view *v, const long long *refs, size_t n,
                          cs_ccd_view_rows **rows, char *errstr, size_t errstr_size)
{
    /* "{" + up to 20 characters and a comma per reference + "}". */
    char array[2 + CS_CCD_VIEW_MAX_REFS * 21];
    size_t len = 0;
    const char *params[2] = {array, notes_param(v)};
    cs_ccd_view_rows *out;
    PGresult *res;
    int rc, found;

    *rows = NULL;
    if (n > CS_CCD_VIEW_MAX_REFS) {
        snprintf(errstr, errstr_size, "%zu case references: at most %d are read at once", n,
                 CS_CCD_VIEW_MAX_REFS);
        return CS_ERR_INVALID;
    }
    if (n > 0 && one_reference(refs, n)) {
        snprintf(array, sizeof(array), "%lld", refs[0]);
        rc = query(conn, ST_CASE, params, &res, errstr, errstr_size);
    } else {
        array[len++] = '{';
        for (size_t i = 0; i < n; i++)
            len +=
                (size_t)snprintf(array + len, sizeof(array) - len, "%s%lld", i ? "," : "", refs[i]);
        array[len++] = '}';
        array[len] = '\0';
        rc = query(conn, ST_CASES, params, &res, errstr, errstr_size);
    }
    if (rc != CS_OK)
        return rc;
    found = PQntuples(res);
    if (PQnfields(res) != (int)N_CASE_MEMBERS + 1) {
        snprintf(errstr, errstr_size, "the cases view has %d columns, not %d", PQnfields(res),
                 (int)N_CASE_MEMBERS + 1);
        PQclear(res);
        return CS_ERR;
    }
    if (!(out = calloc(1, sizeof(*out))) ||
        !(out->refs = calloc((size_t)found + 1, sizeof(*out->refs))) ||
        !(out->json = calloc((size_t)found + 1, sizeof(*out->json)))) {
        cs_ccd_view_rows_free(out);
        PQclear(res);
        snprintf(errstr, errstr_size, "out of memory");
        return CS_ERR;
    }
    for (int i = 0; i < found; i++) {
        char why[256];

        out->refs[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        if (!(out->json[i] = render_case(res, i, why, sizeof(why))))
            cs_log_warn("case did not render case=%lld error=\"%s\"", out->refs[i], why);
        out->n++;
    }
    PQclear(res);
    *rows = out;
    return CS_OK;
}

static int compare_refs(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;

    return (x > y) - (x < y);
}

int cs_ccd_view_cases_of(const cs_ccd_view_rows *rows, const long long *refs, size_t n, char **body,
                         char *errstr, size_t errstr_size)
{
    long long wanted[CS_CCD_VIEW_MAX_REFS];
    cs_text t = CS_TEXT_INIT;
    size_t first = 0;

    *body = NULL;
    if (n > CS_CCD_VIEW_MAX_REFS) {
        snprintf(errstr, errstr_size, "%zu case references: at most %d are read at once", n,
                 CS_CCD_VIEW_MAX_REFS);
        return CS_ERR_INVALID;
    }
    if (n)
        memcpy(wanted, refs, n * sizeof(*refs));
    qsort(wanted, n, sizeof(*wanted), compare_refs);
    cs_text_put(&t, "[", 1);
    for (size_t i = 0; i < n; i++) {
        const long long *at;

        if (i > 0 && wanted[i] == wanted[i - 1])
            continue;
        at = rows->n ? bsearch(&wanted[i], rows->refs, rows->n, sizeof(*rows->refs), compare_refs)
                     : NULL;
        if (!at)
            continue; /* unknown: left out */
        if (!rows->json[at - rows->refs]) {
            free(t.p);
            snprintf(errstr, errstr_size,
                     "case %lld: postgresql gave JSON that does not parse as jansson reads it",
                     wanted[i]);
            return CS_ERR;
        }
        if (first++)
            cs_text_put(&t, ",", 1);
        cs_text_puts(&t, rows->json[at - rows->refs]);
    }
    cs_text_put(&t, "]", 1);
    if (!t.ok) {
        free(t.p);
        snprintf(errstr, errstr_size, "out of memory");
        return CS_ERR;
    }
    *body = t.p;
    return CS_OK;
}

int cs_ccd_view_cases(PGconn *conn, const cs_ccd_view *v, const long long *refs, size_t n,
                      char **body, char *errstr, size_t errstr_size)
{
    cs_ccd_view_rows *rows;
    int rc = cs_ccd_view_case_rows(conn, v, refs, n, &rows, errstr, errstr_size);

    *body = NULL;
    if (rc != CS_OK)
        return rc;
    rc = cs_ccd_view_cases_of(rows, refs, n, body, errstr, errstr_size);
    cs_ccd_view_rows_free(rows);
    return rc;
}

int cs_ccd_view_history(PGconn *conn, const cs_ccd_view *v, long long ref, char **body,
                        char *errstr, size_t errstr_size)
{
    char r[24];
    const char *params[2] = {r, notes_param(v)};
    int rc;

    snprintf(r, sizeof(r), "%lld", ref);
    rc = render(conn, ST_HISTORY, params, body, NULL, errstr, errstr_size);
    if (rc == CS_ERR_NOTFOUND)
        snprintf(errstr, errstr_size, "no case %lld", ref);
    return rc;
}

int cs_ccd_view_event(PGconn *conn, const cs_ccd_view *v, long long ref, long long history_id,
                      char **body, char *errstr, size_t errstr_size)
{
    char r[24], id[24];
    const char *params[3] = {r, notes_param(v), id};
    int rc;

    snprintf(r, sizeof(r), "%lld", ref);
    snprintf(id, sizeof(id), "%lld", history_id);
    rc = render(conn, ST_EVENT, params, body, NULL, errstr, errstr_size);
    if (rc == CS_ERR_NOTFOUND)
        snprintf(errstr, errstr_size, "no event %lld in the history of case %lld", history_id, ref);
    return rc;
}

int cs_ccd_view_submitted(PGconn *conn, const cs_ccd_view *v, long long ref,
                          const char *idempotency_key, char **body, bool *created, char *errstr,
                          size_t errstr_size)
{
    char r[24], key[37];
    const char *params[3] = {r, notes_param(v), key};
    bool first = false;
    int rc;

    *body = NULL;
    if (!idempotency_key || !cs_uuid_parse(idempotency_key, key)) {
        snprintf(errstr, errstr_size, "idempotency key is not a UUID");
        return CS_ERR_INVALID;
    }
    snprintf(r, sizeof(r), "%lld", ref);
    rc = render(conn, ST_SUBMITTED, params, body, &first, errstr, errstr_size);
    if (rc == CS_ERR_NOTFOUND)
        snprintf(errstr, errstr_size, "case %lld has no event of idempotency key %s", ref, key);
    if (created)
        *created = rc == CS_OK && first;
    return rc;
}
