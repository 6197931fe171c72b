/* The configuration table: every option of every program, its variable, flag and default. */
#include "config.h"

#include "err.h"
#include "jwt.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "redact.h"
#include "redis.h"
#include "url.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <librdkafka/rdkafka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum opt_type { OPT_STR, OPT_INT, OPT_BOOL, OPT_OPTINT } opt_type;

typedef struct cs_option {
    const char *name;  /* flag without dashes; the variable is CASESTREAM_<NAME> */
    unsigned programs; /* CS_PROG_* mask */
    opt_type type;
    const char *def;  /* default as text */
    const char *bare; /* OPT_OPTINT: value when the flag is given without one */
    long min, max;    /* OPT_INT/OPT_OPTINT range */
    size_t field;     /* offsetof(cs_config, ...) */
    const char *help;
} cs_option;

#define F(member)    offsetof(cs_config, member)
#define LONG_RUNNING (CS_PROG_WORKER | CS_PROG_INDEXER)
#define KAFKA_USERS                                                                                \
    (CS_PROG_PRODUCE | CS_PROG_WORKER | CS_PROG_INDEXER | CS_PROG_ADMIN | CS_PROG_API)
/* The programs that mint or verify service-to-service tokens. */
#define S2S_USERS (CS_PROG_ADMIN | CS_PROG_API)

