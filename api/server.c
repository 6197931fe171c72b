/* casestream-api: libmicrohttpd's thread pool answers CCD's calls; submissions are published
 * to the events topic and their requests parked (suspended) until one results consumer thread
 * sees their outcome; reads come from PostgreSQL (lib/ccd_view.h). */
#include "server.h"

#include "ccd.h"
#include "ccd_view.h"
#include "db.h"
#include "err.h"
#include "health.h"
#include "jwt.h"
#include "log.h"
#include "metrics.h"
#include "probe.h"
#include "producer.h"
#include "run.h"
#include "s2s.h"
#include "utf8.h"
#include "uuid.h"
#include "waiters.h"

#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The HTTP statuses the server answers with, one counter per route and status. */
static const int statuses[] = {200, 201, 400, 401, 403, 404, 405, 409, 413, 415, 500, 503, 504};
#define N_STATUSES (sizeof(statuses) / sizeof(statuses[0]))

/* Seconds a client is told to wait before retrying a 503 or 504. */
#define RETRY_AFTER "2"

/* A PostgreSQL connection of the pool. */
typedef struct pg_slot {
    PGconn *conn;
    bool busy;
} pg_slot;

struct cs_api {
    const cs_config *cfg;
    cs_ccd_view view;
    cs_jwt_key *s2s_key;    /* NULL with --insecure-skip-s2s */
    cs_s2s_cache *s2s_seen; /* the tokens s2s_key accepted, until they expire */
    struct MHD_Daemon *daemon;
    cs_health *health;
    cs_probe *pg_probe;
    /* Publishing: the producer is used under pmu; its results consumer only by the results
     * thread (lib/producer.h allows the two side by side). */
    cs_producer *producer;
    pthread_mutex_t pmu;
    cs_waiters *waiters;
    pthread_t results_thread;
    bool results_started;
    atomic_bool results_assigned;
    atomic_bool stop_results;
    char results_error[256];
    /* The cases reads (GET /ccd-persistence/cases): the HTTP threads queue them, the readers
     * take every one queued (up to CS_CCD_VIEW_MAX_REFS references) and read their cases with
     * one query; each read's request is parked meanwhile. A submission whose wait is over is
     * queued here too: a reader reads its answer and resumes it, so that no HTTP thread waits
     * on PostgreSQL for a submission while its other connections wait on it. */
    pthread_mutex_t read_mu;
    pthread_cond_t read_cv;
    struct queued_read *read_head, *read_tail;
    bool read_stop;
    pthread_t *readers;
    size_t readers_started;
    /* PostgreSQL connections, one per HTTP thread and one per reader. */
    pg_slot *pool;
    size_t pool_size;
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
    /* Requests begun and not yet completed; set while draining. */
    atomic_long active;
    atomic_bool draining;
    /* metrics */
    cs_metric *requests[CS_API_ROUTE_COUNT][N_STATUSES];
    cs_metric *latency[CS_API_ROUTE_COUNT];
    cs_metric *waiting, *timeouts, *undelivered, *outcomes, *case_reads, *case_queries;
    cs_metric *outcome_delay, *until_outcome, *render;
};

struct request;

/* A cases read queued for the readers, and its answer: rc, body or errstr. Or (woken) a
 * submission whose wait is over: its answer read from PostgreSQL (rendered: rc, body, created
 * or errstr) when it has one to show. */
typedef struct queued_read {
    struct request *r;
    long long refs[CS_API_MAX_REFS];
    size_t n;
    bool woken;
    long long woken_us; /* when its outcome (or its end) woke it */
    bool rendered;
    bool created;
    int rc;
    char *body;
    char errstr[512];
    struct queued_read *next;
} queued_read;

/* One request, from its first call to its completion. */
typedef struct request {
    cs_api *api;
    struct MHD_Connection *conn;
    cs_api_target target;
    long long start_us;
    int status; /* answered with, for the metrics */
    bool answered;
    char *body;
    size_t len;
    bool too_large;
    /* A submission: its key, reference, and its wait once published. */
    char key[37];
    int64_t ref;
    cs_waiter *waiter;
    bool parked;
    queued_read *read;   /* a cases read, once queued */
    queued_read *answer; /* a submission's answer, once its wait is over */
    char service[64];    /* the caller's S2S sub ("" with --insecure-skip-s2s) */
} request;

/* --- answers ----------------------------------------------------------------------------- */

static enum MHD_Result respond(request *r, unsigned status, char *body, const char *extra_name,
                               const char *extra_value)
{
    size_t len = body ? strlen(body) : 0;
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, body ? body : (char *)"", body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    enum MHD_Result rc;

    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (extra_name)
        MHD_add_response_header(resp, extra_name, extra_value);
    if (atomic_load(&r->api->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    rc = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    r->status = (int)status;
    r->answered = true;
    return rc;
}

/* {"errors": [message]} with status. */
static enum MHD_Result respond_error(request *r, unsigned status, const char *message)
{
    const char *name = NULL, *value = NULL;

    if (status == MHD_HTTP_SERVICE_UNAVAILABLE || status == MHD_HTTP_GATEWAY_TIMEOUT) {
        name = MHD_HTTP_HEADER_RETRY_AFTER;
        value = RETRY_AFTER;
    } else if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        name = MHD_HTTP_HEADER_ALLOW;
        value = r->target.allow;
    }
    return respond(r, status, cs_api_errors_body(message), name, value);
}

/* --- PostgreSQL ------------------------------------------------------------------------ */

static pg_slot *pg_get(cs_api *a)
{
    pg_slot *s = NULL;

    pthread_mutex_lock(&a->pool_mu);
    for (;;) {
        for (size_t i = 0; i < a->pool_size && !s; i++)
            if (!a->pool[i].busy)
                s = &a->pool[i];
        if (s)
            break;
        pthread_cond_wait(&a->pool_cv, &a->pool_mu);
    }
    s->busy = true;
    pthread_mutex_unlock(&a->pool_mu);
    return s;
}

static void pg_put(cs_api *a, pg_slot *s)
{
    pthread_mutex_lock(&a->pool_mu);
    s->busy = false;
    pthread_cond_signal(&a->pool_cv);
    pthread_mutex_unlock(&a->pool_mu);
}

/* A view call: fn(conn, ctx) on a pooled connection, once more on a new connection when the
 * first failed for the connection (CS_ERR_RETRY). */
typedef int view_fn(PGconn *conn, void *ctx, char *errstr, size_t errstr_size);

static int with_pg(cs_api *a, view_fn *fn, void *ctx, char *errstr, size_t errstr_size)
{
    pg_slot *s = pg_get(a);
    int rc = CS_ERR_RETRY;

    for (int attempt = 0; attempt < 2 && rc == CS_ERR_RETRY; attempt++) {
        if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) {
            PQfinish(s->conn);
            if (!(s->conn = cs_db_connect_within(a->cfg->pg, 5, errstr, errstr_size)))
                continue;
            if ((rc = cs_ccd_view_session(s->conn, errstr, errstr_size)) != CS_OK) {
                PQfinish(s->conn);
                s->conn = NULL;
                if (rc != CS_ERR_RETRY)
                    break;
                continue;
            }
        }
        if ((rc = fn(s->conn, ctx, errstr, errstr_size)) == CS_ERR_RETRY) {
            PQfinish(s->conn);
            s->conn = NULL;
        }
    }
    pg_put(a, s);
    return rc;
}

