/* Unit tests of the configuration table: defaults, environment, flags, errors. */
#include "config.h"
#include "err.h"
#include "kafka.h"
#include "fixture.h"
#include "log.h"
#include "redis.h"
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int load(cs_config *cfg, unsigned program, int argc, char **argv, char *err)
{
    return cs_config_load(cfg, program, argc, argv, err, 256);
}

START_TEST(test_config_defaults_match_local_stack)
{
    cs_config cfg;
    char err[256] = "";
    char *argv[] = {"prog", NULL};

    ck_assert_int_eq(load(&cfg, CS_PROG_WORKER, 1, argv, err), 0);
    ck_assert_str_eq(cfg.brokers, "127.0.0.1:59092");
    ck_assert_str_eq(cfg.topic_events, "case-events");
    ck_assert_int_eq(cfg.metrics_port, 9464);
    ck_assert_int_eq(cfg.batch_size, 256);
    ck_assert_int_eq(cfg.batch_bytes, 4 << 20);
    ck_assert_int_eq(cfg.outbox_bytes, 4 << 20);
    ck_assert_int_eq(cfg.wait_seconds, -1);
    cs_config_free(&cfg);
    ck_assert_int_eq(load(&cfg, CS_PROG_INDEXER, 1, argv, err), 0);
    ck_assert_int_eq(cfg.metrics_port, 9465);
    cs_config_free(&cfg);
}
END_TEST

START_TEST(test_config_flag_overrides_environment)
{
    cs_config cfg;
    char err[256] = "";
    char *argv[] = {"prog", "--brokers=10.0.0.1:9092", "--batch-size", "7", NULL};

    setenv("CASESTREAM_BROKERS", "env:1", 1);
    setenv("CASESTREAM_GROUP", "g-from-env", 1);
    ck_assert_int_eq(load(&cfg, CS_PROG_WORKER, 4, argv, err), 0);
    ck_assert_str_eq(cfg.brokers, "10.0.0.1:9092");
    ck_assert_str_eq(cfg.group, "g-from-env");
    ck_assert_int_eq(cfg.batch_size, 7);
    cs_config_free(&cfg);
    unsetenv("CASESTREAM_BROKERS");
    unsetenv("CASESTREAM_GROUP");
}
END_TEST

START_TEST(test_config_import_options_default_to_a_preload_with_the_sdk_offset)
{
    cs_config cfg;
    char err[256] = "";
    char *none[] = {"prog", "import", NULL};
    char *all[] = {"prog",
                   "--from=dbname=ccd",
                   "--mode=cutover",
                   "--revision-offset=5",
                   "--batch",
                   "20",
                   "--jobs=3",
                   "import",
                   NULL};

    ck_assert_int_eq(load(&cfg, CS_PROG_ADMIN, 2, none, err), 0);
    ck_assert_str_eq(cfg.from, "");
    ck_assert_str_eq(cfg.mode, "preload");
    ck_assert_int_eq(cfg.revision_offset, 1000000000);
    ck_assert_int_eq(cfg.batch, 1000);
    ck_assert_int_eq(cfg.jobs, 2);
    cs_config_free(&cfg);
    ck_assert_int_eq(load(&cfg, CS_PROG_ADMIN, 8, all, err), 0);
    ck_assert_str_eq(cfg.from, "dbname=ccd");
    ck_assert_str_eq(cfg.mode, "cutover");
    ck_assert_int_eq(cfg.revision_offset, 5);
    ck_assert_int_eq(cfg.batch, 20);
    ck_assert_int_eq(cfg.jobs, 3);
    cs_config_free(&cfg);
    ck_assert_int_eq(
        load(&cfg, CS_PROG_ADMIN, 3, (char *[]){"prog", "--jobs=0", "import", NULL}, err),
        CS_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "jobs 0 is out of range 1..32"));
    cs_config_free(&cfg);
    /* A conninfo's password is never quoted in a reason. */
    ck_assert_int_eq(load(&cfg, CS_PROG_ADMIN, 3,
                          (char *[]){"prog", "--from=password=s3cret", "--batch=x", NULL}, err),
                     CS_ERR_INVALID);
    ck_assert_ptr_null(strstr(err, "s3cret"));
    cs_config_free(&cfg);
}
END_TEST

/* Writes text to a fresh file; returns its path (static buffer). */
static const char *config_file(const char *text)
{
    static char path[64];
    FILE *f;

    snprintf(path, sizeof(path), "/tmp/cs-config-%d.env", (int)getpid());
    ck_assert_ptr_nonnull(f = fopen(path, "w"));
    fputs(text, f);
    fclose(f);
    return path;
}

/* --config FILE: read before the environment and the flags, which win; other programs'
 * settings skipped; the systemd EnvironmentFile forms. */