/* Defaults match the ports scripts/stack.sh uses, so a local run needs no setup. */
static const cs_option options[] = {
    {"brokers", KAFKA_USERS, OPT_STR, "127.0.0.1:59092", NULL, 0, 0, F(brokers),
     "Kafka bootstrap servers"},
    {"pg", CS_PROG_WORKER | CS_PROG_INDEXER | CS_PROG_ADMIN | CS_PROG_API, OPT_STR,
     "host=127.0.0.1 port=55432 dbname=casestream user=casestream password=casestream", NULL, 0, 0,
     F(pg), "PostgreSQL connection string"},
    {"redis", CS_PROG_WORKER | CS_PROG_ADMIN, OPT_STR, "redis://127.0.0.1:56379", NULL, 0, 0,
     F(redis),
     "Redis URL for idempotency keys (redis://[[user]:password@]host[:port][/db]; rediss:// for "
     "TLS)"},
    {"redis-ca-file", CS_PROG_WORKER | CS_PROG_ADMIN, OPT_STR, "", NULL, 0, 0, F(redis_ca_file),
     "PEM file of the CAs that sign a rediss:// server's certificate (default: the system's)"},
    {"redis-cert-file", CS_PROG_WORKER | CS_PROG_ADMIN, OPT_STR, "", NULL, 0, 0, F(redis_cert_file),
     "PEM client certificate for a rediss:// server (TLS client authentication; default: none)"},
    {"redis-key-file", CS_PROG_WORKER | CS_PROG_ADMIN, OPT_STR, "", NULL, 0, 0, F(redis_key_file),
     "PEM private key of --redis-cert-file (default: in the certificate's file)"},
    {"es", CS_PROG_INDEXER | CS_PROG_ADMIN, OPT_STR, "http://127.0.0.1:59200", NULL, 0, 0, F(es),
     "Elasticsearch base URL (http[s]://[user:password@]host:port; basic auth from the URL)"},
    {"es-ca-file", CS_PROG_INDEXER | CS_PROG_ADMIN, OPT_STR, "", NULL, 0, 0, F(es_ca_file),
     "PEM file of the CAs that sign Elasticsearch's certificate (default: the system's)"},
    {"es-api-key", CS_PROG_INDEXER | CS_PROG_ADMIN, OPT_STR, "", NULL, 0, 0, F(es_api_key),
     "Elasticsearch API key (the encoded id:key), sent as Authorization: ApiKey"},
    {"es-cert-file", CS_PROG_INDEXER | CS_PROG_ADMIN, OPT_STR, "", NULL, 0, 0, F(es_cert_file),
     "PEM client certificate for Elasticsearch (TLS client authentication; default: none)"},
    {"es-key-file", CS_PROG_INDEXER | CS_PROG_ADMIN, OPT_STR, "", NULL, 0, 0, F(es_key_file),
     "PEM private key of --es-cert-file (default: in the certificate's file)"},
    {"topic-events", KAFKA_USERS, OPT_STR, "case-events", NULL, 0, 0, F(topic_events),
     "topic of submissions"},
    {"topic-results", KAFKA_USERS, OPT_STR, "case-event-results", NULL, 0, 0, F(topic_results),
     "topic of outcomes"},
    {"topic-changes", KAFKA_USERS & ~CS_PROG_API, OPT_STR, "case-changes", NULL, 0, 0,
     F(topic_changes), "topic of committed changes"},
    {"topic-dlq", KAFKA_USERS & ~CS_PROG_API, OPT_STR, "case-events-dlq", NULL, 0, 0, F(topic_dlq),
     "dead-letter topic: the submissions the validator refuses"},
    {"events-partitions", CS_PROG_ADMIN, OPT_INT, "12", NULL, 1, 10000, F(events_partitions),
     "topics create: partitions of the submissions topic (the workers' scaling ceiling)"},
    {"results-partitions", CS_PROG_ADMIN, OPT_INT, "0", NULL, 0, 10000, F(results_partitions),
     "topics create: partitions of the outcomes topic (0 = as many as the submissions topic)"},
    {"changes-partitions", CS_PROG_ADMIN, OPT_INT, "0", NULL, 0, 10000, F(changes_partitions),
     "topics create: partitions of the changes topic (0 = as many as the submissions topic; "
     "the indexers' scaling ceiling)"},
    {"dlq-partitions", CS_PROG_ADMIN, OPT_INT, "0", NULL, 0, 10000, F(dlq_partitions),
     "topics create: partitions of the dead-letter topic (0 = as many as the submissions "
     "topic)"},
    {"replication-factor", CS_PROG_ADMIN, OPT_INT, "1", NULL, 1, 1000, F(replication_factor),
     "topics create: copies of every partition (3 in production; at most the brokers)"},
    {"min-insync-replicas", CS_PROG_ADMIN, OPT_INT, "1", NULL, 1, 1000, F(min_insync_replicas),
     "topics create: replicas that must have a message before it is acknowledged "
     "(min.insync.replicas; 2 in production; at most the replication factor)"},
    {"events-retention-hours", CS_PROG_ADMIN, OPT_INT, "168", NULL, -1, 10000000,
     F(events_retention_hours), "topics create: retention of the submissions topic (-1 = forever)"},
    {"results-retention-hours", CS_PROG_ADMIN, OPT_INT, "168", NULL, -1, 10000000,
     F(results_retention_hours), "topics create: retention of the outcomes topic (-1 = forever)"},
    {"dlq-retention-hours", CS_PROG_ADMIN, OPT_INT, "720", NULL, -1, 10000000,
     F(dlq_retention_hours), "topics create: retention of the dead-letter topic (-1 = forever)"},
    {"changes-compact", CS_PROG_ADMIN, OPT_BOOL, "false", NULL, 0, 0, F(changes_compact),
     "topics create: compact the changes topic (keep each case's last document) instead of "
     "deleting by age"},
    {"yes", CS_PROG_ADMIN, OPT_BOOL, "false", NULL, 0, 0, F(yes),
     "topics delete: confirm deleting the topics and every message in them"},
    {"group", CS_PROG_WORKER, OPT_STR, "casestream-worker", NULL, 0, 0, F(group),
     "consumer group of the workers"},
    {"indexer-group", CS_PROG_INDEXER, OPT_STR, "casestream-indexer", NULL, 0, 0, F(indexer_group),
     "consumer group of the indexers"},
    {"group-protocol", LONG_RUNNING, OPT_STR, "consumer", NULL, 0, 0, F(group_protocol),
     "consumer group protocol: consumer (KIP-848, incremental; librdkafka 2.12 or later) or "
     "classic"},
    {"batch-size", CS_PROG_WORKER, OPT_INT, "256", NULL, 1, 10000, F(batch_size),
     "most submissions committed together"},
    {"batch-bytes", CS_PROG_WORKER, OPT_INT, "4194304", NULL, 1024, 1073741824, F(batch_bytes),
     "most bytes of submissions (values and keys) committed together; a larger submission "
     "goes alone"},
    {"batch-linger-ms", CS_PROG_WORKER, OPT_INT, "0", NULL, 0, 10000, F(batch_linger_ms),
     "how long a batch waits for more once nothing more is queued, from its first submission "
     "(0: it goes at once)"},
    {"appliers", CS_PROG_WORKER, OPT_INT, "4", NULL, 1, 64, F(appliers),
     "PostgreSQL connections applying different cases concurrently"},
    {"redis-ttl", CS_PROG_WORKER, OPT_INT, "604800", NULL, 1, INT_MAX, F(redis_ttl),
     "seconds an idempotency entry stays in Redis"},
    {"max-message-bytes", CS_PROG_WORKER | CS_PROG_PRODUCE | CS_PROG_ADMIN | CS_PROG_API, OPT_INT,
     "1048576", NULL, 64, 100000000, F(max_message_bytes),
     "largest submission accepted; topics and producers take it plus 64 KiB"},
    {"outbox-batch", CS_PROG_WORKER, OPT_INT, "500", NULL, 1, 100000, F(outbox_batch),
     "outbox rows published per round"},
    {"outbox-bytes", CS_PROG_WORKER, OPT_INT, "4194304", NULL, 1024, 1073741824, F(outbox_bytes),
     "most bytes of change documents published per round (a larger document goes alone)"},
    {"outbox-linger-ms", CS_PROG_WORKER, OPT_INT, "20", NULL, 0, 10000, F(outbox_linger_ms),
     "how long the relay gathers committed changes before a round that is not catching up "
     "with a backlog (0: a round follows every commit)"},
    {"outcome-retention-hours", CS_PROG_WORKER | CS_PROG_ADMIN, OPT_INT, "168", NULL, 1, 1000000,
     F(outcome_retention_hours),
     "hours a decided outcome is kept for redeliveries (dispose: the hours of a disposed "
     "case's history whose answers it keeps; give it the workers' value)"},
    {"outbox-retention-hours", CS_PROG_WORKER, OPT_INT, "24", NULL, 1, 1000000,
     F(outbox_retention_hours), "hours an outbox row is kept once published"},
    {"bulk-docs", CS_PROG_INDEXER, OPT_INT, "1000", NULL, 1, 100000, F(bulk_docs),
     "documents per bulk request"},
    {"bulk-bytes", CS_PROG_INDEXER, OPT_INT, "5242880", NULL, 1024, 104857600, F(bulk_bytes),
     "bytes per bulk request"},
    {"bulk-linger-ms", CS_PROG_INDEXER, OPT_INT, "200", NULL, 0, 60000, F(bulk_linger_ms),
     "longest wait to fill a bulk request"},
    {"bulk-in-flight", CS_PROG_INDEXER, OPT_INT, "2", NULL, 1, 16, F(bulk_in_flight),
     "bulk requests in flight at once, each for its own share of the partitions"},
    {"es-timeout-ms", CS_PROG_INDEXER | CS_PROG_ADMIN, OPT_INT, "30000", NULL, 100, 600000,
     F(es_timeout_ms), "timeout of one Elasticsearch request"},
    {"max-fields", CS_PROG_INDEXER | CS_PROG_ADMIN, OPT_INT, "2000", NULL, 100, 100000,
     F(max_fields), "index.mapping.total_fields.limit of the case indices"},
    {"refresh-ms", CS_PROG_INDEXER | CS_PROG_ADMIN, OPT_INT, "1000", NULL, 50, 3600000,
     F(refresh_ms),
     "index.refresh_interval of the case indices, set on those it writes to: how soon a "
     "document is searchable"},
    {"wait", CS_PROG_PRODUCE, OPT_OPTINT, "-1", "60", 1, 86400, F(wait_seconds),
     "wait up to SECONDS for the outcomes (default 60 when given)"},
    {"dry-run", CS_PROG_PRODUCE, OPT_BOOL, "false", NULL, 0, 0, F(dry_run),
     "validate only, send nothing"},
    {"dry-run", CS_PROG_ADMIN, OPT_BOOL, "false", NULL, 0, 0, F(dry_run),
     "dispose: list the cases it would dispose of, change nothing"},
    {"gen-key", CS_PROG_PRODUCE, OPT_BOOL, "false", NULL, 0, 0, F(gen_key),
     "fill in a missing idempotency_key with a random UUID"},
    {"rate", CS_PROG_PRODUCE, OPT_INT, "0", NULL, 0, 10000000, F(rate),
     "submissions per second, 0 = as fast as possible"},
    {"sql-dir", CS_PROG_ADMIN, OPT_STR, "", NULL, 0, 0, F(sql_dir),
     "directory of the numbered migrations (\"\": ./sql, else the installed share/casestream/sql)"},
    {"case-type", CS_PROG_ADMIN, OPT_STR, "", NULL, 0, 0, F(case_type),
     "reindex, index-dead-letters, dispose: only this case type; import: the case type to "
     "import; workload: the case type (default NFD)"},
    {"new-index", CS_PROG_ADMIN, OPT_BOOL, "false", NULL, 0, 0, F(new_index),
     "reindex: build a new index for --case-type, then move its alias to it"},
    {"before", CS_PROG_ADMIN, OPT_STR, "", NULL, 0, 0, F(before),
     "dispose: cases whose resolved_ttl is before this day, YYYY-MM-DD (default: today, UTC)"},
    {"cases", CS_PROG_ADMIN, OPT_INT, "200", NULL, 1, 10000000, F(cases),
     "workload: number of cases"},
    {"events", CS_PROG_ADMIN, OPT_INT, "10", NULL, 1, 100000, F(events),
     "workload: submissions per case"},
    {"base-ref", CS_PROG_ADMIN, OPT_STR, "", NULL, 0, 0, F(base_ref),
     "workload: first case reference (default: from the clock, unique per run)"},
    {"seed", CS_PROG_ADMIN, OPT_INT, "1", NULL, 0, INT_MAX, F(seed), "workload: random seed"},
    {"ccd", CS_PROG_ADMIN, OPT_BOOL, "false", NULL, 0, 0, F(ccd),
     "workload: also send CCD's optional fields, supplementary data updates ($set, $inc) and "
     "retention dates"},
    {"expired", CS_PROG_ADMIN, OPT_INT, "0", NULL, 0, 10000000, F(expired),
     "workload: the last N cases are created past their retention date (for dispose)"},
    {"from", CS_PROG_ADMIN, OPT_STR, "", NULL, 0, 0, F(from),
     "import: CCD data store's PostgreSQL database to import from (libpq conninfo)"},
    {"mode", CS_PROG_ADMIN, OPT_STR, "preload", NULL, 0, 0, F(mode),
     "import: preload (copy while CCD is live), cutover (last copy, verify, take the case "
     "type over) or validate (compare, write nothing)"},
    {"revision-offset", CS_PROG_ADMIN, OPT_INT, "1000000000", NULL, 0, INT_MAX, F(revision_offset),
     "import: an imported event's case_revision is this plus its ordinal in its case"},
    {"batch", CS_PROG_ADMIN, OPT_INT, "1000", NULL, 1, 100000, F(batch),
     "import: source rows committed per transaction"},
    {"jobs", CS_PROG_ADMIN, OPT_INT, "2", NULL, 1, 32, F(jobs),
     "import: PostgreSQL connections writing batches at once (they commit in order)"},
    {"service", CS_PROG_ADMIN, OPT_STR, "", NULL, 0, 0, F(service),
     "token: the service the token is for (its sub claim)"},
    {"ttl", CS_PROG_ADMIN, OPT_INT, "3600", NULL, 1, 31536000, F(ttl),
     "token: seconds until the token expires"},
    {"s2s-alg", S2S_USERS, OPT_STR, "HS256", NULL, 0, 0, F(s2s_alg),
     "algorithm of service-to-service tokens: HS256 or HS512 (a shared secret), RS256 (a key "
     "pair)"},
    {"s2s-key-file", S2S_USERS, OPT_STR, "", NULL, 0, 0, F(s2s_key_file),
     "service-to-service key: the HS256/HS512 secret (at least 32/64 bytes, one trailing "
     "newline stripped) or an RS256 PEM key (public to verify, private to mint too)"},
    {"limit", CS_PROG_ADMIN, OPT_INT, "0", NULL, 0, 1000000000, F(limit),
     "most records: dlq and index-dead-letters list or retry 100 when 0; dispose disposes of "
     "every case when 0"},
    {"metrics-port", CS_PROG_WORKER, OPT_INT, "9464", NULL, 0, 65535, F(metrics_port),
     "port of /livez, /readyz, /healthz and /metrics (0 = off)"},
    {"metrics-port", CS_PROG_INDEXER, OPT_INT, "9465", NULL, 0, 65535, F(metrics_port),
     "port of /livez, /readyz, /healthz and /metrics (0 = off)"},
    {"api-host", CS_PROG_API, OPT_STR, "127.0.0.1", NULL, 0, 0, F(api_host),
     "address or host name the HTTP server listens on (IPv6 too: ::1)"},
    {"api-port", CS_PROG_API, OPT_INT, "4550", NULL, 1, 65535, F(api_port),
     "port of /ccd-persistence, /livez, /readyz, /healthz and /metrics"},
    {"submit-timeout", CS_PROG_API, OPT_INT, "10", NULL, 1, 300, F(submit_timeout),
     "seconds a submission waits for its outcome before 504 (a retry with its key is safe)"},
    {"max-body", CS_PROG_API, OPT_INT, "2097152", NULL, 1024, 104857600, F(max_body),
     "largest request body in bytes (413 beyond)"},
    {"max-connections", CS_PROG_API, OPT_INT, "512", NULL, 1, 100000, F(max_connections),
     "connections open at once (more are refused)"},
    {"connection-timeout", CS_PROG_API, OPT_INT, "30", NULL, 1, 3600, F(connection_timeout),
     "seconds a connection may stay idle (a slow client is closed)"},
    {"api-threads", CS_PROG_API, OPT_INT, "4", NULL, 1, 64, F(api_threads),
     "HTTP threads, and as many readers of the cases view; each with a PostgreSQL connection"},
    {"notes-field", CS_PROG_API, OPT_STR, "caseNotes", NULL, 0, 0, F(notes_field),
     "case_data member the case's notes are shown under, as a CCD collection (\"\" = none)"},
    {"allowed-services", CS_PROG_API, OPT_STR, "ccd_data", NULL, 0, 0, F(allowed_services),
     "comma-separated services (the S2S token's sub) that may call"},
    {"insecure-skip-s2s", CS_PROG_API, OPT_BOOL, "false", NULL, 0, 0, F(insecure_skip_s2s),
     "do not verify ServiceAuthorization (development only: anyone may call)"},
    {"metrics-host", LONG_RUNNING, OPT_STR, "127.0.0.1", NULL, 0, 0, F(metrics_host),
     "address or host name the HTTP endpoint listens on (IPv6 too: ::1)"},
    {"live-seconds", LONG_RUNNING | CS_PROG_API, OPT_INT, "60", NULL, 1, 86400, F(live_seconds),
     "seconds the main loop may go without a turn before /livez answers 503"},
    {"stall-seconds", LONG_RUNNING, OPT_INT, "120", NULL, 0, 86400, F(stall_seconds),
     "seconds a partition with lag may store no offset, its dependency up, before /healthz "
     "reports it stalled (0 = never)"},
    {"log-level", CS_PROG_ALL, OPT_STR, "info", NULL, 0, 0, F(log_level),
     "error, warn, info or debug"},
    {"log-format", CS_PROG_ALL, OPT_STR, "logfmt", NULL, 0, 0, F(log_format),
     "logfmt or json (one object per line)"},
    {"fault", LONG_RUNNING, OPT_STR, "", NULL, 0, 0, F(fault),
     "fault point at which to _exit (tests only)"},
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

static void env_name(const cs_option *o, char *buf, size_t size)
{
    size_t i = 0, j;
    const char *prefix = "CASESTREAM_";

    for (j = 0; prefix[j] && i + 1 < size; j++)
        buf[i++] = prefix[j];
    for (j = 0; o->name[j] && i + 1 < size; j++)
        buf[i++] = o->name[j] == '-' ? '_' : (char)toupper((unsigned char)o->name[j]);
    buf[i] = '\0';
}

static const cs_option *find_option(unsigned program, const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if ((options[i].programs & program) && strlen(options[i].name) == len &&
            strncmp(options[i].name, name, len) == 0)
            return &options[i];
    }
    return NULL;
}

