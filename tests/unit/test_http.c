/* test_http.c - Retry-After parsing and gzip round trips (the transfer itself is covered by
 * the integration tests against a real server). */
#include "cm.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gzip.h"
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
    /* garbage is refused, and so is a body whose trailer lies about its size */
    assert_int_equal(lf__gunzip("not gzip at all", 15, n, &back, &backlen), -1);
    gz[gzlen - 4] ^= 1;
    assert_int_equal(lf__gunzip(gz, gzlen, n + 10, &back, &backlen), -1);
    gz[gzlen - 4] ^= 1;
    /* cut short: its "trailer" is then other bytes, which may declare any size */
    assert_true(lf__gunzip(gz, gzlen - 1, n, &back, &backlen) < 0);
    free(gz);
    free(in);
}

static void test_head_parser(void **state)
{
    (void)state;
    int st, ch, cl;
    long long len;
    long ra;
    const char ok[] = "HTTP/1.1 207 Multi-Status\r\nContent-Length: 12\r\nRetry-After: 3\r\n"
                      "X-Other:  v \r\n\r\nbody...";
    long n = lf__http_parse_head(ok, sizeof(ok) - 1, &st, &len, &ch, &cl, &ra, 0);
    assert_int_equal(n, (long)(strstr(ok, "body") - ok));
    assert_int_equal(st, 207);
    assert_int_equal(len, 12);
    assert_int_equal(ch, 0);
    assert_int_equal(cl, 0);
    assert_int_equal(ra, 3000);
    /* incomplete: needs more bytes */
    assert_int_equal(lf__http_parse_head(ok, 20, &st, &len, &ch, &cl, &ra, 0), 0);
    const char chunked[] = "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_true(lf__http_parse_head(chunked, sizeof(chunked) - 1, &st, &len, &ch, &cl, &ra, 0) > 0);
    assert_int_equal(ch, 1);
    assert_int_equal(cl, 1); /* HTTP/1.0 */
    const char *bad[] = {
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 999 Nope\r\n\r\n",
        "HTTP/1.1 200 OK\r\nNoColonHere\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(lf__http_parse_head(bad[i], strlen(bad[i]), &st, &len, &ch, &cl, &ra, 0),
                         -1);
}

static void test_chunked_decoder(void **state)
{
    (void)state;
    const char in[] =
        "4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\n";
    /* fed one byte at a time, as a slow network would */
    struct lf__chunked c = {0};
    char out[64];
    size_t olen = 0;
    int done = 0;
    for (size_t i = 0; i < sizeof(in) - 1; i++) {
        long used = lf__chunked_feed(&c, in + i, 1, out, sizeof(out), &olen, &done);
        assert_true(used == 1 || (done && used == 0));
    }
    assert_true(done);
    assert_int_equal(olen, 23);
    assert_memory_equal(out, "Wikipedia in\r\n\r\nchunks.", 23);
    /* the keep limit holds */
    struct lf__chunked c2 = {0};
    olen = 0;
    assert_int_equal(lf__chunked_feed(&c2, in, sizeof(in) - 1, out, 6, &olen, &done),
                     sizeof(in) - 1);
    assert_int_equal(olen, 6);
    const char *bad[] = {"zz\r\n", "4\r\nWikiX\r\n", "\r\n", "1234567890123456\r\n"};
    for (size_t i = 0; i < 4; i++) {
        struct lf__chunked c3 = {0};
        olen = 0;
        assert_int_equal(
            lf__chunked_feed(&c3, bad[i], strlen(bad[i]), out, sizeof(out), &olen, &done), -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_gzip_roundtrip),
        cmocka_unit_test(test_head_parser),
        cmocka_unit_test(test_chunked_decoder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
