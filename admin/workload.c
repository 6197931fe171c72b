/* casestream workload: NDJSON submissions for demos, benchmarks and chaos runs.
 *
 * Each case gets a create and then events-1 more submissions: blob edits with
 * the right expected_version, stale edits that conflict, resubmissions of an
 * earlier key (duplicates), notes-only events and state changes. Cases are
 * interleaved (round k of every case, in shuffled case order, then round
 * k+1), so a case's submissions keep their order. The expected count of each
 * outcome goes to stderr as one JSON line. */
#include "admin.h"
#include "uuid.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct wl_case {
    int64_t ref;
    int version;
    bool issued;     /* state Issued, else Submitted or AwaitingResponse */
    char *last_line; /* the previous applied submission, for a resubmission */
} wl_case;

typedef struct wl_counts {
    long applied, conflict, duplicate;
} wl_counts;

static unsigned next_rand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
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

/* Writes submission k of case c. */
static void submission(wl_case *c, int k, unsigned *rnd, wl_counts *n)
{
    char key[37], line[1024];
    int kind = k == 0 ? -1 : (int)(next_rand(rnd) % 10);

    if (cs_uuid_generate(key)) {
        cs_log_error("workload: no randomness for UUIDs");
        exit(1);
    }
    if (kind == -1) {
        snprintf(line, sizeof(line),
                 "{\"idempotency_key\":\"%s\",\"case_reference\":%" PRId64
                 ",\"case_type\":\"NFD\",\"jurisdiction\":\"DIVORCE\",\"event_id\":\"create\","
                 "\"user_id\":\"user-%u\",\"state\":\"Submitted\",\"summary\":\"new case\","
                 "\"data\":{\"applicant\":{\"name\":\"Applicant %" PRId64 "\",\"city\":\"%s\"},"
                 "\"amount\":%u,\"step\":0}}",
                 key, c->ref, next_rand(rnd) % 50, c->ref,
                 (const char *[]){"Leeds", "Bristol", "Cardiff", "York"}[next_rand(rnd) % 4],
                 next_rand(rnd) % 10000);
        c->version = 1;
        n->applied++;
        emit(c, line, true);
    } else if (kind <= 3) { /* blob edit with the right expected version */
        snprintf(
            line, sizeof(line),
            "{\"idempotency_key\":\"%s\",\"case_reference\":%" PRId64
            ",\"case_type\":\"NFD\",\"event_id\":\"updateApplication\",\"user_id\":\"user-%u\","
            "\"expected_version\":%d,\"data_merge\":{\"step\":%d,\"amount\":%u}}",
            key, c->ref, next_rand(rnd) % 50, c->version, k, next_rand(rnd) % 10000);
        c->version++;
        n->applied++;
        emit(c, line, true);
    } else if (kind == 4) { /* stale edit: conflicts */
        snprintf(
            line, sizeof(line),
            "{\"idempotency_key\":\"%s\",\"case_reference\":%" PRId64
            ",\"case_type\":\"NFD\",\"event_id\":\"updateApplication\",\"user_id\":\"user-%u\","
            "\"expected_version\":%d,\"data_merge\":{\"stale\":true}}",
            key, c->ref, next_rand(rnd) % 50, c->version + 1);
        n->conflict++;
        emit(c, line, false);
    } else if (kind == 5 && c->last_line) { /* resubmission of the last applied */
        n->duplicate++;
        emit(c, c->last_line, false);
    } else if (kind <= 8) { /* notes only: no version change, no conflict */
        snprintf(line, sizeof(line),
                 "{\"idempotency_key\":\"%s\",\"case_reference\":%" PRId64
                 ",\"case_type\":\"NFD\",\"event_id\":\"addNote\",\"user_id\":\"user-%u\","
                 "\"notes\":[{\"author\":\"caseworker-%u\",\"body\":\"called the applicant about "
                 "step %d\"}]}",
                 key, c->ref, next_rand(rnd) % 50, next_rand(rnd) % 9, k);
        n->applied++;
        emit(c, line, true);
    } else { /* state change */
        snprintf(line, sizeof(line),
                 "{\"idempotency_key\":\"%s\",\"case_reference\":%" PRId64
                 ",\"case_type\":\"NFD\",\"event_id\":\"issue\",\"user_id\":\"user-%u\","
                 "\"state\":\"%s\"}",
                 key, c->ref, next_rand(rnd) % 50, c->issued ? "AwaitingResponse" : "Issued");
        c->issued = !c->issued; /* always a real change, so the version moves */
        c->version++;
        n->applied++;
        emit(c, line, true);
    }
}

int cs_admin_workload(const cs_config *cfg, int argc, char **argv)
{
    unsigned rnd = (unsigned)cfg->seed;
    wl_counts n = {0, 0, 0};
    wl_case *cases;
    int *order;
    int64_t base;

    (void)argv;
    if (argc != 0) {
        cs_log_error("invalid configuration: usage: casestream workload [--cases N] [--events N] "
                     "[--base-ref R] [--seed S]");
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
        order[i] = i;
    }
    for (int k = 0; k < cfg->events; k++) {
        for (int i = cfg->cases - 1; i > 0; i--) { /* shuffle the cases of this round */
            int j = (int)(next_rand(&rnd) % (unsigned)(i + 1)), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int i = 0; i < cfg->cases; i++)
            submission(&cases[order[i]], k, &rnd, &n);
    }
    fprintf(stderr,
            "{\"cases\":%d,\"first_reference\":%" PRId64 ",\"submissions\":%ld,"
            "\"expected\":{\"applied\":%ld,\"conflict\":%ld,\"duplicate\":%ld}}\n",
            cfg->cases, base, n.applied + n.conflict + n.duplicate, n.applied, n.conflict,
            n.duplicate);
    for (int i = 0; i < cfg->cases; i++)
        free(cases[i].last_line);
    free(cases);
    free(order);
    return fflush(stdout) == 0 ? 0 : 1;
}
