/* Integration tests of casestream topics create|describe|delete against the stack's broker, each
 * on four topics of its own (never the shared ones). */
#include "it_support.h"
#include "runner.h"

#include "err.h"
#include "kafka.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The four topic names of one test. */
typedef struct topic_set {
    char *names[4]; /* events, results, changes, DLQ */
    char flags[4][300];
} topic_set;

static void topic_set_init(topic_set *t)
{
    static const char *const kinds[4] = {"events", "results", "changes", "dlq"};

    for (int i = 0; i < 4; i++) {
        char prefix[64];

        snprintf(prefix, sizeof(prefix), "it-topics-%s", kinds[i]);
        t->names[i] = it_unique(prefix);
        snprintf(t->flags[i], sizeof(t->flags[i]), "--topic-%s=%s", kinds[i], t->names[i]);
    }
}

static void topic_set_free(topic_set *t)
{
    for (int i = 0; i < 4; i++) {
        it_drop_topic(t->names[i]);
        free(t->names[i]);
    }
}

/* Runs `casestream <the set's topics> <extra...> topics <command>`; stdout and stderr go to
 * out_path and err_path. Returns the exit status. */
static int run_topics(const topic_set *t, const char *const *extra, const char *command,
                      char *out_path, char *err_path)
{
    const char *args[32];
    int n = 0;

    for (int i = 0; i < 4; i++)
        args[n++] = t->flags[i];
    for (int i = 0; extra && extra[i] && n < 28; i++)
        args[n++] = extra[i];
    args[n++] = "topics";
    args[n++] = command;
    args[n] = NULL;
    mkdir("build/it-logs", 0755);
    snprintf(out_path, 256, "build/it-logs/topics-%s-%d.out", command, (int)getpid());
    snprintf(err_path, 256, "build/it-logs/topics-%s-%d.err", command, (int)getpid());
    return it_run("casestream", args, NULL, out_path, err_path);
}

/* Runs topics describe and returns its four JSON lines as an array (caller decrefs); the exit
 * status goes to *rc. */
static json_t *describe(const topic_set *t, int *rc)
{
    char out[256], err[256];
    char *text, *line, *save = NULL;
    json_t *all = json_array();

    *rc = run_topics(t, NULL, "describe", out, err);
    text = it_read_file(out);
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t jerr;
        json_t *v = json_loads(line, 0, &jerr);

        ck_assert_msg(json_is_object(v), "describe printed \"%s\": %s", line, jerr.text);
        json_array_append_new(all, v);
    }
    free(text);
    ck_assert_int_eq(json_array_size(all), 4);
    return all;
}

static const char *config_of(json_t *topic, const char *name)
{
    const char *v = json_string_value(json_object_get(json_object_get(topic, "configs"), name));

    ck_assert_msg(v != NULL, "topic %s has no config %s",
                  json_string_value(json_object_get(topic, "topic")), name);
    return v;
}

/* Checks one described topic: its name, partitions, one replica each with a leader in the ISR,
 * and the configs casestream sets. */
static void check_topic(json_t *topic, const char *name, int partitions, const char *retention,
                        const char *policy)
{
    json_t *detail = json_object_get(topic, "partition_detail"), *p;
    size_t i;
    char max[24];

    ck_assert_str_eq(json_string_value(json_object_get(topic, "topic")), name);
    ck_assert_ptr_null(json_object_get(topic, "error"));
    ck_assert_int_eq(json_integer_value(json_object_get(topic, "partitions")), partitions);
    ck_assert_int_eq(json_integer_value(json_object_get(topic, "replication_factor")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(topic, "under_replicated")), 0);
    ck_assert_int_eq(json_array_size(detail), partitions);
    json_array_foreach(detail, i, p)
    {
        json_int_t leader = json_integer_value(json_object_get(p, "leader"));

        ck_assert_int_eq(json_integer_value(json_object_get(p, "partition")), i);
        ck_assert_int_ge(leader, 0);
        ck_assert_int_eq(json_array_size(json_object_get(p, "replicas")), 1);
        ck_assert_int_eq(json_array_size(json_object_get(p, "isr")), 1);
        ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(p, "isr"), 0)), leader);
    }
    snprintf(max, sizeof(max), "%ld", cs_kafka_message_max(it_config()));
    ck_assert_str_eq(config_of(topic, "max.message.bytes"), max);
    ck_assert_str_eq(config_of(topic, "min.insync.replicas"), "1");
    ck_assert_str_eq(config_of(topic, "cleanup.policy"), policy);
    if (retention)
        ck_assert_str_eq(config_of(topic, "retention.ms"), retention);
}

/* Describes the test's topics, made with 3, 2, 4 and 1 partitions: each has its partitions and
 * these retention.ms (NULL: not checked) and the changes topic this cleanup.policy. */
static void expect_topics(const topic_set *t, const char *const retention[4],
                          const char *changes_policy)
{
    static const int partitions[4] = {3, 2, 4, 1};
    int rc;
    json_t *all = describe(t, &rc);

    ck_assert_int_eq(rc, 0);
    for (int i = 0; i < 4; i++)
        check_topic(json_array_get(all, (size_t)i), t->names[i], partitions[i], retention[i],
                    i == 2 ? changes_policy : "delete");
    json_decref(all);
}

