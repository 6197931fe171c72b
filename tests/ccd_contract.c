/* CCD data store's checks of a decentralised service's answers, for tests. */
#include "ccd_contract.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* What a member's value may be, as CCD's JSON reader takes it; null is always allowed here (the
 * rules that want a value check it). */
typedef enum kind {
    K_ANY,    /* not read by type here */
    K_STRING, /* a String */
    K_INT,    /* an Integer or Long */
    K_DATE,   /* a LocalDateTime: YYYY-MM-DDTHH:MM[:SS[.fraction]], no zone */
    K_MAP,    /* a Map: an object */
    K_CLASS,  /* a SecurityClassification */
    K_ITEM    /* a SignificantItem: {type, description, url}, strings */
} kind;

typedef struct member {
    const char *name;
    kind kind;
} member;

/* CCD's members of each shape, in the order CCD writes them. CaseDetails' "id" is the case
 * reference on the wire (its getReference() is @JsonGetter("id")); the internal id has no member
 * (CCD sets its own). */
static const member case_details_members[] = {{"id", K_INT},
                                              {"version", K_INT},
                                              {"jurisdiction", K_STRING},
                                              {"case_type_id", K_STRING},
                                              {"created_date", K_DATE},
                                              {"last_modified", K_DATE},
                                              {"last_state_modified_date", K_DATE},
                                              {"state", K_STRING},
                                              {"security_classification", K_CLASS},
                                              {"case_data", K_MAP},
                                              {"data_classification", K_MAP},
                                              {"supplementary_data", K_MAP}};
static const member case_members[] = {{"case_details", K_ANY}, {"revision", K_INT}};
static const member audit_members[] = {{"id", K_INT}, {"case_reference", K_INT}, {"event", K_ANY}};
static const member event_members[] = {{"id", K_STRING},
                                       {"summary", K_STRING},
                                       {"description", K_STRING},
                                       {"user_id", K_STRING},
                                       {"user_first_name", K_STRING},
                                       {"user_last_name", K_STRING},
                                       {"event_name", K_STRING},
                                       {"created_date", K_DATE},
                                       {"case_type_id", K_STRING},
                                       {"case_type_version", K_INT},
                                       {"state_id", K_STRING},
                                       {"state_name", K_STRING},
                                       {"data", K_MAP},
                                       {"data_classification", K_MAP},
                                       {"security_classification", K_CLASS},
                                       {"significant_item", K_ITEM},
                                       {"proxied_by", K_STRING},
                                       {"proxied_by_first_name", K_STRING},
                                       {"proxied_by_last_name", K_STRING}};
static const member submit_members[] = {{"case_details", K_ANY},
                                        {"revision", K_INT},
                                        {"errors", K_ANY},
                                        {"warnings", K_ANY},
                                        {"ignore_warning", K_ANY}};
static const member item_members[] = {
    {"type", K_STRING}, {"description", K_STRING}, {"url", K_STRING}};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

__attribute__((format(printf, 3, 4))) static bool fail(char *why, size_t why_size, const char *fmt,
                                                       ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, why_size, fmt, ap);
    va_end(ap);
    return false;
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* null, or a LocalDateTime as Jackson reads it: YYYY-MM-DDTHH:MM[:SS[.fraction]], no zone. */
static bool date_or_null(const json_t *obj, const char *what, const char *name, char *why,
                         size_t why_size)
{
    const json_t *v = json_object_get(obj, name);
    const char *s = json_string_value(v);
    size_t len = s ? strlen(s) : 0;
    bool ok;

    if (json_is_null(v))
        return true;
    ok = s && len >= 16 && digits(s, 4) && s[4] == '-' && digits(s + 5, 2) && s[7] == '-' &&
         digits(s + 8, 2) && s[10] == 'T' && digits(s + 11, 2) && s[13] == ':' && digits(s + 14, 2);
    if (ok && len > 16)
        ok = len >= 19 && s[16] == ':' && digits(s + 17, 2) &&
             (len == 19 || (len >= 21 && len <= 29 && s[19] == '.' && digits(s + 20, len - 20)));
    if (!ok)
        return fail(why, why_size, "%s.%s is not an ISO local date-time: %s", what, name,
                    s ? s : "(not a string)");
    return true;
}

/* A security classification CCD's enum reads, or null. */
static bool classification_or_null(const json_t *obj, const char *what, const char *name, char *why,
                                   size_t why_size)
{
    const json_t *v = json_object_get(obj, name);
    const char *s = json_string_value(v);

    if (json_is_null(v))
        return true;
    if (!s ||
        (strcmp(s, "PUBLIC") != 0 && strcmp(s, "PRIVATE") != 0 && strcmp(s, "RESTRICTED") != 0))
        return fail(why, why_size, "%s.%s is not one of CCD's classifications", what, name);
    return true;
}

static bool members(const json_t *obj, const char *what, const member *m, size_t n, char *why,
                    size_t why_size);

