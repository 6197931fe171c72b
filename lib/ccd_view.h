/* casestream's cases read from PostgreSQL in the shapes CCD data store reads them in
 * (../shared/CCD-CONTRACT.md, DESIGN §6): the answers of the /ccd-persistence calls, rendered by
 * SQL that builds json (not jsonb, to keep CCD's member order) or, for the cases view, written
 * here from the columns, then written compact with every number as stored (cs_json_dumps). One
 * renderer for casestream-api and `casestream case`. */
#ifndef CS_CCD_VIEW_H
#define CS_CCD_VIEW_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

/* Most references one cs_ccd_view_cases call takes. */
#define CS_CCD_VIEW_MAX_REFS 100

/* Options of every view. notes_field: the case_data member the case's notes are projected into
 * (issue 11 item 5: a CCD collection [{"id": "...", "value": {...}}], newest first); NULL or "" =
 * no projection. */
typedef struct cs_ccd_view {
    const char *notes_field;
} cs_ccd_view;

/* Readies conn for the views, once per connection: their statements are prepared, and planned
 * once, generic
 * (plan_cache_mode force_generic_plan). Each is a lookup by key with one good plan, and
 * PostgreSQL would otherwise plan the cases view anew on every call (a custom plan always looks
 * cheaper for `= ANY($1)`, whose generic estimate assumes ten elements), which costs more than
 * running it. Returns CS_OK, CS_ERR_RETRY (the connection failed) or CS_ERR, with errstr. */
int cs_ccd_view_session(PGconn *conn, char *errstr, size_t errstr_size);

/* Each returns CS_OK with *body = malloc'd compact JSON text (caller frees), CS_ERR_NOTFOUND,
 * CS_ERR_RETRY (connection lost / serialization: caller may retry on a new connection) or CS_ERR,
 * with a one-line reason in errstr. */

/* GET /ccd-persistence/cases?case-refs=: [{case_details, revision}, ...] ordered by reference,
 * unknown refs left out, duplicates once. More than CS_CCD_VIEW_MAX_REFS refs: CS_ERR_INVALID. */
int cs_ccd_view_cases(PGconn *conn, const cs_ccd_view *v, const long long *refs, size_t n,
                      char **body, char *errstr, size_t errstr_size);

/* The cases view in two steps, for callers that read the cases of several requests at once:
 * cs_ccd_view_case_rows reads the cases refs[0..n) name (at most CS_CCD_VIEW_MAX_REFS; unknown
 * ones are absent) into *rows (free with cs_ccd_view_rows_free); cs_ccd_view_cases_of writes
 * the answer for refs[0..n) from rows that hold them, the bytes cs_ccd_view_cases gives. */
typedef struct cs_ccd_view_rows cs_ccd_view_rows;

int cs_ccd_view_case_rows(PGconn *conn, const cs_ccd_view *v, const long long *refs, size_t n,
                          cs_ccd_view_rows **rows, char *errstr, size_t errstr_size);
int cs_ccd_view_cases_of(const cs_ccd_view_rows *rows, const long long *refs, size_t n, char **body,
                         char *errstr, size_t errstr_size);
void cs_ccd_view_rows_free(cs_ccd_view_rows *rows);

/* GET .../cases/{ref}/history: [{id, case_reference, event}, ...] newest first; CS_ERR_NOTFOUND
 * when there is no such case. */
int cs_ccd_view_history(PGconn *conn, const cs_ccd_view *v, long long ref, char **body,
                        char *errstr, size_t errstr_size);

/* GET .../cases/{ref}/history/{event-id}: {id, case_reference, event}; CS_ERR_NOTFOUND when
 * absent (or belongs to another case). */
int cs_ccd_view_event(PGconn *conn, const cs_ccd_view *v, long long ref, long long history_id,
                      char **body, char *errstr, size_t errstr_size);

/* The submit answer for the event that the submission with this idempotency key applied to case
 * ref: the case AS IT WAS RIGHT AFTER THAT EVENT, in the shape of CCD's
 * DecentralisedSubmitEventResponse ({case_details, revision, errors, warnings, ignore_warning},
 * the last three null), rendered ONLY from that event's history row (plus the case's immutable
 * columns: reference, jurisdiction, case type, created_date), so it is byte-identical every
 * time it is rendered, whatever happened to the case since, after any restart. *created =
 * whether that event created the case (it is the case's first history row). CS_ERR_NOTFOUND
 * when no history row of the case has that key; CS_ERR_INVALID when the key is not a UUID. */
int cs_ccd_view_submitted(PGconn *conn, const cs_ccd_view *v, long long ref,
                          const char *idempotency_key, char **body, bool *created, char *errstr,
                          size_t errstr_size);

#endif
