/* casestream-produce: read NDJSON, validate, send at a rate, match outcomes, report. */
#include "produce.h"

#include "err.h"
#include "log.h"
#include "outcome.h"
#include "producer.h"
#include "run.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

const char cs_produce_synopsis[] = "casestream-produce [OPTION]... [FILE|-]...";

const char cs_produce_description[] =
    "Publishes case event submissions, one JSON object per line (NDJSON), from the\n"
    "FILEs or from standard input (\"-\" or no FILE), onto the events topic.\n"
    "\n"
    "Every line is checked by the worker's own validator first; an invalid line\n"
    "is reported on stderr as FILE:LINE: reason and is not sent. Blank lines are\n"
    "skipped. The Kafka key is the case reference in decimal, taken from the\n"
    "line's case_reference, and the partition is the Java client's (murmur2), so\n"
    "every producer puts a case on the same partition. The producer is\n"
    "idempotent with acks=all. --gen-key fills in a missing idempotency_key with\n"
    "a random UUID; without it a missing key makes the line invalid.\n"
    "\n"
    "On a terminal, stderr shows sent/failed/rate every 0.5 s; at the end a summary\n"
    "line (read, invalid, sent, delivered, failed, rate) is always printed.\n"
    "\n"
    "--wait starts reading the results topic at its current end before sending,\n"
    "then prints one JSON line per sent submission on stdout, in input order: the\n"
    "outcome as the worker wrote it, {\"case_reference\":..,\"idempotency_key\":..,\n"
    "\"status\":\"timeout\"} if none came within SECONDS of the last delivery, or\n"
    "status \"failed\" if the message was not delivered; then a count by status on\n"
    "stderr. Outcomes are matched by case reference, idempotency key and the\n"
    "partition/offset the message was written at, so a key sent twice gets two.\n"
    "\n"
    "Exit status: 0 everything delivered (and answered, with --wait); 1 a line\n"
    "invalid or not delivered, unreadable input or Kafka unreachable; 2 an outcome\n"
    "timed out; 78 invalid configuration.\n"
    "\n"
    "Example:\n"
    "  casestream-produce --gen-key --wait=30 cases.ndjson > outcomes.ndjson\n"
    "  echo '{\"case_reference\":1616161616161616,\"case_type\":\"NFD\",\"jurisdiction\":"
    "\"DIVORCE\",\"event_id\":\"create\",\"user_id\":\"u1\",\"state\":\"Submitted\","
    "\"data\":{\"applicant\":\"Ann\"}}' | casestream-produce --gen-key --wait -";

#define PROG                 "casestream-produce: "
#define PROGRESS_INTERVAL_MS 500
#define CHECK_TIMEOUT_MS     10000
#define STOP_FLUSH_MS        10000
#define LOGGED_FAILURES      10

enum { REC_PENDING, REC_DELIVERED, REC_FAILED };

/* What --wait remembers of each message sent, in input order. */
typedef struct sent_rec {
    int64_t ref;
    char key[37];
    int state;
    int32_t partition;
    int64_t offset;
    char *reason;  /* why delivery failed; owned */
    char *outcome; /* outcome JSON as received; owned */
} sent_rec;

typedef struct run {
    const cs_config *cfg;
    FILE *out, *err;
    cs_producer *p;
    bool progress; /* stderr is a terminal: keep a progress line */
    bool progress_shown;
    bool wait;
    bool failed; /* input unreadable, a send refused, or interrupted */
    uint64_t read, invalid, not_sent, logged_failures;
    /* --wait */
    sent_rec *recs;
    size_t nrecs, recs_cap;
    size_t *index; /* open addressing on (partition, offset): rec index + 1 */
    size_t index_mask;
    /* timing, progress and --rate */
    long long start_us, last_progress_ms;
    uint64_t last_progress_count;
    double tokens;
    long long bucket_us;
} run;

/* Writes a log line on err (a message starting with PROG is an error; the line names the
 * program anyway), first clearing the progress line if one is shown. */
__attribute__((format(printf, 2, 3))) static void say(run *r, const char *fmt, ...)
{
    char message[CS_LOG_LINE_MAX], line[CS_LOG_LINE_MAX + 64];
    bool error;
    va_list ap;

    if (r->progress_shown) {
        fputs("\r\033[K", r->err);
        r->progress_shown = false;
    }
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    error = strncmp(message, PROG, strlen(PROG)) == 0;
    cs_log_line(line, sizeof(line), error ? CS_LOG_ERROR : CS_LOG_INFO,
                error ? message + strlen(PROG) : message);
    fputs(line, r->err);
}

