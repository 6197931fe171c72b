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

const char *cs_kafka_prop_name(const char *key, int *type)
{
    static const struct {
        const char *prefix;
        int type;
    } prefixes[] = {{"consumer.", RD_KAFKA_CONSUMER}, {"producer.", RD_KAFKA_PRODUCER}};

    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t n = strlen(prefixes[i].prefix);

        if (strncmp(key, prefixes[i].prefix, n) == 0 && key[n] != '\0') {
            *type = prefixes[i].type;
            return key + n;
        }
    }
    *type = CS_KAFKA_ANY_CLIENT;
    return key;
}

/* Applies the -X key=value properties for clients of type, in command-line order: those
 * without a prefix for CS_KAFKA_ANY_CLIENT, those with the type's prefix (stripped) for a
 * consumer or a producer. */
static int apply_props(rd_kafka_conf_t *conf, const cs_config *cfg, int type, char *errstr,
                       size_t errstr_size)
{
    for (size_t i = 0; i < cfg->kafka_props_count; i++) {
        char key[256];
        const char *eq = strchr(cfg->kafka_props[i], '='), *name;
        size_t klen = (size_t)(eq - cfg->kafka_props[i]);
        int for_type;

        if (klen >= sizeof(key)) {
            snprintf(errstr, errstr_size, "kafka property name too long");
            return CS_ERR_INVALID;
        }
        memcpy(key, cfg->kafka_props[i], klen);
        key[klen] = '\0';
        name = cs_kafka_prop_name(key, &for_type);
        if (for_type == type && conf_set(conf, name, eq + 1, errstr, errstr_size))
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
    if (apply_props(conf, cfg, CS_KAFKA_ANY_CLIENT, errstr, errstr_size))
        goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

rd_kafka_conf_t *cs_kafka_conf_new_for(const cs_config *cfg, rd_kafka_type_t type,
                                       const char *const *defaults, char *errstr,
                                       size_t errstr_size)
{
    rd_kafka_conf_t *conf = cs_kafka_conf_new(cfg, defaults, errstr, errstr_size);

    if (conf && apply_props(conf, cfg, (int)type, errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
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

rd_kafka_t *cs_kafka_producer_new(const cs_config *cfg, rd_kafka_conf_t *conf, cs_kafka_send send,
                                  char *errstr, size_t errstr_size)
{
    char max[24];
    const char *const producer_defaults[] = {"enable.idempotence",
                                             "true",
                                             "acks",
                                             "all",
                                             "partitioner",
                                             "murmur2_random",
                                             "linger.ms",
                                             send == CS_KAFKA_SEND_AT_ONCE ? "0" : "5",
                                             NULL};
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
    /* -X properties win over the defaults above, "producer." ones last. */
    if (apply_props(conf, cfg, CS_KAFKA_ANY_CLIENT, errstr, errstr_size) ||
        apply_props(conf, cfg, RD_KAFKA_PRODUCER, errstr, errstr_size)) {
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

int cs_kafka_topic_specs(const cs_config *cfg, cs_topic_spec out[4], char *errstr,
                         size_t errstr_size)
{
    const char *names[4] = {cfg->topic_events, cfg->topic_results, cfg->topic_changes,
                            cfg->topic_dlq};
    const int partitions[4] = {cfg->events_partitions, cfg->results_partitions,
                               cfg->changes_partitions, cfg->dlq_partitions};
    const int hours[4] = {cfg->events_retention_hours, cfg->results_retention_hours, 0,
                          cfg->dlq_retention_hours};
    static const char *const hour_options[4] = {"events-retention-hours", "results-retention-hours",
                                                NULL, "dlq-retention-hours"};

    if (cfg->min_insync_replicas > cfg->replication_factor) {
        snprintf(errstr, errstr_size,
                 "min-insync-replicas %d is above replication-factor %d: no message could be "
                 "acknowledged",
                 cfg->min_insync_replicas, cfg->replication_factor);
        return CS_ERR_INVALID;
    }
    for (int i = 0; i < 4; i++) {
        if (hour_options[i] && hours[i] == 0) {
            snprintf(errstr, errstr_size, "%s must be positive, or -1 to keep messages forever",
                     hour_options[i]);
            return CS_ERR_INVALID;
        }
        out[i].name = names[i];
        out[i].partitions = partitions[i] > 0 ? partitions[i] : cfg->events_partitions;
        out[i].retention_ms = hours[i] < 0 ? -1 : hours[i] * 3600000LL;
        out[i].cleanup_policy = i == 2 && cfg->changes_compact ? "compact" : "delete";
    }
    return CS_OK;
}

/* The topic configs casestream sets, as NULL-terminated key, value pairs in kv. */
typedef struct topic_configs {
    char max[24], isr[16], retention[24];
    const char *kv[9];
} topic_configs;

static void configs_of(const cs_config *cfg, const cs_topic_spec *t, topic_configs *c)
{
    size_t n = 0;

    snprintf(c->max, sizeof(c->max), "%ld", cs_kafka_message_max(cfg));
    snprintf(c->isr, sizeof(c->isr), "%d", cfg->min_insync_replicas);
    snprintf(c->retention, sizeof(c->retention), "%lld", t->retention_ms);
    c->kv[n++] = "max.message.bytes";
    c->kv[n++] = c->max;
    c->kv[n++] = "min.insync.replicas";
    c->kv[n++] = c->isr;
    c->kv[n++] = "cleanup.policy";
    c->kv[n++] = t->cleanup_policy;
    if (t->retention_ms != 0) {
        c->kv[n++] = "retention.ms";
        c->kv[n++] = c->retention;
    }
    c->kv[n] = NULL;
}

/* An admin client: a producer handle that sends nothing. */
static rd_kafka_t *admin_new(const cs_config *cfg, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = cs_kafka_conf_new(cfg, NULL, errstr, errstr_size);
    rd_kafka_t *rk;

    if (!conf)
        return NULL;
    if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size)))
        rd_kafka_conf_destroy(conf);
    return rk;
}

/* Metadata of every topic (asking for all never makes a broker auto-create one). */
static int all_metadata(rd_kafka_t *rk, const struct rd_kafka_metadata **md, char *errstr,
                        size_t errstr_size)
{
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, md, 10000);

    if (err) {
        *md = NULL;
        snprintf(errstr, errstr_size, "metadata: %s", rd_kafka_err2str(err));
        return CS_ERR_RETRY;
    }
    return CS_OK;
}

static const rd_kafka_metadata_topic_t *find_topic(const struct rd_kafka_metadata *md,
                                                   const char *name)
{
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, name) == 0 && !md->topics[i].err)
            return &md->topics[i];
    return NULL;
}

/* Sets the configs of the specs' topics (AlterConfigs: librdkafka 2.0 has no incremental
 * form, so this is each topic's whole override set; casestream sets no other). */
static int alter_configs(rd_kafka_t *rk, const cs_config *cfg, const cs_topic_spec *specs, size_t n,
                         char *errstr, size_t errstr_size)
{
    rd_kafka_ConfigResource_t *res[4] = {NULL};
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_event_t *ev;
    int rc = CS_OK;

    for (size_t i = 0; i < n && i < 4; i++) {
        topic_configs c;

        configs_of(cfg, &specs[i], &c);
        res[i] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, specs[i].name);
        for (size_t k = 0; c.kv[k]; k += 2)
            rd_kafka_ConfigResource_set_config(res[i], c.kv[k], c.kv[k + 1]);
    }
    rd_kafka_AlterConfigs(rk, res, n, NULL, q);
    if (!(ev = rd_kafka_queue_poll(q, 30000))) {
        snprintf(errstr, errstr_size, "no answer to AlterConfigs within 30 s");
        rc = CS_ERR_RETRY;
    } else if (rd_kafka_event_error(ev)) {
        snprintf(errstr, errstr_size, "set topic configs: %s", rd_kafka_event_error_string(ev));
        rc = CS_ERR_RETRY;
    } else {
        size_t nres = 0;
        const rd_kafka_ConfigResource_t **rs =
            rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev), &nres);

        for (size_t i = 0; i < nres && rc == CS_OK; i++) {
            if (rd_kafka_ConfigResource_error(rs[i])) {
                snprintf(errstr, errstr_size, "topic %s: set configs: %s",
                         rd_kafka_ConfigResource_name(rs[i]),
                         rd_kafka_ConfigResource_error_string(rs[i]));
                rc = rd_kafka_ConfigResource_error(rs[i]) == RD_KAFKA_RESP_ERR_INVALID_CONFIG
                         ? CS_ERR_INVALID
                         : CS_ERR;
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

/* Waits up to 30 s until every spec's topic has all its partitions led, then logs a warning for
 * a topic that was there with other partitions or replicas than asked. */
static int await_topics(rd_kafka_t *rk, const cs_config *cfg, const cs_topic_spec *specs,
                        char *errstr, size_t errstr_size)
{
    const struct rd_kafka_metadata *md = NULL;
    int rc = CS_ERR_RETRY;

    for (long long deadline = cs_now_ms() + 30000; cs_now_ms() < deadline; cs_sleep_ms(100)) {
        if (md)
            rd_kafka_metadata_destroy(md);
        if (all_metadata(rk, &md, errstr, errstr_size))
            continue;
        rc = CS_OK;
        for (int i = 0; i < 4 && rc == CS_OK; i++) {
            const rd_kafka_metadata_topic_t *t = find_topic(md, specs[i].name);

            for (int p = 0; t && p < t->partition_cnt && rc == CS_OK; p++)
                if (t->partitions[p].leader < 0)
                    rc = CS_ERR_RETRY;
            if (!t || t->partition_cnt == 0)
                rc = CS_ERR_RETRY;
            if (rc != CS_OK)
                snprintf(errstr, errstr_size, "topic %s has not all its partitions within 30 s",
                         specs[i].name);
        }
        if (rc == CS_OK)
            break;
    }
    for (int i = 0; i < 4 && rc == CS_OK; i++) {
        const rd_kafka_metadata_topic_t *t = find_topic(md, specs[i].name);

        if (t->partition_cnt != specs[i].partitions)
            cs_log_warn("topic %s has %d partitions, not the %d asked: the partitions of a topic "
                        "that exists are not changed (cases would move to other partitions)",
                        specs[i].name, t->partition_cnt, specs[i].partitions);
        if (t->partitions[0].replica_cnt != cfg->replication_factor)
            cs_log_warn("topic %s has %d replicas, not the %d asked: the replication factor of "
                        "a topic that exists is not changed (reassign its partitions)",
                        specs[i].name, t->partitions[0].replica_cnt, cfg->replication_factor);
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    return rc;
}

int cs_kafka_create_topics(const cs_config *cfg, char *errstr, size_t errstr_size)
{
    cs_topic_spec specs[4];
    rd_kafka_NewTopic_t *topics[4] = {NULL};
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_event_t *ev = NULL;
    int rc;

    if ((rc = cs_kafka_topic_specs(cfg, specs, errstr, errstr_size)))
        return rc;
    if (!(rk = admin_new(cfg, errstr, errstr_size)))
        return CS_ERR_INVALID;
    if ((rc = all_metadata(rk, &md, errstr, errstr_size)))
        goto cleanup;
    rc = CS_ERR_INVALID;
    if (md->broker_cnt < cfg->replication_factor) {
        snprintf(errstr, errstr_size,
                 "replication-factor %d is more than the %d broker%s of the cluster at %s",
                 cfg->replication_factor, md->broker_cnt, md->broker_cnt == 1 ? "" : "s",
                 cfg->brokers);
        goto cleanup;
    }
    for (int i = 0; i < 4; i++) {
        topic_configs c;
        char why[256];

        configs_of(cfg, &specs[i], &c);
        topics[i] = rd_kafka_NewTopic_new(specs[i].name, specs[i].partitions,
                                          cfg->replication_factor, why, sizeof(why));
        if (!topics[i]) {
            snprintf(errstr, errstr_size, "topic %s: %s", specs[i].name, why);
            goto cleanup;
        }
        for (size_t k = 0; c.kv[k]; k += 2) {
            if (rd_kafka_NewTopic_set_config(topics[i], c.kv[k], c.kv[k + 1])) {
                snprintf(errstr, errstr_size, "topic %s: could not set %s", specs[i].name, c.kv[k]);
                goto cleanup;
            }
        }
    }
    q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, topics, 4, NULL, q);
    ev = rd_kafka_queue_poll(q, 30000);
    rc = CS_ERR_RETRY;
    if (!ev) {
        snprintf(errstr, errstr_size, "no answer from %s within 30 s", cfg->brokers);
        goto cleanup;
    }
    if (rd_kafka_event_error(ev)) {
        snprintf(errstr, errstr_size, "create topics: %s", rd_kafka_event_error_string(ev));
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
                rc = err == RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR ||
                             err == RD_KAFKA_RESP_ERR_INVALID_CONFIG ||
                             err == RD_KAFKA_RESP_ERR_INVALID_PARTITIONS
                         ? CS_ERR_INVALID
                         : CS_ERR;
                goto cleanup;
            }
        }
    }
    /* Topics that were there already get the configs too. */
    if ((rc = alter_configs(rk, cfg, specs, 4, errstr, errstr_size)) != CS_OK)
        goto cleanup;
    /* A new topic's metadata reaches the brokers a moment after the answer. */
    rc = await_topics(rk, cfg, specs, errstr, errstr_size);
cleanup:
    if (md)
        rd_kafka_metadata_destroy(md);
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

static json_t *int_array(const int32_t *v, int n)
{
    json_t *a = json_array();

    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_integer(v[i]));
    return a;
}

