/* casestream workload: NDJSON submissions for demos, benchmarks and chaos runs.
 *
 * Each case gets a create and then events-1 more submissions: blob edits with
 * the right expected_version, stale edits that conflict, resubmissions of an
 * earlier key (duplicates), notes-only events and state changes. Cases are
 * interleaved (round k of every case, in shuffled case order, then round
 * k+1), so a case's submissions keep their order. The expected count of each
 * outcome goes to stderr as one JSON line.
 *
 * With --ccd every submission also carries what CCD records of an event (event_name, the user's
 * names, state_name, case_type_version, significant_item, proxied_by and its names, summary,
 * description), creates carry data_classification and a retention date, some blob edits
 * replace the classification, some state changes move the retention date, and some notes-only
 * events become supplementary data updates ($set of "orgs.<org>", $inc of "counters.views"):
 * all of them applied, so the expected counts are the same kinds. --expired N creates the last
 * N cases with a retention date in the past (DESIGN §10), which no later submission moves. */
#include "admin.h"
#include "envelope.h"
#include "uuid.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct wl_case {
    int64_t ref;
    int version;
    bool issued;     /* state Issued, else Submitted or AwaitingResponse */
    bool expired;    /* created past its retention date, which stays */
    char *last_line; /* the previous applied submission, for a resubmission */
} wl_case;

typedef struct wl_counts {
    long applied, conflict, duplicate;
} wl_counts;

/* A submission being written: the text so far and whether it still fits. */
typedef struct wl_line {
    char text[4096];
    size_t len;
} wl_line;

static unsigned next_rand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
}

__attribute__((format(printf, 2, 3))) static void add(wl_line *l, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(l->text + l->len, sizeof(l->text) - l->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(l->text) - l->len) {
        cs_log_error("workload: a submission is longer than %zu bytes", sizeof(l->text));
        exit(1);
    }
    l->len += (size_t)n;
}

static void emit(wl_case *c, const char *line, bool applied)
{
    fputs(line, stdout);
    fputc('\n', stdout);
    if (applied) {
        free(c->last_line);
        c->last_line = strdup(line);
    }
}

/* What CCD records of an event (--ccd): the event's and the user's names, the state's label, the
 * definition's version, sometimes a significant item and a proxy. */
static void ccd_event_fields(wl_line *l, const wl_case *c, unsigned *rnd, const char *event_name,
                             const char *state_name)
{
    unsigned user = next_rand(rnd) % 50;

    add(l,
        ",\"event_name\":\"%s\",\"user_first_name\":\"First%u\",\"user_last_name\":\"Last%u\","
        "\"state_name\":\"%s\",\"case_type_version\":%u,\"summary\":\"%s\","
        "\"description\":\"%s of case %" PRId64 " by the workload\"",
        event_name, user, user, state_name, 1 + next_rand(rnd) % 5, event_name, event_name, c->ref);
    if (next_rand(rnd) % 3 == 0)
        add(l,
            ",\"significant_item\":{\"type\":\"DOCUMENT\",\"description\":\"Form %u\","
            "\"url\":\"https://dm-store.example/documents/%" PRId64 "-%u\"}",
            next_rand(rnd) % 9, c->ref, next_rand(rnd) % 1000);
    if (next_rand(rnd) % 4 == 0)
        add(l,
            ",\"proxied_by\":\"proxy-%u\",\"proxied_by_first_name\":\"Pat\","
            "\"proxied_by_last_name\":\"Proxy%u\"",
            next_rand(rnd) % 9, next_rand(rnd) % 9);
}

/* A retention date that is not past: some day of 2031 to 2038. */
static void future_ttl(wl_line *l, unsigned *rnd)
{
    add(l, ",\"resolved_ttl\":\"%u-%02u-%02u\"", 2031 + next_rand(rnd) % 8, 1 + next_rand(rnd) % 12,
        1 + next_rand(rnd) % 28);
}

