/*
 * buf.h - a growable byte buffer with a hard size cap.
 *
 * Every encoder writes into an lf__buf. Appends never fail loudly: once an allocation fails
 * or the cap would be exceeded, the buffer is marked (`oom` or `toobig`) and later appends
 * are ignored, so a caller checks once at the end instead of after every append (the way
 * curl's dynbuf works). The content is always NUL-terminated when `data` is non-NULL.
 */
#ifndef LF_BUF_H
#define LF_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct lf__buf {
    char *data; /* owned; NULL until the first append */
    size_t len; /* bytes used, excluding the terminating NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* hard cap on len; 0 means SIZE_MAX/2 */
    int oom;    /* an allocation failed: content is incomplete */
    int toobig; /* an append would have passed `max`: content is incomplete */
};

void lf__buf_init(struct lf__buf *b, size_t max);
/* Frees the content; the buffer may be reused after lf__buf_init(). Accepts NULL. */
void lf__buf_free(struct lf__buf *b);
/* Empties the buffer, keeps its allocation, clears the error flags. */
void lf__buf_reset(struct lf__buf *b);
/* Nonzero when an append was lost (oom or toobig). */
int lf__buf_failed(const struct lf__buf *b);
/* Ensures room for `extra` more bytes plus the NUL; 0 on success. */
int lf__buf_reserve(struct lf__buf *b, size_t extra);
void lf__buf_append(struct lf__buf *b, const void *p, size_t n);
void lf__buf_puts(struct lf__buf *b, const char *s);
void lf__buf_putc(struct lf__buf *b, char ch);
void lf__buf_printf(struct lf__buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lf__buf_put_i64(struct lf__buf *b, int64_t v);
void lf__buf_put_u64(struct lf__buf *b, uint64_t v);
/* Takes the content out of the buffer: the caller frees the returned pointer. The buffer
 * is left empty. Returns NULL if the buffer is empty and never allocated. */
char *lf__buf_steal(struct lf__buf *b, size_t *len);

#endif