START_TEST(test_config_file_is_read_first_and_serves_every_program)
{
    cs_config cfg;
    char err[256] = "", arg[96];
    const char *path = config_file("# casestream settings\n"
                                   "\n"
                                   "CASESTREAM_BROKERS=file:1\n"
                                   "  export CASESTREAM_BATCH_SIZE=\"42\"  \n"
                                   "CASESTREAM_GROUP='from file'\r\n"
                                   "CASESTREAM_BULK_DOCS=17\n"
                                   "CASESTREAM_APPLIERS=3\n");
    char *argv[] = {"prog", "--config", (char *)path, "--appliers=5", NULL};

    unsetenv("CASESTREAM_BROKERS");
    setenv("CASESTREAM_GROUP", "from env", 1);
    ck_assert_msg(load(&cfg, CS_PROG_WORKER, 4, argv, err) == 0, "%s", err);
    ck_assert_str_eq(cfg.brokers, "file:1");
    ck_assert_int_eq(cfg.batch_size, 42);
    ck_assert_str_eq(cfg.group, "from env");
    ck_assert_int_eq(cfg.appliers, 5);
    ck_assert_str_eq(cfg.config_file, path);
    cs_config_free(&cfg);
    unsetenv("CASESTREAM_GROUP");

    /* The indexer reads the same file: its own setting taken, the worker's skipped. */
    snprintf(arg, sizeof(arg), "--config=%s", path);
    argv[1] = arg;
    argv[2] = NULL;
    ck_assert_msg(load(&cfg, CS_PROG_INDEXER, 2, argv, err) == 0, "%s", err);
    ck_assert_int_eq(cfg.bulk_docs, 17);
    cs_config_free(&cfg);

    /* CASESTREAM_CONFIG names it too. */
    setenv("CASESTREAM_CONFIG", path, 1);
    argv[1] = NULL;
    ck_assert_msg(load(&cfg, CS_PROG_WORKER, 1, argv, err) == 0, "%s", err);
    ck_assert_int_eq(cfg.batch_size, 42);
    cs_config_free(&cfg);
    unsetenv("CASESTREAM_CONFIG");
    unlink(path);
}
END_TEST

START_TEST(test_config_file_errors_name_the_file_and_line)
{
    cs_config cfg;
    char err[256] = "", want[128];
    const char *path;
    char *argv[] = {"prog", "--config", NULL, NULL};

    path = config_file("CASESTREAM_BROKERS=a:1\nCASESTREAM_BATCH_SIZ=3\n");
    argv[2] = (char *)path;
    ck_assert_int_eq(load(&cfg, CS_PROG_WORKER, 3, argv, err), CS_ERR_INVALID);
    snprintf(want, sizeof(want), "%s:2: unknown setting CASESTREAM_BATCH_SIZ", path);
    ck_assert_str_eq(err, want);
    cs_config_free(&cfg);

    path = config_file("CASESTREAM_BATCH_SIZE=0\n");
    ck_assert_int_eq(load(&cfg, CS_PROG_WORKER, 3, argv, err), CS_ERR_INVALID);
    snprintf(want, sizeof(want), "%s:1: batch-size 0 is out of range", path);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
    cs_config_free(&cfg);

    path = config_file("just words\n");
    ck_assert_int_eq(load(&cfg, CS_PROG_WORKER, 3, argv, err), CS_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, ":1: expected a setting CASESTREAM_<NAME>=<value>"));
    cs_config_free(&cfg);
    unlink(path);

    ck_assert_int_eq(load(&cfg, CS_PROG_WORKER, 3, argv, err), CS_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "No such file or directory"));
    cs_config_free(&cfg);

    argv[2] = NULL;
    ck_assert_int_eq(load(&cfg, CS_PROG_WORKER, 2, argv, err), CS_ERR_INVALID);
    ck_assert_str_eq(err, "option --config needs a value");
    cs_config_free(&cfg);
}
END_TEST

START_TEST(test_config_admin_takes_dispose_options_and_limit_defaults_to_the_command)
{
    cs_config cfg;
    char err[256] = "";
    char *none[] = {"prog", "dispose", NULL};
    char *all[] = {"prog",    "--dry-run", "--before=2025-01-31",
                   "--limit", "10",        "--redis=redis://127.0.0.1:1",
                   "dispose", NULL};

    ck_assert_int_eq(load(&cfg, CS_PROG_ADMIN, 2, none, err), 0);
    ck_assert_int_eq(cfg.limit, 0);
    ck_assert(!cfg.dry_run);
    ck_assert_str_eq(cfg.before, "");
    cs_config_free(&cfg);
    ck_assert_int_eq(load(&cfg, CS_PROG_ADMIN, 7, all, err), 0);
    ck_assert(cfg.dry_run);
    ck_assert_str_eq(cfg.before, "2025-01-31");
    ck_assert_int_eq(cfg.limit, 10);
    ck_assert_str_eq(cfg.redis, "redis://127.0.0.1:1");
    ck_assert_uint_eq(cfg.args_count, 1);
    ck_assert_str_eq(cfg.args[0], "dispose");
    cs_config_free(&cfg);
    /* --before is dispose's: the worker does not take it. */
    ck_assert_int_eq(
        load(&cfg, CS_PROG_WORKER, 2, (char *[]){"prog", "--before=2025-01-31", NULL}, err),
        CS_ERR_INVALID);
    cs_config_free(&cfg);
}
END_TEST

