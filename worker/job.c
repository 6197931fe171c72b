/* Outcome rendering for a job: the JSON of DESIGN §4, identical whenever it is re-sent. */
#include "job.h"

#include "err.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *int_or_null(int64_t v)
{
    return v ? json_integer(v) : json_null();
}

/* An outcome's error as a JSON string. Reasons are cut between characters where they are made
 * (lib/utf8.h); should one still not be UTF-8, its bytes beyond ASCII become '?' rather than the
 * whole error becoming null, which json_string() would give. */
static json_t *error_json(const char *error)
{
    json_t *v;
    char *copy;

    if (!error)
        return json_null();
    if ((v = json_string(error)))
        return v;
    if (!(copy = strdup(error)))
        return json_string("out of memory");
    for (char *c = copy; *c; c++)
        if ((unsigned char)*c > 0x7e)
            *c = '?';
    v = json_string(copy);
    free(copy);
    return v;
}

/* The one rendering of an outcome: compact, members in this order. A replayed outcome goes
 * through it again, so it is byte-identical to the first copy on the wire even when it comes
 * back from ccd.event_outcome, whose jsonb reorders the members and adds spaces. Returns a
 * string the caller frees. */
static char *render(json_t *o)
{
    static const char *const members[] = {
        "idempotency_key", "case_reference", "status",    "code",
        "version",         "case_revision",  "event_seq", "error"};
    json_t *out = json_object(), *src = json_object(), *from = json_object_get(o, "source");
    json_t *v;
    char *text;

    for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
        v = json_object_get(o, members[i]);
        json_object_set(out, members[i], v ? v : json_null());
    }
    v = json_object_get(from, "partition");
    json_object_set(src, "partition", v ? v : json_null());
    v = json_object_get(from, "offset");
    json_object_set(src, "offset", v ? v : json_null());
    json_object_set_new(out, "source", src);
    text = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    return text;
}

void cs_job_decide(cs_job *j, const char *status, int code, int version, int64_t revision,
                   int64_t event_seq, const char *error)
{
    json_t *o = json_object();
    json_t *src = json_object();
    const cs_submission *s = j->sub;

    j->decided = true;
    j->status = status;
    j->code = code;
    j->version = version;
    j->revision = revision;
    j->event_seq = event_seq;
    json_object_set_new(o, "idempotency_key",
                        s && s->idempotency_key[0] ? json_string(s->idempotency_key) : json_null());
    json_object_set_new(o, "case_reference", int_or_null(s ? s->case_reference : 0));
    json_object_set_new(o, "status", json_string(status));
    json_object_set_new(o, "code", json_integer(code));
    json_object_set_new(o, "version", int_or_null(version));
    json_object_set_new(o, "case_revision", int_or_null(revision));
    json_object_set_new(o, "event_seq", int_or_null(event_seq));
    json_object_set_new(o, "error", error_json(error));
    json_object_set_new(src, "partition", json_integer(j->partition));
    json_object_set_new(src, "offset", json_integer(j->offset));
    json_object_set_new(o, "source", src);
    free(j->outcome);
    j->outcome = render(o);
    json_decref(o);
}

int cs_job_replay(cs_job *j, const char *outcome)
{
    json_t *o = json_loads(outcome, 0, NULL);
    const char *status = o ? json_string_value(json_object_get(o, "status")) : NULL;
    static const char *const statuses[] = {"applied", "duplicate", "conflict", "rejected",
                                           "invalid"};

    if (!status) {
        json_decref(o);
        return CS_ERR_INVALID;
    }
    j->status = "invalid";
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
        if (strcmp(status, statuses[i]) == 0)
            j->status = statuses[i]; /* a static string outlives the JSON */
    j->code = (int)json_integer_value(json_object_get(o, "code"));
    j->version = (int)json_integer_value(json_object_get(o, "version"));
    j->revision = json_integer_value(json_object_get(o, "case_revision"));
    j->event_seq = json_integer_value(json_object_get(o, "event_seq"));
    j->decided = true;
    j->replayed = true;
    free(j->outcome);
    j->outcome = render(o);
    json_decref(o);
    return CS_OK;
}

int cs_job_duplicate_of(cs_job *j, const char *original)
{
    json_t *o = json_loads(original, 0, NULL);
    json_int_t version, revision, seq;

    if (!o || !json_is_integer(json_object_get(o, "case_revision"))) {
        json_decref(o);
        return CS_ERR_INVALID;
    }
    version = json_integer_value(json_object_get(o, "version"));
    revision = json_integer_value(json_object_get(o, "case_revision"));
    seq = json_integer_value(json_object_get(o, "event_seq"));
    json_decref(o);
    cs_job_decide(j, "duplicate", 200, (int)version, revision, seq, NULL);
    return CS_OK;
}

const char *cs_job_result_key(const cs_job *j, size_t *len, char *buf, size_t size)
{
    if (j->sub && j->sub->case_reference > 0) {
        int n = snprintf(buf, size, "%" PRId64, j->sub->case_reference);

        *len = (size_t)n;
        return buf;
    }
    *len = j->msg ? j->msg->key_len : 0;
    return j->msg ? j->msg->key : NULL;
}

void cs_job_clear(cs_job *j)
{
    if (j->msg)
        rd_kafka_message_destroy(j->msg);
    cs_submission_free(j->sub);
    free(j->outcome);
    memset(j, 0, sizeof(*j));
}
