/* libFuzzer target: the indexer's reading of a change document (cs_change_parse,
 * lib/batch.c) and the bulk request the indexer makes of it.
 *
 * Input: one message value from case-changes. A document that is accepted
 * must name a case, its id, a revision and a usable index, and its bulk
 * action (_id = the id) and source must say the same, or be a delete only
 * when it is a disposal document; one without an id or in
 * the reference form is read from PostgreSQL first (here: given itself). One
 * that is refused must become a dead letter whose reason PostgreSQL can
 * store (ccd.index_dead_letter.reason is text in a UTF8 database: a reason
 * it refuses would block the indexer). */
#include "fuzz.h"

#include "batch.h"
#include "bulk.h"
#include "dead_letter.h"
#include "err.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What cs_es_index_name promises: lower(case_type) + "_cases", 255 bytes at most. */
static void check_index(const char *index)
{
    size_t n = strlen(index);

    cs_fuzz_require(n > 6 && n <= 255 && strcmp(index + n - 6, "_cases") == 0, "index \"%s\"",
                    index);
    cs_fuzz_require(!strchr("-_+.", index[0]), "index \"%s\" starts with '%c'", index, index[0]);
    for (size_t i = 0; i < n; i++)
        cs_fuzz_require((index[i] >= 'a' && index[i] <= 'z') ||
                            (index[i] >= '0' && index[i] <= '9') || strchr("-_.", index[i]),
                        "index \"%s\" has byte 0x%02x", index, (unsigned char)index[i]);
}

/* True if s is decimal digits only (leading zeros allowed) with the value n. */
static bool digits_of(const char *s, int64_t n)
{
    int64_t v = 0;

    if (!s || !*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (INT64_MAX - (*s - '0')) / 10)
            return false;
        v = v * 10 + (*s - '0');
    }
    return v == n;
}

/* A positive integer, or a string of decimal digits, with the value n. */
static bool is_number(json_t *v, int64_t n)
{
    return (json_is_integer(v) && json_integer_value(v) == n) ||
           (json_is_string(v) && digits_of(json_string_value(v), n));
}

/* The reference, id (0 when absent or null) and revision as the document gives them. */
static void check_fields(json_t *doc, const cs_change *c)
{
    json_t *id = json_object_get(doc, "id");

    cs_fuzz_require(is_number(json_object_get(doc, "reference"), c->reference),
                    "reference %" PRId64 " is not the document's", c->reference);
    cs_fuzz_require(c->id == 0 ? !id || json_is_null(id) : is_number(id, c->id),
                    "id %" PRId64 " is not the document's", c->id);
    cs_fuzz_require(json_is_integer(json_object_get(doc, "case_revision")) &&
                        json_integer_value(json_object_get(doc, "case_revision")) == c->revision,
                    "revision %" PRId64 " is not the document's", c->revision);
}

/* One line of a bulk body, parsed. */
static json_t *line_json(const char **p, const char *end)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    json_error_t jerr;
    json_t *v;

    cs_fuzz_require(nl != NULL, "bulk body line without a newline");
    v = json_loadb(*p, (size_t)(nl - *p), 0, &jerr);
    cs_fuzz_require(v != NULL, "bulk body line does not parse: %s", jerr.text);
    *p = nl + 1;
    return v;
}

/* A body of actions for doc: action lines naming index, id and revision, as external_gte
 * versions; an index action followed by the document on one line, or a delete (no source)
 * when the document is a disposal (DESIGN §6: "disposed": true, no "data"), never otherwise.
 * Returns the number of deletes. */
