/* Integration tests of casestream-api: CCD's calls over HTTP against the real services, with the
 * real worker on topics of this test's own (tests/it_world.h), every answer checked with the
 * rules CCD's client applies (tests/ccd_contract.h). Each test uses a case type of its own. */
#include "ccd_contract.h"
#include "it_proxy.h"
#include "it_support.h"
#include "it_world.h"
#include "runner.h"

#include "fault.h"
#include "jwt.h"
#include "run.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define SECRET "casestream-api integration test secret, 32 bytes or more"

/* The API under test. */
static struct {
    pid_t pid;
    int port;
    char key_file[256];
    char case_type[64];
    cs_jwt_key *key;
    char *s2s; /* a valid ServiceAuthorization for ccd_data */
} A;

/* A free loopback port (bound and released: another process could take it meanwhile, which
 * would fail the API's start loudly). */
static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* A case reference as CCD makes them, 16 digits, that no earlier run has used: microseconds
 * since the epoch (16 digits until 2286), then one more for each. */
static int64_t api_ref(void)
{
    static int64_t base, counter;

    if (!base) {
        struct timeval tv;

        gettimeofday(&tv, NULL);
        base = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
    }
    return base + ++counter * 10;
}

/* --- HTTP ------------------------------------------------------------------------------ */

typedef struct reply {
    long status;
    char *body;
    size_t len;
    char retry_after[32];
    char allow[64];
} reply;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    reply *r = userdata;
    size_t n = size * nmemb;
    char *grown = realloc(r->body, r->len + n + 1);

    if (!grown)
        return 0;
    memcpy(grown + r->len, ptr, n);
    r->len += n;
    grown[r->len] = '\0';
    r->body = grown;
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    reply *r = userdata;
    size_t n = size * nmemb;

    if (n > 13 && strncasecmp(ptr, "Retry-After: ", 13) == 0)
        snprintf(r->retry_after, sizeof(r->retry_after), "%.*s", (int)strcspn(ptr + 13, "\r\n"),
                 ptr + 13);
    if (n > 7 && strncasecmp(ptr, "Allow: ", 7) == 0)
        snprintf(r->allow, sizeof(r->allow), "%.*s", (int)strcspn(ptr + 7, "\r\n"), ptr + 7);
    return n;
}

