/* Integration tests of CCD's case model in storage and search: the change document and the index
 * in CCD's search shape, the move of a live index behind its alias, index dead letters, and
 * `casestream case` in CCD's shapes. Each test uses a case type of its own, so an index of its
 * own. */
#include "it_support.h"
#include "it_world.h"
#include "runner.h"

#include "bulk.h"
#include "err.h"
#include "es.h"
#include "run.h"

#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static cs_es *es_client(void)
{
    static cs_es *es;
    char errstr[512];

    if (!es) {
        es = cs_es_new(it_config()->es, 30000, errstr, sizeof(errstr));
        ck_assert_msg(es != NULL, "%s", errstr);
    }
    return es;
}

/* Sends a request; returns the parsed JSON body (caller decrefs; NULL if not JSON) with the
 * status in *status. Fails the test if Elasticsearch is unreachable. */
static json_t *es_json(const char *method, const char *path, const char *body, long *status)
{
    cs_es_response r = CS_ES_RESPONSE_INIT;
    char errstr[512];
    json_t *root;

    ck_assert_msg(cs_es_request(es_client(), method, path, body, body ? strlen(body) : 0, &r,
                                errstr, sizeof(errstr)) == CS_OK,
                  "elasticsearch is unreachable: %s", errstr);
    *status = r.status;
    root = json_loadb(r.body, r.len, 0, NULL);
    cs_es_response_clear(&r);
    return root;
}

/* Documents in index as a search sees them now (no refresh first), or -1. */
static long long es_count_now(const char *index)
{
    char path[400];
    long status;
    json_t *root;
    long long n;

    snprintf(path, sizeof(path), "/%s/_count", index);
    root = es_json("POST", path, "{\"query\":{\"match_all\":{}}}", &status);
    n = status == 200 ? json_integer_value(json_object_get(root, "count")) : -1;
    if (n < 0) {
        char *text = json_dumps(root, JSON_COMPACT);

        fprintf(stderr, "count of %s: HTTP %ld %s\n", index, status, text ? text : "");
        free(text);
    }
    json_decref(root);
    return n;
}

static long long es_count(const char *index, const char *query)
{
    char path[400], body[2048];
    long status;
    json_t *root;
    long long n;

    snprintf(path, sizeof(path), "/%s/_refresh", index);
    json_decref(es_json("POST", path, NULL, &status));
    snprintf(path, sizeof(path), "/%s/_count", index);
    snprintf(body, sizeof(body), "{\"query\":%s}", query ? query : "{\"match_all\":{}}");
    root = es_json("POST", path, body, &status);
    n = status == 200 ? json_integer_value(json_object_get(root, "count")) : -1;
    json_decref(root);
    return n;
}

static bool wait_count(const char *index, const char *query, long long want, int timeout_ms)
{
    long long deadline = cs_now_ms() + timeout_ms, n = -1;

    while (cs_now_ms() < deadline) {
        if ((n = es_count(index, query)) == want)
            return true;
        usleep(200 * 1000);
    }
    fprintf(stderr, "count of %s: %lld, want %lld\n", index, n, want);
    return false;
}

/* The indices behind the alias name, as "a,b" in buf ("" when name is no alias). */
static const char *alias_of(const char *name, char *buf, size_t size)
{
    char path[400];
    long status;
    json_t *root;
    const char *index;
    json_t *v;
    size_t len = 0;

    buf[0] = '\0';
    snprintf(path, sizeof(path), "/_alias/%s", name);
    root = es_json("GET", path, NULL, &status);
    if (status == 200)
        json_object_foreach(root, index, v) len +=
            (size_t)snprintf(buf + len, size - len, "%s%s", len ? "," : "", index);
    json_decref(root);
    return buf;
}

/* Inserts n cases of type from reference first on, as a service of the current schema would
 * have stored them. */