static int set_value(cs_config *cfg, const cs_option *o, const char *value, const char *origin,
                     char *errstr, size_t errstr_size)
{
    void *field = (char *)cfg + o->field;

    switch (o->type) {
    case OPT_STR:
        *(const char **)field = value;
        return CS_OK;
    case OPT_BOOL:
        if (strcmp(value, "1") == 0 || strcmp(value, "true") == 0 || strcmp(value, "yes") == 0)
            *(bool *)field = true;
        else if (strcmp(value, "0") == 0 || strcmp(value, "false") == 0 || strcmp(value, "no") == 0)
            *(bool *)field = false;
        else
            goto bad;
        return CS_OK;
    case OPT_INT:
    case OPT_OPTINT: {
        char *end;
        long v;

        errno = 0;
        v = strtol(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0')
            goto bad;
        /* The "not set" default of an optional value may lie outside the range. */
        if ((v < o->min || v > o->max) && !(o->type == OPT_OPTINT && value == o->def)) {
            snprintf(errstr, errstr_size, "%s: %s %s is out of range %ld..%ld", origin, o->name,
                     value, o->min, o->max);
            return CS_ERR_INVALID;
        }
        *(int *)field = (int)v;
        return CS_OK;
    }
    }
bad:
    snprintf(errstr, errstr_size, "%s: invalid value for %s: \"%s\"", origin, o->name, value);
    return CS_ERR_INVALID;
}

/* librdkafka properties casestream sets itself because its guarantees rest on them. */
static const struct guarded {
    const char *key;
    const char *why;
} guarded[] = {
    {"enable.idempotence", "producers are idempotent so that a retried send is written once"},
    {"acks", "every message is acknowledged by all in-sync replicas (acks=all)"},
    {"request.required.acks", "every message is acknowledged by all in-sync replicas (acks=all)"},
    {"isolation.level", "consumers read committed messages only (read_committed)"},
    {"enable.auto.commit",
     "offsets are committed in the background only after they are stored (true)"},
    {"enable.auto.offset.store",
     "an offset is stored only after its message's work is done (false)"},
    {"partitioner",
     "a case's submissions go to the partition Java producers choose (murmur2_random)"},
};

/* Consumer properties the consumer group protocol leaves to the broker (librdkafka refuses
 * them with group.protocol=consumer). */
static const char *const classic_only[] = {"session.timeout.ms", "heartbeat.interval.ms",
                                           "partition.assignment.strategy", "group.protocol.type"};

/* Checks the -X properties: each one librdkafka knows, with a value it takes, none that
 * casestream sets for its guarantees, and none the group protocol does not take. */
static int validate_kafka_props(const cs_config *cfg, unsigned program, char *errstr,
                                size_t errstr_size)
{
    bool consumer_protocol =
        (program & LONG_RUNNING) && strcmp(cfg->group_protocol, "consumer") == 0;

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc = CS_OK;

    for (size_t i = 0; i < cfg->kafka_props_count && rc == CS_OK; i++) {
        const char *prop = cfg->kafka_props[i], *eq = strchr(prop, '=');
        char key[256], why[256];
        size_t klen = (size_t)(eq - prop);
        const char *name;
        int for_type;

        rc = CS_ERR_INVALID;
        if (klen == 0 || klen >= sizeof(key)) {
            snprintf(errstr, errstr_size, "-X %s: no property name, or one too long", prop);
            break;
        }
        memcpy(key, prop, klen);
        key[klen] = '\0';
        /* "consumer." and "producer." name the clients a property is for. */
        name = cs_kafka_prop_name(key, &for_type);
        if ((program & LONG_RUNNING) && strcmp(name, "group.protocol") == 0) {
            snprintf(errstr, errstr_size, "-X group.protocol: set it with group-protocol");
            break;
        }
        for (size_t k = 0; consumer_protocol && k < sizeof(classic_only) / sizeof(*classic_only);
             k++) {
            if (strcmp(name, classic_only[k]) == 0) {
                snprintf(errstr, errstr_size,
                         "-X %s is not taken with the consumer group protocol: the broker "
                         "decides it (its group.consumer.* settings); set group-protocol to "
                         "classic to set it",
                         key);
                rd_kafka_conf_destroy(conf);
                return CS_ERR_INVALID;
            }
        }
        for (size_t g = 0; g < sizeof(guarded) / sizeof(guarded[0]) && rc; g++) {
            if (strcmp(name, guarded[g].key) == 0) {
                snprintf(errstr, errstr_size,
                         "-X %s is set by casestream and cannot be changed: %s", key,
                         guarded[g].why);
                rd_kafka_conf_destroy(conf);
                return CS_ERR_INVALID;
            }
        }
        if (rd_kafka_conf_set(conf, name, eq + 1, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
            /* The key only: a mistyped key may carry a secret as its value. */
            snprintf(errstr, errstr_size, "-X %s: %s", key, why);
            break;
        }
        rc = CS_OK;
    }
    rd_kafka_conf_destroy(conf);
    return rc;
}

/* Puts "name: " before the reason in errstr; returns CS_ERR_INVALID. */
static int prefix_reason(const char *name, char *errstr, size_t errstr_size)
{
    char *reason = strdup(errstr);

    if (reason)
        snprintf(errstr, errstr_size, "%s: %s", name, reason);
    free(reason);
    return CS_ERR_INVALID;
}

/* True if list names at least one service, and no name is empty. */
static bool allowed_services_ok(const char *list)
{
    size_t n = 0;

    for (const char *p = list;; p++) {
        if (*p == ',' || *p == '\0') {
            if (n == 0)
                return false;
            if (*p == '\0')
                return true;
            n = 0;
        } else if (*p != ' ') {
            n++;
        }
    }
}

static int validate(const cs_config *cfg, unsigned program, char *errstr, size_t errstr_size)
{
    int level, format;
    cs_url url;

    if (!cs_log_level_parse(cfg->log_level, &level)) {
        snprintf(errstr, errstr_size, "invalid log-level \"%s\" (error, warn, info, debug)",
                 cfg->log_level);
        return CS_ERR_INVALID;
    }
    cs_log_threshold = level;
    if (!cs_log_format_parse(cfg->log_format, &format)) {
        snprintf(errstr, errstr_size, "invalid log-format \"%s\" (logfmt, json)", cfg->log_format);
        return CS_ERR_INVALID;
    }
    cs_log_set_format(format);
    if (!(program & (CS_PROG_PRODUCE | CS_PROG_ADMIN)) && cfg->args_count > 0) {
        snprintf(errstr, errstr_size, "unexpected argument \"%s\": this program takes options only",
                 cfg->args[0]);
        return CS_ERR_INVALID;
    }
    if ((program & S2S_USERS) && !cs_jwt_alg_valid(cfg->s2s_alg)) {
        snprintf(errstr, errstr_size, "invalid s2s-alg \"%s\" (HS256, HS512, RS256)", cfg->s2s_alg);
        return CS_ERR_INVALID;
    }
    if ((program & KAFKA_USERS) && cfg->brokers[0] == '\0') {
        snprintf(errstr, errstr_size, "brokers must not be empty");
        return CS_ERR_INVALID;
    }
    if (program & LONG_RUNNING) {
        if (strcmp(cfg->group_protocol, "consumer") != 0 &&
            strcmp(cfg->group_protocol, "classic") != 0) {
            snprintf(errstr, errstr_size, "invalid group-protocol \"%s\" (consumer, classic)",
                     cfg->group_protocol);
            return CS_ERR_INVALID;
        }
        /* KIP-848 is generally available from librdkafka 2.12.0 (a preview before). Not a
         * reason to refuse --help or --version. */
        if (strcmp(cfg->group_protocol, "consumer") == 0 && rd_kafka_version() < 0x020c0000 &&
            !cfg->help && !cfg->version) {
            snprintf(errstr, errstr_size,
                     "the consumer group protocol needs librdkafka 2.12 or later, this is %s: "
                     "set group-protocol to classic",
                     rd_kafka_version_str());
            return CS_ERR_INVALID;
        }
    }
    if ((program & KAFKA_USERS) && validate_kafka_props(cfg, program, errstr, errstr_size))
        return CS_ERR_INVALID;
    if (program & CS_PROG_WORKER) {
        /* The URL, and for rediss:// the TLS files loaded as the worker will load them. */
        cs_redis_tls tls = cs_redis_tls_of(cfg);
        cs_redis *r = cs_redis_new(cfg->redis, &tls, errstr, errstr_size);

        if (!r)
            return prefix_reason("redis", errstr, errstr_size);
        cs_redis_free(r);
    }
    if (cfg->redis_key_file[0] && !cfg->redis_cert_file[0]) {
        snprintf(errstr, errstr_size, "redis-key-file is set without redis-cert-file");
        return CS_ERR_INVALID;
    }
    if (program & (CS_PROG_INDEXER | CS_PROG_ADMIN)) {
        if (cs_url_parse_http(cfg->es, &url, errstr, errstr_size))
            return prefix_reason("es", errstr, errstr_size);
        if (url.user[0] && cfg->es_api_key[0]) {
            snprintf(errstr, errstr_size,
                     "es has a user in its URL and es-api-key is set: give one of the two");
            return CS_ERR_INVALID;
        }
        if (cfg->es_key_file[0] && !cfg->es_cert_file[0]) {
            snprintf(errstr, errstr_size, "es-key-file is set without es-cert-file");
            return CS_ERR_INVALID;
        }
        {
            const struct {
                const char *name, *path;
            } files[] = {{"es-ca-file", cfg->es_ca_file},
                         {"es-cert-file", cfg->es_cert_file},
                         {"es-key-file", cfg->es_key_file}};

            for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
                if (files[i].path[0] && access(files[i].path, R_OK) != 0) {
                    snprintf(errstr, errstr_size, "%s %s cannot be read: %s", files[i].name,
                             files[i].path, strerror(errno));
                    return CS_ERR_INVALID;
                }
            }
        }
    }
    if ((program & LONG_RUNNING) && cfg->metrics_port > 0) {
        cs_metrics_addr addr;

        if (cs_metrics_resolve(cfg->metrics_host, cfg->metrics_port, &addr, errstr, errstr_size))
            return prefix_reason("metrics-host", errstr, errstr_size);
    }
    if (program & CS_PROG_API) {
        cs_metrics_addr addr;

        if (cs_metrics_resolve(cfg->api_host, cfg->api_port, &addr, errstr, errstr_size))
            return prefix_reason("api-host", errstr, errstr_size);
        if (!cfg->insecure_skip_s2s && !allowed_services_ok(cfg->allowed_services)) {
            snprintf(errstr, errstr_size,
                     "allowed-services must name at least one service (names separated by commas)");
            return CS_ERR_INVALID;
        }
    }
    const char *topics[] = {cfg->topic_events, cfg->topic_results, cfg->topic_changes,
                            cfg->topic_dlq};
    for (size_t i = 0; i < 4; i++) {
        if (topics[i][0] == '\0') {
            snprintf(errstr, errstr_size, "topic names must not be empty");
            return CS_ERR_INVALID;
        }
    }
    return CS_OK;
}

/* Sets the log format given anywhere (a flag or the variable) before anything is read, so
 * that a configuration error is logged in it too. */
static void early_log_format(int argc, char **argv)
{
    const char *v = getenv("CASESTREAM_LOG_FORMAT");
    int format;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strncmp(argv[i], "--log-format=", 13) == 0)
            v = argv[i] + 13;
        else if (strcmp(argv[i], "--log-format") == 0 && i + 1 < argc)
            v = argv[i + 1];
    }
    if (v && cs_log_format_parse(v, &format))
        cs_log_set_format(format);
}

