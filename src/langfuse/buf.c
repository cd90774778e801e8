/*
 * buf.c - growable byte buffer with a hard cap; see buf.h.
 *
 * Growth doubles, so appending N bytes costs O(N) amortised. The cap is checked before any
 * allocation: a buffer never holds more than `max` bytes.
 */
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "invariant.h"

void lf__buf_init(struct lf__buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max ? max : SIZE_MAX / 2;
}

void lf__buf_free(struct lf__buf *b)
{
    if (!b) return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void lf__buf_reset(struct lf__buf *b)
{
    b->len = 0;
    b->oom = b->toobig = 0;
    if (b->data) b->data[0] = '\0';
}

int lf__buf_failed(const struct lf__buf *b)
{
    return b->oom || b->toobig;
}

int lf__buf_reserve(struct lf__buf *b, size_t extra)
{
    if (b->oom || b->toobig) return -1;
    if (extra > b->max - b->len) {
        b->toobig = 1;
        return -1;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return 0;
    size_t ncap = b->cap ? b->cap : 64;
    while (ncap < need)
        ncap *= 2;
    char *p = lf__realloc(b->data, ncap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->data = p;
    b->cap = ncap;
    return 0;
}

void lf__buf_append(struct lf__buf *b, const void *p, size_t n)
{
    if (lf__buf_reserve(b, n)) return;
    LF_INVARIANT(b->len + n < b->cap); /* reserve() made room for n and the NUL */
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void lf__buf_puts(struct lf__buf *b, const char *s)
{
    lf__buf_append(b, s, strlen(s));
}

void lf__buf_putc(struct lf__buf *b, char ch)
{
    if (b->len + 1 < b->cap && !b->oom && !b->toobig && b->len < b->max) {
        b->data[b->len++] = ch;
        b->data[b->len] = '\0';
        return;
    }
    lf__buf_append(b, &ch, 1);
}

static void buf_vprintf(struct lf__buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void buf_vprintf(struct lf__buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0 || lf__buf_reserve(b, (size_t)n)) return;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void lf__buf_printf(struct lf__buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void lf__buf_put_u64(struct lf__buf *b, uint64_t v)
{
    char tmp[24];
    char *p = tmp + sizeof(tmp);
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    lf__buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

void lf__buf_put_i64(struct lf__buf *b, int64_t v)
{
    if (v < 0) {
        lf__buf_putc(b, '-');
        /* -(v+1)+1 avoids overflow on INT64_MIN */
        lf__buf_put_u64(b, (uint64_t)(-(v + 1)) + 1u);
    } else {
        lf__buf_put_u64(b, (uint64_t)v);
    }
}

char *lf__buf_steal(struct lf__buf *b, size_t *len)
{
    char *p = b->data;
    if (len) *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
