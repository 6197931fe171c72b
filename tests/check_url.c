/* Unit tests of URL parsing: Redis and Elasticsearch URLs with credentials and IPv6 hosts. */
#include "err.h"
#include "runner.h"
#include "url.h"

#include <string.h>

START_TEST(test_url_redis_with_user_password_ipv6_and_db)
{
    cs_url u;
    int db;
    char err[256];

    ck_assert_int_eq(
        cs_url_parse_redis("redis://app:s%40cret@[::1]:6380/3", &u, &db, err, sizeof(err)), 0);
    ck_assert_str_eq(u.user, "app");
    ck_assert_str_eq(u.password, "s@cret");
    ck_assert(u.has_password);
    ck_assert_str_eq(u.host, "::1");
    ck_assert(u.ipv6);
    ck_assert_int_eq(u.port, 6380);
    ck_assert_int_eq(db, 3);
    ck_assert_int_eq(cs_url_parse_redis("redis://:pw@localhost", &u, &db, err, sizeof(err)), 0);
    ck_assert_str_eq(u.user, "");
    ck_assert_str_eq(u.password, "pw");
    ck_assert_int_eq(u.port, 6379);
    ck_assert_int_eq(db, 0);
    ck_assert_int_eq(cs_url_parse_redis("redis://127.0.0.1:56379", &u, &db, err, sizeof(err)), 0);
    ck_assert(!u.has_password);
    ck_assert_int_eq(cs_url_parse_redis("rediss://:pw@redis.example/1", &u, &db, err, sizeof(err)),
                     0);
    ck_assert_str_eq(u.scheme, "rediss");
    ck_assert_str_eq(u.host, "redis.example");
    ck_assert_int_eq(u.port, 6379);
    ck_assert_int_eq(db, 1);
}
END_TEST

START_TEST(test_url_errors_name_the_fault_without_the_password)
{
    cs_url u;
    int db;
    char err[256];
    const char *bad[] = {"127.0.0.1:6379",          "redis://:s3cret@host:port",
                         "redis://:s3cret@[::1",    "redis://:s3cret@host:70000",
                         "redis://:s3cret@host/x",  "redisx://:s3cret@host",
                         "http://:s3cret@host:1",   "redis://:s3cret@",
                         "redis://:s3cret@ho st:1", "redis://:s3cret%zz@host"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_assert_msg(cs_url_parse_redis(bad[i], &u, &db, err, sizeof(err)) == CS_ERR_INVALID,
                      "accepted %s", bad[i]);
        ck_assert_msg(err[0] && !strchr(err, '\n'), "no one-line reason for %s", bad[i]);
        ck_assert_msg(!strstr(err, "s3cret"), "password in: %s", err);
    }
}
END_TEST

START_TEST(test_url_http_origin_drops_credentials)
{
    cs_url u;
    char err[256], origin[300];

    ck_assert_int_eq(cs_url_parse_http("https://elastic:pw@[::1]/es/", &u, err, sizeof(err)), 0);
    ck_assert_int_eq(u.port, 443);
    ck_assert_str_eq(u.path, "/es/");
    cs_url_origin(&u, origin, sizeof(origin));
    ck_assert_str_eq(origin, "https://[::1]:443");
    ck_assert_int_eq(cs_url_parse_http("http://127.0.0.1:59200", &u, err, sizeof(err)), 0);
    ck_assert_int_eq(u.port, 59200);
    ck_assert_str_eq(u.user, "");
    ck_assert_int_eq(cs_url_parse_http("ftp://h", &u, err, sizeof(err)), CS_ERR_INVALID);
    ck_assert_int_eq(cs_url_parse_http("http://h/?q=1", &u, err, sizeof(err)), CS_ERR_INVALID);
}
END_TEST

Suite *url_suite(void)
{
    Suite *s = suite_create("url");
    TCase *tc = tcase_create("url");

    tcase_add_test(tc, test_url_redis_with_user_password_ipv6_and_db);
    tcase_add_test(tc, test_url_errors_name_the_fault_without_the_password);
    tcase_add_test(tc, test_url_http_origin_drops_credentials);
    suite_add_tcase(s, tc);
    return s;
}
