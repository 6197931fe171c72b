/* Integration tests of CCD's views of the cases (lib/ccd_view.h, DESIGN §6) against the real
 * services: cases made by the real worker, each answer checked with the rules CCD's client
 * applies (tests/ccd_contract.h): the cases read (reference order, unknown references left out,
 * duplicates once, the bound), the history (newest first) and one event (404 when absent or of
 * another case), the notes projection (newest first; in history, the notes up to that event),
 * and the submit answer, byte-identical after the case moved on.
 *
 * Each test runs the worker on topics and a group of its own (tests/it_world.h). */
#include "it_world.h"
#include "runner.h"

#include "ccd_contract.h"
#include "ccd_view.h"
#include "db.h"
#include "err.h"
#include "jsondump.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cs_ccd_view PLAIN = {.notes_field = NULL};
static const cs_ccd_view NOTES = {.notes_field = "caseNotes"};

/* A connection of the role the readers of cases have (the stack's reader role when it names
 * one); the test fails if it cannot connect. */
static PGconn *reader_session(void)
{
    const char *conninfo = getenv("CASESTREAM_READER_PG");
    char errstr[512];
    PGconn *c =
        cs_db_connect(conninfo && *conninfo ? conninfo : it_config()->pg, errstr, sizeof(errstr));

    ck_assert_msg(c != NULL, "could not connect to postgresql: %s", errstr);
    return c;
}

/* A reader's connection readied for the views, as casestream-api readies each. */
static PGconn *reader(void)
{
    PGconn *c = reader_session();
    char errstr[512];

    ck_assert_msg(cs_ccd_view_session(c, errstr, sizeof(errstr)) == CS_OK, "%s", errstr);
    return c;
}

static json_t *parse(const char *body)
{
    json_error_t jerr;
    json_t *j = json_loads(body, JSON_DECODE_ANY, &jerr);

    ck_assert_msg(j != NULL, "view is not JSON (%s): %s", jerr.text, body);
    return j;
}

/* The "body" members of the notes projected into case_data c, newest first, as "a|b|c". */
static void note_bodies(const json_t *case_data, char *out, size_t out_size)
{
    const json_t *notes = json_object_get(case_data, "caseNotes"), *n;
    size_t i, len = 0;

    out[0] = '\0';
    ck_assert_msg(json_is_array(notes), "case_data has no caseNotes collection");
    json_array_foreach(notes, i, n)
    {
        const json_t *value = json_object_get(n, "value");

        ck_assert_msg(json_is_string(json_object_get(n, "id")), "a note's id is not a string");
        ck_assert_msg(json_object_size(value) == 3 && json_object_get(value, "author") &&
                          json_is_string(json_object_get(value, "created_date")),
                      "a note's value is not {author, body, created_date}");
        len += (size_t)snprintf(out + len, out_size - len, "%s%s", i ? "|" : "",
                                json_string_value(json_object_get(value, "body")));
    }
}

/* cs_ccd_view_submitted of key on conn, checked with CCD's rules; *created as it says. */
static char *submitted(PGconn *conn, const cs_ccd_case *c, const char *key, bool *created)
{
    char errstr[512], why[512];
    char *body = NULL;
    int rc = cs_ccd_view_submitted(conn, &NOTES, c->reference, key, &body, created, errstr,
                                   sizeof(errstr));

    ck_assert_msg(rc == CS_OK, "submitted %s: %d %s", key, rc, errstr);
    ck_assert_msg(cs_ccd_contract_submitted(body, c, why, sizeof(why)), "%s: %s", why, body);
    return body;
}

