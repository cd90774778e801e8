/* test_lines.c - line splitting: lines split across reads, many in one read, the cap (an
 * over-long line is skipped and reported with its length, and the next line is intact),
 * and a last line without a newline. */
#include "cm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lines.h"

struct got {
    char lines[16][64];
    size_t lens[16];
    int n;
};

static int collect(void *ctx, char *line, size_t len)
{
    struct got *g = ctx;
    assert_true(g->n < 16);
    g->lens[g->n] = len;
    snprintf(g->lines[g->n], 64, "%s", line ? line : "(too long)");
    g->n++;
    return 0;
}

static int feed(struct cc_lines *l, const char *s, struct got *g)
{
    char *copy = strdup(s);
    int rc = cc_lines_feed(l, copy, strlen(copy), collect, g);
    /* the caller's buffer is restored after delivery */
    assert_string_equal(copy, s);
    free(copy);
    return rc;
}

static void test_split_and_whole(void **state)
{
    (void)state;
    struct cc_lines l;
    struct got g = {0};
    cc_lines_init(&l, 100);
    feed(&l, "one\ntwo\nthr", &g);
    feed(&l, "ee", &g);
    feed(&l, "\n\nfour", &g);
    assert_int_equal(g.n, 4);
    assert_string_equal(g.lines[0], "one");
    assert_string_equal(g.lines[1], "two");
    assert_string_equal(g.lines[2], "three");
    assert_string_equal(g.lines[3], "");
    cc_lines_finish(&l, collect, &g);
    assert_int_equal(g.n, 5);
    assert_string_equal(g.lines[4], "four");
    cc_lines_free(&l);
}

static void test_over_long_line_skipped_and_reported(void **state)
{
    (void)state;
    struct cc_lines l;
    struct got g = {0};
    cc_lines_init(&l, 10);
    feed(&l, "short\n0123456789", &g); /* exactly the cap so far: still kept */
    feed(&l, "abc", &g);                /* over: skipping */
    feed(&l, "defgh\nnext\n", &g);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.lines[0], "short");
    assert_string_equal(g.lines[1], "(too long)");
    assert_int_equal(g.lens[1], 18);
    assert_string_equal(g.lines[2], "next");
    /* over-long within a single chunk */
    feed(&l, "0123456789ABCDEF\nok\n", &g);
    assert_string_equal(g.lines[3], "(too long)");
    assert_int_equal(g.lens[3], 16);
    assert_string_equal(g.lines[4], "ok");
    /* a line of exactly the cap is delivered */
    feed(&l, "0123456789\n", &g);
    assert_string_equal(g.lines[5], "0123456789");
    cc_lines_free(&l);
}

static int stop_after_first(void *ctx, char *line, size_t len)
{
    (void)line;
    (void)len;
    return ++*(int *)ctx == 1 ? 7 : 0;
}

static void test_callback_can_stop(void **state)
{
    (void)state;
    struct cc_lines l;
    int calls = 0;
    char buf[] = "a\nb\n";
    cc_lines_init(&l, 10);
    assert_int_equal(cc_lines_feed(&l, buf, 4, stop_after_first, &calls), 7);
    assert_int_equal(calls, 1);
    cc_lines_free(&l);
    cc_lines_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_and_whole),
        cmocka_unit_test(test_over_long_line_skipped_and_reported),
        cmocka_unit_test(test_callback_can_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
