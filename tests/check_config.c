/* Unit tests of the configuration table: defaults, environment, flags, errors. */
#include "config.h"
#include "err.h"
#include "runner.h"

#include <stdlib.h>
#include <string.h>

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
    ck_assert_ptr_nonnull(strstr(err, "redis://"));
    cs_config_free(&cfg);
    ck_assert_int_eq(load(&cfg, CS_PROG_WORKER, 2, level, err), CS_ERR_INVALID);
    cs_config_free(&cfg);
}
END_TEST

START_TEST(test_config_kafka_props_optional_values_and_positionals)
{
    cs_config cfg;
    char err[256] = "";
    char *argv[] = {"prog",      "-X", "linger.ms=5", "-Xacks=all", "--wait",
                    "in.ndjson", "-",  "--gen-key",   NULL};
    char *waitn[] = {"prog", "--wait=5", NULL};
    char *badx[] = {"prog", "-X", "novalue", NULL};

    ck_assert_int_eq(load(&cfg, CS_PROG_PRODUCE, 8, argv, err), 0);
    ck_assert_uint_eq(cfg.kafka_props_count, 2);
    ck_assert_str_eq(cfg.kafka_props[0], "linger.ms=5");
    ck_assert_str_eq(cfg.kafka_props[1], "acks=all");
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

Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("table");

    tcase_add_test(tc, test_config_defaults_match_local_stack);
    tcase_add_test(tc, test_config_flag_overrides_environment);
    tcase_add_test(tc, test_config_rejects_bad_values_with_reason);
    tcase_add_test(tc, test_config_admin_takes_dispose_options_and_limit_defaults_to_the_command);
    tcase_add_test(tc, test_config_kafka_props_optional_values_and_positionals);
    tcase_add_test(tc, test_config_stall_seconds_for_long_running_programs_only);
    suite_add_tcase(s, tc);
    return s;
}