static void insert_cases(const char *type, int64_t first, int n)
{
    char text[1024];

    snprintf(text, sizeof(text),
             "INSERT INTO ccd.case_data (reference, case_type_id, jurisdiction, state, data)"
             " SELECT %" PRId64 " + g, '%s', 'IT', 'Open', jsonb_build_object('n', g)"
             " FROM generate_series(0, %d) g",
             first, type, n - 1);
    PQclear(query("%s", text));
}

/* Produces the change documents PostgreSQL holds now for the cases first..first+n-1 to topic. */
static void produce_documents(const char *topic, int64_t first, int n)
{
    PGresult *res = query("SELECT reference, ccd.change_document(c)::text FROM ccd.case_data c"
                          " WHERE reference BETWEEN %" PRId64 " AND %" PRId64,
                          first, first + n - 1);

    for (int i = 0; i < PQntuples(res); i++)
        it_produce_async(topic, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                         (size_t)PQgetlength(res, i, 1));
    PQclear(res);
    it_flush();
}

static pid_t start_indexer(const char *topic, const char *group)
{
    char t[300], g[300];
    const char *args[] = {t, g, "--metrics-port=0", "--bulk-linger-ms=50", NULL};

    snprintf(t, sizeof(t), "--topic-changes=%s", topic);
    snprintf(g, sizeof(g), "--indexer-group=%s", group);
    return it_spawn("casestream-indexer", args, NULL);
}

/* Cases first..first+n-1 whose document in index has PostgreSQL's revision, found by their
 * reference (so whatever their _id). */
static long long indexed_at_pg_revision(const char *index, int64_t first, int n)
{
    long long pg = it_sql_int("SELECT coalesce(sum(case_revision), 0) FROM ccd.case_data WHERE "
                              "reference BETWEEN %" PRId64 " AND %" PRId64,
                              first, first + n - 1);
    char path[400], body[512];
    long status;
    json_t *root;
    long long es;

    snprintf(path, sizeof(path), "/%s/_refresh", index);
    json_decref(es_json("POST", path, NULL, &status));
    snprintf(path, sizeof(path), "/%s/_search", index);
    snprintf(body, sizeof(body),
             "{\"size\":0,\"query\":{\"range\":{\"reference\":{\"gte\":%" PRId64 ",\"lte\":%" PRId64
             "}}},\"aggs\":{\"r\":{\"sum\":{\"field\":\"case_revision\"}}}}",
             first, first + n - 1);
    root = es_json("POST", path, body, &status);
    es = status == 200 ? (long long)json_number_value(json_object_get(
                             json_object_get(json_object_get(root, "aggregations"), "r"), "value"))
                       : -1;
    json_decref(root);
    return es == pg ? n : -1;
}

/* Runs `casestream reindex --new-index` for type while searching alias without pause; returns
 * the fewest documents a search found, in *failed the searches that failed and in *failing_ms
 * the time from the first failed search to the last. Changes n_more cases from first_more on
 * (one update each) and publishes their documents while it runs. */
static long long swap_while_searching(const char *type, const char *alias, const char *topic,
                                      int64_t first_more, int n_more, int *failed,
                                      long long *failing_ms)
{
    char arg[300];
    const char *args[] = {"reindex", "--new-index", arg, NULL};
    long long fewest = -1, searches = 0, first_failure = 0, last_failure = 0;
    int status, changed = 0;
    pid_t pid;

    *failed = 0;
    snprintf(arg, sizeof(arg), "--case-type=%s", type);
    pid = it_spawn("casestream", args, NULL);
    while ((status = it_wait_exit(pid, 0)) == -1) {
        long long t = cs_now_ms(), n = es_count_now(alias);

        if (n < 0) {
            (*failed)++;
            first_failure = first_failure ? first_failure : t;
            last_failure = t;
        } else if (fewest < 0 || n < fewest) {
            fewest = n;
        }
        searches++;
        /* Live traffic meanwhile: a change of one more case now and then. */
        if (changed < n_more && searches % 5 == 0) {
            PQclear(query("UPDATE ccd.case_data SET state = 'Moved', case_revision = "
                          "case_revision + 1, last_modified = now() WHERE reference = %" PRId64,
                          first_more + changed));
            produce_documents(topic, first_more + changed, 1);
            changed++;
        }
    }
    ck_assert_msg(status == 0,
                  "casestream reindex --new-index exited %d (see build/it-logs/casestream-%d.log)",
                  status, (int)pid);
    ck_assert_msg(searches >= 3, "only %lld searches while it ran", searches);
    *failing_ms = last_failure - first_failure;
    return fewest;
}

