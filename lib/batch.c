/* The bulk engine: which changes to send, the attempt that sends them, what Elasticsearch said,
 * which offsets may be stored. */
#include "batch.h"

#include "envelope.h"
#include "err.h"
#include "utf8.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum entry_state {
    E_PENDING,    /* to send (again) */
    E_DONE,       /* indexed, or a newer revision is already there */
    E_SUPERSEDED, /* a higher revision of the case in this batch stands for it */
    E_DEAD,       /* refused for its content: a dead letter */
    E_DROPPED     /* its partition was revoked */
} entry_state;

typedef struct entry {
    int partition;
    int64_t offset;
    int64_t reference; /* 0 when the message had none */
    int64_t id;        /* the document's _id; 0 until read from PostgreSQL when omitted */
    int64_t revision;
    char *index; /* NULL when the message had no usable case type */
    char *doc;   /* the message value, NUL-terminated; freed once not needed */
    size_t len;
    bool is_json;
    bool omitted;  /* the reference form, or no id (DESIGN §6): the document is read from
                    * PostgreSQL */
    bool disposal; /* a disposal document (DESIGN §6): the document is deleted */
    entry_state state;
    bool sent;       /* answered in the current attempt */
    char *reason;    /* E_DEAD: why */
    bool dl_written; /* E_DEAD: recorded in ccd.index_dead_letter */
} entry;

struct cs_batch {
    entry *e;
    size_t n, cap;
    size_t live;  /* entries not dropped */
    size_t bytes; /* of the live entries' values */
    size_t *req;  /* entry index of each action of the last built request */
    size_t req_n, req_cap;
    cs_batch_opts opts;
    size_t chunk;       /* most actions per request: opts.max_docs, halved on 413/400 */
    cs_backoff backoff; /* failed attempts of this batch */
    cs_bulk_body body;  /* the request being sent */
    cs_bulk_item *items;
    size_t items_cap;
};

/* A positive integer, or a string of decimal digits that is one, from v; 0 when v is neither. */
static int64_t positive_int(const json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v) > 0 ? json_integer_value(v) : 0;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        long long n;

        errno = 0;
        n = strtoll(s, &end, 10);
        if (errno == 0 && end != s && *end == '\0' && s[0] >= '0' && s[0] <= '9' && n > 0)
            return n;
    }
    return 0;
}

/* ---- the change document without a tree ------------------------------------------------------
 *
 * Reading a change document with jansson builds a tree of the whole case only to read four
 * fields at its top: most of the indexer's CPU per document. The scanner below checks the JSON
 * in one pass without building anything and notes where the top-level fields are. It accepts
 * only what jansson accepts and answers "unsure" (so cs_change_parse falls back to jansson, for
 * the same result and the same error text) at anything it does not decide exactly as jansson
 * does: escapes of NUL or surrogates, integers of 19 digits or more, reals with an exponent or
 * of over 300 characters, nesting over 1000 deep, a field it reads that has an escape, and every
 * document that is not valid or not a usable change document. */

typedef enum { TOK_NONE, TOK_INT, TOK_REAL, TOK_STRING, TOK_NULL, TOK_OTHER } tok_kind;

typedef struct tok {
    tok_kind kind;
    const char *p; /* TOK_STRING: the characters between the quotes; else the token */
    size_t len;
    bool escaped; /* TOK_STRING with a backslash */
} tok;

typedef struct scan {
    const char *p, *end;
    int depth;
} scan;

#define SCAN_MAX_DEPTH 1000

