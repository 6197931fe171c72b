/* libFuzzer target: Elasticsearch bulk responses (cs_bulk_parse, lib/bulk.c) and what the
 * batch engine does with them (cs_batch_attempt, lib/batch.c).
 *
 * Input: a response body. It is parsed for as many actions as its "items"
 * array holds, and for one more (which must fail and leave nothing to free).
 * Each item's outcome must follow DESIGN §6 (2xx indexed, 409 already newer,
 * 429 and 5xx retried, never a success otherwise). The same body then answers
 * an attempt at a batch: as a 200 its items are applied or, if it is no
 * answer to the request, every change stays pending; as a 400 or 413 the
 * request is split until each change stands alone and becomes a dead letter.
 * A dead letter's reason goes into a text column of a UTF8 database, so it
 * must be UTF-8 PostgreSQL accepts, whatever the body held. */
#include "fuzz.h"

#include "batch.h"
#include "bulk.h"
#include "dead_letter.h"
#include "err.h"
#include "es.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Items beyond this are parsed but not put through a batch (speed). */
#define MAX_BATCH 64

/* What item i of the response says, read directly: its action, status and error type. */
static void item_fields(json_t *root, size_t i, bool *is_delete, int *status, const char **type,
                        bool *has_error)
{
    json_t *wrapper = json_array_get(json_object_get(root, "items"), i);
    void *it = json_object_iter(wrapper);
    json_t *item = json_object_iter_value(it);
    json_t *err = json_object_get(item, "error");

    *is_delete = it && strcmp(json_object_iter_key(it), "delete") == 0;
    *status = (int)json_integer_value(json_object_get(item, "status"));
    *has_error = err != NULL;
    *type = json_is_object(err) ? json_string_value(json_object_get(err, "type")) : NULL;
}

static void check_item(json_t *root, size_t i, const cs_bulk_item *it)
{
    int status;
    const char *type;
    bool has_error, is_delete;

    item_fields(root, i, &is_delete, &status, &type, &has_error);
    cs_fuzz_require(it->status == status, "item %zu status %d, not %d", i, it->status, status);
    cs_fuzz_require(it->outcome == (is_delete ? cs_bulk_classify_delete(status, type)
                                              : cs_bulk_classify(status, type)),
                    "item %zu outcome %d", i, (int)it->outcome);
    /* A delete of what is not there (404) is done: nothing to delete. */
    if (is_delete && status == 404) {
        cs_fuzz_require(it->outcome == CS_BULK_OK && (it->reason != NULL) == has_error,
                        "item %zu: a 404 delete is not done", i);
        return;
    }
    if (status >= 200 && status < 300)
        cs_fuzz_require(it->outcome == CS_BULK_OK, "item %zu: %d is not indexed", i, status);
    else if (status == 409)
        cs_fuzz_require(it->outcome == CS_BULK_CONFLICT, "item %zu: 409 is not a conflict", i);
    else if (status == 429 || status >= 500)
        cs_fuzz_require(it->outcome == CS_BULK_RETRY, "item %zu: %d is not retried", i, status);
    else
        cs_fuzz_require(it->outcome == CS_BULK_RETRY || it->outcome == CS_BULK_REJECTED,
                        "item %zu: %d counts as a success", i, status);
    cs_fuzz_require((it->reason != NULL) == (has_error || status >= 300),
                    "item %zu (status %d) %s a reason", i, status, it->reason ? "has" : "lacks");
    if (it->reason)
        cs_fuzz_require(cs_fuzz_utf8(it->reason, strlen(it->reason)),
                        "item %zu reason is not UTF-8: %s", i, it->reason);
}

/* A fake Elasticsearch: every request is answered with this status and body. */
typedef struct answer {
    long status;
    const char *body;
    size_t len;
    size_t requests;
} answer;

static int send_answer(void *ctx, const cs_bulk_body *body, cs_es_response *out, char *errstr,
                       size_t errstr_size)
{
    answer *a = ctx;

    (void)body;
    (void)errstr;
    (void)errstr_size;
    a->requests++;
    out->status = a->status;
    if (!(out->body = malloc(a->len + 1)))
        abort();
    memcpy(out->body, a->body, a->len);
    out->body[a->len] = '\0';
    out->len = a->len;
    return CS_OK;
}

/* A batch of n changes of distinct cases in one partition, at most max_docs per request. */
static cs_batch *batch_of(size_t n, size_t max_docs)
{
    cs_batch_opts opts = CS_BATCH_OPTS_INIT;
    cs_batch *b;
    char doc[128];

    opts.max_docs = max_docs;
    if (!(b = cs_batch_new(&opts)))
        abort();
    for (size_t i = 0; i < n; i++) {
        snprintf(doc, sizeof(doc),
                 "{\"reference\":%zu,\"id\":%zu,\"case_type_id\":\"NFD\",\"case_revision\":1}",
                 i + 1, i + 1);
        if (cs_batch_add(b, 0, (int64_t)i, NULL, 0, doc, strlen(doc)))
            abort();
    }
    return b;
}

/* The dead letters of b: want of them, each with a reason PostgreSQL stores. Returns them
 * (caller frees). */
