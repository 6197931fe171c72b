/* casestream-api: the HTTP server CCD data store calls (/ccd-persistence), on libmicrohttpd. */
#ifndef CS_API_SERVER_H
#define CS_API_SERVER_H

#include "config.h"

#include <stddef.h>

typedef struct cs_api cs_api;

/* Starts the server from cfg (borrowed for the server's life): the S2S key, the producer, the
 * results consumer thread, the health probes and the listening socket. Returns the server, or
 * NULL with the reason in errstr; *config_error is set when the reason is the configuration
 * (the program exits 78). */
cs_api *cs_api_new(const cs_config *cfg, bool *config_error, char *errstr, size_t errstr_size);

/* Serves until cs_running is cleared (SIGTERM, SIGINT), then stops accepting connections,
 * finishes every request in flight (those waiting for an outcome included, each within its
 * --submit-timeout) and returns 0. */
int cs_api_run(cs_api *a);

/* Stops everything and frees. Accepts NULL. */
void cs_api_free(cs_api *a);

#endif
