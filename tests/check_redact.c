/* Unit tests of the redaction rule: no credential of a URL or conninfo survives it. */
#include "redact.h"
#include "runner.h"

#include <string.h>

static const char *redact(const char *in)
{
    static char out[1024];

    cs_redact(out, sizeof(out), in);
    return out;
}

START_TEST(test_redact_url_passwords_keep_user_and_host)
{
    ck_assert_str_eq(redact("http://elastic:s3cret@127.0.0.1:9200/_bulk"),
                     "http://elastic:***@127.0.0.1:9200/_bulk");
    ck_assert_str_eq(redact("redis://:s3cret@[::1]:6379/2"), "redis://:***@[::1]:6379/2");
    ck_assert_str_eq(redact("GET https://u:p@ss:w@host/x failed"),
                     "GET https://u:***@host/x failed");
    /* A user alone may be a token: masked whole. */
    ck_assert_str_eq(redact("https://tok3n@host"), "https://***@host");
    ck_assert_str_eq(redact("postgresql://app:pw@db:5432/x?sslmode=require"),
                     "postgresql://app:***@db:5432/x?sslmode=require");
    ck_assert_str_eq(redact("es=\"http://127.0.0.1:9200\""), "es=\"http://127.0.0.1:9200\"");
}
END_TEST

START_TEST(test_redact_conninfo_and_property_values)
{
    ck_assert_str_eq(redact("host=db port=5432 user=app password=s3cret dbname=x"),
                     "host=db port=5432 user=app password=*** dbname=x");
    ck_assert_str_eq(redact("password = 'a b\\' c' dbname=x"), "password = '***' dbname=x");
    ck_assert_str_eq(redact("kafka property sasl.password=s3cret: bad"), /* to the blank */
                     "kafka property sasl.password=*** bad");
    ck_assert_str_eq(redact("x?user=a&password=s3cret&db=1"), "x?user=a&password=***&db=1");
    ck_assert_str_eq(redact("SSLPASSWORD=\"q\" es_api_key=k token=t"),
                     "SSLPASSWORD=\"***\" es_api_key=*** token=***");
    ck_assert_str_eq(redact("no secrets: user=app passwords are long"),
                     "no secrets: user=app passwords are long");
}
END_TEST

START_TEST(test_redact_cuts_to_the_buffer)
{
    char out[8];

    ck_assert_uint_eq(cs_redact(out, sizeof(out), "password=s3cret"), 7);
    ck_assert_str_eq(out, "passwor");
    ck_assert_ptr_null(strstr(redact("a://b:s3cret@"), "s3cret"));
    ck_assert_ptr_null(strstr(redact("password="), "s3cret"));
}
END_TEST

Suite *redact_suite(void)
{
    Suite *s = suite_create("redact");
    TCase *tc = tcase_create("redact");

    tcase_add_test(tc, test_redact_url_passwords_keep_user_and_host);
    tcase_add_test(tc, test_redact_conninfo_and_property_values);
    tcase_add_test(tc, test_redact_cuts_to_the_buffer);
    suite_add_tcase(s, tc);
    return s;
}
