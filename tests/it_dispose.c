/* Integration tests of retention and disposal (DESIGN §10) against the real services: dispose
 * removes exactly the cases past their retention from PostgreSQL, Redis and Elasticsearch, a
 * late change does not bring a document back, a submission for a disposed case is rejected,
 * --dry-run deletes nothing, --limit stops after N, and a case whose retention date moved while
 * dispose waited for its lock is kept.
 *
 * Each test runs the worker and the indexer on topics and groups of its own (tests/it_world.h),
 * with a case type of its own, so an index of its own. */
#include "it_world.h"
#include "runner.h"

#include "err.h"
#include "es.h"
#include "idem.h"
#include "run.h"

#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_EXPIRED   1000
#define N_LIVE      1000
#define N_CONFLICTS 10
#define EXPIRED_TTL "2020-01-01"

/* --- helpers --------------------------------------------------------------------------------- */

/* The conninfo of the role `casestream dispose` runs as (README: casestream_worker). */
static const char *worker_pg(void)
{
    const char *pg = getenv("CASESTREAM_WORKER_PG");

    return pg && pg[0] ? pg : it_config()->pg;
}

/* A file's text (caller frees); "" when it cannot be read. */
static char *file_text(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long size;

    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)size + 1);
    size = (long)fread(buf, 1, (size_t)size, f);
    buf[size] = '\0';
    fclose(f);
    return buf;
}

static size_t count_lines(const char *text)
{
    size_t n = 0;

    for (const char *p = text; *p; p++)
        n += *p == '\n';
    return n;
}

/* Runs `casestream dispose` as the worker's role for the world's topics and case type,
 * with extra flags (NULL-terminated); returns its exit status, its stdout and stderr (the
 * caller frees both). */
static int run_dispose(const char *type, const char *const *extra, char **out, char **err)
{
    char pg[512], topic[200], events[200], ctype[200], out_path[256], err_path[256];
    const char *args[16] = {pg, topic, events, ctype};
    int n = 4, rc;

    snprintf(pg, sizeof(pg), "--pg=%s", worker_pg());
    snprintf(topic, sizeof(topic), "--topic-changes=%s", W.changes[0] ? W.changes : "none");
    snprintf(events, sizeof(events), "--topic-events=%s", W.events[0] ? W.events : "none");
    snprintf(ctype, sizeof(ctype), "--case-type=%s", type);
    for (int i = 0; extra && extra[i] && n < 14; i++)
        args[n++] = extra[i];
    args[n++] = "dispose";
    args[n] = NULL;
    snprintf(out_path, sizeof(out_path), "build/it-logs/dispose-%d.out", (int)getpid());
    snprintf(err_path, sizeof(err_path), "build/it-logs/dispose-%d.err", (int)getpid());
    rc = it_run("casestream", args, NULL, out_path, err_path);
    *out = file_text(out_path);
    *err = file_text(err_path);
    return rc;
}

/* Asserts dispose's summary says disposed, kept and failed. */
static void assert_summary(const char *err, long long disposed, long long kept, long long failed)
{
    char want[128];

    snprintf(want, sizeof(want), "disposed=%lld kept=%lld failed=%lld ", disposed, kept, failed);
    ck_assert_msg(strstr(err, want) != NULL, "dispose said:\n%s\nexpected \"%s\"", err, want);
}