/* The --config file: given by --config FILE or --config=FILE (the last one wins), else by
 * CASESTREAM_CONFIG; NULL when there is none. */
static const char *config_path(int argc, char **argv)
{
    const char *path = getenv("CASESTREAM_CONFIG");

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            path = argv[i] + 9;
    }
    return path && path[0] ? path : NULL;
}

/* Reads the --config file: lines CASESTREAM_NAME=value (systemd's EnvironmentFile form: blank
 * lines and # comments skipped, an optional "export ", the value optionally in matching single
 * or double quotes, taken literally). Keys of options of other programs are skipped, so one
 * file serves every program; an unknown key is an error naming the file and line. The values
 * point into cfg->config_text. */
static int load_file(cs_config *cfg, unsigned program, const char *path, char *errstr,
                     size_t errstr_size)
{
    FILE *f = fopen(path, "r");
    char origin[600], envname[128];
    size_t len, lineno = 0;
    char *line, *next;
    int rc;

    if (!f) {
        snprintf(errstr, errstr_size, "config file %s: %s", path, strerror(errno));
        return CS_ERR_INVALID;
    }
    cfg->config_file = path;
    cfg->config_text = malloc(1 << 20);
    len = cfg->config_text ? fread(cfg->config_text, 1, (1 << 20) - 1, f) : 0;
    rc = ferror(f) ? errno : 0;
    if (cfg->config_text && !rc && fgetc(f) != EOF) {
        fclose(f);
        snprintf(errstr, errstr_size, "config file %s: larger than 1 MiB", path);
        return CS_ERR_INVALID;
    }
    fclose(f);
    if (!cfg->config_text || rc) {
        snprintf(errstr, errstr_size, "config file %s: %s", path,
                 rc ? strerror(rc) : "out of memory");
        return CS_ERR_INVALID;
    }
    cfg->config_text[len] = '\0';
    for (line = cfg->config_text; line; line = next) {
        char *eq, *value, *end;
        const cs_option *o = NULL;
        bool known = false;

        lineno++;
        if ((next = strchr(line, '\n')) != NULL)
            *next++ = '\0';
        while (*line == ' ' || *line == '\t')
            line++;
        end = line + strlen(line);
        while (end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
            *--end = '\0';
        if (*line == '\0' || *line == '#')
            continue;
        if (strncmp(line, "export ", 7) == 0)
            line += 7;
        snprintf(origin, sizeof(origin), "%s:%zu", path, lineno);
        if (!(eq = strchr(line, '='))) {
            snprintf(errstr, errstr_size, "%s: expected a setting CASESTREAM_<NAME>=<value>",
                     origin);
            return CS_ERR_INVALID;
        }
        *eq = '\0';
        value = eq + 1;
        if (end - value >= 2 && (value[0] == '"' || value[0] == '\'') && end[-1] == value[0]) {
            value++;
            *--end = '\0';
        }
        for (size_t i = 0; i < N_OPTIONS && !o; i++) {
            env_name(&options[i], envname, sizeof(envname));
            if (strcmp(envname, line) == 0) {
                known = true;
                if (options[i].programs & program)
                    o = &options[i];
            }
        }
        if (!known) {
            snprintf(errstr, errstr_size, "%s: unknown setting %.*s", origin, 64, line);
            return CS_ERR_INVALID;
        }
        if (o && (rc = set_value(cfg, o, value, origin, errstr, errstr_size)))
            return rc;
    }
    return CS_OK;
}

static int load(cs_config *cfg, unsigned program, int argc, char **argv, char *errstr,
                size_t errstr_size);

int cs_config_load(cs_config *cfg, unsigned program, int argc, char **argv, char *errstr,
                   size_t errstr_size)
{
    int rc;

    early_log_format(argc, argv);
    rc = load(cfg, program, argc, argv, errstr, errstr_size);
    if (rc && errstr_size > 0) {
        /* The reason quotes what was given: never a credential. */
        char *raw = strdup(errstr);

        if (raw)
            cs_redact(errstr, errstr_size, raw);
        else
            snprintf(errstr, errstr_size, "invalid configuration (out of memory for the reason)");
        free(raw);
    }
    return rc;
}

int cs_config_main(cs_config *cfg, unsigned program, int argc, char **argv, const char *synopsis,
                   const char *description)
{
    char errstr[1024];
    const char *name = argc > 0 && argv[0] ? strrchr(argv[0], '/') : NULL;

    name = name ? name + 1 : argc > 0 && argv[0] ? argv[0] : "casestream";
    if (cs_config_load(cfg, program, argc, argv, errstr, sizeof(errstr))) {
        cs_log_error("invalid configuration: %s", errstr);
        return CS_EXIT_CONFIG;
    }
    if (cfg->help) {
        cs_config_usage(stdout, program, synopsis, description);
        return 0;
    }
    if (cfg->version) {
        printf("%s %s (librdkafka %s)\n", name, cs_version, rd_kafka_version_str());
        return 0;
    }
    if (cfg->man) {
        cs_config_man(stdout, program, name, synopsis, description);
        return 0;
    }
    return -1;
}

static int load(cs_config *cfg, unsigned program, int argc, char **argv, char *errstr,
                size_t errstr_size)
{
    char envname[128];
    const char *path;
    int rc;

    memset(cfg, 0, sizeof(*cfg));
    cfg->kafka_props = calloc((size_t)argc + 1, sizeof(*cfg->kafka_props));
    cfg->args = calloc((size_t)argc + 1, sizeof(*cfg->args));
    if (!cfg->kafka_props || !cfg->args) {
        snprintf(errstr, errstr_size, "out of memory");
        return CS_ERR;
    }
    /* Defaults first, for every option (other programs' too, so no field is NULL). */
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (!(options[i].programs & program) &&
            find_option(program, options[i].name, strlen(options[i].name)))
            continue;
        if ((rc = set_value(cfg, &options[i], options[i].def, "default", errstr, errstr_size)))
            return rc;
    }
    if ((path = config_path(argc, argv)) != NULL &&
        (rc = load_file(cfg, program, path, errstr, errstr_size)))
        return rc;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const char *v;

        if (!(options[i].programs & program))
            continue;
        env_name(&options[i], envname, sizeof(envname));
        if ((v = getenv(envname)) != NULL &&
            (rc = set_value(cfg, &options[i], v, envname, errstr, errstr_size)))
            return rc;
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const cs_option *o;
        const char *eq, *value;
        size_t len;

        if (strcmp(arg, "--") == 0) {
            while (++i < argc)
                cfg->args[cfg->args_count++] = argv[i];
            break;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            cfg->help = true;
            continue;
        }
        if (strcmp(arg, "--version") == 0) {
            cfg->version = true;
            continue;
        }
        if (strcmp(arg, "--man") == 0) {
            cfg->man = true;
            continue;
        }
        if (strcmp(arg, "--config") == 0 || strncmp(arg, "--config=", 9) == 0) {
            if (arg[8] == '\0' && ++i >= argc) {
                snprintf(errstr, errstr_size, "option --config needs a value");
                return CS_ERR_INVALID;
            }
            continue; /* read before the environment (config_path) */
        }
        if (strncmp(arg, "-X", 2) == 0) {
            value = arg[2] ? arg + 2 : (i + 1 < argc ? argv[++i] : NULL);
            if (!value || !strchr(value, '=')) {
                snprintf(errstr, errstr_size, "-X needs <key>=<value>");
                return CS_ERR_INVALID;
            }
            cfg->kafka_props[cfg->kafka_props_count++] = value;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            cfg->args[cfg->args_count++] = argv[i]; /* "-" (stdin) is positional too */
            continue;
        }
        arg += 2;
        eq = strchr(arg, '=');
        len = eq ? (size_t)(eq - arg) : strlen(arg);
        if (!(o = find_option(program, arg, len))) {
            snprintf(errstr, errstr_size, "unknown option --%.*s (see --help)", (int)len, arg);
            return CS_ERR_INVALID;
        }
        if (eq)
            value = eq + 1;
        else if (o->type == OPT_BOOL)
            value = "true";
        else if (o->type == OPT_OPTINT)
            value = o->bare;
        else if (i + 1 < argc)
            value = argv[++i];
        else {
            snprintf(errstr, errstr_size, "option --%s needs a value", o->name);
            return CS_ERR_INVALID;
        }
        if ((rc = set_value(cfg, o, value, "command line", errstr, errstr_size)))
            return rc;
    }
    return validate(cfg, program, errstr, errstr_size);
}

