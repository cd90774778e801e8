/* test_trace.c - the attribute set a trace's observations share: one entry per attribute,
 * copied whole onto each observation as it ends, input and output onto the root only. */
#include "cm.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "record.h"
#include "trace.h"

static struct lf_obs *rec(int root)
{
    struct lf_obs *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->flags = root ? LF__REC_ROOT : 0;
    return r;
}

static int count(const struct lf_obs *r, uint8_t tag)
{
    struct lf__field f;
    uint32_t pos = 0;
    int n = 0;
    while (lf__rec_next(r, &pos, &f))
        n += f.tag == tag;
    return n;
}

static void put(struct lf__trace *t, uint8_t tag, const char *key, const char *val)
{
    assert_int_equal(
        lf__trace_put(t, tag, LF__V_STR, key, key ? strlen(key) : 0, val, strlen(val), NULL, 0), 0);
}

static void test_a_setter_called_again_replaces_its_entry(void **state)
{
    (void)state;
    struct lf__trace *t = lf__trace_new();
    assert_non_null(t);
    for (int i = 0; i < 1000; i++) { /* a long interactive session re-setting its metadata */
        put(t, LF__T_SESSION, NULL, "s-1");
        put(t, LF__T_META, "turns", i % 2 ? "odd" : "even");
        put(t, LF__T_META, "model", "m");
        put(t, LF__T_TAG, NULL, "claude-code");
    }
    put(t, LF__T_TAG, NULL, "namespace:a");
    struct lf_obs *r = rec(0);
    assert_int_equal(lf__trace_copy_to(t, r, NULL), 0);
    assert_int_equal(count(r, LF__T_SESSION), 1);
    assert_int_equal(count(r, LF__T_META), 2);
    assert_int_equal(count(r, LF__T_TAG), 2);
    struct lf__field f;
    uint32_t pos = 0;
    int turns = 0;
    while (lf__rec_next(r, &pos, &f))
        if (f.tag == LF__T_META && f.klen == 5 && !memcmp(f.key, "turns", 5)) {
            assert_memory_equal(f.val, "odd", 3);
            turns++;
        }
    assert_int_equal(turns, 1); /* the loop checked the entry: it is there, once */
    lf__rec_free(r);
    lf__trace_unref(t);
}

static void test_input_and_output_go_to_the_root_only(void **state)
{
    (void)state;
    struct lf__trace *t = lf__trace_new();
    put(t, LF__T_NAME, NULL, "agentic-session");
    put(t, LF__T_INPUT, NULL, "{\"prompt\":\"a long prompt\"}");
    put(t, LF__T_OUTPUT, NULL, "{\"success\":true}");
    struct lf_obs *child = rec(0), *root = rec(1);
    assert_int_equal(lf__trace_copy_to(t, child, NULL), 0);
    assert_int_equal(lf__trace_copy_to(t, root, NULL), 0);
    assert_int_equal(count(child, LF__T_NAME), 1);
    assert_int_equal(count(child, LF__T_INPUT) + count(child, LF__T_OUTPUT), 0);
    assert_int_equal(count(root, LF__T_INPUT), 1);
    assert_int_equal(count(root, LF__T_OUTPUT), 1);
    lf__rec_free(child);
    lf__rec_free(root);
    lf__trace_unref(t);
}

static void test_the_last_reference_frees(void **state)
{
    (void)state;
    struct lf__trace *t = lf__trace_new();
    assert_ptr_equal(lf__trace_ref(t), t);
    put(t, LF__T_USER, NULL, "alice");
    lf__trace_unref(t);
    put(t, LF__T_USER, NULL, "bob"); /* still alive: one reference left (ASan checks) */
    lf__trace_unref(t);
    lf__trace_unref(NULL);
}

static void test_a_failed_allocation_keeps_the_old_value(void **state)
{
    (void)state;
    struct lf__trace *t = lf__trace_new();
    put(t, LF__T_SESSION, NULL, "kept");
    char big[4096];
    memset(big, 'x', sizeof(big));
    lf__alloc_fail_after(0, 0);
    assert_int_equal(lf__trace_put(t, LF__T_SESSION, LF__V_STR, NULL, 0, big, sizeof(big), NULL, 0),
                     -1);
    lf__alloc_fail_after(-1, 0);
    struct lf_obs *r = rec(0);
    assert_int_equal(lf__trace_copy_to(t, r, NULL), 0);
    struct lf__field f;
    assert_true(lf__rec_last(r, LF__T_SESSION, &f));
    assert_int_equal(f.vlen, 4);
    assert_memory_equal(f.val, "kept", 4);
    lf__rec_free(r);
    lf__trace_unref(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_setter_called_again_replaces_its_entry),
        cmocka_unit_test(test_input_and_output_go_to_the_root_only),
        cmocka_unit_test(test_the_last_reference_frees),
        cmocka_unit_test(test_a_failed_allocation_keeps_the_old_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