static void reply_clear(reply *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* One request to the API; headers is a NULL-terminated list of "Name: value" (NULL = the
 * default S2S, Authorization and JSON content type). Fails the test when the API does not
 * answer at all. */
static reply http(const char *method, const char *path, const char *const *headers,
                  const char *body, long body_len)
{
    CURL *c = curl_easy_init();
    struct curl_slist *list = NULL;
    char url[4096], s2s[1024];
    reply r = {0};
    CURLcode rc;

    ck_assert_ptr_nonnull(c);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", A.port, path);
    if (!headers) {
        snprintf(s2s, sizeof(s2s), "ServiceAuthorization: Bearer %s", A.s2s);
        list = curl_slist_append(list, s2s);
        list = curl_slist_append(
            list, "Authorization: Bearer "
                  /* {"alg":"HS256","typ":"JWT"} . {"sub":"ann@example.com","uid":"u-ann",
                   * "given_name":"Ann","family_name":"Clerk"} . signature (not checked) */
                  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                  "eyJzdWIiOiJhbm5AZXhhbXBsZS5jb20iLCJ1aWQiOiJ1LWFubiIsImdpdmVuX25hbWUiOiJBbm4iLC"
                  "JmYW1pbHlfbmFtZSI6IkNsZXJrIn0.c2lnbmF0dXJl");
        list = curl_slist_append(list, "Content-Type: application/json");
        list = curl_slist_append(list, "Idempotency-Key: 6f1c2b4e-7d1a-4c3e-9b2a-1f0e5d6c7b8a");
    } else {
        for (size_t i = 0; headers[i]; i++)
            list = curl_slist_append(list, headers[i]);
    }
    list = curl_slist_append(list, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, body_len >= 0 ? body_len : (long)strlen(body));
    }
    rc = curl_easy_perform(c);
    ck_assert_msg(rc == CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
    if (!r.body)
        r.body = strdup("");
    return r;
}

static reply get(const char *path)
{
    return http("GET", path, NULL, NULL, 0);
}

/* A DecentralisedCaseEvent as CCD sends it; version < 0 = a create (null). Caller frees. */
static char *event_body(int64_t ref, int version, const char *event_id, const char *state,
                        const char *data)
{
    size_t size = strlen(data) + 1024;
    char *body = malloc(size), ver[16];

    ck_assert_ptr_nonnull(body);
    snprintf(ver, sizeof(ver), "%d", version);
    snprintf(body, size,
             "{\"case_details\":{\"id\":%" PRId64 ",\"jurisdiction\":\"DIVORCE\","
             "\"case_type_id\":\"%s\",\"state\":\"%s\",\"version\":%s,"
             "\"security_classification\":\"PUBLIC\",\"case_data\":%s,"
             "\"data_classification\":{},\"supplementary_data\":{}},"
             "\"case_details_before\":null,\"event_details\":{\"case_type\":\"%s\","
             "\"event_id\":\"%s\",\"event_name\":\"%s event\",\"summary\":\"s\","
             "\"description\":\"d\"},\"resolved_ttl\":null,\"internal_case_id\":%" PRId64
             ",\"start_revision\":%s,\"merge_revision\":%s}",
             ref, A.case_type, state, version < 0 ? "null" : ver, data, A.case_type, event_id,
             event_id, ref % 1000000000, version < 0 ? "null" : ver, version < 0 ? "null" : ver);
    return body;
}

static reply submit(const char *key, const char *body)
{
    char s2s[1024], idem[80];
    const char *headers[] = {s2s, idem,
                             "Authorization: Bearer "
                             "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                             "eyJzdWIiOiJhbm5AZXhhbXBsZS5jb20iLCJ1aWQiOiJ1LWFubiIsImdpdmVuX25hbW"
                             "UiOiJBbm4iLCJmYW1pbHlfbmFtZSI6IkNsZXJrIn0.c2lnbmF0dXJl",
                             "Content-Type: application/json", NULL};

    snprintf(s2s, sizeof(s2s), "ServiceAuthorization: Bearer %s", A.s2s);
    snprintf(idem, sizeof(idem), "Idempotency-Key: %s", key);
    return http("POST", "/ccd-persistence/cases", headers, body, -1);
}

/* --- the API process --------------------------------------------------------------------- */

static void api_start_with(int submit_timeout, const char *const *extra)
{
    char ev[160], re[160], port[32], key[300], timeout[48];
    const char *args[32] = {ev, re, port, key, timeout, "--allowed-services=ccd_data,xui_webapp"};
    int n = 6;
    long long deadline;

    snprintf(ev, sizeof(ev), "--topic-events=%s", W.events);
    snprintf(re, sizeof(re), "--topic-results=%s", W.results);
    snprintf(port, sizeof(port), "--api-port=%d", A.port);
    snprintf(key, sizeof(key), "--s2s-key-file=%s", A.key_file);
    snprintf(timeout, sizeof(timeout), "--submit-timeout=%d", submit_timeout);
    for (int i = 0; extra && extra[i] && n < 31; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    A.pid = it_spawn("casestream-api", args, NULL);
    /* Ready: PostgreSQL and Kafka answer, the results consumer is assigned. */
    deadline = cs_now_ms() + 60000;
    for (;;) {
        CURL *c = curl_easy_init();
        char url[128];
        long status = 0;

        snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", A.port);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(c);
        if (status == 200)
            return;
        ck_assert_msg(cs_now_ms() < deadline && it_wait_exit(A.pid, 0) < 0,
                      "casestream-api did not become ready (see build/it-logs)");
        usleep(200 * 1000);
    }
}

static void api_start(void)
{
    api_start_with(30, NULL);
}

static void api_stop(void)
{
    ck_assert_int_eq(it_stop(A.pid, SIGTERM, 60000), 0);
}

/* A world (topics, worker) and an API of this test's own. */
static pid_t setup(const char *test)
{
    char errstr[256];
    FILE *f;

    world_new(test, 3);
    memset(&A, 0, sizeof(A));
    A.port = free_port();
    snprintf(A.case_type, sizeof(A.case_type), "ItApi%s%d", test, (int)getpid() % 100000);
    mkdir("build/it-logs", 0755);
    snprintf(A.key_file, sizeof(A.key_file), "build/it-logs/api-s2s-%d.key", (int)getpid());
    ck_assert_ptr_nonnull(f = fopen(A.key_file, "w"));
    fputs(SECRET "\n", f);
    fclose(f);
    A.key = cs_jwt_key_load("HS256", A.key_file, errstr, sizeof(errstr));
    ck_assert_msg(A.key != NULL, "%s", errstr);
    A.s2s = cs_jwt_mint(A.key, "ccd_data", (long long)time(NULL), 3600, errstr, sizeof(errstr));
    ck_assert_msg(A.s2s != NULL, "%s", errstr);
    return worker_start(NULL);
}

static void teardown(pid_t worker)
{
    worker_stop(worker);
    cs_jwt_key_free(A.key);
    free(A.s2s);
    unlink(A.key_file);
    it_drop_topic(W.events);
    it_drop_topic(W.results);
    it_drop_topic(W.changes);
    it_drop_topic(W.dlq);
}

static cs_ccd_case ccd_case(int64_t ref)
{
    return (cs_ccd_case){.reference = ref, .case_type_id = A.case_type, .jurisdiction = "DIVORCE"};
}

static void assert_submitted(const reply *r, long status, int64_t ref)
{
    cs_ccd_case c = ccd_case(ref);
    char why[512];

    ck_assert_msg(r->status == status, "submit: HTTP %ld, wanted %ld: %s", r->status, status,
                  r->body);
    ck_assert_msg(cs_ccd_contract_submitted(r->body, &c, why, sizeof(why)), "%s: %s", why, r->body);
}

/* The member at path ("a.b") of a JSON text, as an integer. */
static long long json_int_at(const char *text, const char *a, const char *b)
{
    json_t *root = json_loads(text, 0, NULL), *v = json_object_get(root, a);
    long long n;

    if (b)
        v = json_object_get(v, b);
    n = json_integer_value(v);
    json_decref(root);
    return n;
}

/* --- tests ------------------------------------------------------------------------------- */

START_TEST(test_a_ccd_session_through_every_endpoint)
{
    pid_t worker = setup("session");
    int64_t ref = api_ref(), other = api_ref();
    char key1[37], key2[37], key3[37], path[256], why[512];
    char *create, *stale, *update;
    cs_ccd_case c = ccd_case(ref);
    reply r, first;
    json_t *hist;
    long long event_id;

    api_start();
    new_key(key1);
    new_key(key2);
    new_key(key3);
    create = event_body(ref, -1, "create", "Submitted", "{\"applicant\":\"Ann\",\"amount\":0.1}");
    first = submit(key1, create);
    assert_submitted(&first, 201, ref);
    ck_assert_int_eq(json_int_at(first.body, "revision", NULL), 1);
    ck_assert_int_eq(json_int_at(first.body, "case_details", "version"), 1);
    ck_assert_ptr_nonnull(strstr(first.body, "\"amount\":0.1"));

    /* Read it back as CCD does. */
    snprintf(path, sizeof(path), "/ccd-persistence/cases?case-refs=%" PRId64 ",%" PRId64, ref,
             other);
    r = get(path);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(cs_ccd_contract_cases(r.body, &c, 1, why, sizeof(why)), "%s: %s", why, r.body);
    reply_clear(&r);
    /* The parameter repeated, as Feign sends a list. */
    snprintf(path, sizeof(path), "/ccd-persistence/cases?case-refs=%" PRId64 "&case-refs=%" PRId64,
             other, ref);
    r = get(path);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(cs_ccd_contract_cases(r.body, &c, 1, why, sizeof(why)), "%s: %s", why, r.body);
    reply_clear(&r);

    /* A stale version is a conflict; the current one applies. */
    stale = event_body(ref, 0, "update", "Submitted", "{\"applicant\":\"Bob\"}");
    r = submit(key2, stale);
    ck_assert_msg(r.status == 409, "stale update: HTTP %ld %s", r.status, r.body);
    reply_clear(&r);
    update = event_body(ref, 1, "update", "Open", "{\"applicant\":\"Bob\"}");
    r = submit(key3, update);
    assert_submitted(&r, 200, ref);
    ck_assert_int_eq(json_int_at(r.body, "revision", NULL), 2);
    ck_assert_int_eq(json_int_at(r.body, "case_details", "version"), 2);
    reply_clear(&r);

    /* The first key again: the same bytes as the first answer, though the case moved on. */
    r = submit(key1, create);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, first.body);
    reply_clear(&r);

    /* History, newest first, and one event of it; an unknown one is 404 JSON. */
    snprintf(path, sizeof(path), "/ccd-persistence/cases/%" PRId64 "/history", ref);
    r = get(path);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(cs_ccd_contract_history(r.body, &c, why, sizeof(why)), "%s: %s", why, r.body);
    hist = json_loads(r.body, 0, NULL);
    ck_assert_uint_eq(json_array_size(hist), 2);
    event_id = json_integer_value(json_object_get(json_array_get(hist, 1), "id"));
    json_decref(hist);
    reply_clear(&r);
    snprintf(path, sizeof(path), "/ccd-persistence/cases/%" PRId64 "/history/%lld", ref, event_id);
    r = get(path);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(cs_ccd_contract_event(r.body, &c, event_id, why, sizeof(why)), "%s: %s", why,
                  r.body);
    reply_clear(&r);
    snprintf(path, sizeof(path), "/ccd-persistence/cases/%" PRId64 "/history/999999999999", ref);
    r = get(path);
    ck_assert_int_eq(r.status, 404);
    ck_assert_ptr_nonnull(strstr(r.body, "\"errors\""));
    reply_clear(&r);
    snprintf(path, sizeof(path), "/ccd-persistence/cases/%" PRId64 "/history", other);
    r = get(path);
    ck_assert_int_eq(r.status, 404);
    reply_clear(&r);

    /* Supplementary data: through the pipeline, the whole map after it; as CCD validates. */
    snprintf(path, sizeof(path), "/ccd-persistence/cases/%" PRId64 "/supplementary-data", ref);
    r = http("POST", path, NULL,
             "{\"supplementary_data_updates\":{\"$set\":{\"orgs.org1\":\"Y\"},\"$inc\":{\"views\":"
             "1}}}",
             -1);
    ck_assert_msg(r.status == 200, "supplementary: HTTP %ld %s", r.status, r.body);
    ck_assert_str_eq(r.body, "{\"supplementary_data\":{\"orgs\":{\"org1\":\"Y\"},\"views\":1}}");
    reply_clear(&r);
    r = http("POST", path, NULL, "{\"supplementary_data_updates\":{\"$inc\":{\"views\":2}}}", -1);
    ck_assert_str_eq(r.body, "{\"supplementary_data\":{\"orgs\":{\"org1\":\"Y\"},\"views\":3}}");
    reply_clear(&r);
    r = http("POST", path, NULL, "{\"supplementary_data_updates\":{\"$find\":{\"a\":1}}}", -1);
    ck_assert_int_eq(r.status, 400);
    ck_assert_ptr_nonnull(strstr(r.body, "$find"));
    reply_clear(&r);
    r = http("POST", path, NULL, "{\"supplementary_data_updates\":{}}", -1);
    ck_assert_int_eq(r.status, 400);
    reply_clear(&r);
    r = http("POST", path, NULL, "{\"supplementary_data_updates\":{\"$set\":{\"a.b.c\":1}}}", -1);
    ck_assert_int_eq(r.status, 400);
    reply_clear(&r);
    snprintf(path, sizeof(path), "/ccd-persistence/cases/%" PRId64 "/supplementary-data", other);
    r = http("POST", path, NULL, "{\"supplementary_data_updates\":{\"$inc\":{\"views\":1}}}", -1);
    ck_assert_int_eq(r.status, 404);
    reply_clear(&r);
    /* The version did not move with the supplementary data, and the case reads as CCD wants. */
    snprintf(path, sizeof(path), "/ccd-persistence/cases?case-refs=%" PRId64, ref);
    r = get(path);
    ck_assert_msg(cs_ccd_contract_cases(r.body, &c, 1, why, sizeof(why)), "%s: %s", why, r.body);
    ck_assert_ptr_nonnull(strstr(r.body, "\"version\":2"));
    ck_assert_ptr_nonnull(strstr(r.body, "\"views\":3"));
    reply_clear(&r);

    /* The user from the Authorization token's claims, CCD's revisions of the event. */
    ck_assert_int_eq(
        it_sql_int("SELECT count(*) FROM ccd.case_event WHERE case_reference = %" PRId64
                   " AND user_id = 'u-ann' AND user_first_name = 'Ann'"
                   " AND user_last_name = 'Clerk'",
                   ref),
        4);
    ck_assert_int_eq(it_sql_int("SELECT start_revision + 10 * merge_revision FROM ccd.case_event"
                                " WHERE case_reference = %" PRId64 " AND idempotency_key = '%s'",
                                ref, key3),
                     11);
    ck_assert_int_eq(
        it_sql_int("SELECT count(*) FROM ccd.case_event WHERE case_reference = %" PRId64
                   " AND idempotency_key = '%s' AND start_revision IS NULL",
                   ref, key1),
        1);
    /* A refusal of the worker's is a 200 with errors, which CCD shows the user. */
    r = submit(key1, update); /* the first key with another payload */
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(cs_ccd_contract_refused(r.body, why, sizeof(why)), "%s: %s", why, r.body);
    reply_clear(&r);

    reply_clear(&first);
    free(create);
    free(stale);
    free(update);
    api_stop();
    teardown(worker);
}
END_TEST

START_TEST(test_replay_is_byte_identical_after_the_case_moved_on_and_restarts)
{
    pid_t worker = setup("replay");
    int64_t ref = api_ref();
    char key1[37], key2[37], key3[37], path[128];
    char *create = NULL, *update = NULL;
    reply first, again;

    api_start();
    new_key(key1);
    new_key(key2);
    new_key(key3);
    create = event_body(ref, -1, "create", "Submitted", "{\"n\":1,\"x\":[1.5,\"a\"]}");
    first = submit(key1, create);
    assert_submitted(&first, 201, ref);
    update = event_body(ref, 1, "update", "Open", "{\"n\":2}");
    again = submit(key2, update);
    assert_submitted(&again, 200, ref);
    reply_clear(&again);
    snprintf(path, sizeof(path), "/ccd-persistence/cases/%" PRId64 "/supplementary-data", ref);
    again = http("POST", path, NULL, "{\"supplementary_data_updates\":{\"$inc\":{\"n\":1}}}", -1);
    ck_assert_int_eq(again.status, 200);
    reply_clear(&again);

    /* The API and the worker restarted: the same bytes still. */
    api_stop();
    worker_stop(worker);
    worker = worker_start(NULL);
    api_start();
    again = submit(key1, create);
    ck_assert_int_eq(again.status, 200);
    ck_assert_str_eq(again.body, first.body);
    reply_clear(&again);
    ck_assert_int_eq(
        it_sql_int("SELECT count(*) FROM ccd.case_event WHERE case_reference = %" PRId64, ref), 3);
    reply_clear(&first);
    free(create);
    free(update);
    api_stop();
    teardown(worker);
}
END_TEST

START_TEST(test_two_instances_side_by_side_answer_each_others_submissions)
{
    pid_t worker = setup("twins");
    int64_t ref = api_ref();
    int port_a, port_b;
    pid_t pid_a;
    char key1[37], key2[37];
    char *create, *update;
    reply first, r;

    api_start();
    port_a = A.port;
    pid_a = A.pid;
    A.port = free_port();
    api_start();
    port_b = A.port;
    new_key(key1);
    new_key(key2);
    create = event_body(ref, -1, "create", "Submitted", "{\"n\":1}");
    update = event_body(ref, 1, "update", "Open", "{\"n\":2}");
    A.port = port_a;
    first = submit(key1, create);
    assert_submitted(&first, 201, ref);
    /* The other instance: the same answer for the same key, and the next event. */
    A.port = port_b;
    r = submit(key1, create);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, first.body);
    reply_clear(&r);
    r = submit(key2, update);
    assert_submitted(&r, 200, ref);
    reply_clear(&r);
    reply_clear(&first);
    free(create);
    free(update);
    api_stop();
    ck_assert_int_eq(it_stop(pid_a, SIGTERM, 60000), 0);
    teardown(worker);
}
END_TEST