static void progress(run *r, bool waiting, uint64_t answered)
{
    cs_producer_counts c;
    long long now;
    double secs, rate;

    if (!r->progress || !r->p)
        return;
    now = cs_now_ms();
    if (now - r->last_progress_ms < PROGRESS_INTERVAL_MS)
        return;
    cs_producer_get_counts(r->p, &c);
    secs = (double)(now - r->last_progress_ms) / 1000.0;
    rate = r->last_progress_ms ? (double)(c.delivered - r->last_progress_count) / secs : 0;
    if (waiting)
        fprintf(r->err, "\r\033[Koutcomes=%" PRIu64 "/%" PRIu64 " failed=%" PRIu64, answered,
                c.delivered, c.failed);
    else
        fprintf(r->err, "\r\033[Ksent=%" PRIu64 " failed=%" PRIu64 " rate=%.0f/s", c.sent,
                c.failed + r->not_sent, rate);
    fflush(r->err);
    r->progress_shown = true;
    r->last_progress_ms = now;
    r->last_progress_count = c.delivered;
}

static void on_delivery(void *ctx, const cs_delivery *d)
{
    run *r = ctx;
    sent_rec *rec;

    if (d->err && r->logged_failures++ < LOGGED_FAILURES)
        say(r, PROG "delivery failed: case=%.*s: %s%s", (int)d->key_len, d->key, d->reason,
            r->logged_failures == LOGGED_FAILURES ? " (further failures are only counted)" : "");
    if (!d->opaque)
        return;
    rec = &r->recs[(uintptr_t)d->opaque - 1];
    rec->state = d->err ? REC_FAILED : REC_DELIVERED;
    rec->partition = d->partition;
    rec->offset = d->offset;
    if (d->err)
        rec->reason = strdup(d->reason ? d->reason : "not delivered");
}

/* --rate: a token bucket holding at most 50 ms of tokens, so the rate stays
 * steady; waiting serves delivery reports. */
static void throttle(run *r)
{
    double rate = r->cfg->rate, burst = rate / 20.0 < 1.0 ? 1.0 : rate / 20.0;

    if (r->cfg->rate <= 0)
        return;
    while (cs_running) {
        long long now = cs_now_us(), wait_us;

        r->tokens += (double)(now - r->bucket_us) * rate / 1e6;
        r->bucket_us = now;
        if (r->tokens > burst)
            r->tokens = burst;
        if (r->tokens >= 1.0) {
            r->tokens -= 1.0;
            return;
        }
        wait_us = (long long)((1.0 - r->tokens) * 1e6 / rate) + 1;
        if (wait_us >= 1000) {
            cs_producer_poll(r->p, (int)(wait_us / 1000));
        } else {
            struct timespec ts = {0, (long)wait_us * 1000L};

            nanosleep(&ts, NULL);
        }
        progress(r, false, 0);
    }
}

static void send_one(run *r, const cs_prepared *m, const char *name, uint64_t lineno)
{
    char why[256];
    void *opaque = NULL;
    int rc;

    throttle(r);
    if (!cs_running)
        return;
    if (r->wait) {
        if (r->nrecs == r->recs_cap) {
            size_t cap = r->recs_cap ? r->recs_cap * 2 : 1024;
            sent_rec *recs = realloc(r->recs, cap * sizeof(*recs));

            if (!recs) {
                say(r, "%s:%" PRIu64 ": not sent: out of memory", name, lineno);
                r->not_sent++;
                return;
            }
            r->recs = recs;
            r->recs_cap = cap;
        }
        r->recs[r->nrecs] = (sent_rec){m->case_reference, "", REC_PENDING, -1, -1, NULL, NULL};
        memcpy(r->recs[r->nrecs].key, m->idempotency_key, sizeof(m->idempotency_key));
        opaque = (void *)(uintptr_t)(r->nrecs + 1);
    }
    /* A full queue drains as the brokers acknowledge; wait for it. */
    while ((rc = cs_producer_send(r->p, m, opaque, why, sizeof(why))) == CS_ERR_RETRY &&
           cs_running) {
        cs_producer_poll(r->p, 100);
        progress(r, false, 0);
    }
    if (rc == CS_OK) {
        if (r->wait)
            r->nrecs++;
    } else if (cs_running) {
        say(r, "%s:%" PRIu64 ": not sent: %s", name, lineno, why);
        r->not_sent++;
        if (rc == CS_ERR) /* the producer is unusable: stop reading */
            r->failed = true;
    }
    cs_producer_poll(r->p, 0);
}

