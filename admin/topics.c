/* casestream topics create|list|describe|delete: the topics of DESIGN §2. */
#include "admin.h"
#include "kafka.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int list_topics(const cs_config *cfg)
{
    const char *names[4] = {cfg->topic_events, cfg->topic_results, cfg->topic_changes,
                            cfg->topic_dlq};
    char errstr[512];
    rd_kafka_conf_t *conf = cs_kafka_conf_new(cfg, NULL, errstr, sizeof(errstr));
    rd_kafka_t *rk;
    int rc = 0;

    if (!conf || !(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)))) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        cs_log_error("topics: %s", errstr);
        return 1;
    }
    for (int i = 0; i < 4; i++) {
        int n = cs_kafka_partition_count(rk, names[i], 10000, errstr, sizeof(errstr));

        if (n < 0) {
            cs_log_error("topics: %s", errstr);
            rc = 1;
        } else {
            printf("%s\t%d partitions\n", names[i], n);
        }
    }
    rd_kafka_destroy(rk);
    return rc;
}

/* One JSON line per topic; exit status 1 when one is missing. */
static int describe_topics(const cs_config *cfg)
{
    char errstr[512];
    json_t *topics = cs_kafka_describe_topics(cfg, errstr, sizeof(errstr)), *t;
    size_t i;
    int rc = 0;

    if (!topics) {
        cs_log_error("topics describe: %s", errstr);
        return 1;
    }
    json_array_foreach(topics, i, t)
    {
        char *line = json_dumps(t, JSON_COMPACT);

        if (json_object_get(t, "error")) {
            cs_log_error("topics describe: topic %s: %s",
                         json_string_value(json_object_get(t, "topic")),
                         json_string_value(json_object_get(t, "error")));
            rc = 1;
        }
        if (line)
            printf("%s\n", line);
        free(line);
    }
    json_decref(topics);
    return rc;
}

static int delete_topics(const cs_config *cfg)
{
    char errstr[512];

    if (!cfg->yes) {
        cs_log_error("invalid configuration: topics delete deletes %s, %s, %s and %s with every "
                     "message in them: add --yes to confirm",
                     cfg->topic_events, cfg->topic_results, cfg->topic_changes, cfg->topic_dlq);
        return CS_EXIT_CONFIG;
    }
    if (cs_kafka_delete_topics(cfg, errstr, sizeof(errstr))) {
        cs_log_error("topics delete: %s", errstr);
        return 1;
    }
    cs_log_info("topics deleted topics=%s,%s,%s,%s", cfg->topic_events, cfg->topic_results,
                cfg->topic_changes, cfg->topic_dlq);
    return 0;
}

int cs_admin_topics(const cs_config *cfg, int argc, char **argv)
{
    char errstr[512];
    int rc;

    if (argc == 1 && strcmp(argv[0], "list") == 0)
        return list_topics(cfg);
    if (argc == 1 && strcmp(argv[0], "describe") == 0)
        return describe_topics(cfg);
    if (argc == 1 && strcmp(argv[0], "delete") == 0)
        return delete_topics(cfg);
    if (argc != 1 || strcmp(argv[0], "create") != 0) {
        cs_log_error("invalid configuration: usage: casestream topics create|list|describe|delete");
        return CS_EXIT_CONFIG;
    }
    if ((rc = cs_kafka_create_topics(cfg, errstr, sizeof(errstr)))) {
        if (rc == CS_ERR_INVALID) {
            cs_log_error("invalid configuration: topics create: %s", errstr);
            return CS_EXIT_CONFIG;
        }
        cs_log_error("topics create: %s", errstr);
        return 1;
    }
    return list_topics(cfg);
}