static void skip_ws(scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* The length of the well-formed UTF-8 sequence at p (no overlong forms, no surrogates, at most
 * U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0], n, cp;

    if (c >= 0xC2 && c <= 0xDF)
        n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    for (unsigned i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return n;
}

/* A string, s->p at its opening quote. False: not valid, or unsure. */
static bool scan_string(scan *s, tok *t)
{
    const char *p = s->p + 1;

    t->kind = TOK_STRING;
    t->p = p;
    t->escaped = false;
    while (p < s->end) {
        unsigned char c = (unsigned char)*p;

        if (c == '"') {
            t->len = (size_t)(p - t->p);
            s->p = p + 1;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c == '\\') {
            t->escaped = true;
            if (++p >= s->end)
                return false;
            if (*p == 'u') {
                int v = 0;

                if (s->end - p < 5)
                    return false;
                for (int i = 1; i <= 4; i++) {
                    int h = hexval(p[i]);

                    if (h < 0)
                        return false;
                    v = v * 16 + h;
                }
                if (v == 0 || (v >= 0xD800 && v <= 0xDFFF))
                    return false; /* jansson's own rules: unsure */
                p += 5;
            } else if (strchr("\"\\/bfnrt", *p) && *p) {
                p++;
            } else {
                return false;
            }
        } else if (c < 0x80) {
            p++;
        } else {
            size_t n = utf8_seq((const unsigned char *)p, (const unsigned char *)s->end);

            if (n == 0)
                return false;
            p += n;
        }
    }
    return false;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A number as JSON writes it. False: not valid, or unsure (see above). */
static bool scan_number(scan *s, tok *t)
{
    const char *p = s->p, *digits;
    bool real = false;

    t->p = p;
    if (p < s->end && *p == '-')
        p++;
    digits = p;
    if (p >= s->end || !is_digit(*p))
        return false;
    if (*p == '0')
        p++;
    else
        while (p < s->end && is_digit(*p))
            p++;
    if (p < s->end && *p == '.') {
        real = true;
        if (++p >= s->end || !is_digit(*p))
            return false;
        while (p < s->end && is_digit(*p))
            p++;
    }
    if (p < s->end && (*p == 'e' || *p == 'E'))
        return false; /* may overflow: unsure */
    if (!real && p - digits >= 19)
        return false; /* may not fit in 64 bits: unsure */
    if (p - t->p > 300)
        return false;
    t->kind = real ? TOK_REAL : TOK_INT;
    t->len = (size_t)(p - t->p);
    s->p = p;
    return true;
}

static bool scan_value(scan *s, tok *t);

/* An object or an array, s->p at its opening bracket. */
static bool scan_container(scan *s)
{
    char close = *s->p == '{' ? '}' : ']';
    bool first = true;
    tok t;

    if (++s->depth > SCAN_MAX_DEPTH)
        return false;
    s->p++;
    for (;;) {
        skip_ws(s);
        if (s->p >= s->end)
            return false;
        if (*s->p == close && first) {
            s->p++;
            break;
        }
        if (close == '}') {
            if (*s->p != '"' || !scan_string(s, &t))
                return false;
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':')
                return false;
            s->p++;
        }
        if (!scan_value(s, &t))
            return false;
        skip_ws(s);
        if (s->p >= s->end)
            return false;
        first = false;
        if (*s->p == ',') {
            s->p++;
            continue;
        }
        if (*s->p != close)
            return false;
        s->p++;
        break;
    }
    s->depth--;
    return true;
}

static bool scan_literal(scan *s, const char *word, tok_kind kind, tok *t)
{
    size_t n = strlen(word);

    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return false;
    t->kind = kind;
    t->p = s->p;
    t->len = n;
    s->p += n;
    return true;
}

static bool scan_value(scan *s, tok *t)
{
    skip_ws(s);
    if (s->p >= s->end)
        return false;
    switch (*s->p) {
    case '"':
        return scan_string(s, t);
    case '{':
    case '[':
        t->kind = TOK_OTHER;
        return scan_container(s);
    case 't':
        return scan_literal(s, "true", TOK_OTHER, t);
    case 'f':
        return scan_literal(s, "false", TOK_OTHER, t);
    case 'n':
        return scan_literal(s, "null", TOK_NULL, t);
    default:
        return scan_number(s, t);
    }
}

/* A positive integer from an integer token or a string of digits, by positive_int's rule; 0
 * when it is neither; -1 when unsure. */
static int64_t tok_positive(const tok *t)
{
    char buf[32];
    char *end;
    long long n;

    if (t->kind == TOK_INT) {
        n = strtoll(t->p, NULL, 10); /* at most 18 digits */
        return n > 0 ? n : 0;
    }
    if (t->kind != TOK_STRING)
        return 0;
    if (t->escaped || t->len >= sizeof(buf))
        return -1;
    memcpy(buf, t->p, t->len);
    buf[t->len] = '\0';
    errno = 0;
    n = strtoll(buf, &end, 10);
    return errno == 0 && end != buf && *end == '\0' && buf[0] >= '0' && buf[0] <= '9' && n > 0 ? n
                                                                                               : 0;
}

/* The change document's fields without a tree: true when the document is valid JSON and a
 * usable change document (out filled as cs_change_parse fills it); false when it is not, or
 * the scanner is unsure: the caller then reads it with jansson. */
static bool change_scan(const char *value, size_t len, cs_change *out)
{
    scan s = {value, value + len, 1};
    tok ref = {0}, id = {0}, rev = {0}, type_id = {0}, type = {0};
    const tok *tt;
    char name[CS_CASE_TYPE_MAX + 1];
    bool first = true;

    skip_ws(&s);
    if (s.p >= s.end || *s.p != '{')
        return false;
    s.p++;
    for (;;) {
        tok key, v;

        skip_ws(&s);
        if (s.p >= s.end)
            return false;
        if (*s.p == '}' && first) {
            s.p++;
            break;
        }
        if (*s.p != '"' || !scan_string(&s, &key))
            return false;
        skip_ws(&s);
        if (s.p >= s.end || *s.p != ':')
            return false;
        s.p++;
        if (!scan_value(&s, &v))
            return false;
        /* A key written with escapes might name a field: unsure. The last of a name wins, as in
         * jansson. */
        if (key.escaped && memchr(key.p, '\\', key.len))
            return false;
#define KEY_IS(k) (key.len == sizeof(k) - 1 && memcmp(key.p, k, sizeof(k) - 1) == 0)
        if (KEY_IS("reference"))
            ref = v;
        else if (KEY_IS("id"))
            id = v;
        else if (KEY_IS("case_revision"))
            rev = v;
        else if (KEY_IS("case_type_id"))
            type_id = v;
        else if (KEY_IS("case_type"))
            type = v;
#undef KEY_IS
        skip_ws(&s);
        if (s.p >= s.end)
            return false;
        first = false;
        if (*s.p == ',') {
            s.p++;
            continue;
        }
        if (*s.p != '}')
            return false;
        s.p++;
        break;
    }
    skip_ws(&s);
    if (s.p != s.end)
        return false;
    memset(out, 0, sizeof(*out));
    if ((out->reference = tok_positive(&ref)) <= 0)
        return false;
    if (id.kind != TOK_NONE && id.kind != TOK_NULL && (out->id = tok_positive(&id)) <= 0)
        return false;
    if (id.kind == TOK_NULL)
        out->id = 0;
    if (rev.kind != TOK_INT || rev.p[0] == '-')
        return false;
    out->revision = strtoll(rev.p, NULL, 10);
    tt = type_id.kind != TOK_NONE ? &type_id : &type;
    if (tt->kind != TOK_STRING || tt->escaped || tt->len >= sizeof(name))
        return false;
    memcpy(name, tt->p, tt->len);
    name[tt->len] = '\0';
    return cs_es_index_name(name, out->index, sizeof(out->index));
}

int cs_change_parse(const char *value, size_t len, cs_change *out, bool *is_json, char *errstr,
                    size_t errstr_size)
{
    json_error_t jerr;
    json_t *root, *id, *type, *rev;
    int rc = CS_ERR_INVALID;

    memset(out, 0, sizeof(*out));
    *is_json = false;
    if (!value || len == 0) {
        snprintf(errstr, errstr_size, "empty message");
        return CS_ERR_INVALID;
    }
    /* JSON has no raw NUL, but jansson skips one that follows a number or a
     * literal, and Elasticsearch would then refuse the document it accepted. */
    if (memchr(value, '\0', len)) {
        snprintf(errstr, errstr_size, "change document is not JSON: it has a NUL byte");
        return CS_ERR_INVALID;
    }
    if (change_scan(value, len, out)) {
        *is_json = true;
        return CS_OK;
    }
    memset(out, 0, sizeof(*out));
    if (!(root = json_loadb(value, len, 0, &jerr))) {
        /* jansson's text quotes the token it stopped in, which may end inside a
         * character in the middle of the text, not only at its end: the reason
         * is a dead letter's, stored as text, and PostgreSQL refuses it. */
        cs_utf8_repair(jerr.text);
        cs_utf8_snprintf(errstr, errstr_size,
                         "change document is not JSON: %s at line %d column %d", jerr.text,
                         jerr.line, jerr.column);
        return CS_ERR_INVALID;
    }
    *is_json = true;
    if (!json_is_object(root)) {
        snprintf(errstr, errstr_size, "change document is not a JSON object");
        goto cleanup;
    }
    if ((out->reference = positive_int(json_object_get(root, "reference"))) == 0) {
        snprintf(errstr, errstr_size, "change document has no valid reference");
        goto cleanup;
    }
    id = json_object_get(root, "id");
    if (id && !json_is_null(id) && (out->id = positive_int(id)) == 0) {
        snprintf(errstr, errstr_size, "change document has an id that is not a positive integer");
        goto cleanup;
    }
    rev = json_object_get(root, "case_revision");
    if (!json_is_integer(rev) || json_integer_value(rev) < 0) {
        snprintf(errstr, errstr_size, "change document has no valid case_revision");
        goto cleanup;
    }
    out->revision = json_integer_value(rev);
    if (!(type = json_object_get(root, "case_type_id")))
        type = json_object_get(root, "case_type");
    if (!json_is_string(type)) {
        snprintf(errstr, errstr_size, "change document has no case_type_id");
        goto cleanup;
    }
    if (!cs_es_index_name(json_string_value(type), out->index, sizeof(out->index))) {
        cs_utf8_snprintf(
            errstr, errstr_size, "case_type_id \"%.*s\" cannot name an index",
            (int)cs_utf8_prefix(json_string_value(type), json_string_length(type), 100),
            json_string_value(type));
        goto cleanup;
    }
    rc = CS_OK;
cleanup:
    json_decref(root);
    return rc;
}

/* An array of at least need elements of size elem: arr itself when its capacity *cap is
 * enough, else arr grown (doubling from 256) with *cap updated; NULL when out of memory, arr
 * then unchanged. The caller stores the result. */
static void *reserve(void *arr, size_t *cap, size_t need, size_t elem)
{
    size_t n = *cap ? *cap : 256;
    void *grown;

    if (arr && need <= *cap)
        return arr;
    while (n < need)
        n *= 2;
    if (!(grown = realloc(arr, n * elem)))
        return NULL;
    *cap = n;
    return grown;
}

cs_batch *cs_batch_new(const cs_batch_opts *opts)
{
    static const cs_batch_opts defaults = CS_BATCH_OPTS_INIT;
    cs_batch *b = calloc(1, sizeof(*b));

    if (!b)
        return NULL;
    b->opts = opts ? *opts : defaults;
    if (b->opts.max_docs == 0)
        b->opts.max_docs = 1;
    b->chunk = b->opts.max_docs;
    cs_backoff_init(&b->backoff, b->opts.backoff_base_ms, b->opts.backoff_cap_ms);
    return b;
}

static void entry_free(entry *e)
{
    free(e->index);
    free(e->doc);
    free(e->reason);
    e->index = e->doc = e->reason = NULL;
}

void cs_batch_clear(cs_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        entry_free(&b->e[i]);
    b->n = b->live = b->bytes = b->req_n = 0;
    b->chunk = b->opts.max_docs;
    cs_backoff_reset(&b->backoff);
}

void cs_batch_free(cs_batch *b)
{
    if (!b)
        return;
    cs_batch_clear(b);
    free(b->e);
    free(b->req);
    cs_bulk_free(&b->body);
    free(b->items);
    free(b);
}

/* The case reference a message key gives (DESIGN §2: decimal ASCII, 1 to 2^63-1, without sign
 * or leading zero), or 0. */
static int64_t key_reference(const char *key, size_t len)
{
    int64_t n = 0;

    if (!key || len == 0 || len > 19 || key[0] == '0')
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (key[i] < '0' || key[i] > '9' || n > (INT64_MAX - (key[i] - '0')) / 10)
            return 0;
        n = n * 10 + (key[i] - '0');
    }
    return n;
}

