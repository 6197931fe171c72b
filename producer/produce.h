/* casestream-produce: NDJSON submissions from files or stdin onto the events topic. */
#ifndef CS_PRODUCE_H
#define CS_PRODUCE_H

#include "config.h"

#include <stdint.h>
#include <stdio.h>

/* What --help prints before the options table. */
extern const char cs_produce_synopsis[];
extern const char cs_produce_description[];

/* Exit statuses besides 0 and CS_EXIT_CONFIG. */
#define CS_PRODUCE_EXIT_FAILED  1 /* a line was invalid or not delivered, or input/kafka failed */
#define CS_PRODUCE_EXIT_TIMEOUT 2 /* --wait: an outcome did not come in time */

typedef struct cs_produce_stats {
    uint64_t read;      /* non-blank lines read */
    uint64_t invalid;   /* lines that failed validation (not sent) */
    uint64_t sent;      /* queued for sending */
    uint64_t delivered; /* acknowledged by the brokers */
    uint64_t failed;    /* not delivered */
    uint64_t outcomes;  /* --wait: submissions with an outcome */
    uint64_t timeouts;  /* --wait: submissions without one */
    double seconds;     /* from the first line read to the last delivery */
} cs_produce_stats;

/* Runs the program with cfg (cfg->args: input files, "-" or none for stdin).
 * Outcome lines (--wait) go to out; invalid lines, progress and summaries
 * to err. Fills *stats if not NULL. Returns the exit status: 0,
 * CS_PRODUCE_EXIT_FAILED, CS_PRODUCE_EXIT_TIMEOUT or CS_EXIT_CONFIG. Stops
 * reading when cs_running is cleared. */
int cs_produce_run(const cs_config *cfg, FILE *out, FILE *err, cs_produce_stats *stats);

#endif
