/* Bulk API bodies and responses (docs/indexer.md): index and delete actions with external_gte
 * versions, and what to do with each item Elasticsearch answers. Pure: no I/O. */
#ifndef CS_BULK_H
#define CS_BULK_H

#include <stddef.h>
#include <stdint.h>

/* A growing bulk request body. */
typedef struct cs_bulk_body {
    char *buf;
    size_t len;
    size_t cap;
    size_t count; /* items added */
} cs_bulk_body;

#define CS_BULK_BODY_INIT                                                                          \
    {                                                                                              \
        NULL, 0, 0, 0                                                                              \
    }

/* The request path of a bulk: only the fields the parser reads are returned. */
#define CS_BULK_PATH "/_bulk?filter_path=errors,items.*.status,items.*.error"

/* Appends one index action for the document with _id id (the case's internal id, DESIGN §6)
 * in index with version = revision, version_type = external_gte, and the document source
 * (doc, doc_len: one JSON object; raw newlines, which JSON allows only as
 * whitespace, are written as spaces). Returns 0 or CS_ERR (out of memory). */
int cs_bulk_add(cs_bulk_body *b, const char *index, int64_t id, int64_t revision, const char *doc,
                size_t doc_len);

/* Appends one delete action for the document with _id id in index, with version = revision,
 * version_type = external_gte (DESIGN §6, disposal): the index keeps the delete at that version,
 * so a change of a lower revision that comes later is refused (409) instead of creating the
 * document again. id must be the _id the case's index actions write. Returns 0 or CS_ERR (out
 * of memory). */
int cs_bulk_delete(cs_bulk_body *b, const char *index, int64_t id, int64_t revision);

/* Empties the body for reuse, keeping its memory. */
void cs_bulk_reset(cs_bulk_body *b);

/* Frees the body's memory. Accepts an empty body. */
void cs_bulk_free(cs_bulk_body *b);

/* What to do with one item of a bulk response. */
typedef enum cs_bulk_outcome {
    CS_BULK_OK = 0,   /* indexed (2xx) */
    CS_BULK_CONFLICT, /* 409: a document with this or a newer revision is there: success */
    CS_BULK_RETRY,    /* 429, 5xx, or a cluster/index state that an operator fixes: retry */
    CS_BULK_REJECTED  /* refused for its content (400 mapping errors etc.): dead letter */
} cs_bulk_outcome;

/* The outcome of an index item of the given status and error type (may be NULL). */
cs_bulk_outcome cs_bulk_classify(int status, const char *error_type);

/* The outcome of a delete item: 404 (no such document, or no such index) is CS_BULK_OK, the
 * document is not there; 409 (a document of a higher version is there) is CS_BULK_CONFLICT;
 * the rest as cs_bulk_classify. */
cs_bulk_outcome cs_bulk_classify_delete(int status, const char *error_type);

typedef struct cs_bulk_item {
    int status;
    cs_bulk_outcome outcome;
    char *reason; /* "type: reason (caused by ...)" when the item failed, else NULL; owned */
} cs_bulk_item;

/* Parses a bulk response body (status 200) into items[0..n-1], which must be
 * the number of actions sent, in order; each item is classified by its action ("delete":
 * cs_bulk_classify_delete, else cs_bulk_classify). Returns 0, or CS_ERR with the reason
 * in errstr when the body is not a bulk response of n items (items then hold
 * nothing to free). Free the reasons with cs_bulk_items_clear. */
int cs_bulk_parse(const char *body, size_t len, cs_bulk_item *items, size_t n, char *errstr,
                  size_t errstr_size);

/* Frees the reasons of items[0..n-1]. */
void cs_bulk_items_clear(cs_bulk_item *items, size_t n);

#endif
