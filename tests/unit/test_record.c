/* test_record.c - the tagged-field record: append, iterate, last-wins, copy. */
#include "cm.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "record.h"

static struct lf_obs *rec(void)
{
    struct lf_obs *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    return r;
}

static void test_last_wins_per_key(void **state)
{
    (void)state;
    struct lf_obs *r = rec();
    int64_t a = 1, b = 2;
    assert_int_equal(lf__rec_put(r, LF__F_NAME, LF__V_STR, NULL, 0, "first", 5), 0);
    assert_int_equal(lf__rec_put(r, LF__F_USAGE, LF__V_INT, "input", 5, &a, 8), 0);
    assert_int_equal(lf__rec_put(r, LF__F_USAGE, LF__V_INT, "output", 6, &a, 8), 0);
    assert_int_equal(lf__rec_put(r, LF__F_USAGE, LF__V_INT, "input", 5, &b, 8), 0);
    assert_int_equal(lf__rec_put(r, LF__F_NAME, LF__V_STR, NULL, 0, "second", 6), 0);

    struct lf__field f;
    assert_true(lf__rec_last(r, LF__F_NAME, &f));
    assert_int_equal(f.vlen, 6);
    assert_memory_equal(f.val, "second", 6);
    assert_false(lf__rec_last(r, LF__F_MODEL, &f));

    uint32_t pos = 0;
    int live = 0;
    int64_t input = 0;
    while (lf__rec_next(r, &pos, &f)) {
        if (f.tag != LF__F_USAGE || lf__rec_superseded(r, pos, &f)) continue;
        live++;
        if (f.klen == 5) input = lf__field_i64(&f);
    }
    assert_int_equal(live, 2);
    assert_int_equal(input, 2);
    assert_false(lf__rec_has_trace_fields(r));
    assert_int_equal(lf__rec_put(r, LF__T_TAG, LF__V_STR, NULL, 0, "t", 1), 0);
    assert_true(lf__rec_has_trace_fields(r));

    lf__rec_free(r);
}

static void test_allocation_failure_keeps_record_intact(void **state)
{
    (void)state;
    struct lf_obs *r = rec();
    assert_int_equal(lf__rec_put(r, LF__F_NAME, LF__V_STR, NULL, 0, "kept", 4), 0);
    char big[4096];
    memset(big, 'x', sizeof(big));
    lf__alloc_fail_after(0, 0);
    assert_int_equal(lf__rec_put(r, LF__F_INPUT, LF__V_STR, NULL, 0, big, sizeof(big)), -1);
    lf__alloc_fail_after(-1, 0);
    struct lf__field f;
    assert_true(lf__rec_last(r, LF__F_NAME, &f));
    assert_false(lf__rec_last(r, LF__F_INPUT, &f));
    lf__rec_free(r);
    lf__rec_free(NULL);
}

/* A field read from the record and put again (journal.c's stand-in root) is read from where
 * the data is after the record grows, not from the block realloc freed. */
static void test_a_field_of_its_own_copied_across_growth(void **state)
{
    (void)state;
    struct lf_obs *r = rec();
    char name[200];
    for (size_t i = 0; i < sizeof(name); i++)
        name[i] = (char)('a' + i % 26);
    assert_int_equal(lf__rec_put(r, LF__T_NAME, LF__V_STR, "key", 3, name, sizeof(name)), 0);
    for (int i = 0; i < 4; i++) {
        struct lf__field f;
        assert_true(lf__rec_last(r, LF__T_NAME, &f));
        uint32_t cap = r->cap;
        /* Both the key and the value are the record's own; each round outgrows the block. */
        assert_int_equal(
            lf__rec_put2(r, LF__T_NAME, LF__V_STR, f.key, f.klen, f.val, f.vlen, f.val, f.vlen), 0);
        assert_true(r->cap > cap);
        assert_true(lf__rec_last(r, LF__T_NAME, &f));
        assert_int_equal(f.klen, 3);
        assert_memory_equal(f.key, "key", 3);
        assert_int_equal(f.vlen % sizeof(name), 0);
        for (uint32_t at = 0; at < f.vlen; at += sizeof(name))
            assert_memory_equal(f.val + at, name, sizeof(name));
    }
    lf__rec_free(r);
}

static void test_type_names(void **state)
{
    (void)state;
    assert_string_equal(lf__obs_type_name(LF_OBS_GENERATION), "generation");
    assert_string_equal(lf__obs_type_name(LF_OBS_GUARDRAIL), "guardrail");
    assert_string_equal(lf__obs_type_name(999), "span");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_last_wins_per_key),
        cmocka_unit_test(test_allocation_failure_keeps_record_intact),
        cmocka_unit_test(test_a_field_of_its_own_copied_across_growth),
        cmocka_unit_test(test_type_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