/* Writes submission k of case c. */
static void submission(const cs_config *cfg, const char *type, wl_case *c, int k, unsigned *rnd,
                       wl_counts *n)
{
    static const char *const cities[] = {"Leeds", "Bristol", "Cardiff", "York"};
    char key[37];
    int kind = k == 0 ? -1 : (int)(next_rand(rnd) % 10);
    wl_line l = {.len = 0};

    if (cs_uuid_generate(key)) {
        cs_log_error("workload: no randomness for UUIDs");
        exit(1);
    }
    add(&l, "{\"idempotency_key\":\"%s\",\"case_reference\":%" PRId64 ",\"case_type\":\"%s\"", key,
        c->ref, type);
    if (kind == -1) {
        add(&l,
            ",\"jurisdiction\":\"DIVORCE\",\"event_id\":\"create\",\"user_id\":\"user-%u\","
            "\"state\":\"Submitted\",%s\"data\":{\"applicant\":{\"name\":"
            "\"Applicant %" PRId64 "\",\"city\":\"%s\"},\"amount\":%u,\"step\":0}",
            next_rand(rnd) % 50, cfg->ccd ? "" : "\"summary\":\"new case\",", c->ref,
            cities[next_rand(rnd) % 4], next_rand(rnd) % 10000);
        if (c->expired)
            add(&l, ",\"resolved_ttl\":\"2020-01-31\"");
        if (cfg->ccd) {
            ccd_event_fields(&l, c, rnd, "Create case", "Case submitted");
            add(&l, ",\"data_classification\":{\"applicant\":\"PRIVATE\",\"amount\":\"PUBLIC\","
                    "\"step\":\"PUBLIC\"}");
            if (!c->expired)
                future_ttl(&l, rnd);
        }
        c->version = 1;
        n->applied++;
        add(&l, "}");
        emit(c, l.text, true);
    } else if (kind <= 3) { /* blob edit with the right expected version */
        add(&l,
            ",\"event_id\":\"updateApplication\",\"user_id\":\"user-%u\",\"expected_version\":%d,"
            "\"data_merge\":{\"step\":%d,\"amount\":%u}",
            next_rand(rnd) % 50, c->version, k, next_rand(rnd) % 10000);
        if (cfg->ccd) {
            ccd_event_fields(&l, c, rnd, "Update application",
                             c->issued ? "Case issued" : "Case submitted");
            if (kind == 3) /* a new classification: no change of version */
                add(&l, ",\"data_classification\":{\"applicant\":\"%s\",\"amount\":\"PRIVATE\"}",
                    next_rand(rnd) % 2 ? "PRIVATE" : "RESTRICTED");
        }
        c->version++;
        n->applied++;
        add(&l, "}");
        emit(c, l.text, true);
    } else if (kind == 4) { /* stale edit: conflicts */
        add(&l,
            ",\"event_id\":\"updateApplication\",\"user_id\":\"user-%u\",\"expected_version\":%d,"
            "\"data_merge\":{\"stale\":true}}",
            next_rand(rnd) % 50, c->version + 1);
        n->conflict++;
        emit(c, l.text, false);
    } else if (kind == 5 && c->last_line) { /* resubmission of the last applied */
        n->duplicate++;
        emit(c, c->last_line, false);
    } else if (cfg->ccd && kind == 7) { /* supplementary data: no version change */
        add(&l, ",\"event_id\":\"updateSupplementaryData\",\"user_id\":\"system\"");
        ccd_event_fields(&l, c, rnd, "Update supplementary data",
                         c->issued ? "Case issued" : "Case submitted");
        if (next_rand(rnd) % 2)
            add(&l,
                ",\"supplementary_data_updates\":{\"$set\":{\"orgs.org%u\":\"%s\"},"
                "\"$inc\":{\"counters.views\":%u}}}",
                next_rand(rnd) % 4, next_rand(rnd) % 2 ? "Y" : "N", 1 + next_rand(rnd) % 3);
        else
            add(&l, ",\"supplementary_data_updates\":{\"$inc\":{\"counters.views\":%u}}}",
                1 + next_rand(rnd) % 3);
        n->applied++;
        emit(c, l.text, true);
    } else if (kind <= 8) { /* notes only: no version change, no conflict */
        add(&l,
            ",\"event_id\":\"addNote\",\"user_id\":\"user-%u\",\"notes\":[{\"author\":"
            "\"caseworker-%u\",\"body\":\"called the applicant about step %d\"}]",
            next_rand(rnd) % 50, next_rand(rnd) % 9, k);
        if (cfg->ccd)
            ccd_event_fields(&l, c, rnd, "Add note", c->issued ? "Case issued" : "Case submitted");
        n->applied++;
        add(&l, "}");
        emit(c, l.text, true);
    } else { /* state change */
        add(&l, ",\"event_id\":\"issue\",\"user_id\":\"user-%u\",\"state\":\"%s\"",
            next_rand(rnd) % 50, c->issued ? "AwaitingResponse" : "Issued");
        if (cfg->ccd) {
            ccd_event_fields(&l, c, rnd, "Issue", c->issued ? "Awaiting response" : "Case issued");
            if (!c->expired && next_rand(rnd) % 2)
                future_ttl(&l, rnd); /* with the state: the version moves once */
        }
        c->issued = !c->issued; /* always a real change, so the version moves */
        c->version++;
        n->applied++;
        add(&l, "}");
        emit(c, l.text, true);
    }
}