/* ---- the move of a live index behind its alias ----------------------------------------------
 */

#define SWAP_CASES 400
#define SWAP_NEW   40

START_TEST(test_reindex_new_index_moves_the_alias_and_search_never_loses_a_document)
{
    char *type = it_unique("ItSwap"), *topic = it_unique("it-ccd-changes"),
         *group = it_unique("it-ccd-indexer");
    char alias[300], path[400], want[400], got[1024];
    int64_t first = it_new_ref(), more;
    cs_bulk_body body = CS_BULK_BODY_INIT;
    long long fewest, failing_ms;
    long status;
    PGresult *res;
    int failed;
    pid_t ix;

    for (int i = 1; i < SWAP_CASES; i++)
        it_new_ref();
    more = it_new_ref();
    for (int i = 1; i < SWAP_NEW; i++)
        it_new_ref();
    ck_assert(cs_es_index_name(type, alias, sizeof(alias)));
    it_create_topic(topic, 3);
    insert_cases(type, first, SWAP_CASES);

    /* Before: a plain index of the live name, documents keyed by reference, as casestream wrote
     * them before the case id. */
    snprintf(path, sizeof(path), "/%s", alias);
    json_decref(es_json("PUT", path, "{}", &status));
    ck_assert_int_eq(status, 200);
    res = query("SELECT reference, case_revision, ccd.change_document(c)::text FROM ccd.case_data c"
                " WHERE reference BETWEEN %" PRId64 " AND %" PRId64,
                first, first + SWAP_CASES - 1);
    for (int i = 0; i < PQntuples(res); i++)
        ck_assert_int_eq(cs_bulk_add(&body, alias, strtoll(PQgetvalue(res, i, 0), NULL, 10),
                                     strtoll(PQgetvalue(res, i, 1), NULL, 10),
                                     PQgetvalue(res, i, 2), (size_t)PQgetlength(res, i, 2)),
                         0);
    PQclear(res);
    json_decref(es_json("POST", "/_bulk?refresh=true", body.buf, &status));
    ck_assert_int_eq(status, 200);
    cs_bulk_free(&body);
    ck_assert_int_eq(es_count(alias, NULL), SWAP_CASES);

    /* An indexer keeps writing to the live name throughout. */
    ix = start_indexer(topic, group);

    /* 1. The plain index is replaced by alias-000001 behind the alias. */
    insert_cases(type, more, SWAP_NEW);
    produce_documents(topic, more, SWAP_NEW);
    fewest = swap_while_searching(type, alias, topic, first, 20, &failed, &failing_ms);
    ck_assert_msg(fewest >= SWAP_CASES,
                  "a search of %s during the move found %lld documents, fewer than the %d "
                  "there before",
                  alias, fewest, SWAP_CASES);
    /* The plain index must go in the step that gives its name to the alias: a search running on
     * it at that instant can fail (it never finds less). */
    ck_assert_msg(failing_ms < 1000, "searches failed for %lld ms during the move (%d of them)",
                  failing_ms, failed);
    snprintf(want, sizeof(want), "%s-000001", alias);
    ck_assert_str_eq(alias_of(alias, got, sizeof(got)), want);
    /* Every case once, under its id, at PostgreSQL's revision (the indexer's writes held back
     * during the move land in the new index). */
    for (long long deadline = cs_now_ms() + 60000;
         cs_now_ms() < deadline && indexed_at_pg_revision(alias, first, SWAP_CASES) != SWAP_CASES;)
        usleep(200 * 1000);
    ck_assert_int_eq(indexed_at_pg_revision(alias, first, SWAP_CASES), SWAP_CASES);
    for (long long deadline = cs_now_ms() + 60000;
         cs_now_ms() < deadline && indexed_at_pg_revision(alias, more, SWAP_NEW) != SWAP_NEW;)
        usleep(200 * 1000);
    ck_assert_int_eq(indexed_at_pg_revision(alias, more, SWAP_NEW), SWAP_NEW);
    ck_assert_int_eq(es_count(alias, NULL), SWAP_CASES + SWAP_NEW);
    snprintf(path, sizeof(path), "/%s/_doc/%lld", alias,
             it_sql_int("SELECT id FROM ccd.case_data WHERE reference = %" PRId64, first));
    json_decref(es_json("GET", path, NULL, &status));
    ck_assert_int_eq(status, 200);

    /* 2. Again: alias-000001 is replaced by alias-000002. */
    fewest = swap_while_searching(type, alias, topic, first + 100, 20, &failed, &failing_ms);
    ck_assert_msg(fewest >= SWAP_CASES + SWAP_NEW,
                  "a search of %s during the second move found %lld documents, fewer than the "
                  "%d there before",
                  alias, fewest, SWAP_CASES + SWAP_NEW);
    ck_assert_msg(failed == 0, "%d searches failed during the move from alias to alias", failed);
    snprintf(want, sizeof(want), "%s-000002", alias);
    ck_assert_str_eq(alias_of(alias, got, sizeof(got)), want);
    snprintf(path, sizeof(path), "/%s-000001", alias);
    json_decref(es_json("HEAD", path, NULL, &status));
    ck_assert_int_eq(status, 404);
    for (long long deadline = cs_now_ms() + 60000;
         cs_now_ms() < deadline && indexed_at_pg_revision(alias, first, SWAP_CASES) != SWAP_CASES;)
        usleep(200 * 1000);
    ck_assert_int_eq(indexed_at_pg_revision(alias, first, SWAP_CASES), SWAP_CASES);
    ck_assert_int_eq(es_count(alias, NULL), SWAP_CASES + SWAP_NEW);

    ck_assert_int_eq(it_stop(ix, SIGTERM, 60000), 0);
    it_es_drop(alias);
    it_drop_topic(topic);
    free(type);
    free(topic);
    free(group);
}
END_TEST