/* The first column of the first row of a query as text (caller frees; NULL for none). */
__attribute__((format(printf, 1, 2))) static char *sql_text(const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    PGresult *res;
    char *v = NULL;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    res = query("%s", sql);
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        v = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

/* How many of the Redis idempotency entries of planned messages [from, to) that applied, for
 * cases lo..hi, are there. */
static long long redis_entries(size_t from, size_t to, int64_t lo, int64_t hi)
{
    char errstr[512];
    cs_idem *c = cs_idem_new(it_config()->redis, NULL, 60, errstr, sizeof(errstr));
    int64_t *refs = calloc(to - from + 1, sizeof(*refs));
    const char **keys = calloc(to - from + 1, sizeof(*keys));
    char **out = calloc(to - from + 1, sizeof(*out));
    size_t n = 0;
    long long found = 0;

    ck_assert_ptr_nonnull(c);
    for (size_t i = from; i < to; i++) {
        const planned *p = &W.plan[i];

        if (p->ref < lo || p->ref > hi || strcmp(p->status, "applied") != 0)
            continue;
        refs[n] = p->ref;
        keys[n++] = p->key;
    }
    ck_assert_msg(cs_idem_get(c, n, refs, keys, out, errstr, sizeof(errstr)) == CS_OK, "%s",
                  errstr);
    for (size_t i = 0; i < n; i++) {
        found += out[i] != NULL;
        free(out[i]);
    }
    free(out);
    free((void *)keys);
    free(refs);
    cs_idem_free(c);
    return found;
}

/* Starts an indexer on the world's changes topic with a group of its own. */
static pid_t indexer_start(char *group, size_t size)
{
    char topic[200], grp[300];
    const char *args[] = {topic, grp, "--metrics-port=0", "--bulk-linger-ms=50", NULL};
    char *u = it_unique("it-dispose-indexer");

    snprintf(group, size, "%s", u);
    free(u);
    snprintf(topic, sizeof(topic), "--topic-changes=%s", W.changes);
    snprintf(grp, sizeof(grp), "--indexer-group=%s", group);
    return it_spawn("casestream-indexer", args, NULL);
}

/* Waits until the indexer group has committed every message of the changes topic. */
static void wait_indexed(const char *group)
{
    long long end = it_topic_end(W.changes), done = 0, deadline = cs_now_ms() + CATCH_UP_MS;

    while ((done = it_group_committed(group, W.changes)) < end && cs_now_ms() < deadline)
        usleep(250 * 1000);
    ck_assert_msg(done == end, "indexer group %s committed %lld of %lld changes", group, done, end);
}

/* --- the tests ------------------------------------------------------------------------------ */

/* 1,000 cases past their retention among 1,000 that are not (half with a later date, half
 * with none): --dry-run lists exactly the 1,000 and deletes nothing, --limit 10 disposes of
 * 10, and a full run of the rest; what is left in PostgreSQL, Redis and Elasticsearch is
 * exactly the live cases, and the disposed ones keep a record and a disposal document. A
 * change of a disposed case published after its disposal document, at a lower revision, does
 * not bring its document back; submissions for disposed cases are rejected naming the day. */
START_TEST(test_dispose_removes_exactly_the_expired_cases_everywhere)
{
    char *type = it_unique("ItDispose"), index[300], group[200], *out, *err, *today, *reason;
    const char *dry[] = {"--dry-run", NULL}, *ten[] = {"--limit=10", NULL};
    int64_t first_live, last_expired;
    size_t initial, late_from;
    outcome *o;
    size_t n;
    pid_t worker, indexer;

    ck_assert(cs_es_index_name(type, index, sizeof(index)));
    world_new("dispose", 6);
    /* Expired cases first: lo..last_expired; live ones after. Each expired case has two
     * events (the second with a note), each live one a create with a note. */
    for (int i = 0; i < N_EXPIRED; i++)
        plan_sub(new_ref(), NULL, "applied", "create",
                 "{\"case_type\": \"%s\", \"jurisdiction\": \"IT\", \"state\": \"Open\", "
                 "\"data\": {\"n\": %d}, \"resolved_ttl\": \"" EXPIRED_TTL "\"}",
                 type, i)
            ->revision = 1;
    last_expired = W.hi;
    for (int i = 0; i < N_LIVE; i++)
        plan_sub(
            new_ref(), NULL, "applied", "create",
            "{\"case_type\": \"%s\", \"jurisdiction\": \"IT\", \"state\": \"Open\", "
            "\"data\": {\"n\": %d}, \"notes\": [{\"author\": \"clerk\", \"body\": \"kept\"}]%s}",
            type, i, i % 2 ? ", \"resolved_ttl\": \"2999-12-31\"" : "")
            ->revision = 1;
    first_live = last_expired + 1;
    for (int64_t ref = W.lo; ref <= last_expired; ref++)
        plan_sub(ref, NULL, "applied", "step",
                 "{\"case_type\": \"%s\", \"data_merge\": {\"step\": 2}, \"notes\": "
                 "[{\"author\": \"clerk\", \"body\": \"to go\"}]}",
                 type)
            ->revision = 2;
    /* Outcomes recorded in ccd.event_outcome, for expired and live cases alike. */
    for (int i = 0; i < N_CONFLICTS; i++) {
        plan_sub(W.lo + i, NULL, "conflict", "late",
                 "{\"case_type\": \"%s\", "
                 "\"expected_version\": 99, \"data_merge\": {\"x\": 1}}",
                 type);
        plan_sub(first_live + i, NULL, "conflict", "late",
                 "{\"case_type\": \"%s\", "
                 "\"expected_version\": 99, \"data_merge\": {\"x\": 1}}",
                 type);
    }
    initial = W.nplan;
    worker = worker_start(NULL);
    wait_relay(worker);
    indexer = indexer_start(group, sizeof(group));
    send_range(0, initial);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    outcomes_free(o, n);
    ck_assert(it_es_wait_count(index, NULL, N_EXPIRED + N_LIVE, CATCH_UP_MS));
    ck_assert_msg(it_wait_sql(N_EXPIRED, CATCH_UP_MS,
                              "SELECT count(*) FROM ccd.change_outbox WHERE reference BETWEEN "
                              "%" PRId64 " AND %" PRId64 " AND case_revision = 2 AND "
                              "published_at IS NOT NULL",
                              W.lo, last_expired),
                  "the expired cases' second changes were not published");
    wait_indexed(group);
    ck_assert_int_eq(it_es_count(index, "{\"term\":{\"case_revision\":2}}"), N_EXPIRED);
    ck_assert_int_eq(redis_entries(0, initial, W.lo, W.hi), N_EXPIRED * 2 + N_LIVE);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.event_outcome WHERE "
                                "(outcome->>'case_reference')::bigint BETWEEN %" PRId64
                                " AND %" PRId64,
                                W.lo, W.hi),
                     2 * N_CONFLICTS);

    /* --dry-run: the expired cases, one JSON line each, and nothing deleted. */
    ck_assert_int_eq(run_dispose(type, dry, &out, &err), 0);
    ck_assert_msg(count_lines(out) == N_EXPIRED, "dry run listed %zu cases:\n%s", count_lines(out),
                  err);
    ck_assert_ptr_nonnull(strstr(err, "dry run"));
    ck_assert_ptr_nonnull(strstr(err, " cases=1000 "));
    {
        json_t *line = json_loads(out, JSON_DISABLE_EOF_CHECK, NULL);

        ck_assert_ptr_nonnull(line);
        ck_assert_int_eq(json_integer_value(json_object_get(line, "reference")), W.lo);
        ck_assert_str_eq(json_string_value(json_object_get(line, "resolved_ttl")), EXPIRED_TTL);
        ck_assert_int_eq(json_integer_value(json_object_get(line, "case_revision")), 2);
        json_decref(line);
    }
    free(out);
    free(err);
    ck_assert_int_eq(
        it_sql_int("SELECT count(*) FROM ccd.case_data WHERE case_type_id = '%s'", type),
        N_EXPIRED + N_LIVE);
    ck_assert_int_eq(
        it_sql_int("SELECT count(*) FROM ccd.disposed_case WHERE case_type_id = '%s'", type), 0);

    /* --limit 10: the first ten, in reference order. */
    ck_assert_int_eq(run_dispose(type, ten, &out, &err), 0);
    assert_summary(err, 10, 0, 0);
    free(out);
    free(err);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.disposed_case WHERE reference BETWEEN "
                                "%" PRId64 " AND %" PRId64,
                                W.lo, W.lo + 9),
                     10);
    ck_assert_int_eq(
        it_sql_int("SELECT count(*) FROM ccd.case_data WHERE case_type_id = '%s'", type),
        N_EXPIRED + N_LIVE - 10);

    /* The rest. */
    ck_assert_int_eq(run_dispose(type, NULL, &out, &err), 0);
    assert_summary(err, N_EXPIRED - 10, 0, 0);
    free(out);
    free(err);

    /* PostgreSQL: exactly the live cases are left, with all they had; of the expired ones only
     * their records and disposal documents. */
    ck_assert_int_eq(
        it_sql_int("SELECT count(*) FROM ccd.case_data WHERE case_type_id = '%s'", type), N_LIVE);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_data WHERE reference BETWEEN "
                                "%" PRId64 " AND %" PRId64,
                                W.lo, last_expired),
                     0);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_event WHERE case_reference "
                                "BETWEEN %" PRId64 " AND %" PRId64,
                                W.lo, last_expired),
                     0);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_notes WHERE case_reference "
                                "BETWEEN %" PRId64 " AND %" PRId64,
                                W.lo, last_expired),
                     0);
    /* The answers a redelivery of their messages gets stay: the conflicts recorded, and the
     * applied outcome of each history row (all within --outcome-retention-hours). */
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.event_outcome WHERE "
                                "(outcome->>'case_reference')::bigint BETWEEN %" PRId64
                                " AND %" PRId64 " AND outcome->>'status' = 'applied'",
                                W.lo, last_expired),
                     2 * N_EXPIRED);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.event_outcome WHERE "
                                "(outcome->>'case_reference')::bigint BETWEEN %" PRId64
                                " AND %" PRId64,
                                W.lo, last_expired),
                     2 * N_EXPIRED + N_CONFLICTS);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.change_outbox WHERE reference BETWEEN "
                                "%" PRId64 " AND %" PRId64 " AND NOT (document ? 'disposed')",
                                W.lo, last_expired),
                     0);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.change_outbox WHERE reference BETWEEN "
                                "%" PRId64 " AND %" PRId64 " AND case_revision = 3 AND topic = "
                                "'%s' AND document @> '{\"disposed\": true, \"case_revision\": 3}'",
                                W.lo, last_expired, W.changes),
                     N_EXPIRED);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.disposed_case d JOIN "
                                "(SELECT generate_series(%" PRId64 ", %" PRId64 ") r) s ON "
                                "s.r = d.reference WHERE d.case_type_id = '%s' AND "
                                "d.jurisdiction = 'IT' AND d.last_revision = 2 AND d.id > 0",
                                W.lo, last_expired, type),
                     N_EXPIRED);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_event WHERE case_reference "
                                "BETWEEN %" PRId64 " AND %" PRId64,
                                first_live, W.hi),
                     N_LIVE);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_notes WHERE case_reference "
                                "BETWEEN %" PRId64 " AND %" PRId64,
                                first_live, W.hi),
                     N_LIVE);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.event_outcome WHERE "
                                "(outcome->>'case_reference')::bigint BETWEEN %" PRId64
                                " AND %" PRId64,
                                first_live, W.hi),
                     N_CONFLICTS);
    /* Redis: the expired cases' entries are gone, the live ones' are all there. */
    ck_assert_int_eq(redis_entries(0, initial, W.lo, last_expired), 0);
    ck_assert_int_eq(redis_entries(0, initial, first_live, W.hi), N_LIVE);
    /* Elasticsearch: the disposal documents went through the relay to the indexer. */
    ck_assert(it_es_wait_count(index, NULL, N_LIVE, CATCH_UP_MS));
    ck_assert_int_eq(
        it_es_count(index, "{\"range\":{\"reference\":{\"gte\":%" PRId64 ",\"lte\":%" PRId64 "}}}",
                    first_live, W.hi),
        N_LIVE);
    wait_indexed(group);

    /* A reindex across the disposals writes the live cases and deletes again the documents of
     * the cases disposed of since it started (less a minute): none comes back. */
    {
        char pg[512], ctype[200], out_path[256], want[128];
        const char *args[] = {pg, ctype, "reindex", NULL};
        char *said;

        snprintf(pg, sizeof(pg), "--pg=%s",
                 getenv("CASESTREAM_READER_PG") ? getenv("CASESTREAM_READER_PG") : it_config()->pg);
        snprintf(ctype, sizeof(ctype), "--case-type=%s", type);
        snprintf(out_path, sizeof(out_path), "build/it-logs/reindex-%d.out", (int)getpid());
        ck_assert_int_eq(it_run("casestream", args, NULL, out_path, NULL), 0);
        said = file_text(out_path);
        snprintf(want, sizeof(want), "%d cases read", N_LIVE);
        ck_assert_msg(strstr(said, want), "reindex said: %s", said);
        snprintf(want, sizeof(want), "%d deleted (cases disposed of during the pass)", N_EXPIRED);
        ck_assert_msg(strstr(said, want), "reindex said: %s", said);
        free(said);
        ck_assert_int_eq(it_es_count(index, NULL), N_LIVE);
    }

    /* A change of a disposed case published after its disposal document, at its last
     * revision: refused by the index, the document stays deleted. */
    {
        char key[24], doc[512];
        long long id =
            it_sql_int("SELECT id FROM ccd.disposed_case WHERE reference = %" PRId64, last_expired);

        snprintf(key, sizeof(key), "%" PRId64, last_expired);
        snprintf(doc, sizeof(doc),
                 "{\"id\":%lld,\"reference\":%" PRId64
                 ",\"case_type\":\"%s\",\"case_type_id\":\"%s\","
                 "\"jurisdiction\":\"IT\",\"state\":\"Back\",\"version\":1,\"case_revision\":2,"
                 "\"data\":{},\"notes\":[]}",
                 id, last_expired, type, type);
        /* Found by its reference, whatever _id the indexer writes it under. */
        ck_assert_int_eq(it_es_count(index, "{\"term\":{\"reference\":%" PRId64 "}}", last_expired),
                         0);
        it_produce(W.changes, key, doc, strlen(doc));
        wait_indexed(group);
        ck_assert_int_eq(it_es_count(index, "{\"term\":{\"reference\":%" PRId64 "}}", last_expired),
                         0);
        ck_assert_int_eq(it_es_count(index, NULL), N_LIVE);
        ck_assert_int_eq(it_es_count(index, "{\"term\":{\"state\":\"Back\"}}"), 0);
        /* The same change in its reference form (a case too large for the topic): the indexer
         * reads it from PostgreSQL, which gives the disposal document: deleted again, and no
         * dead letter. */
        snprintf(doc, sizeof(doc),
                 "{\"reference\":%" PRId64 ",\"case_type\":\"%s\",\"case_revision\":2,"
                 "\"omitted\":\"document of 2000000 bytes is too large for the changes topic\"}",
                 last_expired, type);
        it_produce(W.changes, key, doc, strlen(doc));
        wait_indexed(group);
        ck_assert_int_eq(it_es_count(index, "{\"term\":{\"reference\":%" PRId64 "}}", last_expired),
                         0);
        ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.index_dead_letter WHERE reference "
                                    "= %" PRId64,
                                    last_expired),
                         0);
    }

    /* Submissions for disposed cases, of any kind: rejected, naming the day; nothing created. */
    late_from = W.nplan;
    plan_sub(W.lo + 20, NULL, "rejected", "create",
             "{\"case_type\": \"%s\", \"jurisdiction\": \"IT\", \"state\": \"Open\", "
             "\"data\": {\"again\": true}}",
             type);
    plan_sub(W.lo + 21, NULL, "rejected", "step",
             "{\"case_type\": \"%s\", \"data_merge\": {\"again\": true}}", type);
    plan_sub(W.lo + 22, NULL, "rejected", "updateSupplementaryData",
             "{\"case_type\": \"%s\", \"supplementary_data_updates\": {\"$inc\": {\"n\": 1}}}",
             type);
    /* The first create of case lo+23, sent again with its key: the key went with the case. */
    {
        planned *again = plan_raw(W.plan[23].ref, W.plan[23].key, "rejected", W.plan[23].mkey,
                                  W.plan[23].value, W.plan[23].len);

        ck_assert_int_eq(again->ref, W.lo + 23);
    }
    send_range(late_from, W.nplan);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    today = sql_text("SELECT (now() AT TIME ZONE 'UTC')::date::text");
    for (size_t i = late_from; i < W.nplan; i++) {
        const outcome *x = find_outcome(o, n, W.plan[i].ref, W.plan[i].key, "rejected");
        char want[256];

        snprintf(want, sizeof(want),
                 "case %" PRId64 " was disposed of on %s at the end of its retention", x->ref,
                 today);
        ck_assert_int_eq(x->code, 422);
        ck_assert_msg(x->error && strstr(x->error, want), "outcome %s, expected \"%s\"", x->text,
                      want);
    }
    outcomes_free(o, n);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_data WHERE reference BETWEEN "
                                "%" PRId64 " AND %" PRId64,
                                W.lo, last_expired),
                     0);
    reason = sql_text("SELECT to_char(disposed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM "
                      "ccd.disposed_case WHERE reference = %" PRId64,
                      W.lo + 20);
    ck_assert_str_eq(reason, today);
    free(reason);
    free(today);

    worker_stop_last(worker);
    ck_assert_int_eq(it_stop(indexer, SIGTERM, 60000), 0);
    it_es_drop(index);
    free(type);
}
END_TEST

