/* test_body.c - splitting, shrinking and filtering encoded bodies. */
#include "cm.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"
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
    snprintf(json, sizeof(json), "{\"batch\":[{\"id\":\"a\",\"body\":{\"input\":\"%s\",\"n\":\"short\"}}]}", big);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_split_keeps_everything_once),
        cmocka_unit_test(test_shrink_halves_largest_string),
        cmocka_unit_test(test_filter_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
