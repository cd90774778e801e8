/*
 * The operator's log: one line per event on stderr, "ccoperator: " first, written with one
 * write() so that lines from the health thread never interleave with the loop's.
 */
#ifndef CO_LOG_H
#define CO_LOG_H

__attribute__((format(printf, 1, 2))) void co_log(const char *fmt, ...);

#endif