static bool pick_from(size_t i, void *ctx)
{
    return i >= *(size_t *)ctx;
}

/* Outcomes of one case's submissions in the order its partition holds them. */
static int cmp_offset(const void *a, const void *b)
{
    const outcome *x = *(const outcome *const *)a, *y = *(const outcome *const *)b;

    return (x->offset > y->offset) - (x->offset < y->offset);
}

#define N_RACE        200
#define RACE_UPDATES  5
#define RACE_EXTENDED 10

/* The round of the stream in which case i of the race gets a later retention date, 0 for none:
 * the last cases, which dispose comes to last, in the first round (most likely applied before
 * dispose locks them: kept), the first ones in the third (most likely disposed of first: the
 * extension rejected). Either order is checked. */
static int extension_round(int i)
{
    return i >= N_RACE - RACE_EXTENDED ? 1 : i < RACE_EXTENDED ? 3 : 0;
}

/* Dispose runs while the worker applies a stream of submissions to the very cases it disposes
 * of (and, for some, submissions that move their retention date): for every case, its
 * submissions read before its disposal applied, those after rejected as disposed, never a mix
 * out of order, never the case created again; its record's last revision is its last applied
 * one; a case whose date moved before dispose took its lock is kept with everything it had;
 * and no document of a disposed case is left in the index. */
