/* Kafka helpers shared by the programs: configuration, producers, topic admin. */
#include "kafka.h"

#include "err.h"
#include "log.h"
#include "run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *errstr,
                    size_t errstr_size)
{
    char why[256];

    if (rd_kafka_conf_set(conf, key, value, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, errstr_size, "kafka property %s=%s: %s", key, value, why);
        return CS_ERR_INVALID;
    }
    return CS_OK;
}

/* Applies the -X key=value properties in command-line order. */
static int apply_props(rd_kafka_conf_t *conf, const cs_config *cfg, char *errstr,
                       size_t errstr_size)
{
    for (size_t i = 0; i < cfg->kafka_props_count; i++) {
        char key[256];
        const char *eq = strchr(cfg->kafka_props[i], '=');
        size_t klen = (size_t)(eq - cfg->kafka_props[i]);

        if (klen >= sizeof(key)) {
            snprintf(errstr, errstr_size, "kafka property name too long");
            return CS_ERR_INVALID;
        }
        memcpy(key, cfg->kafka_props[i], klen);
        key[klen] = '\0';
        if (conf_set(conf, key, eq + 1, errstr, errstr_size))
            return CS_ERR_INVALID;
    }
    return CS_OK;
}

/* librdkafka's log lines, through casestream's logger (syslog levels: 0-3 error, 4 warning,
 * 5-6 notice and info, 7 debug). Called from librdkafka's threads. */
static void on_log(const rd_kafka_t *rk, int level, const char *facility, const char *buf)
{
    int ours = level <= 3   ? CS_LOG_ERROR
               : level == 4 ? CS_LOG_WARN
               : level <= 6 ? CS_LOG_INFO
                            : CS_LOG_DEBUG;

    cs_log(ours, "kafka: %s facility=%s client=%s", buf, facility, rk ? rd_kafka_name(rk) : "-");
}

static cs_kafka_error_fn error_hook;
static void *error_hook_ctx;

void cs_kafka_set_error_hook(cs_kafka_error_fn fn, void *ctx)
{
    error_hook_ctx = ctx;
    error_hook = fn;
}

/* Errors librdkafka reports outside any request (brokers down, fatal errors): logged, and
 * handed to the program's hook. Called from librdkafka's threads. */
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)opaque;
    cs_log(err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__FATAL
               ? CS_LOG_ERROR
               : CS_LOG_WARN,
           "kafka error: %s client=%s code=%s", reason, rd_kafka_name(rk),
           rd_kafka_err2name((rd_kafka_resp_err_t)err));
    if (error_hook)
        error_hook((rd_kafka_resp_err_t)err, reason, error_hook_ctx);
}

rd_kafka_conf_t *cs_kafka_conf_new(const cs_config *cfg, const char *const *defaults, char *errstr,
                                   size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();

    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_error);

    if (conf_set(conf, "bootstrap.servers", cfg->brokers, errstr, errstr_size))
        goto fail;
    for (size_t i = 0; defaults && defaults[i]; i += 2) {
        if (conf_set(conf, defaults[i], defaults[i + 1], errstr, errstr_size))
            goto fail;
    }
    if (apply_props(conf, cfg, errstr, errstr_size))
        goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

long cs_kafka_message_max(const cs_config *cfg)
{
    return (long)cfg->max_message_bytes + CS_KAFKA_HEADROOM;
}

size_t cs_kafka_copy_max(const cs_config *cfg)
{
    return (size_t)cs_kafka_message_max(cfg) - 8192;
}

bool cs_kafka_err_too_large(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
           err == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
}