/* True for the reference form of a change: a small object with "omitted". */
static bool is_reference_form(const char *doc, size_t len)
{
    json_t *root, *omitted;
    bool yes;

    if (len > 4096 || !strstr(doc, "\"omitted\""))
        return false;
    root = json_loadb(doc, len, 0, NULL);
    omitted = json_object_get(root, "omitted");
    yes = omitted && !json_is_null(omitted) && !json_object_get(root, "data");
    json_decref(root);
    return yes;
}

/* True for a disposal document (DESIGN §6): a small object with "disposed": true. */
static bool is_disposal(const char *doc, size_t len)
{
    json_t *root;
    bool yes;

    if (len > 4096 || !strstr(doc, "\"disposed\""))
        return false;
    root = json_loadb(doc, len, 0, NULL);
    yes = json_is_true(json_object_get(root, "disposed")) && !json_object_get(root, "data");
    json_decref(root);
    return yes;
}

int cs_batch_add(cs_batch *b, int partition, int64_t offset, const char *key, size_t key_len,
                 const char *value, size_t len)
{
    char why[512];
    cs_change c;
    entry *e;

    if (!(e = reserve(b->e, &b->cap, b->n + 1, sizeof(*e))))
        return CS_ERR;
    b->e = e;
    e = &b->e[b->n];
    memset(e, 0, sizeof(*e));
    e->partition = partition;
    e->offset = offset;
    e->len = value ? len : 0;
    if (!(e->doc = malloc(e->len + 1)))
        return CS_ERR;
    if (e->len)
        memcpy(e->doc, value, e->len);
    e->doc[e->len] = '\0';
    if (cs_change_parse(value, e->len, &c, &e->is_json, why, sizeof(why)) != CS_OK) {
        /* Recorded with the case it is about whenever the document or the key says which,
         * as reindex records it. */
        e->reference = c.reference;
        e->revision = c.revision;
        if (e->reference == 0)
            e->reference = key_reference(key, key_len);
        e->state = E_DEAD;
        if (!(e->reason = strdup(why))) {
            entry_free(e);
            return CS_ERR;
        }
    } else {
        e->state = E_PENDING;
        e->reference = c.reference;
        e->id = c.id;
        e->revision = c.revision;
        e->omitted = c.id == 0 || is_reference_form(e->doc, e->len);
        e->disposal = !e->omitted && is_disposal(e->doc, e->len);
        if (!(e->index = strdup(b->opts.index ? b->opts.index : c.index))) {
            entry_free(e);
            return CS_ERR;
        }
    }
    b->n++;
    b->live++;
    b->bytes += e->len;
    return CS_OK;
}