START_TEST(test_config_rejects_bad_values_with_reason)
{
    cs_config cfg;
    char err[256] = "";
    char *bad_int[] = {"prog", "--batch-size=abc", NULL};
    char *range[] = {"prog", "--batch-size=0", NULL};
    char *unknown[] = {"prog", "--no-such-flag", NULL};
    char *other_prog[] = {"prog", "--dry-run", NULL};
    char *redis[] = {"prog", "--redis=localhost:6379", NULL};
    char *level[] = {"prog", "--log-level=loud", NULL};

    ck_assert_int_eq(load(&cfg, CS_PROG_WORKER, 2, bad_int, err), CS_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "batch-size"));
    cs_config_free(&cfg);
    ck_assert_int_eq(load(&cfg, CS_PROG_WORKER, 2, range, err), CS_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "out of range"));
    cs_config_free(&cfg);
    ck_assert_int_eq(load(&cfg, CS_PROG_WORKER, 2, unknown, err), CS_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "no-such-flag"));
    cs_config_free(&cfg);
    ck_assert_int_eq(load(&cfg, CS_PROG_WORKER, 2, other_prog, err), CS_ERR_INVALID);
    cs_config_free(&cfg);
    ck_assert_int_eq(load(&cfg, CS_PROG_WORKER, 2, redis, err), CS_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "redis[s]://"));
    cs_config_free(&cfg);
    ck_assert_int_eq(load(&cfg, CS_PROG_WORKER, 2, level, err), CS_ERR_INVALID);
    cs_config_free(&cfg);
}
END_TEST

START_TEST(test_config_kafka_props_optional_values_and_positionals)
{
    cs_config cfg;
    char err[256] = "";
    char *argv[] = {"prog", "-X",        "linger.ms=5", "-Xclient.id=c", "--wait", "in.ndjson",
                    "-",    "--gen-key", NULL};
    char *waitn[] = {"prog", "--wait=5", NULL};
    char *badx[] = {"prog", "-X", "novalue", NULL};

    ck_assert_int_eq(load(&cfg, CS_PROG_PRODUCE, 8, argv, err), 0);
    ck_assert_uint_eq(cfg.kafka_props_count, 2);
    ck_assert_str_eq(cfg.kafka_props[0], "linger.ms=5");
    ck_assert_str_eq(cfg.kafka_props[1], "client.id=c");
    ck_assert_int_eq(cfg.wait_seconds, 60);
    ck_assert(cfg.gen_key);
    ck_assert_uint_eq(cfg.args_count, 2);
    ck_assert_str_eq(cfg.args[0], "in.ndjson");
    ck_assert_str_eq(cfg.args[1], "-");
    cs_config_free(&cfg);
    ck_assert_int_eq(load(&cfg, CS_PROG_PRODUCE, 2, waitn, err), 0);
    ck_assert_int_eq(cfg.wait_seconds, 5);
    cs_config_free(&cfg);
    ck_assert_int_eq(load(&cfg, CS_PROG_PRODUCE, 3, badx, err), CS_ERR_INVALID);
    cs_config_free(&cfg);
}
END_TEST

START_TEST(test_config_stall_seconds_for_long_running_programs_only)
{
    cs_config cfg;
    char err[256] = "";
    char *argv[] = {"prog", NULL};
    char *flag[] = {"prog", "--stall-seconds=30", NULL};
    char *off[] = {"prog", "--stall-seconds=0", NULL};

    ck_assert_int_eq(load(&cfg, CS_PROG_WORKER, 1, argv, err), 0);
    ck_assert_int_eq(cfg.stall_seconds, 120);
    cs_config_free(&cfg);
    setenv("CASESTREAM_STALL_SECONDS", "45", 1);
    ck_assert_int_eq(load(&cfg, CS_PROG_INDEXER, 1, argv, err), 0);
    ck_assert_int_eq(cfg.stall_seconds, 45);
    cs_config_free(&cfg);
    unsetenv("CASESTREAM_STALL_SECONDS");
    ck_assert_int_eq(load(&cfg, CS_PROG_WORKER, 2, flag, err), 0);
    ck_assert_int_eq(cfg.stall_seconds, 30);
    cs_config_free(&cfg);
    ck_assert_int_eq(load(&cfg, CS_PROG_INDEXER, 2, off, err), 0);
    ck_assert_int_eq(cfg.stall_seconds, 0);
    cs_config_free(&cfg);
    ck_assert_int_eq(load(&cfg, CS_PROG_PRODUCE, 2, flag, err), CS_ERR_INVALID);
    cs_config_free(&cfg);
}
END_TEST

/* Loads argv for program and returns the reason, which must be one line without a credential. */
static const char *refused(unsigned program, char **argv)
{
    static char err[256];
    cs_config cfg;
    int argc = 0;

    while (argv[argc])
        argc++;
    err[0] = '\0';
    ck_assert_msg(load(&cfg, program, argc, argv, err) == CS_ERR_INVALID, "accepted %s",
                  argv[argc - 1]);
    cs_config_free(&cfg);
    ck_assert_msg(err[0] && !strchr(err, '\n'), "no one-line reason for %s", argv[argc - 1]);
    ck_assert_msg(!strstr(err, "s3cret"), "a password in the reason: %s", err);
    return err;
}