static int check_body(const cs_bulk_body *body, int actions, json_t *doc, const char *index,
                      int64_t doc_id, int64_t revision)
{
    const char *p = body->buf, *end = body->buf + body->len;
    bool disposal = json_is_true(json_object_get(doc, "disposed")) && !json_object_get(doc, "data");
    char id[24];
    int deletes = 0;

    snprintf(id, sizeof(id), "%" PRId64, doc_id);
    cs_fuzz_require(strlen(body->buf) == body->len, "bulk body has a NUL byte");
    cs_fuzz_require(body->count == (size_t)actions, "bulk body of %zu items for %d actions",
                    body->count, actions);
    for (int i = 0; i < actions; i++) {
        json_t *action = line_json(&p, end), *source = NULL;
        json_t *meta = json_object_get(action, "index");
        bool del = !meta && (meta = json_object_get(action, "delete")) != NULL;

        cs_fuzz_require(
            json_object_size(action) == 1 && json_is_object(meta) &&
                json_is_string(json_object_get(meta, "_index")) &&
                strcmp(json_string_value(json_object_get(meta, "_index")), index) == 0 &&
                json_is_string(json_object_get(meta, "_id")) &&
                strcmp(json_string_value(json_object_get(meta, "_id")), id) == 0 &&
                json_integer_value(json_object_get(meta, "version")) == revision &&
                json_is_string(json_object_get(meta, "version_type")) &&
                strcmp(json_string_value(json_object_get(meta, "version_type")), "external_gte") ==
                    0,
            "bulk action is not index or delete %s, id %s, version %" PRId64 " external_gte", index,
            id, revision);
        if (del) {
            cs_fuzz_require(disposal, "a document that is no disposal is deleted");
            deletes++;
        } else {
            source = line_json(&p, end);
            cs_fuzz_require(json_equal(source, doc), "bulk source is not the document");
        }
        json_decref(action);
        json_decref(source);
    }
    cs_fuzz_require(p == end, "bulk body has more than %d actions", actions);
    return deletes;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *value = cs_fuzz_exact_copy(data, size);
    char err[512];
    cs_change c;
    bool is_json = false, ok, filled_dead;
    int rc;
    /* JSON has no raw NUL byte (jansson skips one after a number). */
    json_t *doc = memchr(value, '\0', size) ? NULL : json_loadb(value, size, 0, NULL);
    cs_batch *b = cs_batch_new(NULL);
    cs_batch_stats st = {0};
    cs_bulk_body body = CS_BULK_BODY_INIT;
    cs_bulk_item items[2];
    cs_dead_letter *dl = NULL;
    size_t ndl;
    int partitions[3];
    int64_t offsets[3], refs[4];
    size_t nref;
    int deletes;

    if (!b)
        abort();
    memset(err, 'x', sizeof(err));
    rc = cs_change_parse(value, size, &c, &is_json, err, sizeof(err));
    cs_fuzz_require(rc == CS_OK || rc == CS_ERR_INVALID, "rc %d", rc);
    cs_fuzz_require(is_json == (doc != NULL), "is_json %d for a value jansson %s", is_json,
                    doc ? "parses" : "refuses");
    ok = rc == CS_OK;
    if (ok) {
        cs_fuzz_require(c.reference > 0 && c.id >= 0 && c.revision >= 0,
                        "reference %" PRId64 " id %" PRId64 " revision %" PRId64, c.reference, c.id,
                        c.revision);
        check_index(c.index);
        check_fields(doc, &c);
    } else {
        cs_fuzz_require(cs_fuzz_terminated(err, sizeof(err)) && err[0] != '\0',
                        "refused without a reason");
        cs_fuzz_require(cs_fuzz_utf8(err, strlen(err)), "reason is not UTF-8: %s", err);
    }

    /* The same change twice in partition 0 (key 1234) and once in partition 1
     * (no key): one of partition 0's is superseded, two are sent. */
    if (cs_batch_add(b, 0, 10, "1234", 4, value, size) ||
        cs_batch_add(b, 1, 11, NULL, 0, value, size) ||
        cs_batch_add(b, 0, 12, "1234", 4, value, size))
        abort();
    cs_fuzz_require(cs_batch_count(b) == 3 && cs_batch_bytes(b) == 3 * size, "batch counts");
    /* A change without an id, or in its reference form, asks for its document, given here
     * as PostgreSQL would: the same one. Without an id, that one is no better. */
    nref = cs_batch_omitted(b, refs, 4);
    cs_fuzz_require(nref == 0 || (ok && nref == 1 && refs[0] == c.reference),
                    "%zu references to read for a document that is %s", nref,
                    ok ? "accepted" : "refused");
    cs_fuzz_require(!ok || c.id > 0 || nref == 1, "a change without an id is not read again");
    if (nref == 1 && cs_batch_fill(b, c.reference, value, size))
        abort();
    cs_fuzz_require(cs_batch_omitted(b, refs, 4) == 0, "a filled reference is asked for again");
    filled_dead = ok && c.id == 0;
    cs_batch_begin_attempt(b, &st);
    rc = cs_batch_build(b, &body, 5);
    if (ok && !filled_dead) {
        cs_fuzz_require(st.superseded == 1 && rc == 2, "superseded %zu, sent %d", st.superseded,
                        rc);
        deletes = check_body(&body, rc, doc, c.index, c.id, c.revision);
        items[0] = (cs_bulk_item){201, CS_BULK_OK, NULL};
        items[1] = (cs_bulk_item){409, CS_BULK_CONFLICT, NULL};
        cs_batch_apply(b, items, 2, &st);
        cs_fuzz_require(st.indexed + st.deleted == 1 && st.conflicts == 1 &&
                            (deletes == 0 ? st.deleted == 0 : st.indexed == 0),
                        "outcomes not counted");
    } else {
        cs_fuzz_require(rc == 0, "a refused document was sent");
    }
    cs_fuzz_require(!cs_batch_pending(b), "changes still pending");

    ndl = cs_batch_dead_letters(b, "case-changes", &dl);
    cs_fuzz_require(ndl == (ok && !filled_dead ? 0 : 3), "%zu dead letters", ndl);
    for (size_t i = 0; i < ndl; i++) {
        cs_fuzz_require(dl[i].reason && cs_fuzz_utf8(dl[i].reason, strlen(dl[i].reason)),
                        "dead letter reason is not UTF-8: %s", dl[i].reason);
        cs_fuzz_require(dl[i].doc && memcmp(dl[i].doc, value, size) == 0 && dl[i].doc[size] == '\0',
                        "dead letter is not the message");
        cs_fuzz_require(dl[i].doc_is_json == (doc != NULL), "dead letter doc_is_json");
        /* The document's reference if it gives one, else the key's (DESIGN §2). */
        cs_fuzz_require(dl[i].reference == (c.reference > 0 ? c.reference
                                            : i == 1        ? 0
                                                            : 1234),
                        "dead letter %zu has reference %" PRId64, i, dl[i].reference);
    }
    free(dl);
    cs_batch_dead_letters_written(b);
    cs_fuzz_require(cs_batch_resolved(b), "batch not resolved");
    cs_fuzz_require(cs_batch_offsets(b, partitions, offsets, 3) == 2 && partitions[0] == 0 &&
                        offsets[0] == 13 && partitions[1] == 1 && offsets[1] == 12,
                    "offsets to store");

    cs_bulk_free(&body);
    cs_batch_free(b);
    json_decref(doc);
    free(value);
    return 0;
}