/* ---- index dead letters ------------------------------------------------------------------- */

/* A change document of case ref (id = ref) of type at revision rev with data. */
static void produce_change(const char *topic, const char *type, int64_t ref, long long rev,
                           const char *data)
{
    char key[24], doc[2048];

    snprintf(key, sizeof(key), "%" PRId64, ref);
    snprintf(doc, sizeof(doc),
             "{\"id\":%" PRId64 ",\"reference\":%" PRId64 ",\"jurisdiction\":\"IT\","
             "\"case_type_id\":\"%s\",\"state\":\"Open\",\"security_classification\":\"PUBLIC\","
             "\"created_date\":\"2025-03-01T10:15:30.123\",\"last_modified\":"
             "\"2025-03-01T10:15:30.123\",\"last_state_modified_date\":\"2025-03-01T10:15:30.123\","
             "\"data\":%s,\"data_classification\":null,\"supplementary_data\":{},"
             "\"case_revision\":%lld,\"version\":1,\"notes\":[]}",
             ref, ref, type, data, rev);
    it_produce(topic, key, doc, strlen(doc));
}

static long long dead_letters(int64_t ref, const char *revision_condition)
{
    return it_sql_int("SELECT count(*) FROM ccd.index_dead_letter WHERE reference = %" PRId64
                      " AND %s",
                      ref, revision_condition);
}

