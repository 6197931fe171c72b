/* The worker's decisions (DESIGN §4, §5), apart from PostgreSQL, Kafka and Redis: replays,
 * repeats of applied keys, the 422 and 409 classes, the version and revision of what applies,
 * and supplementary data updates. */
#include "decide.h"

#include "err.h"
#include "es.h"
#include "jsondump.h"
#include "merge_patch.h"
#include "utf8.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A case as the batch sees it. */
typedef struct case_state {
    int64_t ref;
    int64_t id; /* 0 when not known */
    char *case_type;
    char *jurisdiction;
    char *state;
    char *classification;
    json_t *data;          /* NULL when the stored blob could not be read: see unreadable */
    char *unreadable;      /* why the stored blob cannot be read; the case's jobs are rejected */
    char *resolved_ttl;    /* NULL = none */
    json_t *supplementary; /* an object; NULL when it could not be read: see below */
    char *unreadable_supplementary; /* why; the case's supplementary updates are rejected */
    int version;
    int64_t revision;
} case_state;

/* A reference disposed of, and the day (UTC). */
typedef struct disposed {
    int64_t ref;
    char on[11];
} disposed;

/* An internal id some case holds or held: a create naming it for another reference is refused. */
typedef struct taken_id {
    int64_t id;
    int64_t ref;
    char disposed_on[11]; /* "" while the case exists, else the day it was disposed of */
} taken_id;

typedef struct recorded {
    int32_t partition;
    int64_t offset;
    cs_outcome *outcome; /* owned */
} recorded;

struct cs_decider {
    case_state *cases; /* by reference */
    size_t ncases, cap_cases;
    cs_applied_key *keys;
    size_t nkeys, cap_keys;
    recorded *recorded;
    size_t nrecorded, cap_recorded;
    char **types; /* owned */
    size_t ntypes, cap_types;
    int64_t *seqs;
    size_t nseqs, cap_seqs, next_seq;
    int64_t *case_ids;
    size_t ncase_ids, cap_case_ids, next_case_id;
    disposed *disposed;
    size_t ndisposed, cap_disposed;
    taken_id *taken;
    size_t ntaken, cap_taken;
    char **importing; /* owned */
    size_t nimporting, cap_importing;
};

/* items (of *cap, n used) with room for one more of size: the same or a bigger allocation, or
 * NULL when out of memory (items left as they were). */
static void *room(void *items, size_t *cap, size_t n, size_t size)
{
    size_t want = *cap ? *cap * 2 : 16;
    void *bigger;

    if (n < *cap)
        return items;
    if (!(bigger = realloc(items, want * size)))
        return NULL;
    *cap = want;
    return bigger;
}

static void case_free(case_state *c)
{
    free(c->case_type);
    free(c->jurisdiction);
    free(c->state);
    free(c->classification);
    json_decref(c->data);
    free(c->unreadable);
    free(c->resolved_ttl);
    json_decref(c->supplementary);
    free(c->unreadable_supplementary);
}

cs_decider *cs_decider_new(void)
{
    return calloc(1, sizeof(cs_decider));
}

void cs_decider_free(cs_decider *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->ncases; i++)
        case_free(&d->cases[i]);
    free(d->cases);
    for (size_t i = 0; i < d->nkeys; i++)
        free((char *)d->keys[i].supplementary_data); /* the decider's own copy */
    free(d->keys);
    for (size_t i = 0; i < d->nrecorded; i++)
        cs_outcome_free(d->recorded[i].outcome);
    free(d->recorded);
    for (size_t i = 0; i < d->ntypes; i++)
        free(d->types[i]);
    free(d->types);
    free(d->seqs);
    free(d->case_ids);
    free(d->disposed);
    free(d->taken);
    for (size_t i = 0; i < d->nimporting; i++)
        free(d->importing[i]);
    free(d->importing);
    free(d);
}

/* --- the state ----------------------------------------------------------------------------- */