START_TEST(test_dispose_while_the_worker_applies_submissions_to_the_same_cases)
{
    char *type = it_unique("ItDisposeRace"), index[300], group[200], *out, *err;
    size_t first, n;
    outcome *o;
    feeder f;
    pid_t worker, indexer;
    int disposed = 0, kept = 0, rejected = 0;
    int64_t gone[N_RACE];

    ck_assert(cs_es_index_name(type, index, sizeof(index)));
    world_new("race", 6);
    for (int i = 0; i < N_RACE; i++)
        plan_sub(new_ref(), NULL, "applied", "create",
                 "{\"case_type\": \"%s\", \"jurisdiction\": \"IT\", \"state\": \"Open\", "
                 "\"data\": {\"n\": 0}, \"resolved_ttl\": \"" EXPIRED_TTL "\"}",
                 type);
    first = W.nplan;
    /* Rounds over the cases; some cases get a later date in one of them. */
    for (int k = 1; k <= RACE_UPDATES; k++)
        for (int i = 0; i < N_RACE; i++) {
            if (k == extension_round(i))
                plan_sub(W.lo + i, NULL, "applied", "extend",
                         "{\"case_type\": \"%s\", \"resolved_ttl\": \"2999-01-01\"}", type);
            else
                plan_sub(W.lo + i, NULL, "applied", "step",
                         "{\"case_type\": \"%s\", \"data_merge\": {\"n\": %d}, \"notes\": "
                         "[{\"author\": \"s\", \"body\": \"%d\"}]}",
                         type, k, k);
        }
    worker = worker_start(NULL);
    wait_relay(worker);
    indexer = indexer_start(group, sizeof(group));
    send_range(0, first);
    ck_assert(it_wait_sql(N_RACE, CATCH_UP_MS,
                          "SELECT count(*) FROM ccd.case_data WHERE case_type_id = '%s'", type));
    /* The stream, one message at a time, while dispose runs. */
    feeder_start(&f, pick_from, &first, 2);
    while (atomic_load(&f.sent) < (W.nplan - first) / 4)
        usleep(10 * 1000);
    ck_assert_int_eq(run_dispose(type, NULL, &out, &err), 0);
    free(out);
    feeder_join(&f);
    o = read_outcomes(&n);
    for (int i = 0; i < N_RACE; i++) {
        int64_t ref = W.lo + i;
        const outcome *mine[RACE_UPDATES + 2];
        size_t m = 0, applied = 0;
        bool extended = false;

        for (size_t j = 0; j < n && m < RACE_UPDATES + 2; j++)
            if (o[j].ref == ref)
                mine[m++] = &o[j];
        ck_assert_uint_eq(m, RACE_UPDATES + 1);
        qsort(mine, m, sizeof(mine[0]), cmp_offset);
        ck_assert_str_eq(mine[0]->status, "applied");
        ck_assert_int_eq(mine[0]->revision, 1);
        /* Applied ones first, at consecutive revisions; then only rejections as disposed. */
        while (applied < RACE_UPDATES && strcmp(mine[applied + 1]->status, "applied") == 0) {
            ck_assert_int_eq(mine[applied + 1]->revision, (long long)applied + 2);
            extended |= (int)applied + 1 == extension_round(i);
            applied++;
        }
        rejected += (int)(m - 1 - applied);
        for (size_t j = applied + 1; j < m; j++)
            ck_assert_msg(strcmp(mine[j]->status, "rejected") == 0 && mine[j]->error &&
                              strstr(mine[j]->error, "was disposed of on"),
                          "case %" PRId64 ": after its disposal: %s", ref, mine[j]->text);
        if (extended) {
            /* Its date moved before dispose took its lock: kept, with all it had. */
            ck_assert_uint_eq(applied, RACE_UPDATES);
            ck_assert_int_eq(it_sql_int("SELECT case_revision FROM ccd.case_data WHERE "
                                        "reference = %" PRId64 " AND resolved_ttl = '2999-01-01'",
                                        ref),
                             RACE_UPDATES + 1);
            ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_event WHERE "
                                        "case_reference = %" PRId64,
                                        ref),
                             RACE_UPDATES + 1);
            kept++;
        } else {
            ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_data WHERE reference = "
                                        "%" PRId64,
                                        ref),
                             0);
            ck_assert_int_eq(it_sql_int("SELECT last_revision FROM ccd.disposed_case WHERE "
                                        "reference = %" PRId64,
                                        ref),
                             (long long)applied + 1);
            gone[disposed++] = ref;
        }
    }
    outcomes_free(o, n);
    /* A case whose date moved before dispose read it is not a candidate: kept= counts only
     * those whose date moved while it waited for their lock. */
    {
        char want[64];

        snprintf(want, sizeof(want), "disposed=%d kept=", disposed);
        ck_assert_msg(strstr(err, want) && strstr(err, " failed=0 "), "dispose said:\n%s", err);
    }
    free(err);
    fprintf(stderr,
            "it_dispose: race: %d disposed, %d kept (date moved first), %d of %d submissions "
            "rejected as disposed\n",
            disposed, kept, rejected, N_RACE * RACE_UPDATES);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_event e JOIN ccd.disposed_case d "
                                "ON d.reference = e.case_reference WHERE d.case_type_id = '%s'",
                                type),
                     0);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_notes n JOIN ccd.disposed_case d "
                                "ON d.reference = n.case_reference WHERE d.case_type_id = '%s'",
                                type),
                     0);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.change_outbox o JOIN ccd.disposed_case "
                                "d ON d.reference = o.reference WHERE d.case_type_id = '%s' AND "
                                "NOT (o.document ? 'disposed')",
                                type),
                     0);
    /* Every change, then every disposal document, reached the index: only the kept cases. */
    ck_assert(it_wait_sql(0, CATCH_UP_MS,
                          "SELECT count(*) FROM ccd.change_outbox WHERE reference BETWEEN %" PRId64
                          " AND %" PRId64 " AND published_at IS NULL",
                          W.lo, W.hi));
    wait_indexed(group);
    ck_assert_int_eq(it_es_count(index, NULL), kept);
    worker_stop_last(worker);
    /* With the worker gone, every Redis write it had to do is done: none of a disposed case is
     * left, not even of the submissions it applied just before dispose took the case's lock
     * (dispose marks the case before it deletes, and the worker's write checks the mark). */
    for (int i = 0; i < disposed; i++)
        ck_assert_msg(redis_entries(0, W.nplan, gone[i], gone[i]) == 0,
                      "case %" PRId64 " was disposed of, and has idempotency entries in redis",
                      gone[i]);
    ck_assert_int_eq(it_stop(indexer, SIGTERM, 60000), 0);
    it_es_drop(index);
    free(type);
}
END_TEST

