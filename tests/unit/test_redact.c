/* test_redact.c - token shapes, registered secrets, and no false positives. */
#include "cm.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "redact.h"

static char *red(const struct lf__redactor *r, const char *s)
{
    char *out = lf__redact_dup(r, s);
    assert_non_null(out);
    return out;
}

static void expect(const struct lf__redactor *r, const char *in, const char *want)
{
    char *out = red(r, in);
    assert_string_equal(out, want);
    free(out);
}

static void test_token_shapes(void **state)
{
    (void)state;
    struct lf__redactor *r = lf__redactor_new();
    expect(r, "x sk-ant-api03-AbC_dEf-123456789 y", "x [REDACTED] y");
    expect(r, "sk-lf-1234abcd-5678-90ef", "[REDACTED]");
    expect(r, "token ghp_0123456789abcdefghijABCDEFGHIJ012345.", "token [REDACTED].");
    expect(r, "github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "[REDACTED]");
    expect(r, "Authorization: Bearer eyJhbGciOi.JIUzI1NiJ9-x_y", "Authorization: Bearer [REDACTED]");
    lf__redactor_free(r);
}

static void test_no_false_positives(void **state)
{
    (void)state;
    struct lf__redactor *r = lf__redactor_new();
    const char *plain[] = {"skeleton sketch sk-ant- short", "ghost_writer ghp_short",
                           "Bearer of news", "sk-lf-", "the bearer token: none",
                           "Bearer abc"};
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
        expect(r, plain[i], plain[i]);
    lf__redactor_free(r);
}

static void test_registered_secrets(void **state)
{
    (void)state;
    struct lf__redactor *r0 = lf__redactor_new();
    struct lf__redactor *r1 = lf__redactor_with(r0, "hunter2-xyz", 11);
    struct lf__redactor *r2 = lf__redactor_with(r1, "hunter2-xyz-longer", 18);
    lf__redactor_free(r0);
    lf__redactor_free(r1);
    /* the longer secret wins where both match; the shorter still applies alone */
    expect(r2, "a hunter2-xyz-longer b hunter2-xyz c", "a [REDACTED] b [REDACTED] c");
    expect(r2, "hunter2-xy", "hunter2-xy");
    lf__redactor_free(r2);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    struct lf__redactor *r = lf__redactor_new();
    /* Fail the first allocation, then the second, ... until adding the secret needs no
     * failed one: every failure is a NULL (and leaves r as it was), and then it works. (This
     * once tried four points and asserted only where one had failed: it held whether or not
     * an allocation ever failed, or the secret was ever added.) */
    long failures = 0;
    struct lf__redactor *r2 = NULL;
    for (long n = 0; n < 100; n++) {
        lf__alloc_fail_after(n, 0);
        r2 = lf__redactor_with(r, "secret-value", 12);
        long failed = lf__alloc_failures();
        lf__alloc_fail_after(-1, 0);
        if (!failed)
            break;
        failures++;
        assert_null(r2);
        expect(r, "a secret-value b", "a secret-value b");
    }
    assert_true(failures > 0);
    assert_non_null(r2);
    expect(r2, "a secret-value b", "a [REDACTED] b");
    lf__redactor_free(r2);
    lf__redactor_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_shapes),
        cmocka_unit_test(test_no_false_positives),
        cmocka_unit_test(test_registered_secrets),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