size_t cs_batch_count(const cs_batch *b)
{
    return b->live;
}

size_t cs_batch_bytes(const cs_batch *b)
{
    return b->bytes;
}

/* Orders pending entries by partition, case, then newest revision (and, for
 * equal revisions, latest offset) first. */
static _Thread_local const cs_batch *sort_batch;

static int by_case_newest_first(const void *pa, const void *pb)
{
    const entry *a = &sort_batch->e[*(const size_t *)pa];
    const entry *b = &sort_batch->e[*(const size_t *)pb];

    if (a->partition != b->partition)
        return a->partition < b->partition ? -1 : 1;
    if (a->reference != b->reference)
        return a->reference < b->reference ? -1 : 1;
    if (a->revision != b->revision)
        return a->revision > b->revision ? -1 : 1;
    if (a->offset != b->offset)
        return a->offset > b->offset ? -1 : 1;
    return 0;
}

void cs_batch_begin_attempt(cs_batch *b, cs_batch_stats *stats)
{
    size_t *idx, k = 0;

    for (size_t i = 0; i < b->n; i++)
        b->e[i].sent = false;
    /* Keep only the newest revision per case. If memory is short, sending
     * every revision is still correct (external_gte), only slower. */
    if (!(idx = malloc((b->n ? b->n : 1) * sizeof(*idx))))
        return;
    for (size_t i = 0; i < b->n; i++)
        if (b->e[i].state == E_PENDING)
            idx[k++] = i;
    sort_batch =
        b; /* qsort has no context argument: one per thread (the indexer attempts on several) */
    qsort(idx, k, sizeof(*idx), by_case_newest_first);
    sort_batch = NULL;
    for (size_t j = 1; j < k; j++) {
        entry *prev = &b->e[idx[j - 1]], *cur = &b->e[idx[j]];

        if (cur->partition == prev->partition && cur->reference == prev->reference) {
            /* prev is the newest of the run: idx is sorted newest first. */
            cur->state = E_SUPERSEDED;
            free(cur->doc);
            cur->doc = NULL;
            if (stats)
                stats->superseded++;
        }
    }
    free(idx);
}

