/* test_body.c - splitting, shrinking and filtering encoded bodies. */
#include "cm.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "body.h"
#include "gzip.h"
#include "langfuse/langfuse.h"

static const char otlp[] =
    "{\"resourceSpans\":[{\"resource\":{\"attributes\":[]},\"scopeSpans\":[{\"scope\":{\"name\":"
    "\"x\"},\"spans\":[{\"spanId\":\"1\"},{\"spanId\":\"2\"},{\"spanId\":\"3\"}]}]}]}";
static const char ingest[] =
    "{\"batch\":[{\"id\":\"a\",\"type\":\"trace-create\"},{\"id\":\"b\",\"type\":\"span-create\"},"
    "{\"id\":\"c\",\"type\":\"span-create\"}]}";

static void test_count(void **state)
{
    (void)state;
    assert_int_equal(lf__body_count(LF_TRANSPORT_OTLP, otlp, strlen(otlp)), 3);
    assert_int_equal(lf__body_count(LF_TRANSPORT_INGESTION, ingest, strlen(ingest)), 3);
    assert_int_equal(lf__body_count(LF_TRANSPORT_OTLP, "nope", 4), -1);
}

static void test_split_keeps_everything_once(void **state)
{
    (void)state;
    char *a, *b;
    size_t al, bl;
    assert_int_equal(lf__body_split(LF_TRANSPORT_OTLP, otlp, strlen(otlp), &a, &al, &b, &bl), 0);
    assert_int_equal(lf__body_count(LF_TRANSPORT_OTLP, a, al), 1);
    assert_int_equal(lf__body_count(LF_TRANSPORT_OTLP, b, bl), 2);
    assert_non_null(strstr(a, "\"spanId\":\"1\""));
    assert_non_null(strstr(b, "\"spanId\":\"2\""));
    assert_non_null(strstr(b, "\"spanId\":\"3\""));
    assert_non_null(strstr(b, "\"scope\"")); /* the envelope is kept */
    free(a);
    free(b);
    const char one[] = "{\"batch\":[{\"id\":\"a\"}]}";
    assert_int_equal(lf__body_split(LF_TRANSPORT_INGESTION, one, strlen(one), &a, &al, &b, &bl),
                     -1);
}

static void test_shrink_halves_largest_string(void **state)
{
    (void)state;
    char big[2001];
    memset(big, 'y', 2000);
    big[2000] = '\0';
    char json[2200];
    snprintf(json, sizeof(json),
             "{\"batch\":[{\"id\":\"a\",\"body\":{\"input\":\"%s\",\"n\":\"short\"}}]}", big);
    char *out;
    size_t n;
    assert_int_equal(lf__body_shrink(json, strlen(json), &out, &n), 0);
    assert_true(n < strlen(json) - 900);
    assert_non_null(strstr(out, "...[truncated 1000 bytes]"));
    assert_non_null(strstr(out, "\"n\":\"short\""));
    free(out);
    const char tiny[] = "{\"a\":\"b\"}";
    assert_int_equal(lf__body_shrink(tiny, strlen(tiny), &out, &n), -1);
}

static void test_filter_events(void **state)
{
    (void)state;
    const char *ids[] = {"c"};
    char *out;
    size_t n;
    assert_int_equal(lf__body_filter_events(ingest, strlen(ingest), ids, 1, &out, &n), 0);
    assert_int_equal(lf__body_count(LF_TRANSPORT_INGESTION, out, n), 1);
    assert_non_null(strstr(out, "\"id\":\"c\""));
    free(out);
}

/* One operation of the 413 and 207 paths (and the gzip they re-compress with); 0 or -1. */
static int body_op(int op, char **a, size_t *al, char **b, size_t *bl)
{
    static const char *const ids[] = {"c"};
    char big[1100];
    snprintf(big, sizeof big, "{\"batch\":[{\"id\":\"a\",\"body\":{\"input\":\"%01000d\"}}]}", 7);
    switch (op) {
    case 0:
        return lf__body_split(LF_TRANSPORT_OTLP, otlp, strlen(otlp), a, al, b, bl);
    case 1:
        return lf__body_shrink(big, strlen(big), a, al);
    case 2:
        return lf__body_filter_events(ingest, strlen(ingest), ids, 1, a, al);
    default:
        return lf__gzip(otlp, strlen(otlp), 1, a, al);
    }
}

/* Each operation made to fail at every allocation in turn, jansson's and libdeflate's
 * included (alloc.h's hook): a failure is a clean -1, never a crash, a leak (the sanitizer
 * run) or a broken body. A success despite a failed allocation (jansson absorbs some of
 * its own) must still be a whole body: valid, every item in it. Its bytes are compared
 * only where jansson cannot lose a character to a failure it ignores (see body.c). */
static void test_every_allocation_can_fail(void **state)
{
    (void)state;
    for (int op = 0; op < 4; op++) {
        char *ra = NULL, *rb = NULL;
        size_t ral = 0, rbl = 0;
        assert_int_equal(body_op(op, &ra, &ral, &rb, &rbl), 0);
        int endpoint = op == 0 || op == 3 ? LF_TRANSPORT_OTLP : LF_TRANSPORT_INGESTION;
        long k = 0;
        for (;; k++) {
            char *a = NULL, *b = NULL;
            size_t al = 0, bl = 0;
            lf__alloc_fail_after(k, 0);
            int rc = body_op(op, &a, &al, &b, &bl);
            long failures = lf__alloc_failures();
            lf__alloc_fail_after(-1, 0);
            if (rc == 0 && op == 3) {
                assert_int_equal(al, ral); /* libdeflate: the same bytes */
                assert_memory_equal(a, ra, al);
            } else if (rc == 0) {
                assert_int_equal(lf__body_count(endpoint, a, al),
                                 lf__body_count(endpoint, ra, ral));
                if (b)
                    assert_int_equal(lf__body_count(endpoint, b, bl),
                                     lf__body_count(endpoint, rb, rbl));
                if (!failures) {
                    assert_int_equal(al, ral);
                    assert_memory_equal(a, ra, al);
                }
            } else { /* nothing for the caller to free */
                assert_int_equal(rc, -1);
                assert_true(failures > 0);
            }
            if (rc == 0) {
                free(a);
                free(b);
            }
            if (!failures) break;
            assert_true(k < 10000);
        }
        /* jansson parses and dumps with dozens of allocations, libdeflate allocates its
         * compressor beside our one output buffer: the hook reached inside them */
        assert_true(k >= (op == 3 ? 2 : 20));
        free(ra);
        free(rb);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_split_keeps_everything_once),
        cmocka_unit_test(test_shrink_halves_largest_string),
        cmocka_unit_test(test_filter_events),
        cmocka_unit_test(test_every_allocation_can_fail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
