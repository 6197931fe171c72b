/* Unit tests of worker/batching.c: when the batch in hand goes to the appliers. */
#include "../worker/batching.h"
#include "runner.h"

/* No byte bound reached in the count and linger cases. */
#define MIB     ((size_t)1 << 20)
#define NOBYTES 0, (8 * MIB)

typedef struct batching_case {
    const char *why;
    size_t pending, want;
    size_t pending_bytes, want_bytes;
    bool drained;
    long long age_ms;
    int linger_ms;
    int expect;
} batching_case;

static const batching_case cases[] = {
    {"a full batch goes at once", 256, 256, NOBYTES, false, 0, 0, CS_BATCHING_GO},
    {"a full batch goes whatever the linger", 300, 256, NOBYTES, false, 0, 1000, CS_BATCHING_GO},
    {"a batch of one goes at once", 1, 1, NOBYTES, true, 0, 50, CS_BATCHING_GO},
    {"what is queued is polled without waiting", 1, 256, NOBYTES, false, 0, 0, 0},
    {"what is queued is polled however old the batch", 10, 256, NOBYTES, false, 5000, 0, 0},
    {"what is queued is polled before the linger counts", 10, 256, NOBYTES, false, 3, 20, 0},
    {"without linger, a drained batch of one goes", 1, 256, NOBYTES, true, 0, 0, CS_BATCHING_GO},
    {"without linger, a drained batch goes", 255, 256, NOBYTES, true, 0, 0, CS_BATCHING_GO},
    {"a linger waits from the first message", 1, 256, NOBYTES, true, 0, 20, 20},
    {"a linger waits its rest", 5, 256, NOBYTES, true, 15, 20, 5},
    {"a linger passed: the batch goes", 5, 256, NOBYTES, true, 20, 20, CS_BATCHING_GO},
    {"a linger long passed: the batch goes", 5, 256, NOBYTES, true, 90, 20, CS_BATCHING_GO},
    {"a clock gone back counts as no time passed", 5, 256, NOBYTES, true, -7, 20, 20},
    {"a batch that reached its bytes goes at once", 3, 256, 8 * MIB, 8 * MIB, false, 0, 0,
     CS_BATCHING_GO},
    {"a batch past its bytes goes whatever the linger", 2, 256, 9 * MIB, 8 * MIB, true, 0, 1000,
     CS_BATCHING_GO},
    {"one submission larger than the bytes goes alone", 1, 256, 20 * MIB, 8 * MIB, false, 0, 0,
     CS_BATCHING_GO},
    {"a batch a byte short of its bytes polls what is queued", 10, 256, 8 * MIB - 1, 8 * MIB, false,
     0, 0, 0},
    {"a batch short of its bytes waits its linger", 10, 256, 4 * MIB, 8 * MIB, true, 5, 20, 15},
};

START_TEST(test_batching_goes_when_full_or_drained_and_lingered)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const batching_case *c = &cases[i];

        ck_assert_msg(cs_batching_wait_ms(c->pending, c->want, c->pending_bytes, c->want_bytes,
                                          c->drained, c->age_ms, c->linger_ms) == c->expect,
                      "%s", c->why);
    }
}
END_TEST

typedef struct take_case {
    const char *why;
    size_t taken, taken_bytes, next_bytes, want, want_bytes;
    bool expect;
} take_case;

static const take_case takes[] = {
    {"the first message joins", 0, 0, 100, 256, 8 * MIB, true},
    {"the first message joins however large", 0, 0, 20 * MIB, 256, 8 * MIB, true},
    {"a message that fits joins", 10, MIB, 100, 256, 8 * MIB, true},
    {"a message that fills the bytes exactly joins", 1, 6 * MIB, 2 * MIB, 256, 8 * MIB, true},
    {"a message a byte past the bytes opens the next batch", 1, 6 * MIB, 2 * MIB + 1, 256, 8 * MIB,
     false},
    {"a message larger than the bytes opens the next batch", 1, 100, 20 * MIB, 256, 8 * MIB, false},
    {"a batch of want messages takes no more", 256, 256, 1, 256, 8 * MIB, false},
    {"a batch one short of want takes one more", 255, 255, 1, 256, 8 * MIB, true},
    {"a batch already past its bytes (its first message) takes no more", 1, 20 * MIB, 0, 256,
     8 * MIB, false},
};

