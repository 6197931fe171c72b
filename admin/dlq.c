/* casestream dlq list|replay: read the dead-letter topic, or send its messages back. */
#include "admin.h"
#include "kafka.h"
#include "run.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *header_json(rd_kafka_message_t *m, const char *name)
{
    rd_kafka_headers_t *hdrs;
    const void *v;
    size_t len;

    if (rd_kafka_message_headers(m, &hdrs) || rd_kafka_header_get_last(hdrs, name, &v, &len))
        return json_null();
    return json_stringn(v, len);
}

/* A consumer of the DLQ: "list" reads every partition from the start without
 * a group; "replay" uses the group casestream-worker-dlq-replay (the worker's default group name:
 * casestream takes no --group) so each message is replayed once. Returns NULL with the reason in
 * errstr. */
static rd_kafka_t *dlq_consumer(const cs_config *cfg, bool replay, char *errstr, size_t size)
{
    char group[512];
    const char *defaults[] = {"group.id",
                              group,
                              "enable.auto.commit",
                              "false",
                              "auto.offset.reset",
                              "earliest",
                              "enable.partition.eof",
                              "true",
                              NULL};
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    rd_kafka_topic_partition_list_t *parts;
    int n;

    snprintf(group, sizeof(group), "%s-dlq-%s", cfg->group, replay ? "replay" : "list");
    if (!(conf = cs_kafka_conf_new_for(cfg, RD_KAFKA_CONSUMER, defaults, errstr, size)))
        return NULL;
    if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, size))) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if ((n = cs_kafka_partition_count(rk, cfg->topic_dlq, 10000, errstr, size)) < 0) {
        rd_kafka_destroy(rk);
        return NULL;
    }
    parts = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++)
        rd_kafka_topic_partition_list_add(parts, cfg->topic_dlq, p)->offset =
            replay ? RD_KAFKA_OFFSET_STORED : RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    return rk;
}

/* The most messages listed or replayed when --limit is not given (0). */
#define DEFAULT_LIMIT 100

/* Reads the messages that were on the DLQ when it started (up to each partition's end then,
 * or limit messages), calling fn for each; messages added since are left for the next run,
 * so a replay that gets its messages refused and copied to the DLQ again does not read its own
 * copies. next[p] receives, per partition, the offset after the last message handed to fn
 * (-1: none). Returns the count or -1. */
static long each_message(rd_kafka_t *rk, const char *topic, int partitions, long limit,
                         int (*fn)(rd_kafka_message_t *m, void *ctx), void *ctx, int64_t *next)
{
    int64_t *end = calloc((size_t)partitions, sizeof(*end));
    bool *done = calloc((size_t)partitions, sizeof(*done));
    int left = partitions;
    long count = 0;
    long long idle_until = cs_now_ms() + 10000;

    if (!end || !done) {
        free(end);
        free(done);
        cs_log_error("dlq: out of memory");
        return -1;
    }
    for (int p = 0; p < partitions; p++) {
        int64_t low;

        next[p] = -1;
        if (rd_kafka_query_watermark_offsets(rk, topic, p, &low, &end[p], 10000) !=
            RD_KAFKA_RESP_ERR_NO_ERROR) {
            cs_log_error("dlq: the end of partition %d is not known", p);
            free(end);
            free(done);
            return -1;
        }
    }
    while (left > 0 && count < limit && cs_now_ms() < idle_until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        int p;

        if (!m)
            continue;
        idle_until = cs_now_ms() + 10000;
        p = m->partition;
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            cs_log_error("dlq: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            count = -1;
            break;
        }
        if (p < 0 || p >= partitions || done[p]) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF || m->offset >= end[p]) {
            done[p] = true; /* at its end as it was when this run started */
            left--;
        } else {
            if (fn(m, ctx)) {
                rd_kafka_message_destroy(m);
                count = -1;
                break;
            }
            next[p] = m->offset + 1;
            count++;
            if (next[p] >= end[p]) {
                done[p] = true;
                left--;
            }
        }
        rd_kafka_message_destroy(m);
    }
    free(end);
    free(done);
    return count;
}