int cs_admin_workload(const cs_config *cfg, int argc, char **argv)
{
    unsigned rnd = (unsigned)cfg->seed;
    wl_counts n = {0, 0, 0};
    const char *type = cfg->case_type[0] ? cfg->case_type : "NFD";
    char why[256];
    wl_case *cases;
    int *order;
    int64_t base;

    (void)argv;
    if (argc != 0) {
        cs_log_error("invalid configuration: usage: casestream workload [--cases N] [--events N] "
                     "[--base-ref R] [--seed S] [--case-type T] [--ccd] [--expired N]");
        return CS_EXIT_CONFIG;
    }
    if (!cs_case_type_check(type, strlen(type), why, sizeof(why))) {
        cs_log_error("invalid configuration: --case-type: %s", why);
        return CS_EXIT_CONFIG;
    }
    if (cfg->expired > cfg->cases) {
        cs_log_error("invalid configuration: --expired %d is more than the %d cases", cfg->expired,
                     cfg->cases);
        return CS_EXIT_CONFIG;
    }
    if (cfg->base_ref[0]) {
        char *end;

        errno = 0;
        base = strtoll(cfg->base_ref, &end, 10);
        if (errno || *end || base <= 0) {
            cs_log_error("invalid configuration: --base-ref must be a positive integer");
            return CS_EXIT_CONFIG;
        }
    } else {
        base = (int64_t)time(NULL) * 1000000; /* a fresh range every run */
    }
    cases = calloc((size_t)cfg->cases, sizeof(*cases));
    order = calloc((size_t)cfg->cases, sizeof(*order));
    for (int i = 0; i < cfg->cases; i++) {
        cases[i].ref = base + i;
        cases[i].expired = i >= cfg->cases - cfg->expired;
        order[i] = i;
    }
    for (int k = 0; k < cfg->events; k++) {
        for (int i = cfg->cases - 1; i > 0; i--) { /* shuffle the cases of this round */
            int j = (int)(next_rand(&rnd) % (unsigned)(i + 1)), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int i = 0; i < cfg->cases; i++)
            submission(cfg, type, &cases[order[i]], k, &rnd, &n);
    }
    fprintf(stderr,
            "{\"cases\":%d,\"first_reference\":%" PRId64 ",\"expired\":%d,\"submissions\":%ld,"
            "\"expected\":{\"applied\":%ld,\"conflict\":%ld,\"duplicate\":%ld}}\n",
            cfg->cases, base, cfg->expired, n.applied + n.conflict + n.duplicate, n.applied,
            n.conflict, n.duplicate);
    for (int i = 0; i < cfg->cases; i++)
        free(cases[i].last_line);
    free(cases);
    free(order);
    return fflush(stdout) == 0 ? 0 : 1;
}
