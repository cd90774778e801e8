/*
 * The operator's log: one line per event on stderr, "ccoperator: " first, written with one
 * write() so that lines from the health thread never interleave with the loop's.
 */
#ifndef CO_LOG_H
#define CO_LOG_H

#include <stddef.h>

__attribute__((format(printf, 1, 2))) void co_log(const char *fmt, ...);

/* An error line into the caller's buffer (cut to errlen), for the err/errlen parameters. */
__attribute__((format(printf, 3, 4))) void co_errf(char *err, size_t errlen, const char *fmt, ...);

#endif
