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

/* Documents in index as a search sees them now (no refresh first), or -1. */
static long long es_count_now(const char *index)
{
    char path[400];
    long status;
    json_t *root;
    long long n;

    snprintf(path, sizeof(path), "/%s/_count", index);
    root = it_es_json("POST", path, "{\"query\":{\"match_all\":{}}}", &status);
    n = status == 200 ? json_integer_value(json_object_get(root, "count")) : -1;
    if (n < 0) {
        char *text = json_dumps(root, JSON_COMPACT);

        fprintf(stderr, "count of %s: HTTP %ld %s\n", index, status, text ? text : "");
        free(text);
    }
    json_decref(root);
    return n;
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
    root = it_es_json("GET", path, NULL, &status);
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
    json_decref(it_es_json("POST", path, NULL, &status));
    snprintf(path, sizeof(path), "/%s/_search", index);
    snprintf(body, sizeof(body),
             "{\"size\":0,\"query\":{\"range\":{\"reference\":{\"gte\":%" PRId64 ",\"lte\":%" PRId64
             "}}},\"aggs\":{\"r\":{\"sum\":{\"field\":\"case_revision\"}}}}",
             first, first + n - 1);
    root = it_es_json("POST", path, body, &status);
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

/* ---- the migration, on a database of the schema before it ------------------------------------ */

#define MIGRATION_CASES 50

START_TEST(test_migration_keeps_existing_cases_readable_and_indexable)
{
    char *db = it_unique("cs_it_mig"), *type = it_unique("ItMig"), *dir = it_unique("/tmp/cs-mig");
    char owner[1024], reader[1024], pg_owner[1100], pg_reader[1100], sql_dir[300], cmd[1024],
        arg[300], alias[300], out[4096];
    const char *migrate[] = {pg_owner, sql_dir, "migrate", NULL};
    const char *reindex[] = {pg_reader, "reindex", arg, NULL};
    const char *show[] = {pg_reader, "case", "show", "1003", NULL};
    PGconn *conn;
    PGresult *res;

    for (char *p = db; *p; p++)
        *p = *p == '-' ? '_' : *p;
    ck_assert(cs_es_index_name(type, alias, sizeof(alias)));
    PQclear(query("CREATE DATABASE %s", db));
    snprintf(owner, sizeof(owner), "%s dbname=%s", it_config()->pg, db);
    snprintf(reader, sizeof(reader), "%s dbname=%s",
             getenv("CASESTREAM_READER_PG") ? getenv("CASESTREAM_READER_PG") : it_config()->pg, db);
    snprintf(pg_owner, sizeof(pg_owner), "--pg=%s", owner);
    snprintf(pg_reader, sizeof(pg_reader), "--pg=%s", reader);
    snprintf(sql_dir, sizeof(sql_dir), "--sql-dir=%s", dir);
    snprintf(arg, sizeof(arg), "--case-type=%s", type);

    /* The schema before 007, with cases, history and notes in it. */
    snprintf(cmd, sizeof(cmd), "mkdir -p %s && cp sql/00[1-6]_*.sql %s/", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(it_run("casestream", migrate, NULL, NULL, NULL), 0);
    conn = PQconnectdb(owner);
    ck_assert_msg(PQstatus(conn) == CONNECTION_OK, "%s", PQerrorMessage(conn));
    snprintf(
        cmd, sizeof(cmd),
        "INSERT INTO ccd.case_data (reference, case_type_id, jurisdiction, state, data,"
        " version, case_revision, created_date) SELECT 1000 + g, '%s', 'IT', 'Open',"
        " jsonb_build_object('n', g), 1, 2, now() - (g || ' minutes')::interval"
        " FROM generate_series(1, %d) g;"
        "INSERT INTO ccd.case_event (case_reference, case_revision, version, event_id, user_id,"
        " state_id, security_classification, data, idempotency_key) SELECT reference, r, 1,"
        " 'e', 'u', 'Open', 'PUBLIC', data, gen_random_uuid() FROM ccd.case_data,"
        " generate_series(1, 2) r;"
        "INSERT INTO ccd.case_notes (case_reference, author, body, case_revision)"
        " SELECT reference, 'a', 'b', 2 FROM ccd.case_data",
        type, MIGRATION_CASES);
    res = PQexec(conn, cmd);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
    PQclear(res);

    /* 007 applies, and keeps every case. */
    snprintf(cmd, sizeof(cmd), "cp sql/007_*.sql %s/", dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(it_run("casestream", migrate, NULL, NULL, NULL), 0);
    res = PQexec(conn,
                 "SELECT count(*), count(DISTINCT id), min(id), max(id),"
                 " count(*) FILTER (WHERE supplementary_data = '{}'),"
                 " count(*) FILTER (WHERE data_classification IS NULL AND resolved_ttl IS NULL),"
                 " (SELECT count(*) FROM ccd.case_event), (SELECT count(*) FROM ccd.case_notes),"
                 " bool_and(ccd.change_document(c) ->> 'id' = c.id::text),"
                 " (SELECT reference FROM ccd.case_data ORDER BY created_date LIMIT 1) ="
                 " (SELECT reference FROM ccd.case_data WHERE id = 1)"
                 " FROM ccd.case_data c");
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    ck_assert_int_eq(atoi(PQgetvalue(res, 0, 0)), MIGRATION_CASES);
    ck_assert_int_eq(atoi(PQgetvalue(res, 0, 1)), MIGRATION_CASES);
    ck_assert_int_eq(atoi(PQgetvalue(res, 0, 2)), 1);
    ck_assert_int_eq(atoi(PQgetvalue(res, 0, 3)), MIGRATION_CASES);
    ck_assert_int_eq(atoi(PQgetvalue(res, 0, 4)), MIGRATION_CASES);
    ck_assert_int_eq(atoi(PQgetvalue(res, 0, 5)), MIGRATION_CASES);
    ck_assert_int_eq(atoi(PQgetvalue(res, 0, 6)), 2 * MIGRATION_CASES);
    ck_assert_int_eq(atoi(PQgetvalue(res, 0, 7)), MIGRATION_CASES);
    ck_assert_str_eq(PQgetvalue(res, 0, 8), "t");
    ck_assert_str_eq(PQgetvalue(res, 0, 9), "t"); /* numbered in the order they were created */
    PQclear(res);
    /* A new case takes the next id. */
    res = PQexec(conn, "INSERT INTO ccd.case_data (reference, case_type_id, jurisdiction, state,"
                       " data) VALUES (2000, 'Other', 'IT', 'Open', '{}') RETURNING id");
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    ck_assert_int_eq(atoi(PQgetvalue(res, 0, 0)), MIGRATION_CASES + 1);
    PQclear(res);
    PQfinish(conn);

    /* Indexable by the programs' roles. */
    ck_assert_int_eq(run_casestream(reindex, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "50 cases read, 50 written"), "reindex said: %s", out);
    ck_assert_int_eq(it_es_count(alias, NULL), MIGRATION_CASES);
    {
        char path[400];
        long status;
        json_t *hit;

        snprintf(path, sizeof(path), "/%s/_doc/%d", alias, MIGRATION_CASES);
        hit = it_es_json("GET", path, NULL, &status);
        ck_assert_int_eq(status, 200);
        ck_assert_int_eq(
            json_integer_value(json_object_get(json_object_get(hit, "_source"), "reference")),
            1001); /* the newest case, the last numbered */
        json_decref(hit);
    }

    /* The migrations after 007: casestream's own ids move to 2^62 and up (013), away from
     * CCD's; the ids given before stay. */
    snprintf(cmd, sizeof(cmd), "cp sql/0*.sql %s/", dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(it_run("casestream", migrate, NULL, NULL, NULL), 0);
    conn = PQconnectdb(owner);
    ck_assert_msg(PQstatus(conn) == CONNECTION_OK, "%s", PQerrorMessage(conn));
    res = PQexec(conn, "INSERT INTO ccd.case_data (reference, case_type_id, jurisdiction, state,"
                       " data) VALUES (2001, 'Other', 'IT', 'Open', '{}') RETURNING id,"
                       " (SELECT max(id) FROM ccd.case_data WHERE reference < 2001)");
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    ck_assert_str_eq(PQgetvalue(res, 0, 0), "4611686018427387904");
    ck_assert_int_eq(atoi(PQgetvalue(res, 0, 1)), MIGRATION_CASES + 1);
    PQclear(res);
    /* The cases with notes are marked so (015), the others not. */
    res = PQexec(conn, "SELECT count(*) FILTER (WHERE has_notes),"
                       " count(*) FILTER (WHERE NOT has_notes) FROM ccd.case_data");
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    ck_assert_int_eq(atoi(PQgetvalue(res, 0, 0)), MIGRATION_CASES);
    ck_assert_int_eq(atoi(PQgetvalue(res, 0, 1)), 2);
    PQclear(res);
    PQfinish(conn);

    /* Readable in CCD's shape by the programs' roles. */
    ck_assert_int_eq(run_casestream(show, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "\"id\":1003") && strstr(out, "\"revision\":2"), "case show said: %s",
                  out);

    it_es_drop(alias);
    PQclear(query("DROP DATABASE %s", db));
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(db);
    free(type);
    free(dir);
}
END_TEST

/* ---- the CCD fields, from a submission to the index ----------------------------------------- */

/* Plans a submission of case ref of case type type: the key fields, then fields (JSON members). */
static planned *plan_ccd(int64_t ref, const char *type, const char *event_id, const char *fields)
{
    char key[37], mkey[24], text[4096];

    new_key(key);
    snprintf(text, sizeof(text),
             "{\"idempotency_key\":\"%s\",\"case_reference\":%" PRId64 ",\"case_type\":\"%s\","
             "\"event_id\":\"%s\",\"user_id\":\"it-user\",%s}",
             key, ref, type, event_id, fields);
    snprintf(mkey, sizeof(mkey), "%" PRId64, ref);
    return plan_raw(ref, key, "applied", mkey, text, strlen(text));
}

/* True when the JSON text doc equals, as jsonb, what sql_expr (a jsonb expression) gives now. */
static bool equals_in_postgresql(const char *doc, const char *sql_expr)
{
    char sql[1024];
    const char *params[] = {doc};
    PGresult *res;
    bool same;

    snprintf(sql, sizeof(sql), "SELECT $1::jsonb = (%s)", sql_expr);
    res = PQexecParams(it_pg(), sql, 1, NULL, params, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    same = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return same;
}

static const char *str_of(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));

    ck_assert_msg(v != NULL, "no string %s", key);
    return v;
}

/* The mapping of field (a dotted path under properties) in the mappings answer of index. */
static json_t *field_mapping(json_t *mappings, const char *field)
{
    const char *index;
    json_t *v, *props = NULL;
    char path[256], *save, *part;

    /* {"<index>": {"mappings": {"properties": ...}}}, one index behind the alias. */
    json_object_foreach(mappings, index, v) props =
        json_object_get(json_object_get(v, "mappings"), "properties");
    snprintf(path, sizeof(path), "%s", field);
    for (part = strtok_r(path, ".", &save); part && props; part = strtok_r(NULL, ".", &save)) {
        json_t *f = json_object_get(props, part);
        char *next = save && *save ? save : NULL;

        if (!next)
            return f;
        props = json_object_get(f, "properties");
    }
    return NULL;
}

START_TEST(test_ccd_fields_round_trip_from_postgresql_to_the_change_document_and_the_index)
{
    char *type = it_unique("ItCcd"), *group = it_unique("it-ccd-indexer");
    char alias[300], want[400], got[1024], path[400], query_text[512];
    int64_t ref, id;
    it_msg *msgs = NULL;
    size_t n;
    json_t *doc = NULL, *src, *mappings, *f;
    const char *doc_text = NULL;
    long status;
    pid_t pid, ix;

    ck_assert(cs_es_index_name(type, alias, sizeof(alias)));
    world_new("ccd", 3);
    ref = new_ref();
    /* CCD's case fields come in Kafka submissions: the create's classification and retention
     * date, then a supplementary data update. */
    plan_ccd(ref, type, "create",
             "\"jurisdiction\":\"IT\",\"state\":\"Open\",\"data\":{\"applicant\":{\"name\":"
             "\"Ann\"}},\"data_classification\":{\"applicant\":{\"classification\":\"PUBLIC\","
             "\"value\":{\"name\":\"PRIVATE\"}}},\"resolved_ttl\":\"2032-03-01\"")
        ->revision = 1;
    send_range(0, W.nplan);
    pid = worker_start(NULL);
    wait_relay(pid);
    ck_assert(it_wait_sql(1, 60000, "SELECT count(*) FROM ccd.case_data WHERE reference = %" PRId64,
                          ref));
    id = it_sql_int("SELECT id FROM ccd.case_data WHERE reference = %" PRId64, ref);
    ck_assert_int_gt(id, 0);
    ck_assert_int_ne(id, ref);
    /* Dates no submission sets: fixed, to check their format. */
    PQclear(query("UPDATE ccd.case_data SET created_date = '2025-03-01 10:15:30.123456+00',"
                  " last_state_modified_date = '2025-03-02 08:00:01.5+00' WHERE reference = "
                  "%" PRId64,
                  ref));
    plan_ccd(ref, type, "updateSupplementaryData",
             "\"supplementary_data_updates\":{\"$set\":{\"HMCTSServiceId\":\"ABA1\"},"
             "\"$inc\":{\"orgs.o1\":2}}")
        ->revision = 2;
    /* A submission that adds a note only: the worker writes the change document again. */
    plan_ccd(ref, type, "addNote",
             "\"notes\":[{\"author\":\"clerk\",\"body\":\"Bundle received\"}]")
        ->revision = 3;
    send_range(1, W.nplan);

    /* The change document on case-changes. */
    for (long long deadline = cs_now_ms() + 60000; !doc && cs_now_ms() < deadline;) {
        n = read_topic(W.changes, 1, 30000, &msgs);
        for (size_t i = 0; i < n; i++) {
            json_t *d = json_loads(msgs[i].value, 0, NULL);

            if (json_integer_value(json_object_get(d, "case_revision")) == 3) {
                doc = d;
                doc_text = strdup(msgs[i].value);
            } else {
                json_decref(d);
            }
        }
        it_msgs_free(msgs, n);
        if (!doc)
            usleep(250 * 1000);
    }
    ck_assert_msg(doc != NULL, "no change document of revision 3 on %s", W.changes);
    snprintf(query_text, sizeof(query_text), "SELECT ccd.change_document(%" PRId64 "::bigint)",
             ref);
    ck_assert_msg(equals_in_postgresql(doc_text, query_text),
                  "the change document differs from ccd.change_document: %s", doc_text);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "id")), id);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "reference")), ref);
    ck_assert_str_eq(str_of(doc, "jurisdiction"), "IT");
    ck_assert_str_eq(str_of(doc, "case_type_id"), type);
    ck_assert_str_eq(str_of(doc, "case_type"), type);
    ck_assert_str_eq(str_of(doc, "state"), "Open");
    ck_assert_str_eq(str_of(doc, "security_classification"), "PUBLIC");
    ck_assert_str_eq(str_of(doc, "created_date"), "2025-03-01T10:15:30.123");
    ck_assert_str_eq(str_of(doc, "last_state_modified_date"), "2025-03-02T08:00:01.500");
    ck_assert_uint_eq(strlen(str_of(doc, "last_modified")), strlen("2025-03-02T08:00:01.500"));
    ck_assert_ptr_null(strchr(str_of(doc, "last_modified"), '+'));
    ck_assert_str_eq(str_of(json_object_get(doc, "supplementary_data"), "HMCTSServiceId"), "ABA1");
    ck_assert_str_eq(
        str_of(
            json_object_get(
                json_object_get(json_object_get(doc, "data_classification"), "applicant"), "value"),
            "name"),
        "PRIVATE");
    ck_assert_str_eq(str_of(json_object_get(json_object_get(doc, "data"), "applicant"), "name"),
                     "Ann");
    ck_assert_str_eq(str_of(doc, "resolved_ttl"), "2032-03-01");
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "case_revision")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "version")), 1);
    ck_assert_int_eq(
        json_integer_value(json_object_get(
            json_object_get(json_object_get(doc, "supplementary_data"), "orgs"), "o1")),
        2);
    ck_assert_uint_eq(json_array_size(json_object_get(doc, "notes")), 1);

    /* The document in Elasticsearch: under the id, at the revision, as published. */
    {
        char t[300], g[300];
        const char *args[] = {t, g, "--metrics-port=0", "--bulk-linger-ms=50", NULL};

        snprintf(t, sizeof(t), "--topic-changes=%s", W.changes);
        snprintf(g, sizeof(g), "--indexer-group=%s", group);
        ix = it_spawn("casestream-indexer", args, NULL);
    }
    snprintf(path, sizeof(path), "/%s/_doc/%" PRId64, alias, id);
    for (long long deadline = cs_now_ms() + 60000; cs_now_ms() < deadline; usleep(200 * 1000)) {
        json_t *hit = it_es_json("GET", path, NULL, &status);
        long long v = json_integer_value(json_object_get(hit, "_version"));

        json_decref(hit);
        if (status == 200 && v == 3)
            break;
    }
    {
        json_t *hit = it_es_json("GET", path, NULL, &status);
        char *text;

        ck_assert_int_eq(status, 200);
        ck_assert_int_eq(json_integer_value(json_object_get(hit, "_version")), 3);
        src = json_object_get(hit, "_source");
        text = json_dumps(src, JSON_COMPACT);
        ck_assert_msg(equals_in_postgresql(text, query_text),
                      "the indexed document differs from ccd.change_document: %s", text);
        free(text);
        json_decref(hit);
    }
    snprintf(want, sizeof(want), "%s-000001", alias);
    ck_assert_str_eq(alias_of(alias, got, sizeof(got)), want);

    /* Mapped as CCD's search expects it, and found by the queries CCD sends. */
    snprintf(path, sizeof(path), "/%s/_mapping", alias);
    mappings = it_es_json("GET", path, NULL, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_str_eq(str_of(field_mapping(mappings, "id"), "type"), "long");
    ck_assert_str_eq(str_of(field_mapping(mappings, "reference"), "type"), "long");
    f = field_mapping(mappings, "state");
    ck_assert_str_eq(str_of(f, "type"), "keyword");
    ck_assert_str_eq(str_of(f, "normalizer"), "lowercase");
    ck_assert_str_eq(str_of(field_mapping(mappings, "case_type_id"), "type"), "keyword");
    ck_assert_str_eq(str_of(field_mapping(mappings, "jurisdiction"), "type"), "keyword");
    ck_assert_str_eq(str_of(field_mapping(mappings, "security_classification"), "type"), "keyword");
    ck_assert_str_eq(str_of(field_mapping(mappings, "last_state_modified_date"), "type"), "date");
    ck_assert_ptr_nonnull(strstr(str_of(field_mapping(mappings, "created_date"), "format"),
                                 "strict_date_hour_minute_second_fraction"));
    ck_assert_str_eq(str_of(field_mapping(mappings, "resolved_ttl"), "type"), "date");
    ck_assert_ptr_nonnull(field_mapping(mappings, "supplementary_data.HMCTSServiceId"));
    ck_assert_ptr_nonnull(field_mapping(mappings, "data_classification.applicant.value.name"));
    json_decref(mappings);
    ck_assert_int_eq(it_es_count(alias, "{\"terms\":{\"state\":[\"open\"]}}"), 1);
    snprintf(query_text, sizeof(query_text), "{\"terms\":{\"reference\":[\"%" PRId64 "\"]}}", ref);
    ck_assert_int_eq(it_es_count(alias, "%s", query_text), 1);
    snprintf(query_text, sizeof(query_text), "{\"term\":{\"id\":%" PRId64 "}}", id);
    ck_assert_int_eq(it_es_count(alias, "%s", query_text), 1);
    snprintf(query_text, sizeof(query_text), "{\"term\":{\"case_type_id\":\"%s\"}}", type);
    ck_assert_int_eq(it_es_count(alias, "%s", query_text), 1);
    ck_assert_int_eq(
        it_es_count(alias, "{\"range\":{\"last_state_modified_date\":{\"gte\":"
                           "\"2025-03-02T08:00:01.500\",\"lte\":\"2025-03-02T08:00:01.500\"}}}"),
        1);
    ck_assert_int_eq(
        it_es_count(alias, "{\"range\":{\"created_date\":{\"lt\":\"2025-03-01T10:15:30.123\"}}}"),
        0);
    ck_assert_int_eq(it_es_count(alias, "{\"term\":{\"supplementary_data.HMCTSServiceId.keyword\":"
                                        "\"ABA1\"}}"),
                     1);
    ck_assert_int_eq(it_es_count(alias, "{\"term\":{\"resolved_ttl\":\"2032-03-01\"}}"), 1);
    ck_assert_int_eq(it_stop(ix, SIGTERM, 60000), 0);

    /* reindex writes the same document. */
    {
        char arg[300], out[256];
        const char *args[] = {"reindex", arg, NULL};
        json_t *hit;
        char *text;

        snprintf(arg, sizeof(arg), "--case-type=%s", type);
        snprintf(out, sizeof(out), "build/it-logs/reindex-ccd-%d.out", (int)getpid());
        ck_assert_int_eq(it_run("casestream", args, NULL, out, NULL), 0);
        snprintf(path, sizeof(path), "/%s/_doc/%" PRId64, alias, id);
        hit = it_es_json("GET", path, NULL, &status);
        ck_assert_int_eq(status, 200);
        text = json_dumps(json_object_get(hit, "_source"), JSON_COMPACT);
        snprintf(query_text, sizeof(query_text), "SELECT ccd.change_document(%" PRId64 "::bigint)",
                 ref);
        ck_assert(equals_in_postgresql(text, query_text));
        free(text);
        json_decref(hit);
    }
    worker_stop_last(pid);
    json_decref(doc);
    free((char *)doc_text);
    it_es_drop(alias);
    free(type);
    free(group);
}
END_TEST

