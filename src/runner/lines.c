/*
 * lines.c - line splitting with a cap. Lines are usually small and arrive whole in one
 * read, so the common case delivers straight from the read buffer without copying; only a
 * line split across reads is assembled in `buf`, which grows geometrically up to the cap.
 * A skipped line costs no more than its head and tail buffers, whatever its length.
 */
#include "lines.h"

#include <stdlib.h>
#include <string.h>

void cc_lines_init(struct cc_lines *l, size_t max)
{
    memset(l, 0, sizeof *l);
    l->max = max;
}

void cc_lines_free(struct cc_lines *l)
{
    if (!l) return;
    free(l->buf);
    l->buf = NULL;
    l->len = l->cap = 0;
}

static int append(struct cc_lines *l, const char *p, size_t n)
{
    if (l->len + n + 1 > l->cap) {
        size_t cap = l->cap ? l->cap : 4096;
        while (cap < l->len + n + 1)
            cap *= 2;
        if (cap > l->max + 1) cap = l->max + 1;
        char *b = realloc(l->buf, cap);
        if (!b) return -1;
        l->buf = b;
        l->cap = cap;
    }
    memcpy(l->buf + l->len, p, n);
    l->len += n;
    return 0;
}

static void head_push(struct cc_lines *l, const char *p, size_t n)
{
    size_t room = CC_LINES_HEAD - l->head_len;
    if (n > room) n = room;
    if (n > 0) memcpy(l->head + l->head_len, p, n);
    l->head_len += n;
}

/* Appends to the tail, keeping its last CC_LINES_TAIL bytes. */
static void tail_push(struct cc_lines *l, const char *p, size_t n)
{
    if (n >= CC_LINES_TAIL) {
        memcpy(l->tail, p + n - CC_LINES_TAIL, CC_LINES_TAIL);
        l->tail_len = CC_LINES_TAIL;
        return;
    }
    if (l->tail_len + n > CC_LINES_TAIL) {
        size_t drop = l->tail_len + n - CC_LINES_TAIL;
        memmove(l->tail, l->tail + drop, l->tail_len - drop);
        l->tail_len -= drop;
    }
    if (n > 0) memcpy(l->tail + l->tail_len, p, n);
    l->tail_len += n;
}

/* Starts skipping: the line so far and `n` more bytes count towards the reported length,
 * and give the head and the tail their first bytes. */
static void start_skip(struct cc_lines *l, const char *more, size_t n)
{
    l->head_len = l->tail_len = 0;
    head_push(l, l->buf, l->len);
    head_push(l, more, n);
    tail_push(l, l->buf, l->len);
    tail_push(l, more, n);
    l->skipped = l->len + n;
    l->len = 0;
    if (l->cap > 65536) { /* give back what the monster line took */
        free(l->buf);
        l->buf = NULL;
        l->cap = 0;
    }
}

/* The skipped line ended: tells the caller, with its head and tail readable meanwhile. */
static int end_skip(struct cc_lines *l, cc_line_fn fn, void *ctx)
{
    int rc = fn(ctx, NULL, l->skipped);
    l->skipped = l->head_len = l->tail_len = 0;
    return rc;
}

void cc_lines_skipped(const struct cc_lines *l, const char **head, size_t *head_len,
                      const char **tail, size_t *tail_len)
{
    *head = l->head;
    *head_len = l->head_len;
    *tail = l->tail;
    *tail_len = l->tail_len;
}

int cc_lines_feed(struct cc_lines *l, char *data, size_t n, cc_line_fn fn, void *ctx)
{
    int oom = 0;
    while (n > 0) {
        char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) : n;
        int rc = 0;
        if (l->skipped) {
            l->skipped += take;
            tail_push(l, data, take);
            if (nl) rc = end_skip(l, fn, ctx);
        } else if (l->len + take > l->max) {
            start_skip(l, data, take);
            if (nl) rc = end_skip(l, fn, ctx);
        } else if (nl && l->len == 0) {
            /* Whole line inside this chunk: deliver it in place, the newline replaced by
             * the terminating NUL for the duration of the call. */
            data[take] = '\0';
            rc = fn(ctx, data, take);
            data[take] = '\n';
        } else {
            if (append(l, data, take) < 0) {
                /* out of memory: this line is lost, reported as over-long; the lines
                 * after it in the chunk are still delivered */
                oom = 1;
                start_skip(l, data, take);
                if (nl) rc = end_skip(l, fn, ctx);
            } else if (nl) {
                l->buf[l->len] = '\0';
                size_t len = l->len;
                l->len = 0;
                rc = fn(ctx, l->buf, len);
            }
        }
        size_t used = take + (nl ? 1 : 0);
        data += used;
        n -= used;
        if (rc) return rc;
    }
    return oom ? -1 : 0;
}

int cc_lines_finish(struct cc_lines *l, cc_line_fn fn, void *ctx)
{
    int rc = 0;
    if (l->skipped)
        rc = end_skip(l, fn, ctx);
    else if (l->len) {
        l->buf[l->len] = '\0';
        rc = fn(ctx, l->buf, l->len);
    }
    l->len = l->skipped = 0;
    return rc;
}
