/* Unit tests of worker/batching.c: when the batch in hand goes to the appliers. */
#include "../worker/batching.h"
#include "runner.h"

typedef struct batching_case {
    const char *why;
    size_t pending, want;
    bool drained;
    long long age_ms;
    int linger_ms;
    int expect;
} batching_case;

static const batching_case cases[] = {
    {"a full batch goes at once", 256, 256, false, 0, 0, CS_BATCHING_GO},
    {"a full batch goes whatever the linger", 300, 256, false, 0, 1000, CS_BATCHING_GO},
    {"a batch of one goes at once", 1, 1, true, 0, 50, CS_BATCHING_GO},
    {"what is queued is polled without waiting", 1, 256, false, 0, 0, 0},
    {"what is queued is polled however old the batch", 10, 256, false, 5000, 0, 0},
    {"what is queued is polled before the linger counts", 10, 256, false, 3, 20, 0},
    {"without linger, a drained batch of one goes", 1, 256, true, 0, 0, CS_BATCHING_GO},
    {"without linger, a drained batch goes", 255, 256, true, 0, 0, CS_BATCHING_GO},
    {"a linger waits from the first message", 1, 256, true, 0, 20, 20},
    {"a linger waits its rest", 5, 256, true, 15, 20, 5},
    {"a linger passed: the batch goes", 5, 256, true, 20, 20, CS_BATCHING_GO},
    {"a linger long passed: the batch goes", 5, 256, true, 90, 20, CS_BATCHING_GO},
    {"a clock gone back counts as no time passed", 5, 256, true, -7, 20, 20},
};

START_TEST(test_batching_goes_when_full_or_drained_and_lingered)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const batching_case *c = &cases[i];

        ck_assert_msg(cs_batching_wait_ms(c->pending, c->want, c->drained, c->age_ms,
                                          c->linger_ms) == c->expect,
                      "%s", c->why);
    }
}
END_TEST

Suite *batching_suite(void)
{
    Suite *s = suite_create("batching");
    TCase *tc = tcase_create("batching");

    tcase_add_test(tc, test_batching_goes_when_full_or_drained_and_lingered);
    suite_add_tcase(s, tc);
    return s;
}