/* {"topic", "partitions", "replication_factor", "under_replicated", "partition_detail"} of t. */
static json_t *describe_partitions(const rd_kafka_metadata_topic_t *t)
{
    json_t *parts = json_array();
    int under = 0;

    for (int p = 0; p < t->partition_cnt; p++) {
        const rd_kafka_metadata_partition_t *mp = &t->partitions[p];

        under += mp->isr_cnt < mp->replica_cnt;
        json_array_append_new(parts, json_pack("{s:i, s:i, s:o, s:o}", "partition", (int)mp->id,
                                               "leader", (int)mp->leader, "replicas",
                                               int_array(mp->replicas, mp->replica_cnt), "isr",
                                               int_array(mp->isrs, mp->isr_cnt)));
    }
    return json_pack("{s:s, s:i, s:i, s:i, s:o}", "topic", t->topic, "partitions", t->partition_cnt,
                     "replication_factor", t->partition_cnt ? t->partitions[0].replica_cnt : 0,
                     "under_replicated", under, "partition_detail", parts);
}

/* Adds "configs" (the ones casestream sets) to each described topic of out. */
static int describe_configs(rd_kafka_t *rk, json_t *out, char *errstr, size_t errstr_size)
{
    static const char *const shown[] = {"max.message.bytes", "min.insync.replicas", "retention.ms",
                                        "cleanup.policy"};
    size_t n = json_array_size(out), k = 0;
    rd_kafka_ConfigResource_t **res = calloc(n ? n : 1, sizeof(*res));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_event_t *ev = NULL;
    int rc = CS_ERR_RETRY;

    if (!res) {
        snprintf(errstr, errstr_size, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(out, i);

        if (!json_object_get(t, "error"))
            res[k++] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC,
                                                   json_string_value(json_object_get(t, "topic")));
    }
    rc = CS_OK;
    if (k == 0)
        goto cleanup;
    rd_kafka_DescribeConfigs(rk, res, k, NULL, q);
    rc = CS_ERR_RETRY;
    if (!(ev = rd_kafka_queue_poll(q, 30000))) {
        snprintf(errstr, errstr_size, "no answer to DescribeConfigs within 30 s");
        goto cleanup;
    }
    if (rd_kafka_event_error(ev)) {
        snprintf(errstr, errstr_size, "describe topic configs: %s",
                 rd_kafka_event_error_string(ev));
        goto cleanup;
    }
    {
        size_t nres = 0;
        const rd_kafka_ConfigResource_t **rs = rd_kafka_DescribeConfigs_result_resources(
            rd_kafka_event_DescribeConfigs_result(ev), &nres);

        for (size_t r = 0; r < nres; r++) {
            const char *name = rd_kafka_ConfigResource_name(rs[r]);
            size_t nc = 0;
            const rd_kafka_ConfigEntry_t **ce = rd_kafka_ConfigResource_configs(rs[r], &nc);
            json_t *configs = json_object();

            for (size_t c = 0; c < nc; c++) {
                for (size_t s = 0; s < sizeof(shown) / sizeof(shown[0]); s++) {
                    const char *value = rd_kafka_ConfigEntry_value(ce[c]);

                    if (strcmp(rd_kafka_ConfigEntry_name(ce[c]), shown[s]) == 0)
                        json_object_set_new(configs, shown[s],
                                            value ? json_string(value) : json_null());
                }
            }
            for (size_t i = 0; i < n; i++) {
                json_t *t = json_array_get(out, i);

                if (strcmp(json_string_value(json_object_get(t, "topic")), name) == 0)
                    json_object_set(t, "configs", configs);
            }
            json_decref(configs);
        }
    }
    rc = CS_OK;
cleanup:
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    for (size_t i = 0; res && i < k; i++)
        rd_kafka_ConfigResource_destroy(res[i]);
    free(res);
    return rc;
}