/* The index of case ref, or of where it would go. */
static size_t case_index(const cs_decider *d, int64_t ref)
{
    size_t lo = 0, hi = d->ncases;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (d->cases[mid].ref < ref)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Case ref, or NULL when it does not exist. */
static case_state *find_case(const cs_decider *d, int64_t ref)
{
    size_t i = case_index(d, ref);

    return i < d->ncases && d->cases[i].ref == ref ? &d->cases[i] : NULL;
}

/* Inserts c (taking what it owns) in reference order; false when out of memory. */
static bool insert_case(cs_decider *d, const case_state *c)
{
    case_state *cases = room(d->cases, &d->cap_cases, d->ncases, sizeof(*d->cases));
    size_t i;

    if (!cases)
        return false;
    d->cases = cases;
    i = case_index(d, c->ref);
    memmove(&d->cases[i + 1], &d->cases[i], (d->ncases - i) * sizeof(*d->cases));
    d->cases[i] = *c;
    d->ncases++;
    return true;
}

/* Reads stored JSON text: the value, or NULL with why it cannot be read in *why (owned; NULL
 * too when out of memory). what names it in the reason. */
static json_t *read_stored(const char *what, const char *text, size_t len, bool object, char **why)
{
    json_error_t jerr;
    json_t *v = cs_json_loads_stored(text, len, &jerr);
    char reason[256];

    *why = NULL;
    if (v && (!object || json_is_object(v)))
        return v;
    if (v)
        snprintf(reason, sizeof(reason), "stored %s is not a JSON object", what);
    else {
        /* jansson's text may quote the value, cut at its own byte limit. */
        cs_utf8_trim(jerr.text);
        snprintf(reason, sizeof(reason), "stored %s is not readable JSON: %s", what, jerr.text);
    }
    json_decref(v);
    *why = strdup(reason);
    return NULL;
}

int cs_decider_add_case(cs_decider *d, const cs_case_row *row)
{
    case_state c = {
        .ref = row->reference, .id = row->id, .version = row->version, .revision = row->revision};
    bool ttl_ok;

    c.case_type = strdup(row->case_type);
    c.jurisdiction = strdup(row->jurisdiction);
    c.state = strdup(row->state);
    c.classification = strdup(row->classification);
    c.resolved_ttl = row->resolved_ttl ? strdup(row->resolved_ttl) : NULL;
    ttl_ok = !row->resolved_ttl || c.resolved_ttl;
    /* One case's unreadable blob is that case's problem: its jobs are rejected with the
     * reason, every other case goes on. Unreadable supplementary data stops only the case's
     * supplementary updates. */
    c.data = read_stored("data", row->data, row->data_len, false, &c.unreadable);
    if (row->supplementary_data)
        c.supplementary = read_stored("supplementary data", row->supplementary_data,
                                      row->supplementary_len, true, &c.unreadable_supplementary);
    else
        c.supplementary = json_object();
    if (!c.case_type || !c.jurisdiction || !c.state || !c.classification || !ttl_ok ||
        (!c.data && !c.unreadable) || (!c.supplementary && !c.unreadable_supplementary) ||
        !insert_case(d, &c)) {
        case_free(&c);
        return CS_ERR;
    }
    return CS_OK;
}

int cs_decider_add_key(cs_decider *d, const cs_applied_key *k)
{
    cs_applied_key *keys = room(d->keys, &d->cap_keys, d->nkeys, sizeof(*d->keys));
    char *copy = k->supplementary_data ? strdup(k->supplementary_data) : NULL;

    if (!keys || (k->supplementary_data && !copy)) {
        free(copy);
        return CS_ERR;
    }
    d->keys = keys;
    d->keys[d->nkeys] = *k;
    d->keys[d->nkeys++].supplementary_data = copy;
    return CS_OK;
}

int cs_decider_add_recorded(cs_decider *d, int32_t partition, int64_t offset, const char *text,
                            size_t len)
{
    cs_outcome *o = NULL;
    int rc = cs_outcome_parse(text, len, &o);
    recorded *all;

    if (rc == CS_ERR_INVALID)
        return CS_OK;
    if (rc || !(all = room(d->recorded, &d->cap_recorded, d->nrecorded, sizeof(*all)))) {
        cs_outcome_free(o);
        return CS_ERR;
    }
    d->recorded = all;
    d->recorded[d->nrecorded++] = (recorded){partition, offset, o};
    return CS_OK;
}

static bool known_type(const cs_decider *d, const char *type)
{
    for (size_t i = 0; i < d->ntypes; i++)
        if (strcmp(d->types[i], type) == 0)
            return true;
    return false;
}

int cs_decider_add_case_type(cs_decider *d, const char *case_type)
{
    char **types, *copy;

    if (known_type(d, case_type))
        return CS_OK;
    if (!(types = room(d->types, &d->cap_types, d->ntypes, sizeof(*types))))
        return CS_ERR;
    d->types = types;
    if (!(copy = strdup(case_type)))
        return CS_ERR;
    d->types[d->ntypes++] = copy;
    return CS_OK;
}

int cs_decider_add_event_seq(cs_decider *d, int64_t seq)
{
    int64_t *seqs = room(d->seqs, &d->cap_seqs, d->nseqs, sizeof(*seqs));

    if (!seqs)
        return CS_ERR;
    d->seqs = seqs;
    d->seqs[d->nseqs++] = seq;
    return CS_OK;
}

int cs_decider_add_case_id(cs_decider *d, int64_t id)
{
    int64_t *ids = room(d->case_ids, &d->cap_case_ids, d->ncase_ids, sizeof(*ids));

    if (!ids)
        return CS_ERR;
    d->case_ids = ids;
    d->case_ids[d->ncase_ids++] = id;
    return CS_OK;
}

int cs_decider_add_disposed(cs_decider *d, int64_t reference, const char *disposed_on)
{
    disposed *all = room(d->disposed, &d->cap_disposed, d->ndisposed, sizeof(*all));

    if (!all)
        return CS_ERR;
    d->disposed = all;
    d->disposed[d->ndisposed].ref = reference;
    snprintf(d->disposed[d->ndisposed].on, sizeof(d->disposed[0].on), "%s", disposed_on);
    d->ndisposed++;
    return CS_OK;
}

int cs_decider_add_taken_id(cs_decider *d, int64_t id, int64_t reference, const char *disposed_on)
{
    taken_id *all = room(d->taken, &d->cap_taken, d->ntaken, sizeof(*all));

    if (!all)
        return CS_ERR;
    d->taken = all;
    d->taken[d->ntaken].id = id;
    d->taken[d->ntaken].ref = reference;
    snprintf(d->taken[d->ntaken].disposed_on, sizeof(d->taken[d->ntaken].disposed_on), "%s",
             disposed_on ? disposed_on : "");
    d->ntaken++;
    return CS_OK;
}

/* Who holds or held id, other than ref; NULL when nobody. */
static const taken_id *find_taken(const cs_decider *d, int64_t id, int64_t ref)
{
    for (size_t i = 0; i < d->ntaken; i++)
        if (d->taken[i].id == id && d->taken[i].ref != ref)
            return &d->taken[i];
    return NULL;
}

int cs_decider_add_importing(cs_decider *d, const char *case_type)
{
    char **all = room(d->importing, &d->cap_importing, d->nimporting, sizeof(*all));

    if (!all)
        return CS_ERR;
    d->importing = all;
    if (!(d->importing[d->nimporting] = strdup(case_type)))
        return CS_ERR;
    d->nimporting++;
    return CS_OK;
}

static bool importing(const cs_decider *d, const char *case_type)
{
    for (size_t i = 0; i < d->nimporting; i++)
        if (strcmp(d->importing[i], case_type) == 0)
            return true;
    return false;
}

static const disposed *find_disposed(const cs_decider *d, int64_t ref)
{
    for (size_t i = 0; i < d->ndisposed; i++)
        if (d->disposed[i].ref == ref)
            return &d->disposed[i];
    return NULL;
}

static const cs_applied_key *find_key(const cs_decider *d, int64_t ref, const char *key)
{
    for (size_t i = 0; i < d->nkeys; i++)
        if (d->keys[i].reference == ref && strcmp(d->keys[i].key, key) == 0)
            return &d->keys[i];
    return NULL;
}

static const cs_outcome *find_recorded(const cs_decider *d, int32_t partition, int64_t offset)
{
    for (size_t i = 0; i < d->nrecorded; i++)
        if (d->recorded[i].partition == partition && d->recorded[i].offset == offset)
            return d->recorded[i].outcome;
    return NULL;
}

/* A case type known to this batch (stored, or created by an earlier job) that differs from
 * type only in letter case, so that both would be written to one index. NULL when type itself
 * is known (cases of both may exist from before this rule: they carry on) or none differs. */
static const char *case_fold_twin(const cs_decider *d, const char *type)
{
    const char *twin = NULL;

    for (size_t i = 0; i < d->ntypes; i++) {
        if (strcmp(d->types[i], type) == 0)
            return NULL;
        if (!twin && strcasecmp(d->types[i], type) == 0)
            twin = d->types[i];
    }
    return twin;
}

/* --- repeats ------------------------------------------------------------------------------- */

bool cs_decide_repeat(cs_job *j, const cs_applied_key *k, bool authoritative)
{
    const cs_submission *s = j->sub;
    char why[512];

    if (k->partition == j->partition && k->offset == j->offset) {
        /* The applied message itself, delivered again: its history row (or Redis entry) holds
         * everything of its outcome, which is rendered again. */
        if (cs_job_decide_supplementary(j, CS_STATUS_APPLIED, k->version, k->revision, k->event_seq,
                                        k->supplementary_data))
            return false;
        j->replayed = true;
        return true;
    }
    if (k->fingerprint[0] && j->fingerprint[0] && strcmp(k->fingerprint, j->fingerprint) != 0) {
        if (!authoritative)
            return false;
        snprintf(why, sizeof(why),
                 "idempotency key %s was already applied to case %" PRId64 " with another payload",
                 s->idempotency_key, s->case_reference);
        return cs_job_decide(j, CS_STATUS_REJECTED, 0, 0, 0, why) == CS_OK;
    }
    /* A message read before the applied one, or on another partition, was decided without
     * it: only PostgreSQL's record of that decision answers it. */
    if (!authoritative && (k->partition != j->partition || k->offset > j->offset))
        return false;
    return cs_job_decide_supplementary(j, CS_STATUS_DUPLICATE, k->version, k->revision,
                                       k->event_seq, k->supplementary_data) == CS_OK;
}

bool cs_applied_key_from_outcome(const cs_outcome *o, cs_applied_key *k)
{
    if (o->status != CS_STATUS_APPLIED)
        return false;
    memset(k, 0, sizeof(*k));
    k->reference = o->case_reference;
    memcpy(k->key, o->idempotency_key, sizeof(k->key));
    k->version = o->version;
    k->revision = o->revision;
    k->event_seq = o->event_seq;
    k->partition = o->source_partition;
    k->offset = o->source_offset;
    memcpy(k->fingerprint, o->payload_sha256, sizeof(k->fingerprint));
    k->supplementary_data = o->supplementary_data;
    return true;
}

/* --- deciding one job ---------------------------------------------------------------------- */

/* True if a recorded outcome is for this submission: a position reused by a recreated topic
 * holds another message's outcome, which is decided again (and overwritten). */
static bool same_submission(const cs_outcome *o, const cs_submission *s)
{
    return strcmp(o->idempotency_key, s->idempotency_key) == 0 &&
           o->case_reference == s->case_reference;
}

/* Whether s can create its case, which does not exist: CS_STATUS_APPLIED, or the status it
 * gets instead with the reason in why. */
static cs_status refuse_create(const cs_decider *d, const cs_submission *s, char *why, size_t size)
{
    const taken_id *taken;
    const char *twin;

    if (cs_submission_is_supplementary(s)) {
        snprintf(why, size, "case %" PRId64 " does not exist: no supplementary data to update",
                 s->case_reference);
        return CS_STATUS_REJECTED;
    }
    if (s->data_merge) {
        snprintf(why, size, "case %" PRId64 " does not exist: nothing to merge into",
                 s->case_reference);
        return CS_STATUS_REJECTED;
    }
    if (!cs_submission_can_create(s)) {
        snprintf(why, size,
                 "case %" PRId64 " does not exist and the submission lacks %s to create it",
                 s->case_reference,
                 !s->jurisdiction ? "jurisdiction"
                 : !s->state      ? "state"
                                  : "data");
        return CS_STATUS_REJECTED;
    }
    if ((twin = case_fold_twin(d, s->case_type)) != NULL) {
        char index[256];

        cs_es_index_name(twin, index, sizeof(index));
        cs_utf8_snprintf(why, size,
                         "case type %s differs only in letter case from the existing case "
                         "type %s: both would be indexed in %s",
                         s->case_type, twin, index);
        return CS_STATUS_REJECTED;
    }
    /* An internal id is one case's, for good: CCD's search finds the case by it (the _id of
     * its document), and a disposed case's document is deleted at a version a new case's
     * document would not pass. The unique constraint backs this up against a create that
     * another worker commits meanwhile: its write is refused and the batch decided again. */
    if (s->has_case_id && (taken = find_taken(d, s->case_id, s->case_reference)) != NULL) {
        if (taken->disposed_on[0])
            snprintf(why, size,
                     "id %" PRId64 " was the id of case %" PRId64 ", disposed of on %s: an "
                     "id is never given to another case",
                     s->case_id, taken->ref, taken->disposed_on);
        else
            snprintf(why, size,
                     "id %" PRId64 " is already the id of case %" PRId64 ": an id is one "
                     "case's",
                     s->case_id, taken->ref);
        return CS_STATUS_REJECTED;
    }
    /* expected_version 0 means "this case must not exist yet". */
    if (s->has_expected_version && s->expected_version != 0) {
        snprintf(why, size, "expected version %" PRId64 ", case does not exist",
                 s->expected_version);
        return CS_STATUS_CONFLICT;
    }
    return CS_STATUS_APPLIED;
}

/* Whether j can change its case c: CS_STATUS_APPLIED, or the status it gets instead with the
 * reason in why. */
static cs_status refuse_update(const case_state *c, cs_job *j, char *why, size_t size)
{
    const cs_submission *s = j->sub;

    if (c->unreadable) {
        snprintf(why, size, "case %" PRId64 " cannot be changed: %s", s->case_reference,
                 c->unreadable);
        j->case_unreadable = true;
        return CS_STATUS_REJECTED;
    }
    if (strcmp(c->case_type, s->case_type) != 0) {
        /* Text from the submission and the database: cut between characters. */
        cs_utf8_snprintf(why, size, "case %" PRId64 " is of type %s, not %s", s->case_reference,
                         c->case_type, s->case_type);
        return CS_STATUS_REJECTED;
    }
    /* A case stays in its jurisdiction: naming another is an error, not a move. */
    if (s->jurisdiction && strcmp(c->jurisdiction, s->jurisdiction) != 0) {
        cs_utf8_snprintf(why, size, "case %" PRId64 " is in jurisdiction %s, not %s",
                         s->case_reference, c->jurisdiction, s->jurisdiction);
        return CS_STATUS_REJECTED;
    }
    /* CCD's internal id stays the case's. (0: not known, which round 1 never leaves.) */
    if (s->has_case_id && c->id && s->case_id != c->id) {
        snprintf(why, size, "case %" PRId64 " has id %" PRId64 ", not %" PRId64, s->case_reference,
                 c->id, s->case_id);
        return CS_STATUS_REJECTED;
    }
    if (cs_submission_is_supplementary(s) && c->unreadable_supplementary) {
        snprintf(why, size, "case %" PRId64 " cannot be changed: %s", s->case_reference,
                 c->unreadable_supplementary);
        return CS_STATUS_REJECTED;
    }
    if (s->has_expected_version && s->expected_version != c->version) {
        snprintf(why, size, "expected version %" PRId64 ", case is at version %d",
                 s->expected_version, c->version);
        return CS_STATUS_CONFLICT;
    }
    return CS_STATUS_APPLIED;
}

/* --- supplementary data -------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Applies one operation to map at path ("a" or "a.b", as the submission was checked): $set
 * puts a copy of value there, $inc adds the integer value to the integer there (0 when there
 * is none), creating the first level as an object when it is missing, as the SDK does.
 * Returns 0, CS_ERR_INVALID with the reason in why, or CS_ERR when out of memory. */
static int supplementary_op(json_t *map, bool inc, const char *path, json_t *value, char *why,
                            size_t size)
{
    const char *dot = strchr(path, '.'), *leaf = dot ? dot + 1 : path,
               *what = inc ? "add to" : "set";
    json_t *parent = map, *old;
    int64_t base = 0, add;

    if (dot) {
        char *first = strndup(path, (size_t)(dot - path));

        if (!first)
            return CS_ERR;
        parent = json_object_get(map, first);
        if (parent && !json_is_object(parent)) {
            cs_utf8_snprintf(why, size,
                             "supplementary data \"%s\" is not an object: cannot %s \"%s\"", first,
                             what, path);
            free(first);
            return CS_ERR_INVALID;
        }
        if (!parent && json_object_set_new(map, first, parent = json_object())) {
            free(first);
            return CS_ERR;
        }
        free(first);
    }
    if (!inc)
        return json_object_set_new(parent, leaf, json_deep_copy(value)) ? CS_ERR : CS_OK;
    old = json_object_get(parent, leaf);
    if (old && !json_is_integer(old)) {
        cs_utf8_snprintf(why, size, "supplementary data \"%s\" is not an integer: cannot add to it",
                         path);
        return CS_ERR_INVALID;
    }
    base = old ? json_integer_value(old) : 0;
    add = json_integer_value(value);
    if ((add > 0 && base > INT64_MAX - add) || (add < 0 && base < INT64_MIN - add)) {
        cs_utf8_snprintf(why, size,
                         "supplementary data \"%s\" is %" PRId64 ": adding %" PRId64
                         " goes past a 64-bit integer",
                         path, base, add);
        return CS_ERR_INVALID;
    }
    return json_object_set_new(parent, leaf, json_integer(base + add)) ? CS_ERR : CS_OK;
}

/* The supplementary data after updates: $set, then $inc, each in byte order of path, so that
 * the result does not depend on the order of the members (the payload's fingerprint does not
 * either). Returns 0 with *out (owned), CS_ERR_INVALID with the reason in why, or CS_ERR. */
static int supplementary_update(json_t *map, json_t *updates, json_t **out, char *why, size_t size)
{
    static const char *const ops[] = {"$set", "$inc"};
    json_t *copy = json_deep_copy(map);
    int rc = copy ? CS_OK : CS_ERR;

    for (size_t o = 0; o < 2 && rc == CS_OK; o++) {
        json_t *paths = json_object_get(updates, ops[o]), *value;
        size_t n = json_object_size(paths), i = 0;
        const char **names = malloc((n ? n : 1) * sizeof(*names)), *name;

        if (!names) {
            rc = CS_ERR;
            break;
        }
        json_object_foreach(paths, name, value)
        {
            names[i++] = name;
        }
        qsort(names, n, sizeof(*names), cmp_str);
        for (i = 0; i < n && rc == CS_OK; i++)
            rc = supplementary_op(copy, o == 1, names[i], json_object_get(paths, names[i]), why,
                                  size);
        free(names);
    }
    if (rc) {
        json_decref(copy);
        copy = NULL;
    }
    *out = copy;
    return rc;
}

/* Two optional strings are the same: both absent, or both there and equal. */
static bool same_text(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* The case row after s applies to c (NULL: a create). Returns 0, CS_ERR_INVALID with the
 * reason in why (a supplementary update that cannot apply to the case's data), or CS_ERR when
 * out of memory. */
static int plan_writes(const case_state *c, const cs_submission *s, cs_plan *p, char *why,
                       size_t size)
{
    const char *state, *cls, *ttl;
    int rc;

    p->apply = true;
    if (!c) {
        p->create = true;
        p->data = json_incref(s->data);
        p->data_changed = true;
        state = s->state;
        p->state_changed = true;
        cls = s->security_classification ? s->security_classification : "PUBLIC";
        ttl = s->resolved_ttl;
        p->version = 1;
        p->revision = 1;
    } else {
        if (s->data)
            p->data = json_incref(s->data);
        else if (s->data_merge)
            p->data = cs_merge_patch(c->data, s->data_merge);
        else
            p->data = json_incref(c->data);
        state = s->state ? s->state : c->state;
        cls = s->security_classification ? s->security_classification : c->classification;
        ttl = s->has_resolved_ttl ? s->resolved_ttl : c->resolved_ttl;
        p->data_changed = !cs_json_equal(p->data, c->data);
        p->state_changed = strcmp(state, c->state) != 0;
        /* The version counts changes of the blob, the state, the classification or the
         * retention date (the SDK's rule); notes and supplementary data leave it. */
        p->version =
            c->version + (p->data_changed || p->state_changed ||
                          strcmp(cls, c->classification) != 0 || !same_text(ttl, c->resolved_ttl));
        p->revision = c->revision + 1;
        p->prev_revision = c->revision;
        if (cs_submission_is_supplementary(s) &&
            (rc = supplementary_update(c->supplementary, s->supplementary_updates,
                                       &p->supplementary, why, size)))
            return rc;
    }
    p->data_classification = s->data_classification;
    p->notes = s->notes && json_array_size(s->notes) > 0 ? s->notes : NULL;
    p->state = strdup(state);
    p->classification = strdup(cls);
    p->resolved_ttl = ttl ? strdup(ttl) : NULL;
    return p->data && p->state && p->classification && (!ttl || p->resolved_ttl) ? CS_OK : CS_ERR;
}

int cs_decide(cs_decider *d, cs_job *j, cs_plan *p)
{
    const cs_submission *s = j->sub;
    const cs_outcome *seen = find_recorded(d, j->partition, j->offset);
    const cs_applied_key *k;
    const case_state *c;
    const disposed *gone;
    cs_status status;
    char why[512];
    int rc;

    memset(p, 0, sizeof(*p));
    if (seen && same_submission(seen, s))
        return cs_job_replay(j, seen);
    if ((k = find_key(d, s->case_reference, s->idempotency_key)) != NULL)
        return cs_decide_repeat(j, k, true) ? CS_OK : CS_ERR;
    /* CCD still owns the cases of a case type being imported: casestream takes nothing for
     * them until the cutover, whatever the submission (a repeat of a key applied before the
     * import started was answered above, as ever). */
    if (importing(d, s->case_type)) {
        snprintf(why, sizeof(why),
                 "case type %s is being imported from CCD and is not cut over yet: its cases "
                 "take submissions once `casestream import --mode cutover` has run",
                 s->case_type);
        return cs_job_decide(j, CS_STATUS_REJECTED, 0, 0, 0, why);
    }
    c = find_case(d, s->case_reference);
    /* A disposed case is gone for good: whatever the submission, it neither changes nor
     * creates it again (its keys went with it, so a repeat of an applied one comes here too). */
    if (!c && (gone = find_disposed(d, s->case_reference)) != NULL) {
        snprintf(why, sizeof(why),
                 "case %" PRId64 " was disposed of on %s at the end of its retention: a "
                 "disposed case takes no more submissions",
                 s->case_reference, gone->on);
        return cs_job_decide(j, CS_STATUS_REJECTED, 0, 0, 0, why);
    }
    status = c ? refuse_update(c, j, why, sizeof(why)) : refuse_create(d, s, why, sizeof(why));
    if (status == CS_STATUS_CONFLICT && c)
        return cs_job_decide(j, status, c->version, c->revision, 0, why);
    if (status != CS_STATUS_APPLIED)
        return cs_job_decide(j, status, 0, 0, 0, why);
    if (d->next_seq >= d->nseqs)
        return CS_ERR;
    if ((rc = plan_writes(c, s, p, why, sizeof(why))) == CS_ERR_INVALID) {
        cs_plan_clear(p);
        return cs_job_decide(j, CS_STATUS_REJECTED, 0, 0, 0, why);
    }
    if (rc) {
        cs_plan_clear(p);
        return CS_ERR;
    }
    if (p->create) {
        /* A case keeps CCD's id when the create names it; else it takes a reserved one, or
         * none (0: the column's default gives it one at the insert). */
        if (s->has_case_id)
            p->case_id = s->case_id;
        else if (d->next_case_id < d->ncase_ids)
            p->case_id = d->case_ids[d->next_case_id++];
    }
    p->event_seq = d->seqs[d->next_seq++];
    return CS_OK;
}

int cs_decider_adopt(cs_decider *d, cs_job *j, cs_plan *p)
{
    const cs_submission *s = j->sub;
    case_state *c = find_case(d, s->case_reference);
    cs_applied_key k = {.reference = s->case_reference,
                        .version = p->version,
                        .revision = p->revision,
                        .event_seq = p->event_seq,
                        .partition = j->partition,
                        .offset = j->offset};
    char *supplementary = NULL;
    int rc = CS_ERR;

    memcpy(k.key, s->idempotency_key, sizeof(k.key));
    memcpy(k.fingerprint, j->fingerprint, sizeof(k.fingerprint));
    if (!c) {
        case_state fresh = {.ref = s->case_reference, .id = p->case_id};

        fresh.case_type = strdup(s->case_type);
        fresh.jurisdiction = strdup(s->jurisdiction);
        fresh.supplementary = json_object();
        /* A new case type and id are known to the jobs after this one. */
        if (!fresh.case_type || !fresh.jurisdiction || !fresh.supplementary ||
            cs_decider_add_case_type(d, s->case_type) ||
            (p->case_id && cs_decider_add_taken_id(d, p->case_id, s->case_reference, NULL)) ||
            !insert_case(d, &fresh)) {
            case_free(&fresh);
            goto cleanup;
        }
        c = find_case(d, s->case_reference);
    }
    /* A supplementary update's outcome, and its repeats', carry the map after it. */
    if (p->supplementary && !(supplementary = cs_json_dumps(p->supplementary)))
        goto cleanup;
    k.supplementary_data = supplementary;
    if (cs_decider_add_key(d, &k) ||
        cs_job_decide_supplementary(j, CS_STATUS_APPLIED, p->version, p->revision, p->event_seq,
                                    supplementary))
        goto cleanup;
    j->applied = true;
    free(c->state);
    free(c->classification);
    free(c->resolved_ttl);
    json_decref(c->data);
    c->state = p->state;
    c->classification = p->classification;
    c->resolved_ttl = p->resolved_ttl;
    c->data = p->data;
    p->state = p->classification = p->resolved_ttl = NULL;
    p->data = NULL;
    if (p->supplementary) {
        json_decref(c->supplementary);
        c->supplementary = p->supplementary;
        p->supplementary = NULL;
    }
    c->version = p->version;
    c->revision = p->revision;
    rc = CS_OK;
cleanup:
    free(supplementary);
    cs_plan_clear(p);
    return rc;
}

int cs_decide_refused(cs_job *j, cs_plan *p, const char *why)
{
    cs_plan_clear(p);
    return cs_job_decide(j, CS_STATUS_REJECTED, 0, 0, 0, why);
}

void cs_plan_clear(cs_plan *p)
{
    free(p->state);
    free(p->classification);
    free(p->resolved_ttl);
    json_decref(p->data);
    json_decref(p->supplementary);
    memset(p, 0, sizeof(*p));
}