/* The value of member m of obj is of its kind. */
static bool of_kind(const json_t *obj, const char *what, const member *m, char *why,
                    size_t why_size)
{
    const json_t *v = json_object_get(obj, m->name);
    char inner[128];

    if (json_is_null(v) || m->kind == K_ANY)
        return true;
    switch (m->kind) {
    case K_STRING:
        return json_is_string(v) ||
               fail(why, why_size, "%s.%s is neither a string nor null", what, m->name);
    case K_INT:
        return json_is_integer(v) ||
               fail(why, why_size, "%s.%s is neither an integer nor null", what, m->name);
    case K_MAP:
        return json_is_object(v) ||
               fail(why, why_size, "%s.%s is neither an object nor null", what, m->name);
    case K_DATE:
        return date_or_null(obj, what, m->name, why, why_size);
    case K_CLASS:
        return classification_or_null(obj, what, m->name, why, why_size);
    case K_ITEM:
        snprintf(inner, sizeof(inner), "%s.%s", what, m->name);
        return members(v, inner, item_members, COUNT(item_members), why, why_size);
    default:
        return true;
    }
}

/* obj is an object with exactly the members m[0..n-1] (none missing, none extra), each of its
 * kind. */
static bool members(const json_t *obj, const char *what, const member *m, size_t n, char *why,
                    size_t why_size)
{
    const char *key;
    json_t *value;

    if (!json_is_object(obj))
        return fail(why, why_size, "%s is not an object", what);
    for (size_t i = 0; i < n; i++)
        if (!json_object_get(obj, m[i].name))
            return fail(why, why_size, "%s has no member \"%s\"", what, m[i].name);
    json_object_foreach((json_t *)obj, key, value)
    {
        bool known = false;

        for (size_t i = 0; i < n && !known; i++)
            known = strcmp(key, m[i].name) == 0;
        if (!known)
            return fail(why, why_size, "%s has a member CCD does not know: \"%s\"", what, key);
    }
    for (size_t i = 0; i < n; i++)
        if (!of_kind(obj, what, &m[i], why, why_size))
            return false;
    return true;
}

static bool same_string(const json_t *obj, const char *what, const char *name, const char *want,
                        char *why, size_t why_size)
{
    const char *got = json_string_value(json_object_get(obj, name));

    if (!got || !want || strcmp(got, want) != 0)
        return fail(why, why_size, "%s.%s is %s, the case's is %s", what, name,
                    got ? got : "not a string", want ? want : "(none)");
    return true;
}

static json_t *parse(const char *body, char *why, size_t why_size)
{
    json_error_t jerr;
    json_t *root = body ? json_loads(body, JSON_DECODE_ANY, &jerr) : NULL;

    if (!root)
        fail(why, why_size, "the answer is not JSON: %s", body ? jerr.text : "no body");
    return root;
}

/* CaseDetails of case c (validateCaseDetails' checks of it and CCD's reading of it). */
static bool case_details(const json_t *d, const cs_ccd_case *c, char *why, size_t why_size)
{
    const json_t *version = json_object_get(d, "version");

    if (!members(d, "case_details", case_details_members, COUNT(case_details_members), why,
                 why_size))
        return false;
    if (!json_is_integer(version))
        return fail(why, why_size, "case_details.version is missing");
    if (json_integer_value(version) < 0 || json_integer_value(version) > 2147483647)
        return fail(why, why_size, "case_details.version does not fit CCD's Integer");
    if (!json_is_string(json_object_get(d, "security_classification")))
        return fail(why, why_size, "case_details.security_classification is missing");
    if (json_integer_value(json_object_get(d, "id")) != c->reference)
        return fail(why, why_size, "case_details.id (the reference) is not %lld", c->reference);
    return same_string(d, "case_details", "case_type_id", c->case_type_id, why, why_size) &&
           same_string(d, "case_details", "jurisdiction", c->jurisdiction, why, why_size);
}

/* The revision of a {case_details, revision} or a submit answer. */
static bool revision(const json_t *answer, char *why, size_t why_size)
{
    if (!json_is_integer(json_object_get(answer, "revision")))
        return fail(why, why_size, "revision is missing (not an integer)");
    return true;
}

bool cs_ccd_contract_case(const json_t *answer, const cs_ccd_case *c, char *why, size_t why_size)
{
    return members(answer, "the case answer", case_members, COUNT(case_members), why, why_size) &&
           revision(answer, why, why_size) &&
           case_details(json_object_get(answer, "case_details"), c, why, why_size);
}

bool cs_ccd_contract_cases(const char *body, const cs_ccd_case *found, size_t n, char *why,
                           size_t why_size)
{
    json_t *root = parse(body, why, why_size), *one;
    long long last = 0;
    bool ok = root != NULL;
    size_t i;

    if (ok && !json_is_array(root))
        ok = fail(why, why_size, "the cases answer is not an array");
    if (ok && json_array_size(root) != n)
        ok = fail(why, why_size, "the cases answer holds %zu cases, not %zu", json_array_size(root),
                  n);
    json_array_foreach(ok ? root : NULL, i, one)
    {
        long long ref =
            json_integer_value(json_object_get(json_object_get(one, "case_details"), "id"));
        const cs_ccd_case *c = NULL;

        for (size_t k = 0; k < n && !c; k++)
            if (found[k].reference == ref)
                c = &found[k];
        /* A reference not asked for: checked against the case expected at its place, whose
         * reference it does not have (CCD's check), or whose shape it does not have. */
        if (!c)
            c = &found[i];
        if (!cs_ccd_contract_case(one, c, why, why_size)) {
            ok = false;
            break;
        }
        if (ref <= last) {
            ok = fail(why, why_size, "case %lld comes after case %lld: not in reference order", ref,
                      last);
            break;
        }
        last = ref;
    }
    json_decref(root);
    return ok;
}