int cs_batch_build(cs_batch *b, cs_bulk_body *body, size_t max_docs)
{
    size_t *req;

    cs_bulk_reset(body);
    b->req_n = 0;
    for (size_t i = 0; i < b->n && b->req_n < max_docs; i++) {
        entry *e = &b->e[i];

        if (e->state != E_PENDING || e->sent)
            continue;
        if (!(req = reserve(b->req, &b->req_cap, b->req_n + 1, sizeof(*req))))
            return CS_ERR;
        b->req = req;
        /* A disposal deletes the document its case's changes write, under the same _id: the
         * case's id. */
        if (e->disposal ? cs_bulk_delete(body, e->index, e->id, e->revision)
                        : cs_bulk_add(body, e->index, e->id, e->revision, e->doc, e->len))
            return CS_ERR;
        b->req[b->req_n++] = i;
    }
    return (int)b->req_n;
}

static void make_dead(entry *e, const char *reason)
{
    e->state = E_DEAD;
    free(e->reason);
    e->reason = strdup(reason ? reason : "rejected");
}

void cs_batch_apply(cs_batch *b, const cs_bulk_item *items, size_t n, cs_batch_stats *stats)
{
    cs_batch_stats ignored = {0};

    if (!stats)
        stats = &ignored;
    for (size_t i = 0; i < n && i < b->req_n; i++) {
        entry *e = &b->e[b->req[i]];

        e->sent = true;
        switch (items[i].outcome) {
        case CS_BULK_OK:
            e->state = E_DONE;
            if (e->disposal)
                stats->deleted++;
            else
                stats->indexed++;
            break;
        case CS_BULK_CONFLICT:
            e->state = E_DONE;
            stats->conflicts++;
            break;
        case CS_BULK_RETRY:
            stats->retries++;
            break;
        case CS_BULK_REJECTED:
            make_dead(e, items[i].reason);
            stats->rejected++;
            break;
        }
        if (e->state == E_DONE) {
            free(e->doc); /* not needed any more */
            e->doc = NULL;
        }
    }
    b->req_n = 0;
}