rd_kafka_t *cs_kafka_producer_new(const cs_config *cfg, rd_kafka_conf_t *conf, char *errstr,
                                  size_t errstr_size)
{
    char max[24];
    static const char *const producer_defaults[] = {
        "enable.idempotence", "true",      "acks", "all", "partitioner",
        "murmur2_random",     "linger.ms", "5",    NULL};
    rd_kafka_t *rk;

    for (size_t i = 0; producer_defaults[i]; i += 2) {
        if (conf_set(conf, producer_defaults[i], producer_defaults[i + 1], errstr, errstr_size)) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    snprintf(max, sizeof(max), "%ld", cs_kafka_message_max(cfg));
    if (conf_set(conf, "message.max.bytes", max, errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    /* -X properties win over the defaults above. */
    if (apply_props(conf, cfg, errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!rk)
        rd_kafka_conf_destroy(conf);
    return rk;
}

int cs_kafka_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms, char *errstr,
                             size_t errstr_size)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err;
    int n = CS_ERR_RETRY;

    err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    if (err) {
        snprintf(errstr, errstr_size, "metadata for topic %s: %s", topic, rd_kafka_err2str(err));
    } else if (md->topic_cnt != 1 || md->topics[0].err) {
        snprintf(errstr, errstr_size, "topic %s: %s", topic,
                 md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "not found");
        n = CS_ERR_NOTFOUND;
    } else {
        n = md->topics[0].partition_cnt;
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return n;
}

static int set_topic_limits(rd_kafka_t *rk, const char *const *names, size_t n, const char *max,
                            char *errstr, size_t errstr_size)
{
    rd_kafka_ConfigResource_t *res[4] = {NULL};
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_event_t *ev;
    int rc = CS_OK;

    for (size_t i = 0; i < n && i < 4; i++) {
        res[i] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, names[i]);
        rd_kafka_ConfigResource_set_config(res[i], "max.message.bytes", max);
    }
    rd_kafka_AlterConfigs(rk, res, n, NULL, q);
    if (!(ev = rd_kafka_queue_poll(q, 30000))) {
        snprintf(errstr, errstr_size, "no answer to AlterConfigs within 30 s");
        rc = CS_ERR_RETRY;
    } else if (rd_kafka_event_error(ev)) {
        snprintf(errstr, errstr_size, "set max.message.bytes: %s", rd_kafka_event_error_string(ev));
        rc = CS_ERR_RETRY;
    } else {
        size_t nres = 0;
        const rd_kafka_ConfigResource_t **rs =
            rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev), &nres);

        for (size_t i = 0; i < nres && rc == CS_OK; i++) {
            if (rd_kafka_ConfigResource_error(rs[i])) {
                snprintf(errstr, errstr_size, "topic %s: set max.message.bytes: %s",
                         rd_kafka_ConfigResource_name(rs[i]),
                         rd_kafka_ConfigResource_error_string(rs[i]));
                rc = CS_ERR;
            }
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    for (size_t i = 0; i < n && i < 4; i++)
        rd_kafka_ConfigResource_destroy(res[i]);
    return rc;
}

int cs_kafka_create_topics(const cs_config *cfg, char *errstr, size_t errstr_size)
{
    const char *names[4] = {cfg->topic_events, cfg->topic_results, cfg->topic_changes,
                            cfg->topic_dlq};
    rd_kafka_NewTopic_t *topics[4] = {NULL};
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_event_t *ev = NULL;
    char max[24];
    int rc = CS_ERR;

    if (!(conf = cs_kafka_conf_new(cfg, NULL, errstr, errstr_size)))
        return CS_ERR_INVALID;
    if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size))) {
        rd_kafka_conf_destroy(conf);
        return CS_ERR;
    }
    snprintf(max, sizeof(max), "%ld", cs_kafka_message_max(cfg));
    for (int i = 0; i < 4; i++) {
        char why[256];

        topics[i] = rd_kafka_NewTopic_new(names[i], cfg->events_partitions, 1, why, sizeof(why));
        if (!topics[i]) {
            snprintf(errstr, errstr_size, "topic %s: %s", names[i], why);
            goto cleanup;
        }
        if (rd_kafka_NewTopic_set_config(topics[i], "max.message.bytes", max)) {
            snprintf(errstr, errstr_size, "topic %s: could not set max.message.bytes", names[i]);
            goto cleanup;
        }
    }
    q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, topics, 4, NULL, q);
    ev = rd_kafka_queue_poll(q, 30000);
    if (!ev) {
        snprintf(errstr, errstr_size, "no answer from %s within 30 s", cfg->brokers);
        rc = CS_ERR_RETRY;
        goto cleanup;
    }
    if (rd_kafka_event_error(ev)) {
        snprintf(errstr, errstr_size, "create topics: %s", rd_kafka_event_error_string(ev));
        rc = CS_ERR_RETRY;
        goto cleanup;
    }
    {
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        size_t n;
        const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);

        for (size_t i = 0; i < n; i++) {
            rd_kafka_resp_err_t err = rd_kafka_topic_result_error(tr[i]);

            if (err && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                snprintf(errstr, errstr_size, "create topic %s: %s",
                         rd_kafka_topic_result_name(tr[i]),
                         rd_kafka_topic_result_error_string(tr[i]));
                goto cleanup;
            }
        }
    }
    /* Topics that were there already get the size limit too. AlterConfigs
     * (librdkafka 2.0 has no incremental form) sets the topic's whole
     * override set: casestream sets no other topic config. */
    if ((rc = set_topic_limits(rk, names, 4, max, errstr, errstr_size)) != CS_OK)
        goto cleanup;
    /* A new topic's metadata reaches the brokers a moment after the answer:
     * wait until every topic shows its partitions, so the caller can use them. */
    rc = CS_ERR_RETRY;
    for (long long deadline = cs_now_ms() + 30000; rc != CS_OK && cs_now_ms() < deadline;) {
        rc = CS_OK;
        for (int i = 0; i < 4 && rc == CS_OK; i++)
            if (cs_kafka_partition_count(rk, names[i], 5000, errstr, errstr_size) <= 0)
                rc = CS_ERR_RETRY;
        if (rc != CS_OK)
            cs_sleep_ms(100);
    }
