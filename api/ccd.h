/* CCD's /ccd-persistence requests in casestream's terms, without I/O: routes, the submission a
 * DecentralisedCaseEvent makes, the supplementary data request, case-refs, the answer an
 * outcome gets. */
#ifndef CS_API_CCD_H
#define CS_API_CCD_H

#include "outcome.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a request is for. */
typedef enum cs_api_route {
    CS_API_CASES,         /* GET  /ccd-persistence/cases?case-refs=... */
    CS_API_SUBMIT,        /* POST /ccd-persistence/cases */
    CS_API_SUPPLEMENTARY, /* POST /ccd-persistence/cases/{ref}/supplementary-data */
    CS_API_HISTORY,       /* GET  /ccd-persistence/cases/{ref}/history */
    CS_API_EVENT,         /* GET  /ccd-persistence/cases/{ref}/history/{id} */
    CS_API_LIVEZ,         /* GET|HEAD /livez */
    CS_API_READYZ,        /* GET|HEAD /readyz, /healthz */
    CS_API_METRICS,       /* GET|HEAD /metrics */
    CS_API_NOT_FOUND,     /* 404 */
    CS_API_BAD_METHOD,    /* 405: the path is known, the method is not (see allow) */
    CS_API_BAD_PATH       /* 400: a known path whose reference or id is not a number */
} cs_api_route;

#define CS_API_ROUTE_COUNT 11

/* A routed request. */
typedef struct cs_api_target {
    cs_api_route route;
    int64_t ref;        /* SUPPLEMENTARY, HISTORY, EVENT */
    int64_t event_id;   /* EVENT */
    const char *allow;  /* BAD_METHOD: the Allow header (static) */
    const char *reason; /* BAD_PATH: why (static) */
} cs_api_target;

/* Routes method and path (no query string: libmicrohttpd splits it off). */
void cs_api_route_of(const char *method, const char *path, cs_api_target *out);

/* The route's name, a metrics label ("submit", "cases", ...); a static string. */
const char *cs_api_route_name(cs_api_route route);

/* True if s is a case reference as CCD writes one: a positive number of exactly 16 digits.
 * On success *ref receives it. */
bool cs_api_parse_ref(const char *s, int64_t *ref);

/* The most references one GET /cases may ask for. */
#define CS_API_MAX_REFS 100

/* Adds the references of one case-refs value ("1,2,3"; the parameter may also be repeated) to
 * refs[*n], at most CS_API_MAX_REFS in all. Returns 0, or CS_ERR_INVALID with the reason in
 * errstr (an empty item, one that is not a 16-digit reference, too many). */
int cs_api_add_refs(const char *value, int64_t refs[CS_API_MAX_REFS], size_t *n, char *errstr,
                    size_t errstr_size);

/* Who triggered an event, from the Authorization bearer token's claims. */
typedef struct cs_api_user {
    const char *id; /* required */
    const char *first_name;
    const char *last_name;
} cs_api_user;

/* Reads the user from the claims of the user's token (borrowed; the strings point into it):
 * the id from "uid", else "sub"; the names from "given_name" and "family_name" (strings, else
 * left out). Returns true, or false when the token names no user. */
bool cs_api_user_of(const json_t *claims, cs_api_user *out);

/* True if service (an S2S token's sub) is one of allowed, a comma-separated list (blanks
 * around names ignored). */
bool cs_api_service_allowed(const char *allowed, const char *service);

/* What a submission is mapped from and to. */
typedef struct cs_api_mapped {
    char *json;   /* the submission (DESIGN §3), compact; caller frees */
    int64_t ref;  /* its case reference */
    bool created; /* case_details.version was absent: CCD is creating the case */
} cs_api_mapped;

/* Maps CCD's DecentralisedCaseEvent body (POST /ccd-persistence/cases) to a submission with
 * the given idempotency key (canonical UUID) and user: case_details (reference, case_type_id,
 * jurisdiction, state, case_data less the notes_field member, security_classification,
 * data_classification, version as expected_version), event_details (event_id, event_name,
 * summary, description, proxied_by*), resolved_ttl, internal_case_id as id, start_revision
 * and merge_revision. Numbers are kept exactly (lib/jsondump.h). Returns 0 with *out filled,
 * CS_ERR_INVALID with the reason (a 400: not JSON, a wrong type, a missing member), or CS_ERR
 * when out of memory. */
int cs_api_map_event(const char *body, size_t len, const char *idempotency_key,
                     const cs_api_user *user, const char *notes_field, cs_api_mapped *out,
                     char *errstr, size_t errstr_size);

/* Maps a SupplementaryDataUpdateRequest body ({"supplementary_data_updates": {...}}) for case
 * ref of case_type to a supplementary data submission (DESIGN §3) with the given key and
 * user (id and names), the updates checked as CCD's SupplementaryDataUpdateRequestValidator checks
 * them (the envelope's rule). Returns 0 with *json (caller frees), CS_ERR_INVALID with the reason
 * (a 400), or CS_ERR when out of memory. */
int cs_api_map_supplementary(const char *body, size_t len, int64_t ref, const char *case_type,
                             const char *idempotency_key, const cs_api_user *user, char **json,
                             char *errstr, size_t errstr_size);

/* What to answer a submit with, given its outcome. */
typedef enum cs_api_reply {
    CS_API_REPLY_CASE,     /* the case right after the event (the submitted view) */
    CS_API_REPLY_ERRORS,   /* {"errors": [the outcome's error]} */
    CS_API_REPLY_CONFLICT, /* 409 with errors */
} cs_api_reply;

/* The answer to a submit whose outcome has status: applied is the case with 201 when its
 * event created it (else 200), duplicate the case with 200, conflict 409, rejected 200 with
 * errors (CCD shows them to the user), invalid 400 with errors. Sets *http. */
cs_api_reply cs_api_submit_reply(cs_status status, bool created, int *http);

/* {"errors": [message]}: malloc'd compact JSON (message as UTF-8, escaped); NULL when out of
 * memory. */
char *cs_api_errors_body(const char *message);

/* A submit refused for its content, as CCD's DecentralisedSubmitEventResponse carries it:
 * {"case_details": null, "revision": null, "errors": [message], "warnings": null,
 * "ignore_warning": null}; malloc'd, NULL when out of memory. */
char *cs_api_refused_body(const char *message);

/* {"supplementary_data": <map>} from an outcome's supplementary data (the text of an object,
 * NULL = {}); malloc'd, NULL when out of memory or not an object. */
char *cs_api_supplementary_body(const char *map);

/* True if a Content-Type header value names JSON (application/json, any parameters, any
 * letter case). NULL is false. */
bool cs_api_json_content_type(const char *value);

#endif
