/*
 * alloc.h - the library's allocator entry points.
 *
 * Every allocation in the library goes through these (and, while a test arms the hook, the
 * allocations of jansson and libdeflate too) so that tests can make the Nth one fail and
 * check that each failure is handled and counted. Unarmed, the hook costs one
 * relaxed load of a variable that is never written, so it stays out of the way.
 */
#ifndef LF_ALLOC_H
#define LF_ALLOC_H

#include <stddef.h>

void *lf__malloc(size_t n);
void *lf__calloc(size_t n, size_t size);
void *lf__realloc(void *p, size_t n);
char *lf__strdup(const char *s);
char *lf__strndup(const char *s, size_t n);

/* Wipes a NUL-terminated secret (the credentials, a copy of a registered secret, anything
 * built from them) and frees it, so that it does not linger in freed memory for a core dump
 * or a later allocation to show. Accepts NULL. */
void lf__free_secret(char *s);

/*
 * Test hook: after `n` more successful allocations the next one fails, and with `sticky`
 * every one after it too; n < 0 disarms. Process-wide, meant for single-threaded tests.
 * Armed, it also counts jansson's and libdeflate's allocations (their global allocator
 * setters); disarmed, they allocate with malloc again.
 */
void lf__alloc_fail_after(long n, int sticky);
/* Number of allocations made to fail since the last lf__alloc_fail_after(). */
long lf__alloc_failures(void);

#endif
