/* The outbox relay: publishes committed changes from ccd.change_outbox to case-changes. */
#ifndef CS_OUTBOX_H
#define CS_OUTBOX_H

#include "config.h"

#include <stdbool.h>

typedef struct cs_relay cs_relay;

/* Starts the relay thread. Only one relay in the whole deployment publishes
 * at a time (a PostgreSQL advisory lock), so a case's changes reach the
 * topic in revision order. Returns NULL with the reason in errstr. */
cs_relay *cs_relay_start(const cs_config *cfg, char *errstr, size_t errstr_size);

/* Wakes the relay: there may be new rows. */
void cs_relay_kick(cs_relay *r);

/* Publishes what is committed, stops the thread and frees. Accepts NULL. */
void cs_relay_stop(cs_relay *r);

#endif
