/*
 * lines.c - line splitting with a cap. Lines are usually small and arrive whole in one
 * read, so the common case delivers straight from the read buffer without copying; only a
 * line split across reads is assembled in `buf`, which grows geometrically up to the cap.
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
    if (!l)
        return;
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
        if (cap > l->max + 1)
            cap = l->max + 1;
        char *b = realloc(l->buf, cap);
        if (!b)
            return -1;
        l->buf = b;
        l->cap = cap;
    }
    memcpy(l->buf + l->len, p, n);
    l->len += n;
    return 0;
}

/* Starts skipping: the line so far counts towards the reported length. */
static void start_skip(struct cc_lines *l, size_t more)
{
    l->skipped = l->len + more;
    l->len = 0;
    if (l->cap > 65536) { /* give back what the monster line took */
        free(l->buf);
        l->buf = NULL;
        l->cap = 0;
    }
}

int cc_lines_feed(struct cc_lines *l, char *data, size_t n, cc_line_fn fn, void *ctx)
{
    while (n > 0) {
        char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) : n;
        int rc = 0;
        if (l->skipped) {
            l->skipped += take;
            if (nl) {
                rc = fn(ctx, NULL, l->skipped);
                l->skipped = 0;
            }
        } else if (l->len + take > l->max) {
            start_skip(l, take);
            if (nl) {
                rc = fn(ctx, NULL, l->skipped);
                l->skipped = 0;
            }
        } else if (nl && l->len == 0) {
            /* Whole line inside this chunk: deliver it in place, the newline replaced by
             * the terminating NUL for the duration of the call. */
            data[take] = '\0';
            rc = fn(ctx, data, take);
            data[take] = '\n';
        } else {
            if (append(l, data, take) < 0) {
                start_skip(l, take);
                if (nl) {
                    fn(ctx, NULL, l->skipped);
                    l->skipped = 0;
                }
                return -1;
            }
            if (nl) {
                l->buf[l->len] = '\0';
                size_t len = l->len;
                l->len = 0;
                rc = fn(ctx, l->buf, len);
            }
        }
        size_t used = take + (nl ? 1 : 0);
        data += used;
        n -= used;
        if (rc)
            return rc;
    }
    return 0;
}

int cc_lines_finish(struct cc_lines *l, cc_line_fn fn, void *ctx)
{
    int rc = 0;
    if (l->skipped)
        rc = fn(ctx, NULL, l->skipped);
    else if (l->len) {
        l->buf[l->len] = '\0';
        rc = fn(ctx, l->buf, l->len);
    }
    l->len = l->skipped = 0;
    return rc;
}