START_TEST(test_index_dead_letters_clear_when_a_later_revision_is_indexed)
{
    char *type = it_unique("ItDead"), *topic = it_unique("it-ccd-changes"),
         *group = it_unique("it-ccd-indexer");
    char alias[300], key[24];
    int64_t shape = it_new_ref(), a = it_new_ref(), c = it_new_ref();
    pid_t ix;

    ck_assert(cs_es_index_name(type, alias, sizeof(alias)));
    it_create_topic(topic, 1); /* one partition: in this order */
    ix = start_indexer(topic, group);
    /* data.x is an object in this index; a string there is refused. */
    produce_change(topic, type, shape, 1, "{\"x\":{\"a\":1}}");
    ck_assert_msg(wait_count(alias, NULL, 1, 60000), "the first document was not indexed");
    /* One at a time: within one bulk only the newest revision of a case is sent. */
    produce_change(topic, type, a, 1, "{\"x\":\"text\"}");
    ck_assert(it_wait_sql(
        1, 60000, "SELECT count(*) FROM ccd.index_dead_letter WHERE reference = %" PRId64, a));
    produce_change(topic, type, a, 2, "{\"x\":\"text\"}");
    ck_assert(it_wait_sql(
        2, 60000, "SELECT count(*) FROM ccd.index_dead_letter WHERE reference = %" PRId64, a));
    snprintf(key, sizeof(key), "%" PRId64, a);
    it_produce(topic, key, "not json", 8); /* a dead letter of a without a revision */
    produce_change(topic, type, c, 5, "{\"x\":\"text\"}");
    ck_assert_msg(
        it_wait_sql(4, 60000,
                    "SELECT count(*) FROM ccd.index_dead_letter WHERE reference IN (%" PRId64
                    ", %" PRId64 ")",
                    a, c),
        "the refused changes were not all recorded");
    ck_assert_int_eq(dead_letters(a, "case_revision IN (1, 2)"), 2);

    /* Revision 3 of a is indexed: its dead letters at 1 and 2 are resolved. So is nothing of c's
     * when an older revision of c is indexed after its refused 5. */
    produce_change(topic, type, a, 3, "{\"x\":{\"a\":3}}");
    produce_change(topic, type, c, 3, "{\"x\":{\"a\":3}}");
    ck_assert_msg(
        it_wait_sql(0, 60000,
                    "SELECT count(*) FROM ccd.index_dead_letter WHERE reference = %" PRId64
                    " AND case_revision IS NOT NULL",
                    a),
        "the dead letters of case %" PRId64 " at revisions 1 and 2 are still there", a);
    ck_assert(wait_count(alias, "{\"term\":{\"case_revision\":3}}", 2, 30000));
    ck_assert_int_eq(dead_letters(a, "case_revision IS NULL"), 1);
    ck_assert_int_eq(dead_letters(c, "case_revision = 5"), 1);

    ck_assert_int_eq(it_stop(ix, SIGTERM, 60000), 0);
    PQclear(query("DELETE FROM ccd.index_dead_letter WHERE reference IN (%" PRId64 ", %" PRId64 ")",
                  a, c));
    it_es_drop(alias);
    it_drop_topic(topic);
    free(type);
    free(topic);
    free(group);
}
END_TEST

/* Runs casestream with args; returns its exit status and its output in out (first size bytes). */
static int run_casestream(const char *const *args, char *out, size_t size)
{
    char path[256];
    FILE *f;
    size_t n = 0;
    int rc;

    snprintf(path, sizeof(path), "build/it-logs/casestream-out-%d.txt", (int)getpid());
    rc = it_run("casestream", args, NULL, path, NULL);
    out[0] = '\0';
    if ((f = fopen(path, "r"))) {
        n = fread(out, 1, size - 1, f);
        fclose(f);
    }
    out[n] = '\0';
    return rc;
}