bool cs_ccd_contract_audit_event(const json_t *answer, const cs_ccd_case *c, char *why,
                                 size_t why_size)
{
    const json_t *id = json_object_get(answer, "id");

    if (!members(answer, "the audit event", audit_members, COUNT(audit_members), why, why_size))
        return false;
    if (!json_is_integer(id))
        return fail(why, why_size, "the audit event's id is missing");
    if (json_integer_value(json_object_get(answer, "case_reference")) != c->reference)
        return fail(why, why_size, "the audit event's case_reference is not %lld", c->reference);
    return members(json_object_get(answer, "event"), "event", event_members, COUNT(event_members),
                   why, why_size) &&
           same_string(json_object_get(answer, "event"), "event", "case_type_id", c->case_type_id,
                       why, why_size);
}

bool cs_ccd_contract_history(const char *body, const cs_ccd_case *c, char *why, size_t why_size)
{
    json_t *root = parse(body, why, why_size), *one;
    const char *newer = NULL;
    bool ok = root != NULL;
    size_t i;

    if (ok && !json_is_array(root))
        ok = fail(why, why_size, "the history answer is not an array");
    json_array_foreach(ok ? root : NULL, i, one)
    {
        const char *date;

        if (!cs_ccd_contract_audit_event(one, c, why, why_size)) {
            ok = false;
            break;
        }
        for (size_t k = 0; k < i && ok; k++)
            if (json_integer_value(json_object_get(json_array_get(root, k), "id")) ==
                json_integer_value(json_object_get(one, "id")))
                ok = fail(why, why_size, "history id %lld appears twice",
                          (long long)json_integer_value(json_object_get(one, "id")));
        date = json_string_value(json_object_get(json_object_get(one, "event"), "created_date"));
        if (ok && newer && date && strcmp(date, newer) > 0)
            ok = fail(why, why_size, "event %zu (%s) is newer than the one before it (%s)", i, date,
                      newer);
        if (!ok)
            break;
        newer = date;
    }
    json_decref(root);
    return ok;
}

bool cs_ccd_contract_event(const char *body, const cs_ccd_case *c, long long history_id, char *why,
                           size_t why_size)
{
    json_t *root = parse(body, why, why_size);
    bool ok = root && cs_ccd_contract_audit_event(root, c, why, why_size);

    if (ok && json_integer_value(json_object_get(root, "id")) != history_id)
        ok = fail(why, why_size, "the audit event's id is not %lld", history_id);
    json_decref(root);
    return ok;
}

/* The five members of a submit answer, errors and warnings null or arrays of strings. */
static bool submit_shape(const json_t *root, char *why, size_t why_size)
{
    static const char *const lists[] = {"errors", "warnings"};
    const json_t *iw;

    if (!members(root, "the submit answer", submit_members, COUNT(submit_members), why, why_size))
        return false;
    for (size_t i = 0; i < COUNT(lists); i++) {
        const json_t *list = json_object_get(root, lists[i]), *one;
        size_t k;

        if (!json_is_null(list) && !json_is_array(list))
            return fail(why, why_size, "%s is neither an array nor null", lists[i]);
        json_array_foreach(list, k, one)
        {
            if (!json_is_string(one))
                return fail(why, why_size, "%s[%zu] is not a string", lists[i], k);
        }
    }
    iw = json_object_get(root, "ignore_warning");
    if (!json_is_boolean(iw) && !json_is_null(iw))
        return fail(why, why_size, "ignore_warning is neither a boolean nor null");
    return true;
}

bool cs_ccd_contract_submitted(const char *body, const cs_ccd_case *c, char *why, size_t why_size)
{
    json_t *root = parse(body, why, why_size);
    bool ok = root && submit_shape(root, why, why_size);

    if (ok && json_array_size(json_object_get(root, "errors")) > 0)
        ok = fail(why, why_size, "a successful submit answer has errors");
    if (ok && json_array_size(json_object_get(root, "warnings")) > 0 &&
        !json_is_true(json_object_get(root, "ignore_warning")))
        ok = fail(why, why_size, "warnings without ignore_warning: CCD refuses the event");
    ok = ok && revision(root, why, why_size) &&
         case_details(json_object_get(root, "case_details"), c, why, why_size);
    json_decref(root);
    return ok;
}

bool cs_ccd_contract_refused(const char *body, char *why, size_t why_size)
{
    json_t *root = parse(body, why, why_size);
    bool ok = root && submit_shape(root, why, why_size);

    if (ok && json_array_size(json_object_get(root, "errors")) == 0)
        ok = fail(why, why_size, "a refusal without errors: CCD would take it as a success");
    json_decref(root);
    return ok;
}
