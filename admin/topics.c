/* casestream topics create|list: the topics of DESIGN §2. */
#include "admin.h"
#include "kafka.h"

#include <stdio.h>
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

int cs_admin_topics(const cs_config *cfg, int argc, char **argv)
{
    char errstr[512];

    if (argc == 1 && strcmp(argv[0], "list") == 0)
        return list_topics(cfg);
    if (argc != 1 || strcmp(argv[0], "create") != 0) {
        cs_log_error("invalid configuration: usage: casestream topics create|list");
        return CS_EXIT_CONFIG;
    }
    if (cs_kafka_create_topics(cfg, errstr, sizeof(errstr))) {
        cs_log_error("topics create: %s", errstr);
        return 1;
    }
    return list_topics(cfg);
}