/* A message of a case applied before the case was disposed of and delivered again after the
 * disposal (its worker died between its commit and its offset's) gets the answer it had, byte
 * for byte, not the disposal's rejection; so does one whose refusal was recorded. Here every
 * message of the topic is delivered again, to a worker of a new group. A new message with one
 * of the case's keys is refused as for any disposed case. */
START_TEST(test_a_message_delivered_again_after_the_disposal_gets_its_first_answer)
{
    char *type = it_unique("ItDisposeAgain"), *out, *err, want[256], *today;
    int64_t a, b;
    size_t n, first;
    outcome *o;
    it_msg *raw;
    pid_t worker;

    world_new("dispose-again", 3);
    a = new_ref();
    b = new_ref();
    for (int i = 0; i < 2; i++)
        plan_sub(i ? b : a, NULL, "applied", "create",
                 "{\"case_type\": \"%s\", \"jurisdiction\": \"IT\", \"state\": \"Open\", "
                 "\"data\": {\"n\": %d}, \"resolved_ttl\": \"" EXPIRED_TTL "\"}",
                 type, i)
            ->revision = 1;
    plan_sub(a, NULL, "applied", "step", "{\"case_type\": \"%s\", \"data_merge\": {\"step\": 2}}",
             type)
        ->revision = 2;
    plan_sub(b, NULL, "applied", "updateSupplementaryData",
             "{\"case_type\": \"%s\", \"supplementary_data_updates\": "
             "{\"$inc\": {\"views\": 2}, \"$set\": {\"orgs.org1\": \"Y\"}}}",
             type)
        ->revision = 2;
    plan_sub(a, NULL, "conflict", "late",
             "{\"case_type\": \"%s\", \"expected_version\": 99, \"data_merge\": {\"x\": 1}}", type);
    first = W.nplan;
    worker = worker_start(NULL);
    send_range(0, first);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    outcomes_free(o, n);
    worker_stop_last(worker);

    ck_assert_int_eq(run_dispose(type, NULL, &out, &err), 0);
    assert_summary(err, 2, 0, 0);
    free(out);
    free(err);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.case_event WHERE case_reference IN "
                                "(%" PRId64 ", %" PRId64 ")",
                                a, b),
                     0);
    ck_assert_int_eq(
        it_sql_int("SELECT count(*) FROM ccd.event_outcome WHERE topic = '%s'", W.events),
        (long long)first);

    /* Every message again: each position's copies must be byte-identical (read_outcomes). */
    snprintf(W.group + strlen(W.group), sizeof(W.group) - strlen(W.group), "-again");
    worker = worker_start(NULL);
    n = read_topic(W.results, 2 * (long long)first, CATCH_UP_MS, &raw);
    it_msgs_free(raw, n);
    o = read_outcomes(&n);
    ck_assert_int_eq(W.nraw, 2 * first);
    check_planned_outcomes(o, n);
    ck_assert_ptr_nonnull(strstr(find_outcome(o, n, b, W.plan[3].key, "applied")->text,
                                 "\"supplementary_data\":{\"orgs\":{\"org1\":\"Y\"},\"views\":2}"));
    outcomes_free(o, n);

    /* The first create of case a, sent anew with its key: a new message, refused. */
    plan_raw(a, W.plan[0].key, "rejected", W.plan[0].mkey, W.plan[0].value, W.plan[0].len);
    send_range(first, W.nplan);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    today = sql_text("SELECT (now() AT TIME ZONE 'UTC')::date::text");
    snprintf(want, sizeof(want),
             "case %" PRId64 " was disposed of on %s at the end of its retention", a, today);
    {
        const outcome *x = find_outcome(o, n, a, W.plan[0].key, "rejected");

        ck_assert_ptr_nonnull(x);
        ck_assert_msg(x->error && strstr(x->error, want), "outcome %s, expected \"%s\"", x->text,
                      want);
    }
    outcomes_free(o, n);
    free(today);
    worker_stop_last(worker);
    free(type);
}
END_TEST