/* --- S2S and the user -------------------------------------------------------------------- */

static const char *header(request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

static bool blank(const char *s)
{
    if (!s)
        return true;
    while (*s == ' ' || *s == '\t')
        s++;
    return *s == '\0';
}

/* ServiceAuthorization: 0 when the caller may call, else the status answered (401, 403). */
static int check_service(request *r, char *why, size_t why_size)
{
    cs_api *a = r->api;
    const char *token = header(r, "ServiceAuthorization");
    long long now = (long long)time(NULL);
    char reason[256], seen[256];
    json_t *claims = NULL;
    const char *sub;
    cs_jwt_result res;
    int status = 0;

    if (!a->s2s_key)
        return 0; /* --insecure-skip-s2s */
    if (blank(token)) {
        snprintf(why, why_size, "ServiceAuthorization header is required");
        return MHD_HTTP_UNAUTHORIZED;
    }
    if (cs_s2s_cache_get(a->s2s_seen, token, now, seen, sizeof(seen))) {
        sub = seen;
    } else {
        res = cs_jwt_verify(a->s2s_key, token, now, &claims, reason, sizeof(reason));
        if (res != CS_JWT_OK) {
            cs_utf8_snprintf(why, why_size, "ServiceAuthorization refused (%s): %s",
                             cs_jwt_result_str(res), reason);
            return MHD_HTTP_UNAUTHORIZED;
        }
        cs_s2s_cache_put(a->s2s_seen, token, claims, now);
        sub = json_string_value(json_object_get(claims, "sub"));
    }
    if (sub) /* r->service is cut, sub itself checked */
        snprintf(r->service, sizeof(r->service), "%.*s", (int)sizeof(r->service) - 1, sub);
    if (!sub || !cs_api_service_allowed(a->cfg->allowed_services, sub)) {
        snprintf(why, why_size, "service %s may not call this service", sub ? sub : "(no sub)");
        status = MHD_HTTP_FORBIDDEN;
    }
    json_decref(claims);
    return status;
}

/* --- reads --------------------------------------------------------------------------- */

typedef struct read_call {
    cs_api *api;
    request *r;
    int64_t refs[CS_API_MAX_REFS];
    size_t n;
    char *body;
    char refs_error[256];
} read_call;

static int view_history(PGconn *conn, void *ctx, char *errstr, size_t errstr_size)
{
    read_call *c = ctx;

    return cs_ccd_view_history(conn, &c->api->view, c->r->target.ref, &c->body, errstr,
                               errstr_size);
}

static int view_event(PGconn *conn, void *ctx, char *errstr, size_t errstr_size)
{
    read_call *c = ctx;

    return cs_ccd_view_event(conn, &c->api->view, c->r->target.ref, c->r->target.event_id, &c->body,
                             errstr, errstr_size);
}

/* The rows of the cases a readers' batch names. */
typedef struct case_rows_call {
    cs_api *api;
    const long long *refs;
    size_t n;
    cs_ccd_view_rows *rows;
} case_rows_call;

static int read_case_rows(PGconn *conn, void *ctx, char *errstr, size_t errstr_size)
{
    case_rows_call *c = ctx;

    cs_ccd_view_rows_free(c->rows); /* a first attempt's, on a lost connection */
    c->rows = NULL;
    return cs_ccd_view_case_rows(conn, &c->api->view, c->refs, c->n, &c->rows, errstr, errstr_size);
}

/* Collects every case-refs parameter (repeated, or comma-separated). */
static enum MHD_Result collect_refs(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    read_call *c = cls;

    (void)kind;
    if (strcmp(key, "case-refs") != 0 || c->refs_error[0])
        return MHD_YES;
    if (cs_api_add_refs(value ? value : "", c->refs, &c->n, c->refs_error, sizeof(c->refs_error)))
        return MHD_NO;
    return MHD_YES;
}

static void render_answer(cs_api *a, request *r, queued_read *q);

/* The batch taken from the queue: the cases its reads name (refs[0..n)), read with one query,
 * each read getting its answer; and the answers of its woken submissions. Each request is
 * resumed once answered. */
static void read_batch(cs_api *a, queued_read *batch, const long long *refs, size_t n)
{
    case_rows_call c = {.api = a, .refs = refs, .n = n};
    char errstr[512] = "";
    int rc = CS_OK;

    if (n) {
        rc = with_pg(a, read_case_rows, &c, errstr, sizeof(errstr));
        cs_metric_inc(a->case_queries, 1);
    }
    while (batch) {
        queued_read *q = batch;

        batch = q->next; /* q is freed once its request completes */
        if (q->woken) {
            render_answer(a, q->r, q);
            MHD_resume_connection(q->r->conn);
            continue;
        }
        q->rc = rc == CS_OK ? cs_ccd_view_cases_of(c.rows, q->refs, q->n, &q->body, q->errstr,
                                                   sizeof(q->errstr))
                            : rc;
        if (rc != CS_OK)
            snprintf(q->errstr, sizeof(q->errstr), "%s", errstr);
        cs_metric_inc(a->case_reads, 1);
        MHD_resume_connection(q->r->conn);
    }
    cs_ccd_view_rows_free(c.rows);
}

/* A reader: takes what is queued, up to CS_CCD_VIEW_MAX_REFS references, until stopped with
 * nothing queued. */
static void *reader_main(void *arg)
{
    cs_api *a = arg;

    for (;;) {
        long long refs[CS_CCD_VIEW_MAX_REFS];
        queued_read *batch = NULL, **tail = &batch;
        size_t n = 0;

        pthread_mutex_lock(&a->read_mu);
        while (!a->read_head && !a->read_stop)
            pthread_cond_wait(&a->read_cv, &a->read_mu);
        if (!a->read_head) {
            pthread_mutex_unlock(&a->read_mu);
            return NULL;
        }
        while (a->read_head && n + a->read_head->n <= CS_CCD_VIEW_MAX_REFS) {
            queued_read *q = a->read_head;

            a->read_head = q->next;
            q->next = NULL;
            memcpy(refs + n, q->refs, q->n * sizeof(*refs));
            n += q->n;
            *tail = q;
            tail = &q->next;
        }
        if (!a->read_head)
            a->read_tail = NULL;
        pthread_mutex_unlock(&a->read_mu);
        read_batch(a, batch, refs, n);
    }
}

/* Appends q to the readers' queue and wakes one. Under read_mu. */
static void enqueue_locked(cs_api *a, queued_read *q)
{
    if (a->read_tail)
        a->read_tail->next = q;
    else
        a->read_head = q;
    a->read_tail = q;
    pthread_cond_signal(&a->read_cv);
}

/* Queues r's cases read (c's references) for the readers and parks r until it is answered.
 * Answers at once (503) when the readers have stopped. */
static enum MHD_Result queue_read(request *r, const read_call *c)
{
    cs_api *a = r->api;
    queued_read *q = calloc(1, sizeof(*q));

    if (!q)
        return respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    q->r = r;
    q->n = c->n;
    for (size_t i = 0; i < c->n; i++)
        q->refs[i] = c->refs[i];
    pthread_mutex_lock(&a->read_mu);
    if (a->read_stop) {
        pthread_mutex_unlock(&a->read_mu);
        free(q);
        return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "stopping");
    }
    /* Parked before a reader can see it: a reader wakes what it answers. */
    MHD_suspend_connection(r->conn);
    r->read = q;
    enqueue_locked(a, q);
    pthread_mutex_unlock(&a->read_mu);
    return MHD_YES;
}

