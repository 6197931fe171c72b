/* The worker's decisions (worker/decide.c), driven by tests/fixtures/decide (see its README.md):
 * one batch per file, its cases as round 1 read them, and the decision each submission gets. */
#include "../worker/decide.h"

#include "err.h"
#include "fixture.h"
#include "jsondump.h"
#include "merge_patch.h"
#include "runner.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIR_NAME       "decide"
#define MIN_FIXTURES   30
#define MAX_FIXTURES   256
#define MAX_SUBMISSION 64

/* The fixture files, sorted; listed when the suite is built. */
static char *fixtures[MAX_FIXTURES];
static int nfixtures;

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_fixtures(void)
{
    char path[512];
    DIR *dir = opendir(cs_fixture_path(DIR_NAME, path, sizeof(path)));
    struct dirent *e;

    nfixtures = 0;
    while (dir && (e = readdir(dir)) != NULL && nfixtures < MAX_FIXTURES) {
        size_t len = strlen(e->d_name);

        if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0)
            fixtures[nfixtures++] = strdup(e->d_name);
    }
    if (dir)
        closedir(dir);
    qsort(fixtures, (size_t)nfixtures, sizeof(fixtures[0]), cmp_name);
}

/* --- reading a fixture --------------------------------------------------------------------- */

typedef struct batch {
    const char *name;
    json_t *root;
    cs_job jobs[MAX_SUBMISSION];
    size_t n;
} batch;

static int64_t int_of(json_t *o, const char *member, int64_t absent)
{
    json_t *v = json_object_get(o, member);

    return json_is_integer(v) ? json_integer_value(v) : absent;
}

static const char *str_of(json_t *o, const char *member)
{
    return json_string_value(json_object_get(o, member));
}

/* The submission's message value: "value" with event_id and user_id filled in when absent. */
static char *submission_text(const batch *b, json_t *sub)
{
    json_t *value = json_deep_copy(json_object_get(sub, "value"));
    char *text;

    ck_assert_msg(json_is_object(value), "%s: a submission without a \"value\" object", b->name);
    if (!json_object_get(value, "event_id"))
        json_object_set_new(value, "event_id", json_string("update"));
    if (!json_object_get(value, "user_id"))
        json_object_set_new(value, "user_id", json_string("u1"));
    text = json_dumps(value, JSON_COMPACT);
    json_decref(value);
    return text;
}

/* Parses every submission into a job as the worker's validation leaves it. */
static void read_jobs(batch *b)
{
    json_t *subs = json_object_get(b->root, "submissions"), *sub;
    size_t i;

    ck_assert_msg(json_array_size(subs) > 0, "%s: no submissions", b->name);
    ck_assert_uint_le(json_array_size(subs), MAX_SUBMISSION);
    json_array_foreach(subs, i, sub)
    {
        cs_job *j = &b->jobs[i];
        char *text = submission_text(b, sub), key[24];
        json_t *ref = json_object_get(json_object_get(sub, "value"), "case_reference");

        snprintf(key, sizeof(key), "%" JSON_INTEGER_FORMAT, json_integer_value(ref));
        j->partition = (int32_t)int_of(sub, "partition", 0);
        j->offset = int_of(sub, "offset", (int64_t)i);
        j->verdict = cs_submission_parse(text, strlen(text), key, strlen(key), 1048576, &j->sub,
                                         j->reason, sizeof(j->reason));
        ck_assert_msg(j->verdict == CS_VALID, "%s: submission %zu is not valid: %s", b->name, i,
                      j->reason);
        ck_assert_int_eq(cs_submission_fingerprint(j->sub, j->fingerprint), 0);
        free(text);
    }
    b->n = i;
}

/* A fingerprint a fixture names: "fingerprint" as given, or "fingerprint_of" submission i's. */
static void fingerprint_of(const batch *b, json_t *o, const char *of, const char *given,
                           char out[65])
{
    json_t *i = json_object_get(o, of);

    out[0] = '\0';
    if (json_is_integer(i)) {
        ck_assert_int_lt(json_integer_value(i), (json_int_t)b->n);
        memcpy(out, b->jobs[json_integer_value(i)].fingerprint, 65);
    } else if (str_of(o, given)) {
        snprintf(out, 65, "%s", str_of(o, given));
    }
}

