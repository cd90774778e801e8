/* test_spill.c - the spill file: order, sizes, caps, failure. */
#include "cm.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spill.h"
#include "testutil.h"

static struct lf_obs *mk(uint64_t qseq, size_t len)
{
    struct lf_obs *r = calloc(1, sizeof(*r));
    r->qseq = qseq;
    r->start_ns = (int64_t)qseq * 1000;
    r->end_ns = r->start_ns + 7;
    r->type = LF_OBS_TOOL;
    r->flags = LF__REC_ENDED;
    memset(r->span_id, (int)qseq, 8);
    if (len) {
        r->data = malloc(len);
        for (size_t i = 0; i < len; i++)
            r->data[i] = (unsigned char)(qseq + i);
        r->len = r->cap = (uint32_t)len;
    }
    return r;
}

static struct lf_obs *chain(uint64_t from, int n, size_t len)
{
    struct lf_obs *head = NULL, **tail = &head;
    for (int i = 0; i < n; i++) {
        /* sizes vary, one is larger than the read buffer */
        size_t l = i == 7 ? 300000 : len + (size_t)i * 13;
        *tail = mk(from + (uint64_t)i, l);
        tail = &(*tail)->next;
    }
    return head;
}

static void check(struct lf_obs *r, uint64_t qseq)
{
    assert_int_equal(r->qseq, qseq);
    assert_int_equal(r->end_ns, (int64_t)qseq * 1000 + 7);
    assert_int_equal(r->end_ns - r->start_ns, 7);
    assert_int_equal(r->type, LF_OBS_TOOL);
    assert_int_equal(r->span_id[3], (uint8_t)qseq);
    for (uint32_t i = 0; i < r->len; i++)
        if (r->data[i] != (unsigned char)(qseq + i))
            fail_msg("record %llu byte %u differs", (unsigned long long)qseq, i);
}

static void test_fifo_roundtrip(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("lf-spill");
    struct lf__spill s;
    lf__spill_init(&s, dir, 64 << 20);
    uint64_t dropped = 0, lost = 0;
    assert_int_equal(lf__spill_write(&s, chain(100, 40, 1000), &dropped, NULL, NULL), 40);
    assert_int_equal(lf__spill_write(&s, chain(140, 10, 10), &dropped, NULL, NULL), 10);
    assert_int_equal(dropped, 0);
    assert_int_equal(s.nrec, 50);
    assert_int_equal(s.head_qseq, 100);
    uint64_t next = 100;
    while (s.nrec) {
        struct lf_obs *list = lf__spill_read(&s, 20000, UINT_MAX, &lost);
        assert_non_null(list);
        while (list) {
            struct lf_obs *r = list;
            list = r->next;
            check(r, next++);
            lf__rec_free(r);
        }
        if (s.nrec) assert_int_equal(s.head_qseq, next);
    }
    assert_int_equal(next, 150);
    assert_int_equal(lost, 0);
    assert_int_equal(s.wpos, 0); /* emptied: the file starts over */
    /* At most max_records at a time, with appends in between (as the exporter reads it,
     * spilling between reads): still in order. */
    assert_int_equal(lf__spill_write(&s, chain(150, 5, 10), &dropped, NULL, NULL), 5);
    for (next = 150; s.nrec;) {
        struct lf_obs *list = lf__spill_read(&s, 1 << 20, 2, &lost);
        int n = 0;
        for (; list; n++) {
            struct lf_obs *r = list;
            list = r->next;
            check(r, next++);
            lf__rec_free(r);
        }
        assert_true(n >= 1 && n <= 2);
        if (next == 152)
            assert_int_equal(lf__spill_write(&s, chain(155, 3, 10), &dropped, NULL, NULL), 3);
    }
    assert_int_equal(next, 158);
    assert_int_equal(lost, 0);
    assert_null(lf__spill_read(&s, 1000, UINT_MAX, &lost));
    lf__spill_close(&s);
    tu_rmrf(dir);
    free(dir);
}

static void test_cap_drops_and_counts(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("lf-spill");
    struct lf__spill s;
    lf__spill_init(&s, dir, 10000);
    uint64_t dropped = 0;
    uint64_t n = lf__spill_write(&s, chain(0, 6, 3000), &dropped, NULL, NULL);
    assert_int_equal(n + dropped, 6);
    assert_true(dropped >= 3);
    lf__spill_close(&s);
    tu_rmrf(dir);
    free(dir);
}

static void test_missing_dir_is_created(void **state)
{
    (void)state;
    /* A spool directory that does not exist yet (the first run on a machine): spilling
     * must work, not turn itself off. */
    char *dir = tu_mkdtemp("lf-spill");
    char sub[600];
    snprintf(sub, sizeof(sub), "%s/not/yet", dir);
    struct lf__spill s;
    lf__spill_init(&s, sub, 1 << 20);
    assert_true(lf__spill_usable(&s));
    uint64_t dropped = 0, lost = 0;
    assert_int_equal(lf__spill_write(&s, chain(0, 5, 100), &dropped, NULL, NULL), 5);
    assert_int_equal(dropped, 0);
    struct lf_obs *list = lf__spill_read(&s, 1 << 20, UINT_MAX, &lost);
    uint64_t next = 0;
    for (; list; next++) {
        struct lf_obs *r = list;
        list = r->next;
        check(r, next);
        lf__rec_free(r);
    }
    assert_int_equal(next, 5); /* all of them back (an empty read checked nothing) */
    assert_int_equal(lost, 0);
    lf__spill_close(&s);
    tu_rmrf(dir);
    free(dir);
}

static int released;
static void count_release(void *ud, struct lf_obs *r)
{
    (void)ud;
    released++;
    lf__rec_free(r);
}

static void test_unwritable_dir_drops_everything_counted(void **state)
{
    (void)state;
    struct lf__spill s;
    lf__spill_init(&s, "/proc/no-such-dir", 1 << 20);
    uint64_t dropped = 0;
    released = 0;
    assert_int_equal(lf__spill_write(&s, chain(0, 5, 100), &dropped, count_release, NULL), 0);
    assert_int_equal(dropped, 5);
    assert_int_equal(released, 5);
    assert_true(s.failed);
    lf__spill_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_roundtrip),
        cmocka_unit_test(test_cap_drops_and_counts),
        cmocka_unit_test(test_missing_dir_is_created),
        cmocka_unit_test(test_unwritable_dir_drops_everything_counted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
