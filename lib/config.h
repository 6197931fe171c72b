/* Configuration: one table of options, read from CASESTREAM_* variables and flags. */
#ifndef CS_CONFIG_H
#define CS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Which program an option belongs to; an option may belong to several. */
enum {
    CS_PROG_PRODUCE = 1 << 0,
    CS_PROG_WORKER = 1 << 1,
    CS_PROG_INDEXER = 1 << 2,
    CS_PROG_ADMIN = 1 << 3,
    CS_PROG_API = 1 << 4,
    CS_PROG_ALL = 0x1f
};

/* Every setting of every program. Strings are borrowed from argv, the
 * environment or static defaults and live as long as the process. */
typedef struct cs_config {
    /* services */
    const char *brokers;
    const char *pg;
    const char *redis;
    const char *redis_ca_file;   /* "" = the system's CAs (rediss://) */
    const char *redis_cert_file; /* "" = no client certificate */
    const char *redis_key_file;  /* "" = the key is in redis_cert_file */
    const char *es;
    const char *es_ca_file;   /* "" = the system's CAs */
    const char *es_api_key;   /* "" = none (basic auth from the URL, or none) */
    const char *es_cert_file; /* "" = no client certificate */
    const char *es_key_file;  /* "" = the key is in es_cert_file */
    /* topics */
    const char *topic_events;
    const char *topic_results;
    const char *topic_changes;
    const char *topic_dlq;
    int events_partitions;
    int results_partitions; /* 0: as many as the events topic */
    int changes_partitions; /* 0: as many as the events topic */
    int dlq_partitions;     /* 0: as many as the events topic */
    int replication_factor;
    int min_insync_replicas;
    int events_retention_hours; /* -1: kept forever */
    int results_retention_hours;
    int dlq_retention_hours;
    bool changes_compact; /* cleanup.policy=compact for the changes topic */
    bool yes;             /* topics delete: the confirmation */
    /* consumer groups */
    const char *group;
    const char *indexer_group;
    const char *group_protocol; /* "consumer" (KIP-848) or "classic" */
    /* worker */
    int batch_size;
    int batch_bytes;
    int batch_linger_ms;
    int appliers;
    int redis_ttl;
    int max_message_bytes;
    int outbox_batch;
    int outbox_bytes;
    int outbox_linger_ms;
    int outcome_retention_hours;
    int outbox_retention_hours;
    /* indexer */
    int bulk_docs;
    int bulk_bytes;
    int bulk_linger_ms;
    int bulk_in_flight;
    int es_timeout_ms;
    int max_fields;
    int refresh_ms;
    /* producer */
    int wait_seconds; /* -1: do not wait */
    bool dry_run;
    bool gen_key;
    int rate;
    /* admin */
    const char *sql_dir;
    const char *case_type;
    bool new_index;
    const char *before; /* dispose: "YYYY-MM-DD", "" = today */
    int limit;          /* 0: the command's own default */
    int cases;
    int events;
    const char *base_ref;
    int seed;
    bool ccd;         /* workload: CCD's optional fields, supplementary data, retention dates */
    int expired;      /* workload: how many cases (the last ones) are past their retention date */
    const char *from; /* import: CCD data store's database, a libpq conninfo */
    const char *mode; /* import: preload, cutover or validate */
    int revision_offset; /* import: added to each imported event's ordinal */
    int batch;           /* import: source rows per transaction */
    int jobs;            /* import: connections writing batches at once */
    /* api */
    const char *api_host;
    int api_port;
    int submit_timeout;     /* seconds a submit waits for its outcome */
    int max_body;           /* bytes of a request body */
    int max_connections;    /* open connections at once */
    int connection_timeout; /* seconds a connection may stay idle */
    int api_threads;        /* HTTP threads, and PostgreSQL connections */
    const char *notes_field;
    const char *allowed_services; /* comma-separated S2S subjects */
    bool insecure_skip_s2s;
    /* token */
    const char *service; /* token: the service (sub) a token is minted for */
    int ttl;             /* token: its lifetime in seconds */
    /* service-to-service tokens (lib/jwt.h) */
    const char *s2s_alg;      /* HS256, HS512 or RS256 */
    const char *s2s_key_file; /* "" = none */
    /* operations */
    int metrics_port;
    const char *metrics_host;
    int stall_seconds; /* 0: stalls are not reported */
    int live_seconds;  /* /livez fails when the main loop has not run for this long */
    const char *log_level;
    const char *log_format;
    const char *fault;
    /* -X key=value properties for librdkafka, in command-line order */
    const char **kafka_props;
    size_t kafka_props_count;
    /* positional arguments (files, admin subcommands) */
    char **args;
    size_t args_count;
    bool help;
    bool version;
    bool man; /* --man: print the manual page */
    /* --config FILE (or CASESTREAM_CONFIG): its path and text; values point into the text */
    const char *config_file;
    char *config_text;
} cs_config;

/* Fills cfg from defaults, then the --config file (or CASESTREAM_CONFIG's: CASESTREAM_*=value
 * lines, the same keys as the environment), then CASESTREAM_* variables, then argv, and
 * validates it: every value, the Redis and Elasticsearch URLs, that
 * --metrics-host resolves, that each -X property is one librdkafka takes and
 * not one casestream's guarantees rest on, and that only the producer and
 * casestream take positional arguments. Sets the log level and format.
 * Returns 0, or CS_ERR_INVALID with a one-line reason in errstr, free of
 * credentials (the program logs it and exits CS_EXIT_CONFIG). Free with
 * cs_config_free() in both cases. */
int cs_config_load(cs_config *cfg, unsigned program, int argc, char **argv, char *errstr,
                   size_t errstr_size);

/* What a program's main() does first: loads the configuration; on an error logs the
 * one-line reason and returns CS_EXIT_CONFIG; for --help prints the usage on stdout, for
 * --version the version, for --man the manual page (troff), and returns 0. Returns -1 when the
 * program should run. Free cfg with cs_config_free() in every case. */
int cs_config_main(cs_config *cfg, unsigned program, int argc, char **argv, const char *synopsis,
                   const char *description);

/* The version casestream was built as (the Makefile's VERSION, `git describe`). */
extern const char cs_version[];

/* Frees what cs_config_load() allocated (not the strings). Accepts NULL. */
void cs_config_free(cs_config *cfg);

/* Prints usage: the synopsis, the description, then every option of the
 * program with its variable and default. */
void cs_config_usage(FILE *out, unsigned program, const char *synopsis, const char *description);

/* Prints the same as a manual page in troff (man(7)) for the program called name: NAME from
 * the description's first line, SYNOPSIS, DESCRIPTION, OPTIONS with variables and defaults,
 * ENVIRONMENT, EXIT STATUS. `make man` writes build/man/<program>.1 with it. */
void cs_config_man(FILE *out, unsigned program, const char *name, const char *synopsis,
                   const char *description);

#endif