static enum MHD_Result answer_read(request *r)
{
    read_call c = {.api = r->api, .r = r};
    char errstr[512] = "";
    int rc;

    switch (r->target.route) {
    case CS_API_CASES:
        if (r->read) { /* answered by a reader */
            rc = r->read->rc;
            c.body = r->read->body;
            r->read->body = NULL;
            snprintf(errstr, sizeof(errstr), "%s", r->read->errstr);
            break;
        }
        MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, collect_refs, &c);
        if (c.refs_error[0])
            return respond_error(r, MHD_HTTP_BAD_REQUEST, c.refs_error);
        if (c.n == 0)
            return respond_error(r, MHD_HTTP_BAD_REQUEST, "case-refs is required");
        return queue_read(r, &c);
    case CS_API_HISTORY:
        rc = with_pg(r->api, view_history, &c, errstr, sizeof(errstr));
        break;
    default:
        rc = with_pg(r->api, view_event, &c, errstr, sizeof(errstr));
        break;
    }
    if (rc == CS_OK)
        return respond(r, MHD_HTTP_OK, c.body, NULL, NULL);
    free(c.body);
    if (rc == CS_ERR_NOTFOUND) {
        char msg[128];

        if (r->target.route == CS_API_EVENT)
            snprintf(msg, sizeof(msg), "case %" PRId64 " has no history event %" PRId64,
                     r->target.ref, r->target.event_id);
        else
            snprintf(msg, sizeof(msg), "case %" PRId64 " not found", r->target.ref);
        return respond_error(r, MHD_HTTP_NOT_FOUND, msg);
    }
    if (rc == CS_ERR_INVALID)
        return respond_error(r, MHD_HTTP_BAD_REQUEST, errstr);
    cs_log_warn("read failed route=%s error=\"%s\"", cs_api_route_name(r->target.route), errstr);
    return respond_error(
        r, rc == CS_ERR_RETRY ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_INTERNAL_SERVER_ERROR,
        rc == CS_ERR_RETRY ? "the database is not reachable" : errstr);
}

/* --- submissions -------------------------------------------------------------------------- */

static void on_delivery(void *ctx, const cs_delivery *d)
{
    cs_api *a = ctx;

    if (d->err)
        cs_metric_inc(a->undelivered, 1);
    cs_waiters_delivered(a->waiters, d->opaque, d->err, d->reason, d->partition, d->offset);
}

static void suspend_request(void *ctx)
{
    request *r = ctx;

    MHD_suspend_connection(r->conn);
    r->parked = true;
}

/* A parked submission's wait is over (under the waiters' lock): a reader reads its answer
 * and resumes it. When the readers have stopped, or out of memory, it is resumed at once and
 * its HTTP thread reads the answer (answer_wait). */