typedef struct racer {
    int64_t ref;
    const char *body;
    long status;
    pthread_t thread;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    char key[37];
    reply rep;

    new_key(key);
    rep = submit(key, r->body);
    r->status = rep.status;
    reply_clear(&rep);
    return NULL;
}

START_TEST(test_ten_concurrent_submits_from_one_version_one_wins)
{
    pid_t worker = setup("race");
    int64_t ref = api_ref();
    char key[37];
    char *create, *update;
    racer racers[10];
    int ok = 0, conflicts = 0;
    reply r;

    api_start();
    new_key(key);
    create = event_body(ref, -1, "create", "Submitted", "{\"n\":0}");
    r = submit(key, create);
    assert_submitted(&r, 201, ref);
    reply_clear(&r);
    update = event_body(ref, 1, "update", "Submitted", "{\"n\":1}");
    for (int i = 0; i < 10; i++) {
        racers[i] = (racer){.ref = ref, .body = update};
        ck_assert_int_eq(pthread_create(&racers[i].thread, NULL, race, &racers[i]), 0);
    }
    for (int i = 0; i < 10; i++) {
        pthread_join(racers[i].thread, NULL);
        ok += racers[i].status == 200;
        conflicts += racers[i].status == 409;
    }
    ck_assert_int_eq(ok, 1);
    ck_assert_int_eq(conflicts, 9);
    ck_assert_int_eq(
        it_sql_int("SELECT version FROM ccd.case_data WHERE reference = %" PRId64, ref), 2);
    free(create);
    free(update);
    api_stop();
    teardown(worker);
}
END_TEST

