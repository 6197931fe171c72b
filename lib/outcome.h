/* The outcome of a submission (DESIGN §4): its status, the one rendering and the one parser. */
#ifndef CS_OUTCOME_H
#define CS_OUTCOME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What became of a submission. */
typedef enum cs_status {
    CS_STATUS_APPLIED,   /* applied and committed: 201 create, 200 update */
    CS_STATUS_DUPLICATE, /* its key was applied before, with the same payload: 200 */
    CS_STATUS_CONFLICT,  /* expected_version is not the stored version: 409 */
    CS_STATUS_REJECTED,  /* valid, but not applicable: 422 */
    CS_STATUS_INVALID    /* not a usable submission (and copied to the DLQ): 400 */
} cs_status;

#define CS_STATUS_COUNT 5

/* The status as the outcome names it ("applied", ...); a static string. */
const char *cs_status_name(cs_status status);

/* The status that name names. Returns true with *status set, or false for any
 * other text (NULL included). */
bool cs_status_from_name(const char *name, cs_status *status);

/* The code an outcome of status carries: 201 for an applied create, 200 for an
 * applied update and a duplicate, 409, 422, 400. */
int cs_status_code(cs_status status, bool created);

/* One outcome. Integer members are rendered null when 0 (source members when
 * -1), as they are parsed from null or absent members. */
typedef struct cs_outcome {
    char idempotency_key[37]; /* canonical lower-case; "" = null */
    int64_t case_reference;
    cs_status status;
    int code;
    int version;
    int64_t revision; /* "case_revision" */
    int64_t event_seq;
    const char *error; /* NULL = null; UTF-8, see cs_outcome_render */
    /* The case's whole supplementary data after a supplementary data update (DESIGN §4), as the
     * text of a JSON object; NULL = absent, as on every other outcome. */
    const char *supplementary_data;
    int32_t source_partition; /* -1 = null */
    int64_t source_offset;    /* -1 = null */
    /* The payload fingerprint, a member only of the worker's Redis entry of an
     * applied outcome (never of the message on the wire); "" = absent. */
    char payload_sha256[65];
    /* A parsed outcome's text as received, NUL-terminated, and its length;
     * error and supplementary_data point into the same allocation. NULL in one
     * built to render. */
    char *json;
    size_t len;
    /* The Kafka timestamp of the message it was read from (cs_producer_next_outcome), in ms
     * since the epoch; -1 = none. */
    int64_t timestamp_ms;
} cs_outcome;

/* The outcome as JSON: compact, members in the order of DESIGN §4 with
 * "source" last ("payload_sha256" after it when set); "supplementary_data",
 * when set, comes between "error" and "source", its members in byte order at
 * every depth and its reals in their stored form (lib/jsondump.h). The same
 * outcome always gives the same bytes, so a replayed outcome is identical to
 * the first copy on the wire, whatever the member order of the text its
 * supplementary data was read from. An error that is not UTF-8 (reasons are
 * cut between characters where they are made, lib/utf8.h) has its bytes
 * beyond ASCII rendered as '?'. Returns text the caller frees, or NULL when
 * out of memory or when supplementary_data is not the text of a JSON object. */
char *cs_outcome_render(const cs_outcome *o);

/* Parses an outcome (or its Redis entry) whatever its member order and
 * spacing (jsonb gives them back reordered): a JSON object whose "status" is
 * one of cs_status. Other members may be absent (read as null); the reference
 * and the source position may also be digit strings. Returns 0 with *out
 * (free with cs_outcome_free); CS_ERR_INVALID, *out NULL, if value is not
 * such an object; CS_ERR, *out NULL, when out of memory. */
int cs_outcome_parse(const char *value, size_t len, cs_outcome **out);

/* Frees a parsed outcome. Accepts NULL. */
void cs_outcome_free(cs_outcome *o);

#endif