static void wake_request(void *ctx)
{
    request *r = ctx;
    cs_api *a = r->api;
    queued_read *q = calloc(1, sizeof(*q));

    if (q) {
        q->r = r;
        q->woken = true;
        q->woken_us = cs_now_us();
        pthread_mutex_lock(&a->read_mu);
        if (!a->read_stop) {
            r->answer = q;
            enqueue_locked(a, q);
            q = NULL;
            r = NULL;
        }
        pthread_mutex_unlock(&a->read_mu);
        free(q);
    }
    if (r)
        MHD_resume_connection(r->conn);
}

static enum MHD_Result answer_wait(request *r);

/* Registers the wait, publishes json keyed by r->ref and parks the request. Answers at once
 * (503) when it cannot be published. */
static enum MHD_Result publish(request *r, const char *json)
{
    cs_api *a = r->api;
    char errstr[512];
    cs_prepared m;
    int rc;

    if (!atomic_load(&a->results_assigned))
        return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE,
                             "not ready: the results consumer is not assigned yet");
    r->waiter = cs_waiters_add(a->waiters, r->ref, r->key,
                               cs_now_ms() + (long long)a->cfg->submit_timeout * 1000);
    if (!r->waiter)
        return respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    rc = cs_producer_prepare(json, strlen(json), false, (size_t)a->cfg->max_message_bytes, &m,
                             errstr, sizeof(errstr));
    if (rc == CS_OK) {
        pthread_mutex_lock(&a->pmu);
        rc = cs_producer_send(a->producer, &m, r->waiter, errstr, sizeof(errstr));
        pthread_mutex_unlock(&a->pmu);
    }
    cs_prepared_clear(&m);
    if (rc != CS_OK) {
        /* Nothing sent: no delivery report will drop its reference. */
        cs_waiters_release(a->waiters, r->waiter);
        cs_waiters_release(a->waiters, r->waiter);
        r->waiter = NULL;
        if (rc == CS_ERR_INVALID)
            return respond_error(
                r, strstr(errstr, "too large") ? MHD_HTTP_CONTENT_TOO_LARGE : MHD_HTTP_BAD_REQUEST,
                errstr);
        cs_log_warn("could not publish case=%" PRId64 " error=\"%s\"", r->ref, errstr);
        return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, errstr);
    }
    cs_metric_inc(a->waiting, 1);
    if (!cs_waiters_park(a->waiters, r->waiter, suspend_request, wake_request, r))
        return answer_wait(r); /* its outcome came already */
    return MHD_YES;
}

typedef struct submitted_call {
    cs_api *api;
    request *r;
    char *body;
    bool created;
} submitted_call;

static int view_submitted(PGconn *conn, void *ctx, char *errstr, size_t errstr_size)
{
    submitted_call *c = ctx;

    return cs_ccd_view_submitted(conn, &c->api->view, c->r->ref, c->r->key, &c->body, &c->created,
                                 errstr, errstr_size);
}

/* Reads into q the answer of r, a submission whose wait is over, if it has a case to show
 * (applied or a duplicate of an applied one): q->rendered, and rc with body and created, or
 * errstr. */
static void render_answer(cs_api *a, request *r, queued_read *q)
{
    const cs_outcome *o = NULL;
    submitted_call c = {.api = a, .r = r};
    long long t0;
    int http;

    if (r->target.route == CS_API_SUPPLEMENTARY ||
        cs_waiter_state(a->waiters, r->waiter, &o) != CS_WAIT_OUTCOME ||
        cs_api_submit_reply(o->status, false, &http) != CS_API_REPLY_CASE)
        return;
    t0 = cs_now_us();
    q->rc = with_pg(a, view_submitted, &c, q->errstr, sizeof(q->errstr));
    cs_metric_observe(a->render, (double)(cs_now_us() - t0) / 1e6);
    q->body = c.body;
    q->created = c.created;
    q->rendered = true;
}

/* The answer of a request whose wait is over. */
static enum MHD_Result answer_wait(request *r)
{
    cs_api *a = r->api;
    const cs_outcome *o = NULL;
    cs_wait_state st = cs_waiter_state(a->waiters, r->waiter, &o);
    char errstr[512] = "", msg[256];
    int http;

    cs_metric_inc(a->waiting, -1);
    switch (st) {
    case CS_WAIT_PENDING: /* not reached: a parked request is resumed only when done */
    case CS_WAIT_STOPPED:
        return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE,
                             "the server is stopping: retry with the same Idempotency-Key");
    case CS_WAIT_TIMEOUT:
        cs_metric_inc(a->timeouts, 1);
        cs_log_info("no outcome in time case=%" PRId64 " idempotency_key=%s", r->ref, r->key);
        snprintf(msg, sizeof(msg),
                 "no outcome within %d s: the submission is queued and will be applied once; "
                 "retry with the same Idempotency-Key for its answer",
                 a->cfg->submit_timeout);
        return respond_error(r, MHD_HTTP_GATEWAY_TIMEOUT, msg);
    case CS_WAIT_UNDELIVERED:
        snprintf(msg, sizeof(msg), "the submission could not be published: %s",
                 cs_waiter_reason(r->waiter));
        return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
    case CS_WAIT_OUTCOME:
        cs_metric_observe(a->until_outcome,
                          (double)((r->answer ? r->answer->woken_us : cs_now_us()) - r->start_us) /
                              1e6);
        break;
    }
    if (r->target.route == CS_API_SUPPLEMENTARY) {
        if (o->status == CS_STATUS_APPLIED || o->status == CS_STATUS_DUPLICATE)
            return respond(r, MHD_HTTP_OK, cs_api_supplementary_body(o->supplementary_data), NULL,
                           NULL);
        return respond_error(r, MHD_HTTP_BAD_REQUEST,
                             o->error ? o->error : cs_status_name(o->status));
    }
    switch (cs_api_submit_reply(o->status, false, &http)) {
    case CS_API_REPLY_CASE: {
        queued_read here = {.r = r};
        queued_read *q = r->answer && r->answer->rendered ? r->answer : &here;
        int rc;

        if (q == &here) /* not read by a reader (they had stopped) */
            render_answer(a, r, q);
        rc = q->rc;
        snprintf(errstr, sizeof(errstr), "%s", q->errstr);
        if (rc != CS_OK) {
            free(q->body);
            q->body = NULL;
        }
        if (rc == CS_ERR_NOTFOUND) {
            /* Its history row is gone: the case was disposed of at the end of its retention
             * after the submission was applied (the worker died before answering, and answered
             * a redelivery after the disposal, DESIGN §10). Nothing is left to show. */
            snprintf(msg, sizeof(msg),
                     "case %" PRId64 " was disposed of at the end of its retention after this "
                     "submission was applied: there is no case to show",
                     r->ref);
            return respond(r, MHD_HTTP_OK, cs_api_refused_body(msg), NULL, NULL);
        }
        if (rc != CS_OK) {
            cs_log_warn("could not render an applied submission case=%" PRId64
                        " idempotency_key=%s error=\"%s\"",
                        r->ref, r->key, errstr);
            return respond_error(r,
                                 rc == CS_ERR_RETRY ? MHD_HTTP_SERVICE_UNAVAILABLE
                                                    : MHD_HTTP_INTERNAL_SERVER_ERROR,
                                 errstr);
        }
        cs_api_submit_reply(o->status, q->created, &http);
        char *body = q->body;

        q->body = NULL; /* respond takes it */
        return respond(r, (unsigned)http, body, NULL, NULL);
    }
    case CS_API_REPLY_CONFLICT:
        break;
    case CS_API_REPLY_ERRORS:
        /* A refusal CCD shows the user: its submit response with errors. */
        if (http == MHD_HTTP_OK)
            return respond(r, MHD_HTTP_OK,
                           cs_api_refused_body(o->error ? o->error : cs_status_name(o->status)),
                           NULL, NULL);
        break;
    }
    return respond_error(r, (unsigned)http, o->error ? o->error : cs_status_name(o->status));
}

