/* test_lines.c - line splitting: lines split across reads, many in one read, the cap (an
 * over-long line is skipped and reported with its length, its first and last bytes, and the
 * next line is intact), and a last line without a newline. */
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
    feed(&l, "abc", &g);               /* over: skipping */
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

/* What a skipped line's callback could read of it. */
struct seen {
    struct cc_lines *l;
    size_t len;
    char head[CC_LINES_HEAD + 1], tail[CC_LINES_TAIL + 1];
    size_t head_len, tail_len;
    int skipped, kept;
};

static int look(void *ctx, char *line, size_t len)
{
    struct seen *s = ctx;
    const char *h, *t;
    if (line) {
        s->kept++;
        return 0;
    }
    s->skipped++;
    s->len = len;
    cc_lines_skipped(s->l, &h, &s->head_len, &t, &s->tail_len);
    memcpy(s->head, h, s->head_len);
    memcpy(s->tail, t, s->tail_len);
    return 0;
}

/* A skipped line's first CC_LINES_HEAD and last CC_LINES_TAIL bytes are there to read, when
 * it is cut across many reads as when it arrives in one: a result line that is too long must
 * still be recognisable by the "type" it writes near its end. */
static void test_over_long_line_keeps_head_and_tail(void **state)
{
    (void)state;
    const size_t total = 3 * CC_LINES_TAIL + 77;
    char *line = malloc(total + 1);
    for (size_t i = 0; i < total; i++)
        line[i] = (char)('a' + (i * 7 + i / 26) % 26);
    line[total] = '\n';
    const size_t chunks[] = {1, 7, 1000, CC_LINES_TAIL, CC_LINES_TAIL + 1, total + 4};
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        size_t chunk = chunks[k]; /* bytes a read gives, the last one all at once */
        struct cc_lines l;
        struct seen s = {.l = &l};
        cc_lines_init(&l, 1000);
        char *copy = malloc(total + 1 + 4);
        memcpy(copy, line, total + 1);
        memcpy(copy + total + 1, "ok\n", 3);
        for (size_t at = 0; at < total + 4; at += chunk)
            cc_lines_feed(&l, copy + at, at + chunk <= total + 4 ? chunk : total + 4 - at, look,
                          &s);
        assert_int_equal(s.skipped, 1);
        assert_int_equal(s.kept, 1); /* the next line is intact */
        assert_int_equal(s.len, total);
        assert_int_equal(s.head_len, CC_LINES_HEAD);
        assert_memory_equal(s.head, line, CC_LINES_HEAD);
        assert_int_equal(s.tail_len, CC_LINES_TAIL);
        assert_memory_equal(s.tail, line + total - CC_LINES_TAIL, CC_LINES_TAIL);
        free(copy);
        cc_lines_free(&l);
    }
    /* a line just over the cap: head and tail are the whole of it; at the end of the
     * stream without its newline too */
    struct cc_lines l;
    struct seen s = {.l = &l};
    cc_lines_init(&l, 10);
    char shortish[] = "0123456789AB";
    cc_lines_feed(&l, shortish, 12, look, &s);
    assert_int_equal(s.skipped, 0);
    cc_lines_finish(&l, look, &s);
    assert_int_equal(s.skipped, 1);
    assert_int_equal(s.len, 12);
    assert_int_equal(s.head_len, 12);
    assert_int_equal(s.tail_len, 12);
    assert_memory_equal(s.head, "0123456789AB", 12);
    assert_memory_equal(s.tail, "0123456789AB", 12);
    cc_lines_free(&l);
    free(line);
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
        cmocka_unit_test(test_over_long_line_keeps_head_and_tail),
        cmocka_unit_test(test_callback_can_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
