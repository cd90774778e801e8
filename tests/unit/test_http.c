/* test_http.c - Retry-After parsing and gzip round trips (the transfer itself is covered by
 * the integration tests against a real server). */
#include "cm.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"

static void test_retry_after(void **state)
{
    (void)state;
    assert_int_equal(lf__parse_retry_after("2", 0), 2000);
    assert_int_equal(lf__parse_retry_after(" 0.5 ", 0), 500);
    assert_int_equal(lf__parse_retry_after("0", 0), 0);
    assert_int_equal(lf__parse_retry_after("soon", 0), -1);
    assert_int_equal(lf__parse_retry_after("-1", 0), -1);
    assert_int_equal(lf__parse_retry_after("99999999", 0), -1);
    /* Sun, 06 Nov 1994 08:49:37 GMT is 784111777 */
    assert_int_equal(lf__parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111770), 7000);
    assert_int_equal(lf__parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111800), 0);
}

static void test_gzip_roundtrip(void **state)
{
    (void)state;
    size_t n = 200000;
    char *in = malloc(n);
    for (size_t i = 0; i < n; i++)
        in[i] = (char)("lorem ipsum dolor "[i % 18] + (i % 7 == 0));
    char *gz, *back;
    size_t gzlen, backlen;
    assert_int_equal(lf__gzip(in, n, 1, &gz, &gzlen), 0);
    assert_true(gzlen < n / 4);
    assert_int_equal((unsigned char)gz[0], 0x1f); /* gzip magic */
    assert_int_equal((unsigned char)gz[1], 0x8b);
    assert_int_equal(lf__gunzip(gz, gzlen, n, &back, &backlen), 0);
    assert_int_equal(backlen, n);
    assert_memory_equal(back, in, n);
    free(back);
    /* the cap holds against a zip bomb */
    assert_int_equal(lf__gunzip(gz, gzlen, n / 2, &back, &backlen), -2);
    /* garbage is refused */
    assert_int_equal(lf__gunzip("not gzip at all", 15, n, &back, &backlen), -1);
    free(gz);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_gzip_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