/* The mark dispose leaves in Redis: a worker's entry of a disposed case written after the
 * disposal, as a worker that committed just before it writes its entries after its outcomes
 * are delivered, is refused; entries written before it are deleted; other cases are not
 * concerned. */
START_TEST(test_dispose_marks_the_case_so_no_late_entry_is_written_to_redis)
{
    char errstr[512], gone_key[64];
    cs_idem *c = cs_idem_new(it_config()->redis, NULL, 60, errstr, sizeof(errstr));
    int64_t ref = it_new_ref(), other = it_new_ref();
    const char *before[] = {"00000000-0000-4000-8000-000000000001"};
    const char *late[] = {"00000000-0000-4000-8000-000000000002"};
    const char *entry[] = {"{\"status\":\"applied\"}"};
    int64_t refs[] = {ref}, others[] = {other};
    long long deleted = -1;
    char *out[1] = {NULL};

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(cs_idem_put(c, 1, refs, before, entry, errstr, sizeof(errstr)), CS_OK);
    ck_assert_int_eq(cs_idem_get(c, 1, refs, before, out, errstr, sizeof(errstr)), CS_OK);
    ck_assert_ptr_nonnull(out[0]);
    free(out[0]);
    ck_assert_int_eq(cs_idem_forget(c, ref, 1, before, &deleted, errstr, sizeof(errstr)), CS_OK);
    ck_assert_int_eq(deleted, 1);
    /* Too late: refused. */
    ck_assert_int_eq(cs_idem_put(c, 1, refs, late, entry, errstr, sizeof(errstr)), CS_OK);
    ck_assert_int_eq(cs_idem_get(c, 1, refs, late, out, errstr, sizeof(errstr)), CS_OK);
    ck_assert_ptr_null(out[0]);
    ck_assert_int_eq(cs_idem_get(c, 1, refs, before, out, errstr, sizeof(errstr)), CS_OK);
    ck_assert_ptr_null(out[0]);
    /* Another case is written as ever. */
    ck_assert_int_eq(cs_idem_put(c, 1, others, late, entry, errstr, sizeof(errstr)), CS_OK);
    ck_assert_int_eq(cs_idem_get(c, 1, others, late, out, errstr, sizeof(errstr)), CS_OK);
    ck_assert_ptr_nonnull(out[0]);
    free(out[0]);
    /* Leave nothing behind: the other case's entry and the mark. */
    ck_assert_int_eq(cs_idem_forget(c, other, 1, late, NULL, errstr, sizeof(errstr)), CS_OK);
    snprintf(gone_key, sizeof(gone_key), "cs:gone:%" PRId64, ref);
    {
        char cmd[1024];

        snprintf(cmd, sizeof(cmd), "redis-cli -u '%s' DEL %s cs:gone:%" PRId64 " >/dev/null",
                 it_config()->redis, gone_key, other);
        ck_assert_int_eq(system(cmd), 0);
    }
    cs_idem_free(c);
}
END_TEST