/* Concurrent reads of the cases view: the readers read the cases of every read queued at once
 * (one query), and each read must still get exactly its own cases. */
#define READ_CASES   6
#define READ_THREADS 16
#define READ_ROUNDS  40

typedef struct reader {
    int64_t refs[READ_CASES];
    char *const *alone; /* each case's element, as a read of it alone answered it */
    int seed, wrong, failed;
    char first_wrong[1024];
    pthread_t thread;
} reader;

/* A read of some of the cases, in any order, with repeats and an unknown reference, against
 * the answer put together from the reads of each alone (ordered by reference, each once). */
static void *read_loop(void *arg)
{
    reader *rd = arg;

    for (int k = 0; k < READ_ROUNDS; k++) {
        char path[512], *want = malloc(65536);
        size_t len = 0, plen;
        bool in[READ_CASES] = {false};
        reply r;

        plen = (size_t)snprintf(path, sizeof(path),
                                "/ccd-persistence/cases?case-refs=1000000000000009");
        for (int j = 0; j < 3; j++) {
            int i = (rd->seed * 7 + k * (j + 3) + j) % READ_CASES;

            in[i] = true;
            plen += (size_t)snprintf(path + plen, sizeof(path) - plen, ",%" PRId64, rd->refs[i]);
        }
        want[len++] = '[';
        for (int i = 0; i < READ_CASES; i++) /* the refs ascend */
            if (in[i])
                len += (size_t)snprintf(want + len, 65536 - len, "%s%s", len > 1 ? "," : "",
                                        rd->alone[i]);
        want[len++] = ']';
        want[len] = '\0';
        r = get(path);
        if (r.status != 200)
            rd->failed++;
        else if (strcmp(r.body, want) != 0 && rd->wrong++ == 0)
            snprintf(rd->first_wrong, sizeof(rd->first_wrong), "%s answered %.300s", path, r.body);
        reply_clear(&r);
        free(want);
    }
    return NULL;
}

