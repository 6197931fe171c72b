/* A TCP proxy on loopback for the integration tests: cut a program off from a service and back. */
#ifndef CS_IT_PROXY_H
#define CS_IT_PROXY_H

#include <stdbool.h>

typedef struct it_proxy it_proxy;

/* Starts a thread listening on an ephemeral port of 127.0.0.1 that forwards
 * every connection to target_host:target_port (one thread per connection).
 * Fails the test if it cannot listen. Free with it_proxy_free. */
it_proxy *it_proxy_start(const char *target_host, int target_port);

/* The port the proxy listens on. */
int it_proxy_port(const it_proxy *p);

/* Closes every forwarded connection (both ends) and, until it_proxy_restore,
 * answers every new connection with a reset: the service looks down to the
 * programs behind the proxy and up to everyone else. Returns once every
 * connection is closed. */
void it_proxy_drop(it_proxy *p);

/* Stops forwarding bytes (hold true) on every connection, keeping each open, until called
 * with false: the service looks stalled, as behind a lock or a full disk. */
void it_proxy_hold(it_proxy *p, bool hold);

/* Forwards new connections again. */
void it_proxy_restore(it_proxy *p);

/* Stops the thread, closes every connection, frees. Accepts NULL. */
void it_proxy_free(it_proxy *p);

#endif
