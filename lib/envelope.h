/* Submissions (DESIGN §3): parsing and validation, shared by the producer and the worker. */
#ifndef CS_ENVELOPE_H
#define CS_ENVELOPE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The verdict on a message, as the HTTP-like code of its outcome (DESIGN §4). */
typedef enum cs_verdict {
    CS_VALID = 0,
    CS_INVALID = 400, /* not a usable submission: goes to the DLQ */
    CS_REJECTED = 422 /* usable, but a field value is not acceptable: also to the DLQ */
} cs_verdict;

/* A parsed submission. Every pointer is borrowed from root, which the
 * submission owns; NULL means the field was absent. */
typedef struct cs_submission {
    json_t *root;
    char idempotency_key[37]; /* canonical lower-case UUID, "" if unreadable */
    int64_t case_reference;   /* 0 if unreadable */
    const char *case_type;
    const char *jurisdiction;
    const char *event_id;
    const char *user_id;
    bool has_expected_version;
    int64_t expected_version;
    const char *state;
    json_t *data;                        /* object */
    json_t *data_merge;                  /* object */
    json_t *notes;                       /* array of {author, body} objects */
    const char *security_classification; /* PUBLIC, PRIVATE or RESTRICTED */
    const char *summary;
    const char *description;
    /* What CCD records of a case and its events (DESIGN §3). */
    bool has_case_id;
    int64_t case_id;             /* "id": CCD's internal id of the case */
    json_t *data_classification; /* object */
    bool has_resolved_ttl;       /* given: set to resolved_ttl, or cleared when that is NULL */
    const char *resolved_ttl;    /* a calendar date, "YYYY-MM-DD" */
    const char *event_name;
    const char *user_first_name;
    const char *user_last_name;
    const char *state_name;
    bool has_case_type_version;
    int32_t case_type_version; /* 1 or more */
    json_t *significant_item;  /* object: type "DOCUMENT", description, url (checked) */
    const char *proxied_by;
    const char *proxied_by_first_name;
    const char *proxied_by_last_name;
    /* The revisions CCD reports of the event: the one the user started from, and the one it
     * merged into just before submitting; recorded in history (012). */
    bool has_start_revision;
    int64_t start_revision;
    bool has_merge_revision;
    int64_t merge_revision;
    /* A supplementary data update, {"$set": {path: value}, "$inc": {path: integer}}, checked
     * as CCD checks one (paths "a" or "a.b"); such a submission changes nothing else. */
    json_t *supplementary_updates;
} cs_submission;

/* Parses and validates one message value. key/key_len is the Kafka message
 * key (NULL when there is none); it must be the case reference in decimal.
 * Messages over max_bytes are invalid without being parsed.
 *
 * Returns CS_VALID, CS_INVALID or CS_REJECTED. Unless the value was over
 * max_bytes or not a JSON object, *out receives a submission (caller frees
 * with cs_submission_free) filled as far as it could be read, so that an
 * outcome can still name the key and reference; otherwise *out is NULL. On a
 * verdict other than CS_VALID, errstr holds the reason (UTF-8, names the
 * field; the first CS_INVALID cause wins over any CS_REJECTED one). Running
 * out of memory counts as CS_INVALID with the reason "out of memory". */
cs_verdict cs_submission_parse(const char *value, size_t len, const char *key, size_t key_len,
                               size_t max_bytes, cs_submission **out, char *errstr,
                               size_t errstr_size);

/* The longest case type in bytes: its Elasticsearch index, lower(case_type) +
 * "_cases", may have at most 255. */
#define CS_CASE_TYPE_MAX 249

/* The first internal case id casestream gives from its own sequence (2^62; migration 013). A
 * submission's "id" (CCD's, counted from 1) must be below it, so the two never meet. */
#define CS_CASE_ID_OWN_FIRST INT64_C(4611686018427387904)

/* Checks that case_type (len bytes of UTF-8) can name its Elasticsearch index
 * (DESIGN §3): 1 to CS_CASE_TYPE_MAX ASCII letters, digits, '_', '-' and '.',
 * the first a letter or a digit. Returns true, or false with the reason in
 * why (UTF-8, to follow the field's name: "cannot name an index: ..."); why
 * may be NULL. */
bool cs_case_type_check(const char *case_type, size_t len, char *why, size_t why_size);

/* True if s is a day of the calendar written YYYY-MM-DD, years 0001 to 9999, as resolved_ttl
 * takes it (DESIGN §3) and PostgreSQL's date gives it back. */
bool cs_calendar_day(const char *s);

/* Frees a submission and its JSON. Accepts NULL. */
void cs_submission_free(cs_submission *s);

/* Writes the payload fingerprint of a submission to hex: the SHA-256 of its
 * JSON with members sorted, compact, so the same content spelled with other
 * member order or spacing has the same fingerprint. Returns 0, or CS_ERR
 * when out of memory. */
int cs_submission_fingerprint(const cs_submission *s, char hex[65]);

/* True if the submission carries what a create needs (jurisdiction, state, data). */
bool cs_submission_can_create(const cs_submission *s);

/* True if the submission is a supplementary data update (supplementary_data_updates). */
bool cs_submission_is_supplementary(const cs_submission *s);

#endif