static cs_dead_letter *check_dead_letters(cs_batch *b, size_t want)
{
    cs_dead_letter *dl = NULL;
    size_t n = cs_batch_dead_letters(b, "case-changes", &dl);

    cs_fuzz_require(n == want, "%zu dead letters, not %zu", n, want);
    for (size_t i = 0; i < n; i++)
        cs_fuzz_require(dl[i].reason && cs_fuzz_utf8(dl[i].reason, strlen(dl[i].reason)),
                        "dead letter reason is not UTF-8: %s", dl[i].reason);
    return dl;
}

/* The body as the answer (200) to a request of n changes: the items applied when it
 * answers n actions (parsed is their parse), else every change left pending. */
static void check_attempt_200(const char *body, size_t len, size_t n, const cs_bulk_item *parsed)
{
    cs_batch *b = batch_of(n, n);
    cs_batch_stats st = {0};
    size_t want[4] = {0, 0, 0, 0}, k = 0;
    answer a = {200, body, len, 0};
    cs_dead_letter *dl;
    char err[512];
    int rc = cs_batch_attempt(b, send_answer, &a, &st, err, sizeof(err));

    cs_fuzz_require(a.requests == 1, "%zu requests for %zu changes", a.requests, n);
    if (!parsed) {
        cs_fuzz_require(rc == CS_ERR_RETRY && cs_batch_pending(b) && st.indexed == 0 &&
                            st.rejected == 0,
                        "a 200 that answers another request was applied (rc %d)", rc);
        free(check_dead_letters(b, 0));
        cs_batch_free(b);
        return;
    }
    for (size_t i = 0; i < n; i++)
        want[parsed[i].outcome]++;
    cs_fuzz_require(rc == CS_OK, "rc %d for a response of %zu items", rc, n);
    cs_fuzz_require(st.indexed == want[CS_BULK_OK] && st.conflicts == want[CS_BULK_CONFLICT] &&
                        st.retries == want[CS_BULK_RETRY] && st.rejected == want[CS_BULK_REJECTED],
                    "stats %zu/%zu/%zu/%zu", st.indexed, st.conflicts, st.retries, st.rejected);
    cs_fuzz_require(cs_batch_pending(b) == (want[CS_BULK_RETRY] > 0), "pending is not retries");
    dl = check_dead_letters(b, want[CS_BULK_REJECTED]);
    for (size_t i = 0; i < n; i++) {
        if (parsed[i].outcome != CS_BULK_REJECTED)
            continue;
        cs_fuzz_require(
            dl[k].reference == (int64_t)i + 1 &&
                strcmp(dl[k].reason, parsed[i].reason ? parsed[i].reason : "rejected") == 0,
            "dead letter %zu is not item %zu", k, i);
        k++;
    }
    free(dl);
    cs_batch_free(b);
}

/* The body as a refusal of the whole request (400 or 413): three changes, split until
 * each stands alone, then each a dead letter quoting the body. */
static void check_attempt_refused(const char *body, size_t len, long status)
{
    cs_batch *b = batch_of(3, 3);
    cs_batch_stats st = {0};
    answer a = {status, body, len, 0};
    char err[512];
    int rc = cs_batch_attempt(b, send_answer, &a, &st, err, sizeof(err));

    cs_fuzz_require(rc == CS_OK && st.splits == 1 && st.rejected == 3 && !cs_batch_pending(b),
                    "HTTP %ld to every request: rc %d, %zu splits, %zu rejected", status, rc,
                    st.splits, st.rejected);
    free(check_dead_letters(b, 3));
    cs_batch_dead_letters_written(b);
    cs_fuzz_require(cs_batch_resolved(b), "batch not resolved");
    cs_batch_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = cs_fuzz_exact_copy(data, size);
    json_t *root = json_loadb(body, size, 0, NULL);
    json_t *arr = json_object_get(root, "items");
    size_t n = json_is_array(arr) ? json_array_size(arr) : 0;
    cs_bulk_item *items = calloc(n + 1, sizeof(*items));
    char err[512];
    int rc;

    if (!items)
        abort();
    memset(err, 'x', sizeof(err));
    rc = cs_bulk_parse(body, size, items, n, err, sizeof(err));
    cs_fuzz_require(rc == CS_OK || rc == CS_ERR, "rc %d", rc);
    if (rc == CS_OK) {
        cs_fuzz_require(root && json_is_array(arr), "accepted a body without an items array");
        for (size_t i = 0; i < n; i++)
            check_item(root, i, &items[i]);
    } else {
        cs_fuzz_require(cs_fuzz_terminated(err, sizeof(err)) && err[0] != '\0',
                        "refused without a reason");
        for (size_t i = 0; i < n; i++)
            cs_fuzz_require(!items[i].reason, "item %zu left with a reason to free", i);
    }

    /* The same body answering requests of the batch engine. */
    if (rc == CS_OK && n >= 1 && n <= MAX_BATCH)
        check_attempt_200(body, size, n, items);
    else
        check_attempt_200(body, size, 1, NULL);
    check_attempt_refused(body, size, size % 2 ? 400 : 413);
    if (rc == CS_OK)
        cs_bulk_items_clear(items, n);

    /* One action more than the response answers: refused, nothing to free. */
    rc = cs_bulk_parse(body, size, items, n + 1, err, sizeof(err));
    cs_fuzz_require(rc == CS_ERR, "%zu items accepted for %zu actions", n, n + 1);
    for (size_t i = 0; i <= n; i++)
        cs_fuzz_require(!items[i].reason && items[i].status == 0,
                        "item %zu filled by a refused response", i);

    free(items);
    json_decref(root);
    free(body);
    return 0;
}