static void produce_stream(run *r, const char *name, FILE *f)
{
    size_t max_bytes = (size_t)r->cfg->max_message_bytes;
    char *line = NULL, why[512];
    size_t cap = 0;
    uint64_t lineno = 0;
    ssize_t n;

    while (cs_running && !r->failed && (n = getline(&line, &cap, f)) >= 0) {
        cs_prepared m;
        size_t len = (size_t)n;

        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (strspn(line, " \t") >= len)
            continue;
        r->read++;
        if (cs_producer_prepare(line, len, r->cfg->gen_key, max_bytes, &m, why, sizeof(why))) {
            say(r, "%s:%" PRIu64 ": invalid: %s", name, lineno, why);
            r->invalid++;
            continue;
        }
        if (!r->cfg->dry_run)
            send_one(r, &m, name, lineno);
        cs_prepared_clear(&m);
        progress(r, false, 0);
    }
    if (ferror(f)) {
        say(r, PROG "%s: read error: %s", name, strerror(errno));
        r->failed = true;
    }
    free(line);
}

/* Waits for every queued message; after a stop signal, for STOP_FLUSH_MS more. */
static void drain(run *r)
{
    long long stop_deadline = 0;

    while (cs_producer_in_flight(r->p) > 0) {
        if (!cs_running && !stop_deadline)
            stop_deadline = cs_now_ms() + STOP_FLUSH_MS;
        if (stop_deadline && cs_now_ms() >= stop_deadline) {
            say(r, PROG "stopped with %d messages unconfirmed", cs_producer_in_flight(r->p));
            r->not_sent += (uint64_t)cs_producer_in_flight(r->p);
            r->failed = true;
            break;
        }
        cs_producer_flush(r->p, 100);
        progress(r, false, 0);
    }
}

/* --- --wait ------------------------------------------------------------------ */

static size_t slot_of(const run *r, int32_t partition, int64_t offset)
{
    uint64_t h = (uint64_t)offset * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uint32_t)partition;

    return (size_t)(h ^ h >> 29) & r->index_mask;
}

/* Indexes the delivered messages by (partition, offset). */
static bool build_index(run *r)
{
    size_t size = 16;

    while (size < r->nrecs * 2)
        size *= 2;
    if (!(r->index = calloc(size, sizeof(*r->index))))
        return false;
    r->index_mask = size - 1;
    for (size_t i = 0; i < r->nrecs; i++) {
        size_t s;

        if (r->recs[i].state != REC_DELIVERED)
            continue;
        for (s = slot_of(r, r->recs[i].partition, r->recs[i].offset); r->index[s];
             s = (s + 1) & r->index_mask)
            ;
        r->index[s] = i + 1;
    }
    return true;
}

/* The message an outcome answers, or NULL. With a source (always, per DESIGN
 * §4) the position decides and the reference and key must agree; without
 * one, the first unanswered message with that reference and key. */
static sent_rec *match(run *r, const cs_outcome *o)
{
    if (o->source_partition >= 0 && o->source_offset >= 0) {
        for (size_t s = slot_of(r, o->source_partition, o->source_offset); r->index[s];
             s = (s + 1) & r->index_mask) {
            sent_rec *rec = &r->recs[r->index[s] - 1];

            if (rec->partition == o->source_partition && rec->offset == o->source_offset)
                return rec->ref == o->case_reference && strcmp(rec->key, o->idempotency_key) == 0
                           ? rec
                           : NULL;
        }
        return NULL;
    }
    for (size_t i = 0; i < r->nrecs; i++) {
        sent_rec *rec = &r->recs[i];

        if (rec->state == REC_DELIVERED && !rec->outcome && rec->ref == o->case_reference &&
            strcmp(rec->key, o->idempotency_key) == 0)
            return rec;
    }
    return NULL;
}

/* Prints v as one line on out and frees it. */
static void print_json(run *r, json_t *v)
{
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;

    if (text)
        fprintf(r->out, "%s\n", text);
    free(text);
    json_decref(v);
}