/* ---- casestream case show|history in CCD's shapes ------------------------------------------- */

/* Runs `casestream case what ref` and returns its output lines parsed (caller decrefs). */
static json_t *case_command(const char *what, int64_t ref)
{
    char refs[24], out[262144];
    const char *args[] = {"case", what, refs, NULL};
    json_t *lines = json_array();
    char *line, *save;

    snprintf(refs, sizeof(refs), "%" PRId64, ref);
    ck_assert_int_eq(run_casestream(args, out, sizeof(out)), 0);
    for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);

        ck_assert_msg(o != NULL, "not JSON: %s (%s)", line, err.text);
        json_array_append_new(lines, o);
    }
    return lines;
}

/* The members of o, in order, joined with ",". */
static const char *members_of(const json_t *o, char *buf, size_t size)
{
    const char *key;
    json_t *v;
    size_t len = 0;

    buf[0] = '\0';
    json_object_foreach((json_t *)o, key, v) len +=
        (size_t)snprintf(buf + len, size - len, "%s%s", len ? "," : "", key);
    return buf;
}

START_TEST(test_case_show_and_history_print_ccd_shapes)
{
    char *type = it_unique("ItShape");
    char buf[1024];
    int64_t ref = it_new_ref();
    json_t *out, *cd, *w, *e;

    PQclear(
        query("INSERT INTO ccd.case_data (reference, case_type_id, jurisdiction, state,"
              " security_classification, data, data_classification, supplementary_data,"
              " resolved_ttl, version, case_revision, created_date, last_modified,"
              " last_state_modified_date) VALUES (%" PRId64 ", '%s', 'DIVORCE', 'Submitted',"
              " 'PRIVATE', '{\"applicant\": {\"name\": \"Ann\"}}', '{\"applicant\": \"PUBLIC\"}',"
              " '{\"HMCTSServiceId\": \"ABA1\"}', '2032-03-01', 3, 2,"
              " '2025-03-01 10:15:30.123+00', '2025-03-02 08:00:01.5+00',"
              " '2025-03-02 08:00:01.5+00')",
              ref, type));
    PQclear(
        query("INSERT INTO ccd.case_event (case_reference, case_revision, version, event_id,"
              " user_id, state_id, security_classification, data, idempotency_key, created_date)"
              " VALUES (%" PRId64 ", 1, 1, 'create', 'u1', 'Draft', 'PUBLIC', '{}',"
              " gen_random_uuid(), '2025-03-01 10:15:30.123+00')",
              ref));
    PQclear(query("INSERT INTO ccd.case_event (case_reference, case_revision, version, event_id,"
                  " event_name, user_id, user_first_name, user_last_name, summary, description,"
                  " state_id, state_name, case_type_version, security_classification, data,"
                  " data_classification, significant_item, proxied_by, proxied_by_first_name,"
                  " proxied_by_last_name, idempotency_key, created_date) VALUES (%" PRId64 ", 2, 3,"
                  " 'submit', 'Submit application', 'u2', 'Ann', 'Smith', 'sum', 'desc',"
                  " 'Submitted', 'Application submitted', 7, 'PRIVATE',"
                  " '{\"applicant\": {\"name\": \"Ann\"}}', '{\"applicant\": \"PUBLIC\"}',"
                  " '{\"type\": \"DOCUMENT\", \"description\": \"d\", \"url\": \"http://x\"}',"
                  " 'p1', 'Pat', 'Proxy', gen_random_uuid(), '2025-03-02 08:00:01.5+00')",
                  ref));
    /* case show: {case_details, revision}, CCD's CaseDetails with the blob as case_data. */
    out = case_command("show", ref);
    ck_assert_uint_eq(json_array_size(out), 1);
    ck_assert_str_eq(members_of(json_array_get(out, 0), buf, sizeof(buf)), "case_details,revision");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(out, 0), "revision")), 2);
    cd = json_object_get(json_array_get(out, 0), "case_details");
    ck_assert_str_eq(members_of(cd, buf, sizeof(buf)),
                     "id,version,jurisdiction,case_type_id,created_date,last_modified,"
                     "last_state_modified_date,state,security_classification,case_data,"
                     "data_classification,supplementary_data");
    /* CaseDetails' "id" is the reference on the wire; the internal id is not part of it. */
    ck_assert_int_eq(json_integer_value(json_object_get(cd, "id")), ref);
    ck_assert_int_eq(json_integer_value(json_object_get(cd, "version")), 3);
    ck_assert_str_eq(str_of(cd, "jurisdiction"), "DIVORCE");
    ck_assert_str_eq(str_of(cd, "case_type_id"), type);
    ck_assert_str_eq(str_of(cd, "created_date"), "2025-03-01T10:15:30.123");
    ck_assert_str_eq(str_of(cd, "last_modified"), "2025-03-02T08:00:01.500");
    ck_assert_str_eq(str_of(cd, "last_state_modified_date"), "2025-03-02T08:00:01.500");
    ck_assert_str_eq(str_of(cd, "state"), "Submitted");
    ck_assert_str_eq(str_of(cd, "security_classification"), "PRIVATE");
    ck_assert_str_eq(str_of(json_object_get(json_object_get(cd, "case_data"), "applicant"), "name"),
                     "Ann");
    ck_assert_str_eq(str_of(json_object_get(cd, "data_classification"), "applicant"), "PUBLIC");
    ck_assert_str_eq(str_of(json_object_get(cd, "supplementary_data"), "HMCTSServiceId"), "ABA1");
    json_decref(out);

    /* case history: AuditEvent wrappers {id, case_reference, event}, newest first. */
    out = case_command("history", ref);
    ck_assert_uint_eq(json_array_size(out), 2);
    w = json_array_get(out, 0);
    ck_assert_str_eq(members_of(w, buf, sizeof(buf)), "id,case_reference,event");
    ck_assert_int_eq(json_integer_value(json_object_get(w, "id")),
                     it_sql_int("SELECT id FROM ccd.case_event WHERE case_reference = %" PRId64
                                " AND case_revision = 2",
                                ref));
    ck_assert_int_eq(json_integer_value(json_object_get(w, "case_reference")), ref);
    e = json_object_get(w, "event");
    ck_assert_str_eq(members_of(e, buf, sizeof(buf)),
                     "id,summary,description,user_id,user_first_name,user_last_name,event_name,"
                     "created_date,case_type_id,case_type_version,state_id,state_name,data,"
                     "data_classification,security_classification,significant_item,proxied_by,"
                     "proxied_by_first_name,proxied_by_last_name");
    ck_assert_str_eq(str_of(e, "id"), "submit");
    ck_assert_str_eq(str_of(e, "event_name"), "Submit application");
    ck_assert_str_eq(str_of(e, "summary"), "sum");
    ck_assert_str_eq(str_of(e, "description"), "desc");
    ck_assert_str_eq(str_of(e, "user_id"), "u2");
    ck_assert_str_eq(str_of(e, "user_first_name"), "Ann");
    ck_assert_str_eq(str_of(e, "user_last_name"), "Smith");
    ck_assert_str_eq(str_of(e, "created_date"), "2025-03-02T08:00:01.500");
    ck_assert_str_eq(str_of(e, "case_type_id"), type);
    ck_assert_int_eq(json_integer_value(json_object_get(e, "case_type_version")), 7);
    ck_assert_str_eq(str_of(e, "state_id"), "Submitted");
    ck_assert_str_eq(str_of(e, "state_name"), "Application submitted");
    ck_assert_str_eq(str_of(json_object_get(json_object_get(e, "data"), "applicant"), "name"),
                     "Ann");
    ck_assert_str_eq(str_of(json_object_get(e, "data_classification"), "applicant"), "PUBLIC");
    ck_assert_str_eq(str_of(e, "security_classification"), "PRIVATE");
    ck_assert_str_eq(str_of(json_object_get(e, "significant_item"), "type"), "DOCUMENT");
    ck_assert_str_eq(str_of(json_object_get(e, "significant_item"), "url"), "http://x");
    ck_assert_str_eq(str_of(e, "proxied_by"), "p1");
    ck_assert_str_eq(str_of(e, "proxied_by_first_name"), "Pat");
    ck_assert_str_eq(str_of(e, "proxied_by_last_name"), "Proxy");
    /* What casestream has no value for is null. */
    e = json_object_get(json_array_get(out, 1), "event");
    ck_assert_str_eq(str_of(e, "id"), "create");
    ck_assert(json_is_null(json_object_get(e, "event_name")));
    ck_assert(json_is_null(json_object_get(e, "user_first_name")));
    ck_assert(json_is_null(json_object_get(e, "case_type_version")));
    ck_assert(json_is_null(json_object_get(e, "significant_item")));
    ck_assert(json_is_null(json_object_get(e, "proxied_by")));
    json_decref(out);
    free(type);
}
END_TEST

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
    json_decref(it_es_json("PUT", path, "{}", &status));
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
    json_decref(it_es_json("POST", "/_bulk?refresh=true", body.buf, &status));
    ck_assert_int_eq(status, 200);
    cs_bulk_free(&body);
    ck_assert_int_eq(it_es_count(alias, NULL), SWAP_CASES);

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
    ck_assert_int_eq(it_es_count(alias, NULL), SWAP_CASES + SWAP_NEW);
    snprintf(path, sizeof(path), "/%s/_doc/%lld", alias,
             it_sql_int("SELECT id FROM ccd.case_data WHERE reference = %" PRId64, first));
    json_decref(it_es_json("GET", path, NULL, &status));
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
    json_decref(it_es_json("HEAD", path, NULL, &status));
    ck_assert_int_eq(status, 404);
    for (long long deadline = cs_now_ms() + 60000;
         cs_now_ms() < deadline && indexed_at_pg_revision(alias, first, SWAP_CASES) != SWAP_CASES;)
        usleep(200 * 1000);
    ck_assert_int_eq(indexed_at_pg_revision(alias, first, SWAP_CASES), SWAP_CASES);
    ck_assert_int_eq(it_es_count(alias, NULL), SWAP_CASES + SWAP_NEW);

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
    ck_assert_msg(it_es_wait_count(alias, NULL, 1, 60000), "the first document was not indexed");
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
    ck_assert(it_es_wait_count(alias, "{\"term\":{\"case_revision\":3}}", 2, 30000));
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
    ck_assert_int_eq(it_es_count(alias, "{\"term\":{\"case_revision\":2}}"), 1);

    PQclear(query("DELETE FROM ccd.index_dead_letter WHERE reference IN (%" PRId64 ", %" PRId64 ")",
                  broken, gone));
    it_es_drop(alias);
    free(type);
}
END_TEST

