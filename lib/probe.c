/* Readiness probes: a cheap request to each service, on the probe's own connection. */
#include "probe.h"

#include "db.h"
#include "err.h"
#include "es.h"
#include "redis.h"
#include "url.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum probe_kind { PROBE_PG, PROBE_REDIS, PROBE_ES, PROBE_KAFKA } probe_kind;

struct cs_probe {
    probe_kind kind;
    /* PostgreSQL */
    char *conninfo, *sql, *param;
    PGconn *pg;
    cs_metric *gauge;
    /* Redis */
    cs_redis *target;
    redisContext *redis;
    /* Elasticsearch */
    const cs_config *cfg;
    cs_es *es;
    /* Kafka */
    rd_kafka_t *rk;
};

static cs_probe *probe_new(probe_kind kind)
{
    cs_probe *p = calloc(1, sizeof(*p));

    if (p)
        p->kind = kind;
    return p;
}

cs_probe *cs_probe_pg_new(const char *conninfo, const char *sql, const char *param,
                          cs_metric *gauge)
{
    cs_probe *p = probe_new(PROBE_PG);

    if (!p || !(p->conninfo = strdup(conninfo)) || !(p->sql = strdup(sql ? sql : "SELECT 1")) ||
        (param && !(p->param = strdup(param)))) {
        cs_probe_free(p);
        return NULL;
    }
    p->gauge = gauge;
    return p;
}

cs_probe *cs_probe_redis_new(const char *url, const cs_redis_tls *tls)
{
    cs_probe *p = probe_new(PROBE_REDIS);
    char errstr[256];

    if (p && !(p->target = cs_redis_new(url, tls, errstr, sizeof(errstr)))) {
        free(p);
        return NULL;
    }
    return p;
}

cs_probe *cs_probe_es_new(const cs_config *cfg)
{
    cs_probe *p = probe_new(PROBE_ES);

    if (p)
        p->cfg = cfg;
    return p;
}

cs_probe *cs_probe_kafka_new(rd_kafka_t *rk)
{
    cs_probe *p = probe_new(PROBE_KAFKA);

    if (p)
        p->rk = rk;
    return p;
}

static int run_pg(cs_probe *p, char *detail, size_t size)
{
    long long v = 0;
    int rc;

    if (!p->pg &&
        !(p->pg = cs_db_connect_within(p->conninfo, CS_PROBE_TIMEOUT_MS / 1000, detail, size)))
        return CS_ERR_RETRY;
    rc = cs_db_query_int(p->pg, p->sql, p->param, CS_PROBE_TIMEOUT_MS, &v, detail, size);
    if (rc == CS_OK) {
        cs_metric_set(p->gauge, v);
        return CS_OK;
    }
    /* A connection that failed or hung is not used again. */
    PQfinish(p->pg);
    p->pg = NULL;
    return rc;
}

static int run_redis(cs_probe *p, char *detail, size_t size)
{
    redisReply *r;
    int ok;

    if (!p->redis && !(p->redis = cs_redis_connect(p->target, CS_PROBE_TIMEOUT_MS, detail, size)))
        return CS_ERR_RETRY;
    r = redisCommand(p->redis, "PING");
    ok = r && r->type == REDIS_REPLY_STATUS;
    if (!ok) {
        snprintf(detail, size, "PING: %s",
                 r && r->type == REDIS_REPLY_ERROR ? r->str
                 : p->redis->errstr[0]             ? p->redis->errstr
                                                   : "no reply");
        redisFree(p->redis);
        p->redis = NULL;
    }
    if (r)
        freeReplyObject(r);
    return ok ? CS_OK : CS_ERR_RETRY;
}

static int run_es(cs_probe *p, char *detail, size_t size)
{
    cs_es_response r = CS_ES_RESPONSE_INIT;
    json_t *root = NULL;
    const char *status = NULL;
    int rc = CS_ERR_RETRY;

    if (!p->es && !(p->es = cs_es_new_config(p->cfg, detail, size)))
        return CS_ERR;
    cs_es_set_timeout(p->es, CS_PROBE_TIMEOUT_MS);
    if (cs_es_request(p->es, "GET", "/_cluster/health?timeout=1s", NULL, 0, &r, detail, size))
        return CS_ERR_RETRY;
    if (r.status == 200 && (root = json_loadb(r.body, r.len, 0, NULL)))
        status = json_string_value(json_object_get(root, "status"));
    if (r.status != 200)
        snprintf(detail, size, "cluster health: HTTP %ld", r.status);
    else if (!status)
        snprintf(detail, size, "cluster health: no status in the answer");
    else if (strcmp(status, "red") == 0)
        snprintf(detail, size, "cluster health is red");
    else
        rc = CS_OK;
    json_decref(root);
    cs_es_response_clear(&r);
    return rc;
}

static int run_kafka(cs_probe *p, char *detail, size_t size)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(p->rk, 0, NULL, &md, CS_PROBE_TIMEOUT_MS);
    int rc = CS_OK;

    if (err) {
        snprintf(detail, size, "metadata request: %s", rd_kafka_err2str(err));
        rc = CS_ERR_RETRY;
    } else if (md->broker_cnt == 0) {
        snprintf(detail, size, "metadata names no broker");
        rc = CS_ERR_RETRY;
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    return rc;
}

int cs_probe_run(void *probe, char *detail, size_t size)
{
    cs_probe *p = probe;

    switch (p->kind) {
    case PROBE_PG:
        return run_pg(p, detail, size);
    case PROBE_REDIS:
        return run_redis(p, detail, size);
    case PROBE_ES:
        return run_es(p, detail, size);
    case PROBE_KAFKA:
        return run_kafka(p, detail, size);
    }
    return CS_ERR;
}

void cs_probe_free(cs_probe *p)
{
    if (!p)
        return;
    if (p->pg)
        PQfinish(p->pg);
    if (p->redis)
        redisFree(p->redis);
    cs_redis_free(p->target);
    cs_es_free(p->es);
    free(p->conninfo);
    free(p->sql);
    free(p->param);
    free(p);
}