START_TEST(test_ccd_view_cases_history_and_events_as_ccd_reads_them)
{
    PGconn *conn;
    int64_t a, b, unknown;
    cs_ccd_case found[2];
    long long refs[4], many[CS_CCD_VIEW_MAX_REFS + 1] = {0}, first_id, second_id;
    char errstr[512], why[512], bodies[256];
    char *body = NULL;
    json_t *j, *e;
    outcome *o;
    size_t n, i;
    pid_t pid;

    world_new("ccd-view", 1);
    a = new_ref();
    b = new_ref();
    unknown = new_ref();
    plan_create(a, NULL);
    plan_sub(a, NULL, "applied", "edit",
             "{\"data_merge\": {\"n\": 1, \"r\": 0.5, \"big\": 1e19, \"r2\": 1.50,"
             " \"ctl\": \"a\\u001fb\\u00e9\\\"\"},"
             " \"notes\": [{\"author\": \"ann\", \"body\": \"one\"}]}")
        ->revision = 2;
    plan_sub(a, NULL, "applied", "review",
             "{\"state\": \"Review\", \"notes\": [{\"author\": \"bob\", \"body\": \"two\"},"
             " {\"author\": \"cy\", \"body\": \"three\"}]}")
        ->revision = 3;
    plan_create(b, NULL);
    pid = worker_start(NULL);
    send_range(0, W.nplan);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    outcomes_free(o, n);
    worker_stop(pid);
    conn = reader();
    found[0] = (cs_ccd_case){a, CASE_TYPE, "IT"};
    found[1] = (cs_ccd_case){b, CASE_TYPE, "IT"};

    /* Cases: ordered by reference, the unknown one left out, a duplicate once. */
    refs[0] = b;
    refs[1] = unknown;
    refs[2] = a;
    refs[3] = a;
    ck_assert_int_eq(cs_ccd_view_cases(conn, &PLAIN, refs, 4, &body, errstr, sizeof(errstr)),
                     CS_OK);
    ck_assert_msg(cs_ccd_contract_cases(body, found, 2, why, sizeof(why)), "%s: %s", why, body);
    j = parse(body);
    e = json_object_get(json_array_get(j, 0), "case_details");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(j, 0), "revision")), 3);
    ck_assert_str_eq(json_string_value(json_object_get(e, "state")), "Review");
    ck_assert_ptr_null(json_object_get(json_object_get(e, "case_data"), "caseNotes"));
    /* The numbers as stored: 1e19 a real (positional with a fraction), not an integer. */
    ck_assert_msg(strstr(body, "\"big\":10000000000000000000.0"), "%s", body);
    ck_assert_msg(strstr(body, "\"r\":0.5"), "%s", body);
    ck_assert_msg(strstr(body, "\"r2\":1.5,"), "%s", body);
    /* Strings as jansson writes them (PostgreSQL writes \u001f, jansson \u001F; é as is), and
     * the whole body as cs_json_dumps writes what jansson reads. */
    ck_assert_msg(strstr(body, "\"ctl\":\"a\\u001Fb\xc3\xa9\\\"\""), "%s", body);
    {
        json_error_t jerr;
        json_t *read = cs_json_loads_stored(body, strlen(body), &jerr);
        char *again = read ? cs_json_dumps(read) : NULL;

        ck_assert_msg(again && strcmp(again, body) == 0, "not as jansson writes it: %s", body);
        free(again);
        json_decref(read);
    }
    json_decref(j);
    free(body);
    /* With the notes projected: all of them, newest first. */
    ck_assert_int_eq(cs_ccd_view_cases(conn, &NOTES, refs, 4, &body, errstr, sizeof(errstr)),
                     CS_OK);
    ck_assert_msg(cs_ccd_contract_cases(body, found, 2, why, sizeof(why)), "%s: %s", why, body);
    j = parse(body);
    note_bodies(json_object_get(json_object_get(json_array_get(j, 0), "case_details"), "case_data"),
                bodies, sizeof(bodies));
    ck_assert_str_eq(bodies, "three|two|one");
    note_bodies(json_object_get(json_object_get(json_array_get(j, 1), "case_details"), "case_data"),
                bodies, sizeof(bodies));
    ck_assert_str_eq(bodies, "");
    json_decref(j);
    free(body);
    /* One reference is read by a query of its own: the same bytes as with others. */
    for (i = 0; i < 2; i++) {
        const cs_ccd_view *view = i ? &NOTES : &PLAIN;
        long long pair[2] = {a, unknown};
        char *alone = NULL;

        ck_assert_int_eq(cs_ccd_view_cases(conn, view, pair, 2, &body, errstr, sizeof(errstr)),
                         CS_OK);
        ck_assert_int_eq(cs_ccd_view_cases(conn, view, pair, 1, &alone, errstr, sizeof(errstr)),
                         CS_OK);
        ck_assert_str_eq(alone, body);
        free(alone);
        free(body);
    }
    /* Only unknown references: an empty list (CCD reports the case not found). The bound. */
    ck_assert_int_eq(cs_ccd_view_cases(conn, &PLAIN, &refs[1], 1, &body, errstr, sizeof(errstr)),
                     CS_OK);
    ck_assert_str_eq(body, "[]");
    free(body);
    refs[2] = unknown;
    ck_assert_int_eq(cs_ccd_view_cases(conn, &NOTES, &refs[1], 2, &body, errstr, sizeof(errstr)),
                     CS_OK);
    ck_assert_str_eq(body, "[]");
    free(body);
    refs[2] = a;
    for (i = 0; i < CS_CCD_VIEW_MAX_REFS + 1; i++)
        many[i] = a;
    ck_assert_int_eq(
        cs_ccd_view_cases(conn, &PLAIN, many, CS_CCD_VIEW_MAX_REFS, &body, errstr, sizeof(errstr)),
        CS_OK);
    ck_assert_msg(cs_ccd_contract_cases(body, found, 1, why, sizeof(why)), "%s: %s", why, body);
    free(body);
    ck_assert_int_eq(cs_ccd_view_cases(conn, &PLAIN, many, CS_CCD_VIEW_MAX_REFS + 1, &body, errstr,
                                       sizeof(errstr)),
                     CS_ERR_INVALID);
    ck_assert_ptr_null(body);

    /* History: newest first, the blob after each event and the notes up to it. */
    ck_assert_int_eq(cs_ccd_view_history(conn, &NOTES, a, &body, errstr, sizeof(errstr)), CS_OK);
    ck_assert_msg(cs_ccd_contract_history(body, &found[0], why, sizeof(why)), "%s: %s", why, body);
    j = parse(body);
    ck_assert_int_eq(json_array_size(j), 3);
    {
        static const char *const want_events[] = {"review", "edit", "create"};
        static const char *const want_notes[] = {"three|two|one", "one", ""};
        long long last_id = INT64_MAX;

        json_array_foreach(j, i, e)
        {
            const json_t *ev = json_object_get(e, "event");
            long long id = json_integer_value(json_object_get(e, "id"));

            ck_assert_str_eq(json_string_value(json_object_get(ev, "id")), want_events[i]);
            ck_assert_msg(id < last_id, "history ids not newest first: %s", body);
            last_id = id;
            note_bodies(json_object_get(ev, "data"), bodies, sizeof(bodies));
            ck_assert_str_eq(bodies, want_notes[i]);
        }
        /* The blob after the edit, in the edit's row. */
        e = json_object_get(json_object_get(json_array_get(j, 1), "event"), "data");
        ck_assert_int_eq(json_integer_value(json_object_get(e, "n")), 1);
        ck_assert_str_eq(json_string_value(json_object_get(
                             json_object_get(json_array_get(j, 2), "event"), "state_id")),
                         "Open");
    }
    first_id = json_integer_value(json_object_get(json_array_get(j, 2), "id"));
    second_id = json_integer_value(json_object_get(json_array_get(j, 1), "id"));
    json_decref(j);
    free(body);
    ck_assert_int_eq(cs_ccd_view_history(conn, &PLAIN, b, &body, errstr, sizeof(errstr)), CS_OK);
    ck_assert_msg(cs_ccd_contract_history(body, &found[1], why, sizeof(why)), "%s: %s", why, body);
    free(body);
    ck_assert_int_eq(cs_ccd_view_history(conn, &PLAIN, unknown, &body, errstr, sizeof(errstr)),
                     CS_ERR_NOTFOUND);
    ck_assert_ptr_null(body);

    /* One event: as in the history; absent, or of another case: not found. */
    ck_assert_int_eq(cs_ccd_view_event(conn, &NOTES, a, second_id, &body, errstr, sizeof(errstr)),
                     CS_OK);
    ck_assert_msg(cs_ccd_contract_event(body, &found[0], second_id, why, sizeof(why)), "%s: %s",
                  why, body);
    j = parse(body);
    note_bodies(json_object_get(json_object_get(j, "event"), "data"), bodies, sizeof(bodies));
    ck_assert_str_eq(bodies, "one");
    json_decref(j);
    free(body);
    ck_assert_int_eq(cs_ccd_view_event(conn, &PLAIN, a, first_id, &body, errstr, sizeof(errstr)),
                     CS_OK);
    ck_assert_msg(cs_ccd_contract_event(body, &found[0], first_id, why, sizeof(why)), "%s: %s", why,
                  body);
    free(body);
    ck_assert_int_eq(cs_ccd_view_event(conn, &PLAIN, b, second_id, &body, errstr, sizeof(errstr)),
                     CS_ERR_NOTFOUND);
    ck_assert_int_eq(cs_ccd_view_event(conn, &PLAIN, a, INT64_MAX, &body, errstr, sizeof(errstr)),
                     CS_ERR_NOTFOUND);
    ck_assert_ptr_null(body);
    PQfinish(conn);
}
END_TEST