START_TEST(test_index_dead_letters_are_listed_and_retried_from_postgresql)
{
    char *type = it_unique("ItRetry");
    char alias[300], arg[300], out[65536];
    const char *reindex_args[] = {"reindex", arg, NULL};
    const char *list_args[] = {"index-dead-letters", "list", arg, NULL};
    const char *retry_args[] = {"index-dead-letters", "retry", arg, NULL};
    int64_t first = it_new_ref(), fixed = it_new_ref(), broken = it_new_ref(), gone = it_new_ref();
    long long before;
    json_t *line;

    ck_assert(cs_es_index_name(type, alias, sizeof(alias)));
    snprintf(arg, sizeof(arg), "--case-type=%s", type);
    insert_cases(type, first, 3);
    PQclear(query(
        "UPDATE ccd.case_data SET data = '{\"x\": {\"a\": 1}}' WHERE reference = %" PRId64, first));
    PQclear(query("UPDATE ccd.case_data SET data = '{\"x\": \"text\"}' WHERE reference IN (%" PRId64
                  ", %" PRId64 ")",
                  fixed, broken));
    ck_assert_int_eq(run_casestream(reindex_args, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "3 cases read, 1 written, 0 already newer in the index, 2 dead "
                              "letters"),
                  "reindex said: %s", out);
    /* A dead letter of a case PostgreSQL no longer holds. */
    PQclear(query("INSERT INTO ccd.index_dead_letter (reference, case_revision, index_name, reason)"
                  " VALUES (%" PRId64 ", 4, '%s', 'gone since')",
                  gone, alias));

    ck_assert_int_eq(run_casestream(list_args, out, sizeof(out)), 0);
    line = json_loads(out, JSON_DISABLE_EOF_CHECK, NULL); /* the newest first */
    ck_assert_ptr_nonnull(line);
    ck_assert_int_eq(json_integer_value(json_object_get(line, "reference")), gone);
    json_decref(line);
    ck_assert_msg(strstr(out, "data.x") && strstr(out, alias), "list said: %s", out);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         line = json_loads(strchr(out, '\n') + 1, JSON_DISABLE_EOF_CHECK, NULL),
                         "case_revision")),
                     1);
    json_decref(line);

    /* The cause of one is fixed (its data), the other's is not. */
    PQclear(query("UPDATE ccd.case_data SET data = '{\"x\": {\"a\": 2}}', case_revision = 2"
                  " WHERE reference = %" PRId64,
                  fixed));
    before = it_sql_int("SELECT max(id) FROM ccd.index_dead_letter");
    ck_assert_int_eq(run_casestream(retry_args, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "retried 3 cases: 1 written, 0 already newer in the index, 1 "
                              "refused again (recorded anew), 1 no longer in postgresql"),
                  "retry said: %s", out);
    ck_assert_int_eq(dead_letters(fixed, "true"), 0);
    ck_assert_int_eq(dead_letters(broken, "true"), 1);
    ck_assert_int_eq(it_sql_int("SELECT count(*) FROM ccd.index_dead_letter WHERE reference = "
                                "%" PRId64 " AND id > %lld AND kafka_topic IS NULL",
                                broken, before),
                     1);
    ck_assert_int_eq(dead_letters(gone, "true"), 1);
    ck_assert_int_eq(es_count(alias, "{\"term\":{\"case_revision\":2}}"), 1);

    PQclear(query("DELETE FROM ccd.index_dead_letter WHERE reference IN (%" PRId64 ", %" PRId64 ")",
                  broken, gone));
    it_es_drop(alias);
    free(type);
}
END_TEST

Suite *it_ccd_suite(void)
{
    Suite *s = suite_create("it_ccd");
    TCase *swap = tcase_create("swap");
    TCase *dead = tcase_create("dead_letters");

    tcase_set_timeout(swap, 300);
    tcase_add_test(swap, test_reindex_new_index_moves_the_alias_and_search_never_loses_a_document);
    tcase_set_timeout(dead, 300);
    tcase_add_test(dead, test_index_dead_letters_clear_when_a_later_revision_is_indexed);
    tcase_add_test(dead, test_index_dead_letters_are_listed_and_retried_from_postgresql);
    suite_add_tcase(s, swap);
    suite_add_tcase(s, dead);
    return s;
}