/* A case past its retention whose resolved_ttl a submission moves (or clears) while dispose
 * waits for its lock is kept: the date is checked again under the lock. */
START_TEST(test_dispose_keeps_a_case_whose_ttl_moved_while_it_waited_for_the_lock)
{
    char *type = it_unique("ItDisposeLock"), pg[512], topic[200], ctype[200], log[256], *text;
    const char *args[] = {pg, topic, ctype, "dispose", NULL};
    int64_t moved = it_new_ref(), cleared = it_new_ref();
    PGconn *holder;
    PGresult *res;
    pid_t pid;

    memset(&W, 0, sizeof(W));
    for (int i = 0; i < 2; i++)
        PQclear(query("INSERT INTO ccd.case_data (reference, case_type_id, jurisdiction, state, "
                      "data, resolved_ttl) VALUES (%" PRId64
                      ", '%s', 'IT', 'Open', '{}', '" EXPIRED_TTL "')",
                      i ? cleared : moved, type));
    holder = PQconnectdb(it_config()->pg);
    ck_assert_int_eq(PQstatus(holder), CONNECTION_OK);
    res = PQexec(holder, "BEGIN");
    PQclear(res);
    {
        char sql[256];

        snprintf(sql, sizeof(sql),
                 "SELECT 1 FROM ccd.case_data WHERE reference IN (%" PRId64 ", %" PRId64
                 ") FOR UPDATE",
                 moved, cleared);
        res = PQexec(holder, sql);
        ck_assert_int_eq(PQntuples(res), 2);
        PQclear(res);
    }
    snprintf(pg, sizeof(pg), "--pg=%s", worker_pg());
    snprintf(topic, sizeof(topic), "--topic-changes=it-dispose-none");
    snprintf(ctype, sizeof(ctype), "--case-type=%s", type);
    pid = it_spawn("casestream", args, NULL);
    /* Waiting for the holder: its role may not see dispose's query, but sees who blocks whom. */
    ck_assert_msg(it_wait_sql(1, 30000,
                              "SELECT count(*) FROM pg_stat_activity WHERE %d = "
                              "ANY(pg_blocking_pids(pid))",
                              PQbackendPID(holder)),
                  "dispose never waited for the case lock");
    {
        char sql[256];

        snprintf(sql, sizeof(sql),
                 "UPDATE ccd.case_data SET resolved_ttl = CASE reference WHEN %" PRId64
                 " THEN date '2999-01-01' END WHERE reference IN (%" PRId64 ", %" PRId64 ")",
                 moved, moved, cleared);
        res = PQexec(holder, sql);
        ck_assert_int_eq(PQresultStatus(res), PGRES_COMMAND_OK);
        PQclear(res);
    }
    PQclear(PQexec(holder, "COMMIT"));
    PQfinish(holder);
    ck_assert_int_eq(it_wait_exit(pid, 30000), 0);
    snprintf(log, sizeof(log), "build/it-logs/casestream-%d.log", (int)pid);
    text = file_text(log);
    assert_summary(text, 0, 2, 0);
    ck_assert_ptr_nonnull(strstr(text, "kept: its resolved_ttl is now 2999-01-01"));
    ck_assert_ptr_nonnull(strstr(text, "kept: its resolved_ttl is now none"));
    free(text);
    ck_assert_int_eq(
        it_sql_int("SELECT count(*) FROM ccd.case_data WHERE case_type_id = '%s'", type), 2);
    ck_assert_int_eq(
        it_sql_int("SELECT count(*) FROM ccd.disposed_case WHERE case_type_id = '%s'", type), 0);
    PQclear(query("DELETE FROM ccd.case_data WHERE case_type_id = '%s'", type));
    free(type);
}
END_TEST

Suite *it_dispose_suite(void)
{
    Suite *s = suite_create("it_dispose");
    TCase *tc = tcase_create("dispose");
    TCase *lock = tcase_create("lock");

    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_dispose_removes_exactly_the_expired_cases_everywhere);
    tcase_add_test(tc, test_dispose_while_the_worker_applies_submissions_to_the_same_cases);
    tcase_add_test(tc, test_a_message_delivered_again_after_the_disposal_gets_its_first_answer);
    tcase_set_timeout(lock, 60);
    tcase_add_test(lock, test_dispose_keeps_a_case_whose_ttl_moved_while_it_waited_for_the_lock);
    tcase_add_test(lock, test_dispose_marks_the_case_so_no_late_entry_is_written_to_redis);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, lock);
    return s;
}