/* JSON text a fixture gives as member text (exact) or json (dumped); NULL when neither. */
static char *text_of(json_t *o, const char *text, const char *json)
{
    if (str_of(o, text))
        return strdup(str_of(o, text));
    return json_object_get(o, json) ? cs_json_dumps(json_object_get(o, json)) : NULL;
}

/* The decider with the fixture's cases, keys, recorded outcomes, case types and ids. */
static cs_decider *read_state(const batch *b)
{
    cs_decider *d = cs_decider_new();
    json_t *v, *seqs = json_object_get(b->root, "event_seqs");
    json_t *case_ids = json_object_get(b->root, "case_ids");
    size_t i;

    ck_assert_ptr_nonnull(d);
    json_array_foreach(json_object_get(b->root, "cases"), i, v)
    {
        char *data = text_of(v, "data_text", "data");
        char *sup = text_of(v, "supplementary_text", "supplementary_data");
        cs_case_row row = {.reference = int_of(v, "reference", 0),
                           .id = int_of(v, "id", 0),
                           .case_type = str_of(v, "case_type"),
                           .jurisdiction = str_of(v, "jurisdiction"),
                           .state = str_of(v, "state"),
                           .classification = str_of(v, "classification"),
                           .data = data,
                           .data_len = data ? strlen(data) : 0,
                           .resolved_ttl = str_of(v, "resolved_ttl"),
                           .supplementary_data = sup,
                           .supplementary_len = sup ? strlen(sup) : 0,
                           .version = (int)int_of(v, "version", 1),
                           .revision = int_of(v, "revision", 1)};

        ck_assert_msg(row.case_type && row.jurisdiction && row.state && row.classification && data,
                      "%s: case %zu lacks a member", b->name, i);
        ck_assert_int_eq(cs_decider_add_case(d, &row), 0);
        free(data);
        free(sup);
    }
    json_array_foreach(json_object_get(b->root, "keys"), i, v)
    {
        cs_applied_key k = {.reference = int_of(v, "reference", 0),
                            .version = (int)int_of(v, "version", 0),
                            .revision = int_of(v, "revision", 0),
                            .event_seq = int_of(v, "event_seq", 0),
                            .partition = (int32_t)int_of(v, "partition", -1),
                            .offset = int_of(v, "offset", -1)};

        char *sup = text_of(v, "supplementary_text", "supplementary_data");

        ck_assert_ptr_nonnull(str_of(v, "key"));
        snprintf(k.key, sizeof(k.key), "%s", str_of(v, "key"));
        fingerprint_of(b, v, "fingerprint_of", "fingerprint", k.fingerprint);
        k.supplementary_data = sup;
        ck_assert_int_eq(cs_decider_add_key(d, &k), 0);
        free(sup);
    }
    json_array_foreach(json_object_get(b->root, "recorded"), i, v)
    {
        char *text = str_of(v, "outcome_text") ? strdup(str_of(v, "outcome_text"))
                                               : json_dumps(json_object_get(v, "outcome"), 0);

        ck_assert_ptr_nonnull(text);
        ck_assert_int_eq(cs_decider_add_recorded(d, (int32_t)int_of(v, "partition", 0),
                                                 int_of(v, "offset", 0), text, strlen(text)),
                         0);
        free(text);
    }
    json_array_foreach(json_object_get(b->root, "case_types"), i, v)
    {
        ck_assert_int_eq(cs_decider_add_case_type(d, json_string_value(v)), 0);
    }
    json_array_foreach(json_object_get(b->root, "disposed"), i, v)
    {
        ck_assert_ptr_nonnull(str_of(v, "disposed_on"));
        ck_assert_int_eq(
            cs_decider_add_disposed(d, int_of(v, "reference", 0), str_of(v, "disposed_on")), 0);
    }
    json_array_foreach(json_object_get(b->root, "taken_ids"), i, v)
    {
        ck_assert_int_eq(cs_decider_add_taken_id(d, int_of(v, "id", 0), int_of(v, "reference", 0),
                                                 str_of(v, "disposed_on")),
                         0);
    }
    json_array_foreach(json_object_get(b->root, "importing"), i, v)
    {
        ck_assert_int_eq(cs_decider_add_importing(d, json_string_value(v)), 0);
    }
    /* By default, one reserved id per submission from 1001 on. */
    if (!seqs)
        for (i = 0; i < b->n; i++)
            ck_assert_int_eq(cs_decider_add_event_seq(d, 1001 + (int64_t)i), 0);
    json_array_foreach(seqs, i, v)
    {
        ck_assert_int_eq(cs_decider_add_event_seq(d, json_integer_value(v)), 0);
    }
    /* Case ids for creates without one: by default one per submission from 5000001 on. */
    if (!case_ids)
        for (i = 0; i < b->n; i++)
            ck_assert_int_eq(cs_decider_add_case_id(d, 5000001 + (int64_t)i), 0);
    json_array_foreach(case_ids, i, v)
    {
        ck_assert_int_eq(cs_decider_add_case_id(d, json_integer_value(v)), 0);
    }
    return d;
}