void cs_batch_reject_request(cs_batch *b, const char *reason, cs_batch_stats *stats)
{
    for (size_t i = 0; i < b->req_n; i++) {
        entry *e = &b->e[b->req[i]];

        e->sent = true;
        make_dead(e, reason);
        if (stats)
            stats->rejected++;
    }
    b->req_n = 0;
}

/* The reason of the first item to retry, into buf if it is still empty. */
static void note_retry(const cs_bulk_item *items, size_t n, char *buf, size_t size)
{
    for (size_t i = 0; i < n && buf[0] == '\0'; i++)
        if (items[i].outcome == CS_BULK_RETRY)
            cs_utf8_snprintf(buf, size, "%s", items[i].reason ? items[i].reason : "retry");
}

int cs_batch_attempt(cs_batch *b, cs_batch_send_fn send, void *ctx, cs_batch_stats *stats,
                     char *errstr, size_t errstr_size)
{
    cs_batch_stats ignored = {0};
    char retry[512] = "";
    size_t retries;
    int rc = CS_OK;

    if (!stats)
        stats = &ignored;
    retries = stats->retries;
    if (errstr_size > 0)
        errstr[0] = '\0';
    cs_batch_begin_attempt(b, stats);
    for (;;) {
        cs_es_response r = CS_ES_RESPONSE_INIT;
        int n = cs_batch_build(b, &b->body, b->chunk);
        cs_bulk_item *items;

        if (n == 0)
            break;
        if (n < 0 || !(items = reserve(b->items, &b->items_cap, (size_t)n, sizeof(*items)))) {
            snprintf(errstr, errstr_size, "out of memory building a bulk request");
            rc = CS_ERR;
            break;
        }
        b->items = items;
        if ((rc = send(ctx, &b->body, &r, errstr, errstr_size)) != CS_OK) {
            cs_es_response_clear(&r);
            break;
        }
        if (!r.body)
            r.len = 0; /* quoted below as "" */
        if (r.status == 200) {
            if (cs_bulk_parse(r.body, r.len, b->items, (size_t)n, errstr, errstr_size)) {
                rc = CS_ERR_RETRY;
            } else {
                cs_batch_apply(b, b->items, (size_t)n, stats);
                note_retry(b->items, (size_t)n, retry, sizeof(retry));
                cs_bulk_items_clear(b->items, (size_t)n);
            }
        } else if (r.status == 413 || r.status == 400) {
            /* Refused as a whole for its content (too large, unparsable): split the request
             * until the document at fault stands alone, then dead-letter that one only. Any
             * other status of the whole request (401/403 credentials, 404, 429, 5xx) says
             * nothing about the documents: retry it. */
            if (n > 1) {
                b->chunk = (size_t)n / 2;
                stats->splits++;
            } else {
                char why[512];

                cs_utf8_snprintf(why, sizeof(why), "bulk request refused: HTTP %ld: %.*s", r.status,
                                 (int)cs_utf8_prefix(r.body, r.len, 300), r.body ? r.body : "");
                /* It becomes the dead letters' reason, stored as text: a body that is not
                 * UTF-8 (from a proxy in front of Elasticsearch, say) would be refused by
                 * PostgreSQL every time, and the batch would never resolve. */
                cs_utf8_repair(why);
                cs_batch_reject_request(b, why, stats);
            }
        } else {
            cs_utf8_snprintf(errstr, errstr_size, "bulk request: HTTP %ld: %.*s", r.status,
                             (int)cs_utf8_prefix(r.body, r.len, 300), r.body ? r.body : "");
            rc = CS_ERR_RETRY;
        }
        cs_es_response_clear(&r);
        if (rc != CS_OK)
            break;
    }
    if (rc == CS_OK && stats->retries > retries)
        cs_utf8_snprintf(errstr, errstr_size, "%zu documents to retry: %s",
                         stats->retries - retries, retry);
    return rc;
}