typedef struct case_type_call {
    int64_t ref;
    char case_type[256];
    bool found;
} case_type_call;

static int read_case_type(PGconn *conn, void *ctx, char *errstr, size_t errstr_size)
{
    case_type_call *c = ctx;
    char ref[24];
    const char *params[1] = {ref};
    PGresult *res;
    int rc = CS_OK;

    snprintf(ref, sizeof(ref), "%" PRId64, c->ref);
    res = PQexecParams(conn, "SELECT case_type_id FROM ccd.case_data WHERE reference = $1", 1, NULL,
                       params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = cs_db_retryable(conn, res) ? CS_ERR_RETRY : CS_ERR;
        cs_db_error(conn, res, errstr, errstr_size);
    } else if (PQntuples(res) == 1) {
        snprintf(c->case_type, sizeof(c->case_type), "%s", PQgetvalue(res, 0, 0));
        c->found = true;
    }
    PQclear(res);
    return rc;
}

static enum MHD_Result start_submit(request *r)
{
    cs_api *a = r->api;
    const char *key = header(r, "Idempotency-Key");
    const char *auth = header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    char errstr[512] = "";
    cs_api_user user;
    cs_api_mapped mapped;
    json_t *claims;
    enum MHD_Result ret;
    int rc;

    if (!cs_uuid_parse(key, r->key))
        return respond_error(r, MHD_HTTP_BAD_REQUEST, "Idempotency-Key header must be a UUID");
    if (!(claims = cs_jwt_claims_unverified(auth, errstr, sizeof(errstr)))) {
        char reason[600];

        snprintf(reason, sizeof(reason), "Authorization is not a bearer token: %s", errstr);
        return respond_error(r, MHD_HTTP_UNAUTHORIZED, reason);
    }
    if (!cs_api_user_of(claims, &user)) {
        json_decref(claims);
        return respond_error(r, MHD_HTTP_UNAUTHORIZED,
                             "the Authorization token names no user (uid or sub)");
    }
    rc = cs_api_map_event(r->body ? r->body : "", r->len, r->key, &user, a->view.notes_field,
                          &mapped, errstr, sizeof(errstr));
    json_decref(claims);
    if (rc != CS_OK)
        return respond_error(
            r, rc == CS_ERR_INVALID ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_INTERNAL_SERVER_ERROR,
            errstr);
    r->ref = mapped.ref;
    ret = publish(r, mapped.json);
    free(mapped.json);
    return ret;
}

static enum MHD_Result start_supplementary(request *r)
{
    cs_api *a = r->api;
    case_type_call c = {.ref = r->target.ref};
    const char *auth = header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    char errstr[512] = "", *json = NULL, msg[64];
    cs_api_user user;
    json_t *claims;
    enum MHD_Result ret;
    int rc;

    if ((rc = with_pg(a, read_case_type, &c, errstr, sizeof(errstr))) != CS_OK)
        return respond_error(
            r, rc == CS_ERR_RETRY ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_INTERNAL_SERVER_ERROR,
            errstr);
    if (!c.found) {
        snprintf(msg, sizeof(msg), "case %" PRId64 " not found", r->target.ref);
        return respond_error(r, MHD_HTTP_NOT_FOUND, msg);
    }
    /* No Idempotency-Key in CCD's call: each request is its own submission. */
    if (cs_uuid_generate(r->key) != 0)
        return respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "no randomness for a key");
    /* The user CCD acts for, when its token names one; else the calling service. */
    claims = cs_jwt_claims_unverified(auth, errstr, sizeof(errstr));
    if (!claims || !cs_api_user_of(claims, &user))
        user = (cs_api_user){r->service[0] ? r->service : "ccd_data", NULL, NULL};
    r->ref = r->target.ref;
    rc = cs_api_map_supplementary(r->body ? r->body : "", r->len, r->ref, c.case_type, r->key,
                                  &user, &json, errstr, sizeof(errstr));
    json_decref(claims);
    if (rc != CS_OK)
        return respond_error(
            r, rc == CS_ERR_INVALID ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_INTERNAL_SERVER_ERROR,
            errstr);
    ret = publish(r, json);
    free(json);
    return ret;
}

/* --- the access handler ----------------------------------------------------------------- */