START_TEST(test_concurrent_reads_each_get_exactly_their_cases)
{
    pid_t worker = setup("reads");
    int64_t refs[READ_CASES];
    char *alone[READ_CASES], key[37], path[128], data[64];
    reader readers[READ_THREADS];
    long long reads0, queries0, reads, queries;

    api_start();
    for (int i = 0; i < READ_CASES; i++) {
        char *body;
        reply r;

        refs[i] = api_ref(); /* ascending */
        new_key(key);
        snprintf(data, sizeof(data), "{\"n\":%d,\"name\":\"case \\\"%d\\\"\"}", i, i);
        body = event_body(refs[i], -1, "create", i % 2 ? "Submitted" : "Open", data);
        r = submit(key, body);
        assert_submitted(&r, 201, refs[i]);
        reply_clear(&r);
        free(body);
        snprintf(path, sizeof(path), "/ccd-persistence/cases?case-refs=%" PRId64, refs[i]);
        r = get(path);
        ck_assert_int_eq(r.status, 200);
        ck_assert_msg(r.body[0] == '[' && strlen(r.body) > 2, "%s", r.body);
        alone[i] = strndup(r.body + 1, strlen(r.body) - 2);
        reply_clear(&r);
    }
    reads0 = metric(A.port, "casestream_api_case_reads_total");
    queries0 = metric(A.port, "casestream_api_case_queries_total");
    for (int t = 0; t < READ_THREADS; t++) {
        readers[t] = (reader){.alone = alone, .seed = t};
        memcpy(readers[t].refs, refs, sizeof(refs));
        ck_assert_int_eq(pthread_create(&readers[t].thread, NULL, read_loop, &readers[t]), 0);
    }
    for (int t = 0; t < READ_THREADS; t++) {
        pthread_join(readers[t].thread, NULL);
        ck_assert_msg(readers[t].failed == 0, "reader %d: %d reads not 200", t, readers[t].failed);
        ck_assert_msg(readers[t].wrong == 0, "reader %d: %d reads wrong, first: %s", t,
                      readers[t].wrong, readers[t].first_wrong);
    }
    reads = metric(A.port, "casestream_api_case_reads_total") - reads0;
    queries = metric(A.port, "casestream_api_case_queries_total") - queries0;
    ck_assert_int_eq(reads, READ_THREADS * READ_ROUNDS);
    ck_assert_int_ge(queries, 1);
    ck_assert_int_le(queries, reads);
    fprintf(stderr, "it_api: %lld concurrent reads answered by %lld queries\n", reads, queries);
    for (int i = 0; i < READ_CASES; i++)
        free(alone[i]);
    api_stop();
    teardown(worker);
}
END_TEST

START_TEST(test_worker_stopped_is_504_and_the_retry_applies_once)
{
    pid_t worker = setup("timeout");
    int64_t ref = api_ref();
    char key[37];
    char *create;
    reply r;

    api_start_with(3, NULL);
    worker_stop(worker);
    new_key(key);
    create = event_body(ref, -1, "create", "Submitted", "{\"n\":0}");
    r = submit(key, create);
    ck_assert_msg(r.status == 504, "HTTP %ld %s", r.status, r.body);
    ck_assert_str_ne(r.retry_after, "");
    ck_assert_ptr_nonnull(strstr(r.body, "Idempotency-Key"));
    reply_clear(&r);
    ck_assert_int_ge(metric(A.port, "casestream_api_submit_timeouts_total"), 1);
    /* Back: the same request again answers with the case, applied once. */
    worker = worker_start(NULL);
    for (int i = 0; i < 20; i++) {
        r = submit(key, create);
        if (r.status != 504)
            break;
        reply_clear(&r);
    }
    ck_assert_msg(r.status == 201 || r.status == 200, "HTTP %ld %s", r.status, r.body);
    assert_submitted(&r, r.status, ref);
    reply_clear(&r);
    ck_assert_int_eq(
        it_sql_int("SELECT count(*) FROM ccd.case_event WHERE case_reference = %" PRId64
                   " AND idempotency_key = '%s'",
                   ref, key),
        1);
    free(create);
    api_stop();
    teardown(worker);
}
END_TEST

