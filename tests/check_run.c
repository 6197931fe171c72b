/* lib/run.c: the service manager notification (sd_notify protocol). */
#include "err.h"
#include "run.h"
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* A datagram socket bound at a fresh path, as systemd's notification socket is. */
static int notify_socket(char *path, size_t size)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

    ck_assert_int_ge(fd, 0);
    snprintf(path, size, "/tmp/cs-notify-%d-%ld.sock", (int)getpid(), random());
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

START_TEST(test_run_notify_sends_the_state_to_notify_socket)
{
    char path[108], got[64];
    int fd = notify_socket(path, sizeof(path));
    ssize_t n;

    ck_assert_int_eq(setenv("NOTIFY_SOCKET", path, 1), 0);
    ck_assert_int_eq(cs_notify("READY=1"), CS_OK);
    n = recv(fd, got, sizeof(got) - 1, MSG_DONTWAIT);
    ck_assert_int_eq(n, 7);
    got[n] = '\0';
    ck_assert_str_eq(got, "READY=1");
    close(fd);
    unlink(path);
    unsetenv("NOTIFY_SOCKET");
}
END_TEST

START_TEST(test_run_notify_without_a_socket_does_nothing_and_a_bad_one_fails)
{
    unsetenv("NOTIFY_SOCKET");
    ck_assert_int_eq(cs_notify("READY=1"), CS_OK);
    ck_assert_int_eq(setenv("NOTIFY_SOCKET", "relative/path", 1), 0);
    ck_assert_int_eq(cs_notify("READY=1"), CS_ERR);
    ck_assert_int_eq(setenv("NOTIFY_SOCKET", "/nonexistent/cs-notify.sock", 1), 0);
    ck_assert_int_eq(cs_notify("READY=1"), CS_ERR);
    unsetenv("NOTIFY_SOCKET");
}
END_TEST

Suite *run_suite(void)
{
    Suite *s = suite_create("run");
    TCase *tc = tcase_create("notify");

    tcase_add_test(tc, test_run_notify_sends_the_state_to_notify_socket);
    tcase_add_test(tc, test_run_notify_without_a_socket_does_nothing_and_a_bad_one_fails);
    suite_add_tcase(s, tc);
    return s;
}