json_t *cs_kafka_describe_topics(const cs_config *cfg, char *errstr, size_t errstr_size)
{
    const char *names[4] = {cfg->topic_events, cfg->topic_results, cfg->topic_changes,
                            cfg->topic_dlq};
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_t *rk = admin_new(cfg, errstr, errstr_size);
    json_t *out = NULL;

    if (!rk || all_metadata(rk, &md, errstr, errstr_size))
        goto cleanup;
    out = json_array();
    for (int i = 0; i < 4; i++) {
        const rd_kafka_metadata_topic_t *t = find_topic(md, names[i]);

        json_array_append_new(
            out, t ? describe_partitions(t)
                   : json_pack("{s:s, s:s}", "topic", names[i], "error", "no such topic"));
    }
    if (describe_configs(rk, out, errstr, errstr_size)) {
        json_decref(out);
        out = NULL;
    }
cleanup:
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rk)
        rd_kafka_destroy(rk);
    return out;
}

int cs_kafka_delete_topics(const cs_config *cfg, char *errstr, size_t errstr_size)
{
    const char *names[4] = {cfg->topic_events, cfg->topic_results, cfg->topic_changes,
                            cfg->topic_dlq};
    rd_kafka_DeleteTopic_t *del[4];
    rd_kafka_t *rk = admin_new(cfg, errstr, errstr_size);
    rd_kafka_queue_t *q;
    rd_kafka_event_t *ev;
    int rc = CS_ERR_RETRY;

    if (!rk)
        return CS_ERR_INVALID;
    q = rd_kafka_queue_new(rk);
    for (int i = 0; i < 4; i++)
        del[i] = rd_kafka_DeleteTopic_new(names[i]);
    rd_kafka_DeleteTopics(rk, del, 4, NULL, q);
    if (!(ev = rd_kafka_queue_poll(q, 30000))) {
        snprintf(errstr, errstr_size, "no answer from %s within 30 s", cfg->brokers);
    } else if (rd_kafka_event_error(ev)) {
        snprintf(errstr, errstr_size, "delete topics: %s", rd_kafka_event_error_string(ev));
    } else {
        size_t n = 0;
        const rd_kafka_topic_result_t **tr =
            rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);

        rc = CS_OK;
        for (size_t i = 0; i < n && rc == CS_OK; i++) {
            rd_kafka_resp_err_t err = rd_kafka_topic_result_error(tr[i]);

            if (err && err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
                snprintf(errstr, errstr_size, "delete topic %s: %s",
                         rd_kafka_topic_result_name(tr[i]),
                         rd_kafka_topic_result_error_string(tr[i]));
                rc = CS_ERR;
            }
        }
    }
    /* Deletion finishes in the background: wait until no broker lists them. */
    for (long long deadline = cs_now_ms() + 30000; rc == CS_OK;) {
        const struct rd_kafka_metadata *md = NULL;
        bool listed = false;

        if (all_metadata(rk, &md, errstr, errstr_size) == CS_OK) {
            for (int i = 0; i < 4; i++)
                listed = listed || find_topic(md, names[i]) != NULL;
            rd_kafka_metadata_destroy(md);
            if (!listed)
                break;
        }
        if (cs_now_ms() >= deadline) {
            snprintf(errstr, errstr_size, "the topics are still listed 30 s after their deletion");
            rc = CS_ERR_RETRY;
            break;
        }
        cs_sleep_ms(200);
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    for (int i = 0; i < 4; i++)
        rd_kafka_DeleteTopic_destroy(del[i]);
    rd_kafka_queue_destroy(q);
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