START_TEST(test_service_authorization_refusals)
{
    pid_t worker = setup("s2s");
    char errstr[256], bad_sig[2048], s2s[2048], other[2048], expired[2048];
    char *tok_other, *tok_expired, *forged;
    cs_jwt_key *forger = cs_jwt_key_new("HS256", "another secret of thirty-two bytes or more!!", 44,
                                        errstr, sizeof(errstr));
    const char *auth = "Authorization: Bearer e30.e30.c2ln";
    reply r;

    api_start();
    ck_assert_ptr_nonnull(forger);
    tok_other = cs_jwt_mint(A.key, "some_service", (long long)time(NULL), 3600, errstr, 256);
    tok_expired = cs_jwt_mint(A.key, "ccd_data", (long long)time(NULL) - 7200, 60, errstr, 256);
    forged = cs_jwt_mint(forger, "ccd_data", (long long)time(NULL), 3600, errstr, 256);
    snprintf(s2s, sizeof(s2s), "ServiceAuthorization: Bearer %s", A.s2s);
    snprintf(other, sizeof(other), "ServiceAuthorization: Bearer %s", tok_other);
    snprintf(expired, sizeof(expired), "ServiceAuthorization: %s", tok_expired);
    snprintf(bad_sig, sizeof(bad_sig), "ServiceAuthorization: Bearer %s", forged);
    const struct {
        const char *headers[3];
        long status;
        const char *reason;
    } table[] = {
        {{auth, NULL}, 401, "ServiceAuthorization header is required"},
        {{auth, "ServiceAuthorization: nonsense", NULL}, 401, "ServiceAuthorization refused"},
        {{auth, bad_sig, NULL}, 401, "ServiceAuthorization refused"},
        {{auth, expired, NULL}, 401, "ServiceAuthorization refused"},
        {{auth, other, NULL}, 403, "some_service"},
        {{s2s, NULL}, 401, "Authorization header is required"},
        {{s2s, "Authorization:  ", NULL}, 401, "Authorization header is required"},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        r = http("GET", "/ccd-persistence/cases/1796021823004242/history", table[i].headers, NULL,
                 0);
        ck_assert_msg(r.status == table[i].status, "case %zu: HTTP %ld %s", i, r.status, r.body);
        ck_assert_msg(strstr(r.body, "\"errors\"") && strstr(r.body, table[i].reason),
                      "case %zu: %s", i, r.body);
        reply_clear(&r);
    }
    /* A submit with a blank Authorization: CCD's submit response with errors. */
    {
        const char *headers[] = {s2s, "Content-Type: application/json",
                                 "Idempotency-Key: 6f1c2b4e-7d1a-4c3e-9b2a-1f0e5d6c7b8a", NULL};

        r = http("POST", "/ccd-persistence/cases", headers, "{}", -1);
        ck_assert_int_eq(r.status, 401);
        ck_assert_msg(cs_ccd_contract_refused(r.body, errstr, sizeof(errstr)), "%s: %s", errstr,
                      r.body);
        reply_clear(&r);
    }
    /* The health endpoints need no token. */
    r = http("GET", "/livez", (const char *const[]){NULL}, NULL, 0);
    ck_assert_int_eq(r.status, 200);
    reply_clear(&r);
    free(tok_other);
    free(tok_expired);
    free(forged);
    cs_jwt_key_free(forger);
    api_stop();
    teardown(worker);
}
END_TEST

START_TEST(test_bad_http_answers_json_errors)
{
    pid_t worker = setup("badhttp");
    char big[4096], refs[4096] = "/ccd-persistence/cases?case-refs=";
    reply r;

    {
        const char *extra[] = {"--max-body=2048", "--connection-timeout=2", NULL};

        api_start_with(30, extra);
    }
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    big[sizeof(big) - 1] = '\0';
    for (int i = 0; i < 101; i++)
        snprintf(refs + strlen(refs), sizeof(refs) - strlen(refs), "%s%lld", i ? "," : "",
                 1796021823004242LL + i);
    const struct {
        const char *method, *path, *body;
        long status;
        const char *reason;
    } table[] = {
        {"POST", "/ccd-persistence/cases", "{not json", 400, "not JSON"},
        {"POST", "/ccd-persistence/cases", "{\"case_details\":[],\"event_details\":{}}", 400,
         "must be an object"},
        {"POST", "/ccd-persistence/cases", big, 413, "larger than 2048"},
        {"GET", "/ccd-persistence/nothing", NULL, 404, "no such path"},
        {"GET", "/ccd-persistence/cases/1796021823004242", NULL, 404, "no such path"},
        {"DELETE", "/ccd-persistence/cases", NULL, 405, "not allowed"},
        {"GET", "/ccd-persistence/cases/1796021823004242/supplementary-data", NULL, 405,
         "not allowed"},
        {"GET", "/ccd-persistence/cases?case-refs=12", NULL, 400, "16-digit"},
        {"GET", "/ccd-persistence/cases", NULL, 400, "case-refs is required"},
        {"GET", refs, NULL, 400, "more than 100"},
        {"GET", "/ccd-persistence/cases/12/history", NULL, 400, "16-digit"},
        {"GET", "/ccd-persistence/cases/1796021823004242/history/x", NULL, 400, "event id"},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        r = http(table[i].method, table[i].path, NULL, table[i].body, -1);
        ck_assert_msg(r.status == table[i].status, "%s %.60s: HTTP %ld %s", table[i].method,
                      table[i].path, r.status, r.body);
        ck_assert_msg(strstr(r.body, "{\"errors\":[") && strstr(r.body, table[i].reason),
                      "%s %.60s: %s", table[i].method, table[i].path, r.body);
        if (table[i].status == 405)
            ck_assert_str_ne(r.allow, "");
        reply_clear(&r);
    }
    /* The submit's own header checks, and the content type. */
    {
        char s2s[2048];
        const char *no_key[] = {s2s, "Authorization: Bearer x", "Content-Type: application/json",
                                NULL};
        const char *plain[] = {s2s, "Authorization: Bearer x", "Content-Type: text/plain", NULL};

        snprintf(s2s, sizeof(s2s), "ServiceAuthorization: Bearer %s", A.s2s);
        r = http("POST", "/ccd-persistence/cases", no_key, "{}", -1);
        ck_assert_int_eq(r.status, 400);
        ck_assert_ptr_nonnull(strstr(r.body, "Idempotency-Key"));
        reply_clear(&r);
        r = http("POST", "/ccd-persistence/cases", plain, "{}", -1);
        ck_assert_int_eq(r.status, 415);
        ck_assert_ptr_nonnull(strstr(r.body, "{\"errors\":["));
        reply_clear(&r);
    }
    /* A client that stops halfway through its headers is closed after --connection-timeout. */
    {
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)A.port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct timeval tv = {.tv_sec = 20};
        char buf[64];
        long long t0;
        ssize_t n;

        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        ck_assert_int_gt(write(fd, "GET /livez HTTP/1.1\r\nHost: x\r\n", 30), 0);
        t0 = cs_now_ms();
        n = read(fd, buf, sizeof(buf));
        ck_assert_msg(n <= 0, "the server answered a request it never got whole");
        ck_assert_msg(cs_now_ms() - t0 < 15000, "a slow client was kept open past the timeout");
        close(fd);
    }
    /* It is still serving. */
    r = http("GET", "/readyz", (const char *const[]){NULL}, NULL, 0);
    ck_assert_int_eq(r.status, 200);
    reply_clear(&r);
    ck_assert_int_ge(
        metric(A.port, "casestream_api_requests_total{route=\"cases\",status=\"400\"}"), 3);
    api_stop();
    teardown(worker);
}
END_TEST