long cs_batch_backoff(cs_batch *b)
{
    return cs_backoff_next(&b->backoff);
}

int cs_batch_failures(const cs_batch *b)
{
    return b->backoff.attempt;
}

size_t cs_batch_request_size(const cs_batch *b)
{
    return b->chunk;
}

bool cs_batch_pending(const cs_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->e[i].state == E_PENDING)
            return true;
    return false;
}

size_t cs_batch_dead_letters(const cs_batch *b, const char *topic, cs_dead_letter **out)
{
    size_t k = 0, count = 0;
    cs_dead_letter *dl;

    *out = NULL;
    for (size_t i = 0; i < b->n; i++)
        if (b->e[i].state == E_DEAD && !b->e[i].dl_written)
            count++;
    if (count == 0)
        return 0;
    if (!(dl = calloc(count, sizeof(*dl))))
        return (size_t)-1;
    for (size_t i = 0; i < b->n; i++) {
        const entry *e = &b->e[i];

        if (e->state != E_DEAD || e->dl_written)
            continue;
        dl[k].reference = e->reference;
        dl[k].revision = e->revision;
        dl[k].index = e->index;
        dl[k].reason = e->reason ? e->reason : "rejected";
        dl[k].doc = e->doc;
        dl[k].doc_is_json = e->is_json;
        dl[k].topic = topic;
        dl[k].partition = e->partition;
        dl[k].offset = e->offset;
        k++;
    }
    *out = dl;
    return count;
}

void cs_batch_dead_letters_written(cs_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        entry *e = &b->e[i];

        if (e->state == E_DEAD && !e->dl_written) {
            e->dl_written = true;
            free(e->doc);
            e->doc = NULL;
        }
    }
}