static cs_http_route health_route(cs_api_route route)
{
    return route == CS_API_LIVEZ    ? CS_ROUTE_LIVEZ
           : route == CS_API_READYZ ? CS_ROUTE_READYZ
                                    : CS_ROUTE_METRICS;
}

/* /livez, /readyz and /metrics, answered as the worker's endpoint answers them. */
static enum MHD_Result answer_health(request *r)
{
    cs_api *a = r->api;
    char text[1024];
    bool ok = r->target.route == CS_API_LIVEZ    ? cs_health_live(a->health, text, sizeof(text))
              : r->target.route == CS_API_READYZ ? cs_health_ready(a->health, text, sizeof(text))
                                                 : true;

    /* The status the answer gives, for the metrics (the state may move in between). */
    r->answered = true;
    r->status = ok ? 200 : 503;
    return cs_metrics_respond(r->conn, a->health, health_route(r->target.route)) ? MHD_YES : MHD_NO;
}

/* The checks made on a request's headers, before its body is read: routing, who calls, the
 * content type and declared length. Answers and returns true when the request ends here. */
static bool refuse_early(request *r, enum MHD_Result *ret)
{
    cs_api *a = r->api;
    bool post = r->target.route == CS_API_SUBMIT || r->target.route == CS_API_SUPPLEMENTARY;
    const char *length;
    char why[512];
    int status;

    switch (r->target.route) {
    case CS_API_NOT_FOUND:
        *ret = respond_error(r, MHD_HTTP_NOT_FOUND, "no such path");
        return true;
    case CS_API_BAD_METHOD:
        *ret = respond_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed on this path");
        return true;
    case CS_API_LIVEZ:
    case CS_API_READYZ:
    case CS_API_METRICS:
        return false;
    default:
        break;
    }
    if ((status = check_service(r, why, sizeof(why)))) {
        *ret = respond_error(r, (unsigned)status, why);
        return true;
    }
    if (blank(header(r, MHD_HTTP_HEADER_AUTHORIZATION))) {
        /* As CCD's SDK answers a submit: its response with errors. */
        *ret = r->target.route == CS_API_SUBMIT
                   ? respond(r, MHD_HTTP_UNAUTHORIZED,
                             cs_api_refused_body("Authorization header is required"), NULL, NULL)
                   : respond_error(r, MHD_HTTP_UNAUTHORIZED, "Authorization header is required");
        return true;
    }
    if (r->target.route == CS_API_BAD_PATH) {
        *ret = respond_error(r, MHD_HTTP_BAD_REQUEST, r->target.reason);
        return true;
    }
    if (!post)
        return false;
    if (!cs_api_json_content_type(header(r, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        *ret = respond_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                             "Content-Type must be application/json");
        return true;
    }
    length = header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length && strtoll(length, NULL, 10) > a->cfg->max_body) {
        snprintf(why, sizeof(why), "the body is larger than %d bytes", a->cfg->max_body);
        *ret = respond_error(r, MHD_HTTP_CONTENT_TOO_LARGE, why);
        return true;
    }
    return false;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    cs_api *a = cls;
    request *r = *con_cls;
    enum MHD_Result ret;

    (void)version;
    if (!r) {
        if (!(r = calloc(1, sizeof(*r))))
            return MHD_NO;
        r->api = a;
        r->conn = conn;
        r->start_us = cs_now_us();
        r->status = 500;
        atomic_fetch_add(&a->active, 1);
        *con_cls = r;
        cs_api_route_of(method, url, &r->target);
        if (refuse_early(r, &ret))
            return ret;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        size_t n = *upload_size;

        *upload_size = 0;
        if (r->too_large || r->len + n > (size_t)a->cfg->max_body) {
            r->too_large = true; /* the rest is read and dropped */
            free(r->body);
            r->body = NULL;
            return MHD_YES;
        }
        char *grown = realloc(r->body, r->len + n + 1);

        if (!grown)
            return MHD_NO;
        memcpy(grown + r->len, upload, n);
        r->len += n;
        grown[r->len] = '\0';
        r->body = grown;
        return MHD_YES;
    }
    if (r->answered)
        return MHD_YES;
    if (r->waiter)
        return answer_wait(r);
    switch (r->target.route) {
    case CS_API_LIVEZ:
    case CS_API_READYZ:
    case CS_API_METRICS:
        return answer_health(r);
    case CS_API_SUBMIT:
    case CS_API_SUPPLEMENTARY:
        if (r->too_large) {
            char why[128];

            snprintf(why, sizeof(why), "the body is larger than %d bytes", a->cfg->max_body);
            return respond_error(r, MHD_HTTP_CONTENT_TOO_LARGE, why);
        }
        return r->target.route == CS_API_SUBMIT ? start_submit(r) : start_supplementary(r);
    default:
        return answer_read(r);
    }
}

static void status_index(int status, size_t *idx, bool *found)
{
    *found = false;
    for (size_t i = 0; i < N_STATUSES; i++)
        if (statuses[i] == status) {
            *idx = i;
            *found = true;
        }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    cs_api *a = cls;
    request *r = *con_cls;
    size_t idx = 0;
    bool known;

    (void)conn;
    (void)why;
    if (!r)
        return;
    status_index(r->status, &idx, &known);
    if (known)
        cs_metric_inc(a->requests[r->target.route][idx], 1);
    cs_metric_observe(a->latency[r->target.route], (double)(cs_now_us() - r->start_us) / 1e6);
    if (r->waiter && !r->answered)
        cs_metric_inc(a->waiting, -1);
    cs_waiters_release(a->waiters, r->waiter);
    if (r->read)
        free(r->read->body);
    free(r->read);
    if (r->answer)
        free(r->answer->body);
    free(r->answer);
    free(r->body);
    free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&a->active, 1);
}

/* --- the results consumer ------------------------------------------------------------------- */