static int print_message(rd_kafka_message_t *m, void *ctx)
{
    json_t *o = json_object();
    char *line;

    (void)ctx;
    json_object_set_new(o, "partition", json_integer(m->partition));
    json_object_set_new(o, "offset", json_integer(m->offset));
    json_object_set_new(o, "key", m->key ? json_stringn(m->key, m->key_len) : json_null());
    json_object_set_new(o, "error", header_json(m, "error"));
    json_object_set_new(o, "source_topic", header_json(m, "source.topic"));
    json_object_set_new(o, "source_partition", header_json(m, "source.partition"));
    json_object_set_new(o, "source_offset", header_json(m, "source.offset"));
    /* The original bytes, as a string when they are UTF-8 text. */
    json_t *v = json_stringn(m->payload ? m->payload : "", m->len);
    json_object_set_new(o, "value", v ? v : json_string("(not UTF-8)"));
    line = json_dumps(o, JSON_COMPACT);
    printf("%s\n", line);
    free(line);
    json_decref(o);
    return 0;
}

typedef struct replay_ctx {
    const cs_config *cfg;
    rd_kafka_t *producer;
} replay_ctx;

static int replay_message(rd_kafka_message_t *m, void *arg)
{
    replay_ctx *r = arg;
    rd_kafka_resp_err_t err;

    err =
        rd_kafka_producev(r->producer, RD_KAFKA_V_TOPIC(r->cfg->topic_events),
                          RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_VALUE(m->payload, m->len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (err) {
        cs_log_error("dlq replay: %s", rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

int cs_admin_dlq(const cs_config *cfg, int argc, char **argv)
{
    char errstr[512];
    bool replay;
    rd_kafka_t *rk;
    int partitions;
    long n, limit = cfg->limit > 0 ? cfg->limit : DEFAULT_LIMIT;
    int64_t *next = NULL;
    int rc = 0;

    if (argc != 1 || (strcmp(argv[0], "list") != 0 && strcmp(argv[0], "replay") != 0)) {
        cs_log_error("invalid configuration: usage: casestream dlq list|replay [--limit N]");
        return CS_EXIT_CONFIG;
    }
    replay = strcmp(argv[0], "replay") == 0;
    if (!(rk = dlq_consumer(cfg, replay, errstr, sizeof(errstr)))) {
        cs_log_error("dlq: %s", errstr);
        return 1;
    }
    partitions = cs_kafka_partition_count(rk, cfg->topic_dlq, 10000, errstr, sizeof(errstr));
    if (partitions < 0 || !(next = calloc((size_t)partitions + 1, sizeof(*next)))) {
        cs_log_error("dlq: %s", partitions < 0 ? errstr : "out of memory");
        rd_kafka_destroy(rk);
        return 1;
    }
    if (!replay) {
        n = each_message(rk, cfg->topic_dlq, partitions, limit, print_message, NULL, next);
        rc = n < 0;
    } else {
        replay_ctx r = {cfg, NULL};
        rd_kafka_conf_t *conf = cs_kafka_conf_new(cfg, NULL, errstr, sizeof(errstr));

        if (!conf || !(r.producer = cs_kafka_producer_new(cfg, conf, CS_KAFKA_SEND_GATHERED, errstr,
                                                          sizeof(errstr)))) {
            cs_log_error("dlq replay: %s", errstr);
            rd_kafka_destroy(rk);
            free(next);
            return 1;
        }
        n = each_message(rk, cfg->topic_dlq, partitions, limit, replay_message, &r, next);
        /* Commit the DLQ position only once the replayed copies are delivered, and only past
         * the messages replayed. */
        if (n >= 0 && rd_kafka_flush(r.producer, 30000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_topic_partition_list_t *done = rd_kafka_topic_partition_list_new(partitions);

            for (int p = 0; p < partitions; p++)
                if (next[p] >= 0)
                    rd_kafka_topic_partition_list_add(done, cfg->topic_dlq, p)->offset = next[p];
            if (done->cnt > 0 && rd_kafka_commit(rk, done, 0) != RD_KAFKA_RESP_ERR_NO_ERROR)
                cs_log_warn("dlq replay: the replayed position was not committed; a next replay "
                            "sends these messages again");
            rd_kafka_topic_partition_list_destroy(done);
            printf("replayed %ld message%s onto %s\n", n, n == 1 ? "" : "s", cfg->topic_events);
        } else {
            cs_log_error("dlq replay: not every message was delivered; "
                         "nothing committed, run it again");
            rc = 1;
        }
        rd_kafka_destroy(r.producer);
    }
    free(next);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}