cleanup:
    if (ev)
        rd_kafka_event_destroy(ev);
    if (q)
        rd_kafka_queue_destroy(q);
    for (int i = 0; i < 4; i++)
        if (topics[i])
            rd_kafka_NewTopic_destroy(topics[i]);
    rd_kafka_destroy(rk);
    return rc;
}

int cs_kafka_check_topic_limits(rd_kafka_t *rk, const cs_config *cfg, const char *const *topics,
                                size_t n, int timeout_ms, char *errstr, size_t errstr_size)
{
    rd_kafka_ConfigResource_t **res = calloc(n ? n : 1, sizeof(*res));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_event_t *ev = NULL;
    long want = cs_kafka_message_max(cfg);
    int rc = CS_ERR_RETRY;

    if (!res) {
        snprintf(errstr, errstr_size, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++)
        res[i] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topics[i]);
    rd_kafka_DescribeConfigs(rk, res, n, NULL, q);
    if (!(ev = rd_kafka_queue_poll(q, timeout_ms))) {
        snprintf(errstr, errstr_size, "no answer from %s within %d ms", cfg->brokers, timeout_ms);
        goto cleanup;
    }
    if (rd_kafka_event_error(ev)) {
        snprintf(errstr, errstr_size, "describe topic configs: %s",
                 rd_kafka_event_error_string(ev));
        goto cleanup;
    }
    {
        const rd_kafka_DescribeConfigs_result_t *r = rd_kafka_event_DescribeConfigs_result(ev);
        size_t nres = 0;
        const rd_kafka_ConfigResource_t **rs = rd_kafka_DescribeConfigs_result_resources(r, &nres);

        rc = CS_OK;
        for (size_t i = 0; i < nres && rc == CS_OK; i++) {
            size_t nc = 0;
            const rd_kafka_ConfigEntry_t **ce = rd_kafka_ConfigResource_configs(rs[i], &nc);
            const char *name = rd_kafka_ConfigResource_name(rs[i]);

            if (rd_kafka_ConfigResource_error(rs[i])) {
                snprintf(errstr, errstr_size, "topic %s: %s", name,
                         rd_kafka_ConfigResource_error_string(rs[i]));
                rc = CS_ERR_RETRY;
                break;
            }
            for (size_t c = 0; c < nc; c++) {
                const char *value = rd_kafka_ConfigEntry_value(ce[c]);

                if (strcmp(rd_kafka_ConfigEntry_name(ce[c]), "max.message.bytes") != 0 || !value)
                    continue;
                if (atol(value) < want) {
                    snprintf(errstr, errstr_size,
                             "topic %s accepts messages up to %s bytes, less than the %ld a "
                             "submission of --max-message-bytes=%d needs; set its "
                             "max.message.bytes to %ld",
                             name, value, want, cfg->max_message_bytes, want);
                    rc = CS_ERR_INVALID;
                }
            }
        }
    }
cleanup:
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    for (size_t i = 0; res && i < n; i++)
        rd_kafka_ConfigResource_destroy(res[i]);
    free(res);
    return rc;
}