bool cs_batch_resolved(const cs_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        const entry *e = &b->e[i];

        if (e->state == E_PENDING || (e->state == E_DEAD && !e->dl_written))
            return false;
    }
    return true;
}

void cs_batch_drop_partition(cs_batch *b, int partition)
{
    for (size_t i = 0; i < b->n; i++) {
        entry *e = &b->e[i];

        if (e->partition != partition || e->state == E_DROPPED)
            continue;
        e->state = E_DROPPED;
        b->live--;
        b->bytes -= e->len;
        free(e->doc);
        e->doc = NULL;
    }
    /* The last built request may name dropped entries: it is not applied. */
    b->req_n = 0;
}

size_t cs_batch_offsets(const cs_batch *b, int *partitions, int64_t *offsets, size_t max)
{
    size_t np = 0;

    /* Partitions per batch are few: a linear scan is cheaper than a map. */
    for (size_t i = 0; i < b->n; i++) {
        const entry *e = &b->e[i];
        size_t j = 0;

        if (e->state == E_DROPPED)
            continue;
        while (j < np && partitions[j] != e->partition)
            j++;
        if (j == np) {
            if (np == max)
                continue; /* the caller's arrays are too small; see the header */
            partitions[np] = e->partition;
            offsets[np++] = e->offset + 1;
        } else if (e->offset + 1 > offsets[j]) {
            offsets[j] = e->offset + 1;
        }
    }
    return np;
}

size_t cs_batch_omitted(const cs_batch *b, int64_t *refs, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < b->n && n < max; i++) {
        const entry *e = &b->e[i];
        bool listed = false;

        if (e->state != E_PENDING || !e->omitted)
            continue;
        for (size_t k = 0; k < n && !listed; k++)
            listed = refs[k] == e->reference;
        if (!listed)
            refs[n++] = e->reference;
    }
    return n;
}

size_t cs_batch_acknowledged(const cs_batch *b, int64_t *refs, int64_t *revs, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < b->n && n < max; i++) {
        if (b->e[i].state != E_DONE)
            continue;
        refs[n] = b->e[i].reference;
        revs[n++] = b->e[i].revision;
    }
    return n;
}

size_t cs_batch_indices(const cs_batch *b, const char **names, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < b->n && n < max; i++) {
        const entry *e = &b->e[i];
        bool listed = false;

        if (e->state != E_PENDING || !e->index)
            continue;
        for (size_t k = 0; k < n && !listed; k++)
            listed = strcmp(names[k], e->index) == 0;
        if (!listed)
            names[n++] = e->index;
    }
    return n;
}

int cs_batch_fill(cs_batch *b, int64_t reference, const char *doc, size_t len)
{
    for (size_t i = 0; i < b->n; i++) {
        entry *e = &b->e[i];
        char why[512];
        cs_change c;
        bool is_json;
        char *copy;

        if (e->state != E_PENDING || !e->omitted || e->reference != reference)
            continue;
        e->omitted = false;
        if (!doc) {
            make_dead(e, "sent by reference, but the case is not in postgresql");
            continue;
        }
        if (cs_change_parse(doc, len, &c, &is_json, why, sizeof(why)) != CS_OK) {
            make_dead(e, why);
            continue;
        }
        if (c.reference != reference || c.revision < e->revision || c.id == 0) {
            make_dead(e, c.reference != reference
                             ? "sent by reference, but postgresql gave another case's document"
                         : c.id == 0 ? "postgresql gave a document without an id (is the schema "
                                       "migrated? casestream migrate)"
                                     : "sent by reference, but postgresql holds an older revision");
            continue;
        }
        if (!(copy = malloc(len + 1)))
            return CS_ERR;
        memcpy(copy, doc, len);
        copy[len] = '\0';
        free(e->doc);
        b->bytes += len - e->len;
        e->doc = copy;
        e->len = len;
        e->id = c.id;
        e->revision = c.revision;
        /* The case was disposed of since the change was published: PostgreSQL gives its
         * disposal document, and the document is deleted. */
        e->disposal = is_disposal(copy, len);
    }
    return CS_OK;
}
