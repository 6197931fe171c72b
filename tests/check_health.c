/* Unit tests of the health rules: readiness from probed dependencies, liveness, HTTP routes. */
#include "health.h"
#include "metrics.h"
#include "runner.h"

#include <string.h>

START_TEST(test_health_ready_needs_every_dependency_up_and_recent)
{
    cs_dep deps[3] = {{"kafka", CS_DEP_UP, 9000, ""},
                      {"postgresql", CS_DEP_UP, 9500, ""},
                      {"redis", CS_DEP_UP, 9900, ""}};
    char text[512];

    ck_assert(cs_health_decide(deps, 3, 10000, 4000, true, "stalled=0", text, sizeof(text)));
    ck_assert_str_eq(text, "ok kafka=up postgresql=up redis=up stalled=0");
    /* A probe that hangs: its last success grows old. */
    ck_assert(!cs_health_decide(deps, 3, 13500, 4000, true, "", text, sizeof(text)));
    ck_assert_str_eq(text, "unavailable kafka=down postgresql=up redis=up "
                           "kafka_error=\"no answer for 4500 ms\"");
    deps[0].ok_ms = 13000;
    deps[2].state = CS_DEP_DOWN;
    strcpy(deps[2].detail, "connection refused");
    ck_assert(!cs_health_decide(deps, 3, 13500, 4000, true, "", text, sizeof(text)));
    ck_assert_ptr_nonnull(strstr(text, "redis=down"));
    ck_assert_ptr_nonnull(strstr(text, "redis_error=\"connection refused\""));
    deps[2].state = CS_DEP_UNKNOWN;
    ck_assert(!cs_health_decide(deps, 3, 13500, 4000, true, "", text, sizeof(text)));
    ck_assert_ptr_nonnull(strstr(text, "redis=unknown"));
    /* The program's own condition counts too. */
    deps[2].state = CS_DEP_UP;
    deps[2].ok_ms = 13000;
    ck_assert(!cs_health_decide(deps, 3, 13500, 4000, false, "stalled=1", text, sizeof(text)));
    ck_assert_str_eq(text, "unavailable kafka=up postgresql=up redis=up stalled=1");
}
END_TEST

START_TEST(test_health_live_while_the_loop_turns)
{
    char text[64];

    ck_assert(cs_health_decide_live(0, 60000, text, sizeof(text)));
    ck_assert(cs_health_decide_live(60000, 60000, text, sizeof(text)));
    ck_assert(!cs_health_decide_live(61000, 60000, text, sizeof(text)));
    ck_assert_str_eq(text, "stuck loop_seconds_ago=61");
}
END_TEST

START_TEST(test_http_routes_are_exact_paths_get_and_head)
{
    ck_assert_int_eq(cs_http_route_of("GET", "/livez"), CS_ROUTE_LIVEZ);
    ck_assert_int_eq(cs_http_route_of("HEAD", "/readyz"), CS_ROUTE_READYZ);
    ck_assert_int_eq(cs_http_route_of("GET", "/healthz"), CS_ROUTE_READYZ);
    ck_assert_int_eq(cs_http_route_of("HEAD", "/metrics"), CS_ROUTE_METRICS);
    ck_assert_int_eq(cs_http_route_of("GET", "/metrics?x=1"), CS_ROUTE_METRICS);
    ck_assert_int_eq(cs_http_route_of("GET", "/metricsXYZ"), CS_ROUTE_NOT_FOUND);
    ck_assert_int_eq(cs_http_route_of("GET", "/metrics/"), CS_ROUTE_NOT_FOUND);
    ck_assert_int_eq(cs_http_route_of("GET", "/"), CS_ROUTE_NOT_FOUND);
    ck_assert_int_eq(cs_http_route_of("POST", "/metrics"), CS_ROUTE_BAD_METHOD);
    ck_assert_int_eq(cs_http_route_of("DELETE", "/nope"), CS_ROUTE_NOT_FOUND);
}
END_TEST

START_TEST(test_metrics_host_names_and_ipv6_resolve)
{
    cs_metrics_addr a;
    char err[256];

    ck_assert_int_eq(cs_metrics_resolve("127.0.0.1", 9464, &a, err, sizeof(err)), 0);
    ck_assert_int_eq(a.ss.ss_family, AF_INET);
    ck_assert_int_eq(cs_metrics_resolve("::1", 9464, &a, err, sizeof(err)), 0);
    ck_assert_int_eq(a.ss.ss_family, AF_INET6);
    ck_assert_int_eq(cs_metrics_resolve("localhost", 9464, &a, err, sizeof(err)), 0);
    ck_assert_int_eq(a.ss.ss_family, AF_INET); /* IPv4 first for a name with both */
    ck_assert_int_ne(cs_metrics_resolve("no-such-host.invalid", 1, &a, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "no-such-host.invalid"));
}
END_TEST

Suite *health_suite(void)
{
    Suite *s = suite_create("health");
    TCase *tc = tcase_create("rules");

    tcase_add_test(tc, test_health_ready_needs_every_dependency_up_and_recent);
    tcase_add_test(tc, test_health_live_while_the_loop_turns);
    tcase_add_test(tc, test_http_routes_are_exact_paths_get_and_head);
    tcase_add_test(tc, test_metrics_host_names_and_ipv6_resolve);
    suite_add_tcase(s, tc);
    return s;
}
