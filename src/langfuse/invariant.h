/*
 * invariant.h - LF_INVARIANT(cond): a condition the code around it relies on, stated where
 * it holds and checked in every build. assert() goes away with NDEBUG in release builds;
 * these stay, as SQLite's and libuv's do where it matters: each costs a compare, and a
 * broken one means memory already wrong, where going on would send or spool garbage. On
 * failure: one line on stderr naming the condition and the place, then abort().
 */
#ifndef LF_INVARIANT_H
#define LF_INVARIANT_H

#define LF_INVARIANT(cond) ((cond) ? (void)0 : lf__invariant_failed(#cond, __FILE__, __LINE__))

_Noreturn void lf__invariant_failed(const char *cond, const char *file, int line);

#endif