/* -X consumer.<name> and producer.<name> reach only that kind of client, prefix stripped, and
 * win over the unprefixed; the guarded properties are refused under either prefix. */
START_TEST(test_config_kafka_properties_by_client_prefix)
{
    cs_config cfg;
    char err[256] = "", value[64];
    size_t size;
    char *argv[] = {"prog",
                    "-X",
                    "fetch.wait.max.ms=300",
                    "-X",
                    "consumer.fetch.wait.max.ms=50",
                    "-X",
                    "producer.linger.ms=20",
                    NULL};
    char *guarded_consumer[] = {"prog", "-X", "consumer.enable.auto.commit=false", NULL};
    char *guarded_producer[] = {"prog", "-X", "producer.acks=1", NULL};
    char *unknown[] = {"prog", "-X", "producer.no.such.property=1", NULL};
    char *classic_only[] = {"prog", "-X", "consumer.session.timeout.ms=6000", NULL};
    rd_kafka_conf_t *conf;
    int type;

    ck_assert_str_eq(cs_kafka_prop_name("consumer.fetch.min.bytes", &type), "fetch.min.bytes");
    ck_assert_int_eq(type, RD_KAFKA_CONSUMER);
    ck_assert_str_eq(cs_kafka_prop_name("producer.linger.ms", &type), "linger.ms");
    ck_assert_int_eq(type, RD_KAFKA_PRODUCER);
    ck_assert_str_eq(cs_kafka_prop_name("linger.ms", &type), "linger.ms");
    ck_assert_int_eq(type, CS_KAFKA_ANY_CLIENT);
    ck_assert_str_eq(cs_kafka_prop_name("consumer.", &type), "consumer.");

    ck_assert_msg(load(&cfg, CS_PROG_ADMIN, 7, argv, err) == 0, "%s", err);
    ck_assert_ptr_nonnull(conf = cs_kafka_conf_new_for(&cfg, RD_KAFKA_CONSUMER, NULL, err, 256));
    size = sizeof(value);
    ck_assert_int_eq(rd_kafka_conf_get(conf, "fetch.wait.max.ms", value, &size), RD_KAFKA_CONF_OK);
    ck_assert_str_eq(value, "50");
    size = sizeof(value);
    ck_assert_int_eq(rd_kafka_conf_get(conf, "linger.ms", value, &size), RD_KAFKA_CONF_OK);
    ck_assert_str_ne(value, "20");
    rd_kafka_conf_destroy(conf);
    ck_assert_ptr_nonnull(conf = cs_kafka_conf_new(&cfg, NULL, err, 256));
    size = sizeof(value);
    ck_assert_int_eq(rd_kafka_conf_get(conf, "fetch.wait.max.ms", value, &size), RD_KAFKA_CONF_OK);
    ck_assert_str_eq(value, "300");
    rd_kafka_conf_destroy(conf);
    ck_assert_ptr_nonnull(conf = cs_kafka_conf_new_for(&cfg, RD_KAFKA_PRODUCER, NULL, err, 256));
    size = sizeof(value);
    ck_assert_int_eq(rd_kafka_conf_get(conf, "linger.ms", value, &size), RD_KAFKA_CONF_OK);
    ck_assert_str_eq(value, "20");
    rd_kafka_conf_destroy(conf);
    cs_config_free(&cfg);

    ck_assert_ptr_nonnull(strstr(refused(CS_PROG_WORKER, guarded_consumer), "set by casestream"));
    ck_assert_ptr_nonnull(strstr(refused(CS_PROG_PRODUCE, guarded_producer), "set by casestream"));
    ck_assert_ptr_nonnull(strstr(refused(CS_PROG_ADMIN, unknown), "producer.no.such.property"));
    ck_assert_ptr_nonnull(strstr(refused(CS_PROG_WORKER, classic_only),
                                 "not taken with the consumer group protocol"));
}
END_TEST

/* The linger.ms of a producer's handle. */
static void producer_linger(const cs_config *cfg, cs_kafka_send send, char *value, size_t size)
{
    char err[256] = "";
    rd_kafka_conf_t *conf = cs_kafka_conf_new(cfg, NULL, err, sizeof(err));
    rd_kafka_t *rk;

    ck_assert_msg(conf != NULL, "%s", err);
    ck_assert_msg((rk = cs_kafka_producer_new(cfg, conf, send, err, sizeof(err))) != NULL, "%s",
                  err);
    ck_assert_int_eq(rd_kafka_conf_get(rd_kafka_conf(rk), "linger.ms", value, &size),
                     RD_KAFKA_CONF_OK);
    rd_kafka_destroy(rk);
}

/* A producer someone waits on (the API's, the worker's) sends each message at once; a bulk
 * one gathers for 5 ms; -X producer.linger.ms wins over both. */