void cs_config_free(cs_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->kafka_props);
    free(cfg->args);
    free(cfg->config_text);
    cfg->kafka_props = NULL;
    cfg->args = NULL;
    cfg->config_text = NULL;
}

void cs_config_usage(FILE *out, unsigned program, const char *synopsis, const char *description)
{
    char envname[128], flag[96];

    fprintf(out, "usage: %s\n\n%s\n\noptions (flag, environment variable, default):\n", synopsis,
            description);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const cs_option *o = &options[i];

        if (!(o->programs & program))
            continue;
        env_name(o, envname, sizeof(envname));
        if (o->type == OPT_BOOL)
            snprintf(flag, sizeof(flag), "--%s", o->name);
        else if (o->type == OPT_OPTINT)
            snprintf(flag, sizeof(flag), "--%s[=N]", o->name);
        else
            snprintf(flag, sizeof(flag), "--%s=VALUE", o->name);
        fprintf(out, "  %-26s %s\n  %-26s   %s, default \"%s\"\n", flag, o->help, "", envname,
                o->def);
    }
    if (program & KAFKA_USERS)
        fprintf(out, "  %-26s %s\n", "-X key=value",
                "librdkafka property (repeatable; not enable.idempotence, acks, isolation.level,\n"
                "                               enable.auto.commit, enable.auto.offset.store, "
                "partitioner);\n"
                "                               consumer.<key> or producer.<key>: that kind of "
                "client only");
    fprintf(out, "  %-26s %s\n  %-26s %s\n", "--config=FILE",
            "read CASESTREAM_*=value lines (the same keys as the environment;", "",
            "  the environment and flags win), also from CASESTREAM_CONFIG");
    fprintf(out,
            "  %-26s %s\n  %-26s %s\n  %-26s %s\n\nInvalid configuration exits with status "
            "78.\n",
            "-h, --help", "show this help", "--version", "print the version", "--man",
            "print this help as a manual page (troff)");
}

