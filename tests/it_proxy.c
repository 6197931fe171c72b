/* A loopback TCP proxy with a switch: tests cut a program off from PostgreSQL or Elasticsearch.
 *
 * One thread accepts; each forwarded connection has a thread of its own that copies bytes both
 * ways with blocking I/O. A connection's descriptors are closed only by whoever joins its
 * thread, so a drop never shuts down a descriptor number that was reused. */
#include "it_proxy.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct conn {
    int client, upstream;
    const atomic_bool *held; /* the proxy's: bytes wait while it is set */
    pthread_t thread;
    atomic_bool done;
    struct conn *next;
} conn;

struct it_proxy {
    int listen_fd;
    int wake[2]; /* written to stop the accepting thread */
    int port;
    struct sockaddr_in target;
    pthread_t thread;
    pthread_mutex_t mu;
    bool dropped; /* under mu */
    conn *conns;  /* under mu */
    atomic_bool held;
};

/* Writes all of buf; false when the peer is gone. */
static bool write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

static void *conn_main(void *arg)
{
    conn *c = arg;
    char buf[65536];

    for (;;) {
        struct pollfd fds[2] = {{c->client, POLLIN, 0}, {c->upstream, POLLIN, 0}};
        int from = -1, to;
        ssize_t n;

        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (fds[0].revents)
            from = 0;
        else if (fds[1].revents)
            from = 1;
        else
            continue;
        /* Held: what came stays unread, the connection open. */
        while (atomic_load(c->held))
            usleep(5000);
        to = from == 0 ? c->upstream : c->client;
        n = recv(from == 0 ? c->client : c->upstream, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || !write_all(to, buf, (size_t)n))
            break;
    }
    /* Either side gone: end both, so the other side notices at once. */
    shutdown(c->client, SHUT_RDWR);
    shutdown(c->upstream, SHUT_RDWR);
    atomic_store(&c->done, true);
    return NULL;
}

/* Closes a socket with a reset instead of an orderly end. */
static void reset_close(int fd)
{
    struct linger lg = {1, 0};

    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

static void conn_free(conn *c)
{
    pthread_join(c->thread, NULL);
    close(c->client);
    close(c->upstream);
    free(c);
}

/* Joins and frees the connections whose threads have finished. */
static void reap(it_proxy *p)
{
    conn *done = NULL;

    pthread_mutex_lock(&p->mu);
    for (conn **pp = &p->conns; *pp;) {
        conn *c = *pp;

        if (atomic_load(&c->done)) {
            *pp = c->next;
            c->next = done;
            done = c;
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&p->mu);
    while (done) {
        conn *next = done->next;

        conn_free(done);
        done = next;
    }
}

static void accept_one(it_proxy *p)
{
    int client = accept(p->listen_fd, NULL, NULL), upstream;
    conn *c;

    if (client < 0)
        return;
    pthread_mutex_lock(&p->mu);
    if (p->dropped) {
        pthread_mutex_unlock(&p->mu);
        reset_close(client);
        return;
    }
    pthread_mutex_unlock(&p->mu);
    upstream = socket(AF_INET, SOCK_STREAM, 0);
    if (upstream < 0 ||
        connect(upstream, (const struct sockaddr *)&p->target, sizeof(p->target)) != 0) {
        if (upstream >= 0)
            close(upstream);
        reset_close(client);
        return;
    }
    c = calloc(1, sizeof(*c));
    c->client = client;
    c->upstream = upstream;
    c->held = &p->held;
    pthread_mutex_lock(&p->mu);
    /* A drop between the check above and now must not miss this one. */
    if (p->dropped || pthread_create(&c->thread, NULL, conn_main, c) != 0) {
        pthread_mutex_unlock(&p->mu);
        reset_close(client);
        close(upstream);
        free(c);
        return;
    }
    c->next = p->conns;
    p->conns = c;
    pthread_mutex_unlock(&p->mu);
}

static void *accept_main(void *arg)
{
    it_proxy *p = arg;

    for (;;) {
        struct pollfd fds[2] = {{p->listen_fd, POLLIN, 0}, {p->wake[0], POLLIN, 0}};

        if (poll(fds, 2, 200) < 0 && errno != EINTR)
            break;
        if (fds[1].revents)
            break;
        if (fds[0].revents & POLLIN)
            accept_one(p);
        reap(p);
    }
    return NULL;
}

it_proxy *it_proxy_start(const char *target_host, int target_port)
{
    it_proxy *p = calloc(1, sizeof(*p));
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int one = 1;

    ck_assert_ptr_nonnull(p);
    pthread_mutex_init(&p->mu, NULL);
    p->target.sin_family = AF_INET;
    p->target.sin_port = htons((uint16_t)target_port);
    ck_assert_msg(inet_pton(AF_INET, target_host, &p->target.sin_addr) == 1,
                  "proxy target %s is not an IPv4 address", target_host);
    p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(p->listen_fd, 0);
    setsockopt(p->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(bind(p->listen_fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
                      listen(p->listen_fd, 64) == 0 &&
                      getsockname(p->listen_fd, (struct sockaddr *)&a, &len) == 0,
                  "proxy cannot listen: %s", strerror(errno));
    p->port = ntohs(a.sin_port);
    ck_assert_int_eq(pipe(p->wake), 0);
    ck_assert_int_eq(pthread_create(&p->thread, NULL, accept_main, p), 0);
    return p;
}

int it_proxy_port(const it_proxy *p)
{
    return p->port;
}

void it_proxy_hold(it_proxy *p, bool hold)
{
    atomic_store(&p->held, hold);
}

void it_proxy_drop(it_proxy *p)
{
    conn *all;

    atomic_store(&p->held, false); /* its threads end only when they read */
    pthread_mutex_lock(&p->mu);
    p->dropped = true;
    all = p->conns;
    p->conns = NULL;
    for (conn *c = all; c; c = c->next) {
        shutdown(c->client, SHUT_RDWR);
        shutdown(c->upstream, SHUT_RDWR);
    }
    pthread_mutex_unlock(&p->mu);
    while (all) {
        conn *next = all->next;

        conn_free(all);
        all = next;
    }
}

void it_proxy_restore(it_proxy *p)
{
    pthread_mutex_lock(&p->mu);
    p->dropped = false;
    pthread_mutex_unlock(&p->mu);
}

void it_proxy_free(it_proxy *p)
{
    if (!p)
        return;
    if (write(p->wake[1], "x", 1) != 1)
        fprintf(stderr, "it_proxy: could not wake the accepting thread\n");
    pthread_join(p->thread, NULL);
    it_proxy_drop(p);
    close(p->listen_fd);
    close(p->wake[0]);
    close(p->wake[1]);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