START_TEST(test_config_producers_send_at_once_or_gathered)
{
    char *argv[] = {"prog", "--brokers=127.0.0.1:1", "-X", "producer.linger.ms=7", NULL};
    /* argc (without or with the -X), then the linger of each kind */
    static const struct {
        int argc;
        const char *at_once, *gathered;
    } cases[] = {{2, "0", "5"}, {4, "7", "7"}};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cs_config cfg;
        char err[256] = "", value[64];

        ck_assert_msg(load(&cfg, CS_PROG_ADMIN, cases[i].argc, argv, err) == 0, "%s", err);
        producer_linger(&cfg, CS_KAFKA_SEND_AT_ONCE, value, sizeof(value));
        ck_assert_str_eq(value, cases[i].at_once);
        producer_linger(&cfg, CS_KAFKA_SEND_GATHERED, value, sizeof(value));
        ck_assert_str_eq(value, cases[i].gathered);
        cs_config_free(&cfg);
    }
}
END_TEST

START_TEST(test_config_refuses_kafka_properties_guarantees_rest_on)
{
    char *unknown[] = {"prog", "-X", "no.such.property=1", NULL};
    char *badvalue[] = {"prog", "-Xlinger.ms=soon", NULL};
    char *secret[] = {"prog", "-Xsasl.password=s3cret", "-Xno.such=1", NULL};
    const char *guarded[] = {"enable.idempotence=false",         "acks=1",
                             "isolation.level=read_uncommitted", "enable.auto.commit=false",
                             "enable.auto.offset.store=true",    "partitioner=random"};
    unsigned programs[] = {CS_PROG_PRODUCE, CS_PROG_WORKER, CS_PROG_INDEXER, CS_PROG_ADMIN};

    for (size_t p = 0; p < 4; p++) {
        ck_assert_ptr_nonnull(strstr(refused(programs[p], unknown), "no.such.property"));
        ck_assert_ptr_nonnull(strstr(refused(programs[p], badvalue), "linger.ms"));
        for (size_t g = 0; g < sizeof(guarded) / sizeof(guarded[0]); g++) {
            char *argv[] = {"prog", "-X", (char *)guarded[g], NULL};

            ck_assert_ptr_nonnull(strstr(refused(programs[p], argv), "set by casestream"));
        }
    }
    refused(CS_PROG_WORKER, secret);
}
END_TEST

START_TEST(test_config_checks_urls_hosts_and_arguments)
{
    cs_config cfg;
    char err[256];
    char *redis_pw[] = {"prog", "--redis=redis://:s3cret@127.0.0.1:port", NULL};
    char *host[] = {"prog", "--metrics-host=no-such-host.invalid", NULL};
    char *stray[] = {"prog", "foo", NULL};
    char *es_both[] = {"prog", "--es=http://elastic:s3cret@127.0.0.1:1", "--es-api-key=k", NULL};
    char *es_ca[] = {"prog", "--es-ca-file=/nonexistent/ca.pem", NULL};
    char *es_cert[] = {"prog", "--es-cert-file=/nonexistent/client.pem", NULL};
    char *es_key_alone[] = {"prog", "--es-key-file=/etc/hostname", NULL};
    char *format[] = {"prog", "--log-format=text", NULL};
    char *good[] = {"prog",
                    "--redis=redis://app:s3cret@[::1]:6380/2",
                    "--metrics-host=localhost",
                    "--log-format=json",
                    "--version",
                    NULL};
    char *ipv6[] = {"prog", "--metrics-host=::1", NULL};
    char *es_good[] = {"prog", "--es=https://elastic:s3cret@[::1]:9200", NULL};

    ck_assert_ptr_nonnull(strstr(refused(CS_PROG_WORKER, redis_pw), "port"));
    ck_assert_ptr_nonnull(strstr(refused(CS_PROG_WORKER, host), "metrics-host"));
    ck_assert_ptr_nonnull(strstr(refused(CS_PROG_INDEXER, host), "metrics-host"));
    ck_assert_ptr_nonnull(strstr(refused(CS_PROG_WORKER, stray), "unexpected argument \"foo\""));
    ck_assert_ptr_nonnull(strstr(refused(CS_PROG_INDEXER, stray), "unexpected argument"));
    ck_assert_ptr_nonnull(strstr(refused(CS_PROG_INDEXER, es_both), "es-api-key"));
    ck_assert_ptr_nonnull(strstr(refused(CS_PROG_ADMIN, es_ca), "es-ca-file"));
    ck_assert_ptr_nonnull(strstr(refused(CS_PROG_INDEXER, es_cert), "es-cert-file"));
    ck_assert_str_eq(refused(CS_PROG_INDEXER, es_key_alone),
                     "es-key-file is set without es-cert-file");
    ck_assert_ptr_nonnull(strstr(refused(CS_PROG_ADMIN, format), "log-format"));
    ck_assert_int_eq(load(&cfg, CS_PROG_WORKER, 5, good, err), 0);
    ck_assert(cfg.version);
    cs_config_free(&cfg);
    cs_log_set_format(CS_LOG_LOGFMT);
    ck_assert_int_eq(load(&cfg, CS_PROG_WORKER, 2, ipv6, err), 0);
    cs_config_free(&cfg);
    ck_assert_int_eq(load(&cfg, CS_PROG_INDEXER, 2, es_good, err), 0);
    cs_config_free(&cfg);
}
END_TEST

