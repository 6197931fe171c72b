/* A job's decision and its outcome (DESIGN §4), rendered by lib/outcome, identical whenever it
 * is sent again. */
#include "job.h"

#include "err.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keeps the rendering of o as the job's outcome; false when out of memory. */
static bool keep_rendered(cs_job *j, const cs_outcome *o)
{
    char *text = cs_outcome_render(o);

    if (!text)
        return false;
    free(j->outcome);
    j->outcome = text;
    return true;
}

void cs_job_outcome(const cs_job *j, cs_outcome *o)
{
    const cs_submission *s = j->sub;

    memset(o, 0, sizeof(*o));
    if (s)
        memcpy(o->idempotency_key, s->idempotency_key, sizeof(o->idempotency_key));
    o->case_reference = s ? s->case_reference : 0;
    o->status = j->status;
    o->code = j->code;
    o->version = j->version;
    o->revision = j->revision;
    o->event_seq = j->event_seq;
    o->supplementary_data = j->supplementary_data;
    o->source_partition = j->partition;
    o->source_offset = j->offset;
}

/* Keeps a copy of supplementary (NULL: none) as the job's; false when out of memory. */
static bool keep_supplementary(cs_job *j, const char *supplementary)
{
    char *copy = supplementary ? strdup(supplementary) : NULL;

    if (supplementary && !copy)
        return false;
    free(j->supplementary_data);
    j->supplementary_data = copy;
    return true;
}

/* One decision; supplementary is NULL but for a supplementary update's applied or duplicate
 * outcome. */
static int decide(cs_job *j, cs_status status, int version, int64_t revision, int64_t event_seq,
                  const char *error, const char *supplementary)
{
    cs_outcome o;

    if (!keep_supplementary(j, supplementary))
        return CS_ERR;
    cs_job_outcome(j, &o); /* the key, the reference, the position, the supplementary data */
    o.status = status;
    o.code = cs_status_code(status, status == CS_STATUS_APPLIED && revision == 1);
    o.version = version;
    o.revision = revision;
    o.event_seq = event_seq;
    o.error = error;
    if (!keep_rendered(j, &o))
        return CS_ERR;
    j->decided = true;
    j->status = status;
    j->code = o.code;
    j->version = version;
    j->revision = revision;
    j->event_seq = event_seq;
    return CS_OK;
}

int cs_job_decide(cs_job *j, cs_status status, int version, int64_t revision, int64_t event_seq,
                  const char *error)
{
    return decide(j, status, version, revision, event_seq, error, NULL);
}

int cs_job_decide_supplementary(cs_job *j, cs_status status, int version, int64_t revision,
                                int64_t event_seq, const char *supplementary)
{
    return decide(j, status, version, revision, event_seq, NULL, supplementary);
}

int cs_job_replay(cs_job *j, const cs_outcome *o)
{
    cs_outcome wire = *o;

    wire.payload_sha256[0] = '\0'; /* a member of the Redis entry, not of the outcome */
    if (!keep_rendered(j, &wire) || !keep_supplementary(j, o->supplementary_data))
        return CS_ERR;
    j->status = o->status;
    j->code = o->code;
    j->version = o->version;
    j->revision = o->revision;
    j->event_seq = o->event_seq;
    j->decided = true;
    j->replayed = true;
    return CS_OK;
}

int cs_job_decide_refused(cs_job *j)
{
    return cs_job_decide(j, j->verdict == CS_INVALID ? CS_STATUS_INVALID : CS_STATUS_REJECTED, 0, 0,
                         0, j->reason);
}

bool cs_job_dead_letter(const cs_job *j)
{
    /* verdict is the validator's alone: a job decided later keeps CS_VALID. */
    return j->decided && (j->status == CS_STATUS_INVALID ||
                          (j->status == CS_STATUS_REJECTED && j->verdict == CS_REJECTED));
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

void cs_job_undecide(cs_job *j)
{
    free(j->outcome);
    free(j->supplementary_data);
    j->outcome = j->supplementary_data = NULL;
    j->decided = j->applied = j->replayed = false;
}

void cs_job_clear(cs_job *j)
{
    if (j->msg)
        rd_kafka_message_destroy(j->msg);
    cs_submission_free(j->sub);
    free(j->outcome);
    free(j->supplementary_data);
    memset(j, 0, sizeof(*j));
}
