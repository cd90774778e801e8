/*
 * iov.h - advancing an iovec array past bytes already written (short writes).
 */
#ifndef LF_IOV_H
#define LF_IOV_H

#include <stddef.h>
#include <sys/uio.h>

/* Skips `done` bytes of (*iov, *n): fully written entries are dropped, a partly written one
 * is trimmed. */
static inline void lf__iov_advance(struct iovec **iov, int *n, size_t done)
{
    while (*n > 0 && done >= (*iov)->iov_len) {
        done -= (*iov)->iov_len;
        (*iov)++;
        (*n)--;
    }
    if (*n > 0) {
        (*iov)->iov_base = (char *)(*iov)->iov_base + done;
        (*iov)->iov_len -= done;
    }
}

#endif