/* rediss:// loads its TLS files when the configuration is read, so a bad one is a configuration
 * error (exit 78) with its reason, not a worker that never becomes ready; a build without TLS
 * refuses rediss:// itself. */
START_TEST(test_config_rediss_loads_tls_files_or_refuses)
{
    cs_config cfg;
    char err[256], ca[512], key[512], ca_flag[600], not_ca_flag[600], cert_flag[600];
    char *plain[] = {"prog", "--redis=rediss://:s3cret@127.0.0.1:1", NULL};
    char *with_ca[] = {"prog", "--redis=rediss://:s3cret@127.0.0.1:1", ca_flag, NULL};
    char *no_ca[] = {"prog", "--redis=rediss://:s3cret@127.0.0.1:1",
                     "--redis-ca-file=/nonexistent/ca.pem", NULL};
    char *not_ca[] = {"prog", "--redis=rediss://:s3cret@127.0.0.1:1", not_ca_flag, NULL};
    char *no_key[] = {"prog", "--redis=rediss://:s3cret@127.0.0.1:1", cert_flag, NULL};
    char *key_alone[] = {"prog", "--redis-key-file=/etc/hostname", NULL};

    cs_fixture_path("tls/ca.pem", ca, sizeof(ca));
    cs_fixture_path("jwt/rs256-private.pem", key, sizeof(key));
    snprintf(ca_flag, sizeof(ca_flag), "--redis-ca-file=%s", ca);
    snprintf(not_ca_flag, sizeof(not_ca_flag), "--redis-ca-file=%s", key);
    /* A certificate without its key, in a file without a key. */
    snprintf(cert_flag, sizeof(cert_flag), "--redis-cert-file=%s", ca);
    ck_assert_str_eq(refused(CS_PROG_WORKER, key_alone),
                     "redis-key-file is set without redis-cert-file");
    if (!cs_redis_tls_supported()) {
        ck_assert_ptr_nonnull(strstr(refused(CS_PROG_WORKER, with_ca), "TLS"));
        return;
    }
    ck_assert_int_eq(load(&cfg, CS_PROG_WORKER, 2, plain, err), 0);
    cs_config_free(&cfg);
    ck_assert_int_eq(load(&cfg, CS_PROG_WORKER, 3, with_ca, err), 0);
    ck_assert_str_eq(cfg.redis_ca_file, ca);
    cs_config_free(&cfg);
    ck_assert_ptr_nonnull(
        strstr(refused(CS_PROG_WORKER, no_ca), "redis-ca-file /nonexistent/ca.pem cannot be read"));
    ck_assert_ptr_nonnull(strstr(refused(CS_PROG_WORKER, not_ca), "no CA certificate"));
    ck_assert_ptr_nonnull(strstr(refused(CS_PROG_WORKER, no_key), "no private key"));
}
END_TEST

START_TEST(test_config_errors_exit_78_and_version_exits_0)
{
    cs_config cfg;
    char *bad_x[] = {"casestream-worker", "-Xacks=0", NULL};
    char *stray[] = {"casestream-worker", "foo", NULL};
    char *redis[] = {"casestream-worker", "--redis=redis://:s3cret@h:x", NULL};
    char *version[] = {"build/casestream-indexer", "--version", NULL};

    ck_assert_int_eq(cs_config_main(&cfg, CS_PROG_WORKER, 2, bad_x, "s", "d"), CS_EXIT_CONFIG);
    cs_config_free(&cfg);
    ck_assert_int_eq(cs_config_main(&cfg, CS_PROG_WORKER, 2, stray, "s", "d"), CS_EXIT_CONFIG);
    cs_config_free(&cfg);
    ck_assert_int_eq(cs_config_main(&cfg, CS_PROG_WORKER, 2, redis, "s", "d"), CS_EXIT_CONFIG);
    cs_config_free(&cfg);
    ck_assert_int_eq(cs_config_main(&cfg, CS_PROG_INDEXER, 2, version, "s", "d"), 0);
    cs_config_free(&cfg);
    ck_assert_str_ne(cs_version, "");
}
END_TEST