Suite *it_ccd_suite(void)
{
    Suite *s = suite_create("it_ccd");
    TCase *migration = tcase_create("migration");
    TCase *documents = tcase_create("documents");
    TCase *shapes = tcase_create("shapes");
    TCase *swap = tcase_create("swap");
    TCase *dead = tcase_create("dead_letters");

    tcase_set_timeout(documents, 300);
    tcase_add_checked_fixture(documents, services_up, NULL);
    tcase_add_test(documents,
                   test_ccd_fields_round_trip_from_postgresql_to_the_change_document_and_the_index);
    tcase_add_test(shapes, test_case_show_and_history_print_ccd_shapes);
    tcase_set_timeout(migration, 120);
    tcase_add_test(migration, test_migration_keeps_existing_cases_readable_and_indexable);

    tcase_set_timeout(swap, 300);
    tcase_add_test(swap, test_reindex_new_index_moves_the_alias_and_search_never_loses_a_document);
    tcase_set_timeout(dead, 300);
    tcase_add_test(dead, test_index_dead_letters_clear_when_a_later_revision_is_indexed);
    tcase_add_test(dead, test_index_dead_letters_are_listed_and_retried_from_postgresql);
    suite_add_tcase(s, migration);
    suite_add_tcase(s, documents);
    suite_add_tcase(s, shapes);
    suite_add_tcase(s, swap);
    suite_add_tcase(s, dead);
    return s;
}