/* Connects to the API; the socket waits at most 10 s for an answer. */
static int api_connect(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)A.port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 10};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

START_TEST(test_connections_over_the_limit_are_closed)
{
    pid_t worker = setup("connlimit");
    const char *extra[] = {"--max-connections=2", "--api-threads=1", NULL};
    const char request[] = "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[256];
    int held[2], extra_fd;
    ssize_t n;
    reply r;

    api_start_with(30, extra);
    /* Two connections kept open (keep-alive, each after one answer) fill the limit. */
    for (int i = 0; i < 2; i++) {
        held[i] = api_connect();
        ck_assert_int_eq(write(held[i], request, sizeof(request) - 1),
                         (ssize_t)sizeof(request) - 1);
        ck_assert_int_gt(read(held[i], buf, sizeof(buf)), 0);
    }
    /* A third is closed without an answer. */
    extra_fd = api_connect();
    n = write(extra_fd, request, sizeof(request) - 1);
    n = read(extra_fd, buf, sizeof(buf));
    ck_assert_msg(n <= 0, "a connection over --max-connections was served");
    close(extra_fd);
    /* Once they go, it serves again. */
    close(held[0]);
    close(held[1]);
    usleep(300 * 1000);
    r = http("GET", "/livez", (const char *const[]){NULL}, NULL, 0);
    ck_assert_int_eq(r.status, 200);
    reply_clear(&r);
    api_stop();
    teardown(worker);
}
END_TEST

typedef struct parked {
    const char *key, *body;
    reply r;
    pthread_t thread;
} parked;

static void *submit_parked(void *arg)
{
    parked *p = arg;

    p->r = submit(p->key, p->body);
    return NULL;
}

/* A submission its worker committed and died before answering, whose case is disposed of before
 * the worker is back: the redelivery is answered applied (DESIGN §10), and the parked request,
 * with no case left to show, gets CCD's errors saying so; a retry with the key is refused as
 * for any disposed case. */
START_TEST(test_applied_then_disposed_before_the_answer_says_so)
{
    pid_t worker = setup("disposed");
    const char *fault[] = {"--fault=after_commit", NULL};
    int64_t ref = api_ref();
    const char *none = "\"resolved_ttl\":null", *past = "\"resolved_ttl\":\"2020-01-01\"";
    char key[37], *create, *ttl;
    parked p;

    worker_stop(worker);
    worker = worker_start(fault);
    api_start_with(60, NULL);
    new_key(key);
    create = event_body(ref, -1, "create", "Submitted", "{\"n\":0}");
    ck_assert_ptr_nonnull(ttl = strstr(create, none));
    /* Past its retention (the body has room: event_body leaves 1 KiB spare). */
    memmove(ttl + strlen(past), ttl + strlen(none), strlen(ttl + strlen(none)) + 1);
    memcpy(ttl, past, strlen(past));
    p.key = key;
    p.body = create;
    ck_assert_int_eq(pthread_create(&p.thread, NULL, submit_parked, &p), 0);
    /* Committed, then the worker is gone before any outcome. */
    ck_assert_int_eq(it_wait_exit(worker, 60000), CS_EXIT_FAULT);
    ck_assert_int_eq(
        it_sql_int("SELECT count(*) FROM ccd.case_event WHERE case_reference = %" PRId64, ref), 1);
    {
        char pg[512], events[200], changes[200], ctype[200];
        const char *args[] = {pg, events, changes, ctype, "dispose", NULL};
        const char *wpg = getenv("CASESTREAM_WORKER_PG");

        snprintf(pg, sizeof(pg), "--pg=%s", wpg && wpg[0] ? wpg : it_config()->pg);
        snprintf(events, sizeof(events), "--topic-events=%s", W.events);
        snprintf(changes, sizeof(changes), "--topic-changes=%s", W.changes);
        snprintf(ctype, sizeof(ctype), "--case-type=%s", A.case_type);
        ck_assert_int_eq(it_run("casestream", args, NULL, NULL, NULL), 0);
    }
    ck_assert_int_eq(
        it_sql_int("SELECT count(*) FROM ccd.disposed_case WHERE reference = %" PRId64, ref), 1);
    worker = worker_start(NULL);
    pthread_join(p.thread, NULL);
    ck_assert_msg(p.r.status == 200, "HTTP %ld %s", p.r.status, p.r.body);
    ck_assert_msg(strstr(p.r.body, "was disposed of at the end of its retention after this "
                                   "submission was applied"),
                  "%s", p.r.body);
    ck_assert_ptr_nonnull(strstr(p.r.body, "\"case_details\":null"));
    reply_clear(&p.r);
    /* The same request again: a new message for a disposed case. */
    p.r = submit(key, create);
    ck_assert_msg(p.r.status == 200, "HTTP %ld %s", p.r.status, p.r.body);
    ck_assert_msg(strstr(p.r.body, "a disposed case takes no more submissions"), "%s", p.r.body);
    reply_clear(&p.r);
    free(create);
    api_stop();
    teardown(worker);
}
END_TEST