/* --- checking the decisions ---------------------------------------------------------------- */

/* Checks integer member of want, when given, against got (null is 0). */
static void check_int(const batch *b, size_t i, json_t *want, const char *member, int64_t got)
{
    json_t *v = json_object_get(want, member);

    if (!v)
        return;
    ck_assert_msg(json_is_integer(v) || json_is_null(v), "%s: %s must be an integer or null",
                  b->name, member);
    ck_assert_msg((json_is_null(v) ? 0 : json_integer_value(v)) == got,
                  "%s: submission %zu: %s is %" PRId64 ", expected %" JSON_INTEGER_FORMAT, b->name,
                  i, member, got, json_is_null(v) ? 0 : json_integer_value(v));
}

static bool same(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static void check_bool(const batch *b, size_t i, json_t *want, const char *member, bool dflt,
                       bool got)
{
    json_t *v = json_object_get(want, member);
    bool expected = v ? json_is_true(v) : dflt;

    ck_assert_msg(expected == got, "%s: submission %zu: %s is %s", b->name, i, member,
                  got ? "true" : "false");
}

/* JSON member of want, when given, against got (NULL for JSON null): equal by value. */
static void check_json(const batch *b, size_t i, json_t *want, const char *member, json_t *got)
{
    json_t *v = json_object_get(want, member);
    char *g, *e;

    if (!v)
        return;
    if (json_is_null(v)) {
        ck_assert_msg(got == NULL, "%s: submission %zu: %s is there, expected none", b->name, i,
                      member);
        return;
    }
    g = got ? cs_json_dumps(got) : NULL;
    e = cs_json_dumps(v);
    ck_assert_msg(got && cs_json_equal(got, v), "%s: submission %zu: %s %s, expected %s", b->name,
                  i, member, g ? g : "(none)", e);
    free(g);
    free(e);
}

/* The JSON text (NULL for none) as a value to compare; the caller decrefs. */
static json_t *json_of_text(const char *text)
{
    json_t *v = text ? json_loads(text, 0, NULL) : NULL;

    ck_assert(!text || v);
    return v;
}

static void check_plan(const batch *b, size_t i, json_t *want, const cs_plan *p)
{
    json_t *data = json_object_get(want, "data"), *ttl = json_object_get(want, "resolved_ttl");

    ck_assert_msg(p->apply, "%s: submission %zu: no plan (it did not apply)", b->name, i);
    check_bool(b, i, want, "create", false, p->create);
    check_bool(b, i, want, "data_changed", false, p->data_changed);
    if (data) {
        char *got = cs_json_dumps(p->data), *exp = cs_json_dumps(data);

        ck_assert_msg(cs_json_equal(p->data, data), "%s: submission %zu: data %s, expected %s",
                      b->name, i, got, exp);
        free(got);
        free(exp);
    }
    if (str_of(want, "state"))
        ck_assert_str_eq(p->state, str_of(want, "state"));
    if (str_of(want, "classification"))
        ck_assert_str_eq(p->classification, str_of(want, "classification"));
    check_int(b, i, want, "version", p->version);
    check_int(b, i, want, "revision", p->revision);
    check_int(b, i, want, "prev_revision", p->prev_revision);
    check_int(b, i, want, "event_seq", p->event_seq);
    check_int(b, i, want, "notes", (int64_t)json_array_size(p->notes));
    check_int(b, i, want, "case_id", p->case_id);
    if (json_object_get(want, "state_changed"))
        check_bool(b, i, want, "state_changed", false, p->state_changed);
    if (ttl)
        ck_assert_msg(same(p->resolved_ttl, json_string_value(ttl)),
                      "%s: submission %zu: resolved_ttl %s", b->name, i,
                      p->resolved_ttl ? p->resolved_ttl : "null");
    check_json(b, i, want, "supplementary", p->supplementary);
    check_json(b, i, want, "data_classification", p->data_classification);
}

/* The rendered outcome says what the job holds, for the job's key, reference and position. */
static void check_outcome_text(const batch *b, size_t i, const cs_job *j)
{
    cs_outcome *o = NULL;

    ck_assert_msg(cs_outcome_parse(j->outcome, strlen(j->outcome), &o) == CS_OK,
                  "%s: submission %zu: outcome %s", b->name, i, j->outcome);
    ck_assert_str_eq(o->idempotency_key, j->sub->idempotency_key);
    ck_assert(o->case_reference == j->sub->case_reference);
    ck_assert_int_eq(o->status, j->status);
    ck_assert_int_eq(o->code, j->code);
    ck_assert_int_eq(o->version, j->version);
    ck_assert(o->revision == j->revision);
    ck_assert(o->event_seq == j->event_seq);
    ck_assert_int_eq(o->source_partition, j->partition);
    ck_assert(o->source_offset == j->offset);
    ck_assert_str_eq(o->payload_sha256, "");
    /* Only an applied or duplicate supplementary update carries its map. */
    ck_assert_msg((o->supplementary_data != NULL) == (j->supplementary_data != NULL),
                  "%s: submission %zu: outcome %s", b->name, i, j->outcome);
    ck_assert(!j->supplementary_data || j->status == CS_STATUS_APPLIED ||
              j->status == CS_STATUS_DUPLICATE);
    cs_outcome_free(o);
}

static void check_job(const batch *b, size_t i, json_t *want, const cs_job *j)
{
    json_t *status = json_object_get(want, "status"), *error = json_object_get(want, "error");
    cs_outcome *parsed = NULL;

    ck_assert_msg(status, "%s: expectation %zu has no status", b->name, i);
    if (json_is_null(status)) {
        ck_assert_msg(!j->decided, "%s: submission %zu: decided %s, expected undecided", b->name, i,
                      j->outcome);
        return;
    }
    ck_assert_msg(j->decided, "%s: submission %zu: undecided, expected %s", b->name, i,
                  json_string_value(status));
    ck_assert_msg(strcmp(cs_status_name(j->status), json_string_value(status)) == 0,
                  "%s: submission %zu: %s", b->name, i, j->outcome);
    check_int(b, i, want, "code", j->code);
    check_int(b, i, want, "version", j->version);
    check_int(b, i, want, "revision", j->revision);
    check_int(b, i, want, "event_seq", j->event_seq);
    check_bool(b, i, want, "replayed", false, j->replayed);
    check_bool(b, i, want, "case_unreadable", false, j->case_unreadable);
    check_bool(b, i, want, "applied", j->status == CS_STATUS_APPLIED && !j->replayed, j->applied);
    ck_assert_int_eq(cs_outcome_parse(j->outcome, strlen(j->outcome), &parsed), CS_OK);
    if (error && json_is_null(error))
        ck_assert_msg(!parsed->error, "%s: submission %zu: error %s", b->name, i, parsed->error);
    else if (error)
        ck_assert_msg(parsed->error && strcmp(parsed->error, json_string_value(error)) == 0,
                      "%s: submission %zu: error \"%s\", expected \"%s\"", b->name, i,
                      parsed->error ? parsed->error : "(null)", json_string_value(error));
    {
        json_t *sup = json_of_text(parsed->supplementary_data);

        check_json(b, i, want, "supplementary_data", sup);
        json_decref(sup);
    }
    cs_outcome_free(parsed);
    if (str_of(want, "outcome"))
        ck_assert_msg(strcmp(j->outcome, str_of(want, "outcome")) == 0,
                      "%s: submission %zu: outcome %s, expected %s", b->name, i, j->outcome,
                      str_of(want, "outcome"));
    check_outcome_text(b, i, j);
}

/* --- the two paths ------------------------------------------------------------------------- */

/* PostgreSQL's path, as worker/apply.c runs it: decide each job in offset order; adopt what
 * applies, unless the fixture says the database refused its writes. */
static void run_postgresql(batch *b, json_t *expect)
{
    cs_decider *d = read_state(b);

    for (size_t i = 0; i < b->n; i++) {
        json_t *sub = json_array_get(json_object_get(b->root, "submissions"), i);
        json_t *want = json_array_get(expect, i), *plan = json_object_get(want, "plan");
        cs_plan p;

        ck_assert_int_eq(cs_decide(d, &b->jobs[i], &p), 0);
        if (plan)
            check_plan(b, i, plan, &p);
        else
            ck_assert_msg(!p.apply, "%s: submission %zu applies; the fixture expects no plan",
                          b->name, i);
        if (p.apply && str_of(sub, "refused"))
            ck_assert_int_eq(cs_decide_refused(&b->jobs[i], &p, str_of(sub, "refused")), 0);
        else if (p.apply)
            ck_assert_int_eq(cs_decider_adopt(d, &b->jobs[i], &p), 0);
        ck_assert(!p.apply && !p.data && !p.state && !p.supplementary && !p.resolved_ttl);
        check_job(b, i, want, &b->jobs[i]);
    }
    cs_decider_free(d);
}

/* The Redis fast path, as worker/worker.c runs it: each job with an entry for its case and
 * key is answered from it (cs_decide_repeat), or left to PostgreSQL. */
static void run_redis(batch *b, json_t *expect)
{
    json_t *entries = json_object_get(b->root, "redis"), *e;
    size_t k;

    for (size_t i = 0; i < b->n; i++) {
        cs_job *j = &b->jobs[i];

        json_array_foreach(entries, k, e)
        {
            json_t *entry = json_deep_copy(json_object_get(e, "entry"));
            char print[65], *text;
            cs_outcome *o = NULL;
            cs_applied_key key;

            fingerprint_of(b, e, "payload_sha256_of", "payload_sha256", print);
            if (print[0])
                json_object_set_new(entry, "payload_sha256", json_string(print));
            text = json_dumps(entry, 0);
            json_decref(entry);
            ck_assert_int_eq(cs_outcome_parse(text, strlen(text), &o), CS_OK);
            free(text);
            if (o->case_reference == j->sub->case_reference &&
                strcmp(o->idempotency_key, j->sub->idempotency_key) == 0 &&
                cs_applied_key_from_outcome(o, &key))
                ck_assert_int_eq(cs_decide_repeat(j, &key, false), j->decided);
            cs_outcome_free(o);
        }
        check_job(b, i, json_array_get(expect, i), j);
    }
}

START_TEST(test_decide_fixture)
{
    char path[256];
    batch b = {.name = fixtures[_i]};
    json_t *expect;
    const char *how;

    snprintf(path, sizeof(path), DIR_NAME "/%s", fixtures[_i]);
    b.root = cs_fixture_json(path);
    ck_assert_msg(str_of(b.root, "about"), "%s: say what it is \"about\"", b.name);
    read_jobs(&b);
    expect = json_object_get(b.root, "expect");
    ck_assert_msg(json_array_size(expect) == b.n, "%s: one expectation per submission", b.name);
    how = str_of(b.root, "path") ? str_of(b.root, "path") : "postgresql";
    if (strcmp(how, "redis") == 0)
        run_redis(&b, expect);
    else
        run_postgresql(&b, expect);
    for (size_t i = 0; i < b.n; i++)
        cs_job_clear(&b.jobs[i]);
    json_decref(b.root);
}
END_TEST

START_TEST(test_decide_fixtures_are_there)
{
    ck_assert_msg(nfixtures >= MIN_FIXTURES,
                  "%d fixture files under tests/fixtures/" DIR_NAME ", expected at least %d",
                  nfixtures, MIN_FIXTURES);
}
END_TEST

Suite *decide_suite(void)
{
    Suite *s = suite_create("decide");
    TCase *tc = tcase_create("fixtures");

    list_fixtures();
    tcase_add_test(tc, test_decide_fixtures_are_there);
    tcase_add_loop_test(tc, test_decide_fixture, 0, nfixtures);
    suite_add_tcase(s, tc);
    return s;
}