static void *results_main(void *arg)
{
    cs_api *a = arg;
    char errstr[256];
    bool logged = false;

    while (!atomic_load(&a->stop_results)) {
        cs_outcome *o = NULL;

        cs_beat();
        if (!atomic_load(&a->results_assigned)) {
            int rc = cs_producer_watch_results(a->producer, 5000, errstr, sizeof(errstr));

            if (rc != CS_OK) {
                if (!logged)
                    cs_log_warn("results consumer not assigned yet topic=%s error=\"%s\"",
                                a->cfg->topic_results, errstr);
                logged = true;
                cs_sleep_ms(1000);
                continue;
            }
            cs_log_info("results consumer assigned topic=%s", a->cfg->topic_results);
            atomic_store(&a->results_assigned, true);
        }
        if (cs_producer_next_outcome(a->producer, 100, &o, errstr, sizeof(errstr)) != CS_OK) {
            cs_log_error("results consumer failed error=\"%s\"", errstr);
            cs_sleep_ms(1000);
        } else if (o) {
            cs_metric_inc(a->outcomes, 1);
            if (o->timestamp_ms >= 0) {
                long long now = cs_wall_ms();

                cs_metric_observe(a->outcome_delay, now > o->timestamp_ms
                                                        ? (double)(now - o->timestamp_ms) / 1e3
                                                        : 0);
            }
            cs_waiters_outcome(a->waiters, o);
            cs_outcome_free(o);
        }
        pthread_mutex_lock(&a->pmu);
        cs_producer_poll(a->producer, 0);
        pthread_mutex_unlock(&a->pmu);
        cs_waiters_expire(a->waiters, cs_now_ms());
    }
    return NULL;
}

/* --- health ------------------------------------------------------------------------------ */

static int probe_kafka(void *ctx, char *detail, size_t size)
{
    cs_api *a = ctx;

    return cs_producer_check(a->producer, CS_PROBE_TIMEOUT_MS, detail, size) > 0 ? 0 : 1;
}

static bool program_health(char *detail, size_t size, void *ctx)
{
    cs_api *a = ctx;
    bool ok = atomic_load(&a->results_assigned);

    snprintf(detail, size, "results=%s waiting=%zu", ok ? "assigned" : "unassigned",
             cs_waiters_count(a->waiters));
    return ok;
}

/* --- start and stop -------------------------------------------------------------------- */

__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    cs_log_warn("http server: %s", msg);
}

static void register_metrics(cs_api *a)
{
    static const char stages_help[] =
        "a submission's stages: outcome, from its headers to its request woken by its outcome; "
        "render, reading its answer from PostgreSQL";
    char name[160];

    for (int route = 0; route < CS_API_ROUTE_COUNT; route++) {
        for (size_t s = 0; s < N_STATUSES; s++) {
            snprintf(name, sizeof(name),
                     "casestream_api_requests_total{route=\"%s\",status=\"%d\"}",
                     cs_api_route_name((cs_api_route)route), statuses[s]);
            a->requests[route][s] =
                cs_metric_counter(name, "requests answered, by route and status");
        }
        snprintf(name, sizeof(name), "casestream_api_request_seconds{route=\"%s\"}",
                 cs_api_route_name((cs_api_route)route));
        a->latency[route] =
            cs_metric_histogram(name, "time from a request's headers to its answer");
    }
    a->waiting = cs_metric_gauge("casestream_api_waiting",
                                 "submissions published and waiting for their outcome");
    a->timeouts = cs_metric_counter("casestream_api_submit_timeouts_total",
                                    "submissions answered 504: no outcome within --submit-timeout");
    a->undelivered = cs_metric_counter("casestream_api_undelivered_total",
                                       "submissions Kafka did not take (answered 503)");
    a->outcomes =
        cs_metric_counter("casestream_api_outcomes_read_total",
                          "outcomes read from the results topic (every instance reads all)");
    a->case_reads = cs_metric_counter("casestream_api_case_reads_total",
                                      "GET /ccd-persistence/cases requests read from PostgreSQL");
    a->case_queries =
        cs_metric_counter("casestream_api_case_queries_total",
                          "queries that read them: one for every read queued at the time");
    a->outcome_delay = cs_metric_histogram("casestream_api_outcome_delay_seconds",
                                           "from an outcome's Kafka timestamp (the worker's send) "
                                           "to its read by the results consumer");
    a->until_outcome =
        cs_metric_histogram("casestream_api_submit_stage_seconds{stage=\"outcome\"}", stages_help);
    a->render =
        cs_metric_histogram("casestream_api_submit_stage_seconds{stage=\"render\"}", stages_help);
}

static int load_key(cs_api *a, bool *config_error, char *errstr, size_t errstr_size)
{
    const cs_config *cfg = a->cfg;

    if (cfg->insecure_skip_s2s) {
        cs_log_warn(
            "INSECURE: --insecure-skip-s2s is set: ServiceAuthorization is not verified and "
            "any caller may read and change cases (development only)");
        return CS_OK;
    }
    if (!cfg->s2s_key_file[0]) {
        snprintf(errstr, errstr_size,
                 "no S2S key: set --s2s-key-file (and --s2s-alg), or --insecure-skip-s2s for "
                 "development");
        *config_error = true;
        return CS_ERR_INVALID;
    }
    if (!(a->s2s_key = cs_jwt_key_load(cfg->s2s_alg, cfg->s2s_key_file, errstr, errstr_size))) {
        *config_error = true;
        return CS_ERR_INVALID;
    }
    if (!(a->s2s_seen = cs_s2s_cache_new())) {
        snprintf(errstr, errstr_size, "out of memory");
        return CS_ERR;
    }
    return CS_OK;
}