START_TEST(test_config_api_options_and_their_refusals)
{
    cs_config cfg;
    char err[256] = "";
    char *argv[] = {"casestream-api", "--api-port=4551", "--s2s-key-file=/k", NULL};
    char *zero[] = {"casestream-api", "--submit-timeout=0", NULL};
    char *nobody[] = {"casestream-api", "--allowed-services= , ", NULL};
    char *changes[] = {"casestream-api", "--topic-changes=x", NULL};
    char *worker[] = {"casestream-worker", "--api-port=4551", NULL};

    ck_assert_int_eq(load(&cfg, CS_PROG_API, 3, argv, err), 0);
    ck_assert_int_eq(cfg.api_port, 4551);
    ck_assert_str_eq(cfg.api_host, "127.0.0.1");
    ck_assert_int_eq(cfg.submit_timeout, 10);
    ck_assert_int_eq(cfg.max_body, 2097152);
    ck_assert_str_eq(cfg.notes_field, "caseNotes");
    ck_assert_str_eq(cfg.allowed_services, "ccd_data");
    ck_assert(!cfg.insecure_skip_s2s);
    ck_assert_str_eq(cfg.s2s_key_file, "/k");
    cs_config_free(&cfg);
    ck_assert_ptr_nonnull(strstr(refused(CS_PROG_API, zero), "out of range"));
    ck_assert_ptr_nonnull(strstr(refused(CS_PROG_API, nobody), "allowed-services"));
    /* The API publishes and reads outcomes: the changes and dead-letter topics are not its. */
    ck_assert_ptr_nonnull(strstr(refused(CS_PROG_API, changes), "unknown option"));
    ck_assert_ptr_nonnull(strstr(refused(CS_PROG_WORKER, worker), "unknown option"));
}
END_TEST

START_TEST(test_config_s2s_key_options_for_the_token_command)
{
    cs_config cfg;
    char err[256] = "";
    char *argv[] = {"casestream", "token", "--service", "ccd_data", NULL};
    char *bad[] = {"casestream", "--s2s-alg=none", NULL};
    char *worker[] = {"casestream-worker", "--s2s-alg=HS256", NULL};

    ck_assert_int_eq(load(&cfg, CS_PROG_ADMIN, 4, argv, err), 0);
    ck_assert_str_eq(cfg.s2s_alg, "HS256");
    ck_assert_str_eq(cfg.s2s_key_file, "");
    ck_assert_str_eq(cfg.service, "ccd_data");
    ck_assert_int_eq(cfg.ttl, 3600);
    cs_config_free(&cfg);
    setenv("CASESTREAM_S2S_ALG", "RS256", 1);
    setenv("CASESTREAM_S2S_KEY_FILE", "/etc/casestream/s2s.pem", 1);
    ck_assert_int_eq(load(&cfg, CS_PROG_ADMIN, 4, argv, err), 0);
    ck_assert_str_eq(cfg.s2s_alg, "RS256");
    ck_assert_str_eq(cfg.s2s_key_file, "/etc/casestream/s2s.pem");
    cs_config_free(&cfg);
    unsetenv("CASESTREAM_S2S_ALG");
    unsetenv("CASESTREAM_S2S_KEY_FILE");
    ck_assert_int_eq(load(&cfg, CS_PROG_ADMIN, 2, bad, err), CS_ERR_INVALID);
    ck_assert_str_eq(err, "invalid s2s-alg \"none\" (HS256, HS512, RS256)");
    cs_config_free(&cfg);
    ck_assert_int_eq(load(&cfg, CS_PROG_WORKER, 2, worker, err), CS_ERR_INVALID);
    cs_config_free(&cfg);
}
END_TEST

START_TEST(test_config_topic_specs_follow_the_topic_options)
{
    cs_config cfg;
    cs_topic_spec specs[4];
    char err[256] = "";
    char *defaults[] = {"casestream", "topics", "create", NULL};
    char *set[] = {"casestream",
                   "--events-partitions=24",
                   "--changes-partitions=6",
                   "--replication-factor=3",
                   "--min-insync-replicas=2",
                   "--events-retention-hours=-1",
                   "--dlq-retention-hours=1",
                   "--changes-compact",
                   NULL};
    char *isr[] = {"casestream", "--min-insync-replicas=2", NULL};
    char *zero[] = {"casestream", "--events-retention-hours=0", NULL};

    ck_assert_int_eq(load(&cfg, CS_PROG_ADMIN, 3, defaults, err), 0);
    ck_assert_int_eq(cs_kafka_topic_specs(&cfg, specs, err, sizeof(err)), 0);
    ck_assert_str_eq(specs[0].name, "case-events");
    ck_assert_str_eq(specs[2].name, "case-changes");
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(specs[i].partitions, 12);
        ck_assert_str_eq(specs[i].cleanup_policy, "delete");
    }
    ck_assert_int_eq(specs[0].retention_ms, 168 * 3600000LL);
    ck_assert_int_eq(specs[1].retention_ms, 168 * 3600000LL);
    ck_assert_int_eq(specs[2].retention_ms, 0); /* the broker's */
    ck_assert_int_eq(specs[3].retention_ms, 720 * 3600000LL);
    ck_assert_int_eq(cfg.replication_factor, 1);
    cs_config_free(&cfg);

    ck_assert_int_eq(load(&cfg, CS_PROG_ADMIN, 8, set, err), 0);
    ck_assert_int_eq(cs_kafka_topic_specs(&cfg, specs, err, sizeof(err)), 0);
    ck_assert_int_eq(specs[0].partitions, 24);
    ck_assert_int_eq(specs[1].partitions, 24);
    ck_assert_int_eq(specs[2].partitions, 6);
    ck_assert_int_eq(specs[0].retention_ms, -1);
    ck_assert_int_eq(specs[3].retention_ms, 3600000LL);
    ck_assert_str_eq(specs[2].cleanup_policy, "compact");
    ck_assert_str_eq(specs[3].cleanup_policy, "delete");
    cs_config_free(&cfg);

    ck_assert_int_eq(load(&cfg, CS_PROG_ADMIN, 2, isr, err), 0);
    ck_assert_int_eq(cs_kafka_topic_specs(&cfg, specs, err, sizeof(err)), CS_ERR_INVALID);
    ck_assert_str_eq(err, "min-insync-replicas 2 is above replication-factor 1: no message could "
                          "be acknowledged");
    cs_config_free(&cfg);
    ck_assert_int_eq(load(&cfg, CS_PROG_ADMIN, 2, zero, err), 0);
    ck_assert_int_eq(cs_kafka_topic_specs(&cfg, specs, err, sizeof(err)), CS_ERR_INVALID);
    ck_assert_str_eq(err,
                     "events-retention-hours must be positive, or -1 to keep messages forever");
    cs_config_free(&cfg);
}
END_TEST