START_TEST(test_sigterm_finishes_requests_in_flight)
{
    pid_t worker = setup("sigterm");
    int64_t ref = api_ref();
    char key[37];
    parked p;
    int status;

    api_start_with(60, NULL);
    worker_stop(worker);
    new_key(key);
    p.key = key;
    p.body = event_body(ref, -1, "create", "Submitted", "{\"n\":0}");
    ck_assert_int_eq(pthread_create(&p.thread, NULL, submit_parked, &p), 0);
    /* Parked: published and waiting for its outcome. */
    for (int i = 0; i < 200 && metric(A.port, "casestream_api_waiting") < 1; i++)
        usleep(50 * 1000);
    ck_assert_int_eq(metric(A.port, "casestream_api_waiting"), 1);
    /* A parked submit holds no thread: reads are answered meanwhile. */
    {
        char path[128];
        long long t0 = cs_now_ms();
        reply r;

        for (int i = 0; i < 20; i++) {
            snprintf(path, sizeof(path), "/ccd-persistence/cases?case-refs=%" PRId64, ref);
            r = get(path);
            ck_assert_int_eq(r.status, 200);
            ck_assert_str_eq(r.body, "[]");
            reply_clear(&r);
        }
        ck_assert_msg(cs_now_ms() - t0 < 30000, "reads waited for the parked submit");
    }
    kill(A.pid, SIGTERM);
    usleep(500 * 1000);
    ck_assert_msg(it_wait_exit(A.pid, 0) < 0, "casestream-api exited with a request in flight");
    worker = worker_start(NULL);
    pthread_join(p.thread, NULL);
    assert_submitted(&p.r, 201, ref);
    reply_clear(&p.r);
    status = it_wait_exit(A.pid, 30000);
    ck_assert_int_eq(status, 0);
    free((char *)p.body);
    teardown(worker);
}
END_TEST

/* A submission's answer is read from PostgreSQL by a reader, not by its HTTP thread: with one
 * HTTP thread, and the API's PostgreSQL stalled (a proxy holding its bytes) once the outcome of
 * an applied submission came, that thread still answers other requests; the submission gets
 * its answer once PostgreSQL answers again. */
START_TEST(test_an_answer_read_held_up_holds_no_http_thread)
{
    pid_t worker = setup("heldup");
    const char *reader_pg = getenv("CASESTREAM_READER_PG");
    char host[128], pg[2048];
    const char *args[] = {"--api-threads=1", pg, NULL};
    int64_t ref = api_ref();
    int pg_port;
    it_proxy *proxy;
    char key[37];
    parked p;

    if (!reader_pg || !reader_pg[0])
        reader_pg = it_config()->pg;
    it_pg_target(reader_pg, host, sizeof(host), &pg_port);
    proxy = it_proxy_start(host, pg_port);
    /* libpq takes the last value of a repeated keyword. */
    snprintf(pg, sizeof(pg), "--pg=%s host=127.0.0.1 port=%d", reader_pg, it_proxy_port(proxy));
    api_start_with(60, args);
    it_proxy_hold(proxy, true);
    new_key(key);
    p.key = key;
    p.body = event_body(ref, -1, "create", "Submitted", "{\"n\":0}");
    ck_assert_int_eq(pthread_create(&p.thread, NULL, submit_parked, &p), 0);
    /* Applied (the worker does not go through the proxy), its outcome read by the API, and the
     * request still waiting: its answer's read is held. */
    for (int i = 0; i < 600 && metric(A.port, "casestream_api_outcomes_read_total") < 1; i++)
        usleep(50 * 1000);
    ck_assert_int_eq(
        it_sql_int("SELECT count(*) FROM ccd.case_event WHERE case_reference = %" PRId64, ref), 1);
    ck_assert_int_eq(metric(A.port, "casestream_api_outcomes_read_total"), 1);
    usleep(300 * 1000);
    ck_assert_int_eq(metric(A.port, "casestream_api_waiting"), 1);
    /* The one HTTP thread answers meanwhile. */
    for (int i = 0; i < 5; i++) {
        long long t0 = cs_now_ms();
        reply r = get("/healthz");

        ck_assert_int_eq(r.status, 200);
        ck_assert_msg(cs_now_ms() - t0 < 5000, "/healthz took %lld ms", cs_now_ms() - t0);
        reply_clear(&r);
    }
    ck_assert_int_eq(metric(A.port, "casestream_api_waiting"), 1);
    it_proxy_hold(proxy, false);
    pthread_join(p.thread, NULL);
    assert_submitted(&p.r, 201, ref);
    reply_clear(&p.r);
    free((char *)p.body);
    api_stop();
    it_proxy_free(proxy);
    teardown(worker);
}
END_TEST

Suite *it_api_suite(void)
{
    Suite *s = suite_create("it_api");
    TCase *tc = tcase_create("api");

    curl_global_init(CURL_GLOBAL_DEFAULT);
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, services_up, leave_clean);
    tcase_add_test(tc, test_a_ccd_session_through_every_endpoint);
    tcase_add_test(tc, test_replay_is_byte_identical_after_the_case_moved_on_and_restarts);
    tcase_add_test(tc, test_ten_concurrent_submits_from_one_version_one_wins);
    tcase_add_test(tc, test_concurrent_reads_each_get_exactly_their_cases);
    tcase_add_test(tc, test_two_instances_side_by_side_answer_each_others_submissions);
    tcase_add_test(tc, test_worker_stopped_is_504_and_the_retry_applies_once);
    tcase_add_test(tc, test_applied_then_disposed_before_the_answer_says_so);
    tcase_add_test(tc, test_service_authorization_refusals);
    tcase_add_test(tc, test_bad_http_answers_json_errors);
    tcase_add_test(tc, test_connections_over_the_limit_are_closed);
    tcase_add_test(tc, test_sigterm_finishes_requests_in_flight);
    tcase_add_test(tc, test_an_answer_read_held_up_holds_no_http_thread);
    suite_add_tcase(s, tc);
    return s;
}