START_TEST(test_ccd_view_submitted_is_byte_identical_after_the_case_moved_on)
{
    PGconn *conn;
    int64_t ref, other;
    cs_ccd_case c;
    planned *create, *update, *sup, *last;
    char *first[3], *again[3], *body = NULL, errstr[512], bodies[256];
    const char *keys[3];
    bool created;
    json_t *j, *d, *now;
    outcome *o;
    size_t n;
    pid_t pid;

    world_new("ccd-view-submitted", 1);
    ref = new_ref();
    other = new_ref();
    c = (cs_ccd_case){ref, CASE_TYPE, "IT"};
    create = plan_create(ref, NULL);
    update = plan_sub(ref, NULL, "applied", "review",
                      "{\"state\": \"Review\", \"data_merge\": {\"n\": 1},"
                      " \"security_classification\": \"PRIVATE\","
                      " \"data_classification\": {\"n\": \"PRIVATE\"},"
                      " \"notes\": [{\"author\": \"ann\", \"body\": \"one\"}]}");
    update->revision = 2;
    sup = plan_sub(ref, NULL, "applied", "setSupplementary",
                   "{\"supplementary_data_updates\": {\"$set\": {\"orgs.org1\": \"Y\"}}}");
    sup->revision = 3;
    plan_create(other, NULL);
    pid = worker_start(NULL);
    send_range(0, W.nplan);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    outcomes_free(o, n);
    keys[0] = create->key;
    keys[1] = update->key;
    keys[2] = sup->key;

    conn = reader();
    for (int i = 0; i < 3; i++) {
        first[i] = submitted(conn, &c, keys[i], &created);
        ck_assert_msg(created == (i == 0), "event %d: created %d", i, created);
    }
    /* The case right after the update: its revision, version, state, classifications, notes. */
    j = parse(first[1]);
    d = json_object_get(j, "case_details");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "revision")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(d, "version")), 2);
    ck_assert_str_eq(json_string_value(json_object_get(d, "state")), "Review");
    ck_assert_str_eq(json_string_value(json_object_get(d, "security_classification")), "PRIVATE");
    ck_assert_str_eq(json_string_value(json_object_get(d, "last_state_modified_date")),
                     json_string_value(json_object_get(d, "last_modified")));
    ck_assert_int_eq(json_object_size(json_object_get(d, "supplementary_data")), 0);
    note_bodies(json_object_get(d, "case_data"), bodies, sizeof(bodies));
    ck_assert_str_eq(bodies, "one");
    json_decref(j);
    /* Right after the supplementary data update: the map, version unchanged; and (its latest
     * event) the case as it is now. */
    j = parse(first[2]);
    d = json_object_get(j, "case_details");
    ck_assert_int_eq(json_integer_value(json_object_get(d, "version")), 2);
    ck_assert_str_eq(
        json_string_value(json_object_get(
            json_object_get(json_object_get(d, "supplementary_data"), "orgs"), "org1")),
        "Y");
    ck_assert_int_eq(
        cs_ccd_view_cases(conn, &NOTES, &c.reference, 1, &body, errstr, sizeof(errstr)), CS_OK);
    now = parse(body);
    ck_assert_msg(json_equal(d, json_object_get(json_array_get(now, 0), "case_details")),
                  "the answer of the latest event is not the case as it is: %s and %s", first[2],
                  body);
    json_decref(now);
    json_decref(j);
    free(body);
    PQfinish(conn);

    /* The case moves on: blob, state, classification, notes, supplementary data, and a repeat
     * of the update's key (a duplicate). */
    plan_sub(ref, NULL, "applied", "close",
             "{\"state\": \"Closed\", \"data_merge\": {\"n\": 2, \"x\": [1, 2.5]},"
             " \"security_classification\": \"RESTRICTED\", \"data_classification\": {},"
             " \"notes\": [{\"author\": \"bob\", \"body\": \"two\"}]}")
        ->revision = 4;
    plan_sub(ref, NULL, "applied", "incSupplementary",
             "{\"supplementary_data_updates\": {\"$inc\": {\"views\": 1}, \"$set\": "
             "{\"orgs.org1\": \"N\"}}}")
        ->revision = 5;
    last = plan_raw(ref, update->key, "duplicate", update->mkey, update->value, update->len);
    last->revision = 2;
    send_range(W.nplan - 3, W.nplan);
    o = read_outcomes(&n);
    check_planned_outcomes(o, n);
    outcomes_free(o, n);
    worker_stop(pid);
    ck_assert_int_eq(it_sql_int("SELECT case_revision FROM ccd.case_data WHERE reference = "
                                "%" PRId64,
                                ref),
                     5);

    /* On a new connection, the same bytes. */
    conn = reader();
    for (int i = 0; i < 3; i++) {
        again[i] = submitted(conn, &c, keys[i], &created);
        ck_assert_msg(created == (i == 0), "event %d: created %d", i, created);
        ck_assert_msg(strcmp(first[i], again[i]) == 0, "event %d answered\n%s\nthen\n%s", i,
                      first[i], again[i]);
        free(first[i]);
        free(again[i]);
    }
    /* A key the case never had, another case's key, a key that is not a UUID. */
    {
        char fresh[37];

        new_key(fresh);
        ck_assert_int_eq(cs_ccd_view_submitted(conn, &NOTES, ref, fresh, &body, &created, errstr,
                                               sizeof(errstr)),
                         CS_ERR_NOTFOUND);
        ck_assert_int_eq(cs_ccd_view_submitted(conn, &NOTES, other, update->key, &body, &created,
                                               errstr, sizeof(errstr)),
                         CS_ERR_NOTFOUND);
        ck_assert_int_eq(cs_ccd_view_submitted(conn, &NOTES, ref, "not-a-key", &body, &created,
                                               errstr, sizeof(errstr)),
                         CS_ERR_INVALID);
        ck_assert_ptr_null(body);
    }
    PQfinish(conn);
}
END_TEST

