/* bench/topic_delete: deletes the Kafka topics a bench run created (kcat cannot).
 *
 * usage: topic_delete BROKERS TOPIC...
 * Prints one line per topic (deleted, or the broker's reason). Exit status 0 when every
 * topic is gone (an unknown topic counts as gone), 1 otherwise, 2 on bad usage. */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>

#define TIMEOUT_MS 30000

int main(int argc, char **argv)
{
    char errstr[512];
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_DeleteTopic_t **del = NULL;
    rd_kafka_event_t *ev = NULL;
    size_t n = argc > 2 ? (size_t)argc - 2 : 0;
    int rc = 1;

    if (n == 0) {
        fprintf(stderr, "usage: topic_delete BROKERS TOPIC...\n");
        return 2;
    }
    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK ||
        !(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)))) {
        fprintf(stderr, "topic_delete: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    q = rd_kafka_queue_new(rk);
    if (!(del = calloc(n, sizeof(*del))))
        goto cleanup;
    for (size_t i = 0; i < n; i++)
        del[i] = rd_kafka_DeleteTopic_new(argv[i + 2]);
    rd_kafka_DeleteTopics(rk, del, n, NULL, q);
    ev = rd_kafka_queue_poll(q, TIMEOUT_MS + 5000);
    if (!ev || rd_kafka_event_error(ev)) {
        fprintf(stderr, "topic_delete: %s\n",
                ev ? rd_kafka_event_error_string(ev) : "no answer from the brokers");
        goto cleanup;
    }
    {
        size_t cnt;
        const rd_kafka_topic_result_t **res =
            rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &cnt);

        rc = 0;
        for (size_t i = 0; i < cnt; i++) {
            rd_kafka_resp_err_t err = rd_kafka_topic_result_error(res[i]);

            if (err && err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
                printf("%s: %s\n", rd_kafka_topic_result_name(res[i]),
                       rd_kafka_topic_result_error_string(res[i]));
                rc = 1;
            } else {
                printf("%s: deleted\n", rd_kafka_topic_result_name(res[i]));
            }
        }
    }
cleanup:
    if (ev)
        rd_kafka_event_destroy(ev);
    for (size_t i = 0; del && i < n; i++)
        rd_kafka_DeleteTopic_destroy(del[i]);
    free(del);
    if (q)
        rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}
