/* Signal handling and small time helpers for the long-running programs. */
#include "run.h"

#include "err.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t cs_running = 1;
static atomic_llong last_beat_ms;

static void on_stop_signal(int sig)
{
    (void)sig;
    cs_running = 0;
}

int cs_signals_install(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
        return CS_ERR;
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) != 0)
        return CS_ERR;
    return CS_OK;
}

void cs_sleep_ms(long ms)
{
    /* Sleep in slices so a stop signal is noticed promptly. */
    while (ms > 0 && cs_running) {
        long slice = ms < 50 ? ms : 50;
        struct timespec ts = {slice / 1000, (slice % 1000) * 1000000L};

        while (nanosleep(&ts, &ts) != 0 && errno == EINTR && cs_running)
            ;
        ms -= slice;
    }
}

long long cs_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

long long cs_now_ms(void)
{
    return cs_now_us() / 1000;
}

long long cs_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

void cs_beat(void)
{
    atomic_store(&last_beat_ms, cs_now_ms());
}

long long cs_beat_age_ms(void)
{
    long long last = atomic_load(&last_beat_ms);

    return last ? cs_now_ms() - last : 0;
}

int cs_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    size_t len;
    socklen_t salen;
    ssize_t sent;
    int fd;

    if (!path || !path[0])
        return CS_OK;
    len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path))
        return CS_ERR;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* an abstract socket */
    salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));
    if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
        return CS_ERR;
    sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
    close(fd);
    return sent == (ssize_t)strlen(state) ? CS_OK : CS_ERR;
}