static void print_outcome(run *r, const sent_rec *rec)
{
    /* Keep the worker's bytes unless they span lines. */
    if (!strchr(rec->outcome, '\n') && !strchr(rec->outcome, '\r'))
        fprintf(r->out, "%s\n", rec->outcome);
    else
        print_json(r, json_loads(rec->outcome, 0, NULL));
}

typedef struct status_count {
    char name[16];
    uint64_t n;
} status_count;

static void count_status(status_count *counts, size_t *n, size_t max, const char *name)
{
    size_t i;

    for (i = 0; i < *n && strcmp(counts[i].name, name) != 0; i++)
        ;
    if (i == *n) {
        if (*n == max) { /* many odd statuses: lump the rest together */
            i = max - 1;
            name = "other";
        } else {
            (*n)++;
            counts[i].n = 0;
        }
        snprintf(counts[i].name, sizeof(counts[i].name), "%s", name);
    }
    counts[i].n++;
}

static void wait_outcomes(run *r, cs_produce_stats *st)
{
    status_count counts[16];
    size_t ncounts = 0, pos = 0;
    uint64_t pending = 0, answered = 0;
    long long deadline = cs_now_ms() + (long long)r->cfg->wait_seconds * 1000;
    char why[256], line[1024];

    for (size_t i = 0; i < r->nrecs; i++)
        pending += r->recs[i].state == REC_DELIVERED;
    if (!build_index(r)) {
        say(r, PROG "out of memory");
        r->failed = true;
        return;
    }
    while (pending > 0 && cs_running) {
        long long left = deadline - cs_now_ms();
        cs_outcome *o;
        sent_rec *rec;

        if (left <= 0)
            break;
        if (cs_producer_next_outcome(r->p, left < 200 ? (int)left : 200, &o, why, sizeof(why))) {
            say(r, PROG "%s", why);
            break;
        }
        if (o && (rec = match(r, o)) && !rec->outcome) {
            /* At least once on the wire: the first copy counts. */
            rec->outcome = o->json;
            o->json = NULL;
            pending--;
            answered++;
        }
        cs_outcome_free(o);
        progress(r, true, answered);
    }
    for (size_t i = 0; i < r->nrecs; i++) {
        sent_rec *rec = &r->recs[i];
        const char *status;

        if (rec->outcome) {
            cs_outcome *o = NULL;

            print_outcome(r, rec);
            cs_outcome_parse(rec->outcome, strlen(rec->outcome), &o);
            status = o ? cs_status_name(o->status) : "unknown";
            count_status(counts, &ncounts, 16, status);
            cs_outcome_free(o);
            continue;
        }
        status = rec->state == REC_FAILED ? "failed" : "timeout";
        if (rec->state == REC_FAILED)
            print_json(r, json_pack("{sIsssss?}", "case_reference", (json_int_t)rec->ref,
                                    "idempotency_key", rec->key, "status", status, "error",
                                    rec->reason));
        else
            print_json(r, json_pack("{sIssss}", "case_reference", (json_int_t)rec->ref,
                                    "idempotency_key", rec->key, "status", status));
        count_status(counts, &ncounts, 16, status);
        if (rec->state != REC_FAILED)
            st->timeouts++;
    }
    fflush(r->out);
    st->outcomes = answered;
    pos = (size_t)snprintf(line, sizeof(line), "outcomes:");
    for (size_t i = 0; i < ncounts && pos < sizeof(line); i++)
        pos += (size_t)snprintf(line + pos, sizeof(line) - pos, " %s=%" PRIu64, counts[i].name,
                                counts[i].n);
    say(r, "%s", ncounts ? line : "outcomes: none (nothing was sent)");
}

/* --- the run --------------------------------------------------------------- */

static int open_inputs_check(run *r)
{
    for (size_t i = 0; i < r->cfg->args_count; i++) {
        const char *name = r->cfg->args[i];
        FILE *f;

        if (strcmp(name, "-") == 0)
            continue;
        if (!(f = fopen(name, "r"))) {
            say(r, PROG "%s: %s", name, strerror(errno));
            return CS_ERR;
        }
        fclose(f);
    }
    return CS_OK;
}

