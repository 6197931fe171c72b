/* Process run flag and signal handling shared by the long-running programs. */
#ifndef CS_RUN_H
#define CS_RUN_H

#include <signal.h>

/* 1 while the program should keep running; SIGTERM and SIGINT set it to 0. */
extern volatile sig_atomic_t cs_running;

/* Installs SIGTERM/SIGINT handlers that clear cs_running and ignores SIGPIPE.
 * Returns 0 or CS_ERR. */
int cs_signals_install(void);

/* Sleeps up to ms milliseconds, waking early once cs_running is cleared. */
void cs_sleep_ms(long ms);

/* The main loop's heartbeat: cs_beat() at every turn (any thread may call it; the consumer
 * poll does); cs_beat_age_ms() is how long ago the last one was. */
void cs_beat(void);
long long cs_beat_age_ms(void);

/* Tells the service manager the program's state (sd_notify(3) protocol: "READY=1",
 * "STOPPING=1") through the datagram socket named by NOTIFY_SOCKET, when it is set (systemd's
 * Type=notify units); otherwise does nothing. Returns 0, or CS_ERR when the message could not be
 * sent. */
int cs_notify(const char *state);

/* Monotonic clock in milliseconds and microseconds. */
long long cs_now_ms(void);
long long cs_now_us(void);

/* The wall clock in milliseconds since the epoch, as Kafka's message timestamps. */
long long cs_wall_ms(void);

#endif