START_TEST(test_topics_create_applies_settings_and_describe_shows_them)
{
    topic_set t;
    char out[256], err[256];
    const char *settings[] = {"--events-partitions=3",
                              "--results-partitions=2",
                              "--changes-partitions=4",
                              "--dlq-partitions=1",
                              "--replication-factor=1",
                              "--min-insync-replicas=1",
                              "--events-retention-hours=48",
                              "--results-retention-hours=2",
                              "--dlq-retention-hours=-1",
                              "--changes-compact",
                              NULL};
    const char *again[] = {"--events-partitions=6", "--events-retention-hours=72", NULL};
    char *warnings;

    topic_set_init(&t);
    ck_assert_int_eq(run_topics(&t, settings, "create", out, err), 0);
    expect_topics(&t, (const char *[]){"172800000", "7200000", NULL, "-1"}, "compact");

    /* Again, on topics that exist: the configs follow the options (compaction off again, the
     * default retentions), the partitions stay, with a warning. */
    ck_assert_int_eq(run_topics(&t, again, "create", out, err), 0);
    warnings = it_read_file(err);
    ck_assert_msg(strstr(warnings, "has 3 partitions, not the 6 asked") != NULL, "stderr: %s",
                  warnings);
    free(warnings);
    expect_topics(&t, (const char *[]){"259200000", "604800000", NULL, "2592000000"}, "delete");
    topic_set_free(&t);
}
END_TEST

START_TEST(test_topics_delete_needs_yes)
{
    topic_set t;
    char out[256], err[256], *said;
    const char *yes[] = {"--yes", NULL};
    const char *small[] = {"--events-partitions=1", NULL};
    json_t *all, *topic;
    size_t i;
    int rc;

    topic_set_init(&t);
    ck_assert_int_eq(run_topics(&t, small, "create", out, err), 0);
    /* Without the confirmation: refused as a configuration error, nothing deleted. */
    ck_assert_int_eq(run_topics(&t, NULL, "delete", out, err), CS_EXIT_CONFIG);
    said = it_read_file(err);
    ck_assert_msg(strstr(said, "add --yes to confirm") != NULL, "stderr: %s", said);
    free(said);
    all = describe(&t, &rc);
    ck_assert_int_eq(rc, 0);
    json_array_foreach(all, i, topic) ck_assert_ptr_null(json_object_get(topic, "error"));
    json_decref(all);
    /* With it: gone. */
    ck_assert_int_eq(run_topics(&t, yes, "delete", out, err), 0);
    all = describe(&t, &rc);
    ck_assert_int_eq(rc, 1);
    json_array_foreach(all, i, topic)
    {
        ck_assert_str_eq(json_string_value(json_object_get(topic, "topic")), t.names[i]);
        ck_assert_str_eq(json_string_value(json_object_get(topic, "error")), "no such topic");
    }
    json_decref(all);
    /* Deleting what is not there is done. */
    ck_assert_int_eq(run_topics(&t, yes, "delete", out, err), 0);
    topic_set_free(&t);
}
END_TEST

START_TEST(test_topics_replication_factor_above_the_brokers_is_refused)
{
    topic_set t;
    char out[256], err[256], *said;
    const char *three[] = {"--replication-factor=3", "--min-insync-replicas=2", NULL};
    const char *isr[] = {"--replication-factor=1", "--min-insync-replicas=2", NULL};
    const char *zero[] = {"--results-retention-hours=0", NULL};
    json_t *all, *topic;
    size_t i;
    int rc;

    topic_set_init(&t);
    ck_assert_int_eq(run_topics(&t, three, "create", out, err), CS_EXIT_CONFIG);
    said = it_read_file(err);
    ck_assert_msg(strstr(said, "replication-factor 3 is more than the 1 broker of the cluster") !=
                      NULL,
                  "stderr: %s", said);
    free(said);
    ck_assert_int_eq(run_topics(&t, isr, "create", out, err), CS_EXIT_CONFIG);
    said = it_read_file(err);
    ck_assert_msg(strstr(said, "min-insync-replicas 2 is above replication-factor 1") != NULL,
                  "stderr: %s", said);
    free(said);
    ck_assert_int_eq(run_topics(&t, zero, "create", out, err), CS_EXIT_CONFIG);
    /* Nothing was created. */
    all = describe(&t, &rc);
    ck_assert_int_eq(rc, 1);
    json_array_foreach(all, i, topic)
        ck_assert_str_eq(json_string_value(json_object_get(topic, "error")), "no such topic");
    json_decref(all);
    topic_set_free(&t);
}
END_TEST

Suite *it_topics_suite(void)
{
    Suite *s = suite_create("it_topics");
    TCase *tc = tcase_create("topics");

    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_topics_create_applies_settings_and_describe_shows_them);
    tcase_add_test(tc, test_topics_delete_needs_yes);
    tcase_add_test(tc, test_topics_replication_factor_above_the_brokers_is_refused);
    suite_add_tcase(s, tc);
    return s;
}