static void read_inputs(run *r)
{
    if (r->cfg->args_count == 0) {
        produce_stream(r, "<stdin>", stdin);
        return;
    }
    for (size_t i = 0; i < r->cfg->args_count && cs_running && !r->failed; i++) {
        const char *name = r->cfg->args[i];
        FILE *f;

        if (strcmp(name, "-") == 0) {
            produce_stream(r, "<stdin>", stdin);
            continue;
        }
        if (!(f = fopen(name, "r"))) {
            say(r, PROG "%s: %s", name, strerror(errno));
            r->failed = true;
            break;
        }
        produce_stream(r, name, f);
        fclose(f);
    }
}

static void summary(run *r, cs_produce_stats *st)
{
    double rate = st->seconds > 0 ? (double)st->delivered / st->seconds : 0;

    if (r->cfg->dry_run) {
        say(r,
            "dry run: read=%" PRIu64 " invalid=%" PRIu64 " valid=%" PRIu64 " sent=0 elapsed=%.3fs",
            st->read, st->invalid, st->read - st->invalid, st->seconds);
        return;
    }
    say(r,
        "read=%" PRIu64 " invalid=%" PRIu64 " sent=%" PRIu64 " delivered=%" PRIu64
        " failed=%" PRIu64 " elapsed=%.3fs rate=%.0f/s",
        st->read, st->invalid, st->sent, st->delivered, st->failed, st->seconds, rate);
}

int cs_produce_run(const cs_config *cfg, FILE *out, FILE *err, cs_produce_stats *stats)
{
    cs_producer_opts opts = CS_PRODUCER_OPTS_INIT;
    cs_produce_stats st;
    cs_producer_counts c = {0, 0, 0};
    char why[512];
    run r;
    int rc, status = 0;

    memset(&r, 0, sizeof(r));
    memset(&st, 0, sizeof(st));
    r.cfg = cfg;
    r.out = out;
    r.err = err;
    r.progress = isatty(fileno(err));
    r.wait = cfg->wait_seconds >= 0 && !cfg->dry_run;
    if (open_inputs_check(&r)) {
        status = CS_PRODUCE_EXIT_FAILED;
        goto cleanup;
    }
    if (!cfg->dry_run) {
        opts.on_delivery = on_delivery;
        opts.ctx = &r;
        if ((rc = cs_producer_open(cfg, &opts, &r.p, why, sizeof(why)))) {
            say(&r, PROG "%s", why);
            status = rc == CS_ERR_INVALID ? CS_EXIT_CONFIG : CS_PRODUCE_EXIT_FAILED;
            goto cleanup;
        }
        /* Fail fast, rather than after message.timeout.ms, if Kafka or the
         * topic is not there. */
        if ((rc = cs_producer_check(r.p, CHECK_TIMEOUT_MS, why, sizeof(why))) < 0) {
            say(&r, PROG "%s", why);
            status = CS_PRODUCE_EXIT_FAILED;
            goto cleanup;
        }
        if (r.wait && (rc = cs_producer_watch_results(r.p, CHECK_TIMEOUT_MS, why, sizeof(why)))) {
            say(&r, PROG "could not read outcomes from %s: %s", cfg->topic_results, why);
            status = rc == CS_ERR_INVALID ? CS_EXIT_CONFIG : CS_PRODUCE_EXIT_FAILED;
            goto cleanup;
        }
    }
    r.start_us = r.bucket_us = cs_now_us();
    r.tokens = 1.0;
    read_inputs(&r);
    if (!cs_running) {
        say(&r, PROG "stopped by a signal before the end of the input");
        r.failed = true;
    }
    if (r.p) {
        drain(&r);
        cs_producer_get_counts(r.p, &c);
    }
    st.read = r.read;
    st.invalid = r.invalid;
    st.sent = c.sent;
    st.delivered = c.delivered;
    st.failed = c.failed + r.not_sent;
    st.seconds = (double)(cs_now_us() - r.start_us) / 1e6;
    summary(&r, &st);
    if (r.wait)
        wait_outcomes(&r, &st);
    if (r.failed || st.invalid || st.failed)
        status = CS_PRODUCE_EXIT_FAILED;
    else if (st.timeouts)
        status = CS_PRODUCE_EXIT_TIMEOUT;
cleanup:
    fflush(err);
    cs_producer_free(r.p);
    for (size_t i = 0; i < r.nrecs; i++) {
        free(r.recs[i].reason);
        free(r.recs[i].outcome);
    }
    free(r.recs);
    free(r.index);
    if (stats)
        *stats = st;
    return status;
}
