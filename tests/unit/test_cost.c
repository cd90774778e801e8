/* test_cost.c - a turn's cost split exactly: the parts always add up to the turn, exact
 * costs are kept, shares follow list-price weights, the unstreamed rest has its own part. */
#include "cm.h"

#include "cost.h"

static long long sum(const struct cc_cost_model *m, int nm, const struct cc_cost_call *c, int nc)
{
    long long s = 0;
    for (int i = 0; i < nm; i++)
        s += m[i].rest_pico;
    for (int i = 0; i < nc; i++)
        s += c[i].pico;
    return s;
}

static void test_shares_follow_weights_and_add_up(void **state)
{
    (void)state;
    struct cc_cost_model m[] = {{"opus", {10, 100, 0, 0}, 1000000001, {0}, 0}};
    struct cc_cost_call c[] = {{"opus", {5, 50, 0, 0}, 0, 0}, {"opus", {5, 50, 0, 0}, 0, 0}};
    assert_int_equal(cc_cost_split(1000000001, m, 1, c, 2), 0);
    assert_int_equal(c[0].pico, 500000000);
    assert_int_equal(c[1].pico, 500000001); /* the last takes the rounding rest */
    assert_int_equal(m[0].rest_pico, 0);
    assert_int_equal(sum(m, 1, c, 2), 1000000001);
}

static void test_exact_costs_are_kept_and_the_rest_shared(void **state)
{
    (void)state;
    /* a retried call Claude Code charged nothing for; an exact call; one without its event */
    struct cc_cost_model m[] = {{"opus", {30, 300, 0, 0}, 9000, {0}, 0}};
    struct cc_cost_call c[] = {{"opus", {10, 100, 0, 0}, 1, 0},
                               {"opus", {10, 100, 0, 0}, 1, 6000},
                               {"opus", {10, 100, 0, 0}, 0, 0}};
    assert_int_equal(cc_cost_split(9000, m, 1, c, 3), 0);
    assert_int_equal(c[0].pico, 0);
    assert_int_equal(c[1].pico, 6000);
    assert_int_equal(c[2].pico, 3000);
    assert_int_equal(sum(m, 1, c, 3), 9000);
}

static void test_unstreamed_tokens_get_a_remainder(void **state)
{
    (void)state;
    /* a subagent's two calls are in modelUsage, not in the stream */
    struct cc_cost_model m[] = {{"opus", {20, 200, 0, 0}, 4000, {0}, 0},
                                {"haiku", {480, 34, 0, 0}, 1950, {0}, 0}};
    struct cc_cost_call c[] = {{"opus", {20, 200, 0, 0}, 0, 0}};
    assert_int_equal(cc_cost_split(5951, m, 2, c, 1), 0);
    assert_int_equal(c[0].pico, 4000);
    assert_int_equal(m[0].rest_pico, 0);
    assert_int_equal(m[1].rest.in, 480);
    assert_int_equal(m[1].rest.out, 34);
    assert_int_equal(m[1].rest_pico, 1951); /* the last model takes the turn's rounding */
    assert_int_equal(sum(m, 2, c, 1), 5951);
}

static void test_exact_subagent_calls_leave_no_remainder(void **state)
{
    (void)state;
    struct cc_cost_model m[] = {{"haiku", {480, 34, 0, 0}, 1950000000, {0}, 0}};
    struct cc_cost_call c[] = {{"haiku", {220, 25, 0, 0}, 1, 1035000000},
                               {"haiku", {260, 9, 0, 0}, 1, 915000000}};
    assert_int_equal(cc_cost_split(1950000000, m, 1, c, 2), 0);
    assert_int_equal(m[0].rest_pico, 0);
    assert_int_equal(m[0].rest.in + m[0].rest.out, 0);
}

static void test_cost_without_tokens_and_without_model_usage(void **state)
{
    (void)state;
    struct cc_cost_model m[] = {{"opus", {0, 0, 0, 0}, 700, {0}, 0}};
    assert_int_equal(cc_cost_split(700, m, 1, NULL, 0), 0);
    assert_int_equal(m[0].rest_pico, 700);
    struct cc_cost_call c[] = {{"opus", {1, 1, 0, 0}, 0, 0}};
    assert_int_equal(cc_cost_split(700, NULL, 0, c, 1), 700); /* no modelUsage: the caller's */
    assert_int_equal(c[0].pico, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shares_follow_weights_and_add_up),
        cmocka_unit_test(test_exact_costs_are_kept_and_the_rest_shared),
        cmocka_unit_test(test_unstreamed_tokens_get_a_remainder),
        cmocka_unit_test(test_exact_subagent_calls_leave_no_remainder),
        cmocka_unit_test(test_cost_without_tokens_and_without_model_usage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