START_TEST(test_batching_takes_by_count_and_bytes_in_order)
{
    for (size_t i = 0; i < sizeof(takes) / sizeof(takes[0]); i++) {
        const take_case *c = &takes[i];

        ck_assert_msg(cs_batching_takes(c->taken, c->taken_bytes, c->next_bytes, c->want,
                                        c->want_bytes) == c->expect,
                      "%s", c->why);
    }
}
END_TEST

/* The worker's cut, message after message: 256 KiB submissions with small ones between them
 * under an 8 MiB bound come in batches that each stay within it, in order, none empty. */
START_TEST(test_batching_cuts_a_run_of_large_submissions_by_bytes)
{
    size_t sizes[200], start = 0, batches = 0;

    for (size_t i = 0; i < 200; i++)
        sizes[i] = i % 10 == 0 ? 256 * 1024 : 1000;
    while (start < 200) {
        size_t n = 0, bytes = 0;

        while (start + n < 200 && cs_batching_takes(n, bytes, sizes[start + n], 256, 8 * MIB))
            bytes += sizes[start + n++];
        ck_assert_uint_gt(n, 0);
        ck_assert_uint_le(bytes, 8 * MIB);
        start += n;
        batches++;
    }
    /* 20 large ones of 256 KiB and 180 small ones: 5.2 MiB, one batch under 8 MiB. */
    ck_assert_uint_eq(batches, 1);
    for (start = 0, batches = 0; start < 200; batches++) {
        size_t n = 0, bytes = 0;

        while (start + n < 200 && cs_batching_takes(n, bytes, sizes[start + n], 256, MIB))
            bytes += sizes[start + n++];
        ck_assert_uint_le(bytes, MIB);
        start += n;
    }
    /* Three large ones and the small ones after them come to 794 KiB; a fourth large one
     * would pass 1 MiB and opens the next batch: 20 large ones take 7 batches. */
    ck_assert_uint_eq(batches, 7);
}
END_TEST

/* A small batch is one transaction; each 8 submissions more take one more applier, up to
 * --appliers. */
START_TEST(test_batching_splits_a_batch_across_one_applier_per_eight)
{
    ck_assert_uint_eq(cs_batching_appliers(1, 4), 1);
    ck_assert_uint_eq(cs_batching_appliers(5, 4), 1);
    ck_assert_uint_eq(cs_batching_appliers(8, 4), 1);
    ck_assert_uint_eq(cs_batching_appliers(9, 4), 2);
    ck_assert_uint_eq(cs_batching_appliers(24, 4), 3);
    ck_assert_uint_eq(cs_batching_appliers(25, 4), 4);
    ck_assert_uint_eq(cs_batching_appliers(256, 4), 4);
    ck_assert_uint_eq(cs_batching_appliers(256, 1), 1);
    ck_assert_uint_eq(cs_batching_appliers(9, 1), 1);
}
END_TEST

Suite *batching_suite(void)
{
    Suite *s = suite_create("batching");
    TCase *tc = tcase_create("batching");

    tcase_add_test(tc, test_batching_goes_when_full_or_drained_and_lingered);
    tcase_add_test(tc, test_batching_takes_by_count_and_bytes_in_order);
    tcase_add_test(tc, test_batching_cuts_a_run_of_large_submissions_by_bytes);
    tcase_add_test(tc, test_batching_splits_a_batch_across_one_applier_per_eight);
    suite_add_tcase(s, tc);
    return s;
}