/* Writes text for troff: backslashes doubled as \e, hyphens as \-, and a line that would start
 * with a control character ('.' or '\'') guarded with \&. */
static void roff(FILE *out, const char *text)
{
    bool line_start = true;

    for (const char *p = text; *p; p++) {
        if (line_start && (*p == '.' || *p == '\''))
            fputs("\\&", out);
        line_start = *p == '\n';
        if (*p == '\\')
            fputs("\\e", out);
        else if (*p == '-')
            fputs("\\-", out);
        else
            fputc(*p, out);
    }
}

void cs_config_man(FILE *out, unsigned program, const char *name, const char *synopsis,
                   const char *description)
{
    const char *nl = strchr(description, '\n');
    char envname[128], upper[64];
    size_t i;

    for (i = 0; name[i] && i + 1 < sizeof(upper); i++)
        upper[i] = (char)toupper((unsigned char)name[i]);
    upper[i] = '\0';
    fprintf(out, ".TH %s 1 \"\" \"casestream %s\" \"casestream manual\"\n.SH NAME\n", upper,
            cs_version);
    roff(out, name);
    fputs(" \\- ", out);
    fprintf(out, "%.*s\n", nl ? (int)(nl - description) : (int)strlen(description), description);
    fputs(".SH SYNOPSIS\n.nf\n", out);
    roff(out, synopsis);
    fputs("\n.fi\n.SH DESCRIPTION\n.nf\n", out);
    roff(out, description);
    fputs("\n.fi\n.SH OPTIONS\nEach option is also read from its environment variable; a flag "
          "wins over the variable.\n",
          out);
    for (i = 0; i < N_OPTIONS; i++) {
        const cs_option *o = &options[i];

        if (!(o->programs & program))
            continue;
        env_name(o, envname, sizeof(envname));
        fputs(".TP\n.B ", out);
        roff(out, "--");
        roff(out, o->name);
        if (o->type == OPT_INT || o->type == OPT_STR)
            fputs("=\\fIVALUE\\fR", out);
        else if (o->type == OPT_OPTINT)
            fputs("[=\\fIN\\fR]", out);
        fputc('\n', out);
        roff(out, o->help);
        fputs("\n.br\n", out);
        roff(out, envname);
        fputs(", default \"", out);
        roff(out, o->def);
        fputs("\".\n", out);
    }
    if (program & (CS_PROG_PRODUCE | CS_PROG_WORKER | CS_PROG_INDEXER | CS_PROG_ADMIN))
        fputs(".TP\n.B \\-X \\fIkey=value\\fR\nA librdkafka property (repeatable); "
              "consumer.\\fIkey\\fR or producer.\\fIkey\\fR sets it for that kind of client only. "
              "enable.idempotence, acks, isolation.level, enable.auto.commit, "
              "enable.auto.offset.store and partitioner are refused: casestream's guarantees "
              "rest on them.\n",
              out);
    fputs(".TP\n.B \\-\\-config=\\fIFILE\\fR\nRead settings from FILE first: lines "
          "CASESTREAM_\\fINAME\\fR=value, the same keys as the environment (blank lines and # "
          "comments skipped, an optional \\(lqexport\\(rq, the value optionally quoted), as "
          "systemd's EnvironmentFile reads them. Settings of other programs are skipped, so one "
          "file serves every program. The environment and flags win over the file. Also taken "
          "from CASESTREAM_CONFIG.\n",
          out);
    fputs(".TP\n.B \\-h, \\-\\-help\nPrint the usage.\n.TP\n.B \\-\\-version\nPrint the "
          "version.\n.TP\n.B \\-\\-man\nPrint this manual page.\n"
          ".SH EXIT STATUS\n0 on success, 78 (EX_CONFIG) for invalid configuration, 1 for any "
          "other failure.\n.SH SEE ALSO\n",
          out);
    fputs("casestream(1), casestream\\-worker(1), casestream\\-indexer(1), "
          "casestream\\-produce(1); the README and docs/DESIGN.md of casestream.\n",
          out);
}