/* Loads argv (argc entries) for program and expects it refused with a reason naming what. */
static void assert_refused(unsigned program, int argc, char **argv, const char *what)
{
    cs_config cfg;
    char err[256] = "";

    ck_assert_int_eq(load(&cfg, program, argc, argv, err), CS_ERR_INVALID);
    ck_assert_msg(strstr(err, what), "reason \"%s\" does not name %s", err, what);
    cs_config_free(&cfg);
}

START_TEST(test_config_group_protocol_is_consumer_with_classic_selectable)
{
    cs_config cfg;
    char err[256] = "";
    char *none[] = {"prog", NULL};
    char *classic[] = {"prog", "--group-protocol=classic", "-Xsession.timeout.ms=6000", NULL};
    char *session[] = {"prog", "-Xsession.timeout.ms=6000", NULL};
    char *strategy[] = {"prog", "-Xpartition.assignment.strategy=cooperative-sticky", NULL};
    char *own[] = {"prog", "-Xgroup.protocol=classic", NULL};
    char *bad[] = {"prog", "--group-protocol=eager", NULL};

    ck_assert_int_eq(load(&cfg, CS_PROG_WORKER, 1, none, err), 0);
    ck_assert_str_eq(cfg.group_protocol, "consumer");
    cs_config_free(&cfg);
    ck_assert_int_eq(load(&cfg, CS_PROG_INDEXER, 3, classic, err), 0);
    ck_assert_str_eq(cfg.group_protocol, "classic");
    cs_config_free(&cfg);
    /* The consumer protocol leaves these to the broker: refused up front, with the way out. */
    ck_assert_int_eq(load(&cfg, CS_PROG_WORKER, 2, session, err), CS_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "session.timeout.ms"));
    ck_assert_ptr_nonnull(strstr(err, "set group-protocol to classic"));
    ck_assert_ptr_null(strchr(err, '=')); /* one logfmt value */
    cs_config_free(&cfg);
    assert_refused(CS_PROG_INDEXER, 2, strategy, "partition.assignment.strategy");
    assert_refused(CS_PROG_WORKER, 2, own, "group-protocol");
    assert_refused(CS_PROG_WORKER, 2, bad, "eager");
    /* The producer is in no group: the property is librdkafka's to judge. */
    ck_assert_int_eq(load(&cfg, CS_PROG_PRODUCE, 2, session, err), 0);
    cs_config_free(&cfg);
}
END_TEST

Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("table");

    tcase_add_test(tc, test_config_defaults_match_local_stack);
    tcase_add_test(tc, test_config_file_is_read_first_and_serves_every_program);
    tcase_add_test(tc, test_config_file_errors_name_the_file_and_line);
    tcase_add_test(tc, test_config_flag_overrides_environment);
    tcase_add_test(tc, test_config_rejects_bad_values_with_reason);
    tcase_add_test(tc, test_config_admin_takes_dispose_options_and_limit_defaults_to_the_command);
    tcase_add_test(tc, test_config_import_options_default_to_a_preload_with_the_sdk_offset);
    tcase_add_test(tc, test_config_kafka_props_optional_values_and_positionals);
    tcase_add_test(tc, test_config_stall_seconds_for_long_running_programs_only);
    tcase_add_test(tc, test_config_refuses_kafka_properties_guarantees_rest_on);
    tcase_add_test(tc, test_config_kafka_properties_by_client_prefix);
    tcase_add_test(tc, test_config_checks_urls_hosts_and_arguments);
    tcase_add_test(tc, test_config_rediss_loads_tls_files_or_refuses);
    tcase_add_test(tc, test_config_errors_exit_78_and_version_exits_0);
    tcase_add_test(tc, test_config_s2s_key_options_for_the_token_command);
    tcase_add_test(tc, test_config_api_options_and_their_refusals);
    tcase_add_test(tc, test_config_producers_send_at_once_or_gathered);
    tcase_add_test(tc, test_config_topic_specs_follow_the_topic_options);
    tcase_add_test(tc, test_config_group_protocol_is_consumer_with_classic_selectable);
    suite_add_tcase(s, tc);
    return s;
}
