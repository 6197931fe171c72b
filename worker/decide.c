/* The worker's decisions (DESIGN §4, §5), apart from PostgreSQL, Kafka and Redis: replays,
 * repeats of applied keys, the 422 and 409 classes, and the version and revision of what
 * applies. */
#include "decide.h"

#include "err.h"
#include "es.h"
#include "jsondump.h"
#include "merge_patch.h"
#include "utf8.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A case as the batch sees it. */
typedef struct case_state {
    int64_t ref;
    char *case_type;
    char *jurisdiction;
    char *state;
    char *classification;
    json_t *data;     /* NULL when the stored blob could not be read: see unreadable */
    char *unreadable; /* why the stored blob cannot be read; the case's jobs are rejected */
    int version;
    int64_t revision;
} case_state;

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
    free(d->keys);
    for (size_t i = 0; i < d->nrecorded; i++)
        cs_outcome_free(d->recorded[i].outcome);
    free(d->recorded);
    for (size_t i = 0; i < d->ntypes; i++)
        free(d->types[i]);
    free(d->types);
    free(d->seqs);
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

int cs_decider_add_case(cs_decider *d, const cs_case_row *row)
{
    case_state c = {.ref = row->reference, .version = row->version, .revision = row->revision};
    json_error_t jerr;

    c.case_type = strdup(row->case_type);
    c.jurisdiction = strdup(row->jurisdiction);
    c.state = strdup(row->state);
    c.classification = strdup(row->classification);
    /* One case's unreadable blob is that case's problem: its jobs are rejected with the
     * reason, every other case goes on. */
    if (!(c.data = cs_json_loads_stored(row->data, row->data_len, &jerr))) {
        char why[256];

        /* jansson's text may quote the blob, cut at its own byte limit. */
        cs_utf8_trim(jerr.text);
        snprintf(why, sizeof(why), "stored data is not readable JSON: %s", jerr.text);
        c.unreadable = strdup(why);
    }
    if (!c.case_type || !c.jurisdiction || !c.state || !c.classification ||
        (!c.data && !c.unreadable) || !insert_case(d, &c)) {
        case_free(&c);
        return CS_ERR;
    }
    return CS_OK;
}

int cs_decider_add_key(cs_decider *d, const cs_applied_key *k)
{
    cs_applied_key *keys = room(d->keys, &d->cap_keys, d->nkeys, sizeof(*d->keys));

    if (!keys)
        return CS_ERR;
    d->keys = keys;
    d->keys[d->nkeys++] = *k;
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
        if (cs_job_decide(j, CS_STATUS_APPLIED, k->version, k->revision, k->event_seq, NULL))
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
    return cs_job_decide(j, CS_STATUS_DUPLICATE, k->version, k->revision, k->event_seq, NULL) ==
           CS_OK;
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
    const char *twin;

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
    if (s->has_expected_version && s->expected_version != c->version) {
        snprintf(why, size, "expected version %" PRId64 ", case is at version %d",
                 s->expected_version, c->version);
        return CS_STATUS_CONFLICT;
    }
    return CS_STATUS_APPLIED;
}

/* The case row after s applies to c (NULL: a create). Returns false when out of memory. */
static bool plan_writes(const case_state *c, const cs_submission *s, cs_plan *p)
{
    const char *state, *cls;

    p->apply = true;
    if (!c) {
        p->create = true;
        p->data = json_incref(s->data);
        p->data_changed = true;
        state = s->state;
        cls = s->security_classification ? s->security_classification : "PUBLIC";
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
        p->data_changed = !cs_json_equal(p->data, c->data);
        /* The version counts changes of the blob, the state or the classification. */
        p->version = c->version + (p->data_changed || strcmp(state, c->state) != 0 ||
                                   strcmp(cls, c->classification) != 0);
        p->revision = c->revision + 1;
        p->prev_revision = c->revision;
    }
    p->notes = s->notes && json_array_size(s->notes) > 0 ? s->notes : NULL;
    p->state = strdup(state);
    p->classification = strdup(cls);
    return p->data && p->state && p->classification;
}

int cs_decide(cs_decider *d, cs_job *j, cs_plan *p)
{
    const cs_submission *s = j->sub;
    const cs_outcome *seen = find_recorded(d, j->partition, j->offset);
    const cs_applied_key *k;
    const case_state *c;
    cs_status status;
    char why[512];

    memset(p, 0, sizeof(*p));
    if (seen && same_submission(seen, s))
        return cs_job_replay(j, seen);
    if ((k = find_key(d, s->case_reference, s->idempotency_key)) != NULL)
        return cs_decide_repeat(j, k, true) ? CS_OK : CS_ERR;
    c = find_case(d, s->case_reference);
    status = c ? refuse_update(c, j, why, sizeof(why)) : refuse_create(d, s, why, sizeof(why));
    if (status == CS_STATUS_CONFLICT && c)
        return cs_job_decide(j, status, c->version, c->revision, 0, why);
    if (status != CS_STATUS_APPLIED)
        return cs_job_decide(j, status, 0, 0, 0, why);
    if (d->next_seq >= d->nseqs || !plan_writes(c, s, p)) {
        cs_plan_clear(p);
        return CS_ERR;
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
    int rc = CS_ERR;

    memcpy(k.key, s->idempotency_key, sizeof(k.key));
    memcpy(k.fingerprint, j->fingerprint, sizeof(k.fingerprint));
    if (!c) {
        case_state fresh = {.ref = s->case_reference};

        fresh.case_type = strdup(s->case_type);
        fresh.jurisdiction = strdup(s->jurisdiction);
        /* A new case type is known to the jobs after this one. */
        if (!fresh.case_type || !fresh.jurisdiction || cs_decider_add_case_type(d, s->case_type) ||
            !insert_case(d, &fresh)) {
            case_free(&fresh);
            goto cleanup;
        }
        c = find_case(d, s->case_reference);
    }
    if (cs_decider_add_key(d, &k) ||
        cs_job_decide(j, CS_STATUS_APPLIED, p->version, p->revision, p->event_seq, NULL))
        goto cleanup;
    j->applied = true;
    free(c->state);
    free(c->classification);
    json_decref(c->data);
    c->state = p->state;
    c->classification = p->classification;
    c->data = p->data;
    p->state = p->classification = NULL;
    p->data = NULL;
    c->version = p->version;
    c->revision = p->revision;
    rc = CS_OK;
cleanup:
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
    json_decref(p->data);
    memset(p, 0, sizeof(*p));
}
