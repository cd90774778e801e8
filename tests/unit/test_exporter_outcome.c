/* test_exporter_outcome.c - what each HTTP answer means for a batch, and the backoff rule,
 * case by case (outcome.c). */
#include "cm.h"

#include "outcome.h"

static void test_each_status_has_its_outcome(void **state)
{
    (void)state;
    static const struct {
        int status;
        enum lf__outcome want;
    } cases[] = {
        {200, LF__OUT_DELIVERED}, {201, LF__OUT_DELIVERED}, {204, LF__OUT_DELIVERED},
        {207, LF__OUT_DELIVERED}, {299, LF__OUT_DELIVERED}, {413, LF__OUT_TOO_LARGE},
        {400, LF__OUT_REJECTED},  {402, LF__OUT_REJECTED},  {409, LF__OUT_REJECTED},
        {410, LF__OUT_REJECTED},  {422, LF__OUT_REJECTED},  {499, LF__OUT_REJECTED},
        {401, LF__OUT_BLOCKED},   {403, LF__OUT_BLOCKED},   {404, LF__OUT_BLOCKED},
        {405, LF__OUT_BLOCKED},   {415, LF__OUT_BLOCKED},   {408, LF__OUT_RETRY},
        {429, LF__OUT_RETRY},     {500, LF__OUT_RETRY},     {502, LF__OUT_RETRY},
        {503, LF__OUT_RETRY},     {504, LF__OUT_RETRY},     {599, LF__OUT_RETRY},
        {0, LF__OUT_RETRY}, /* no answer at all */
        {100, LF__OUT_RETRY},     {301, LF__OUT_RETRY},     {600, LF__OUT_RETRY},
        {-1, LF__OUT_RETRY},
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (lf__outcome_of(cases[i].status) != cases[i].want)
            fail_msg("HTTP %d: outcome %d, want %d", cases[i].status,
                     (int)lf__outcome_of(cases[i].status), (int)cases[i].want);
}

#define MS 1000000LL

static void test_backoff_doubles_with_equal_jitter_up_to_its_cap(void **state)
{
    (void)state;
    /* attempt 1: 500 ms, half fixed, half jitter */
    assert_int_equal(lf__backoff_ns(1, -1, 0), 250 * MS);
    assert_int_equal(lf__backoff_ns(1, -1, 65535), 500 * MS);
    assert_int_equal(lf__backoff_ns(2, -1, 65535), 1000 * MS);
    assert_int_equal(lf__backoff_ns(3, -1, 0), 1000 * MS);
    assert_int_equal(lf__backoff_ns(7, -1, 65535), 30000 * MS);  /* 32 s, capped at 30 */
    assert_int_equal(lf__backoff_ns(60, -1, 65535), 30000 * MS); /* no overflow */
    assert_int_equal(lf__backoff_ns(60, -1, 0), 15000 * MS);
    assert_int_equal(lf__backoff_ns(1, -1, 1u << 20), 500 * MS); /* jitter is clamped */
    int64_t mid = lf__backoff_ns(4, -1, 32768);
    assert_true(mid > 3000 * MS && mid < 3001 * MS); /* 4 s: 2 s + half of 2 s */
}

static void test_retry_after_wins_and_is_capped(void **state)
{
    (void)state;
    assert_int_equal(lf__backoff_ns(1, 0, 65535), 0);
    assert_int_equal(lf__backoff_ns(5, 2500, 0), 2500 * MS);
    assert_int_equal(lf__backoff_ns(1, 120000, 0), 60000 * MS); /* a minute at most */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_status_has_its_outcome),
        cmocka_unit_test(test_backoff_doubles_with_equal_jitter_up_to_its_cap),
        cmocka_unit_test(test_retry_after_wins_and_is_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