cs_api *cs_api_new(const cs_config *cfg, bool *config_error, char *errstr, size_t errstr_size)
{
    cs_producer_opts opts = CS_PRODUCER_OPTS_INIT;
    cs_metrics_addr addr;
    cs_api *a = calloc(1, sizeof(*a));
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    int rc;

    *config_error = false;
    if (!a) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    a->cfg = cfg;
    a->view.notes_field = cfg->notes_field;
    pthread_mutex_init(&a->pmu, NULL);
    pthread_mutex_init(&a->pool_mu, NULL);
    pthread_cond_init(&a->pool_cv, NULL);
    pthread_mutex_init(&a->read_mu, NULL);
    pthread_cond_init(&a->read_cv, NULL);
    if (load_key(a, config_error, errstr, errstr_size))
        goto fail;
    register_metrics(a);
    cs_metrics_build_info();
    a->pool_size = 2 * (size_t)cfg->api_threads; /* as many readers as HTTP threads */
    if (!(a->pool = calloc(a->pool_size, sizeof(*a->pool))) || !(a->waiters = cs_waiters_new()) ||
        !(a->readers = calloc((size_t)cfg->api_threads, sizeof(*a->readers)))) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    opts.on_delivery = on_delivery;
    opts.ctx = a;
    opts.send_at_once = true; /* a request waits for each */
    if ((rc = cs_producer_open(cfg, &opts, &a->producer, errstr, errstr_size))) {
        *config_error = rc == CS_ERR_INVALID;
        goto fail;
    }
    if (!(a->health = cs_health_new(cfg->live_seconds)) ||
        !(a->pg_probe = cs_probe_pg_new(cfg->pg, NULL, NULL, NULL)) ||
        cs_health_add(a->health, "kafka", probe_kafka, a) ||
        cs_health_add(a->health, "postgresql", cs_probe_run, a->pg_probe)) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    cs_health_set_program(a->health, program_health, a);
    if (cs_health_start(a->health, errstr, errstr_size))
        goto fail;
    if (pthread_create(&a->results_thread, NULL, results_main, a) != 0) {
        snprintf(errstr, errstr_size, "could not start the results thread");
        goto fail;
    }
    a->results_started = true;
    for (int i = 0; i < cfg->api_threads; i++) {
        if (pthread_create(&a->readers[i], NULL, reader_main, a) != 0) {
            snprintf(errstr, errstr_size, "could not start the reader threads");
            goto fail;
        }
        a->readers_started++;
    }
    if (cs_metrics_resolve(cfg->api_host, cfg->api_port, &addr, errstr, errstr_size)) {
        *config_error = true;
        goto fail;
    }
    if (addr.ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* One thread is libmicrohttpd's own polling thread: no pool option at all (it warns
     * about a pool of 0 or 1). */
    struct MHD_OptionItem pool[] = {
        {cfg->api_threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END,
         (intptr_t)cfg->api_threads, NULL},
        {MHD_OPTION_END, 0, NULL}};
    a->daemon = MHD_start_daemon(
        flags, (uint16_t)cfg->api_port, NULL, NULL, on_request, a, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr.ss, MHD_OPTION_ARRAY, pool,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)cfg->connection_timeout, MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)256, MHD_OPTION_END);
    if (!a->daemon) {
        snprintf(errstr, errstr_size, "could not listen on %s port %d: %s", cfg->api_host,
                 cfg->api_port, errno ? strerror(errno) : "libmicrohttpd refused the settings");
        goto fail;
    }
    cs_log_info("listening host=%s port=%d threads=%d s2s=%s", cfg->api_host, cfg->api_port,
                cfg->api_threads, a->s2s_key ? cs_jwt_key_alg(a->s2s_key) : "off");
    return a;
fail:
    cs_api_free(a);
    return NULL;
}

int cs_api_run(cs_api *a)
{
    long long deadline;
    MHD_socket fd;

    while (cs_running)
        cs_sleep_ms(200);
    /* Stop accepting; every request begun is finished, those parked within their timeout. */
    atomic_store(&a->draining, true);
    fd = MHD_quiesce_daemon(a->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    cs_log_info("stopping: finishing requests in flight active=%ld waiting=%zu",
                atomic_load(&a->active), cs_waiters_count(a->waiters));
    deadline = cs_now_ms() + (long long)a->cfg->submit_timeout * 1000 + 5000;
    while (atomic_load(&a->active) > 0 && cs_now_ms() < deadline)
        usleep(20 * 1000);
    if (atomic_load(&a->active) > 0) {
        /* Past every submit timeout: wake whatever is left, and give it a moment. */
        cs_waiters_stop(a->waiters);
        for (int i = 0; i < 100 && atomic_load(&a->active) > 0; i++)
            usleep(20 * 1000);
    }
    cs_log_info("stopped accepting; requests in flight finished active=%ld",
                atomic_load(&a->active));
    return CS_OK;
}

void cs_api_free(cs_api *a)
{
    if (!a)
        return;
    /* The readers answer every read queued before they stop; reads queued after are refused. */
    pthread_mutex_lock(&a->read_mu);
    a->read_stop = true;
    pthread_cond_broadcast(&a->read_cv);
    pthread_mutex_unlock(&a->read_mu);
    for (size_t i = 0; i < a->readers_started; i++)
        pthread_join(a->readers[i], NULL);
    free(a->readers);
    if (a->daemon)
        MHD_stop_daemon(a->daemon);
    if (a->results_started) {
        atomic_store(&a->stop_results, true);
        pthread_join(a->results_thread, NULL);
    }
    cs_health_stop(a->health);
    cs_probe_free(a->pg_probe);
    cs_health_free(a->health);
    if (a->producer) {
        pthread_mutex_lock(&a->pmu);
        cs_producer_flush(a->producer, 5000);
        pthread_mutex_unlock(&a->pmu);
        cs_producer_free(a->producer);
    }
    cs_waiters_free(a->waiters);
    for (size_t i = 0; a->pool && i < a->pool_size; i++)
        PQfinish(a->pool[i].conn);
    free(a->pool);
    cs_jwt_key_free(a->s2s_key);
    cs_s2s_cache_free(a->s2s_seen);
    pthread_mutex_destroy(&a->pmu);
    pthread_mutex_destroy(&a->pool_mu);
    pthread_cond_destroy(&a->pool_cv);
    pthread_mutex_destroy(&a->read_mu);
    pthread_cond_destroy(&a->read_cv);
    free(a);
}