/* How many of the views' statements conn's session has prepared. */
static long long view_statements(PGconn *conn)
{
    PGresult *res = PQexec(
        conn, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'cs\\_ccd\\_view\\_%'");
    long long n;

    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQerrorMessage(conn));
    n = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

/* A session prepares the views' statements when it starts, before any read (so that no read
 * meets a statement its session lacks: an ERROR in the server's log each time); one that lost
 * them (DISCARD ALL) prepares a statement again when it runs it. */
START_TEST(test_ccd_view_session_prepares_its_statements_when_it_starts)
{
    PGconn *conn = reader_session();
    const long long refs[1] = {1};
    cs_ccd_view_rows *rows = NULL;
    char errstr[512];
    PGresult *res;

    ck_assert_int_eq(view_statements(conn), 0);
    ck_assert_msg(cs_ccd_view_session(conn, errstr, sizeof(errstr)) == CS_OK, "%s", errstr);
    ck_assert_int_eq(view_statements(conn), 5);
    ck_assert_msg(cs_ccd_view_case_rows(conn, &PLAIN, refs, 1, &rows, errstr, sizeof(errstr)) ==
                      CS_OK,
                  "%s", errstr);
    cs_ccd_view_rows_free(rows);
    rows = NULL;
    res = PQexec(conn, "DISCARD ALL");
    ck_assert_int_eq(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    ck_assert_int_eq(view_statements(conn), 0);
    ck_assert_msg(cs_ccd_view_case_rows(conn, &PLAIN, refs, 1, &rows, errstr, sizeof(errstr)) ==
                      CS_OK,
                  "%s", errstr);
    cs_ccd_view_rows_free(rows);
    ck_assert_int_eq(view_statements(conn), 1);
    PQfinish(conn);
}
END_TEST

Suite *it_ccd_view_suite(void)
{
    Suite *s = suite_create("it_ccd_view");
    TCase *tc = tcase_create("views");

    tcase_set_timeout(tc, 200);
    tcase_add_checked_fixture(tc, services_up, NULL);
    tcase_add_test(tc, test_ccd_view_cases_history_and_events_as_ccd_reads_them);
    tcase_add_test(tc, test_ccd_view_submitted_is_byte_identical_after_the_case_moved_on);
    tcase_add_test(tc, test_ccd_view_session_prepares_its_statements_when_it_starts);
    suite_add_tcase(s, tc);
    return s;
}
